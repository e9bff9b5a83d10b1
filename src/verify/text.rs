//! Reading untrusted request text: headers, timestamps, hex, JSON fields, the time window.
//!
//! Every function here returns an error or `None` on bad input; none of them panics.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

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
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                _ => return None,
            },
        };
        Some(text).filter(|t| !t.is_empty())
    }
}

/// The body read as JSON at most once, and only if some field asks for it.
///
/// Only the top level is split into members, each kept as unparsed text; a pointer parses the
/// containers on its way and the value at its end. Building a whole `Value` for a 1 KiB event to
/// read `/id` and `/type` cost more than the HMAC (docs/performance.md, 2026-12-07 later).
pub(crate) struct Json<'a> {
    body: &'a [u8],
    top: OnceCell<Option<Node<'a>>>,
}

/// A JSON container whose members are left unparsed; anything else is a `Leaf`.
enum Node<'a> {
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    Array(Vec<&'a RawValue>),
    Leaf,
}

impl<'a> Json<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        Json {
            body,
            top: OnceCell::new(),
        }
    }

    /// The value at the RFC 6901 `pointer`, as `Value::pointer` reads it (the last of repeated
    /// keys); a body that is not JSON has none.
    pub(crate) fn get(&self, pointer: &str) -> Option<Value> {
        if pointer.is_empty() {
            return serde_json::from_slice(self.body).ok();
        }
        let mut tokens = pointer.strip_prefix('/')?.split('/').map(unescape);
        let top = self
            .top
            .get_or_init(|| serde_json::from_slice(self.body).ok())
            .as_ref()?;
        let mut raw = top.member(&tokens.next()?)?;
        for token in tokens {
            raw = serde_json::from_str::<Node<'_>>(raw.get())
                .ok()?
                .member(&token)?;
        }
        serde_json::from_str(raw.get()).ok()
    }
}

impl<'a> Node<'a> {
    fn member(&self, token: &str) -> Option<&'a RawValue> {
        match self {
            Node::Object(members) => members.iter().rev().find(|(k, _)| k == token).map(|m| m.1),
            Node::Array(items) => items.get(index(token)?).copied(),
            Node::Leaf => None,
        }
    }
}

/// A pointer token as an array index: digits without a leading zero or sign.
fn index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

fn unescape(token: &str) -> Cow<'_, str> {
    match token.contains('~') {
        true => Cow::Owned(token.replace("~1", "/").replace("~0", "~")),
        false => Cow::Borrowed(token),
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(Node::Object(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node<'de>, E> {
        Ok(Node::Leaf)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node<'de>, E> {
        Ok(Node::Leaf)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node<'de>, E> {
        Ok(Node::Leaf)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node<'de>, E> {
        Ok(Node::Leaf)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node<'de>, E> {
        Ok(Node::Leaf)
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Leaf)
    }
}

/// An object key, borrowed from the body unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z~/0\"\\\\é]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec(("[a-z~/0\"]{0,2}", inner), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn get_reads_what_value_pointer_reads(
            v in value(),
            tokens in prop::collection::vec("[a-z~/0\"]{0,2}|0|1|01|\\+1", 0..4),
        ) {
            let pointer: String = tokens
                .iter()
                .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
                .collect();
            let body = serde_json::to_vec(&v).unwrap();
            // Parsed back, not `v` itself: a float's text need not read back bit for bit.
            let whole: Value = serde_json::from_slice(&body).unwrap();
            prop_assert_eq!(Json::new(&body).get(&pointer), whole.pointer(&pointer).cloned());
        }

        #[test]
        fn get_never_panics_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..64), p in "[/a-z0-9~]{0,6}") {
            let from_value = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.pointer(&p).cloned());
            if let Some(v) = from_value {
                prop_assert_eq!(Json::new(&body).get(&p), Some(v));
            }
        }
    }

    #[test]
    fn repeated_keys_read_as_the_last_and_escaped_keys_as_their_text() {
        let body = br#"{"id":"a","n":{"k":1},"id":"b","c\u0064":2,"n":{"k":3}}"#;
        let json = Json::new(body);
        assert_eq!(json.get("/id"), Some(Value::from("b")));
        assert_eq!(json.get("/cd"), Some(Value::from(2)));
        assert_eq!(json.get("/n/k"), Some(Value::from(3)));
        assert_eq!(json.get("id"), None, "a pointer starts with a slash");
    }

    #[test]
    fn a_body_that_is_not_one_json_document_has_no_fields() {
        for body in [&b"{\"id\":\"a\"} x"[..], b"{\"id\":\"a\"", b"", b"\xff"] {
            assert_eq!(Json::new(body).get("/id"), None, "{body:?}");
        }
    }

    #[test]
    fn deep_nesting_neither_overflows_the_stack_nor_yields_a_wrong_field() {
        let mut body = br#"{"id":"x","deep":"#.to_vec();
        body.extend(std::iter::repeat_n(b'[', 100_000));
        body.extend(std::iter::repeat_n(b']', 100_000));
        body.push(b'}');
        let id = Json::new(&body).get("/id");
        assert!(id.is_none() || id == Some(Value::from("x")), "{id:?}");
        assert_eq!(Json::new(&[b'['; 100_000]).get("/0"), None);
    }
}
