//! Checks of JSON request bodies with Django REST framework's texts, shared by every input.

use serde_json::{Map, Value};

use crate::error::{Error, FIELD_REQUIRED, FieldErrors, Result};

pub const NOT_NULL: &str = "This field may not be null.";
pub const NOT_BLANK: &str = "This field may not be blank.";
pub const NOT_STRING: &str = "Not a valid string.";

/// The body as an object; no body is an empty object.
pub fn object<'a>(body: Option<&'a Value>, empty: &'a Map<String, Value>) -> Result<&'a Map<String, Value>> {
    match body {
        None | Some(Value::Null) => Ok(empty),
        Some(Value::Object(object)) => Ok(object),
        Some(other) => Err(Error::non_field(format!(
            "Invalid data. Expected a dictionary, but got {}.",
            json_type(other)
        ))),
    }
}

/// Python's name of a JSON value's type, as DRF's messages use it.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A trimmed string field of at most `max` characters; `None` when absent or invalid (the
/// problem is recorded in `errors`).
pub fn string(
    object: &Map<String, Value>,
    field: &str,
    max: usize,
    required: bool,
    allow_blank: bool,
    errors: &mut FieldErrors,
) -> Option<String> {
    match object.get(field) {
        None => {
            if required {
                errors.add(field, FIELD_REQUIRED);
            }
            None
        }
        Some(Value::Null) => {
            errors.add(field, NOT_NULL);
            None
        }
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.is_empty() && !allow_blank {
                errors.add(field, NOT_BLANK);
                None
            } else if text.chars().count() > max {
                errors.add(
                    field,
                    format!("Ensure this field has no more than {max} characters."),
                );
                None
            } else {
                Some(text.to_owned())
            }
        }
        Some(_) => {
            errors.add(field, NOT_STRING);
            None
        }
    }
}

/// A JSON boolean field; `None` when absent or null, or when invalid (recorded in `errors`).
pub fn boolean(object: &Map<String, Value>, field: &str, errors: &mut FieldErrors) -> Option<bool> {
    match object.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(flag)) => Some(*flag),
        Some(_) => {
            errors.add(field, "Must be a valid boolean.");
            None
        }
    }
}

/// Django's e-mail check in its essentials: something@domain.tld.
pub fn is_email(text: &str) -> bool {
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_checked_like_drf() {
        let body = json!({"a": "  x  ", "b": "", "c": null, "d": 5, "e": "ü".repeat(4)});
        let object = body.as_object().unwrap();
        let mut errors = FieldErrors::default();
        assert_eq!(
            string(object, "a", 10, true, false, &mut errors).as_deref(),
            Some("x")
        );
        assert_eq!(string(object, "b", 10, false, false, &mut errors), None);
        assert_eq!(
            string(object, "b", 10, false, true, &mut errors).as_deref(),
            Some("")
        );
        assert_eq!(string(object, "c", 10, false, true, &mut errors), None);
        assert_eq!(string(object, "d", 10, false, true, &mut errors), None);
        assert_eq!(string(object, "e", 3, false, true, &mut errors), None);
        assert_eq!(string(object, "missing", 3, true, true, &mut errors), None);
        assert_eq!(errors.messages("b"), [NOT_BLANK]);
        assert_eq!(errors.messages("c"), [NOT_NULL]);
        assert_eq!(errors.messages("d"), [NOT_STRING]);
        assert_eq!(
            errors.messages("e"),
            ["Ensure this field has no more than 3 characters."]
        );
        assert_eq!(errors.messages("missing"), [FIELD_REQUIRED]);
    }

    #[test]
    fn emails_and_bodies() {
        assert!(is_email("a@example.com"));
        for bad in ["", "a", "@example.com", "a@example", "a@.com", "a@com."] {
            assert!(!is_email(bad), "{bad}");
        }
        let empty = Map::new();
        assert!(object(None, &empty).unwrap().is_empty());
        assert_eq!(
            object(Some(&json!([1])), &empty).unwrap_err(),
            Error::non_field("Invalid data. Expected a dictionary, but got list.")
        );
    }
}
