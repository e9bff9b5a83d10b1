//! The generic scheme's vocabulary: what is signed (a template), how the tag is written
//! (encoding) and what unit a timestamp counts in.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::VerifyError;

/// How the tag is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lowercase hex (GitHub, Slack, Stripe…).
    Hex,
    /// Standard base64 with padding (Shopify, Square, Twilio…).
    Base64,
}

impl Encoding {
    /// Decodes a tag; anything not in canonical form is malformed.
    pub(crate) fn decode(self, text: &str) -> Result<Vec<u8>, VerifyError> {
        match self {
            Encoding::Hex => super::text::decode_hex_lower(text),
            Encoding::Base64 => BASE64
                .decode(text)
                .map_err(|_| VerifyError::MalformedSignature),
        }
    }

    /// Encodes a tag as the sender would.
    pub(crate) fn encode(self, tag: &[u8]) -> String {
        match self {
            Encoding::Hex => hex::encode(tag),
            Encoding::Base64 => BASE64.encode(tag),
        }
    }
}

/// What a timestamp counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Unix seconds.
    Seconds,
    /// Unix milliseconds (Linear).
    Millis,
}

impl Unit {
    /// Unix seconds from a value in this unit.
    pub(crate) fn to_seconds(self, value: i64) -> i64 {
        match self {
            Unit::Seconds => value,
            Unit::Millis => value.div_euclid(1000),
        }
    }

    /// Unix seconds expressed in this unit.
    pub(crate) fn of_seconds(self, secs: i64) -> i64 {
        match self {
            Unit::Seconds => secs,
            Unit::Millis => secs.saturating_mul(1000),
        }
    }
}

/// One piece of the signed string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(Vec<u8>),
    Id,
    Timestamp,
    Body,
    Url,
}

/// The signed string, e.g. `v0:{timestamp}:{body}`; `{body}` appears exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub(crate) Vec<Part>);

/// Why a template text was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `{name}` other than id, timestamp, body, url.
    #[error("unknown placeholder {{{0}}}; use {{id}}, {{timestamp}}, {{body}} or {{url}}")]
    Unknown(String),
    /// A `{` without its `}`.
    #[error("unclosed '{{'")]
    Unclosed,
    /// The body must be signed, once: otherwise the MAC would not cover what we forward.
    #[error("must contain {{body}} exactly once")]
    Body,
}

impl Template {
    /// Parses `text`; literal text between placeholders is signed as is.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            push_literal(&mut parts, &rest[..open]);
            let close = rest[open..].find('}').ok_or(TemplateError::Unclosed)? + open;
            parts.push(placeholder(&rest[open + 1..close])?);
            rest = &rest[close + 1..];
        }
        push_literal(&mut parts, rest);
        if parts.iter().filter(|p| **p == Part::Body).count() != 1 {
            return Err(TemplateError::Body);
        }
        Ok(Template(parts))
    }

    /// Whether the template signs `part`.
    pub(crate) fn uses(&self, part: &Part) -> bool {
        self.0.contains(part)
    }
}

fn placeholder(name: &str) -> Result<Part, TemplateError> {
    match name {
        "id" => Ok(Part::Id),
        "timestamp" => Ok(Part::Timestamp),
        "body" => Ok(Part::Body),
        "url" => Ok(Part::Url),
        other => Err(TemplateError::Unknown(other.to_owned())),
    }
}

fn push_literal(parts: &mut Vec<Part>, text: &str) {
    if !text.is_empty() {
        parts.push(Part::Literal(text.as_bytes().to_vec()));
    }
}
