//! How many selections a document stands for once its fragments are spread, counted
//! before the schema validates it.
//!
//! async-graphql's validation (and its cost count) walks each spread of a fragment
//! again: `fragment F0 { ...F1 ...F1 } fragment F1 { ...F2 ...F2 } …` is a few hundred
//! bytes that stands for 2^30 selections, and the walk kept a core busy for minutes, past
//! every timeout. Counting once per fragment (each fragment's size is computed once and
//! reused) is linear in the document.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

use crate::domain::DomainError;

/// The most selections a document may stand for, spreads expanded. A query within the
/// cost limit stands for far fewer: each selection costs at least 1.
pub const MAX_EXPANDED_SELECTIONS: u64 = 100_000;

/// Refuses a document whose fragments expand past `MAX_EXPANDED_SELECTIONS`.
pub fn check(document: &ExecutableDocument) -> Result<(), DomainError> {
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    let mut visiting = Vec::new();
    let mut total: u64 = 0;
    for (_, operation) in document.operations.iter() {
        let size = selections(
            document,
            &operation.node.selection_set.node,
            &mut sizes,
            &mut visiting,
        );
        total = total.saturating_add(size);
    }
    if total > MAX_EXPANDED_SELECTIONS {
        return Err(DomainError::bad_input(
            "query",
            format!(
                "the document stands for more than {MAX_EXPANDED_SELECTIONS} selections once its fragments are spread"
            ),
        ));
    }
    Ok(())
}

/// The selections `set` stands for. A fragment's size is computed once; a fragment
/// spread inside itself (a cycle, which validation refuses) counts as nothing.
fn selections<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    sizes: &mut HashMap<&'d str, u64>,
    visiting: &mut Vec<&'d str>,
) -> u64 {
    let mut total: u64 = 0;
    for item in &set.items {
        let size = match &item.node {
            Selection::Field(field) => 1u64.saturating_add(selections(
                document,
                &field.node.selection_set.node,
                sizes,
                visiting,
            )),
            Selection::InlineFragment(fragment) => {
                selections(document, &fragment.node.selection_set.node, sizes, visiting)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match (sizes.get(name), document.fragments.get(name)) {
                    (Some(size), _) => *size,
                    (None, Some(_)) if visiting.contains(&name) => 0,
                    (None, Some(fragment)) => {
                        visiting.push(name);
                        let size = selections(
                            document,
                            &fragment.node.selection_set.node,
                            sizes,
                            visiting,
                        );
                        visiting.pop();
                        sizes.insert(name, size);
                        size
                    }
                    (None, None) => 0,
                }
            }
        };
        total = total.saturating_add(size);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str) -> Result<(), DomainError> {
        match async_graphql::parser::parse_query(query) {
            Ok(document) => super::check(&document),
            Err(_) => Ok(()),
        }
    }

    fn bomb(levels: usize, spreads: usize) -> String {
        let mut document = String::from("query { ...F0 }\n");
        for level in 0..levels {
            let body = format!("...F{} ", level + 1).repeat(spreads);
            document.push_str(&format!("fragment F{level} on Query {{ {body} }}\n"));
        }
        document.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));
        document
    }

    #[test]
    fn fragment_bombs_are_refused_and_ordinary_fragments_pass() {
        assert!(check(&bomb(30, 2)).is_err());
        assert!(check(&bomb(3, 3000)).is_err());
        assert!(check(&bomb(10, 2)).is_ok(), "1,024 selections");
        let ordinary = "query { customers { nodes { ...C } } } fragment C on Customer { id name tier { key } }";
        assert!(check(ordinary).is_ok());
        let cycle =
            "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A __typename }";
        assert!(check(cycle).is_ok(), "left to validation");
    }
}
