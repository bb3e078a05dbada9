use async_graphql::{Context, ID, Object, Result};

use crate::auth::guard::principal;
use crate::auth::{Allow, Permission, Role};
use crate::domain::DomainError;
use crate::graphql::error::{Disclose, Gql};
use crate::graphql::id::parse_id;
use crate::graphql::types::points::{AdjustPointsInput, PointsEntry};
use crate::graphql::types::reward::{RedeemRewardInput, Redemption, Reward, RewardInput};
use crate::graphql::types::transfer::{PointsTransfer, TransferPointsInput};
use crate::service::transfers::{self, Recipient};
use crate::service::{points, rewards};
use crate::store::Db;

#[derive(Default)]
pub struct RewardMutation;

#[Object]
impl RewardMutation {
    /// Adds or takes points by hand; never below a zero balance.
    #[graphql(guard = "Allow(Permission::AdjustPoints)")]
    async fn adjust_points(
        &self,
        ctx: &Context<'_>,
        input: AdjustPointsInput,
    ) -> Result<PointsEntry> {
        let caller = principal(ctx)?;
        let adjustment = input.into_adjustment().gql()?;
        let customer = adjustment.customer_id;
        let entry = points::adjust(ctx.data::<Db>()?, caller.caller(), adjustment)
            .await
            .disclosed_to(caller, customer)
            .gql()?;
        Ok(PointsEntry(entry))
    }

    /// Gives points to another member, soonest-expiring first, each keeping its expiry
    /// date. A customer transfers only its own points, to a member named by referral
    /// code; staff, admins and partners with `points:write` for anyone. Needs
    /// `programSettings.transfersEnabled`.
    async fn transfer_points(
        &self,
        ctx: &Context<'_>,
        input: TransferPointsInput,
    ) -> Result<PointsTransfer> {
        let caller = principal(ctx)?;
        let request = input.into_request().gql()?;
        if !caller.may(Permission::TransferPoints) {
            if caller.role != Role::Customer || caller.customer_id != Some(request.from) {
                return Err(DomainError::Forbidden(
                    "you may transfer only your own points".into(),
                ))
                .gql();
            }
            if matches!(request.to, Recipient::Id(_)) {
                return Err(DomainError::bad_input(
                    "input.toCustomerId",
                    "name the member you give points to by its referral code",
                ))
                .gql();
            }
        }
        let from = request.from;
        let transfer = transfers::transfer(ctx.data::<Db>()?, caller.caller(), request)
            .await
            .disclosed_to(caller, from)
            .gql()?;
        Ok(PointsTransfer(transfer))
    }

    #[graphql(guard = "Allow(Permission::ManageRewards)")]
    async fn create_reward(&self, ctx: &Context<'_>, input: RewardInput) -> Result<Reward> {
        let (draft, min_tier_key) = input.into_draft().gql()?;
        let reward = rewards::create(ctx.data::<Db>()?, draft, min_tier_key)
            .await
            .gql()?;
        Ok(Reward(reward))
    }

    #[graphql(guard = "Allow(Permission::ManageRewards)")]
    async fn update_reward(&self, ctx: &Context<'_>, id: ID, input: RewardInput) -> Result<Reward> {
        let id = parse_id(&id, "id").gql()?;
        let (draft, min_tier_key) = input.into_draft().gql()?;
        let reward = rewards::update(ctx.data::<Db>()?, id, draft, min_tier_key)
            .await
            .gql()?;
        Ok(Reward(reward))
    }

    /// Staff, partners with `rewards:redeem`, or a customer for itself.
    async fn redeem_reward(
        &self,
        ctx: &Context<'_>,
        input: RedeemRewardInput,
    ) -> Result<Redemption> {
        let caller = principal(ctx)?;
        let customer_id = parse_id(&input.customer_id, "input.customerId").gql()?;
        if !caller.may_redeem_for(customer_id) {
            return Err(DomainError::Forbidden(
                "you may not redeem for this customer".into(),
            ))
            .gql();
        }
        let reward_id = parse_id(&input.reward_id, "input.rewardId").gql()?;
        let redemption = rewards::redeem(
            ctx.data::<Db>()?,
            caller.caller(),
            customer_id,
            reward_id,
            input.idempotency_key,
        )
        .await
        .disclosed_to(caller, customer_id)
        .gql()?;
        Ok(Redemption(redemption))
    }
}
