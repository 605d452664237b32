//! The one place storage errors become S3 errors: code, HTTP status (implied by the code
//! in s3s) and message. The match is exhaustive so a new error cannot go unmapped.

use s3s::{S3Error, S3ErrorCode};

use crate::error::StoreError;

/// An error S3 answers with 404 (a setting the bucket does not have).
pub fn not_found(code: S3ErrorCode, message: &str) -> S3Error {
    let mut error = S3Error::with_message(code, message.to_string());
    error.set_status_code(http::StatusCode::NOT_FOUND);
    error
}

pub fn to_s3_error(error: StoreError) -> S3Error {
    let message = error.to_string();
    let code = match &error {
        StoreError::NoSuchBucket => S3ErrorCode::NoSuchBucket,
        StoreError::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
        StoreError::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
        StoreError::NoSuchKey => S3ErrorCode::NoSuchKey,
        StoreError::NoSuchVersion => S3ErrorCode::NoSuchVersion,
        StoreError::AccessDenied(_) => S3ErrorCode::AccessDenied,
        StoreError::InvalidBucketState(_) => S3ErrorCode::InvalidBucketState,
        StoreError::ObjectLockConfigurationNotFound => S3ErrorCode::ObjectLockConfigurationNotFoundError,
        StoreError::NoSuchObjectLockConfiguration => S3ErrorCode::NoSuchObjectLockConfiguration,
        StoreError::NoSuchLifecycleConfiguration => S3ErrorCode::NoSuchLifecycleConfiguration,
        StoreError::DeleteMarker { latest: true, .. } => S3ErrorCode::NoSuchKey,
        StoreError::DeleteMarker { latest: false, .. } => S3ErrorCode::MethodNotAllowed,
        StoreError::NoSuchUpload => S3ErrorCode::NoSuchUpload,
        StoreError::InvalidObjectName(_) => S3ErrorCode::InvalidArgument,
        StoreError::KeyTooLong => S3ErrorCode::KeyTooLongError,
        StoreError::PreconditionFailed => S3ErrorCode::PreconditionFailed,
        StoreError::NotModified => S3ErrorCode::NotModified,
        StoreError::BadDigest | StoreError::ChecksumMismatch(_) => S3ErrorCode::BadDigest,
        StoreError::InvalidDigest => S3ErrorCode::InvalidDigest,
        StoreError::InvalidPart(_) => S3ErrorCode::InvalidPart,
        StoreError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        StoreError::EntityTooSmall => S3ErrorCode::EntityTooSmall,
        StoreError::EntityTooLarge => S3ErrorCode::EntityTooLarge,
        StoreError::InvalidRange => S3ErrorCode::InvalidRange,
        // Not among s3s's codes: AWS's name, with AWS's status (set below).
        StoreError::InvalidPartNumber => S3ErrorCode::Custom("InvalidPartNumber".into()),
        StoreError::ConditionalConflict => S3ErrorCode::Custom("ConditionalRequestConflict".into()),
        StoreError::MetadataTooLarge => S3ErrorCode::MetadataTooLarge,
        StoreError::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
        StoreError::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
        StoreError::IncompleteBody | StoreError::Body(_) => S3ErrorCode::IncompleteBody,
        StoreError::InsufficientQuorum { .. } => S3ErrorCode::SlowDown,
        StoreError::Unrecoverable(_) | StoreError::LostBeyondParity { .. } | StoreError::Io(_) => {
            S3ErrorCode::InternalError
        }
    };
    match &error {
        StoreError::Io(e) => tracing::error!(error = %e, "internal I/O error"),
        StoreError::Unrecoverable(e) => tracing::error!(error = %e, "unrecoverable object"),
        StoreError::LostBeyondParity { .. } => tracing::error!(%message, "object lost beyond parity"),
        StoreError::InsufficientQuorum { .. } => tracing::warn!(%message, "quorum not reached"),
        _ => {}
    }
    let mut s3_error = S3Error::with_message(code, message);
    match &error {
        StoreError::InvalidPartNumber => s3_error.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE),
        StoreError::ConditionalConflict => s3_error.set_status_code(http::StatusCode::CONFLICT),
        _ => {}
    }
    if let StoreError::DeleteMarker { version_id, .. } = &error {
        // The answer says what the client ran into: a delete marker, and which.
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
        if let Ok(id) = http::HeaderValue::from_str(&version_id.to_string()) {
            headers.insert("x-amz-version-id", id);
        }
        s3_error.set_headers(headers);
    }
    s3_error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::version_id::VersionId;

    #[test]
    fn statuses_match_aws() {
        let table: Vec<(StoreError, u16)> = vec![
            (StoreError::NoSuchBucket, 404),
            (StoreError::NoSuchKey, 404),
            (StoreError::NoSuchVersion, 404),
            (StoreError::AccessDenied("locked".into()), 403),
            (StoreError::InvalidBucketState("suspended".into()), 409),
            (StoreError::ObjectLockConfigurationNotFound, 404),
            (StoreError::NoSuchObjectLockConfiguration, 404),
            (StoreError::DeleteMarker { version_id: VersionId::NULL, latest: true }, 404),
            (StoreError::DeleteMarker { version_id: VersionId::NULL, latest: false }, 405),
            (StoreError::BucketNotEmpty, 409),
            (StoreError::BucketAlreadyOwnedByYou, 409),
            (StoreError::PreconditionFailed, 412),
            (StoreError::NotModified, 304),
            (StoreError::BadDigest, 400),
            (StoreError::InvalidPart("x".into()), 400),
            (StoreError::EntityTooSmall, 400),
            (StoreError::InvalidRange, 416),
            (StoreError::InvalidPartNumber, 416),
            (StoreError::ConditionalConflict, 409),
            (StoreError::InsufficientQuorum { operation: "read", needed: 2, available: 1 }, 503),
            (StoreError::LostBeyondParity { found: 1, needed: 2, drives: 4 }, 500),
        ];
        for (error, status) in table {
            let error = to_s3_error(error);
            let answered = error.status_code().or_else(|| error.code().status_code());
            assert_eq!(answered.map(|s| s.as_u16()), Some(status), "{:?}", error.code());
        }
    }
}
