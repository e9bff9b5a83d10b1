//! TLS material compiled at load: the server's certificate pair, the client CA bundle (mTLS) and
//! the upstreams' CA bundles, so `hookgate check` refuses a file that would otherwise fail after
//! binding, or be skipped silently at delivery time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::acme::AcmeConfig;
use super::raw::{RawAcme, RawTls};
use super::secret::readable_by_others;
use super::{ConfigError, Cx};
use crate::server::tls::{TlsError, load};

/// Certificate and key PEM files, and the rustls config built from them.
#[derive(Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Create a self-signed development pair when both files are missing.
    pub dev_self_signed: bool,
    /// `server.client_ca`: client certificates are required and verified against it.
    pub client_ca: Option<ClientCa>,
    /// The parsed and matched pair; `None` while the development pair is yet to be made
    /// (by `serve`, never by `check`), and with `acme`.
    pub compiled: Option<Arc<rustls::ServerConfig>>,
    /// `server.tls.acme`: certificates from an ACME server; `cert` and `key` are then where the
    /// issued pair is kept (`<storage.path>/acme/`).
    pub acme: Option<AcmeConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("dev_self_signed", &self.dev_self_signed)
            .field("client_ca", &self.client_ca.as_ref().map(|c| &c.path))
            .field("acme", &self.acme)
            .finish_non_exhaustive()
    }
}

/// `server.client_ca`, compiled: the bundle's roots in a webpki client verifier.
#[derive(Clone)]
pub struct ClientCa {
    /// Where the bundle was read from (for messages).
    pub path: PathBuf,
    /// Refuses, during the handshake, a client without a certificate chaining to the bundle.
    pub verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

/// An https upstream's own CA bundle, with the client config that trusts it.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Where the bundle was read from (for messages).
    pub ca: PathBuf,
    /// Public roots plus the bundle.
    pub client: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UpstreamTls({})", self.ca.display())
    }
}

pub(super) fn tls(
    cx: &mut Cx,
    raw: RawTls,
    client_ca: Option<&str>,
    data: PathBuf,
) -> Result<TlsConfig, ConfigError> {
    if let Some(acme) = raw.acme {
        return acme_tls(cx, acme, &raw.cert, &raw.key, client_ca, data);
    }
    let client_ca = client_ca
        .map(|p| self::client_ca(cx, cx.path(p)))
        .transpose()?;
    let (cert, key) = match (&raw.cert, &raw.key) {
        (Some(c), Some(k)) => (cx.path(c), cx.path(k)),
        (None, _) => return Err(cx.err("server.tls.cert", "required (or use server.tls.acme)")),
        (_, None) => return Err(cx.err("server.tls.key", "required (or use server.tls.acme)")),
    };
    let dev_pending = raw.dev_self_signed && !cert.exists() && !key.exists();
    let compiled = if dev_pending {
        let note = "both files missing: `serve` will create a self-signed development pair";
        cx.warn("server.tls", note);
        None
    } else {
        let loaded = load(&cert, &key, client_ca.as_ref());
        Some(loaded.map_err(|e| pair_err(cx, e, &cert, &key))?)
    };
    if compiled.is_some() && readable_by_others(&key) {
        cx.warn(
            "server.tls.key",
            format!(
                "{} is readable by group or others; chmod 600 it",
                key.display()
            ),
        );
    }
    Ok(TlsConfig {
        cert,
        key,
        dev_self_signed: raw.dev_self_signed,
        client_ca,
        compiled,
        acme: None,
    })
}

/// `server.tls.acme` stands alone: the pair is the ACME server's, kept under `storage.path`.
fn acme_tls(
    cx: &Cx,
    raw: RawAcme,
    cert: &Option<String>,
    key: &Option<String>,
    client_ca: Option<&str>,
    data: PathBuf,
) -> Result<TlsConfig, ConfigError> {
    if cert.is_some() || key.is_some() {
        let why = "cannot be combined with cert/key: the certificate comes from the ACME server";
        return Err(cx.err("server.tls.acme", why));
    }
    if client_ca.is_some() {
        let why = "cannot be combined with server.tls.acme: the ACME server validates the \
                   domain over TLS without a client certificate";
        return Err(cx.err("server.client_ca", why));
    }
    let acme = super::acme::acme(cx, raw, data)?;
    Ok(TlsConfig {
        cert: acme.dir.join("cert.pem"),
        key: acme.dir.join("key.pem"),
        dev_self_signed: false,
        client_ca: None,
        compiled: None,
        acme: Some(acme),
    })
}

/// Reads `server.client_ca`: at least one certificate, each usable as a trust anchor.
fn client_ca(cx: &Cx, path: PathBuf) -> Result<ClientCa, ConfigError> {
    let problem = |p: String| cx.err("server.client_ca", format!("{}: {p}", path.display()));
    let certs = pem_certs(&path).map_err(problem)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| match e {
            rustls::Error::InvalidCertificate(why) => {
                problem(format!("not a usable CA certificate ({why:?})"))
            }
            other => problem(other.to_string()),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .map_err(|e| problem(e.to_string()))?;
    Ok(ClientCa { path, verifier })
}

fn pair_err(cx: &Cx, e: TlsError, cert: &Path, key: &Path) -> ConfigError {
    let (cert, key) = (cert.display(), key.display());
    match e {
        TlsError::Cert { path, problem } => cx.err("server.tls.cert", format!("{path}: {problem}")),
        TlsError::Key { path, problem } => cx.err("server.tls.key", format!("{path}: {problem}")),
        TlsError::Rustls(rustls::Error::InvalidCertificate(why)) => cx.err(
            "server.tls.cert",
            format!("{cert}: not a usable certificate ({why:?})"),
        ),
        TlsError::Rustls(rustls::Error::InconsistentKeys(_)) => cx.err(
            "server.tls.key",
            format!("{key} does not match the certificate {cert}"),
        ),
        TlsError::Rustls(rustls::Error::General(why)) => {
            cx.err("server.tls.key", format!("{key}: {why}"))
        }
        other => cx.err("server.tls", other.to_string()),
    }
}

/// Reads an upstream's `ca` bundle: at least one certificate, each usable as a trust anchor.
pub(super) fn upstream_tls(cx: &Cx, key: &str, path: PathBuf) -> Result<UpstreamTls, ConfigError> {
    let problem = |p: String| cx.err(key, format!("{}: {p}", path.display()));
    let certs = pem_certs(&path).map_err(problem)?;
    let client = client_config(&certs).map_err(|e| match e {
        rustls::Error::InvalidCertificate(why) => {
            problem(format!("not a usable CA certificate ({why:?})"))
        }
        other => problem(other.to_string()),
    })?;
    Ok(UpstreamTls {
        ca: path,
        client: Arc::new(client),
    })
}

/// Every certificate of a PEM file; none at all is an error (a bundle that trusts nothing).
pub fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(pem_problem)?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    Ok(certs)
}

/// The notAfter of the first certificate in a PEM file, in Unix seconds; `None` when unreadable.
pub fn cert_not_after(path: &Path) -> Option<i64> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let first = pem_certs(path).ok()?.into_iter().next()?;
    let (_, cert) = X509Certificate::from_der(first.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// A PEM read failure in words; pki-types' own say "I/O error" for a missing file.
pub fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound => "file not found".into(),
        Error::Io(e) => format!("cannot read: {e}"),
        Error::NoItemsFound => "no PEM item of the expected kind in the file".into(),
        other => format!("not valid PEM: {other}"),
    }
}

/// The upstream client's TLS: the public (webpki) roots plus `extra`, each of which must be a
/// usable trust anchor; ALPN is left to the HTTP connector.
pub fn client_config(
    extra: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots.add(cert.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
