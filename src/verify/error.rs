//! Why a request is refused, and why a scheme cannot be built from config.

use super::SCHEMES;

/// Why a request was refused; never carries the expected signature or a secret.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The signature header is absent.
    #[error("signature header is missing")]
    MissingSignature,
    /// A signature-related header (or signed field) cannot be parsed.
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
    /// A scheme option is missing or contradicts another (`key` is relative to the route).
    #[error("{key}: {reason}")]
    BadOption {
        /// The route key at fault, e.g. `public_url` or `hmac.template`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl BuildError {
    /// A `BadOption` for `key`.
    pub(crate) fn option(key: &'static str, reason: impl Into<String>) -> Self {
        BuildError::BadOption {
            key,
            reason: reason.into(),
        }
    }
}
