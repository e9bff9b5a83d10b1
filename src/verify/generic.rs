//! A declarative HMAC scheme: the generic `hmac` scheme, and the named schemes that differ only
//! in header, prefix, encoding, hash and signed string (GitHub, Shopify, Slack, Zoom, …).

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use super::template::{Encoding, Part, Template, Unit};
use super::text::{Field, Json};
use super::{Algorithm, BuildError, Keys, Scheme, Unverified, Verified, VerifyError};
use crate::config::Secret;

/// Everything that tells one HMAC scheme from another.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Header carrying the tag.
    pub signature: HeaderName,
    /// Text before the tag in that header (`sha256=`, `v0=`), possibly empty.
    pub prefix: String,
    /// How the tag is written.
    pub encoding: Encoding,
    /// The hash under the HMAC.
    pub algorithm: Algorithm,
    /// The signed string.
    pub template: Template,
    /// Where the timestamp is, and its unit; `None` when the sender signs none.
    pub timestamp: Option<(Field, Unit)>,
    /// Where the event id is; `None` (or absent on a request) means the body's SHA-256.
    pub id: Option<Field>,
    /// Where the event type is, for fan-out filters.
    pub event_type: Option<Field>,
    /// The URL the sender was given (`{url}`), from the route's `public_url`.
    pub url: Option<String>,
}

/// A scheme run from a [`Spec`].
#[derive(Debug)]
pub(crate) struct Generic {
    spec: Spec,
    keys: Keys,
    tolerance: Duration,
}

impl Generic {
    /// Refuses specs whose signed string needs something the spec cannot supply.
    pub(crate) fn new(spec: Spec, keys: Keys, tolerance: Duration) -> Result<Self, BuildError> {
        validate(&spec)?;
        Ok(Generic {
            spec,
            keys,
            tolerance,
        })
    }

    /// Verifies and also returns the key that matched (a handshake answer is made with it).
    pub(crate) fn check(&self, req: &Unverified<'_>) -> Result<(Verified, &Secret), VerifyError> {
        let tag = self.tag(req.headers)?;
        let ts_text = self.signed_field(req.headers, Part::Timestamp)?;
        let id_text = self.signed_field(req.headers, Part::Id)?;
        let signed_ts = ts_text.map(super::parse_timestamp).transpose()?;
        let parts = self.parts(req.body, ts_text, id_text);
        let key = self.keys.matching(self.spec.algorithm, &parts, &[tag]);
        let key = key.ok_or(VerifyError::SignatureMismatch)?;
        let json = Json::new(req.body);
        let ts = self.timestamp(signed_ts, req.headers, &json)?;
        if let Some(ts) = ts {
            super::check_window(ts, req.now, self.tolerance)?;
        }
        let id = id_text.map(str::to_owned);
        let id = id.or_else(|| self.spec.id.as_ref()?.read(req.headers, &json));
        let id = id.unwrap_or_else(|| super::body_digest_id(req.body));
        let event_type = self.spec.event_type.as_ref();
        let event_type = event_type.and_then(|f| f.read(req.headers, &json));
        Ok((Verified::new(id, ts, event_type), key))
    }

    /// The decoded tag from the signature header.
    fn tag(&self, headers: &HeaderMap) -> Result<Vec<u8>, VerifyError> {
        let text = super::header(headers, self.spec.signature.as_str())?;
        let text = text.ok_or(VerifyError::MissingSignature)?;
        let encoded = text.strip_prefix(self.spec.prefix.as_str());
        let tag = self
            .spec
            .encoding
            .decode(encoded.ok_or(VerifyError::MalformedSignature)?)?;
        // A tag of the wrong length cannot match; calling it malformed tells a misconfigured
        // sender (wrong hash) from a wrong secret.
        if tag.len() != self.spec.algorithm.output_len() {
            return Err(VerifyError::MalformedSignature);
        }
        Ok(tag)
    }

    /// The header text of a field the template signs (validation made it a header field).
    fn signed_field<'h>(
        &self,
        headers: &'h HeaderMap,
        part: Part,
    ) -> Result<Option<&'h str>, VerifyError> {
        if !self.spec.template.uses(&part) {
            return Ok(None);
        }
        let (field, missing) = match part {
            Part::Id => (self.spec.id.as_ref(), VerifyError::MissingId),
            _ => (self.timestamp_field(), VerifyError::MissingTimestamp),
        };
        let Some(Field::Header(name)) = field else {
            return Err(missing);
        };
        let text = super::header(headers, name.as_str())?;
        text.filter(|t| !t.is_empty()).map(Some).ok_or(missing)
    }

    fn timestamp_field(&self) -> Option<&Field> {
        self.spec.timestamp.as_ref().map(|(field, _)| field)
    }

    fn parts<'a>(
        &'a self,
        body: &'a [u8],
        ts: Option<&'a str>,
        id: Option<&'a str>,
    ) -> Vec<&'a [u8]> {
        let url = self.spec.url.as_deref().unwrap_or_default();
        let part = |p: &'a Part| -> &'a [u8] {
            match p {
                Part::Literal(bytes) => bytes,
                Part::Id => id.unwrap_or_default().as_bytes(),
                Part::Timestamp => ts.unwrap_or_default().as_bytes(),
                Part::Body => body,
                Part::Url => url.as_bytes(),
            }
        };
        self.spec.template.0.iter().map(part).collect()
    }

    /// The signed timestamp in unix seconds: from the signed header text, or from the (now
    /// authenticated) body.
    fn timestamp(
        &self,
        signed: Option<i64>,
        headers: &HeaderMap,
        json: &Json<'_>,
    ) -> Result<Option<i64>, VerifyError> {
        let Some((field, unit)) = &self.spec.timestamp else {
            return Ok(None);
        };
        let value = match signed {
            Some(value) => value,
            None => {
                let text = field
                    .read(headers, json)
                    .ok_or(VerifyError::MissingTimestamp)?;
                super::parse_timestamp(&text)?
            }
        };
        Ok(Some(unit.to_seconds(value)))
    }
}

impl Scheme for Generic {
    fn verify(&self, req: &Unverified<'_>) -> Result<Verified, VerifyError> {
        self.check(req).map(|(verified, _)| verified)
    }

    /// A body-carried timestamp (Linear) cannot be added here: `body` is signed as given.
    fn sign(&self, body: &[u8], id: &str, timestamp: i64) -> HeaderMap {
        let unit = self
            .spec
            .timestamp
            .as_ref()
            .map_or(Unit::Seconds, |(_, u)| *u);
        let ts = unit.of_seconds(timestamp).to_string();
        let parts = self.parts(body, Some(&ts), Some(id));
        let tag = self.keys.sign_with(self.spec.algorithm, &parts);
        let mut headers = HeaderMap::new();
        let value = format!("{}{}", self.spec.prefix, self.spec.encoding.encode(&tag));
        super::put(&mut headers, self.spec.signature.clone(), value);
        if let Some(Field::Header(name)) = self.timestamp_field() {
            super::put(&mut headers, name.clone(), ts);
        }
        if let Some(Field::Header(name)) = &self.spec.id {
            super::put(&mut headers, name.clone(), id.to_owned());
        }
        headers
    }
}

/// The signed string may only name what the spec can supply, and a timestamp header that is
/// not signed would be a replay check anybody can defeat.
fn validate(spec: &Spec) -> Result<(), BuildError> {
    let t = &spec.template;
    if t.uses(&Part::Url) && spec.url.is_none() {
        return Err(BuildError::option(
            "public_url",
            "required: the signed string contains the URL the sender was given",
        ));
    }
    let ts_header = matches!(spec.timestamp, Some((Field::Header(_), _)));
    if t.uses(&Part::Timestamp) != ts_header {
        return Err(BuildError::option(
            "hmac.template",
            "{timestamp} must appear exactly when a timestamp header is set (an unsigned timestamp proves nothing)",
        ));
    }
    if t.uses(&Part::Id) && !matches!(spec.id, Some(Field::Header(_))) {
        return Err(BuildError::option(
            "hmac.template",
            "{id} needs an id header (hmac.id_header)",
        ));
    }
    Ok(())
}
