//! Cluster-wide write locks: a resource is locked when a majority of nodes granted it to
//! the same owner. Grants expire (a crashed holder cannot block a key for long); a writer
//! that cannot gather a majority releases what it got and retries with a jittered backoff,
//! up to a deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::client::PeerTransport;
use crate::error::StoreError;
use crate::storage::locks::{ClusterLock, ClusterLockGuard};

pub const LOCK_PATH: &str = "/rpc/v1/lock";
/// A grant lasts this long: far longer than a metadata commit, short enough that a node
/// killed while holding it frees the key soon.
pub const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a writer keeps trying before answering 503.
const ACQUIRE_DEADLINE: Duration = Duration::from_secs(10);
/// Per-peer timeout of one lock or unlock call.
const LOCK_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Entries kept in a node's table before expired ones are swept.
const SWEEP_AT_ENTRIES: usize = 4096;
/// First wait before a refused lock is asked again (doubled each time): a commit holds a
/// key's lock for milliseconds.
const RETRY_FIRST_MS: u64 = 2;
/// Longest wait between two tries, so a freed lock is taken soon after.
const RETRY_MAX_MS: u64 = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockCall {
    Lock { resource: String, owner: Uuid },
    Unlock { resource: String, owner: Uuid },
}

/// One node's grants.
#[derive(Default)]
pub struct LockTable {
    grants: Mutex<HashMap<String, (Uuid, Instant)>>,
}

impl LockTable {
    pub fn apply(&self, call: LockCall) -> bool {
        let mut grants = self.grants.lock().expect("lock table poisoned");
        let now = Instant::now();
        if grants.len() > SWEEP_AT_ENTRIES {
            grants.retain(|_, (_, expiry)| *expiry > now);
        }
        match call {
            LockCall::Lock { resource, owner } => match grants.get(&resource) {
                Some((holder, expiry)) if *holder != owner && *expiry > now => false,
                _ => {
                    grants.insert(resource, (owner, now + LOCK_TTL));
                    true
                }
            },
            LockCall::Unlock { resource, owner } => {
                if grants.get(&resource).is_some_and(|(holder, _)| *holder == owner) {
                    grants.remove(&resource);
                }
                true
            }
        }
    }
}

/// Takes locks on this node's table and on every peer's.
pub struct DistributedLocker {
    local: Arc<LockTable>,
    /// `http://host:port` of every other node (follows the topology).
    peers: super::PeerEndpoints,
    transport: PeerTransport,
}

struct Held {
    locker: Arc<DistributedLocker>,
    resource: String,
    owner: Uuid,
}

impl Drop for Held {
    fn drop(&mut self) {
        let locker = self.locker.clone();
        let call = LockCall::Unlock { resource: std::mem::take(&mut self.resource), owner: self.owner };
        tokio::spawn(async move {
            locker.broadcast(&call).await;
        });
    }
}

impl DistributedLocker {
    pub fn new(local: Arc<LockTable>, peers: super::PeerEndpoints, transport: PeerTransport) -> Self {
        DistributedLocker { local, peers, transport }
    }

    async fn call_peer(&self, peer: &str, call: &LockCall) -> bool {
        let body = Bytes::from(postcard::to_stdvec(call).expect("lock calls serialise"));
        let answer = self.transport.call(peer, LOCK_PATH, body, LOCK_CALL_TIMEOUT, 16).await;
        matches!(answer, Ok(answer) if answer.status.is_success() && answer.body.as_ref() == b"1")
    }

    /// Sends `call` to this node and every peer; returns how many granted it and the
    /// strict majority of the nodes asked (this one and its peers at that moment).
    async fn broadcast(&self, call: &LockCall) -> (usize, usize) {
        let peers = self.peers.read().expect("peer endpoints").clone();
        let local = usize::from(self.local.apply(call.clone()));
        let remote = futures::future::join_all(peers.iter().map(|peer| self.call_peer(peer, call))).await;
        let nodes = peers.len() + 1;
        let quorum = nodes / 2 + 1;
        (local + remote.into_iter().filter(|granted| *granted).count(), quorum)
    }
}

#[async_trait::async_trait]
impl ClusterLock for Arc<DistributedLocker> {
    async fn lock(&self, resource: &str) -> Result<ClusterLockGuard, StoreError> {
        let owner = Uuid::new_v4();
        let deadline = Instant::now() + ACQUIRE_DEADLINE;
        let mut backoff_ms = RETRY_FIRST_MS;
        loop {
            let (granted, quorum) = self.broadcast(&LockCall::Lock { resource: resource.to_string(), owner }).await;
            if granted >= quorum {
                return Ok(Box::new(Held { locker: self.clone(), resource: resource.to_string(), owner }));
            }
            self.broadcast(&LockCall::Unlock { resource: resource.to_string(), owner }).await;
            if Instant::now() >= deadline {
                return Err(StoreError::InsufficientQuorum { operation: "lock", needed: quorum, available: granted });
            }
            // Jitter keeps two writers of one key from retrying in lockstep.
            let jitter = u64::from(owner.as_bytes()[(backoff_ms % 16) as usize]) % backoff_ms.max(1);
            tokio::time::sleep(Duration::from_millis(backoff_ms + jitter)).await;
            backoff_ms = (backoff_ms * 2).min(RETRY_MAX_MS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_excludes_other_owners_until_released() {
        let table = LockTable::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let lock = |owner| LockCall::Lock { resource: "bucket/key".into(), owner };
        let unlock = |owner| LockCall::Unlock { resource: "bucket/key".into(), owner };
        assert!(table.apply(lock(a)));
        assert!(!table.apply(lock(b)));
        assert!(table.apply(lock(a)), "the holder may renew");
        table.apply(unlock(b));
        assert!(!table.apply(lock(b)), "only the holder releases");
        table.apply(unlock(a));
        assert!(table.apply(lock(b)));
    }
}
