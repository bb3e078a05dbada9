//! Persisted documents by hash (`persisted_document`).

use sea_orm::{ConnectionTrait, Value};

use super::{now, raw};
use crate::domain::DomainResult;

/// A persisted document and whether an app's manifest registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    pub document: String,
    pub trusted: bool,
}

pub async fn find(db: &impl ConnectionTrait, hash: &str) -> DomainResult<Option<Persisted>> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(raw(
            backend,
            "SELECT document, trusted FROM persisted_document WHERE hash = $1",
            vec![hash.into()],
        ))
        .await?;
    Ok(match row {
        None => None,
        Some(row) => Some(Persisted {
            document: row.try_get("", "document")?,
            trusted: row.try_get("", "trusted")?,
        }),
    })
}

/// Keeps a document a client sent with its hash (automatic persisted queries), and at
/// most `keep` of them: the oldest go first. Documents from a manifest are not counted
/// and never pruned. Two statements.
pub async fn remember(
    db: &impl ConnectionTrait,
    hash: &str,
    document: &str,
    keep: usize,
) -> DomainResult<()> {
    let backend = db.get_database_backend();
    let inserted = db
        .execute_raw(raw(
            backend,
            "INSERT INTO persisted_document (hash, document, trusted, created_at)
             VALUES ($1, $2, FALSE, $3) ON CONFLICT (hash) DO NOTHING",
            vec![hash.into(), document.into(), now().into()],
        ))
        .await?;
    if inserted.rows_affected() > 0 {
        // "Every row after the first `keep`": Postgres says LIMIT ALL, SQLite LIMIT -1.
        let all = match backend {
            sea_orm::DbBackend::Sqlite => "-1",
            _ => "ALL",
        };
        db.execute_raw(raw(
            backend,
            &format!(
                "DELETE FROM persisted_document WHERE hash IN (
                    SELECT hash FROM persisted_document WHERE NOT trusted
                    ORDER BY created_at DESC, hash DESC LIMIT {all} OFFSET $1)"
            ),
            vec![Value::BigInt(Some(keep as i64))],
        ))
        .await?;
    }
    Ok(())
}

/// Registers a manifest's documents as trusted (a document already remembered becomes
/// trusted). Returns how many were new.
pub async fn trust(db: &impl ConnectionTrait, documents: &[(String, String)]) -> DomainResult<u64> {
    let backend = db.get_database_backend();
    let before = count_trusted(db).await?;
    for chunk in documents.chunks(500) {
        let mut values = Vec::with_capacity(chunk.len() * 3);
        let rows: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, (hash, document))| {
                values.push(hash.as_str().into());
                values.push(document.as_str().into());
                values.push(now().into());
                format!("(${}, ${}, TRUE, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3)
            })
            .collect();
        db.execute_raw(raw(
            backend,
            &format!(
                "INSERT INTO persisted_document (hash, document, trusted, created_at)
                 VALUES {} ON CONFLICT (hash) DO UPDATE SET trusted = TRUE",
                rows.join(", ")
            ),
            values,
        ))
        .await?;
    }
    Ok(count_trusted(db).await? - before)
}

async fn count_trusted(db: &impl ConnectionTrait) -> DomainResult<u64> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(raw(
            backend,
            "SELECT COUNT(*) AS n FROM persisted_document WHERE trusted",
            Vec::new(),
        ))
        .await?;
    Ok(row.map_or(Ok(0), |r| r.try_get::<i64>("", "n"))? as u64)
}
