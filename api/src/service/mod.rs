//! Business operations: validate with `domain`, then read and write through `store` in one
//! transaction. Nothing here knows of HTTP or GraphQL.

pub mod campaigns;
pub mod customers;
pub mod import;
pub mod interactions;
pub mod merge;
pub mod persisted;
pub mod points;
pub mod program;
pub mod referrals;
pub mod rewards;
pub mod segments;
pub mod tier_moves;
pub mod transfers;
pub mod webhooks;

/// Who asks for a write, as the operations need to know it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// Written on what the write records (`recordedBy`, the ledger's author).
    pub subject: &'a str,
    /// Whose idempotency keys the write uses. For a customer's token this is its
    /// customer, whatever the token's `sub` says: two customers' apps that both send
    /// `checkout-1` must not share the key.
    pub key_owner: &'a str,
}

impl<'a> Caller<'a> {
    /// A caller whose keys are its own subject's (the CLI, the demo, staff and partners).
    pub fn named(subject: &'a str) -> Self {
        Self {
            subject,
            key_owner: subject,
        }
    }
}

/// A field of a partial update: left as it is, cleared, or set.
#[derive(Debug, Clone, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// The new value given the current one.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(value) => Some(value),
        }
    }

    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Patch<U>, E> {
        Ok(match self {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(value) => Patch::Set(f(value)?),
        })
    }
}
