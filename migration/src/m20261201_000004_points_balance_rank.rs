//! The points balance's sort index moves off the customer table, so that a write that
//! moves only a balance (an expiry, a redemption, an adjustment) can be a HOT update.
//!
//! The customer row carries 23 indexes. Postgres rewrites all of them for every update
//! that changes any indexed column; it changes none (a heap-only, "HOT" update) when no
//! indexed column changes and the page has room for the new version. `points_balance`
//! was indexed for `orderBy: POINTS_BALANCE`, so the night on which a million customers'
//! points expire wrote 23 index entries per customer (88 s of a 195 s run, profiled in
//! BENCHMARKS.md). Now:
//! - `customer.points_balance` stays the ledger's running balance, unindexed;
//! - `customer_points_rank` copies it, with the one index the order needs; triggers keep
//!   the copy in the same statement as the customer row, so it cannot drift, whichever
//!   code writes the balance;
//! - on Postgres the customer table keeps a tenth of each page free (`fillfactor`), so
//!   that a balance's new row version fits beside the old one. Pages written before this
//!   migration are full until the table is rewritten (`VACUUM FULL customer` in a
//!   maintenance window, or pg_repack); a fresh import lays them out this way.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum CustomerPointsRank {
    Table,
    CustomerId,
    PointsBalance,
}

/// Inserts and deletes are statement triggers that read the statement's rows at once (a
/// bulk import inserts a million customers); the balance's update is a row trigger,
/// because Postgres gives no transition tables to a trigger on one column.
const POSTGRES_TRIGGERS: &str = r#"
CREATE FUNCTION customer_points_rank_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customer_points_rank (customer_id, points_balance)
    SELECT id, points_balance FROM inserted;
    RETURN NULL;
END
$$;
CREATE FUNCTION customer_points_rank_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE customer_points_rank SET points_balance = NEW.points_balance
    WHERE customer_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE FUNCTION customer_points_rank_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customer_points_rank WHERE customer_id IN (SELECT id FROM deleted);
    RETURN NULL;
END
$$;
CREATE TRIGGER customer_points_rank_insert AFTER INSERT ON customer
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION customer_points_rank_insert();
CREATE TRIGGER customer_points_rank_update AFTER UPDATE OF points_balance ON customer
    FOR EACH ROW WHEN (OLD.points_balance IS DISTINCT FROM NEW.points_balance)
    EXECUTE FUNCTION customer_points_rank_update();
CREATE TRIGGER customer_points_rank_delete AFTER DELETE ON customer
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION customer_points_rank_delete();
ALTER TABLE customer SET (fillfactor = 90);
"#;

const SQLITE_TRIGGERS: [&str; 3] = [
    "CREATE TRIGGER customer_points_rank_insert AFTER INSERT ON customer BEGIN
         INSERT INTO customer_points_rank (customer_id, points_balance)
         VALUES (NEW.id, NEW.points_balance);
     END",
    "CREATE TRIGGER customer_points_rank_update AFTER UPDATE OF points_balance ON customer
         WHEN OLD.points_balance IS NOT NEW.points_balance BEGIN
         UPDATE customer_points_rank SET points_balance = NEW.points_balance
         WHERE customer_id = NEW.id;
     END",
    "CREATE TRIGGER customer_points_rank_delete AFTER DELETE ON customer BEGIN
         DELETE FROM customer_points_rank WHERE customer_id = OLD.id;
     END",
];

const OLD_INDEX: &str = "ix_customer_points_balance_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// SQLite too: a step that fails leaves no table behind for the next attempt.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            // Until the triggers exist, a replica still serving could insert a customer
            // or move a balance that the copy below would miss: writes wait.
            db.execute_unprepared("LOCK TABLE customer IN SHARE ROW EXCLUSIVE MODE")
                .await?;
        }
        // No foreign key: the triggers delete a customer's copy with it, and a key
        // check on every insert would lock each customer row a bulk import writes.
        manager
            .create_table(
                Table::create()
                    .table(CustomerPointsRank::Table)
                    .col(uuid(CustomerPointsRank::CustomerId).primary_key())
                    .col(big_integer(CustomerPointsRank::PointsBalance))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "INSERT INTO customer_points_rank (customer_id, points_balance)
             SELECT id, points_balance FROM customer",
        )
        .await?;
        manager
            .create_index(index(
                CustomerPointsRank::Table,
                &[
                    CustomerPointsRank::PointsBalance,
                    CustomerPointsRank::CustomerId,
                ],
            ))
            .await?;
        db.execute_unprepared(&format!("DROP INDEX {OLD_INDEX}"))
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(POSTGRES_TRIGGERS).await?;
        } else {
            for trigger in SQLITE_TRIGGERS {
                db.execute_unprepared(trigger).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "DROP TRIGGER customer_points_rank_insert ON customer;
                 DROP TRIGGER customer_points_rank_update ON customer;
                 DROP TRIGGER customer_points_rank_delete ON customer;
                 DROP FUNCTION customer_points_rank_insert();
                 DROP FUNCTION customer_points_rank_update();
                 DROP FUNCTION customer_points_rank_delete();
                 ALTER TABLE customer RESET (fillfactor);",
            )
            .await?;
        } else {
            for trigger in [
                "customer_points_rank_insert",
                "customer_points_rank_update",
                "customer_points_rank_delete",
            ] {
                db.execute_unprepared(&format!("DROP TRIGGER {trigger}"))
                    .await?;
            }
        }
        db.execute_unprepared(&format!(
            "CREATE INDEX {OLD_INDEX} ON customer (points_balance, id)"
        ))
        .await?;
        manager
            .drop_table(Table::drop().table(CustomerPointsRank::Table).to_owned())
            .await
    }
}
