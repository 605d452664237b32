//! Per-object reader/writer locks inside one process. Readers (GET) hold a read lock for
//! the whole response so an overwrite cannot delete the shard files under them; writers
//! hold the write lock only around the metadata commit, never while a body uploads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

#[derive(Default)]
pub struct NamespaceLocks {
    locks: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

pub struct ReadGuard {
    _guard: OwnedRwLockReadGuard<()>,
}

pub struct WriteGuard {
    _guard: OwnedRwLockWriteGuard<()>,
}

impl NamespaceLocks {
    fn entry(&self, name: &str) -> Arc<RwLock<()>> {
        let mut locks = self.locks.lock().expect("lock table poisoned");
        // Drop entries nobody holds so the table stays as small as the set of busy keys.
        if locks.len() > 1024 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(name.to_string()).or_default().clone()
    }

    pub async fn read(&self, name: &str) -> ReadGuard {
        ReadGuard { _guard: self.entry(name).read_owned().await }
    }

    pub async fn write(&self, name: &str) -> WriteGuard {
        WriteGuard { _guard: self.entry(name).write_owned().await }
    }
}
