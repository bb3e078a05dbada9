//! The points ledger as a test reads it: the whole of it, and the invariants the contract
//! promises, checked after every scenario that moves points.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, instant};

/// The fields of an entry the tests look at.
pub const ENTRY: &str = "id customer { id } kind delta balanceAfter reason expiresAt createdAt";

/// Small pages, so that walking a ledger crosses page boundaries.
const PAGE_SIZE: i64 = 4;

/// A page of a customer's ledger, with the balance (`$id`, `$first`, `$after`).
pub fn ledger_query() -> String {
    format!(
        "query($id: ID!, $first: Int, $after: String) {{ customer(id: $id) {{
           pointsBalance
           pointsLedger(first: $first, after: $after) {{
             totalCount
             edges {{ cursor node {{ {ENTRY} }} }}
             nodes {{ id }}
             pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
           }}
         }} }}"
    )
}

/// The whole ledger of `customer_id`, newest first, walked `PAGE_SIZE` at a time, and the
/// balance read with the last page.
pub async fn ledger(app: &TestApp, customer_id: &str) -> (Vec<Value>, i64) {
    let query = ledger_query();
    let mut entries = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let data = app
            .ok(
                &query,
                json!({ "id": customer_id, "first": PAGE_SIZE, "after": after }),
            )
            .await;
        let customer = &data["customer"];
        let connection = &customer["pointsLedger"];
        let edges = connection["edges"].as_array().expect("edges");
        let nodes = connection["nodes"].as_array().expect("nodes");
        assert!(edges.len() as i64 <= PAGE_SIZE, "{connection:#}");
        assert_eq!(nodes.len(), edges.len());
        assert_eq!(connection["pageInfo"]["hasPreviousPage"], pages > 0);
        if let Some(last) = edges.last() {
            assert_eq!(connection["pageInfo"]["startCursor"], edges[0]["cursor"]);
            assert_eq!(connection["pageInfo"]["endCursor"], last["cursor"]);
        }
        for (edge, node) in edges.iter().zip(nodes) {
            assert_eq!(edge["node"]["id"], node["id"]);
        }
        entries.extend(edges.iter().map(|e| e["node"].clone()));
        pages += 1;
        if connection["pageInfo"]["hasNextPage"] == false {
            assert_eq!(
                connection["totalCount"],
                entries.len(),
                "totalCount counts every entry of {customer_id}"
            );
            let balance = customer["pointsBalance"].as_i64().expect("a balance");
            return (entries, balance);
        }
        assert_eq!(edges.len() as i64, PAGE_SIZE, "only the last page is short");
        after = connection["pageInfo"]["endCursor"].clone();
    }
}

/// Walks the whole ledger of `customer_id` and checks the contract's invariants: entries
/// are newest first and listed once, none is empty, each `balanceAfter` is the previous
/// entry's plus its own delta (starting from zero), and the customer's balance is the sum
/// of the deltas. Returns the entries, newest first.
pub async fn assert_ledger_consistent(app: &TestApp, customer_id: &str) -> Vec<Value> {
    let (entries, balance) = ledger(app, customer_id).await;
    let mut running = 0;
    for (n, entry) in entries.iter().rev().enumerate() {
        assert_eq!(entry["customer"]["id"], customer_id, "{entry:#}");
        let delta = entry["delta"].as_i64().expect("a delta");
        assert_ne!(delta, 0, "no entry of {customer_id} is empty: {entry:#}");
        running += delta;
        assert_eq!(
            entry["balanceAfter"], running,
            "entry {n} (oldest first) of {customer_id} does not chain: {entries:#?}"
        );
    }
    assert_eq!(
        balance, running,
        "the balance of {customer_id} is the sum of its ledger: {entries:#?}"
    );
    for pair in entries.windows(2) {
        assert!(
            instant(&pair[0]["createdAt"]) >= instant(&pair[1]["createdAt"]),
            "newest first: {pair:#?}"
        );
    }
    let ids: HashSet<&Value> = entries.iter().map(|e| &e["id"]).collect();
    assert_eq!(ids.len(), entries.len(), "no entry is listed twice");
    entries
}

/// `(kind, delta, balanceAfter)` of each entry.
pub fn summary(entries: &[Value]) -> Vec<(String, i64, i64)> {
    entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("a kind").to_owned(),
                e["delta"].as_i64().expect("a delta"),
                e["balanceAfter"].as_i64().expect("a balance"),
            )
        })
        .collect()
}

pub fn entry(kind: &str, delta: i64, balance_after: i64) -> (String, i64, i64) {
    (kind.to_owned(), delta, balance_after)
}
