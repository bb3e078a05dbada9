//! `schema.graphql` is exactly the SDL the schema exports, and `tierwise export-schema`
//! prints it.

#[test]
fn schema_graphql_is_the_exported_sdl() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let exported = tierwise_api::graphql::sdl();
    if committed != exported && std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &exported).unwrap();
        return;
    }
    assert!(
        committed == exported,
        "schema.graphql differs from the exported SDL; run `cargo run -- export-schema > schema.graphql` \
         (or this test with UPDATE_SCHEMA=1) and review the change"
    );
}

#[test]
fn export_schema_prints_the_sdl() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tierwise"))
        .arg("export-schema")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        tierwise_api::graphql::sdl()
    );
}

#[test]
fn the_schema_has_the_contract_surface_of_this_stage() {
    let sdl = tierwise_api::graphql::sdl();
    for expected in [
        "scalar DateTime",
        "scalar Date",
        "scalar JSON",
        "viewer: Viewer!",
        "customer(id: ID!): Customer",
        "customerByExternalRef(externalRef: String!): Customer",
        "customers(after: String, filter: CustomerFilter, first: Int, orderBy: CustomerOrderBy): CustomerConnection!",
        "tiers: [Tier!]!",
        "createCustomer(input: CreateCustomerInput!): Customer!",
        "eraseCustomer(id: ID!): Boolean!",
        "deleteTier(key: String!): Boolean!",
        "kind: CustomerKind = INDIVIDUAL",
        "direction: OrderDirection! = ASC",
        "pointsMultiplier: Float = 1.0",
        "totalCount: Int!",
    ] {
        assert!(sdl.contains(expected), "missing {expected:?}");
    }
}
