//! S3 object lock at the store: a bucket's lock configuration, each version's retention
//! and legal hold, and the one check every removal of a version passes through.
//!
//! A version under retention or legal hold is never removed (nor replaced in place) by
//! anyone: COMPLIANCE until its date, GOVERNANCE until its date unless the request may
//! bypass governance retention, a legal hold until it is lifted. Adding a delete marker
//! removes nothing and is always allowed. The check runs under the key's lock on whatever
//! node serves the request; internal paths (migration, healing) move or repair versions
//! and never remove a live one.

use super::set::Selector;
use super::{BucketMeta, ObjectInfo, Store, Versioning, set};
use crate::error::{StoreError, StoreResult};
use crate::format::bucket::ObjectLockConfig;
use crate::format::object::{ObjectLock, ObjectVersion, Retention, RetentionMode};

/// Refuses the removal of a version its lock protects at `now_ns`.
pub fn check_removable(lock: &ObjectLock, bypass_governance: bool, now_ns: i64) -> StoreResult<()> {
    if lock.legal_hold {
        return Err(StoreError::AccessDenied("Access Denied because object protected by object lock".into()));
    }
    match lock.retention {
        Some(Retention { until_ns, .. }) if until_ns <= now_ns => Ok(()),
        Some(Retention { mode: RetentionMode::Governance, .. }) if bypass_governance => Ok(()),
        Some(_) => Err(StoreError::AccessDenied("Access Denied because object protected by object lock".into())),
        None => Ok(()),
    }
}

/// Checks a retention change of a version: COMPLIANCE can only be extended; GOVERNANCE
/// can be shortened, removed or changed only with the permission to bypass it.
pub fn check_retention_change(
    current: Option<Retention>,
    next: Option<Retention>,
    bypass_governance: bool,
    now_ns: i64,
) -> StoreResult<()> {
    let Some(current) = current.filter(|r| r.until_ns > now_ns) else { return Ok(()) };
    let extends = next.is_some_and(|next| next.mode == current.mode && next.until_ns >= current.until_ns);
    let compliance_kept =
        next.is_some_and(|next| next.mode == RetentionMode::Compliance && next.until_ns >= current.until_ns);
    match current.mode {
        _ if extends => Ok(()),
        // Governance may become compliance (stricter) for as long or longer.
        RetentionMode::Governance if compliance_kept => Ok(()),
        RetentionMode::Governance if bypass_governance => Ok(()),
        RetentionMode::Governance => {
            Err(StoreError::AccessDenied("Access Denied because object protected by object lock".into()))
        }
        RetentionMode::Compliance => Err(StoreError::AccessDenied(
            "Access Denied: the retention of a version in COMPLIANCE mode can only be extended".into(),
        )),
    }
}

fn not_enabled() -> StoreError {
    StoreError::InvalidRequest("Bucket is missing Object Lock Configuration".into())
}

impl Store {
    /// Creates a bucket with object lock enabled (and therefore versioning).
    pub async fn make_bucket_with_object_lock(&self, bucket: &str) -> StoreResult<()> {
        let meta = BucketMeta {
            versioning: Versioning::Enabled,
            object_lock: Some(ObjectLockConfig::default()),
            ..BucketMeta::default()
        };
        self.make_bucket_with(bucket, meta).await
    }

    /// PutObjectLockConfiguration: enables object lock on a versioned bucket (for good),
    /// or changes its default retention.
    pub async fn put_object_lock_configuration(&self, bucket: &str, config: ObjectLockConfig) -> StoreResult<()> {
        let info = self.head_bucket(bucket).await?;
        if info.meta.object_lock.is_none() && info.versioning() != Versioning::Enabled {
            return Err(StoreError::InvalidBucketState(
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration".into(),
            ));
        }
        let meta = BucketMeta {
            object_lock: Some(config),
            updated_ns: set::now_ns().max(info.meta.updated_ns + 1),
            ..info.meta
        };
        self.write_bucket_meta(bucket, &meta).await
    }

    pub async fn get_object_lock_configuration(&self, bucket: &str) -> StoreResult<ObjectLockConfig> {
        self.head_bucket(bucket).await?.meta.object_lock.ok_or(StoreError::ObjectLockConfigurationNotFound)
    }

    /// The lock a new version gets: the one its write names, else the bucket's default
    /// retention; a lock on a bucket without object lock is refused.
    pub(crate) fn lock_for_new_version(meta: &BucketMeta, asked: ObjectLock, now_ns: i64) -> StoreResult<ObjectLock> {
        let Some(config) = &meta.object_lock else {
            return match asked == ObjectLock::default() {
                true => Ok(asked),
                false => Err(not_enabled()),
            };
        };
        if let Some(retention) = asked.retention
            && retention.until_ns <= now_ns
        {
            return Err(StoreError::InvalidArgument("The retain until date must be in the future!".into()));
        }
        let retention = asked.retention.or_else(|| {
            config.default_retention.map(|d| Retention { mode: d.mode, until_ns: now_ns.saturating_add(d.period_ns()) })
        });
        Ok(ObjectLock { retention, legal_hold: asked.legal_hold })
    }

    /// PutObjectRetention of one version.
    pub async fn put_object_retention(
        &self,
        bucket: &str,
        key: &str,
        selector: Selector,
        retention: Option<Retention>,
        bypass_governance: bool,
    ) -> StoreResult<ObjectInfo> {
        if self.head_bucket(bucket).await?.meta.object_lock.is_none() {
            return Err(not_enabled());
        }
        let now = set::now_ns();
        if let Some(next) = retention
            && next.until_ns <= now
        {
            return Err(StoreError::InvalidArgument("The retain until date must be in the future!".into()));
        }
        let change = move |version: &mut ObjectVersion| -> StoreResult<()> {
            check_retention_change(version.lock.retention, retention, bypass_governance, now)?;
            version.lock.retention = retention;
            Ok(())
        };
        self.update_object_version(bucket, key, selector, &change).await
    }

    /// PutObjectLegalHold of one version.
    pub async fn put_object_legal_hold(
        &self,
        bucket: &str,
        key: &str,
        selector: Selector,
        on: bool,
    ) -> StoreResult<ObjectInfo> {
        if self.head_bucket(bucket).await?.meta.object_lock.is_none() {
            return Err(not_enabled());
        }
        let change = move |version: &mut ObjectVersion| -> StoreResult<()> {
            version.lock.legal_hold = on;
            Ok(())
        };
        self.update_object_version(bucket, key, selector, &change).await
    }

    /// GetObjectRetention / GetObjectLegalHold: the version's lock.
    pub async fn object_lock(&self, bucket: &str, key: &str, selector: Selector) -> StoreResult<ObjectLock> {
        if self.head_bucket(bucket).await?.meta.object_lock.is_none() {
            return Err(not_enabled());
        }
        Ok(self.head_version(bucket, key, selector).await?.lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000;

    fn retention(mode: RetentionMode, until_ns: i64) -> Option<Retention> {
        Some(Retention { mode, until_ns })
    }

    #[test]
    fn what_a_lock_lets_remove() {
        use RetentionMode::*;
        let lock = |retention, legal_hold| ObjectLock { retention, legal_hold };
        let table = [
            (lock(None, false), false, true),
            (lock(None, true), true, false),
            (lock(retention(Compliance, NOW + 1), false), true, false),
            (lock(retention(Compliance, NOW), false), false, true),
            (lock(retention(Governance, NOW + 1), false), false, false),
            (lock(retention(Governance, NOW + 1), false), true, true),
            (lock(retention(Governance, NOW - 1), true), true, false),
        ];
        for (lock, bypass, removable) in table {
            assert_eq!(check_removable(&lock, bypass, NOW).is_ok(), removable, "{lock:?} bypass {bypass}");
        }
    }

    #[test]
    fn how_retention_may_change() {
        use RetentionMode::*;
        let table = [
            // (current, next, bypass, allowed)
            (None, retention(Compliance, NOW + 5), false, true),
            (retention(Compliance, NOW + 5), retention(Compliance, NOW + 9), false, true),
            (retention(Compliance, NOW + 5), retention(Compliance, NOW + 4), true, false),
            (retention(Compliance, NOW + 5), retention(Governance, NOW + 9), true, false),
            (retention(Compliance, NOW + 5), None, true, false),
            (retention(Governance, NOW + 5), retention(Governance, NOW + 9), false, true),
            (retention(Governance, NOW + 5), retention(Compliance, NOW + 5), false, true),
            (retention(Governance, NOW + 5), retention(Governance, NOW + 4), false, false),
            (retention(Governance, NOW + 5), retention(Governance, NOW + 4), true, true),
            (retention(Governance, NOW + 5), None, false, false),
            (retention(Governance, NOW + 5), None, true, true),
            // An expired retention protects nothing any more.
            (retention(Compliance, NOW - 1), None, false, true),
        ];
        for (current, next, bypass, allowed) in table {
            assert_eq!(
                check_retention_change(current, next, bypass, NOW).is_ok(),
                allowed,
                "{current:?} -> {next:?} bypass {bypass}"
            );
        }
    }
}
