//! The messages: one plain-text and one HTML template per kind and language in
//! `shared/templates/notify/` (`<kind>.<language>.txt`, whose first line is the subject, and
//! `<kind>.<language>.html`), rendered with minijinja. A language without a translation of a
//! kind falls back to English.

use std::sync::OnceLock;

use minijinja::{Environment, context};
use serde_json::{Value, json};

use super::recipients::{Recipient, scope_of};
use super::{Links, OutboxItem};
use crate::error::{Error, Result};
use crate::grants;
use crate::ids::Id;
use crate::time::Timestamp;

macro_rules! templates {
    ($($kind:literal),* $(,)?) => {
        &[$(
            (concat!($kind, ".en.txt"), include_str!(concat!("../../templates/notify/", $kind, ".en.txt"))),
            (concat!($kind, ".en.html"), include_str!(concat!("../../templates/notify/", $kind, ".en.html"))),
            (concat!($kind, ".de.txt"), include_str!(concat!("../../templates/notify/", $kind, ".de.txt"))),
            (concat!($kind, ".de.html"), include_str!(concat!("../../templates/notify/", $kind, ".de.html"))),
        )*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "permission_request_submitted",
    "permission_request_decided",
    "permission_review_created",
    "permission_review_reminder",
    "grant_expiring",
    "email_change_requested",
);

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|err| panic!("template {name}: {err}"));
        }
        env
    })
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders `kind` for one recipient in their language (English if there is no translation).
pub fn render(kind: &str, language: &str, context: &Value, to: &Recipient) -> Result<Message> {
    let env = environment();
    let language = if env.get_template(&format!("{kind}.{language}.txt")).is_ok() {
        language
    } else {
        "en"
    };
    let values = context! { recipient_name => to.name, ..minijinja::Value::from_serialize(context) };
    let draw = |extension: &str| -> Result<String> {
        env.get_template(&format!("{kind}.{language}.{extension}"))
            .and_then(|t| t.render(&values))
            .map_err(|err| Error::internal(format!("notification {kind}: {err}")))
    };
    let text = draw("txt")?;
    let (subject, body) = text.split_once('\n').unwrap_or((&text, ""));
    Ok(Message {
        subject: subject.trim().to_owned(),
        text: body.trim_start_matches('\n').to_owned(),
        html: draw("html")?,
    })
}

/// The values the templates of an item see: its payload, the scope's name, the link to the
/// review and the number of grants to review.
pub async fn context(
    store: &crate::store::Store,
    item: &OutboxItem,
    links: &Links,
    now: &Timestamp,
) -> Result<Value> {
    let mut values = item.payload.clone();
    let scope = ["approvers_of", "owners_of", "holder_and_managers_of"]
        .iter()
        .find_map(|field| item.recipients.get(*field))
        .or_else(|| item.payload.get("scope_type").map(|_| &item.payload))
        .map(scope_of)
        .transpose()?;
    if let (Some((scope_type, scope_uuid)), Value::Object(map)) = (scope, &mut values)
        && let Some((found, members)) =
            grants::scope_with_members(store, scope_type, &scope_uuid, None).await?
    {
        map.insert("scope_name".into(), json!(found.name()));
        map.insert(
            "grants_to_review".into(),
            json!(members.iter().filter(|m| m.is_active_at(now)).count()),
        );
    }
    if let Value::Object(map) = &mut values {
        if let Some(review) = map.get("review_uuid").and_then(Value::as_str).map(str::to_owned) {
            let link = format!("{}/reviews/{review}/", links.homeport);
            map.insert("review_link".into(), json!(link));
            // A review covers the grants of its scope when it opened (a customer's include its
            // projects'); the ones still to decide are its entries not yet revoked.
            if let Some((_, entries)) = match Id::parse(&review) {
                Some(uuid) => crate::reviews::with_entries(store, &uuid).await?,
                None => None,
            } {
                let undecided = entries.iter().filter(|e| e.revoked_at.is_none()).count();
                map.insert("grants_to_review".into(), json!(undecided));
            }
        }
        if let Some(request) = map.get("request_uuid").and_then(Value::as_str) {
            let link = format!("{}/permission-requests/{request}/", links.homeport);
            map.insert("request_link".into(), json!(link));
        }
    }
    Ok(values)
}
