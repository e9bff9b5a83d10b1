//! GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body alone, no timestamp.
//!
//! GitHub signs neither a timestamp nor `X-GitHub-Delivery`, so a captured delivery can be
//! replayed with a new delivery id; dedup on that id is best effort, as it is for every GitHub
//! receiver. The legacy SHA-1 `X-Hub-Signature` is not accepted.

use http::{HeaderMap, HeaderName};

use super::{Keys, Scheme, Unverified, Verified, VerifyError};

const SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature-256");
const DELIVERY: HeaderName = HeaderName::from_static("x-github-delivery");
const EVENT: HeaderName = HeaderName::from_static("x-github-event");

/// The `github` scheme.
#[derive(Debug)]
pub(crate) struct GitHub {
    keys: Keys,
}

impl GitHub {
    pub(crate) fn new(keys: Keys) -> Self {
        GitHub { keys }
    }
}

impl Scheme for GitHub {
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError> {
        let text = super::header(req.headers, SIGNATURE.as_str())?;
        let text = text.ok_or(VerifyError::MissingSignature)?;
        let hex = text
            .strip_prefix("sha256=")
            .ok_or(VerifyError::MalformedSignature)?;
        let tag = super::decode_hex_lower(hex)?;
        if !self.keys.verify(&[req.body], &[tag]) {
            return Err(VerifyError::SignatureMismatch);
        }
        let id = metadata(req.headers, &DELIVERY).filter(|id| !id.is_empty());
        let id = id.unwrap_or_else(|| super::body_digest_id(req.body));
        Ok(Verified::new(id, None, metadata(req.headers, &EVENT)))
    }

    /// `timestamp` is unused: GitHub signs none.
    fn sign(&self, body: &[u8], id: &str, _timestamp: i64) -> HeaderMap {
        let mac = self.keys.sign(&[body]);
        let mut headers = HeaderMap::new();
        super::put(
            &mut headers,
            SIGNATURE,
            format!("sha256={}", hex::encode(mac)),
        );
        super::put(&mut headers, DELIVERY, id.to_owned());
        headers
    }
}

/// An unsigned, informational header: unreadable reads as absent instead of refusing an
/// otherwise authentic delivery.
fn metadata(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    super::header(headers, name.as_str())
        .ok()
        .flatten()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::super::tests::{headers, request, scheme};
    use super::*;

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
        assert_eq!(v.id(), super::super::body_digest_id(BODY.as_bytes()));
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
        assert_eq!(v.id(), super::super::body_digest_id(BODY.as_bytes()));
    }

    #[test]
    fn sign_round_trips_and_matches_the_docs() {
        let s = scheme("github", &[SECRET, "old"]);
        let h = s.sign(BODY.as_bytes(), "d-1", 0);
        assert_eq!(h.get("x-hub-signature-256").unwrap(), SIG);
        let v = s.verify(&request(&h, BODY.as_bytes(), 0)).unwrap();
        assert_eq!(v.id(), "d-1");
    }
}
