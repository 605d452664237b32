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

/// How long after dropping a write's staged files they are removed a second time (a block
/// write already running when the request was dropped has finished by then).
const STRAGGLER_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

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
    pub async fn remove(self) {
        self.remove_unmoved(&[]).await;
    }

    /// Removes the staged files from the drives a commit did not move them from
    /// (`moved[position]` false), and waits until they are gone: the others hold none.
    pub async fn remove_unmoved(mut self, moved: &[bool]) {
        let drives: Vec<Arc<dyn Drive>> = std::mem::take(&mut self.drives)
            .into_iter()
            .enumerate()
            .filter(|(position, _)| !moved.get(*position).copied().unwrap_or(false))
            .map(|(_, drive)| drive)
            .collect();
        if !drives.is_empty() {
            let id = self.id;
            super::blocking(move || remove_everywhere(id, &drives)).await;
        }
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
    super::on_drives(drives, move |drive| drive.remove_staging(id));
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.drives.is_empty() {
            return;
        }
        let (id, drives) = (self.id, std::mem::take(&mut self.drives));
        // Dropped on an error path or with its request: removed in the background (the
        // drives of a cluster are reached by blocking calls); without a runtime, now. A
        // write dropped by its client may still have a block write running on a blocking
        // thread, which can land after the first removal: a second one after
        // `STRAGGLER_SETTLE` takes what it left.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let drives = Arc::new(drives);
                    let first = drives.clone();
                    let _ = tokio::task::spawn_blocking(move || remove_everywhere(id, &first)).await;
                    tokio::time::sleep(STRAGGLER_SETTLE).await;
                    let _ = tokio::task::spawn_blocking(move || remove_everywhere(id, &drives)).await;
                });
            }
            Err(_) => remove_everywhere(id, &drives),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures::StreamExt;

    use crate::error::StoreError;
    use crate::storage::testing::{body, data, open_two_sets};
    use crate::storage::{BodyStream, PutOptions};

    /// Files left in the staging area of any of the 20 drives under `dir`.
    fn staged_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        (0..20)
            .flat_map(|d| walkdir::WalkDir::new(dir.join(format!("d{d}/.buckets.sys/tmp"))).min_depth(1))
            .filter_map(Result::ok)
            .map(|e| e.into_path())
            .collect()
    }

    async fn until_no_staged_files(dir: &std::path::Path, what: &str) {
        for _ in 0..100 {
            if staged_files(dir).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: staged files left: {:?}", staged_files(dir));
    }

    /// A write that fails half-way, or whose client goes away, leaves nothing staged: the
    /// guard removes it on every way out.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_or_abandoned_write_leaves_no_staged_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.make_bucket("b").await.unwrap();

        // A body shorter than its Content-Length, after several blocks were staged.
        let short = PutOptions { content_length: Some(5 << 20), ..PutOptions::default() };
        let result = store.put_object("b", "short", body(data(3 << 20, 1)), short).await;
        assert!(matches!(result, Err(StoreError::IncompleteBody)), "{result:?}");
        until_no_staged_files(dir.path(), "short body").await;

        // A client that sends 3 MiB and then nothing: the request is dropped mid-write.
        let first = Bytes::from(data(3 << 20, 2));
        let stalled: BodyStream =
            Box::pin(futures::stream::once(async move { Ok(first) }).chain(futures::stream::pending()));
        let writer = store.clone();
        let put = tokio::spawn(async move { writer.put_object("b", "stalled", stalled, PutOptions::default()).await });
        for _ in 0..100 {
            if !staged_files(dir.path()).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!staged_files(dir.path()).is_empty(), "the stalled write staged its first blocks");
        put.abort();
        assert!(put.await.unwrap_err().is_cancelled());
        until_no_staged_files(dir.path(), "abandoned write").await;
    }
}
