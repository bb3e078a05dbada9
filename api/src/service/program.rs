//! Changing the program: tiers, the scoring model and the settings.

use entity::tier;

use crate::domain::program::{
    IndicatorBands, ScoringModel, Settings, TierDraft, Weights, ensure_lowest_tier_starts_at_zero,
    validate_indicator_bands,
};
use crate::domain::{DomainError, DomainResult};
use sea_orm::DatabaseTransaction;

use crate::store::{Db, TxWork, customers, program, program_snapshot, rewards, tiers};

/// Creates the tier with this key, or changes it.
#[tracing::instrument(name = "program::upsert_tier", skip_all)]
pub async fn upsert_tier(db: &Db, draft: TierDraft) -> DomainResult<tier::Model> {
    change(db, move |txn| {
        Box::pin(async move {
            let all = tiers::all(txn).await?;
            if let Some(holder) = all
                .iter()
                .find(|t| t.rank == draft.rank && t.key != draft.key)
            {
                return Err(DomainError::Conflict(format!(
                    "rank {} is held by tier {:?}; ranks are unique",
                    draft.rank, holder.key
                )));
            }
            let mut ranks: Vec<(i32, f64)> = all
                .iter()
                .filter(|t| t.key != draft.key)
                .map(|t| (t.rank, t.min_score))
                .collect();
            ranks.push((draft.rank, draft.min_score));
            ensure_lowest_tier_starts_at_zero(&ranks)?;
            match all.into_iter().find(|t| t.key == draft.key) {
                Some(existing) => tiers::update(txn, existing, &draft).await,
                None => tiers::insert(txn, &draft).await,
            }
        })
    })
    .await
}

/// Deletes a tier no customer holds and no reward requires; the last tier stays.
#[tracing::instrument(name = "program::delete_tier", skip_all)]
pub async fn delete_tier(db: &Db, key: String) -> DomainResult<()> {
    change(db, move |txn| {
        Box::pin(async move {
            let all = tiers::all(txn).await?;
            let tier = all
                .iter()
                .find(|t| t.key == key)
                .ok_or_else(|| DomainError::not_found(format!("tier {key:?}")))?;
            let holders = customers::count_in_tier(txn, tier.id).await?;
            if holders > 0 {
                return Err(DomainError::Conflict(format!(
                    "{holders} customers hold tier {key:?}; move them to another tier first"
                )));
            }
            let requiring = rewards::count_requiring_tier(txn, tier.id).await?;
            if requiring > 0 {
                return Err(DomainError::Conflict(format!(
                    "{requiring} rewards require tier {key:?}"
                )));
            }
            let remaining: Vec<(i32, f64)> = all
                .iter()
                .filter(|t| t.key != key)
                .map(|t| (t.rank, t.min_score))
                .collect();
            if remaining.is_empty() {
                return Err(DomainError::Conflict(
                    "the last tier cannot be deleted".into(),
                ));
            }
            ensure_lowest_tier_starts_at_zero(&remaining)?;
            tiers::delete(txn, tier.id).await
        })
    })
    .await
}

/// Runs a change to the program in one transaction, then moves this process's snapshot
/// of the program past it, so that the next request here sees the change (other replicas
/// follow through their program follower, `jobs::program_follower`).
async fn change<T: Send + 'static>(
    db: &Db,
    work: impl for<'c> FnOnce(&'c DatabaseTransaction) -> TxWork<'c, T> + Send + 'static,
) -> DomainResult<T> {
    let (value, revision) = db
        .write(move |txn| {
            Box::pin(async move {
                let value = work(txn).await?;
                Ok((value, program_snapshot::revision(txn).await?))
            })
        })
        .await?;
    db.programs().saw(revision);
    Ok(value)
}

/// The fields of `updateScoringModel`; those left out keep their values.
#[derive(Debug, Clone, Default)]
pub struct ScoringModelPatch {
    pub window_days: Option<i32>,
    pub downgrade_grace_days: Option<i32>,
    pub weights: Option<Weights>,
    /// Replaces the bands of the indicators listed; the others keep theirs.
    pub bands: Option<Vec<IndicatorBands>>,
}

#[tracing::instrument(name = "program::update_scoring_model", skip_all)]
pub async fn update_scoring_model(db: &Db, patch: ScoringModelPatch) -> DomainResult<ScoringModel> {
    change(db, move |txn| {
        Box::pin(async move {
            let mut model = program::scoring_model(txn).await?;
            if let Some(days) = patch.window_days {
                model.window_days = days;
            }
            if let Some(days) = patch.downgrade_grace_days {
                model.downgrade_grace_days = days;
            }
            if let Some(weights) = patch.weights {
                model.weights = weights;
            }
            if let Some(given) = patch.bands {
                model.bands = merge_bands(model.bands, given)?;
            }
            model.validate()?;
            program::save_scoring_model(txn, &model).await?;
            Ok(model)
        })
    })
    .await
}

/// The current bands with those of each indicator in `given` replaced. An indicator given
/// twice is an error, reported at its position.
fn merge_bands(
    mut current: Vec<IndicatorBands>,
    given: Vec<IndicatorBands>,
) -> DomainResult<Vec<IndicatorBands>> {
    for (i, indicator) in given.iter().enumerate() {
        validate_indicator_bands(i, indicator)?;
        if given[..i]
            .iter()
            .any(|g| g.indicator == indicator.indicator)
        {
            return Err(DomainError::bad_input(
                format!("input.bands[{i}].indicator"),
                format!("{} is listed more than once", indicator.indicator),
            ));
        }
    }
    for indicator in given {
        match current
            .iter_mut()
            .find(|c| c.indicator == indicator.indicator)
        {
            Some(slot) => *slot = indicator,
            None => current.push(indicator),
        }
    }
    Ok(current)
}

/// The fields of `updateProgramSettings`; those left out keep their values. Rates are in
/// ten-thousandths.
#[derive(Debug, Clone, Default)]
pub struct SettingsPatch {
    pub points_per_currency_unit_e4: Option<i64>,
    pub points_expiry_days: Option<i32>,
    pub birthday_bonus: Option<i64>,
    pub referrer_bonus: Option<i64>,
    pub referee_bonus: Option<i64>,
    pub max_rewarded_referrals_per_year: Option<i32>,
    pub at_risk_days: Option<i32>,
    pub churn_days: Option<i32>,
    pub max_interaction_amount_e4: Option<i64>,
    pub points_expiry_reminder_days: Option<i32>,
    pub time_zone: Option<String>,
    pub pending_days: Option<i32>,
    pub points_expiry_policy: Option<crate::domain::points::ExpiryPolicy>,
    pub points_expiry_years: Option<i32>,
    pub transfers_enabled: Option<bool>,
    /// `Some(None)` lifts the limit.
    pub max_transfer_per_month: Option<Option<i64>>,
}

#[tracing::instrument(name = "program::update_settings", skip_all)]
pub async fn update_settings(db: &Db, patch: SettingsPatch) -> DomainResult<Settings> {
    change(db, move |txn| {
        Box::pin(async move {
            let mut settings = program::settings(txn).await?;
            macro_rules! apply {
                ($($field:ident),+) => { $(if let Some(value) = patch.$field { settings.$field = value; })+ };
            }
            apply!(
                points_per_currency_unit_e4,
                points_expiry_days,
                birthday_bonus,
                referrer_bonus,
                referee_bonus,
                max_rewarded_referrals_per_year,
                at_risk_days,
                churn_days,
                max_interaction_amount_e4,
                points_expiry_reminder_days,
                time_zone,
                pending_days,
                points_expiry_policy,
                points_expiry_years,
                transfers_enabled,
                max_transfer_per_month
            );
            settings.validate()?;
            program::save_settings(txn, &settings).await?;
            Ok(settings)
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::program::Band;

    #[test]
    fn bands_of_unlisted_indicators_are_kept() {
        let current = ScoringModel::default().bands;
        let nps = IndicatorBands {
            indicator: "nps".into(),
            bands: vec![Band {
                threshold: 8.0,
                points: 100.0,
            }],
        };
        let merged = merge_bands(current.clone(), vec![nps.clone()]).unwrap();
        assert_eq!(merged[..4], current[..4]);
        assert_eq!(merged[4], nps);
        assert!(merge_bands(current, vec![nps.clone(), nps]).is_err());
    }
}
