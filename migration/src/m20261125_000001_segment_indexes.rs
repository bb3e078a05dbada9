//! Indexes for the profile fields segment rules target most (region and industry), so
//! that a rule such as "VIPs in Shanghai" counts from indexes instead of scanning every
//! customer. The metric columns rules use (tier, score, spend, points, last purchase,
//! lifecycle, RFM, ABC) were indexed for `customers(filter:, orderBy:)` already.

use sea_orm_migration::prelude::*;

use crate::index;
use crate::m20261123_000002_customers::Customer;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Customer::Region, Customer::Industry] {
            manager
                .create_index(index(Customer::Table, &[column, Customer::Id]))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["ix_customer_region_id", "ix_customer_industry_id"] {
            manager
                .drop_index(Index::drop().name(name).table(Customer::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}
