//! Validation of role bodies, with Django REST framework's texts.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Role;
use super::catalogue::{ContentType, LANGUAGES, is_known_permission};
use crate::error::{Error, FIELD_REQUIRED, FieldErrors, Result};
use crate::ids::Id;
use crate::time::{self, Timestamp};
use crate::validate::{self, NOT_NULL};

const NAME_MAX: usize = 150;
const DESCRIPTION_MAX: usize = 2000;

/// Which request the body belongs to: create and PUT need the whole role, PATCH any part of
/// it, `update_descriptions` only descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    Create,
    Replace,
    Partial,
    Descriptions,
}

/// Validated changes to a role; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleInput {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `description_<language>`: `Some(None)` clears a translation.
    pub translations: Vec<(&'static str, Option<String>)>,
    pub permissions: Option<Vec<String>>,
    pub content_type: Option<ContentType>,
    pub is_active: Option<bool>,
}

impl RoleInput {
    /// Checks a JSON body. Unknown keys are ignored, as DRF does; every problem is reported at
    /// once as field errors.
    pub fn parse(body: Option<&Value>, mode: InputMode) -> Result<Self> {
        let empty = serde_json::Map::new();
        let object = validate::object(body, &empty)?;
        let whole = matches!(mode, InputMode::Create | InputMode::Replace);
        let mut errors = FieldErrors::default();
        let mut input = RoleInput::default();

        if mode != InputMode::Descriptions {
            input.name = validate::string(object, "name", NAME_MAX, whole, false, &mut errors);
            input.content_type = content_type_field(object, whole, &mut errors);
            input.permissions = permissions_field(object, whole, &mut errors);
            input.is_active = match object.get("is_active") {
                None => None,
                Some(Value::Bool(active)) => Some(*active),
                Some(Value::Null) => {
                    errors.add("is_active", NOT_NULL);
                    None
                }
                Some(_) => {
                    errors.add("is_active", "Must be a valid boolean.");
                    None
                }
            };
        }
        input.description =
            validate::string(object, "description", DESCRIPTION_MAX, false, true, &mut errors);
        for language in LANGUAGES {
            let field = format!("description_{language}");
            if let Some(value) = nullable_string_field(object, &field, &mut errors) {
                input.translations.push((language, value));
            }
        }
        errors.into_result(input)
    }

    pub(super) fn apply_to_new(&self, uuid: Id, now: &Timestamp) -> Result<Role> {
        let (Some(name), Some(content_type), Some(_)) = (&self.name, self.content_type, &self.permissions)
        else {
            return Err(Error::internal(
                "a new role needs name, content_type and permissions",
            ));
        };
        let blank = Role {
            uuid,
            name: name.clone(),
            description: String::new(),
            translations: BTreeMap::new(),
            permissions: Vec::new(),
            content_type,
            is_system_role: false,
            is_active: true,
            users_count: 0,
            created: time::storage(now),
            version: 0,
            customer_uuid: None,
            template_uuid: None,
            concealed_in: Vec::new(),
        };
        self.apply_to(&blank)
    }

    pub(super) fn apply_to(&self, role: &Role) -> Result<Role> {
        let mut updated = role.clone();
        if let Some(name) = &self.name {
            updated.name = name.clone();
        }
        if let Some(content_type) = self.content_type {
            updated.content_type = content_type;
        }
        if let Some(permissions) = &self.permissions {
            updated.permissions = permissions.clone();
        }
        if let Some(active) = self.is_active {
            updated.is_active = active;
        }
        for (language, text) in &self.translations {
            match text {
                Some(text) => updated.translations.insert((*language).to_owned(), text.clone()),
                None => updated.translations.remove(*language),
            };
        }
        // `description` is the English text: setting one of the two sets the other, as
        // Waldur's translated field does for its default language.
        let english_given = self.translations.iter().any(|(language, _)| *language == "en");
        match (&self.description, english_given) {
            (Some(description), false) => {
                updated.description = description.clone();
                if description.is_empty() {
                    updated.translations.remove("en");
                } else {
                    updated.translations.insert("en".into(), description.clone());
                }
            }
            (Some(description), true) => updated.description = description.clone(),
            (None, true) => {
                updated.description = updated.translations.get("en").cloned().unwrap_or_default();
            }
            (None, false) => {}
        }
        Ok(updated)
    }
}

fn nullable_string_field(
    object: &serde_json::Map<String, Value>,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<Option<String>> {
    match object.get(field) {
        Some(Value::Null) => Some(None),
        Some(_) => validate::string(object, field, DESCRIPTION_MAX, false, true, errors)
            .map(|text| Some(text).filter(|t| !t.is_empty())),
        None => None,
    }
}

fn content_type_field(
    object: &serde_json::Map<String, Value>,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<ContentType> {
    match object.get("content_type") {
        None if required => {
            errors.add("content_type", FIELD_REQUIRED);
            None
        }
        None => None,
        Some(Value::Null) => {
            errors.add("content_type", NOT_NULL);
            None
        }
        Some(value) => {
            let parsed = value.as_str().and_then(ContentType::parse);
            if parsed.is_none() {
                errors.add("content_type", "Invalid content type.");
            }
            parsed
        }
    }
}

/// `permissions` as a list of names, or as an object whose keys are the names (the only shape
/// the official client can send).
fn permissions_field(
    object: &serde_json::Map<String, Value>,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<Vec<String>> {
    let names: Vec<String> = match object.get("permissions") {
        None => {
            if required {
                errors.add("permissions", FIELD_REQUIRED);
            }
            return None;
        }
        Some(Value::Null) => {
            errors.add("permissions", NOT_NULL);
            return None;
        }
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        Some(Value::Array(items)) => {
            let names: Option<Vec<String>> = items.iter().map(|v| v.as_str().map(str::to_owned)).collect();
            match names {
                Some(names) => names,
                None => {
                    errors.add("permissions", "Every permission must be a string.");
                    return None;
                }
            }
        }
        Some(other) => {
            errors.add(
                "permissions",
                format!(
                    "Expected a list of permissions or an object keyed by permission, but got {}.",
                    validate::json_type(other)
                ),
            );
            return None;
        }
    };
    let mut unique: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    let mut unknown: Vec<&str> = unique
        .iter()
        .map(String::as_str)
        .filter(|name| !is_known_permission(name))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        errors.add(
            "permissions",
            format!("Invalid permissions {}", unknown.join(",")),
        );
        return None;
    }
    Some(unique)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{NOT_BLANK, NOT_STRING};
    use serde_json::json;

    fn parse(body: Value, mode: InputMode) -> Result<RoleInput> {
        RoleInput::parse(Some(&body), mode)
    }

    #[test]
    fn create_requires_the_three_fields() {
        let err = parse(json!({}), InputMode::Create).unwrap_err();
        let Error::Invalid(errors) = err else {
            panic!("{err:?}")
        };
        for field in ["name", "content_type", "permissions"] {
            assert_eq!(errors.messages(field), [FIELD_REQUIRED], "{field}");
        }
        assert!(parse(json!({}), InputMode::Partial).unwrap() == RoleInput::default());
    }

    #[test]
    fn permissions_as_list_or_object() {
        let list = parse(
            json!({"permissions": ["PROJECT.CREATE", "PROJECT.CREATE"]}),
            InputMode::Partial,
        )
        .unwrap();
        assert_eq!(list.permissions.unwrap(), vec!["PROJECT.CREATE"]);
        let object = parse(
            json!({"permissions": {"PROJECT.CREATE": true, "ORDER.APPROVE": true}}),
            InputMode::Partial,
        )
        .unwrap();
        assert_eq!(
            object.permissions.unwrap(),
            vec!["PROJECT.CREATE", "ORDER.APPROVE"]
        );
        let err = parse(
            json!({"permissions": ["B.X", "A.Y", "PROJECT.CREATE"]}),
            InputMode::Partial,
        )
        .unwrap_err();
        assert_eq!(err, Error::field("permissions", "Invalid permissions A.Y,B.X"));
        assert!(parse(json!({"permissions": "PROJECT.CREATE"}), InputMode::Partial).is_err());
        assert!(parse(json!({"permissions": [1]}), InputMode::Partial).is_err());
    }

    #[test]
    fn wrong_types_and_lengths() {
        let body = json!({
            "name": 5,
            "content_type": "planet",
            "is_active": "yes",
            "description": "x".repeat(2001),
            "description_de": null,
        });
        let Error::Invalid(errors) = parse(body, InputMode::Partial).unwrap_err() else {
            panic!()
        };
        assert_eq!(errors.messages("name"), [NOT_STRING]);
        assert_eq!(errors.messages("content_type"), ["Invalid content type."]);
        assert_eq!(errors.messages("is_active"), ["Must be a valid boolean."]);
        assert_eq!(
            errors.messages("description"),
            ["Ensure this field has no more than 2000 characters."]
        );
        assert!(errors.messages("description_de").is_empty());
        let long_name = "ü".repeat(151);
        assert!(parse(json!({"name": long_name}), InputMode::Partial).is_err());
        assert!(parse(json!({"name": "ü".repeat(150)}), InputMode::Partial).is_ok());
        assert_eq!(
            parse(json!({"name": "   "}), InputMode::Partial).unwrap_err(),
            Error::field("name", NOT_BLANK)
        );
        assert_eq!(
            parse(json!([1]), InputMode::Partial).unwrap_err(),
            Error::non_field("Invalid data. Expected a dictionary, but got list.")
        );
    }

    #[test]
    fn descriptions_mode_ignores_other_fields() {
        let input = parse(
            json!({"name": "X", "description_et": "Kirjeldus"}),
            InputMode::Descriptions,
        )
        .unwrap();
        assert_eq!(input.name, None);
        assert_eq!(input.translations, vec![("et", Some("Kirjeldus".to_owned()))]);
    }

    #[test]
    fn english_description_follows_the_default_one() {
        let role = parse(
            json!({"name": "A.B", "content_type": "customer", "permissions": [], "description": "d"}),
            InputMode::Create,
        )
        .unwrap()
        .apply_to_new(Id::new(), &time::now())
        .unwrap();
        assert_eq!(role.translation("en"), Some("d"));
        let patched = parse(json!({"description_en": "e"}), InputMode::Partial)
            .unwrap()
            .apply_to(&role)
            .unwrap();
        assert_eq!(
            (patched.description.as_str(), patched.translation("en")),
            ("e", Some("e"))
        );
    }
}
