//! How the operator reaches nodes: only through their admin API (`/admin/v1/`), signed
//! with the cluster's root credentials. `NodeApi` is the seam the reconcilers are tested
//! through (an in-process fake in unit tests; real nodes in the end-to-end tests): the
//! cluster's topology calls, and the identity and bucket calls of the access reconcilers.

use async_trait::async_trait;
use buckets_api::bucket::{BucketInfo, PutBucket};
use buckets_api::client::{AdminClient, AdminError, HttpClient};
use buckets_api::iam::{Attachment, CreatedKey, GroupInfo, MemberChange, NewName, PolicyInfo, UserInfo};
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

    // Identity and buckets (`/admin/v1/iam/…`, `/admin/v1/buckets/…`).
    async fn user(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<UserInfo, AdminError>;
    async fn add_user(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<UserInfo, AdminError>;
    async fn remove_user(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<(), AdminError>;
    async fn create_key(&self, endpoint: &str, credentials: &Credentials, user: &str)
    -> Result<CreatedKey, AdminError>;
    async fn remove_key(&self, endpoint: &str, credentials: &Credentials, access_key: &str) -> Result<(), AdminError>;
    /// Attaches (or detaches) a policy to one user or group.
    async fn attach(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        policy: &str,
        to: &Attachment,
        attach: bool,
    ) -> Result<PolicyInfo, AdminError>;
    async fn change_members(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        group: &str,
        change: &MemberChange,
    ) -> Result<GroupInfo, AdminError>;
    async fn policy(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<PolicyInfo, AdminError>;
    /// Creates or replaces a policy; `document` is its JSON text.
    async fn put_policy(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        name: &str,
        document: &str,
    ) -> Result<PolicyInfo, AdminError>;
    async fn remove_policy(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<(), AdminError>;
    async fn bucket(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<BucketInfo, AdminError>;
    async fn put_bucket(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        name: &str,
        bucket: &PutBucket,
    ) -> Result<BucketInfo, AdminError>;
    async fn delete_bucket(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<(), AdminError>;
}

/// A path segment as the admin API reads it: names of users, policies and buckets are
/// restricted to characters that need no escaping, and anything else is escaped so it
/// can never reach another endpoint.
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'+' | b'=' | b',' | b'@' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
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

    async fn user(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<UserInfo, AdminError> {
        let path = format!("/admin/v1/iam/users/{}", segment(name));
        self.client(endpoint, credentials).json("GET", &path, Vec::new()).await
    }

    async fn add_user(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<UserInfo, AdminError> {
        let request = NewName { name: name.to_string() };
        self.client(endpoint, credentials).send("POST", "/admin/v1/iam/users", &request).await
    }

    async fn remove_user(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<(), AdminError> {
        let path = format!("/admin/v1/iam/users/{}", segment(name));
        self.client(endpoint, credentials).json::<serde_json::Value>("DELETE", &path, Vec::new()).await.map(|_| ())
    }

    async fn create_key(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        user: &str,
    ) -> Result<CreatedKey, AdminError> {
        let path = format!("/admin/v1/iam/users/{}/keys", segment(user));
        self.client(endpoint, credentials).json("POST", &path, b"{}".to_vec()).await
    }

    async fn remove_key(&self, endpoint: &str, credentials: &Credentials, access_key: &str) -> Result<(), AdminError> {
        let path = format!("/admin/v1/iam/keys/{}", segment(access_key));
        self.client(endpoint, credentials).json::<serde_json::Value>("DELETE", &path, Vec::new()).await.map(|_| ())
    }

    async fn attach(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        policy: &str,
        to: &Attachment,
        attach: bool,
    ) -> Result<PolicyInfo, AdminError> {
        let verb = if attach { "attach" } else { "detach" };
        let path = format!("/admin/v1/iam/policies/{}/{verb}", segment(policy));
        self.client(endpoint, credentials).send("POST", &path, to).await
    }

    async fn change_members(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        group: &str,
        change: &MemberChange,
    ) -> Result<GroupInfo, AdminError> {
        let path = format!("/admin/v1/iam/groups/{}/members", segment(group));
        self.client(endpoint, credentials).send("POST", &path, change).await
    }

    async fn policy(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<PolicyInfo, AdminError> {
        let path = format!("/admin/v1/iam/policies/{}", segment(name));
        self.client(endpoint, credentials).json("GET", &path, Vec::new()).await
    }

    async fn put_policy(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        name: &str,
        document: &str,
    ) -> Result<PolicyInfo, AdminError> {
        let path = format!("/admin/v1/iam/policies/{}", segment(name));
        self.client(endpoint, credentials).json("PUT", &path, document.as_bytes().to_vec()).await
    }

    async fn remove_policy(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<(), AdminError> {
        let path = format!("/admin/v1/iam/policies/{}", segment(name));
        self.client(endpoint, credentials).json::<serde_json::Value>("DELETE", &path, Vec::new()).await.map(|_| ())
    }

    async fn bucket(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<BucketInfo, AdminError> {
        let path = format!("/admin/v1/buckets/{}", segment(name));
        self.client(endpoint, credentials).json("GET", &path, Vec::new()).await
    }

    async fn put_bucket(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        name: &str,
        bucket: &PutBucket,
    ) -> Result<BucketInfo, AdminError> {
        let path = format!("/admin/v1/buckets/{}", segment(name));
        self.client(endpoint, credentials).send("PUT", &path, bucket).await
    }

    async fn delete_bucket(&self, endpoint: &str, credentials: &Credentials, name: &str) -> Result<(), AdminError> {
        let path = format!("/admin/v1/buckets/{}", segment(name));
        self.client(endpoint, credentials).json::<serde_json::Value>("DELETE", &path, Vec::new()).await.map(|_| ())
    }
}
