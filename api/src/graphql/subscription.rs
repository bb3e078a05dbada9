//! `Subscription`: tier and points changes as they commit, on any replica.
//!
//! Each subscription operation reads this server's event bus; over WebSocket one
//! operation serves every socket holding the same subscription (`live::feeds`). An
//! operation that falls more than the bus's capacity (`EVENT_BUFFER` batches) behind
//! ends with one error with code `SLOW_CONSUMER`: its subscribers should subscribe again
//! and reload what they show.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, ID, Result, Subscription};
use futures_util::{Stream, StreamExt, stream};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::guard::principal;
use crate::auth::{Permission, Role};
use crate::domain::DomainError;
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id;
use crate::graphql::loaders::RequestLoader;
use crate::graphql::types::campaign::CampaignFired;
use crate::graphql::types::points::PointsEntry;
use crate::graphql::types::tier::TierChange;
use crate::live::bus::TakenPlace;
use crate::live::{EventBus, LiveEvent};

#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Tier changes as they commit (every reason: CREATED, INTERACTION, EVALUATION,
    /// MANUAL). `customerId` narrows to one customer, `tierKey` to changes into that tier.
    async fn tier_changed<'ctx>(
        &self,
        ctx: &'ctx Context<'ctx>,
        customer_id: Option<ID>,
        tier_key: Option<String>,
    ) -> Result<impl Stream<Item = Result<TierChange>> + 'ctx> {
        let customer = allowed_customer(ctx, customer_id.as_ref())?;
        // A customer's tier is its own: filtering on it would tell who holds a tier.
        let caller = principal(ctx)?;
        if tier_key.is_some()
            && !caller.may(Permission::ReadCustomers)
            && caller.role != Role::Customer
        {
            return Err(DomainError::Forbidden(
                "filtering tier changes by tier needs the customers:read scope".into(),
            ))
            .gql();
        }
        Ok(live_events(ctx)?
            .filter_map(move |event| {
                let tier_key = tier_key.clone();
                async move {
                    let event = match event {
                        Ok(event) => event,
                        Err(error) => return Some(Err(error)),
                    };
                    let LiveEvent::TierChanged { change, tiers, .. } = event.as_ref() else {
                        return None;
                    };
                    if customer.is_some_and(|id| id != change.customer_id) {
                        return None;
                    }
                    let to_key = tiers.get(&change.to_tier_id).map(|t| t.key.as_str());
                    if tier_key.as_deref().is_some_and(|key| Some(key) != to_key) {
                        return None;
                    }
                    Some(Ok((event.clone(), TierChange(change.clone()))))
                }
            })
            .then(move |item| prepared(ctx, item)))
    }

    /// Ledger entries as they commit (every kind). `customerId` narrows to one customer.
    async fn points_changed<'ctx>(
        &self,
        ctx: &'ctx Context<'ctx>,
        customer_id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<PointsEntry>> + 'ctx> {
        let customer = allowed_customer(ctx, customer_id.as_ref())?;
        Ok(live_events(ctx)?
            .filter_map(move |event| async move {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => return Some(Err(error)),
                };
                let LiveEvent::PointsChanged { entry, .. } = event.as_ref() else {
                    return None;
                };
                if customer.is_some_and(|id| id != entry.customer_id) {
                    return None;
                }
                Some(Ok((event.clone(), PointsEntry(entry.clone()))))
            })
            .then(move |item| prepared(ctx, item)))
    }

    /// Campaigns' `NOTIFY` actions as they fire (staff and admins). `campaignId` narrows
    /// to one campaign.
    #[graphql(guard = "crate::auth::Allow(Permission::ReadCampaigns)")]
    async fn campaign_fired<'ctx>(
        &self,
        ctx: &'ctx Context<'ctx>,
        campaign_id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<CampaignFired>> + 'ctx> {
        let campaign = campaign_id
            .map(|id| parse_id(&id, "campaignId"))
            .transpose()
            .gql()?;
        Ok(live_events(ctx)?
            .filter_map(move |event| async move {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => return Some(Err(error)),
                };
                let LiveEvent::CampaignFired { fired, .. } = event.as_ref() else {
                    return None;
                };
                if campaign.is_some_and(|id| id != fired.campaign_id) {
                    return None;
                }
                Some(Ok((event.clone(), CampaignFired(fired.clone()))))
            })
            .then(move |item| prepared(ctx, item)))
    }
}

/// Whose events the caller may receive: `None` for everyone's (admin, staff, partners
/// with `events:subscribe`), else the one customer; `FORBIDDEN` otherwise.
fn allowed_customer(ctx: &Context<'_>, asked: Option<&ID>) -> Result<Option<Uuid>> {
    let caller = principal(ctx)?;
    let asked = asked
        .map(|id| parse_id(id, "customerId"))
        .transpose()
        .gql()?;
    if caller.may(Permission::SubscribeEvents) {
        return Ok(asked);
    }
    match (caller.role, caller.customer_id, asked) {
        (Role::Customer, Some(own), None) => Ok(Some(own)),
        (Role::Customer, Some(own), Some(asked)) if asked == own => Ok(Some(own)),
        (Role::Customer, ..) => Err(DomainError::Forbidden(
            "a customer may subscribe only to its own events".into(),
        ))
        .gql(),
        _ => Err(DomainError::Forbidden(
            "subscribing to events needs the events:subscribe scope".into(),
        ))
        .gql(),
    }
}

/// This server's events from now on; a subscriber that falls behind gets one
/// `SLOW_CONSUMER` error, then the stream ends.
fn live_events(ctx: &Context<'_>) -> Result<impl Stream<Item = Result<Arc<LiveEvent>>> + 'static> {
    let receiver = match ctx.data_opt::<TakenPlace>().and_then(TakenPlace::take) {
        Some(receiver) => receiver,
        None => ctx.data::<EventBus>()?.subscribe(),
    };
    let batches = stream::unfold(Some(receiver), |state| async move {
        let mut receiver = state?;
        match receiver.recv().await {
            Ok(batch) => {
                let events: Vec<Result<Arc<LiveEvent>>> = batch.iter().cloned().map(Ok).collect();
                Some((events, Some(receiver)))
            }
            Err(RecvError::Lagged(missed)) => {
                let error = async_graphql::Error::new(format!(
                    "this subscriber fell {missed} batches of events behind and was dropped; \
                     subscribe again and reload"
                ))
                .extend_with(|_, e| e.set("code", "SLOW_CONSUMER"));
                Some((vec![Err(error)], None))
            }
            Err(RecvError::Closed) => None,
        }
    });
    Ok(batches.flat_map(stream::iter))
}

/// Makes the event's customer and tiers what this operation's loader answers with, so
/// that the subscriber's fields come from the event (read once per server, not once
/// per subscriber); everything else is read fresh (the loader keeps no cache).
async fn prepared<T>(ctx: &Context<'_>, item: Result<(Arc<LiveEvent>, T)>) -> Result<T> {
    let (event, value) = item?;
    ctx.data::<RequestLoader>()?.loader().show_event(event);
    Ok(value)
}
