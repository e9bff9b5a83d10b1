//! Standard Webhooks (and Svix, its origin): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64> …`, HMAC-SHA256 of `{id}.{timestamp}.{body}`.
//!
//! Svix still sends the same headers named `svix-*`; each is read under either name. Secrets are
//! `whsec_` + base64 of the key bytes, decoded once at build as the official SDKs do.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName};

use super::{BuildError, Keys, Scheme, Unverified, Verified, VerifyError};
use crate::config::Secret;

const ID: HeaderName = HeaderName::from_static("webhook-id");
const TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// A real header holds one entry per active secret (plus `v1a` ones); the cap bounds the work a
/// forged header can cause.
const MAX_ENTRIES: usize = 16;

/// The `standard` scheme.
#[derive(Debug)]
pub(crate) struct Standard {
    keys: Keys,
    tolerance: Duration,
}

impl Standard {
    /// Decodes every `whsec_…` secret; one that is not base64 is a config error, not a runtime one.
    pub(crate) fn new(secrets: Vec<Secret>, tolerance: Duration) -> Result<Self, BuildError> {
        let decoded = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| decode_secret(index, secret));
        let keys = Keys::new(decoded.collect::<Result<_, _>>()?)?;
        Ok(Standard { keys, tolerance })
    }
}

impl Scheme for Standard {
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError> {
        let signature = aliased(req.headers, &SIGNATURE)?.ok_or(VerifyError::MissingSignature)?;
        let id = aliased(req.headers, &ID)?.filter(|id| !id.is_empty());
        let id = id.ok_or(VerifyError::MissingId)?;
        let ts_text = aliased(req.headers, &TIMESTAMP)?.ok_or(VerifyError::MissingTimestamp)?;
        let timestamp = super::parse_timestamp(ts_text)?;
        let candidates = parse(signature)?;
        let signed: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.as_bytes(), b".", req.body];
        if !self.keys.verify(&signed, &candidates) {
            return Err(VerifyError::SignatureMismatch);
        }
        super::check_window(timestamp, req.now, self.tolerance)?;
        let [event_type] = super::json_strings(req.body, ["type"]);
        Ok(Verified::new(id.to_owned(), Some(timestamp), event_type))
    }

    fn sign(&self, body: &[u8], id: &str, timestamp: i64) -> HeaderMap {
        let ts = timestamp.to_string();
        let mac = self
            .keys
            .sign(&[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        let mut headers = HeaderMap::new();
        super::put(&mut headers, ID, id.to_owned());
        super::put(&mut headers, TIMESTAMP, ts);
        super::put(
            &mut headers,
            SIGNATURE,
            format!("v1,{}", BASE64.encode(mac)),
        );
        headers
    }
}

/// Strips the optional `whsec_` prefix and base64-decodes the rest.
fn decode_secret(index: usize, secret: &Secret) -> Result<Secret, BuildError> {
    let text = secret.expose();
    let text = text.strip_prefix(b"whsec_").unwrap_or(text);
    let bytes = BASE64.decode(text).map_err(|_| BuildError::BadSecret {
        index,
        reason: "is not base64 (after an optional `whsec_` prefix)",
    })?;
    Ok(Secret::new(bytes))
}

/// Reads `webhook-*`, else the same header under its `svix-*` name.
fn aliased<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, VerifyError> {
    if let Some(value) = super::header(headers, name.as_str())? {
        return Ok(Some(value));
    }
    let svix = name.as_str().replacen("webhook-", "svix-", 1);
    super::header(headers, &svix)
}

/// Space-separated `version,signature` entries; only `v1` is checked, others (`v1a`, asymmetric)
/// are skipped so a sender adding them does not break us. No `v1` at all is a mismatch.
fn parse(text: &str) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut v1 = Vec::new();
    for (n, entry) in text.split(' ').filter(|e| !e.is_empty()).enumerate() {
        if n >= MAX_ENTRIES {
            return Err(VerifyError::MalformedSignature);
        }
        let (version, sig) = entry
            .split_once(',')
            .ok_or(VerifyError::MalformedSignature)?;
        if version == "v1" {
            v1.push(
                BASE64
                    .decode(sig)
                    .map_err(|_| VerifyError::MalformedSignature)?,
            );
        }
    }
    Ok(v1)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{headers, request, scheme};
    use super::*;

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
        let multi = format!("v1a,aGVsbG8= v1,AAAA {sig} v2,xyz");
        let hs = [
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", multi.as_str()),
        ];
        assert!(check(&[secret], &hs, body, 1614265330).is_ok());
        let hs = [
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", "v1a,aGVsbG8="),
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
        let bad = super::super::build(
            "standard",
            vec![Secret::new("whsec_AAAA"), Secret::new("whsec_!!")],
            Duration::ZERO,
        );
        assert!(matches!(bad, Err(BuildError::BadSecret { index: 1, .. })));
        let empty = super::super::build("standard", vec![Secret::new("whsec_")], Duration::ZERO);
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
}
