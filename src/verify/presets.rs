//! Named schemes that are a [`Spec`] and nothing more: header, prefix, encoding, hash, signed
//! string and where the id, type and timestamp live. Each line is checked against the provider's
//! documentation in `docs/providers.md` and by a vector in `tests/`.

use http::HeaderName;

use super::Algorithm;
use super::generic::Spec;
use super::template::{Encoding, Part, Template, Unit};
use super::text::Field;

fn header(name: &'static str) -> Field {
    Field::Header(HeaderName::from_static(name))
}

fn pointer(p: &str) -> Field {
    Field::Pointer(p.to_owned())
}

/// `{body}` alone, or a fixed literal template.
fn template(parts: Vec<Part>) -> Template {
    Template(parts)
}

fn body_only() -> Template {
    template(vec![Part::Body])
}

/// `v0:{timestamp}:{body}`, shared by Slack and Zoom.
fn v0() -> Template {
    template(vec![
        Part::Literal(b"v0:".to_vec()),
        Part::Timestamp,
        Part::Literal(b":".to_vec()),
        Part::Body,
    ])
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>` of the body; no timestamp is signed.
pub(crate) fn github() -> Spec {
    Spec {
        signature: HeaderName::from_static("x-hub-signature-256"),
        prefix: "sha256=".into(),
        encoding: Encoding::Hex,
        algorithm: Algorithm::Sha256,
        template: body_only(),
        timestamp: None,
        id: Some(header("x-github-delivery")),
        event_type: Some(header("x-github-event")),
        url: None,
    }
}

/// GitHub's legacy `X-Hub-Signature: sha1=<hex>`, only for routes that opt in.
pub(crate) fn github_sha1() -> Spec {
    Spec {
        signature: HeaderName::from_static("x-hub-signature"),
        prefix: "sha1=".into(),
        algorithm: Algorithm::Sha1,
        ..github()
    }
}

/// Intercom: `X-Hub-Signature: sha1=<hex>` of the body; id and topic in the body.
pub(crate) fn intercom() -> Spec {
    Spec {
        id: Some(pointer("/id")),
        event_type: Some(pointer("/topic")),
        ..github_sha1()
    }
}

/// Shopify: `X-Shopify-Hmac-Sha256: <base64>` of the body.
pub(crate) fn shopify() -> Spec {
    Spec {
        signature: HeaderName::from_static("x-shopify-hmac-sha256"),
        prefix: String::new(),
        encoding: Encoding::Base64,
        algorithm: Algorithm::Sha256,
        template: body_only(),
        timestamp: None,
        id: Some(header("x-shopify-webhook-id")),
        event_type: Some(header("x-shopify-topic")),
        url: None,
    }
}

/// Square: `x-square-hmacsha256-signature: <base64>` of the notification URL + body.
pub(crate) fn square(url: Option<String>) -> Spec {
    Spec {
        signature: HeaderName::from_static("x-square-hmacsha256-signature"),
        template: template(vec![Part::Url, Part::Body]),
        id: Some(pointer("/event_id")),
        event_type: Some(pointer("/type")),
        url,
        ..shopify()
    }
}

/// Slack: `X-Slack-Signature: v0=<hex>` of `v0:{ts}:{body}`, `X-Slack-Request-Timestamp`.
pub(crate) fn slack() -> Spec {
    Spec {
        signature: HeaderName::from_static("x-slack-signature"),
        prefix: "v0=".into(),
        encoding: Encoding::Hex,
        algorithm: Algorithm::Sha256,
        template: v0(),
        timestamp: Some((header("x-slack-request-timestamp"), Unit::Seconds)),
        id: Some(pointer("/event_id")),
        event_type: Some(pointer("/event/type")),
        url: None,
    }
}

/// Zoom: `x-zm-signature: v0=<hex>` of `v0:{ts}:{body}`, `x-zm-request-timestamp`; Zoom sends
/// no event id, so the body digest is the id.
pub(crate) fn zoom() -> Spec {
    Spec {
        signature: HeaderName::from_static("x-zm-signature"),
        timestamp: Some((header("x-zm-request-timestamp"), Unit::Seconds)),
        id: None,
        event_type: Some(pointer("/event")),
        ..slack()
    }
}

/// Linear: `Linear-Signature: <hex>` of the body; the timestamp is the body's
/// `webhookTimestamp` in milliseconds, trusted once the MAC over the body holds.
pub(crate) fn linear() -> Spec {
    Spec {
        signature: HeaderName::from_static("linear-signature"),
        prefix: String::new(),
        encoding: Encoding::Hex,
        algorithm: Algorithm::Sha256,
        template: body_only(),
        timestamp: Some((pointer("/webhookTimestamp"), Unit::Millis)),
        id: Some(header("linear-delivery")),
        event_type: Some(header("linear-event")),
        url: None,
    }
}
