//! The files in deploy/ against the gateway they describe: every metric the Grafana dashboard and
//! the Prometheus alerts name is one a running gateway exports on /metrics, the files parse, the
//! rules pass `promtool check rules` (when promtool is installed; .ci/run installs it), and the
//! Kubernetes probes ask the admin listener's real health paths on its real port.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// Sample names a scrape can hold, from the exposition's `# TYPE name kind` lines (a family
/// appears there once it has a sample: the test makes or the gateway pre-creates one for each).
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every `hookgate_…` identifier in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("hookgate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// Every string under a key named `expr` or `definition`, anywhere in the dashboard.
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

fn alert_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("alerts.yml parses");
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("expr");
            out.push((name.to_owned(), expr.to_owned()));
        }
    }
    out
}

fn assert_known(what: &str, expr: &str, known: &BTreeSet<String>) -> usize {
    let names = metric_names(expr);
    for name in &names {
        assert!(
            known.contains(name),
            "{what}: {name} is not exported by the gateway (exported: {known:?})"
        );
    }
    names.len()
}

#[tokio::test]
async fn dashboard_and_alerts_name_only_exported_metrics() {
    let sink = Sink::start().await;
    let mut o = Opts::new(Store::Embedded, sink.url(""));
    o.stripe_extra = r#"order_by = "/id""#.into(); // exports the ordered-lane gauges
    let gw = Gateway::start(o).await;
    assert_eq!(gw.post_stripe("evt_deploy").await.0, 200);
    sink.wait_for(1, Duration::from_secs(10)).await;
    // The delivery is counted just after the upstream answered.
    eventually(
        Duration::from_secs(10),
        "the delivery is counted",
        async || gw.metrics().await.contains("hookgate_deliveries_total{"),
    )
    .await;
    let scraped = gw.metrics().await;
    let known = exported(&scraped);
    assert!(known.contains("hookgate_requests_total"), "{known:?}");
    // The test certificate (rcgen's default validity) expires in the future, not at 0.
    let not_after: i64 = scraped
        .lines()
        .find_map(|l| l.strip_prefix("hookgate_tls_cert_not_after_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the certificate expiry gauge is set");
    assert!(
        not_after > now(),
        "notAfter {not_after} is not in the future"
    );

    let text = std::fs::read_to_string(deploy("grafana/hookgate.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("hookgate.json parses");
    assert!(dash["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let mut exprs = Vec::new();
    dashboard_exprs(&dash, &mut exprs);
    let used: usize = exprs
        .iter()
        .map(|e| assert_known("grafana", e, &known))
        .sum();
    assert!(used >= 10, "the dashboard names too few metrics: {exprs:?}");
    let all = exprs.join("\n");
    for wanted in [
        "hookgate_requests_total",
        "hookgate_deliveries_total",
        "hookgate_queue_depth",
        "hookgate_queue_oldest_age_seconds",
        "hookgate_upstream_suspended",
        "hookgate_storage_errors_total",
    ] {
        assert!(all.contains(wanted), "the dashboard has no {wanted} panel");
    }

    let alerts = alert_exprs();
    for (name, expr) in &alerts {
        assert!(
            assert_known(name, expr, &known) > 0,
            "{name} names no metric"
        );
    }
    let all: String = alerts.iter().map(|(_, e)| e.as_str()).collect();
    assert!(all.contains("hookgate_tls_cert_not_after_seconds"));
    gw.finish().await;
}

#[test]
fn alert_rules_pass_promtool_when_it_is_installed() {
    let file = deploy("prometheus/alerts.yml");
    let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
    else {
        eprintln!("promtool not installed; alerts.yml only parsed (see the other deploy tests)");
        return;
    };
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sidecar's probes run `hookgate healthcheck --url URL`; the URL's port is the admin
/// listener's in the same manifest, and the paths answer 200 on a running gateway.
#[tokio::test]
async fn kubernetes_probes_ask_the_admin_listener_health_paths() {
    let text = std::fs::read_to_string(deploy("kubernetes/sidecar.yaml")).unwrap();
    let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("sidecar.yaml parses"))
        .collect();
    let kind = |k: &str| docs.iter().find(|d| d["kind"].as_str() == Some(k)).unwrap();
    let config = kind("ConfigMap")["data"]["config.toml"].as_str().unwrap();
    let config: toml::Value = toml::from_str(config).expect("the ConfigMap's config.toml parses");
    let admin = config["admin"]["listen"].as_str().unwrap();
    let containers = kind("Deployment")["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    let gateway = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("hookgate"))
        .expect("a hookgate container");
    let probe_url = |probe: &str| {
        let cmd = gateway[probe]["exec"]["command"].as_sequence().unwrap();
        let cmd: Vec<&str> = cmd.iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(&cmd[..3], ["hookgate", "healthcheck", "--url"], "{probe}");
        cmd[3].to_owned()
    };
    assert_eq!(
        probe_url("livenessProbe"),
        format!("http://{admin}/healthz")
    );
    assert_eq!(
        probe_url("readinessProbe"),
        format!("http://{admin}/readyz")
    );
    let sink = Sink::start().await;
    let gw = Gateway::start(Opts::new(Store::Embedded, sink.url(""))).await;
    for path in ["/healthz", "/readyz"] {
        let url = format!("http://{}{path}", gw.admin);
        let status = gw.client.get(&url).send().await.unwrap().status();
        assert_eq!(status, 200, "{path}");
    }
    gw.finish().await;
}
