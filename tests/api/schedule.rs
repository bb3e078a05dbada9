//! The evaluation schedule: each slot runs once, however many replicas wake up for it.

use chrono::{Duration, Utc};
use entity::evaluation_run;
use sea_orm::{EntityTrait, PaginatorTrait};
use tierwise_api::domain::schedule::Schedule;
use tierwise_api::jobs::schedule::run_slot;

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

on_both!(
    a_slot_runs_once_across_replicas,
    a_slot_lease_goes_to_one_replica
);

/// The production builder starts every background task through the supervisor (the
/// live relay, the program follower and outbox pruning always, the schedule when one is
/// configured), and a server that stops stops them with it.
#[tokio::test]
async fn the_server_owns_its_background_tasks() {
    use tierwise_api::app::Application;
    use tierwise_api::config::Config;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        evaluation_schedule: Some(Schedule::parse("daily 03:00").unwrap()),
        ..crate::helpers::test_config(&format!("sqlite://{}/tierwise.db", dir.path().display()))
    };
    let application = Application::build(&config).await.expect("built");
    assert_eq!(
        application.background_tasks(),
        [
            "live relay",
            "program follower",
            "outbox pruning",
            "webhook fan-out",
            "automations",
            "webhook dispatcher",
            "pending activation",
            "reminders",
            "webhook pruning",
            "evaluation schedule"
        ]
    );
    let addr = application.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    crate::helpers::wait_until_ready(&format!("http://{addr}/readyz")).await;
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("the server and its tasks stopped")
        .unwrap()
        .expect("served");
}

/// The lease primitive every periodic job uses: of replicas (each with its own pool, as
/// separate processes would have) racing for one slot, exactly one gets it; a later slot
/// can be claimed again, an earlier one never, and jobs do not share slots.
async fn a_slot_lease_goes_to_one_replica(app: TestApp) {
    use tierwise_api::store::{Db, leases};
    let mut replicas = vec![app.db.clone()];
    for _ in 0..3 {
        replicas.push(Db::connect(app.database_url()).await.expect("a replica"));
    }
    let slot = Utc::now();
    let claims = futures_util::future::join_all(replicas.iter().enumerate().map(|(i, db)| {
        let holder = format!("replica {i}");
        async move { leases::claim(db.conn(), "nightly", slot, &holder).await }
    }))
    .await;
    let won = claims
        .into_iter()
        .map(|claim| claim.expect("claimed or not"))
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1, "one replica runs the slot");
    let db = replicas[3].conn();
    assert!(!leases::claim(db, "nightly", slot, "late").await.unwrap());
    assert!(
        !leases::claim(db, "nightly", slot - Duration::hours(1), "behind")
            .await
            .unwrap(),
        "an earlier slot is passed"
    );
    assert!(
        leases::claim(db, "nightly", slot + Duration::hours(1), "next")
            .await
            .unwrap()
    );
    assert!(
        leases::claim(db, "hourly", slot, "another job")
            .await
            .unwrap(),
        "each job has its own slots"
    );
}

/// Two `tierwise serve` processes on one Postgres database, both with the schedule
/// `every 1m`: each wakes at the minute and races for the slot's lease; one evaluation
/// runs per slot, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_run_each_scheduled_slot_once() {
    use crate::helpers::{Backend, ServerProcess, TestDatabase};
    let Some(database) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let schedule = [("EVALUATION_SCHEDULE", "every 1m")];
    // One after the other: the first applies the migrations.
    let (first, second) = ServerProcess::pair(&database.url, &schedule).await;
    let db = tierwise_api::store::Db::connect(&database.url)
        .await
        .unwrap();
    let scheduled = || async {
        evaluation_run::Entity::find()
            .all(db.conn())
            .await
            .unwrap()
            .into_iter()
            .filter(|run| run.requested_by == "schedule")
            .collect::<Vec<_>>()
    };
    // The next minute's slot, at most two away when the processes started late in one.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(150);
    while scheduled().await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled run within two slots"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // Both processes woke for that slot; the loser, a moment late, ran nothing.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let runs = scheduled().await;
    let minutes: std::collections::BTreeSet<i64> = runs
        .iter()
        .map(|run| run.started_at.timestamp() / 60)
        .collect();
    assert_eq!(
        runs.len(),
        minutes.len(),
        "one run per slot across both processes: {runs:#?}"
    );
    drop((first, second));
}
