use async_graphql::{Context, ID, Object, Result};

use crate::auth::{Allow, Permission};
use crate::domain::DomainResult;
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id;
use crate::graphql::types::segment::{Segment, SegmentInput};
use crate::service::segments;
use crate::store::Db;

#[derive(Default)]
pub struct SegmentMutation;

/// Customer ids of a members list, each malformed one named by its index.
fn customer_ids(ids: &[ID]) -> DomainResult<Vec<uuid::Uuid>> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| parse_id(id, &format!("customerIds[{i}]")))
        .collect()
}

#[Object]
impl SegmentMutation {
    #[graphql(guard = "Allow(Permission::ManageSegments)")]
    async fn create_segment(&self, ctx: &Context<'_>, input: SegmentInput) -> Result<Segment> {
        let segment = segments::create(ctx.data::<Db>()?, input.into())
            .await
            .gql()?;
        Ok(Segment(segment))
    }

    /// Replaces the name, description and rule; the kind cannot change.
    #[graphql(guard = "Allow(Permission::ManageSegments)")]
    async fn update_segment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: SegmentInput,
    ) -> Result<Segment> {
        let id = parse_id(&id, "id").gql()?;
        let segment = segments::update(ctx.data::<Db>()?, id, input.into())
            .await
            .gql()?;
        Ok(Segment(segment))
    }

    #[graphql(guard = "Allow(Permission::ManageSegments)")]
    async fn delete_segment(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let id = parse_id(&id, "id").gql()?;
        segments::delete(ctx.data::<Db>()?, id).await.gql()?;
        Ok(true)
    }

    /// STATIC only; adding a member again changes nothing, and an unknown customer
    /// refuses the whole call.
    #[graphql(guard = "Allow(Permission::ManageSegments)")]
    async fn add_segment_members(
        &self,
        ctx: &Context<'_>,
        segment_id: ID,
        customer_ids: Vec<ID>,
    ) -> Result<Segment> {
        let segment_id = parse_id(&segment_id, "segmentId").gql()?;
        let ids = self::customer_ids(&customer_ids).gql()?;
        let segment = segments::add_members(ctx.data::<Db>()?, segment_id, &ids)
            .await
            .gql()?;
        Ok(Segment(segment))
    }

    /// STATIC only; customers not in the segment are ignored.
    #[graphql(guard = "Allow(Permission::ManageSegments)")]
    async fn remove_segment_members(
        &self,
        ctx: &Context<'_>,
        segment_id: ID,
        customer_ids: Vec<ID>,
    ) -> Result<Segment> {
        let segment_id = parse_id(&segment_id, "segmentId").gql()?;
        let ids = self::customer_ids(&customer_ids).gql()?;
        let segment = segments::remove_members(ctx.data::<Db>()?, segment_id, &ids)
            .await
            .gql()?;
        Ok(Segment(segment))
    }
}
