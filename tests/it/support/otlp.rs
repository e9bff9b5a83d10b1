//! A small OTLP/HTTP trace receiver: POST /v1/traces with protobuf bodies, decoded with the
//! `opentelemetry-proto` definitions; every span received is kept for the test to inspect.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;

/// The receiver; cloned into its connection tasks.
#[derive(Clone, Default)]
pub struct Collector {
    pub spans: Arc<Mutex<Vec<Span>>>,
    /// `service.name` of the resources seen.
    pub services: Arc<Mutex<Vec<String>>>,
    pub url: String,
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = Collector {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ..Collector::default()
        };
        let me = c.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let me = me.clone();
                let svc = hyper::service::service_fn(move |req| me.clone().export(req));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        c
    }

    async fn export(
        self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
        let path_ok = req.uri().path() == "/v1/traces" && req.method() == hyper::Method::POST;
        let body = req.into_body().collect().await?.to_bytes();
        let decoded = ExportTraceServiceRequest::decode(body.as_ref());
        let status = match (path_ok, decoded) {
            (true, Ok(export)) => {
                self.keep(export);
                200
            }
            _ => 400,
        };
        let resp = hyper::Response::builder()
            .status(status)
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::new()))
            .unwrap();
        Ok(resp)
    }

    fn keep(&self, export: ExportTraceServiceRequest) {
        for rs in export.resource_spans {
            if let Some(r) = &rs.resource {
                let name = r.attributes.iter().find(|a| a.key == "service.name");
                if let Some(n) = name.and_then(|a| string_of(a.value.as_ref()?.value.as_ref()?)) {
                    self.services.lock().unwrap().push(n);
                }
            }
            for ss in rs.scope_spans {
                self.spans.lock().unwrap().extend(ss.spans);
            }
        }
    }

    /// Spans received so far named `name`.
    pub fn named(&self, name: &str) -> Vec<Span> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }
}

fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// A span attribute as text (strings as they are, numbers formatted), None when absent.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    let kv = span.attributes.iter().find(|a| a.key == key)?;
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}
