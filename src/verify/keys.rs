//! The MAC side of verification: a route's keys, HMAC-SHA256 and the body digest.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::BuildError;
use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// A route's HMAC keys, never empty: the first signs, every one verifies (rotation).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    first: Secret,
    rest: Vec<Secret>,
}

impl Keys {
    /// Refuses an empty list and empty keys (an empty HMAC key is one anybody can use).
    pub(crate) fn new(secrets: Vec<Secret>) -> Result<Self, BuildError> {
        if let Some(index) = secrets.iter().position(|s| s.expose().is_empty()) {
            return Err(BuildError::BadSecret {
                index,
                reason: "is empty",
            });
        }
        let mut all = secrets.into_iter();
        let first = all.next().ok_or(BuildError::NoSecrets)?;
        Ok(Keys {
            first,
            rest: all.collect(),
        })
    }

    /// HMAC-SHA256 of the concatenated `parts` under the first key.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        mac(&self.first, parts).map_or_else(Vec::new, |m| m.finalize().into_bytes().to_vec())
    }

    /// Whether some candidate tag is the MAC of `parts` under some key; each compare is constant-time.
    pub(crate) fn verify(&self, parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
        let keys = std::iter::once(&self.first).chain(&self.rest);
        keys.filter_map(|key| mac(key, parts)).any(|m| {
            candidates
                .iter()
                .any(|tag| m.clone().verify_slice(tag).is_ok())
        })
    }
}

/// A keyed MAC state over `parts`; `None` only if the key were refused, which HMAC never does.
fn mac(key: &Secret, parts: &[&[u8]]) -> Option<HmacSha256> {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key.expose()).ok()?;
    parts.iter().for_each(|part| m.update(part));
    Some(m)
}

/// The fallback event id: lowercase hex SHA-256 of the body, stable across the sender's retries.
pub(crate) fn body_digest_id(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}
