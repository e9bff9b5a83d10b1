//! `[server]` connection limits: defaults, caps and the body budget against route sizes.

use super::*;

fn with_server(keys: &str) -> String {
    GOOD.replace(
        "insecure_http = true",
        &format!("insecure_http = true\n{keys}"),
    )
}

#[test]
fn connection_limits_have_defaults() {
    let s = load(GOOD).unwrap().server;
    assert_eq!(s.header_timeout, Duration::from_secs(10));
    assert_eq!(s.idle_timeout, Duration::from_secs(60));
    assert_eq!(s.max_connections, 10_000);
    assert_eq!(s.max_connections_per_ip, 256);
    assert_eq!(s.max_inflight_body, 64 << 20);
}

#[test]
fn the_default_cache_is_the_stores_default() {
    let storage = load(GOOD).unwrap().storage;
    assert_eq!(storage.cache_bytes, crate::embedded::DEFAULT_CACHE);
}

#[test]
fn connection_limits_are_read() {
    let text = with_server(
        "header_timeout = \"2s\"\nidle_timeout = \"90s\"\nmax_connections = 100\n\
         max_connections_per_ip = 4\nmax_inflight_body = \"8MiB\"",
    );
    let s = load(&text).unwrap().server;
    assert_eq!(s.header_timeout, Duration::from_secs(2));
    assert_eq!(s.idle_timeout, Duration::from_secs(90));
    assert_eq!(s.max_connections_per_ip, 4);
    assert_eq!(s.max_inflight_body, 8 << 20);
}

#[test]
fn default_per_ip_limit_shrinks_to_a_small_total() {
    let s = load(&with_server("max_connections = 10")).unwrap().server;
    assert_eq!(s.max_connections_per_ip, 10);
}

#[test]
fn per_ip_limit_over_the_total_is_refused() {
    let text = with_server("max_connections = 10\nmax_connections_per_ip = 11");
    assert_refused(
        &text,
        "server.max_connections_per_ip",
        "over server.max_connections",
    );
    let zero = with_server("max_connections_per_ip = 0");
    assert_refused(&zero, "server.max_connections_per_ip", "at least 1");
}

#[test]
fn connection_timeouts_are_capped() {
    let long = with_server("header_timeout = \"2h\"");
    assert_refused(&long, "server.header_timeout", "over the limit of 1h");
    let zero = with_server("idle_timeout = \"0s\"");
    assert_refused(&zero, "server.idle_timeout", "greater than zero");
}

#[test]
fn body_budget_must_hold_the_largest_body() {
    let text = with_server("max_inflight_body = \"1MiB\"").replace(
        "scheme = \"stripe\"",
        "scheme = \"stripe\"\nmax_body = \"2MiB\"",
    );
    assert_refused(
        &text,
        "server.max_inflight_body",
        "route \"stripe\" max_body",
    );
    let huge = with_server("max_inflight_body = \"5GiB\"");
    assert_refused(
        &huge,
        "server.max_inflight_body",
        "over the limit of 4.0 GiB",
    );
}
