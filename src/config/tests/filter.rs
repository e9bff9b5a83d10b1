//! `upstream.filter`: every operator on real bodies, and every bad condition refused by key.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::filter::check_pointer;
use super::*;

const SINGLE: &str = "upstream = { url = \"http://127.0.0.1:3000/hooks\" }";

/// GOOD with a fan-out of one upstream whose filter is `conditions` (TOML inline array body).
fn fan(conditions: &str) -> String {
    GOOD.replace(
        SINGLE,
        &format!(
            "upstreams = [\n  {{ name = \"a\", url = \"http://127.0.0.1:3000/a\" }},\n  \
             {{ name = \"b\", url = \"http://127.0.0.1:3000/b\", filter = [{conditions}] }},\n]"
        ),
    )
}

/// Whether the filtered upstream wants `doc` (`None`: a body that is not JSON).
fn wants(conditions: &str, doc: Option<Value>) -> bool {
    let c = load(&fan(conditions)).unwrap();
    let u = &c.routes[0].upstreams;
    assert!(u[0].wants(Some("x"), doc.as_ref()), "no filter takes all");
    u[1].wants(Some("x"), doc.as_ref())
}

fn invoice(status: &str, amount: Value) -> Option<Value> {
    Some(json!({
        "type": "invoice.paid",
        "data": { "object": { "status": status, "amount": amount, "currency": "usd",
                              "metadata": { "vip": null }, "a/b": 1, "m~n": 2 } }
    }))
}

#[test]
fn equals_compares_json_values_and_numbers_numerically() {
    let c = r#"{ pointer = "/data/object/status", equals = "paid" }"#;
    assert!(wants(c, invoice("paid", json!(1))));
    assert!(!wants(c, invoice("open", json!(1))));
    let n = r#"{ pointer = "/data/object/amount", equals = 1000 }"#;
    assert!(wants(n, invoice("paid", json!(1000))));
    assert!(wants(n, invoice("paid", json!(1000.0))));
    assert!(
        !wants(n, invoice("paid", json!("1000"))),
        "a string is not a number"
    );
    let f = r#"{ pointer = "/data/object/amount", equals = 10.5 }"#;
    assert!(wants(f, invoice("paid", json!(10.5))));
    let b = r#"{ pointer = "/live", equals = true }"#;
    assert!(wants(b, Some(json!({ "live": true }))));
    assert!(!wants(b, Some(json!({ "live": "true" }))));
    let big = r#"{ pointer = "/id", equals = 9007199254740993 }"#;
    assert!(!wants(
        big,
        Some(json!({ "id": 9_007_199_254_740_992_u64 }))
    ));
    assert!(wants(big, Some(json!({ "id": 9_007_199_254_740_993_u64 }))));
}

#[test]
fn one_of_takes_any_listed_scalar() {
    let c = r#"{ pointer = "/data/object/currency", one_of = ["eur", "usd"] }"#;
    assert!(wants(c, invoice("paid", json!(1))));
    assert!(!wants(
        c,
        Some(json!({ "data": { "object": { "currency": "gbp" } } }))
    ));
    let n = r#"{ pointer = "/n", one_of = [1, 2.5, false] }"#;
    assert!(wants(n, Some(json!({ "n": 1.0 }))));
    assert!(wants(n, Some(json!({ "n": false }))));
    assert!(!wants(n, Some(json!({ "n": 3 }))));
}

#[test]
fn exists_tells_present_from_absent_and_null_is_present() {
    let yes = r#"{ pointer = "/data/object/metadata/vip", exists = true }"#;
    let no = r#"{ pointer = "/data/object/metadata/vip", exists = false }"#;
    assert!(wants(yes, invoice("paid", json!(1))));
    assert!(!wants(no, invoice("paid", json!(1))));
    let absent = Some(json!({ "data": {} }));
    assert!(!wants(yes, absent.clone()));
    assert!(wants(no, absent));
}

#[test]
fn prefix_takes_strings_that_start_with_it() {
    let c = r#"{ pointer = "/type", prefix = "invoice." }"#;
    assert!(wants(c, invoice("paid", json!(1))));
    assert!(!wants(c, Some(json!({ "type": "customer.created" }))));
    assert!(!wants(c, Some(json!({ "type": ["invoice.paid"] }))));
}

#[test]
fn gt_and_lt_take_only_numbers_strictly_beyond() {
    let gt = r#"{ pointer = "/data/object/amount", gt = 1000 }"#;
    let lt = r#"{ pointer = "/data/object/amount", lt = 50000 }"#;
    assert!(wants(gt, invoice("paid", json!(1001))));
    assert!(!wants(gt, invoice("paid", json!(1000))));
    assert!(wants(gt, invoice("paid", json!(1000.5))));
    assert!(!wants(gt, invoice("paid", json!("99999"))), "not a number");
    assert!(wants(lt, invoice("paid", json!(-3))));
    assert!(!wants(lt, invoice("paid", json!(50000))));
    assert!(!wants(lt, Some(json!({}))), "absent");
    let f = r#"{ pointer = "/x", gt = 0.5 }"#;
    assert!(wants(f, Some(json!({ "x": 1 }))));
    assert!(!wants(f, Some(json!({ "x": 0 }))));
}

#[test]
fn all_conditions_must_hold() {
    let c = r#"{ pointer = "/data/object/status", equals = "paid" },
               { pointer = "/data/object/amount", gt = 1000 },
               { pointer = "/data/object/amount", lt = 50000 }"#;
    assert!(wants(c, invoice("paid", json!(4200))));
    assert!(!wants(c, invoice("paid", json!(42))));
    assert!(!wants(c, invoice("open", json!(4200))));
}

#[test]
fn pointers_unescape_per_rfc_6901_and_empty_is_the_whole_body() {
    let slash = r#"{ pointer = "/data/object/a~1b", equals = 1 }"#;
    let tilde = r#"{ pointer = "/data/object/m~0n", equals = 2 }"#;
    assert!(wants(slash, invoice("paid", json!(1))));
    assert!(wants(tilde, invoice("paid", json!(1))));
    let whole = r#"{ pointer = "", equals = "ping" }"#;
    assert!(wants(whole, Some(json!("ping"))));
    let index = r#"{ pointer = "/items/1", equals = "b" }"#;
    assert!(wants(index, Some(json!({ "items": ["a", "b"] }))));
}

#[test]
fn a_body_that_is_not_json_fails_every_condition_but_exists_false() {
    for c in [
        r#"{ pointer = "", exists = true }"#,
        r#"{ pointer = "/type", prefix = "" }"#,
        r#"{ pointer = "/n", lt = 1 }"#,
        r#"{ pointer = "/n", one_of = [1] }"#,
    ] {
        assert!(!wants(c, None), "{c}");
    }
    assert!(wants(r#"{ pointer = "/type", exists = false }"#, None));
}

#[test]
fn globs_and_filters_must_both_hold() {
    let text = GOOD.replace(
        SINGLE,
        r#"upstream = { url = "http://127.0.0.1:3000/hooks", events = ["invoice.*"], filter = [{ pointer = "/ok", equals = true }] }"#,
    );
    let c = load(&text).unwrap();
    let u = &c.routes[0].upstreams[0];
    let ok = json!({ "ok": true });
    assert!(u.wants(Some("invoice.paid"), Some(&ok)));
    assert!(!u.wants(Some("customer.created"), Some(&ok)));
    assert!(!u.wants(Some("invoice.paid"), Some(&json!({ "ok": false }))));
}

#[test]
fn bad_conditions_are_refused_naming_their_key() {
    let k = "route[0].upstreams[1].filter";
    let cases = [
        (r#"{ equals = "x" }"#, "[0].pointer", "missing"),
        (r#"{ pointer = 3, equals = "x" }"#, "[0].pointer", "string"),
        (
            r#"{ pointer = "type", equals = "x" }"#,
            "[0].pointer",
            "RFC 6901",
        ),
        (r#"{ pointer = "/a~2", equals = "x" }"#, "[0].pointer", "~"),
        (r#"{ pointer = "/a~", equals = "x" }"#, "[0].pointer", "~"),
        (r#"{ pointer = "/a" }"#, "[0]", "no operator"),
        (
            r#"{ pointer = "/a", equals = 1, gt = 0 }"#,
            "[0].gt",
            "one operator",
        ),
        (
            r#"{ pointer = "/a", equals = [1] }"#,
            "[0].equals",
            "string, a number",
        ),
        (
            r#"{ pointer = "/a", equals = { b = 1 } }"#,
            "[0].equals",
            "string, a number",
        ),
        (
            r#"{ pointer = "/a", equals = nan }"#,
            "[0].equals",
            "finite",
        ),
        (r#"{ pointer = "/a", one_of = "x" }"#, "[0].one_of", "array"),
        (
            r#"{ pointer = "/a", one_of = [] }"#,
            "[0].one_of",
            "at least one",
        ),
        (
            r#"{ pointer = "/a", one_of = [[1]] }"#,
            "[0].one_of",
            "only strings",
        ),
        (
            r#"{ pointer = "/a", exists = "yes" }"#,
            "[0].exists",
            "true or false",
        ),
        (r#"{ pointer = "/a", prefix = 1 }"#, "[0].prefix", "string"),
        (r#"{ pointer = "/a", gt = "1" }"#, "[0].gt", "number"),
        (r#"{ pointer = "/a", lt = inf }"#, "[0].lt", "finite"),
        (r#"{ pointer = "/a", lt = true }"#, "[0].lt", "number"),
    ];
    for (c, key, words) in cases {
        let ok = r#"{ pointer = "/ok", exists = true }"#;
        let text = fan(&format!("{ok}, {}", c.replace("[0]", "[1]")));
        assert_refused(&text, &format!("{k}{}", key.replace("[0]", "[1]")), words);
    }
    let single = GOOD.replace(
        SINGLE,
        r#"upstream = { url = "http://127.0.0.1:3000/hooks", filter = [{ pointer = "/a", gte = 1 }] }"#,
    );
    let msg = refused(&single);
    assert!(
        msg.contains("unknown field") && msg.contains("gte"),
        "{msg}"
    );
    let single = single.replace("gte = 1", "exists = 1");
    assert_refused(
        &single,
        "route[0].upstream.filter[0].exists",
        "true or false",
    );
}

/// Appends `seg` to a pointer as RFC 6901 says: `~` as `~0`, then `/` as `~1`.
fn escape(seg: &str) -> String {
    format!("/{}", seg.replace('~', "~0").replace('/', "~1"))
}

proptest! {
    #[test]
    fn pointer_validation_never_panics_and_accepts_only_rfc_6901(p in any::<String>()) {
        let ok = check_pointer(&p).is_ok();
        let well_formed = (p.is_empty() || p.starts_with('/'))
            && p.split('~').skip(1).all(|rest| rest.starts_with('0') || rest.starts_with('1'));
        prop_assert_eq!(ok, well_formed);
        let _ = json!({ "a": [1] }).pointer(&p);
    }

    #[test]
    fn escaped_keys_are_accepted_and_resolve(segs in proptest::collection::vec(any::<String>(), 0..4)) {
        let pointer: String = segs.iter().map(|s| escape(s)).collect();
        prop_assert!(check_pointer(&pointer).is_ok());
        let doc = segs.iter().rev().fold(json!(7), |inner, s| {
            Value::Object(serde_json::Map::from_iter([(s.clone(), inner)]))
        });
        prop_assert_eq!(doc.pointer(&pointer), Some(&json!(7)));
    }
}
