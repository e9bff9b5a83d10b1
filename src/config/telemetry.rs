//! `[telemetry]`: where traces go, validated at load so `hookgate check` catches a bad URL.

use std::time::Duration;

use super::ConfigError;
use super::cx::Cx;
use super::raw::RawTelemetry;

/// Export intervals above this would hold spans (and memory) for no reason.
const MAX_EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Spans held for export at most; each is a few hundred bytes.
const MAX_QUEUED_SPANS: usize = 1 << 20;

/// Traces over OTLP/HTTP (protobuf).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The collector's traces URL (`…/v1/traces`).
    pub endpoint: http::Uri,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// How often a batch of finished spans is sent.
    pub export_interval: Duration,
    /// Finished spans held while waiting for export; past it new spans are dropped.
    pub max_queued_spans: usize,
}

/// None when `otlp_endpoint` is absent: telemetry is off.
pub(super) fn telemetry(
    cx: &Cx,
    raw: RawTelemetry,
) -> Result<Option<TelemetryConfig>, ConfigError> {
    let Some(url) = raw.otlp_endpoint else {
        return Ok(None);
    };
    let key = "telemetry.otlp_endpoint";
    let endpoint = traces_url(&url).ok_or_else(|| {
        cx.err(
            key,
            format!("{url:?} must be an absolute http:// or https:// URL"),
        )
    })?;
    if raw.service_name.trim().is_empty() {
        return Err(cx.err("telemetry.service_name", "must not be empty"));
    }
    let interval = "telemetry.export_interval";
    Ok(Some(TelemetryConfig {
        endpoint,
        service_name: raw.service_name,
        export_interval: cx.positive_within(interval, &raw.export_interval, MAX_EXPORT_INTERVAL)?,
        max_queued_spans: match raw.max_queued_spans {
            0 => return Err(cx.err("telemetry.max_queued_spans", "must be at least 1")),
            n => cx.count("telemetry.max_queued_spans", n, MAX_QUEUED_SPANS)?,
        },
    }))
}

/// `http://host:4318` → `http://host:4318/v1/traces`; a URL with a path is taken as it is.
fn traces_url(url: &str) -> Option<http::Uri> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return None;
    }
    match uri.path() {
        "" | "/" => format!("{}/v1/traces", url.trim_end_matches('/'))
            .parse()
            .ok(),
        _ => Some(uri),
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn a_bare_collector_url_gets_the_traces_path() {
        let at = |s: &str| traces_url(s).map(|u| u.to_string());
        assert_eq!(
            at("http://127.0.0.1:4318").as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            at("http://c:4318/").as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            at("https://c/otlp/v1/traces").as_deref(),
            Some("https://c/otlp/v1/traces")
        );
        assert_eq!(at("ftp://c:4318"), None);
        assert_eq!(at("127.0.0.1:4318"), None);
        assert_eq!(at("not a url"), None);
    }
}
