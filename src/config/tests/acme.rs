//! `server.tls.acme`: checked at load (so by `hookgate check`) without contacting the ACME server.

use super::holes::Dir;
use super::*;

fn with_acme(block: &str) -> String {
    GOOD.replace(
        "insecure_http = true",
        &format!("tls = {{ acme = {{ {block} }} }}"),
    )
}

#[test]
fn a_good_block_compiles_with_defaults_and_the_store_under_storage_path() {
    let d = Dir::new();
    let c = d
        .load(&with_acme(
            r#"domains = ["Hooks.Example.com", "hooks.example.com."], email = "ops@example.com""#,
        ))
        .unwrap();
    let tls = c.server.tls.unwrap();
    let acme = tls.acme.unwrap();
    assert_eq!(
        acme.domains,
        ["hooks.example.com"],
        "lower case, deduplicated"
    );
    assert_eq!(acme.directory, crate::config::acme::LETS_ENCRYPT);
    assert_eq!(acme.email.as_deref(), Some("ops@example.com"));
    assert!(acme.directory_ca.is_none());
    assert_eq!(acme.dir, c.storage.path.join("acme"));
    assert_eq!(tls.cert, acme.dir.join("cert.pem"));
    assert!(tls.compiled.is_none());
}

#[test]
fn a_bad_block_is_refused_naming_the_key() {
    let d = Dir::new();
    d.refused(
        &with_acme("domains = []"),
        "server.tls.acme.domains",
        "at least one",
    );
    d.refused(
        &with_acme(r#"email = "a@b.c""#),
        "server.tls.acme.domains",
        "at least one",
    );
    d.refused(
        &with_acme(r#"domains = ["*.example.com"]"#),
        "server.tls.acme.domains",
        "wildcard",
    );
    d.refused(
        &with_acme(r#"domains = ["127.0.0.1"]"#),
        "server.tls.acme.domains",
        "not a fully qualified",
    );
    d.refused(
        &with_acme(r#"domains = ["localhost"]"#),
        "server.tls.acme.domains",
        "not a fully qualified",
    );
    d.refused(
        &with_acme(r#"domains = ["bad name.com"]"#),
        "server.tls.acme.domains",
        "not a fully qualified",
    );
    let one = r#"domains = ["hooks.example.com"]"#;
    d.refused(
        &with_acme(&format!(r#"{one}, email = "nobody""#)),
        "server.tls.acme.email",
        "not an email",
    );
    d.refused(
        &with_acme(&format!(
            r#"{one}, directory = "http://acme.example.com/dir""#
        )),
        "server.tls.acme.directory",
        "https://",
    );
    d.refused(
        &with_acme(&format!(r#"{one}, directory = "not a url""#)),
        "server.tls.acme.directory",
        "not a URL",
    );
    d.refused(
        &with_acme(&format!(r#"{one}, directory_ca = "missing.pem""#)),
        "server.tls.acme.directory_ca",
        "file not found",
    );
    d.write("garbage.pem", "not pem", 0o644);
    d.refused(
        &with_acme(&format!(r#"{one}, directory_ca = "garbage.pem""#)),
        "server.tls.acme.directory_ca",
        "no PEM",
    );
    let typo = load(&with_acme(&format!(r#"{one}, renew = "30d""#))).unwrap_err();
    let typo = typo.to_string();
    assert!(
        typo.contains("unknown field `renew`") && typo.contains("server.tls.acme"),
        "{typo}"
    );
}

#[test]
fn acme_stands_alone() {
    let d = Dir::new();
    let one = r#"domains = ["hooks.example.com"]"#;
    let both = GOOD.replace(
        "insecure_http = true",
        &format!(r#"tls = {{ cert = "c.pem", key = "k.pem", acme = {{ {one} }} }}"#),
    );
    d.refused(&both, "server.tls.acme", "cannot be combined with cert/key");
    let mtls = with_acme(one).replace("[storage]", "client_ca = \"ca.pem\"\n[storage]");
    d.refused(&mtls, "server.client_ca", "server.tls.acme");
    let neither = GOOD.replace("insecure_http = true", "tls = { key = \"k.pem\" }");
    d.refused(&neither, "server.tls.cert", "required");
}

#[test]
fn directory_ca_is_read_at_load() {
    let d = Dir::new();
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    d.write("acme-ca.pem", ca.cert.pem(), 0o644);
    let c = d
        .load(&with_acme(r#"domains = ["hooks.example.com"], directory = "https://localhost:14000/dir", directory_ca = "acme-ca.pem""#))
        .unwrap();
    let acme = c.server.tls.unwrap().acme.unwrap();
    assert!(acme.directory_ca.unwrap().ends_with("acme-ca.pem"));
}
