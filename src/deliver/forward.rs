//! One delivery attempt: the request the upstream receives (README.md, "What happens to a request") and how its answer is judged.

use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::error::Failure;
use crate::queue::Job;
use crate::verify::Scheme;

/// How much of an upstream's answer is kept for the delivery record.
pub const ANSWER_CAPTURE: usize = 4096;

/// Answers bigger than this are not read to the end (the connection is dropped instead).
const ANSWER_DRAIN_MAX: usize = 1 << 20;

/// Pooled HTTP/1.1 + h2 client for http and https upstreams.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the shared upstream client (webpki roots; ALPN picks h2 where the upstream offers it).
pub fn client() -> HttpClient {
    let tls = crate::config::tls::client_config(&[]).expect("ring supports the default versions");
    client_with_tls(tls)
}

/// A client with its own TLS settings (an upstream's CA bundle, compiled at load; `send-test`).
pub fn client_with_tls(tls: rustls::ClientConfig) -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .build();
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Option<StatusCode>,
    pub latency: Duration,
    /// First `ANSWER_CAPTURE` bytes of the answer body.
    pub answer: Bytes,
    /// Why it failed, when it did.
    pub error: Option<Failure>,
    pub retry_after: Option<Duration>,
}

impl Attempt {
    /// Only 2xx counts as delivered.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| s.is_success())
    }
}

/// The request for `job`'s next attempt.
/// The request for `job`'s next attempt; `now` stamps a re-signature.
pub fn request(
    url: &http::Uri,
    job: &Job,
    resign: Option<&dyn Scheme>,
    now: SystemTime,
) -> Request<Full<Bytes>> {
    let ev = &job.event;
    let mut headers = HeaderMap::with_capacity(ev.headers.len() + 6);
    // Ingress strips a sender's `X-Hookgate-*` already; events queued by an older version may
    // still carry them, and only the gateway may speak in that namespace.
    let senders = ev.headers.iter().filter(|(n, _)| !is_gateway_header(n));
    for (name, value) in senders {
        // `from_maybe_shared` checks the stored bytes and keeps them, where `from_bytes` copies.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_maybe_shared(value.clone()),
        ) {
            headers.append(n, v);
        }
    }
    let received = SystemTime::UNIX_EPOCH + Duration::from_millis(ev.received_at_ms);
    set(&mut headers, "x-hookgate-route", &ev.route);
    set(
        &mut headers,
        "x-hookgate-attempt",
        &(job.attempts + 1).to_string(),
    );
    set(
        &mut headers,
        "x-hookgate-received-at",
        &humantime::format_rfc3339_millis(received).to_string(),
    );
    if ev.dedup_unavailable {
        set(&mut headers, "x-hookgate-dedup", "unavailable");
    }
    if let Some(scheme) = resign {
        let ts = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Replace, not append: a Standard Webhooks provider's own headers must not survive re-signing.
        for (n, v) in scheme.sign(&ev.body, &ev.id, ts as i64).iter() {
            headers.insert(n.clone(), v.clone());
        }
    }
    let mut req = Request::new(Full::new(ev.body.clone()));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = url.clone();
    *req.headers_mut() = headers;
    req
}

fn is_gateway_header(name: &str) -> bool {
    name.len() >= 11 && name[..11].eq_ignore_ascii_case("x-hookgate-")
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Sends `req`, judging by status; the whole exchange (answer body included) is bounded by `timeout`.
pub async fn send(client: &HttpClient, req: Request<Full<Bytes>>, timeout: Duration) -> Attempt {
    let started = Instant::now();
    let mut a = Attempt {
        status: None,
        latency: Duration::ZERO,
        answer: Bytes::new(),
        error: None,
        retry_after: None,
    };
    match tokio::time::timeout(timeout, exchange(client, req, &mut a)).await {
        Err(_) => a.error = Some(Failure::timeout(timeout)),
        // A non-2xx status says more than a broken body after it.
        Ok(_) if a.status.is_some_and(|s| !s.is_success()) => {
            a.error = a.status.map(Failure::status)
        }
        Ok(Err(e)) => a.error = Some(e),
        Ok(Ok(())) => {}
    }
    a.latency = started.elapsed();
    a
}

async fn exchange(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
    a: &mut Attempt,
) -> Result<(), Failure> {
    let resp = client
        .request(req)
        .await
        .map_err(|e| Failure::request(&e))?;
    a.status = Some(resp.status());
    a.retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(super::retry::parse_retry_after);
    let mut body = resp.into_body();
    let mut kept = BytesMut::new();
    let mut seen = 0usize;
    while seen <= ANSWER_DRAIN_MAX {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| Failure::body(&e))?;
        if let Some(data) = frame.data_ref() {
            seen += data.len();
            let room = ANSWER_CAPTURE.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    a.answer = kept.freeze();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::queue::Event;

    fn job(id: &str, body: &'static [u8]) -> Job {
        let headers = vec![
            (
                "content-type".into(),
                Bytes::from_static(b"application/json"),
            ),
            (
                "webhook-signature".into(),
                Bytes::from_static(b"v1,provider-own"),
            ),
        ];
        let event = Event {
            route: "r".into(),
            id: id.into(),
            received_at_ms: 1_614_265_330_000,
            headers,
            body: Bytes::from_static(body),
            dedup_unavailable: true,
            event_type: None,
            upstream: None,
            traceparent: None,
            order_key: None,
        };
        Job {
            seq: 1,
            event,
            attempts: 2,
            last_error: None,
        }
    }

    /// Published Standard Webhooks / Svix test vector (svix docs "Verifying payloads manually";
    /// standard-webhooks libraries' tests): secret, msg id, timestamp, payload and signature.
    #[test]
    fn resigning_matches_the_published_standard_webhooks_vector() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let opts = Default::default();
        let scheme =
            crate::verify::build("standard", vec![secret], Duration::from_secs(300), &opts)
                .unwrap();
        let j = job("msg_p5jXN8AQM9LWM0D4loKWxJek", br#"{"test": 2432232314}"#);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_265_330);
        let req = request(
            &"http://up/x".parse().unwrap(),
            &j,
            Some(scheme.as_ref()),
            at,
        );
        let h = req.headers();
        assert_eq!(h["webhook-id"], "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(h["webhook-timestamp"], "1614265330");
        assert_eq!(
            h["webhook-signature"],
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            h.get_all("webhook-signature").iter().count(),
            1,
            "the provider's one is replaced"
        );
    }

    #[test]
    fn gateway_headers_are_added() {
        let req = request(
            &"http://up/x".parse().unwrap(),
            &job("e", b"{}"),
            None,
            SystemTime::now(),
        );
        let h = req.headers();
        assert_eq!(h["x-hookgate-route"], "r");
        assert_eq!(h["x-hookgate-attempt"], "3");
        assert_eq!(h["x-hookgate-received-at"], "2021-02-25T15:02:10.000Z");
        assert_eq!(h["x-hookgate-dedup"], "unavailable");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(req.method(), http::Method::POST);
    }

    #[test]
    fn stored_sender_x_hookgate_headers_are_not_forwarded() {
        let mut j = job("e", b"{}");
        j.event.dedup_unavailable = false;
        j.event.headers.push((
            "X-Hookgate-Dedup".into(),
            Bytes::from_static(b"unavailable"),
        ));
        j.event
            .headers
            .push(("x-hookgate-extra".into(), Bytes::from_static(b"1")));
        let req = request(&"http://up/x".parse().unwrap(), &j, None, SystemTime::now());
        let h = req.headers();
        assert!(h.get("x-hookgate-dedup").is_none(), "{h:?}");
        assert!(h.get("x-hookgate-extra").is_none(), "{h:?}");
        assert_eq!(h["x-hookgate-route"], "r");
    }
}
