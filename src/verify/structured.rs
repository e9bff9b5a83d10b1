//! Timestamp-in-the-header schemes: Stripe (`t=…,v1=…`), bitbybit (Stripe's format under its
//! own headers) and Paddle (`ts=…;h1=…`). HMAC-SHA256, hex, of `{t}{joiner}{body}`.
//!
//! The secret is used as raw bytes, as the providers' SDKs do (Stripe's `whsec_…` is not
//! base64-decoded). During a secret roll one header carries several signatures; any match passes.

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use super::text::{Field, Json};
use super::{Keys, Scheme, Unverified, Verified, VerifyError};

/// More entries than any real header carries (a `t`, a `v0`, a few `v1` during a roll); the cap
/// bounds the work a forged header can cause.
const MAX_ENTRIES: usize = 16;

/// One provider's spelling of the format.
#[derive(Debug, Clone)]
pub(crate) struct Format {
    header: HeaderName,
    separator: char,
    ts_key: &'static str,
    sig_key: &'static str,
    joiner: &'static str,
    id: Field,
    event_type: Field,
    /// An unsigned copy of the timestamp the sender also sends (bitbybit), for `sign`.
    ts_header: Option<HeaderName>,
}

/// `Stripe-Signature: t=…,v1=…`; id and type in the body.
pub(crate) fn stripe() -> Format {
    Format {
        header: HeaderName::from_static("stripe-signature"),
        separator: ',',
        ts_key: "t",
        sig_key: "v1",
        joiner: ".",
        id: Field::Pointer("/id".into()),
        event_type: Field::Pointer("/type".into()),
        ts_header: None,
    }
}

/// bitbybit (its "Webhooks Overview" documentation): Stripe's format, id and event type in `X-BitByBit-Webhook-*` headers.
pub(crate) fn bitbybit() -> Format {
    Format {
        header: HeaderName::from_static("x-bitbybit-webhook-signature"),
        id: Field::Header(HeaderName::from_static("x-bitbybit-webhook-id")),
        event_type: Field::Header(HeaderName::from_static("x-bitbybit-webhook-event")),
        ts_header: Some(HeaderName::from_static("x-bitbybit-webhook-timestamp")),
        ..stripe()
    }
}

/// Paddle Billing: `Paddle-Signature: ts=…;h1=…` over `{ts}:{body}`.
pub(crate) fn paddle() -> Format {
    Format {
        header: HeaderName::from_static("paddle-signature"),
        separator: ';',
        ts_key: "ts",
        sig_key: "h1",
        joiner: ":",
        id: Field::Pointer("/event_id".into()),
        event_type: Field::Pointer("/event_type".into()),
        ts_header: None,
    }
}

/// A scheme of this family.
#[derive(Debug)]
pub(crate) struct Structured {
    format: Format,
    keys: Keys,
    tolerance: Duration,
}

/// A parsed header: the timestamp kept as sent, because the MAC covers that text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub(crate) t: &'a str,
    pub(crate) timestamp: i64,
    pub(crate) signatures: Vec<Vec<u8>>,
}

impl Structured {
    pub(crate) fn new(format: Format, keys: Keys, tolerance: Duration) -> Self {
        Structured {
            format,
            keys,
            tolerance,
        }
    }
}

impl Scheme for Structured {
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError> {
        let f = &self.format;
        let text = super::header(req.headers, f.header.as_str())?;
        let text = text.ok_or(VerifyError::MissingSignature)?;
        let parsed = parse(text, f.separator, f.ts_key, f.sig_key)?;
        let signed = [parsed.t.as_bytes(), f.joiner.as_bytes(), req.body];
        if !self.keys.verify(&signed, &parsed.signatures) {
            return Err(VerifyError::SignatureMismatch);
        }
        super::check_window(parsed.timestamp, req.now, self.tolerance)?;
        let json = Json::new(req.body);
        let id = f.id.read(req.headers, &json);
        let id = id.unwrap_or_else(|| super::body_digest_id(req.body));
        let event_type = f.event_type.read(req.headers, &json);
        Ok(Verified::new(id, Some(parsed.timestamp), event_type))
    }

    /// `id` goes into the id header where the provider has one; a body-carried id is the body's.
    fn sign(&self, body: &[u8], id: &str, timestamp: i64) -> HeaderMap {
        let f = &self.format;
        let t = timestamp.to_string();
        let mac = self.keys.sign(&[t.as_bytes(), f.joiner.as_bytes(), body]);
        let mut headers = HeaderMap::new();
        let (sep, tk, sk) = (f.separator, f.ts_key, f.sig_key);
        let value = format!("{tk}={t}{sep}{sk}={}", hex::encode(mac));
        super::put(&mut headers, f.header.clone(), value);
        if let Field::Header(name) = &f.id {
            super::put(&mut headers, name.clone(), id.to_owned());
        }
        if let Some(name) = &f.ts_header {
            super::put(&mut headers, name.clone(), t);
        }
        headers
    }
}

/// Splits `t=…,v1=…,…`; unknown keys (`v0`, `h2`, future schemes) are skipped, and no signature
/// at all is a mismatch rather than malformed: the header is well formed, it just carries
/// nothing we accept.
pub(crate) fn parse<'a>(
    text: &'a str,
    separator: char,
    ts_key: &str,
    sig_key: &str,
) -> Result<Parsed<'a>, VerifyError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for (n, item) in text.split(separator).enumerate() {
        if n >= MAX_ENTRIES {
            return Err(VerifyError::MalformedSignature);
        }
        let (key, value) = item
            .split_once('=')
            .ok_or(VerifyError::MalformedSignature)?;
        if key == ts_key {
            // Two timestamps: which one did the sender sign? Refuse rather than guess.
            if t.replace(value).is_some() {
                return Err(VerifyError::MalformedSignature);
            }
        } else if key == sig_key {
            signatures.push(super::decode_hex_lower(value)?);
        }
    }
    let t = t.ok_or(VerifyError::MalformedSignature)?;
    Ok(Parsed {
        t,
        timestamp: super::parse_timestamp(t)?,
        signatures,
    })
}
