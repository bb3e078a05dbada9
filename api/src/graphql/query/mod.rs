//! Query roots, one per domain, merged into `Query`.

mod campaigns;
mod customers;
mod evaluation;
mod program;
mod rewards;
mod segments;
mod viewer;
mod webhooks;

#[derive(async_graphql::MergedObject, Default)]
pub struct Query(
    viewer::ViewerQuery,
    customers::CustomerQuery,
    campaigns::CampaignQuery,
    program::ProgramQuery,
    evaluation::EvaluationQuery,
    rewards::RewardQuery,
    segments::SegmentQuery,
    webhooks::WebhookQuery,
);
