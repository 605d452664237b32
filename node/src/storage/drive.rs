//! One local drive: a directory holding a format file, bucket directories, object
//! metadata and shard files. All calls block; callers run them on the blocking pool.
//!
//! Owns: atomic, durable file operations (write to a temporary file, fsync, rename, fsync
//! the directory). Must never interpret object metadata (it reads and writes bytes; a
//! listing's trimming of inline data is `format::object`'s), and never touch a path that
//! did not come from `storage::path`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::path::{BUCKET_META_FILE, DATA_DIR_PREFIX, DIR_OBJECT_META_FILE, KeyDir, ObjectPath, SYSTEM_DIR};
use crate::format::drive::DriveFormat;

pub const FORMAT_FILE: &str = "format.bkt";

/// One directory level of `Drive::walk`, in key order (`path::key_order`), descending
/// into the subtrees that can hold keys after `marker` under `prefix`.
#[allow(clippy::too_many_arguments)]
fn walk_dir<D: Drive + ?Sized>(
    drive: &D,
    bucket: &str,
    segments: &mut Vec<String>,
    child_prefix: &str,
    prefix: &str,
    marker: &str,
    limit: usize,
    out: &mut Vec<(String, Vec<u8>)>,
) -> io::Result<()> {
    use super::path::{KeyEntry, OBJECT_META_FILE, segments_dir};
    let relative = segments_dir(segments);
    let dir = match drive.key_dir(bucket, &relative) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // Inline data stays out of a listing (it can be most of the metadata's bytes).
    let read = |dir: PathBuf, meta_file: &'static str| -> io::Result<Option<Vec<u8>>> {
        let bytes = drive.read_object_meta(bucket, &ObjectPath { dir, meta_file })?;
        Ok(bytes.as_deref().and_then(crate::format::object::ObjectMeta::without_inline_data))
    };
    let wanted = |key: &str| key > marker && key.starts_with(prefix);
    if dir.dir_object
        && !child_prefix.is_empty()
        && wanted(child_prefix)
        && let Some(meta) = read(relative.clone(), DIR_OBJECT_META_FILE)?
    {
        out.push((child_prefix.to_string(), meta));
    }
    for entry in dir.entries_after(child_prefix, marker) {
        if out.len() >= limit || (entry.key() > prefix && !entry.key().starts_with(prefix)) {
            // Full, or past the prefix's range (every later key sorts after it too).
            return Ok(());
        }
        match entry {
            KeyEntry::DirObject { .. } => {}
            KeyEntry::Object { key, segment } => {
                if wanted(&key) {
                    segments.push(segment);
                    let meta = read(segments_dir(segments), OBJECT_META_FILE)?;
                    segments.pop();
                    if let Some(meta) = meta {
                        out.push((key, meta));
                    }
                }
            }
            KeyEntry::Subtree { key, segment } => {
                if key.starts_with(prefix) || prefix.starts_with(key.as_str()) {
                    segments.push(segment);
                    walk_dir(drive, bucket, segments, &key, prefix, marker, limit, out)?;
                    segments.pop();
                }
            }
        }
    }
    Ok(())
}

/// Counts every change a `LocalDrive` of this process makes under a bucket (bumped after
/// the change): a cached key directory read before the latest change is stale.
static BUCKET_WRITES: AtomicU64 = AtomicU64::new(0);

/// Bumps `BUCKET_WRITES` when dropped, at the end of a change, on every path out of it.
struct BucketWrite;

impl Drop for BucketWrite {
    fn drop(&mut self) {
        BUCKET_WRITES.fetch_add(1, Ordering::SeqCst);
    }
}

/// Directories with fewer children are read afresh each time (cheap enough).
const MIN_CACHED_CHILDREN: usize = 256;
/// Most children one drive keeps in its cache of key directories (about 70 bytes each).
const MAX_CACHED_CHILDREN: usize = 256 * 1024;
/// A directory changed this recently is not cached: a change in the same tick of the
/// file system's clock would leave its modification time as it is.
const SETTLED: std::time::Duration = std::time::Duration::from_millis(100);

/// The sorted key directories of a drive's large directories, so that each page of a
/// listing does not re-read and re-sort the whole directory (which makes listing a
/// directory of N keys cost N²/page). An entry is good while no change was made under a
/// bucket by this process (`BUCKET_WRITES`) and the directory's modification time is the
/// same (changes from outside).
#[derive(Debug, Default)]
struct KeyDirCache {
    dirs: std::collections::HashMap<PathBuf, CachedKeyDir>,
    children: usize,
    clock: u64,
}

#[derive(Debug)]
struct CachedKeyDir {
    writes: u64,
    modified: std::time::SystemTime,
    dir: Arc<KeyDir>,
    used: u64,
}

impl KeyDirCache {
    fn get(&mut self, path: &Path, writes: u64, modified: std::time::SystemTime) -> Option<Arc<KeyDir>> {
        self.clock += 1;
        let entry = self.dirs.get_mut(path)?;
        if entry.writes == writes && entry.modified == modified {
            entry.used = self.clock;
            return Some(entry.dir.clone());
        }
        let stale = self.dirs.remove(path)?;
        self.children -= stale.dir.len();
        None
    }

    fn insert(&mut self, path: PathBuf, writes: u64, modified: std::time::SystemTime, dir: Arc<KeyDir>) {
        if dir.len() < MIN_CACHED_CHILDREN || dir.len() > MAX_CACHED_CHILDREN {
            return;
        }
        while self.children + dir.len() > MAX_CACHED_CHILDREN {
            let Some(oldest) = self.dirs.iter().min_by_key(|(_, e)| e.used).map(|(p, _)| p.clone()) else { break };
            if let Some(evicted) = self.dirs.remove(&oldest) {
                self.children -= evicted.dir.len();
            }
        }
        self.children += dir.len();
        self.clock += 1;
        let used = self.clock;
        if let Some(replaced) = self.dirs.insert(path, CachedKeyDir { writes, modified, dir, used }) {
            self.children -= replaced.dir.len();
        }
    }
}

const TMP_DIR: &str = "tmp";
/// Data directories of replaced or deleted versions wait here (as `<uuid>.<unix secs>`)
/// before deletion, so a reader still streaming that version (through another node) can
/// finish it.
const TRASH_DIR: &str = "trash";
/// How long a retired data directory stays readable.
pub const TRASH_RETENTION: std::time::Duration = std::time::Duration::from_secs(600);
const MULTIPART_DIR: &str = "multipart";

/// What a drive holds and can still take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DriveUsage {
    /// Size of the filesystem the drive is on.
    pub total_bytes: u64,
    /// Bytes the filesystem still has for this process.
    pub free_bytes: u64,
    /// Bytes of files under the drive's directory (shards, metadata, system files): what
    /// this drive would hand to others if its set were drained. Counted by a walk that
    /// stops at `MAX_USAGE_WALK_ENTRIES` (then a lower bound).
    pub stored_bytes: u64,
}

/// Most directory entries one usage walk visits (bounds the cost of `GET
/// /admin/v1/capacity` on a drive with very many objects).
pub const MAX_USAGE_WALK_ENTRIES: usize = 5_000_000;

/// Sums the sizes of the files under `root`, visiting at most `MAX_USAGE_WALK_ENTRIES`.
/// Entries that vanish during the walk (a commit, a trash purge) count as nothing.
fn stored_bytes(root: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    for entry in walkdir::WalkDir::new(root).min_depth(1).into_iter().take(MAX_USAGE_WALK_ENTRIES) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.io_error().is_some_and(|e| e.kind() == io::ErrorKind::NotFound) => continue,
            Err(e) if e.depth() == 0 => return Err(e.into()),
            Err(_) => continue,
        };
        if entry.file_type().is_file() {
            total += entry.metadata().map_or(0, |meta| meta.len());
        }
    }
    Ok(total)
}

#[derive(Debug)]
pub struct LocalDrive {
    root: PathBuf,
    format: DriveFormat,
    /// False while the drive is missing its format (wiped or replaced) until re-formatted.
    online: AtomicBool,
    key_dirs: Mutex<KeyDirCache>,
    /// Directories being read for `key_dirs`, each with a gate its readers pass one at a
    /// time: the first reads, the others then find its result in the cache instead of
    /// each reading (and holding) the same directory (16 listings starting at once on a
    /// 200,000-key directory held 1.2 GB).
    key_dir_reads: Mutex<std::collections::HashMap<PathBuf, Arc<Mutex<()>>>>,
}

impl LocalDrive {
    pub fn new(root: PathBuf, format: DriveFormat) -> Self {
        LocalDrive {
            root,
            format,
            online: AtomicBool::new(true),
            key_dirs: Mutex::default(),
            key_dir_reads: Mutex::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn system_dir(&self) -> PathBuf {
        self.root.join(SYSTEM_DIR)
    }

    pub fn format_path(root: &Path) -> PathBuf {
        root.join(SYSTEM_DIR).join(FORMAT_FILE)
    }

    /// Reads a drive's format file; `Ok(None)` when the drive has none.
    pub fn read_format(root: &Path) -> io::Result<Option<DriveFormat>> {
        match fs::read(Self::format_path(root)) {
            Ok(bytes) => DriveFormat::decode(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", root.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the format file and the system directories of a drive.
    pub fn write_format(root: &Path, format: &DriveFormat) -> io::Result<()> {
        let system = root.join(SYSTEM_DIR);
        fs::create_dir_all(system.join(TMP_DIR))?;
        fs::create_dir_all(system.join(MULTIPART_DIR))?;
        write_atomic(&system.join(TMP_DIR), &Self::format_path(root), &format.encode())?;
        sync_dir(root)
    }

    /// Whether a directory is empty or absent (may be formatted as a fresh drive).
    pub fn is_blank(root: &Path) -> io::Result<bool> {
        match fs::read_dir(root) {
            Ok(mut entries) => Ok(entries.next().is_none()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Writes `bytes` at `offset` of shard file `name` in a staging directory (a peer's
    /// `ShardFile` appends block by block; offset 0 starts the file afresh).
    pub fn write_shard_at(&self, staging_id: Uuid, name: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let dir = self.create_staging_dir(staging_id)?;
        let mut file = OpenOptions::new().write(true).create(true).truncate(offset == 0).open(dir.join(name))?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bytes)
    }

    /// Makes a staged shard file durable.
    pub fn sync_shard(&self, staging_id: Uuid, name: &str) -> io::Result<()> {
        File::open(self.tmp_root().join(staging_id.to_string()).join(name))?.sync_all()
    }

    /// Removes what a crash may have left in the staging area.
    pub fn clean_tmp(&self) -> io::Result<()> {
        let tmp = self.tmp_root();
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)
    }

    fn trash_root(&self) -> PathBuf {
        self.system_dir().join(TRASH_DIR)
    }

    /// Moves a data directory to the trash (deleting it outright if that fails).
    fn retire_data_dir(&self, object_dir: &Path, data_dir: Uuid) {
        let source = object_dir.join(format!("{DATA_DIR_PREFIX}{data_dir}"));
        if !source.exists() {
            return;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let trash = self.trash_root();
        let retired = trash.join(format!("{data_dir}.{now}"));
        // The trash is made when missing (a fresh drive), not made sure of on every call.
        let moved = match fs::rename(&source, &retired) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&trash).and_then(|()| fs::rename(&source, &retired))
            }
            other => other,
        };
        if moved.is_err() {
            let _ = fs::remove_dir_all(&source);
        }
    }

    /// Where a retired data directory went, if it is still in the trash.
    fn retired_data_dir(&self, data_dir: Uuid) -> Option<PathBuf> {
        let prefix = format!("{data_dir}.");
        fs::read_dir(self.trash_root())
            .ok()?
            .flatten()
            .find(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
            .map(|entry| entry.path())
    }

    fn tmp_root(&self) -> PathBuf {
        self.system_dir().join(TMP_DIR)
    }

    /// A new staging directory for one write.
    fn create_staging_dir(&self, id: Uuid) -> io::Result<PathBuf> {
        let dir = self.tmp_root().join(id.to_string());
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    fn object_dir(&self, bucket: &str, path: &ObjectPath) -> PathBuf {
        self.bucket_dir(bucket).join(&path.dir)
    }

    fn data_dir_path(&self, bucket: &str, path: &ObjectPath, data_dir: Uuid) -> PathBuf {
        self.object_dir(bucket, path).join(format!("{DATA_DIR_PREFIX}{data_dir}"))
    }

    /// Removes empty directories from `dir` up to (not including) `stop`.
    fn prune_empty_dirs(&self, stop: &Path, dir: &Path) {
        let mut current = dir.to_path_buf();
        while current.starts_with(stop) && current != stop {
            if fs::remove_dir(&current).is_err() {
                break;
            }
            if !current.pop() {
                break;
            }
        }
    }

    /// Entries of a directory below a bucket: (name, is_dir).
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // A listing prefix may name a path that cannot exist (a segment too long for
            // the file system): nothing is there.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || matches!(e.raw_os_error(), Some(20 /* ENOTDIR */) | Some(36 /* ENAMETOOLONG */)) =>
            {
                return Ok(out);
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_dir = entry.file_type()?.is_dir();
            out.push((name, is_dir));
        }
        Ok(out)
    }

    fn multipart_bucket_dir(&self, bucket: &str) -> PathBuf {
        self.system_dir().join(MULTIPART_DIR).join(bucket)
    }

    fn upload_dir(&self, bucket: &str, upload_id: &str) -> PathBuf {
        self.multipart_bucket_dir(bucket).join(upload_id)
    }
}

/// A drive as the erasure sets use it: local today, remote (over peer RPC) in a cluster.
/// Every call blocks; callers run it on the blocking pool. Paths never cross this
/// interface: callers name buckets, keys (as `ObjectPath`), uploads and staging ids.
pub trait Drive: Send + Sync + std::fmt::Debug {
    /// How logs name the drive (a path, or a URL for a remote one).
    fn name(&self) -> String;
    /// Whether this process owns the drive (and so monitors, formats and heals it).
    fn is_local(&self) -> bool {
        true
    }
    /// Deletes data of replaced versions retired longer than `retention` ago (owner only).
    fn empty_trash(&self, _retention: std::time::Duration) -> usize {
        0
    }
    fn format(&self) -> &DriveFormat;
    /// Whether I/O should be tried on the drive now.
    fn is_online(&self) -> bool;
    /// Whether the drive was last seen answering (for transitions and logs; a remote drive
    /// marked offline is still tried again after a short cool-down, see `is_online`).
    fn is_marked_online(&self) -> bool {
        self.is_online()
    }
    fn set_online(&self, online: bool);
    /// Whether the drive came back online since the last call (then it needs healing).
    fn take_returned(&self) -> bool {
        false
    }
    /// The format file as it is on the drive now (`None`: the drive lost it).
    fn read_current_format(&self) -> io::Result<Option<DriveFormat>>;
    /// Writes the drive's format again (same identity) on a drive that lost it; `false`
    /// when the drive's directory itself is gone.
    fn reformat(&self) -> io::Result<bool>;

    /// A small file of the drive's system directory (the topology), `None` if absent.
    fn read_system_file(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces a system file atomically and durably.
    fn write_system_file(&self, name: &str, bytes: &[u8]) -> io::Result<()>;

    /// Size and free space of the drive's filesystem, and the bytes stored on the drive.
    fn usage(&self) -> io::Result<DriveUsage>;

    /// A new shard file `name` in staging directory `staging_id`.
    fn create_shard_file(&self, staging_id: Uuid, name: &str) -> io::Result<Box<dyn ShardFile>>;
    fn has_staging(&self, staging_id: Uuid) -> bool;
    fn remove_staging(&self, staging_id: Uuid);

    fn make_bucket(&self, bucket: &str, meta: &[u8]) -> io::Result<()>;
    fn read_bucket_meta(&self, bucket: &str) -> io::Result<Option<Vec<u8>>>;
    fn delete_bucket(&self, bucket: &str) -> io::Result<()>;
    fn list_buckets(&self) -> io::Result<Vec<(String, Vec<u8>)>>;

    fn read_object_meta(&self, bucket: &str, path: &ObjectPath) -> io::Result<Option<Vec<u8>>>;
    /// `read_object_meta` when it can be answered without waiting for a disk or a peer (the
    /// file is in the kernel's caches; `Some(None)`: known not to exist); `None` otherwise,
    /// and on any error (the ordinary read reports it). Callers on the async runtime try
    /// this first: a hand-off to the blocking pool costs more than a cached read.
    fn read_object_meta_cached(&self, _bucket: &str, _path: &ObjectPath) -> Option<Option<Vec<u8>>> {
        None
    }
    /// `read_object_meta` as a future, for a drive that answers over the network (a
    /// peer's): awaited on the runtime, no blocking-pool thread waits for the answer.
    /// `None` for a drive whose calls block (a local disk): the caller uses the pool.
    fn read_object_meta_async(&self, _bucket: &str, _path: &ObjectPath) -> Option<AsyncCall<Option<Vec<u8>>>> {
        None
    }
    /// `commit_merged` as a future, as `read_object_meta_async` is.
    fn commit_merged_async(&self, _request: MergeRequest<'_>) -> Option<AsyncCall<MergedCommit>> {
        None
    }
    /// Moves the staging directories `staged` into place as data directories of the key
    /// and writes its metadata file, durably; `staged` may be empty.
    fn commit_object(&self, bucket: &str, path: &ObjectPath, meta: &[u8], staged: &[Uuid]) -> io::Result<()>;
    /// `commit_object`, durable when `durability` says (a drive that cannot defer its
    /// syncs commits durably, which is never wrong).
    fn commit_object_as(
        &self,
        bucket: &str,
        path: &ObjectPath,
        meta: &[u8],
        staged: &[Uuid],
        _durability: Durability,
    ) -> io::Result<()> {
        self.commit_object(bucket, path, meta, staged)
    }
    /// Makes everything written to the drive so far durable (`Durability::Deferred`
    /// writes included): one sync of its file system.
    fn sync_drive(&self) -> io::Result<()>;
    /// `commit_object` of the key's metadata file with the request's entries merged in,
    /// each in place of the drive's entry of its id: a write that need not read every
    /// drive's file first.
    fn commit_merged(&self, request: MergeRequest<'_>) -> io::Result<MergedCommit> {
        commit_merged_by_parts(self, request)
    }
    fn remove_data_dirs(&self, bucket: &str, path: &ObjectPath, data_dirs: &[Uuid]);
    fn restore_object(
        &self,
        bucket: &str,
        path: &ObjectPath,
        previous_meta: Option<&[u8]>,
        new_data_dirs: &[Uuid],
    ) -> io::Result<()>;
    fn delete_object(&self, bucket: &str, path: &ObjectPath, data_dirs: &[Uuid]) -> io::Result<()>;
    /// `len` bytes at `offset` of shard file `part.N` in a version's data directory.
    fn read_shard(
        &self,
        bucket: &str,
        path: &ObjectPath,
        data_dir: Uuid,
        part_number: u32,
        offset: u64,
        len: usize,
    ) -> io::Result<Vec<u8>>;
    /// `read_shard` when it can be answered from the kernel's caches without waiting;
    /// `None` otherwise (and on any error: the ordinary read reports it).
    fn read_shard_cached(
        &self,
        _bucket: &str,
        _path: &ObjectPath,
        _data_dir: Uuid,
        _part_number: u32,
        _offset: u64,
        _len: usize,
    ) -> Option<Vec<u8>> {
        None
    }
    /// Entries (name, is directory) of a key directory (`relative` to the bucket).
    fn list_dir(&self, bucket: &str, relative: &Path) -> io::Result<Vec<(String, bool)>>;
    /// Copies the shard files of a version's data directory on this drive, each block
    /// checked against its checksum first, into a staging directory of `target`
    /// (`push_shards_by_parts`). A peer's drive is asked to do it itself: the bytes go
    /// from its node to the target's, not through the caller.
    fn push_shards(&self, target: &Arc<dyn Drive>, copy: &ShardCopy) -> io::Result<()> {
        push_shards_by_parts(self, target.as_ref(), copy)
    }
    /// `push_shards` as a future, for a drive that answers over the network (as
    /// `read_object_meta_async`); `None` for a local one (the caller uses the pool).
    fn push_shards_async(&self, _target: &Arc<dyn Drive>, _copy: &ShardCopy) -> Option<AsyncCall<()>> {
        None
    }
    /// A shard file another node wrote on this drive without an fsync
    /// (`Durability::Deferred`), for `sync_drive` to make durable with the files this
    /// process wrote there itself.
    fn note_unsynced(&self, _staging_id: Uuid, _name: &str) {}

    /// A directory below a bucket as keys in key order (for `walk`).
    fn key_dir(&self, bucket: &str, relative: &Path) -> io::Result<Arc<KeyDir>> {
        Ok(Arc::new(KeyDir::new(&self.list_dir(bucket, relative)?)))
    }

    /// Up to `limit` objects of the bucket in key (byte) order, after `marker`, whose keys
    /// start with `prefix`, each with its metadata (inline data stripped): one call per
    /// drive for a page of a listing, instead of one per key. Remote drives answer it in a
    /// single RPC.
    fn walk(&self, bucket: &str, prefix: &str, marker: &str, limit: usize) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        walk_dir(self, bucket, &mut Vec::new(), "", prefix, marker, limit, &mut out)?;
        Ok(out)
    }

    fn write_upload_file(&self, bucket: &str, upload_id: &str, name: &str, bytes: &[u8]) -> io::Result<()>;
    fn read_upload_file(&self, bucket: &str, upload_id: &str, name: &str) -> io::Result<Option<Vec<u8>>>;
    fn list_upload_files(&self, bucket: &str, upload_id: &str) -> io::Result<Vec<String>>;
    fn list_uploads(&self, bucket: &str) -> io::Result<Vec<String>>;
    fn commit_part(&self, bucket: &str, upload_id: &str, staging_id: Uuid, number: u32, meta: &[u8]) -> io::Result<()>;
    fn stage_upload_parts(
        &self,
        bucket: &str,
        upload_id: &str,
        staging_id: Uuid,
        parts: &[(u32, String)],
    ) -> io::Result<()>;
    fn remove_upload(&self, bucket: &str, upload_id: &str) -> io::Result<()>;
}

/// What a drive answers to `Drive::commit_merged`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MergedCommit {
    /// Committed; the metadata file it replaced (`None`: the key had none here).
    Committed { previous: Option<Vec<u8>> },
    /// Not committed: the drive holds a version this new or newer, the newest at this time.
    Behind { newest_ns: i64 },
}

/// A drive call in flight over the network (`Drive::read_object_meta_async`).
pub type AsyncCall<T> = std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<T>> + Send + 'static>>;

/// What `Drive::commit_merged` commits: `entries` (an encoded `ObjectMeta`) merged into
/// the key's metadata file and the staging directories `staged` moved into place. With
/// `newest`, only when every entry the drive holds is older than the new ones (else the
/// answer is `Behind`: a clock stepped back).
#[derive(Clone, Copy, Debug)]
pub struct MergeRequest<'a> {
    pub bucket: &'a str,
    pub path: &'a ObjectPath,
    pub entries: &'a [u8],
    pub staged: &'a [Uuid],
    pub newest: bool,
    pub durability: Durability,
}

/// A `MergeRequest`'s data owned, for a commit handed to another thread or task.
#[derive(Clone, Debug)]
pub struct OwnedMerge {
    pub bucket: String,
    pub path: ObjectPath,
    pub entries: Vec<u8>,
    pub staged: Vec<Uuid>,
    pub newest: bool,
    pub durability: Durability,
}

impl OwnedMerge {
    pub fn of(request: MergeRequest<'_>) -> OwnedMerge {
        let MergeRequest { bucket, path, entries, staged, newest, durability } = request;
        OwnedMerge {
            bucket: bucket.to_string(),
            path: path.clone(),
            entries: entries.to_vec(),
            staged: staged.to_vec(),
            newest,
            durability,
        }
    }

    pub fn request(&self) -> MergeRequest<'_> {
        MergeRequest {
            bucket: &self.bucket,
            path: &self.path,
            entries: &self.entries,
            staged: &self.staged,
            newest: self.newest,
            durability: self.durability,
        }
    }
}

/// When a write reaches stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Before the call returns (every file and directory it wrote is fsynced).
    #[default]
    Synced,
    /// At the caller's next `Drive::sync_drive`: written through the page cache, not
    /// fsynced. For the migration, which makes a batch of moves durable at once, one
    /// sync of each drive instead of several fsyncs per move and drive.
    Deferred,
}

/// `Drive::commit_merged` by a read of the key's metadata file and `commit_object` (local
/// drives, and peers of a version without the call).
pub fn commit_merged_by_parts(drive: &(impl Drive + ?Sized), request: MergeRequest<'_>) -> io::Result<MergedCommit> {
    let MergeRequest { bucket, path, entries, staged, newest, durability } = request;
    use crate::format::object::ObjectMeta;
    let new = ObjectMeta::decode(entries).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let previous = drive.read_object_meta(bucket, path)?;
    // A corrupt file counts as none, as reads count it (healing rewrites it).
    let held =
        previous.as_deref().and_then(|bytes| ObjectMeta::decode(bytes).ok()).map_or_else(Vec::new, |m| m.versions);
    if newest {
        // An entry identical to a new one is this commit's own, from a retried call.
        let others = held.iter().filter(|v| !new.versions.contains(v));
        let floor = new.versions.iter().map(|v| v.modified_ns).min().unwrap_or(i64::MAX);
        if let Some(newest_ns) = others.map(|v| v.modified_ns).max().filter(|&held| held >= floor) {
            return Ok(MergedCommit::Behind { newest_ns });
        }
    }
    let versions = new.versions.into_iter().fold(held, crate::storage::set::with_entry);
    drive.commit_object_as(bucket, path, &ObjectMeta { versions }.encode(), staged, durability)?;
    Ok(MergedCommit::Committed { previous })
}

/// What `Drive::push_shards` copies: the shard files `part.<number>` of data directory
/// `data_dir` of a key, for parts of the given sizes in object bytes under an erasure code
/// of `data_shards` data shards, into staging directory `staging`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardCopy {
    pub bucket: String,
    pub path: ObjectPath,
    pub data_dir: Uuid,
    pub parts: Vec<(u32, u64)>,
    pub data_shards: u32,
    pub staging: Uuid,
    pub durability: Durability,
}

/// Shard bytes a copy reads, checks and writes at a time (whole blocks).
const SHARD_COPY_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// `Drive::push_shards` by reads of `source` and a shard file written on `target`: every
/// block's checksum is checked before its bytes go on (a corrupt shard is never copied;
/// the error is `InvalidData`), in chunks of whole blocks.
pub fn push_shards_by_parts(source: &(impl Drive + ?Sized), target: &dyn Drive, copy: &ShardCopy) -> io::Result<()> {
    use crate::erasure::{BLOCK_SIZE_BYTES, Erasure, SHARD_CHECKSUM_BYTES, checked_shard};
    let data_shards = copy.data_shards as usize;
    // A code has at least one parity shard, within a set's drives.
    if data_shards == 0 || data_shards >= crate::erasure::MAX_SET_DRIVES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no erasure code has {data_shards} data shards"),
        ));
    }
    // Shard lengths depend on the data shards only.
    let erasure = Erasure::new(data_shards, 1);
    let full_block = SHARD_CHECKSUM_BYTES + erasure.shard_len(BLOCK_SIZE_BYTES);
    for &(number, size) in &copy.parts {
        let mut file = target.create_shard_file(copy.staging, &format!("part.{number}"))?;
        let blocks = size.div_ceil(BLOCK_SIZE_BYTES as u64);
        let per_chunk = (SHARD_COPY_CHUNK_BYTES / full_block).max(1) as u64;
        let mut block = 0;
        while block < blocks {
            let count = per_chunk.min(blocks - block);
            let last_len = (size - (block + count - 1) * BLOCK_SIZE_BYTES as u64).min(BLOCK_SIZE_BYTES as u64);
            let last_block = SHARD_CHECKSUM_BYTES + erasure.shard_len(last_len as usize);
            let len = (count as usize - 1) * full_block + last_block;
            let offset = block * full_block as u64;
            let bytes = source.read_shard(&copy.bucket, &copy.path, copy.data_dir, number, offset, len)?;
            if let Some(bad) = bytes.chunks(full_block).position(|stored| checked_shard(stored).is_none()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: block {} of part {number} does not match its checksum",
                        source.name(),
                        block + bad as u64
                    ),
                ));
            }
            file.write_all(&bytes)?;
            block += count;
        }
        file.close(copy.durability)?;
    }
    Ok(())
}

/// A shard file being written: appended block by block, then made durable.
pub trait ShardFile: Send {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Writes what is buffered and closes the file, fsynced when `durability` says.
    fn close(self: Box<Self>, durability: Durability) -> io::Result<()>;
    /// `close` as a future on `runtime`, for a file on a peer (its last bytes and the
    /// fsync go in one call): the files of a write are closed together from one thread.
    /// A file whose close blocks (on a local disk) comes back as it is.
    fn close_async(self: Box<Self>, durability: Durability) -> Result<SyncCall, Box<dyn ShardFile>>;
}

/// A shard file's sync in flight, and the runtime that drives it.
pub struct SyncCall {
    pub runtime: tokio::runtime::Handle,
    pub call: AsyncCall<()>,
}

/// Alignment of `O_DIRECT` writes (the logical block size of common devices and the page
/// size).
const DIRECT_ALIGN: usize = 4096;
/// Bytes a shard file gathers before one `O_DIRECT` write (a multiple of `DIRECT_ALIGN`).
const DIRECT_CHUNK: usize = 512 * 1024;

/// A shard file being written. Where the file system allows it the file is opened with
/// `O_DIRECT`: shard bytes go from our buffer to the device without being copied into the
/// page cache (a PUT of large objects spent two thirds of its CPU in that copy), in
/// aligned chunks; the unaligned tail goes through the page cache, before the fsync.
struct LocalShardFile {
    file: File,
    path: PathBuf,
    /// `O_DIRECT`'s aligned buffer, `None` when the file is written through the cache.
    direct: Option<AlignedBuffer>,
}

/// `DIRECT_CHUNK` bytes at an address aligned to `DIRECT_ALIGN`, inside a larger vector.
struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuffer {
    fn new() -> AlignedBuffer {
        let storage = vec![0u8; DIRECT_CHUNK + DIRECT_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_ALIGN);
        AlignedBuffer { storage, start, len: 0 }
    }

    fn filled(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl LocalShardFile {
    fn create(path: &Path) -> io::Result<LocalShardFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        match options.clone().custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => Ok(LocalShardFile { file, path: path.to_path_buf(), direct: Some(AlignedBuffer::new()) }),
            // File systems without O_DIRECT (tmpfs) refuse it: through the cache.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                Ok(LocalShardFile { file: options.open(path)?, path: path.to_path_buf(), direct: None })
            }
            Err(e) => Err(e),
        }
    }
}

impl LocalShardFile {
    /// Writes the buffer's first `len` bytes (a multiple of `DIRECT_ALIGN`) with O_DIRECT. A
    /// file system that opened the file with O_DIRECT but refuses its writes gets them
    /// (and all later ones) through the cache.
    fn write_direct(&mut self, buffer: &AlignedBuffer, len: usize) -> io::Result<()> {
        match Write::write_all(&mut self.file, &buffer.filled()[..len]) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.file = OpenOptions::new().write(true).open(&self.path)?;
                self.file.seek(SeekFrom::End(0))?;
                Write::write_all(&mut self.file, &buffer.filled()[..len])?;
                Err(e)
            }
            other => other,
        }
    }
}

impl ShardFile for LocalShardFile {
    fn close_async(self: Box<Self>, _durability: Durability) -> Result<SyncCall, Box<dyn ShardFile>> {
        Err(self)
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let Some(mut buffer) = self.direct.take() else {
            return Write::write_all(&mut self.file, bytes);
        };
        while !bytes.is_empty() {
            let take = bytes.len().min(DIRECT_CHUNK - buffer.len);
            let at = buffer.start + buffer.len;
            buffer.storage[at..at + take].copy_from_slice(&bytes[..take]);
            buffer.len += take;
            bytes = &bytes[take..];
            if buffer.len == DIRECT_CHUNK {
                match self.write_direct(&buffer, DIRECT_CHUNK) {
                    Ok(()) => buffer.len = 0,
                    // Written through the cache: the rest goes that way too.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        return Write::write_all(&mut self.file, bytes);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.direct = Some(buffer);
        Ok(())
    }

    fn close(mut self: Box<Self>, durability: Durability) -> io::Result<()> {
        if let Some(mut buffer) = self.direct.take() {
            let aligned = buffer.len / DIRECT_ALIGN * DIRECT_ALIGN;
            match self.write_direct(&buffer, aligned) {
                Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(e),
                _ => {}
            }
            if aligned < buffer.len {
                // The tail through the cache, by a descriptor without O_DIRECT (the fsync
                // below covers the file, whichever descriptor wrote it).
                buffer.start += aligned;
                buffer.len -= aligned;
                let mut tail = OpenOptions::new().write(true).open(&self.path)?;
                tail.seek(SeekFrom::End(0))?;
                Write::write_all(&mut tail, buffer.filled())?;
            }
        }
        match durability {
            Durability::Synced => self.file.sync_all(),
            Durability::Deferred => Ok(()),
        }
    }
}

impl Drive for LocalDrive {
    /// Deletes retired data directories older than `retention`; returns how many.
    fn empty_trash(&self, retention: std::time::Duration) -> usize {
        let Ok(entries) = fs::read_dir(self.trash_root()) else { return 0 };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let retired = name.rsplit_once('.').and_then(|(_, secs)| secs.parse::<u64>().ok()).unwrap_or(0);
            if now.saturating_sub(retired) >= retention.as_secs() && fs::remove_dir_all(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    fn name(&self) -> String {
        self.root.display().to_string()
    }

    fn format(&self) -> &DriveFormat {
        &self.format
    }

    fn read_current_format(&self) -> io::Result<Option<DriveFormat>> {
        LocalDrive::read_format(&self.root)
    }

    fn reformat(&self) -> io::Result<bool> {
        let _write = BucketWrite;
        if !self.root.exists() {
            return Ok(false);
        }
        LocalDrive::write_format(&self.root, &self.format)?;
        self.clean_tmp()?;
        Ok(true)
    }

    fn read_system_file(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.system_dir().join(name))
    }

    fn write_system_file(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        write_atomic(&self.tmp_root(), &self.system_dir().join(name), bytes)
    }

    fn usage(&self) -> io::Result<DriveUsage> {
        let stats = fs4::statvfs(&self.root)?;
        Ok(DriveUsage {
            total_bytes: stats.total_space(),
            free_bytes: stats.available_space(),
            stored_bytes: stored_bytes(&self.root)?,
        })
    }

    fn create_shard_file(&self, staging_id: Uuid, name: &str) -> io::Result<Box<dyn ShardFile>> {
        let dir = self.create_staging_dir(staging_id)?;
        Ok(Box::new(LocalShardFile::create(&dir.join(name))?))
    }

    fn sync_drive(&self) -> io::Result<()> {
        let root = File::open(&self.root)?;
        rustix::fs::syncfs(&root).map_err(io::Error::from)
    }

    fn has_staging(&self, staging_id: Uuid) -> bool {
        self.tmp_root().join(staging_id.to_string()).exists()
    }

    fn remove_staging(&self, staging_id: Uuid) {
        let _ = fs::remove_dir_all(self.tmp_root().join(staging_id.to_string()));
    }

    fn read_shard(
        &self,
        bucket: &str,
        path: &ObjectPath,
        data_dir: Uuid,
        part_number: u32,
        offset: u64,
        len: usize,
    ) -> io::Result<Vec<u8>> {
        let name = format!("part.{part_number}");
        let mut handle = match File::open(self.data_dir_path(bucket, path, data_dir).join(&name)) {
            Ok(handle) => handle,
            // Replaced or deleted while being read: the version may still be in the trash.
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.retired_data_dir(data_dir) {
                Some(retired) => File::open(retired.join(&name))?,
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        handle.seek(SeekFrom::Start(offset))?;
        // Read into spare capacity: no zeroing of a buffer the read overwrites anyway.
        let mut buf = Vec::with_capacity(len);
        handle.take(len as u64).read_to_end(&mut buf)?;
        if buf.len() != len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "shard file ends before the block"));
        }
        Ok(buf)
    }

    fn read_shard_cached(
        &self,
        bucket: &str,
        path: &ObjectPath,
        data_dir: Uuid,
        part_number: u32,
        offset: u64,
        len: usize,
    ) -> Option<Vec<u8>> {
        let file = self.data_dir_path(bucket, path, data_dir).join(format!("part.{part_number}"));
        read_cached_range(&file, offset, len)?.filter(|bytes| bytes.len() == len)
    }

    fn list_dir(&self, bucket: &str, relative: &Path) -> io::Result<Vec<(String, bool)>> {
        self.read_dir(&self.bucket_dir(bucket).join(relative))
    }

    /// From the drive's cache of large key directories when still good (`KeyDirCache`).
    fn key_dir(&self, bucket: &str, relative: &Path) -> io::Result<Arc<KeyDir>> {
        let path = self.bucket_dir(bucket).join(relative);
        // Both read before the directory, so a change during the read makes the entry stale.
        let writes = BUCKET_WRITES.load(Ordering::SeqCst);
        let Ok(stat) = fs::metadata(&path) else {
            return Ok(Arc::new(KeyDir::new(&self.read_dir(&path)?)));
        };
        // Two links: no subdirectory (file systems that do not count them say 1), so no
        // deeper key and no data directory. Most key directories are such leaves, and
        // two stats cost less than reading the directory.
        if std::os::unix::fs::MetadataExt::nlink(&stat) == 2 {
            let dir_object = fs::symlink_metadata(path.join(DIR_OBJECT_META_FILE)).is_ok();
            return Ok(Arc::new(KeyDir::leaf(dir_object)));
        }
        let modified = stat.modified()?;
        let started = std::time::SystemTime::now();
        let cached = || self.key_dirs.lock().unwrap_or_else(|e| e.into_inner()).get(&path, writes, modified);
        if let Some(dir) = cached() {
            return Ok(dir);
        }
        let gate =
            self.key_dir_reads.lock().unwrap_or_else(|e| e.into_inner()).entry(path.clone()).or_default().clone();
        let read = {
            let _turn = gate.lock().unwrap_or_else(|e| e.into_inner());
            match cached() {
                Some(dir) => Ok(dir),
                None => self.read_dir(&path).map(|children| {
                    let dir = Arc::new(KeyDir::new(&children));
                    if started.duration_since(modified).is_ok_and(|age| age >= SETTLED) {
                        let mut cache = self.key_dirs.lock().unwrap_or_else(|e| e.into_inner());
                        cache.insert(path.clone(), writes, modified, dir.clone());
                    }
                    dir
                }),
            }
        };
        // The last reader through removes the gate (the map and this one hold it).
        let mut reads = self.key_dir_reads.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&gate) == 2 {
            reads.remove(&path);
        }
        read
    }

    fn list_upload_files(&self, bucket: &str, upload_id: &str) -> io::Result<Vec<String>> {
        Ok(self.read_dir(&self.upload_dir(bucket, upload_id))?.into_iter().map(|(name, _)| name).collect())
    }

    fn list_uploads(&self, bucket: &str) -> io::Result<Vec<String>> {
        Ok(self.read_dir(&self.multipart_bucket_dir(bucket))?.into_iter().map(|(name, _)| name).collect())
    }

    fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    fn make_bucket(&self, bucket: &str, meta: &[u8]) -> io::Result<()> {
        let _write = BucketWrite;
        let dir = self.bucket_dir(bucket);
        fs::create_dir_all(&dir)?;
        write_atomic(&self.tmp_root(), &dir.join(BUCKET_META_FILE), meta)?;
        sync_dir(&self.root)
    }

    fn read_bucket_meta(&self, bucket: &str) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.bucket_dir(bucket).join(BUCKET_META_FILE))
    }

    fn delete_bucket(&self, bucket: &str) -> io::Result<()> {
        let _write = BucketWrite;
        let dir = self.bucket_dir(bucket);
        // Move aside first so the bucket disappears atomically, then delete at leisure.
        let trash = self.tmp_root().join(format!("deleted-bucket-{}", Uuid::new_v4()));
        match fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        sync_dir(&self.root)?;
        let _ = fs::remove_dir_all(&trash);
        let _ = fs::remove_dir_all(self.multipart_bucket_dir(bucket));
        Ok(())
    }

    /// Names of the directories at the drive root that carry a bucket meta file.
    fn list_buckets(&self) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name == SYSTEM_DIR {
                continue;
            }
            if let Some(meta) = read_optional(&entry.path().join(BUCKET_META_FILE))? {
                out.push((name, meta));
            }
        }
        Ok(out)
    }

    fn read_object_meta(&self, bucket: &str, path: &ObjectPath) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.bucket_dir(bucket).join(path.meta_path()))
    }

    fn read_object_meta_cached(&self, bucket: &str, path: &ObjectPath) -> Option<Option<Vec<u8>>> {
        read_cached(&self.bucket_dir(bucket).join(path.meta_path()))
    }

    /// Makes a staged write visible: moves the staged data directory (if any) into the
    /// object directory, then atomically replaces the metadata file. Every directory this
    /// creates is fsynced, so an acknowledged object survives power loss. Data directories
    /// of the replaced version stay until `remove_data_dirs` (after write quorum), so a
    /// write that fails quorum can be rolled back with `restore_object`.
    fn commit_object(&self, bucket: &str, path: &ObjectPath, meta: &[u8], staged: &[Uuid]) -> io::Result<()> {
        self.commit_object_as(bucket, path, meta, staged, Durability::Synced)
    }

    /// `commit_object`; `Durability::Deferred` skips every fsync (the staged files',
    /// the new directories' parents', the metadata file's and its directory's): the
    /// caller's `sync_drive` makes the commit durable.
    fn commit_object_as(
        &self,
        bucket: &str,
        path: &ObjectPath,
        meta: &[u8],
        staged: &[Uuid],
        durability: Durability,
    ) -> io::Result<()> {
        let _write = BucketWrite;
        let synced = durability == Durability::Synced;
        let bucket_dir = self.bucket_dir(bucket);
        if !bucket_dir.join(BUCKET_META_FILE).exists() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "bucket missing on drive"));
        }
        let object_dir = bucket_dir.join(&path.dir);
        for data_dir in staged.iter().filter(|_| synced) {
            // Gone when an earlier try of this call moved it (checked below).
            match sync_dir(&self.tmp_root().join(data_dir.to_string())) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        // A concurrent delete may prune the parent directories between our mkdir and
        // rename; a few retries ride over that race.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = (|| -> io::Result<()> {
                match durability {
                    Durability::Synced => create_dirs_durable(&bucket_dir, &path.dir)?,
                    Durability::Deferred => fs::create_dir_all(object_dir.as_path())?,
                }
                // A staging directory is named by its data directory's UUID. One moved by
                // an earlier try of this call is in place already.
                for data_dir in staged {
                    let source = self.tmp_root().join(data_dir.to_string());
                    let target = object_dir.join(format!("{DATA_DIR_PREFIX}{data_dir}"));
                    if let Err(e) = fs::rename(&source, &target)
                        && !(e.kind() == io::ErrorKind::NotFound && target.exists())
                    {
                        return Err(e);
                    }
                }
                // write_atomic fsyncs the object directory after its rename, which also makes
                // the data directory's rename above durable: one directory fsync for both.
                write_atomic_as(&self.tmp_root(), &object_dir.join(path.meta_file), meta, durability)
            })();
            match result {
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 4 => continue,
                other => break other,
            }
        }
    }

    /// Deletes data directories no metadata references any more.
    fn remove_data_dirs(&self, bucket: &str, path: &ObjectPath, data_dirs: &[Uuid]) {
        let _write = BucketWrite;
        let object_dir = self.object_dir(bucket, path);
        for data_dir in data_dirs {
            self.retire_data_dir(&object_dir, *data_dir);
        }
    }

    /// Undoes `commit_object` of a write that did not reach quorum: puts back the previous
    /// metadata (or removes the new one) and deletes the new data directory.
    fn restore_object(
        &self,
        bucket: &str,
        path: &ObjectPath,
        previous_meta: Option<&[u8]>,
        new_data_dirs: &[Uuid],
    ) -> io::Result<()> {
        let _write = BucketWrite;
        let object_dir = self.object_dir(bucket, path);
        match previous_meta {
            Some(meta) => write_atomic(&self.tmp_root(), &object_dir.join(path.meta_file), meta)?,
            None => match fs::remove_file(object_dir.join(path.meta_file)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => sync_dir(&object_dir)?,
            },
        }
        for data_dir in new_data_dirs {
            // Never readable (the write had no quorum): delete outright.
            let _ = fs::remove_dir_all(self.data_dir_path(bucket, path, *data_dir));
        }
        Ok(())
    }

    /// Removes an object's metadata and data directories, then prunes empty parents.
    fn delete_object(&self, bucket: &str, path: &ObjectPath, data_dirs: &[Uuid]) -> io::Result<()> {
        let _write = BucketWrite;
        let bucket_dir = self.bucket_dir(bucket);
        let object_dir = bucket_dir.join(&path.dir);
        match fs::remove_file(object_dir.join(path.meta_file)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        sync_dir(&object_dir).ok();
        for data_dir in data_dirs {
            self.retire_data_dir(&object_dir, *data_dir);
        }
        self.prune_empty_dirs(&bucket_dir, &object_dir);
        Ok(())
    }

    fn write_upload_file(&self, bucket: &str, upload_id: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        let dir = self.upload_dir(bucket, upload_id);
        fs::create_dir_all(&dir)?;
        write_atomic(&self.tmp_root(), &dir.join(name), bytes)?;
        sync_dir(&dir)
    }

    fn read_upload_file(&self, bucket: &str, upload_id: &str, name: &str) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.upload_dir(bucket, upload_id).join(name))
    }

    /// Moves a staged shard file into an upload as `part.N`, replacing an earlier upload
    /// of the same part, and writes the part's metadata after it.
    fn commit_part(&self, bucket: &str, upload_id: &str, staging_id: Uuid, number: u32, meta: &[u8]) -> io::Result<()> {
        let dir = self.upload_dir(bucket, upload_id);
        if !dir.exists() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "upload missing on drive"));
        }
        let staged = self.tmp_root().join(staging_id.to_string()).join("part.1");
        let data_name = format!("part.{number}.{staging_id}");
        fs::rename(&staged, dir.join(&data_name))?;
        self.remove_staging(staging_id);
        write_atomic(&self.tmp_root(), &dir.join(format!("part.{number}.meta")), meta)?;
        sync_dir(&dir)?;
        // Earlier uploads of the same part number are garbage once the new meta is in.
        for (name, _) in self.read_dir(&dir)? {
            if name.starts_with(&format!("part.{number}.")) && name != data_name && !name.ends_with(".meta") {
                let _ = fs::remove_file(dir.join(name));
            }
        }
        Ok(())
    }

    /// Links the given part data files of an upload into a new staging directory as
    /// `part.N`, ready for `commit_object`. Links, not moves: if the completion fails, the
    /// upload is untouched and can be completed again.
    fn stage_upload_parts(
        &self,
        bucket: &str,
        upload_id: &str,
        staging_id: Uuid,
        parts: &[(u32, String)],
    ) -> io::Result<()> {
        let staging = self.create_staging_dir(staging_id)?;
        let dir = self.upload_dir(bucket, upload_id);
        for (number, data_name) in parts {
            fs::hard_link(dir.join(data_name), staging.join(format!("part.{number}")))?;
        }
        Ok(())
    }

    fn remove_upload(&self, bucket: &str, upload_id: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.upload_dir(bucket, upload_id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Reads a whole file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20 /* ENOTDIR */) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Larger reads go to the blocking pool even when cached: copying them would hold up the
/// runtime's thread (a key's metadata with an inline object is ~130 KiB at most, a shard
/// block 512 KiB: a set has two data shards or more).
const CACHED_READ_MAX_BYTES: usize = 1024 * 1024;

/// `read_optional` if the kernel can answer it without waiting for the disk: the path
/// resolves from the directory-entry cache (`openat2` with `RESOLVE_CACHED`, Linux 5.12)
/// and every byte comes from the page cache (`preadv2` with `RWF_NOWAIT`); `Some(None)`
/// when the cache knows the file does not exist. `None` when it would wait, or on any error
/// (the caller reads again the ordinary way, which reports it).
pub fn read_cached(path: &Path) -> Option<Option<Vec<u8>>> {
    read_cached_range(path, 0, usize::MAX)
}

/// `read_cached` of at most `len` bytes from `offset` (fewer where the file ends).
fn read_cached_range(path: &Path, offset: u64, len: usize) -> Option<Option<Vec<u8>>> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::io::{Errno, ReadWriteFlags};
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Cleared once the kernel turns the calls down as unknown: no more tries.
    static SUPPORTED: AtomicBool = AtomicBool::new(true);
    if !SUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let file = match rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), ResolveFlags::CACHED) {
        Ok(fd) => fs::File::from(fd),
        // A negative entry in the cache: the file is known not to exist.
        Err(Errno::NOENT | Errno::NOTDIR) => return Some(None),
        Err(Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => {
            SUPPORTED.store(false, Ordering::Relaxed);
            return None;
        }
        Err(_) => return None,
    };
    let size = file.metadata().ok()?.len();
    let want = size.saturating_sub(offset).min(len as u64) as usize;
    if want > CACHED_READ_MAX_BYTES {
        return None;
    }
    let mut bytes = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        let buffer = &mut [std::io::IoSliceMut::new(&mut bytes[filled..])];
        match rustix::io::preadv2(&file, buffer, offset + filled as u64, ReadWriteFlags::NOWAIT) {
            // Shorter than its size said: being written or cut; the ordinary read decides.
            Ok(0) => return None,
            Ok(read) => filled += read,
            Err(Errno::OPNOTSUPP) => {
                SUPPORTED.store(false, Ordering::Relaxed);
                return None;
            }
            Err(_) => return None,
        }
    }
    Some(Some(bytes))
}

/// Writes `bytes` to `target` atomically and durably: a temporary file in `tmp_dir`
/// (same file system), fsync, rename over the target, fsync of the target's directory.
pub fn write_atomic(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_as(tmp_dir, target, bytes, Durability::Synced)
}

/// `write_atomic`, without its two fsyncs when `Durability::Deferred` (still atomic:
/// readers see the old file or the new one).
pub fn write_atomic_as(tmp_dir: &Path, target: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    let tmp = tmp_dir.join(format!("write-{}", Uuid::new_v4()));
    let synced = durability == Durability::Synced;
    let create = || OpenOptions::new().write(true).create_new(true).open(&tmp);
    let result = (|| {
        // The staging directory exists but on a fresh or cleaned drive: made when missing,
        // not made sure of on every write.
        let mut file = match create() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(tmp_dir)?;
                create()?
            }
            other => other?,
        };
        file.write_all(bytes)?;
        if synced {
            file.sync_all()?;
        }
        fs::rename(&tmp, target)?;
        if let Some(parent) = target.parent().filter(|_| synced) {
            sync_dir(parent)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `relative` below `base` (which exists) and fsyncs the parent of every directory
/// it had to create, so the new path itself is durable.
pub fn create_dirs_durable(base: &Path, relative: &Path) -> io::Result<()> {
    let mut current = base.to_path_buf();
    for component in relative.components() {
        let parent = current.clone();
        current.push(component);
        match fs::create_dir(&current) {
            Ok(()) => sync_dir(&parent)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes a directory's entries (renames, creations) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::object::{ObjectMeta, tests::sample_version};
    use crate::storage::path::object_path;

    fn drive(root: &Path) -> LocalDrive {
        let format = DriveFormat {
            cluster_id: Uuid::new_v4(),
            drive_id: Uuid::new_v4(),
            set_index: 0,
            drive_index: 0,
            set_drives: 1,
            set_drive_ids: vec![Uuid::new_v4()],
        };
        let drive = LocalDrive::new(root.to_path_buf(), format);
        drive.make_bucket("b", b"meta").unwrap();
        drive
    }

    fn put(drive: &LocalDrive, key: &str) {
        let meta = ObjectMeta { versions: vec![sample_version()] }.encode();
        drive.commit_object("b", &object_path(key).unwrap(), &meta, &[]).unwrap();
    }

    /// Every key of the walk, a page of `page` at a time.
    fn walk_all(drive: &LocalDrive, prefix: &str, page: usize) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        loop {
            let marker = keys.last().cloned().unwrap_or_default();
            let listed = drive.walk("b", prefix, &marker, page).unwrap();
            keys.extend(listed.iter().map(|(key, _)| key.clone()));
            if listed.len() < page {
                return keys;
            }
        }
    }

    fn settle() {
        std::thread::sleep(SETTLED + std::time::Duration::from_millis(20));
    }

    /// A metadata read from the kernel's caches answers what the ordinary read answers —
    /// the file's bytes, its replacement's after a commit, nothing once it is deleted — or
    /// nothing at all when the bytes are not cached; never part of a file.
    #[test]
    fn a_cached_metadata_read_answers_as_the_ordinary_read_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let drive = drive(dir.path());
        let path = object_path("a/k").unwrap();
        let agrees = |drive: &LocalDrive| match drive.read_object_meta_cached("b", &path) {
            Some(cached) => {
                assert_eq!(cached, drive.read_object_meta("b", &path).unwrap());
                true
            }
            None => false,
        };
        put(&drive, "a/k");
        // Just written: in the page cache on any file system.
        assert!(agrees(&drive), "a file just written is answered from the cache");
        let mut meta = ObjectMeta::decode(&drive.read_object_meta("b", &path).unwrap().unwrap()).unwrap();
        meta.versions.push(sample_version());
        meta.versions[1].version_id = Some([7; 16]);
        drive.commit_object("b", &path, &meta.encode(), &[]).unwrap();
        assert!(agrees(&drive), "the replaced file is answered");
        // Dropped from the page cache (a no-op where the cache is the storage, as on tmpfs).
        let file = fs::File::open(drive.bucket_dir("b").join(path.meta_path())).unwrap();
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        agrees(&drive);
        fs::remove_file(drive.bucket_dir("b").join(path.meta_path())).unwrap();
        assert!(drive.read_object_meta("b", &path).unwrap().is_none());
        agrees(&drive);
        // A shard block: the same bytes as the ordinary read, or none; never a short block.
        let data_dir = Uuid::new_v4();
        let part = drive.data_dir_path("b", &path, data_dir).join("part.1");
        fs::create_dir_all(part.parent().unwrap()).unwrap();
        let shards: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
        fs::write(&part, &shards).unwrap();
        assert!(drive.read_shard_cached("b", &path, data_dir, 1, 0, 100).is_some(), "just written: cached");
        for (offset, len) in [(0, 100), (4_096, 50_000), (99_000, 1_000)] {
            if let Some(cached) = drive.read_shard_cached("b", &path, data_dir, 1, offset, len) {
                assert_eq!(cached, drive.read_shard("b", &path, data_dir, 1, offset, len).unwrap());
            }
        }
        assert_eq!(drive.read_shard_cached("b", &path, data_dir, 1, 99_000, 1_001), None, "past the end");
        assert_eq!(drive.read_shard_cached("b", &path, Uuid::new_v4(), 1, 0, 100), None, "no such file");
        // Too large to copy on the runtime's thread: left to the ordinary read.
        let large = dir.path().join("large");
        fs::write(&large, vec![1u8; CACHED_READ_MAX_BYTES + 1]).unwrap();
        assert!(read_cached(&large).is_none());
    }

    /// Listings that start together on a large directory each get all of it, one of
    /// them reads it for the cache, and no gate outlives them.
    #[test]
    fn concurrent_readers_of_a_directory_share_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let drive = drive(dir.path());
        let expected: Vec<String> = (0..600).map(|i| format!("d/k{i:04}")).collect();
        for key in &expected {
            put(&drive, key);
        }
        settle();
        let walks: Vec<Vec<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| walk_all(&drive, "", 1000))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(walks.iter().all(|keys| *keys == expected));
        assert!(drive.key_dir_reads.lock().unwrap().is_empty(), "every gate removed");
        assert!(drive.key_dirs.lock().unwrap().dirs.contains_key(&dir.path().join("b/d")), "the directory is cached");
    }

    #[test]
    fn pages_of_a_large_directory_see_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let drive = drive(dir.path());
        let mut expected: Vec<String> = (0..600).map(|i| format!("d/k{i:04}")).collect();
        // A deeper key, a key that sorts between an object and its subtree, a "dir/" object
        // in a leaf directory, and one alone.
        expected.extend(["d/k0300/deeper", "d/k0300-", "d/k0400/", "d/only/", "e"].map(String::from));
        for key in &expected {
            put(&drive, key);
        }
        expected.sort();
        settle();
        assert_eq!(walk_all(&drive, "", 100), expected, "first walk, in pages");
        assert_eq!(walk_all(&drive, "", 7), expected, "again, from the cache");
        assert_eq!(walk_all(&drive, "d/k03", 10)[..3], ["d/k0300", "d/k0300-", "d/k0300/deeper"]);
        assert!(drive.key_dirs.lock().unwrap().dirs.contains_key(&dir.path().join("b/d")), "the directory is cached");

        // This process's changes: seen at once.
        put(&drive, "d/k0150x");
        drive.delete_object("b", &object_path("d/k0001").unwrap(), &[]).unwrap();
        expected.push("d/k0150x".to_string());
        expected.retain(|k| k != "d/k0001");
        expected.sort();
        assert_eq!(walk_all(&drive, "", 100), expected, "after a put and a delete");

        // A change from outside the process: seen through the directory's time.
        settle();
        assert_eq!(walk_all(&drive, "", 100), expected);
        fs::remove_dir_all(dir.path().join("b/d/k0002")).unwrap();
        expected.retain(|k| k != "d/k0002");
        assert_eq!(walk_all(&drive, "", 100), expected, "after a directory vanished");
    }

    /// A commit whose fsyncs wait for the drive's sync (a migration batch) leaves what a
    /// durable one leaves: the metadata in place, the staged shard file in its data
    /// directory, nothing in tmp; both over a key that held a file before, too.
    #[test]
    fn a_deferred_commit_leaves_what_a_synced_one_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let drive = drive(dir.path());
        for (n, durability) in [Durability::Synced, Durability::Deferred, Durability::Deferred].into_iter().enumerate()
        {
            let path = object_path(&format!("dir/key-{}", n.min(1))).unwrap();
            let staging = Uuid::new_v4();
            let bytes = crate::storage::testing::data(10_000 + n, n as u64);
            let mut file = drive.create_shard_file(staging, "part.1").unwrap();
            file.write_all(&bytes).unwrap();
            file.close(durability).unwrap();
            let meta = format!("meta {n}").into_bytes();
            let entries = ObjectMeta { versions: vec![sample_version()] }.encode();
            let request = MergeRequest {
                bucket: "b",
                path: &path,
                entries: &entries,
                staged: &[staging],
                newest: false,
                durability,
            };
            assert!(matches!(drive.commit_merged(request).unwrap(), MergedCommit::Committed { .. }));
            drive.commit_object_as("b", &path, &meta, &[staging], durability).unwrap();
            drive.sync_drive().unwrap();
            assert_eq!(drive.read_object_meta("b", &path).unwrap(), Some(meta), "{durability:?}");
            let shard = drive.data_dir_path("b", &path, staging).join("part.1");
            assert_eq!(fs::read(&shard).unwrap(), bytes, "{durability:?}");
            assert!(!drive.has_staging(staging), "{durability:?}");
            assert_eq!(fs::read_dir(drive.tmp_root()).unwrap().count(), 0, "{durability:?}: tmp left");
        }
    }

    /// The staging and trash directories are made when missing, not on every call: a
    /// drive that lost them (a fresh one, a cleaned one) still commits and retires.
    #[test]
    fn commits_and_deletes_remake_the_staging_and_trash_directories() {
        let dir = tempfile::tempdir().unwrap();
        let drive = drive(dir.path());
        let path = object_path("gone/key").unwrap();
        fs::remove_dir_all(drive.tmp_root()).unwrap();
        drive.commit_object("b", &path, b"inline", &[]).unwrap();
        assert_eq!(drive.read_object_meta("b", &path).unwrap(), Some(b"inline".to_vec()));
        let staging = Uuid::new_v4();
        let mut file = drive.create_shard_file(staging, "part.1").unwrap();
        file.write_all(b"shard").unwrap();
        file.close(Durability::Synced).unwrap();
        drive.commit_object("b", &path, b"with data", &[staging]).unwrap();
        let _ = fs::remove_dir_all(drive.trash_root());
        drive.remove_data_dirs("b", &path, &[staging]);
        assert!(!drive.data_dir_path("b", &path, staging).exists());
        let retired = drive.retired_data_dir(staging).expect("the data directory is in the trash");
        assert_eq!(fs::read(retired.join("part.1")).unwrap(), b"shard");
    }

    /// A shard copy naming an erasure code no set can have (from a peer) is refused, not
    /// a panic.
    #[test]
    fn a_shard_copy_with_an_impossible_code_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let drive = drive(dir.path());
        for data_shards in [0, 16, 17, u32::MAX] {
            let copy = ShardCopy {
                bucket: "b".into(),
                path: object_path("k").unwrap(),
                data_dir: Uuid::new_v4(),
                parts: vec![(1, 1024)],
                data_shards,
                staging: Uuid::new_v4(),
                durability: Durability::Deferred,
            };
            let refused = push_shards_by_parts(&drive, &drive, &copy).unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::InvalidInput, "{data_shards}");
        }
    }

    /// Shard files hold exactly the bytes written, in pieces of any size, whether the file
    /// system takes O_DIRECT (the temporary directory's, here) or not (tmpfs).
    #[test]
    fn shard_files_hold_what_was_written() {
        let on_disk = tempfile::tempdir().unwrap();
        let in_memory = tempfile::tempdir_in("/dev/shm").ok();
        for dir in [Some(&on_disk), in_memory.as_ref()].into_iter().flatten() {
            for total in [0, 8, 4096, DIRECT_CHUNK, DIRECT_CHUNK + 8, 3 * DIRECT_CHUNK + 12_345] {
                let path = dir.path().join(format!("part.{total}"));
                let bytes = crate::storage::testing::data(total, total as u64);
                let mut file = Box::new(LocalShardFile::create(&path).unwrap());
                // A checksum, then a shard: as the writer writes a block.
                for piece in
                    bytes.chunks(300_001).flat_map(|block| [&block[..block.len().min(8)], &block[block.len().min(8)..]])
                {
                    file.write_all(piece).unwrap();
                }
                file.close(Durability::Synced).unwrap();
                assert!(fs::read(&path).unwrap() == bytes, "{total} bytes in {}", dir.path().display());
            }
        }
    }

    #[test]
    fn the_cache_keeps_to_its_budget() {
        let mut cache = KeyDirCache::default();
        let now = std::time::SystemTime::now();
        let big = |n: usize| {
            let entries: Vec<(String, bool)> = (0..n).map(|i| (format!("k{i}"), true)).collect();
            Arc::new(KeyDir::new(&entries))
        };
        cache.insert("small".into(), 0, now, big(MIN_CACHED_CHILDREN - 1));
        assert!(cache.dirs.is_empty(), "small directories are read afresh");
        let third = MAX_CACHED_CHILDREN / 3;
        for name in ["a", "b", "c"] {
            cache.insert(name.into(), 0, now, big(third));
        }
        assert!(cache.get(Path::new("a"), 0, now).is_some());
        cache.insert("d".into(), 0, now, big(third));
        assert!(cache.children <= MAX_CACHED_CHILDREN);
        assert!(cache.get(Path::new("b"), 0, now).is_none(), "the least recently used went first");
        assert!(cache.get(Path::new("a"), 0, now).is_some());
        assert!(cache.get(Path::new("a"), 1, now).is_none(), "a write anywhere makes it stale");
        assert!(!cache.dirs.contains_key(Path::new("a")));
        assert_eq!(cache.children, cache.dirs.values().map(|e| e.dir.len()).sum::<usize>());
    }
}
