//! An evaluation run and live writes at once: a run writes a customer only if nothing
//! changed it since the run read it, so a purchase recorded meanwhile is never undone.

use chrono::Utc;
use futures_util::TryStreamExt;
use serde_json::json;
use tierwise_api::store::evaluation_scan::{self, StateWrite};

use crate::helpers::{TestApp, on_both};

async fn a_run_does_not_overwrite_a_purchase_recorded_while_it_ran(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Racing" })).await;
    // The run reads the population…
    let as_of = Utc::now();
    let rows: Vec<_> = evaluation_scan::scan(app.db.conn(), as_of, 365, None)
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("rows");
    let read = evaluation_scan::read_row(&rows[0]).expect("row");
    // …a purchase lands…
    let data = app
        .ok(
            "mutation($id: ID!) { recordInteraction(input: { customerId: $id, kind: PURCHASE, amount: \"10000\" }) { customer { score tier { key } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data["recordInteraction"]["customer"]["tier"]["key"],
        "regular"
    );
    // …and the run writes what it computed before the purchase.
    let stale = StateWrite {
        id: read.id,
        revision: read.revision,
        previous_stage: read.stored.lifecycle_stage,
        state: read.stored,
    };
    let written = evaluation_scan::write_states(app.db.conn(), &[stale], as_of)
        .await
        .expect("write");
    assert!(written.is_empty(), "the stale state is not written");
    let after = app
        .ok(
            "query($id: ID!) { customer(id: $id) { score tier { key } metrics { purchaseCount } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(after["customer"]["tier"]["key"], "regular");
    assert_eq!(after["customer"]["metrics"]["purchaseCount"], 1);
    assert_eq!(after["customer"]["score"], 62.2);

    // A state read after the purchase is written.
    let rows: Vec<_> = evaluation_scan::scan(app.db.conn(), Utc::now(), 365, None)
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("rows");
    let fresh = evaluation_scan::read_row(&rows[0]).expect("row");
    let written = evaluation_scan::write_states(
        app.db.conn(),
        &[StateWrite {
            id: fresh.id,
            revision: fresh.revision,
            previous_stage: fresh.stored.lifecycle_stage,
            state: fresh.stored,
        }],
        Utc::now(),
    )
    .await
    .expect("write");
    assert_eq!(written, vec![fresh.id]);
}

on_both!(a_run_does_not_overwrite_a_purchase_recorded_while_it_ran);
