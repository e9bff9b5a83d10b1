//! Slack and Zoom: `v0:{ts}:{body}`, and the handshakes the gateway answers itself.

use super::{headers, request, scheme};
use crate::verify::{Verified, VerifyError};

/// api.slack.com/authentication/verifying-requests-from-slack, "Step-by-step walk-through":
/// signing secret, timestamp, slash-command body and the expected `v0=` signature.
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_TS: &str = "1531420618";
const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

fn slack(secret: &str, ts: &str, sig: &str, body: &str, now: i64) -> Result<Verified, VerifyError> {
    let h = headers(&[
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", sig),
    ]);
    scheme("slack", &[secret]).verify(&request(&h, body.as_bytes(), now))
}

#[test]
fn slack_docs_vector_and_negatives() {
    let now = 1_531_420_618;
    let v = slack(SLACK_SECRET, SLACK_TS, SLACK_SIG, SLACK_BODY, now + 60).unwrap();
    assert_eq!((v.timestamp(), v.handshake()), (Some(now), None));
    let mismatch = Err(VerifyError::SignatureMismatch);
    assert_eq!(
        slack("wrong", SLACK_TS, SLACK_SIG, SLACK_BODY, now),
        mismatch
    );
    let tampered = SLACK_BODY.replace("foobar", "foobaz");
    assert_eq!(
        slack(SLACK_SECRET, SLACK_TS, SLACK_SIG, &tampered, now),
        mismatch
    );
    assert_eq!(
        slack(SLACK_SECRET, "1531420619", SLACK_SIG, SLACK_BODY, now),
        mismatch
    );
    let late = Err(VerifyError::TimestampOutOfTolerance);
    assert_eq!(
        slack(SLACK_SECRET, SLACK_TS, SLACK_SIG, SLACK_BODY, now + 301),
        late
    );
    assert_eq!(
        slack(SLACK_SECRET, SLACK_TS, SLACK_SIG, SLACK_BODY, now - 301),
        late
    );
    let upper = SLACK_SIG.replace("a2114d", "A2114D");
    for (ts, sig) in [
        (SLACK_TS, upper.as_str()),
        (SLACK_TS, "v1=00"),
        ("15314e0618", SLACK_SIG),
    ] {
        let r = slack(SLACK_SECRET, ts, sig, SLACK_BODY, now);
        assert_eq!(r, Err(VerifyError::MalformedSignature), "{ts} {sig}");
    }
    let h = headers(&[("x-slack-signature", SLACK_SIG)]);
    let r = scheme("slack", &[SLACK_SECRET]).verify(&request(&h, SLACK_BODY.as_bytes(), now));
    assert_eq!(r, Err(VerifyError::MissingTimestamp));
}

/// Slack's Events API `url_verification` body (api.slack.com/events/url_verification), signed
/// with the docs' secret by Python's hmac as Slack signs every request.
const SLACK_CHALLENGE: &str = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
const SLACK_CHALLENGE_SIG: &str =
    "v0=f9bd80929259f3f6d5fe3a3186c453c89cd1ad4862815a15837584f31c993652";

#[test]
fn slack_url_verification_is_answered_after_the_signature_holds() {
    let v = slack(
        SLACK_SECRET,
        SLACK_TS,
        SLACK_CHALLENGE_SIG,
        SLACK_CHALLENGE,
        1_531_420_618,
    );
    let answer = v.unwrap().handshake().map(str::to_owned);
    assert_eq!(
        answer.as_deref(),
        Some(r#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#)
    );
    let forged = slack(
        "wrong",
        SLACK_TS,
        SLACK_CHALLENGE_SIG,
        SLACK_CHALLENGE,
        1_531_420_618,
    );
    assert_eq!(forged, Err(VerifyError::SignatureMismatch));
}

/// developers.zoom.us "Webhooks: Verify with Zoom's header" (`v0:{x-zm-request-timestamp}:{body}`,
/// HMAC-SHA256 hex with the secret token, `x-zm-signature: v0=…`) and "Validate your webhook
/// endpoint" (encryptedToken = hex HMAC-SHA256 of plainToken). Zoom publishes no secret, so the
/// tags were computed for `zoom_secret_token` with Python's hmac following those pages. Zoom's
/// official @zoom/rivet 0.4.0 (`@zoom/rivet/meetings`, `new AwsLambdaReceiver({
/// webhooksSecretToken }).start()` called with `{ body, headers }`) accepts both, and for the
/// validation event answers with exactly the `encryptedToken`/`plainToken` JSON expected below.
const ZOOM_BODY: &str = r#"{"event":"meeting.started","event_ts":1658940994914,"payload":{"account_id":"AAAAAABBBB","object":{"id":"1234567890"}}}"#;
const ZOOM_SIG: &str = "v0=781730473fc7999fa7bcdbd1966bc064751e24968e51a0ac5b1e7422b0439b54";
const ZOOM_VALIDATION: &str = r#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
const ZOOM_VALIDATION_SIG: &str =
    "v0=f32594e3020de22fea4de0308eefd5537511d361513ab3efd836199efd84c746";

fn zoom(
    secrets: &[&str],
    ts: &str,
    sig: &str,
    body: &str,
    now: i64,
) -> Result<Verified, VerifyError> {
    let h = headers(&[("x-zm-request-timestamp", ts), ("x-zm-signature", sig)]);
    scheme("zoom", secrets).verify(&request(&h, body.as_bytes(), now))
}

#[test]
fn zoom_vector_and_negatives() {
    let v = zoom(
        &["zoom_secret_token"],
        "1658940994",
        ZOOM_SIG,
        ZOOM_BODY,
        1_658_940_994,
    )
    .unwrap();
    assert_eq!(v.event_type(), Some("meeting.started"));
    assert_eq!(v.id(), crate::verify::body_digest_id(ZOOM_BODY.as_bytes()));
    let mismatch = Err(VerifyError::SignatureMismatch);
    assert_eq!(
        zoom(&["wrong"], "1658940994", ZOOM_SIG, ZOOM_BODY, 1_658_940_994),
        mismatch
    );
    let tampered = ZOOM_BODY.replace("started", "ended");
    assert_eq!(
        zoom(
            &["zoom_secret_token"],
            "1658940994",
            ZOOM_SIG,
            &tampered,
            1_658_940_994
        ),
        mismatch
    );
    let late = zoom(
        &["zoom_secret_token"],
        "1658940994",
        ZOOM_SIG,
        ZOOM_BODY,
        1_658_941_295,
    );
    assert_eq!(late, Err(VerifyError::TimestampOutOfTolerance));
    let bad = zoom(
        &["zoom_secret_token"],
        "1658940994",
        "v0=zz",
        ZOOM_BODY,
        1_658_940_994,
    );
    assert_eq!(bad, Err(VerifyError::MalformedSignature));
}

/// Checked with Zoom's official SDK, @zoom/rivet 0.4.0 (`@zoom/rivet/meetings`). Rivet only
/// verifies, so the tag is Node `"v0=" + createHmac("sha256", "rivet_secret_token")
/// .update("v0:1735689600:" + body).digest("hex")`; `new AwsLambdaReceiver({ webhooksSecretToken:
/// "rivet_secret_token" }).start()({ body, headers: { "x-zm-signature", "x-zm-request-timestamp":
/// "1735689600" } })` answers 200 and emits `meeting.ended`, and 400 "Failed to verify event
/// originated from Zoom." with "ended" changed to "started" or timestamp 1735689601. Rivet signs
/// `JSON.stringify(JSON.parse(body))`, so only compact JSON bodies like this one agree with it.
const ZOOM_SDK_BODY: &str = r#"{"event":"meeting.ended","event_ts":1735689600123,"payload":{"account_id":"lAAAAAAAAAAAAA","object":{"id":"85012345678","uuid":"4444AAAiAAAAAiAiAiiAii==","topic":"Rivet check"}}}"#;
const ZOOM_SDK_SIG: &str = "v0=a9871bc01179774d83ce2f43948f22031f753f66897a9db03bd4a38a298a544f";

#[test]
fn zoom_rivet_accepted_vector_verifies() {
    let secrets = ["rivet_secret_token"];
    let ts = "1735689600";
    let v = zoom(&secrets, ts, ZOOM_SDK_SIG, ZOOM_SDK_BODY, 1_735_689_600).unwrap();
    assert_eq!(v.event_type(), Some("meeting.ended"));
    assert_eq!(v.timestamp(), Some(1_735_689_600));
    let tampered = ZOOM_SDK_BODY.replace("ended", "started");
    let r = zoom(&secrets, ts, ZOOM_SDK_SIG, &tampered, 1_735_689_600);
    assert_eq!(r, Err(VerifyError::SignatureMismatch));
    let r = zoom(
        &secrets,
        "1735689601",
        ZOOM_SDK_SIG,
        ZOOM_SDK_BODY,
        1_735_689_600,
    );
    assert_eq!(r, Err(VerifyError::SignatureMismatch));
}

#[test]
fn zoom_url_validation_answers_with_the_matching_secret() {
    let secrets = ["old_token", "zoom_secret_token"];
    let v = zoom(
        &secrets,
        "1654503849",
        ZOOM_VALIDATION_SIG,
        ZOOM_VALIDATION,
        1_654_503_849,
    );
    let expected = r#"{"encryptedToken":"bd48235863f4a6323ccc4963c594908b7c97f88b4a6a95278f4f093690b12726","plainToken":"qgg8vlvZRS6UYooatFL8Aw"}"#;
    assert_eq!(v.unwrap().handshake(), Some(expected));
    let forged = zoom(
        &["x"],
        "1654503849",
        ZOOM_VALIDATION_SIG,
        ZOOM_VALIDATION,
        1_654_503_849,
    );
    assert_eq!(forged, Err(VerifyError::SignatureMismatch));
}
