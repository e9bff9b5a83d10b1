//! Schemes that add one behaviour to a [`Generic`] one: GitHub's opt-in legacy SHA-1 header,
//! and the handshakes Slack and Zoom send before delivering events.

use http::HeaderMap;
use serde_json::json;

use super::generic::Generic;
use super::keys::tag;
use super::text::Json;
use super::{Algorithm, Scheme, Unverified, Verified, VerifyError};
use crate::config::Secret;

/// GitHub: `X-Hub-Signature-256`, and `X-Hub-Signature` (SHA-1) only when the route sets
/// `legacy_sha1 = true` and the SHA-256 header is absent: a downgrade needs an opt-in.
#[derive(Debug)]
pub(crate) struct GitHub {
    pub(crate) current: Generic,
    pub(crate) legacy: Option<Generic>,
}

impl Scheme for GitHub {
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError> {
        match (self.current.verify(req), &self.legacy) {
            (Err(VerifyError::MissingSignature), Some(legacy)) => legacy.verify(req),
            (result, _) => result,
        }
    }

    fn sign(&self, body: &[u8], id: &str, timestamp: i64) -> HeaderMap {
        self.current.sign(body, id, timestamp)
    }
}

/// Which provider's handshake a route answers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// `{"type":"url_verification","challenge":…}` → `{"challenge":…}`.
    Slack,
    /// `{"event":"endpoint.url_validation","payload":{"plainToken":…}}` →
    /// `{"plainToken":…,"encryptedToken":hex(HMAC-SHA256(secret, plainToken))}`.
    Zoom,
}

/// A scheme whose sender also posts a signed handshake the gateway answers itself.
#[derive(Debug)]
pub(crate) struct Handshaking {
    pub(crate) inner: Generic,
    pub(crate) kind: Kind,
}

impl Scheme for Handshaking {
    /// The handshake is recognised only after the signature holds, so nobody can make the
    /// gateway compute MACs of chosen tokens without the secret.
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError> {
        let (verified, key) = self.inner.check(req)?;
        match answer(self.kind, &Json::new(req.body), key) {
            Some(body) => Ok(verified.with_handshake(body)),
            None => Ok(verified),
        }
    }

    fn sign(&self, body: &[u8], id: &str, timestamp: i64) -> HeaderMap {
        self.inner.sign(body, id, timestamp)
    }
}

/// The JSON answer to a handshake body, or `None` for an ordinary event.
fn answer(kind: Kind, json: &Json<'_>, key: &Secret) -> Option<String> {
    let text = |p: &str| match json.get(p)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    };
    match kind {
        Kind::Slack if text("/type")? == "url_verification" => {
            Some(json!({ "challenge": text("/challenge")? }).to_string())
        }
        Kind::Zoom if text("/event")? == "endpoint.url_validation" => {
            let plain = text("/payload/plainToken")?;
            let encrypted = hex::encode(tag(Algorithm::Sha256, key, &[plain.as_bytes()]));
            Some(json!({ "plainToken": plain, "encryptedToken": encrypted }).to_string())
        }
        _ => None,
    }
}
