//! Body-signing providers: Shopify, Intercom, Square and Linear.

use super::{PUBLIC_URL, headers, request, scheme, scheme_with};
use crate::verify::{SchemeOptions, Verified, VerifyError};

fn run(
    name: &str,
    secret: &str,
    hs: &[(&str, &str)],
    body: &str,
    now: i64,
) -> Result<Verified, VerifyError> {
    let h = headers(hs);
    scheme(name, &[secret]).verify(&request(&h, body.as_bytes(), now))
}

/// shopify.dev "Verify webhooks" (HMAC-SHA256 of the raw body, base64, in
/// `X-Shopify-Hmac-Sha256`); Shopify publishes no secret with its examples, so this tag was
/// computed for `shpss_test_secret` with Python `base64(hmac.new(key, body, sha256).digest())`.
/// The same tag comes out of @shopify/shopify-api 13.1.0 `getHmac(body, secret)`
/// (`@shopify/shopify-api/test-helpers`), and `shopify.webhooks.validate` accepts it.
const SHOPIFY_BODY: &str = r#"{"id":820982911946154508,"email":"jon@doe.ca","closed_at":null}"#;
const SHOPIFY_SIG: &str = "xQLv/GYoJz6yE0WjUw5fD2miV6S3u5v1zzr64+I6uMY=";

#[test]
fn shopify_vector_and_negatives() {
    let hs = [
        ("x-shopify-hmac-sha256", SHOPIFY_SIG),
        (
            "x-shopify-webhook-id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        ),
        ("x-shopify-topic", "orders/create"),
    ];
    let v = run("shopify", "shpss_test_secret", &hs, SHOPIFY_BODY, 0).unwrap();
    assert_eq!(v.id(), "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
    assert_eq!(
        (v.event_type(), v.timestamp()),
        (Some("orders/create"), None)
    );
    let mismatch = Err(VerifyError::SignatureMismatch);
    let tampered = SHOPIFY_BODY.replace("jon", "jim");
    assert_eq!(
        run("shopify", "shpss_test_secret", &hs, &tampered, 0),
        mismatch
    );
    assert_eq!(run("shopify", "wrong", &hs, SHOPIFY_BODY, 0), mismatch);
    for bad in ["not base64!", "xQLv", ""] {
        let r = run(
            "shopify",
            "s",
            &[("x-shopify-hmac-sha256", bad)],
            SHOPIFY_BODY,
            0,
        );
        assert_eq!(r, Err(VerifyError::MalformedSignature), "{bad:?}");
    }
}

/// Produced by Shopify's official Node library, @shopify/shopify-api 13.1.0: the tag is
/// `getHmac(SHOPIFY_SDK_BODY, API_SECRET_KEY)` from `@shopify/shopify-api/test-helpers` (its test
/// secret `testApiSecretKey`), and `shopify.webhooks.validate({rawBody, rawRequest})` (web-api
/// adapter, apiVersion 2025-10, these headers) returns `valid: true` for it and
/// `invalid_hmac` once "Grüße" in the body becomes "Grusse". The body has non-ASCII on purpose.
const SHOPIFY_SDK_BODY: &str = r#"{"id":450789469,"email":"bob.norman@mail.example.com","note":"Grüße","total_price":"598.94"}"#;
const SHOPIFY_SDK_SIG: &str = "mOTz/2LP31uiNToVj46LbCw4qAOEpaTbjRjzUqVmyTI=";

#[test]
fn shopify_sdk_vector_verifies() {
    let hs = [
        ("x-shopify-hmac-sha256", SHOPIFY_SDK_SIG),
        (
            "x-shopify-webhook-id",
            "a1b2c3d4-0000-4000-8000-000000000001",
        ),
        ("x-shopify-topic", "orders/create"),
        ("x-shopify-shop-domain", "test-shop.myshopify.io"),
        ("x-shopify-api-version", "2025-10"),
    ];
    let v = run("shopify", "testApiSecretKey", &hs, SHOPIFY_SDK_BODY, 0).unwrap();
    assert_eq!(v.id(), "a1b2c3d4-0000-4000-8000-000000000001");
    assert_eq!(v.event_type(), Some("orders/create"));
    let tampered = SHOPIFY_SDK_BODY.replace("Grüße", "Grusse");
    assert_eq!(
        run("shopify", "testApiSecretKey", &hs, &tampered, 0),
        Err(VerifyError::SignatureMismatch)
    );
}

/// Intercom developer docs, "Signed notifications": `X-Hub-Signature: sha1=<hex HMAC-SHA1 of
/// the body>`; the docs' example body (trimmed) with no published secret, so the tag was computed
/// for `intercom_hub_secret` with Python `hmac.new(key, body, sha1).hexdigest()`.
/// No official SDK vector exists: Intercom's official libraries, intercom-client 7.0.3 (npm) and
/// python-intercom 5.0.1 (PyPI), have no webhook signature helper (no HMAC code at all), and the
/// docs' example `X-Hub-Signature: sha1=21ff2e…` is published without its hub_secret.
const INTERCOM_BODY: &str = r#"{"type":"notification_event","id":"notif_78c122d0-23ba-11e4-9464-79b01267cc2e","topic":"user.created","app_id":"a86dr8yl","data":{"type":"notification_event_data","item":{"type":"user","id":"530370b477ad7120001d"}}}"#;
const INTERCOM_SIG: &str = "sha1=5667e7a0c6e629778548c35ad47ac36794705d4b";

#[test]
fn intercom_vector_and_negatives() {
    let hs = [("x-hub-signature", INTERCOM_SIG)];
    let v = run("intercom", "intercom_hub_secret", &hs, INTERCOM_BODY, 0).unwrap();
    assert_eq!(v.id(), "notif_78c122d0-23ba-11e4-9464-79b01267cc2e");
    assert_eq!(v.event_type(), Some("user.created"));
    let mismatch = Err(VerifyError::SignatureMismatch);
    let tampered = INTERCOM_BODY.replace("user.created", "user.deleted");
    assert_eq!(
        run("intercom", "intercom_hub_secret", &hs, &tampered, 0),
        mismatch
    );
    assert_eq!(run("intercom", "wrong", &hs, INTERCOM_BODY, 0), mismatch);
    let sha256 = [("x-hub-signature", "sha256=00")];
    assert_eq!(
        run("intercom", "s", &sha256, INTERCOM_BODY, 0),
        Err(VerifyError::MalformedSignature)
    );
}

/// square/square-python-sdk, tests/utilities/test_webhooks_helper.py
/// (`is_valid_webhook_event_signature`): body, key `Ibxx_5AKakO-3qeNVR61Dw`, notification URL.
const SQUARE_BODY: &str = "{\"merchant_id\":\"MLEFBHHSJGVHD\",\"type\":\"webhooks.test_notification\",\"event_id\":\"ac3ac95b-f97d-458c-a6e6-18981597e05f\",\"created_at\":\"2022-07-13T20:30:59.037339943Z\",\"data\":{\"type\":\"webhooks\",\"id\":\"bc368e64-01aa-407e-b46e-3231809b1129\"}}";
const SQUARE_SIG: &str = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=";
const SQUARE_URL: &str = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9";

fn square(key: &str, url: &str, body: &str) -> Result<Verified, VerifyError> {
    let options = SchemeOptions {
        public_url: Some(url.to_owned()),
        ..SchemeOptions::default()
    };
    let h = headers(&[("x-square-hmacsha256-signature", SQUARE_SIG)]);
    scheme_with("square", &[key], &options).verify(&request(&h, body.as_bytes(), 0))
}

#[test]
fn square_sdk_vector_and_its_negatives() {
    let v = square("Ibxx_5AKakO-3qeNVR61Dw", SQUARE_URL, SQUARE_BODY).unwrap();
    assert_eq!(v.id(), "ac3ac95b-f97d-458c-a6e6-18981597e05f");
    assert_eq!(v.event_type(), Some("webhooks.test_notification"));
    let mismatch = Err(VerifyError::SignatureMismatch);
    let other_url = "https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9";
    assert_eq!(
        square("Ibxx_5AKakO-3qeNVR61Dw", other_url, SQUARE_BODY),
        mismatch
    );
    assert_eq!(
        square("MCmhFRxGX82xMwg5FsaoQA", SQUARE_URL, SQUARE_BODY),
        mismatch
    );
    let body = SQUARE_BODY.replace("2022-07-13", "2022-06-13");
    assert_eq!(
        square("Ibxx_5AKakO-3qeNVR61Dw", SQUARE_URL, &body),
        mismatch
    );
    assert_eq!(
        square("Ibxx_5AKakO-3qeNVR61Dw", PUBLIC_URL, SQUARE_BODY),
        mismatch
    );
}

/// Linear developer docs, "Webhooks" (HMAC-SHA256 hex of the raw body in `Linear-Signature`;
/// `webhookTimestamp` in ms, checked within a minute by @linear/sdk `LinearWebhooks.verify`).
/// No published secret, so this tag was computed for `lin_wh_test_secret` with Python's hmac;
/// @linear/sdk 98.0.0 `new LinearWebhookClient(secret).verify(rawBody, sig)` accepts it (clock
/// set to the body's `webhookTimestamp`).
const LINEAR_BODY: &str = r#"{"action":"create","type":"Issue","data":{"id":"2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9","title":"Test"},"url":"https://linear.app/issue/LIN-1","webhookTimestamp":1676056940508,"webhookId":"000042e3-d123-4980-b49f-8e140eef9329"}"#;
const LINEAR_SIG: &str = "c277ad952951fcfaddcdaa258b36efcf7f8fa63ccf7c23df4e8e4acf96ee9758";

fn linear(secret: &str, body: &str, now: i64) -> Result<Verified, VerifyError> {
    let hs = [
        ("linear-signature", LINEAR_SIG),
        ("linear-delivery", "234d1a4e-b617-4388-90fe-adc3633d6b72"),
        ("linear-event", "Issue"),
    ];
    run("linear", secret, &hs, body, now)
}

#[test]
fn linear_vector_checks_the_body_timestamp_in_ms() {
    let v = linear("lin_wh_test_secret", LINEAR_BODY, 1_676_056_940).unwrap();
    assert_eq!(v.id(), "234d1a4e-b617-4388-90fe-adc3633d6b72");
    assert_eq!(
        (v.event_type(), v.timestamp()),
        (Some("Issue"), Some(1_676_056_940))
    );
    let late = Err(VerifyError::TimestampOutOfTolerance);
    assert_eq!(
        linear("lin_wh_test_secret", LINEAR_BODY, 1_676_056_940 + 301),
        late
    );
    assert_eq!(
        linear("lin_wh_test_secret", LINEAR_BODY, 1_676_056_940 - 301),
        late
    );
    let mismatch = Err(VerifyError::SignatureMismatch);
    assert_eq!(linear("wrong", LINEAR_BODY, 1_676_056_940), mismatch);
    let tampered = LINEAR_BODY.replace("Test", "Tost");
    assert_eq!(
        linear("lin_wh_test_secret", &tampered, 1_676_056_940),
        mismatch
    );
}

/// Checked with Linear's official SDK, @linear/sdk 98.0.0 (`@linear/sdk/webhooks`): the SDK only
/// verifies, it has no signing call, so the tag is Node `createHmac("sha256", secret)
/// .update(body).digest("hex")` for `lin_wh_sdk_secret`, and `new LinearWebhookClient(
/// "lin_wh_sdk_secret").verify(Buffer.from(body), sig)` returns true with `Date.now()` one second
/// after `webhookTimestamp`; it throws "Invalid webhook signature" with "LGTM" changed to
/// "LGTN" or another secret, and "Invalid webhook timestamp" 61 s later.
const LINEAR_SDK_BODY: &str = r#"{"action":"create","type":"Comment","data":{"id":"9b2f1c3e-5d4a-4f6b-8c7d-0e1f2a3b4c5d","body":"LGTM","issueId":"2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9"},"url":"https://linear.app/issue/LIN-1#comment-9b2f1c3e","webhookTimestamp":1735689600123,"webhookId":"6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"}"#;
const LINEAR_SDK_SIG: &str = "8e4ef7fb3c255f0f2059f0cfe2f82f2cc32c7d5abe5149b56d7add8a05af1440";

#[test]
fn linear_sdk_accepted_vector_verifies() {
    let hs = [
        ("linear-signature", LINEAR_SDK_SIG),
        ("linear-delivery", "0c5e7f2a-1b3d-4e6f-9a8b-7c6d5e4f3a2b"),
        ("linear-event", "Comment"),
    ];
    let now = 1_735_689_601;
    let v = run("linear", "lin_wh_sdk_secret", &hs, LINEAR_SDK_BODY, now).unwrap();
    assert_eq!(v.id(), "0c5e7f2a-1b3d-4e6f-9a8b-7c6d5e4f3a2b");
    assert_eq!(
        (v.event_type(), v.timestamp()),
        (Some("Comment"), Some(1_735_689_600))
    );
    let tampered = LINEAR_SDK_BODY.replace("LGTM", "LGTN");
    assert_eq!(
        run("linear", "lin_wh_sdk_secret", &hs, &tampered, now),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn linear_without_body_timestamp_is_missing_timestamp() {
    let s = scheme("linear", &["k"]);
    let body = br#"{"type":"Issue"}"#;
    let h = s.sign(body, "d-1", 0);
    assert_eq!(
        s.verify(&request(&h, body, 0)),
        Err(VerifyError::MissingTimestamp)
    );
    let body = br#"{"webhookTimestamp":"soon"}"#;
    let h = s.sign(body, "d-1", 0);
    assert_eq!(
        s.verify(&request(&h, body, 0)),
        Err(VerifyError::MalformedSignature)
    );
    let body = br#"{"webhookTimestamp":1000}"#;
    let h = s.sign(body, "d-1", 0);
    assert!(s.verify(&request(&h, body, 1)).is_ok());
}
