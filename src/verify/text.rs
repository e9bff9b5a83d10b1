//! Reading untrusted request text: headers, timestamps, hex, JSON fields, the time window.
//!
//! Every function here returns an error or `None` on bad input; none of them panics.

use std::cell::OnceCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::VerifyError;

/// Where a scheme finds an id, an event type or a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A request header.
    Header(HeaderName),
    /// An RFC 6901 JSON pointer into the body (`/id`, `/event/type`).
    Pointer(String),
}

impl Field {
    /// The field as text; absent, unreadable or non-scalar reads as `None`.
    pub(crate) fn read(&self, headers: &HeaderMap, json: &Json<'_>) -> Option<String> {
        let text = match self {
            Field::Header(name) => header(headers, name.as_str()).ok().flatten()?.to_owned(),
            Field::Pointer(p) => match json.get(p)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            },
        };
        Some(text).filter(|t| !t.is_empty())
    }
}

/// The body parsed as JSON at most once, and only if some field asks for it.
pub(crate) struct Json<'a> {
    body: &'a [u8],
    value: OnceCell<Option<Value>>,
}

impl<'a> Json<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        Json {
            body,
            value: OnceCell::new(),
        }
    }

    /// The value at `pointer`; serde_json's recursion limit keeps deep nesting off the stack.
    pub(crate) fn get(&self, pointer: &str) -> Option<&Value> {
        let value = self
            .value
            .get_or_init(|| serde_json::from_slice(self.body).ok());
        value.as_ref()?.pointer(pointer)
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
/// string) reads as absent.
pub(crate) fn json_strings<const N: usize>(body: &[u8], names: [&str; N]) -> [Option<String>; N] {
    let value = serde_json::from_slice::<Value>(body).ok();
    names.map(|name| Some(value.as_ref()?.get(name)?.as_str()?.to_owned()))
}

/// Adds a header made by `sign`; a value that is not a legal header (an odd caller id) is left
/// out rather than panicking, and `verify` then says what is missing.
pub(crate) fn put(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}
