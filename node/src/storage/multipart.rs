//! Multipart uploads: each upload is a directory under the drives' system area holding
//! its metadata and one erasure-coded shard file per part; completing it moves the chosen
//! part files into the object's data directory and commits the object metadata.

use std::sync::Arc;

use md5_many::Digest as _;
use uuid::Uuid;

use super::checksum::{Hasher, algorithm_name, combine_crcs};
use super::layout::ShardLayout;
use super::set::{self, Commit, DriveCopy, Order, Staged, now_ns};
use super::{BodyStream, ObjectInfo, PutOptions, Store, blocking, path};
use crate::error::{StoreError, StoreResult};
use crate::format::JsonFile;
use crate::format::object::{ChecksumAlgorithm, ObjectLock, ObjectVersion, PartInfo, VersionKind};
pub use crate::format::upload::{MultipartChecksum, PartMeta, UploadMeta};
use crate::format::version_id::VersionId;

/// S3's bounds on parts.
pub const MAX_PART_NUMBER: u32 = 10_000;
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;

pub(crate) const UPLOAD_META_FILE: &str = "%upload";

/// A part as CompleteMultipartUpload names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedPart {
    pub number: u32,
    pub etag: String,
    /// Checksums the client lists for the part; each must match the part's.
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
}

impl RequestedPart {
    pub fn new(number: u32, etag: impl Into<String>) -> Self {
        RequestedPart { number, etag: etag.into(), checksums: Vec::new() }
    }
}

/// The checksum of a completed multipart object. COMPOSITE: the algorithm over the
/// concatenated raw checksums of the parts, "-N" after it; FULL_OBJECT: the parts' CRCs
/// combined into the CRC of the whole object. `None` when a part has no checksum of the
/// upload's algorithm (a part uploaded before the upload recorded one).
fn object_checksum(checksum: MultipartChecksum, parts: &[PartMeta]) -> Option<String> {
    use base64::Engine as _;
    let algorithm = checksum.algorithm;
    let values =
        parts.iter().map(|part| Some((part.checksums.iter().find(|(a, _)| *a == algorithm)?.1.as_str(), part.size)));
    let values: Vec<(&str, u64)> = values.collect::<Option<_>>()?;
    if checksum.full_object {
        return combine_crcs(algorithm, &values);
    }
    let mut hasher = Hasher::new(algorithm);
    for (value, _) in values {
        hasher.update(&base64::engine::general_purpose::STANDARD.decode(value).ok()?);
    }
    Some(format!("{}-{}", hasher.finish().1, parts.len()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub initiated_ns: i64,
}

/// Upload ids are UUIDs; anything else cannot name an upload (and must never become a path).
fn check_upload_id(upload_id: &str) -> StoreResult<()> {
    Uuid::parse_str(upload_id).map(|_| ()).map_err(|_| StoreError::NoSuchUpload)
}

impl Store {
    pub async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        headers: Vec<(String, String)>,
        checksum: Option<MultipartChecksum>,
        lock: ObjectLock,
    ) -> StoreResult<String> {
        path::object_path(key).map_err(set::key_error)?;
        let bucket_info = self.head_bucket(bucket).await?;
        // Refused now, not at completion, when the bucket cannot lock it.
        Store::lock_for_new_version(&bucket_info.meta, lock, now_ns())?;
        let upload_id = Uuid::new_v4().to_string();
        let meta = UploadMeta { key: key.to_string(), headers, initiated_ns: now_ns(), checksum, lock }.encode();
        let _placing = self.begin_placed_write();
        let set = self.set_for(bucket, key);
        let drives = set.drives().to_vec();
        let (name, id) = (bucket.to_string(), upload_id.clone());
        let succeeded = blocking(move || {
            drives
                .iter()
                .filter(|d| d.is_online() && d.write_upload_file(&name, &id, UPLOAD_META_FILE, &meta).is_ok())
                .count()
        })
        .await;
        let quorum = set.erasure().write_quorum();
        if succeeded < quorum {
            return Err(StoreError::InsufficientQuorum {
                operation: "create upload",
                needed: quorum,
                available: succeeded,
            });
        }
        Ok(upload_id)
    }

    /// The upload's metadata, as a read quorum of drives hold it.
    pub async fn upload_meta(&self, bucket: &str, key: &str, upload_id: &str) -> StoreResult<UploadMeta> {
        self.find_upload(bucket, key, upload_id).await.map(|(meta, _)| meta)
    }

    /// The upload's metadata and the set holding it: the ring's set for the key, or, after
    /// a topology change, the set the upload started in (uploads stay where they started;
    /// completing one there records the object's location in the registry).
    async fn find_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> StoreResult<(UploadMeta, Arc<super::set::ErasureSet>)> {
        check_upload_id(upload_id)?;
        let place = self.place_of(bucket, key);
        let candidates = place.candidates().unwrap_or_else(|| {
            let sets = self.sets();
            let others = sets.iter().filter(|s| !Arc::ptr_eq(s, &place.home)).cloned();
            std::iter::once(place.home.clone()).chain(others).collect()
        });
        for set in candidates {
            let drives = set.drives().to_vec();
            let (name, id) = (bucket.to_string(), upload_id.to_string());
            let metas: Vec<UploadMeta> = blocking(move || {
                drives
                    .iter()
                    .filter(|d| d.is_online())
                    .filter_map(|d| d.read_upload_file(&name, &id, UPLOAD_META_FILE).ok().flatten())
                    .filter_map(|bytes| UploadMeta::decode(&bytes))
                    .collect()
            })
            .await;
            match metas.first() {
                Some(meta) if metas.len() >= set.erasure().read_quorum() && meta.key == key => {
                    return Ok((meta.clone(), set));
                }
                _ => {}
            }
        }
        Err(self.explain_missing(bucket, StoreError::NoSuchUpload).await)
    }

    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: BodyStream,
        mut options: PutOptions,
    ) -> StoreResult<PartMeta> {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(StoreError::InvalidArgument(format!(
                "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
            )));
        }
        let (upload, set) = self.find_upload(bucket, key, upload_id).await?;
        if let Some(MultipartChecksum { algorithm, .. }) = upload.checksum {
            if let Some(other) = options.checksum_algorithms.iter().find(|a| **a != algorithm) {
                return Err(StoreError::InvalidRequest(format!(
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    algorithm_name(algorithm).to_ascii_lowercase(),
                    algorithm_name(*other).to_ascii_lowercase()
                )));
            }
            if options.checksum_algorithms.is_empty() {
                options.checksum_algorithms.push(algorithm);
            }
        }
        let staged = Staged::new(&set);
        let staging_id = staged.id();
        options.max_size = MAX_PART_BYTES;
        let written =
            set.write_part(body, false, &staged, 1, ShardLayout::of_key(key, set.drives().len()), &options).await?;
        if let Some(expected) = options.expected_md5
            && expected != written.md5
        {
            return Err(StoreError::BadDigest);
        }
        if let Some(verify) = options.verify_checksums.take() {
            verify(&written.checksums)?;
        }
        let part = PartMeta {
            number,
            size: written.size,
            etag: hex::encode(written.md5),
            modified_ns: now_ns(),
            data_name: format!("part.{number}.{staging_id}"),
            checksums: written.checksums.clone(),
        };
        let meta = part.encode();
        let drives = set.drives().to_vec();
        let healthy: Vec<bool> = written.per_drive.iter().map(Option::is_some).collect();
        let (name, id) = (bucket.to_string(), upload_id.to_string());
        let succeeded = blocking(move || {
            drives
                .iter()
                .zip(healthy)
                .filter(|(drive, healthy)| *healthy && drive.commit_part(&name, &id, staging_id, number, &meta).is_ok())
                .count()
        })
        .await;
        staged.remove().await;
        let quorum = set.erasure().write_quorum();
        if succeeded < quorum {
            return Err(StoreError::InsufficientQuorum {
                operation: "upload part",
                needed: quorum,
                available: succeeded,
            });
        }
        self.metrics.s3_received_bytes.inc_by(part.size);
        Ok(part)
    }

    /// Parts a read quorum of drives agree on, by part number.
    pub async fn list_parts(&self, bucket: &str, key: &str, upload_id: &str) -> StoreResult<Vec<PartMeta>> {
        let (_, set) = self.find_upload(bucket, key, upload_id).await?;
        let per_drive = self.part_metas_per_drive(&set, bucket, upload_id).await;
        let quorum = set.erasure().read_quorum();
        let mut agreed: std::collections::BTreeMap<u32, PartMeta> = Default::default();
        for parts in per_drive.iter().flatten() {
            for part in parts {
                let votes = per_drive
                    .iter()
                    .flatten()
                    .filter(|other| other.iter().any(|p| p.number == part.number && p.data_name == part.data_name))
                    .count();
                if votes >= quorum {
                    agreed.insert(part.number, part.clone());
                }
            }
        }
        Ok(agreed.into_values().collect())
    }

    async fn part_metas_per_drive(
        &self,
        set: &super::set::ErasureSet,
        bucket: &str,
        upload_id: &str,
    ) -> Vec<Option<Vec<PartMeta>>> {
        let drives = set.drives().to_vec();
        let (name, id) = (bucket.to_string(), upload_id.to_string());
        blocking(move || {
            drives
                .iter()
                .map(|drive| {
                    if !drive.is_online() {
                        return None;
                    }
                    let entries = drive.list_upload_files(&name, &id).ok()?;
                    let parts = entries
                        .into_iter()
                        .filter(|file| file.starts_with("part.") && file.ends_with(".meta"))
                        .filter_map(|file| drive.read_upload_file(&name, &id, &file).ok().flatten())
                        .filter_map(|bytes| PartMeta::decode(&bytes))
                        .collect();
                    Some(parts)
                })
                .collect()
        })
        .await
    }

    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        requested: &[RequestedPart],
        expected: &[(ChecksumAlgorithm, String)],
        precondition: Option<super::Precondition>,
    ) -> StoreResult<ObjectInfo> {
        let bucket_info = self.head_bucket(bucket).await?;
        let versioning = bucket_info.versioning();
        let _placing = self.begin_placed_write();
        let (upload, set) = self.find_upload(bucket, key, upload_id).await?;
        let lock = Store::lock_for_new_version(&bucket_info.meta, upload.lock, now_ns())?;
        if requested.is_empty() {
            return Err(StoreError::InvalidRequest("You must specify at least one part".into()));
        }
        if requested.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(StoreError::InvalidPartOrder);
        }
        let available = self.list_parts(bucket, key, upload_id).await?;
        let mut chosen: Vec<PartMeta> = Vec::with_capacity(requested.len());
        for wanted in requested {
            let (number, etag) = (wanted.number, wanted.etag.trim_matches('"'));
            let Some(part) = available.iter().find(|p| p.number == number && p.etag == etag) else {
                return Err(StoreError::InvalidPart(format!("part {number} with ETag \"{etag}\"")));
            };
            for (algorithm, value) in &wanted.checksums {
                match part.checksums.iter().find(|(a, _)| a == algorithm) {
                    Some((_, stored)) if stored == value => {}
                    Some(_) => {
                        return Err(StoreError::InvalidPart(format!(
                            "part {number}: the {} checksum {value} is not the part's",
                            algorithm_name(*algorithm)
                        )));
                    }
                    None => {
                        return Err(StoreError::InvalidPart(format!(
                            "part {number} was uploaded without a {} checksum",
                            algorithm_name(*algorithm)
                        )));
                    }
                }
            }
            chosen.push(part.clone());
        }
        if chosen[..chosen.len() - 1].iter().any(|p| p.size < MIN_PART_BYTES) {
            return Err(StoreError::EntityTooSmall);
        }
        let checksums: Vec<(ChecksumAlgorithm, String)> =
            upload.checksum.and_then(|c| Some((c.algorithm, object_checksum(c, &chosen)?))).into_iter().collect();
        // A whole-object checksum sent with Complete must be the object's (base64 has no
        // '-', so a composite value compares without its "-N").
        let head = |value: &str| value.split('-').next().unwrap_or_default().to_string();
        for (algorithm, value) in expected {
            match checksums.iter().find(|(a, _)| a == algorithm) {
                Some((_, ours)) if head(ours) == head(value) => {}
                Some(_) => return Err(StoreError::ChecksumMismatch(algorithm_name(*algorithm))),
                None => {
                    return Err(StoreError::InvalidRequest(format!(
                        "The upload was not created with a {} checksum, so the object cannot be checked against one",
                        algorithm_name(*algorithm)
                    )));
                }
            }
        }
        let mut md5 = md5_many::Md5::new();
        for part in &chosen {
            md5.update(hex::decode(&part.etag).map_err(|_| StoreError::InvalidPart(part.etag.clone()))?);
        }
        let etag = format!("{}-{}", hex::encode(md5.finalize()), chosen.len());
        let size: u64 = chosen.iter().map(|p| p.size).sum();
        let staged = Staged::new(&set);
        let data_dir = staged.id();
        // Stage the part files on every drive that has all of them.
        let drives = set.drives().to_vec();
        let (name, id) = (bucket.to_string(), upload_id.to_string());
        let files: Vec<(u32, String)> = chosen.iter().map(|p| (p.number, p.data_name.clone())).collect();
        let staged_on: Vec<bool> = blocking(move || {
            drives
                .iter()
                .map(|drive| drive.is_online() && drive.stage_upload_parts(&name, &id, data_dir, &files).is_ok())
                .collect()
        })
        .await;
        let now = now_ns();
        let version = ObjectVersion {
            version_id: super::new_version_id(versioning).0,
            modified_ns: now,
            changed_ns: now,
            kind: VersionKind::Object,
            size,
            etag,
            headers: upload.headers.clone(),
            checksums,
            erasure: set.layout(0),
            data_dir: Some(*data_dir.as_bytes()),
            parts: chosen
                .iter()
                .map(|p| PartInfo {
                    number: p.number,
                    size: p.size,
                    etag: p.etag.clone(),
                    checksums: p.checksums.clone(),
                })
                .collect(),
            inline_data: None,
            lock,
        };
        let id = VersionId(version.version_id);
        let per_drive =
            staged_on.into_iter().map(|ok| if ok { DriveCopy::Staged } else { DriveCopy::Failed }).collect();
        let object_path = path::object_path(key).map_err(set::key_error)?;
        let layout = ShardLayout::of_key(key, set.drives().len());
        // Commit and clear the other sets under one hold of the key's lock.
        let _guard = self.lock_key(bucket, key).await?;
        if !versioning.is_unversioned() || precondition.is_some() {
            self.gather_versions_locked(bucket, key, &set).await?;
        }
        let commit = Commit::one(version, layout, per_drive, Some(staged), precondition, Order::Newest);
        let info = set.commit_locked(bucket, key, &object_path, commit).await?;
        self.remove_upload(&set, bucket, upload_id).await;
        self.clear_stale_copies_locked(bucket, key, &set, id).await?;
        if !Arc::ptr_eq(&set, &self.set_for(bucket, key)) {
            // Completed away from the ring's set: the migration moves it on its next pass.
            self.rescan_set(&set).await;
        }
        Ok(info)
    }

    async fn remove_upload(&self, set: &super::set::ErasureSet, bucket: &str, upload_id: &str) -> usize {
        let drives = set.drives().to_vec();
        let (name, id) = (bucket.to_string(), upload_id.to_string());
        blocking(move || drives.iter().filter(|d| d.is_online() && d.remove_upload(&name, &id).is_ok()).count()).await
    }

    pub async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> StoreResult<()> {
        let (_, set) = self.find_upload(bucket, key, upload_id).await?;
        self.remove_upload(&set, bucket, upload_id).await;
        Ok(())
    }

    /// In-progress uploads of a bucket in one set (those a quorum of its drives holds).
    pub(crate) async fn list_uploads_in(&self, set: &Arc<super::set::ErasureSet>, bucket: &str) -> Vec<UploadInfo> {
        let drives = set.drives().to_vec();
        let name = bucket.to_string();
        let found: Vec<(String, UploadMeta)> = blocking(move || {
            let mut found = Vec::new();
            for drive in drives.iter().filter(|d| d.is_online()) {
                for upload_id in drive.list_uploads(&name).unwrap_or_default() {
                    let meta = drive.read_upload_file(&name, &upload_id, UPLOAD_META_FILE).ok().flatten();
                    if let Some(meta) = meta.and_then(|bytes| UploadMeta::decode(&bytes)) {
                        found.push((upload_id, meta));
                    }
                }
            }
            found
        })
        .await;
        let mut votes: std::collections::BTreeMap<String, (UploadMeta, usize)> = Default::default();
        for (upload_id, meta) in found {
            votes.entry(upload_id).or_insert((meta, 0)).1 += 1;
        }
        votes
            .into_iter()
            .filter(|(_, (_, count))| *count >= set.erasure().read_quorum())
            .map(|(upload_id, (meta, _))| UploadInfo { key: meta.key, upload_id, initiated_ns: meta.initiated_ns })
            .collect()
    }

    /// In-progress uploads of a bucket, sorted by key then initiation time.
    pub async fn list_multipart_uploads(&self, bucket: &str, prefix: &str) -> StoreResult<Vec<UploadInfo>> {
        self.head_bucket(bucket).await?;
        let mut uploads: std::collections::BTreeMap<String, (UploadMeta, usize, usize)> = Default::default();
        for (set_index, set) in self.sets().iter().enumerate() {
            let drives = set.drives().to_vec();
            let name = bucket.to_string();
            let found: Vec<(String, UploadMeta)> = blocking(move || {
                let mut found = Vec::new();
                for drive in drives.iter().filter(|d| d.is_online()) {
                    let Ok(entries) = drive.list_uploads(&name) else {
                        continue;
                    };
                    for upload_id in entries {
                        if let Some(meta) = drive
                            .read_upload_file(&name, &upload_id, UPLOAD_META_FILE)
                            .ok()
                            .flatten()
                            .and_then(|bytes| UploadMeta::decode(&bytes))
                        {
                            found.push((upload_id, meta));
                        }
                    }
                }
                found
            })
            .await;
            for (upload_id, meta) in found {
                uploads.entry(upload_id).or_insert((meta, set_index, 0)).2 += 1;
            }
        }
        let mut out: Vec<UploadInfo> = uploads
            .into_iter()
            .filter(|(_, (meta, set_index, votes))| {
                *votes >= self.sets()[*set_index].erasure().read_quorum() && meta.key.starts_with(prefix)
            })
            .map(|(upload_id, (meta, _, _))| UploadInfo { key: meta.key, upload_id, initiated_ns: meta.initiated_ns })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated_ns.cmp(&b.initiated_ns)));
        Ok(out)
    }
}
