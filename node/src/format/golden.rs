//! Golden files: the exact bytes of every on-disk format version, committed under
//! `format/golden/`. Decoding them must keep working forever; encoding today's structs must
//! reproduce the current version's bytes. `BUCKETS_UPDATE_GOLDEN=1 cargo test golden`
//! rewrites the current version's files (only when its format deliberately changes).

use std::path::PathBuf;

use uuid::Uuid;

use super::JsonFile;
use super::drive::DriveFormat;
use super::object::{
    ChecksumAlgorithm, ErasureLayout, ObjectLock, ObjectMeta, ObjectVersion, PartInfo, Retention, RetentionMode,
    VersionKind,
};

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()))
        .join("src/format/golden")
        .join(name)
}

fn check(name: &str, encoded: &[u8]) -> Vec<u8> {
    let path = golden_path(name);
    if std::env::var_os("BUCKETS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, encoded).unwrap();
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(golden, encoded, "{name}: encoding changed; a format change needs a new version");
    golden
}

fn drive_format_v1() -> DriveFormat {
    DriveFormat {
        cluster_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        drive_id: Uuid::from_u128(2),
        set_index: 1,
        drive_index: 3,
        set_drives: 4,
        set_drive_ids: (0..4).map(|i| Uuid::from_u128(i + 1)).collect(),
    }
}

/// What `object-meta-v1.bin` (written by builds before versioning) reads as today.
fn object_meta_v1() -> ObjectMeta {
    ObjectMeta {
        versions: vec![ObjectVersion {
            version_id: None,
            modified_ns: 1_764_000_000_123_456_789,
            changed_ns: 1_764_000_000_123_456_789,
            kind: VersionKind::Object,
            size: 11,
            etag: "5eb63bbbe01eeed093cb22bb8f5acdc3".into(),
            headers: vec![("content-type".into(), "text/plain".into()), ("x-amz-meta-color".into(), "blue".into())],
            checksums: vec![(ChecksumAlgorithm::Crc32, "DUoRhQ==".into())],
            erasure: ErasureLayout { data_shards: 2, parity_shards: 2, block_size: 1 << 20, shard_index: 1 },
            data_dir: Some([7; 16]),
            parts: vec![PartInfo {
                number: 1,
                size: 11,
                etag: "5eb63bbbe01eeed093cb22bb8f5acdc3".into(),
                checksums: Vec::new(),
            }],
            inline_data: Some(vec![9, 8, 7]),
            lock: ObjectLock::default(),
        }],
    }
}

/// Version 2: a locked object version of a multipart upload, a delete marker above it,
/// and the removal record of a deleted version.
fn object_meta_v2() -> ObjectMeta {
    let layout = ErasureLayout { data_shards: 4, parity_shards: 2, block_size: 1 << 20, shard_index: 5 };
    let empty = |kind, id: u8, time| ObjectVersion {
        version_id: Some([id; 16]),
        modified_ns: time,
        changed_ns: time,
        kind,
        size: 0,
        etag: String::new(),
        headers: Vec::new(),
        checksums: Vec::new(),
        erasure: layout.clone(),
        data_dir: None,
        parts: Vec::new(),
        inline_data: None,
        lock: ObjectLock::default(),
    };
    ObjectMeta {
        versions: vec![
            empty(VersionKind::DeleteMarker, 3, 1_764_000_000_000_000_300),
            ObjectVersion {
                version_id: Some([2; 16]),
                modified_ns: 1_764_000_000_000_000_200,
                changed_ns: 1_764_000_000_000_000_250,
                kind: VersionKind::Object,
                size: 10 << 20,
                etag: "0123456789abcdef0123456789abcdef-2".into(),
                headers: vec![("content-type".into(), "application/x-tar".into())],
                checksums: vec![(ChecksumAlgorithm::Crc64Nvme, "AAAAAAAAAAA=".into())],
                erasure: layout.clone(),
                data_dir: Some([9; 16]),
                parts: (1..=2)
                    .map(|number| PartInfo {
                        number,
                        size: 5 << 20,
                        etag: format!("{number:032x}"),
                        checksums: vec![(ChecksumAlgorithm::Crc64Nvme, format!("part{number}"))],
                    })
                    .collect(),
                inline_data: None,
                lock: ObjectLock {
                    retention: Some(Retention { mode: RetentionMode::Compliance, until_ns: 1_800_000_000_000_000_000 }),
                    legal_hold: true,
                },
            },
            empty(VersionKind::Removed, 1, 1_764_000_000_000_000_100),
        ],
    }
}

#[test]
fn drive_format_v1_golden() {
    let golden = check("drive-format-v1.bin", &drive_format_v1().encode());
    assert_eq!(DriveFormat::decode(&golden).unwrap(), drive_format_v1());
}

/// Version 1 is frozen: its file is read, never rewritten.
#[test]
fn object_meta_v1_golden() {
    let golden = std::fs::read(golden_path("object-meta-v1.bin")).unwrap();
    assert_eq!(ObjectMeta::decode(&golden).unwrap(), object_meta_v1());
}

#[test]
fn object_meta_v2_golden() {
    let golden = check("object-meta-v2.bin", &object_meta_v2().encode());
    assert_eq!(ObjectMeta::decode(&golden).unwrap(), object_meta_v2());
}

pub(super) fn bucket_meta_v1() -> super::bucket::BucketMeta {
    super::bucket::BucketMeta { created_ns: 1_764_000_000_123_456_789, ..Default::default() }
}

pub(super) fn upload_meta_v1() -> super::upload::UploadMeta {
    super::upload::UploadMeta {
        key: "photos/2026/cat.jpg".into(),
        headers: vec![("content-type".into(), "image/jpeg".into())],
        initiated_ns: 1_764_000_000_000_000_001,
        checksum: Some(super::upload::MultipartChecksum { algorithm: ChecksumAlgorithm::Crc32c, full_object: true }),
        lock: ObjectLock::default(),
    }
}

pub(super) fn part_meta_v1() -> super::upload::PartMeta {
    super::upload::PartMeta {
        number: 7,
        size: 5 * 1024 * 1024,
        etag: "9e107d9d372bb6826bd81d3542a419d6".into(),
        modified_ns: 1_764_000_000_000_000_002,
        data_name: "part.7.0f3c".into(),
        checksums: vec![(ChecksumAlgorithm::Crc32c, "yZRlqg==".into())],
    }
}

pub(super) fn migration_control_v1() -> super::migration::Control {
    super::migration::Control { seq: 12, paused: true, bytes_per_second: 64 * 1024 * 1024, paused_seq: 0 }
}

pub(super) fn migration_progress_v1() -> super::migration::SetProgress {
    super::migration::SetProgress {
        generation: 5,
        set: 1,
        seq: 40,
        phase: super::migration::Phase::Moving,
        bucket: "photos".into(),
        after: "2026/cat.jpg".into(),
        total_objects: 1000,
        total_bytes: 1 << 30,
        moved_objects: 250,
        moved_bytes: 1 << 28,
        failed_objects: 2,
        found_in_pass: 3,
        passes: 1,
        last_error: Some("quorum not reached".into()),
        started_unix: 1_764_000_000,
        updated_unix: 1_764_000_060,
        stopped_for: 0,
        runner: 0,
    }
}

pub(super) fn topology_v1() -> buckets_api::Topology {
    use buckets_api::{Pool, SetSpec, SetState, Topology};
    let set = |id, state, node| SetSpec {
        id,
        state,
        drives: (1..=4).map(|d| format!("http://buckets-{node}.buckets:9001/data/d{d}")).collect(),
        weight: 1.0,
    };
    Topology {
        cluster_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        generation: 3,
        pools: vec![Pool {
            name: "pool-0".into(),
            sets: vec![set(0, SetState::Active, 0), set(1, SetState::Draining, 1), set(2, SetState::Removed, 2)],
        }],
    }
}

#[test]
fn bucket_meta_v1_golden() {
    let golden = check("bucket-meta-v1.bin", &bucket_meta_v1().encode());
    assert_eq!(super::bucket::BucketMeta::decode(&golden), Some(bucket_meta_v1()));
}

/// A versioned bucket: version 1 with the fields added since.
#[test]
fn versioned_bucket_meta_v1_golden() {
    let meta = super::bucket::BucketMeta {
        created_ns: 1_764_000_000_123_456_789,
        versioning: super::bucket::Versioning::Suspended,
        updated_ns: 1_764_000_000_987_654_321,
        object_lock: None,
        lifecycle: Vec::new(),
        ..Default::default()
    };
    let golden = check("bucket-meta-v1-versioned.bin", &meta.encode());
    assert_eq!(super::bucket::BucketMeta::decode(&golden), Some(meta));
    let locked = super::bucket::BucketMeta {
        created_ns: 1_764_000_000_123_456_789,
        versioning: super::bucket::Versioning::Enabled,
        updated_ns: 1_764_000_000_987_654_321,
        object_lock: Some(super::bucket::ObjectLockConfig {
            default_retention: Some(super::bucket::DefaultRetention {
                mode: super::object::RetentionMode::Governance,
                days: Some(30),
                years: None,
            }),
        }),
        lifecycle: Vec::new(),
        ..Default::default()
    };
    let golden = check("bucket-meta-v1-locked.bin", &locked.encode());
    assert_eq!(super::bucket::BucketMeta::decode(&golden), Some(locked));
    use super::bucket::{Expiration, LifecycleFilter, LifecycleRule, NoncurrentExpiration};
    let with_lifecycle = super::bucket::BucketMeta {
        created_ns: 1_764_000_000_123_456_789,
        versioning: super::bucket::Versioning::Enabled,
        updated_ns: 1_764_000_000_987_654_321,
        object_lock: None,
        lifecycle: vec![
            LifecycleRule {
                id: "logs".into(),
                enabled: true,
                filter: LifecycleFilter {
                    prefix: "logs/".into(),
                    tags: vec![("class".into(), "temp".into())],
                    size_greater_than: Some(1024),
                    size_less_than: None,
                },
                expiration: Some(Expiration::Days(30)),
                noncurrent_expiration: Some(NoncurrentExpiration {
                    noncurrent_days: 7,
                    newer_noncurrent_versions: Some(2),
                }),
                abort_incomplete_upload_days: Some(3),
            },
            LifecycleRule {
                id: "markers".into(),
                enabled: false,
                expiration: Some(Expiration::ExpiredObjectDeleteMarker),
                ..LifecycleRule::default()
            },
            LifecycleRule {
                id: "closing".into(),
                enabled: true,
                expiration: Some(Expiration::Date(1_800_000_000_000_000_000)),
                ..LifecycleRule::default()
            },
        ],
        ..Default::default()
    };
    let golden = check("bucket-meta-v1-lifecycle.bin", &with_lifecycle.encode());
    assert_eq!(super::bucket::BucketMeta::decode(&golden), Some(with_lifecycle));
}

#[test]
fn lifecycle_progress_v1_golden() {
    let progress = super::lifecycle::LifecycleProgress {
        seq: 9,
        passes: 2,
        pass_started_ns: 1_764_000_000_000_000_000,
        bucket: "logs".into(),
        after: "2026/12/04/app.log".into(),
    };
    let golden = check("lifecycle-progress-v1.bin", &progress.encode());
    assert_eq!(super::lifecycle::LifecycleProgress::decode(&golden), Some(progress));
}

#[test]
fn upload_and_part_meta_v1_golden() {
    let golden = check("upload-meta-v1.bin", &upload_meta_v1().encode());
    assert_eq!(super::upload::UploadMeta::decode(&golden), Some(upload_meta_v1()));
    let golden = check("part-meta-v1.bin", &part_meta_v1().encode());
    assert_eq!(super::upload::PartMeta::decode(&golden), Some(part_meta_v1()));
    // Each file is refused where another kind is expected (the magic tells them apart).
    assert_eq!(super::upload::UploadMeta::decode(&golden), None);
}

#[test]
fn migration_control_and_checkpoint_v1_golden() {
    let golden = check("migration-control-v1.bin", &migration_control_v1().encode());
    assert_eq!(super::migration::Control::decode(&golden), Some(migration_control_v1()));
    let golden = check("migration-progress-v1.bin", &migration_progress_v1().encode());
    assert_eq!(super::migration::SetProgress::decode(&golden), Some(migration_progress_v1()));
    assert_eq!(super::migration::Control::decode(&golden), None);
    // A pause's number, a mover's confirmation of it and the node running a round: fields
    // added within version 1
    // (absent when zero, so the files above are unchanged).
    let control = super::migration::Control { paused_seq: 12, ..migration_control_v1() };
    let golden = check("migration-control-v1-paused-seq.bin", &control.encode());
    assert_eq!(super::migration::Control::decode(&golden), Some(control));
    let progress = super::migration::SetProgress { stopped_for: 12, runner: 3, ..migration_progress_v1() };
    let golden = check("migration-progress-v1-stopped-for.bin", &progress.encode());
    assert_eq!(super::migration::SetProgress::decode(&golden), Some(progress));
    let settled = super::migration::Settled { generation: 7, settled_unix: 1_790_000_000 };
    let golden = check("placement-settled-v1.bin", &settled.encode());
    assert_eq!(super::migration::Settled::decode(&golden), Some(settled));
    assert_eq!(super::migration::SetProgress::decode(&golden), None);
    let unsettled = super::migration::Unsettled { generation: 7, unsettled_unix: 1_790_000_100 };
    let golden = check("placement-unsettled-v1.bin", &unsettled.encode());
    assert_eq!(super::migration::Unsettled::decode(&golden), Some(unsettled));
    assert_eq!(super::migration::Settled::decode(&golden), None);
    let base = super::migration::Base { generation: 8, previous: topology_v1() };
    let golden = check("placement-base-v1.bin", &base.encode());
    assert_eq!(super::migration::Base::decode(&golden), Some(base));
}

#[test]
fn topology_v1_golden() {
    let golden = check("topology-v1.bin", &super::topology::encode(&topology_v1()));
    assert_eq!(super::topology::decode(&golden).unwrap(), topology_v1());
}

pub(super) fn iam_v1() -> super::iam::IamDoc {
    use super::iam::{IamDoc, StoredGroup, StoredKey, StoredPolicy, StoredUser};
    let user = StoredUser {
        canonical_id: "7f3a".repeat(16),
        enabled: true,
        created: 1_764_806_400,
        policies: vec!["readonly".into()],
        keys: vec![StoredKey {
            access_key: "BKUAAAAAAAAAAAAAAAAA".into(),
            sealed_secret: "bm9uY2UtYW5kLWNpcGhlcnRleHQ".into(),
            created: 1_764_806_401,
            expires: Some(1_796_342_400),
        }],
    };
    IamDoc {
        revision: 7,
        users: [("alice".to_string(), user)].into(),
        groups: [(
            "backup".to_string(),
            StoredGroup { created: 1_764_806_402, members: vec!["alice".into()], policies: vec!["photos".into()] },
        )]
        .into(),
        policies: [(
            "photos".to_string(),
            StoredPolicy {
                created: 1_764_806_403,
                document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#.into(),
            },
        )]
        .into(),
    }
}

#[test]
fn iam_v1_golden() {
    let golden = check("iam-v1.bin", &iam_v1().encode());
    assert_eq!(super::iam::IamDoc::decode(&golden), Some(iam_v1()));
    assert_eq!(super::bucket::BucketMeta::decode(&golden), None);
}

/// A bucket with a policy and Block Public Access: version 1 with the fields added since.
#[test]
fn bucket_meta_v1_with_policy_golden() {
    let meta = super::bucket::BucketMeta {
        created_ns: 1_764_000_000_123_456_789,
        updated_ns: 1_764_806_400_000_000_000,
        policy: Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#
                .into(),
        ),
        public_access_block: Some(super::bucket::PublicAccessBlock {
            block_public_acls: true,
            ignore_public_acls: false,
            block_public_policy: false,
            restrict_public_buckets: true,
        }),
        ..Default::default()
    };
    let golden = check("bucket-meta-v1-policy.bin", &meta.encode());
    assert_eq!(super::bucket::BucketMeta::decode(&golden), Some(meta));
}

/// A bucket with CORS rules: version 1 with the field added since.
#[test]
fn bucket_meta_v1_with_cors_golden() {
    let meta = super::bucket::BucketMeta {
        created_ns: 1_764_000_000_123_456_789,
        updated_ns: 1_764_806_400_000_000_000,
        cors: vec![super::bucket::CorsRule {
            id: Some("web".into()),
            allowed_origins: vec!["https://*.example.com".into()],
            allowed_methods: vec!["GET".into(), "PUT".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(3000),
        }],
        ..Default::default()
    };
    let golden = check("bucket-meta-v1-cors.bin", &meta.encode());
    assert_eq!(super::bucket::BucketMeta::decode(&golden), Some(meta));
}

/// A bucket owned by a user, with ACLs enabled and grants: version 1 with the fields
/// added since.
#[test]
fn bucket_meta_v1_with_acl_golden() {
    use super::acl::{AclPermission, Grant, Grantee, ObjectOwnership};
    let meta = super::bucket::BucketMeta {
        created_ns: 1_764_000_000_123_456_789,
        updated_ns: 1_764_806_400_000_000_000,
        owner: Some("3f9a0c".into()),
        ownership: ObjectOwnership::ObjectWriter,
        acl: Some(vec![
            Grant { grantee: Grantee::User("3f9a0c".into()), permission: AclPermission::FullControl },
            Grant { grantee: Grantee::AllUsers, permission: AclPermission::Read },
            Grant { grantee: Grantee::AuthenticatedUsers, permission: AclPermission::ReadAcp },
        ]),
        ..Default::default()
    };
    let golden = check("bucket-meta-v1-acl.bin", &meta.encode());
    assert_eq!(super::bucket::BucketMeta::decode(&golden), Some(meta));
}
