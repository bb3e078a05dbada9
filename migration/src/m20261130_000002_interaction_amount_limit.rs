//! The largest amount one interaction may carry, a program setting.
//!
//! Amounts were bounded only by what fits in the `*_e4` columns: a purchase of
//! 600,000,000,000,000 earned 6×10¹⁴ points, and every evaluation run after it failed
//! on an overflowing window sum. The default, 100,000,000 in the base currency, is above
//! any retail or B2B order and far below what sums over a customer's history can hold.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::{add_columns, drop_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum ProgramSettings {
    Table,
    MaxInteractionAmountE4,
}

/// 100,000,000.0000 in ten-thousandths.
const DEFAULT_E4: i64 = 1_000_000_000_000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let limit = big_integer(ProgramSettings::MaxInteractionAmountE4)
            .default(DEFAULT_E4)
            .to_owned();
        add_columns(manager, ProgramSettings::Table, [limit]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = ProgramSettings::MaxInteractionAmountE4;
        drop_columns(manager, ProgramSettings::Table, [column]).await
    }
}
