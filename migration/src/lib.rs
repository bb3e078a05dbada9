//! Database migrations, one file per migration, named by date and purpose.
//!
//! Every migration runs unchanged on Postgres (production) and SQLite (the embedded
//! default). Money is stored as integer ten-thousandths of the base currency (`*_e4`
//! columns) and rates (multipliers, points per currency unit) the same way: exact on both
//! databases, and summable in SQL without the float rounding SQLite would apply to decimals.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_program;
mod m20261123_000002_customers;

pub use m20261123_000002_customers::SEARCH_EXPRESSION;
mod m20261123_000003_loyalty;
mod m20261123_000004_segments_and_runs;
mod m20261124_000001_tiering_engine;
mod m20261124_000002_event_outbox;
mod m20261125_000001_segment_indexes;
mod m20261125_000002_event_positions;
mod m20261126_000001_churn_inputs;
mod m20261127_000001_last_purchase_desc_index;
mod m20261130_000001_idempotency_fingerprints;
mod m20261130_000002_interaction_amount_limit;
mod m20261130_000003_run_skipped_customers;
mod m20261130_000004_points_entry_created_at;
mod m20261130_000005_search_prefixes;
mod m20261130_000006_program_revision;
mod m20261130_000007_job_leases;
mod m20261201_000001_outbox_events_without_customer;
mod m20261201_000002_webhooks;
mod m20261201_000003_outbox_payload_and_markers;
mod m20261201_000004_points_balance_rank;
mod m20261202_000001_campaigns;
mod m20261202_000002_campaign_revision;
mod m20261203_000001_points_lifecycle;
mod m20261204_000001_tier_change_breakdown;
mod m20261204_000002_persisted_documents;
pub use m20261130_000005_search_prefixes::{PREFIX_COLUMNS, prefix_expression};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_program::Migration),
            Box::new(m20261123_000002_customers::Migration),
            Box::new(m20261123_000003_loyalty::Migration),
            Box::new(m20261123_000004_segments_and_runs::Migration),
            Box::new(m20261124_000001_tiering_engine::Migration),
            Box::new(m20261124_000002_event_outbox::Migration),
            Box::new(m20261125_000001_segment_indexes::Migration),
            Box::new(m20261125_000002_event_positions::Migration),
            Box::new(m20261126_000001_churn_inputs::Migration),
            Box::new(m20261127_000001_last_purchase_desc_index::Migration),
            Box::new(m20261130_000001_idempotency_fingerprints::Migration),
            Box::new(m20261130_000002_interaction_amount_limit::Migration),
            Box::new(m20261130_000003_run_skipped_customers::Migration),
            Box::new(m20261130_000004_points_entry_created_at::Migration),
            Box::new(m20261130_000005_search_prefixes::Migration),
            Box::new(m20261130_000006_program_revision::Migration),
            Box::new(m20261130_000007_job_leases::Migration),
            Box::new(m20261201_000001_outbox_events_without_customer::Migration),
            Box::new(m20261201_000002_webhooks::Migration),
            Box::new(m20261201_000003_outbox_payload_and_markers::Migration),
            Box::new(m20261201_000004_points_balance_rank::Migration),
            Box::new(m20261202_000001_campaigns::Migration),
            Box::new(m20261202_000002_campaign_revision::Migration),
            Box::new(m20261203_000001_points_lifecycle::Migration),
            Box::new(m20261204_000001_tier_change_breakdown::Migration),
            Box::new(m20261204_000002_persisted_documents::Migration),
        ]
    }
}

/// A plain (non-unique) index on `columns` of `table`, named `ix_<table>_<columns…>`.
pub(crate) fn index<T, C>(table: T, columns: &[C]) -> IndexCreateStatement
where
    T: IntoIden + Clone + 'static,
    C: IntoIden + Clone + 'static,
{
    let table_name = table.clone().into_iden().to_string();
    let column_names: Vec<String> = columns
        .iter()
        .map(|c| c.clone().into_iden().to_string())
        .collect();
    let mut statement = Index::create();
    statement
        .name(format!("ix_{}_{}", table_name, column_names.join("_")))
        .table(table);
    for column in columns {
        statement.col(column.clone());
    }
    statement
}

/// Adds `columns` to `table`, one statement each (SQLite alters one column at a time).
pub(crate) async fn add_columns<T: IntoIden + Clone + 'static>(
    manager: &SchemaManager<'_>,
    table: T,
    columns: impl IntoIterator<Item = ColumnDef>,
) -> Result<(), DbErr> {
    for mut column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Drops `columns` from `table`, one statement each.
pub(crate) async fn drop_columns<T: IntoIden + Clone + 'static, C: IntoIden>(
    manager: &SchemaManager<'_>,
    table: T,
    columns: impl IntoIterator<Item = C>,
) -> Result<(), DbErr> {
    for column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}
