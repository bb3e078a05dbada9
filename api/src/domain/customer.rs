//! Customer profile rules: what a valid name, e-mail, phone, tag or attribute set is.

use chrono::NaiveDate;
use serde_json::Value as Json;

use super::error::ensure;
use super::{DomainError, DomainResult};

pub const MAX_TAGS: usize = 50;

/// A trimmed, non-empty text of at most `max` characters.
pub fn text(value: &str, field: &str, max: usize) -> DomainResult<String> {
    let trimmed = value.trim();
    ensure(!trimmed.is_empty(), field, || "must not be empty".into())?;
    ensure(trimmed.chars().count() <= max, field, || {
        format!("must be at most {max} characters")
    })?;
    ensure(!trimmed.chars().any(char::is_control), field, || {
        "must not contain control characters".into()
    })?;
    Ok(trimmed.to_owned())
}

/// An optional text: `None` stays `None`; an empty string clears the field.
pub fn optional_text(value: Option<&str>, field: &str, max: usize) -> DomainResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => text(v, field, max).map(Some),
    }
}

pub fn name(value: &str, field: &str) -> DomainResult<String> {
    text(value, field, 200)
}

/// An e-mail address of the usual shape `local@domain.tld`, stored lower-cased.
pub fn email(value: Option<&str>, field: &str) -> DomainResult<Option<String>> {
    let Some(email) = optional_text(value, field, 254)? else {
        return Ok(None);
    };
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !email.contains(char::is_whitespace)
        }
        None => false,
    };
    ensure(valid, field, || "is not a valid e-mail address".into())?;
    Ok(Some(email.to_lowercase()))
}

/// A phone number: digits with an optional leading +, and spaces, dashes, dots or brackets.
pub fn phone(value: Option<&str>, field: &str) -> DomainResult<Option<String>> {
    let Some(phone) = optional_text(value, field, 40)? else {
        return Ok(None);
    };
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let allowed = phone
        .char_indices()
        .all(|(i, c)| c.is_ascii_digit() || " -.()".contains(c) || (c == '+' && i == 0));
    ensure(allowed && (5..=20).contains(&digits), field, || {
        "is not a valid phone number".into()
    })?;
    Ok(Some(phone))
}

pub fn external_ref(value: Option<&str>, field: &str) -> DomainResult<Option<String>> {
    optional_text(value, field, 200)
}

/// Tags: trimmed, de-duplicated, at most 50 of at most 100 characters, order kept.
pub fn tags(values: &[String], field: &str) -> DomainResult<Vec<String>> {
    let mut tags: Vec<String> = Vec::with_capacity(values.len());
    for (i, tag) in values.iter().enumerate() {
        let tag = text(tag, &format!("{field}[{i}]"), 100)?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    ensure(tags.len() <= MAX_TAGS, field, || {
        format!("at most {MAX_TAGS} tags")
    })?;
    Ok(tags)
}

/// The most values (objects, arrays and scalars, counted one each) `attributes` may
/// hold. A profile needs tens; 64 KiB of `[0,0,0,…]` is 32,000 values, each tens of bytes
/// in memory when a response is built, which 1,900 aliases made 4 GB.
pub const MAX_ATTRIBUTE_VALUES: usize = 1000;

/// Attributes must be a JSON object (so that `attributes.<key>` paths mean something),
/// of bounded size.
pub fn attributes(value: Json, field: &str) -> DomainResult<Json> {
    ensure(value.is_object(), field, || "must be a JSON object".into())?;
    let size = value.to_string().len();
    ensure(size <= 64 * 1024, field, || "must be at most 64 KiB".into())?;
    ensure(json_values(&value) <= MAX_ATTRIBUTE_VALUES, field, || {
        format!("must hold at most {MAX_ATTRIBUTE_VALUES} values")
    })?;
    Ok(value)
}

fn json_values(value: &Json) -> usize {
    1 + match value {
        Json::Array(items) => items.iter().map(json_values).sum(),
        Json::Object(fields) => fields.values().map(json_values).sum(),
        _ => 0,
    }
}

pub fn birthday(
    value: Option<NaiveDate>,
    field: &str,
    today: NaiveDate,
) -> DomainResult<Option<NaiveDate>> {
    if let Some(date) = value {
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1)
            .ok_or_else(|| DomainError::bad_input(field, "invalid"))?;
        ensure(date >= earliest && date <= today, field, || {
            "must be between 1900-01-01 and today".into()
        })?;
    }
    Ok(value)
}

/// The name someone who may not read a customer sees of it (on a referral screen): its
/// first letter and a full stop, "Z." for "Zhou Min", "王." for "王芳". One letter is what
/// a referral screen needs to tell two referrals apart, and too little to find the person.
pub fn public_name(name: &str) -> String {
    name.trim()
        .chars()
        .next()
        .map(|first| format!("{first}."))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_name_is_the_first_letter() {
        assert_eq!(public_name("Zhou Min"), "Z.");
        assert_eq!(public_name("  王芳"), "王.");
        assert_eq!(public_name(""), "");
    }

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            email(Some(" Li.Wei@Example.CN "), "e").unwrap().as_deref(),
            Some("li.wei@example.cn")
        );
        for bad in [
            "plainaddress",
            "a@b",
            "a@@b.cn",
            "a b@c.cn",
            "@c.cn",
            "a@.cn",
            "a@c.cn.",
        ] {
            assert!(email(Some(bad), "input.email").is_err(), "{bad}");
        }
        assert_eq!(email(Some(""), "e").unwrap(), None);
    }

    #[test]
    fn phones_are_checked() {
        assert!(phone(Some("+86 138-0013-8000"), "p").is_ok());
        assert!(phone(Some("call me"), "p").is_err());
        assert!(phone(Some("12"), "p").is_err());
        assert!(phone(Some("1+2345678"), "p").is_err());
    }

    #[test]
    fn names_and_tags_are_bounded() {
        assert!(
            name("  ", "input.name")
                .unwrap_err()
                .to_string()
                .contains("input.name")
        );
        assert!(name(&"x".repeat(201), "input.name").is_err());
        assert_eq!(
            tags(&["a".into(), " a ".into(), "b".into()], "t").unwrap(),
            vec!["a", "b"]
        );
        let many: Vec<String> = (0..51).map(|i| i.to_string()).collect();
        assert!(tags(&many, "input.tags").is_err());
    }

    #[test]
    fn attributes_hold_a_bounded_number_of_values() {
        let zeros = serde_json::json!({ "k": vec![0; 32_000] });
        assert!(attributes(zeros, "input.attributes").is_err());
        let fine = serde_json::json!({ "k": vec![0; 998] });
        assert!(attributes(fine, "input.attributes").is_ok());
    }

    #[test]
    fn attributes_must_be_an_object() {
        assert!(attributes(serde_json::json!([1, 2]), "input.attributes").is_err());
        assert!(
            attributes(
                serde_json::json!({"interests": ["tea"]}),
                "input.attributes"
            )
            .is_ok()
        );
    }
}
