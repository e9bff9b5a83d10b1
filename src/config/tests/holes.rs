//! Config holes `check` must refuse, each naming its key and never echoing a secret.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

/// A config file in a temporary directory, beside the files it names.
pub(super) struct Dir(pub(super) tempfile::TempDir);

impl Dir {
    pub(super) fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    pub(super) fn write(&self, name: &str, contents: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    pub(super) fn load(&self, text: &str) -> Result<Config, ConfigError> {
        Config::parse(&self.0.path().join("hookgate.toml"), text)
    }

    /// Asserts `text` is refused naming the file, `key` and `words`; returns the message.
    pub(super) fn refused(&self, text: &str, key: &str, words: &str) -> String {
        let msg = match self.load(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        };
        let file = self.0.path().join("hookgate.toml");
        assert!(msg.starts_with(&format!("{}: ", file.display())), "{msg}");
        assert!(
            msg.contains(&format!(": {key}: ")),
            "key {key:?} missing: {msg}"
        );
        assert!(msg.contains(words), "{words:?} missing: {msg}");
        msg
    }
}

fn with_route_key(line: &str) -> String {
    GOOD.replace("upstream = {", &format!("{line}\nupstream = {{"))
}

#[test]
fn forward_secret_must_be_a_standard_webhooks_signing_key() {
    let d = Dir::new();
    let public = format!("whpk_{}", base64_of(&[7; 32]));
    for bad in [
        "hunter2!",
        "aGVsbG8gd29ybGQ=",
        "whsec_",
        "whsec_!!!",
        &public,
    ] {
        let text = with_route_key(&format!("forward_secret = \"{bad}\""));
        let msg = d.refused(
            &text,
            "route[0].forward_secret",
            "Standard Webhooks signing key",
        );
        assert!(bad.len() < 7 || !msg.contains(bad), "{msg}");
    }
    let good = format!("whsec_{}", base64_of(b"0123456789abcdef"));
    let c = d
        .load(&with_route_key(&format!("forward_secret = \"{good}\"")))
        .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains(&good[6..]) && !shown.contains("0123456789abcdef"));
    let signer = c.routes[0].forward_signer.as_ref().expect("signer built");
    let headers = signer.sign(b"{}", "evt_1", 1_700_000_000);
    assert!(
        headers["webhook-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1,")
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn durations_and_sizes_over_their_caps_are_refused() {
    let storage = |line: &str| format!("path = \"data\"\n{line}");
    let server = |line: &str| format!("insecure_http = true\n{line}");
    let route = |line: &str| format!("{line}\nupstream = {{");
    let cases = [
        (
            "path = \"data\"",
            storage("claim_ttl = \"31d\""),
            "storage.claim_ttl",
        ),
        (
            "path = \"data\"",
            storage("dedup_ttl = \"400d\""),
            "storage.dedup_ttl",
        ),
        (
            "path = \"data\"",
            storage("op_timeout = \"2h\""),
            "storage.op_timeout",
        ),
        (
            "path = \"data\"",
            storage("cache = \"1TiB\""),
            "storage.cache",
        ),
        (
            "insecure_http = true",
            server("shutdown_grace = \"2h\""),
            "server.shutdown_grace",
        ),
        (
            "insecure_http = true",
            server("body_timeout = \"1d\""),
            "server.body_timeout",
        ),
        (
            "upstream = {",
            route("retry = { schedule = [\"1m\", \"8d\"] }"),
            "route[0].retry.schedule[1]",
        ),
        (
            "upstream = {",
            route("tolerance = \"8d\""),
            "route[0].tolerance",
        ),
        (
            "upstream = {",
            route("max_body = \"2GiB\""),
            "route[0].max_body",
        ),
        (
            " }\n",
            ", timeout = \"2h\" }\n".into(),
            "route[0].upstream.timeout",
        ),
        (
            " }\n",
            ", probe_interval = \"2h\" }\n".into(),
            "route[0].upstream.probe_interval",
        ),
    ];
    for (from, to, key) in cases {
        assert_refused(&GOOD.replacen(from, &to, 1), key, "over the limit");
    }
    let huge = GOOD.replace("path = \"data\"", "claim_ttl = \"99999999999999999999s\"");
    assert_refused(&huge, "storage.claim_ttl", "bad duration");
    let many = GOOD.replace(" }\n", ", concurrency = 1000000 }\n");
    assert_refused(&many, "route[0].upstream.concurrency", "over the limit");
    let at_caps = GOOD
        .replace(
            "path = \"data\"",
            "dedup_ttl = \"30d\"\nclaim_ttl = \"30d\"",
        )
        .replace(
            "upstream = {",
            "retry = { schedule = [\"7d\"] }\nupstream = {",
        );
    assert!(load(&at_caps).is_ok(), "the caps themselves are allowed");
}

#[test]
fn redis_url_takes_references_and_never_prints_its_password() {
    let d = Dir::new();
    d.write(
        "redis.url",
        "redis://:s3cr3t-pw@db.internal:6379/0\n",
        0o600,
    );
    let text = GOOD.replace("path = \"data\"", "redis_url = \"file:redis.url\"");
    let c = d.load(&text).unwrap();
    assert_eq!(
        c.storage.redis_url.expose(),
        "redis://:s3cr3t-pw@db.internal:6379/0"
    );
    assert!(!format!("{c:?}").contains("s3cr3t-pw"));
    assert!(c.warnings.iter().all(|w| !w.contains("redis_url")));

    let literal = GOOD.replace(
        "path = \"data\"",
        "redis_url = \"redis://:s3cr3t-pw@db:6379\"",
    );
    let c = d.load(&literal).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("storage.redis_url")));
    assert!(c.warnings.iter().all(|w| !w.contains("s3cr3t-pw")));

    let unset = GOOD.replace(
        "path = \"data\"",
        "redis_url = \"env:HOOKGATE_TEST_NO_REDIS\"",
    );
    d.refused(
        &unset,
        "storage.redis_url",
        "HOOKGATE_TEST_NO_REDIS is not set",
    );
    d.write("redis.url", "http://:s3cr3t-pw@db/\n", 0o600);
    let msg = d.refused(&text, "storage.redis_url", "redis://");
    assert!(!msg.contains("s3cr3t-pw"), "{msg}");
    d.write(
        "redis.url",
        "redis://:s3cr3t-pw@db:6379/notanumber\n",
        0o600,
    );
    let msg = d.refused(&text, "storage.redis_url", "not a usable Redis URL");
    assert!(!msg.contains("s3cr3t-pw"), "{msg}");
}

#[test]
fn toml_errors_give_a_position_but_never_the_text() {
    let syntax = GOOD.replace("[\"whsec_test_literal\"]", "[\"whsec_SECRET_VALUE]");
    let msg = refused(&syntax);
    assert!(msg.contains("line 12, column 1"), "{msg}");
    assert!(!msg.contains("SECRET_VALUE"), "{msg}");
    let wrong_type = GOOD.replace("[\"whsec_test_literal\"]", "\"whsec_SECRET_VALUE\"");
    let msg = refused(&wrong_type);
    assert!(
        msg.contains("line 11, column 11") && msg.contains("route.secrets"),
        "{msg}"
    );
    assert!(!msg.contains("SECRET_VALUE"), "{msg}");
}
