//! Why a delivery attempt failed, as a closed set of kinds: each knows whose fault it is and
//! whether the gateway tries again, and has a stable snake_case name for the delivery history,
//! the admin API, metrics labels and spans (so none of them carry a free string).

use std::error::Error as StdError;
use std::time::Duration;

use http::StatusCode;

/// What went wrong with one attempt. Names are stable: they are stored and exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ErrorKind {
    /// No connection could be opened: refused, unreachable, DNS failure.
    Connect,
    /// The TLS handshake failed (untrusted or expired certificate, no common protocol).
    Tls,
    /// No complete answer within the upstream's `timeout`.
    Timeout,
    /// The connection closed or reset after the request was sent, before an answer came.
    Closed,
    /// The upstream's answer was not valid HTTP.
    Protocol,
    /// A redirect (3xx): the gateway does not follow them.
    Redirect,
    /// A 4xx answer.
    Status4xx,
    /// A 5xx answer.
    Status5xx,
    /// An answer that is neither 2xx, 3xx, 4xx nor 5xx.
    StatusOther,
    /// A 2xx status came, but reading the body after it failed. The upstream took the event,
    /// so the attempt still counts as delivered; the kind keeps the broken answer on record.
    Body,
    /// The gateway's HTTP client refused to send the request.
    Request,
    /// Recorded by a version that kept only a text (or a kind this version does not know).
    #[default]
    Unknown,
}

/// Whose side a failure lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The upstream answered badly, too late, or with a certificate we refuse.
    Upstream,
    /// The path to the upstream: it could not be reached, or the connection broke.
    Network,
    /// The gateway itself.
    Gateway,
}

const ALL: [ErrorKind; 12] = [
    ErrorKind::Connect,
    ErrorKind::Tls,
    ErrorKind::Timeout,
    ErrorKind::Closed,
    ErrorKind::Protocol,
    ErrorKind::Redirect,
    ErrorKind::Status4xx,
    ErrorKind::Status5xx,
    ErrorKind::StatusOther,
    ErrorKind::Body,
    ErrorKind::Request,
    ErrorKind::Unknown,
];

impl ErrorKind {
    /// The stable snake_case name (history, admin JSON, the `kind` metrics label, spans).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Redirect => "redirect",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::StatusOther => "status_other",
            ErrorKind::Body => "body",
            ErrorKind::Request => "request",
            ErrorKind::Unknown => "unknown",
        }
    }

    /// The kind of a stored name; a name this version does not know is `Unknown`.
    pub fn from_name(name: &str) -> ErrorKind {
        ALL.into_iter()
            .find(|k| k.name() == name)
            .unwrap_or(ErrorKind::Unknown)
    }

    /// Whose fault it is; None when not known (`Unknown`).
    pub fn fault(self) -> Option<Fault> {
        match self {
            ErrorKind::Connect | ErrorKind::Closed | ErrorKind::Body => Some(Fault::Network),
            ErrorKind::Request => Some(Fault::Gateway),
            ErrorKind::Unknown => None,
            _ => Some(Fault::Upstream),
        }
    }

    /// Whether the route's retry schedule applies. Every kind may heal by itself (an upstream
    /// redeployed, a certificate renewed) except a request the client refuses to send, which
    /// fails the same way every time; a route's `no_retry_on` further stops given statuses.
    pub fn retried(self) -> bool {
        !matches!(self, ErrorKind::Request)
    }

    /// The kind of a non-2xx answer.
    pub fn of_status(status: StatusCode) -> ErrorKind {
        match status.as_u16() {
            300..=399 => ErrorKind::Redirect,
            400..=499 => ErrorKind::Status4xx,
            500..=599 => ErrorKind::Status5xx,
            _ => ErrorKind::StatusOther,
        }
    }

    /// The best guess for a record written before kinds were kept: its status, or its text.
    pub fn of_legacy(status: Option<u16>, error: &str) -> ErrorKind {
        if let Some(s) = status.and_then(|s| StatusCode::from_u16(s).ok()) {
            return ErrorKind::of_status(s);
        }
        if error.starts_with("timed out") {
            return ErrorKind::Timeout;
        }
        ErrorKind::Unknown
    }
}

impl Fault {
    /// The stable name: `upstream`, `network` or `gateway`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Upstream => "upstream",
            Fault::Network => "network",
            Fault::Gateway => "gateway",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed attempt: its kind and a human text for operators.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct Failure {
    /// What went wrong.
    pub kind: ErrorKind,
    /// What the client or upstream said (never a secret: no headers or bodies).
    pub detail: String,
}

impl Failure {
    /// A failure of `kind` described by `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }

    /// The whole exchange took longer than `limit`.
    pub fn timeout(limit: Duration) -> Failure {
        Failure::new(ErrorKind::Timeout, format!("timed out after {limit:?}"))
    }

    /// A non-2xx answer.
    pub fn status(status: StatusCode) -> Failure {
        Failure::new(
            ErrorKind::of_status(status),
            format!("upstream answered {status}"),
        )
    }

    /// The client could not get an answer: classified from the error's source chain.
    pub fn request(e: &hyper_util::client::legacy::Error) -> Failure {
        let detail = format!("request failed: {}", error_chain(e));
        let kind = if has_tls_error(e) {
            ErrorKind::Tls
        } else if e.is_connect() {
            ErrorKind::Connect
        } else {
            of_hyper(e)
        };
        Failure::new(kind, detail)
    }

    /// Reading the answer's body failed.
    pub fn body(e: &hyper::Error) -> Failure {
        Failure::new(
            ErrorKind::Body,
            format!("reading answer: {}", error_chain(e)),
        )
    }
}

/// The kind of a send failure past the connect step, from hyper's own error in the chain.
fn of_hyper(e: &hyper_util::client::legacy::Error) -> ErrorKind {
    let Some(h) = chain(e).find_map(|s| s.downcast_ref::<hyper::Error>()) else {
        // hyper-util's own `Canceled`/`ChannelClosed`: the connection went away under it.
        return ErrorKind::Closed;
    };
    if h.is_parse() || h.is_parse_status() {
        ErrorKind::Protocol
    } else if h.is_user() {
        ErrorKind::Request
    } else {
        ErrorKind::Closed
    }
}

/// Whether a rustls error sits anywhere in the chain. `io::Error::source` skips the error it
/// wraps, so each io::Error is opened with `get_ref`.
fn has_tls_error(e: &(dyn StdError + 'static)) -> bool {
    chain(e).any(|s| {
        s.is::<rustls::Error>()
            || s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>() || has_tls_error(inner))
    })
}

fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |s: &&'a (dyn StdError + 'static)| (*s).source())
}

/// `a: b: c` from an error and its sources (hyper's top-level messages alone say little).
fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let parts: Vec<String> = chain(e).map(|s| s.to_string()).collect();
    parts.join(": ")
}

#[cfg(test)]
mod live_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_unknown() {
        for k in ALL {
            assert_eq!(ErrorKind::from_name(k.name()), k);
        }
        assert_eq!(ErrorKind::from_name("quantum"), ErrorKind::Unknown);
    }

    #[test]
    fn statuses_have_their_class() {
        let of = |s: u16| ErrorKind::of_status(StatusCode::from_u16(s).unwrap());
        assert_eq!(of(404), ErrorKind::Status4xx);
        assert_eq!(of(503), ErrorKind::Status5xx);
        assert_eq!(of(302), ErrorKind::Redirect);
        assert_eq!(of(101), ErrorKind::StatusOther);
        assert_eq!(of(503).fault(), Some(Fault::Upstream));
    }

    #[test]
    fn legacy_records_are_classified_by_status_or_text() {
        let legacy = ErrorKind::of_legacy;
        assert_eq!(
            legacy(Some(503), "upstream answered 503"),
            ErrorKind::Status5xx
        );
        assert_eq!(legacy(None, "timed out after 30s"), ErrorKind::Timeout);
        assert_eq!(legacy(None, "request failed: x"), ErrorKind::Unknown);
    }

    #[test]
    fn faults_and_retries() {
        assert_eq!(ErrorKind::Connect.fault(), Some(Fault::Network));
        assert_eq!(ErrorKind::Tls.fault(), Some(Fault::Upstream));
        assert_eq!(ErrorKind::Request.fault(), Some(Fault::Gateway));
        assert_eq!(ErrorKind::Unknown.fault(), None);
        assert!(ErrorKind::Status5xx.retried() && !ErrorKind::Request.retried());
    }
}
