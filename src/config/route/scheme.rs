//! A route's signature scheme from config: secrets, tolerance, and the keys some schemes need
//! (`public_url`, `legacy_sha1`, `[route.hmac]`), validated with errors that name the key.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::super::raw::RawRoute;
use super::super::{ConfigError, Cx, MAX_DELAY};
use crate::verify::{
    self, Algorithm, BuildError, Encoding, Field, Scheme, SchemeOptions, Spec, Template, Unit,
};

/// `[route.hmac]`: the generic scheme, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHmac {
    /// Header carrying the signature, e.g. `X-Webhook-Signature`.
    pub header: String,
    /// Text before the signature in that header, e.g. `sha256=`.
    #[serde(default)]
    pub prefix: String,
    /// `hex` (default) or `base64`.
    #[serde(default = "d_encoding")]
    pub encoding: String,
    /// `sha256` (default), `sha1` or `sha512`.
    #[serde(default = "d_algorithm")]
    pub algorithm: String,
    /// The signed string: `{id}`, `{timestamp}`, `{body}`, `{url}` and literal text.
    #[serde(default = "d_template")]
    pub template: String,
    pub timestamp_header: Option<String>,
    /// JSON pointer to a timestamp inside the (signed) body.
    pub timestamp_pointer: Option<String>,
    /// `s` (default) or `ms`.
    #[serde(default = "d_unit")]
    pub timestamp_unit: String,
    pub id_header: Option<String>,
    pub id_pointer: Option<String>,
    pub event_type_header: Option<String>,
    pub event_type_pointer: Option<String>,
}

fn d_encoding() -> String {
    "hex".into()
}
fn d_algorithm() -> String {
    "sha256".into()
}
fn d_template() -> String {
    "{body}".into()
}
fn d_unit() -> String {
    "s".into()
}

/// Builds the route's scheme; a problem is reported under `route[i].<key>`.
pub(crate) fn scheme(cx: &mut Cx, key: &str, r: &RawRoute) -> Result<Arc<dyn Scheme>, ConfigError> {
    let tolerance = cx.positive_within(&format!("{key}.tolerance"), &r.tolerance, MAX_DELAY)?;
    let mut secrets = Vec::with_capacity(r.secrets.len());
    for (i, s) in r.secrets.iter().enumerate() {
        secrets.push(cx.secret(&format!("{key}.secrets[{i}]"), s)?);
    }
    let options = SchemeOptions {
        public_url: r
            .public_url
            .as_deref()
            .map(|u| public_url(cx, key, u))
            .transpose()?,
        legacy_sha1: r.legacy_sha1,
        hmac: r
            .hmac
            .as_ref()
            .map(|h| hmac(cx, &format!("{key}.hmac"), h))
            .transpose()?,
    };
    verify::build(&r.scheme, secrets, tolerance, &options)
        .map(Arc::from)
        .map_err(|e| match e {
            BuildError::UnknownScheme(name) => cx.err(
                format!("{key}.scheme"),
                format!(
                    "unknown scheme {name:?}; known: {}",
                    verify::SCHEMES.join(", ")
                ),
            ),
            BuildError::NoSecrets => {
                cx.err(format!("{key}.secrets"), "at least one secret is required")
            }
            BuildError::BadSecret { index, reason } => {
                cx.err(format!("{key}.secrets[{index}]"), reason)
            }
            BuildError::BadOption { key: k, reason } => cx.err(format!("{key}.{k}"), reason),
        })
}

/// `forward_secret`: a Standard Webhooks signing key, `whsec_` and base64 (HMAC, `v1`) or
/// `whsk_` and base64 of an Ed25519 seed (`v1a`), compiled into the signer delivery uses.
/// Anything else (no prefix, a `whpk_` public key, bad base64) would forward unsigned, so it
/// is refused here.
pub(crate) fn forward_signer(
    cx: &mut Cx,
    key: &str,
    v: &str,
) -> Result<Arc<dyn Scheme>, ConfigError> {
    let secret = cx.secret(key, v)?;
    let text = secret.expose();
    let body = [&b"whsec_"[..], b"whsk_"]
        .iter()
        .find_map(|p| text.strip_prefix(*p));
    let options = SchemeOptions::default();
    // An empty key is refused by the scheme itself ("whsec_" alone).
    let built = body.and_then(|_| {
        verify::build(
            "standard",
            vec![secret.clone()],
            Duration::from_secs(300),
            &options,
        )
        .ok()
    });
    built.map(Arc::from).ok_or_else(|| {
        cx.err(
            key,
            "must be a Standard Webhooks signing key: whsec_ followed by base64 of the key \
             (or whsk_ and base64 of an Ed25519 seed)",
        )
    })
}

/// An absolute http(s) URL, kept as written: the sender signs the exact text it was given.
fn public_url(cx: &Cx, key: &str, url: &str) -> Result<String, ConfigError> {
    let parsed = url.parse::<http::Uri>().ok();
    let ok = parsed
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if !ok {
        let problem = format!("{url:?} must be the absolute http(s) URL given to the sender");
        return Err(cx.err(format!("{key}.public_url"), problem));
    }
    Ok(url.to_owned())
}

fn hmac(cx: &Cx, key: &str, h: &RawHmac) -> Result<Spec, ConfigError> {
    let err = |k: &str, problem: String| cx.err(format!("{key}.{k}"), problem);
    let encoding = match h.encoding.as_str() {
        "hex" => Encoding::Hex,
        "base64" => Encoding::Base64,
        other => {
            return Err(err(
                "encoding",
                format!("{other:?}: use \"hex\" or \"base64\""),
            ));
        }
    };
    let algorithm = match h.algorithm.as_str() {
        "sha1" => Algorithm::Sha1,
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        other => {
            return Err(err(
                "algorithm",
                format!("{other:?}: use \"sha1\", \"sha256\" or \"sha512\""),
            ));
        }
    };
    let unit = match h.timestamp_unit.as_str() {
        "s" => Unit::Seconds,
        "ms" => Unit::Millis,
        other => {
            return Err(err(
                "timestamp_unit",
                format!("{other:?}: use \"s\" or \"ms\""),
            ));
        }
    };
    let template = Template::parse(&h.template).map_err(|e| err("template", e.to_string()))?;
    let field = |name: &str, header: &Option<String>, pointer: &Option<String>| {
        field(cx, key, name, header.as_deref(), pointer.as_deref())
    };
    Ok(Spec {
        signature: header_name(cx, &format!("{key}.header"), &h.header)?,
        prefix: h.prefix.clone(),
        encoding,
        algorithm,
        template,
        timestamp: field("timestamp", &h.timestamp_header, &h.timestamp_pointer)?
            .map(|f| (f, unit)),
        id: field("id", &h.id_header, &h.id_pointer)?,
        event_type: field("event_type", &h.event_type_header, &h.event_type_pointer)?,
        url: None,
    })
}

/// `<name>_header` or `<name>_pointer`, not both.
fn field(
    cx: &Cx,
    key: &str,
    name: &str,
    header: Option<&str>,
    pointer: Option<&str>,
) -> Result<Option<Field>, ConfigError> {
    match (header, pointer) {
        (Some(_), Some(_)) => Err(cx.err(
            format!("{key}.{name}_pointer"),
            format!("set {name}_header or {name}_pointer, not both"),
        )),
        (Some(h), None) => Ok(Some(Field::Header(header_name(
            cx,
            &format!("{key}.{name}_header"),
            h,
        )?))),
        (None, Some(p)) if p.starts_with('/') => Ok(Some(Field::Pointer(p.to_owned()))),
        (None, Some(p)) => Err(cx.err(
            format!("{key}.{name}_pointer"),
            format!("{p:?} is not a JSON pointer (RFC 6901); write e.g. \"/id\" or \"/data/id\""),
        )),
        (None, None) => Ok(None),
    }
}

fn header_name(cx: &Cx, key: &str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| cx.err(key, format!("{name:?} is not a valid header name")))
}
