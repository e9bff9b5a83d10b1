//! The web console (docs/console.md) in a real browser: Debian's headless Chromium driven through
//! its chromedriver (fantoccini, W3C WebDriver), against a real gateway whose upstream fails.
//! Every page is screenshotted under `target/tmp/console-screenshots/`, and the test fails on any
//! error the browser's console logged.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "test-admin-token";
const WAIT: Duration = Duration::from_secs(15);
/// A body a sender controls: shown as text, it must never run or load anything.
const XSS: &str = r#"<script>alert(1)</script><img src=x onerror="document.title='pwned'">"#;

/// chromedriver on a free port with a headless Chromium session.
struct Browser {
    client: Client,
    driver_url: String,
    session: String,
    /// For chromedriver's log endpoint (any reqwest client: the gateway's will do).
    http: reqwest::Client,
    _driver: tokio::process::Child,
}

/// Chromium outlives a chromedriver killed on drop; a failed assertion skips `close`, so a
/// dropped browser kills chromedriver's descendants itself, each by its own (positive) pid —
/// never a process group, and never anything that is not below chromedriver.
impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(driver) = self._driver.id() {
            for pid in descendants(driver) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Every process below `root` (children, their children, …), from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // "pid (comm) state ppid …": comm may hold spaces, so read after the last ')'.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent && pid > 1 && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

impl Browser {
    async fn start(http: reqwest::Client) -> Browser {
        let port = crate::process::free_port();
        let driver = tokio::process::Command::new(binary(
            "HOOKGATE_TEST_CHROMEDRIVER",
            "/usr/bin/chromedriver",
        ))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver runs (Debian: apt-get install chromium chromium-driver)");
        let driver_url = format!("http://127.0.0.1:{port}");
        eventually(WAIT, "chromedriver listens", async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities())
            .connect(&driver_url)
            .await
            .expect("a Chromium session starts");
        let session = client.session_id().await.unwrap().expect("a session id");
        Browser {
            client,
            driver_url,
            session,
            http,
            _driver: driver,
        }
    }

    /// What the browser's console logged since the last call (chromedriver's log endpoint).
    async fn console_log(&self) -> Vec<Value> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session);
        let resp: Value = (self.http.post(url))
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        resp["value"].as_array().cloned().unwrap_or_default()
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = shots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector} never appeared: {e}"))
    }

    async fn count(&self, selector: &str) -> usize {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .map_or(0, |v| v.len())
    }

    async fn text(&self, selector: &str) -> String {
        match self.client.find(Locator::Css(selector)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the text of `selector` contains `want`.
    async fn until_text(&self, selector: &str, want: &str) {
        let what = format!("{selector} shows {want:?}");
        eventually(WAIT, &what, async || {
            self.text(selector).await.contains(want)
        })
        .await;
    }

    async fn until_count(&self, selector: &str, n: usize) {
        let what = format!("{n} × {selector}");
        eventually(WAIT, &what, async || self.count(selector).await == n).await;
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }
}

fn binary(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

fn capabilities() -> serde_json::Map<String, Value> {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": binary("HOOKGATE_TEST_CHROMIUM", "/usr/bin/chromium"),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--window-size=1280,900"],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    caps.as_object().unwrap().clone()
}

pub fn shots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

/// A gateway whose stripe upstream fails every request: after two attempts each event is dead,
/// and the fourth failure in a row suspends the upstream. Probes wait ten minutes, so only the
/// console's Resume can bring it back within the test.
async fn failing_gateway(sink: &Sink) -> Gateway {
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let mut o = Opts::new(Store::Embedded, sink.url(""));
    o.max_attempts = 2;
    o.suspend_after = 4;
    let ingress = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    Gateway::start_with(dir, o, ingress, |t| {
        t.replace(r#"probe_interval = "300ms""#, r#"probe_interval = "10m""#)
    })
    .await
}

async fn post_body(gw: &Gateway, body: Vec<u8>) {
    let sig = stripe_header(STRIPE_SECRET, now(), &body);
    let h = vec![("stripe-signature".to_string(), sig)];
    let (status, answer) = gw.post("/webhooks/stripe", &h, body).await;
    assert_eq!(status, 200, "{answer}");
}

async fn admin_get(gw: &Gateway, path: &str) -> Value {
    let url = format!("http://{}{path}", gw.admin);
    let req = gw.client.get(url).bearer_auth(TOKEN);
    req.send().await.unwrap().json().await.unwrap()
}

/// Posts a plain event and one whose id and body hold markup, and waits until both are dead.
async fn two_dead_letters(gw: &Gateway) -> (String, String) {
    let plain = "evt_console_plain".to_string();
    let xss_id = "evt_<b>bold".to_string();
    post_body(gw, stripe_body(&plain)).await;
    let body = json!({ "id": xss_id, "type": "invoice.paid", "note": XSS });
    post_body(gw, body.to_string().into_bytes()).await;
    eventually(
        WAIT,
        "both events dead and the upstream suspended",
        async || {
            let dead = admin_get(gw, "/admin/dlq?route=stripe").await;
            let routes = admin_get(gw, "/admin/routes").await;
            dead["dead"].as_array().is_some_and(|d| d.len() == 2)
                && routes["routes"][0]["upstreams"][0]["state"] == "suspended"
        },
    )
    .await;
    (plain, xss_id)
}

async fn sign_in(b: &Browser, gw: &Gateway) {
    b.client
        .goto(&format!("http://{}/console", gw.admin))
        .await
        .unwrap();
    let input = b.css("#token").await;
    input.send_keys("not-the-token").await.unwrap();
    b.css("#login-button").await.click().await.unwrap();
    b.until_text("#login-error", "refused").await;
    assert_eq!(
        b.count("[data-route]").await,
        0,
        "nothing shown to a wrong token"
    );
    b.shot("login-refused").await;
    // The right one, typed and submitted from the keyboard.
    let enter = key(fantoccini::key::Key::Enter);
    b.css("#token")
        .await
        .send_keys(&format!("{TOKEN}{enter}"))
        .await
        .unwrap();
    b.css("[data-route=stripe]").await;
    let stored = b
        .js("return sessionStorage.getItem('hookgate.admin-token')")
        .await;
    assert_eq!(stored, TOKEN, "the token lives in the tab");
    assert_eq!(
        b.js("return document.cookie").await,
        "",
        "and never in a cookie"
    );
}

async fn overview_shows_the_suspended_lane(b: &Browser) {
    b.until_text("[data-lane=stripe] .state", "suspended").await;
    b.until_text("[data-route=stripe] .c-dead dd", "2").await;
    b.shot("overview").await;
    b.css("[data-route=stripe] h2 a")
        .await
        .click()
        .await
        .unwrap();
    b.until_count("table.dead tbody tr", 2).await;
    b.shot("route").await;
}

async fn open_dead_letter(b: &Browser, id: &str) {
    for row in b
        .client
        .find_all(Locator::Css("table.dead tbody tr"))
        .await
        .unwrap()
    {
        if row.attr("data-id").await.unwrap().as_deref() == Some(id) {
            row.find(Locator::Css("a"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            b.until_text("#event-id", id).await;
            return;
        }
    }
    panic!("no dead letter row for {id}");
}

async fn attempts_are_listed(b: &Browser, plain: &str) {
    open_dead_letter(b, plain).await;
    b.until_count("table.attempts tbody tr", 2).await;
    assert!(b.text("table.attempts").await.contains("503"));
    assert!(
        b.text("#event-body").await.contains("\"amount\": 4200"),
        "pretty-printed JSON"
    );
    assert!(
        b.text("table.headers").await.contains("*** (hidden"),
        "the signature is masked"
    );
    assert!(!b.text("table.headers").await.contains("v1="));
    b.shot("dead-letter").await;
}

async fn markup_is_shown_as_text(b: &Browser, xss_id: &str) {
    b.client.back().await.unwrap();
    b.until_count("table.dead tbody tr", 2).await;
    assert!(
        b.text("table.dead").await.contains(xss_id),
        "the id as text"
    );
    assert_eq!(
        b.count("table.dead b").await,
        0,
        "no element made of the id"
    );
    open_dead_letter(b, xss_id).await;
    let body = b.text("#event-body").await;
    assert!(body.contains("<script>alert(1)</script>"), "{body}");
    assert!(body.contains("onerror"), "{body}");
    assert_eq!(
        b.count("#event-body *").await,
        0,
        "the body made no element"
    );
    assert_eq!(b.count("main script, main img").await, 0);
    // Give an injected handler the time it would need to run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(b.js("return document.title").await, "pwned");
    assert!(b.client.get_alert_text().await.is_err(), "no alert opened");
    b.js("document.getElementById('event-body').scrollIntoView()")
        .await;
    b.shot("dead-letter-markup").await;
    b.js("window.scrollTo(0, 0)").await;
}

fn key(k: fantoccini::key::Key) -> String {
    char::from(k).to_string()
}

/// Escape cancels the confirmation and nothing is purged; the second time it is confirmed.
async fn purge_with_confirmation(b: &Browser, xss_id: &str) {
    b.css(".title button.purge").await.click().await.unwrap();
    b.css("#confirm[open]").await;
    let focused = b.client.active_element().await.unwrap();
    focused
        .send_keys(&key(fantoccini::key::Key::Escape))
        .await
        .unwrap();
    eventually(WAIT, "the dialog closes", async || {
        b.count("#confirm[open]").await == 0
    })
    .await;
    assert!(
        b.text("#event-id").await.contains(xss_id),
        "still there after Cancel"
    );
    b.css(".title button.purge").await.click().await.unwrap();
    b.css("#confirm[open]").await;
    b.shot("purge-confirm").await;
    b.css("#confirm-ok").await.click().await.unwrap();
    b.until_count("table.dead tbody tr", 1).await;
    b.until_text("#toasts", "Purged 1 event").await;
}

async fn resume_then_replay(b: &Browser, sink: &Sink, plain: &str) {
    sink.fail_first.store(0, Ordering::SeqCst);
    // From the keyboard: the button focused, Enter pressed.
    let resume = b.css("[data-lane=stripe] button.resume").await;
    resume
        .send_keys(&key(fantoccini::key::Key::Enter))
        .await
        .unwrap();
    b.until_text("[data-lane=stripe] .state", "ok").await;
    b.until_text("#toasts", "Resumed stripe").await;
    b.css(&format!("tr[data-id={plain}] button.replay"))
        .await
        .click()
        .await
        .unwrap();
    b.until_text("#toasts", "Replayed 1 event").await;
    b.until_count("table.dead tbody tr", 0).await;
    let got = sink.wait_for(1, WAIT).await;
    assert!(String::from_utf8_lossy(&got[0].body).contains(plain));
    b.until_text("table.deliveries tbody tr:first-child .status", "200")
        .await;
    b.shot("route-recovered").await;
}

async fn send_a_test_event(b: &Browser, sink: &Sink) {
    b.css("button.send-test").await.click().await.unwrap();
    b.until_text("#toasts", "accepted on stripe").await;
    let got = sink.wait_for(2, WAIT).await;
    assert!(String::from_utf8_lossy(&got[1].body).contains("hookgate.test"));
}

/// Dismisses the toasts with their close buttons, for a clear screenshot.
async fn dismiss_toasts(b: &Browser) {
    for close in b
        .client
        .find_all(Locator::Css("#toasts .close"))
        .await
        .unwrap()
    {
        close.click().await.unwrap();
    }
}

/// The page scrolls down, never sideways (wide tables scroll inside their card).
async fn fits_a_phone(b: &Browser) {
    let js = "return document.documentElement.scrollWidth - window.innerWidth";
    let overflow = b.js(js).await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "sideways scrolling at phone width: {overflow}"
    );
}

async fn charts_and_phone_width(b: &Browser, gw: &Gateway) {
    // A few samples, the newest taken after the test event was counted (on a loaded machine the
    // samples may already be there before it).
    eventually(Duration::from_secs(30), "a few samples", async || {
        let ts = admin_get(gw, "/admin/timeseries").await;
        ts["samples"].as_array().is_some_and(|s| {
            s.len() >= 5
                && s.last()
                    .is_some_and(|l| l["requests"]["stripe"]["accepted"] == 3)
        })
    })
    .await;
    let ts = admin_get(gw, "/admin/timeseries").await;
    let last = ts["samples"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["requests"]["stripe"]["accepted"], 3, "{last}");
    assert_eq!(last["deliveries"]["stripe"]["dead"], 2, "{last}");
    assert_eq!(last["queue_depth"]["stripe"], 0, "{last}");
    dismiss_toasts(b).await;
    b.css("nav a[href='#/charts']").await.click().await.unwrap();
    b.css("figure.chart").await;
    eventually(WAIT, "a drawn line", async || {
        b.count(".plot polyline").await > 0
    })
    .await;
    assert!(b.text("main").await.contains("Requests by reason · stripe"));
    b.shot("charts").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.css("a.brand").await.click().await.unwrap();
    b.css("[data-route=stripe]").await;
    dismiss_toasts(b).await;
    fits_a_phone(b).await;
    b.shot("overview-phone").await;
    b.css("[data-route=stripe] h2 a")
        .await
        .click()
        .await
        .unwrap();
    b.css("table.deliveries").await;
    fits_a_phone(b).await;
    b.shot("route-phone").await;
}

/// Fails on any error the page logged, then proves the check can fail at all.
async fn no_console_errors(b: &Browser) {
    let errors: Vec<Value> = (b.console_log().await.into_iter())
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(
        errors.is_empty(),
        "the browser console logged errors: {errors:#?}"
    );
    b.js("console.error('canary')").await;
    let seen = b.console_log().await;
    assert!(
        seen.iter()
            .any(|e| e["level"] == "SEVERE" && e["message"].to_string().contains("canary")),
        "the console check sees errors: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_fixes_a_failing_route_from_the_browser() {
    let sink = Sink::start().await;
    let gw = failing_gateway(&sink).await;
    let (plain, xss_id) = two_dead_letters(&gw).await;
    let b = Browser::start(gw.client.clone()).await;
    sign_in(&b, &gw).await;
    overview_shows_the_suspended_lane(&b).await;
    attempts_are_listed(&b, &plain).await;
    markup_is_shown_as_text(&b, &xss_id).await;
    purge_with_confirmation(&b, &xss_id).await;
    resume_then_replay(&b, &sink, &plain).await;
    send_a_test_event(&b, &sink).await;
    charts_and_phone_width(&b, &gw).await;
    no_console_errors(&b).await;
    b.client.clone().close().await.unwrap();
    gw.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_off_without_an_admin_token_and_strict_with_one() {
    let sink = Sink::start().await;
    let o = Opts::new(Store::Embedded, sink.url(""));
    let ingress = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(dir, o.clone(), ingress, |t| {
        t.replace(r#"token = "test-admin-token""#, "")
    })
    .await;
    let url = format!("http://{}/console", gw.admin);
    assert_eq!(gw.client.get(&url).send().await.unwrap().status(), 404);
    gw.finish().await;

    let gw = Gateway::start(Opts::new(Store::Embedded, sink.url(""))).await;
    let resp = gw
        .client
        .get(format!("http://{}/console", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert!(resp.headers().get("set-cookie").is_none());
    let session = |t: &'static str| {
        let url = format!("http://{}/admin/session", gw.admin);
        gw.client.get(url).bearer_auth(t).send()
    };
    let wrong = session("wrong").await.unwrap();
    assert_eq!(wrong.status(), 200);
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        json!({ "authorized": false })
    );
    let right = session(TOKEN).await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(right, json!({ "authorized": true }));
    gw.finish().await;
}

/// What the console reads of a dead letter, and the test event button, at the API level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_shows_its_body_and_headers_and_send_test_runs_the_pipeline() {
    let sink = Sink::start().await;
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let mut o = Opts::new(Store::Embedded, sink.url(""));
    o.max_attempts = 1;
    let gw = Gateway::start(o).await;
    // 100 KiB that are not UTF-8: shown cut at 64 KiB, marked.
    let mut body = vec![b'a'; 100 << 10];
    body[10] = 0xff;
    let (status, answer) = gw
        .post("/webhooks/github", &github_headers("gh-big", &body), body)
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut shown = Value::Null;
    eventually(WAIT, "the event is dead", async || {
        shown = admin_get(&gw, "/admin/dlq/github/gh-big").await;
        shown["id"] == "gh-big"
    })
    .await;
    assert_eq!(shown["body_bytes"], 100 << 10);
    assert_eq!(
        (
            shown["body_truncated"].as_bool(),
            shown["body_utf8"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert!(
        shown["body"].as_str().unwrap().len() <= (64 << 10) + 2,
        "cut at 64 KiB"
    );
    let headers = shown["headers"].as_array().unwrap();
    let find = |n: &str| headers.iter().find(|h| h["name"] == n).cloned().unwrap();
    assert_eq!(find("x-hub-signature-256")["value"], "***");
    assert_eq!(find("x-github-event")["value"], "push");

    let post = |path: String| {
        let url = format!("http://{}{path}", gw.admin);
        gw.client.post(url).bearer_auth(TOKEN).send()
    };
    let sent: Value = post("/admin/routes/standard/send-test".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["status"], 200, "{sent}");
    assert_eq!(sent["answer"]["status"], "accepted", "{sent}");
    assert!(sent["id"].as_str().unwrap().starts_with("evt_test_"));
    let missing = post("/admin/routes/nope/send-test".into()).await.unwrap();
    assert_eq!(missing.status(), 404);
    gw.finish().await;
}
