//! Where a token Tierwise did not mint (one from `JWT_JWKS_URL`) keeps the role, the
//! scopes and the customer: identity providers put roles in claims of their own
//! (Keycloak `realm_access.roles`, Auth0 a namespaced claim such as
//! `https://tierwise.example/roles`) and name the user by their own id.

use serde_json::Value;

use super::Role;

/// A claim by name, or by a dotted path into nested objects (`realm_access.roles`). A
/// name that is itself a top-level claim wins, so namespaced claims full of dots
/// (`https://example.com/role`) work as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(String);

impl ClaimPath {
    pub fn new(path: &str) -> Self {
        Self(path.trim().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn find<'a>(&self, claims: &'a Value) -> Option<&'a Value> {
        if let Some(value) = claims.get(&self.0) {
            return Some(value);
        }
        self.0
            .split('.')
            .try_fold(claims, |value, part| value.get(part))
    }
}

/// How a customer token finds its customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerMatch {
    /// The claim holds the Tierwise customer id.
    Id,
    /// The claim holds the customer's `externalRef` (the provider's user id, as the
    /// shop or CRM that created the customer knows it).
    ExternalRef,
}

impl CustomerMatch {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "id" => Some(Self::Id),
            "externalref" | "external_ref" => Some(Self::ExternalRef),
            _ => None,
        }
    }
}

/// `JWT_ROLE_CLAIM`, `JWT_DEFAULT_ROLE`, `JWT_SCOPE_CLAIM`, `JWT_CUSTOMER_CLAIM` and
/// `JWT_CUSTOMER_MATCH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub role: ClaimPath,
    /// The role of a token whose role claim is missing or names no Tierwise role (an
    /// app's signed-in users, whose tokens carry no role at all); refused without one.
    pub default_role: Option<Role>,
    pub scope: ClaimPath,
    pub customer: ClaimPath,
    pub customer_match: CustomerMatch,
}

impl Default for ClaimMapping {
    /// Tierwise's own claim names.
    fn default() -> Self {
        Self {
            role: ClaimPath::new("role"),
            default_role: None,
            scope: ClaimPath::new("scope"),
            customer: ClaimPath::new("customer_id"),
            customer_match: CustomerMatch::Id,
        }
    }
}

impl ClaimMapping {
    /// The first Tierwise role the role claim names (a string, or a list such as
    /// Keycloak's, in which other roles are ignored), or the default role.
    pub fn role(&self, claims: &Value) -> Option<Role> {
        let named = match self.role.find(claims) {
            Some(Value::String(role)) => Role::parse(&role.to_ascii_lowercase()),
            Some(Value::Array(roles)) => roles
                .iter()
                .filter_map(Value::as_str)
                .find_map(|role| Role::parse(&role.to_ascii_lowercase())),
            _ => None,
        };
        named.or(self.default_role)
    }

    /// The scopes: a space-separated string (OAuth's `scope`) or a list (`scp`,
    /// `permissions`).
    pub fn scopes(&self, claims: &Value) -> Vec<String> {
        match self.scope.find(claims) {
            Some(Value::String(scopes)) => scopes.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(scopes)) => scopes
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The customer claim's value (a string or a number).
    pub fn customer(&self, claims: &Value) -> Option<String> {
        match self.customer.find(claims)? {
            Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_are_found_by_name_or_path() {
        let claims = json!({
            "realm_access": { "roles": ["offline_access", "Customer"] },
            "https://tierwise.example/roles": ["staff"],
            "scp": ["customers:read", "points:write"],
            "sub": "u-42"
        });
        let keycloak = ClaimMapping {
            role: ClaimPath::new("realm_access.roles"),
            ..ClaimMapping::default()
        };
        assert_eq!(keycloak.role(&claims), Some(Role::Customer));
        let auth0 = ClaimMapping {
            role: ClaimPath::new("https://tierwise.example/roles"),
            scope: ClaimPath::new("scp"),
            customer: ClaimPath::new("sub"),
            ..ClaimMapping::default()
        };
        assert_eq!(auth0.role(&claims), Some(Role::Staff));
        assert_eq!(auth0.scopes(&claims), ["customers:read", "points:write"]);
        assert_eq!(auth0.customer(&claims).as_deref(), Some("u-42"));
        let none = ClaimMapping::default();
        assert_eq!(none.role(&claims), None);
        let defaulted = ClaimMapping {
            default_role: Some(Role::Customer),
            ..ClaimMapping::default()
        };
        assert_eq!(defaulted.role(&claims), Some(Role::Customer));
    }
}
