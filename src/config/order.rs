//! `order_by` and `on_dead` on a route: which events of a lane are delivered one at a time, in
//! the order the gateway accepted them (docs/ordering.md).

use http::{HeaderMap, HeaderName};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::filter::check_pointer;
use super::{ConfigError, Cx};

/// Keys longer than this are stored as `sha256:<hex>`: a key is part of storage keys (Redis) and
/// of records, so its size is bounded whatever the sender puts in the field.
pub const MAX_KEY_LEN: usize = 128;

/// A route's ordering: where the key is read and what a dead-lettered event does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordering {
    /// Where an event's key is read.
    pub by: OrderBy,
    /// What happens to a key whose head event is dead-lettered.
    pub on_dead: OnDead,
}

/// Where an event's ordering key is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderBy {
    /// A JSON pointer into the verified body; a string, number or boolean there is the key.
    Pointer(String),
    /// A request header; its value is the key.
    Header(HeaderName),
}

/// What a dead-lettered event does to the events of its key queued behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnDead {
    /// They go on: the dead event leaves the key's order (a replay queues it at the key's tail).
    #[default]
    Release,
    /// They wait until the dead event is replayed (then delivered first) or purged.
    Block,
}

impl OrderBy {
    /// Whether the key is read from the body (which must then be parsed as JSON).
    pub fn reads_body(&self) -> bool {
        matches!(self, OrderBy::Pointer(_))
    }

    /// The event's key; None (unordered) when the field is missing, empty, not a scalar, or the
    /// body is not JSON.
    pub fn key(&self, headers: &HeaderMap, doc: Option<&Value>) -> Option<String> {
        let raw = match self {
            OrderBy::Pointer(p) => match doc?.pointer(p)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null | Value::Array(_) | Value::Object(_) => return None,
            },
            OrderBy::Header(name) => String::from_utf8_lossy(headers.get(name)?.as_bytes()).into(),
        };
        if raw.is_empty() {
            return None;
        }
        if raw.len() <= MAX_KEY_LEN {
            return Some(raw);
        }
        Some(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(raw.as_bytes()))
        ))
    }
}

/// Validates `order_by` and `on_dead` of the route at `key`.
pub(super) fn ordering(
    cx: &Cx,
    key: &str,
    order_by: Option<String>,
    on_dead: Option<String>,
) -> Result<Option<Ordering>, ConfigError> {
    let Some(by) = order_by else {
        if on_dead.is_some() {
            return Err(cx.err(format!("{key}.on_dead"), "needs order_by on the same route"));
        }
        return Ok(None);
    };
    let by = match by.strip_prefix("header:") {
        Some(name) => OrderBy::Header(HeaderName::try_from(name.trim()).map_err(|_| {
            cx.err(
                format!("{key}.order_by"),
                format!("{name:?} is not a header name, e.g. \"header:X-Order-Key\""),
            )
        })?),
        None if by.is_empty() => {
            return Err(cx.err(
                format!("{key}.order_by"),
                "empty: a JSON pointer such as \"/data/object/id\", or \"header:NAME\"",
            ));
        }
        None => {
            check_pointer(&by).map_err(|p| cx.err(format!("{key}.order_by"), p))?;
            OrderBy::Pointer(by)
        }
    };
    let on_dead = match on_dead.as_deref() {
        None | Some("release") => OnDead::Release,
        Some("block") => OnDead::Block,
        Some(other) => {
            return Err(cx.err(
                format!("{key}.on_dead"),
                format!("{other:?} is not \"release\" or \"block\""),
            ));
        }
    };
    Ok(Some(Ordering { by, on_dead }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pointer(p: &str) -> OrderBy {
        OrderBy::Pointer(p.into())
    }

    #[test]
    fn scalars_are_keys_and_anything_else_leaves_the_event_unordered() {
        let doc = json!({"s": "cus_1", "n": 42, "b": true, "e": "", "z": null, "o": {}, "a": [1]});
        let h = HeaderMap::new();
        let key = |p: &str| pointer(p).key(&h, Some(&doc));
        assert_eq!(key("/s").as_deref(), Some("cus_1"));
        assert_eq!(key("/n").as_deref(), Some("42"));
        assert_eq!(key("/b").as_deref(), Some("true"));
        for p in ["/e", "/z", "/o", "/a", "/missing"] {
            assert_eq!(key(p), None, "{p}");
        }
        assert_eq!(pointer("/s").key(&h, None), None, "a body that is not JSON");
    }

    #[test]
    fn a_header_is_a_key_and_a_long_key_is_hashed() {
        let mut h = HeaderMap::new();
        h.insert("x-order", "acct-7".parse().unwrap());
        let by = OrderBy::Header(HeaderName::from_static("x-order"));
        assert_eq!(by.key(&h, None).as_deref(), Some("acct-7"));
        assert_eq!(by.key(&HeaderMap::new(), None), None);
        let long = "k".repeat(MAX_KEY_LEN + 1);
        let doc = json!({ "k": long });
        let hashed = pointer("/k").key(&h, Some(&doc)).unwrap();
        assert!(
            hashed.starts_with("sha256:") && hashed.len() == 7 + 64,
            "{hashed}"
        );
        let other = json!({ "k": format!("{long}x") });
        assert_ne!(pointer("/k").key(&h, Some(&other)).unwrap(), hashed);
        let exact = json!({ "k": "k".repeat(MAX_KEY_LEN) });
        assert_eq!(
            pointer("/k").key(&h, Some(&exact)).unwrap().len(),
            MAX_KEY_LEN
        );
    }
}
