//! Shared test helpers, checks of the shared helpers, and property tests over every scheme.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::*;

/// The tolerance every test scheme is built with (the config default).
pub(crate) const TOLERANCE: Duration = Duration::from_secs(300);

/// A scheme from config-like strings; panics are fine here, this is test setup.
pub(crate) fn scheme(name: &str, secrets: &[&str]) -> Box<dyn Scheme> {
    let secrets = secrets.iter().map(|s| Secret::new(s.as_bytes())).collect();
    build(name, secrets, TOLERANCE).expect("test scheme builds")
}

/// A header map from `(name, value)` pairs.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
        map.append(
            name,
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    map
}

/// A request received at unix second `now`.
pub(crate) fn request<'a>(headers: &'a HeaderMap, body: &'a [u8], now: i64) -> Unverified<'a> {
    let now = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).expect("test time after 1970"));
    Unverified { headers, body, now }
}

#[test]
fn codes_are_stable() {
    let all = [
        (VerifyError::MissingSignature, "missing_signature"),
        (VerifyError::MalformedSignature, "malformed_signature"),
        (VerifyError::SignatureMismatch, "signature_mismatch"),
        (
            VerifyError::TimestampOutOfTolerance,
            "timestamp_out_of_tolerance",
        ),
        (VerifyError::MissingTimestamp, "missing_timestamp"),
        (VerifyError::MissingId, "missing_id"),
    ];
    for (error, code) in all {
        assert_eq!(error.code(), code);
    }
}

#[test]
fn build_refuses_bad_config_without_echoing_secrets() {
    let unknown = build("stripey", vec![Secret::new("s")], TOLERANCE).unwrap_err();
    assert!(matches!(&unknown, BuildError::UnknownScheme(n) if n == "stripey"));
    assert!(unknown.to_string().contains("stripe, standard, github"));
    for name in SCHEMES {
        assert!(matches!(
            build(name, vec![], TOLERANCE),
            Err(BuildError::NoSecrets)
        ));
        let err = build(
            name,
            vec![Secret::new("c2VrcmV0"), Secret::new("")],
            TOLERANCE,
        )
        .unwrap_err();
        assert!(
            matches!(err, BuildError::BadSecret { index: 1, .. }),
            "{name}"
        );
        assert!(!format!("{err} {err:?}").contains("c2VrcmV0"));
    }
}

#[test]
fn window_is_inclusive_and_two_sided() {
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
    let tol = Duration::from_secs(10);
    assert_eq!(check_window(100, at(110), tol), Ok(()));
    assert_eq!(check_window(100, at(90), tol), Ok(()));
    assert_eq!(
        check_window(100, at(111), tol),
        Err(VerifyError::TimestampOutOfTolerance)
    );
    assert_eq!(
        check_window(100, at(89), tol),
        Err(VerifyError::TimestampOutOfTolerance)
    );
    assert!(check_window(i64::MAX, SystemTime::now(), tol).is_err());
    assert!(check_window(0, UNIX_EPOCH - Duration::from_secs(5), tol).is_ok());
}

#[test]
fn json_strings_never_panic_and_read_only_top_level_strings() {
    let body = br#"{"id":"evt_1","type":7,"data":{"type":"nested"}}"#;
    assert_eq!(
        json_strings(body, ["id", "type"]),
        [Some("evt_1".to_owned()), None]
    );
    assert_eq!(json_strings(b"[1]", ["id"]), [None]);
    assert_eq!(json_strings(&[b'['; 100_000], ["id"]), [None]);
}

/// Headers a scheme signs over (or that carry the signature), as `sign` names them.
fn signed_headers(name: &str) -> &'static [&'static str] {
    match name {
        "stripe" => &["stripe-signature"],
        "standard" => &["webhook-id", "webhook-timestamp", "webhook-signature"],
        _ => &["x-hub-signature-256"],
    }
}

/// Every header any scheme reads, aliases included.
const READ_HEADERS: &[&str] = &[
    "stripe-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-hub-signature-256",
    "x-github-delivery",
    "x-github-event",
];

const NOW: i64 = 1_700_000_000;

fn any_scheme() -> impl Strategy<Value = &'static str> {
    prop::sample::select(SCHEMES.to_vec())
}

proptest! {
    #[test]
    fn any_body_byte_change_is_refused(name in any_scheme(), body in prop::collection::vec(any::<u8>(), 1..256), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let s = scheme(name, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        let h = s.sign(&body, "msg_1", NOW);
        prop_assert!(s.verify(&request(&h, &body, NOW)).is_ok());
        let mut tampered = body.clone();
        let i = at.index(body.len());
        prop_assume!(tampered[i] != byte);
        tampered[i] = byte;
        prop_assert!(s.verify(&request(&h, &tampered, NOW)).is_err());
    }

    #[test]
    fn any_signed_header_byte_change_is_refused(name in any_scheme(), which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let s = scheme(name, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        let body = br#"{"id":"evt_1","type":"t"}"#;
        let mut h = s.sign(body, "msg_1", NOW);
        let names = signed_headers(name);
        let header = names[which.index(names.len())];
        let mut value = h[header].as_bytes().to_vec();
        let i = at.index(value.len());
        prop_assume!(value[i] != byte);
        value[i] = byte;
        let Ok(value) = HeaderValue::from_bytes(&value) else { return Ok(()) };
        h.insert(header, value);
        prop_assert!(s.verify(&request(&h, body, NOW)).is_err());
    }

    #[test]
    fn arbitrary_header_values_never_panic(name in any_scheme(), pairs in prop::collection::vec((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..200)), 0..8), body in prop::collection::vec(any::<u8>(), 0..64)) {
        let s = scheme(name, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        let mut h = s.sign(&body, "msg_1", NOW);
        for (which, bytes) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                h.insert(READ_HEADERS[which.index(READ_HEADERS.len())], value);
            }
        }
        let _ = s.verify(&request(&h, &body, NOW));
    }

    #[test]
    fn structured_signature_headers_never_panic(entries in prop::collection::vec("(t|v0|v1|v1a|x)?[=,]?[0-9a-f+/=A-Z]{0,70}", 0..24), sep in prop::sample::select(vec![",", " "])) {
        let text = entries.join(sep);
        let Ok(value) = HeaderValue::from_str(&text) else { return Ok(()) };
        for (name, header) in [("stripe", "stripe-signature"), ("standard", "webhook-signature"), ("github", "x-hub-signature-256")] {
            let mut h = headers(&[("webhook-id", "msg_1"), ("webhook-timestamp", "1700000000")]);
            h.insert(header, value.clone());
            let _ = scheme(name, &["whsec_AAAA"]).verify(&request(&h, b"{}", NOW));
        }
    }
}
