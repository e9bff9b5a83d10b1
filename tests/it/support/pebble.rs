//! A real ACME server for the tests: Debian's `pebble` and `pebble-challtestsrv` on free loopback
//! ports. The challenge server is only pebble's DNS (every name → 127.0.0.1); pebble validates
//! TLS-ALPN-01 against `tls_port`, which the tests point at the gateway's ingress listener.
//! Both processes are killed on Drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The domain the tests certify (the challenge server resolves it to 127.0.0.1).
pub const ACME_DOMAIN: &str = "hooks.example.com";

fn free_port() -> u16 {
    crate::process::free_port()
}

/// Pebble (started with `up`, stopped with `down`) and its DNS, started at once.
pub struct Pebble {
    dir: tempfile::TempDir,
    config: PathBuf,
    dns: u16,
    listen: u16,
    management: u16,
    pebble: Option<Child>,
    challtestsrv: Child,
}

impl Pebble {
    /// Pebble validating on `tls_port`, issuing certificates valid for `validity_secs`; running.
    pub async fn start(tls_port: u16, validity_secs: u64) -> Pebble {
        let mut p = Self::prepare(tls_port, validity_secs).await;
        p.up().await;
        p
    }

    /// Everything but pebble itself: its files, ports and the DNS server. Call `up` to start it.
    pub async fn prepare(tls_port: u16, validity_secs: u64) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let (listen, management, dns, dns_mgmt) =
            (free_port(), free_port(), free_port(), free_port());
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        std::fs::write(dir.path().join("https.crt"), pair.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("https.key"),
            pair.signing_key.serialize_pem(),
        )
        .unwrap();
        let config = dir.path().join("pebble.json");
        let json = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("https.crt"),
            "privateKey": dir.path().join("https.key"),
            "httpPort": free_port(),
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        std::fs::write(&config, json.to_string()).unwrap();
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
            .args([
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
            ])
            .stdout(log(dir.path(), "challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv runs (apt-get install pebble)");
        let p = Pebble {
            dir,
            config,
            dns,
            listen,
            management,
            pebble: None,
            challtestsrv,
        };
        p.add_a_record(dns_mgmt).await;
        p
    }

    /// Points the test domain at 127.0.0.1 (the default answer too, but stated, not assumed).
    async fn add_a_record(&self, mgmt: u16) {
        let http = self.http();
        let body = serde_json::json!({ "host": ACME_DOMAIN, "addresses": ["127.0.0.1"] });
        crate::support::eventually(
            Duration::from_secs(10),
            "pebble-challtestsrv up",
            async || {
                let sent = http
                    .post(format!("http://127.0.0.1:{mgmt}/add-a"))
                    .json(&body)
                    .send()
                    .await;
                sent.is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
    }

    /// Starts pebble and waits until its directory answers.
    pub async fn up(&mut self) {
        assert!(self.pebble.is_none(), "pebble already up");
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&self.config)
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order validates afresh, so renewals exercise TLS-ALPN-01 too.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log(self.dir.path(), "pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble runs (apt-get install pebble)");
        self.pebble = Some(child);
        let http = self.http();
        let url = self.directory();
        // Generous: on a loaded 2-core CI machine pebble's start (keys, listeners) took over 15 s.
        crate::support::eventually(Duration::from_secs(60), "pebble up", async || {
            http.get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    /// Kills pebble (its state, root included, is gone: it keeps nothing on disk).
    pub fn down(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen)
    }

    /// The certificate of pebble's own HTTPS listener: the gateway's `directory_ca`.
    pub fn https_ca(&self) -> PathBuf {
        self.dir.path().join("https.crt")
    }

    /// The `server.tls` line for a gateway using this pebble.
    pub fn tls_line(&self) -> String {
        format!(
            r#"tls = {{ acme = {{ domains = ["{ACME_DOMAIN}"], email = "ops@example.com", directory = "{}", directory_ca = "{}" }} }}"#,
            self.directory(),
            self.https_ca().display()
        )
    }

    /// The root that signs what pebble issues (made afresh at each pebble start).
    pub async fn issuing_root(&self) -> CertificateDer<'static> {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let resp = self.http().get(url).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let pem = resp.text().await.unwrap();
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    /// A client trusting pebble's own HTTPS certificate.
    fn http(&self) -> reqwest::Client {
        let tls = crate::support::client_tls(&self.https_ca(), &[b"http/1.1"]);
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.down();
        let _ = self.challtestsrv.kill();
        let _ = self.challtestsrv.wait();
    }
}

fn log(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(name)).unwrap().into()
}

/// A rustls client trusting only `root`, offering `alpn`.
pub fn trusting(root: &CertificateDer<'static>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tls
}
