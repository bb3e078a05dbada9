//! Customers: create, read, update, upsert, erase; validation; NOT_FOUND versus null.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, on_both};

const FIELDS: &str = "id externalRef name email phone kind industry region birthday tags attributes \
                      lifecycleStage score pointsBalance referralCode tier { key } createdAt updatedAt \
                      tierHistory { totalCount nodes { from { key } to { key } reason score note customer { id } } }";

async fn get(app: &TestApp, id: &str) -> Value {
    let query = format!("query($id: ID!) {{ customer(id: $id) {{ {FIELDS} }} }}");
    app.ok(&query, json!({ "id": id })).await["customer"].clone()
}

async fn created_customers_have_every_field_and_a_first_tier(app: TestApp) {
    let input = json!({
        "name": "  Li Wei ", "externalRef": "CRM-1001", "email": "Li.Wei@Example.CN", "phone": "+86 138-0013-8000",
        "kind": "BUSINESS", "industry": "manufacturing", "region": "Shanghai", "birthday": "1985-04-12",
        "tags": ["wholesale", "vip-prospect", "wholesale"], "attributes": { "companySize": 250, "contacts": [{ "name": "Wang Fang" }] }
    });
    let query = format!(
        "mutation($input: CreateCustomerInput!) {{ createCustomer(input: $input) {{ {FIELDS} }} }}"
    );
    let created = app.ok(&query, json!({ "input": input })).await["createCustomer"].clone();
    assert_eq!(created["name"], "Li Wei");
    assert_eq!(created["externalRef"], "CRM-1001");
    assert_eq!(created["email"], "li.wei@example.cn");
    assert_eq!(created["phone"], "+86 138-0013-8000");
    assert_eq!(created["kind"], "BUSINESS");
    assert_eq!(created["birthday"], "1985-04-12");
    assert_eq!(created["tags"], json!(["vip-prospect", "wholesale"]));
    assert_eq!(created["attributes"]["companySize"], 250);
    assert_eq!(created["lifecycleStage"], "PROSPECT");
    assert_eq!(created["score"], 0.0);
    assert_eq!(created["pointsBalance"], 0);
    assert_eq!(created["tier"]["key"], "potential");
    let code = created["referralCode"].as_str().unwrap();
    assert_eq!(code.len(), 8);
    assert!(!code.contains(['0', 'O', '1', 'I']));
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    let history = &created["tierHistory"];
    assert_eq!(history["totalCount"], 1);
    assert_eq!(
        history["nodes"][0],
        json!({ "from": null, "to": { "key": "potential" }, "reason": "CREATED", "score": 0.0, "note": null, "customer": { "id": created["id"] } })
    );
    assert_eq!(get(&app, created["id"].as_str().unwrap()).await, created);

    let by_ref = app
        .ok(
            "{ customerByExternalRef(externalRef: \"CRM-1001\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(by_ref["customerByExternalRef"]["id"], created["id"]);
    let minimal = app.create_customer(json!({ "name": "Sun Yu" })).await;
    let minimal = get(&app, &minimal).await;
    assert_eq!(minimal["kind"], "INDIVIDUAL");
    assert_eq!(minimal["tags"], json!([]));
    assert_eq!(minimal["attributes"], json!({}));
}

async fn invalid_input_is_refused_naming_the_field(app: TestApp) {
    let create = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }";
    let cases = [
        (json!({ "name": "  " }), "input.name"),
        (json!({ "name": "x".repeat(201) }), "input.name"),
        (
            json!({ "name": "Li", "email": "not-an-email" }),
            "input.email",
        ),
        (json!({ "name": "Li", "email": "a@b" }), "input.email"),
        (
            json!({ "name": "Li", "phone": "call me maybe" }),
            "input.phone",
        ),
        (
            json!({ "name": "Li", "tags": ["ok", " "] }),
            "input.tags[1]",
        ),
        (
            json!({ "name": "Li", "tags": (0..51).map(|i| i.to_string()).collect::<Vec<_>>() }),
            "input.tags",
        ),
        (
            json!({ "name": "Li", "attributes": [1, 2] }),
            "input.attributes",
        ),
        (
            json!({ "name": "Li", "birthday": "2999-01-01" }),
            "input.birthday",
        ),
        (
            json!({ "name": "Li", "externalRef": "r".repeat(201) }),
            "input.externalRef",
        ),
    ];
    for (input, field) in cases {
        let body = app
            .gql(Some(&app.admin()), create, json!({ "input": input }))
            .await;
        let message = assert_error(&body, "BAD_USER_INPUT");
        assert!(message.starts_with(field), "{field}: {message}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
    // Values the schema itself refuses are BAD_USER_INPUT too.
    let body = app
        .gql(
            Some(&app.admin()),
            create,
            json!({ "input": { "name": "Li", "birthday": "12/04/1985" } }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    let body = app
        .gql(
            Some(&app.admin()),
            create,
            json!({ "input": { "name": "Li", "kind": "ROBOT" } }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    let count = app.ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(count["customers"]["totalCount"], 0, "nothing was written");
}

async fn external_refs_are_unique(app: TestApp) {
    app.create_customer(json!({ "name": "Li Wei", "externalRef": "POS-7" }))
        .await;
    let body = app
        .gql(
            Some(&app.admin()),
            "mutation { createCustomer(input: { name: \"Other\", externalRef: \"POS-7\" }) { id } }",
            json!({}),
        )
        .await;
    assert!(assert_error(&body, "CONFLICT").contains("POS-7"));
    let count = app.ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(count["customers"]["totalCount"], 1);
}

async fn updates_change_only_the_fields_given(app: TestApp) {
    let id = app
        .create_customer(json!({
            "name": "Li Wei", "email": "li@example.cn", "phone": "13800138000", "region": "Beijing",
            "tags": ["a"], "attributes": { "k": 1 }, "birthday": "1990-01-02"
        }))
        .await;
    let before = get(&app, &id).await;
    let update = "mutation($id: ID!, $input: UpdateCustomerInput!) { updateCustomer(id: $id, input: $input) { id } }";
    app.ok(
        update,
        json!({ "id": id, "input": { "region": "Hangzhou", "email": null, "tags": ["b", "c"] } }),
    )
    .await;
    let after = get(&app, &id).await;
    assert_eq!(after["region"], "Hangzhou");
    assert_eq!(after["email"], Value::Null);
    assert_eq!(after["tags"], json!(["b", "c"]));
    for unchanged in [
        "name",
        "phone",
        "attributes",
        "birthday",
        "kind",
        "externalRef",
        "referralCode",
        "createdAt",
    ] {
        assert_eq!(after[unchanged], before[unchanged], "{unchanged}");
    }
    assert!(after["updatedAt"].as_str() >= before["updatedAt"].as_str());

    let body = app
        .gql(
            Some(&app.admin()),
            update,
            json!({ "id": id, "input": { "name": null } }),
        )
        .await;
    assert!(assert_error(&body, "BAD_USER_INPUT").contains("input.name"));
    let body = app
        .gql(
            Some(&app.admin()),
            update,
            json!({ "id": id, "input": { "email": "broken" } }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    assert_eq!(
        get(&app, &id).await["region"],
        "Hangzhou",
        "a refused update changes nothing"
    );
}

async fn missing_objects_are_null_for_queries_and_not_found_for_mutations(app: TestApp) {
    let unknown = uuid::Uuid::now_v7().to_string();
    let data = app
        .ok(
            "query($id: ID!) { customer(id: $id) { id } }",
            json!({ "id": unknown }),
        )
        .await;
    assert_eq!(data["customer"], Value::Null);
    let data = app.ok("{ customer(id: \"not-a-uuid\") { id } customerByExternalRef(externalRef: \"nope\") { id } }", json!({})).await;
    assert_eq!(
        data,
        json!({ "customer": null, "customerByExternalRef": null })
    );

    let update = "mutation($id: ID!) { updateCustomer(id: $id, input: { name: \"X\" }) { id } }";
    assert_error(
        &app.gql(Some(&app.admin()), update, json!({ "id": unknown }))
            .await,
        "NOT_FOUND",
    );
    let erase = "mutation($id: ID!) { eraseCustomer(id: $id) }";
    assert_error(
        &app.gql(Some(&app.admin()), erase, json!({ "id": unknown }))
            .await,
        "NOT_FOUND",
    );
    let body = app
        .gql(Some(&app.admin()), update, json!({ "id": "not-a-uuid" }))
        .await;
    assert!(assert_error(&body, "BAD_USER_INPUT").contains("id"));
}

async fn upsert_creates_then_replaces_by_external_ref(app: TestApp) {
    let upsert = "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) { id name email region tags kind tier { key } } }";
    // A CRM that syncs its records both writes and reads them.
    let partner = app.partner("customers:read customers:write");
    let first = app
        .ok_as(&partner, upsert, json!({ "input": { "externalRef": "SHOP-42", "name": "Wang Fang", "email": "wf@example.cn", "region": "Wuhan", "tags": ["web"], "kind": "BUSINESS" } }))
        .await["upsertCustomer"]
        .clone();
    assert_eq!(first["tier"]["key"], "potential");
    let second = app
        .ok_as(&partner, upsert, json!({ "input": { "externalRef": "SHOP-42", "name": "Wang Fang (Wuhan)", "region": "Wuhan" } }))
        .await["upsertCustomer"]
        .clone();
    assert_eq!(second["id"], first["id"], "same customer");
    assert_eq!(second["name"], "Wang Fang (Wuhan)");
    assert_eq!(second["email"], Value::Null, "fields left out are cleared");
    assert_eq!(second["tags"], json!([]));
    assert_eq!(second["kind"], "INDIVIDUAL");
    let history = app
        .ok(
            "query($id: ID!) { customer(id: $id) { tierHistory { totalCount } } }",
            json!({ "id": first["id"] }),
        )
        .await;
    assert_eq!(
        history["customer"]["tierHistory"]["totalCount"], 1,
        "an update is not a new customer"
    );
    let body = app
        .gql(
            Some(&partner),
            upsert,
            json!({ "input": { "externalRef": " ", "name": "X" } }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    // One that may only write gets the id back, and the public view.
    let writer = app.partner("customers:write");
    let written = app
        .ok_as(
            &writer,
            "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) { id name } }",
            json!({ "input": { "externalRef": "SHOP-42", "name": "Wang Fang" } }),
        )
        .await;
    assert_eq!(written["upsertCustomer"]["id"], first["id"]);
    assert_eq!(written["upsertCustomer"]["name"], "W.");
}

async fn parallel_upserts_of_one_external_ref_make_one_customer(app: TestApp) {
    let upsert = "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) { id } }";
    let token = app.admin();
    let requests = (0..12).map(|i| {
        app.gql(
            Some(&token),
            upsert,
            json!({ "input": { "externalRef": "RACE-1", "name": format!("Racer {i}") } }),
        )
    });
    let bodies = join_all(requests).await;
    let ids: std::collections::HashSet<String> = bodies
        .iter()
        .map(|b| {
            assert!(b.get("errors").is_none(), "{b}");
            b["data"]["upsertCustomer"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    let count = app
        .ok(
            "{ customers(filter: { search: \"RACE-1\" }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(count["customers"]["totalCount"], 1);
}

async fn parallel_creates_all_succeed(app: TestApp) {
    let token = app.staff();
    let create = "mutation($name: String!) { createCustomer(input: { name: $name }) { id } }";
    let bodies = join_all((0..40).map(|i| {
        app.gql(
            Some(&token),
            create,
            json!({ "name": format!("Parallel {i}") }),
        )
    }))
    .await;
    for body in &bodies {
        assert!(
            body.get("errors").is_none(),
            "no 'database is locked' or other failure: {body}"
        );
    }
    let count = app
        .ok(
            "{ customers { totalCount } tiers { key memberCount } }",
            json!({}),
        )
        .await;
    assert_eq!(count["customers"]["totalCount"], 40);
    assert_eq!(count["tiers"][0]["memberCount"], 40);
}

async fn erasure_removes_personal_data_and_keeps_history(app: TestApp) {
    let id = app
        .create_customer(json!({
            "name": "Zhang Min", "externalRef": "ERASE-1", "email": "zm@example.cn", "phone": "13900139000",
            "region": "Chengdu", "industry": "retail", "birthday": "1979-09-09", "tags": ["x"], "attributes": { "family": "2 kids" }
        }))
        .await;
    let erase = "mutation($id: ID!) { eraseCustomer(id: $id) }";
    assert_eq!(
        app.ok(erase, json!({ "id": id })).await["eraseCustomer"],
        true
    );
    let erased = get(&app, &id).await;
    assert_eq!(erased["name"], "Erased customer");
    for field in [
        "externalRef",
        "email",
        "phone",
        "region",
        "industry",
        "birthday",
    ] {
        assert_eq!(erased[field], Value::Null, "{field}");
    }
    assert_eq!(erased["tags"], json!([]));
    assert_eq!(erased["attributes"], json!({}));
    assert_eq!(erased["tier"]["key"], "potential");
    assert_eq!(erased["tierHistory"]["totalCount"], 1, "history is kept");
    let search = app
        .ok(
            "{ customers(filter: { search: \"zm@example\" }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(search["customers"]["totalCount"], 0);
    assert_eq!(
        app.ok(erase, json!({ "id": id })).await["eraseCustomer"],
        true,
        "erasing twice is harmless"
    );
    let update = "mutation($id: ID!) { updateCustomer(id: $id, input: { name: \"Back\" }) { id } }";
    assert_error(
        &app.gql(Some(&app.admin()), update, json!({ "id": id }))
            .await,
        "NOT_FOUND",
    );
    // The external reference is free again.
    app.create_customer(json!({ "name": "Someone new", "externalRef": "ERASE-1" }))
        .await;
}

on_both!(
    created_customers_have_every_field_and_a_first_tier,
    invalid_input_is_refused_naming_the_field,
    external_refs_are_unique,
    updates_change_only_the_fields_given,
    missing_objects_are_null_for_queries_and_not_found_for_mutations,
    upsert_creates_then_replaces_by_external_ref,
    parallel_upserts_of_one_external_ref_make_one_customer,
    parallel_creates_all_succeed,
    erasure_removes_personal_data_and_keeps_history,
);
