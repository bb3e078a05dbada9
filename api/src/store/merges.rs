//! What a member merge moves besides points: interactions, referrals both ways, tags and
//! static segment memberships, and the tombstone that names the survivor.

use chrono::{DateTime, Utc};
use entity::enums::SegmentKind;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::domain::DomainResult;

/// Moves the merged member's related rows to the survivor, in a fixed number of
/// statements, and makes the merged row a tombstone (with every tombstone that named it
/// now naming the survivor, so a lookup follows one hop). A referral between the two is
/// left with the tombstone (a member cannot refer itself), as is the merged member's own
/// referrer when the survivor already has one.
pub async fn move_related(
    db: &impl ConnectionTrait,
    survivor: Uuid,
    merged: Uuid,
    at: DateTime<Utc>,
) -> DomainResult<()> {
    let backend = db.get_database_backend();
    let statical = SegmentKind::Static.as_str();
    let statements = [
        "UPDATE interaction SET customer_id = $1 WHERE customer_id = $2".to_owned(),
        "UPDATE referral SET referrer_id = $1 WHERE referrer_id = $2 AND referee_id <> $1"
            .to_owned(),
        "UPDATE customer SET referred_by_id = (SELECT m.referred_by_id FROM customer m
             WHERE m.id = $2)
         WHERE id = $1 AND referred_by_id IS NULL
           AND NOT EXISTS (SELECT 1 FROM referral r WHERE r.referee_id = $1)
           AND EXISTS (SELECT 1 FROM referral r WHERE r.referee_id = $2 AND r.referrer_id <> $1)"
            .to_owned(),
        "UPDATE referral SET referee_id = $1 WHERE referee_id = $2 AND referrer_id <> $1
           AND NOT EXISTS (SELECT 1 FROM referral r WHERE r.referee_id = $1)"
            .to_owned(),
        "UPDATE customer SET referred_by_id = $1 WHERE referred_by_id = $2 AND id <> $1".to_owned(),
        "INSERT INTO customer_tag (customer_id, tag)
         SELECT $1, tag FROM customer_tag WHERE customer_id = $2 ON CONFLICT DO NOTHING"
            .to_owned(),
        "DELETE FROM customer_tag WHERE customer_id = $2".to_owned(),
        format!(
            "INSERT INTO segment_member (segment_id, customer_id, added_at)
             SELECT m.segment_id, $1, m.added_at FROM segment_member m
             JOIN segment s ON s.id = m.segment_id
             WHERE m.customer_id = $2 AND s.kind = '{statical}' ON CONFLICT DO NOTHING"
        ),
        "DELETE FROM segment_member WHERE customer_id = $2".to_owned(),
        "UPDATE customer SET merged_into_id = $1 WHERE merged_into_id = $2".to_owned(),
        "UPDATE customer SET merged_into_id = $1, updated_at = $3 WHERE id = $2".to_owned(),
    ];
    for sql in statements {
        // Both databases refuse a value the statement has no placeholder for.
        let mut values: Vec<sea_orm::Value> = vec![survivor.into(), merged.into()];
        if sql.contains("$3") {
            values.push(at.into());
        }
        db.execute_raw(super::raw(backend, &sql, values)).await?;
    }
    Ok(())
}
