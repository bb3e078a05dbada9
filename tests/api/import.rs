//! `tierwise import`: customers with tags, attributes and referrers, their history and
//! their points balances come in from CSV all together, or not at all; the next
//! evaluation run turns the history into metrics and tiers.

use std::io::Cursor;

use serde_json::{Value, json};
use tierwise_api::domain::DomainError;
use tierwise_api::service::import::{self, Files, Quiet, Source, Summary};

use crate::helpers::{TestApp, on_both};
use crate::ledger::assert_ledger_consistent;

pub(crate) const CUSTOMERS: &str = "\
external_ref,name,email,kind,region,tags,attributes,referred_by,created_at
A-1,\"Li, Wei\",li@example.com,individual,Shanghai,vip|tea,\"{\"\"interests\"\":[\"\"tea\"\"]}\",,2025-01-01
A-2,Wang Fang,,BUSINESS,Beijing,,,A-1,2025-02-01T08:00:00+08:00
A-3,Zhao Min,,,,,,A-1,
";

pub(crate) const INTERACTIONS: &str = "\
customer_ref,kind,occurred_at,amount,rating,order_ref
A-1,PURCHASE,2025-03-01T10:00:00Z,100.50,,ORD-1
A-1,PURCHASE,2025-04-01,300,,ORD-2
A-1,VISIT,2025-04-02,,,
A-2,PURCHASE,2025-03-05,80,,
A-3,SURVEY,2025-03-06,,9,
";

const POINTS: &str = "\
customer_ref,points,reason,expires_at,occurred_at
A-1,500,opening balance,2099-01-01,2025-05-01
A-1,-100,,,2025-05-02
A-2,50,,,
";

/// A file to import; an empty text is no file.
fn source(name: &str, text: &str) -> Option<Source> {
    (!text.is_empty()).then(|| Source {
        name: name.into(),
        len: text.len() as u64,
        reader: Box::new(Cursor::new(text.as_bytes().to_vec())),
    })
}

pub(crate) fn files(customers: &str, interactions: &str, points: &str) -> Files {
    Files {
        customers: source("customers.csv", customers),
        interactions: source("interactions.csv", interactions),
        points: source("points.csv", points),
    }
}

pub(crate) async fn run_import(app: &TestApp, files: Files) -> Result<Summary, DomainError> {
    import::import(&app.db, files, "CNY", &Quiet).await
}

const CUSTOMER: &str = "externalRef name email kind region tags attributes pointsBalance
    createdAt lifecycleStage tier { key } referredBy { externalRef }
    referrals { referee { externalRef } status referrerPoints refereePoints }
    tierHistory(first: 5) { edges { node { reason note } } }
    pointsLedger(first: 5) { edges { node { delta balanceAfter kind reason expiresAt } } }
    metrics { purchaseCount lifetimeSpend engagementCount latestNps firstPurchaseAt }";

async fn customers(app: &TestApp) -> Vec<Value> {
    let body = app
        .ok(
            &format!("{{ customers(first: 10, orderBy: {{ field: NAME, direction: ASC }}) {{ edges {{ node {{ id {CUSTOMER} }} }} }} }}"),
            json!({}),
        )
        .await;
    let mut nodes: Vec<Value> = body["customers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"].clone())
        .collect();
    nodes.sort_by_key(|node| node["externalRef"].as_str().unwrap_or_default().to_owned());
    nodes
}

on_both! {
    an_import_brings_customers_their_history_and_balances,
    a_bad_line_imports_nothing,
}

async fn an_import_brings_customers_their_history_and_balances(app: TestApp) {
    let summary = run_import(&app, files(CUSTOMERS, INTERACTIONS, POINTS))
        .await
        .expect("the files import");
    assert_eq!(
        summary,
        Summary {
            customers: 3,
            referrals: 2,
            interactions: 5,
            points_entries: 3,
        }
    );

    let all = customers(&app).await;
    let [a1, a2, a3] = &all[..] else {
        panic!("three customers: {all:#?}")
    };
    // The profile as written, quoting and all; kinds in any case.
    assert_eq!(a1["name"], "Li, Wei");
    assert_eq!(a1["email"], "li@example.com");
    assert_eq!(a1["kind"], "INDIVIDUAL");
    assert_eq!(a1["tags"], json!(["tea", "vip"]));
    assert_eq!(a1["attributes"], json!({ "interests": ["tea"] }));
    assert_eq!(a1["createdAt"], "2025-01-01T00:00:00Z");
    assert_eq!(a2["kind"], "BUSINESS");
    assert_eq!(a2["createdAt"], "2025-02-01T00:00:00Z");
    assert_eq!(a3["attributes"], json!({}));
    for customer in &all {
        assert_eq!(customer["tier"]["key"], "potential", "{customer:#}");
        assert_eq!(customer["lifecycleStage"], "PROSPECT", "{customer:#}");
        assert_eq!(
            customer["tierHistory"]["edges"],
            json!([{ "node": { "reason": "CREATED", "note": "imported" } }])
        );
    }

    // Referrals: A-2 bought in the imported history, so its referral is settled (the
    // old system paid it); A-3 has not bought yet, so its first purchase here pays.
    assert_eq!(a2["referredBy"]["externalRef"], "A-1");
    let mut referrals = a1["referrals"].as_array().unwrap().clone();
    referrals.sort_by_key(|r| r["referee"]["externalRef"].as_str().unwrap().to_owned());
    assert_eq!(
        referrals,
        vec![
            json!({ "referee": { "externalRef": "A-2" }, "status": "REWARDED", "referrerPoints": 0, "refereePoints": 0 }),
            json!({ "referee": { "externalRef": "A-3" }, "status": "PENDING", "referrerPoints": 0, "refereePoints": 0 }),
        ]
    );

    // Balances arrive as ADJUST entries in time order; history earns nothing.
    assert_eq!(a1["pointsBalance"], 400);
    assert_eq!(
        a1["pointsLedger"]["edges"],
        json!([
            { "node": { "delta": -100, "balanceAfter": 400, "kind": "ADJUST", "reason": "imported balance", "expiresAt": null } },
            { "node": { "delta": 500, "balanceAfter": 500, "kind": "ADJUST", "reason": "opening balance", "expiresAt": "2099-01-01T00:00:00Z" } },
        ])
    );
    assert_eq!(a2["pointsBalance"], 50);
    assert_eq!(a3["pointsBalance"], 0);
    for customer in &all {
        assert_ledger_consistent(&app, customer["id"].as_str().unwrap()).await;
    }

    // The next evaluation run reads the imported history.
    let run = app
        .ok(
            "mutation { evaluateTiers(asOf: \"2025-06-01T00:00:00Z\", wait: true) { status } }",
            json!({}),
        )
        .await;
    assert_eq!(run["evaluateTiers"]["status"], "SUCCEEDED");
    let all = customers(&app).await;
    assert_eq!(
        all[0]["metrics"],
        json!({
            "purchaseCount": 2,
            "lifetimeSpend": "400.50",
            "engagementCount": 1,
            "latestNps": null,
            "firstPurchaseAt": "2025-03-01T10:00:00Z",
        })
    );
    assert_eq!(all[1]["metrics"]["purchaseCount"], 1);
    assert_eq!(all[2]["metrics"]["latestNps"], 9);
    assert_ne!(all[0]["lifecycleStage"], "PROSPECT");

    // Interactions and points may come later, for customers already stored.
    let later = run_import(
        &app,
        Files {
            interactions: source(
                "more.csv",
                "customer_ref,kind,occurred_at,amount\nA-3,PURCHASE,2025-05-20,20\n",
            ),
            points: source("more-points.csv", "customer_ref,points\nA-3,7\n"),
            ..Files::default()
        },
    )
    .await
    .expect("a second import");
    assert_eq!(later.interactions, 1);
    let all = customers(&app).await;
    assert_eq!(all[2]["pointsBalance"], 7);
    // Ordering by balance walks a copy of the balances that triggers keep: the import's
    // inserts and balance updates move it too.
    let by_balance = app
        .ok(
            "{ customers(first: 10, orderBy: { field: POINTS_BALANCE, direction: DESC }) { nodes { externalRef pointsBalance } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        by_balance["customers"]["nodes"],
        json!([
            { "externalRef": "A-1", "pointsBalance": 400 },
            { "externalRef": "A-2", "pointsBalance": 50 },
            { "externalRef": "A-3", "pointsBalance": 7 },
        ])
    );
    // A-3's first purchase came in as history: its referral is settled, not paid.
    let settled = all[0]["referrals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["referee"]["externalRef"] == "A-3")
        .expect("A-3's referral");
    assert_eq!(settled["status"], "REWARDED");
}

/// The message of a refused import.
async fn refused(app: &TestApp, files: Files) -> String {
    match run_import(app, files).await {
        Ok(summary) => panic!("imported {summary:?}"),
        Err(DomainError::BadInput { field, message }) => format!("{field}: {message}"),
        Err(other) => panic!("not a bad input: {other:?}"),
    }
}

async fn a_bad_line_imports_nothing(app: TestApp) {
    let cases = [
        (
            files(
                CUSTOMERS,
                "customer_ref,kind,occurred_at\nA-1,VISIT,2025-01-01\nNOPE,VISIT,2025-01-02\n",
                "",
            ),
            "interactions.csv: customer_ref names no customer: line 3 (\"NOPE\")",
        ),
        (
            files(
                CUSTOMERS,
                "customer_ref,kind,occurred_at,amount\nA-1,PURCHASE,2025-01-01,abc\n",
                "",
            ),
            "interactions.csv line 2, amount: expected a number",
        ),
        (
            files(
                CUSTOMERS,
                "customer_ref,kind,occurred_at\nA-1,PURCHASE,2025-01-01\n",
                "",
            ),
            "interactions.csv line 2.amount: is required for PURCHASE",
        ),
        (
            files(
                CUSTOMERS,
                "customer_ref,kind,occurred_at\nA-1,SHOPPING,2025-01-01\n",
                "",
            ),
            "interactions.csv line 2, kind: expected one of PURCHASE",
        ),
        (
            files(
                CUSTOMERS,
                "customer_ref,kind,occurred_at\nA-1,VISIT,2999-01-01\n",
                "",
            ),
            "interactions.csv line 2.occurredAt: must not be more than 5 minutes in the future",
        ),
        (
            files(
                CUSTOMERS,
                INTERACTIONS,
                "customer_ref,points,occurred_at\nA-2,10,2025-01-01\nA-2,-20,2025-01-02\n",
            ),
            "points.csv: the balance would fall below 0 here (balance after the entry shown): line 3 (\"-10\")",
        ),
        (
            files(CUSTOMERS, INTERACTIONS, "customer_ref,points\nA-1,0\n"),
            "points.csv line 2, points: must not be 0",
        ),
        (
            files(
                "external_ref,name\nB-1,One\nB-1,Again\n",
                INTERACTIONS,
                POINTS,
            ),
            "customers.csv line 3, external_ref: \"B-1\" appears twice in the file",
        ),
        (
            files("external_ref,name,referred_by\nB-1,One,B-9\n", "", ""),
            "customers.csv: referred_by names no customer in this file or the database: line 2 (\"B-9\")",
        ),
        (
            files("external_ref,name,email\nB-1,One,not-an-email\n", "", ""),
            "customers.csv line 2, email",
        ),
        (
            files("external_ref,nmae\nB-1,One\n", "", ""),
            "customers.csv: unknown column \"nmae\"",
        ),
        (
            files("name\nOne\n", "", ""),
            "customers.csv: the column \"external_ref\" is required",
        ),
    ];
    for (files, expected) in cases {
        let message = refused(&app, files).await;
        assert!(
            message.starts_with(expected),
            "expected {expected:?}, got {message:?}"
        );
        // All or nothing: not even the valid customers of the same import stayed.
        let count = app.ok("{ customers { totalCount } }", json!({})).await;
        assert_eq!(count["customers"]["totalCount"], 0, "after {expected:?}");
    }

    // A customer that exists already is refused by its line, and the stored one is kept.
    run_import(&app, files(CUSTOMERS, "", ""))
        .await
        .expect("the first import");
    let message = refused(
        &app,
        files("external_ref,name\nC-1,New\nA-2,Twice\n", "", ""),
    )
    .await;
    assert_eq!(
        message,
        "customers.csv: a customer with this external_ref already exists: line 3 (\"A-2\")"
    );
    let count = app.ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(count["customers"]["totalCount"], 3);
}
