//! The admin listener (`--admin-address`): Prometheus `/metrics`, the Kubernetes probes
//! `/health/live` and `/health/ready`, and the admin API under `/admin/v1/` (root
//! credentials required, see `auth`). Peer RPC shares the listener (`rpc::server`). Must
//! never serve S3 or touch drives directly.

pub mod auth;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::storage::Store;

/// Largest admin request body (a topology document).
const MAX_ADMIN_BODY_BYTES: usize = 1024 * 1024;

pub struct Admin {
    pub store: Arc<Store>,
    pub root_user: String,
    pub root_password: String,
    /// Tells the other nodes of a cluster to load a new topology (none on a lone node).
    pub peers: Option<Arc<crate::rpc::Peers>>,
}

/// Body of `POST /admin/v1/topology`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplyTopology {
    expected_generation: u64,
    topology: crate::placement::topology::Topology,
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("valid response")
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": code, "message": message });
    respond(status, "application/json", body.to_string())
}

pub async fn handle(admin: Arc<Admin>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    if path.starts_with("/admin/") {
        return Ok(admin.api(request).await);
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Ok(respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n"));
    }
    let store = &admin.store;
    Ok(match path.as_str() {
        "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4", store.metrics.render()),
        "/health/live" => respond(StatusCode::OK, "text/plain", "ok\n"),
        "/health/ready" => {
            if store.is_ready() {
                respond(StatusCode::OK, "text/plain", "ready\n")
            } else {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready: a set is below write quorum\n")
            }
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    })
}

impl Admin {
    async fn api(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = request.method().clone();
        let path_and_query = request.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
        let header =
            request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = match Limited::new(request.into_body(), MAX_ADMIN_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return json_error(StatusCode::PAYLOAD_TOO_LARGE, "BodyTooLarge", "request body too large"),
        };
        let verdict = auth::verify(
            &self.root_user,
            self.root_password.as_bytes(),
            method.as_str(),
            &path_and_query,
            &body,
            header.as_deref(),
            crate::rpc::unix_now(),
        );
        if let Err(why) = verdict {
            return json_error(StatusCode::FORBIDDEN, "AccessDenied", why);
        }
        let path = path_and_query.split('?').next().unwrap_or_default();
        match (method, path) {
            (Method::GET, "/admin/v1/topology") => {
                let topology = self.store.topology();
                match serde_json::to_vec_pretty(topology.as_ref()) {
                    Ok(json) => respond(StatusCode::OK, "application/json", json),
                    Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e.to_string()),
                }
            }
            (Method::POST, "/admin/v1/topology") => {
                let request: ApplyTopology = match serde_json::from_slice(&body) {
                    Ok(request) => request,
                    Err(e) => return json_error(StatusCode::BAD_REQUEST, "MalformedTopology", &e.to_string()),
                };
                use crate::storage::TopologyChangeError as E;
                match self.store.apply_topology(request.expected_generation, request.topology).await {
                    Ok(topology) => {
                        if let Some(peers) = &self.peers {
                            peers.push_topology().await;
                        }
                        match serde_json::to_vec_pretty(topology.as_ref()) {
                            Ok(json) => respond(StatusCode::OK, "application/json", json),
                            Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e.to_string()),
                        }
                    }
                    Err(e @ E::Conflict { .. }) => {
                        json_error(StatusCode::CONFLICT, "GenerationConflict", &e.to_string())
                    }
                    Err(e @ (E::Invalid(_) | E::Unsupported(_))) => {
                        json_error(StatusCode::BAD_REQUEST, "InvalidTopology", &e.to_string())
                    }
                    Err(e @ E::Store(_)) => json_error(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", &e.to_string()),
                }
            }
            _ => json_error(StatusCode::NOT_FOUND, "NotFound", "no such admin endpoint"),
        }
    }
}
