//! `CustomerMetrics` and `Rfm`: a customer's value metrics as stored on its row.

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::Utc;
use entity::customer;
use rust_decimal::Decimal;

use super::enums::{AbcClass, RfmSegment};
use crate::domain::analytics::churn::{History, Outlook};
use crate::domain::metrics::whole_days;
use crate::domain::money::e4_to_decimal;
use crate::graphql::error::Gql;
use crate::graphql::loaders::{CurrentChurnModel, LatestFullRun, RequestLoader};
use crate::graphql::scalars::DateTime;

pub struct CustomerMetrics(pub customer::Model);

impl CustomerMetrics {
    /// The instant the metrics are true for. A run over everyone rewrites only the rows
    /// that differ as of its `asOf`, so a row last written before the latest such run
    /// started is true as of that run's `asOf`; a row written since (live, or by a later
    /// run) is true as of its own `metricsAsOf`.
    async fn as_of_instant(&self, ctx: &Context<'_>) -> Result<chrono::DateTime<Utc>> {
        let loader = ctx.data::<RequestLoader>()?;
        let latest_run = loader.load_one(LatestFullRun).await.gql()?;
        Ok(match latest_run {
            Some(run)
                if self
                    .0
                    .metrics_written_at
                    .is_none_or(|at| at < run.started_at) =>
            {
                run.as_of
            }
            _ => self.0.metrics_as_of,
        })
    }

    /// What the churn model in use expects of this customer; `None` without a model or
    /// without purchases.
    async fn outlook(&self, ctx: &Context<'_>) -> Result<Option<Outlook>> {
        let Some(history) = History::stored(
            self.0.repeat_purchase_days,
            self.0.first_purchase_day,
            self.0.last_purchase_day,
            self.0.repeat_spend_e4,
        ) else {
            return Ok(None);
        };
        let loader = ctx.data::<RequestLoader>()?;
        let model = loader.load_one(CurrentChurnModel).await.gql()?;
        Ok(model.map(|model| model.outlook(&history)))
    }
}

#[Object]
impl CustomerMetrics {
    async fn as_of(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(self.as_of_instant(ctx).await?.into())
    }

    async fn first_purchase_at(&self) -> Option<DateTime> {
        self.0.first_purchase_at.map(Into::into)
    }

    async fn last_purchase_at(&self) -> Option<DateTime> {
        self.0.last_purchase_at.map(Into::into)
    }

    /// Whole days from the last purchase to `asOf`; `null` without purchases.
    async fn recency_days(&self, ctx: &Context<'_>) -> Result<Option<i64>> {
        let Some(last) = self.0.last_purchase_at else {
            return Ok(None);
        };
        Ok(Some(whole_days(last, self.as_of_instant(ctx).await?)))
    }

    /// PURCHASE interactions in the scoring window.
    async fn purchase_count(&self) -> i32 {
        self.0.purchase_count
    }

    /// Purchases minus refunds, in the window.
    async fn net_spend(&self) -> Decimal {
        e4_to_decimal(self.0.net_spend_e4)
    }

    /// Purchases minus refunds, all time.
    async fn lifetime_spend(&self) -> Decimal {
        e4_to_decimal(self.0.lifetime_spend_e4)
    }

    /// Mean PURCHASE amount in the window.
    async fn average_order_value(&self) -> Option<Decimal> {
        self.0.average_order_value_e4.map(e4_to_decimal)
    }

    /// Engagement interactions in the window.
    async fn engagement_count(&self) -> i32 {
        self.0.engagement_count
    }

    /// Latest SURVEY rating in the window.
    async fn latest_nps(&self) -> Option<i32> {
        self.0.latest_nps
    }

    /// `null` without a purchase in the window; set by evaluation runs.
    async fn rfm(&self) -> Option<Rfm> {
        match (
            self.0.rfm_recency,
            self.0.rfm_frequency,
            self.0.rfm_monetary,
            self.0.rfm_segment,
        ) {
            (Some(recency), Some(frequency), Some(monetary), Some(segment)) => Some(Rfm {
                recency: recency.into(),
                frequency: frequency.into(),
                monetary: monetary.into(),
                segment: segment.into(),
            }),
            _ => None,
        }
    }

    async fn abc_class(&self) -> AbcClass {
        self.0.abc_class.into()
    }

    /// SHIPMENT amounts minus PAYMENT amounts, all time.
    async fn outstanding_receivable(&self) -> Decimal {
        e4_to_decimal(self.0.outstanding_receivable_e4)
    }

    /// The BG/NBD probability that the customer is still active, as of the churn
    /// model's `asOf` (or its last purchase, when later). `null` until a churn model is
    /// fitted, and for customers without purchases.
    async fn p_alive(&self, ctx: &Context<'_>) -> Result<Option<f64>> {
        Ok(self.outlook(ctx).await?.map(|o| o.p_alive))
    }

    /// The BG/NBD expected number of purchases in the 90 days after the model's `asOf`.
    #[graphql(name = "expectedPurchases90d")]
    async fn expected_purchases90d(&self, ctx: &Context<'_>) -> Result<Option<f64>> {
        Ok(self.outlook(ctx).await?.map(|o| o.expected_purchases_90d))
    }

    /// Expected spend over the next 365 days (undiscounted): the expected purchases times
    /// the Gamma-Gamma expected spend. `null` without a spend model.
    async fn clv365(&self, ctx: &Context<'_>) -> Result<Option<Decimal>> {
        Ok(self
            .outlook(ctx)
            .await?
            .and_then(|o| o.clv365_e4)
            .map(e4_to_decimal))
    }
}

#[derive(SimpleObject)]
pub struct Rfm {
    recency: i32,
    frequency: i32,
    monetary: i32,
    segment: RfmSegment,
}
