//! How a node calls its peers (`PeerTransport`: the pooled HTTP client and this process's
//! peer key; every call signed, every answer checked), and `RemoteDrive`, a peer's drive
//! reached over the drive-call RPC. Drive calls block the calling (blocking-pool) thread
//! on the async HTTP client; connections are pooled and reused; every call has a timeout;
//! a peer that does not answer marks the drive offline until the drive monitor reaches it
//! again.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use uuid::Uuid;

use super::auth::{ANSWER_AUTH_HEADER, AUTH_HEADER, PeerKey};
use super::batch::Batcher;
use super::protocol::{Batching, DriveCall, ERROR_KIND_HEADER, encode_request};
use crate::format::drive::DriveFormat;
use crate::storage::drive::{
    AsyncCall, Drive, Durability, MergeRequest, MergedCommit, OwnedMerge, ShardCopy, ShardFile, SyncCall,
    commit_merged_by_parts,
};
use crate::storage::path::ObjectPath;

/// Metadata calls answer in milliseconds; a peer silent this long is treated as down.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long calls to a drive that stopped answering fail fast before one is tried again.
const OFFLINE_COOLDOWN: std::time::Duration = std::time::Duration::from_millis(250);
/// Idle pooled connections per peer.
const POOL_IDLE_PER_PEER: usize = 64;
/// A peer on a working network accepts in milliseconds; past this it counts as down
/// rather than holding a call for its whole timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub type PeerClient = buckets_api::client::HttpClient;

/// The pooled client a node reaches its peers with; with `tls`, `https://` peers are
/// verified against its roots (plain `http://` peers stay reachable for a cluster without
/// certificates).
pub fn peer_client(tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> PeerClient {
    buckets_api::client::http_client(tls, POOL_IDLE_PER_PEER, CONNECT_TIMEOUT)
}

/// How this node calls its peers: the pooled client and this process's key (its session
/// of the replay protection). Cheap to clone.
#[derive(Clone)]
pub struct PeerTransport {
    client: PeerClient,
    key: Arc<PeerKey>,
    /// Small drive calls waiting to go to each peer together (`batch`).
    batcher: Arc<Batcher>,
}

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTransport").field("key", &self.key).finish_non_exhaustive()
    }
}

/// A peer's answer to a call, authenticated.
#[derive(Debug)]
pub struct Answer {
    pub status: http::StatusCode,
    /// `ERROR_KIND_HEADER` of an error answer.
    pub error_kind: Option<String>,
    pub body: Bytes,
}

impl PeerTransport {
    /// Peers reached with `tls` roots for `https://` (see `peer_client`), calls signed
    /// with the cluster `secret`.
    pub fn new(tls: Option<std::sync::Arc<rustls::ClientConfig>>, secret: &[u8]) -> PeerTransport {
        PeerTransport { client: peer_client(tls), key: Arc::new(PeerKey::new(secret)), batcher: Arc::default() }
    }

    pub(super) fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// One signed POST to `endpoint` (`scheme://host:port`, the node's authority as in its
    /// drive URLs); the answer, once its signature shows it is the peer's, unaltered. A
    /// peer that refuses the call is a `PermissionDenied` error.
    pub async fn call(
        &self,
        endpoint: &str,
        path_and_query: &str,
        body: Bytes,
        timeout: Duration,
        max_answer_bytes: usize,
    ) -> io::Result<Answer> {
        let authority = endpoint.split_once("://").map_or(endpoint, |(_, authority)| authority);
        let (signature, nonce) = self.key.sign("POST", authority, path_and_query, &body, crate::clock::unix_now());
        let request = http::Request::post(format!("{endpoint}{path_and_query}"))
            .header(AUTH_HEADER, signature)
            .body(Full::new(body))
            .map_err(io::Error::other)?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(io::Error::other)?;
            let status = response.status();
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            let (error_kind, answer_signature) = (header(ERROR_KIND_HEADER), header(ANSWER_AUTH_HEADER));
            let body = Limited::new(response.into_body(), max_answer_bytes)
                .collect()
                .await
                .map_err(|e| io::Error::other(format!("{endpoint}: answer unreadable or too large: {e}")))?
                .to_bytes();
            let authentic = self.key.answer_is_authentic(
                &nonce,
                status.as_u16(),
                error_kind.as_deref(),
                &body,
                answer_signature.as_deref(),
            );
            if !authentic {
                let text = String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string();
                return Err(if status == http::StatusCode::FORBIDDEN {
                    io::Error::new(io::ErrorKind::PermissionDenied, format!("{endpoint} refused the call: {text}"))
                } else {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{endpoint}: the answer ({status}) is not signed with the cluster's secret"),
                    )
                });
            }
            Ok(Answer { status, error_kind, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{endpoint} did not answer in time")))?
    }
}

/// A peer's drive. Cheap to share: the state lives behind an `Arc`, which open shard
/// files keep too.
#[derive(Debug, Clone)]
pub struct RemoteDrive {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `http://host:port` of the peer's admin listener.
    endpoint: String,
    /// The drive's path on the peer, as in its drive URL.
    drive_path: String,
    format: DriveFormat,
    online: AtomicBool,
    /// When the drive last went offline; calls try it again after `OFFLINE_COOLDOWN`
    /// instead of waiting for the drive monitor, so one lost packet costs a moment, not
    /// the drive.
    offline_since: std::sync::Mutex<Option<std::time::Instant>>,
    /// Set when the drive answers again after being offline; the drive monitor takes it
    /// and starts a heal scan.
    returned: AtomicBool,
    /// Shard files closed without an fsync (`Durability::Deferred`) since the last
    /// `sync_drive`: what it fsyncs one by one on a peer of an earlier version, which
    /// does not know `SyncDrive`.
    deferred: std::sync::Mutex<Vec<(Uuid, String)>>,
    /// Held for a whole `sync_drive` (on the blocking pool): a sync returns only once
    /// the files closed before it are on disk, whichever sync took them.
    syncing: std::sync::Mutex<()>,
    transport: PeerTransport,
    runtime: tokio::runtime::Handle,
}

impl RemoteDrive {
    /// Must be called inside the async runtime (it keeps a handle to it).
    pub fn new(endpoint: String, drive_path: String, format: DriveFormat, transport: PeerTransport) -> Self {
        let inner = Inner {
            endpoint,
            drive_path,
            format,
            // Optimistic: a write at start must reach every drive that is up, not just the
            // ones the monitor has probed so far (else it lands on write quorum only, and one
            // more lost node makes it unreadable). A peer that is down fails its first call.
            online: AtomicBool::new(true),
            offline_since: std::sync::Mutex::new(None),
            returned: AtomicBool::new(false),
            deferred: std::sync::Mutex::new(Vec::new()),
            syncing: std::sync::Mutex::new(()),
            transport,
            runtime: tokio::runtime::Handle::current(),
        };
        RemoteDrive { inner: Arc::new(inner) }
    }
}

impl Inner {
    /// Marked offline less than `OFFLINE_COOLDOWN` ago: calls fail fast.
    fn cooling(&self) -> bool {
        self.offline_since.lock().expect("offline clock").is_some_and(|since| since.elapsed() < OFFLINE_COOLDOWN)
    }

    fn name(&self) -> String {
        format!("{}{}", self.endpoint, self.drive_path)
    }

    /// A call from a blocking thread: it waits for the answer.
    fn call(&self, call: &DriveCall, payload: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let probe = matches!(call, DriveCall::ReadFormat);
        let body = Bytes::from(encode_request(call, payload));
        self.runtime.block_on(self.exchange(probe, (body, call.batching()), CALL_TIMEOUT))
    }

    /// A call as a future for the runtime (`Drive::read_object_meta_async`).
    fn call_async(self: Arc<Self>, call: &DriveCall, payload: &[u8]) -> AsyncCall<Option<Vec<u8>>> {
        self.call_async_within(call, payload, CALL_TIMEOUT)
    }

    /// `call_async` for a call that may take longer than `CALL_TIMEOUT` (it moves data).
    fn call_async_within(
        self: Arc<Self>,
        call: &DriveCall,
        payload: &[u8],
        timeout: Duration,
    ) -> AsyncCall<Option<Vec<u8>>> {
        let probe = matches!(call, DriveCall::ReadFormat);
        let request = (Bytes::from(encode_request(call, payload)), call.batching());
        Box::pin(async move { self.exchange(probe, request, timeout).await })
    }

    /// One call (`probe`: the drive monitor's format read) and what its answer means.
    async fn exchange(
        &self,
        probe: bool,
        (body, batching): (Bytes, Batching),
        timeout: Duration,
    ) -> io::Result<Option<Vec<u8>>> {
        if !self.online.load(Ordering::Relaxed) && !probe && self.cooling() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, format!("{} is offline", self.name())));
        }
        // A pooled connection the peer has just closed fails without the call reaching it;
        // every drive call is idempotent, so one immediate retry tells that apart from a
        // peer that is really gone.
        let mut result = self.send(body.clone(), timeout, batching).await;
        if matches!(&result, Err(e) if e.kind() != io::ErrorKind::TimedOut) {
            result = self.send(body, timeout, batching).await;
        }
        let (status, kind, body) = match result {
            Ok(answer) => {
                // The monitor's format probe decides on its own whether the drive is the
                // right one; any other answer proves the drive is back.
                if !probe && !self.online.swap(true, Ordering::Relaxed) {
                    tracing::info!(drive = %self.name(), "peer drive answers again");
                    self.returned.store(true, Ordering::Relaxed);
                }
                answer
            }
            Err(e) => {
                // No answer at all: the peer (or the network) is down; calls try again
                // after a cool-down, and the drive monitor probes it meanwhile.
                *self.offline_since.lock().expect("offline clock") = Some(std::time::Instant::now());
                if self.online.swap(false, Ordering::Relaxed) {
                    tracing::warn!(drive = %self.name(), error = %e, "peer drive went offline");
                }
                return Err(e);
            }
        };
        match status.as_u16() {
            200 => Ok(Some(body.to_vec())),
            204 => Ok(None),
            _ => {
                let message = format!("{}: {}", self.name(), String::from_utf8_lossy(&body).trim());
                let kind = match (kind.as_deref(), status) {
                    (Some("not-found"), _) => io::ErrorKind::NotFound,
                    // The peer could not read the call (one it does not know, from a later version).
                    (_, http::StatusCode::BAD_REQUEST) => io::ErrorKind::InvalidInput,
                    _ => io::ErrorKind::Other,
                };
                Err(io::Error::new(kind, message))
            }
        }
    }

    /// One signed exchange: (status, error kind header, body).
    async fn send(
        &self,
        body: Bytes,
        timeout: Duration,
        batching: Batching,
    ) -> io::Result<(http::StatusCode, Option<String>, Bytes)> {
        let drive = (self.endpoint.as_str(), self.drive_path.as_str());
        let answer = self.transport.drive_call(drive, body, timeout, batching).await?;
        Ok((answer.status, answer.error_kind, answer.body))
    }

    fn call_unit(&self, call: DriveCall, payload: &[u8]) -> io::Result<()> {
        self.call(&call, payload).map(|_| ())
    }

    fn call_decoded<T: for<'de> serde::Deserialize<'de>>(&self, call: DriveCall) -> io::Result<T> {
        let bytes = self.call(&call, &[])?.ok_or_else(|| io::Error::other("peer answered nothing"))?;
        postcard::from_bytes(&bytes).map_err(|e| io::Error::other(format!("peer answer malformed: {e}")))
    }
}

/// Bytes a shard file on a peer gathers before it sends them (one call per this much,
/// not one per block, and a small object's shard in a single call with its fsync).
const SHARD_SEND_BYTES: usize = 256 * 1024;

/// A shard file on a peer. Writes gather into `pending`, sent `SHARD_SEND_BYTES` at a
/// time by a call that runs while the writer goes on to the next block (and the other
/// drives' files), one call in flight per file; `sync` sends the rest together with the
/// fsync, in one call.
struct RemoteShardFile {
    drive: Arc<Inner>,
    staging: Uuid,
    name: String,
    /// Where `pending` starts in the file.
    offset: u64,
    pending: Vec<u8>,
    in_flight: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl RemoteShardFile {
    /// Waits for the call in flight, if any.
    fn settle(&mut self) -> io::Result<()> {
        match self.in_flight.take() {
            Some(call) => self.drive.runtime.block_on(call).map_err(io::Error::other)?,
            None => Ok(()),
        }
    }

    fn write_call(&self) -> DriveCall {
        DriveCall::WriteShard { staging: self.staging, name: self.name.clone(), offset: self.offset }
    }
}

impl ShardFile for RemoteShardFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= SHARD_SEND_BYTES {
            self.settle()?;
            let (call, bytes) = (self.write_call(), std::mem::take(&mut self.pending));
            self.offset += bytes.len() as u64;
            // Awaited on the runtime: no blocking-pool thread waits for the answer.
            let answer = self.drive.clone().call_async(&call, &bytes);
            self.in_flight = Some(self.drive.runtime.spawn(async move { answer.await.map(|_| ()) }));
        }
        Ok(())
    }

    fn close(self: Box<Self>, durability: Durability) -> io::Result<()> {
        let SyncCall { runtime, call } = self.close_call(durability);
        runtime.block_on(call)
    }

    fn close_async(self: Box<Self>, durability: Durability) -> Result<SyncCall, Box<dyn ShardFile>> {
        Ok(self.close_call(durability))
    }
}

impl RemoteShardFile {
    /// Waits for the write in flight, then sends the rest with the fsync in one call
    /// (without it, `Durability::Deferred`).
    fn close_call(mut self: Box<Self>, durability: Durability) -> SyncCall {
        let runtime = self.drive.runtime.clone();
        let call = Box::pin(async move {
            if let Some(in_flight) = self.in_flight.take() {
                in_flight.await.map_err(io::Error::other)??;
            }
            let last = std::mem::take(&mut self.pending);
            if durability == Durability::Deferred {
                // Created by its first write: an empty file still needs one.
                self.drive.clone().call_async(&self.write_call(), &last).await?;
                self.drive.deferred.lock().expect("deferred shard files").push((self.staging, self.name.clone()));
                return Ok(());
            }
            let call =
                DriveCall::WriteShardSynced { staging: self.staging, name: self.name.clone(), offset: self.offset };
            match self.drive.clone().call_async(&call, &last).await {
                // A peer of an earlier version does not know the call: the two it knows.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    self.drive.clone().call_async(&self.write_call(), &last).await?;
                    let sync = DriveCall::SyncShard { staging: self.staging, name: self.name.clone() };
                    self.drive.clone().call_async(&sync, &[]).await.map(|_| ())
                }
                other => other.map(|_| ()),
            }
        });
        SyncCall { runtime, call }
    }
}

impl RemoteDrive {
    /// `Drive::commit_merged` as a future; a peer of an earlier version, which does not
    /// know the call, gets its file read and the commit (from the blocking pool: those
    /// calls wait for their answers).
    fn commit_merged_call(&self, request: MergeRequest<'_>) -> AsyncCall<MergedCommit> {
        let MergeRequest { bucket, path, entries, staged, newest, durability } = request;
        let (bucket_name, wire, staged_ids) = (bucket.to_string(), path.to_wire(), staged.to_vec());
        let call = match durability {
            Durability::Synced => {
                DriveCall::CommitMerged { bucket: bucket_name, path: wire, staged: staged_ids, newest }
            }
            Durability::Deferred => {
                DriveCall::CommitMergedDeferred { bucket: bucket_name, path: wire, staged: staged_ids, newest }
            }
        };
        let answer = self.inner.clone().call_async(&call, entries);
        let (drive, merge) = (self.clone(), OwnedMerge::of(request));
        Box::pin(async move {
            match answer.await {
                Ok(answer) => {
                    let bytes = answer.ok_or_else(|| io::Error::other("peer answered nothing"))?;
                    postcard::from_bytes(&bytes).map_err(|e| io::Error::other(format!("peer answer malformed: {e}")))
                }
                // A peer of an earlier version that knows the durable call: that one.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput && durability == Durability::Deferred => {
                    drive.commit_merged_call(MergeRequest { durability: Durability::Synced, ..merge.request() }).await
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    let drive = drive.clone();
                    tokio::task::spawn_blocking(move || commit_merged_by_parts(&drive, merge.request()))
                        .await
                        .map_err(io::Error::other)?
                }
                Err(e) => Err(e),
            }
        })
    }
}

/// Shard bytes a peer is given a second for when it copies them (`PushShards`), on top
/// of `CALL_TIMEOUT`: a slow disk, not a lost peer.
const PUSH_BYTES_PER_SECOND: u64 = 8 * 1024 * 1024;

impl RemoteDrive {
    /// `Drive::push_shards`: the peer reads and checks its shard files and writes them to
    /// the target drive itself.
    fn push_shards_call(&self, target: &Arc<dyn Drive>, copy: &ShardCopy) -> AsyncCall<()> {
        let call = DriveCall::PushShards {
            bucket: copy.bucket.clone(),
            path: copy.path.to_wire(),
            data_dir: copy.data_dir,
            parts: copy.parts.clone(),
            data_shards: copy.data_shards,
            staging: copy.staging,
            to: target.format().drive_id,
            synced: copy.durability == Durability::Synced,
        };
        let bytes: u64 = copy.parts.iter().map(|(_, size)| size.div_ceil(u64::from(copy.data_shards.max(1)))).sum();
        let timeout = CALL_TIMEOUT + Duration::from_secs(bytes / PUSH_BYTES_PER_SECOND);
        let answer = self.inner.clone().call_async_within(&call, &[], timeout);
        Box::pin(async move { answer.await.map(|_| ()) })
    }
}

impl Drive for RemoteDrive {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn is_local(&self) -> bool {
        false
    }

    fn format(&self) -> &DriveFormat {
        &self.inner.format
    }

    fn is_online(&self) -> bool {
        self.inner.online.load(Ordering::Relaxed) || !self.inner.cooling()
    }

    fn is_marked_online(&self) -> bool {
        self.inner.online.load(Ordering::Relaxed)
    }

    fn take_returned(&self) -> bool {
        self.inner.returned.swap(false, Ordering::Relaxed)
    }

    fn set_online(&self, online: bool) {
        if !online {
            *self.inner.offline_since.lock().expect("offline clock") = Some(std::time::Instant::now());
        }
        self.inner.online.store(online, Ordering::Relaxed);
    }

    fn read_current_format(&self) -> io::Result<Option<DriveFormat>> {
        match self.inner.call(&DriveCall::ReadFormat, &[])? {
            Some(bytes) => {
                DriveFormat::decode(&bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
            None => Ok(None),
        }
    }

    fn reformat(&self) -> io::Result<bool> {
        self.inner.call_decoded(DriveCall::Reformat)
    }

    fn read_system_file(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner.call(&DriveCall::ReadSystemFile { name: name.into() }, &[])
    }

    fn write_system_file(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.inner.call_unit(DriveCall::WriteSystemFile { name: name.into() }, bytes)
    }

    fn create_shard_file(&self, staging_id: Uuid, name: &str) -> io::Result<Box<dyn ShardFile>> {
        // The first write (offset 0) creates the file on the peer.
        Ok(Box::new(RemoteShardFile {
            drive: self.inner.clone(),
            staging: staging_id,
            name: name.to_string(),
            offset: 0,
            pending: Vec::new(),
            in_flight: None,
        }))
    }

    fn has_staging(&self, staging_id: Uuid) -> bool {
        self.inner.call_decoded(DriveCall::HasStaging { staging: staging_id }).unwrap_or(false)
    }

    fn remove_staging(&self, staging_id: Uuid) {
        let _ = self.inner.call_unit(DriveCall::RemoveStaging { staging: staging_id }, &[]);
    }

    fn make_bucket(&self, bucket: &str, meta: &[u8]) -> io::Result<()> {
        self.inner.call_unit(DriveCall::MakeBucket { bucket: bucket.into() }, meta)
    }

    fn read_bucket_meta(&self, bucket: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner.call(&DriveCall::ReadBucketMeta { bucket: bucket.into() }, &[])
    }

    fn delete_bucket(&self, bucket: &str) -> io::Result<()> {
        self.inner.call_unit(DriveCall::DeleteBucket { bucket: bucket.into() }, &[])
    }

    fn list_buckets(&self) -> io::Result<Vec<(String, Vec<u8>)>> {
        self.inner.call_decoded(DriveCall::ListBuckets)
    }

    fn usage(&self) -> io::Result<crate::storage::drive::DriveUsage> {
        self.inner.call_decoded(DriveCall::Usage)
    }

    fn read_object_meta(&self, bucket: &str, path: &ObjectPath) -> io::Result<Option<Vec<u8>>> {
        self.inner.call(&DriveCall::ReadObjectMeta { bucket: bucket.into(), path: path.to_wire() }, &[])
    }

    fn sync_drive(&self) -> io::Result<()> {
        let _one_at_a_time = self.inner.syncing.lock().expect("drive sync");
        let mut closed = std::mem::take(&mut *self.inner.deferred.lock().expect("deferred shard files"));
        let result = match self.inner.call_unit(DriveCall::SyncDrive, &[]) {
            // A peer of an earlier version: each shard file it holds unsynced, in turn
            // (one gone meanwhile was released; a commit of these is durable there, as it
            // does not know `CommitMergedDeferred` either).
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => loop {
                let Some((staging, name)) = closed.last().cloned() else { break Ok(()) };
                match self.inner.call_unit(DriveCall::SyncShard { staging, name }, &[]) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => break Err(e),
                    _ => closed.pop(),
                };
            },
            other => other,
        };
        // Not known to be on disk: the next sync (maybe another batch's) tries them again.
        if result.is_err() {
            self.inner.deferred.lock().expect("deferred shard files").extend(closed);
        }
        result
    }

    fn commit_object(&self, bucket: &str, path: &ObjectPath, meta: &[u8], staged: &[Uuid]) -> io::Result<()> {
        let call = DriveCall::CommitObject { bucket: bucket.into(), path: path.to_wire(), staged: staged.to_vec() };
        self.inner.call_unit(call, meta)
    }

    fn commit_merged(&self, request: MergeRequest<'_>) -> io::Result<MergedCommit> {
        self.inner.runtime.block_on(self.commit_merged_call(request))
    }

    fn read_object_meta_async(&self, bucket: &str, path: &ObjectPath) -> Option<AsyncCall<Option<Vec<u8>>>> {
        let call = DriveCall::ReadObjectMeta { bucket: bucket.into(), path: path.to_wire() };
        Some(self.inner.clone().call_async(&call, &[]))
    }

    fn commit_merged_async(&self, request: MergeRequest<'_>) -> Option<AsyncCall<MergedCommit>> {
        Some(self.commit_merged_call(request))
    }

    fn push_shards(&self, target: &Arc<dyn Drive>, copy: &ShardCopy) -> io::Result<()> {
        self.inner.runtime.block_on(self.push_shards_call(target, copy))
    }

    fn push_shards_async(&self, target: &Arc<dyn Drive>, copy: &ShardCopy) -> Option<AsyncCall<()>> {
        Some(self.push_shards_call(target, copy))
    }

    fn note_unsynced(&self, staging_id: Uuid, name: &str) {
        self.inner.deferred.lock().expect("deferred shard files").push((staging_id, name.to_string()));
    }

    fn remove_data_dirs(&self, bucket: &str, path: &ObjectPath, data_dirs: &[Uuid]) {
        let call =
            DriveCall::RemoveDataDirs { bucket: bucket.into(), path: path.to_wire(), data_dirs: data_dirs.to_vec() };
        let _ = self.inner.call_unit(call, &[]);
    }

    fn restore_object(
        &self,
        bucket: &str,
        path: &ObjectPath,
        previous_meta: Option<&[u8]>,
        new_data_dirs: &[Uuid],
    ) -> io::Result<()> {
        let call = DriveCall::RestoreObject {
            bucket: bucket.into(),
            path: path.to_wire(),
            has_previous: previous_meta.is_some(),
            new_data_dirs: new_data_dirs.to_vec(),
        };
        self.inner.call_unit(call, previous_meta.unwrap_or_default())
    }

    fn delete_object(&self, bucket: &str, path: &ObjectPath, data_dirs: &[Uuid]) -> io::Result<()> {
        let call =
            DriveCall::DeleteObject { bucket: bucket.into(), path: path.to_wire(), data_dirs: data_dirs.to_vec() };
        self.inner.call_unit(call, &[])
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
        let call = DriveCall::ReadShard {
            bucket: bucket.into(),
            path: path.to_wire(),
            data_dir,
            part_number,
            offset,
            len: len as u64,
        };
        let bytes = self.inner.call(&call, &[])?.unwrap_or_default();
        if bytes.len() != len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer returned a short shard read"));
        }
        Ok(bytes)
    }

    fn walk(&self, bucket: &str, prefix: &str, marker: &str, limit: usize) -> io::Result<Vec<(String, Vec<u8>)>> {
        self.inner.call_decoded(DriveCall::Walk {
            bucket: bucket.into(),
            prefix: prefix.into(),
            marker: marker.into(),
            limit: limit.min(u32::MAX as usize) as u32,
        })
    }

    fn list_dir(&self, bucket: &str, relative: &Path) -> io::Result<Vec<(String, bool)>> {
        self.inner.call_decoded(DriveCall::ListDir {
            bucket: bucket.into(),
            relative: relative.to_string_lossy().into_owned(),
        })
    }

    fn write_upload_file(&self, bucket: &str, upload_id: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        let call = DriveCall::WriteUploadFile { bucket: bucket.into(), upload_id: upload_id.into(), name: name.into() };
        self.inner.call_unit(call, bytes)
    }

    fn read_upload_file(&self, bucket: &str, upload_id: &str, name: &str) -> io::Result<Option<Vec<u8>>> {
        let call = DriveCall::ReadUploadFile { bucket: bucket.into(), upload_id: upload_id.into(), name: name.into() };
        self.inner.call(&call, &[])
    }

    fn list_upload_files(&self, bucket: &str, upload_id: &str) -> io::Result<Vec<String>> {
        self.inner.call_decoded(DriveCall::ListUploadFiles { bucket: bucket.into(), upload_id: upload_id.into() })
    }

    fn list_uploads(&self, bucket: &str) -> io::Result<Vec<String>> {
        self.inner.call_decoded(DriveCall::ListUploads { bucket: bucket.into() })
    }

    fn commit_part(&self, bucket: &str, upload_id: &str, staging_id: Uuid, number: u32, meta: &[u8]) -> io::Result<()> {
        let call =
            DriveCall::CommitPart { bucket: bucket.into(), upload_id: upload_id.into(), staging: staging_id, number };
        self.inner.call_unit(call, meta)
    }

    fn stage_upload_parts(
        &self,
        bucket: &str,
        upload_id: &str,
        staging_id: Uuid,
        parts: &[(u32, String)],
    ) -> io::Result<()> {
        let call = DriveCall::StageUploadParts {
            bucket: bucket.into(),
            upload_id: upload_id.into(),
            staging: staging_id,
            parts: parts.to_vec(),
        };
        self.inner.call_unit(call, &[])
    }

    fn remove_upload(&self, bucket: &str, upload_id: &str) -> io::Result<()> {
        self.inner.call_unit(DriveCall::RemoveUpload { bucket: bucket.into(), upload_id: upload_id.into() }, &[])
    }
}
