use std::path::Path;

use super::*;

mod acme;
mod filter;
mod holes;
mod order;
mod server;
mod tls_files;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8443"
insecure_http = true
[storage]
path = "data"
[[route]]
name = "stripe"
path = "/webhooks/stripe"
scheme = "stripe"
secrets = ["whsec_test_literal"]
upstream = { url = "http://127.0.0.1:3000/hooks" }
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/hookgate/test.toml"), text)
}

/// Loads `text` expecting failure; returns the message.
fn refused(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_refused(text: &str, key: &str, words: &str) {
    let msg = refused(text);
    assert!(
        msg.starts_with("/etc/hookgate/test.toml:"),
        "no file in {msg:?}"
    );
    assert!(msg.contains(key), "key {key:?} missing in {msg:?}");
    assert!(msg.contains(words), "{words:?} missing in {msg:?}");
}

#[test]
fn good_config_has_typed_defaults() {
    let c = load(GOOD).unwrap();
    let r = &c.routes[0];
    assert_eq!(r.max_body, 64 * 1024);
    assert_eq!(r.retry.max_attempts, 5);
    assert_eq!(r.retry.schedule[1], Duration::from_secs(300));
    assert_eq!(r.upstreams[0].timeout, Duration::from_secs(30));
    assert_eq!(r.upstreams[0].concurrency, 16);
    assert_eq!(c.storage.dedup_ttl, Duration::from_secs(86_400));
    assert_eq!(c.storage.path, Path::new("/etc/hookgate/data"));
    assert_eq!(c.warnings.len(), 1, "the literal secret is warned about");
    assert!(
        !c.warnings[0].contains("whsec_test_literal"),
        "a warning leaked the secret"
    );
}

#[test]
fn unknown_key_is_refused() {
    let msg = refused(&GOOD.replace("insecure_http", "lisen = \"x\"\ninsecure_http"));
    assert!(
        msg.contains("unknown field") && msg.contains("lisen"),
        "{msg}"
    );
}

#[test]
fn missing_env_secret_is_refused() {
    let text = GOOD.replace("whsec_test_literal", "env:HOOKGATE_TEST_SURELY_UNSET");
    assert_refused(
        &text,
        "route[0].secrets[0]",
        "HOOKGATE_TEST_SURELY_UNSET is not set",
    );
}

#[test]
fn missing_secret_file_is_refused() {
    let text = GOOD.replace("whsec_test_literal", "file:no/such/secret");
    assert_refused(&text, "route[0].secrets[0]", "cannot read secret file");
}

#[test]
fn bad_duration_is_refused() {
    let text = GOOD.replace("path = \"data\"", "dedup_ttl = \"24 parsecs\"");
    assert_refused(&text, "storage.dedup_ttl", "bad duration");
}

#[test]
fn bad_size_is_refused() {
    let text = GOOD.replace(
        "scheme = \"stripe\"",
        "scheme = \"stripe\"\nmax_body = \"lots\"",
    );
    assert_refused(&text, "route[0].max_body", "bad size");
}

#[test]
fn duplicate_route_path_is_refused() {
    let second = GOOD
        .split("[[route]]")
        .nth(1)
        .unwrap()
        .replace("\"stripe\"\npath", "\"other\"\npath");
    let text = format!("{GOOD}\n[[route]]{second}");
    assert_refused(&text, "route[1].path", "duplicate route path");
}

#[test]
fn unknown_scheme_is_refused() {
    let text = GOOD.replace("scheme = \"stripe\"", "scheme = \"carrier-pigeon\"");
    assert_refused(&text, "route[0].scheme", "unknown scheme");
}

#[test]
fn missing_cert_is_refused() {
    let text = GOOD.replace(
        "insecure_http = true",
        "tls = { cert = \"nope.crt\", key = \"nope.key\" }",
    );
    assert_refused(&text, "server.tls.cert", "not found");
}

#[test]
fn plain_http_needs_opt_in() {
    let text = GOOD.replace("insecure_http = true", "");
    assert_refused(&text, "server.tls", "insecure_http");
}

#[test]
fn bad_upstream_url_is_refused() {
    let text = GOOD.replace("http://127.0.0.1:3000/hooks", "ftp://example.com/x");
    assert_refused(&text, "route[0].upstream.url", "http://");
}

#[test]
fn empty_secrets_are_refused() {
    let text = GOOD.replace("[\"whsec_test_literal\"]", "[]");
    assert_refused(&text, "route[0].secrets", "at least one secret");
}

#[test]
fn zero_concurrency_is_refused() {
    let text = GOOD.replace(
        "url = \"http://127.0.0.1:3000/hooks\"",
        "url = \"http://127.0.0.1:3000/hooks\", concurrency = 0",
    );
    assert_refused(&text, "route[0].upstream.concurrency", "at least 1");
}

#[test]
fn bad_listen_address_is_refused() {
    let text = GOOD.replace("127.0.0.1:8443", "localhost");
    assert_refused(&text, "server.listen", "bad socket address");
}

#[test]
fn wrong_type_is_refused() {
    let msg = refused(&GOOD.replace("insecure_http = true", "insecure_http = \"yes\""));
    assert!(msg.contains("insecure_http"), "{msg}");
}

#[test]
fn bad_cidr_is_refused() {
    let text = GOOD.replace(
        "scheme = \"stripe\"",
        "scheme = \"stripe\"\nallow_ips = [\"10.0.0.0/99\"]",
    );
    assert_refused(&text, "route[0].allow_ips[0]", "bad CIDR");
}

#[test]
fn no_routes_is_refused() {
    let text = GOOD.split("[[route]]").next().unwrap();
    assert_refused(text, "route", "at least one");
}

#[test]
fn secrets_never_appear_in_debug() {
    let c = load(GOOD).unwrap();
    assert!(!format!("{c:?}").contains("whsec_test_literal"));
}

const FAN: &str = r#"upstreams = [
  { name = "billing", url = "http://127.0.0.1:3000/billing", events = ["invoice.*"] },
  { name = "all", url = "http://127.0.0.1:3000/all" },
]"#;

#[test]
fn fan_out_gives_one_lane_per_upstream() {
    let c =
        load(&GOOD.replace("upstream = { url = \"http://127.0.0.1:3000/hooks\" }", FAN)).unwrap();
    let lanes: Vec<String> = c.routes[0]
        .upstreams
        .iter()
        .map(|u| u.lane("stripe"))
        .collect();
    assert_eq!(lanes, ["stripe/billing", "stripe/all"]);
    assert!(c.routes[0].upstreams[0].wants(Some("invoice.paid"), None));
    assert!(!c.routes[0].upstreams[0].wants(Some("customer.created"), None));
    assert!(c.routes[0].upstreams[1].wants(Some("customer.created"), None));
}

#[test]
fn upstream_and_upstreams_together_are_refused() {
    let text = GOOD.replace("upstream = {", &format!("{FAN}\nupstream = {{"));
    assert_refused(&text, "route[0].upstreams", "not both");
}

#[test]
fn missing_upstream_is_refused() {
    let text = GOOD.replace("upstream = { url = \"http://127.0.0.1:3000/hooks\" }", "");
    assert_refused(&text, "route[0].upstream", "missing");
}

#[test]
fn fan_out_names_must_be_unique() {
    let text = GOOD.replace(
        "upstream = { url = \"http://127.0.0.1:3000/hooks\" }",
        &FAN.replace("\"all\"", "\"billing\""),
    );
    assert_refused(
        &text,
        "route[0].upstreams[1].name",
        "duplicate upstream name",
    );
}

#[test]
fn bad_no_retry_status_is_refused() {
    let text = GOOD.replace(
        "scheme = \"stripe\"",
        "scheme = \"stripe\"\nretry = { no_retry_on = [42] }",
    );
    assert_refused(&text, "route[0].retry.no_retry_on", "not an HTTP status");
}

#[test]
fn redis_backend_has_typed_defaults() {
    let c = load(&GOOD.replace("path = \"data\"", "backend = \"redis\"")).unwrap();
    assert_eq!(c.storage.backend, Backend::Redis);
    assert_eq!(c.storage.key_prefix, "hookgate");
    assert_eq!(c.storage.visibility_timeout, Duration::from_secs(120));
    assert_eq!(c.storage.op_timeout, Duration::from_secs(2));
}

#[test]
fn redis_visibility_timeout_must_cover_the_slowest_upstream() {
    let text = GOOD.replace(
        "path = \"data\"",
        "backend = \"redis\"\nvisibility_timeout = \"35s\"",
    );
    // 30 s upstream timeout + 2 s op_timeout + 5 s margin > 35 s.
    assert_refused(&text, "storage.visibility_timeout", "route \"stripe\"");
    let ok = text.replace("\"35s\"", "\"38s\"");
    assert!(load(&ok).is_ok());
    let embedded = text.replace("backend = \"redis\"\n", "");
    assert!(load(&embedded).is_ok(), "only checked for Redis");
}

#[test]
fn redis_cluster_turns_on_shards_and_is_checked() {
    let single = load(&GOOD.replace("path = \"data\"", "backend = \"redis\"\nshards = 8")).unwrap();
    assert_eq!(
        single.storage.shards, 1,
        "one Redis keeps one stream per lane"
    );
    assert!(single.storage.redis_cluster.is_empty());
    let cluster = GOOD.replace(
        "path = \"data\"",
        "backend = \"redis\"\nredis_cluster = [\"redis://10.0.0.1:6379\", \"redis://10.0.0.2:6379\"]",
    );
    let c = load(&cluster).unwrap();
    assert_eq!((c.storage.shards, c.storage.wait_replicas), (16, 0));
    assert_eq!(c.storage.redis_cluster.len(), 2);
    let tuned = cluster.replace("backend", "shards = 4\nwait_replicas = 1\nbackend");
    let c = load(&tuned).unwrap();
    assert_eq!((c.storage.shards, c.storage.wait_replicas), (4, 1));
    let bad_seed = cluster.replace("redis://10.0.0.2:6379", "http://10.0.0.2");
    assert_refused(&bad_seed, "storage.redis_cluster[1]", "redis://");
    let zero = cluster.replace("backend", "shards = 0\nbackend");
    assert_refused(&zero, "storage.shards", "between 1 and");
    let many = cluster.replace("backend", "wait_replicas = 99\nbackend");
    assert_refused(&many, "storage.wait_replicas", "at most");
    let embedded = cluster.replace("backend = \"redis\"\n", "");
    assert_refused(&embedded, "storage.redis_cluster", "backend = \"redis\"");
}

#[test]
fn bad_key_prefix_is_refused() {
    let text = GOOD.replace("path = \"data\"", "key_prefix = \"{hg}\"");
    assert_refused(&text, "storage.key_prefix", "hash tags");
}

#[test]
fn admin_off_loopback_is_warned_about() {
    let exposed =
        load(&GOOD.replace("[storage]", "[admin]\nlisten = \"0.0.0.0:9090\"\n[storage]")).unwrap();
    assert!(
        exposed
            .warnings
            .iter()
            .any(|w| w.contains("admin.listen") && w.contains("NOT loopback")),
        "{:?}",
        exposed.warnings
    );
    let local =
        load(&GOOD.replace("[storage]", "[admin]\nlisten = \"[::1]:9090\"\n[storage]")).unwrap();
    assert!(!local.warnings.iter().any(|w| w.contains("admin.listen")));
}

#[test]
fn route_dedup_defaults_to_id_and_takes_id_plus_body() {
    assert_eq!(load(GOOD).unwrap().routes[0].dedup, DedupOn::Id);
    let strict = GOOD.replace(
        "scheme = \"stripe\"",
        "scheme = \"stripe\"\ndedup = \"id+body\"",
    );
    assert_eq!(load(&strict).unwrap().routes[0].dedup, DedupOn::IdAndBody);
    let bad = GOOD.replace(
        "scheme = \"stripe\"",
        "scheme = \"stripe\"\ndedup = \"body\"",
    );
    assert_refused(&bad, "route[0].dedup", "\"id+body\"");
}

#[test]
fn telemetry_is_off_without_an_endpoint_and_validated_with_one() {
    assert!(load(GOOD).unwrap().telemetry.is_none());
    let on = format!("{GOOD}[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n");
    let t = load(&on).unwrap().telemetry.expect("on");
    assert_eq!(t.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(
        (t.export_interval, t.max_queued_spans),
        (Duration::from_secs(5), 2048)
    );
    assert_eq!(t.service_name, "hookgate");
    let bad = format!("{GOOD}[telemetry]\notlp_endpoint = \"localhost:4318\"\n");
    assert_refused(
        &bad,
        "telemetry.otlp_endpoint",
        "absolute http:// or https:// URL",
    );
    let slow = format!("{on}export_interval = \"2h\"\n");
    assert_refused(&slow, "telemetry.export_interval", "over the limit");
    let typo = format!("{GOOD}[telemetry]\notlp_endpont = \"http://c\"\n");
    assert!(refused(&typo).contains("otlp_endpont"));
}
