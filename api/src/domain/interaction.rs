//! What makes a recorded interaction valid (CONTRACT.md, `RecordInteractionInput`), and
//! which kinds feed which metric.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use entity::enums::{Channel, InteractionKind};
use rust_decimal::Decimal;

use super::customer::{optional_text, text};
use super::error::ensure;
use super::money::decimal_to_e4;
use super::{DomainError, DomainResult};

/// How far ahead of the server's clock `occurredAt` may be: clocks of tills and phones
/// drift, but a date in the future is a mistake.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// Kinds that count as engagement for scoring.
pub const ENGAGEMENT_KINDS: [InteractionKind; 6] = [
    InteractionKind::ServiceContact,
    InteractionKind::Visit,
    InteractionKind::Feedback,
    InteractionKind::Complaint,
    InteractionKind::Survey,
    InteractionKind::CampaignResponse,
];

/// Kinds that carry an amount of money, which is then required.
pub fn carries_amount(kind: InteractionKind) -> bool {
    use InteractionKind::*;
    matches!(kind, Purchase | Refund | Shipment | Payment)
}

/// An interaction as the caller sent it.
#[derive(Debug, Clone)]
pub struct RawInteraction {
    pub kind: InteractionKind,
    pub occurred_at: Option<DateTime<Utc>>,
    pub amount: Option<Decimal>,
    pub currency: Option<String>,
    pub channel: Option<Channel>,
    pub rating: Option<i32>,
    pub note: Option<String>,
    pub order_ref: Option<String>,
}

/// A validated interaction, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionDraft {
    pub kind: InteractionKind,
    pub occurred_at: DateTime<Utc>,
    pub amount_e4: Option<i64>,
    pub currency: Option<String>,
    pub channel: Option<Channel>,
    pub rating: Option<i32>,
    pub note: Option<String>,
    pub order_ref: Option<String>,
}

/// The program's bounds an interaction is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Bounds<'a> {
    pub base_currency: &'a str,
    /// `maxInteractionAmount`, in ten-thousandths.
    pub max_amount_e4: i64,
}

impl<'a> Bounds<'a> {
    pub fn of(settings: &'a crate::domain::program::Settings) -> Self {
        Self {
            base_currency: &settings.base_currency,
            max_amount_e4: settings.max_interaction_amount_e4,
        }
    }
}

/// Validates `raw`, naming fields under `prefix` (`input`, `inputs[3]`).
pub fn validate(
    raw: RawInteraction,
    prefix: &str,
    bounds: Bounds<'_>,
    now: DateTime<Utc>,
) -> DomainResult<InteractionDraft> {
    let base_currency = bounds.base_currency;
    let field = |name: &str| format!("{prefix}.{name}");
    // Both databases keep microseconds; truncating here makes what is stored equal what
    // was validated and returned.
    let occurred_at = raw.occurred_at.unwrap_or(now).trunc_subsecs(6);
    ensure(
        occurred_at <= now + MAX_CLOCK_SKEW,
        &field("occurredAt"),
        || "must not be more than 5 minutes in the future".into(),
    )?;
    // No loyalty history predates 1970; a year-0 purchase made day counts (recencyDays)
    // reach past what rules and the churn model's day numbers are built for.
    ensure(
        occurred_at >= DateTime::UNIX_EPOCH,
        &field("occurredAt"),
        || "must not be before 1970-01-01".into(),
    )?;

    let amount_e4 = match (carries_amount(raw.kind), raw.amount) {
        (true, None) => {
            return Err(DomainError::bad_input(
                field("amount"),
                format!("is required for {}", raw.kind.as_str()),
            ));
        }
        (true, Some(amount)) => {
            let e4 = decimal_to_e4(amount, &field("amount"))?;
            ensure(e4 > 0, &field("amount"), || "must be greater than 0".into())?;
            ensure(e4 <= bounds.max_amount_e4, &field("amount"), || {
                format!(
                    "must be at most {} (the program's maxInteractionAmount)",
                    crate::domain::money::e4_to_decimal(bounds.max_amount_e4)
                )
            })?;
            Some(e4)
        }
        (false, Some(_)) => {
            return Err(DomainError::bad_input(
                field("amount"),
                format!(
                    "is only for PURCHASE, REFUND, SHIPMENT and PAYMENT, not {}",
                    raw.kind.as_str()
                ),
            ));
        }
        (false, None) => None,
    };

    let currency = optional_text(raw.currency.as_deref(), &field("currency"), 3)?;
    if let Some(currency) = &currency {
        ensure(currency == base_currency, &field("currency"), || {
            format!("must be the base currency {base_currency}")
        })?;
        ensure(amount_e4.is_some(), &field("currency"), || {
            "is only meaningful with an amount".into()
        })?;
    }

    let rating = match (raw.kind, raw.rating) {
        (InteractionKind::Survey, None) => {
            return Err(DomainError::bad_input(
                field("rating"),
                "is required for SURVEY (0..10)",
            ));
        }
        (InteractionKind::Survey, Some(r)) => {
            ensure((0..=10).contains(&r), &field("rating"), || {
                "must be between 0 and 10 for SURVEY".into()
            })?;
            Some(r)
        }
        (InteractionKind::Feedback, Some(r)) => {
            ensure((1..=5).contains(&r), &field("rating"), || {
                "must be between 1 and 5 for FEEDBACK".into()
            })?;
            Some(r)
        }
        (_, Some(_)) => {
            return Err(DomainError::bad_input(
                field("rating"),
                format!("is only for SURVEY and FEEDBACK, not {}", raw.kind.as_str()),
            ));
        }
        (_, None) => None,
    };

    let note = match raw.note.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(note) => {
            ensure(note.chars().count() <= 4000, &field("note"), || {
                "must be at most 4000 characters".into()
            })?;
            Some(note.to_owned())
        }
    };
    let order_ref = raw
        .order_ref
        .as_deref()
        .map(|r| text(r, &field("orderRef"), 200))
        .transpose()?;

    Ok(InteractionDraft {
        kind: raw.kind,
        occurred_at,
        amount_e4,
        currency,
        channel: raw.channel,
        rating,
        note,
        order_ref,
    })
}

/// An idempotency key: trimmed, 1..160 characters (stored with its operation's name).
pub fn idempotency_key(key: Option<&str>, field: &str) -> DomainResult<Option<String>> {
    key.map(|k| text(k, field, 160)).transpose()
}

/// What a refund naming an order is checked against: what the order's purchases paid
/// and what its earlier refunds took back, in ten-thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderPaid {
    pub paid_e4: i64,
    pub refunded_e4: i64,
}

/// A refund of an order never gives back more than the order paid, with its earlier
/// refunds. A refund naming an order that has no purchase yet is refused rather than
/// recorded: recorded first, it would never reverse that purchase's points. (A refund
/// naming no order is a goodwill refund, checked against nothing.) Messages name no
/// figure: a till may record refunds without reading the customer.
pub fn check_refund(amount_e4: i64, order: OrderPaid, prefix: &str) -> DomainResult<()> {
    if order.paid_e4 == 0 {
        return Err(DomainError::bad_input(
            format!("{prefix}.orderRef"),
            "no purchase of this customer has this orderRef: record the purchase before its refund",
        ));
    }
    ensure(
        order.refunded_e4.saturating_add(amount_e4) <= order.paid_e4,
        &format!("{prefix}.amount"),
        || "the refunds of this order would exceed what it paid".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const CNY: Bounds<'static> = Bounds {
        base_currency: "CNY",
        max_amount_e4: 1_000_000_000_000,
    };

    fn raw(kind: InteractionKind) -> RawInteraction {
        RawInteraction {
            kind,
            occurred_at: None,
            amount: None,
            currency: None,
            channel: None,
            rating: None,
            note: None,
            order_ref: None,
        }
    }

    fn check(raw: RawInteraction) -> Result<InteractionDraft, String> {
        validate(raw, "input", CNY, Utc::now()).map_err(|e| e.to_string())
    }

    fn amount(text: &str) -> Option<Decimal> {
        Some(Decimal::from_str(text).unwrap())
    }

    #[test]
    fn refunds_never_give_back_more_than_was_paid() {
        let order = |paid_e4, refunded_e4| OrderPaid {
            paid_e4,
            refunded_e4,
        };
        assert!(check_refund(100, order(200, 100), "input").is_ok());
        let over = check_refund(101, order(200, 100), "inputs[2]")
            .unwrap_err()
            .to_string();
        assert!(
            over.starts_with("inputs[2].amount") && !over.contains("200"),
            "{over}"
        );
        let early = check_refund(1, order(0, 0), "input")
            .unwrap_err()
            .to_string();
        assert!(early.starts_with("input.orderRef"), "{early}");
    }

    #[test]
    fn amounts_are_required_positive_and_only_where_they_belong() {
        use InteractionKind::*;
        for kind in [Purchase, Refund, Shipment, Payment] {
            assert!(check(raw(kind)).unwrap_err().starts_with("input.amount"));
            for bad in [
                "0",
                "-1",
                "0.00001",
                "100000000.0001",
                "600000000000000",
                "922337203685477.5807",
                "79228162514264337593543950335",
            ] {
                let err = check(RawInteraction {
                    amount: amount(bad),
                    ..raw(kind)
                });
                assert!(err.unwrap_err().starts_with("input.amount"), "{bad}");
            }
            let ok = check(RawInteraction {
                amount: amount("129.90"),
                ..raw(kind)
            });
            assert_eq!(ok.unwrap().amount_e4, Some(1_299_000));
            let largest = check(RawInteraction {
                amount: amount("100000000"),
                ..raw(kind)
            });
            assert_eq!(largest.unwrap().amount_e4, Some(1_000_000_000_000));
        }
        let visit_with_amount = check(RawInteraction {
            amount: amount("1"),
            ..raw(Visit)
        });
        assert!(visit_with_amount.unwrap_err().starts_with("input.amount"));
    }

    #[test]
    fn currency_must_be_the_base_currency() {
        let purchase = |currency: &str| RawInteraction {
            amount: amount("10"),
            currency: Some(currency.into()),
            ..raw(InteractionKind::Purchase)
        };
        assert!(check(purchase("CNY")).is_ok());
        assert!(
            check(purchase("USD"))
                .unwrap_err()
                .starts_with("input.currency")
        );
    }

    #[test]
    fn ratings_follow_the_kind() {
        use InteractionKind::*;
        let rated = |kind, rating| RawInteraction {
            rating: Some(rating),
            ..raw(kind)
        };
        assert!(check(raw(Survey)).unwrap_err().starts_with("input.rating"));
        assert!(check(rated(Survey, 0)).is_ok() && check(rated(Survey, 10)).is_ok());
        assert!(check(rated(Survey, 11)).is_err() && check(rated(Survey, -1)).is_err());
        assert!(check(rated(Feedback, 1)).is_ok() && check(rated(Feedback, 5)).is_ok());
        assert!(check(rated(Feedback, 0)).is_err() && check(rated(Feedback, 6)).is_err());
        assert!(check(raw(Feedback)).is_ok());
        assert!(
            check(rated(Visit, 3))
                .unwrap_err()
                .starts_with("input.rating")
        );
    }

    #[test]
    fn occurred_at_may_be_past_but_at_most_five_minutes_ahead() {
        let now = Utc::now();
        let at = |offset: Duration| RawInteraction {
            occurred_at: Some(now + offset),
            ..raw(InteractionKind::Visit)
        };
        let validate_at = |r| validate(r, "inputs[2]", CNY, now).map_err(|e| e.to_string());
        assert!(validate_at(at(Duration::days(-400))).is_ok());
        assert!(validate_at(at(Duration::minutes(5))).is_ok());
        let err = validate_at(at(Duration::minutes(5) + Duration::seconds(1))).unwrap_err();
        assert!(err.starts_with("inputs[2].occurredAt"), "{err}");
    }
}
