//! The keys that keep API tokens unusable in a dump of the table. A token is stored encrypted
//! (AES-256-GCM, so its owner can be shown it again and a login can answer it) and is found by a
//! keyed hash (HMAC-SHA-256) of the key the client sends; neither key is in the table.
//!
//! The keys come from the function's configuration, `TOKEN_KEYS` (or a file named by
//! `TOKEN_KEYS_FILE`): a comma-separated ring `id=secret,...`, the first being the current key.
//! Tokens are sealed and hashed with the current key; lookups try every key of the ring in one
//! read, so a new key is rolled in without logging anybody out (docs/security.md).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// A secret shorter than this is refused: it would be guessable.
const MIN_SECRET_LEN: usize = 32;
const NONCE_LEN: usize = 12;

struct TokenKey {
    id: String,
    cipher: Aes256Gcm,
    lookup: Hmac<Sha256>,
}

impl TokenKey {
    fn derive(id: &str, secret: &str) -> Result<Self> {
        if id.is_empty() || id.contains(['=', ',', ':']) || secret.len() < MIN_SECRET_LEN {
            return Err(Error::internal(format!(
                "token key {id:?}: an id and a secret of at least {MIN_SECRET_LEN} characters are needed"
            )));
        }
        let hkdf = Hkdf::<Sha256>::new(Some(b"rbac token keys"), secret.as_bytes());
        let mut encryption = [0u8; 32];
        let mut lookup = [0u8; 32];
        hkdf.expand(b"encryption", &mut encryption)
            .map_err(Error::internal)?;
        hkdf.expand(b"lookup", &mut lookup).map_err(Error::internal)?;
        Ok(TokenKey {
            id: id.to_owned(),
            cipher: Aes256Gcm::new(&encryption.into()),
            lookup: <Hmac<Sha256> as Mac>::new_from_slice(&lookup).map_err(Error::internal)?,
        })
    }

    fn hash(&self, token: &str) -> String {
        let mut mac = self.lookup.clone();
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A token as stored: the id of the key that sealed it and `nonce || ciphertext`, base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub ciphertext: String,
}

/// The ring of token keys, the current one first.
pub struct TokenKeys {
    keys: Vec<TokenKey>,
}

impl TokenKeys {
    /// Reads `id=secret,id=secret` (the current key first).
    pub fn parse(ring: &str) -> Result<Self> {
        let keys = ring
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (id, secret) = entry
                    .split_once('=')
                    .ok_or_else(|| Error::internal("a token key is written id=secret"))?;
                TokenKey::derive(id.trim(), secret.trim())
            })
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(Error::internal("the token key ring is empty"));
        }
        Ok(TokenKeys { keys })
    }

    /// The ring of the function's configuration: `TOKEN_KEYS`, or the file `TOKEN_KEYS_FILE`.
    pub fn from_env() -> Result<Self> {
        if let Ok(ring) = std::env::var("TOKEN_KEYS") {
            return Self::parse(&ring);
        }
        let path = std::env::var("TOKEN_KEYS_FILE")
            .map_err(|_| Error::internal("neither TOKEN_KEYS nor TOKEN_KEYS_FILE is set"))?;
        let ring =
            std::fs::read_to_string(&path).map_err(|e| Error::internal(format!("reading {path}: {e}")))?;
        Self::parse(&ring)
    }

    /// A ring of one random key, known to this process only (tests, and tools whose tokens
    /// need not outlive them).
    pub fn ephemeral() -> Self {
        Self::parse(&format!("ephemeral={}", random_secret())).expect("a random key is valid")
    }

    /// The keyed hash a token is stored under now.
    pub fn hash(&self, token: &str) -> String {
        self.keys[0].hash(token)
    }

    /// The hashes a token may be stored under, one per key of the ring, the current first.
    pub fn lookup_hashes(&self, token: &str) -> Vec<String> {
        self.keys.iter().map(|key| key.hash(token)).collect()
    }

    /// Whether `key_id` names the current key (else the token is re-keyed when next used).
    pub fn is_current(&self, key_id: &str) -> bool {
        self.keys[0].id == key_id
    }

    pub fn seal(&self, token: &str) -> Result<Sealed> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
        let ciphertext = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), token.as_bytes())
            .map_err(|_| Error::internal("sealing a token failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        Ok(Sealed {
            key_id: key.id.clone(),
            ciphertext: STANDARD_NO_PAD.encode(sealed),
        })
    }

    /// The token sealed in `sealed`; an error when its key is no longer in the ring or the
    /// ciphertext was tampered with.
    pub fn open(&self, sealed: &Sealed) -> Result<String> {
        let key = self
            .keys
            .iter()
            .find(|key| key.id == sealed.key_id)
            .ok_or_else(|| Error::internal(format!("token key {} is not in the ring", sealed.key_id)))?;
        let bytes = STANDARD_NO_PAD
            .decode(&sealed.ciphertext)
            .map_err(|_| Error::internal("a sealed token is not base64"))?;
        if bytes.len() <= NONCE_LEN {
            return Err(Error::internal("a sealed token is too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| Error::internal("a sealed token does not open"))?;
        String::from_utf8(plain).map_err(|_| Error::internal("a sealed token is not text"))
    }
}

/// 256 random bits, hex: a new key's secret (`admin new-token-key`, `make dev`).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's randomness");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_with_their_key_only() {
        let ring = TokenKeys::ephemeral();
        let sealed = ring.seal("0123456789abcdef").unwrap();
        assert_ne!(sealed.ciphertext, "0123456789abcdef");
        assert_eq!(ring.open(&sealed).unwrap(), "0123456789abcdef");
        let other = TokenKeys::ephemeral();
        assert!(other.open(&sealed).is_err(), "another ring's key of the same id");
        let mut bytes = STANDARD_NO_PAD.decode(&sealed.ciphertext).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        let tampered = Sealed {
            ciphertext: STANDARD_NO_PAD.encode(bytes),
            ..sealed
        };
        assert!(
            ring.open(&tampered).is_err(),
            "a changed ciphertext does not open"
        );
    }

    #[test]
    fn a_rolled_ring_still_finds_and_opens_old_tokens() {
        let old_secret = random_secret();
        let old = TokenKeys::parse(&format!("k1={old_secret}")).unwrap();
        let sealed = old.seal("token").unwrap();
        let rolled = TokenKeys::parse(&format!("k2={},k1={old_secret}", random_secret())).unwrap();
        assert!(rolled.lookup_hashes("token").contains(&old.hash("token")));
        assert_ne!(rolled.hash("token"), old.hash("token"));
        assert_eq!(rolled.open(&sealed).unwrap(), "token");
        assert!(!rolled.is_current("k1") && rolled.is_current("k2"));
    }

    #[test]
    fn weak_or_malformed_rings_are_refused() {
        for ring in ["", "k1=short", "=0123456789012345678901234567890123", "nokey"] {
            assert!(TokenKeys::parse(ring).is_err(), "{ring:?}");
        }
    }
}
