//! The program's configuration: settings, scoring model and tiers.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProgramSettings::Table)
                    .col(integer(ProgramSettings::Id).primary_key())
                    .col(string_len(ProgramSettings::BaseCurrency, 3))
                    .col(big_integer(ProgramSettings::PointsPerCurrencyUnitE4))
                    .col(integer(ProgramSettings::PointsExpiryDays))
                    .col(big_integer(ProgramSettings::BirthdayBonus))
                    .col(big_integer(ProgramSettings::ReferrerBonus))
                    .col(big_integer(ProgramSettings::RefereeBonus))
                    .col(integer(ProgramSettings::MaxRewardedReferralsPerYear))
                    .col(integer(ProgramSettings::AtRiskDays))
                    .col(integer(ProgramSettings::ChurnDays))
                    .col(timestamp_with_time_zone(ProgramSettings::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ScoringModel::Table)
                    .col(integer(ScoringModel::Id).primary_key())
                    .col(integer(ScoringModel::WindowDays))
                    .col(integer(ScoringModel::DowngradeGraceDays))
                    .col(double(ScoringModel::WeightRecency))
                    .col(double(ScoringModel::WeightFrequency))
                    .col(double(ScoringModel::WeightMonetary))
                    .col(double(ScoringModel::WeightEngagement))
                    .col(double(ScoringModel::WeightNps))
                    .col(json(ScoringModel::Bands))
                    .col(timestamp_with_time_zone(ScoringModel::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tier::Table)
                    .col(uuid(Tier::Id).primary_key())
                    .col(string_len_uniq(Tier::Key, 64))
                    .col(string_len(Tier::Name, 200))
                    .col(integer_uniq(Tier::Rank))
                    .col(double(Tier::MinScore))
                    .col(big_integer(Tier::PointsMultiplierE4))
                    .col(json(Tier::Benefits))
                    .col(timestamp_with_time_zone(Tier::CreatedAt))
                    .col(timestamp_with_time_zone(Tier::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tier::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ScoringModel::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ProgramSettings::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ProgramSettings {
    Table,
    Id,
    BaseCurrency,
    PointsPerCurrencyUnitE4,
    PointsExpiryDays,
    BirthdayBonus,
    ReferrerBonus,
    RefereeBonus,
    MaxRewardedReferralsPerYear,
    AtRiskDays,
    ChurnDays,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScoringModel {
    Table,
    Id,
    WindowDays,
    DowngradeGraceDays,
    WeightRecency,
    WeightFrequency,
    WeightMonetary,
    WeightEngagement,
    WeightNps,
    Bands,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Tier {
    Table,
    Id,
    Key,
    Name,
    Rank,
    MinScore,
    PointsMultiplierE4,
    Benefits,
    CreatedAt,
    UpdatedAt,
}
