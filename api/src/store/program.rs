//! The program's settings and scoring model (one row each), and installing the default
//! program into a new database.

use entity::{program_settings, scoring_model};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};

use super::{now, tiers};
use crate::domain::program::{self, ExpiryPolicy, IndicatorBands, ScoringModel, Settings, Weights};
use crate::domain::{DomainError, DomainResult};

const ROW: i32 = 1;

/// Locks the settings' row for the rest of the transaction (Postgres; SQLite has one
/// writer): writes that must not run side by side (creating campaigns under a cap)
/// queue on it. Nothing is written, so the program's revision does not move.
pub async fn lock_settings(db: &impl ConnectionTrait) -> DomainResult<()> {
    use sea_orm::QuerySelect;
    program_settings::Entity::find_by_id(ROW)
        .lock_exclusive()
        .one(db)
        .await?;
    Ok(())
}

pub async fn settings(db: &impl ConnectionTrait) -> DomainResult<Settings> {
    let row = program_settings::Entity::find_by_id(ROW)
        .one(db)
        .await?
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("program settings are missing")))?;
    Ok(Settings {
        base_currency: row.base_currency,
        points_per_currency_unit_e4: row.points_per_currency_unit_e4,
        points_expiry_days: row.points_expiry_days,
        birthday_bonus: row.birthday_bonus,
        referrer_bonus: row.referrer_bonus,
        referee_bonus: row.referee_bonus,
        max_rewarded_referrals_per_year: row.max_rewarded_referrals_per_year,
        at_risk_days: row.at_risk_days,
        churn_days: row.churn_days,
        max_interaction_amount_e4: row.max_interaction_amount_e4,
        points_expiry_reminder_days: row.points_expiry_reminder_days,
        time_zone: row.time_zone,
        pending_days: row.pending_days,
        points_expiry_policy: ExpiryPolicy::parse(&row.points_expiry_policy),
        points_expiry_years: row.points_expiry_years,
        transfers_enabled: row.transfers_enabled,
        max_transfer_per_month: row.max_transfer_per_month,
    })
}

fn settings_row(settings: &Settings) -> program_settings::ActiveModel {
    program_settings::ActiveModel {
        id: Set(ROW),
        base_currency: Set(settings.base_currency.clone()),
        points_per_currency_unit_e4: Set(settings.points_per_currency_unit_e4),
        points_expiry_days: Set(settings.points_expiry_days),
        birthday_bonus: Set(settings.birthday_bonus),
        referrer_bonus: Set(settings.referrer_bonus),
        referee_bonus: Set(settings.referee_bonus),
        max_rewarded_referrals_per_year: Set(settings.max_rewarded_referrals_per_year),
        at_risk_days: Set(settings.at_risk_days),
        churn_days: Set(settings.churn_days),
        max_interaction_amount_e4: Set(settings.max_interaction_amount_e4),
        points_expiry_reminder_days: Set(settings.points_expiry_reminder_days),
        time_zone: Set(settings.time_zone.clone()),
        pending_days: Set(settings.pending_days),
        points_expiry_policy: Set(settings.points_expiry_policy.as_str().to_owned()),
        points_expiry_years: Set(settings.points_expiry_years),
        transfers_enabled: Set(settings.transfers_enabled),
        max_transfer_per_month: Set(settings.max_transfer_per_month),
        updated_at: Set(now()),
    }
}

pub async fn save_settings(db: &impl ConnectionTrait, settings: &Settings) -> DomainResult<()> {
    settings_row(settings).update(db).await?;
    Ok(())
}

pub async fn scoring_model(db: &impl ConnectionTrait) -> DomainResult<ScoringModel> {
    let row = scoring_model::Entity::find_by_id(ROW)
        .one(db)
        .await?
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("scoring model is missing")))?;
    let bands: Vec<IndicatorBands> = serde_json::from_value(row.bands)
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("scoring bands: {e}")))?;
    Ok(ScoringModel {
        window_days: row.window_days,
        downgrade_grace_days: row.downgrade_grace_days,
        weights: Weights {
            recency: row.weight_recency,
            frequency: row.weight_frequency,
            monetary: row.weight_monetary,
            engagement: row.weight_engagement,
            nps: row.weight_nps,
        },
        bands,
    })
}

fn scoring_row(model: &ScoringModel) -> scoring_model::ActiveModel {
    scoring_model::ActiveModel {
        id: Set(ROW),
        window_days: Set(model.window_days),
        downgrade_grace_days: Set(model.downgrade_grace_days),
        weight_recency: Set(model.weights.recency),
        weight_frequency: Set(model.weights.frequency),
        weight_monetary: Set(model.weights.monetary),
        weight_engagement: Set(model.weights.engagement),
        weight_nps: Set(model.weights.nps),
        bands: Set(serde_json::json!(model.bands)),
        updated_at: Set(now()),
    }
}

pub async fn save_scoring_model(
    db: &impl ConnectionTrait,
    model: &ScoringModel,
) -> DomainResult<()> {
    scoring_row(model).update(db).await?;
    Ok(())
}

/// Installs the default program when the database has none; returns whether it did.
/// Safe to call on every start.
pub async fn install_default(db: &impl ConnectionTrait, base_currency: &str) -> DomainResult<bool> {
    if program_settings::Entity::find_by_id(ROW)
        .one(db)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    settings_row(&Settings::defaults(base_currency))
        .insert(db)
        .await?;
    scoring_row(&ScoringModel::default()).insert(db).await?;
    for tier in program::default_tiers() {
        tiers::insert(db, &tier).await?;
    }
    Ok(true)
}
