//! Signature schemes: an [`Unverified`] request becomes a [`Verified`] one, or a reason code.
//!
//! Every scheme checks in the same order (SPEC §1): missing or malformed headers, then the MAC
//! against every secret of the route (rotation), then the timestamp window, then the event id.
//! Nothing read from the request is trusted before the MAC holds.

mod github;
mod keys;
mod standard;
mod stripe;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Secret;
pub(crate) use keys::{Keys, body_digest_id};

/// What the ingress hands a scheme: the raw request, before anything is trusted.
pub struct Unverified<'a> {
    /// Request headers as received.
    pub headers: &'a HeaderMap,
    /// The raw body bytes: the MAC covers these, never a re-serialisation.
    pub body: &'a [u8],
    /// The gateway's clock, passed in so tests can pin it.
    pub now: SystemTime,
}

/// Proof that a request's signature held; only schemes can create one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    id: String,
    timestamp: Option<i64>,
    event_type: Option<String>,
}

impl Verified {
    pub(crate) fn new(id: String, timestamp: Option<i64>, event_type: Option<String>) -> Self {
        Verified {
            id,
            timestamp,
            event_type,
        }
    }

    /// The event id used for dedup: the provider's, else the SHA-256 of the body.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signed timestamp (unix seconds), for schemes that sign one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The provider's event type, when it sends one (used for fan-out filters).
    pub fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }
}

/// One provider's signature format.
pub trait Scheme: Send + Sync + std::fmt::Debug {
    /// Checks signature (against every secret: rotation), then timestamp tolerance, then extracts the event id.
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError>;
    /// Signs `body` exactly as the provider would, with the first secret (for `hookgate send-test` and tests).
    fn sign(&self, body: &[u8], id: &str, timestamp: i64) -> HeaderMap;
}

/// Why a request was refused; never carries the expected signature or a secret.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The signature header is absent.
    #[error("signature header is missing")]
    MissingSignature,
    /// A signature-related header cannot be parsed.
    #[error("signature header is malformed")]
    MalformedSignature,
    /// No signature matched any secret of the route.
    #[error("no signature matched")]
    SignatureMismatch,
    /// Correctly signed, but too old or too far in the future.
    #[error("timestamp is outside the tolerance window")]
    TimestampOutOfTolerance,
    /// The scheme signs a timestamp and none was sent.
    #[error("timestamp header is missing")]
    MissingTimestamp,
    /// The scheme signs an event id and none was sent.
    #[error("event id header is missing")]
    MissingId,
}

impl VerifyError {
    /// Stable reason code for the JSON error body and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingSignature => "missing_signature",
            VerifyError::MalformedSignature => "malformed_signature",
            VerifyError::SignatureMismatch => "signature_mismatch",
            VerifyError::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            VerifyError::MissingTimestamp => "missing_timestamp",
            VerifyError::MissingId => "missing_id",
        }
    }
}

/// Why a scheme could not be built from config; never includes secret bytes.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config names a scheme this build does not know.
    #[error("unknown scheme `{0}` (known: {known})", known = SCHEMES.join(", "))]
    UnknownScheme(String),
    /// The route lists no secrets.
    #[error("at least one secret is required")]
    NoSecrets,
    /// One secret of the list cannot be used.
    #[error("secret #{index} (counting from 0) {reason}")]
    BadSecret {
        /// Position in the route's `secrets` list.
        index: usize,
        /// What is wrong with it, in words that reveal nothing of its bytes.
        reason: &'static str,
    },
}

/// Names accepted in config `scheme = …` by this build.
pub const SCHEMES: &[&str] = &["stripe", "standard", "github"];

/// Builds the scheme named in config.
pub fn build(
    name: &str,
    secrets: Vec<Secret>,
    tolerance: Duration,
) -> Result<Box<dyn Scheme>, BuildError> {
    match name {
        "stripe" => Ok(Box::new(stripe::Stripe::new(
            Keys::new(secrets)?,
            tolerance,
        ))),
        "standard" => Ok(Box::new(standard::Standard::new(secrets, tolerance)?)),
        "github" => Ok(Box::new(github::GitHub::new(Keys::new(secrets)?))),
        other => Err(BuildError::UnknownScheme(other.to_owned())),
    }
}

/// A header as text: `Ok(None)` when absent, malformed when not UTF-8 (no provider sends that).
pub(crate) fn header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, VerifyError> {
    headers.get(name).map_or(Ok(None), |value| {
        std::str::from_utf8(value.as_bytes())
            .map(Some)
            .map_err(|_| VerifyError::MalformedSignature)
    })
}

/// A unix timestamp as providers send it: ASCII digits only, so one number has one spelling.
pub(crate) fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedSignature);
    }
    text.parse().map_err(|_| VerifyError::MalformedSignature)
}

/// Lowercase hex only: providers send lowercase, and accepting both cases would let two header
/// texts carry one signature.
pub(crate) fn decode_hex_lower(text: &str) -> Result<Vec<u8>, VerifyError> {
    if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(VerifyError::MalformedSignature);
    }
    hex::decode(text).map_err(|_| VerifyError::MalformedSignature)
}

/// Refuses a timestamp farther than `tolerance` from `now` in either direction: an old one is a
/// replay, a future one a request signed ahead to be replayed later.
pub(crate) fn check_window(
    ts: i64,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => i128::from(since.as_secs()),
        Err(before) => -i128::from(before.duration().as_secs()),
    };
    let skew = (now - i128::from(ts)).unsigned_abs();
    if skew > u128::from(tolerance.as_secs()) {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    Ok(())
}

/// Top-level string fields of a JSON object body; anything else (not JSON, not an object, not a
/// string) reads as absent. serde_json's recursion limit keeps deep nesting off the stack.
pub(crate) fn json_strings<const N: usize>(body: &[u8], names: [&str; N]) -> [Option<String>; N] {
    let value = serde_json::from_slice::<serde_json::Value>(body).ok();
    names.map(|name| Some(value.as_ref()?.get(name)?.as_str()?.to_owned()))
}

/// Adds a header made by `sign`; a value that is not a legal header (an odd caller id) is left
/// out rather than panicking, and `verify` then says what is missing.
pub(crate) fn put(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}
