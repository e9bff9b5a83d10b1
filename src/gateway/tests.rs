use std::path::Path;

use super::*;

/// A Redis-backed config whose stripe upstream times out after `timeout`.
fn config(
    timeout: &str,
    visibility: &str,
    secret: &str,
) -> Result<Config, crate::config::ConfigError> {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:8443"
insecure_http = true
[storage]
backend = "redis"
visibility_timeout = "{visibility}"
op_timeout = "1s"
[[route]]
name = "stripe"
path = "/webhooks/stripe"
scheme = "stripe"
secrets = ["{secret}"]
upstream = {{ url = "http://127.0.0.1:3000/hooks", timeout = "{timeout}" }}
"#
    );
    Config::parse(Path::new("/etc/hookgate/test.toml"), &text)
}

#[test]
fn a_reloadable_change_is_applied() {
    let running = config("2s", "30s", "whsec_a").unwrap();
    let next = config("20s", "30s", "whsec_b").unwrap();
    assert!(fixed_changes(&running, &next).is_empty());
    assert!(reload(&running, &next, None));
}

#[test]
fn a_restart_only_key_refuses_the_whole_reload() {
    let running = config("2s", "30s", "whsec_a").unwrap();
    let next = config("2s", "40s", "whsec_b").unwrap();
    assert_eq!(
        fixed_changes(&running, &next),
        ["storage.visibility_timeout"]
    );
    assert!(!reload(&running, &next, None));
}

/// An upstream timeout never outgrows the running Redis lease: a file raising it past the
/// lease does not load, and one raising the lease too is refused as a restart-only change.
#[test]
fn an_upstream_timeout_past_the_running_lease_is_never_applied() {
    let running = config("2s", "30s", "whsec_a").unwrap();
    let err = config("40s", "30s", "whsec_a").unwrap_err().to_string();
    assert!(err.contains("storage.visibility_timeout"), "{err}");
    let next = config("40s", "60s", "whsec_a").unwrap();
    assert!(!reload(&running, &next, None));
}

fn acme_config(domain: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:8443"
tls = {{ acme = {{ domains = ["{domain}"], directory = "https://acme.invalid/dir" }} }}
[storage]
path = "/nonexistent/hookgate-gateway-unit"
[[route]]
name = "stripe"
path = "/webhooks/stripe"
scheme = "stripe"
secrets = ["whsec_a"]
upstream = {{ url = "http://127.0.0.1:3000/hooks" }}
"#
    );
    Config::parse(Path::new("/etc/hookgate/test.toml"), &text).unwrap()
}

/// Under ACME a reload leaves the certificate to the ACME task (there is no pair to load), and
/// a changed ACME block needs a restart.
#[test]
fn a_reload_under_acme_keeps_the_resolver_and_refuses_a_changed_block() {
    let running = acme_config("hooks.example.com");
    let acme = server::acme::Acme::new(running.server.tls.as_ref().unwrap().acme.as_ref().unwrap());
    let swap = Reloadable::new(acme.server_config().unwrap());
    assert!(reload(
        &running,
        &acme_config("hooks.example.com"),
        Some(&swap)
    ));
    let other = acme_config("other.example.com");
    assert_eq!(fixed_changes(&running, &other), ["server.tls.acme"]);
    assert!(!reload(&running, &other, Some(&swap)));
}
