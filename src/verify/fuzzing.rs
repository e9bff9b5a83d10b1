//! Entry points for the fuzz targets in `fuzz/` and for their regression corpus, which runs in
//! the normal test suite (`tests/it/fuzz_regressions.rs`). Each takes arbitrary bytes, drives
//! one parser (or the whole `verify`) and must return without panicking, whatever the input.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::template::{Encoding, Template};
use super::{SCHEMES, Scheme, SchemeOptions, Unverified, build, presets, structured};
use crate::config::Secret;

/// The target names, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/regressions/<name>/`.
pub const TARGETS: &[&str] = &[
    "structured_header",
    "standard_header",
    "prefixed_tag",
    "twilio_form",
    "template",
    "verify_request",
];

/// Runs the named target on `data`; `false` for an unknown name.
pub fn run(target: &str, data: &[u8]) -> bool {
    let f: fn(&[u8]) = match target {
        "structured_header" => structured_header,
        "standard_header" => standard_header,
        "prefixed_tag" => prefixed_tag,
        "twilio_form" => twilio_form,
        "template" => template,
        "verify_request" => verify_request,
        _ => return false,
    };
    f(data);
    true
}

/// Stripe/bitbybit (`t=…,v1=…`) and Paddle (`ts=…;h1=…`) header parsing.
pub fn structured_header(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = structured::parse(text, ',', "t", "v1");
        let _ = structured::parse(text, ';', "ts", "h1");
    }
}

/// Standard Webhooks `webhook-signature` parsing (`v1,…`, `v1a,…`).
pub fn standard_header(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = super::standard::parse(text);
    }
}

/// Prefix + hex/base64 tags, as GitHub, Shopify, Slack, Zoom, Linear, Square and `hmac` send.
pub fn prefixed_tag(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        for prefix in ["sha256=", "sha1=", "v0=", ""] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let _ = Encoding::Hex.decode(rest);
                let _ = Encoding::Base64.decode(rest);
            }
        }
    }
}

/// Twilio's form parameters and URL port handling.
pub fn twilio_form(data: &[u8]) {
    let _ = super::twilio::form_params(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = super::twilio::toggle_port(text);
    }
}

/// The generic scheme's template syntax.
pub fn template(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Template::parse(text);
    }
}

/// The whole `verify`: byte 0 picks a scheme, then `name: value` header lines up to an empty
/// line, then the body.
pub fn verify_request(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let schemes = schemes();
    let scheme = &schemes[usize::from(pick) % schemes.len()];
    let (headers, body, query) = request_parts(rest);
    let req = Unverified {
        headers: &headers,
        body,
        query,
        now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    let _ = scheme.verify(&req);
}

/// Splits fuzz input into headers, body and (from a `?query` header line) a query string.
fn request_parts(data: &[u8]) -> (HeaderMap, &[u8], Option<&str>) {
    let mut headers = HeaderMap::new();
    let mut query = None;
    let mut rest = data;
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        let (line, tail) = (&rest[..end], &rest[end + 1..]);
        rest = tail;
        if line.is_empty() {
            break;
        }
        if let Some(q) = line.strip_prefix(b"?") {
            query = std::str::from_utf8(q).ok();
        } else if let Some(i) = line.iter().position(|b| *b == b':') {
            let name = HeaderName::from_bytes(&line[..i]);
            let value = HeaderValue::from_bytes(line[i + 1..].trim_ascii());
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
    }
    (headers, rest, query)
}

/// Every scheme, built once with fixed test secrets.
fn schemes() -> &'static [Box<dyn Scheme>] {
    static ALL: OnceLock<Vec<Box<dyn Scheme>>> = OnceLock::new();
    ALL.get_or_init(|| {
        SCHEMES
            .iter()
            .filter_map(|name| fuzz_scheme(name))
            .collect()
    })
}

fn fuzz_scheme(name: &str) -> Option<Box<dyn Scheme>> {
    let secret = if name == "standard" {
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    } else {
        "secret"
    };
    let url = ["twilio", "square", "hmac"].contains(&name);
    let options = SchemeOptions {
        public_url: url.then(|| "https://example.com/hooks?x=1".to_owned()),
        legacy_sha1: name == "github",
        hmac: (name == "hmac").then(presets::slack),
    };
    build(
        name,
        vec![Secret::new(secret)],
        Duration::from_secs(300),
        &options,
    )
    .ok()
}
