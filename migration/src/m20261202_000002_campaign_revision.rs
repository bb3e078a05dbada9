//! Running campaigns are part of the program's snapshot (`store::program_snapshot`): a
//! recording reads them from there instead of querying them every time, so their table
//! bumps the program's revision like the other program tables do, on every change to
//! what a campaign is (its status and definition) but not on what it has spent, which
//! each firing writes and which the writes read under the campaign's row lock anyway.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns whose change changes the program.
const DEFINITION: &str = "status, name, trigger_kind, trigger, condition, actions, starts_at, \
    ends_at, limit_per_customer, budget_points";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                // The function is the one m20261130_000006 created.
                for (name, events) in [
                    (
                        "campaign_bumps_program_revision",
                        "INSERT OR DELETE".to_owned(),
                    ),
                    (
                        "campaign_change_bumps_program_revision",
                        format!("UPDATE OF {DEFINITION}"),
                    ),
                ] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {name} AFTER {events} ON campaign \
                         FOR EACH STATEMENT EXECUTE FUNCTION bump_program_revision()"
                    ))
                    .await?;
                }
            }
            _ => {
                for (name, event) in [
                    ("insert", "INSERT".to_owned()),
                    ("delete", "DELETE".to_owned()),
                    ("update", format!("UPDATE OF {DEFINITION}")),
                ] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER campaign_{name}_bumps_program_revision AFTER {event} ON campaign \
                         BEGIN UPDATE program_revision SET revision = revision + 1 WHERE id = 1; END"
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for name in [
                    "campaign_bumps_program_revision",
                    "campaign_change_bumps_program_revision",
                ] {
                    db.execute_unprepared(&format!("DROP TRIGGER {name} ON campaign"))
                        .await?;
                }
            }
            _ => {
                for name in ["insert", "delete", "update"] {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS campaign_{name}_bumps_program_revision"
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }
}
