//! The generic `hmac` scheme, configured from TOML, answers exactly as three named schemes do
//! (GitHub, Slack, Square) on their providers' vectors and on tampered variants; and bad
//! `[route.hmac]` keys are refused with the key named.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use hookgate::config::{Config, Route};
use hookgate::verify::{Unverified, VerifyError};

const ROUTES: &str = r#"
[server]
insecure_http = true
[[route]]
name = "github"
path = "/github"
scheme = "github"
secrets = ["It's a Secret to Everybody"]
upstream = { url = "http://127.0.0.1:1/" }
[[route]]
name = "github-hmac"
path = "/github-hmac"
scheme = "hmac"
secrets = ["It's a Secret to Everybody"]
hmac = { header = "X-Hub-Signature-256", prefix = "sha256=", id_header = "X-GitHub-Delivery", event_type_header = "X-GitHub-Event" }
upstream = { url = "http://127.0.0.1:1/" }
[[route]]
name = "slack"
path = "/slack"
scheme = "slack"
secrets = ["8f742231b10e8888abcd99yyyzzz85a5"]
upstream = { url = "http://127.0.0.1:1/" }
[[route]]
name = "slack-hmac"
path = "/slack-hmac"
scheme = "hmac"
secrets = ["8f742231b10e8888abcd99yyyzzz85a5"]
upstream = { url = "http://127.0.0.1:1/" }
[route.hmac]
header = "X-Slack-Signature"
prefix = "v0="
template = "v0:{timestamp}:{body}"
timestamp_header = "X-Slack-Request-Timestamp"
id_pointer = "/event_id"
event_type_pointer = "/event/type"
[[route]]
name = "square"
path = "/square"
scheme = "square"
secrets = ["Ibxx_5AKakO-3qeNVR61Dw"]
public_url = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
upstream = { url = "http://127.0.0.1:1/" }
[[route]]
name = "square-hmac"
path = "/square-hmac"
scheme = "hmac"
secrets = ["Ibxx_5AKakO-3qeNVR61Dw"]
public_url = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
hmac = { header = "x-square-hmacsha256-signature", encoding = "base64", template = "{url}{body}", id_pointer = "/event_id", event_type_pointer = "/type" }
upstream = { url = "http://127.0.0.1:1/" }
"#;

/// Vectors: GitHub docs, Slack docs, square-python-sdk tests (see src/verify/tests/*.rs).
const GITHUB: (&str, &str) = (
    "Hello, World!",
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
);
const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
const SQUARE_BODY: &str = "{\"merchant_id\":\"MLEFBHHSJGVHD\",\"type\":\"webhooks.test_notification\",\"event_id\":\"ac3ac95b-f97d-458c-a6e6-18981597e05f\",\"created_at\":\"2022-07-13T20:30:59.037339943Z\",\"data\":{\"type\":\"webhooks\",\"id\":\"bc368e64-01aa-407e-b46e-3231809b1129\"}}";
const SQUARE_SIG: &str = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=";

fn routes() -> Vec<Route> {
    Config::parse(Path::new("hmac.toml"), ROUTES)
        .expect("config loads")
        .routes
}

fn verify(
    route: &Route,
    hs: &[(&str, &str)],
    body: &str,
    now: u64,
) -> Result<(String, Option<String>), VerifyError> {
    let mut headers = http::HeaderMap::new();
    for (n, v) in hs {
        headers.insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let req = Unverified {
        headers: &headers,
        body: body.as_bytes(),
        query: None,
        now: UNIX_EPOCH + Duration::from_secs(now),
    };
    route
        .scheme
        .verify(&req)
        .map(|v| (v.id().to_owned(), v.event_type().map(str::to_owned)))
}

/// The same request variants, each through the named route and its `hmac` twin.
/// Request headers, body and receive time.
type Variant<'a> = (Vec<(&'a str, &'a str)>, String, u64);

fn same_answers(named: &Route, generic: &Route, variants: &[Variant<'_>]) {
    for (hs, body, now) in variants {
        let a = verify(named, hs, body, *now);
        let b = verify(generic, hs, body, *now);
        assert_eq!(a, b, "{} vs {} on {hs:?}", named.name, generic.name);
    }
}

#[test]
fn github_slack_and_square_through_hmac_give_the_same_answers() {
    let r = routes();
    let (body, sig) = GITHUB;
    let ok = vec![
        ("x-hub-signature-256", sig),
        ("x-github-delivery", "d-1"),
        ("x-github-event", "ping"),
    ];
    same_answers(
        &r[0],
        &r[1],
        &[
            (ok.clone(), body.into(), 0),
            (ok.clone(), "Hello, World?".into(), 0),
            (vec![("x-hub-signature-256", "sha256=zz")], body.into(), 0),
            (vec![], body.into(), 0),
        ],
    );
    assert_eq!(
        verify(&r[1], &ok, body, 0).unwrap(),
        ("d-1".into(), Some("ping".into()))
    );

    let ts = ("x-slack-request-timestamp", "1531420618");
    let sl = vec![("x-slack-signature", SLACK_SIG), ts];
    same_answers(
        &r[2],
        &r[3],
        &[
            (sl.clone(), SLACK_BODY.into(), 1531420618),
            (sl.clone(), SLACK_BODY.into(), 1531420618 + 301),
            (
                sl.clone(),
                SLACK_BODY.replace("foobar", "foobaz"),
                1531420618,
            ),
            (
                vec![("x-slack-signature", SLACK_SIG)],
                SLACK_BODY.into(),
                1531420618,
            ),
            (
                vec![
                    ("x-slack-signature", SLACK_SIG),
                    ("x-slack-request-timestamp", "x"),
                ],
                SLACK_BODY.into(),
                1,
            ),
        ],
    );
    assert!(verify(&r[3], &sl, SLACK_BODY, 1531420618).is_ok());

    let sq = vec![("x-square-hmacsha256-signature", SQUARE_SIG)];
    same_answers(
        &r[4],
        &r[5],
        &[
            (sq.clone(), SQUARE_BODY.into(), 0),
            (sq.clone(), SQUARE_BODY.replace("07-13", "06-13"), 0),
            (
                vec![("x-square-hmacsha256-signature", "!!")],
                SQUARE_BODY.into(),
                0,
            ),
        ],
    );
    let (id, ty) = verify(&r[5], &sq, SQUARE_BODY, 0).unwrap();
    assert_eq!(
        (id.as_str(), ty.as_deref()),
        (
            "ac3ac95b-f97d-458c-a6e6-18981597e05f",
            Some("webhooks.test_notification")
        )
    );
}

fn refused(replace: (&str, &str), key: &str, problem: &str) {
    let text = ROUTES.replacen(replace.0, replace.1, 1);
    assert_ne!(text, ROUTES, "replacement {replace:?} applies");
    let err = Config::parse(Path::new("hmac.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains(key) && err.contains(problem), "{err}");
}

#[test]
fn bad_hmac_and_scheme_keys_name_the_key() {
    refused(
        ("prefix = \"v0=\"", "prefix = \"v0=\"\nencoding = \"hexx\""),
        "route[3].hmac.encoding",
        "hexx",
    );
    refused(
        ("prefix = \"v0=\"", "prefix = \"v0=\"\nalgorithm = \"md5\""),
        "route[3].hmac.algorithm",
        "md5",
    );
    refused(
        (
            "template = \"v0:{timestamp}:{body}\"",
            "template = \"v0:{ts}:{body}\"",
        ),
        "route[3].hmac.template",
        "unknown placeholder",
    );
    refused(
        (
            "template = \"v0:{timestamp}:{body}\"",
            "template = \"{body}\"",
        ),
        "route[3].hmac.template",
        "{timestamp}",
    );
    refused(
        ("id_pointer = \"/event_id\"", "id_pointer = \"event_id\""),
        "route[3].hmac.id_pointer",
        "JSON pointer",
    );
    refused(
        (
            "id_pointer = \"/event_id\"",
            "id_pointer = \"/event_id\"\nid_header = \"x\"",
        ),
        "route[3].hmac.id_pointer",
        "not both",
    );
    refused(
        ("prefix = \"v0=\"", "prefix = \"v0=\"\ncolour = \"blue\""),
        "unknown field",
        "colour",
    );
    refused(
        (
            "public_url = \"https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9\"\nupstream",
            "upstream",
        ),
        "route[4].public_url",
        "required",
    );
    refused(
        (
            "public_url = \"https://webhook.site",
            "public_url = \"ftp://webhook.site",
        ),
        "route[4].public_url",
        "absolute http(s) URL",
    );
    refused(
        (
            "scheme = \"github\"",
            "scheme = \"github\"\nlegacy_sha1 = true\nhmac = { header = \"x\" }",
        ),
        "route[0].hmac",
        "only applies",
    );
    refused(
        (
            "scheme = \"slack\"",
            "scheme = \"slack\"\nlegacy_sha1 = true",
        ),
        "route[2].legacy_sha1",
        "only applies",
    );
}
