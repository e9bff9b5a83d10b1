//! `server.tls.acme`, compiled at load: the names to certify, the ACME directory, and the HTTP
//! client's trust for that server, so `hookgate check` refuses a bad block without contacting it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::raw::RawAcme;
use super::tls::{client_config, pem_certs};
use super::{ConfigError, Cx};

/// Let's Encrypt's production directory, the default `directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Certificates obtained from an ACME server (RFC 8555) by TLS-ALPN-01 on the ingress listener.
#[derive(Clone)]
pub struct AcmeConfig {
    /// DNS names, lower case, without duplicates; the first is the certificate's subject.
    pub domains: Vec<String>,
    /// Contact for the account (expiry notices), without the `mailto:`.
    pub email: Option<String>,
    /// The directory URL (https).
    pub directory: String,
    /// `directory_ca`, when given: trusted for the ACME server besides the public roots.
    pub directory_ca: Option<PathBuf>,
    /// `<storage.path>/acme`: account credentials, certificate and key.
    pub dir: PathBuf,
    /// The client config the ACME HTTP client uses.
    pub client: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for AcmeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeConfig")
            .field("domains", &self.domains)
            .field("directory", &self.directory)
            .field("directory_ca", &self.directory_ca)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Equal when a reload would change nothing the ACME task uses.
impl PartialEq for AcmeConfig {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.domains,
            &self.email,
            &self.directory,
            &self.directory_ca,
            &self.dir,
        ) == (
            &other.domains,
            &other.email,
            &other.directory,
            &other.directory_ca,
            &other.dir,
        )
    }
}

pub(super) fn acme(cx: &Cx, raw: RawAcme, data: PathBuf) -> Result<AcmeConfig, ConfigError> {
    let domains = domains(cx, raw.domains)?;
    let email = raw.email.map(|e| email(cx, e)).transpose()?;
    directory(cx, &raw.directory)?;
    let (directory_ca, extra) = match raw.directory_ca.as_str() {
        "" => (None, Vec::new()),
        p => {
            let path = cx.path(p);
            let key = "server.tls.acme.directory_ca";
            let certs =
                pem_certs(&path).map_err(|e| cx.err(key, format!("{}: {e}", path.display())))?;
            (Some(path), certs)
        }
    };
    let client = client_config(&extra).map_err(|e| {
        cx.err(
            "server.tls.acme.directory_ca",
            format!("not a usable CA certificate ({e})"),
        )
    })?;
    Ok(AcmeConfig {
        domains,
        email,
        directory: raw.directory,
        directory_ca,
        dir: data.join("acme"),
        client: Arc::new(client),
    })
}

/// At least one name; each a DNS name TLS-ALPN-01 can validate (no IP address, no wildcard).
fn domains(cx: &Cx, raw: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let key = "server.tls.acme.domains";
    if raw.is_empty() {
        return Err(cx.err(key, "at least one domain is required"));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for d in raw {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        if d.starts_with("*.") {
            let why = "wildcards need DNS-01; TLS-ALPN-01 can only validate exact names";
            return Err(cx.err(key, format!("{d}: {why}")));
        }
        let dns = matches!(
            rustls::pki_types::ServerName::try_from(d.as_str()),
            Ok(rustls::pki_types::ServerName::DnsName(_))
        );
        if !dns || !d.contains('.') {
            return Err(cx.err(key, format!("{d:?} is not a fully qualified DNS name")));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

fn email(cx: &Cx, e: String) -> Result<String, ConfigError> {
    let e = e.strip_prefix("mailto:").unwrap_or(&e).to_string();
    let ok = e
        .split_once('@')
        .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'));
    if !ok || e.contains(char::is_whitespace) {
        return Err(cx.err(
            "server.tls.acme.email",
            format!("{e:?} is not an email address"),
        ));
    }
    Ok(e)
}

/// RFC 8555 requires HTTPS for every ACME request.
fn directory(cx: &Cx, url: &str) -> Result<(), ConfigError> {
    let key = "server.tls.acme.directory";
    let uri: http::Uri = url
        .parse()
        .map_err(|e| cx.err(key, format!("{url:?} is not a URL: {e}")))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(cx.err(key, format!("{url:?} must be an https:// URL")));
    }
    Ok(())
}
