//! The staged shard files of one write, on every drive of a set. Nothing staged is
//! visible until a commit renames it into place; whatever is left afterwards must go.
//! `Staged` removes it from every drive when it goes out of scope, on every path: an
//! error returned half-way, a request dropped by its client, a commit that took what it
//! needed. The paths that know they are done call `remove` to wait for the removal, or
//! `release` when nothing was staged (an object inline in its metadata), which saves a
//! call per drive.
//!
//! Must never remove a staging directory it does not own: its id is fresh for each write
//! (healing, which stages under an object's own data directory id, does not use it).

use std::sync::Arc;

use uuid::Uuid;

use super::ErasureSet;
use crate::storage::drive::Drive;

pub struct Staged {
    id: Uuid,
    /// Emptied once removed or released.
    drives: Vec<Arc<dyn Drive>>,
}

impl Staged {
    /// A fresh staging id on every drive of `set` (nothing is written yet).
    pub fn new(set: &ErasureSet) -> Staged {
        Staged { id: Uuid::new_v4(), drives: set.drives().to_vec() }
    }

    /// The staging directory's id (also the data directory a commit renames it to).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Removes the staged files from every drive and waits until they are gone.
    pub async fn remove(mut self) {
        let (id, drives) = (self.id, std::mem::take(&mut self.drives));
        super::blocking(move || remove_everywhere(id, &drives)).await;
    }

    /// Nothing was staged: nothing to remove.
    pub fn release(mut self) {
        self.drives.clear();
    }

    /// The guard of a write's staged files, or `None` (released) when the object went
    /// inline into its metadata and nothing was staged.
    pub fn unless_inline(self, inline: bool) -> Option<Staged> {
        if inline {
            self.release();
            return None;
        }
        Some(self)
    }
}

fn remove_everywhere(id: Uuid, drives: &[Arc<dyn Drive>]) {
    for drive in drives {
        drive.remove_staging(id);
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.drives.is_empty() {
            return;
        }
        let (id, drives) = (self.id, std::mem::take(&mut self.drives));
        // Dropped on an error path or with its request: removed in the background (the
        // drives of a cluster are reached by blocking calls); without a runtime, now.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || remove_everywhere(id, &drives));
            }
            Err(_) => remove_everywhere(id, &drives),
        }
    }
}
