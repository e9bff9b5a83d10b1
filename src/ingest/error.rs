//! Every way an incoming webhook is refused, and the one place that maps them to HTTP answers.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use hyper::Response;

use crate::verify::VerifyError;

/// A refused request: the status and stable reason code the sender sees.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No route has this path (and host).
    #[error("no route")]
    NotFound,
    /// Routes only accept POST.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The client IP is outside the route's allow-list.
    #[error("source IP not allowed")]
    Forbidden,
    /// The client certificate's SANs and subject are outside the route's `client_cert`.
    #[error("client certificate not allowed")]
    ClientCertForbidden,
    /// The route or client IP is over its rate.
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// Declared or streamed body over `max_body`.
    #[error("payload too large")]
    TooLarge,
    /// The body did not arrive within `body_timeout`.
    #[error("body timeout")]
    BodyTimeout,
    /// The client broke off while sending the body.
    #[error("body read failed")]
    BodyRead,
    /// Signature, timestamp or id check failed.
    #[error("verification failed: {}", .0.code())]
    Verify(#[from] VerifyError),
    /// The same event id is being accepted right now on another connection or replica.
    #[error("event in flight")]
    InFlight,
    /// Bodies in flight already fill `server.max_inflight_body`: the sender must retry.
    #[error("overloaded")]
    Overloaded,
    /// The durable enqueue failed: the sender must retry.
    #[error("queue unavailable")]
    Unavailable,
}

impl IngestError {
    /// HTTP status, as README.md's request table lists it.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::NotFound => StatusCode::NOT_FOUND,
            IngestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::Forbidden | IngestError::ClientCertForbidden => StatusCode::FORBIDDEN,
            IngestError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            IngestError::BodyRead => StatusCode::BAD_REQUEST,
            IngestError::Verify(_) => StatusCode::UNAUTHORIZED,
            IngestError::InFlight => StatusCode::CONFLICT,
            IngestError::Overloaded | IngestError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable reason code for the JSON body, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::NotFound => "no_route",
            IngestError::MethodNotAllowed => "method_not_allowed",
            IngestError::Forbidden => "ip_not_allowed",
            IngestError::ClientCertForbidden => "client_cert_not_allowed",
            IngestError::RateLimited { .. } => "rate_limited",
            IngestError::TooLarge => "payload_too_large",
            IngestError::BodyTimeout => "body_timeout",
            IngestError::BodyRead => "body_read_failed",
            IngestError::Verify(e) => e.code(),
            IngestError::InFlight => "in_flight",
            IngestError::Overloaded => "overloaded",
            IngestError::Unavailable => "queue_unavailable",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            IngestError::RateLimited { retry_after } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            IngestError::InFlight | IngestError::Overloaded => Some(1),
            IngestError::Unavailable => Some(5),
            _ => None,
        }
    }

    /// `{"error":"<code>"}` with the status and, where the sender should come back, `Retry-After`.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = json(self.status(), format!(r#"{{"error":"{}"}}"#, self.code()));
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, IngestError::MethodNotAllowed) {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        resp
    }
}

/// A small JSON answer.
pub fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
