//! Each role's allowed and forbidden operations (CONTRACT.md, "Authentication and roles").

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, on_both};

const LIST: &str = "{ customers(first: 5) { totalCount } }";
const CREATE: &str = "mutation { createCustomer(input: { name: \"Zhou Min\" }) { id } }";
const TIERS: &str = "{ tiers { key } }";
const UPSERT_TIER: &str = "mutation { upsertTier(input: { key: \"gold\", name: \"Gold\", rank: 5, minScore: 90 }) { key } }";
const SCORING: &str = "mutation { updateScoringModel(input: { windowDays: 180 }) { windowDays } }";
const SETTINGS: &str =
    "mutation { updateProgramSettings(input: { birthdayBonus: 50 }) { birthdayBonus } }";

async fn allowed(app: &TestApp, token: &str, query: &str) -> Value {
    app.ok_as(token, query, json!({})).await
}

async fn forbidden(app: &TestApp, token: &str, query: &str) {
    let body = app.gql(Some(token), query, json!({})).await;
    assert_error(&body, "FORBIDDEN");
}

async fn admin_may_do_everything(app: TestApp) {
    let admin = app.admin();
    for query in [LIST, CREATE, TIERS, UPSERT_TIER, SCORING, SETTINGS] {
        allowed(&app, &admin, query).await;
    }
    let id = app.create_customer(json!({ "name": "Wu Tao" })).await;
    let erased = app
        .ok_as(
            &admin,
            "mutation($id: ID!) { eraseCustomer(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(erased["eraseCustomer"], true);
}

async fn staff_may_work_with_customers_but_not_change_the_program(app: TestApp) {
    let staff = app.staff();
    for query in [
        LIST,
        CREATE,
        TIERS,
        "{ scoringModel { windowDays } programSettings { churnDays } }",
    ] {
        allowed(&app, &staff, query).await;
    }
    for query in [
        UPSERT_TIER,
        SCORING,
        SETTINGS,
        "mutation { deleteTier(key: \"vip\") }",
    ] {
        forbidden(&app, &staff, query).await;
    }
    let id = app.create_customer(json!({ "name": "Wu Tao" })).await;
    let body = app
        .gql(
            Some(&staff),
            "mutation($id: ID!) { eraseCustomer(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_error(&body, "FORBIDDEN");
    let still_there = app
        .ok(
            "query($id: ID!) { customer(id: $id) { name } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(still_there["customer"]["name"], "Wu Tao");
}

async fn partners_get_what_their_scopes_allow(app: TestApp) {
    let reader = app.partner("customers:read");
    let writer = app.partner("customers:write interactions:write");
    let nothing = app.partner("");
    allowed(&app, &reader, LIST).await;
    allowed(
        &app,
        &reader,
        "{ customerByExternalRef(externalRef: \"none\") { id } }",
    )
    .await;
    forbidden(&app, &reader, CREATE).await;
    allowed(&app, &writer, CREATE).await;
    allowed(
        &app,
        &writer,
        "mutation { upsertCustomer(input: { externalRef: \"POS-1\", name: \"Li Na\" }) { id } }",
    )
    .await;
    forbidden(&app, &writer, LIST).await;
    for query in [LIST, CREATE, TIERS, UPSERT_TIER, SCORING, SETTINGS] {
        forbidden(&app, &nothing, query).await;
    }
    for query in [UPSERT_TIER, SCORING, SETTINGS] {
        forbidden(&app, &app.partner("customers:read customers:write"), query).await;
    }
}

async fn customers_read_only_themselves(app: TestApp) {
    let me = app
        .create_customer(json!({ "name": "Chen Jing", "email": "chen.jing@example.cn" }))
        .await;
    let other = app.create_customer(json!({ "name": "Zhao Lei" })).await;
    let token = app.customer_token(&me);

    let data = allowed(
        &app,
        &token,
        "{ viewer { role customer { id name email tier { key } } } }",
    )
    .await;
    assert_eq!(data["viewer"]["role"], "CUSTOMER");
    assert_eq!(data["viewer"]["customer"]["id"], me.as_str());
    assert_eq!(data["viewer"]["customer"]["tier"]["key"], "potential");

    let query = "query($id: ID!) { customer(id: $id) { name tierHistory { nodes { reason } } } }";
    let own = app.ok_as(&token, query, json!({ "id": me })).await;
    assert_eq!(own["customer"]["name"], "Chen Jing");
    let body = app.gql(Some(&token), query, json!({ "id": other })).await;
    assert_error(&body, "FORBIDDEN");
    assert!(
        body["data"].is_null() || body["data"]["customer"].is_null(),
        "no data leaks: {body}"
    );

    for query in [
        LIST,
        CREATE,
        TIERS,
        UPSERT_TIER,
        SCORING,
        SETTINGS,
        "{ customerByExternalRef(externalRef: \"x\") { id } }",
    ] {
        forbidden(&app, &token, query).await;
    }
    let update = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { updateCustomer(id: $id, input: { name: \"Me\" }) { id } }",
            json!({ "id": me }),
        )
        .await;
    assert_error(&update, "FORBIDDEN");
}

async fn other_roles_have_no_viewer_customer(app: TestApp) {
    let data = allowed(
        &app,
        &app.staff(),
        "{ viewer { subject role customer { id } } }",
    )
    .await;
    assert_eq!(
        data["viewer"],
        json!({ "subject": "staff-tester", "role": "STAFF", "customer": null })
    );
}

on_both!(
    admin_may_do_everything,
    staff_may_work_with_customers_but_not_change_the_program,
    partners_get_what_their_scopes_allow,
    customers_read_only_themselves,
    other_roles_have_no_viewer_customer,
);
