//! The real binary on config holes (`check` exits 64 naming the key, never printing the secret)
//! and `send-test` against a certificate made with `openssl req -x509` (CA:TRUE, pinned).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::process::{Proc, free_port};
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

/// A working config (embedded store, upstream on a free port) in a fresh directory; returns
/// the directory, the file and the admin port.
fn good_config() -> (tempfile::TempDir, PathBuf, u16) {
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let upstream = format!("http://127.0.0.1:{}", free_port());
    let text = config_text(
        dir.path(),
        &format!("127.0.0.1:{}", free_port()),
        &format!("127.0.0.1:{admin}"),
        &Opts::new(Store::Embedded, upstream),
    );
    let file = dir.path().join("hookgate.toml");
    std::fs::write(&file, text).unwrap();
    (dir, file, admin)
}

fn run(args: &[&str], config: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("-c")
        .arg(config)
        .env("HOOKGATE_LOG", "warn")
        .output()
        .unwrap()
}

/// Runs `serve` on `config`, which must exit by itself (a refused file, before binding);
/// killed and failed after 30 s.
fn serve_exits(config: &Path) -> Output {
    let mut child = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(config)
        .env("HOOKGATE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            child.kill().unwrap();
            panic!(
                "serve ran on a config that check refuses: {}",
                config.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Writes `edit(good config)` as `bad.toml`, runs `check` and `serve` on it and asserts exit
/// 64 from both (before anything binds), the key in the message and `secret` nowhere in the
/// output.
fn refused(
    dir: &Path,
    good: &Path,
    edit: impl Fn(String) -> String,
    key: &str,
    secret: Option<&str>,
) {
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, edit(std::fs::read_to_string(good).unwrap())).unwrap();
    for (command, out) in [
        ("check", run(&["check"], &bad)),
        ("serve", serve_exits(&bad)),
    ] {
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(64), "{command} {key}: {stderr}");
        assert!(
            stderr.contains("bad.toml") && stderr.contains(key),
            "{command} {key}: {stderr}"
        );
        if let Some(secret) = secret {
            let leaked = stderr.contains(secret) || stdout.contains(secret);
            assert!(!leaked, "{command}: {secret} leaked: {stderr}");
        }
    }
}

#[test]
fn check_refuses_every_config_hole_with_64_naming_the_key() {
    let (dir, good, _) = good_config();
    assert!(run(&["check"], &good).status.success());
    let d = dir.path();
    let route_key = |line: &'static str| {
        move |t: String| t.replacen("upstream = {", &format!("{line}\nupstream = {{"), 1)
    };
    refused(
        d,
        &good,
        |t| format!("{t}\n[telemetry]\notlp_endpoint = \"127.0.0.1:4318\"\n"),
        "telemetry.otlp_endpoint",
        None,
    );
    refused(
        d,
        &good,
        route_key("forward_secret = \"hunter2!\""),
        "route[0].forward_secret",
        Some("hunter2"),
    );
    std::fs::write(
        d.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let cert = d.join("test.crt").display().to_string();
    let garbage = d.join("garbage.pem").display().to_string();
    refused(
        d,
        &good,
        |t| t.replace(&cert, &garbage),
        "server.tls.cert",
        None,
    );
    refused(
        d,
        &good,
        |t| {
            t.replacen(
                ", probe_interval",
                ", ca = \"garbage.pem\", probe_interval",
                1,
            )
        },
        "route[0].upstream.ca",
        None,
    );
    refused(
        d,
        &good,
        |t| {
            t.replacen(
                "shutdown_grace",
                "client_ca = \"garbage.pem\"\nshutdown_grace",
                1,
            )
        },
        "server.client_ca",
        None,
    );
    refused(
        d,
        &good,
        route_key("client_cert = { sans = [\"relay.example.com\"] }"),
        "route[0].client_cert",
        None,
    );
    refused(
        d,
        &good,
        |t| t.replace("claim_ttl = \"30s\"", "claim_ttl = \"3650d\""),
        "storage.claim_ttl",
        None,
    );
    refused(
        d,
        &good,
        |t| t.replacen("schedule = [\"100ms\"]", "schedule = [\"3650d\"]", 1),
        "route[0].retry.schedule[0]",
        None,
    );
    // A key that is not the certificate's.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(d.join("other.key"), other.signing_key.serialize_pem()).unwrap();
    let key = d.join("test.key").display().to_string();
    let other_key = d.join("other.key").display().to_string();
    refused(
        d,
        &good,
        |t| t.replace(&key, &other_key),
        "server.tls.key",
        None,
    );
    // `storage.redis_url` takes references like any secret, and never prints its password.
    let redis_url = |url: &'static str| {
        move |t: String| {
            let line = t.lines().find(|l| l.starts_with("redis_url")).unwrap();
            t.replace(line, &format!("redis_url = \"{url}\""))
                .replace("backend = \"embedded\"", "backend = \"redis\"")
        }
    };
    refused(
        d,
        &good,
        redis_url("env:HOOKGATE_IT_REDIS_URL_UNSET"),
        "storage.redis_url",
        None,
    );
    std::fs::write(
        d.join("redis.url"),
        "redis://:s3cr3t-pw@db:6379/notanumber\n",
    )
    .unwrap();
    std::fs::set_permissions(
        d.join("redis.url"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    refused(
        d,
        &good,
        redis_url("file:redis.url"),
        "storage.redis_url",
        Some("s3cr3t-pw"),
    );
    std::fs::write(d.join("redis.url"), "redis://:s3cr3t-pw@db:6379/0\n").unwrap();
    let by_file = d.join("by_file.toml");
    std::fs::write(
        &by_file,
        redis_url("file:redis.url")(std::fs::read_to_string(&good).unwrap()),
    )
    .unwrap();
    let out = run(&["check"], &by_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "file: redis_url: {stderr}");
    assert!(!stderr.contains("s3cr3t-pw"), "{stderr}");
    refused(
        d,
        &good,
        |t| {
            t.replace(
                &format!("\"{STRIPE_SECRET}\""),
                "\"whsec_SECRET_ON_A_BROKEN_LINE",
            )
        },
        "column",
        Some("SECRET_ON_A_BROKEN_LINE"),
    );
}

#[test]
fn check_leaves_a_missing_development_pair_for_serve_to_create() {
    let (dir, good, _) = good_config();
    let text = std::fs::read_to_string(&good).unwrap();
    let dev = dir.path().join("dev");
    let (cert, key) = (dev.join("dev.crt"), dev.join("dev.key"));
    let text = text
        .replace(
            &dir.path().join("test.crt").display().to_string(),
            &cert.display().to_string(),
        )
        .replace(
            &format!("{}\" }}", dir.path().join("test.key").display()),
            &format!("{}\", dev_self_signed = true }}", key.display()),
        );
    std::fs::write(&good, text).unwrap();
    let out = run(&["check"], &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!cert.exists() && !key.exists(), "check created files");
}

/// `openssl req -x509` makes a self-signed certificate marked CA:TRUE, which webpki refuses
/// as an end entity; `send-test` pins it instead.
fn openssl_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("openssl.crt"), dir.join("openssl.key"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req -x509 failed");
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_trusts_an_openssl_self_signed_certificate() {
    let (dir, config, admin) = good_config();
    let (cert, key) = openssl_pair(dir.path());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            &dir.path().join("test.crt").display().to_string(),
            &cert.display().to_string(),
        )
        .replace(
            &dir.path().join("test.key").display().to_string(),
            &key.display().to_string(),
        );
    std::fs::write(&config, text).unwrap();
    let mut gw = Proc::spawn(&config, admin);
    gw.wait_healthy(&client(&cert)).await;

    let pinned = run(&["send-test", "--route", "stripe"], &config);
    let stdout = String::from_utf8_lossy(&pinned.stdout);
    assert!(
        pinned.status.success() && stdout.contains("answered 200") && stdout.contains("accepted"),
        "{stdout} {}",
        String::from_utf8_lossy(&pinned.stderr)
    );

    let insecure = run(&["send-test", "--route", "stripe", "--insecure"], &config);
    assert!(insecure.status.success());
    assert!(String::from_utf8_lossy(&insecure.stderr).contains("--insecure"));

    // Normal webpki verification refuses this very certificate as a server's: pinning is what
    // makes it work.
    let as_ca = run(
        &[
            "send-test",
            "--route",
            "stripe",
            "--ca",
            &cert.display().to_string(),
        ],
        &config,
    );
    let err = String::from_utf8_lossy(&as_ca.stderr);
    assert!(
        !as_ca.status.success() && err.contains("CaUsedAsEndEntity"),
        "{err}"
    );

    let elsewhere = dir.path().join("other");
    std::fs::create_dir(&elsewhere).unwrap();
    let other = write_cert(&elsewhere).0.display().to_string();
    let wrong_ca = run(&["send-test", "--route", "stripe", "--ca", &other], &config);
    assert!(
        !wrong_ca.status.success(),
        "a bundle that does not sign the certificate is refused"
    );
}

/// `check` validates `server.tls.acme` from the file alone: a directory nobody serves is fine,
/// a bad block exits 64 naming the key.
#[test]
fn check_validates_the_acme_block_without_contacting_the_server() {
    let (dir, file, _) = good_config();
    let text = std::fs::read_to_string(&file).unwrap();
    let tls = text
        .lines()
        .find(|l| l.starts_with("tls = "))
        .unwrap()
        .to_string();
    let directory = format!("https://127.0.0.1:{}/dir", free_port());
    let good = format!(
        r#"tls = {{ acme = {{ domains = ["hooks.example.com"], email = "ops@example.com", directory = "{directory}" }} }}"#
    );
    std::fs::write(&file, text.replace(&tls, &good)).unwrap();
    let out = run(&["check"], &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.path().join("data/acme").exists(),
        "check wrote nothing"
    );

    let bad = good.replace(&directory, "ftp://acme.example.com/dir");
    std::fs::write(&file, text.replace(&tls, &bad)).unwrap();
    let out = run(&["check"], &file);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.tls.acme.directory"), "{err}");
}
