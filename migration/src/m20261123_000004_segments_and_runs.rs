//! Segments and their static members, evaluation runs, and idempotency keys.

use sea_orm_migration::{prelude::*, schema::*};

use crate::index;
use crate::m20261123_000002_customers::Customer;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Segment::Table)
                    .col(uuid(Segment::Id).primary_key())
                    .col(string_len_uniq(Segment::Name, 200))
                    .col(text_null(Segment::Description))
                    .col(string_len(Segment::Kind, 16))
                    .col(json_binary_null(Segment::Rule))
                    .col(timestamp_with_time_zone(Segment::CreatedAt))
                    .col(timestamp_with_time_zone(Segment::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(Segment::Table, &[Segment::CreatedAt, Segment::Id]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SegmentMember::Table)
                    .col(uuid(SegmentMember::SegmentId))
                    .col(uuid(SegmentMember::CustomerId))
                    .col(timestamp_with_time_zone(SegmentMember::AddedAt))
                    .primary_key(
                        Index::create()
                            .col(SegmentMember::SegmentId)
                            .col(SegmentMember::CustomerId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SegmentMember::Table, SegmentMember::SegmentId)
                            .to(Segment::Table, Segment::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SegmentMember::Table, SegmentMember::CustomerId)
                            .to(Customer::Table, Customer::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(SegmentMember::Table, &[SegmentMember::CustomerId]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EvaluationRun::Table)
                    .col(uuid(EvaluationRun::Id).primary_key())
                    .col(string_len(EvaluationRun::Status, 16))
                    .col(timestamp_with_time_zone(EvaluationRun::AsOf))
                    .col(json_binary_null(EvaluationRun::CustomerIds))
                    .col(timestamp_with_time_zone(EvaluationRun::StartedAt))
                    .col(timestamp_with_time_zone_null(EvaluationRun::FinishedAt))
                    .col(integer(EvaluationRun::CustomersEvaluated).default(0))
                    .col(integer(EvaluationRun::Upgrades).default(0))
                    .col(integer(EvaluationRun::Downgrades).default(0))
                    .col(big_integer(EvaluationRun::PointsExpired).default(0))
                    .col(json_binary_null(EvaluationRun::ChurnModel))
                    .col(text_null(EvaluationRun::Error))
                    .col(string_len(EvaluationRun::RequestedBy, 200))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(EvaluationRun::Table, &[EvaluationRun::StartedAt]))
            .await?;
        // At most one RUNNING run at a time, decided by the database so that two replicas
        // starting a run at once cannot both succeed. Partial indexes exist on both backends.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_evaluation_run_running ON evaluation_run (status) WHERE status = 'RUNNING'",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKey::Table)
                    .col(string_len(IdempotencyKey::Caller, 200))
                    .col(string_len(IdempotencyKey::Key, 200))
                    .col(string_len(IdempotencyKey::Operation, 64))
                    .col(uuid_null(IdempotencyKey::ResultId))
                    .col(timestamp_with_time_zone(IdempotencyKey::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKey::Caller)
                            .col(IdempotencyKey::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(IdempotencyKey::Table, &[IdempotencyKey::CreatedAt]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKey::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(EvaluationRun::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(SegmentMember::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Segment::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone)]
enum Segment {
    Table,
    Id,
    Name,
    Description,
    Kind,
    Rule,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum SegmentMember {
    Table,
    SegmentId,
    CustomerId,
    AddedAt,
}

#[derive(DeriveIden, Clone)]
pub(crate) enum EvaluationRun {
    Table,
    Id,
    Status,
    AsOf,
    CustomerIds,
    StartedAt,
    FinishedAt,
    CustomersEvaluated,
    Upgrades,
    Downgrades,
    PointsExpired,
    ChurnModel,
    Error,
    RequestedBy,
}

#[derive(DeriveIden, Clone)]
enum IdempotencyKey {
    Table,
    Caller,
    Key,
    Operation,
    ResultId,
    CreatedAt,
}
