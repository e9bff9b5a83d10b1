use super::order::challenge_cert;
use super::*;

fn acme_with_validity(not_before: i64, not_after: i64) -> Acme {
    let config = crate::config::acme::AcmeConfig {
        domains: vec!["hooks.example.com".into()],
        email: None,
        directory: "https://acme.invalid/dir".into(),
        directory_ca: None,
        dir: std::env::temp_dir().join("hookgate-acme-unit-never-written"),
        client: Arc::new(crate::config::tls::client_config(&[]).unwrap()),
    };
    let mut acme = Acme::new(&config);
    acme.validity = Some((not_before, not_after));
    acme
}

#[test]
fn renewal_is_due_with_a_third_of_the_lifetime_left_at_most_30_days() {
    let now = unix_now();
    // 90 days, issued now: due in 60 days (30 days before the end).
    let lets_encrypt = acme_with_validity(now, now + 90 * 86400);
    let due = lets_encrypt.until_due().as_secs() as i64;
    assert!((due - 60 * 86400).abs() <= 2, "{due}");
    // A year: still 30 days before the end, not a third.
    let year = acme_with_validity(now, now + 365 * 86400);
    let due = year.until_due().as_secs() as i64;
    assert!((due - 335 * 86400).abs() <= 2, "{due}");
    // 30 s, issued 25 s ago: overdue.
    assert_eq!(
        acme_with_validity(now - 25, now + 5).until_due(),
        Duration::ZERO
    );
    // No certificate: due now.
    let mut none = acme_with_validity(0, 0);
    none.validity = None;
    assert_eq!(none.until_due(), Duration::ZERO);
}

#[test]
fn challenge_certificate_carries_a_critical_acme_identifier() {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let digest = [7u8; 32];
    let key = challenge_cert("hooks.example.com", &digest).unwrap();
    let (_, cert) = X509Certificate::from_der(key.cert[0].as_ref()).unwrap();
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
        .expect("acmeIdentifier extension");
    assert!(ext.critical);
    // DER OCTET STRING of the 32-byte digest.
    assert_eq!(ext.value, [&[0x04, 32][..], &digest[..]].concat());
    assert!(challenge_cert("hooks.example.com", &[0u8; 20]).is_err());
}

#[test]
fn a_problem_document_keeps_type_and_detail() {
    let p: instant_acme::Problem = serde_json::from_str(
        r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many","status":429}"#,
    )
    .unwrap();
    let e = AcmeError::from(instant_acme::Error::Api(p));
    let text = e.to_string();
    assert!(
        text.contains("rateLimited") && text.contains("too many") && text.contains("429"),
        "{text}"
    );
}

#[test]
fn readiness_needs_an_unexpired_certificate() {
    let resolver = CertResolver::default();
    assert_eq!(resolver.readiness(1_000), Err("no_certificate"));
    let cert = challenge_cert("hooks.example.com", &[1u8; 32]).unwrap();
    resolver.install(cert, 2_000);
    assert_eq!(resolver.readiness(1_000), Ok(()));
    assert_eq!(resolver.readiness(2_000), Err("certificate_expired"));
}
