//! `hookgate dlq …`, `deliveries`, `resume`: thin clients of the admin API (README.md, "Operations").

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hookgate::config::Config;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// Where the admin API is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Admin API base URL (default: the config's admin.listen).
    #[arg(long, global = true)]
    admin_url: Option<String>,
    /// Bearer token (default: the config's admin.token).
    #[arg(
        long,
        global = true,
        env = "HOOKGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

/// Dead-letter operations.
#[derive(Subcommand, Debug)]
pub enum Dlq {
    /// List a route's dead events.
    List {
        #[arg(long)]
        route: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead event with its attempts.
    Show {
        #[arg(long)]
        route: String,
        #[arg(long)]
        id: String,
    },
    /// Put one (--id) or all (--all) dead events of a route back on the queue.
    Replay {
        #[arg(long)]
        route: String,
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Delete one (--id) or all (--all) dead events of a route.
    Purge {
        #[arg(long)]
        route: String,
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

/// Runs a dead-letter command.
pub async fn dlq(c: &Config, t: &Target, cmd: Dlq) -> anyhow::Result<()> {
    let (method, path) = match &cmd {
        Dlq::List { route, limit } => (
            "GET",
            format!("/admin/dlq?route={}&limit={limit}", enc(route)),
        ),
        Dlq::Show { route, id } => ("GET", format!("/admin/dlq/{}/{}", enc(route), enc(id))),
        Dlq::Replay {
            route,
            id: Some(id),
            ..
        } => (
            "POST",
            format!("/admin/dlq/{}/{}/replay", enc(route), enc(id)),
        ),
        Dlq::Replay { route, .. } => ("POST", format!("/admin/dlq/{}/replay", enc(route))),
        Dlq::Purge {
            route,
            id: Some(id),
            ..
        } => ("DELETE", format!("/admin/dlq/{}/{}", enc(route), enc(id))),
        Dlq::Purge { route, .. } => ("DELETE", format!("/admin/dlq/{}", enc(route))),
    };
    let v = call(c, t, method, &path).await?;
    match cmd {
        Dlq::List { .. } => table(
            &v["dead"],
            &[
                "id",
                "upstream",
                "attempts",
                "last_status",
                "died_at",
                "last_error_kind",
                "last_error",
            ],
        ),
        _ => println!("{}", serde_json::to_string_pretty(&v)?),
    }
    Ok(())
}

/// Prints a route's recent delivery attempts.
pub async fn deliveries(c: &Config, t: &Target, route: &str, limit: usize) -> anyhow::Result<()> {
    let v = call(
        c,
        t,
        "GET",
        &format!("/admin/deliveries?route={}&limit={limit}", enc(route)),
    )
    .await?;
    table(
        &v["deliveries"],
        &[
            "at",
            "id",
            "upstream",
            "attempt",
            "status",
            "latency_ms",
            "kind",
            "error",
            "answer",
        ],
    );
    Ok(())
}

/// Resumes a route's suspended upstream(s).
pub async fn resume(
    c: &Config,
    t: &Target,
    route: &str,
    upstream: Option<&str>,
) -> anyhow::Result<()> {
    let path = match upstream {
        Some(u) => format!("/admin/upstreams/{}/{}/resume", enc(route), enc(u)),
        None => format!("/admin/upstreams/{}/resume", enc(route)),
    };
    println!("{}", call(c, t, "POST", &path).await?);
    Ok(())
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn call(c: &Config, t: &Target, method: &str, path: &str) -> anyhow::Result<Value> {
    let base = t.admin_url.clone().unwrap_or_else(|| {
        let mut addr = c.admin.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    });
    let token = match (&t.token, &c.admin.token) {
        (Some(t), _) => t.clone(),
        (None, Some(s)) => String::from_utf8_lossy(s.expose()).into_owned(),
        (None, None) => bail!("no admin token: set admin.token in the config or pass --token"),
    };
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let client = hookgate::deliver::forward::client();
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .context("admin API timed out")?
        .with_context(|| format!("cannot reach the admin API at {base}"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{method} {path}: {status} {}",
            v["error"].as_str().unwrap_or("")
        );
    }
    Ok(v)
}

/// Prints rows of JSON objects as tab-separated columns (answers cut to one line of 60 chars).
fn table(rows: &Value, cols: &[&str]) {
    println!("{}", cols.join("\t"));
    for row in rows.as_array().map(Vec::as_slice).unwrap_or_default() {
        let cells: Vec<String> = cols.iter().map(|c| cell(&row[*c])).collect();
        println!("{}", cells.join("\t"));
    }
}

fn cell(v: &Value) -> String {
    let s = match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.replace(['\n', '\t'], " ").chars().take(60).collect()
}
