//! The generic `hmac` scheme: a generic sender's `X-Webhook-Signature`, templates, units, validation.

use http::HeaderName;

use super::{headers, request, scheme_with};
use crate::verify::template::Part;
use crate::verify::{
    Algorithm, BuildError, Encoding, Field, SchemeOptions, Spec, Template, TemplateError, Unit,
    VerifyError,
};

fn guide_spec() -> Spec {
    Spec {
        signature: HeaderName::from_static("x-webhook-signature"),
        prefix: "sha256=".into(),
        encoding: Encoding::Hex,
        algorithm: Algorithm::Sha256,
        template: Template::parse("{body}").unwrap(),
        timestamp: None,
        id: Some(Field::Pointer("/id".into())),
        event_type: Some(Field::Pointer("/type".into())),
        url: None,
    }
}

fn with(spec: Spec, url: Option<&str>) -> SchemeOptions {
    SchemeOptions {
        public_url: url.map(str::to_owned),
        legacy_sha1: false,
        hmac: Some(spec),
    }
}

/// A generic sender's "Webhook Implementation Guide" (HMAC-SHA256 Verification, Node.js):
/// `'sha256=' + createHmac('sha256', secret).update(payload).digest('hex')` in
/// `X-Webhook-Signature`; tag computed for `seed_secret` with Python's hmac, same algorithm.
#[test]
fn guide_generic_signature_verifies() {
    let body = br#"{"id":"evt_1","type":"payment.succeeded"}"#;
    let sig = "sha256=543553f24caf4f665d7b507cab8610c6e15e8b6aed76c6c1a6f27f1c1c3428e8";
    let h = headers(&[("x-webhook-signature", sig)]);
    let s = scheme_with("hmac", &["seed_secret"], &with(guide_spec(), None));
    let v = s.verify(&request(&h, body, 0)).unwrap();
    assert_eq!(
        (v.id(), v.event_type()),
        ("evt_1", Some("payment.succeeded"))
    );
    let r = s.verify(&request(
        &h,
        br#"{"id":"evt_2","type":"payment.succeeded"}"#,
        0,
    ));
    assert_eq!(r, Err(VerifyError::SignatureMismatch));
    let h = headers(&[("x-webhook-signature", &sig[7..])]);
    assert_eq!(
        s.verify(&request(&h, body, 0)),
        Err(VerifyError::MalformedSignature)
    );
}

/// Every template part, SHA-512 and a millisecond timestamp header; computed with Python
/// `hmac.new(b"k", b"msg_1.1700000000000.https://x.example/h.{}", sha512).hexdigest()`.
#[test]
fn full_template_with_sha512_and_ms() {
    let spec = Spec {
        algorithm: Algorithm::Sha512,
        prefix: String::new(),
        template: Template::parse("{id}.{timestamp}.{url}.{body}").unwrap(),
        timestamp: Some((Field::Header(HeaderName::from_static("x-ts")), Unit::Millis)),
        id: Some(Field::Header(HeaderName::from_static("x-id"))),
        ..guide_spec()
    };
    let sig = "0f56261a48f92c713a90b92e7ef2c11780c92d3bc2ba51b91c36ba12278c117f1fa9fc5fc3de3c0c66a1afead28427acda819499f7d6c917616df0d4ec2ae49b";
    let s = scheme_with("hmac", &["k"], &with(spec, Some("https://x.example/h")));
    let hs = [
        ("x-webhook-signature", sig),
        ("x-ts", "1700000000000"),
        ("x-id", "msg_1"),
    ];
    let h = headers(&hs);
    let v = s.verify(&request(&h, b"{}", 1_700_000_000)).unwrap();
    assert_eq!((v.id(), v.timestamp()), ("msg_1", Some(1_700_000_000)));
    let late = s.verify(&request(&h, b"{}", 1_700_000_301));
    assert_eq!(late, Err(VerifyError::TimestampOutOfTolerance));
    let h = headers(&hs[..2]);
    assert_eq!(
        s.verify(&request(&h, b"{}", 1_700_000_000)),
        Err(VerifyError::MissingId)
    );
    let h = headers(&[hs[0], hs[2]]);
    let r = s.verify(&request(&h, b"{}", 1_700_000_000));
    assert_eq!(r, Err(VerifyError::MissingTimestamp));
}

#[test]
fn templates_parse_strictly() {
    let t = Template::parse("v0:{timestamp}:{body}").unwrap();
    assert_eq!(t.0.len(), 4);
    assert_eq!(t.0[0], Part::Literal(b"v0:".to_vec()));
    assert_eq!(Template::parse("{body}{body}"), Err(TemplateError::Body));
    assert_eq!(Template::parse("{id}"), Err(TemplateError::Body));
    assert_eq!(Template::parse("{body"), Err(TemplateError::Unclosed));
    assert_eq!(
        Template::parse("{nope}{body}"),
        Err(TemplateError::Unknown("nope".into()))
    );
}

#[test]
fn specs_that_cannot_work_are_refused_at_build() {
    let key = |spec: Spec, url: Option<&str>| {
        let secrets = vec![crate::config::Secret::new("k")];
        match crate::verify::build("hmac", secrets, super::TOLERANCE, &with(spec, url)) {
            Err(BuildError::BadOption { key, .. }) => key,
            other => panic!("expected BadOption, got {other:?}"),
        }
    };
    let url = Spec {
        template: Template::parse("{url}{body}").unwrap(),
        ..guide_spec()
    };
    assert_eq!(key(url, None), "public_url");
    let ts = Field::Header(HeaderName::from_static("x-ts"));
    let unsigned = Spec {
        timestamp: Some((ts, Unit::Seconds)),
        ..guide_spec()
    };
    assert_eq!(key(unsigned, None), "hmac.template");
    let no_ts = Spec {
        template: Template::parse("{timestamp}.{body}").unwrap(),
        ..guide_spec()
    };
    assert_eq!(key(no_ts, None), "hmac.template");
    let no_id = Spec {
        template: Template::parse("{id}.{body}").unwrap(),
        ..guide_spec()
    };
    assert_eq!(key(no_id, None), "hmac.template");
}
