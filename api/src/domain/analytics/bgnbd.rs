//! BG/NBD model of repeat buying: fitted to customers' purchase histories, it says how likely
//! each customer is to still be active and how many purchases to expect from them.
//!
//! The model is Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way: An
//! Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 275–284. While active, a
//! customer buys as a Poisson process with rate λ ~ Gamma(r, α); after each purchase they drop
//! out for good with probability p ~ Beta(a, b). A customer's history is summarised by `x` (repeat
//! purchases, i.e. purchases after the first), `t_x` (time from the first to the last purchase)
//! and `T` (time from the first purchase to the end of observation). Time is in weeks.
//!
//! The tests reproduce the paper's fit to the CDNOW sample (`tests/data/`).

use argmin::core::{CostFunction, Executor, State, TerminationReason};
use argmin::solver::neldermead::NelderMead;

/// Fewer customers than this and four parameters cannot be told apart from noise.
pub const MIN_CUSTOMERS: u64 = 10;

/// One purchase history, shared by `customers` customers. Fitting costs in proportion to the
/// number of distinct histories, so callers should send one row per distinct (x, t_x, T).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Repeat purchases: a whole number, 0 or more.
    pub x: f64,
    /// Weeks from the first purchase to the last one (ignored when `x` is 0).
    pub t_x: f64,
    /// Weeks from the first purchase to the end of observation (`T` in the paper).
    pub t: f64,
    /// How many customers have exactly this history.
    pub customers: u64,
}

/// A fitted BG/NBD model: λ ~ Gamma(shape `r`, rate `alpha`), p ~ Beta(`a`, `b`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    /// Log-likelihood of the fitted data at these parameters.
    pub log_likelihood: f64,
    /// Customers the model was fitted to.
    pub customers: u64,
}

/// Why a model could not be fitted. Shared with the Gamma-Gamma spend model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("too few customers to fit the model: {got}, at least {needed} are needed")]
    TooFewCustomers { got: u64, needed: u64 },
    #[error(
        "no customer made a repeat purchase, so there is nothing to learn purchase or drop-out rates from"
    )]
    NoRepeatBuyers,
    #[error("observation {index} is not usable: {reason}")]
    InvalidObservation { index: usize, reason: &'static str },
    #[error("the fit did not converge: {0}")]
    DidNotConverge(String),
}

/// Maximum-likelihood fit of the BG/NBD model, with the likelihood in the log form of Fader &
/// Hardie's note "Overcoming the BG/NBD Model's #NUM! Error Problem".
pub fn fit(observations: &[Observation]) -> Result<BgNbd, FitError> {
    let data = Grouped::new(observations)?;
    if data.customers < MIN_CUSTOMERS {
        return Err(FitError::TooFewCustomers {
            got: data.customers,
            needed: MIN_CUSTOMERS,
        });
    }
    // With nobody repeating, the likelihood keeps rising as r/α → 0: there is no optimum.
    if data.by_x.iter().all(|&(x, _)| x == 0.0) {
        return Err(FitError::NoRepeatBuyers);
    }
    // The per-customer mean keeps the objective near 1 whatever the size of the customer
    // base, so one convergence tolerance suits all.
    let weight = data.weight;
    let cost = |p: &[f64]| -log_likelihood(&data, p[0], p[1], p[2], p[3]) / weight;
    let p = minimise_over_logs(cost, &[1.0; 4])?;
    let (r, alpha, a, b) = (p[0], p[1], p[2], p[3]);
    let log_likelihood = log_likelihood(&data, r, alpha, a, b);
    if !log_likelihood.is_finite() {
        return Err(FitError::DidNotConverge(
            "the log-likelihood at the optimum is not finite".into(),
        ));
    }
    Ok(BgNbd {
        r,
        alpha,
        a,
        b,
        log_likelihood,
        customers: data.customers,
    })
}

impl BgNbd {
    /// Probability that a customer with this history is still active at `T` (the paper's
    /// P(alive)). A customer who never came back is active for sure: in this model drop-out
    /// can only happen right after a purchase.
    ///
    /// Inputs are taken as a history: `x` is rounded to a whole number, `t_x` clamped to
    /// [0, T], and negative or non-finite values read as 0.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let (x, t_x, t) = history(x, t_x, t);
        if x == 0.0 {
            return 1.0;
        }
        // 1 / (1 + a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)), with the power in logs so that a long
        // silence after many purchases gives a tiny probability instead of inf/inf.
        let ln_odds_inactive = self.a.ln() - (self.b + x - 1.0).ln()
            + (self.r + x) * ((self.alpha + t).ln() - (self.alpha + t_x).ln());
        1.0 / (1.0 + ln_odds_inactive.exp())
    }

    /// Expected purchases in the next `horizon_weeks` after `T` for a customer with this
    /// history (Fader, Hardie & Lee 2005 eq. 10). Same reading of the inputs as
    /// [`BgNbd::p_alive`]; a horizon that is not positive gives 0.
    pub fn expected_purchases(&self, horizon_weeks: f64, x: f64, t_x: f64, t: f64) -> f64 {
        let (x, t_x, t) = history(x, t_x, t);
        if horizon_weeks.is_nan() || horizon_weeks <= 0.0 {
            return 0.0;
        }
        let p_alive = self.p_alive(x, t_x, t);
        if horizon_weeks == f64::INFINITY {
            // A lifetime's purchases: E[1/p] under the posterior Beta(a, b + x), which is
            // finite only when a > 1.
            return if self.a > 1.0 {
                p_alive * (self.a + self.b + x - 1.0) / (self.a - 1.0)
            } else {
                f64::INFINITY
            };
        }
        p_alive * self.expected_if_active(horizon_weeks, x, t)
    }

    /// Expected purchases in the next `horizon` weeks of a customer who is known to be active
    /// at `T` after `x` repeat purchases:
    /// (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))].
    fn expected_if_active(&self, horizon: f64, x: f64, t: f64) -> f64 {
        let n = self.r + x;
        let beta = self.b + x;
        let c = self.a + self.b + x - 1.0;
        let u = horizon / (self.alpha + t);
        // The closed form divides by a − 1 (0/0 at a = 1) and its series needs c > 0 (false
        // only for x = 0 with a + b ≤ 1); the integral covers those cases and series that
        // converge too slowly (z close to 1).
        if c > 0.0 && (self.a - 1.0).abs() > 1e-4 {
            let z = horizon / (self.alpha + t + horizon);
            let ln_prefactor = -n * u.ln_1p();
            if let Some(ln_g) = ln_hyp2f1_series(n, beta, c, z, ln_prefactor) {
                // 1 − G as −expm1(ln G): exact where G is close to 1 (short horizons).
                let e = c / (self.a - 1.0) * -ln_g.exp_m1();
                if e.is_finite() && e >= 0.0 {
                    return e;
                }
            }
        }
        expected_if_active_by_quadrature(n, u, self.a, beta)
    }
}

/// Reads (x, t_x, T) as a purchase history: whole x ≥ 0, 0 ≤ t_x ≤ T, nothing non-finite.
fn history(x: f64, t_x: f64, t: f64) -> (f64, f64, f64) {
    let t = if t.is_finite() && t > 0.0 { t } else { 0.0 };
    let x = if x.is_finite() && x > 0.0 {
        x.round()
    } else {
        0.0
    };
    let t_x = if x > 0.0 && t_x.is_finite() {
        t_x.clamp(0.0, t)
    } else {
        0.0
    };
    (x, t_x, t)
}

/// The fitting data with identical histories merged, so that a likelihood evaluation costs
/// one term per distinct (x, t_x, T) and one ln Γ triple per distinct x.
struct Grouped {
    /// (x, customers) for each distinct x: the A1·A2 part of the likelihood depends on x alone.
    by_x: Vec<(f64, f64)>,
    /// Each distinct history with its customer count (as a weight).
    triples: Vec<Triple>,
    customers: u64,
    /// `customers` as a float, the divisor of the per-customer objective.
    weight: f64,
}

struct Triple {
    x: f64,
    t_x: f64,
    t: f64,
    weight: f64,
}

impl Grouped {
    fn new(observations: &[Observation]) -> Result<Self, FitError> {
        let mut rows = Vec::with_capacity(observations.len());
        for (index, o) in observations.iter().enumerate() {
            check_observation(o)
                .map_err(|reason| FitError::InvalidObservation { index, reason })?;
            if o.customers == 0 {
                continue;
            }
            // `+ 0.0` turns −0.0 into 0.0 so that total_cmp sees them as the same value;
            // t_x carries no information when x = 0, so it must not split groups.
            let t_x = if o.x == 0.0 { 0.0 } else { o.t_x + 0.0 };
            rows.push((o.x + 0.0, t_x, o.t + 0.0, o.customers));
        }
        rows.sort_by(|p, q| {
            p.0.total_cmp(&q.0)
                .then(p.1.total_cmp(&q.1))
                .then(p.2.total_cmp(&q.2))
        });

        let mut triples: Vec<Triple> = Vec::new();
        let mut by_x: Vec<(f64, f64)> = Vec::new();
        let mut customers: u64 = 0;
        for (x, t_x, t, n) in rows {
            customers = customers.saturating_add(n);
            let w = n as f64;
            match triples.last_mut() {
                Some(last) if last.x == x && last.t_x == t_x && last.t == t => last.weight += w,
                _ => triples.push(Triple {
                    x,
                    t_x,
                    t,
                    weight: w,
                }),
            }
            match by_x.last_mut() {
                Some(last) if last.0 == x => last.1 += w,
                _ => by_x.push((x, w)),
            }
        }
        Ok(Grouped {
            by_x,
            triples,
            customers,
            weight: customers as f64,
        })
    }
}

fn check_observation(o: &Observation) -> Result<(), &'static str> {
    if !(o.x.is_finite() && o.x >= 0.0 && o.x.fract() == 0.0) {
        return Err("x must be a whole number of repeat purchases, 0 or more");
    }
    if !(o.t.is_finite() && o.t >= 0.0) {
        return Err("T must be finite and not negative");
    }
    if o.x > 0.0 && !(o.t_x.is_finite() && o.t_x >= 0.0 && o.t_x <= o.t) {
        return Err("t_x must lie between 0 and T");
    }
    Ok(())
}

/// ln L(r, α, a, b) = Σ customers × [ln A1 + ln A2 + ln(A3 + δ(x>0)·A4)], with
/// A1 = Γ(r+x)α^r/Γ(r), A2 = Γ(a+b)Γ(b+x)/(Γ(b)Γ(a+b+x)), A3 = (α+T)^−(r+x) and
/// A4 = a/(b+x−1)·(α+t_x)^−(r+x). Everything stays in logs: the powers under- or overflow
/// for heavy buyers long before the likelihood itself is out of range.
fn log_likelihood(data: &Grouped, r: f64, alpha: f64, a: f64, b: f64) -> f64 {
    let common = -ln_gamma(r) + r * alpha.ln() + ln_gamma(a + b) - ln_gamma(b);
    let mut ll = 0.0;
    for &(x, weight) in &data.by_x {
        ll += weight * (common + ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x));
    }
    let ln_a = a.ln();
    for h in &data.triples {
        let ln_a3 = -(r + h.x) * (alpha + h.t).ln();
        let ln_rest = if h.x > 0.0 {
            let ln_a4 = ln_a - (b + h.x - 1.0).ln() - (r + h.x) * (alpha + h.t_x).ln();
            ln_add(ln_a3, ln_a4)
        } else {
            ln_a3
        };
        ll += h.weight * ln_rest;
    }
    ll
}

pub(crate) fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ln(e^u + e^v) without leaving log space.
fn ln_add(u: f64, v: f64) -> f64 {
    let (hi, lo) = if u >= v { (u, v) } else { (v, u) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// ln(1 + e^y), accurate for large |y|.
fn softplus(y: f64) -> f64 {
    if y > 0.0 {
        y + (-y).exp().ln_1p()
    } else {
        y.exp().ln_1p()
    }
}

/// Most terms the hypergeometric series may take before the integral is used instead: the
/// series needs about (r+x)/(1−z) terms, which stays far below this for horizons of a few
/// years and customers with up to hundreds of purchases.
const MAX_SERIES_TERMS: usize = 20_000;

/// ln(e^ln_prefactor · ₂F₁(a, b; c; z)) from the Gauss series Σ (a)_k (b)_k / ((c)_k k!) z^k,
/// for a, b, c > 0 and 0 ≤ z < 1, where every term is positive. The terms are kept in logs:
/// for heavy buyers and long horizons ₂F₁ alone overflows while the prefactor underflows,
/// yet their product (what the caller needs) is moderate. `None` if the series has not
/// converged within [`MAX_SERIES_TERMS`].
fn ln_hyp2f1_series(a: f64, b: f64, c: f64, z: f64, ln_prefactor: f64) -> Option<f64> {
    if z == 0.0 {
        return Some(ln_prefactor);
    }
    if !(a > 0.0 && b > 0.0 && c > 0.0 && z > 0.0 && z < 1.0 && ln_prefactor.is_finite()) {
        return None;
    }
    let ln_z = z.ln();
    let mut ln_term = ln_prefactor;
    let mut ln_sum = ln_prefactor;
    for k in 0..MAX_SERIES_TERMS {
        let k = k as f64;
        ln_term += ((a + k) / (k + 1.0)).ln() + ((b + k) / (c + k)).ln() + ln_z;
        ln_sum = ln_add(ln_sum, ln_term);
        // Stop on a proven bound, not on a small term: for every later j ≥ k+1 the term ratio
        // z·(a+j)/(j+1)·(b+j)/(c+j) is at most z·max(1, (a+k+1)/(k+2))·max(1, (b+k+1)/(c+k+1)),
        // since each fraction moves monotonically towards 1. Once that bound ρ is below 1 the
        // rest of the series is at most term·ρ/(1−ρ).
        let j = k + 1.0;
        let rho = z * ((a + j) / (j + 1.0)).max(1.0) * ((b + j) / (c + j)).max(1.0);
        if rho < 1.0 {
            let ln_tail = ln_term + (rho / (1.0 - rho)).ln();
            if ln_tail < ln_sum + RELATIVE_TOLERANCE.ln() {
                return Some(ln_sum);
            }
        }
    }
    None
}

const RELATIVE_TOLERANCE: f64 = 1e-15;

/// The same expectation as the closed form in `expected_if_active`, as the integral it comes
/// from. An active customer with rates λ, p buys (1 − e^{−λpt})/p times in the next t weeks on
/// average; given the history, λ ~ Gamma(r+x, α+T) and p ~ Beta(a, b+x) independently, and the
/// λ integral is (1 + p·t/(α+T))^−(r+x). That leaves
///   ∫₀¹ [1 − (1 + p·u)^−n] / p · Beta(p; a, β) dp,   n = r+x, u = t/(α+T), β = b+x,
/// evaluated by tanh-sinh quadrature, which converges fast despite the beta density's endpoint
/// singularities (a < 1 is common) and needs no condition on the parameters.
fn expected_if_active_by_quadrature(n: f64, u: f64, a: f64, beta: f64) -> f64 {
    let ln_beta_fn = ln_gamma(a) + ln_gamma(beta) - ln_gamma(a + beta);
    let ln_u = u.ln();
    let ln_n = n.ln();
    let ln_pi = std::f64::consts::PI.ln();
    // Integrand times dp/ds at the node s, where p = 1/(1 + e^{−π sinh s}).
    let at = |s: f64| -> f64 {
        let v = std::f64::consts::PI * s.sinh();
        // ln p and ln(1−p) directly, so that nodes crowded against 0 and 1 keep their
        // precision even where p itself underflows.
        let ln_p = -softplus(-v);
        let ln_q = -softplus(v);
        // dp/ds = π cosh s · p(1−p); the beta density adds p^(a−1)(1−p)^(β−1).
        let ln_weight = ln_pi + s.cosh().ln() + a * ln_p + beta * ln_q - ln_beta_fn;
        // [1 − (1+pu)^−n]/p → n·u as p → 0; past that point the quotient is exactly n·u
        // within rounding.
        let g = if ln_p + ln_u + ln_n < -40.0 {
            n * u
        } else {
            let p = ln_p.exp();
            -(-n * (p * u).ln_1p()).exp_m1() / p
        };
        let value = g * ln_weight.exp();
        if value.is_finite() { value } else { 0.0 }
    };

    // |s| ≤ 12 reaches p ≈ e^{−π sinh 12} on both sides: enough for a beta shape as small as
    // 1e-4. Each level halves the step and adds only the new (odd) nodes.
    const S_MAX: f64 = 12.0;
    const MAX_LEVEL: u32 = 10;
    let mut h = 1.0;
    let mut sum = at(0.0);
    let mut k = 1.0;
    while k <= S_MAX {
        sum += at(k) + at(-k);
        k += 1.0;
    }
    let mut estimate = h * sum;
    for level in 1..=MAX_LEVEL {
        h /= 2.0;
        let mut k = 1.0;
        while k * h <= S_MAX {
            sum += at(k * h) + at(-k * h);
            k += 2.0;
        }
        let next = h * sum;
        if level >= 3 && (next - estimate).abs() <= 1e-13 * next.abs() {
            return next;
        }
        estimate = next;
    }
    estimate
}

/// Nelder–Mead over the logarithms of the parameters, so that every point it tries is a valid
/// (positive) parameter vector. `cost` gets the parameters themselves; any non-finite value
/// counts as +∞, i.e. as a point to move away from.
///
/// Nelder–Mead can stall on a collapsed simplex short of the optimum, so it is restarted from
/// its best point with a fresh simplex until a restart no longer improves the cost.
pub(crate) fn minimise_over_logs<C>(cost: C, start: &[f64]) -> Result<Vec<f64>, FitError>
where
    C: Fn(&[f64]) -> f64,
{
    // A first simplex edge of e^0.5 ≈ 1.65× on each parameter: wide enough to find the basin
    // from a start of 1.0, small enough to stay in it on restarts.
    const STEP: f64 = 0.5;
    const MAX_ITERS: u64 = 2_000;
    const MAX_ROUNDS: usize = 8;
    // On the spread of the simplex's (per-customer, order-1) costs. Near the optimum the
    // cost is quadratic in the parameters, so 1e-10 settles them to about 1e-5 relative,
    // far inside the models' own standard errors; tighter, the rounding of a sum over
    // hundreds of thousands of histories (about 1e-13) keeps the simplex from ever
    // agreeing, and each of thousands of extra iterations costs a pass over the data.
    const SD_TOLERANCE: f64 = 1e-10;
    const IMPROVEMENT_TOLERANCE: f64 = 1e-9;
    const RUNAWAY: f64 = 20.0;

    let objective = LogSpace { cost: &cost };
    let mut theta: Vec<f64> = start.iter().map(|p| p.ln()).collect();
    let mut best = objective.value(&theta);
    for _ in 0..MAX_ROUNDS {
        let mut simplex = vec![theta.clone()];
        for i in 0..theta.len() {
            let mut vertex = theta.clone();
            vertex[i] += STEP;
            simplex.push(vertex);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(SD_TOLERANCE)
            .map_err(|e| FitError::DidNotConverge(e.to_string()))?;
        let result = Executor::new(LogSpace { cost: &cost }, solver)
            .configure(|state| state.max_iters(MAX_ITERS))
            .run()
            .map_err(|e| FitError::DidNotConverge(e.to_string()))?;
        let state = result.state();
        let converged = matches!(
            state.get_termination_reason(),
            Some(TerminationReason::SolverConverged)
        );
        let Some(found) = state.get_best_param().cloned() else {
            return Err(FitError::DidNotConverge(
                "the optimiser returned no parameters".into(),
            ));
        };
        let found_cost = state.get_best_cost();
        let improvement = best - found_cost;
        if found_cost <= best {
            theta = found;
            best = found_cost;
        }
        // A parameter past e^±20 (about 5e8) means the optimum is at infinity (a
        // degenerate population, such as everyone spending alike): restarting would only
        // walk further out, at a pass over the data per step.
        if theta.iter().any(|t| t.abs() > RUNAWAY) {
            return Err(FitError::DidNotConverge(
                "the parameters ran off to 0 or infinity".into(),
            ));
        }
        if converged && best.is_finite() && improvement.abs() <= IMPROVEMENT_TOLERANCE {
            let params: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
            if params.iter().all(|p| p.is_finite() && *p > 0.0) {
                return Ok(params);
            }
            return Err(FitError::DidNotConverge(
                "the parameters ran off to 0 or infinity".into(),
            ));
        }
    }
    Err(FitError::DidNotConverge(format!(
        "no stable optimum after {MAX_ROUNDS} restarts of Nelder–Mead"
    )))
}

/// `cost` seen from log-parameter space, as argmin wants it.
struct LogSpace<'a, C> {
    cost: &'a C,
}

impl<C: Fn(&[f64]) -> f64> LogSpace<'_, C> {
    fn value(&self, theta: &[f64]) -> f64 {
        let params: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
        if !params.iter().all(|p| p.is_finite() && *p > 0.0) {
            return f64::INFINITY;
        }
        let c = (self.cost)(&params);
        // Never hand NaN to the solver: it orders points by cost.
        if c.is_finite() { c } else { f64::INFINITY }
    }
}

impl<C: Fn(&[f64]) -> f64> CostFunction for LogSpace<'_, C> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, theta: &Self::Param) -> Result<Self::Output, argmin::core::Error> {
        Ok(self.value(theta))
    }
}

/// The CDNOW 1/10th sample summarised as in Fader, Hardie & Lee's papers; shared with the
/// Gamma-Gamma tests.
#[cfg(test)]
pub(crate) mod cdnow {
    use chrono::NaiveDate;
    use std::collections::BTreeMap;

    const SAMPLE: &str = include_str!("../../../../tests/data/CDNOW_sample.txt");

    /// One customer's calibration-period summary, in days.
    pub struct Customer {
        /// Distinct purchase days after the first purchase day.
        pub x: u32,
        pub t_x_days: i64,
        pub t_days: i64,
        /// Dollars spent on each repeat purchase day (transactions of a day summed).
        pub repeat_day_spend: Vec<f64>,
        /// Dollars of each transaction on a repeat purchase day.
        pub repeat_transaction_spend: Vec<f64>,
    }

    pub fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y%m%d").expect("a YYYYMMDD date")
    }

    /// Every customer of the sample, summarised over purchases up to and including
    /// `last_day`, with T counted in whole days from the first purchase day to `last_day`.
    pub fn calibration(last_day: NaiveDate) -> Vec<Customer> {
        // Columns: id in the full CDNOW set, id in the sample (1..=2357), date, CDs, dollars.
        let mut purchases: BTreeMap<u32, BTreeMap<NaiveDate, Vec<f64>>> = BTreeMap::new();
        for line in SAMPLE.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            assert_eq!(fields.len(), 5, "line {line:?}");
            let id: u32 = fields[1].parse().expect("sample id");
            let day = date(fields[2]);
            let dollars: f64 = fields[4].parse().expect("dollar value");
            purchases
                .entry(id)
                .or_default()
                .entry(day)
                .or_default()
                .push(dollars);
        }
        purchases
            .into_values()
            .map(|days| {
                let mut in_period = days.range(..=last_day);
                let (&first, _) = in_period
                    .next()
                    .expect("every customer buys first in Q1 1997");
                let mut customer = Customer {
                    x: 0,
                    t_x_days: 0,
                    t_days: (last_day - first).num_days(),
                    repeat_day_spend: Vec::new(),
                    repeat_transaction_spend: Vec::new(),
                };
                for (&day, spend) in in_period {
                    customer.x += 1;
                    customer.t_x_days = (day - first).num_days();
                    customer.repeat_day_spend.push(spend.iter().sum());
                    customer.repeat_transaction_spend.extend(spend);
                }
                customer
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The paper's 39-week calibration period, 1997-01-01 to 1997-09-30.
    ///
    /// x counts distinct purchase days after the first purchase day (several transactions on
    /// one day are one purchase), and t_x and T are whole days / 7. T runs from the first
    /// purchase day to 1997-09-30 as a difference of dates: 272 days, 38.86 weeks, for a
    /// customer who first bought on 1 January, not to the end of 30 September (273 days,
    /// exactly 39 weeks). That reproduces the paper: −9582.43 at the published parameters and
    /// a fit within 0.2% of each of them, where counting to the end of the day gives −9589.9
    /// and a = 0.814 (2.7% off). It is also how the CDNOW summary shipped with the `lifetimes`
    /// package counts (T = 38.86 for 1 January buyers), and this summary matches that file
    /// for all 2,357 customers.
    fn cdnow_observations(grouped: bool) -> Vec<Observation> {
        let customers = cdnow::calibration(cdnow::date("19970930"));
        assert_eq!(customers.len(), 2357);
        let rows = customers.iter().map(|c| (c.x, c.t_x_days, c.t_days));
        if !grouped {
            return rows.map(|(x, t_x, t)| observation(x, t_x, t, 1)).collect();
        }
        let mut counts: BTreeMap<(u32, i64, i64), u64> = BTreeMap::new();
        for key in rows {
            *counts.entry(key).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((x, t_x, t), n)| observation(x, t_x, t, n))
            .collect()
    }

    fn observation(x: u32, t_x_days: i64, t_days: i64, customers: u64) -> Observation {
        Observation {
            x: x.into(),
            t_x: t_x_days as f64 / 7.0,
            t: t_days as f64 / 7.0,
            customers,
        }
    }

    fn assert_within(name: &str, got: f64, published: f64, tolerance: f64) {
        let off = (got - published).abs() / published.abs();
        assert!(
            off <= tolerance,
            "{name}: got {got}, published {published} ({:.3}% off)",
            off * 100.0
        );
    }

    /// Fader, Hardie & Lee (2005), Table 1 / section 4: r = 0.243, α = 4.414, a = 0.793,
    /// b = 2.426, LL = −9582.4 for the 2,357 customers.
    #[test]
    fn reproduces_the_published_cdnow_fit() {
        let model = fit(&cdnow_observations(true)).expect("CDNOW fits");
        assert_eq!(model.customers, 2357);
        assert_within("r", model.r, 0.243, 0.01);
        assert_within("alpha", model.alpha, 4.414, 0.01);
        assert_within("a", model.a, 0.793, 0.01);
        assert_within("b", model.b, 2.426, 0.01);
        assert_within("log-likelihood", model.log_likelihood, -9582.4, 0.01);
        // And much closer than 1%: the published values are rounded to the digits shown.
        assert!((model.log_likelihood - -9582.4).abs() < 0.05, "{model:?}");
        assert!((model.r - 0.243).abs() < 0.0005, "{model:?}");
        assert!((model.alpha - 4.414).abs() < 0.0005, "{model:?}");
        assert!((model.a - 0.793).abs() < 0.0005, "{model:?}");
        assert!((model.b - 2.426).abs() < 0.0005, "{model:?}");
    }

    #[test]
    fn grouping_costs_nothing_in_accuracy_and_fits_run_on_distinct_histories() {
        let grouped = cdnow_observations(true);
        let ungrouped = cdnow_observations(false);
        assert_eq!(ungrouped.len(), 2357);
        // The likelihood is evaluated once per distinct history, whatever the input shape.
        let distinct = grouped.len();
        assert!(distinct < 2357 / 2, "{distinct} distinct histories");
        assert_eq!(
            Grouped::new(&ungrouped).expect("valid").triples.len(),
            distinct
        );
        assert_eq!(
            Grouped::new(&grouped).expect("valid").triples.len(),
            distinct
        );
        // Same data after grouping, so the very same fit.
        assert_eq!(fit(&grouped), fit(&ungrouped));
    }

    fn published() -> BgNbd {
        BgNbd {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
            log_likelihood: -9582.4,
            customers: 2357,
        }
    }

    #[test]
    fn p_alive_is_a_probability_and_one_without_repeat_purchases() {
        let m = published();
        assert_eq!(m.p_alive(0.0, 0.0, 38.86), 1.0);
        assert_eq!(m.p_alive(0.0, 0.0, 0.0), 1.0);
        for x in [1.0, 2.0, 5.0, 20.0, 100.0] {
            for t in [1.0, 10.0, 38.86, 78.0, 520.0] {
                for share in [0.0, 0.1, 0.5, 0.9, 1.0] {
                    let p = m.p_alive(x, share * t, t);
                    assert!(
                        p > 0.0 && p <= 1.0,
                        "p_alive({x}, {}, {t}) = {p}",
                        share * t
                    );
                }
                // A longer silence since the last purchase can only lower it.
                assert!(m.p_alive(x, 0.9 * t, t) >= m.p_alive(x, 0.1 * t, t));
            }
        }
        // Fader, Hardie & Lee's example customer (x = 2, t_x = 30.43, T = 38.86); the value
        // is the formula evaluated independently (mpmath, 30 digits).
        let p = m.p_alive(2.0, 30.43, 38.86);
        assert!((p - 0.726578570080673).abs() < 1e-12, "{p}");
        // Silly inputs are read as a history, never as NaN.
        for (x, t_x, t) in [
            (f64::NAN, 1.0, 2.0),
            (3.0, f64::INFINITY, 2.0),
            (-1.0, -1.0, -1.0),
        ] {
            let p = m.p_alive(x, t_x, t);
            assert!(p > 0.0 && p <= 1.0, "p_alive({x}, {t_x}, {t}) = {p}");
        }
    }

    #[test]
    fn expected_purchases_are_finite_and_grow_with_the_horizon() {
        let m = published();
        for x in [0.0, 1.0, 2.0, 7.0, 30.0, 200.0] {
            for t in [0.5, 38.86, 150.0] {
                let t_x = if x == 0.0 { 0.0 } else { 0.8 * t };
                let mut previous = 0.0;
                for horizon in [0.01, 1.0, 4.0, 13.0, 39.0, 52.0, 104.0, 520.0, 5200.0, 1e6] {
                    let e = m.expected_purchases(horizon, x, t_x, t);
                    assert!(e.is_finite(), "E[{horizon} | {x}, {t_x}, {t}] = {e}");
                    assert!(
                        e > previous,
                        "E[{horizon} | {x}, {t_x}, {t}] = {e} ≤ {previous}"
                    );
                    previous = e;
                }
            }
        }
        assert_eq!(m.expected_purchases(0.0, 2.0, 30.43, 38.86), 0.0);
        assert_eq!(m.expected_purchases(-3.0, 2.0, 30.43, 38.86), 0.0);
        assert_eq!(m.expected_purchases(f64::NAN, 2.0, 30.43, 38.86), 0.0);
        // a < 1: 1/p has no finite mean, so neither has a lifetime's purchases.
        assert_eq!(
            m.expected_purchases(f64::INFINITY, 2.0, 30.43, 38.86),
            f64::INFINITY
        );
    }

    /// Reference values of eq. 10 at the published parameters, computed with mpmath's hyp2f1
    /// at 30 significant digits.
    #[test]
    fn expected_purchases_match_an_independent_evaluation() {
        let m = published();
        for (horizon, x, t_x, t, expected) in [
            // The paper's worked example: 1.226 purchases in the next 39 weeks.
            (39.0, 2.0, 30.43, 38.86, 1.22602817476714_f64),
            (52.0, 0.0, 0.0, 38.86, 0.252073022282459),
            (10.0, 1.0, 1.71, 38.86, 0.0581858396786241),
            (104.0, 26.0, 30.86, 31.0, 41.364407462635),
            (52.0, 200.0, 38.0, 38.86, 141.153429897863),
            // z = t/(α+T+t) close to 1: slow series, or the integral.
            (5200.0, 50.0, 30.0, 38.86, 0.275092892292264),
            (1000.0, 0.0, 0.0, 0.5, 6.29561200011669),
            (100000.0, 3.0, 20.0, 38.86, 40.6284449057517),
        ] {
            let e = m.expected_purchases(horizon, x, t_x, t);
            assert!(
                ((e - expected) / expected).abs() < 1e-9,
                "E[{horizon} | {x}, {t_x}, {t}] = {e}, expected {expected}"
            );
        }
    }

    /// The series and the integral are two routes to the same number; where both apply they
    /// must agree, including for parameters on both sides of a = 1.
    #[test]
    fn series_and_quadrature_agree() {
        for (r, alpha, a, b) in [
            (0.243, 4.414, 0.793, 2.426),
            (1.5, 10.0, 3.0, 5.0),
            (0.05, 0.5, 0.2, 0.4),
            (2.0, 1.0, 1.001, 0.3),
        ] {
            let m = BgNbd {
                r,
                alpha,
                a,
                b,
                log_likelihood: 0.0,
                customers: 0,
            };
            for x in [0.0, 1.0, 4.0, 40.0] {
                for t in [0.3, 20.0, 80.0] {
                    for horizon in [0.5, 10.0, 52.0, 300.0] {
                        let n = r + x;
                        let beta = b + x;
                        let c = a + b + x - 1.0;
                        let z = horizon / (alpha + t + horizon);
                        let Some(ln_g) =
                            ln_hyp2f1_series(n, beta, c, z, -n * (horizon / (alpha + t)).ln_1p())
                        else {
                            continue;
                        };
                        if c <= 0.0 {
                            continue;
                        }
                        let series = c / (a - 1.0) * -ln_g.exp_m1();
                        let integral =
                            expected_if_active_by_quadrature(n, horizon / (alpha + t), a, beta);
                        let scale = series.abs().max(1e-12);
                        assert!(
                            ((series - integral) / scale).abs() < 1e-8,
                            "{m:?}, x {x}, T {t}, horizon {horizon}: series {series}, integral {integral}"
                        );
                        let via_model = m.expected_if_active(horizon, x, t);
                        assert!(((via_model - integral) / scale).abs() < 1e-8);
                    }
                }
            }
        }
    }

    #[test]
    fn the_removable_singularity_at_a_equal_one_is_smooth() {
        let at = |a: f64| {
            BgNbd {
                r: 0.5,
                alpha: 3.0,
                a,
                b: 2.0,
                log_likelihood: 0.0,
                customers: 0,
            }
            .expected_purchases(52.0, 3.0, 20.0, 30.0)
        };
        let (below, exact, above) = (at(1.0 - 1e-3), at(1.0), at(1.0 + 1e-3));
        assert!(exact.is_finite() && below.is_finite() && above.is_finite());
        assert!(below > exact && exact > above, "{below} {exact} {above}");
        assert!((below - above).abs() / exact < 1e-2);
    }

    #[test]
    fn degenerate_inputs_are_errors_not_nan() {
        assert_eq!(
            fit(&[]),
            Err(FitError::TooFewCustomers {
                got: 0,
                needed: MIN_CUSTOMERS
            })
        );
        let five: Vec<Observation> = (0..5)
            .map(|i| Observation {
                x: i as f64,
                t_x: i as f64,
                t: 10.0,
                customers: 1,
            })
            .collect();
        assert_eq!(
            fit(&five),
            Err(FitError::TooFewCustomers {
                got: 5,
                needed: MIN_CUSTOMERS
            })
        );
        let nobody_repeats = [
            Observation {
                x: 0.0,
                t_x: 0.0,
                t: 20.0,
                customers: 400,
            },
            Observation {
                x: 0.0,
                t_x: 0.0,
                t: 35.0,
                customers: 300,
            },
        ];
        assert_eq!(fit(&nobody_repeats), Err(FitError::NoRepeatBuyers));
        let bad = [Observation {
            x: 1.5,
            t_x: 1.0,
            t: 2.0,
            customers: 100,
        }];
        assert!(matches!(
            fit(&bad),
            Err(FitError::InvalidObservation { index: 0, .. })
        ));
        let bad = [Observation {
            x: 2.0,
            t_x: 3.0,
            t: 2.0,
            customers: 100,
        }];
        assert!(matches!(
            fit(&bad),
            Err(FitError::InvalidObservation { index: 0, .. })
        ));
        let bad = [Observation {
            x: 2.0,
            t_x: 1.0,
            t: f64::NAN,
            customers: 100,
        }];
        assert!(matches!(
            fit(&bad),
            Err(FitError::InvalidObservation { index: 0, .. })
        ));
        // Messages are for people.
        assert!(
            FitError::NoRepeatBuyers
                .to_string()
                .contains("repeat purchase")
        );
    }

    #[test]
    fn small_or_odd_data_still_give_finite_parameters_or_an_error() {
        // Ten identical repeat buyers: a degenerate likelihood whose optimum may lie at the
        // edge of the parameter space. Whatever comes back must not be NaN or infinite.
        let same = [Observation {
            x: 3.0,
            t_x: 10.0,
            t: 20.0,
            customers: 10,
        }];
        match fit(&same) {
            Ok(m) => {
                for v in [m.r, m.alpha, m.a, m.b, m.log_likelihood] {
                    assert!(v.is_finite(), "{m:?}");
                }
            }
            Err(e) => assert!(matches!(e, FitError::DidNotConverge(_)), "{e}"),
        }
    }
}
