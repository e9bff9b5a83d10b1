//! Stripe: `Stripe-Signature: t=…,v1=…[,v1=…]`, HMAC-SHA256 hex of `{t}.{body}`.
//!
//! The secret (`whsec_…`) is used as raw bytes, not base64-decoded: that is what Stripe's SDKs
//! do. During a secret roll Stripe sends one `v1` per active secret; any match passes.

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use super::{Keys, Scheme, Unverified, Verified, VerifyError};

const SIGNATURE: HeaderName = HeaderName::from_static("stripe-signature");

/// More entries than any real header carries (a `t`, a `v0`, a few `v1` during a roll); the cap
/// bounds the work a forged header can cause.
const MAX_ENTRIES: usize = 16;

/// The `stripe` scheme.
#[derive(Debug)]
pub(crate) struct Stripe {
    keys: Keys,
    tolerance: Duration,
}

/// A parsed `Stripe-Signature`: `t` kept as sent, because the MAC covers that text.
struct Header<'a> {
    t: &'a str,
    timestamp: i64,
    v1: Vec<Vec<u8>>,
}

impl Stripe {
    pub(crate) fn new(keys: Keys, tolerance: Duration) -> Self {
        Stripe { keys, tolerance }
    }
}

impl Scheme for Stripe {
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError> {
        let text = super::header(req.headers, SIGNATURE.as_str())?;
        let header = parse(text.ok_or(VerifyError::MissingSignature)?)?;
        if !self
            .keys
            .verify(&[header.t.as_bytes(), b".", req.body], &header.v1)
        {
            return Err(VerifyError::SignatureMismatch);
        }
        super::check_window(header.timestamp, req.now, self.tolerance)?;
        let [id, event_type] = super::json_strings(req.body, ["id", "type"]);
        let id = id.filter(|id| !id.is_empty());
        let id = id.unwrap_or_else(|| super::body_digest_id(req.body));
        Ok(Verified::new(id, Some(header.timestamp), event_type))
    }

    /// `id` is unused: Stripe's event id travels inside the body.
    fn sign(&self, body: &[u8], _id: &str, timestamp: i64) -> HeaderMap {
        let t = timestamp.to_string();
        let mac = self.keys.sign(&[t.as_bytes(), b".", body]);
        let mut headers = HeaderMap::new();
        super::put(
            &mut headers,
            SIGNATURE,
            format!("t={t},v1={}", hex::encode(mac)),
        );
        headers
    }
}

/// Splits `t=…,v1=…,…`; unknown keys (`v0`, future schemes) are skipped, and no `v1` at all is
/// a mismatch rather than malformed: the header is well formed, it just carries nothing we accept.
fn parse(text: &str) -> Result<Header<'_>, VerifyError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for (n, item) in text.split(',').enumerate() {
        if n >= MAX_ENTRIES {
            return Err(VerifyError::MalformedSignature);
        }
        let (key, value) = item
            .split_once('=')
            .ok_or(VerifyError::MalformedSignature)?;
        match key {
            // Two timestamps: which one did the sender sign? Refuse rather than guess.
            "t" if t.is_some() => return Err(VerifyError::MalformedSignature),
            "t" => t = Some(value),
            "v1" => v1.push(super::decode_hex_lower(value)?),
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::MalformedSignature)?;
    Ok(Header {
        t,
        timestamp: super::parse_timestamp(t)?,
        v1,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{headers, request, scheme};
    use super::*;

    /// stripe/stripe-dotnet, src/StripeTests/Services/Events/EventUtilityTest.cs: secret
    /// `webhook_secret`, t=1533204620, body = src/StripeTests/Resources/event_test_signature.json
    /// (LF line endings, trailing newline). Recomputed here with openssl/python before use.
    const VECTOR_SIG: &str = "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
    const VECTOR_TS: i64 = 1533204620;
    const VECTOR_BODY: &str = r#"{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
"#;

    fn check(secrets: &[&str], sig: &str, body: &str, now: i64) -> Result<Verified, VerifyError> {
        let h = headers(&[("stripe-signature", sig)]);
        scheme("stripe", secrets).verify(&request(&h, body.as_bytes(), now))
    }

    #[test]
    fn stripe_dotnet_vector_verifies_with_id_and_type() {
        let v = check(
            &["webhook_secret"],
            VECTOR_SIG,
            VECTOR_BODY,
            VECTOR_TS + 100,
        )
        .unwrap();
        assert_eq!(v.id(), "evt_123");
        assert_eq!(v.event_type(), Some("customer.created"));
        assert_eq!(v.timestamp(), Some(VECTOR_TS));
    }

    #[test]
    fn rotation_accepts_the_second_secret() {
        let r = check(
            &["whsec_new", "webhook_secret"],
            VECTOR_SIG,
            VECTOR_BODY,
            VECTOR_TS,
        );
        assert!(r.is_ok());
    }

    #[test]
    fn negatives_carry_their_reason() {
        let (sig, body, ts) = (VECTOR_SIG, VECTOR_BODY, VECTOR_TS);
        let tampered = body.replace("evt_123", "evt_124");
        let mismatch = Err(VerifyError::SignatureMismatch);
        assert_eq!(check(&["webhook_secret"], sig, &tampered, ts), mismatch);
        assert_eq!(check(&["wrong"], sig, body, ts), mismatch);
        let late = Err(VerifyError::TimestampOutOfTolerance);
        assert_eq!(check(&["webhook_secret"], sig, body, ts + 301), late);
        assert_eq!(check(&["webhook_secret"], sig, body, ts - 301), late);
        assert!(check(&["webhook_secret"], sig, body, ts - 300).is_ok());
    }

    #[test]
    fn malformed_headers_are_refused_before_any_mac() {
        let sixteen_v1 = format!("t=1{}", ",v1=00".repeat(16));
        let upper = VECTOR_SIG.replace("2220f87ef", "2220F87EF");
        for bad in [
            "",
            "t",
            "t=,v1=00",
            "v1=00",
            "t=1,t=1,v1=00",
            "t=-1,v1=00",
            "t=1,v1=0g",
        ] {
            assert_eq!(
                check(&["s"], bad, "{}", 1),
                Err(VerifyError::MalformedSignature),
                "{bad}"
            );
        }
        for bad in [sixteen_v1.as_str(), upper.as_str()] {
            assert_eq!(
                check(&["s"], bad, "{}", 1),
                Err(VerifyError::MalformedSignature)
            );
        }
        let v0_only =
            "t=1533204620,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
        let r = check(&["webhook_secret"], v0_only, VECTOR_BODY, VECTOR_TS);
        assert_eq!(r, Err(VerifyError::SignatureMismatch));
    }

    #[test]
    fn missing_header_is_missing_signature() {
        let h = headers(&[]);
        let r = scheme("stripe", &["s"]).verify(&request(&h, b"{}", 1));
        assert_eq!(r, Err(VerifyError::MissingSignature));
    }

    #[test]
    fn sign_round_trips_and_falls_back_to_body_digest() {
        let s = scheme("stripe", &["whsec_abc", "old"]);
        let h = s.sign(b"abc", "ignored", 1_700_000_000);
        let v = s.verify(&request(&h, b"abc", 1_700_000_000)).unwrap();
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(v.id(), digest);
        assert_eq!(v.event_type(), None);
    }
}
