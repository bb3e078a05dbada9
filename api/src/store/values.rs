//! `VALUES` lists for hand-written set-based statements (`UPDATE … FROM (VALUES …)`,
//! `WITH v AS (VALUES …)`): one statement carries a whole batch's rows, whatever their
//! number, instead of a round trip per row.

use sea_orm::{DbBackend, Value};

/// The rows of a `VALUES` list, placeholders numbered from `first`, and their values in
/// order. Postgres cannot infer a parameter's type inside `VALUES`, so the first row
/// casts each cell to its column's type (`types`); the others follow it. SQLite takes
/// the values as they come.
pub fn rows(
    backend: DbBackend,
    types: &[&str],
    rows: impl IntoIterator<Item = Vec<Value>>,
    first: usize,
) -> (String, Vec<Value>) {
    let mut text = Vec::new();
    let mut values = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        debug_assert_eq!(row.len(), types.len(), "a row has one value per column");
        let cells: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(j, pg_type)| {
                let n = first + values.len() + j;
                match (backend, i) {
                    (DbBackend::Postgres, 0) => format!("CAST(${n} AS {pg_type})"),
                    _ => format!("${n}"),
                }
            })
            .collect();
        text.push(format!("({})", cells.join(", ")));
        values.extend(row);
    }
    (text.join(", "), values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_casts_the_first_row_and_numbers_on() {
        let (text, values) = rows(
            DbBackend::Postgres,
            &["uuid", "bigint"],
            [
                vec![1i64.into(), 2i64.into()],
                vec![3i64.into(), 4i64.into()],
            ],
            2,
        );
        assert_eq!(text, "(CAST($2 AS uuid), CAST($3 AS bigint)), ($4, $5)");
        assert_eq!(values.len(), 4);
        let (text, _) = rows(DbBackend::Sqlite, &["uuid"], [vec![1i64.into()]], 1);
        assert_eq!(text, "($1)");
    }
}
