//! `upstream.filter`: conditions on JSON pointers into the verified body, all of which must hold
//! for the upstream to want the event (besides its `events` globs).

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::raw::RawCondition;
use super::{ConfigError, Cx};

/// Every condition of one upstream; an empty filter holds for every event.
#[derive(Debug, Clone, Default)]
pub struct Filter(Vec<Condition>);

/// One JSON pointer and the one operator its value must pass.
#[derive(Debug, Clone)]
struct Condition {
    pointer: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    /// A scalar; numbers compare numerically (`1000` equals `1000.0`).
    Equals(Value),
    OneOf(Vec<Value>),
    /// `true`: the pointer resolves (a JSON `null` counts as present); `false`: it does not.
    Exists(bool),
    Prefix(String),
    Gt(Number),
    Lt(Number),
}

impl Filter {
    /// No conditions: the body need not be parsed for this upstream.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every condition holds on `doc`, the body parsed as JSON. A body that is not JSON
    /// (`None`) fails every condition except `exists = false`.
    pub fn holds(&self, doc: Option<&Value>) -> bool {
        self.0.iter().all(|c| c.holds(doc))
    }
}

impl Condition {
    fn holds(&self, doc: Option<&Value>) -> bool {
        let found = doc.and_then(|d| d.pointer(&self.pointer));
        match (&self.op, found) {
            (Op::Exists(want), v) => v.is_some() == *want,
            (_, None) => false,
            (Op::Equals(want), Some(v)) => same(want, v),
            (Op::OneOf(wants), Some(v)) => wants.iter().any(|w| same(w, v)),
            (Op::Prefix(p), Some(v)) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            (Op::Gt(n), Some(Value::Number(v))) => compare(v, n) == Some(Ordering::Greater),
            (Op::Lt(n), Some(Value::Number(v))) => compare(v, n) == Some(Ordering::Less),
            (Op::Gt(_) | Op::Lt(_), Some(_)) => false,
        }
    }
}

/// JSON equality, except that numbers compare by value whatever their representation.
fn same(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => compare(a, b) == Some(Ordering::Equal),
        _ => want == got,
    }
}

/// Integers exactly (an id past 2^53 stays distinct from its neighbour), anything else as f64.
fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// `key` is the filter's own key (`route[0].upstreams[1].filter`); errors name the condition's.
pub(super) fn filter(cx: &Cx, key: &str, raw: Vec<RawCondition>) -> Result<Filter, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| condition(cx, &format!("{key}[{i}]"), c))
        .collect::<Result<_, _>>()
        .map(Filter)
}

type Parse = fn(toml::Value) -> Result<Op, &'static str>;

fn condition(cx: &Cx, key: &str, c: RawCondition) -> Result<Condition, ConfigError> {
    let pointer = match c.pointer {
        Some(toml::Value::String(p)) => p,
        Some(_) => return Err(cx.err(format!("{key}.pointer"), "must be a string")),
        None => {
            return Err(cx.err(
                format!("{key}.pointer"),
                "missing: set a JSON pointer, e.g. \"/data/object/status\"",
            ));
        }
    };
    check_pointer(&pointer).map_err(|p| cx.err(format!("{key}.pointer"), p))?;
    let ops: [(&str, Option<toml::Value>, Parse); 6] = [
        ("equals", c.equals, |v| scalar(v).map(Op::Equals)),
        ("one_of", c.one_of, one_of),
        ("exists", c.exists, |v| {
            v.as_bool().map(Op::Exists).ok_or("must be true or false")
        }),
        ("prefix", c.prefix, prefix),
        ("gt", c.gt, |v| number(v).map(Op::Gt)),
        ("lt", c.lt, |v| number(v).map(Op::Lt)),
    ];
    let mut set = ops
        .into_iter()
        .filter_map(|(name, v, parse)| Some((name, v?, parse)));
    let Some((name, value, parse)) = set.next() else {
        return Err(cx.err(
            key,
            "no operator: set one of equals, one_of, exists, prefix, gt or lt",
        ));
    };
    if let Some((other, _, _)) = set.next() {
        return Err(cx.err(
            format!("{key}.{other}"),
            format!("one operator per condition, and `{name}` is set already"),
        ));
    }
    let op = parse(value).map_err(|p| cx.err(format!("{key}.{name}"), p))?;
    Ok(Condition { pointer, op })
}

/// RFC 6901: empty (the whole body) or `/`-separated tokens, where `~` is only `~0` or `~1`.
/// serde_json's `pointer` reads other escapes literally; refusing them keeps a typo visible.
pub(super) fn check_pointer(p: &str) -> Result<(), String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!(
            "{p:?} is not a JSON pointer (RFC 6901): it is empty or starts with '/', e.g. \"/type\""
        ));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "{p:?}: '~' must be followed by 0 or 1 (\"~0\" is '~', \"~1\" is '/')"
            ));
        }
    }
    Ok(())
}

fn scalar(v: toml::Value) -> Result<Value, &'static str> {
    match v {
        toml::Value::String(s) => Ok(Value::String(s)),
        toml::Value::Boolean(b) => Ok(Value::Bool(b)),
        toml::Value::Integer(i) => Ok(Value::from(i)),
        toml::Value::Float(f) => Number::from_f64(f)
            .map(Value::Number)
            .ok_or("must be a finite number"),
        _ => Err("must be a string, a number or a boolean"),
    }
}

fn one_of(v: toml::Value) -> Result<Op, &'static str> {
    match v {
        toml::Value::Array(a) if a.is_empty() => Err("must list at least one value"),
        toml::Value::Array(a) => a
            .into_iter()
            .map(|v| scalar(v).map_err(|_| "must list only strings, numbers or booleans"))
            .collect::<Result<_, _>>()
            .map(Op::OneOf),
        _ => Err("must be an array of strings, numbers or booleans"),
    }
}

fn prefix(v: toml::Value) -> Result<Op, &'static str> {
    match v {
        toml::Value::String(s) => Ok(Op::Prefix(s)),
        _ => Err("must be a string"),
    }
}

fn number(v: toml::Value) -> Result<Number, &'static str> {
    match v {
        toml::Value::Integer(i) => Ok(Number::from(i)),
        toml::Value::Float(f) => Number::from_f64(f).ok_or("must be a finite number"),
        _ => Err("must be a number"),
    }
}
