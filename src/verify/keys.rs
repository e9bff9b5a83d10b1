//! The MAC side of verification: a route's keys, HMAC over SHA-1/256/512 and the body digest.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::BuildError;
use crate::config::Secret;

/// The hash under the HMAC; providers pick it, never the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1: still what Twilio, Intercom and GitHub's legacy header use.
    Sha1,
    /// HMAC-SHA256: nearly everyone else.
    Sha256,
    /// HMAC-SHA512: offered by the generic scheme for senders that use it.
    Sha512,
}

impl Algorithm {
    /// Bytes in a tag of this hash.
    pub(crate) fn output_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

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
        self.sign_with(Algorithm::Sha256, parts)
    }

    /// HMAC of the concatenated `parts` under the first key.
    pub(crate) fn sign_with(&self, alg: Algorithm, parts: &[&[u8]]) -> Vec<u8> {
        tag(alg, &self.first, parts)
    }

    /// Whether some candidate tag is the HMAC-SHA256 of `parts` under some key.
    pub(crate) fn verify(&self, parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
        self.matching(Algorithm::Sha256, parts, candidates)
            .is_some()
    }

    /// The key under which some candidate is the MAC of `parts`; each compare is constant-time.
    pub(crate) fn matching(
        &self,
        alg: Algorithm,
        parts: &[&[u8]],
        candidates: &[Vec<u8>],
    ) -> Option<&Secret> {
        let keys = std::iter::once(&self.first).chain(&self.rest);
        keys.into_iter().find(|key| match alg {
            Algorithm::Sha1 => any_match::<Hmac<Sha1>>(key, parts, candidates),
            Algorithm::Sha256 => any_match::<Hmac<Sha256>>(key, parts, candidates),
            Algorithm::Sha512 => any_match::<Hmac<Sha512>>(key, parts, candidates),
        })
    }
}

/// The MAC of `parts` under `key`, for answers that need one (Zoom's handshake) and for signing.
pub(crate) fn tag(alg: Algorithm, key: &Secret, parts: &[&[u8]]) -> Vec<u8> {
    match alg {
        Algorithm::Sha1 => finish(state::<Hmac<Sha1>>(key, parts)),
        Algorithm::Sha256 => finish(state::<Hmac<Sha256>>(key, parts)),
        Algorithm::Sha512 => finish(state::<Hmac<Sha512>>(key, parts)),
    }
}

/// `verify_slice` compares in constant time, so a forger learns nothing from how long we take.
fn any_match<M: Mac + KeyInit + Clone>(key: &Secret, parts: &[&[u8]], tags: &[Vec<u8>]) -> bool {
    state::<M>(key, parts).is_some_and(|m| tags.iter().any(|t| m.clone().verify_slice(t).is_ok()))
}

/// A keyed MAC state over `parts`; `None` only if the key were refused, which HMAC never does.
fn state<M: Mac + KeyInit>(key: &Secret, parts: &[&[u8]]) -> Option<M> {
    let mut m = <M as KeyInit>::new_from_slice(key.expose()).ok()?;
    parts.iter().for_each(|part| m.update(part));
    Some(m)
}

fn finish<M: Mac>(m: Option<M>) -> Vec<u8> {
    m.map_or_else(Vec::new, |m| m.finalize().into_bytes().to_vec())
}

/// The fallback event id: lowercase hex SHA-256 of the body, stable across the sender's retries.
pub(crate) fn body_digest_id(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}
