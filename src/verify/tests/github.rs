//! GitHub: `X-Hub-Signature-256`, and the legacy SHA-1 header when a route opts in.

use http::HeaderValue;

use super::{headers, request, scheme, scheme_with};
use crate::verify::{SchemeOptions, Verified, VerifyError};

/// docs.github.com, "Validating webhook deliveries", section "Testing the webhook payload
/// validation" (github/docs, content/webhooks/using-webhooks/validating-webhook-deliveries.md).
const SECRET: &str = "It's a Secret to Everybody";
const BODY: &str = "Hello, World!";
const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

fn check(secrets: &[&str], hs: &[(&str, &str)], body: &str) -> Result<Verified, VerifyError> {
    let h = headers(hs);
    scheme("github", secrets).verify(&request(&h, body.as_bytes(), 0))
}

#[test]
fn github_docs_vector_verifies_with_delivery_and_event() {
    let hs = [
        ("x-hub-signature-256", SIG),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("x-github-event", "ping"),
    ];
    let v = check(&[SECRET], &hs, BODY).unwrap();
    assert_eq!(v.id(), "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!((v.event_type(), v.timestamp()), (Some("ping"), None));
}

#[test]
fn missing_delivery_falls_back_to_body_digest_and_rotation_works() {
    let v = check(&["old", SECRET], &[("x-hub-signature-256", SIG)], BODY).unwrap();
    assert_eq!(v.id(), crate::verify::body_digest_id(BODY.as_bytes()));
    assert_eq!(v.event_type(), None);
}

#[test]
fn negatives_carry_their_reason() {
    let hs = [("x-hub-signature-256", SIG)];
    assert_eq!(
        check(&[SECRET], &hs, "Hello, World?"),
        Err(VerifyError::SignatureMismatch)
    );
    assert_eq!(
        check(&["wrong"], &hs, BODY),
        Err(VerifyError::SignatureMismatch)
    );
    assert_eq!(
        check(&[SECRET], &[], BODY),
        Err(VerifyError::MissingSignature)
    );
    let upper = SIG.to_uppercase().replace("SHA256=", "sha256=");
    let sha1 = "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6";
    for bad in [&SIG[7..], sha1, "sha256=xyz", upper.as_str(), "sha256=abc"] {
        let r = check(&[SECRET], &[("x-hub-signature-256", bad)], BODY);
        assert_eq!(r, Err(VerifyError::MalformedSignature), "{bad}");
    }
}

#[test]
fn unreadable_metadata_is_ignored_not_fatal() {
    let mut h = headers(&[("x-hub-signature-256", SIG)]);
    h.insert(
        "x-github-delivery",
        HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    let v = scheme("github", &[SECRET])
        .verify(&request(&h, BODY.as_bytes(), 0))
        .unwrap();
    assert_eq!(v.id(), crate::verify::body_digest_id(BODY.as_bytes()));
}

#[test]
fn sign_round_trips_and_matches_the_docs() {
    let s = scheme("github", &[SECRET, "old"]);
    let h = s.sign(BODY.as_bytes(), "d-1", 0);
    assert_eq!(h.get("x-hub-signature-256").unwrap(), SIG);
    let v = s.verify(&request(&h, BODY.as_bytes(), 0)).unwrap();
    assert_eq!(v.id(), "d-1");
}

/// octokit/webhooks-methods.js README and test/sign.test.ts: `sign({ secret: "mysecret",
/// algorithm: "sha1" }, { foo: "bar" })` is `sha1=d03207e4…`, and the sha256 one `4864d275…`.
const OCTOKIT_BODY: &str = r#"{"foo":"bar"}"#;
const OCTOKIT_SHA1: &str = "sha1=d03207e4b030cf234e3447bac4d93add4c6643d8";
const OCTOKIT_SHA256: &str =
    "sha256=4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3";

fn legacy(opt_in: bool, hs: &[(&str, &str)], body: &str) -> Result<Verified, VerifyError> {
    let options = SchemeOptions {
        legacy_sha1: opt_in,
        ..SchemeOptions::default()
    };
    let h = headers(hs);
    scheme_with("github", &["mysecret"], &options).verify(&request(&h, body.as_bytes(), 0))
}

#[test]
fn legacy_sha1_only_when_configured() {
    let sha1 = [("x-hub-signature", OCTOKIT_SHA1)];
    assert!(legacy(true, &sha1, OCTOKIT_BODY).is_ok());
    assert_eq!(
        legacy(false, &sha1, OCTOKIT_BODY),
        Err(VerifyError::MissingSignature)
    );
    let tampered = legacy(true, &sha1, r#"{"foo":"baz"}"#);
    assert_eq!(tampered, Err(VerifyError::SignatureMismatch));
    let both = [
        ("x-hub-signature-256", OCTOKIT_SHA256),
        ("x-hub-signature", OCTOKIT_SHA1),
    ];
    assert!(legacy(false, &both, OCTOKIT_BODY).is_ok());
}

#[test]
fn a_present_sha256_header_is_never_downgraded() {
    let zeros = format!("sha256={}", "0".repeat(64));
    let hs = [
        ("x-hub-signature-256", zeros.as_str()),
        ("x-hub-signature", OCTOKIT_SHA1),
    ];
    assert_eq!(
        legacy(true, &hs, OCTOKIT_BODY),
        Err(VerifyError::SignatureMismatch)
    );
    let bad = [("x-hub-signature", "sha1=xyz")];
    assert_eq!(
        legacy(true, &bad, OCTOKIT_BODY),
        Err(VerifyError::MalformedSignature)
    );
}
