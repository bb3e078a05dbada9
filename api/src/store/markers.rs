//! Events that must happen once — a customer's birthday a year, a reminder a lot of
//! points — whichever replica looks first: each is claimed by its key
//! (`event_marker`), and only the claimer announces it.

use sea_orm::ConnectionTrait;

use super::{now, raw};
use crate::domain::DomainResult;

/// Claims `keys`; returns the ones nobody had claimed before.
pub async fn claim(db: &impl ConnectionTrait, keys: &[String]) -> DomainResult<Vec<String>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let mut claimed = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, $1)", i + 2))
            .collect();
        let sql = format!(
            "INSERT INTO event_marker (key, created_at) VALUES {} \
             ON CONFLICT (key) DO NOTHING RETURNING key",
            rows.join(", ")
        );
        let mut values: Vec<sea_orm::Value> = vec![now().into()];
        values.extend(chunk.iter().map(|k| k.clone().into()));
        for row in db.query_all_raw(raw(backend, &sql, values)).await? {
            claimed.push(row.try_get::<String>("", "key")?);
        }
    }
    Ok(claimed)
}
