//! rustls server config: TLS 1.2+ with ALPN `h2` / `http/1.1`, and the development self-signed pair.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::config::tls::ClientCa;

/// The client certificate a connection presented (end entity, verified against
/// `server.client_ca` during the handshake); put in each request's extensions for the
/// routes that restrict by subject or SAN.
#[derive(Clone, Debug)]
pub struct PeerCert(pub Arc<CertificateDer<'static>>);

/// Why TLS could not be set up; names the file, never prints key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing, malformed or holds no certificate.
    #[error("{path}: {problem}")]
    Cert { path: String, problem: String },
    /// The key file is missing or malformed.
    #[error("{path}: {problem}")]
    Key { path: String, problem: String },
    /// rustls refused the pair (e.g. key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The development pair could not be written.
    #[error("cannot create development certificate: {0}")]
    DevCert(String),
}

/// The server config in force, swapped whole on reload; each new connection takes the current one,
/// connections already open keep theirs. `arc-swap` makes that read lock-free on the accept path.
pub struct Reloadable(arc_swap::ArcSwap<rustls::ServerConfig>);

impl Reloadable {
    /// Starts with `config`.
    pub fn new(config: Arc<rustls::ServerConfig>) -> Reloadable {
        Reloadable(arc_swap::ArcSwap::new(config))
    }

    /// An acceptor for the current certificate.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.0.load_full())
    }

    /// Puts a new certificate in force for the next connections.
    pub fn replace(&self, config: Arc<rustls::ServerConfig>) {
        self.0.store(config);
    }
}

/// The acceptor config compiled at load; with a development pair still to be made, creates it
/// first and compiles it now.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    if let Some(compiled) = &cfg.compiled {
        return Ok(compiled.clone());
    }
    if cfg.dev_self_signed && !cfg.cert.exists() && !cfg.key.exists() {
        write_dev_pair(&cfg.cert, &cfg.key)?;
    }
    load(&cfg.cert, &cfg.key, cfg.client_ca.as_ref())
}

/// Parses both PEM files and checks that the key is the certificate's (rustls `keys_match`).
pub fn load_pair(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    load(cert, key, None)
}

/// `load_pair`, requiring client certificates signed by `client_ca` when one is given.
pub fn load(
    cert: &Path,
    key: &Path,
    client_ca: Option<&ClientCa>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = crate::config::tls::pem_certs(cert).map_err(|problem| TlsError::Cert {
        path: cert.display().to_string(),
        problem,
    })?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        problem: crate::config::tls::pem_problem(e),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(ca.verifier.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Writes a self-signed pair for `localhost`/`127.0.0.1`, key readable by the owner only.
fn write_dev_pair(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let pair =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::DevCert(e.to_string()))?;
    let io = |e: std::io::Error| TlsError::DevCert(e.to_string());
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    if let Some(dir) = key_path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    write_private(key_path, pair.signing_key.serialize_pem().as_bytes()).map_err(io)?;
    std::fs::write(cert_path, pair.cert.pem()).map_err(io)?;
    tracing::warn!(
        cert = %cert_path.display(),
        "created a self-signed DEVELOPMENT certificate; senders will not trust it, use a real one in production"
    );
    Ok(())
}

/// Creates `path` readable by the owner only, and fsyncs it.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
