//! A bounded, deterministic fuzz run over the whole schema: every query and mutation,
//! read from the schema by introspection (so a field added later is fuzzed too), called
//! with arguments generated from their types and, now and then, of the wrong type: huge
//! and tiny numbers, long and odd strings, unicode, deep JSON, malformed ids, dates and
//! decimals. The server must never panic, never answer 5xx, and give every error a
//! contract code; `INTERNAL` (an unhandled case) fails the run too.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, on_both};

/// Fixed, so that a failure is reproducible.
const SEED: u64 = 0x7131_2026;
/// Calls per root field.
const CASES: usize = 6;

const CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "INSUFFICIENT_POINTS",
    "OUT_OF_STOCK",
    "TIER_TOO_LOW",
];

const TYPE_REF: &str = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";

struct Schema {
    types: Map<String, Value>,
}

impl Schema {
    async fn load(app: &TestApp) -> Self {
        let query = format!(
            "{{ __schema {{ types {{ name kind enumValues {{ name }}
                 fields {{ name args {{ name type {{ {TYPE_REF} }} }} type {{ {TYPE_REF} }} }}
                 inputFields {{ name type {{ {TYPE_REF} }} }} }} }} }}"
        );
        let data = app.ok(&query, json!({})).await;
        let types = data["__schema"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
            .collect();
        Self { types }
    }

    fn get(&self, name: &str) -> &Value {
        &self.types[name]
    }
}

/// The named type under NON_NULL and LIST wrappers.
fn named(ty: &Value) -> &Value {
    let mut ty = ty;
    while ty["kind"] == "NON_NULL" || ty["kind"] == "LIST" {
        ty = &ty["ofType"];
    }
    ty
}

/// Something of the wrong type, or at the edge of its type.
fn hostile(rng: &mut StdRng) -> Value {
    let long = "x".repeat(20_000);
    let deep = (0..100).fold(json!(1), |inner, _| json!({ "a": inner }));
    let choices = [
        json!(null),
        json!(9_223_372_036_854_775_807i64),
        json!(-9_223_372_036_854_775_807i64),
        json!(1e308),
        json!(-1e-308),
        json!(2_147_483_648u64),
        json!(""),
        json!(long),
        json!("🦀🎉中文\u{202e}رتل"),
        json!("'; DROP TABLE customer; --"),
        json!("%_\\\\"),
        json!([1, "two", null, { "three": 3 }]),
        json!({ "unexpected": true }),
        deep,
        json!(true),
        json!("NaN"),
    ];
    choices.choose(rng).unwrap().clone()
}

fn scalar(name: &str, rng: &mut StdRng) -> Value {
    let pick = |rng: &mut StdRng, values: &[Value]| values.choose(rng).unwrap().clone();
    match name {
        "Int" => pick(
            rng,
            &[
                json!(0),
                json!(1),
                json!(-1),
                json!(5),
                json!(100),
                json!(101),
                json!(2_147_483_647),
                json!(-2_147_483_648),
            ],
        ),
        "Float" => pick(
            rng,
            &[
                json!(0.0),
                json!(1.5),
                json!(-1.0),
                json!(1e308),
                json!(1e-300),
                json!(99.999),
            ],
        ),
        "Boolean" => json!(rng.random::<bool>()),
        "ID" => pick(
            rng,
            &[
                json!(uuid::Uuid::now_v7().to_string()),
                json!("not-an-id"),
                json!(""),
                json!("00000000-0000-0000-0000-000000000000"),
            ],
        ),
        "DateTime" => pick(
            rng,
            &[
                json!("2026-03-01T10:00:00Z"),
                json!("9999-12-31T23:59:59Z"),
                json!("0001-01-01T00:00:00Z"),
                json!("yesterday"),
                json!("2026-02-30T00:00:00Z"),
            ],
        ),
        "Date" => pick(
            rng,
            &[
                json!("2000-02-29"),
                json!("1900-13-01"),
                json!(""),
                json!("1990-05-01"),
            ],
        ),
        "Decimal" => pick(
            rng,
            &[
                json!("129.90"),
                json!("1e28"),
                json!("79228162514264337593543950335"),
                json!("-5"),
                json!("0.00001"),
                json!("NaN"),
                json!("922337203685477.5808"),
                json!(1e28),
                json!("10"),
            ],
        ),
        "JSON" => pick(
            rng,
            &[
                json!({}),
                json!({ "field": "tier", "op": "eq", "value": "vip" }),
                json!({ "any": [] }),
                json!([1, 2, 3]),
                json!("text"),
            ],
        ),
        _ => {
            let text: String = (0..rng.random_range(0..12))
                .map(|_| {
                    *['a', 'Z', '9', ' ', '中', '🦀', '"', '\\', '\n']
                        .choose(rng)
                        .unwrap()
                })
                .collect();
            json!(text)
        }
    }
}

/// A value for an argument or input field of type `ty`.
fn value(schema: &Schema, ty: &Value, depth: usize, rng: &mut StdRng) -> Value {
    if rng.random_ratio(1, 8) {
        return hostile(rng);
    }
    match ty["kind"].as_str().unwrap() {
        "NON_NULL" => value(schema, &ty["ofType"], depth, rng),
        "LIST" => {
            let n = if rng.random_ratio(1, 20) {
                300
            } else {
                rng.random_range(0..3)
            };
            Value::Array(
                (0..n)
                    .map(|_| value(schema, &ty["ofType"], depth + 1, rng))
                    .collect(),
            )
        }
        "SCALAR" => scalar(ty["name"].as_str().unwrap(), rng),
        "ENUM" => {
            let values = schema.get(ty["name"].as_str().unwrap())["enumValues"]
                .as_array()
                .unwrap();
            if rng.random_ratio(1, 10) {
                json!("NOT_A_VALUE")
            } else {
                values.choose(rng).unwrap()["name"].clone()
            }
        }
        "INPUT_OBJECT" if depth < 4 => {
            let input = schema.get(ty["name"].as_str().unwrap());
            let mut object = Map::new();
            for field in input["inputFields"].as_array().unwrap() {
                let required = field["type"]["kind"] == "NON_NULL";
                if required || rng.random_bool(0.5) {
                    let name = field["name"].as_str().unwrap().to_owned();
                    object.insert(name, value(schema, &field["type"], depth + 1, rng));
                }
            }
            Value::Object(object)
        }
        _ => json!(null),
    }
}

/// A small selection of what a field returns: its scalars without arguments.
fn selection(schema: &Schema, ty: &Value) -> String {
    let ty = named(ty);
    if ty["kind"] != "OBJECT" {
        return String::new();
    }
    let object = schema.get(ty["name"].as_str().unwrap());
    let scalars: Vec<&str> = object["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["args"].as_array().unwrap().is_empty())
        .filter(|f| matches!(named(&f["type"])["kind"].as_str(), Some("SCALAR" | "ENUM")))
        .map(|f| f["name"].as_str().unwrap())
        .take(8)
        .collect();
    format!("{{ __typename {} }}", scalars.join(" "))
}

/// The GraphQL type of `ty` as written in a variable definition.
fn type_text(ty: &Value) -> String {
    match ty["kind"].as_str().unwrap() {
        "NON_NULL" => format!("{}!", type_text(&ty["ofType"])),
        "LIST" => format!("[{}]", type_text(&ty["ofType"])),
        _ => ty["name"].as_str().unwrap().to_owned(),
    }
}

async fn no_input_crashes_the_server_or_goes_without_a_code(app: TestApp) {
    let schema = Schema::load(&app).await;
    let mut rng = StdRng::seed_from_u64(SEED);
    let token = app.admin();
    let mut calls = 0;
    for (operation, root) in [("query", "Query"), ("mutation", "Mutation")] {
        let fields = schema.get(root)["fields"].as_array().unwrap().clone();
        for field in &fields {
            let name = field["name"].as_str().unwrap();
            for _ in 0..CASES {
                let args = field["args"].as_array().unwrap();
                let mut definitions = Vec::new();
                let mut passed = Vec::new();
                let mut variables = Map::new();
                for arg in args {
                    let arg_name = arg["name"].as_str().unwrap();
                    let required = arg["type"]["kind"] == "NON_NULL";
                    if !required && rng.random_bool(0.4) {
                        continue;
                    }
                    definitions.push(format!("${arg_name}: {}", type_text(&arg["type"])));
                    passed.push(format!("{arg_name}: ${arg_name}"));
                    variables.insert(
                        arg_name.to_owned(),
                        value(&schema, &arg["type"], 0, &mut rng),
                    );
                }
                let definitions = if definitions.is_empty() {
                    String::new()
                } else {
                    format!("({})", definitions.join(", "))
                };
                let passed = if passed.is_empty() {
                    String::new()
                } else {
                    format!("({})", passed.join(", "))
                };
                let query = format!(
                    "{operation} Fuzz{definitions} {{ {name}{passed} {} }}",
                    selection(&schema, &field["type"])
                );
                let response = app
                    .client
                    .post(app.url("/graphql"))
                    .bearer_auth(&token)
                    .json(&json!({ "query": query, "variables": variables }))
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{query} {variables:?}: the server did not answer: {e}")
                    });
                let status = response.status();
                let body: Value = response.json().await.expect("a JSON body");
                let case = || {
                    format!(
                        "{query}\nvariables: {}\n{body:#}",
                        Value::Object(variables.clone())
                    )
                };
                assert!(status.as_u16() < 500, "HTTP {status}: {}", case());
                for error in body["errors"].as_array().into_iter().flatten() {
                    let code = error["extensions"]["code"].as_str().unwrap_or("none");
                    assert!(CODES.contains(&code), "code {code}: {}", case());
                }
                calls += 1;
            }
        }
    }
    assert!(calls > 100, "{calls} calls");
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
}

on_both!(no_input_crashes_the_server_or_goes_without_a_code);
