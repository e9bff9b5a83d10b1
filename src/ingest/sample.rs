//! The test event of `hookgate send-test` and of the console's "Send test" button: a sample body
//! signed with the route's own scheme, so it passes verification like a provider's event would.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::Full;

use crate::config::Route;

/// A signed test event for one route.
pub struct TestEvent {
    /// `evt_test_` and 16 random hex digits, so two tests are never duplicates of each other.
    pub id: String,
    pub body: Bytes,
    /// The scheme's signature headers and `Content-Type: application/json`.
    pub headers: HeaderMap,
}

impl TestEvent {
    /// Signs `body` (else a small JSON sample) for `route` at `now`.
    pub fn new(route: &Route, body: Option<Bytes>, now: SystemTime) -> TestEvent {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let id = format!("evt_test_{:016x}", rand::random::<u64>());
        let body = body.unwrap_or_else(|| sample_body(&id, secs));
        let mut headers = route.scheme.sign(&body, &id, secs);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        TestEvent { id, body, headers }
    }

    /// A POST of the event to `uri` (the route's path, or a full URL for the CLI).
    pub fn request(&self, uri: &str) -> Result<http::Request<Full<Bytes>>, http::Error> {
        let mut req = http::Request::post(uri);
        if let Some(h) = req.headers_mut() {
            h.extend(self.headers.clone());
        }
        req.body(Full::new(self.body.clone()))
    }
}

fn sample_body(id: &str, now: i64) -> Bytes {
    let v = serde_json::json!({
        "id": id,
        "type": "hookgate.test",
        "created": now,
        "data": { "object": { "hello": "world" } },
    });
    Bytes::from(v.to_string())
}
