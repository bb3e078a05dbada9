//! A revision number for the program's rules, kept by the database itself: triggers bump
//! it in every transaction that changes a tier, the scoring model, the settings or the
//! run whose churn model is current. Servers cache a snapshot of the program per process
//! and compare revisions instead of reading four tables per request; because the
//! triggers sit on the tables, no writer (another replica, the CLI, a hand-written SQL
//! fix) can change the rules without the number moving. On Postgres the bump also wakes
//! every replica's event relay (`NOTIFY tierwise_program`), which reads the new revision.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables the program is read from, and the changes to each that change it.
/// `evaluation_run`: a run's status becoming SUCCEEDED can make its churn model current.
const WATCHED: [(&str, &str); 4] = [
    ("tier", "INSERT OR UPDATE OR DELETE"),
    ("program_settings", "INSERT OR UPDATE OR DELETE"),
    ("scoring_model", "INSERT OR UPDATE OR DELETE"),
    ("evaluation_run", "UPDATE OF status, churn_model"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE program_revision (id integer PRIMARY KEY, revision bigint NOT NULL)",
        )
        .await?;
        db.execute_unprepared("INSERT INTO program_revision (id, revision) VALUES (1, 1)")
            .await?;
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION bump_program_revision() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                       UPDATE program_revision SET revision = revision + 1 WHERE id = 1;
                       PERFORM pg_notify('tierwise_program', '');
                       RETURN NULL;
                     END $$",
                )
                .await?;
                for (table, events) in WATCHED {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_bumps_program_revision AFTER {events} ON {table} \
                         FOR EACH STATEMENT EXECUTE FUNCTION bump_program_revision()"
                    ))
                    .await?;
                }
            }
            _ => {
                // SQLite has row triggers only, and one event per trigger.
                for (table, events) in WATCHED {
                    let events: Vec<String> = match events.strip_prefix("UPDATE OF ") {
                        Some(columns) => vec![format!("UPDATE OF {columns}")],
                        None => events.split(" OR ").map(str::to_owned).collect(),
                    };
                    for event in events {
                        let name = event
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_lowercase();
                        db.execute_unprepared(&format!(
                            "CREATE TRIGGER {table}_{name}_bumps_program_revision AFTER {event} ON {table} \
                             BEGIN UPDATE program_revision SET revision = revision + 1 WHERE id = 1; END"
                        ))
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for (table, _) in WATCHED {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER {table}_bumps_program_revision ON {table}"
                    ))
                    .await?;
                }
                db.execute_unprepared("DROP FUNCTION bump_program_revision()")
                    .await?;
            }
            _ => {
                for (table, events) in WATCHED {
                    for event in ["insert", "update", "delete"] {
                        if events.to_lowercase().contains(event) {
                            db.execute_unprepared(&format!(
                                "DROP TRIGGER IF EXISTS {table}_{event}_bumps_program_revision"
                            ))
                            .await?;
                        }
                    }
                }
            }
        }
        db.execute_unprepared("DROP TABLE program_revision").await?;
        Ok(())
    }
}
