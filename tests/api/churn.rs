//! The churn and spend models through the real evaluation path: the CDNOW sample
//! (`tests/data/`) loaded as purchases and evaluated as of 1997-09-30 reproduces the
//! published BG/NBD and Gamma-Gamma estimates; every customer gets sane outputs; AT_RISK
//! holds exactly the customers the model says are probably gone (or long silent); the
//! pAlive filter and segment rules agree with the pAlive customers show; and a run that
//! cannot fit keeps the model in use and says why.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};
use entity::enums::InteractionKind;
use entity::interaction;
use futures_util::{StreamExt, stream};
use sea_orm::{EntityTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, on_both};

const AS_OF: &str = "1997-09-30T23:59:59Z";
const MODEL: &str = "r alpha a b customers logLikelihood asOf spend { p q gamma customers }";

/// The CDNOW sample's purchases: customer number → (day, amount) lines.
fn cdnow() -> BTreeMap<u32, Vec<(NaiveDate, f64)>> {
    let text = include_str!("../data/CDNOW_sample.txt");
    let mut customers: BTreeMap<u32, Vec<(NaiveDate, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let customer: u32 = fields[1].parse().expect("a customer number");
        let day = NaiveDate::parse_from_str(fields[2], "%Y%m%d").expect("a date");
        let amount: f64 = fields[4].parse().expect("an amount");
        customers.entry(customer).or_default().push((day, amount));
    }
    customers
}

/// Creates the sample's customers through the API and stores their purchases (all of
/// them, to mid-1998: the run must read only those up to its `asOf`). Purchases are
/// written straight to the table, as an import would; recording 7,000 purchases dated
/// 1997 one by one would only test the write path again.
async fn load_cdnow(app: &TestApp) -> usize {
    let customers = cdnow();
    let ids: Vec<(u32, String)> = stream::iter(customers.keys().copied())
        .map(|number| async move {
            let id = app
                .create_customer(json!({ "name": format!("CDNOW {number}"), "externalRef": format!("cdnow-{number}") }))
                .await;
            (number, id)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let ids: BTreeMap<u32, Uuid> = ids
        .into_iter()
        .map(|(number, id)| (number, id.parse().expect("a uuid")))
        .collect();
    let now = Utc::now();
    let ids = &ids;
    let rows: Vec<interaction::ActiveModel> = customers
        .iter()
        .flat_map(|(number, purchases)| {
            purchases
                .iter()
                .map(move |(day, amount)| (ids[number], *day, *amount))
        })
        .map(|(customer_id, day, amount)| interaction::ActiveModel {
            id: Set(Uuid::now_v7()),
            customer_id: Set(customer_id),
            kind: Set(InteractionKind::Purchase),
            occurred_at: Set(Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).unwrap())),
            amount_e4: Set(Some((amount * 1e4).round() as i64)),
            currency: Set(None),
            channel: Set(None),
            rating: Set(None),
            note: Set(None),
            order_ref: Set(None),
            recorded_by: Set("cdnow".into()),
            recorded_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(500) {
        interaction::Entity::insert_many(chunk.to_vec())
            .exec(app.db.conn())
            .await
            .expect("purchases stored");
    }
    customers.len()
}

async fn evaluate(app: &TestApp, variables: Value) -> Value {
    let query = format!(
        "mutation($asOf: DateTime, $customerIds: [ID!]) {{
           evaluateTiers(asOf: $asOf, customerIds: $customerIds, wait: true) {{
             status churnModel {{ {MODEL} }} churnModelNote }} }}"
    );
    app.ok(&query, variables).await["evaluateTiers"].clone()
}

#[track_caller]
fn assert_within_1_percent(name: &str, got: &Value, published: f64) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{name} is {got}"));
    let error = (got - published).abs() / published.abs();
    assert!(
        error < 0.01,
        "{name}: {got} is {:.2}% from the published {published}",
        error * 100.0
    );
}

/// All customers with their stage and model outputs, a page at a time.
async fn all_customers(app: &TestApp) -> Vec<Value> {
    let query = "query($after: String) { customers(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor }
        nodes { id lifecycleStage metrics { recencyDays pAlive expectedPurchases90d clv365 } } } }";
    let mut after = Value::Null;
    let mut all = Vec::new();
    loop {
        let page = app.ok(query, json!({ "after": after })).await["customers"].clone();
        all.extend(page["nodes"].as_array().unwrap().iter().cloned());
        if page["pageInfo"]["hasNextPage"] != true {
            return all;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

async fn the_cdnow_sample_reproduces_the_published_models(app: TestApp) {
    let customers = load_cdnow(&app).await;
    assert_eq!(customers, 2357);
    let no_model = app
        .ok(&format!("{{ churnModel {{ {MODEL} }} }}"), json!({}))
        .await;
    assert_eq!(no_model["churnModel"], Value::Null);

    let run = evaluate(&app, json!({ "asOf": AS_OF })).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run:#}");
    let model = &run["churnModel"];
    // Fader, Hardie & Lee (2005), and the Gamma-Gamma note (2013).
    assert_within_1_percent("r", &model["r"], 0.243);
    assert_within_1_percent("alpha", &model["alpha"], 4.414);
    assert_within_1_percent("a", &model["a"], 0.793);
    assert_within_1_percent("b", &model["b"], 2.426);
    assert_within_1_percent("logLikelihood", &model["logLikelihood"], -9582.4);
    assert_eq!(model["customers"], 2357);
    assert_eq!(model["asOf"], AS_OF);
    assert_within_1_percent("p", &model["spend"]["p"], 6.25);
    assert_within_1_percent("q", &model["spend"]["q"], 3.74);
    assert_within_1_percent("gamma", &model["spend"]["gamma"], 15.44);
    assert_eq!(
        model["spend"]["customers"], 946,
        "repeat buyers in the calibration period"
    );
    assert_eq!(run["churnModelNote"], Value::Null);
    let current = app
        .ok(&format!("{{ churnModel {{ {MODEL} }} }}"), json!({}))
        .await;
    assert_eq!(&current["churnModel"], model);

    // Every customer has sane outputs; AT_RISK is exactly "probably gone, or silent
    // for more than 180 days" (nobody has been silent for the 365 days of CHURNED).
    let all = all_customers(&app).await;
    assert_eq!(all.len(), 2357);
    let mut probably_gone = 0;
    for customer in &all {
        let metrics = &customer["metrics"];
        let p_alive = metrics["pAlive"].as_f64().expect("a pAlive");
        let expected = metrics["expectedPurchases90d"]
            .as_f64()
            .expect("expected purchases");
        let clv: f64 = metrics["clv365"].as_str().expect("a CLV").parse().unwrap();
        let recency = metrics["recencyDays"].as_i64().expect("a recency");
        assert!((0.0..=1.0).contains(&p_alive), "{customer}");
        assert!(expected.is_finite() && expected >= 0.0, "{customer}");
        assert!(clv.is_finite() && clv >= 0.0, "{customer}");
        assert!((0..=272).contains(&recency), "{customer}");
        let at_risk = p_alive < 0.5 || recency > 180;
        let stage = customer["lifecycleStage"].as_str().unwrap();
        assert_eq!(stage == "AT_RISK", at_risk, "{customer}");
        probably_gone += usize::from(p_alive < 0.5);
    }
    assert!(
        probably_gone > 100,
        "only {probably_gone} customers are probably gone"
    );

    // The SQL form of pAlive (filters, segment rules) agrees with what customers show.
    let below = |threshold: f64| {
        all.iter()
            .filter(|c| c["metrics"]["pAlive"].as_f64().unwrap() <= threshold)
            .count() as i64
    };
    for threshold in [0.1, 0.5, 0.9] {
        assert_eq!(
            app.count_customers(json!({ "maxPAlive": threshold })).await,
            below(threshold),
            "maxPAlive {threshold}"
        );
        assert_eq!(
            app.count_customers(json!({ "minPAlive": threshold })).await,
            2357 - below(threshold)
                + all
                    .iter()
                    .filter(|c| c["metrics"]["pAlive"].as_f64().unwrap() == threshold)
                    .count() as i64,
            "minPAlive {threshold}"
        );
    }
    let preview = app
        .ok(
            "query($rule: JSON!) { segmentPreview(rule: $rule, first: 1) { totalCount } }",
            json!({ "rule": { "field": "pAlive", "op": "lt", "value": 0.5 } }),
        )
        .await;
    assert_eq!(
        preview["segmentPreview"]["totalCount"].as_i64().unwrap(),
        probably_gone as i64
    );
    let at_risk_count = all
        .iter()
        .filter(|c| c["lifecycleStage"] == "AT_RISK")
        .count() as i64;
    assert_eq!(
        app.count_customers(json!({ "lifecycleStages": ["AT_RISK"] }))
            .await,
        at_risk_count
    );

    // A run limited to some customers fits nothing, and the model in use stays.
    let one = all[0]["id"].clone();
    let partial = evaluate(&app, json!({ "asOf": AS_OF, "customerIds": [one] })).await;
    assert_eq!(partial["status"], "SUCCEEDED");
    assert_eq!(partial["churnModel"], Value::Null);
    assert!(
        partial["churnModelNote"]
            .as_str()
            .unwrap()
            .contains("limited to some customers"),
        "{partial:#}"
    );
    let current = app
        .ok(&format!("{{ churnModel {{ {MODEL} }} }}"), json!({}))
        .await;
    assert_eq!(&current["churnModel"], model);
}

/// Three one-time buyers: no model (and no NaN anywhere), the run still SUCCEEDED, and
/// the reason recorded; pAlive stays null.
async fn too_little_data_fits_no_model_and_says_why(app: TestApp) {
    for name in ["Ann", "Bo", "Cy"] {
        let id = app.create_customer(json!({ "name": name })).await;
        app.ok(
            "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { pointsEarned } }",
            json!({ "input": { "customerId": id, "kind": "PURCHASE", "amount": "20.00" } }),
        )
        .await;
    }
    let run = evaluate(&app, json!({})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run:#}");
    assert_eq!(run["churnModel"], Value::Null);
    assert!(
        run["churnModelNote"]
            .as_str()
            .unwrap()
            .contains("too few customers"),
        "{run:#}"
    );
    let data = app
        .ok(
            "{ churnModel { r } customers(first: 5) { nodes { lifecycleStage metrics { pAlive expectedPurchases90d clv365 } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["churnModel"], Value::Null);
    for customer in data["customers"]["nodes"].as_array().unwrap() {
        assert_eq!(customer["lifecycleStage"], "NEW");
        assert_eq!(
            customer["metrics"],
            json!({ "pAlive": null, "expectedPurchases90d": null, "clv365": null })
        );
    }
    assert_eq!(app.count_customers(json!({ "maxPAlive": 1.0 })).await, 0);
}

on_both!(
    the_cdnow_sample_reproduces_the_published_models,
    too_little_data_fits_no_model_and_says_why,
);
