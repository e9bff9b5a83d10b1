//! Property tests over every scheme: a signed request verifies, any single-byte change to the
//! body or a signed header is refused, and no header value or body makes verification panic.

use http::HeaderValue;
use proptest::prelude::*;

use super::{headers, request, request_q, scheme};
use crate::verify::{SCHEMES, Scheme};

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Schemes whose signature covers the body bytes. Twilio is left out on purpose: it signs the
/// *decoded, sorted* form parameters, so byte changes such as `+` → space or a reordering keep a
/// valid signature by the provider's design (its own tests live in `twilio.rs`).
const BYTE_EXACT: &[&str] = &[
    "stripe", "bitbybit", "standard", "github", "shopify", "slack", "paddle", "square", "linear",
    "zoom", "intercom", "hmac",
];

/// Headers a scheme signs over or that carry the signature, as `sign` names them.
fn signed_headers(name: &str) -> &'static [&'static str] {
    match name {
        "stripe" => &["stripe-signature"],
        "bitbybit" => &["x-bitbybit-webhook-signature"],
        "paddle" => &["paddle-signature"],
        "standard" => &["webhook-id", "webhook-timestamp", "webhook-signature"],
        "shopify" => &["x-shopify-hmac-sha256"],
        "square" => &["x-square-hmacsha256-signature"],
        "slack" => &["x-slack-signature", "x-slack-request-timestamp"],
        "zoom" => &["x-zm-signature", "x-zm-request-timestamp"],
        "intercom" => &["x-hub-signature"],
        "linear" => &["linear-signature"],
        "twilio" => &["x-twilio-signature"],
        _ => &["x-hub-signature-256"],
    }
}

/// Every header any scheme reads, aliases included.
const READ_HEADERS: &[&str] = &[
    "stripe-signature",
    "x-bitbybit-webhook-signature",
    "x-bitbybit-webhook-id",
    "x-bitbybit-webhook-event",
    "paddle-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-github-delivery",
    "x-github-event",
    "x-shopify-hmac-sha256",
    "x-shopify-webhook-id",
    "x-square-hmacsha256-signature",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-zm-signature",
    "x-zm-request-timestamp",
    "linear-signature",
    "linear-delivery",
    "x-twilio-signature",
    "i-twilio-idempotency-token",
];

/// A body the scheme can sign and accept: Linear's must carry a fresh `webhookTimestamp`.
fn body_for(name: &str, raw: &[u8]) -> Vec<u8> {
    if name != "linear" {
        return raw.to_vec();
    }
    let pad = hex::encode(raw);
    format!(r#"{{"webhookTimestamp":{NOW}000,"pad":"{pad}"}}"#).into_bytes()
}

fn signed(name: &str, raw: &[u8]) -> (Box<dyn Scheme>, Vec<u8>, http::HeaderMap) {
    let s = scheme(name, &[SECRET]);
    let body = body_for(name, raw);
    let h = s.sign(&body, "msg_1", NOW);
    (s, body, h)
}

proptest! {
    #[test]
    fn any_body_byte_change_is_refused(name in prop::sample::select(BYTE_EXACT.to_vec()), raw in prop::collection::vec(any::<u8>(), 1..256), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let (s, body, h) = signed(name, &raw);
        prop_assert!(s.verify(&request(&h, &body, NOW)).is_ok());
        let mut tampered = body.clone();
        let i = at.index(body.len());
        prop_assume!(tampered[i] != byte);
        tampered[i] = byte;
        prop_assert!(s.verify(&request(&h, &tampered, NOW)).is_err());
    }

    #[test]
    fn any_signed_header_byte_change_is_refused(name in prop::sample::select(BYTE_EXACT.to_vec()), which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let (s, body, mut h) = signed(name, br#"{"id":"evt_1","type":"t"}"#);
        let names = signed_headers(name);
        let header = names[which.index(names.len())];
        let mut value = h[header].as_bytes().to_vec();
        let i = at.index(value.len());
        prop_assume!(value[i] != byte);
        value[i] = byte;
        let Ok(value) = HeaderValue::from_bytes(&value) else { return Ok(()) };
        h.insert(header, value);
        prop_assert!(s.verify(&request(&h, &body, NOW)).is_err());
    }

    #[test]
    fn twilio_param_value_changes_are_refused(value in "[A-Za-z0-9]{1,20}", at in any::<prop::sample::Index>(), c in "[A-Za-z0-9]") {
        let s = scheme("twilio", &["token"]);
        let body = format!("CallSid=CA1&Body={value}");
        let h = s.sign(body.as_bytes(), "idem", NOW);
        prop_assert!(s.verify(&request(&h, body.as_bytes(), NOW)).is_ok());
        let mut chars: Vec<char> = value.chars().collect();
        let i = at.index(chars.len());
        let c = c.chars().next().unwrap_or('x');
        prop_assume!(chars[i] != c);
        chars[i] = c;
        let tampered = format!("CallSid=CA1&Body={}", chars.iter().collect::<String>());
        prop_assert!(s.verify(&request(&h, tampered.as_bytes(), NOW)).is_err());
    }

    #[test]
    fn arbitrary_header_values_never_panic(name in prop::sample::select(SCHEMES.to_vec()), pairs in prop::collection::vec((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..200)), 0..8), body in prop::collection::vec(any::<u8>(), 0..64), query in proptest::option::of("[ -~]{0,80}")) {
        let s = scheme(name, &[SECRET]);
        let mut h = s.sign(&body, "msg_1", NOW);
        for (which, bytes) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                h.insert(READ_HEADERS[which.index(READ_HEADERS.len())], value);
            }
        }
        let _ = s.verify(&request_q(&h, &body, query.as_deref(), NOW));
    }

    #[test]
    fn structured_signature_headers_never_panic(entries in prop::collection::vec("(t|ts|v0|v1|v1a|h1|x)?[=,;]?[0-9a-f+/=A-Z]{0,70}", 0..24), sep in prop::sample::select(vec![",", " ", ";"])) {
        let text = entries.join(sep);
        let Ok(value) = HeaderValue::from_str(&text) else { return Ok(()) };
        for name in SCHEMES {
            let mut h = headers(&[("webhook-id", "msg_1"), ("webhook-timestamp", "1700000000")]);
            for header in signed_headers(name) {
                h.insert(*header, value.clone());
            }
            let _ = scheme(name, &[SECRET]).verify(&request(&h, b"{}", NOW));
        }
    }
}
