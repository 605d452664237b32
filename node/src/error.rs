//! The errors of the storage core, as the S3 layer sees them. Each variant is one thing a
//! user can be told; `s3::error` maps every variant to an S3 error code and HTTP status.

use std::io;

use crate::format::version_id::VersionId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    #[error("Your previous request to create the named bucket succeeded and you already own it")]
    BucketAlreadyOwnedByYou,
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    #[error("The specified key does not exist")]
    NoSuchKey,
    #[error("The specified version does not exist")]
    NoSuchVersion,
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    InvalidBucketState(String),
    #[error("Object Lock configuration does not exist for this bucket")]
    ObjectLockConfigurationNotFound,
    #[error("The specified object does not have a ObjectLock configuration")]
    NoSuchObjectLockConfiguration,
    #[error("The lifecycle configuration does not exist")]
    NoSuchLifecycleConfiguration,
    /// The version asked for (or the key's latest version) is a delete marker: absent
    /// when it is the latest (404), a method not allowed on a marker when named (405).
    #[error("{}", if *latest { "The specified key does not exist" } else { "The specified method is not allowed against this resource" })]
    DeleteMarker { version_id: VersionId, latest: bool },
    #[error("The specified upload does not exist")]
    NoSuchUpload,
    #[error("Invalid object name: {0}")]
    InvalidObjectName(String),
    #[error("Your key is too long")]
    KeyTooLong,
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    #[error("A conflicting operation occurred while this conditional request was in progress; retry it")]
    ConditionalConflict,
    #[error("Not modified")]
    NotModified,
    #[error("The Content-MD5 you specified did not match what we received")]
    BadDigest,
    #[error("The {0} you specified did not match the calculated checksum")]
    ChecksumMismatch(&'static str),
    #[error("The Content-MD5 you specified was invalid")]
    InvalidDigest,
    #[error("One or more of the specified parts could not be found: {0}")]
    InvalidPart(String),
    #[error("The list of parts was not in ascending order")]
    InvalidPartOrder,
    #[error("Your proposed upload is smaller than the minimum allowed object size")]
    EntityTooSmall,
    #[error("Your proposed upload exceeds the maximum allowed object size")]
    EntityTooLarge,
    #[error("The requested range is not satisfiable")]
    InvalidRange,
    #[error("The requested partnumber is not satisfiable")]
    InvalidPartNumber,
    #[error("Your metadata headers exceed the maximum allowed metadata size")]
    MetadataTooLarge,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("You did not provide the number of bytes specified by the Content-Length HTTP header")]
    IncompleteBody,
    #[error("too few drives answered: {available} of {needed} needed ({operation})")]
    InsufficientQuorum { operation: &'static str, needed: usize, available: usize },
    #[error("object data is corrupt beyond repair: {0}")]
    Unrecoverable(String),
    /// Drives hold copies of the object, too few to read it, and no delete removed it:
    /// more drives than parity lost it. Never "no such key".
    #[error(
        "the object is unreadable: {found} of {drives} drives hold its metadata and {needed} are needed (lost beyond parity)"
    )]
    LostBeyondParity { found: usize, needed: usize, drives: usize },
    #[error("request body: {0}")]
    Body(io::Error),
    #[error("internal I/O error: {0}")]
    Io(#[from] io::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;
