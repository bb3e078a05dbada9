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

/// The contract's SDL: `../shared/CONTRACT.md`'s schema block where the contract sits
/// beside the project, else the copy kept in `tests/contract.graphql` (which must then
/// be that block, so that the copy cannot drift).
fn contract_sdl() -> String {
    let copy_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract.graphql");
    let copy = std::fs::read_to_string(copy_path).expect("tests/contract.graphql");
    let contract_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/CONTRACT.md");
    if let Ok(contract) = std::fs::read_to_string(contract_path) {
        let mut block = String::new();
        let mut inside = false;
        for line in contract.lines() {
            match (inside, line.trim_start().starts_with("```")) {
                (false, true) if line.trim() == "```graphql" => inside = true,
                (true, true) => inside = false,
                (true, false) => {
                    block.push_str(line);
                    block.push('\n');
                }
                _ => {}
            }
        }
        assert_eq!(
            copy, block,
            "tests/contract.graphql is not CONTRACT.md's schema block: copy it again"
        );
    }
    copy
}

/// Each argument and input field of a schema: `Type.field(argument)` or `Input.field` →
/// (type, default value); and what owns them (`Type.field` for every field of an object,
/// `Input` for every input object).
struct InputValues {
    values: std::collections::BTreeMap<String, (String, Option<String>)>,
    owners: std::collections::BTreeSet<String>,
}

fn input_values(sdl: &str) -> InputValues {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let document = async_graphql::parser::parse_schema(sdl).expect("valid SDL");
    let mut values = std::collections::BTreeMap::new();
    let mut owners = std::collections::BTreeSet::new();
    let describe = |value: &async_graphql::parser::types::InputValueDefinition| {
        (
            value.ty.node.to_string(),
            value.default_value.as_ref().map(|d| d.node.to_string()),
        )
    };
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let type_name = ty.node.name.node.to_string();
        match &ty.node.kind {
            TypeKind::Object(object) => {
                for field in &object.fields {
                    owners.insert(format!("{type_name}.{}", field.node.name.node));
                    for argument in &field.node.arguments {
                        values.insert(
                            format!(
                                "{type_name}.{}({})",
                                field.node.name.node, argument.node.name.node
                            ),
                            describe(&argument.node),
                        );
                    }
                }
            }
            TypeKind::InputObject(input) => {
                owners.insert(type_name.clone());
                for field in &input.fields {
                    values.insert(
                        format!("{type_name}.{}", field.node.name.node),
                        describe(&field.node),
                    );
                }
            }
            _ => {}
        }
    }
    InputValues { values, owners }
}

/// Where the schema deliberately differs from the contract's type for an argument or
/// input field, and why. Empty: a client written against the contract sends what the
/// contract allows (`null` included) and is understood.
const DELIBERATE_DIFFERENCES: &[(&str, &str)] = &[];

/// What Tierwise adds to the arguments and inputs the contract names, all optional, in
/// the order the schema lists them, and why.
const DELIBERATE_ADDITIONS: &[(&str, &str)] = &[
    (
        "CustomerFilter.maxPAlive",
        "churn early warning: customers the model says are probably gone",
    ),
    ("CustomerFilter.minPAlive", "churn early warning"),
    (
        "ProgramSettingsInput.maxInteractionAmount",
        "a bound on every amount a client sends",
    ),
    (
        "ProgramSettingsInput.maxTransferPerMonth",
        "points transfers between members (issue 20)",
    ),
    (
        "ProgramSettingsInput.pendingDays",
        "the return window of pending points (issue 20)",
    ),
    (
        "ProgramSettingsInput.pointsExpiryPolicy",
        "ROLLING, END_OF_YEAR or NEVER (issue 20)",
    ),
    (
        "ProgramSettingsInput.pointsExpiryReminderDays",
        "the points.expiring reminder",
    ),
    (
        "ProgramSettingsInput.pointsExpiryYears",
        "END_OF_YEAR's years (issue 20)",
    ),
    (
        "ProgramSettingsInput.timeZone",
        "the program's days: member days, year ends",
    ),
    (
        "ProgramSettingsInput.transfersEnabled",
        "points transfers between members (issue 20)",
    ),
];

/// Every argument and input field the contract names has the contract's type and
/// default; what Tierwise adds to them is optional (nullable or defaulted), so that no
/// contract client must send it, and listed in `DELIBERATE_ADDITIONS`.
#[test]
fn arguments_and_input_fields_have_the_contracts_types() {
    let contract = input_values(&contract_sdl());
    let ours = input_values(&tierwise_api::graphql::sdl()).values;
    let deliberate = |name: &str| DELIBERATE_DIFFERENCES.iter().any(|(n, _)| *n == name);
    let mut wrong = Vec::new();
    let mut additions: Vec<&str> = Vec::new();
    for (name, expected) in &contract.values {
        match ours.get(name) {
            _ if deliberate(name) => {}
            None => wrong.push(format!("{name}: missing (the contract has {expected:?})")),
            Some(found) if found != expected => {
                wrong.push(format!("{name}: {found:?}, the contract has {expected:?}"))
            }
            Some(_) => {}
        }
    }
    for (name, (ty, default)) in &ours {
        if contract.values.contains_key(name) || deliberate(name) {
            continue;
        }
        // An argument added to a contract field, or a field added to a contract input,
        // must not be required: the contract's clients do not send it.
        let owner = name.split('(').next().unwrap_or_default();
        let owner = if name.contains('(') {
            owner
        } else {
            owner.split('.').next().unwrap_or_default()
        };
        if !contract.owners.contains(owner) {
            continue;
        }
        if ty.ends_with('!') && default.is_none() {
            wrong.push(format!(
                "{name}: an addition the contract's clients must send ({ty})"
            ));
        }
        additions.push(name.as_str());
    }
    let listed: Vec<&str> = DELIBERATE_ADDITIONS.iter().map(|(name, _)| *name).collect();
    if additions != listed {
        wrong.push(format!(
            "the additions to the contract's fields and inputs are {additions:?}; \
             list each in DELIBERATE_ADDITIONS with its reason"
        ));
    }
    assert!(
        wrong.is_empty(),
        "differences from the contract:\n{}",
        wrong.join("\n")
    );
}
