//! Twilio: `X-Twilio-Signature: base64(HMAC-SHA1(auth token, url + params))`.
//!
//! For form posts the signed string is the URL Twilio requested followed by every POST parameter
//! as `name` + `value`, sorted by name (then value), decoded. For JSON bodies Twilio appends
//! `bodySHA256=<hex>` to the URL, signs the URL alone, and the body must hash to that value.
//! The URL is the route's `public_url` (what Twilio was given, not what a load balancer shows
//! us) with the request's own query string. As Twilio's SDKs do, the URL is also tried with the
//! port toggled (`:443`/`:80` added when absent, removed when present).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

use super::text::{Field, Json};
use super::{Algorithm, Keys, Scheme, Unverified, Verified, VerifyError};

const SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");
const IDEMPOTENCY: HeaderName = HeaderName::from_static("i-twilio-idempotency-token");

/// Twilio's webhook parameters number in the dozens; far more is not Twilio.
const MAX_PARAMS: usize = 512;

/// Decoded `(name, value)` form parameters, borrowed from the body where no decoding was needed.
pub(crate) type Params<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// The `twilio` scheme.
#[derive(Debug)]
pub(crate) struct Twilio {
    keys: Keys,
    /// The configured public URL without its query string.
    base: String,
    /// The configured query string, used by `sign` (a real request brings its own).
    query: Option<String>,
}

impl Twilio {
    /// `public_url` was validated by config as an absolute http(s) URL.
    pub(crate) fn new(keys: Keys, public_url: &str) -> Self {
        let (base, query) = match public_url.split_once('?') {
            Some((base, query)) => (base.to_owned(), Some(query.to_owned())),
            None => (public_url.to_owned(), None),
        };
        Twilio { keys, base, query }
    }

    fn url(&self, query: Option<&str>) -> String {
        match query.filter(|q| !q.is_empty()) {
            Some(q) => format!("{}?{q}", self.base),
            None => self.base.clone(),
        }
    }

    fn mac_matches(&self, url: &str, params: &Params<'_>, tag: &[u8]) -> bool {
        let candidates = [tag.to_vec()];
        [url.to_owned(), toggle_port(url)].iter().any(|u| {
            let mut parts: Vec<&[u8]> = vec![u.as_bytes()];
            params
                .iter()
                .for_each(|(k, v)| parts.extend([k.as_bytes(), v.as_bytes()]));
            self.keys
                .matching(Algorithm::Sha1, &parts, &candidates)
                .is_some()
        })
    }
}

impl Scheme for Twilio {
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError> {
        let text = super::header(req.headers, SIGNATURE.as_str())?;
        let tag = BASE64
            .decode(text.ok_or(VerifyError::MissingSignature)?)
            .map_err(|_| VerifyError::MalformedSignature)?;
        let url = self.url(req.query);
        let body_hash = req.query.and_then(body_sha256);
        let params = match body_hash {
            Some(_) => Vec::new(),
            None => form_params(req.body)?,
        };
        if tag.is_empty() || !self.mac_matches(&url, &params, &tag) {
            return Err(VerifyError::SignatureMismatch);
        }
        if body_hash.is_some_and(|h| h != hex::encode(Sha256::digest(req.body))) {
            return Err(VerifyError::SignatureMismatch);
        }
        let id = Field::Header(IDEMPOTENCY).read(req.headers, &Json::new(req.body));
        let id = id.unwrap_or_else(|| super::body_digest_id(req.body));
        Ok(Verified::new(id, None, None))
    }

    /// Signs a form body as Twilio would post it to the configured `public_url`.
    fn sign(&self, body: &[u8], id: &str, _timestamp: i64) -> HeaderMap {
        let url = self.url(self.query.as_deref());
        let params = form_params(body).unwrap_or_default();
        let mut parts: Vec<&[u8]> = vec![url.as_bytes()];
        params
            .iter()
            .for_each(|(k, v)| parts.extend([k.as_bytes(), v.as_bytes()]));
        let tag = self.keys.sign_with(Algorithm::Sha1, &parts);
        let mut headers = HeaderMap::new();
        super::put(&mut headers, SIGNATURE, BASE64.encode(tag));
        super::put(&mut headers, IDEMPOTENCY, id.to_owned());
        headers
    }
}

/// The `bodySHA256` query parameter, when Twilio sent a JSON body.
fn body_sha256(query: &str) -> Option<String> {
    let mut pairs = form_urlencoded::parse(query.as_bytes());
    pairs
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
}

/// Decoded form parameters, sorted by name then value, duplicates once (as Twilio's Python SDK
/// does). Every piece must be `name=value`: Twilio sends no other shape, and refusing it removes
/// one way (`a&b` against `a=b`) for two bodies to share a signed string.
pub(crate) fn form_params(body: &[u8]) -> Result<Params<'_>, VerifyError> {
    let pieces = body.split(|b| *b == b'&').filter(|p| !p.is_empty());
    if pieces.clone().any(|p| !p.contains(&b'=')) || pieces.count() > MAX_PARAMS {
        return Err(VerifyError::MalformedSignature);
    }
    let mut params: Vec<_> = form_urlencoded::parse(body).collect();
    params.sort();
    params.dedup();
    Ok(params)
}

/// The URL with its port removed when it has one, or the scheme's default added when not.
pub(crate) fn toggle_port(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.to_owned(),
        _ if scheme == "https" => format!("{authority}:443"),
        _ => format!("{authority}:80"),
    };
    format!("{scheme}://{host}{tail}")
}
