//! `GET /console`: the web console (docs/console.md), plain HTML, CSS and JS modules embedded at
//! build time, so it works offline and ships with the binary. It holds the admin token in the tab
//! (sessionStorage) and calls the JSON API with `Authorization: Bearer`; no cookie is ever set,
//! so there is nothing for a cross-site request to ride on.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use hyper::Response;

/// The console's files: path, content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/console",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "/console/app.js",
        "text/javascript; charset=utf-8",
        include_str!("console/app.js"),
    ),
    (
        "/console/api.js",
        "text/javascript; charset=utf-8",
        include_str!("console/api.js"),
    ),
    (
        "/console/dom.js",
        "text/javascript; charset=utf-8",
        include_str!("console/dom.js"),
    ),
    (
        "/console/pages.js",
        "text/javascript; charset=utf-8",
        include_str!("console/pages.js"),
    ),
    (
        "/console/charts.js",
        "text/javascript; charset=utf-8",
        include_str!("console/charts.js"),
    ),
    (
        "/console/app.css",
        "text/css; charset=utf-8",
        include_str!("console/app.css"),
    ),
    (
        "/console/icon.svg",
        "image/svg+xml",
        include_str!("console/icon.svg"),
    ),
];

/// No inline script or style, nothing from elsewhere, no framing: what an injected string could
/// do is limited by the browser even if escaping were ever missed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is one of the console's files (`/console/` included).
pub(super) fn serves(path: &str) -> bool {
    path == "/console/" || ASSETS.iter().any(|(p, _, _)| *p == path)
}

/// One of the console's files, with the headers that keep it contained.
pub(super) fn asset(path: &str) -> Response<Full<Bytes>> {
    let path = if path == "/console/" {
        "/console"
    } else {
        path
    };
    let Some((_, ctype, body)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Assets change with the binary; revalidating is cheap on loopback.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_a_strict_policy() {
        for (path, ctype, _) in ASSETS {
            let resp = asset(path);
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], *ctype);
            let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
            assert_eq!(resp.headers()[header::X_FRAME_OPTIONS], "DENY");
        }
        assert!(serves("/console/") && !serves("/console/secret"));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = include_str!("console/index.html");
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("<style"));
        let js = include_str!("console/app.js");
        assert!(
            !js.contains("innerHTML"),
            "sender strings go through textContent"
        );
    }
}
