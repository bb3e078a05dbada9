//! Checks on a GraphQL document's text made before anything parses it, on every transport
//! and before authentication.
//!
//! async-graphql's parser recurses once per nesting level of a value or selection set,
//! with no limit of its own: `viewer(x: [[[[…2,000 levels…]]]])` overflowed the stack of
//! the thread parsing it and aborted the whole process, from an unauthenticated `GET`.
//! Counting brackets is linear, needs no stack, and bounds what the parser will see.

use crate::domain::DomainError;

/// The default longest document accepted, in bytes (`MAX_QUERY_BYTES`). The longest
/// query a console sends is a few kilobytes; a document this long is either generated
/// wrongly or hostile.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// How deeply `{`, `[` and `(` may nest by default (`MAX_NESTING`). Selection sets are
/// limited to `MAX_DEPTH` fields by the schema; values (lists, input objects) nest
/// inside them. The parser uses well under 16 KiB of stack per level, so even
/// `NESTING_CEILING` stays far below the 2 MiB a worker thread has.
pub const MAX_NESTING: usize = 64;

/// The most `MAX_NESTING` may be set to.
pub const NESTING_CEILING: usize = 128;

/// Refuses a document longer than `max_bytes` or nesting deeper than `max_nesting`,
/// before it is parsed.
pub fn check(query: &str, max_bytes: usize, max_nesting: usize) -> Result<(), DomainError> {
    if query.len() > max_bytes {
        return Err(DomainError::bad_input(
            "query",
            format!(
                "the document is {} bytes; at most {max_bytes} are accepted",
                query.len()
            ),
        ));
    }
    if nesting(query) > max_nesting {
        return Err(DomainError::bad_input(
            "query",
            format!("brackets nest more than {max_nesting} levels deep"),
        ));
    }
    Ok(())
}

/// Refuses a request with a NUL character in its document or in any string (or object
/// key) of its variables. Postgres cannot store one in text ("invalid byte sequence"),
/// so it would end as `INTERNAL` wherever it reached the database; no name, note, code
/// or attribute needs one.
pub fn check_no_nul(request: &async_graphql::Request) -> Result<(), DomainError> {
    fn holds_nul(value: &async_graphql::Value) -> bool {
        use async_graphql::Value;
        match value {
            Value::String(text) => text.contains('\0'),
            Value::List(items) => items.iter().any(holds_nul),
            Value::Object(fields) => fields
                .iter()
                .any(|(key, value)| key.contains('\0') || holds_nul(value)),
            _ => false,
        }
    }
    let in_query = request.query.contains('\0')
        || request
            .query
            .as_bytes()
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"\\u0000"));
    let in_variables = request.variables.iter().any(|(_, value)| holds_nul(value));
    if in_query || in_variables {
        return Err(DomainError::bad_input(
            "query",
            "text may not contain NUL characters (\\u0000)",
        ));
    }
    Ok(())
}

/// The deepest nesting of brackets outside strings and comments. Unbalanced text is not
/// judged here: the parser reports it.
fn nesting(query: &str) -> usize {
    #[derive(PartialEq)]
    enum State {
        Code,
        Comment,
        String,
        BlockString,
    }
    let bytes = query.as_bytes();
    let mut state = State::Code;
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match state {
            State::Code => match byte {
                b'#' => state = State::Comment,
                b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                    state = State::BlockString;
                    i += 2;
                }
                b'"' => state = State::String,
                b'{' | b'[' | b'(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b'}' | b']' | b')' => depth = depth.saturating_sub(1),
                _ => {}
            },
            State::Comment => {
                if byte == b'\n' || byte == b'\r' {
                    state = State::Code;
                }
            }
            State::String => match byte {
                b'\\' => i += 1,
                b'"' | b'\n' => state = State::Code,
                _ => {}
            },
            State::BlockString => {
                if bytes[i..].starts_with(b"\\\"\"\"") {
                    i += 3;
                } else if bytes[i..].starts_with(b"\"\"\"") {
                    state = State::Code;
                    i += 2;
                }
            }
        }
        i += 1;
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_brackets_outside_strings_and_comments() {
        assert_eq!(nesting("{ viewer { role } }"), 2);
        assert_eq!(nesting("{ a(x: [[1], [2]]) }"), 4);
        assert_eq!(nesting("{ a(x: \"[[[[\") }"), 2);
        assert_eq!(nesting("{ a(x: \"\\\"[[[\") }"), 2);
        assert_eq!(nesting("{ a(x: \"\"\" [[[ \\\"\"\" [[ \"\"\") }"), 2);
        assert_eq!(nesting("# [[[[[\n{ a }"), 1);
        assert_eq!(nesting("}}}} { a }"), 1);
    }

    #[test]
    fn deep_and_long_documents_are_refused() {
        let deep = format!(
            "{{ viewer(x: {}1{}) {{ role }} }}",
            "[".repeat(2000),
            "]".repeat(2000)
        );
        assert!(check(&deep, MAX_QUERY_BYTES, MAX_NESTING).is_err());
        let edge = format!(
            "{{ viewer(x: {}1{}) {{ role }} }}",
            "[".repeat(MAX_NESTING - 2),
            "]".repeat(MAX_NESTING - 2)
        );
        assert!(
            check(&edge, MAX_QUERY_BYTES, MAX_NESTING).is_ok(),
            "{MAX_NESTING} levels are allowed"
        );
        let long = format!("{{ viewer {{ role }} }}#{}", "x".repeat(MAX_QUERY_BYTES));
        assert!(check(&long, MAX_QUERY_BYTES, MAX_NESTING).is_err());
    }
}
