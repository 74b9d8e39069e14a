//! The filters and orderings of the role list.

use super::Role;
use super::catalogue::ContentType;
use crate::error::Result;
use crate::page::Params;

/// `o=` values the list accepts (the official client's enum); `origin` orders system roles
/// apart from custom ones and `scope` by content type.
pub const ORDERING_FIELDS: [&str; 5] = ["name", "is_active", "users_count", "origin", "scope"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleQuery {
    pub name: Option<String>,
    pub description: Option<String>,
    pub query: Option<String>,
    pub content_types: Vec<String>,
    pub is_active: Option<bool>,
    pub is_system_role: Option<bool>,
    pub ordering: Vec<(String, bool)>,
}

impl RoleQuery {
    pub fn from_params(params: &Params) -> Result<Self> {
        let text = |key: &str| {
            params
                .get(key)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_lowercase)
        };
        Ok(RoleQuery {
            name: text("name"),
            description: text("description"),
            query: text("query"),
            content_types: params
                .get_all("content_type")
                .into_iter()
                .flat_map(|v| v.split(','))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect(),
            is_active: params.boolean("is_active"),
            is_system_role: params.boolean("is_system_role"),
            ordering: params.ordering(&ORDERING_FIELDS)?,
        })
    }

    /// Text filters are case-insensitive partial matches; `content_type` is exact (several
    /// values mean any of them; an unknown one matches nothing).
    pub fn matches(&self, role: &Role) -> bool {
        let contains = |haystack: &str, needle: &Option<String>| {
            needle
                .as_ref()
                .is_none_or(|n| haystack.to_lowercase().contains(n.as_str()))
        };
        contains(&role.name, &self.name)
            && contains(&role.description, &self.description)
            && self.query.as_ref().is_none_or(|q| {
                role.name.to_lowercase().contains(q.as_str())
                    || role.description.to_lowercase().contains(q.as_str())
            })
            && (self.content_types.is_empty()
                || self
                    .content_types
                    .iter()
                    .any(|c| ContentType::parse(c) == Some(role.content_type)))
            && self.is_active.is_none_or(|a| role.is_active == a)
            && self.is_system_role.is_none_or(|s| role.is_system_role == s)
    }

    /// Filters and orders roles that come ordered by name; later `o` fields break ties of
    /// earlier ones, and name stays the final tie-breaker.
    pub fn apply(&self, roles: Vec<Role>) -> Vec<Role> {
        let mut roles: Vec<Role> = roles.into_iter().filter(|r| self.matches(r)).collect();
        for (field, descending) in self.ordering.iter().rev() {
            roles.sort_by(|a, b| {
                let order = match field.as_str() {
                    "name" => a.name.cmp(&b.name),
                    "is_active" => a.is_active.cmp(&b.is_active),
                    "users_count" => a.users_count.cmp(&b.users_count),
                    "origin" => a.is_system_role.cmp(&b.is_system_role),
                    _ => a.content_type.as_str().cmp(b.content_type.as_str()),
                };
                if *descending { order.reverse() } else { order }
            });
        }
        roles
    }
}
