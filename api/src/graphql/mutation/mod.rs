//! Mutation roots, one per domain, merged into `Mutation`. Each mutation is one
//! transaction in the service layer.

mod campaigns;
mod customers;
mod interactions;
mod program;
mod rewards;
mod segments;
mod tiering;
mod webhooks;

#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(
    customers::CustomerMutation,
    campaigns::CampaignMutation,
    interactions::InteractionMutation,
    program::ProgramMutation,
    rewards::RewardMutation,
    segments::SegmentMutation,
    tiering::TieringMutation,
    webhooks::WebhookMutation,
);
