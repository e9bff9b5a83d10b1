//! Signature schemes: an [`Unverified`] request becomes a [`Verified`] one, or a reason code.
//!
//! Every scheme checks in the same order (README.md, "What happens to a request"): missing or malformed headers, then the MAC
//! against every secret of the route (rotation), then the timestamp window, then the event id.
//! Nothing read from the request is trusted before the MAC holds.
//!
//! Layout: `structured` (Stripe, bitbybit, Paddle), `standard` + `ed25519` (Standard Webhooks),
//! `generic` + `template` (the `hmac` scheme, and via `presets` GitHub, Intercom, Shopify,
//! Square, Slack, Zoom, Linear), `wrap` (GitHub's legacy header, Slack/Zoom handshakes),
//! `twilio`, `keys` (HMAC), `text` (parsing untrusted text), `fuzzing` (parser entry points).

mod ed25519;
mod error;
pub mod fuzzing;
mod generic;
mod keys;
mod presets;
mod standard;
mod structured;
mod template;
#[cfg(test)]
mod tests;
mod text;
mod twilio;
mod wrap;

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::config::Secret;
pub use error::{BuildError, VerifyError};
use generic::Generic;
pub use generic::Spec;
pub use keys::Algorithm;
pub(crate) use keys::{Keys, body_digest_id};
pub use template::{Encoding, Template, TemplateError, Unit};
pub use text::Field;
pub(crate) use text::{check_window, decode_hex_lower, header, json_strings, parse_timestamp, put};

/// What the ingress hands a scheme: the raw request, before anything is trusted.
pub struct Unverified<'a> {
    /// Request headers as received.
    pub headers: &'a HeaderMap,
    /// The raw body bytes: the MAC covers these, never a re-serialisation.
    pub body: &'a [u8],
    /// The request's query string (Twilio signs it as part of the URL).
    pub query: Option<&'a str>,
    /// The gateway's clock, passed in so tests can pin it.
    pub now: SystemTime,
}

/// Proof that a request's signature held; only schemes can create one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    id: String,
    timestamp: Option<i64>,
    event_type: Option<String>,
    handshake: Option<String>,
}

impl Verified {
    pub(crate) fn new(id: String, timestamp: Option<i64>, event_type: Option<String>) -> Self {
        Verified {
            id,
            timestamp,
            event_type,
            handshake: None,
        }
    }

    pub(crate) fn with_handshake(mut self, answer: String) -> Self {
        self.handshake = Some(answer);
        self
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

    /// A JSON answer the gateway gives itself (Slack/Zoom handshakes); such a request is not an event.
    pub fn handshake(&self) -> Option<&str> {
        self.handshake.as_deref()
    }
}

/// One provider's signature format.
pub trait Scheme: Send + Sync + std::fmt::Debug {
    /// Checks signature (against every secret: rotation), then timestamp tolerance, then extracts the event id.
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError>;
    /// Signs `body` exactly as the provider would, with the first secret (for `hookgate send-test` and tests).
    fn sign(&self, body: &[u8], id: &str, timestamp: i64) -> HeaderMap;
}

/// Route settings some schemes need besides secrets and tolerance.
#[derive(Debug, Clone, Default)]
pub struct SchemeOptions {
    /// The URL the sender was given (Twilio, Square, `{url}` in `hmac`), validated by config.
    pub public_url: Option<String>,
    /// GitHub: also accept the legacy SHA-1 `X-Hub-Signature` when the SHA-256 one is absent.
    pub legacy_sha1: bool,
    /// The generic scheme's spec (`[route.hmac]`); its `url` is filled from `public_url`.
    pub hmac: Option<Spec>,
}

/// Names accepted in config `scheme = …` by this build.
pub const SCHEMES: &[&str] = &[
    "stripe", "bitbybit", "standard", "github", "shopify", "slack", "twilio", "paddle", "square",
    "linear", "zoom", "intercom", "hmac",
];

/// Schemes that sign the URL the sender was given, and so need `public_url`.
const URL_SCHEMES: &[&str] = &["twilio", "square", "hmac"];

/// Builds the scheme named in config.
pub fn build(
    name: &str,
    secrets: Vec<Secret>,
    tolerance: Duration,
    options: &SchemeOptions,
) -> Result<Box<dyn Scheme>, BuildError> {
    if !SCHEMES.contains(&name) {
        return Err(BuildError::UnknownScheme(name.to_owned()));
    }
    if name == "standard" {
        refuse_unused(name, options)?;
        return Ok(Box::new(standard::Standard::new(secrets, tolerance)?));
    }
    let keys = Keys::new(secrets)?;
    refuse_unused(name, options)?;
    let generic = |spec: Spec| Generic::new(spec, keys.clone(), tolerance);
    let boxed: Box<dyn Scheme> = match name {
        "stripe" => Box::new(structured::Structured::new(
            structured::stripe(),
            keys,
            tolerance,
        )),
        "bitbybit" => Box::new(structured::Structured::new(
            structured::bitbybit(),
            keys,
            tolerance,
        )),
        "paddle" => Box::new(structured::Structured::new(
            structured::paddle(),
            keys,
            tolerance,
        )),
        "github" => Box::new(wrap::GitHub {
            current: generic(presets::github())?,
            legacy: options
                .legacy_sha1
                .then(|| generic(presets::github_sha1()))
                .transpose()?,
        }),
        "shopify" => Box::new(generic(presets::shopify())?),
        "intercom" => Box::new(generic(presets::intercom())?),
        "linear" => Box::new(generic(presets::linear())?),
        "square" => Box::new(generic(presets::square(options.public_url.clone()))?),
        "slack" => handshaking(generic(presets::slack())?, wrap::Kind::Slack),
        "zoom" => handshaking(generic(presets::zoom())?, wrap::Kind::Zoom),
        "twilio" => Box::new(twilio::Twilio::new(keys, required_url(options)?)),
        _ => Box::new(generic(hmac_spec(options)?)?),
    };
    Ok(boxed)
}

fn handshaking(inner: Generic, kind: wrap::Kind) -> Box<dyn Scheme> {
    Box::new(wrap::Handshaking { inner, kind })
}

fn required_url(options: &SchemeOptions) -> Result<&str, BuildError> {
    let url = options.public_url.as_deref();
    url.ok_or_else(|| {
        BuildError::option(
            "public_url",
            "required: this scheme signs the URL the sender was given",
        )
    })
}

fn hmac_spec(options: &SchemeOptions) -> Result<Spec, BuildError> {
    let spec = options.hmac.clone();
    let spec = spec.ok_or_else(|| BuildError::option("hmac", "required for scheme = \"hmac\""))?;
    Ok(Spec {
        url: options.public_url.clone(),
        ..spec
    })
}

/// An option the scheme ignores is a mistake in the config (a wrong scheme, a copied block):
/// say so instead of silently verifying something else than the user thinks.
fn refuse_unused(name: &str, options: &SchemeOptions) -> Result<(), BuildError> {
    if options.legacy_sha1 && name != "github" {
        return Err(BuildError::option(
            "legacy_sha1",
            "only applies to scheme = \"github\"",
        ));
    }
    if options.hmac.is_some() && name != "hmac" {
        return Err(BuildError::option(
            "hmac",
            "only applies to scheme = \"hmac\"",
        ));
    }
    if options.public_url.is_some() && !URL_SCHEMES.contains(&name) {
        return Err(BuildError::option(
            "public_url",
            "only used by schemes twilio, square and hmac",
        ));
    }
    Ok(())
}
