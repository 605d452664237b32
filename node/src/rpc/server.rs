//! Serves this node's local drives and lock table, and carries the cluster's calls
//! (`ControlCalls`, handled in `cluster`), to authenticated peers: every
//! call's signature is checked over its whole body before anything runs (`auth`), every
//! answer is signed, and refusals are counted (`buckets_rpc_refused_calls_total`) and
//! logged.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::auth::{ANSWER_AUTH_HEADER, AUTH_HEADER, CallVerifier, Refusal};
use super::lock::{LOCK_PATH, LockCall, LockTable};
use super::protocol::{
    BatchedAnswer, DRIVE_BATCH_PATH, DRIVE_CALL_PATH, DriveCall, ERROR_KIND_HEADER, MAX_RPC_BODY_BYTES, decode_batch,
    decode_request,
};
use crate::metrics::Metrics;
use crate::storage::drive::{Drive, Durability, LocalDrive, MergeRequest, ShardCopy, push_shards_by_parts};
use crate::storage::path::{ObjectPath, checked_relative};

/// Most keys one walk call returns.
const MAX_WALK_KEYS: usize = 10_000;
/// Body of a lock call, and of a call to an unknown path (answered "unknown RPC").
const MAX_CONTROL_BODY_BYTES: usize = 64 * 1024;

/// The drives a node serves to its peers, by the path in their drive URL.
/// This node's drives by path, as peer RPC serves them (sets added at runtime join).
pub type ServedDrives = Arc<std::sync::RwLock<HashMap<String, Arc<LocalDrive>>>>;

pub struct RpcServer {
    verifier: CallVerifier,
    drives: ServedDrives,
    locks: Arc<LockTable>,
    /// The cluster's calls (`cluster::control`), served here but handled above.
    control: Arc<dyn ControlCalls>,
    metrics: Arc<Metrics>,
    /// `buckets_rpc_drive_calls_total` by how the calls arrived, resolved once (every
    /// drive call counts).
    calls_alone: prometheus::IntCounter,
    calls_batched: prometheus::IntCounter,
    /// Refusals are logged at most once a second (a flood of bad calls must not flood
    /// the log); the second of the last line and how many were not logged since.
    last_refusal_logged: AtomicI64,
    refusals_not_logged: AtomicU64,
}

/// An answer before it is signed.
struct Answer {
    status: StatusCode,
    error_kind: Option<&'static str>,
    body: Bytes,
}

fn respond(status: StatusCode, body: Vec<u8>) -> Answer {
    Answer { status, error_kind: None, body: Bytes::from(body) }
}

fn error_response(error: &io::Error) -> Answer {
    let kind = if error.kind() == io::ErrorKind::NotFound { "not-found" } else { "other" };
    Answer { status: StatusCode::INTERNAL_SERVER_ERROR, error_kind: Some(kind), body: Bytes::from(error.to_string()) }
}

fn bad_request(message: &str) -> Answer {
    respond(StatusCode::BAD_REQUEST, message.as_bytes().to_vec())
}

/// What a cluster call answers: a status and a short body.
pub struct ControlAnswer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// The cluster's calls (join, topology push, open-set, registry invalidation): they
/// travel over peer RPC, signed and verified like every call, but are handled above the
/// transport (`cluster::control`), so this module knows nothing of membership.
pub trait ControlCalls: Send + Sync {
    /// The largest body a call to `path` may carry; `None` when it is no cluster call.
    fn body_limit(&self, path: &str) -> Option<usize>;
    /// Runs the (authenticated) call to `path`; `None` when it is no cluster call.
    fn call<'a>(&'a self, path: &'a str, body: Bytes) -> BoxFuture<'a, Option<ControlAnswer>>;
    /// A drive of the cluster by its `drive_id` (this node's or a peer's), for a call
    /// that writes to it (`PushShards`); `None` when this node does not know it.
    fn drive(&self, _drive_id: uuid::Uuid) -> Option<Arc<dyn Drive>> {
        None
    }
}

impl RpcServer {
    /// The largest body a call to `path` may carry.
    fn body_limit(&self, path: &str) -> usize {
        match path {
            DRIVE_CALL_PATH => MAX_RPC_BODY_BYTES,
            // As an earlier version reads a path it does not know (test hook).
            DRIVE_BATCH_PATH if refused_path_as_earlier_peer("Batch") => MAX_CONTROL_BODY_BYTES,
            DRIVE_BATCH_PATH => MAX_RPC_BODY_BYTES,
            _ => self.control.body_limit(path).unwrap_or(MAX_CONTROL_BODY_BYTES),
        }
    }
}

/// What a call returns: bytes, nothing, or an I/O error.
type CallResult = io::Result<Option<Vec<u8>>>;

fn path_of(wire: &(String, bool)) -> io::Result<ObjectPath> {
    ObjectPath::from_wire(&wire.0, wire.1).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

fn encoded<T: serde::Serialize>(value: &T) -> CallResult {
    Ok(Some(postcard::to_stdvec(value).map_err(io::Error::other)?))
}

fn execute(drive: &LocalDrive, call: DriveCall, payload: &[u8]) -> CallResult {
    use DriveCall::*;
    let durability = match call {
        CommitMergedDeferred { .. } => Durability::Deferred,
        _ => Durability::Synced,
    };
    match call {
        Usage => encoded(&drive.usage()?),
        ReadFormat => match drive.read_current_format()? {
            Some(format) => Ok(Some(format.encode())),
            None => Ok(None),
        },
        Reformat => encoded(&drive.reformat()?),
        WriteShard { staging, name, offset } => {
            drive.write_shard_at(staging, &name, offset, payload)?;
            Ok(None)
        }
        SyncShard { staging, name } => {
            drive.sync_shard(staging, &name)?;
            Ok(None)
        }
        WriteShardSynced { staging, name, offset } => {
            drive.write_shard_at(staging, &name, offset, payload)?;
            drive.sync_shard(staging, &name)?;
            Ok(None)
        }
        HasStaging { staging } => encoded(&drive.has_staging(staging)),
        RemoveStaging { staging } => {
            drive.remove_staging(staging);
            Ok(None)
        }
        MakeBucket { bucket } => drive.make_bucket(&bucket, payload).map(|()| None),
        ReadBucketMeta { bucket } => drive.read_bucket_meta(&bucket),
        DeleteBucket { bucket } => drive.delete_bucket(&bucket).map(|()| None),
        ListBuckets => encoded(&drive.list_buckets()?),
        ReadObjectMeta { bucket, path } => drive.read_object_meta(&bucket, &path_of(&path)?),
        CommitObject { bucket, path, staged } => {
            drive.commit_object(&bucket, &path_of(&path)?, payload, &staged).map(|()| None)
        }
        CommitMerged { bucket, path, staged, newest } | CommitMergedDeferred { bucket, path, staged, newest } => {
            let path = path_of(&path)?;
            let request =
                MergeRequest { bucket: &bucket, path: &path, entries: payload, staged: &staged, newest, durability };
            encoded(&drive.commit_merged(request)?)
        }
        SyncDrive => drive.sync_drive().map(|()| None),
        // Needs the target drive: run by `push_shards` (`dispatch`).
        PushShards { .. } => Err(io::Error::new(io::ErrorKind::InvalidInput, "PushShards needs its target")),
        RemoveDataDirs { bucket, path, data_dirs } => {
            drive.remove_data_dirs(&bucket, &path_of(&path)?, &data_dirs);
            Ok(None)
        }
        RestoreObject { bucket, path, has_previous, new_data_dirs } => drive
            .restore_object(&bucket, &path_of(&path)?, has_previous.then_some(payload), &new_data_dirs)
            .map(|()| None),
        DeleteObject { bucket, path, data_dirs } => {
            drive.delete_object(&bucket, &path_of(&path)?, &data_dirs).map(|()| None)
        }
        ReadShard { bucket, path, data_dir, part_number, offset, len } => {
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= MAX_RPC_BODY_BYTES)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "shard read too large"))?;
            drive.read_shard(&bucket, &path_of(&path)?, data_dir, part_number, offset, len).map(Some)
        }
        Walk { bucket, prefix, marker, limit } => {
            let limit = (limit as usize).min(MAX_WALK_KEYS);
            encoded(&drive.walk(&bucket, &prefix, &marker, limit)?)
        }
        ListDir { bucket, relative } => {
            let relative =
                checked_relative(&relative).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            encoded(&drive.list_dir(&bucket, &relative)?)
        }
        WriteUploadFile { bucket, upload_id, name } => {
            drive.write_upload_file(&bucket, &upload_id, &name, payload).map(|()| None)
        }
        ReadUploadFile { bucket, upload_id, name } => drive.read_upload_file(&bucket, &upload_id, &name),
        ListUploadFiles { bucket, upload_id } => encoded(&drive.list_upload_files(&bucket, &upload_id)?),
        ListUploads { bucket } => encoded(&drive.list_uploads(&bucket)?),
        CommitPart { bucket, upload_id, staging, number } => {
            drive.commit_part(&bucket, &upload_id, staging, number, payload).map(|()| None)
        }
        StageUploadParts { bucket, upload_id, staging, parts } => {
            drive.stage_upload_parts(&bucket, &upload_id, staging, &parts).map(|()| None)
        }
        RemoveUpload { bucket, upload_id } => drive.remove_upload(&bucket, &upload_id).map(|()| None),
        ReadSystemFile { name } => drive.read_system_file(&name),
        WriteSystemFile { name } => drive.write_system_file(&name, payload).map(|()| None),
    }
}

/// A read the kernel answers from its caches without waiting (a key's metadata, a
/// shard block), answered on the request's own thread: no hand-off to the blocking pool
/// and back. `None` for every other call, and for a read that would wait or fails (the
/// ordinary call on the pool then reads it, or reports the error).
fn execute_cached(drive: &LocalDrive, call: &DriveCall) -> Option<CallResult> {
    match call {
        DriveCall::ReadObjectMeta { bucket, path } => {
            drive.read_object_meta_cached(bucket, &path_of(path).ok()?).map(Ok)
        }
        DriveCall::ReadShard { bucket, path, data_dir, part_number, offset, len } => {
            let len = usize::try_from(*len).ok().filter(|len| *len <= MAX_RPC_BODY_BYTES)?;
            let path = path_of(path).ok()?;
            drive.read_shard_cached(bucket, &path, *data_dir, *part_number, *offset, len).map(|bytes| Ok(Some(bytes)))
        }
        _ => None,
    }
}

/// Test hook: `BUCKETS_PEER_REFUSES=<Call>,<Call>` (variant names of `DriveCall`) makes
/// this node answer those calls as a peer of an earlier version answers a call it does
/// not know (400), so tests can reach the callers' fallbacks in a mixed-version cluster.
/// Unset, it costs one branch.
fn refused_as_earlier_peer(call: &DriveCall) -> bool {
    let refused = refused_names();
    if refused.is_empty() {
        return false;
    }
    let described = format!("{call:?}");
    let variant = described.split([' ', '{', '(']).next().unwrap_or_default();
    refused.iter().any(|name| name == variant)
}

/// `refused_as_earlier_peer` for a path: `BUCKETS_PEER_REFUSES=Batch` makes this node
/// answer batches as a peer of an earlier version does (404, an unknown RPC).
fn refused_path_as_earlier_peer(name: &str) -> bool {
    refused_names().iter().any(|refused| refused == name)
}

/// The names in `BUCKETS_PEER_REFUSES`.
fn refused_names() -> &'static [String] {
    static REFUSED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    REFUSED.get_or_init(|| {
        let names = std::env::var("BUCKETS_PEER_REFUSES").unwrap_or_default();
        names.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_string).collect()
    })
}

/// Names, buckets and upload ids arrive from peers; they must be single plain segments.
fn names_are_plain(call: &DriveCall) -> bool {
    use DriveCall::*;
    let plain =
        |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0') && s.len() <= 255;
    match call {
        WriteShard { name, .. } | SyncShard { name, .. } | WriteShardSynced { name, .. } => plain(name),
        MakeBucket { bucket } | ReadBucketMeta { bucket } | DeleteBucket { bucket } | ListUploads { bucket } => {
            plain(bucket)
        }
        ReadObjectMeta { bucket, .. }
        | CommitObject { bucket, .. }
        | CommitMerged { bucket, .. }
        | CommitMergedDeferred { bucket, .. }
        | RemoveDataDirs { bucket, .. }
        | RestoreObject { bucket, .. }
        | DeleteObject { bucket, .. }
        | ReadShard { bucket, .. }
        | PushShards { bucket, .. }
        | ListDir { bucket, .. }
        | Walk { bucket, .. } => plain(bucket),
        WriteUploadFile { bucket, upload_id, name } | ReadUploadFile { bucket, upload_id, name } => {
            plain(bucket) && plain(upload_id) && plain(name)
        }
        ListUploadFiles { bucket, upload_id }
        | CommitPart { bucket, upload_id, .. }
        | RemoveUpload { bucket, upload_id } => plain(bucket) && plain(upload_id),
        StageUploadParts { bucket, upload_id, parts, .. } => {
            plain(bucket) && plain(upload_id) && parts.iter().all(|(_, name)| plain(name))
        }
        ReadSystemFile { name } | WriteSystemFile { name } => plain(name),
        ReadFormat | Reformat | HasStaging { .. } | RemoveStaging { .. } | ListBuckets | Usage | SyncDrive => true,
    }
}

impl RpcServer {
    pub fn new(
        verifier: CallVerifier,
        drives: ServedDrives,
        locks: Arc<LockTable>,
        control: Arc<dyn ControlCalls>,
        metrics: Arc<Metrics>,
    ) -> Self {
        RpcServer {
            verifier,
            drives,
            locks,
            control,
            calls_alone: metrics.rpc_drive_calls.with_label_values(&["alone"]),
            calls_batched: metrics.rpc_drive_calls.with_label_values(&["batched"]),
            metrics,
            last_refusal_logged: AtomicI64::new(i64::MIN),
            refusals_not_logged: AtomicU64::new(0),
        }
    }

    /// Whether this request is for the RPC server (others are admin requests).
    pub fn handles(path: &str) -> bool {
        path.starts_with("/rpc/")
    }

    /// Counts a refused call and logs it (at most one line a second).
    fn refuse(&self, refusal: Refusal, remote: SocketAddr, path: &str) -> Response<Full<Bytes>> {
        self.metrics.rpc_refused_calls.with_label_values(&[refusal.reason()]).inc();
        let now = crate::clock::unix_now();
        if self.last_refusal_logged.swap(now, Ordering::Relaxed) != now {
            let not_logged = self.refusals_not_logged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                peer = %remote,
                path,
                reason = refusal.reason(),
                refusals_not_logged = not_logged,
                "refused a peer RPC call: {}",
                refusal.message()
            );
        } else {
            self.refusals_not_logged.fetch_add(1, Ordering::Relaxed);
        }
        Response::builder()
            .status(StatusCode::FORBIDDEN)
            .body(Full::new(Bytes::from(format!("peer RPC refused: {}\n", refusal.message()))))
            .expect("valid response")
    }

    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, remote: SocketAddr) -> Response<Full<Bytes>> {
        let now = crate::clock::unix_now();
        let path = request.uri().path().to_string();
        let path_and_query = request.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
        let method = request.method().clone();
        let header = request.headers().get(AUTH_HEADER).and_then(|v| v.to_str().ok());
        let claimed = match self.verifier.claimed(header, now) {
            Ok(claimed) => claimed,
            Err(refusal) => return self.refuse(refusal, remote, &path),
        };
        let body = match Limited::new(request.into_body(), self.body_limit(&path)).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(Full::new(Bytes::from_static(b"request body unreadable or too large\n")))
                    .expect("valid response");
            }
        };
        if let Err(refusal) = self.verifier.verify(&claimed, method.as_str(), &path_and_query, &body, now) {
            return self.refuse(refusal, remote, &path);
        }
        let answer = if method == http::Method::POST {
            self.dispatch(&path, request_drive(&path_and_query), body).await
        } else {
            respond(StatusCode::NOT_FOUND, b"unknown RPC\n".to_vec())
        };
        let signature =
            self.verifier.sign_answer(&claimed.nonce(), answer.status.as_u16(), answer.error_kind, &answer.body);
        let mut response = Response::builder().status(answer.status).header(ANSWER_AUTH_HEADER, signature);
        if let Some(kind) = answer.error_kind {
            response = response.header(ERROR_KIND_HEADER, kind);
        }
        response.body(Full::new(answer.body)).expect("valid response")
    }

    /// Runs an authenticated call.
    async fn dispatch(&self, path: &str, drive_path: Option<String>, body: Bytes) -> Answer {
        match path {
            LOCK_PATH => match postcard::from_bytes::<LockCall>(&body) {
                Ok(call) => respond(StatusCode::OK, if self.locks.apply(call) { b"1".to_vec() } else { b"0".to_vec() }),
                Err(e) => bad_request(&format!("malformed lock call: {e}")),
            },
            DRIVE_CALL_PATH => {
                self.calls_alone.inc();
                self.drive_call(drive_path, body).await
            }
            DRIVE_BATCH_PATH if !refused_path_as_earlier_peer("Batch") => self.drive_batch(&body).await,
            _ => match self.control.call(path, body).await {
                Some(ControlAnswer { status, body }) => respond(status, body),
                None => respond(StatusCode::NOT_FOUND, b"unknown RPC\n".to_vec()),
            },
        }
    }

    /// One drive call (`DRIVE_CALL_PATH`) to the drive at `drive_path`.
    async fn drive_call(&self, drive_path: Option<String>, body: Bytes) -> Answer {
        let Some(drive) = drive_path.and_then(|p| self.drives.read().expect("served drives").get(&p).cloned()) else {
            return respond(StatusCode::NOT_FOUND, b"no such drive on this node\n".to_vec());
        };
        // Decoded once: the call, and where its payload starts in the body.
        let (call, payload_at) = match decode_request(&body) {
            Ok((call, _)) if !names_are_plain(&call) => {
                return bad_request("a name in the call is not a plain segment");
            }
            Ok((call, _)) if refused_as_earlier_peer(&call) => {
                return bad_request("malformed call: unknown variant (refused as an earlier peer)");
            }
            Ok((call, payload)) => (call, body.len() - payload.len()),
            Err(e) => return bad_request(&e),
        };
        let result = match execute_cached(&drive, &call) {
            Some(result) => result,
            None if matches!(call, DriveCall::PushShards { .. }) => self.push_shards(drive, call).await,
            None => tokio::task::spawn_blocking(move || execute(&drive, call, &body[payload_at..]))
                .await
                .expect("drive call panicked"),
        };
        match result {
            Ok(Some(bytes)) => respond(StatusCode::OK, bytes),
            Ok(None) => respond(StatusCode::NO_CONTENT, Vec::new()),
            Err(e) => error_response(&e),
        }
    }

    /// The calls of a batch (`DRIVE_BATCH_PATH`), at once; each answered as it would be alone.
    async fn drive_batch(&self, body: &Bytes) -> Answer {
        let calls = match decode_batch(body) {
            Ok(calls) => calls,
            Err(e) => return bad_request(&format!("malformed batch: {e}")),
        };
        self.metrics.rpc_drive_batches.inc();
        self.calls_batched.inc_by(calls.len() as u64);
        let answers = calls.into_iter().map(|(drive, request)| self.drive_call(Some(drive), request));
        let answers: Vec<BatchedAnswer> = futures::future::join_all(answers)
            .await
            .into_iter()
            .map(|answer| BatchedAnswer {
                status: answer.status.as_u16(),
                error_kind: answer.error_kind.map(str::to_string),
                body: answer.body.to_vec(),
            })
            .collect();
        respond(StatusCode::OK, postcard::to_stdvec(&answers).expect("answers serialise"))
    }
}

impl RpcServer {
    /// `PushShards`: this node's `drive` copies a version's shard files to the target drive
    /// the call names (on this node or a peer), checked block by block.
    async fn push_shards(&self, drive: Arc<LocalDrive>, call: DriveCall) -> CallResult {
        let DriveCall::PushShards { bucket, path, data_dir, parts, data_shards, staging, to, synced } = call else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a PushShards call"));
        };
        let target = self
            .control
            .drive(to)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no drive {to} known to this node")))?;
        let durability = if synced { Durability::Synced } else { Durability::Deferred };
        let copy = ShardCopy { bucket, path: path_of(&path)?, data_dir, parts, data_shards, staging, durability };
        tokio::task::spawn_blocking(move || push_shards_by_parts(drive.as_ref(), target.as_ref(), &copy).map(|()| None))
            .await
            .expect("drive call panicked")
    }
}

/// The drive a drive call names (`?drive=<hex of its path>`).
fn request_drive(path_and_query: &str) -> Option<String> {
    let (_, query) = path_and_query.split_once('?')?;
    let bytes = hex::decode(query.strip_prefix("drive=")?).ok()?;
    String::from_utf8(bytes).ok()
}
