//! Bulk import from another system (`tierwise import`): customers, their history and
//! their points balances, from CSV files, all or nothing.
//!
//! Every row is validated by the same rules as the API, then staged and moved into place
//! by set-based SQL (`store::import`). Imported history is history: it earns no points
//! and changes no tier by itself; balances come over as `ADJUST` entries, and the next
//! evaluation run (or `tierwise import --evaluate`) computes metrics, stages and tiers.

use std::collections::HashSet;
use std::io::Read;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use entity::enums::{Channel, CustomerKind, InteractionKind};
use rust_decimal::Decimal;
use sea_orm::{Iterable, Value};
use uuid::Uuid;

use crate::domain::interaction::{self, RawInteraction};
use crate::domain::{self, DomainError, DomainResult, referral_code};
use crate::store::import::{self as staging, Row, Session, Staging, sql};
use crate::store::{self, Db};

/// Rows parsed and validated before they are sent to the database together.
const ROWS_PER_LOAD: usize = 20_000;

/// A CSV file to import: its name (for messages), its size (for progress) and its bytes.
pub struct Source {
    pub name: String,
    pub len: u64,
    pub reader: Box<dyn Read + Send>,
}

/// What to import; any of the three may be left out. Interactions and points refer to
/// customers by `customer_ref`, their external reference, in this import or already stored.
#[derive(Default)]
pub struct Files {
    pub customers: Option<Source>,
    pub interactions: Option<Source>,
    pub points: Option<Source>,
}

/// What an import added.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub customers: u64,
    pub referrals: u64,
    pub interactions: u64,
    pub points_entries: u64,
}

/// Reports how far an import got (the CLI draws a progress bar).
pub trait Progress {
    fn reading(&self, file: &str, bytes: u64);
    fn advanced(&self, bytes: u64);
    /// A set-based step over what was read, e.g. "checking references".
    fn step(&self, what: &str);
}

pub struct Quiet;

impl Progress for Quiet {
    fn reading(&self, _: &str, _: u64) {}
    fn advanced(&self, _: u64) {}
    fn step(&self, _: &str) {}
}

#[tracing::instrument(name = "import::import", skip_all)]
pub async fn import(
    db: &Db,
    files: Files,
    base_currency: &str,
    progress: &dyn Progress,
) -> DomainResult<Summary> {
    let now = store::now();
    let mut session = Session::begin(db, now).await?;
    // Logged too: the log's timestamps say which step a large import spends its time in.
    let step = |what: &str| {
        tracing::info!("import: {what}");
        progress.step(what);
    };
    // Every staging table exists, empty when its file was not given, so that each
    // statement below reads the same tables whatever the import holds.
    for staging in staging::ALL {
        session.create(staging).await?;
    }
    let name = |source: &Option<Source>| source.as_ref().map(|s| s.name.clone());
    let (customers, interactions, points) = (
        name(&files.customers),
        name(&files.interactions),
        name(&files.points),
    );
    if let Some(source) = files.customers {
        stage(&mut session, source, progress, &mut CustomerRows::new(now)).await?;
    }
    if let Some(source) = files.interactions {
        let settings = store::program::settings(db.conn()).await?;
        let mut rows = InteractionRows {
            now,
            base_currency: base_currency.to_owned(),
            max_amount_e4: settings.max_interaction_amount_e4,
        };
        stage(&mut session, source, progress, &mut rows).await?;
    }
    if let Some(source) = files.points {
        stage(&mut session, source, progress, &mut PointsRows { now }).await?;
    }

    step("checking references");
    if let Some(file) = &customers {
        let no_tier = session
            .problems("SELECT 0, 'none' WHERE NOT EXISTS (SELECT 1 FROM tier)")
            .await?;
        if !no_tier.is_empty() {
            return Err(DomainError::Conflict(
                "the program has no tiers; run `tierwise migrate` or create one first".into(),
            ));
        }
        let exists = "a customer with this external_ref already exists";
        refuse(&mut session, sql::CUSTOMER_EXISTS, file, exists).await?;
        let unknown = "referred_by names no customer in this file or the database";
        refuse(&mut session, sql::UNKNOWN_REFERRER, file, unknown).await?;
        redraw_taken_referral_codes(&mut session).await?;
    }
    let unknown = "customer_ref names no customer";
    for (file, staged) in [
        (&interactions, &staging::INTERACTIONS),
        (&points, &staging::POINTS),
    ] {
        if let Some(file) = file {
            let check = sql::unknown_customers_in(staged.table);
            refuse(&mut session, &check, file, unknown).await?;
        }
    }
    if let Some(file) = &points {
        let negative = "the balance would fall below 0 here (balance after the entry shown)";
        refuse(&mut session, &sql::negative_balances(), file, negative).await?;
    }

    step("adding customers");
    let customers = session.execute(&sql::insert_customers()).await?;
    session.execute(sql::INSERT_TAGS).await?;
    session.execute(sql::INSERT_CREATED_TIER_CHANGES).await?;
    let referrals = session.execute(sql::INSERT_REFERRALS).await?;
    step("adding interactions");
    let interactions = session.execute(sql::INSERT_INTERACTIONS).await?;
    session.execute(sql::SETTLE_IMPORTED_REFERRALS).await?;
    step("adding points");
    let points_entries = session.execute(&sql::insert_points_entries()).await?;
    session.execute(&sql::update_stored_balances()).await?;
    step("committing");
    session.finish().await?;
    Ok(Summary {
        customers,
        referrals,
        interactions,
        points_entries,
    })
}

/// Fails the import when `check` finds rows, naming their lines.
async fn refuse(session: &mut Session, check: &str, file: &str, problem: &str) -> DomainResult<()> {
    let found = session.problems(check).await?;
    if found.is_empty() {
        return Ok(());
    }
    let lines = found
        .iter()
        .map(|(line, value)| format!("line {line} ({value:?})"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(DomainError::bad_input(file, format!("{problem}: {lines}")))
}

/// Draws new referral codes for the (rare) staged customers whose code a stored customer
/// already has. Codes are random over 8.5e11 values, so among millions a few collide.
async fn redraw_taken_referral_codes(session: &mut Session) -> DomainResult<()> {
    for _ in 0..5 {
        let taken = session.problems(sql::REFERRAL_CODE_TAKEN).await?;
        if taken.is_empty() {
            return Ok(());
        }
        for (line, _) in taken {
            let code = referral_code::generate();
            session
                .execute(&format!(
                    "UPDATE import_customer SET referral_code = '{code}' WHERE line = {line}"
                ))
                .await?;
        }
    }
    Err(DomainError::Internal(anyhow::anyhow!(
        "could not draw unused referral codes"
    )))
}

/// Turns the records of one kind of file into staged rows.
trait RowReader {
    const COLUMNS: &'static [&'static str];
    const REQUIRED: &'static [&'static str];
    const STAGING: &'static Staging;
    /// The record's row (and any rows for `extra()`).
    fn row(&mut self, record: &Record<'_>) -> DomainResult<Row>;
    /// A second staging table this reader fills (customer tags), and its pending rows.
    fn extra(&mut self) -> Option<(&'static Staging, Vec<Row>)> {
        None
    }
}

/// Reads `source` in chunks, validating each record and loading the rows.
async fn stage<R: RowReader>(
    session: &mut Session,
    source: Source,
    progress: &dyn Progress,
    rows: &mut R,
) -> DomainResult<()> {
    let Source { name, len, reader } = source;
    progress.reading(&name, len);
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let columns = Columns::new::<R>(&name, &mut csv)?;
    let mut record = csv::StringRecord::new();
    let mut chunk = Vec::with_capacity(ROWS_PER_LOAD);
    let mut read_bytes = 0;
    loop {
        let more = csv
            .read_record(&mut record)
            .map_err(|error| DomainError::bad_input(&name, format!("not valid CSV: {error}")))?;
        if more {
            let line = record.position().map_or(0, |p| p.line());
            chunk.push(rows.row(&Record {
                file: &name,
                line,
                columns: &columns,
                record: &record,
            })?);
        }
        if chunk.len() == ROWS_PER_LOAD || (!more && !chunk.is_empty()) {
            session.load(R::STAGING, &chunk).await?;
            chunk.clear();
            if let Some((extra, extra_rows)) = rows.extra() {
                session.load(extra, &extra_rows).await?;
            }
            let position = csv.position().byte();
            progress.advanced(position - read_bytes);
            read_bytes = position;
        }
        if !more {
            session.analyze(R::STAGING).await?;
            if let Some((extra, _)) = rows.extra() {
                session.analyze(extra).await?;
            }
            return Ok(());
        }
    }
}

/// The header of a file: which column is where.
struct Columns {
    positions: Vec<Option<usize>>,
    names: &'static [&'static str],
}

impl Columns {
    fn new<R: RowReader>(
        file: &str,
        csv: &mut csv::Reader<Box<dyn Read + Send>>,
    ) -> DomainResult<Self> {
        let header = csv
            .headers()
            .map_err(|error| DomainError::bad_input(file, format!("no CSV header: {error}")))?
            .clone();
        let header: Vec<String> = header.iter().map(|h| h.to_ascii_lowercase()).collect();
        if let Some(unknown) = header.iter().find(|h| !R::COLUMNS.contains(&h.as_str())) {
            return Err(DomainError::bad_input(
                file,
                format!(
                    "unknown column {unknown:?}; the columns are {}",
                    R::COLUMNS.join(", ")
                ),
            ));
        }
        if let Some(missing) = R::REQUIRED.iter().find(|r| !header.iter().any(|h| h == *r)) {
            return Err(DomainError::bad_input(
                file,
                format!("the column {missing:?} is required"),
            ));
        }
        Ok(Self {
            positions: R::COLUMNS
                .iter()
                .map(|column| header.iter().position(|h| h == column))
                .collect(),
            names: R::COLUMNS,
        })
    }
}

/// One record, with what it takes to name a field in a message.
struct Record<'a> {
    file: &'a str,
    line: u64,
    columns: &'a Columns,
    record: &'a csv::StringRecord,
}

impl Record<'_> {
    /// Where a value comes from, for messages: `customers.csv line 12, email`.
    fn field(&self, column: &str) -> String {
        format!("{} line {}, {column}", self.file, self.line)
    }

    /// The column's value; an empty cell is no value.
    fn get(&self, column: &str) -> Option<&str> {
        let index = self.columns.names.iter().position(|c| *c == column)?;
        let position = self.columns.positions[index]?;
        self.record.get(position).filter(|value| !value.is_empty())
    }

    fn required(&self, column: &str) -> DomainResult<&str> {
        self.get(column)
            .ok_or_else(|| DomainError::bad_input(self.field(column), "is required"))
    }

    fn parse<T>(
        &self,
        column: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        expected: &str,
    ) -> DomainResult<Option<T>> {
        self.get(column)
            .map(|text| {
                parse(text).ok_or_else(|| {
                    DomainError::bad_input(self.field(column), format!("expected {expected}"))
                })
            })
            .transpose()
    }

    fn instant(&self, column: &str) -> DomainResult<Option<DateTime<Utc>>> {
        self.parse(column, instant, "a date (2025-03-01) or an RFC 3339 time")
    }

    fn enumeration<E: Iterable + Copy>(
        &self,
        column: &str,
        name: fn(E) -> &'static str,
    ) -> DomainResult<Option<E>> {
        let names = E::iter().map(name).collect::<Vec<_>>().join(", ");
        self.parse(
            column,
            |text| E::iter().find(|value| name(*value) == text.to_ascii_uppercase()),
            &format!("one of {names}"),
        )
    }

    fn line(&self) -> Value {
        Value::BigInt(Some(i64::try_from(self.line).unwrap_or(i64::MAX)))
    }
}

/// An RFC 3339 time, or a date read as midnight UTC (what spreadsheets export).
fn instant(text: &str) -> Option<DateTime<Utc>> {
    use chrono::SubsecRound;
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc).trunc_subsecs(6))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
                .map(|at| at.and_utc())
        })
}

/// A time from a file must not lie in the future: history has happened.
fn in_the_past(
    at: Option<DateTime<Utc>>,
    record: &Record<'_>,
    column: &str,
    now: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    match at {
        Some(at) if at > now + interaction::MAX_CLOCK_SKEW => Err(DomainError::bad_input(
            record.field(column),
            "must not be in the future",
        )),
        _ => Ok(at),
    }
}

fn text(value: Option<&str>) -> Value {
    Value::String(value.map(str::to_owned))
}

/// `customers.csv`: one customer per line, linked to its referrer by `referred_by`.
struct CustomerRows {
    now: DateTime<Utc>,
    external_refs: HashSet<String>,
    referral_codes: HashSet<String>,
    tags: Vec<Row>,
}

impl CustomerRows {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            now,
            external_refs: HashSet::new(),
            referral_codes: HashSet::new(),
            tags: Vec::new(),
        }
    }

    fn unused_code(&mut self) -> String {
        loop {
            let code = referral_code::generate();
            if self.referral_codes.insert(code.clone()) {
                return code;
            }
        }
    }
}

impl RowReader for CustomerRows {
    const COLUMNS: &'static [&'static str] = &[
        "external_ref",
        "name",
        "email",
        "phone",
        "kind",
        "industry",
        "region",
        "birthday",
        "tags",
        "attributes",
        "referred_by",
        "created_at",
    ];
    const REQUIRED: &'static [&'static str] = &["external_ref", "name"];
    const STAGING: &'static Staging = &staging::CUSTOMERS;

    fn row(&mut self, r: &Record<'_>) -> DomainResult<Row> {
        use domain::customer as rules;
        let external_ref = rules::external_ref(r.get("external_ref"), &r.field("external_ref"))?
            .ok_or_else(|| DomainError::bad_input(r.field("external_ref"), "is required"))?;
        if !self.external_refs.insert(external_ref.clone()) {
            return Err(DomainError::bad_input(
                r.field("external_ref"),
                format!("{external_ref:?} appears twice in the file"),
            ));
        }
        let referred_by = r.get("referred_by").map(str::to_owned);
        if referred_by.as_deref() == Some(external_ref.as_str()) {
            return Err(DomainError::bad_input(
                r.field("referred_by"),
                "a customer cannot refer itself",
            ));
        }
        let name = rules::name(r.required("name")?, &r.field("name"))?;
        let email = rules::email(r.get("email"), &r.field("email"))?;
        let phone = rules::phone(r.get("phone"), &r.field("phone"))?;
        let kind = r
            .enumeration("kind", CustomerKind::as_str)?
            .unwrap_or(CustomerKind::Individual);
        let industry = rules::optional_text(r.get("industry"), &r.field("industry"), 200)?;
        let region = rules::optional_text(r.get("region"), &r.field("region"), 200)?;
        let birthday = r.parse(
            "birthday",
            |text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
            "a date like 1990-04-01",
        )?;
        let birthday = rules::birthday(birthday, &r.field("birthday"), self.now.date_naive())?;
        let tags: Vec<String> = r
            .get("tags")
            .map(|tags| tags.split('|').map(str::to_owned).collect())
            .unwrap_or_default();
        let tags = rules::tags(&tags, &r.field("tags"))?;
        let attributes = r.parse(
            "attributes",
            |text| serde_json::from_str::<serde_json::Value>(text).ok(),
            "a JSON object",
        )?;
        let attributes = rules::attributes(
            attributes.unwrap_or_else(|| serde_json::json!({})),
            &r.field("attributes"),
        )?;
        let created_at =
            in_the_past(r.instant("created_at")?, r, "created_at", self.now)?.unwrap_or(self.now);

        let id = Uuid::now_v7();
        self.tags.extend(
            tags.into_iter()
                .map(|tag| vec![Value::Uuid(Some(id)), Value::String(Some(tag))]),
        );
        Ok(vec![
            r.line(),
            Value::Uuid(Some(id)),
            Value::String(Some(external_ref)),
            Value::String(Some(name)),
            Value::String(email),
            Value::String(phone),
            Value::String(Some(kind.as_str().to_owned())),
            Value::String(industry),
            Value::String(region),
            Value::ChronoDate(birthday),
            Value::Json(Some(Box::new(attributes))),
            Value::String(Some(self.unused_code())),
            Value::String(referred_by),
            Value::Uuid(Some(Uuid::now_v7())),
            Value::Uuid(Some(Uuid::now_v7())),
            Value::ChronoDateTimeUtc(Some(created_at)),
        ])
    }

    fn extra(&mut self) -> Option<(&'static Staging, Vec<Row>)> {
        Some((&staging::CUSTOMER_TAGS, std::mem::take(&mut self.tags)))
    }
}

/// `interactions.csv`: a customer's history, validated as `recordInteraction` would be.
struct InteractionRows {
    now: DateTime<Utc>,
    base_currency: String,
    max_amount_e4: i64,
}

impl RowReader for InteractionRows {
    const COLUMNS: &'static [&'static str] = &[
        "customer_ref",
        "kind",
        "occurred_at",
        "amount",
        "currency",
        "channel",
        "rating",
        "note",
        "order_ref",
    ];
    const REQUIRED: &'static [&'static str] = &["customer_ref", "kind", "occurred_at"];
    const STAGING: &'static Staging = &staging::INTERACTIONS;

    fn row(&mut self, r: &Record<'_>) -> DomainResult<Row> {
        let customer_ref = r.required("customer_ref")?;
        let kind = r
            .enumeration("kind", InteractionKind::as_str)?
            .ok_or_else(|| DomainError::bad_input(r.field("kind"), "is required"))?;
        let occurred_at = r
            .instant("occurred_at")?
            .ok_or_else(|| DomainError::bad_input(r.field("occurred_at"), "is required"))?;
        let raw = RawInteraction {
            kind,
            occurred_at: Some(occurred_at),
            amount: r.parse("amount", |t| Decimal::from_str(t).ok(), "a number")?,
            currency: r.get("currency").map(str::to_owned),
            channel: r.enumeration("channel", Channel::as_str)?,
            rating: r.parse("rating", |t| t.parse().ok(), "a whole number")?,
            note: r.get("note").map(str::to_owned),
            order_ref: r.get("order_ref").map(str::to_owned),
        };
        let prefix = format!("{} line {}", r.file, r.line);
        let draft = interaction::validate(
            raw,
            &prefix,
            interaction::Bounds {
                base_currency: &self.base_currency,
                max_amount_e4: self.max_amount_e4,
            },
            self.now,
        )?;
        Ok(vec![
            r.line(),
            Value::Uuid(Some(Uuid::now_v7())),
            text(Some(customer_ref)),
            Value::String(Some(draft.kind.as_str().to_owned())),
            Value::ChronoDateTimeUtc(Some(draft.occurred_at)),
            Value::BigInt(draft.amount_e4),
            Value::String(draft.currency),
            Value::String(draft.channel.map(|c| c.as_str().to_owned())),
            Value::Int(draft.rating),
            Value::String(draft.note),
            Value::String(draft.order_ref),
        ])
    }
}

/// `points.csv`: balances (or their history) from the old system, as `ADJUST` entries.
struct PointsRows {
    now: DateTime<Utc>,
}

/// The reason an entry gets when its line gives none.
const DEFAULT_POINTS_REASON: &str = "imported balance";

impl RowReader for PointsRows {
    const COLUMNS: &'static [&'static str] = &[
        "customer_ref",
        "points",
        "reason",
        "expires_at",
        "occurred_at",
    ];
    const REQUIRED: &'static [&'static str] = &["customer_ref", "points"];
    const STAGING: &'static Staging = &staging::POINTS;

    fn row(&mut self, r: &Record<'_>) -> DomainResult<Row> {
        let customer_ref = r.required("customer_ref")?;
        let points = r
            .parse("points", |t| t.parse::<i64>().ok(), "a whole number")?
            .ok_or_else(|| DomainError::bad_input(r.field("points"), "is required"))?;
        let reason = r.get("reason").unwrap_or(DEFAULT_POINTS_REASON);
        let (delta, reason) =
            domain::points::adjustment(points, reason).map_err(|error| match error {
                DomainError::BadInput { field, message } => {
                    let column = if field.ends_with("delta") {
                        "points"
                    } else {
                        "reason"
                    };
                    DomainError::bad_input(r.field(column), message)
                }
                other => other,
            })?;
        let expires_at = r.instant("expires_at")?;
        let occurred_at =
            in_the_past(r.instant("occurred_at")?, r, "occurred_at", self.now)?.unwrap_or(self.now);
        Ok(vec![
            r.line(),
            Value::Uuid(Some(Uuid::now_v7())),
            text(Some(customer_ref)),
            Value::BigInt(Some(delta)),
            Value::String(Some(reason)),
            Value::ChronoDateTimeUtc(expires_at),
            Value::ChronoDateTimeUtc(Some(occurred_at)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_or_dates_at_midnight_utc() {
        assert_eq!(
            instant("2025-03-01T10:00:00+08:00").unwrap().to_rfc3339(),
            "2025-03-01T02:00:00+00:00"
        );
        assert_eq!(
            instant("2025-03-01").unwrap().to_rfc3339(),
            "2025-03-01T00:00:00+00:00"
        );
        assert!(instant("01/03/2025").is_none());
    }

    #[test]
    fn copy_lines_quote_text_and_leave_nulls_empty() {
        // Through the Postgres encoder: an empty string stays a string, a NULL stays NULL.
        let row: Row = vec![
            Value::BigInt(Some(3)),
            Value::String(Some("say \"hi\", then go".into())),
            Value::String(Some(String::new())),
            Value::String(None),
        ];
        assert_eq!(
            staging::copy_line(&row),
            "3,\"say \"\"hi\"\", then go\",\"\",\n"
        );
    }
}
