//! What ACME keeps under `<storage.path>/acme/`: the account (`account.json`, with the directory
//! it belongs to) and the issued pair (`cert.pem`, `key.pem`). Every file is owner-only (0600) and
//! replaced atomically (write, fsync, rename), so a crash leaves the old one or the new.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use super::AcmeError;

/// An issued certificate chain with its key, ready for the resolver.
pub struct Issued {
    pub key: Arc<CertifiedKey>,
    /// Validity of the end-entity certificate, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Its DNS names, lower case.
    pub names: Vec<String>,
}

impl Issued {
    /// Parses a PEM chain (end entity first) and its PEM key; the key must be the certificate's.
    pub fn parse(chain_pem: &[u8], key_pem: &[u8]) -> Result<Issued, AcmeError> {
        let bad = |why: String| AcmeError::BadCertificate(why);
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("chain: {e}")))?;
        let first = chain.first().ok_or_else(|| bad("empty chain".into()))?;
        let (not_before, not_after, names) = describe(first).map_err(bad)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad(format!("key: {e}")))?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| bad(format!("key: {e}")))?;
        let certified = CertifiedKey::new(chain, signer);
        certified
            .keys_match()
            .map_err(|e| bad(format!("key does not match the certificate: {e}")))?;
        Ok(Issued {
            key: Arc::new(certified),
            not_before,
            not_after,
            names,
        })
    }

    /// Whether it certifies exactly `domains` (in any order).
    pub fn covers_exactly(&self, domains: &[String]) -> bool {
        let mut a = self.names.clone();
        let mut b = domains.to_vec();
        a.sort();
        b.sort();
        a == b
    }
}

/// notBefore, notAfter and the DNS SANs of a certificate.
fn describe(der: &CertificateDer<'_>) -> Result<(i64, i64, Vec<String>), String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp(), names))
}

/// The files under `<storage.path>/acme/`.
pub struct Store {
    dir: PathBuf,
}

/// `account.json`: credentials are only good on the directory that issued them.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: instant_acme::AccountCredentials,
}

impl Store {
    /// The store in `dir` (created on the first write).
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    /// The stored pair, if there is one that parses; a broken one is logged and ignored (the
    /// next order replaces it).
    pub fn issued(&self) -> Option<Issued> {
        let chain = std::fs::read(self.dir.join("cert.pem")).ok()?;
        let key = std::fs::read(self.dir.join("key.pem")).ok()?;
        match Issued::parse(&chain, &key) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "stored ACME certificate unusable; ordering a new one");
                None
            }
        }
    }

    /// Keeps a newly issued pair. The key goes first: a crash between the two leaves a
    /// mismatched pair, which `issued` refuses, so a new order follows instead of a broken handshake.
    pub fn save_issued(&self, chain_pem: &str, key_pem: &str) -> Result<(), AcmeError> {
        self.replace("key.pem", key_pem.as_bytes())?;
        self.replace("cert.pem", chain_pem.as_bytes())
    }

    /// The account's credentials for `directory`, if stored for that directory.
    pub fn account(&self, directory: &str) -> Option<instant_acme::AccountCredentials> {
        let text = std::fs::read(self.dir.join("account.json")).ok()?;
        let stored: StoredAccount = serde_json::from_slice(&text).ok()?;
        (stored.directory == directory).then_some(stored.credentials)
    }

    /// Drops the stored account, so the next attempt creates one.
    pub fn forget_account(&self) {
        let _ = std::fs::remove_file(self.dir.join("account.json"));
    }

    /// Keeps the account's credentials (they hold its private key).
    pub fn save_account(
        &self,
        directory: &str,
        credentials: instant_acme::AccountCredentials,
    ) -> Result<(), AcmeError> {
        let stored = StoredAccount {
            directory: directory.to_string(),
            credentials,
        };
        let json = serde_json::to_vec(&stored).map_err(|e| AcmeError::Store {
            path: self.dir.join("account.json").display().to_string(),
            source: std::io::Error::other(e),
        })?;
        self.replace("account.json", &json)
    }

    /// Writes `name` whole (owner-only, like every file here) and renames it into place.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), AcmeError> {
        let path = self.dir.join(name);
        let err = |source| AcmeError::Store {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let tmp = self.dir.join(format!("{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        crate::server::tls::write_private(&tmp, bytes).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        sync_dir(&self.dir).map_err(err)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
