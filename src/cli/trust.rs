//! Whom `send-test` trusts: by default exactly the certificate the config names (pinned), so a
//! self-signed `openssl req -x509` certificate works although webpki refuses it as an end entity
//! (it is marked CA:TRUE); `--ca FILE` verifies against a bundle as a normal client would;
//! `--insecure` verifies nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};

use hookgate::config::tls::pem_certs;

/// How the gateway's certificate is checked.
pub enum Trust {
    /// Exactly the first certificate of this PEM file (the configured `server.tls.cert`).
    Pinned(PathBuf),
    /// Normal webpki verification against this bundle only.
    Bundle(PathBuf),
    /// No verification at all.
    Insecure,
}

impl Trust {
    /// The client TLS config for this choice.
    pub fn client_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = match self {
            Trust::Bundle(path) => builder
                .with_root_certificates(roots(path)?)
                .with_no_client_auth(),
            Trust::Pinned(path) => {
                let pin = first_cert(path)?;
                let verifier = Pinned::new(Some(pin), &provider);
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth()
            }
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned::new(None, &provider)))
                .with_no_client_auth(),
        };
        Ok(config)
    }
}

fn first_cert(path: &Path) -> anyhow::Result<CertificateDer<'static>> {
    let mut certs = pem_certs(path)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("reading the certificate to pin, {}", path.display()))?;
    Ok(certs.swap_remove(0))
}

fn roots(path: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let certs = pem_certs(path)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("reading --ca {}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .with_context(|| format!("--ca {}", path.display()))?;
    }
    Ok(roots)
}

/// Accepts the server's end-entity certificate when its DER bytes equal the pin (any, with no
/// pin), and still checks the handshake signatures: the peer must hold that certificate's key.
#[derive(Debug)]
struct Pinned {
    pin: Option<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Pinned {
    fn new(pin: Option<CertificateDer<'static>>, provider: &CryptoProvider) -> Pinned {
        Pinned {
            pin,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match &self.pin {
            Some(pin) if pin.as_ref() != end_entity.as_ref() => Err(Error::General(
                "not the certificate configured in server.tls.cert (pinned); \
                 see --ca and --insecure"
                    .into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
