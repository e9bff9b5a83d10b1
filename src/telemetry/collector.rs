//! The exporter's HTTP client: the gateway's own hyper client, driven on the tokio runtime.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use opentelemetry_http::HttpError;
use tokio::runtime::Handle;

use crate::deliver::forward::{self, HttpClient};

/// Sends export requests to the collector.
#[derive(Clone)]
pub(super) struct Collector {
    client: HttpClient,
    runtime: Handle,
    timeout: Duration,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish_non_exhaustive()
    }
}

impl Collector {
    /// Must be called inside the runtime; http and https collectors alike (webpki roots).
    pub(super) fn new(timeout: Duration) -> Collector {
        Collector {
            client: forward::client(),
            runtime: Handle::current(),
            timeout,
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Collector {
    async fn send_bytes(&self, req: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // The SDK's batch thread polls this future outside the runtime; the request itself runs
        // on the runtime (hyper needs its reactor) and the thread only waits for the result.
        let (client, limit) = (self.client.clone(), self.timeout);
        let task = self.runtime.spawn(async move {
            let exchange = async {
                let resp = client.request(req.map(Full::new)).await?;
                let (parts, body) = resp.into_parts();
                let body = body.collect().await?.to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            };
            match tokio::time::timeout(limit, exchange).await {
                Ok(r) => r,
                Err(_) => Err(format!("collector did not answer within {limit:?}").into()),
            }
        });
        task.await?
    }
}
