//! Object lock: Put/GetObjectLockConfiguration, Put/GetObjectRetention,
//! Put/GetObjectLegalHold, and the `x-amz-object-lock-*` headers of writes and reads.
//! The rules themselves are the store's (`storage::object_lock`); this module parses and
//! answers with S3's codes.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::{BucketsS3, store_error, timestamp_from_ns, version_selector};
use crate::format::bucket::{self, ObjectLockConfig};
use crate::format::object::{ObjectLock, Retention, RetentionMode};

/// Longest default retention S3 accepts: 100 years.
const MAX_RETENTION_DAYS: i32 = 36_500;

fn invalid(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.to_string())
}

fn malformed() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn mode_of(mode: &str) -> S3Result<RetentionMode> {
    match mode {
        ObjectLockRetentionMode::GOVERNANCE => Ok(RetentionMode::Governance),
        ObjectLockRetentionMode::COMPLIANCE => Ok(RetentionMode::Compliance),
        _ => Err(invalid("Unknown wormMode directive.")),
    }
}

fn mode_name(mode: RetentionMode) -> &'static str {
    match mode {
        RetentionMode::Governance => ObjectLockRetentionMode::GOVERNANCE,
        RetentionMode::Compliance => ObjectLockRetentionMode::COMPLIANCE,
    }
}

fn nanos(timestamp: &Timestamp) -> i64 {
    let time = time::OffsetDateTime::from(timestamp.clone());
    i64::try_from(time.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// The lock a write asks for in its `x-amz-object-lock-*` headers: mode and date come
/// together or not at all.
pub(super) fn requested_lock(
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<ObjectLock> {
    let retention = match (mode, until) {
        (Some(mode), Some(until)) => Some(Retention { mode: mode_of(mode.as_str())?, until_ns: nanos(until) }),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
            ));
        }
    };
    let legal_hold = match legal_hold.map(|s| s.as_str()) {
        None | Some(ObjectLockLegalHoldStatus::OFF) => false,
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(_) => return Err(invalid("Legal Hold must be either of 'ON' or 'OFF'")),
    };
    Ok(ObjectLock { retention, legal_hold })
}

/// The `x-amz-object-lock-*` answer headers of a version: (mode, until, legal hold).
pub(super) fn lock_headers(
    lock: &ObjectLock,
) -> (Option<ObjectLockMode>, Option<Timestamp>, Option<ObjectLockLegalHoldStatus>) {
    let mode = lock.retention.map(|r| ObjectLockMode::from_static(mode_name(r.mode)));
    let until = lock.retention.map(|r| timestamp_from_ns(r.until_ns));
    let hold = lock.legal_hold.then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON));
    (mode, until, hold)
}

impl BucketsS3 {
    pub(super) async fn put_object_lock_configuration_impl(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let input = req.input;
        let configuration = input.object_lock_configuration.ok_or_else(malformed)?;
        if configuration.object_lock_enabled.as_ref().map(|e| e.as_str()) != Some(ObjectLockEnabled::ENABLED) {
            return Err(malformed());
        }
        let default_retention = match configuration.rule.and_then(|rule| rule.default_retention) {
            None => None,
            Some(retention) => {
                let mode = mode_of(retention.mode.as_ref().ok_or_else(malformed)?.as_str())?;
                let (days, years) = match (retention.days, retention.years) {
                    (Some(_), Some(_)) | (None, None) => return Err(malformed()),
                    (Some(days), None) => (Some(days), None),
                    (None, Some(years)) => (None, Some(years)),
                };
                let period = days.or(years.map(|y| y.saturating_mul(365))).unwrap_or(0);
                if period <= 0 {
                    return Err(invalid("Default retention period must be a positive integer value"));
                }
                if period > MAX_RETENTION_DAYS {
                    return Err(invalid("Default retention period is too large"));
                }
                Some(bucket::DefaultRetention { mode, days: days.map(|d| d as u32), years: years.map(|y| y as u32) })
            }
        };
        self.store
            .put_object_lock_configuration(&input.bucket, ObjectLockConfig { default_retention })
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(super) async fn get_object_lock_configuration_impl(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let config = self.store.get_object_lock_configuration(&req.input.bucket).await.map_err(store_error)?;
        let rule = config.default_retention.map(|retention| ObjectLockRule {
            default_retention: Some(DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from_static(mode_name(retention.mode))),
                days: retention.days.map(|d| d as i32),
                years: retention.years.map(|y| y as i32),
            }),
        });
        let configuration = ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        };
        Ok(S3Response::new(GetObjectLockConfigurationOutput { object_lock_configuration: Some(configuration) }))
    }

    pub(super) async fn put_object_retention_impl(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let input = req.input;
        let selector = version_selector(input.version_id.as_deref())?;
        let retention = match input.retention {
            None => return Err(malformed()),
            Some(ObjectLockRetention { mode: None, retain_until_date: None }) => None,
            Some(ObjectLockRetention { mode: Some(mode), retain_until_date: Some(until) }) => {
                Some(Retention { mode: mode_of(mode.as_str())?, until_ns: nanos(&until) })
            }
            Some(_) => return Err(malformed()),
        };
        let bypass = input.bypass_governance_retention.unwrap_or(false);
        self.store
            .put_object_retention(&input.bucket, &input.key, selector, retention, bypass)
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(super) async fn get_object_retention_impl(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let input = req.input;
        let selector = version_selector(input.version_id.as_deref())?;
        let lock = self.store.object_lock(&input.bucket, &input.key, selector).await.map_err(store_error)?;
        let retention =
            lock.retention.ok_or_else(|| store_error(crate::error::StoreError::NoSuchObjectLockConfiguration))?;
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from_static(mode_name(retention.mode))),
                retain_until_date: Some(timestamp_from_ns(retention.until_ns)),
            }),
        }))
    }

    pub(super) async fn put_object_legal_hold_impl(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let input = req.input;
        let selector = version_selector(input.version_id.as_deref())?;
        let on = match input.legal_hold.and_then(|h| h.status).as_ref().map(|s| s.as_str()) {
            Some(ObjectLockLegalHoldStatus::ON) => true,
            Some(ObjectLockLegalHoldStatus::OFF) => false,
            _ => return Err(malformed()),
        };
        self.store.put_object_legal_hold(&input.bucket, &input.key, selector, on).await.map_err(store_error)?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn get_object_legal_hold_impl(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let input = req.input;
        let selector = version_selector(input.version_id.as_deref())?;
        let lock = self.store.object_lock(&input.bucket, &input.key, selector).await.map_err(store_error)?;
        let status = if lock.legal_hold { ObjectLockLegalHoldStatus::ON } else { ObjectLockLegalHoldStatus::OFF };
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from_static(status)) }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_headers_come_in_pairs() {
        let mode = ObjectLockMode::from_static(ObjectLockMode::COMPLIANCE);
        let until = timestamp_from_ns(2_000_000_000_000_000_000);
        let lock = requested_lock(Some(&mode), Some(&until), None).unwrap();
        assert_eq!(lock.retention.map(|r| r.mode), Some(RetentionMode::Compliance));
        assert!(requested_lock(Some(&mode), None, None).is_err());
        assert!(requested_lock(None, Some(&until), None).is_err());
        let bad = ObjectLockMode::from("FOREVER".to_string());
        assert!(requested_lock(Some(&bad), Some(&until), None).is_err());
        let hold = ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON);
        assert!(requested_lock(None, None, Some(&hold)).unwrap().legal_hold);
    }
}
