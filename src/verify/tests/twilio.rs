//! Twilio: HMAC-SHA1 of the public URL (with the request's query) and the sorted form params.

use super::{headers, request_q, scheme_with};
use crate::verify::twilio::toggle_port;
use crate::verify::{SchemeOptions, Verified, VerifyError};

/// twilio/twilio-python, tests/unit/test_request_validator.py: token `12345`, this URL, these
/// params, `expected`, `duplicate_expected`, the JSON body with `bodySHA256` and the port cases.
const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const QUERY: &str = "foo=1&bar=2";
const FORM: &str = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
const EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
const JSON_BODY: &str = r#"{"property": "value", "boolean": true}"#;
const JSON_QUERY: &str =
    "foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";

fn twilio(public_url: &str, sig: &str, body: &str, query: &str) -> Result<Verified, VerifyError> {
    let options = SchemeOptions {
        public_url: Some(public_url.to_owned()),
        ..SchemeOptions::default()
    };
    let h = headers(&[
        ("x-twilio-signature", sig),
        ("i-twilio-idempotency-token", "idem-1"),
    ]);
    let req = request_q(&h, body.as_bytes(), Some(query), 0);
    scheme_with("twilio", &["12345"], &options).verify(&req)
}

#[test]
fn python_sdk_form_vector_verifies() {
    let v = twilio(URL, EXPECTED, FORM, QUERY).unwrap();
    assert_eq!(
        (v.id(), v.timestamp(), v.event_type()),
        ("idem-1", None, None)
    );
    let reordered = "To=%2B18005551212&From=%2B14158675309&Digits=1234&Caller=%2B14158675309&CallSid=CA1234567890ABCDE";
    assert!(twilio(URL, EXPECTED, reordered, QUERY).is_ok());
    let duplicate = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234";
    assert!(twilio(URL, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", duplicate, QUERY).is_ok());
}

#[test]
fn python_sdk_port_cases_verify() {
    let with_port = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
    assert!(twilio(with_port, EXPECTED, FORM, QUERY).is_ok());
    assert!(twilio(URL, "kvajT1Ptam85bY51eRf/AJRuM3w=", FORM, QUERY).is_ok());
    let http = "http://mycompany.com/myapp.php?foo=1&bar=2";
    assert!(twilio(http, "0ZXoZLH/DfblKGATFgpif+LLRf4=", FORM, QUERY).is_ok());
}

#[test]
fn python_sdk_json_body_vector_checks_the_body_hash() {
    assert!(twilio(URL, "a9nBmqA0ju/hNViExpshrM61xv4=", JSON_BODY, JSON_QUERY).is_ok());
    let tampered = JSON_BODY.replace("true", "false");
    let r = twilio(URL, "a9nBmqA0ju/hNViExpshrM61xv4=", &tampered, JSON_QUERY);
    assert_eq!(r, Err(VerifyError::SignatureMismatch));
}

#[test]
fn negatives() {
    let mismatch = Err(VerifyError::SignatureMismatch);
    let tampered = FORM.replace("1234", "1235");
    assert_eq!(twilio(URL, EXPECTED, &tampered, QUERY), mismatch);
    assert_eq!(twilio(URL, EXPECTED, FORM, "foo=1&bar=3"), mismatch);
    assert_eq!(
        twilio("https://evil.example/myapp.php", EXPECTED, FORM, QUERY),
        mismatch
    );
    let options = SchemeOptions {
        public_url: Some(URL.to_owned()),
        ..SchemeOptions::default()
    };
    let h = headers(&[("x-twilio-signature", EXPECTED)]);
    let req = request_q(&h, FORM.as_bytes(), Some(QUERY), 0);
    assert_eq!(
        scheme_with("twilio", &["54321"], &options).verify(&req),
        mismatch
    );
    assert_eq!(
        twilio(URL, "not base64!", FORM, QUERY),
        Err(VerifyError::MalformedSignature)
    );
    let no_equals = twilio(URL, EXPECTED, "CallSid&Caller", QUERY);
    assert_eq!(no_equals, Err(VerifyError::MalformedSignature));
}

#[test]
fn sign_matches_the_python_sdk() {
    let options = SchemeOptions {
        public_url: Some(URL.to_owned()),
        ..SchemeOptions::default()
    };
    let s = scheme_with("twilio", &["12345"], &options);
    let h = s.sign(FORM.as_bytes(), "idem-2", 0);
    assert_eq!(h["x-twilio-signature"], EXPECTED);
}

#[test]
fn toggle_port_adds_or_removes() {
    assert_eq!(
        toggle_port("https://a.com/x?y=1"),
        "https://a.com:443/x?y=1"
    );
    assert_eq!(toggle_port("http://a.com"), "http://a.com:80");
    assert_eq!(toggle_port("https://a.com:8443/x"), "https://a.com/x");
    assert_eq!(toggle_port("nonsense"), "nonsense");
}
