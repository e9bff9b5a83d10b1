//! Standard Webhooks (and Svix, its origin): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64> v1a,<base64> …` over `{id}.{timestamp}.{body}`.
//!
//! `v1` is HMAC-SHA256 with a `whsec_` secret (base64 of the key bytes, decoded once at build as
//! the official SDKs do); `v1a` is Ed25519 with a `whpk_` public key or a `whsk_` signing key.
//! Svix still sends the same headers named `svix-*`; each is read under either name.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName};

use super::ed25519::{AsymKeys, SIGNATURE_LEN};
use super::{BuildError, Keys, Scheme, Unverified, Verified, VerifyError};
use crate::config::Secret;

const ID: HeaderName = HeaderName::from_static("webhook-id");
const TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// A real header holds one entry per active secret; the cap bounds the work a forged header
/// can cause (each `v1a` entry costs an Ed25519 verification per key).
const MAX_ENTRIES: usize = 16;

/// The `standard` scheme.
#[derive(Debug)]
pub(crate) struct Standard {
    hmac: Option<Keys>,
    asym: AsymKeys,
    tolerance: Duration,
}

/// The signatures of a `webhook-signature` header, by version.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Signatures {
    pub(crate) v1: Vec<Vec<u8>>,
    pub(crate) v1a: Vec<Vec<u8>>,
}

impl Standard {
    /// Sorts secrets by prefix; one that cannot be decoded is a config error, not a runtime one.
    pub(crate) fn new(secrets: Vec<Secret>, tolerance: Duration) -> Result<Self, BuildError> {
        if secrets.is_empty() {
            return Err(BuildError::NoSecrets);
        }
        let (mut hmac, mut asym) = (Vec::new(), AsymKeys::default());
        for (index, secret) in secrets.iter().enumerate() {
            let bad = |reason| BuildError::BadSecret { index, reason };
            let text = secret.expose();
            if let Some(rest) = text.strip_prefix(b"whpk_") {
                let ok = decode(rest).is_some_and(|key| asym.add_public(key));
                ok.then_some(())
                    .ok_or(bad("is not base64 of a 32-byte Ed25519 public key"))?;
            } else if let Some(rest) = text.strip_prefix(b"whsk_") {
                let ok = decode(rest).is_some_and(|seed| asym.add_secret(&seed));
                ok.then_some(())
                    .ok_or(bad("is not base64 of a 32-byte Ed25519 seed"))?;
            } else {
                let rest = text.strip_prefix(b"whsec_").unwrap_or(text);
                let key =
                    decode(rest).ok_or(bad("is not base64 (after an optional `whsec_` prefix)"))?;
                hmac.push(Secret::new(key));
            }
        }
        let hmac = (!hmac.is_empty()).then(|| Keys::new(hmac)).transpose()?;
        Ok(Standard {
            hmac,
            asym,
            tolerance,
        })
    }

    fn matches(&self, signed: &[&[u8]; 5], sigs: &Signatures) -> bool {
        let hmac = self.hmac.as_ref();
        if hmac.is_some_and(|k| k.verify(signed, &sigs.v1)) {
            return true;
        }
        !self.asym.is_empty()
            && !sigs.v1a.is_empty()
            && self.asym.verify(&signed.concat(), &sigs.v1a)
    }
}

impl Scheme for Standard {
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError> {
        let signature = aliased(req.headers, &SIGNATURE)?.ok_or(VerifyError::MissingSignature)?;
        let id = aliased(req.headers, &ID)?.filter(|id| !id.is_empty());
        let id = id.ok_or(VerifyError::MissingId)?;
        let ts_text = aliased(req.headers, &TIMESTAMP)?.ok_or(VerifyError::MissingTimestamp)?;
        let timestamp = super::parse_timestamp(ts_text)?;
        let sigs = parse(signature)?;
        let signed: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.as_bytes(), b".", req.body];
        if !self.matches(&signed, &sigs) {
            return Err(VerifyError::SignatureMismatch);
        }
        super::check_window(timestamp, req.now, self.tolerance)?;
        let [event_type] = super::json_strings(req.body, ["type"]);
        Ok(Verified::new(id.to_owned(), Some(timestamp), event_type))
    }

    /// Signs `v1` with the first HMAC key and `v1a` with the first signing key; a route holding
    /// only `whpk_` public keys cannot sign, and the result then has no signature header.
    fn sign(&self, body: &[u8], id: &str, timestamp: i64) -> HeaderMap {
        let ts = timestamp.to_string();
        let signed: [&[u8]; 5] = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
        let mut entries = Vec::new();
        if let Some(keys) = &self.hmac {
            entries.push(format!("v1,{}", BASE64.encode(keys.sign(&signed))));
        }
        if let Some(sig) = self.asym.sign(&signed.concat()) {
            entries.push(format!("v1a,{}", BASE64.encode(sig)));
        }
        let mut headers = HeaderMap::new();
        super::put(&mut headers, ID, id.to_owned());
        super::put(&mut headers, TIMESTAMP, ts);
        if !entries.is_empty() {
            super::put(&mut headers, SIGNATURE, entries.join(" "));
        }
        headers
    }
}

fn decode(text: &[u8]) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

/// Reads `webhook-*`, else the same header under its `svix-*` name.
fn aliased<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, VerifyError> {
    if let Some(value) = super::header(headers, name.as_str())? {
        return Ok(Some(value));
    }
    let svix = name.as_str().replacen("webhook-", "svix-", 1);
    super::header(headers, &svix)
}

/// Space-separated `version,signature` entries; `v1` and `v1a` are kept, other versions are
/// skipped so a sender adding one does not break us. Nothing usable at all is a mismatch.
pub(crate) fn parse(text: &str) -> Result<Signatures, VerifyError> {
    let mut sigs = Signatures::default();
    for (n, entry) in text.split(' ').filter(|e| !e.is_empty()).enumerate() {
        if n >= MAX_ENTRIES {
            return Err(VerifyError::MalformedSignature);
        }
        let (version, sig) = entry
            .split_once(',')
            .ok_or(VerifyError::MalformedSignature)?;
        let list = match version {
            "v1" => &mut sigs.v1,
            "v1a" => &mut sigs.v1a,
            _ => continue,
        };
        let bytes = decode(sig.as_bytes()).ok_or(VerifyError::MalformedSignature)?;
        if version == "v1a" && bytes.len() != SIGNATURE_LEN {
            return Err(VerifyError::MalformedSignature);
        }
        list.push(bytes);
    }
    Ok(sigs)
}
