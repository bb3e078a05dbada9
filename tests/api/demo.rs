//! The demo data set shows every tier, lifecycle stage and RFM segment, so that a first
//! look in GraphiQL finds something in every filter.

use serde_json::json;

use crate::helpers::{TestApp, on_both};

async fn the_demo_covers_every_tier_stage_and_segment(app: TestApp) {
    let loaded = tierwise_api::demo::load(&app.db).await.expect("demo loads");
    assert_eq!(loaded, tierwise_api::demo::CUSTOMERS);
    assert_eq!(app.count_customers(json!({})).await, loaded as i64);
    for tier in ["potential", "regular", "vip"] {
        assert!(
            app.count_customers(json!({ "tierKeys": [tier] })).await > 0,
            "{tier}"
        );
    }
    for stage in ["PROSPECT", "NEW", "GROWING", "AT_RISK", "CHURNED"] {
        assert!(
            app.count_customers(json!({ "lifecycleStages": [stage] }))
                .await
                > 0,
            "{stage}"
        );
    }
    for segment in [
        "CHAMPIONS",
        "LOYAL",
        "POTENTIAL_LOYALIST",
        "NEW_CUSTOMERS",
        "PROMISING",
        "NEED_ATTENTION",
        "ABOUT_TO_SLEEP",
        "AT_RISK",
        "CANNOT_LOSE",
        "HIBERNATING",
        "LOST",
    ] {
        assert!(
            app.count_customers(json!({ "rfmSegments": [segment] }))
                .await
                > 0,
            "{segment}"
        );
    }
    for class in ["A", "B", "C"] {
        assert!(
            app.count_customers(json!({ "abcClasses": [class] })).await > 0,
            "{class}"
        );
    }
    // The demo's evaluation run is on record, and business customers owe money.
    let data = app
        .ok(
            "{ customers(first: 100, filter: { kinds: [BUSINESS] }) { nodes { metrics { outstandingReceivable } } } }",
            json!({}),
        )
        .await;
    let owing = data["customers"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["metrics"]["outstandingReceivable"] != "0.00")
        .count();
    assert!(owing > 0);
    // Every demo segment finds someone.
    let data = app
        .ok(
            "{ segments(first: 100) { totalCount nodes { name kind memberCount } } }",
            json!({}),
        )
        .await;
    let segments = data["segments"]["nodes"].as_array().unwrap();
    assert_eq!(segments.len(), 6, "{data}");
    for segment in segments {
        assert!(segment["memberCount"].as_i64().unwrap() > 0, "{segment}");
    }
}

on_both!(the_demo_covers_every_tier_stage_and_segment);
