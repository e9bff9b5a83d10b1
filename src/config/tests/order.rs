//! `order_by` and `on_dead`: what loads, and every bad value refused by its key.

use super::*;
use crate::config::{OnDead, OrderBy, Ordering};

fn with(lines: &str) -> String {
    GOOD.replace("[[route]]\n", &format!("[[route]]\n{lines}\n"))
}

#[test]
fn order_by_reads_a_pointer_or_a_header_and_on_dead_defaults_to_release() {
    let c = load(&with(r#"order_by = "/data/object/id""#)).unwrap();
    assert_eq!(
        c.routes[0].order,
        Some(Ordering {
            by: OrderBy::Pointer("/data/object/id".into()),
            on_dead: OnDead::Release
        })
    );
    let c = load(&with(
        "order_by = \"header:X-Account\"\non_dead = \"block\"",
    ))
    .unwrap();
    let order = c.routes[0].order.as_ref().unwrap();
    assert_eq!(order.by, OrderBy::Header("x-account".parse().unwrap()));
    assert_eq!(order.on_dead, OnDead::Block);
    assert_eq!(load(GOOD).unwrap().routes[0].order, None);
}

#[test]
fn bad_ordering_is_refused_naming_its_key() {
    let cases = [
        (r#"order_by = "data/id""#, "route[0].order_by", "RFC 6901"),
        (r#"order_by = "/a~2""#, "route[0].order_by", "'~'"),
        (r#"order_by = """#, "route[0].order_by", "empty"),
        (
            r#"order_by = "header:bad name""#,
            "route[0].order_by",
            "header name",
        ),
        (
            "order_by = \"/id\"\non_dead = \"keep\"",
            "route[0].on_dead",
            "\"release\" or \"block\"",
        ),
        (r#"on_dead = "block""#, "route[0].on_dead", "needs order_by"),
    ];
    for (lines, key, words) in cases {
        assert_refused(&with(lines), key, words);
    }
}
