//! The program: default tiers, scoring model and settings; changing them; validation.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, on_both};

const TIERS: &str = "{ tiers { key name rank minScore pointsMultiplier benefits memberCount } }";
const UPSERT: &str = "mutation($input: TierInput!) { upsertTier(input: $input) { key name rank minScore pointsMultiplier benefits } }";
const MODEL: &str = "{ scoringModel { windowDays downgradeGraceDays weights { recency frequency monetary engagement nps } bands { indicator bands { threshold points } } } }";
const UPDATE_MODEL: &str = "mutation($input: ScoringModelInput!) { updateScoringModel(input: $input) { windowDays downgradeGraceDays weights { recency frequency monetary engagement nps } bands { indicator bands { threshold points } } } }";
const SETTINGS_FIELDS: &str = "baseCurrency pointsPerCurrencyUnit pointsExpiryDays birthdayBonus referrerBonus refereeBonus maxRewardedReferralsPerYear atRiskDays churnDays";

async fn a_new_database_has_the_default_program(app: TestApp) {
    let tiers = app.ok(TIERS, json!({})).await;
    assert_eq!(
        tiers["tiers"],
        json!([
            { "key": "potential", "name": "Potential", "rank": 0, "minScore": 0.0, "pointsMultiplier": 1.0, "benefits": [], "memberCount": 0 },
            { "key": "regular", "name": "Regular", "rank": 1, "minScore": 35.0, "pointsMultiplier": 1.0, "benefits": [], "memberCount": 0 },
            { "key": "vip", "name": "VIP", "rank": 2, "minScore": 70.0, "pointsMultiplier": 2.0, "benefits": [], "memberCount": 0 },
        ])
    );
    let model = app.ok(MODEL, json!({})).await["scoringModel"].clone();
    assert_eq!(model["windowDays"], 365);
    assert_eq!(model["downgradeGraceDays"], 30);
    assert_eq!(
        model["weights"],
        json!({ "recency": 0.2, "frequency": 0.3, "monetary": 0.3, "engagement": 0.1, "nps": 0.1 })
    );
    let band = |pairs: &[(f64, f64)]| {
        pairs
            .iter()
            .map(|(t, p)| json!({ "threshold": t, "points": p }))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        model["bands"],
        json!([
            { "indicator": "recency", "bands": band(&[(30.0, 100.0), (90.0, 70.0), (180.0, 40.0), (365.0, 20.0)]) },
            { "indicator": "frequency", "bands": band(&[(12.0, 100.0), (4.0, 70.0), (2.0, 40.0), (1.0, 20.0)]) },
            { "indicator": "monetary", "bands": band(&[(10000.0, 100.0), (3000.0, 70.0), (1000.0, 40.0), (0.01, 20.0)]) },
            { "indicator": "engagement", "bands": band(&[(12.0, 100.0), (4.0, 70.0), (1.0, 40.0)]) },
            { "indicator": "nps", "bands": band(&[(9.0, 100.0), (7.0, 50.0)]) },
        ])
    );
    let settings = app
        .ok(
            &format!("{{ programSettings {{ {SETTINGS_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        settings["programSettings"],
        json!({
            "baseCurrency": "CNY", "pointsPerCurrencyUnit": 1.0, "pointsExpiryDays": 365, "birthdayBonus": 100,
            "referrerBonus": 500, "refereeBonus": 200, "maxRewardedReferralsPerYear": 50, "atRiskDays": 180, "churnDays": 365
        })
    );
}

async fn tiers_are_upserted_by_key(app: TestApp) {
    let gold = json!({ "key": "gold", "name": "Gold", "rank": 3, "minScore": 90, "pointsMultiplier": 2.5, "benefits": ["Free delivery", "Dedicated manager"] });
    let created = app.ok(UPSERT, json!({ "input": gold })).await;
    assert_eq!(created["upsertTier"]["pointsMultiplier"], 2.5);
    let changed = app
        .ok(
            UPSERT,
            json!({ "input": { "key": "gold", "name": "Gold Plus", "rank": 4, "minScore": 92 } }),
        )
        .await;
    assert_eq!(
        changed["upsertTier"],
        json!({ "key": "gold", "name": "Gold Plus", "rank": 4, "minScore": 92.0, "pointsMultiplier": 1.0, "benefits": [] })
    );
    let keys: Vec<Value> = app.ok(TIERS, json!({})).await["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            json!("potential"),
            json!("regular"),
            json!("vip"),
            json!("gold")
        ],
        "ordered by rank"
    );
}

async fn invalid_tiers_are_refused(app: TestApp) {
    let cases = [
        (
            json!({ "key": "gold", "name": "Gold", "rank": 2, "minScore": 90 }),
            "CONFLICT",
            "rank 2",
        ),
        (
            json!({ "key": "Gold Star", "name": "Gold", "rank": 5, "minScore": 90 }),
            "BAD_USER_INPUT",
            "input.key",
        ),
        (
            json!({ "key": "gold", "name": " ", "rank": 5, "minScore": 90 }),
            "BAD_USER_INPUT",
            "input.name",
        ),
        (
            json!({ "key": "gold", "name": "Gold", "rank": 5, "minScore": 101 }),
            "BAD_USER_INPUT",
            "input.minScore",
        ),
        (
            json!({ "key": "gold", "name": "Gold", "rank": 5, "minScore": 90, "pointsMultiplier": -1 }),
            "BAD_USER_INPUT",
            "input.pointsMultiplier",
        ),
        (
            json!({ "key": "potential", "name": "Potential", "rank": 0, "minScore": 10 }),
            "BAD_USER_INPUT",
            "lowest-ranked",
        ),
    ];
    for (input, code, expected) in cases {
        let body = app
            .gql(Some(&app.admin()), UPSERT, json!({ "input": input }))
            .await;
        let message = assert_error(&body, code);
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert_eq!(
        app.ok(TIERS, json!({})).await["tiers"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "nothing changed"
    );
}

async fn tiers_in_use_cannot_be_deleted(app: TestApp) {
    app.ok(
        UPSERT,
        json!({ "input": { "key": "gold", "name": "Gold", "rank": 3, "minScore": 90 } }),
    )
    .await;
    assert_eq!(
        app.ok("mutation { deleteTier(key: \"gold\") }", json!({}))
            .await["deleteTier"],
        true
    );
    app.create_customer(json!({ "name": "Holder" })).await;
    let body = app
        .gql(
            Some(&app.admin()),
            "mutation { deleteTier(key: \"potential\") }",
            json!({}),
        )
        .await;
    assert!(assert_error(&body, "CONFLICT").contains("1 customers hold"));
    let body = app
        .gql(
            Some(&app.admin()),
            "mutation { deleteTier(key: \"platinum\") }",
            json!({}),
        )
        .await;
    assert_error(&body, "NOT_FOUND");
    let keys = app.ok("{ tiers { key } }", json!({})).await;
    assert_eq!(
        keys["tiers"],
        json!([{ "key": "potential" }, { "key": "regular" }, { "key": "vip" }])
    );
}

async fn the_scoring_model_is_validated_and_updated_in_part(app: TestApp) {
    let updated = app
        .ok(UPDATE_MODEL, json!({ "input": { "windowDays": 180, "bands": [{ "indicator": "nps", "bands": [{ "threshold": 8, "points": 100 }] }] } }))
        .await["updateScoringModel"]
        .clone();
    assert_eq!(updated["windowDays"], 180);
    assert_eq!(updated["downgradeGraceDays"], 30, "left out, kept");
    assert_eq!(
        updated["bands"][4],
        json!({ "indicator": "nps", "bands": [{ "threshold": 8.0, "points": 100.0 }] })
    );
    assert_eq!(updated["bands"][0]["indicator"], "recency");
    assert_eq!(
        app.ok(MODEL, json!({})).await["scoringModel"],
        updated,
        "persisted"
    );

    let weights = json!({ "recency": 1, "frequency": 1, "monetary": 1, "engagement": 0, "nps": 0 });
    let reweighted = app
        .ok(UPDATE_MODEL, json!({ "input": { "weights": weights } }))
        .await;
    assert_eq!(
        reweighted["updateScoringModel"]["weights"]["engagement"],
        0.0
    );

    let cases = [
        (
            json!({ "weights": { "recency": 0, "frequency": 0, "monetary": 0, "engagement": 0, "nps": 0 } }),
            "input.weights",
        ),
        (
            json!({ "weights": { "recency": -1, "frequency": 1, "monetary": 1, "engagement": 1, "nps": 1 } }),
            "input.weights.recency",
        ),
        (json!({ "windowDays": 0 }), "input.windowDays"),
        (
            json!({ "downgradeGraceDays": -5 }),
            "input.downgradeGraceDays",
        ),
        (
            json!({ "bands": [{ "indicator": "frequency", "bands": [{ "threshold": 2, "points": 40 }, { "threshold": 12, "points": 100 }] }] }),
            "input.bands[0].bands[1].threshold",
        ),
        (
            json!({ "bands": [{ "indicator": "recency", "bands": [{ "threshold": 90, "points": 70 }, { "threshold": 30, "points": 100 }] }] }),
            "input.bands[0].bands[1].threshold",
        ),
        (
            json!({ "bands": [{ "indicator": "loyalty", "bands": [{ "threshold": 1, "points": 10 }] }] }),
            "indicator",
        ),
        (
            json!({ "bands": [{ "indicator": "nps", "bands": [{ "threshold": 9, "points": 150 }] }] }),
            "points",
        ),
        (
            json!({ "bands": [{ "indicator": "nps", "bands": [] }] }),
            "bands",
        ),
        (
            json!({ "bands": [{ "indicator": "nps", "bands": [{ "threshold": 9, "points": 100 }] }, { "indicator": "nps", "bands": [{ "threshold": 9, "points": 100 }] }] }),
            "input.bands[1].indicator",
        ),
    ];
    for (input, expected) in cases {
        let body = app
            .gql(Some(&app.admin()), UPDATE_MODEL, json!({ "input": input }))
            .await;
        let message = assert_error(&body, "BAD_USER_INPUT");
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert_eq!(
        app.ok(MODEL, json!({})).await["scoringModel"]["weights"]["engagement"],
        0.0,
        "refusals changed nothing"
    );
}

async fn program_settings_are_validated_and_updated_in_part(app: TestApp) {
    let update = format!(
        "mutation($input: ProgramSettingsInput!) {{ updateProgramSettings(input: $input) {{ {SETTINGS_FIELDS} }} }}"
    );
    let updated = app
        .ok(&update, json!({ "input": { "pointsPerCurrencyUnit": 1.5, "pointsExpiryDays": 0, "referrerBonus": 800 } }))
        .await["updateProgramSettings"]
        .clone();
    assert_eq!(updated["pointsPerCurrencyUnit"], 1.5);
    assert_eq!(updated["pointsExpiryDays"], 0);
    assert_eq!(updated["referrerBonus"], 800);
    assert_eq!(updated["refereeBonus"], 200, "left out, kept");
    let cases = [
        (
            json!({ "pointsPerCurrencyUnit": 0.00001 }),
            "input.pointsPerCurrencyUnit",
        ),
        (
            json!({ "pointsPerCurrencyUnit": -1 }),
            "input.pointsPerCurrencyUnit",
        ),
        (json!({ "churnDays": 100 }), "input.churnDays"),
        (json!({ "atRiskDays": 0 }), "input.atRiskDays"),
        (json!({ "birthdayBonus": -1 }), "input.birthdayBonus"),
        (json!({ "pointsExpiryDays": -1 }), "input.pointsExpiryDays"),
        (
            json!({ "maxRewardedReferralsPerYear": -3 }),
            "input.maxRewardedReferralsPerYear",
        ),
    ];
    for (input, expected) in cases {
        let body = app
            .gql(Some(&app.admin()), &update, json!({ "input": input }))
            .await;
        let message = assert_error(&body, "BAD_USER_INPUT");
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let settings = app
        .ok(
            &format!("{{ programSettings {{ {SETTINGS_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(settings["programSettings"], updated);
}

on_both!(
    a_new_database_has_the_default_program,
    tiers_are_upserted_by_key,
    invalid_tiers_are_refused,
    tiers_in_use_cannot_be_deleted,
    the_scoring_model_is_validated_and_updated_in_part,
    program_settings_are_validated_and_updated_in_part,
);
