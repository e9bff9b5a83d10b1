//! TLS material read at load: the server pair, upstream CA bundles, key file permissions.

use super::holes::Dir;
use super::*;

fn with_tls(extra: &str) -> String {
    let tls = format!("tls = {{ cert = \"c.pem\", key = \"k.pem\"{extra} }}");
    GOOD.replace("insecure_http = true", &tls)
}

fn pair() -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap()
}

const GARBAGE_DER_PEM: &str = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";

#[test]
fn tls_pair_is_parsed_and_matched_at_load() {
    let d = Dir::new();
    let (a, b) = (pair(), pair());
    d.write("k.pem", a.signing_key.serialize_pem(), 0o600);
    d.write("c.pem", "not a certificate", 0o644);
    d.refused(&with_tls(""), "server.tls.cert", "no PEM");
    d.write("c.pem", GARBAGE_DER_PEM, 0o644);
    d.refused(&with_tls(""), "server.tls.cert", "");
    d.write("c.pem", b.cert.pem(), 0o644);
    d.refused(&with_tls(""), "server.tls.key", "match");
    d.write(
        "k.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        0o600,
    );
    d.refused(&with_tls(""), "server.tls.key", "");
    d.write("k.pem", b.signing_key.serialize_pem(), 0o600);
    let c = d.load(&with_tls("")).unwrap();
    assert!(c.server.tls.unwrap().compiled.is_some());
}

#[test]
fn a_missing_development_pair_is_left_for_serve_to_create() {
    let d = Dir::new();
    let c = d.load(&with_tls(", dev_self_signed = true")).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("development pair")));
    assert!(c.server.tls.unwrap().compiled.is_none());
    assert!(!d.0.path().join("c.pem").exists(), "check creates nothing");
    d.write("c.pem", pair().cert.pem(), 0o644);
    let text = with_tls(", dev_self_signed = true");
    d.refused(&text, "server.tls.key", "file not found");
}

#[test]
fn readable_tls_key_and_secret_files_are_warned_about() {
    let d = Dir::new();
    let p = pair();
    d.write("c.pem", p.cert.pem(), 0o644);
    d.write("k.pem", p.signing_key.serialize_pem(), 0o640);
    d.write("s.txt", "whsec_from_file\n", 0o644);
    let text = with_tls("").replace("whsec_test_literal", "file:s.txt");
    let warnings = d.load(&text).unwrap().warnings;
    let has = |key: &str| {
        warnings
            .iter()
            .any(|w| w.contains(key) && w.contains("chmod 600"))
    };
    assert!(
        has("server.tls.key") && has("route[0].secrets[0]"),
        "{warnings:?}"
    );
    assert!(!warnings.iter().any(|w| w.contains("whsec_from_file")));
    d.write("k.pem", p.signing_key.serialize_pem(), 0o600);
    d.write("s.txt", "whsec_from_file\n", 0o400);
    assert_eq!(d.load(&text).unwrap().warnings, Vec::<String>::new());
}

#[test]
fn upstream_ca_bundles_are_parsed_at_load() {
    let d = Dir::new();
    let text = GOOD.replace(" }\n", ", ca = \"ca.pem\" }\n");
    d.write("ca.pem", "garbage", 0o644);
    d.refused(&text, "route[0].upstream.ca", "no PEM");
    d.write("ca.pem", GARBAGE_DER_PEM, 0o644);
    d.refused(&text, "route[0].upstream.ca", "ca.pem");
    std::fs::remove_file(d.0.path().join("ca.pem")).unwrap();
    d.refused(&text, "route[0].upstream.ca", "file not found");
    d.write("ca.pem", pair().cert.pem(), 0o644);
    let c = d.load(&text).unwrap();
    assert!(c.routes[0].upstreams[0].tls.is_some());
}

#[test]
fn client_ca_bundle_is_parsed_at_load() {
    let d = Dir::new();
    let p = pair();
    d.write("k.pem", p.signing_key.serialize_pem(), 0o600);
    d.write("c.pem", p.cert.pem(), 0o644);
    let text = with_tls("").replace("[storage]", "client_ca = \"clients.pem\"\n[storage]");
    d.refused(&text, "server.client_ca", "file not found");
    d.write("clients.pem", "garbage", 0o644);
    d.refused(&text, "server.client_ca", "no PEM");
    d.write("clients.pem", GARBAGE_DER_PEM, 0o644);
    d.refused(&text, "server.client_ca", "clients.pem");
    d.write("clients.pem", pair().cert.pem(), 0o644);
    let c = d.load(&text).unwrap();
    assert!(c.server.tls.unwrap().client_ca.is_some());
}

#[test]
fn client_cert_rules_need_client_ca_and_valid_entries() {
    let d = Dir::new();
    let plain = GOOD.replace(
        "insecure_http = true",
        "insecure_http = true\nclient_ca = \"x.pem\"",
    );
    d.refused(&plain, "server.client_ca", "needs server.tls");
    let rule = |r: &str| GOOD.replace("upstream = {", &format!("client_cert = {r}\nupstream = {{"));
    d.refused(
        &rule("{ sans = [\"a.example\"] }"),
        "route[0].client_cert",
        "needs server.client_ca",
    );
    d.refused(&rule("{}"), "route[0].client_cert", "at least one");
    d.refused(
        &rule("{ subjects = [\"XX=1\"] }"),
        "route[0].client_cert",
        "unknown attribute",
    );
}
