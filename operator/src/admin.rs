//! How the operator reaches nodes: only through their admin API (`/admin/v1/`), signed
//! with the cluster's root credentials. `NodeApi` is the seam the reconciler is tested
//! through (an in-process fake in unit tests; real nodes in the end-to-end tests).

use async_trait::async_trait;
pub use buckets_node::admin::Capacity;
use buckets_node::admin::client::{AdminClient, AdminError};
use buckets_node::placement::topology::Topology;
use buckets_node::rpc::client::PeerClient;
use buckets_node::storage::migration::MigrationStatus;
use serde::{Deserialize, Serialize};

/// The root credentials the admin API is signed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// `GET /admin/v1/node`: whether a node serves a topology or waits for one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    /// `serving` or `awaitingTopology`.
    pub state: String,
    /// The HOST:PORT the node answers to (its drive URLs' authority).
    pub node_address: String,
    /// 0 while it waits for a topology.
    pub topology_generation: u64,
}

pub const SERVING: &str = "serving";
pub const AWAITING_TOPOLOGY: &str = "awaitingTopology";

/// One pool of `POST /admin/v1/bootstrap`: its sets, each a list of drive URLs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapPool {
    pub name: String,
    pub sets: Vec<Vec<String>>,
}

#[async_trait]
pub trait NodeApi: Send + Sync {
    async fn node_state(&self, endpoint: &str, credentials: &Credentials) -> Result<NodeState, AdminError>;
    async fn topology(&self, endpoint: &str, credentials: &Credentials) -> Result<Topology, AdminError>;
    async fn migration(&self, endpoint: &str, credentials: &Credentials) -> Result<MigrationStatus, AdminError>;
    async fn capacity(&self, endpoint: &str, credentials: &Credentials) -> Result<Capacity, AdminError>;
    async fn bootstrap(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        pools: Vec<BootstrapPool>,
    ) -> Result<Topology, AdminError>;
    async fn add_set(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        pool: &str,
        drives: Vec<String>,
        expected_generation: u64,
    ) -> Result<Topology, AdminError>;
    /// `action` is `drain` or `remove`.
    async fn change_set(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        id: i64,
        action: &str,
        expected_generation: u64,
    ) -> Result<Topology, AdminError>;
    async fn throttle(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        bytes_per_second: u64,
    ) -> Result<MigrationStatus, AdminError>;
}

/// The admin API over HTTP.
pub struct HttpNodeApi {
    client: PeerClient,
}

impl HttpNodeApi {
    pub fn new() -> Self {
        HttpNodeApi { client: buckets_node::rpc::client::peer_client(None) }
    }

    fn client(&self, endpoint: &str, credentials: &Credentials) -> AdminClient {
        AdminClient::new(endpoint, credentials.user.clone(), credentials.password.clone(), self.client.clone())
    }
}

impl Default for HttpNodeApi {
    fn default() -> Self {
        Self::new()
    }
}

fn body(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("JSON values serialize")
}

#[async_trait]
impl NodeApi for HttpNodeApi {
    async fn node_state(&self, endpoint: &str, credentials: &Credentials) -> Result<NodeState, AdminError> {
        self.client(endpoint, credentials).json("GET", "/admin/v1/node", Vec::new()).await
    }

    async fn topology(&self, endpoint: &str, credentials: &Credentials) -> Result<Topology, AdminError> {
        self.client(endpoint, credentials).json("GET", "/admin/v1/topology", Vec::new()).await
    }

    async fn migration(&self, endpoint: &str, credentials: &Credentials) -> Result<MigrationStatus, AdminError> {
        self.client(endpoint, credentials).json("GET", "/admin/v1/migration", Vec::new()).await
    }

    async fn capacity(&self, endpoint: &str, credentials: &Credentials) -> Result<Capacity, AdminError> {
        self.client(endpoint, credentials).json("GET", "/admin/v1/capacity", Vec::new()).await
    }

    async fn bootstrap(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        pools: Vec<BootstrapPool>,
    ) -> Result<Topology, AdminError> {
        let request = body(serde_json::json!({ "pools": pools }));
        self.client(endpoint, credentials).json("POST", "/admin/v1/bootstrap", request).await
    }

    async fn add_set(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        pool: &str,
        drives: Vec<String>,
        expected_generation: u64,
    ) -> Result<Topology, AdminError> {
        let request =
            body(serde_json::json!({ "pool": pool, "drives": drives, "expectedGeneration": expected_generation }));
        self.client(endpoint, credentials).json("POST", "/admin/v1/sets", request).await
    }

    async fn change_set(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        id: i64,
        action: &str,
        expected_generation: u64,
    ) -> Result<Topology, AdminError> {
        let request = body(serde_json::json!({ "expectedGeneration": expected_generation }));
        self.client(endpoint, credentials).json("POST", &format!("/admin/v1/sets/{id}/{action}"), request).await
    }

    async fn throttle(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        bytes_per_second: u64,
    ) -> Result<MigrationStatus, AdminError> {
        let request = body(serde_json::json!({ "bytesPerSecond": bytes_per_second }));
        self.client(endpoint, credentials).json("POST", "/admin/v1/migration/throttle", request).await
    }
}
