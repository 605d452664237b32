//! How the operator reaches nodes: only through their admin API (`/admin/v1/`), signed
//! with the cluster's root credentials. `NodeApi` is the seam the reconciler is tested
//! through (an in-process fake in unit tests; real nodes in the end-to-end tests).

use async_trait::async_trait;
use buckets_api::client::{AdminClient, AdminError, HttpClient};
use buckets_api::wire::{AddSet, BootstrapRequest, SetChange, Throttle};
pub use buckets_api::wire::{BootstrapPool, Capacity, NodeMode, NodeState};
use buckets_api::{MigrationStatus, SetAction, SetId, Topology};

/// The root credentials the admin API is signed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
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
    async fn change_set(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        id: SetId,
        action: SetAction,
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
    client: HttpClient,
}

impl HttpNodeApi {
    pub fn new() -> Self {
        HttpNodeApi { client: AdminClient::http(None) }
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
        let request = BootstrapRequest { pools };
        self.client(endpoint, credentials).send("POST", "/admin/v1/bootstrap", &request).await
    }

    async fn add_set(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        pool: &str,
        drives: Vec<String>,
        expected_generation: u64,
    ) -> Result<Topology, AdminError> {
        let request = AddSet { pool: Some(pool.to_string()), drives, expected_generation: Some(expected_generation) };
        self.client(endpoint, credentials).send("POST", "/admin/v1/sets", &request).await
    }

    async fn change_set(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        id: SetId,
        action: SetAction,
        expected_generation: u64,
    ) -> Result<Topology, AdminError> {
        let request = SetChange { expected_generation: Some(expected_generation) };
        self.client(endpoint, credentials).send("POST", &action.path(id), &request).await
    }

    async fn throttle(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        bytes_per_second: u64,
    ) -> Result<MigrationStatus, AdminError> {
        let request = Throttle { bytes_per_second };
        self.client(endpoint, credentials).send("POST", "/admin/v1/migration/throttle", &request).await
    }
}
