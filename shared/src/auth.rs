//! Who is calling. `Authorization: Token <key>` is looked up by the SHA-256 of the key; the token
//! item carries a snapshot of the user's flags, so authenticating costs one GetItem.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, NOT_AUTHENTICATED, Result};
use crate::ids::Id;
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub uuid: Id,
    pub username: String,
    pub full_name: String,
    pub is_staff: bool,
    pub is_support: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User(AuthUser),
}

impl Principal {
    pub fn user(&self) -> Option<&AuthUser> {
        match self {
            Principal::User(user) => Some(user),
            Principal::Anonymous => None,
        }
    }

    /// The authenticated user, or 401.
    pub fn require_user(&self) -> Result<&AuthUser> {
        self.user()
            .ok_or_else(|| Error::NotAuthenticated(NOT_AUTHENTICATED.into()))
    }

    /// A staff user, or 401 (anonymous) / 403 (anyone else).
    pub fn require_staff(&self) -> Result<&AuthUser> {
        let user = self.require_user()?;
        if user.is_staff {
            Ok(user)
        } else {
            Err(Error::PermissionDenied)
        }
    }

    pub fn is_staff_or_support(&self) -> bool {
        self.user().is_some_and(|u| u.is_staff || u.is_support)
    }
}

/// The token item (`TOKEN#<sha256>` / `#META`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub entity: String,
    pub user_uuid: Id,
    pub username: String,
    #[serde(default)]
    pub full_name: String,
    pub is_staff: bool,
    pub is_support: bool,
    pub is_active: bool,
    pub created: String,
}

impl TokenItem {
    pub fn key(hash: &str) -> (String, String) {
        (format!("TOKEN#{hash}"), "#META".to_owned())
    }
}

/// A new API key: 40 hex digits (160 random bits), the shape of Waldur's keys.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Keys are random and long, so a plain SHA-256 is a sufficient one-way storage form; the store
/// never holds a key itself.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Reads the `Authorization` header the way DRF's TokenAuthentication does: another scheme (or
/// none) means anonymous; a malformed or unknown token is a 401 with DRF's texts.
pub async fn authenticate(store: &Store, authorization: Option<&str>) -> Result<Principal> {
    let Some(header) = authorization else {
        return Ok(Principal::Anonymous);
    };
    let mut words = header.split_whitespace();
    match words.next() {
        Some(scheme) if scheme.eq_ignore_ascii_case("token") => {}
        _ => return Ok(Principal::Anonymous),
    }
    let key = match (words.next(), words.next()) {
        (None, _) => {
            return Err(Error::NotAuthenticated(
                "Invalid token header. No credentials provided.".into(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Error::NotAuthenticated(
                "Invalid token header. Token string should not contain spaces.".into(),
            ));
        }
        (Some(key), None) => key,
    };
    let (pk, sk) = TokenItem::key(&token_hash(key));
    let token: TokenItem = store
        .get(&pk, &sk)
        .await?
        .ok_or_else(|| Error::NotAuthenticated("Invalid token.".into()))?;
    if !token.is_active {
        return Err(Error::NotAuthenticated("User inactive or deleted.".into()));
    }
    Ok(Principal::User(AuthUser {
        uuid: token.user_uuid,
        username: token.username,
        full_name: token.full_name,
        is_staff: token.is_staff,
        is_support: token.is_support,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_hashes_are_stable() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), a);
        assert_eq!(token_hash("abc").len(), 64);
    }

    #[test]
    fn roles_of_principals() {
        let staff = Principal::User(AuthUser {
            uuid: Id::new(),
            username: "s".into(),
            full_name: String::new(),
            is_staff: true,
            is_support: false,
        });
        assert!(staff.require_staff().is_ok());
        assert_eq!(
            Principal::Anonymous.require_staff().unwrap_err(),
            Error::NotAuthenticated(NOT_AUTHENTICATED.into())
        );
        let plain = Principal::User(AuthUser {
            uuid: Id::new(),
            username: "p".into(),
            full_name: String::new(),
            is_staff: false,
            is_support: true,
        });
        assert_eq!(plain.require_staff().unwrap_err(), Error::PermissionDenied);
        assert!(plain.is_staff_or_support());
    }
}
