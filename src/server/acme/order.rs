//! One order, from the account to the stored certificate: TLS-ALPN-01 answers go into the
//! resolver for the order's duration, the key and CSR are made here, the chain is checked
//! against the key before it is stored.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, ChallengeType, HttpClient, Identifier, NewAccount,
    NewOrder, Order, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;

use super::store::Issued;
use super::{Acme, AcmeError, CertResolver, problem};

impl Acme {
    /// One order, from account to stored certificate.
    pub(super) async fn obtain(&mut self) -> Result<Issued, AcmeError> {
        let account = self.account().await?;
        let ids: Vec<Identifier> = self
            .config
            .domains
            .iter()
            .cloned()
            .map(Identifier::Dns)
            .collect();
        let mut order = account.new_order(&NewOrder::new(&ids)).await?;
        let mut challenges = Challenges::new(self.resolver.clone());
        self.authorize(&mut order, &mut challenges).await?;
        let status = order.poll_ready(&polling()).await?;
        drop(challenges);
        if status != OrderStatus::Ready {
            return Err(validation_error(&mut order, status).await);
        }
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(self.config.domains.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        order
            .finalize_csr(params.serialize_request(&key)?.der())
            .await?;
        let chain = order.poll_certificate(&polling()).await?;
        let key_pem = key.serialize_pem();
        let issued = Issued::parse(chain.as_bytes(), key_pem.as_bytes())?;
        self.store.save_issued(&chain, &key_pem)?;
        Ok(issued)
    }

    /// Answers each pending authorization's TLS-ALPN-01 challenge and tells the server to look.
    async fn authorize(
        &self,
        order: &mut Order,
        answers: &mut Challenges,
    ) -> Result<(), AcmeError> {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            let domain = authz.identifier().to_string();
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => return Err(AcmeError::Authorization { domain, status }),
            }
            let Some(mut challenge) = authz.challenge(ChallengeType::TlsAlpn01) else {
                return Err(AcmeError::NoTlsAlpn(domain));
            };
            let digest = challenge.key_authorization().digest();
            answers.set(&domain, challenge_cert(&domain, digest.as_ref())?);
            challenge.set_ready().await?;
        }
        Ok(())
    }

    /// The stored account for this directory, or a new one (then stored).
    async fn account(&mut self) -> Result<Account, AcmeError> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let directory = &self.config.directory;
        let builder = Account::builder_with_http(http_client(&self.config.client));
        let account = match self.store.account(directory) {
            Some(credentials) => builder.from_credentials(credentials).await?,
            None => {
                let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) = builder.create(&new, directory.clone(), None).await?;
                self.store.save_account(directory, credentials)?;
                tracing::info!(directory = %directory, "ACME account created (agreeing to the ACME server's terms of service)");
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }
}

/// The challenge certificates of one order, withdrawn from the resolver when it is dropped
/// (also when the order is abandoned half-way).
struct Challenges {
    resolver: Arc<CertResolver>,
    domains: Vec<String>,
}

impl Challenges {
    fn new(resolver: Arc<CertResolver>) -> Challenges {
        Challenges {
            resolver,
            domains: Vec::new(),
        }
    }

    fn set(&mut self, domain: &str, cert: Arc<CertifiedKey>) {
        self.resolver.set_challenge(domain, cert);
        self.domains.push(domain.to_string());
    }
}

impl Drop for Challenges {
    fn drop(&mut self) {
        let resolver = &self.resolver;
        self.domains
            .iter()
            .for_each(|d| resolver.clear_challenge(d));
    }
}

/// The validation error of the first failed challenge, else the order's status.
async fn validation_error(order: &mut Order, status: OrderStatus) -> AcmeError {
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        if let Some(p) = authz.challenges.iter().find_map(|c| c.error.as_ref()) {
            return problem(p);
        }
    }
    AcmeError::Order(status)
}

/// The self-signed certificate TLS-ALPN-01 asks for: `domain` as its only SAN and the critical
/// acmeIdentifier extension holding SHA-256 of the key authorization (RFC 8737 §3).
pub(super) fn challenge_cert(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    if digest.len() != 32 {
        return Err(AcmeError::Crypto(
            "key authorization digest is not SHA-256".into(),
        ));
    }
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| AcmeError::Crypto(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

/// How long to wait for the server to validate or to issue (it says when to ask again).
fn polling() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90))
}

/// The ACME HTTP client: hyper over rustls, trusting the public roots plus `directory_ca`.
fn http_client(tls: &rustls::ClientConfig) -> Box<dyn HttpClient> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, BodyWrapper<Bytes>>(https);
    Box::new(client)
}
