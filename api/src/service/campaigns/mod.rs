//! Campaigns: managing them (each change one transaction), firing them on the write
//! paths and from committed events (`fire`), and replaying history through them
//! (`simulate`).

pub mod fire;
pub mod simulate;

use entity::campaign;
use entity::enums::{CampaignStatus, CampaignTriggerKind, SegmentKind};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::domain::campaign::{Action, ActionKind, Draft, Input, Trigger};
use crate::domain::segment_rule::Rule;
use crate::domain::{DomainError, DomainResult};
use crate::store::{Db, campaigns, program, segments, tiers};

/// Validates `input` (at `path`) and everything it names: the condition against the
/// segment language and the database, the tier, and the segments with the kind each use
/// needs.
pub async fn draft(db: &Db, input: Input, path: &str) -> DomainResult<Draft> {
    let draft = Draft::new(input, path)?;
    if let Some(condition) = &draft.condition {
        let field = format!("{path}.condition");
        let rule = super::segments::parse_rule(db, condition, &field).await?;
        segments::check_runs(db.conn(), &rule, &field).await?;
    }
    check_references(db.conn(), &draft.trigger, &draft.actions, path).await?;
    Ok(draft)
}

async fn check_references(
    db: &impl ConnectionTrait,
    trigger: &Trigger,
    actions: &[Action],
    path: &str,
) -> DomainResult<()> {
    if let Some(key) = &trigger.to_tier_key
        && tiers::by_key(db, key).await?.is_none()
    {
        return Err(DomainError::bad_input(
            format!("{path}.trigger.toTierKey"),
            format!("no tier has key {key:?}"),
        ));
    }
    if let Some(id) = trigger.segment_id {
        segment_of_kind(
            db,
            id,
            SegmentKind::Dynamic,
            &format!("{path}.trigger.segmentId"),
        )
        .await?;
    }
    for (i, action) in actions.iter().enumerate() {
        if let (ActionKind::AddToSegment, Some(id)) = (action.kind, action.segment_id) {
            let field = format!("{path}.actions[{i}].segmentId");
            segment_of_kind(db, id, SegmentKind::Static, &field).await?;
        }
    }
    Ok(())
}

/// A trigger watches a rule (a DYNAMIC segment); an action adds to a list (STATIC).
async fn segment_of_kind(
    db: &impl ConnectionTrait,
    id: Uuid,
    kind: SegmentKind,
    field: &str,
) -> DomainResult<()> {
    match segments::find(db, id).await? {
        None => Err(DomainError::bad_input(
            field,
            format!("no segment has id {id}"),
        )),
        Some(segment) if segment.kind != kind => Err(DomainError::bad_input(
            field,
            format!(
                "segment {id} is {}; this needs a {} segment",
                segment.kind.as_str(),
                kind.as_str()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// The most campaigns that have not ended: every write path reads the active ones.
pub const MAX_RUNNING: u64 = 200;
/// The most campaigns `campaigns` lists, newest first: every campaign that has not ended
/// fits (`MAX_RUNNING`), and a page of them with every field stays under the query
/// cost limit.
pub const MAX_LISTED: u64 = 200;

/// Saves a new campaign as `DRAFT`.
#[tracing::instrument(name = "campaigns::create", skip_all)]
pub async fn create(db: &Db, input: Input) -> DomainResult<campaign::Model> {
    let draft = draft(db, input, "input").await?;
    db.write(move |txn| {
        Box::pin(async move {
            // Creations queue on the program's row, so the count below is exact.
            program::lock_settings(txn).await?;
            if campaigns::count_running(txn).await? >= MAX_RUNNING {
                return Err(DomainError::Conflict(format!(
                    "{MAX_RUNNING} campaigns have not ended; end one before creating another"
                )));
            }
            campaigns::insert(txn, &draft).await
        })
    })
    .await
}

/// Replaces a `DRAFT` or `PAUSED` campaign's definition: a running one is paused first,
/// so that nobody is half-served by two versions of it.
#[tracing::instrument(name = "campaigns::update", skip_all)]
pub async fn update(db: &Db, id: Uuid, input: Input) -> DomainResult<campaign::Model> {
    let draft = draft(db, input, "input").await?;
    db.write(move |txn| {
        Box::pin(async move {
            let current = locked(txn, id).await?;
            if !matches!(
                current.status,
                CampaignStatus::Draft | CampaignStatus::Paused
            ) {
                return Err(DomainError::Conflict(format!(
                    "campaign {id} is {}; only a DRAFT or PAUSED campaign can be changed",
                    current.status.as_str()
                )));
            }
            campaigns::update(txn, &current, &draft).await
        })
    })
    .await
}

/// Moves a campaign to `to`, from the statuses that lead there: DRAFT or PAUSED to
/// ACTIVE, ACTIVE to PAUSED, anything but ENDED to ENDED (which is final). The same
/// move twice answers the campaign as it is.
#[tracing::instrument(name = "campaigns::move_to", skip_all)]
pub async fn move_to(db: &Db, id: Uuid, to: CampaignStatus) -> DomainResult<campaign::Model> {
    db.write(move |txn| {
        Box::pin(async move {
            let current = locked(txn, id).await?;
            use CampaignStatus as S;
            let allowed = match to {
                S::Active => matches!(current.status, S::Draft | S::Paused),
                S::Paused => current.status == S::Active,
                S::Ended => current.status != S::Ended,
                S::Draft => false,
            };
            if current.status == to {
                return Ok(current);
            }
            if !allowed {
                return Err(DomainError::Conflict(format!(
                    "campaign {id} is {}; it cannot become {}",
                    current.status.as_str(),
                    to.as_str()
                )));
            }
            if to == S::Active {
                // What it names may have been deleted while it was a draft.
                let rules = crate::domain::campaign::Rules::of(&current)?;
                check_references(txn, &rules.trigger, &rules.actions, "campaign").await?;
                if rules.trigger.kind() == CampaignTriggerKind::EnteredSegment {
                    fire::remember_segment_members(txn, &current).await?;
                }
            }
            campaigns::set_status(txn, id, to).await
        })
    })
    .await
}

/// How a campaign that has not ended uses a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentUse {
    /// Its ENTERED_SEGMENT trigger watches the segment's rule.
    Watches,
    /// An ADD_TO_SEGMENT action adds to the list.
    AddsTo,
}

/// Refuses (`CONFLICT`) a change to a segment that a campaign which has not ended relies
/// on in one of the `uses` ways: changing a watched rule would change whom a running
/// campaign pays (a rule matching everyone pays everyone), and deleting a segment would
/// silently take a trigger or an action away.
pub async fn refuse_if_used(
    db: &impl ConnectionTrait,
    segment_id: Uuid,
    uses: &[SegmentUse],
) -> DomainResult<()> {
    for row in campaigns::list(
        db,
        Some(&[
            CampaignStatus::Draft,
            CampaignStatus::Active,
            CampaignStatus::Paused,
        ]),
        MAX_RUNNING,
    )
    .await?
    {
        let Ok(rules) = crate::domain::campaign::Rules::of(&row) else {
            continue;
        };
        let watches = rules.trigger.segment_id == Some(segment_id);
        let adds_to = rules
            .actions
            .iter()
            .any(|a| a.segment_id == Some(segment_id));
        let used = (watches && uses.contains(&SegmentUse::Watches))
            || (adds_to && uses.contains(&SegmentUse::AddsTo));
        if used {
            return Err(DomainError::Conflict(format!(
                "campaign {:?} ({}) uses this segment; end the campaign, or change it to another segment, first",
                row.name,
                row.status.as_str()
            )));
        }
    }
    Ok(())
}

async fn locked(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<campaign::Model> {
    campaigns::find_for_update(db, id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("campaign {id}")))
}

/// A stored condition, parsed: saved conditions were checked when saved, so one that
/// no longer parses (a tier deleted since) matches nobody rather than failing a write.
pub fn condition_of(campaign: &crate::domain::campaign::Rules) -> Option<Option<Rule>> {
    let condition = campaign.condition.as_ref()?;
    Some(match Rule::parse(condition, "condition", &|_| true) {
        Ok(rule) => Some(rule),
        Err(error) => {
            tracing::error!(campaign = %campaign.id, %error, "a campaign's condition cannot be read; it matches nobody");
            None
        }
    })
}
