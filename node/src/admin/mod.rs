//! The admin listener (`--admin-address`): Prometheus `/metrics` and the Kubernetes
//! probes `/health/live` and `/health/ready`. (The `/admin/v1/` API and peer RPC arrive
//! with the multi-node cluster.) Must never serve S3 or touch drives directly.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::storage::Store;

pub async fn handle(store: Arc<Store>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let respond = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("valid response")
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Ok(respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n".into()));
    }
    Ok(match request.uri().path() {
        "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4", store.metrics.render()),
        "/health/live" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/health/ready" => {
            if store.is_ready() {
                respond(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready: a set is below write quorum\n".into(),
                )
            }
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    })
}
