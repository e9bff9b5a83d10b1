//! Certificates from an ACME server (RFC 8555) for `server.tls.acme`, validated by TLS-ALPN-01
//! (RFC 8737) on the ingress listener itself, so no port 80 is needed.
//!
//! At start a stored certificate for the same domains is put in force without asking the ACME
//! server. One task (owned by `gateway::run`) then orders a certificate when there is none, and
//! renews when less than a third of its lifetime (at most 30 days) remains; the new one goes into
//! the resolver, so new handshakes get it and open connections keep theirs. A failure is logged
//! with the server's problem document and retried with exponential backoff, capped, for as long
//! as it takes: a down ACME server leaves the gateway up (refusing TLS until a first certificate
//! exists, which `/readyz` reports). The protocol itself is `instant-acme`'s: a small, maintained
//! RFC 8555 client over our hyper/rustls stack, with no second TLS library.

mod order;
mod resolver;
mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{Account, AuthorizationStatus, OrderStatus};
use tokio::sync::watch;

use crate::config::acme::AcmeConfig;
use crate::metrics::Metrics;
pub use resolver::{ACME_TLS_ALPN, CertResolver};
use store::{Issued, Store};

/// Retries start here and double up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// Public CAs limit failed validations per hour; retrying faster buys nothing.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// An order that takes longer is abandoned and retried (a hung server must not stall renewal).
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);
/// Renewal is re-planned at least this often, so a jump of the wall clock is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// Renewal starts at most this long before expiry (a third of a 90-day lifetime).
const MAX_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why an order failed; the problem document is the ACME server's own words.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The ACME server answered with a problem document (RFC 8555 §6.7).
    #[error("ACME server problem {kind}: {detail}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Problem {
        kind: String,
        detail: String,
        status: Option<u16>,
    },
    /// The ACME server could not be reached, or answered something unexpected.
    #[error("ACME request failed: {0}")]
    Protocol(instant_acme::Error),
    /// The server offers no TLS-ALPN-01 challenge for a domain (the only one we answer).
    #[error("{0}: the ACME server offers no tls-alpn-01 challenge")]
    NoTlsAlpn(String),
    /// An authorization ended in a state other than valid.
    #[error("{domain}: authorization {status:?}")]
    Authorization {
        domain: String,
        status: AuthorizationStatus,
    },
    /// The order did not become ready (validation failed).
    #[error("order ended {0:?}")]
    Order(OrderStatus),
    /// The whole order took longer than `ORDER_TIMEOUT`.
    #[error("order not done within {0:?}")]
    Timeout(Duration),
    /// The issued chain or its key is unusable.
    #[error("unusable certificate: {0}")]
    BadCertificate(String),
    /// A key, CSR or challenge certificate could not be made.
    #[error("cannot make a key or certificate: {0}")]
    Crypto(String),
    /// `<storage.path>/acme/` could not be written.
    #[error("{path}: {source}")]
    Store {
        path: String,
        source: std::io::Error,
    },
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        match e {
            instant_acme::Error::Api(p) => problem(&p),
            other => AcmeError::Protocol(other),
        }
    }
}

fn problem(p: &instant_acme::Problem) -> AcmeError {
    let mut detail = p.detail.clone().unwrap_or_default();
    for sub in &p.subproblems {
        let what = sub.detail.as_deref().unwrap_or("");
        detail.push_str(&format!(
            "; {}: {what}",
            sub.r#type.as_deref().unwrap_or("?")
        ));
    }
    AcmeError::Problem {
        kind: p.r#type.clone().unwrap_or_else(|| "about:blank".into()),
        detail,
        status: p.status,
    }
}

impl From<rcgen::Error> for AcmeError {
    fn from(e: rcgen::Error) -> Self {
        AcmeError::Crypto(e.to_string())
    }
}

/// The ACME side of the ingress listener: the resolver it serves from and the task that fills it.
pub struct Acme {
    config: AcmeConfig,
    resolver: Arc<CertResolver>,
    store: Store,
    /// The certificate in force: when it was issued for and until when.
    validity: Option<(i64, i64)>,
    account: Option<Account>,
}

impl Acme {
    /// Puts a stored certificate for exactly these domains in force, if one is still valid.
    pub fn new(config: &AcmeConfig) -> Acme {
        let store = Store::new(config.dir.clone());
        let resolver = Arc::new(CertResolver::default());
        let mut acme = Acme {
            config: config.clone(),
            resolver,
            store,
            validity: None,
            account: None,
        };
        match acme.store.issued() {
            Some(i) if !i.covers_exactly(&config.domains) => {
                tracing::info!(stored = ?i.names, "stored ACME certificate is for other domains; ordering one")
            }
            Some(i) if i.not_after <= unix_now() => {
                tracing::info!("stored ACME certificate has expired; ordering one")
            }
            Some(i) => {
                tracing::info!(domains = ?i.names, not_after = i.not_after, "using the stored ACME certificate");
                acme.install(i);
            }
            None => {}
        }
        acme
    }

    /// What the ingress listener (and `/readyz`) read.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// The ingress TLS config: certificates from the resolver, ALPN with `acme-tls/1` last so
    /// that only a validation server, which offers nothing else, negotiates it.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
        Ok(Arc::new(config))
    }

    /// Orders and renews until shutdown.
    pub fn spawn(
        self,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        if let Some((_, not_after)) = self.validity {
            metrics.set_cert_not_after(not_after);
        }
        tokio::spawn(self.run(metrics, shutdown))
    }

    async fn run(mut self, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let wait = self.until_due();
            if !wait.is_zero() {
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(wait.min(MAX_SLEEP)) => continue,
                }
            }
            let attempt = tokio::time::timeout(ORDER_TIMEOUT, self.obtain());
            let outcome = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                r = attempt => r.unwrap_or(Err(AcmeError::Timeout(ORDER_TIMEOUT))),
            };
            match outcome {
                Ok(issued) => {
                    metrics.set_cert_not_after(issued.not_after);
                    tracing::info!(domains = ?issued.names, not_after = issued.not_after, "ACME certificate installed");
                    self.install(issued);
                    backoff = FIRST_BACKOFF;
                    continue;
                }
                Err(e) => self.log_failure(&e, backoff),
            }
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn log_failure(&mut self, e: &AcmeError, retry_in: Duration) {
        let (kind, detail) = match e {
            AcmeError::Problem { kind, detail, .. } => (kind.as_str(), detail.as_str()),
            _ => ("", ""),
        };
        if kind.ends_with(":accountDoesNotExist") {
            // The server forgot the account (a reset staging or test CA): make a new one.
            self.store.forget_account();
        }
        if matches!(e, AcmeError::Protocol(_) | AcmeError::Problem { .. }) {
            // The next attempt fetches the directory and the account afresh.
            self.account = None;
        }
        if self.resolver.has_certificate() {
            tracing::warn!(error = %e, problem_type = kind, problem_detail = detail, ?retry_in, "ACME renewal failed; the current certificate stays");
        } else {
            tracing::error!(error = %e, problem_type = kind, problem_detail = detail, ?retry_in, "ACME order failed; TLS handshakes are refused until a certificate exists");
        }
    }

    fn install(&mut self, issued: Issued) {
        self.validity = Some((issued.not_before, issued.not_after));
        self.resolver.install(issued.key, issued.not_after);
    }

    /// Zero when there is no certificate or it is due for renewal.
    fn until_due(&self) -> Duration {
        let Some((not_before, not_after)) = self.validity else {
            return Duration::ZERO;
        };
        let lifetime = Duration::from_secs(not_after.saturating_sub(not_before).max(0) as u64);
        let early = (lifetime / 3).min(MAX_RENEW_BEFORE);
        let due = not_after - early.as_secs() as i64;
        Duration::from_secs(due.saturating_sub(unix_now()).max(0) as u64)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
