//! The evaluation schedule: each slot runs once, however many replicas wake up for it.

use chrono::{Duration, Utc};
use entity::evaluation_run;
use sea_orm::{EntityTrait, PaginatorTrait};
use tierwise_api::jobs::schedule::{Schedule, run_slot};

use crate::helpers::{TestApp, on_both};

async fn a_slot_runs_once_across_replicas(app: TestApp) {
    app.create_customer(serde_json::json!({ "name": "Scheduled" }))
        .await;
    let schedule = Schedule::parse("every 1h").unwrap();
    let slot = schedule.slot_at_or_before(Utc::now());
    // Two replicas wake up for the same slot, one after the other and then at once.
    run_slot(&app.db, slot).await.expect("first replica runs");
    run_slot(&app.db, slot).await.expect("second replica skips");
    let (a, b) = tokio::join!(run_slot(&app.db, slot), run_slot(&app.db, slot));
    a.expect("skips");
    b.expect("skips");
    let runs = evaluation_run::Entity::find()
        .all(app.db.conn())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "one run for the slot");
    assert_eq!(runs[0].status.as_str(), "SUCCEEDED");
    assert_eq!(runs[0].requested_by, "schedule");
    assert_eq!(runs[0].customers_evaluated, 1);
    // The next slot runs again.
    run_slot(&app.db, Utc::now() + Duration::seconds(1))
        .await
        .expect("next slot");
    assert_eq!(
        evaluation_run::Entity::find()
            .count(app.db.conn())
            .await
            .unwrap(),
        2
    );
}

on_both!(a_slot_runs_once_across_replicas);
