//! Fixed vocabularies of roles: scope types, permission strings, description languages, and the
//! system roles every installation starts with.

use serde::{Deserialize, Serialize};

/// The scope type a role can be granted on (`content_type` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    Call,
    CallOrganizer,
    Customer,
    Offering,
    Project,
    Proposal,
    Resource,
    ResourceProject,
    ServiceProvider,
}

impl ContentType {
    pub const ALL: [ContentType; 9] = [
        ContentType::Call,
        ContentType::CallOrganizer,
        ContentType::Customer,
        ContentType::Offering,
        ContentType::Project,
        ContentType::Proposal,
        ContentType::Resource,
        ContentType::ResourceProject,
        ContentType::ServiceProvider,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ContentType::Call => "call",
            ContentType::CallOrganizer => "call_organizer",
            ContentType::Customer => "customer",
            ContentType::Offering => "offering",
            ContentType::Project => "project",
            ContentType::Proposal => "proposal",
            ContentType::Resource => "resource",
            ContentType::ResourceProject => "resource_project",
            ContentType::ServiceProvider => "service_provider",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        ContentType::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// The languages a role description is kept in (`description_<code>`).
pub const LANGUAGES: [&str; 14] = [
    "en", "et", "lt", "lv", "ru", "it", "de", "da", "sv", "es", "fr", "nb", "ar", "cs",
];

/// Every permission string the API accepts: Waldur's `PermissionEnum`, plus the two strings its
/// own system roles carry (`RESOURCE.LIST_USERS`, `RESOURCE.COMPLETE_DOWNSCALING`), so that a role
/// read from the API can always be written back.
pub const PERMISSIONS: &[&str] = &[
    "SERVICE_PROVIDER.REGISTER",
    "OFFERING.CREATE",
    "OFFERING.DELETE",
    "OFFERING.UPDATE_THUMBNAIL",
    "OFFERING.UPDATE",
    "OFFERING.UPDATE_ATTRIBUTES",
    "OFFERING.UPDATE_LOCATION",
    "OFFERING.UPDATE_DESCRIPTION",
    "OFFERING.UPDATE_OPTIONS",
    "OFFERING.UPDATE_INTEGRATION",
    "OFFERING.ADD_ENDPOINT",
    "OFFERING.DELETE_ENDPOINT",
    "OFFERING.UPDATE_COMPONENTS",
    "OFFERING.PAUSE",
    "OFFERING.UNPAUSE",
    "OFFERING.ARCHIVE",
    "OFFERING.DRY_RUN_SCRIPT",
    "OFFERING.MANAGE_CAMPAIGN",
    "OFFERING.MANAGE_USER_GROUP",
    "OFFERING.CREATE_PLAN",
    "OFFERING.UPDATE_PLAN",
    "OFFERING.ARCHIVE_PLAN",
    "OFFERING.CREATE_SCREENSHOT",
    "OFFERING.UPDATE_SCREENSHOT",
    "OFFERING.DELETE_SCREENSHOT",
    "OFFERING.CREATE_USER",
    "OFFERING.UPDATE_USER",
    "OFFERING.DELETE_USER",
    "OFFERING.MANAGE_USER_ROLE",
    "RESOURCE.CREATE_ROBOT_ACCOUNT",
    "RESOURCE.UPDATE_ROBOT_ACCOUNT",
    "RESOURCE.DELETE_ROBOT_ACCOUNT",
    "ORDER.APPROVE_PRIVATE",
    "ORDER.APPROVE",
    "ORDER.REJECT",
    "ORDER.DESTROY",
    "ORDER.CANCEL",
    "RESOURCE.TERMINATE",
    "RESOURCE.LIST_IMPORTABLE",
    "RESOURCE.SET_END_DATE",
    "RESOURCE.SET_USAGE",
    "RESOURCE.SET_PLAN",
    "RESOURCE.SET_LIMITS",
    "RESOURCE.SET_BACKEND_ID",
    "RESOURCE.SUBMIT_REPORT",
    "RESOURCE.SET_BACKEND_METADATA",
    "RESOURCE.UPDATE_OPTIONS",
    "RESOURCE.ACCEPT_BOOKING_REQUEST",
    "RESOURCE.REJECT_BOOKING_REQUEST",
    "RESOURCE.MANAGE_USERS",
    "PROJECT.CREATE_PERMISSION",
    "CUSTOMER.CREATE_PERMISSION",
    "OFFERING.CREATE_PERMISSION",
    "CALL.CREATE_PERMISSION",
    "PROPOSAL.MANAGE",
    "PROJECT.UPDATE_PERMISSION",
    "CUSTOMER.UPDATE_PERMISSION",
    "OFFERING.UPDATE_PERMISSION",
    "CALL.UPDATE_PERMISSION",
    "PROPOSAL.UPDATE_PERMISSION",
    "PROJECT.DELETE_PERMISSION",
    "CUSTOMER.DELETE_PERMISSION",
    "OFFERING.DELETE_PERMISSION",
    "CALL.DELETE_PERMISSION",
    "PROPOSAL.DELETE_PERMISSION",
    "LEXIS_LINK.CREATE",
    "LEXIS_LINK.DELETE",
    "PROJECT.CREATE",
    "PROJECT.DELETE",
    "PROJECT.UPDATE",
    "CUSTOMER.CREATE",
    "CUSTOMER.UPDATE",
    "CUSTOMER.DELETE",
    "OFFERING.ACCEPT_CALL_REQUEST",
    "CALL.APPROVE_AND_REJECT_PROPOSALS",
    "CALL.CLOSE_ROUNDS",
    "ACCESS_SUBNET.CREATE",
    "ACCESS_SUBNET.UPDATE",
    "ACCESS_SUBNET.DELETE",
    "OFFERINGUSER.UPDATE_RESTRICTION",
    "RESOURCE.LIST_USERS",
    "RESOURCE.COMPLETE_DOWNSCALING",
];

pub fn is_known_permission(name: &str) -> bool {
    PERMISSIONS.contains(&name)
}

/// A role created by the bootstrap; uuids and permission lists are those of a Waldur server, so
/// scripts written against Waldur keep working.
pub struct SystemRole {
    pub uuid: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub description_en: Option<&'static str>,
    pub content_type: ContentType,
    pub permissions: &'static [&'static str],
}

pub const SYSTEM_ROLES: &[SystemRole] = &[
    SystemRole {
        uuid: "059e1ec5952c477fb78bf2df0fa3a931",
        name: "CALL.MANAGER",
        description: "Call manager",
        description_en: Some("Call manager"),
        content_type: ContentType::Call,
        permissions: &["CALL.APPROVE_AND_REJECT_PROPOSALS", "CALL.CLOSE_ROUNDS"],
    },
    SystemRole {
        uuid: "63f4f789e0284af0908bb295ced678bb",
        name: "CALL.REVIEWER",
        description: "",
        description_en: None,
        content_type: ContentType::Call,
        permissions: &[],
    },
    SystemRole {
        uuid: "0532d62c598349a8aab093438500bc76",
        name: "CUSTOMER.MANAGER",
        description: "Organization manager",
        description_en: Some("Organization manager"),
        content_type: ContentType::Customer,
        permissions: &[
            "RESOURCE.SUBMIT_REPORT",
            "OFFERING.UPDATE",
            "OFFERING.UPDATE_ATTRIBUTES",
            "OFFERING.UPDATE_COMPONENTS",
            "RESOURCE.DELETE_ROBOT_ACCOUNT",
            "RESOURCE.REJECT_BOOKING_REQUEST",
            "RESOURCE.COMPLETE_DOWNSCALING",
            "RESOURCE.SET_END_DATE",
            "OFFERING.PAUSE",
            "OFFERING.UPDATE_OPTIONS",
            "OFFERING.DELETE_ENDPOINT",
            "OFFERING.UNPAUSE",
            "OFFERING.DRY_RUN_SCRIPT",
            "RESOURCE.LIST_USERS",
            "OFFERING.UPDATE_LOCATION",
            "OFFERING.MANAGE_CAMPAIGN",
            "RESOURCE.ACCEPT_BOOKING_REQUEST",
            "OFFERING.ADD_ENDPOINT",
            "OFFERING.ARCHIVE",
            "OFFERING.UPDATE_DESCRIPTION",
            "RESOURCE.CREATE_ROBOT_ACCOUNT",
            "OFFERING.UPDATE_THUMBNAIL",
            "RESOURCE.SET_BACKEND_ID",
            "RESOURCE.UPDATE_ROBOT_ACCOUNT",
            "OFFERING.UPDATE_INTEGRATION",
            "RESOURCE.SET_BACKEND_METADATA",
            "OFFERING.MANAGE_USER_GROUP",
            "OFFERINGUSER.UPDATE_RESTRICTION",
        ],
    },
    SystemRole {
        uuid: "afab8022f4df457fba97346cd4c6a4a1",
        name: "CUSTOMER.OWNER",
        description: "Organization owner",
        description_en: Some("Organization owner"),
        content_type: ContentType::Customer,
        permissions: &[
            "CUSTOMER.DELETE",
            "OFFERING.UPDATE_ATTRIBUTES",
            "OFFERING.CREATE_PLAN",
            "RESOURCE.DELETE_ROBOT_ACCOUNT",
            "OFFERING.ACCEPT_CALL_REQUEST",
            "RESOURCE.LIST_IMPORTABLE",
            "RESOURCE.SET_USAGE",
            "ORDER.REJECT",
            "CALL.APPROVE_AND_REJECT_PROPOSALS",
            "ACCESS_SUBNET.UPDATE",
            "PROJECT.UPDATE",
            "ORDER.APPROVE",
            "OFFERING.MANAGE_CAMPAIGN",
            "OFFERING.ADD_ENDPOINT",
            "OFFERING.UPDATE_INTEGRATION",
            "RESOURCE.UPDATE_ROBOT_ACCOUNT",
            "CUSTOMER.UPDATE",
            "OFFERING.UPDATE_PERMISSION",
            "OFFERING.DELETE_PERMISSION",
            "RESOURCE.SUBMIT_REPORT",
            "OFFERING.UPDATE_USER",
            "OFFERING.UPDATE",
            "ORDER.DESTROY",
            "RESOURCE.SET_PLAN",
            "PROJECT.UPDATE_PERMISSION",
            "RESOURCE.MANAGE_USERS",
            "OFFERING.ARCHIVE_PLAN",
            "RESOURCE.TERMINATE",
            "RESOURCE.LIST_USERS",
            "OFFERING.UPDATE_SCREENSHOT",
            "PROJECT.CREATE_PERMISSION",
            "OFFERING.ARCHIVE",
            "RESOURCE.SET_BACKEND_ID",
            "RESOURCE.SET_LIMITS",
            "OFFERING.UPDATE_COMPONENTS",
            "OFFERING.MANAGE_USER_ROLE",
            "RESOURCE.REJECT_BOOKING_REQUEST",
            "RESOURCE.COMPLETE_DOWNSCALING",
            "RESOURCE.SET_END_DATE",
            "OFFERING.DELETE_SCREENSHOT",
            "OFFERING.UPDATE_PLAN",
            "RESOURCE.UPDATE_OPTIONS",
            "OFFERING.DELETE_ENDPOINT",
            "OFFERING.UNPAUSE",
            "OFFERING.DRY_RUN_SCRIPT",
            "OFFERING.CREATE_USER",
            "PROJECT.CREATE",
            "OFFERING.UPDATE_DESCRIPTION",
            "OFFERING.UPDATE_THUMBNAIL",
            "RESOURCE.SET_BACKEND_METADATA",
            "OFFERINGUSER.UPDATE_RESTRICTION",
            "OFFERING.CREATE_PERMISSION",
            "OFFERING.CREATE",
            "ACCESS_SUBNET.CREATE",
            "ORDER.APPROVE_PRIVATE",
            "PROJECT.DELETE_PERMISSION",
            "OFFERING.PAUSE",
            "OFFERING.CREATE_SCREENSHOT",
            "OFFERING.UPDATE_OPTIONS",
            "ORDER.CANCEL",
            "OFFERING.DELETE_USER",
            "OFFERING.UPDATE_LOCATION",
            "CALL.CLOSE_ROUNDS",
            "RESOURCE.ACCEPT_BOOKING_REQUEST",
            "OFFERING.DELETE",
            "CUSTOMER.CREATE",
            "PROJECT.DELETE",
            "ACCESS_SUBNET.DELETE",
            "RESOURCE.CREATE_ROBOT_ACCOUNT",
            "OFFERING.MANAGE_USER_GROUP",
            // Beyond Waldur's list: owners manage the roles of their own organisation.
            "CUSTOMER.CREATE_PERMISSION",
            "CUSTOMER.UPDATE_PERMISSION",
            "CUSTOMER.DELETE_PERMISSION",
        ],
    },
    SystemRole {
        uuid: "ba2566b01ed44752a8747823c89c3d1a",
        name: "CUSTOMER.READER",
        description: "",
        description_en: None,
        content_type: ContentType::Customer,
        permissions: &[],
    },
    SystemRole {
        uuid: "7a54bcc72de64bddad11c6c514067470",
        name: "CUSTOMER.SUPPORT",
        description: "",
        description_en: None,
        content_type: ContentType::Customer,
        permissions: &[],
    },
    SystemRole {
        uuid: "17214c3d2873479d9a174c6672d67986",
        name: "OFFERING.MANAGER",
        description: "Offering manager",
        description_en: Some("Offering manager"),
        content_type: ContentType::Offering,
        permissions: &[
            "OFFERING.UPDATE",
            "OFFERING.UPDATE_ATTRIBUTES",
            "OFFERING.UPDATE_COMPONENTS",
            "RESOURCE.REJECT_BOOKING_REQUEST",
            "OFFERING.ACCEPT_CALL_REQUEST",
            "RESOURCE.SET_USAGE",
            "OFFERING.PAUSE",
            "OFFERING.UPDATE_OPTIONS",
            "OFFERING.DELETE_ENDPOINT",
            "OFFERING.UNPAUSE",
            "OFFERING.DRY_RUN_SCRIPT",
            "OFFERING.UPDATE_LOCATION",
            "RESOURCE.ACCEPT_BOOKING_REQUEST",
            "OFFERING.ADD_ENDPOINT",
            "OFFERING.ARCHIVE",
            "OFFERING.UPDATE_DESCRIPTION",
            "OFFERING.UPDATE_INTEGRATION",
            "RESOURCE.SET_BACKEND_METADATA",
            "RESOURCE.SET_BACKEND_ID",
        ],
    },
    SystemRole {
        uuid: "85ae032608494d65a02605e5644767f3",
        name: "PROJECT.ADMIN",
        description: "Project administrator",
        description_en: Some("Project administrator"),
        content_type: ContentType::Project,
        permissions: &[
            "ORDER.CANCEL",
            "RESOURCE.LIST_IMPORTABLE",
            "RESOURCE.SET_LIMITS",
            "ORDER.DESTROY",
            "RESOURCE.SET_PLAN",
            "RESOURCE.TERMINATE",
            "ORDER.APPROVE_PRIVATE",
        ],
    },
    SystemRole {
        uuid: "667a517eba64403e9b7472bb48c31e3a",
        name: "PROJECT.MANAGER",
        description: "Project manager",
        description_en: Some("Project manager"),
        content_type: ContentType::Project,
        permissions: &[
            "ORDER.CANCEL",
            "PROJECT.UPDATE",
            "RESOURCE.SET_LIMITS",
            "ORDER.DESTROY",
            "RESOURCE.SET_PLAN",
            "PROJECT.CREATE_PERMISSION",
            "ORDER.APPROVE_PRIVATE",
            "PROJECT.DELETE_PERMISSION",
            "PROJECT.UPDATE_PERMISSION",
            "RESOURCE.LIST_IMPORTABLE",
            "RESOURCE.TERMINATE",
        ],
    },
    SystemRole {
        uuid: "9c9547bad0d742adafd4d54ef992e605",
        name: "PROJECT.MEMBER",
        description: "",
        description_en: None,
        content_type: ContentType::Project,
        permissions: &[],
    },
    SystemRole {
        uuid: "e5b98b030ba949e1b5ab1381fb2557c7",
        name: "PROPOSAL.MANAGER",
        description: "Proposal manager",
        description_en: Some("Proposal manager"),
        content_type: ContentType::Proposal,
        permissions: &["PROPOSAL.MANAGE"],
    },
    SystemRole {
        uuid: "cd19eb3f13324548b4a7309e311c047b",
        name: "PROPOSAL.MEMBER",
        description: "",
        description_en: None,
        content_type: ContentType::Proposal,
        permissions: &[],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_roles_use_known_permissions_and_unique_names() {
        let mut names: Vec<_> = SYSTEM_ROLES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 12);
        for role in SYSTEM_ROLES {
            assert!(crate::ids::Id::parse(role.uuid).is_some(), "{}", role.name);
            for permission in role.permissions {
                assert!(is_known_permission(permission), "{} has {permission}", role.name);
            }
        }
        assert_eq!(PERMISSIONS.len(), 82);
    }

    #[test]
    fn content_types_round_trip() {
        for content_type in ContentType::ALL {
            assert_eq!(ContentType::parse(content_type.as_str()), Some(content_type));
        }
        assert_eq!(ContentType::parse("Customer"), None);
    }
}
