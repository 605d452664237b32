//! Test doubles for the reconciler's unit tests: a mock Kubernetes API (tower-test) that
//! keeps objects in memory and records every call, and in-process nodes that follow the
//! admin API's rules (bootstrap once, generation checks, no removal before a set is
//! drained). The end-to-end tests use a real API server and real nodes instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use buckets_api::{AdminError, AdminErrorCode, MigrationState, MigrationStatus, SetAction, SetId, SetState, Topology};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use crate::admin::{BootstrapPool, Credentials, NodeApi, NodeMode, NodeState};
use buckets_api::bucket::{BucketInfo, BucketVersioning, PutBucket};
use buckets_api::iam::{Attachment, CreatedKey, GroupInfo, KeyInfo, MemberChange, PolicyInfo, UserInfo};

/// The in-memory API server. Like a real one, every write gives the object a new
/// `resourceVersion`, and a write that names another than the object's current one is
/// refused with 409 Conflict (optimistic concurrency).
#[derive(Default)]
pub struct FakeApi {
    /// Object path (`/api/v1/namespaces/ns/secrets/name`) → object.
    pub objects: BTreeMap<String, Value>,
    /// `METHOD path` of every call, in order.
    pub calls: Vec<String>,
    next_uid: u64,
    /// The last resourceVersion handed out (one counter for all objects, as etcd's).
    resource_version: u64,
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    });
    Response::builder().status(code).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap()
}

fn ok(value: &Value) -> Response<Body> {
    Response::builder().status(200).body(Body::from(serde_json::to_vec(value).unwrap())).unwrap()
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn labels_match(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let labels = &object["metadata"]["labels"];
        match term.split_once('=') {
            Some((key, value)) => labels[key] == value,
            None => !labels[term].is_null(),
        }
    })
}

impl FakeApi {
    pub fn insert(&mut self, path: &str, mut object: Value) {
        self.next_uid += 1;
        object["metadata"]["uid"] = json!(format!("uid-{}", self.next_uid));
        object["metadata"]["resourceVersion"] = json!(self.next_resource_version());
        object["metadata"]["generation"] = json!(1);
        object["metadata"]["creationTimestamp"] = json!("2026-11-26T00:00:00Z");
        self.objects.insert(path.to_string(), object);
    }

    fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// Another writer changes the object at `path` (a new resourceVersion), as a second
    /// client or an earlier write of the operator's own, not yet seen by its cache.
    pub fn touch(&mut self, path: &str, change: impl FnOnce(&mut Value)) {
        let version = self.next_resource_version();
        let object = self.objects.get_mut(path).expect("the object exists");
        change(object);
        object["metadata"]["resourceVersion"] = json!(version);
    }

    pub fn get(&self, path: &str) -> Option<&Value> {
        self.objects.get(path)
    }

    /// Calls whose `METHOD path` contains `needle`.
    pub fn calls_matching(&self, needle: &str) -> Vec<String> {
        self.calls.iter().filter(|c| c.contains(needle)).cloned().collect()
    }

    fn handle(&mut self, method: &str, path: &str, query: &str, content_type: &str, body: &[u8]) -> Response<Body> {
        self.calls.push(format!("{method} {path}"));
        let params: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.replace("%3D", "=").replace("%2C", ",").replace("%2F", "/")))
            .collect();
        let body: Value =
            if body.is_empty() { Value::Null } else { serde_json::from_slice(body).unwrap_or(Value::Null) };
        let (object_path, subresource) = match path.strip_suffix("/status") {
            Some(p) if self.objects.contains_key(p) => (p.to_string(), Some("status")),
            _ => (path.to_string(), None),
        };
        match method {
            "GET" if self.objects.contains_key(&object_path) => ok(&self.objects[&object_path]),
            "GET" => {
                let prefix = format!("{path}/");
                let is_collection = self.objects.keys().any(|k| k.starts_with(&prefix))
                    || path.ends_with('s') && !path.ends_with("status");
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .filter(|v| params.get("labelSelector").is_none_or(|s| labels_match(v, s)))
                    .collect();
                if is_collection && self.looks_like_collection(path) {
                    ok(
                        &json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": self.resource_version.to_string() }, "items": items }),
                    )
                } else {
                    status(404, "NotFound", &format!("{path} not found"))
                }
            }
            "POST" => {
                let name = body["metadata"]["name"].as_str().unwrap_or("generated").to_string();
                let target = format!("{path}/{name}");
                if self.objects.contains_key(&target) {
                    return status(409, "AlreadyExists", &format!("{target} already exists"));
                }
                self.insert(&target, body);
                ok(&self.objects[&target])
            }
            "PATCH" => {
                let exists = self.objects.contains_key(&object_path);
                // A patch that names a resourceVersion is a precondition on it.
                let expected = body["metadata"]["resourceVersion"].as_str().map(str::to_string);
                if let (Some(expected), Some(current)) = (expected, self.objects.get(&object_path))
                    && current["metadata"]["resourceVersion"].as_str() != Some(expected.as_str())
                {
                    return status(
                        409,
                        "Conflict",
                        &format!(
                            "Operation cannot be fulfilled on {object_path}: the object has been modified; please apply your changes to the latest version and try again"
                        ),
                    );
                }
                let version = json!(self.next_resource_version());
                if content_type.contains("json-patch") {
                    let Some(object) = self.objects.get_mut(&object_path) else {
                        return status(404, "NotFound", "not found");
                    };
                    for op in body.as_array().cloned().unwrap_or_default() {
                        let pointer = op["path"].as_str().unwrap_or_default().trim_end_matches("/-").to_string();
                        match op["op"].as_str() {
                            Some("test") => {
                                let current = object.pointer(&pointer).cloned().unwrap_or(Value::Null);
                                if current != op["value"] {
                                    return status(422, "Invalid", "test failed");
                                }
                            }
                            Some("add") if op["path"].as_str().unwrap_or_default().ends_with("/-") => {
                                if let Some(Value::Array(list)) = object.pointer_mut(&pointer) {
                                    list.push(op["value"].clone());
                                }
                            }
                            Some("add") | Some("replace") => {
                                let (parent, key) = pointer.rsplit_once('/').unwrap();
                                if let Some(Value::Object(map)) = object.pointer_mut(parent) {
                                    map.insert(key.to_string(), op["value"].clone());
                                }
                            }
                            Some("remove") => {
                                let (parent, key) = pointer.rsplit_once('/').unwrap();
                                match object.pointer_mut(parent) {
                                    Some(Value::Array(list)) => {
                                        let index: usize = key.parse().unwrap();
                                        list.remove(index);
                                    }
                                    Some(Value::Object(map)) => {
                                        map.remove(key);
                                    }
                                    _ => {}
                                }
                            }
                            _ => {}
                        }
                    }
                    object["metadata"]["resourceVersion"] = version;
                    return ok(object);
                }
                if !exists {
                    if content_type.contains("apply-patch") {
                        self.insert(&object_path, body);
                        return ok(&self.objects[&object_path]);
                    }
                    return status(404, "NotFound", &format!("{object_path} not found"));
                }
                let object = self.objects.get_mut(&object_path).unwrap();
                match subresource {
                    Some(_) => merge(&mut object["status"], &body["status"]),
                    None if content_type.contains("apply-patch") => {
                        // Apply replaces the fields the manager owns: spec, labels, owners.
                        for key in ["spec", "data", "stringData"] {
                            if !body[key].is_null() {
                                object[key] = body[key].clone();
                            }
                        }
                        merge(&mut object["metadata"], &json!({ "labels": body["metadata"]["labels"].clone() }));
                    }
                    None => merge(object, &body),
                }
                object["metadata"]["resourceVersion"] = version;
                ok(object)
            }
            "DELETE" => match self.objects.get_mut(&object_path) {
                Some(object) => {
                    let finalizers = object["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
                    if finalizers {
                        object["metadata"]["deletionTimestamp"] = json!("2026-11-26T00:00:01Z");
                        self.resource_version += 1;
                        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
                        ok(object)
                    } else {
                        let removed = self.objects.remove(&object_path).unwrap();
                        ok(&removed)
                    }
                }
                None => status(404, "NotFound", "not found"),
            },
            _ => status(405, "MethodNotAllowed", method),
        }
    }

    fn looks_like_collection(&self, path: &str) -> bool {
        let last = path.rsplit('/').next().unwrap_or_default();
        matches!(
            last,
            "bucketspools"
                | "bucketsclusters"
                | "bucketsusers"
                | "bucketspolicies"
                | "bucketsbuckets"
                | "pods"
                | "statefulsets"
                | "poddisruptionbudgets"
                | "secrets"
                | "services"
        )
    }

    /// A fresh object after a finalizer removal: drops objects being deleted with none left.
    pub fn collect_garbage(&mut self) {
        self.objects.retain(|_, o| {
            o["metadata"]["deletionTimestamp"].is_null()
                || o["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty())
        });
    }
}

/// A kube Client whose requests go to a FakeApi (served on a spawned task).
pub fn fake_client(api: Arc<Mutex<FakeApi>>) -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or_default().to_string();
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = request.into_body().collect_bytes().await.unwrap_or_default();
            let response = api.lock().unwrap().handle(&method, &path, &query, &content_type, &body);
            send.send_response(response);
        }
    });
    kube::Client::new(service, "default")
}

impl Default for FakeNodeState {
    fn default() -> Self {
        FakeNodeState {
            topology: None,
            migration: None,
            throttle: 0,
            calls: Vec::new(),
            free_per_drive: 1 << 30,
            iam: FakeIam::default(),
        }
    }
}

/// The identity store and the buckets of the fake nodes, with the admin API's rules
/// (policies checked for a Statement, built-ins fixed, attached policies kept, a bucket
/// with objects not deleted, object lock only at creation).
#[derive(Default)]
pub struct FakeIam {
    pub users: BTreeMap<String, UserInfo>,
    pub policies: BTreeMap<String, Value>,
    pub groups: BTreeMap<String, Vec<String>>,
    pub buckets: BTreeMap<String, BucketInfo>,
    /// Objects per bucket (a bucket is empty without any).
    pub objects: BTreeMap<String, usize>,
    keys_made: usize,
}

const BUILTIN_POLICIES: &[&str] = &["readwrite", "readonly", "writeonly", "admin"];

impl FakeIam {
    fn user_mut(&mut self, name: &str) -> Result<&mut UserInfo, AdminError> {
        self.users.get_mut(name).ok_or_else(|| refused(404, AdminErrorCode::NoSuchUser, &format!("no user {name}")))
    }

    fn policy_info(&self, name: &str) -> Result<PolicyInfo, AdminError> {
        let builtin = BUILTIN_POLICIES.contains(&name);
        let document = match self.policies.get(name) {
            Some(document) => document.clone(),
            None if builtin => json!({ "Version": "2012-10-17", "Statement": [] }),
            None => return Err(refused(404, AdminErrorCode::NoSuchPolicy, &format!("no policy {name}"))),
        };
        let users = self.users.values().filter(|u| u.policies.iter().any(|p| p == name)).map(|u| u.name.clone());
        Ok(PolicyInfo { name: name.into(), builtin, document, users: users.collect(), groups: Vec::new() })
    }
}

/// In-process nodes: one topology, one migration, the admin API's rules.
#[derive(Default)]
pub struct FakeNodes {
    pub state: Mutex<FakeNodeState>,
}

pub struct FakeNodeState {
    pub topology: Option<Value>,
    /// None until the first change, then running until the test finishes it.
    pub migration: Option<MigrationState>,
    pub throttle: u64,
    pub calls: Vec<String>,
    /// Free bytes each drive reports.
    pub free_per_drive: u64,
    pub iam: FakeIam,
}

fn refused(status: u16, code: AdminErrorCode, message: &str) -> AdminError {
    AdminError::Refused { status, code, message: message.into() }
}

impl FakeNodes {
    /// Ends the running migration: every draining set is empty.
    pub fn finish_migration(&self) {
        self.state.lock().unwrap().migration = Some(MigrationState::Done);
    }

    fn topology_of(state: &FakeNodeState) -> Result<Topology, AdminError> {
        serde_json::from_value(
            state.topology.clone().ok_or_else(|| refused(503, AdminErrorCode::AwaitingTopology, "no topology"))?,
        )
        .map_err(|e| AdminError::Malformed(e.to_string()))
    }

    fn change(
        &self,
        call: String,
        expected: u64,
        change: impl FnOnce(&mut Value) -> Result<(), AdminError>,
    ) -> Result<Topology, AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(call);
        let topology =
            state.topology.as_mut().ok_or_else(|| refused(503, AdminErrorCode::AwaitingTopology, "no topology"))?;
        if topology["generation"] != expected {
            return Err(refused(409, AdminErrorCode::GenerationConflict, "stale generation"));
        }
        change(topology)?;
        topology["generation"] = json!(expected + 1);
        FakeNodes::topology_of(&state)
    }
}

#[async_trait]
impl NodeApi for FakeNodes {
    async fn node_state(&self, endpoint: &str, _: &Credentials) -> Result<NodeState, AdminError> {
        let state = self.state.lock().unwrap();
        let generation = state.topology.as_ref().map_or(0, |t| t["generation"].as_u64().unwrap());
        Ok(NodeState {
            state: if generation > 0 { NodeMode::Serving } else { NodeMode::AwaitingTopology },
            node_address: endpoint.into(),
            topology_generation: generation,
        })
    }

    async fn topology(&self, _: &str, _: &Credentials) -> Result<Topology, AdminError> {
        FakeNodes::topology_of(&self.state.lock().unwrap())
    }

    async fn migration(&self, _: &str, _: &Credentials) -> Result<MigrationStatus, AdminError> {
        let state = self.state.lock().unwrap();
        let topology = FakeNodes::topology_of(&state)?;
        let running = state.migration == Some(MigrationState::Running);
        let sets: Vec<Value> = topology
            .sets()
            .map(|(_, s)| {
                json!({
                    "generation": topology.generation, "set": s.id, "seq": 1,
                    "phase": if running { "moving" } else { "done" },
                    "bucket": "", "after": "", "totalObjects": 10, "totalBytes": 1000,
                    "movedObjects": if running { 5 } else { 10 }, "movedBytes": if running { 500 } else { 1000 },
                    "failedObjects": 0, "foundInPass": 0, "passes": 1, "lastError": null,
                    "startedUnix": 0, "updatedUnix": 10
                })
            })
            .collect();
        let state_name = state.migration.unwrap_or(MigrationState::Idle);
        serde_json::from_value(json!({
            "generation": topology.generation, "state": state_name, "paused": false,
            "bytesPerSecondLimit": state.throttle, "totalObjects": 10, "totalBytes": 1000,
            "movedObjects": if running { 5 } else { 10 }, "movedBytes": if running { 500 } else { 1000 },
            "failedObjects": 0, "percent": if running { 50.0 } else { 100.0 },
            "rateBytesPerSecond": 100.0, "etaSeconds": null, "lastError": null, "sets": sets
        }))
        .map_err(|e| AdminError::Malformed(e.to_string()))
    }

    async fn capacity(&self, _: &str, _: &Credentials) -> Result<crate::admin::Capacity, AdminError> {
        let state = self.state.lock().unwrap();
        let topology = FakeNodes::topology_of(&state)?;
        let sets: Vec<Value> = topology
            .sets()
            .filter(|(_, s)| s.state != SetState::Removed)
            .map(|(_, s)| {
                json!({
                    "id": s.id, "state": s.state, "drives": s.drives.len(), "drivesOnline": s.drives.len(),
                    "dataShards": 2, "parityShards": 2, "totalBytes": 4u64 << 30, "freeBytes": state.free_per_drive * 4,
                    "minFreeBytes": state.free_per_drive, "storedBytes": 1u64 << 20
                })
            })
            .collect();
        serde_json::from_value(json!({ "sets": sets })).map_err(|e| AdminError::Malformed(e.to_string()))
    }

    async fn bootstrap(
        &self,
        endpoint: &str,
        _: &Credentials,
        pools: Vec<BootstrapPool>,
    ) -> Result<Topology, AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("bootstrap via {endpoint}"));
        if state.topology.is_some() {
            return Err(refused(409, AdminErrorCode::AlreadyBootstrapped, "the cluster has a topology"));
        }
        let mut id = 0;
        let pools: Vec<Value> = pools
            .iter()
            .map(|p| {
                let sets: Vec<Value> = p
                    .sets
                    .iter()
                    .map(|drives| {
                        id += 1;
                        json!({ "id": id - 1, "state": "Active", "drives": drives, "weight": 1.0 })
                    })
                    .collect();
                json!({ "name": p.name, "sets": sets })
            })
            .collect();
        state.topology = Some(json!({
            "clusterId": "00000000-0000-4000-8000-000000000001", "generation": 1, "pools": pools
        }));
        FakeNodes::topology_of(&state)
    }

    async fn add_set(
        &self,
        _: &str,
        _: &Credentials,
        pool: &str,
        drives: Vec<String>,
        expected: u64,
    ) -> Result<Topology, AdminError> {
        let result = self.change(format!("add-set {pool} {}", drives[0]), expected, |topology| {
            let next_id = topology["pools"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["sets"].as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap() + 1))
                .max()
                .unwrap_or(0);
            let set = json!({ "id": next_id, "state": "Active", "drives": drives, "weight": 1.0 });
            let pools = topology["pools"].as_array_mut().unwrap();
            match pools.iter_mut().find(|p| p["name"] == pool) {
                Some(p) => p["sets"].as_array_mut().unwrap().push(set),
                None => pools.push(json!({ "name": pool, "sets": [set] })),
            }
            Ok(())
        });
        if result.is_ok() {
            self.state.lock().unwrap().migration = Some(MigrationState::Running);
        }
        result
    }

    async fn change_set(
        &self,
        _: &str,
        _: &Credentials,
        id: SetId,
        action: SetAction,
        expected: u64,
    ) -> Result<Topology, AdminError> {
        let migration_done = self.state.lock().unwrap().migration == Some(MigrationState::Done);
        let result = self.change(format!("{} {id}", action.as_str()), expected, |topology| {
            for pool in topology["pools"].as_array_mut().unwrap() {
                for set in pool["sets"].as_array_mut().unwrap() {
                    if set["id"] == id {
                        match action {
                            SetAction::Drain => set["state"] = json!("Draining"),
                            _ if !migration_done => {
                                return Err(refused(409, AdminErrorCode::SetNotEmpty, "objects left"));
                            }
                            _ => set["state"] = json!("Removed"),
                        }
                        return Ok(());
                    }
                }
            }
            Err(refused(404, AdminErrorCode::NoSuchSet, "no such set"))
        });
        if result.is_ok() && action == SetAction::Drain {
            self.state.lock().unwrap().migration = Some(MigrationState::Running);
        }
        result
    }

    async fn throttle(&self, _: &str, _: &Credentials, bytes_per_second: u64) -> Result<MigrationStatus, AdminError> {
        self.state.lock().unwrap().throttle = bytes_per_second;
        self.migration("", &Credentials { user: String::new(), password: String::new() }).await
    }

    async fn user(&self, _: &str, _: &Credentials, name: &str) -> Result<UserInfo, AdminError> {
        let mut state = self.state.lock().unwrap();
        state.iam.user_mut(name).cloned()
    }

    async fn add_user(&self, _: &str, _: &Credentials, name: &str) -> Result<UserInfo, AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("add-user {name}"));
        if state.iam.users.contains_key(name) {
            return Err(refused(409, AdminErrorCode::AlreadyExists, "exists"));
        }
        let user = UserInfo {
            name: name.into(),
            canonical_id: format!("id-{name}"),
            arn: format!("arn:aws:iam::buckets:user/{name}"),
            enabled: true,
            created: 1,
            policies: Vec::new(),
            groups: Vec::new(),
            keys: Vec::new(),
        };
        state.iam.users.insert(name.into(), user.clone());
        Ok(user)
    }

    async fn remove_user(&self, _: &str, _: &Credentials, name: &str) -> Result<(), AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("remove-user {name}"));
        state.iam.user_mut(name)?;
        state.iam.users.remove(name);
        for members in state.iam.groups.values_mut() {
            members.retain(|m| m != name);
        }
        Ok(())
    }

    async fn create_key(&self, _: &str, _: &Credentials, user: &str) -> Result<CreatedKey, AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("create-key {user}"));
        state.iam.keys_made += 1;
        let n = state.iam.keys_made;
        let (access_key, secret_key) = (format!("AK{n}"), format!("secret-{n}"));
        let info = state.iam.user_mut(user)?;
        info.keys.push(KeyInfo { access_key: access_key.clone(), user: user.into(), created: 1, expires: None });
        Ok(CreatedKey { user: user.into(), access_key, secret_key, expires: None })
    }

    async fn remove_key(&self, _: &str, _: &Credentials, access_key: &str) -> Result<(), AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("remove-key {access_key}"));
        let owner = state.iam.users.values_mut().find(|u| u.keys.iter().any(|k| k.access_key == access_key));
        let owner = owner.ok_or_else(|| refused(404, AdminErrorCode::NoSuchKey, "no such key"))?;
        owner.keys.retain(|k| k.access_key != access_key);
        Ok(())
    }

    async fn attach(
        &self,
        _: &str,
        _: &Credentials,
        policy: &str,
        to: &Attachment,
        attach: bool,
    ) -> Result<PolicyInfo, AdminError> {
        let mut state = self.state.lock().unwrap();
        let user = to.user.clone().unwrap_or_default();
        state.calls.push(format!("{} {policy} {user}", if attach { "attach" } else { "detach" }));
        state.iam.policy_info(policy)?;
        let info = state.iam.user_mut(&user)?;
        info.policies.retain(|p| p != policy);
        if attach {
            info.policies.push(policy.into());
        }
        state.iam.policy_info(policy)
    }

    async fn change_members(
        &self,
        _: &str,
        _: &Credentials,
        group: &str,
        change: &MemberChange,
    ) -> Result<GroupInfo, AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("members {group} +{:?} -{:?}", change.add, change.remove));
        let iam = &mut state.iam;
        let members =
            iam.groups.get_mut(group).ok_or_else(|| refused(404, AdminErrorCode::NoSuchGroup, "no such group"))?;
        members.retain(|m| !change.remove.contains(m) && !change.add.contains(m));
        members.extend(change.add.iter().cloned());
        let members = members.clone();
        for user in iam.users.values_mut() {
            user.groups.retain(|g| g != group);
            if members.contains(&user.name) {
                user.groups.push(group.into());
            }
        }
        Ok(GroupInfo { name: group.into(), members, policies: Vec::new() })
    }

    async fn policy(&self, _: &str, _: &Credentials, name: &str) -> Result<PolicyInfo, AdminError> {
        self.state.lock().unwrap().iam.policy_info(name)
    }

    async fn put_policy(&self, _: &str, _: &Credentials, name: &str, document: &str) -> Result<PolicyInfo, AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("put-policy {name}"));
        if BUILTIN_POLICIES.contains(&name) {
            return Err(refused(409, AdminErrorCode::PolicyInUse, "built-in policies cannot be changed"));
        }
        let document: Value = serde_json::from_str(document)
            .map_err(|e| refused(400, AdminErrorCode::MalformedPolicy, &format!("not JSON: {e}")))?;
        if document.get("Statement").is_none() {
            return Err(refused(400, AdminErrorCode::MalformedPolicy, "Missing required field Statement"));
        }
        state.iam.policies.insert(name.into(), document);
        state.iam.policy_info(name)
    }

    async fn remove_policy(&self, _: &str, _: &Credentials, name: &str) -> Result<(), AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("remove-policy {name}"));
        let info = state.iam.policy_info(name)?;
        if info.builtin || !info.users.is_empty() {
            return Err(refused(409, AdminErrorCode::PolicyInUse, "attached or built in"));
        }
        state.iam.policies.remove(name);
        Ok(())
    }

    async fn bucket(&self, _: &str, _: &Credentials, name: &str) -> Result<BucketInfo, AdminError> {
        let state = self.state.lock().unwrap();
        let mut info = state
            .iam
            .buckets
            .get(name)
            .cloned()
            .ok_or_else(|| refused(404, AdminErrorCode::NoSuchBucket, "no such bucket"))?;
        info.empty = state.iam.objects.get(name).copied().unwrap_or(0) == 0;
        Ok(info)
    }

    async fn put_bucket(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        name: &str,
        bucket: &PutBucket,
    ) -> Result<BucketInfo, AdminError> {
        {
            let mut state = self.state.lock().unwrap();
            state.calls.push(format!("put-bucket {name}"));
            if let Some(policy) = &bucket.policy
                && policy.get("Statement").is_none()
            {
                return Err(refused(400, AdminErrorCode::MalformedPolicy, "Missing required field Statement"));
            }
            let created = BucketInfo {
                name: name.into(),
                created: 1,
                versioning: bucket.object_lock.then_some(BucketVersioning::Enabled),
                object_lock: bucket.object_lock,
                policy: None,
                empty: true,
            };
            let info = state.iam.buckets.entry(name.into()).or_insert(created);
            if info.object_lock != bucket.object_lock {
                return Err(refused(409, AdminErrorCode::InvalidBucketState, "object lock only at creation"));
            }
            if bucket.versioning.is_some() {
                info.versioning = bucket.versioning;
            }
            info.policy = bucket.policy.clone();
        }
        self.bucket(endpoint, credentials, name).await
    }

    async fn delete_bucket(&self, _: &str, _: &Credentials, name: &str) -> Result<(), AdminError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("delete-bucket {name}"));
        if !state.iam.buckets.contains_key(name) {
            return Err(refused(404, AdminErrorCode::NoSuchBucket, "no such bucket"));
        }
        if state.iam.objects.get(name).copied().unwrap_or(0) > 0 {
            return Err(refused(409, AdminErrorCode::BucketNotEmpty, "The bucket you tried to delete is not empty"));
        }
        state.iam.buckets.remove(name);
        Ok(())
    }
}
