//! The admin listener (`--admin-address`): Prometheus `/metrics`, the Kubernetes probes
//! `/health/live` and `/health/ready`, and the admin API under `/admin/v1/` (root
//! credentials required, see `auth`). Peer RPC shares the listener (`rpc::server`). Must
//! never serve S3 or touch drives directly.

mod buckets;
mod iam;

use std::convert::Infallible;
use std::sync::Arc;

use buckets_api::AdminErrorCode as Code;
use buckets_api::SetAction;
use buckets_api::auth;
use buckets_api::error::ErrorBody;
use buckets_api::wire::{
    AddSet, ApplyTopology, BootstrapRequest, Capacity, DriveInfo, NodeInfo, NodeMode, NodeState, PreviewRequest,
    SetCapacity, SetChange, Throttle,
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::cluster::topology::{Change, TopologyCoordinator};
use crate::placement::topology::{TopologyError, TopologyRules};
use crate::storage::{Store, TopologyChangeError};

/// Largest admin request body (a topology document).
const MAX_ADMIN_BODY_BYTES: usize = 1024 * 1024;

pub struct Admin {
    pub store: Arc<Store>,
    pub root_user: String,
    pub root_password: String,
    /// Every topology change goes through it.
    pub topology: TopologyCoordinator,
    /// How peers reach this node (`local` for a lone node).
    pub node_address: String,
    /// Users, keys, groups and policies.
    pub iam: Arc<crate::iam::Iam>,
}

/// A request whose signature checked out.
pub struct SignedRequest {
    pub method: Method,
    /// Path without the `/admin/v1/` prefix, split at `/`.
    pub path: String,
    pub body: Bytes,
}

impl SignedRequest {
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').collect()
    }
}

/// Reads an admin request and checks its signature with the root credentials.
pub async fn read_signed(
    root_user: &str,
    root_password: &str,
    request: Request<Incoming>,
) -> Result<SignedRequest, Response<Full<Bytes>>> {
    let method = request.method().clone();
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match Limited::new(request.into_body(), MAX_ADMIN_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(json_error(StatusCode::PAYLOAD_TOO_LARGE, Code::BodyTooLarge, "request body too large")),
    };
    let verdict = auth::verify(
        root_user,
        root_password.as_bytes(),
        method.as_str(),
        &path_and_query,
        &body,
        header.as_deref(),
        crate::clock::unix_now(),
    );
    if let Err(why) = verdict {
        return Err(json_error(StatusCode::FORBIDDEN, Code::AccessDenied, why));
    }
    let path = path_and_query.split('?').next().unwrap_or_default().trim_start_matches("/admin/v1/").to_string();
    Ok(SignedRequest { method, path, body })
}

/// The admin listener of a member node that waits for a topology: probes, its state,
/// and bootstrap; everything else is unavailable until it serves.
pub async fn handle_awaiting(
    member: Arc<crate::cluster::member::Member>,
    metrics: Arc<crate::metrics::Metrics>,
    root_user: Arc<str>,
    root_password: Arc<str>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    if !path.starts_with("/admin/") {
        return Ok(match path.as_str() {
            "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4", metrics.render()),
            "/health/live" => respond(StatusCode::OK, "text/plain", "ok\n"),
            "/health/ready" => {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready: awaiting a topology\n")
            }
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        });
    }
    let request = match read_signed(&root_user, &root_password, request).await {
        Ok(request) => request,
        Err(response) => return Ok(response),
    };
    Ok(match (&request.method, request.segments().as_slice()) {
        (&Method::GET, ["node"]) => json_ok(&NodeState {
            state: NodeMode::AwaitingTopology,
            node_address: member.own_authority.clone(),
            topology_generation: 0,
        }),
        (&Method::POST, ["bootstrap"]) => {
            let bootstrap: BootstrapRequest = match serde_json::from_slice(&request.body) {
                Ok(bootstrap) => bootstrap,
                Err(e) => return Ok(json_error(StatusCode::BAD_REQUEST, Code::MalformedRequest, &e.to_string())),
            };
            match member.bootstrap(&bootstrap).await {
                Ok(topology) => json_ok(&topology),
                Err(e) => json_error(StatusCode::CONFLICT, Code::BootstrapFailed, &e),
            }
        }
        _ => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::AwaitingTopology,
            "this node waits for a topology: bootstrap the cluster or add its drives as a set",
        ),
    })
}

fn json_ok<T: serde::Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(json) => respond(StatusCode::OK, "application/json", json),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, Code::InternalError, &e.to_string()),
    }
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("valid response")
}

fn json_error(status: StatusCode, code: Code, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&ErrorBody::new(&code, message)).expect("an error body serialises");
    respond(status, "application/json", body)
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
        let request = match read_signed(&self.root_user, &self.root_password, request).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        let (method, body) = (request.method.clone(), request.body.clone());
        match (method, request.segments().as_slice()) {
            (Method::GET, ["node"]) => json_ok(&NodeState {
                state: NodeMode::Serving,
                node_address: self.node_address.clone(),
                topology_generation: self.store.topology().generation,
            }),
            (Method::POST, ["bootstrap"]) => {
                // Already bootstrapped: the same request again is answered with the
                // topology (a retry after a lost answer); anything else is refused.
                let topology = self.store.topology();
                let same = serde_json::from_slice::<BootstrapRequest>(&body).is_ok_and(|request| {
                    let asked: Vec<Vec<String>> = request.pools.iter().flat_map(|p| p.sets.iter().cloned()).collect();
                    let have: Vec<Vec<String>> = topology.sets().map(|(_, s)| s.drives.clone()).collect();
                    have.starts_with(&asked) && topology.generation >= 1
                });
                if same {
                    json_ok(topology.as_ref())
                } else {
                    json_error(StatusCode::CONFLICT, Code::AlreadyBootstrapped, "this cluster already has a topology")
                }
            }
            (Method::GET, ["capacity"]) => json_ok(&self.capacity().await),
            (Method::GET, ["topology"]) => json_ok(self.store.topology().as_ref()),
            (Method::POST, ["topology"]) => {
                let request: ApplyTopology = match serde_json::from_slice(&body) {
                    Ok(request) => request,
                    Err(e) => return json_error(StatusCode::BAD_REQUEST, Code::MalformedTopology, &e.to_string()),
                };
                self.change(Some(request.expected_generation), Change::Replace(request.topology)).await
            }
            (Method::POST, ["topology", "preview"]) => {
                let request: PreviewRequest = match serde_json::from_slice(&body) {
                    Ok(request) => request,
                    Err(e) => return json_error(StatusCode::BAD_REQUEST, Code::MalformedTopology, &e.to_string()),
                };
                if let Err(e) = self.store.topology().check_next(&request.topology) {
                    return json_error(StatusCode::BAD_REQUEST, Code::InvalidTopology, &e.to_string());
                }
                match self.store.preview_topology(&request.topology).await {
                    Ok(preview) => json_ok(&preview),
                    Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, &e.to_string()),
                }
            }
            (Method::POST, ["sets"]) => {
                let request: AddSet = match serde_json::from_slice(&body) {
                    Ok(request) => request,
                    Err(e) => return json_error(StatusCode::BAD_REQUEST, Code::MalformedRequest, &e.to_string()),
                };
                self.change(request.expected_generation, Change::AddSet { pool: request.pool, drives: request.drives })
                    .await
            }
            (Method::POST, ["sets", id, action]) if SetAction::parse(action).is_some() => {
                let action = SetAction::parse(action).expect("matched above");
                let Ok(id) = id.parse::<crate::placement::ring::SetId>() else {
                    return json_error(StatusCode::BAD_REQUEST, Code::InvalidSet, "a set id is a number");
                };
                let change: SetChange = if body.is_empty() {
                    SetChange::default()
                } else {
                    match serde_json::from_slice(&body) {
                        Ok(change) => change,
                        Err(e) => return json_error(StatusCode::BAD_REQUEST, Code::MalformedRequest, &e.to_string()),
                    }
                };
                let set_change = match action {
                    SetAction::Drain => Change::Drain(id),
                    SetAction::Remove => Change::Remove(id),
                };
                self.change(change.expected_generation, set_change).await
            }
            (Method::GET, ["migration"]) => json_ok(&self.store.migration_status().await),
            (Method::POST, ["migration", action @ ("pause" | "resume")]) => {
                let paused = *action == "pause";
                match self.store.update_migration_control(|c| c.paused = paused).await {
                    Ok(_) => {
                        // This node resumes now; the others see it at their next check (1 s).
                        self.store.migrate_now.notify_one();
                        json_ok(&self.store.migration_status().await)
                    }
                    Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, &e.to_string()),
                }
            }
            (Method::POST, ["migration", "throttle"]) => {
                let request: Throttle = match serde_json::from_slice(&body) {
                    Ok(request) => request,
                    Err(e) => return json_error(StatusCode::BAD_REQUEST, Code::MalformedRequest, &e.to_string()),
                };
                match self.store.update_migration_control(|c| c.bytes_per_second = request.bytes_per_second).await {
                    Ok(_) => json_ok(&self.store.migration_status().await),
                    Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, &e.to_string()),
                }
            }
            (method, ["iam", rest @ ..]) => iam::handle(&self.iam, &method, rest, &body).await,
            (method, ["buckets", rest @ ..]) => buckets::handle(&self.store, &method, rest, &body).await,
            (Method::GET, ["nodes"]) => json_ok(&self.nodes()),
            (Method::GET, ["nodes", name]) => match self.nodes().into_iter().find(|n| n.name == *name) {
                Some(node) => json_ok(&node),
                None => json_error(StatusCode::NOT_FOUND, Code::NoSuchNode, &format!("no node named {name}")),
            },
            _ => json_error(StatusCode::NOT_FOUND, Code::NotFound, "no such admin endpoint"),
        }
    }

    /// A topology change through the coordinator: the new topology (every node told of
    /// it), or why it was refused.
    async fn change(&self, expected: Option<u64>, change: Change) -> Response<Full<Bytes>> {
        use TopologyChangeError as E;
        match self.topology.change(expected, change).await {
            Ok(topology) => json_ok(topology.as_ref()),
            Err(e @ E::Conflict { .. }) => json_error(StatusCode::CONFLICT, Code::GenerationConflict, &e.to_string()),
            Err(E::Invalid(e)) => {
                let (status, code) = match e {
                    TopologyError::NoSuchSet(_) => (StatusCode::NOT_FOUND, Code::NoSuchSet),
                    TopologyError::AlreadyDraining(_) => (StatusCode::CONFLICT, Code::AlreadyDraining),
                    TopologyError::NotDrained(_) => (StatusCode::CONFLICT, Code::SetNotDrained),
                    TopologyError::SetRemoved(_) => (StatusCode::CONFLICT, Code::SetRemoved),
                    TopologyError::LastActiveSet(_) => (StatusCode::CONFLICT, Code::LastActiveSet),
                    _ => {
                        let message = E::Invalid(e).to_string();
                        return json_error(StatusCode::BAD_REQUEST, Code::InvalidTopology, &message);
                    }
                };
                json_error(status, code, &e.to_string())
            }
            Err(e @ E::Unsupported(_)) => json_error(StatusCode::BAD_REQUEST, Code::InvalidTopology, &e.to_string()),
            Err(e @ E::Drives(_)) => json_error(StatusCode::BAD_REQUEST, Code::InvalidDrives, &e.to_string()),
            Err(e @ E::NotEmpty(_)) => json_error(StatusCode::CONFLICT, Code::SetNotEmpty, &e.to_string()),
            Err(e @ E::Store(_)) => json_error(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, &e.to_string()),
        }
    }

    /// Usage of every set in service, from its online drives.
    async fn capacity(&self) -> Capacity {
        let topology = self.store.topology();
        let mut sets = Vec::new();
        for set in self.store.sets().iter() {
            let drives = set.drives().to_vec();
            let usages: Vec<crate::storage::drive::DriveUsage> = tokio::task::spawn_blocking(move || {
                drives.iter().filter(|d| d.is_online()).filter_map(|d| d.usage().ok()).collect()
            })
            .await
            .unwrap_or_default();
            let erasure = set.erasure();
            sets.push(SetCapacity {
                id: set.id,
                state: topology.set(set.id).map_or(crate::placement::topology::SetState::Active, |s| s.state),
                drives: set.drives().len(),
                drives_online: usages.len(),
                data_shards: erasure.data_shards,
                parity_shards: erasure.parity_shards,
                total_bytes: usages.iter().map(|u| u.total_bytes).sum(),
                free_bytes: usages.iter().map(|u| u.free_bytes).sum(),
                min_free_bytes: usages.iter().map(|u| u.free_bytes).min().unwrap_or(0),
                stored_bytes: usages.iter().map(|u| u.stored_bytes).sum(),
            });
        }
        Capacity { sets }
    }

    /// The nodes named by the topology's drives, with their drives' state as this node
    /// sees it.
    fn nodes(&self) -> Vec<NodeInfo> {
        let topology = self.store.topology();
        let mut nodes: Vec<NodeInfo> = Vec::new();
        for (_, spec) in topology.sets() {
            let running = self.store.set_by_id(spec.id);
            for (position, drive) in spec.drives.iter().enumerate() {
                let name = crate::storage::bootstrap::parse_drive_url(drive)
                    .map(|url| url.authority)
                    .unwrap_or_else(|_| "local".to_string());
                let online = running.as_ref().and_then(|set| set.drives().get(position)).is_some_and(|d| d.is_online());
                let info = DriveInfo { drive: drive.clone(), set: spec.id, set_state: spec.state, online };
                match nodes.iter_mut().find(|n| n.name == name) {
                    Some(node) => node.drives.push(info),
                    None => nodes.push(NodeInfo {
                        name,
                        online: false,
                        drives_total: 0,
                        drives_online: 0,
                        drives: vec![info],
                    }),
                }
            }
        }
        for node in &mut nodes {
            node.drives_total = node.drives.len();
            node.drives_online = node.drives.iter().filter(|d| d.online).count();
            node.online = node.drives_online > 0;
        }
        nodes
    }
}
