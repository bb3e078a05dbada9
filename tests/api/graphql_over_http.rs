//! The GraphQL-over-HTTP audit (`graphql-http`'s `serverAudits`), every case reproduced:
//! each MUST, SHOULD and MAY it checks, by its id, plus the spec's variable coercion
//! failure. Tierwise requires a token for every operation, so each request carries an
//! admin token (the audit's own requests are anonymous; its `fetchFn` adds it).

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, on_both};

const GR: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// A POST of `body` with `accept` (none when `None`), declared `application/json`.
async fn post(app: &TestApp, accept: Option<&str>, body: &str) -> Response {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.admin())
        .header("content-type", JSON)
        .body(body.to_owned());
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.unwrap()
}

async fn get(app: &TestApp, accept: Option<&str>, params: &[(&str, &str)]) -> Response {
    let mut request = app
        .client
        .request(Method::GET, app.url("/graphql"))
        .bearer_auth(app.admin())
        .query(params);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.unwrap()
}

fn content_type(response: &Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Status, content type and body (JSON, or `Value::Null` when it is not).
async fn answer(response: Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = content_type(&response);
    let bytes = response.bytes().await.unwrap();
    assert!(std::str::from_utf8(&bytes).is_ok(), "82A3: utf-8 responses");
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[track_caller]
fn check(id: &str, (status, content_type, body): &(u16, String, Value), want: u16) {
    assert_eq!(*status, want, "{id}: status ({content_type}) {body}");
}

#[track_caller]
fn has_errors(id: &str, body: &Value, errors: bool) {
    assert_eq!(body.get("errors").is_some(), errors, "{id}: errors? {body}");
}

const TYPENAME: &str = r#"{"query":"{ __typename }"}"#;
const WITH_VARIABLES: &str = "query Type($name: String!) { __type(name: $name) { name } }";

/// The audit's invalid values of a parameter: an object, a number, a boolean, an array
/// (a string instead of the object for `variables` and `extensions`).
fn invalid_values(parameter: &str) -> Vec<Value> {
    let first = if parameter == "query" || parameter == "operationName" {
        json!({ "obj": "ect" })
    } else {
        json!("string")
    };
    vec![first, json!(0), json!(false), json!(["array"])]
}

async fn media_types_and_requests(app: TestApp) {
    // 22EB, 4655, 47DE: the response's type follows Accept.
    for (id, accept, expected) in [
        ("22EB", GR, GR),
        ("4655", JSON, JSON),
        ("47DE", "*/*", JSON),
    ] {
        let got = answer(post(&app, Some(accept), TYPENAME).await).await;
        check(id, &got, 200);
        assert!(got.1.contains(expected), "{id}: {}", got.1);
    }
    // 80D8, 5A70: a GET without Accept is answered as application/json.
    let got = answer(get(&app, None, &[("query", "{ __typename }")]).await).await;
    check("80D8", &got, 200);
    assert!(got.1.contains(JSON), "80D8: {}", got.1);
    // 82A3, 78D5, 2C94, 03D4: POST of application/json; BF61: with its charset.
    check("2C94", &answer(post(&app, None, TYPENAME).await).await, 200);
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.admin())
        .header("content-type", "application/json; charset=utf-8")
        .body(TYPENAME)
        .send()
        .await
        .unwrap();
    check("BF61", &answer(response).await, 200);
    // 9C48: no mutation over GET.
    let got = answer(get(&app, Some(GR), &[("query", "mutation { __typename }")]).await).await;
    assert!((400..500).contains(&got.0), "9C48: {got:?}");
    // 9ABE: a POST without a content type.
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.admin())
        .send()
        .await
        .unwrap();
    let got = answer(response).await;
    assert!((400..500).contains(&got.0), "9ABE: {got:?}");
    // 7267: a POST needs a body.
    let got = answer(post(&app, None, "").await).await;
    if got.1.contains(JSON) {
        has_errors("7267", &got.2, true);
    } else {
        check("7267", &got, 400);
    }
}

async fn request_parameters(app: TestApp) {
    // 6610, 3715: a missing query.
    let missing = r#"{"notquery":"{ __typename }"}"#;
    check(
        "6610",
        &answer(post(&app, Some(GR), missing).await).await,
        400,
    );
    let got = answer(post(&app, Some(JSON), missing).await).await;
    check("3715", &got, 200);
    has_errors("3715", &got.2, true);
    // 4F5x, 9FEx, E3Ex, FB9x, 69Bx, F05x, 904x, 368x: parameters of the wrong type.
    for (parameter, ids) in [
        ("query", ("4F5", "9FE")),
        ("operationName", ("E3E", "FB9")),
        ("variables", ("69B", "F05")),
        ("extensions", ("904", "368")),
    ] {
        for (index, invalid) in invalid_values(parameter).into_iter().enumerate() {
            let mut body = json!({ "query": "{ __typename }" });
            body[parameter] = invalid;
            let body = body.to_string();
            let id = format!("{}{index}", ids.0);
            check(&id, &answer(post(&app, Some(GR), &body).await).await, 400);
            let got = answer(post(&app, Some(JSON), &body).await).await;
            let id = format!("{}{index}", ids.1);
            check(&id, &got, 200);
            has_errors(&id, &got.2, true);
        }
    }
    // 34A2, 13EE, 8161, B8B3: a string query and operation name.
    check(
        "34A2",
        &answer(post(&app, Some(GR), TYPENAME).await).await,
        200,
    );
    let got = answer(post(&app, Some(JSON), TYPENAME).await).await;
    check("13EE", &got, 200);
    has_errors("13EE", &got.2, false);
    let named =
        json!({ "operationName": "Query", "query": "query Query { __typename }" }).to_string();
    check(
        "8161",
        &answer(post(&app, Some(GR), &named).await).await,
        200,
    );
    let got = answer(post(&app, Some(JSON), &named).await).await;
    check("B8B3", &got, 200);
    has_errors("B8B3", &got.2, false);
    // 94Bx, 022x: null variables, operation name and extensions.
    for (index, parameter) in ["variables", "operationName", "extensions"]
        .iter()
        .enumerate()
    {
        let body = json!({ "query": "{ __typename }", *parameter: null }).to_string();
        for (id, accept) in [(format!("94B{index}"), GR), (format!("022{index}"), JSON)] {
            let got = answer(post(&app, Some(accept), &body).await).await;
            check(&id, &got, 200);
            has_errors(&id, &got.2, false);
        }
    }
    // 2EA1, 28B9: a map of variables; D6D5, 6A70: URL-encoded in a GET.
    let with_map =
        json!({ "query": WITH_VARIABLES, "variables": { "name": "sometype" } }).to_string();
    for (id, accept) in [("2EA1", GR), ("28B9", JSON)] {
        let got = answer(post(&app, Some(accept), &with_map).await).await;
        check(id, &got, 200);
        has_errors(id, &got.2, false);
    }
    let variables = json!({ "name": "sometype" }).to_string();
    for (id, accept) in [("D6D5", GR), ("6A70", JSON)] {
        let params = [("query", WITH_VARIABLES), ("variables", variables.as_str())];
        let got = answer(get(&app, Some(accept), &params).await).await;
        check(id, &got, 200);
        has_errors(id, &got.2, false);
    }
    // A GET names its operation with `operationName`.
    let two = "query A { __typename } query B { viewer { role } }";
    let got = answer(get(&app, Some(JSON), &[("query", two), ("operationName", "B")]).await).await;
    check("GET operationName", &got, 200);
    assert_eq!(got.2["data"]["viewer"]["role"], "ADMIN", "{}", got.2);
    // 428F, 1B7A: a map of extensions.
    let extensions =
        json!({ "query": "{ __typename }", "extensions": { "some": "value" } }).to_string();
    for (id, accept) in [("428F", GR), ("1B7A", JSON)] {
        let got = answer(post(&app, Some(accept), &extensions).await).await;
        check(id, &got, 200);
        has_errors(id, &got.2, false);
    }
}

async fn failures_before_execution(app: TestApp) {
    let cases = [
        // D477 / 60AA, 2163: the body is not JSON.
        ("D477", "2163", r#"{ "not a JSON"#.to_owned()),
        // F5AF / 3E36, 17C5, 34D6: the parameters are not a GraphQL request.
        (
            "F5AF",
            "17C5",
            json!({ "qeury": "{ __typename }" }).to_string(),
        ),
        // 572B / 865D, 556A, D586: the document does not parse.
        ("572B", "556A", json!({ "query": "{" }).to_string()),
        // FDE2 / 51FE, 74FF, 5E5B: the document does not validate.
        (
            "FDE2",
            "74FF",
            json!({ "query": "{ 8f31403dfe404bccbb0e835f2629c6a7 }" }).to_string(),
        ),
        (
            "FDE2",
            "74FF",
            json!({ "query": "{ noSuchField }" }).to_string(),
        ),
        // The spec's variable coercion failure.
        (
            "coercion",
            "coercion",
            json!({ "query": "query($n: Int!) { customers(first: $n) { totalCount } }",
                    "variables": { "n": "many" } })
            .to_string(),
        ),
    ];
    for (json_id, gr_id, body) in cases {
        let got = answer(post(&app, Some(JSON), &body).await).await;
        check(json_id, &got, 200);
        has_errors(json_id, &got.2, true);
        let got = answer(post(&app, Some(GR), &body).await).await;
        check(gr_id, &got, 400);
        assert!(got.1.contains(GR), "{gr_id}: {}", got.1);
        has_errors(gr_id, &got.2, true);
        assert!(
            got.2.get("data").is_none(),
            "{gr_id}: no data entry: {}",
            got.2
        );
    }
    // A field error is not a request error, even when it leaves `data` null: 200 with
    // the data entry, as either type.
    let missing = json!({
        "query": "mutation { eraseCustomer(id: \"00000000-0000-7000-8000-000000000000\") }"
    })
    .to_string();
    for accept in [GR, JSON] {
        let got = answer(post(&app, Some(accept), &missing).await).await;
        check("field error", &got, 200);
        has_errors("field error", &got.2, true);
        assert!(got.2.get("data").is_some(), "{}", got.2);
    }
}

on_both!(
    media_types_and_requests,
    request_parameters,
    failures_before_execution,
);
