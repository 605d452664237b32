//! The lifecycle worker: applies each bucket's lifecycle rules (`crate::lifecycle` decides)
//! cluster-wide, each key handled once per pass. A set's keys are walked by the node that
//! serves the set's first online drive (the migration's owner rule: every node computes
//! the same owner), page by page with a checkpoint on the set's drives, so a restarted
//! node resumes where it stopped. Every action is decided again under the key's lock
//! from what the drives hold then, so a key seen twice (two nodes during an ownership
//! change, or a key in two sets mid-move) is acted on once; object lock refuses what it
//! protects. The worker yields to S3 requests like the migration does.

use std::sync::Arc;
use std::time::Duration;

use super::set::{ErasureSet, Listing};
use super::{BucketMeta, ListEntry, Store, Versioning, blocking, set};
use crate::error::{StoreError, StoreResult};
use crate::format::JsonFile;
use crate::format::bucket::LifecycleRule;
use crate::format::lifecycle::LifecycleProgress;
use crate::format::object::{ObjectVersion, VersionKind};
use crate::format::version_id::VersionId;
use crate::lifecycle::{Action, VersionFacts};

/// Keys handled between two checkpoints.
const CHECKPOINT_EVERY_KEYS: usize = 250;
/// Most lifecycle rules a bucket may have (the S3 limit).
pub const MAX_LIFECYCLE_RULES: usize = 1000;
/// How long the worker waits for S3 requests in flight before each key.
const MAX_USER_BACKOFF: Duration = Duration::from_millis(10);
/// How often a worker that yields to users looks again.
const USER_BACKOFF_STEP: Duration = Duration::from_millis(2);

/// How the lifecycle worker runs.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// The length of a lifecycle "day" (a day; tests shorten it,
    /// `BUCKETS_LIFECYCLE_DAY_SECS`).
    pub day: Duration,
    /// Time between two passes over every bucket (`BUCKETS_LIFECYCLE_INTERVAL_SECS`).
    pub interval: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig { day: Duration::from_secs(86_400), interval: Duration::from_secs(3_600) }
    }
}

fn progress_file(set: &ErasureSet) -> String {
    format!("lifecycle-{}.bkt", set.id)
}

fn day_ns(config: &LifecycleConfig) -> i64 {
    i64::try_from(config.day.as_nanos()).unwrap_or(i64::MAX).max(1)
}

/// The tags stored with a version (its `x-amz-tagging` header, form-encoded).
fn tags_of(version: &ObjectVersion) -> Vec<(String, String)> {
    version
        .header("x-amz-tagging")
        .map(|value| form_urlencoded::parse(value.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

/// What the rules see of a key's versions, newest first.
fn facts<'a>(versions: &'a [ObjectVersion], tags: &'a [Vec<(String, String)>]) -> Vec<VersionFacts<'a>> {
    versions
        .iter()
        .zip(tags)
        .map(|(v, tags)| VersionFacts {
            size: v.size,
            tags,
            modified_ns: v.modified_ns,
            delete_marker: v.kind == VersionKind::DeleteMarker,
        })
        .collect()
}

impl Store {
    /// PutBucketLifecycleConfiguration (the rules are validated by the S3 layer).
    pub async fn put_bucket_lifecycle(&self, bucket: &str, rules: Vec<LifecycleRule>) -> StoreResult<()> {
        let info = self.head_bucket(bucket).await?;
        let meta =
            BucketMeta { lifecycle: rules, updated_ns: set::now_ns().max(info.meta.updated_ns + 1), ..info.meta };
        self.write_bucket_meta(bucket, &meta).await
    }

    pub async fn get_bucket_lifecycle(&self, bucket: &str) -> StoreResult<Vec<LifecycleRule>> {
        let rules = self.head_bucket(bucket).await?.meta.lifecycle;
        if rules.is_empty() {
            return Err(StoreError::NoSuchLifecycleConfiguration);
        }
        Ok(rules)
    }

    pub async fn delete_bucket_lifecycle(&self, bucket: &str) -> StoreResult<()> {
        self.put_bucket_lifecycle(bucket, Vec::new()).await
    }

    /// Decides and takes the lifecycle actions due on one key, under its lock. Returns
    /// (action, outcome) of each.
    pub async fn apply_lifecycle(
        &self,
        bucket: &str,
        key: &str,
        rules: &[LifecycleRule],
        versioning: Versioning,
        now_ns: i64,
        day_ns: i64,
    ) -> StoreResult<Vec<(&'static str, &'static str)>> {
        let _guard = self.lock_key(bucket, key).await?;
        // The key's versions, from the set that holds them (the same in two sets mid-move).
        let mut versions: Vec<ObjectVersion> = Vec::new();
        for set in self.sets().iter() {
            let (_, state) = set.read_key(bucket, key).await?;
            if !state.versions.is_empty() {
                versions = state.versions.into_iter().map(|v| v.version).collect();
                break;
            }
        }
        let tags: Vec<Vec<(String, String)>> = versions.iter().map(tags_of).collect();
        let due = crate::lifecycle::actions(rules, key, &facts(&versions, &tags), now_ns, day_ns);
        let mut done = Vec::new();
        for (index, action, _rule) in due {
            let (name, result) = match action {
                Action::ExpireLatest => {
                    let result = match versioning {
                        // Unversioned: the object goes (if its lock lets it).
                        Versioning::Unversioned => {
                            self.delete_object_version_locked(bucket, key, Some(VersionId::NULL), false, versioning)
                                .await
                        }
                        _ => self.delete_object_version_locked(bucket, key, None, false, versioning).await,
                    };
                    ("expire", result)
                }
                Action::DeleteNoncurrent | Action::RemoveExpiredMarker => {
                    let id = Some(VersionId(versions[index].version_id));
                    let result = self.delete_object_version_locked(bucket, key, id, false, versioning).await;
                    (if action == Action::DeleteNoncurrent { "delete_noncurrent" } else { "remove_marker" }, result)
                }
            };
            let outcome = match result {
                Ok(_) => "done",
                Err(StoreError::AccessDenied(_)) => "locked",
                Err(e) => return Err(e),
            };
            self.metrics.lifecycle_actions.with_label_values(&[name, outcome]).inc();
            done.push((name, outcome));
        }
        Ok(done)
    }

    async fn lifecycle_progress(&self, set: &Arc<ErasureSet>) -> LifecycleProgress {
        let (drives, name) = (set.drives().to_vec(), progress_file(set));
        blocking(move || {
            drives
                .iter()
                .filter(|d| d.is_online())
                .filter_map(|d| d.read_system_file(&name).ok().flatten())
                .filter_map(|bytes| LifecycleProgress::decode(&bytes))
                .max_by_key(|p| p.seq)
                .unwrap_or_default()
        })
        .await
    }

    async fn save_lifecycle_progress(&self, set: &Arc<ErasureSet>, progress: &mut LifecycleProgress) {
        progress.seq += 1;
        let (drives, name, bytes) = (set.drives().to_vec(), progress_file(set), progress.encode());
        blocking(move || {
            for drive in drives.iter().filter(|d| d.is_online()) {
                // A checkpoint that misses a drive costs a few keys looked at again.
                let _ = drive.write_system_file(&name, &bytes);
            }
        })
        .await;
    }

    /// One pass of the lifecycle worker over one set this node owns: every bucket with
    /// rules, key by key, then the set's incomplete uploads. Resumes from the set's
    /// checkpoint.
    pub async fn lifecycle_pass(&self, set: &Arc<ErasureSet>, config: &LifecycleConfig) -> StoreResult<()> {
        let mut buckets: Vec<super::BucketInfo> =
            self.list_buckets().await?.into_iter().filter(|b| !b.meta.lifecycle.is_empty()).collect();
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        let mut progress = self.lifecycle_progress(set).await;
        if progress.pass_started_ns == 0 {
            progress.pass_started_ns = set::now_ns();
            progress.bucket.clear();
            progress.after.clear();
        }
        let day = day_ns(config);
        let resume_at = progress.bucket.clone();
        for bucket in buckets.iter().filter(|b| b.name >= resume_at) {
            if bucket.name != progress.bucket {
                progress.bucket = bucket.name.clone();
                progress.after.clear();
            }
            let rules = &bucket.meta.lifecycle;
            loop {
                let page =
                    set.list(&bucket.name, "", None, &progress.after, CHECKPOINT_EVERY_KEYS, Listing::AllKeys).await?;
                for entry in &page {
                    let ListEntry::Object(info) = entry else { continue };
                    self.lifecycle_yield_to_users().await;
                    self.metrics.lifecycle_scanned_objects.inc();
                    let now = set::now_ns();
                    if let Err(e) =
                        self.apply_lifecycle(&bucket.name, &info.key, rules, bucket.versioning(), now, day).await
                    {
                        tracing::warn!(bucket = %bucket.name, key = %info.key, error = %e, "lifecycle: the next pass retries");
                    }
                }
                match page.last() {
                    Some(last) if page.len() == CHECKPOINT_EVERY_KEYS => {
                        progress.after = last.name().to_string();
                        self.save_lifecycle_progress(set, &mut progress).await;
                    }
                    _ => break,
                }
            }
            self.abort_expired_uploads(set, &bucket.name, rules, day).await?;
        }
        progress.passes += 1;
        progress.pass_started_ns = 0;
        progress.bucket.clear();
        progress.after.clear();
        self.save_lifecycle_progress(set, &mut progress).await;
        Ok(())
    }

    /// Aborts the incomplete uploads of `bucket` in `set` that a rule says are stale.
    async fn abort_expired_uploads(
        &self,
        set: &Arc<ErasureSet>,
        bucket: &str,
        rules: &[LifecycleRule],
        day_ns: i64,
    ) -> StoreResult<()> {
        if rules.iter().all(|r| r.abort_incomplete_upload_days.is_none()) {
            return Ok(());
        }
        let now = set::now_ns();
        for upload in self.list_uploads_in(set, bucket).await {
            if crate::lifecycle::upload_expired(rules, &upload.key, upload.initiated_ns, now, day_ns).is_some() {
                let outcome = match self.abort_multipart_upload(bucket, &upload.key, &upload.upload_id).await {
                    Ok(()) => "done",
                    Err(StoreError::NoSuchUpload) => continue,
                    Err(e) => return Err(e),
                };
                self.metrics.lifecycle_actions.with_label_values(&["abort_upload", outcome]).inc();
            }
        }
        Ok(())
    }

    async fn lifecycle_yield_to_users(&self) {
        let started = std::time::Instant::now();
        while self.user_requests.load(std::sync::atomic::Ordering::Relaxed) > 0 && started.elapsed() < MAX_USER_BACKOFF
        {
            tokio::time::sleep(USER_BACKOFF_STEP).await;
        }
    }
}

/// Runs lifecycle passes over the sets this node owns, one pass every `interval`.
pub async fn run_lifecycle(store: Arc<Store>, config: LifecycleConfig) {
    loop {
        tokio::time::sleep(config.interval).await;
        let mut passed = false;
        for set in store.sets().iter().filter(|s| store.owns_migration_of(s)) {
            match store.lifecycle_pass(set, &config).await {
                Ok(()) => passed = true,
                Err(e) => tracing::warn!(set = set.id, error = %e, "lifecycle pass failed; retrying at the next"),
            }
        }
        if passed {
            store.metrics.lifecycle_passes.inc();
            store.metrics.lifecycle_last_pass.set(crate::clock::unix_now());
        }
    }
}
