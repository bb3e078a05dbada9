//! `Segment`: a named group of customers, by rule (DYNAMIC) or by list (STATIC).

use async_graphql::{Context, ID, InputObject, Json, Object, Result};
use entity::segment;

use super::customer::{CustomerConnection, list_customers};
use super::enums::SegmentKind;
use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::loaders::{MembersOfSegment, RequestLoader};
use crate::graphql::scalars::DateTime;
use crate::service::segments::SegmentInput as ServiceInput;
use crate::store::customers::CustomerFilter;
use crate::store::segments::Membership;

/// A segment is a view of the program's customers: who may not read segments
/// (`ReadSegments`) sees none of it, however it was reached.
#[derive(Clone)]
pub struct Segment(pub segment::Model);

#[Object(guard = "Allow(Permission::ReadSegments)")]
impl Segment {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    async fn kind(&self) -> SegmentKind {
        self.0.kind.into()
    }

    /// The rule as saved (DYNAMIC only).
    async fn rule(&self) -> Option<Json<serde_json::Value>> {
        self.0.rule.clone().map(Json)
    }

    /// Customers in the segment now.
    async fn member_count(&self, ctx: &Context<'_>) -> Result<i64> {
        // Every segment gets a count but one whose rule the database cannot run (see
        // `store::segments::isolated`): that one alone is an error.
        ctx.data::<RequestLoader>()?
            .load_one(MembersOfSegment(self.0.id))
            .await
            .gql()?
            .ok_or_else(|| {
                crate::domain::DomainError::Internal(anyhow::anyhow!(
                    "segment {} has a rule the database cannot run",
                    self.0.id
                ))
            })
            .gql()
    }

    /// The customers in the segment now, oldest first.
    #[graphql(complexity = "crate::graphql::cost::page(first, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CustomerConnection> {
        let filter = CustomerFilter {
            membership: Some(Membership::Segment(self.0.id)),
            ..Default::default()
        };
        list_customers(ctx, filter, None, first, after).await
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

super::connection::connection!(SegmentConnection, SegmentEdge, Segment);

#[derive(InputObject)]
pub struct SegmentInput {
    name: String,
    description: Option<String>,
    kind: SegmentKind,
    /// DYNAMIC only: `{"all": [...]}`, `{"any": [...]}`, `{"not": rule}` or
    /// `{"field": F, "op": OP, "value": V}` (README, "Segments").
    rule: Option<Json<serde_json::Value>>,
}

impl From<SegmentInput> for ServiceInput {
    fn from(input: SegmentInput) -> Self {
        Self {
            name: input.name,
            description: input.description,
            kind: input.kind.into(),
            rule: input.rule.map(|r| r.0),
        }
    }
}
