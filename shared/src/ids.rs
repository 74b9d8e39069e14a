//! Identifiers: UUIDs are accepted hyphenated or as 32 hex digits and always rendered as 32
//! lower-case hex digits, the form Waldur uses on the wire.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(Uuid);

impl Id {
    pub fn new() -> Self {
        Id(Uuid::new_v4())
    }

    /// Parses the two forms clients send; anything else (braces, URNs, odd lengths) is refused.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let valid_shape = match text.len() {
            32 => text.bytes().all(|b| b.is_ascii_hexdigit()),
            36 => text.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            }),
            _ => false,
        };
        if !valid_shape {
            return None;
        }
        Uuid::parse_str(text).ok().map(Id)
    }

    /// The uuid in an API URL of `collection` (`…/api/customers/<uuid>/`), or a bare uuid.
    pub fn from_reference(text: &str, collection: &str) -> Option<Self> {
        let marker = format!("/api/{collection}/");
        match text.find(&marker) {
            Some(at) => Id::parse(text[at + marker.len()..].trim_end_matches('/')),
            None => Id::parse(text),
        }
    }

    pub fn hex(&self) -> String {
        self.0.simple().to_string()
    }

    /// The same uuid for the same `name`, every time (a version 8 uuid of its SHA-256): for
    /// objects that arrive without one of their own, so that importing them again finds them.
    pub fn derived(name: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(name.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Id(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
}

impl Default for Id {
    fn default() -> Self {
        Id::new()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.simple(), f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0.simple())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Id::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("invalid uuid {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_wire_forms_and_renders_hex() {
        let hex = Id::parse("98e57408a1344b768156905e7d2f1523").unwrap();
        let dashed = Id::parse("98e57408-a134-4b76-8156-905e7d2f1523").unwrap();
        assert_eq!(hex, dashed);
        assert_eq!(dashed.to_string(), "98e57408a1344b768156905e7d2f1523");
        assert_eq!(Id::parse("98E57408A1344B768156905E7D2F1523"), Some(hex));
    }

    #[test]
    fn reads_api_urls() {
        let id = Id::parse("98e57408a1344b768156905e7d2f1523").unwrap();
        let url = "http://srv/api/projects/98e57408a1344b768156905e7d2f1523/";
        assert_eq!(Id::from_reference(url, "projects"), Some(id));
        assert_eq!(Id::from_reference(url, "customers"), None);
        assert_eq!(
            Id::from_reference("98e57408-a134-4b76-8156-905e7d2f1523", "users"),
            Some(id)
        );
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = Id::derived("grant:a");
        assert_eq!(a, Id::derived("grant:a"));
        assert_ne!(a, Id::derived("grant:b"));
        assert_eq!(Id::parse(&a.hex()), Some(a), "a derived id reads back");
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "",
            "123",
            "{98e57408-a134-4b76-8156-905e7d2f1523}",
            "urn:uuid:98e57408-a134-4b76-8156-905e7d2f1523",
            "98e57408a134-4b76-8156-905e7d2f15230",
            "../../etc/passwd",
            "98e57408a1344b768156905e7d2f152g",
        ] {
            assert_eq!(Id::parse(bad), None, "{bad}");
        }
    }
}
