//! Shared test helpers and checks of the shared helpers; each provider has its own file, and
//! `props` holds the property tests over every scheme.

mod generic;
mod github;
mod props;
mod providers;
mod slack_zoom;
mod standard;
mod stripe;
mod twilio;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

/// The tolerance every test scheme is built with (the config default).
pub(crate) const TOLERANCE: Duration = Duration::from_secs(300);

/// The `public_url` test schemes that sign a URL are built with.
pub(crate) const PUBLIC_URL: &str = "https://hooks.example.com/webhooks/x";

/// Options that let every scheme build: a URL where one is needed, a spec for `hmac`.
pub(crate) fn options_for(name: &str) -> SchemeOptions {
    SchemeOptions {
        public_url: URL_SCHEMES.contains(&name).then(|| PUBLIC_URL.to_owned()),
        legacy_sha1: false,
        hmac: (name == "hmac").then(presets::github),
    }
}

/// A scheme from config-like strings; panics are fine here, this is test setup.
pub(crate) fn scheme(name: &str, secrets: &[&str]) -> Box<dyn Scheme> {
    scheme_with(name, secrets, &options_for(name))
}

/// A scheme built with explicit options.
pub(crate) fn scheme_with(
    name: &str,
    secrets: &[&str],
    options: &SchemeOptions,
) -> Box<dyn Scheme> {
    let secrets = secrets.iter().map(|s| Secret::new(s.as_bytes())).collect();
    build(name, secrets, TOLERANCE, options).expect("test scheme builds")
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
    request_q(headers, body, None, now)
}

/// A request with a query string, received at unix second `now`.
pub(crate) fn request_q<'a>(
    headers: &'a HeaderMap,
    body: &'a [u8],
    query: Option<&'a str>,
    now: i64,
) -> Unverified<'a> {
    let now = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).expect("test time after 1970"));
    Unverified {
        headers,
        body,
        query,
        now,
    }
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
    let none = SchemeOptions::default();
    let unknown = build("stripey", vec![Secret::new("s")], TOLERANCE, &none).unwrap_err();
    assert!(matches!(&unknown, BuildError::UnknownScheme(n) if n == "stripey"));
    assert!(
        unknown
            .to_string()
            .contains("stripe, bitbybit, standard, github")
    );
    for name in SCHEMES {
        let options = options_for(name);
        assert!(matches!(
            build(name, vec![], TOLERANCE, &options),
            Err(BuildError::NoSecrets)
        ));
        let secrets = vec![Secret::new("c2VrcmV0"), Secret::new("")];
        let err = build(name, secrets, TOLERANCE, &options).unwrap_err();
        assert!(
            matches!(err, BuildError::BadSecret { index: 1, .. }),
            "{name}"
        );
        assert!(!format!("{err} {err:?}").contains("c2VrcmV0"));
    }
}

#[test]
fn options_are_required_where_used_and_refused_elsewhere() {
    let s = || vec![Secret::new("s")];
    let key = |r: Result<Box<dyn Scheme>, BuildError>| match r {
        Err(BuildError::BadOption { key, .. }) => key,
        other => panic!("expected BadOption, got {other:?}"),
    };
    let none = SchemeOptions::default();
    for name in ["twilio", "square"] {
        assert_eq!(key(build(name, s(), TOLERANCE, &none)), "public_url");
    }
    assert_eq!(key(build("hmac", s(), TOLERANCE, &none)), "hmac");
    let url = SchemeOptions {
        public_url: Some(PUBLIC_URL.into()),
        ..none.clone()
    };
    assert_eq!(key(build("stripe", s(), TOLERANCE, &url)), "public_url");
    let legacy = SchemeOptions {
        legacy_sha1: true,
        ..none.clone()
    };
    assert_eq!(
        key(build("shopify", s(), TOLERANCE, &legacy)),
        "legacy_sha1"
    );
    let hmac = SchemeOptions {
        hmac: Some(presets::slack()),
        ..none
    };
    assert_eq!(key(build("slack", s(), TOLERANCE, &hmac)), "hmac");
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

#[test]
fn fuzz_entry_points_know_their_targets() {
    for target in fuzzing::TARGETS {
        assert!(fuzzing::run(target, b"t=1,v1=00\n\n{}"), "{target}");
    }
    assert!(!fuzzing::run("nope", b""));
}
