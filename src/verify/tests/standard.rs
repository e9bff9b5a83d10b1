//! Standard Webhooks / Svix: `v1` HMAC with `whsec_` secrets, `v1a` Ed25519 with `whpk_`/`whsk_` keys.

use std::time::Duration;

use super::{headers, request, scheme};
use crate::config::Secret;
use crate::verify::{BuildError, SchemeOptions, Verified, VerifyError};

/// Svix docs, "Verifying webhooks manually" (docs.svix.com/receiving/verifying-payloads/how-manual),
/// the example every Svix SDK README repeats; recomputed with python hmac before use.
const SVIX: (&str, &str, &str, &str, &str) = (
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "1614265330",
    r#"{"test": 2432232314}"#,
    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
);

/// standard-webhooks/standard-webhooks, libraries/rust/src/lib.rs, `test_sign`.
const STANDARD: (&str, &str, &str, &str, &str) = (
    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
    "1649367553",
    r#"{"email":"test@example.com","username":"test_user"}"#,
    "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
);

/// A well-formed `v1a` entry (64 zero bytes) that no key signed.
const V1A_ZEROS: &str =
    "v1a,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

fn check(
    secrets: &[&str],
    hs: &[(&str, &str)],
    body: &str,
    now: i64,
) -> Result<Verified, VerifyError> {
    let h = headers(hs);
    scheme("standard", secrets).verify(&request(&h, body.as_bytes(), now))
}

fn vector(
    v: (&str, &str, &str, &str, &str),
    prefix: &str,
    now: i64,
) -> Result<Verified, VerifyError> {
    let (secret, id, ts, body, sig) = v;
    let hs = [
        (format!("{prefix}-id"), id),
        (format!("{prefix}-timestamp"), ts),
        (format!("{prefix}-signature"), sig),
    ];
    let hs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    check(&[secret], &hs, body, now)
}

#[test]
fn published_vectors_verify_under_both_header_names() {
    let v = vector(SVIX, "svix", 1614265330).unwrap();
    assert_eq!(v.id(), "msg_p5jXN8AQM9LWM0D4loKWxJek");
    assert_eq!(v.timestamp(), Some(1614265330));
    assert!(vector(SVIX, "webhook", 1614265330 + 299).is_ok());
    assert!(vector(STANDARD, "webhook", 1649367553).is_ok());
    assert!(vector(STANDARD, "svix", 1649367553 - 299).is_ok());
}

#[test]
fn secret_without_prefix_and_rotation_verify() {
    let (_, id, ts, body, sig) = SVIX;
    let hs = [
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ];
    assert!(check(&["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], &hs, body, 1614265330).is_ok());
    assert!(check(&["whsec_AAAA", SVIX.0], &hs, body, 1614265330).is_ok());
}

#[test]
fn other_versions_are_skipped_not_fatal() {
    let (secret, id, ts, body, sig) = SVIX;
    let multi = format!("{V1A_ZEROS} v1,AAAA {sig} v2,xyz");
    let hs = [
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", multi.as_str()),
    ];
    assert!(check(&[secret], &hs, body, 1614265330).is_ok());
    let hs = [
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", V1A_ZEROS),
    ];
    assert_eq!(
        check(&[secret], &hs, body, 1614265330),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn negatives_carry_their_reason() {
    let (secret, id, ts, body, sig) = SVIX;
    let now = 1614265330;
    let hs = [
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ];
    let mismatch = Err(VerifyError::SignatureMismatch);
    assert_eq!(
        check(&[secret], &hs, r#"{"test": 2432232315}"#, now),
        mismatch
    );
    assert_eq!(check(&["whsec_AAAA"], &hs, body, now), mismatch);
    let late = Err(VerifyError::TimestampOutOfTolerance);
    assert_eq!(check(&[secret], &hs, body, now + 301), late);
    assert_eq!(check(&[secret], &hs, body, now - 301), late);
    let missing = |skip: usize| {
        check(
            &[secret],
            &[hs[(skip + 1) % 3], hs[(skip + 2) % 3]],
            body,
            now,
        )
    };
    assert_eq!(missing(0), Err(VerifyError::MissingId));
    assert_eq!(missing(1), Err(VerifyError::MissingTimestamp));
    assert_eq!(missing(2), Err(VerifyError::MissingSignature));
}

#[test]
fn malformed_headers_are_refused() {
    let (secret, id, ts, body, _) = SVIX;
    for bad in ["v1", "v1,not base64!", "v1,AAA", &"v1,AAAA ".repeat(17)] {
        let hs = [
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", bad),
        ];
        assert_eq!(
            check(&[secret], &hs, body, 1614265330),
            Err(VerifyError::MalformedSignature),
            "{bad}"
        );
    }
    let hs = [
        ("webhook-id", id),
        ("webhook-timestamp", "16142653e0"),
        ("webhook-signature", SVIX.4),
    ];
    assert_eq!(
        check(&[secret], &hs, body, 1614265330),
        Err(VerifyError::MalformedSignature)
    );
}

#[test]
fn bad_secrets_fail_at_build() {
    let bad = crate::verify::build(
        "standard",
        vec![Secret::new("whsec_AAAA"), Secret::new("whsec_!!")],
        Duration::ZERO,
        &SchemeOptions::default(),
    );
    assert!(matches!(bad, Err(BuildError::BadSecret { index: 1, .. })));
    let empty = crate::verify::build(
        "standard",
        vec![Secret::new("whsec_")],
        Duration::ZERO,
        &SchemeOptions::default(),
    );
    assert!(matches!(empty, Err(BuildError::BadSecret { index: 0, .. })));
}

#[test]
fn sign_round_trips_with_type() {
    let s = scheme(
        "standard",
        &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_AAAA"],
    );
    let body = br#"{"type":"invoice.paid"}"#;
    let h = s.sign(body, "msg_1", 1_700_000_000);
    let v = s.verify(&request(&h, body, 1_700_000_000)).unwrap();
    assert_eq!((v.id(), v.event_type()), ("msg_1", Some("invoice.paid")));
    let (_, id, ts, body, sig) = SVIX;
    let h = s.sign(body.as_bytes(), id, ts.parse().unwrap());
    assert_eq!(h.get("webhook-signature").unwrap(), sig);
}

/// standard-webhooks/standard-webhooks, libraries/go/webhook_asymmetric_test.go,
/// `TestAsymmetricWebhookSign`: seed `VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=`, the Svix
/// message above, expected `v1a` signature. The `whpk_` public key is that seed's public half,
/// derived with Python `cryptography` (`Ed25519PrivateKey.from_private_bytes(seed).public_key()`).
const V1A_SEED: &str = "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
const V1A_PUBLIC: &str = "whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=";
const V1A_SIG: &str =
    "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";

fn v1a(secrets: &[&str], sig: &str, body: &str, now: i64) -> Result<Verified, VerifyError> {
    let (_, id, ts, _, _) = SVIX;
    let hs = [
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ];
    check(secrets, &hs, body, now)
}

#[test]
fn v1a_go_vector_verifies_with_public_or_signing_key() {
    let body = SVIX.3;
    assert!(v1a(&[V1A_PUBLIC], V1A_SIG, body, 1614265330).is_ok());
    assert!(v1a(&[V1A_SEED], V1A_SIG, body, 1614265330).is_ok());
    assert!(v1a(&[SVIX.0, V1A_PUBLIC], V1A_SIG, body, 1614265330).is_ok());
    let both = format!("{} {V1A_SIG}", SVIX.4);
    assert!(v1a(&[V1A_PUBLIC], &both, body, 1614265330).is_ok());
    assert!(v1a(&[SVIX.0], &both, body, 1614265330).is_ok());
}

#[test]
fn v1a_negatives() {
    let mismatch = Err(VerifyError::SignatureMismatch);
    assert_eq!(
        v1a(
            &[V1A_PUBLIC],
            V1A_SIG,
            r#"{"test": 2432232315}"#,
            1614265330
        ),
        mismatch
    );
    let other = "whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(v1a(&[other], V1A_SIG, SVIX.3, 1614265330), mismatch);
    assert_eq!(v1a(&[SVIX.0], V1A_SIG, SVIX.3, 1614265330), mismatch);
    let late = Err(VerifyError::TimestampOutOfTolerance);
    assert_eq!(v1a(&[V1A_PUBLIC], V1A_SIG, SVIX.3, 1614265330 + 301), late);
    let short = "v1a,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    for bad in [short, "v1a,", "v1a,!!"] {
        let r = v1a(&[V1A_PUBLIC], bad, SVIX.3, 1614265330);
        assert_eq!(r, Err(VerifyError::MalformedSignature), "{bad}");
    }
}

#[test]
fn v1a_keys_are_checked_at_build() {
    let opts = SchemeOptions::default();
    for bad in ["whpk_AAAA", "whsk_AAAA", "whpk_!!"] {
        let r = crate::verify::build("standard", vec![Secret::new(bad)], Duration::ZERO, &opts);
        assert!(
            matches!(r, Err(BuildError::BadSecret { index: 0, .. })),
            "{bad}"
        );
    }
}

#[test]
fn signing_key_signs_like_the_go_library() {
    let s = scheme("standard", &[V1A_SEED]);
    let (_, id, ts, body, _) = SVIX;
    let h = s.sign(body.as_bytes(), id, ts.parse().unwrap());
    assert_eq!(h.get("webhook-signature").unwrap(), V1A_SIG);
    let public_only = scheme("standard", &[V1A_PUBLIC]);
    let h = public_only.sign(body.as_bytes(), id, 1614265330);
    assert!(h.get("webhook-signature").is_none());
}
