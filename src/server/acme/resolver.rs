//! The ingress listener's certificate choice under ACME: a ClientHello offering ALPN `acme-tls/1`
//! gets the TLS-ALPN-01 challenge certificate for its SNI (RFC 8737), every other one the issued
//! certificate in force. Without an issued certificate yet the handshake is refused (no
//! certificate resolved → a `handshake_failure` alert), which is a clean "not yet" for clients.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol ID of TLS-ALPN-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The issued certificate in force and the challenge certificates of the validations under way.
#[derive(Debug, Default)]
pub struct CertResolver {
    issued: ArcSwapOption<CertifiedKey>,
    /// The issued certificate's notAfter, Unix seconds.
    not_after: AtomicI64,
    /// SNI (lower case) → challenge certificate; entries live while an order validates.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    /// Puts `cert` (valid until `not_after`, Unix seconds) in force for the next handshakes;
    /// open connections keep theirs.
    pub fn install(&self, cert: Arc<CertifiedKey>, not_after: i64) {
        self.not_after.store(not_after, Ordering::Relaxed);
        self.issued.store(Some(cert));
    }

    /// Whether an issued certificate is in force (else handshakes are refused).
    pub fn has_certificate(&self) -> bool {
        self.issued.load().is_some()
    }

    /// For `/readyz`: whether senders can complete a handshake they trust, else why not.
    pub fn readiness(&self, now_unix: i64) -> Result<(), &'static str> {
        match self.has_certificate() {
            false => Err("no_certificate"),
            true if self.not_after.load(Ordering::Relaxed) <= now_unix => {
                Err("certificate_expired")
            }
            true => Ok(()),
        }
    }

    /// Answers TLS-ALPN-01 for `domain` with `cert` until `clear_challenge`.
    pub fn set_challenge(&self, domain: &str, cert: Arc<CertifiedKey>) {
        let mut map = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(domain.to_ascii_lowercase(), cert);
    }

    /// Stops answering TLS-ALPN-01 for `domain`.
    pub fn clear_challenge(&self, domain: &str) {
        let mut map = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&domain.to_ascii_lowercase());
    }

    fn challenge(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&sni.to_ascii_lowercase()).cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // A validation server, never a webhook sender: only the challenge answers it.
            return self.challenge(hello.server_name()?);
        }
        self.issued.load_full()
    }
}
