//! A batch of rows as a relation for hand-written set-based statements
//! (`WITH v (columns) AS (…) UPDATE … FROM v`): one statement carries a whole batch's
//! rows, whatever their number, instead of a round trip per row.
//!
//! On Postgres the batch travels as one JSON parameter, unpacked by `json_to_recordset`
//! with each column's type: a statement of 1,000 rows by 24 columns binds 1 value
//! rather than 24,000, and its text (so its plan) is the same whatever the batch size.
//! Typed arrays (`unnest`) would do as well but sea-query cannot bind arrays that hold
//! NULLs, and most metrics columns are nullable. SQLite takes a `VALUES` list.

use anyhow::anyhow;
use sea_orm::{DbBackend, Value};

use crate::domain::{DomainError, DomainResult};

/// The text of a relation holding `rows` (to be named with a column list by the caller,
/// as in `WITH v (id, delta) AS ({text})`), with placeholders numbered from `first`,
/// and the values to bind. `types` are the columns' Postgres types, in order.
pub fn relation(
    backend: DbBackend,
    types: &[&str],
    rows: impl IntoIterator<Item = Vec<Value>>,
    first: usize,
) -> DomainResult<(String, Vec<Value>)> {
    match backend {
        DbBackend::Postgres => {
            let keys: Vec<String> = (0..types.len()).map(|j| format!("c{j}")).collect();
            let mut records = Vec::new();
            for row in rows {
                debug_assert_eq!(row.len(), types.len(), "a row has one value per column");
                let mut record = serde_json::Map::with_capacity(types.len());
                for (key, value) in keys.iter().zip(row) {
                    record.insert(key.clone(), json(value)?);
                }
                records.push(serde_json::Value::Object(record));
            }
            let columns: Vec<String> = keys
                .iter()
                .zip(types)
                .map(|(key, pg_type)| format!("{key} {pg_type}"))
                .collect();
            let text = format!(
                "SELECT * FROM json_to_recordset(CAST(${first} AS json)) AS r({})",
                columns.join(", ")
            );
            let batch = serde_json::Value::Array(records).to_string();
            Ok((text, vec![batch.into()]))
        }
        _ => {
            let mut text = Vec::new();
            let mut values = Vec::new();
            for row in rows {
                debug_assert_eq!(row.len(), types.len(), "a row has one value per column");
                let cells: Vec<String> = (0..row.len())
                    .map(|j| format!("${}", first + values.len() + j))
                    .collect();
                text.push(format!("({})", cells.join(", ")));
                values.extend(row);
            }
            Ok((format!("VALUES {}", text.join(", ")), values))
        }
    }
}

/// A value as `json_to_recordset` reads it back into its column's type. Times keep the
/// microseconds Postgres stores (truncated, as binding a timestamp does).
fn json(value: Value) -> DomainResult<serde_json::Value> {
    use serde_json::Value as Json;
    Ok(match value {
        Value::Bool(v) => v.map_or(Json::Null, Json::from),
        Value::TinyInt(v) => v.map_or(Json::Null, Json::from),
        Value::SmallInt(v) => v.map_or(Json::Null, Json::from),
        Value::Int(v) => v.map_or(Json::Null, Json::from),
        Value::BigInt(v) => v.map_or(Json::Null, Json::from),
        Value::TinyUnsigned(v) => v.map_or(Json::Null, Json::from),
        Value::SmallUnsigned(v) => v.map_or(Json::Null, Json::from),
        Value::Unsigned(v) => v.map_or(Json::Null, Json::from),
        Value::BigUnsigned(v) => v.map_or(Json::Null, Json::from),
        Value::Float(v) => return json(Value::Double(v.map(f64::from))),
        Value::Double(v) => match v {
            None => Json::Null,
            Some(v) => Json::from(
                serde_json::Number::from_f64(v)
                    .ok_or_else(|| DomainError::Internal(anyhow!("{v} has no JSON form")))?,
            ),
        },
        Value::String(v) => v.map_or(Json::Null, Json::String),
        Value::Uuid(v) => v.map_or(Json::Null, |id| Json::String(id.to_string())),
        Value::ChronoDateTimeUtc(v) => v.map_or(Json::Null, |at| {
            Json::String(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        }),
        other => {
            return Err(DomainError::Internal(anyhow!(
                "no JSON form for a batch value {other:?}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn postgres_gets_one_json_parameter_and_sqlite_a_values_list() {
        let at = chrono::Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .unwrap();
        let rows = || {
            [
                vec![7i64.into(), Some(at).into(), Option::<i32>::None.into()],
                vec![
                    8i64.into(),
                    Option::<chrono::DateTime<chrono::Utc>>::None.into(),
                    3.into(),
                ],
            ]
        };
        let types = ["bigint", "timestamptz", "integer"];
        let (text, values) = relation(DbBackend::Postgres, &types, rows(), 2).unwrap();
        assert_eq!(
            text,
            "SELECT * FROM json_to_recordset(CAST($2 AS json)) AS r(c0 bigint, c1 timestamptz, c2 integer)"
        );
        assert_eq!(
            values,
            vec![Value::from(
                r#"[{"c0":7,"c1":"2023-11-14T22:13:20.123456Z","c2":null},{"c0":8,"c1":null,"c2":3}]"#
            )]
        );
        let (text, values) = relation(DbBackend::Sqlite, &types, rows(), 1).unwrap();
        assert_eq!(text, "VALUES ($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values.len(), 6);
    }

    #[test]
    fn values_without_a_json_form_are_refused() {
        let refused = relation(DbBackend::Postgres, &["real"], [vec![f64::NAN.into()]], 1);
        assert!(refused.is_err());
    }
}
