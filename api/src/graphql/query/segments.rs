use async_graphql::{Context, ID, Json, Object, Result};

use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id_or_none;
use crate::graphql::types::customer::{CustomerConnection, list_customers};
use crate::graphql::types::segment::{Segment, SegmentConnection};
use crate::service;
use crate::store::customers::CustomerFilter;
use crate::store::paging::PageRequest;
use crate::store::segments::{self, Membership};
use crate::store::{Db, paging};

#[derive(Default)]
pub struct SegmentQuery;

#[Object]
impl SegmentQuery {
    /// `null` when no segment has this id.
    #[graphql(guard = "Allow(Permission::ReadSegments)")]
    async fn segment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Segment>> {
        let Some(id) = parse_id_or_none(&id) else {
            return Ok(None);
        };
        Ok(segments::find(ctx.data::<Db>()?.conn(), id)
            .await
            .gql()?
            .map(Segment))
    }

    /// Oldest first.
    #[graphql(
        guard = "Allow(Permission::ReadSegments)",
        complexity = "crate::graphql::cost::page(first, child_complexity)"
    )]
    async fn segments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<SegmentConnection> {
        let request = PageRequest::new(first, after.as_deref(), segments::ORDER).gql()?;
        let page = segments::page(ctx.data::<Db>()?.conn(), &request)
            .await
            .gql()?;
        Ok(SegmentConnection::from_page(
            page,
            |s| paging::time_cursor(segments::ORDER, s.created_at, s.id),
            Segment,
        ))
    }

    /// The customers a rule matches now, before it is saved; the rule is validated as
    /// `createSegment` would.
    #[graphql(
        guard = "Allow(Permission::ManageSegments)",
        complexity = "crate::graphql::cost::page(first, child_complexity)"
    )]
    async fn segment_preview(
        &self,
        ctx: &Context<'_>,
        rule: Json<serde_json::Value>,
        first: Option<i32>,
    ) -> Result<CustomerConnection> {
        let db = ctx.data::<Db>()?;
        let rule = service::segments::parse_rule(db, &rule.0, "rule")
            .await
            .gql()?;
        crate::store::segments::check_runs(db.conn(), &rule, "rule")
            .await
            .gql()?;
        let filter = CustomerFilter {
            membership: Some(Membership::Rule(rule)),
            ..Default::default()
        };
        list_customers(ctx, filter, None, first, None).await
    }
}
