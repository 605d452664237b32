//! The drive-call protocol: `POST /rpc/v1/drive`, body = u32 (LE) length of a postcard
//! `DriveCall`, the call, then the payload bytes (shard data, metadata). Answers: 200 with
//! the result bytes, 204 for "none", or an error status with `x-buckets-error` naming the
//! kind (`not-found` or `other`) and the message as body.
//!
//! Several small drive calls to one node travel as one request: `POST /rpc/v1/drives`,
//! body = `encode_batch` of the calls (each a drive path and a request body as above),
//! answered 200 with postcard `Vec<BatchedAnswer>`, one per call in order. A node of an
//! earlier version answers that path 404, and the caller sends the calls one by one.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const DRIVE_CALL_PATH: &str = "/rpc/v1/drive";
pub const ERROR_KIND_HEADER: &str = "x-buckets-error";
/// Largest request or response body: a metadata frame (64 MiB) plus the call.
pub const MAX_RPC_BODY_BYTES: usize = 65 * 1024 * 1024;

/// An object path on the wire: the encoded directory and whether it is a "dir/" object.
pub type WirePath = (String, bool);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriveCall {
    ReadFormat,
    Reformat,
    WriteShard {
        staging: Uuid,
        name: String,
        offset: u64,
    },
    SyncShard {
        staging: Uuid,
        name: String,
    },
    HasStaging {
        staging: Uuid,
    },
    RemoveStaging {
        staging: Uuid,
    },
    MakeBucket {
        bucket: String,
    },
    ReadBucketMeta {
        bucket: String,
    },
    DeleteBucket {
        bucket: String,
    },
    ListBuckets,
    ReadObjectMeta {
        bucket: String,
        path: WirePath,
    },
    CommitObject {
        bucket: String,
        path: WirePath,
        staged: Vec<Uuid>,
    },
    RemoveDataDirs {
        bucket: String,
        path: WirePath,
        data_dirs: Vec<Uuid>,
    },
    RestoreObject {
        bucket: String,
        path: WirePath,
        has_previous: bool,
        new_data_dirs: Vec<Uuid>,
    },
    DeleteObject {
        bucket: String,
        path: WirePath,
        data_dirs: Vec<Uuid>,
    },
    ReadShard {
        bucket: String,
        path: WirePath,
        data_dir: Uuid,
        part_number: u32,
        offset: u64,
        len: u64,
    },
    ListDir {
        bucket: String,
        relative: String,
    },
    Walk {
        bucket: String,
        prefix: String,
        marker: String,
        limit: u32,
    },
    WriteUploadFile {
        bucket: String,
        upload_id: String,
        name: String,
    },
    ReadUploadFile {
        bucket: String,
        upload_id: String,
        name: String,
    },
    ListUploadFiles {
        bucket: String,
        upload_id: String,
    },
    ListUploads {
        bucket: String,
    },
    CommitPart {
        bucket: String,
        upload_id: String,
        staging: Uuid,
        number: u32,
    },
    StageUploadParts {
        bucket: String,
        upload_id: String,
        staging: Uuid,
        parts: Vec<(u32, String)>,
    },
    RemoveUpload {
        bucket: String,
        upload_id: String,
    },
    ReadSystemFile {
        name: String,
    },
    WriteSystemFile {
        name: String,
    },
    Usage,
    /// `WriteShard` of a shard file's last block, then `SyncShard`: one call instead of
    /// two. (Last, so peers of earlier versions decode every other call as before; they
    /// refuse this one with 400, and the caller then sends the two.)
    WriteShardSynced {
        staging: Uuid,
        name: String,
        offset: u64,
    },
    /// `Drive::commit_merged`, the entries in the payload; answers a `MergedCommit`. (After
    /// the others for the same reason; an earlier peer's 400 makes the caller read the
    /// key's file and send `CommitObject`.)
    CommitMerged {
        bucket: String,
        path: WirePath,
        staged: Vec<Uuid>,
        newest: bool,
    },
    /// `CommitMerged` without its fsyncs (`Durability::Deferred`). (After the others; an
    /// earlier peer's 400 makes the caller send `CommitMerged`, durable at once.)
    CommitMergedDeferred {
        bucket: String,
        path: WirePath,
        staged: Vec<Uuid>,
        newest: bool,
    },
    /// `Drive::sync_drive`. (Last; an earlier peer refuses it with 400, and the caller
    /// then fsyncs the shard files it closed there without one, each with `SyncShard`.)
    SyncDrive,
    /// `Drive::push_shards` to the drive `to` (its `drive_id`), which this node reaches
    /// itself. (Last; an earlier peer refuses it with 400, and the caller then copies the
    /// object through itself.)
    PushShards {
        bucket: String,
        path: WirePath,
        data_dir: Uuid,
        parts: Vec<(u32, u64)>,
        data_shards: u32,
        staging: Uuid,
        to: Uuid,
        synced: bool,
    },
}

pub const DRIVE_BATCH_PATH: &str = "/rpc/v1/drives";
/// Most calls in one batch: a bound on the work (and answer bytes) one request carries.
pub const MAX_BATCHED_CALLS: usize = 64;

/// A batch's answer to one of its calls, as the call alone would have been answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchedAnswer {
    pub status: u16,
    pub error_kind: Option<String>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// Frames the calls of a batch, each a drive path and a request body (`encode_request`):
/// per call, u32 (LE) length and the path, u32 (LE) length and the request. (Not
/// postcard: the server takes each request as a slice of the body, shard data uncopied.)
pub fn encode_batch<'a>(calls: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (drive, request) in calls {
        for part in [drive.as_bytes(), request] {
            body.extend_from_slice(&(part.len() as u32).to_le_bytes());
            body.extend_from_slice(part);
        }
    }
    body
}

/// Splits a batch's body into its calls (drive path, request body); more than
/// `MAX_BATCHED_CALLS` is refused.
pub fn decode_batch(body: &bytes::Bytes) -> Result<Vec<(String, bytes::Bytes)>, String> {
    let mut calls = Vec::new();
    let mut at = 0;
    let part = |at: &mut usize| -> Result<bytes::Bytes, String> {
        let length = body.get(*at..*at + 4).ok_or("batch cut short")?;
        let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
        let start = *at + 4;
        let end = start.checked_add(length).filter(|end| *end <= body.len()).ok_or("batch part out of bounds")?;
        *at = end;
        Ok(body.slice(start..end))
    };
    while at < body.len() {
        if calls.len() == MAX_BATCHED_CALLS {
            return Err(format!("more than {MAX_BATCHED_CALLS} calls in a batch"));
        }
        let drive = String::from_utf8(part(&mut at)?.to_vec()).map_err(|_| "a drive path is not UTF-8")?;
        calls.push((drive, part(&mut at)?));
    }
    Ok(calls)
}

/// Which calls may share a batch: an answer to a batch waits for its slowest call, so a
/// quick call must not wait behind an fsync, nor either behind a copy of shard data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Batching {
    /// Reads and writes without an fsync: batched with each other.
    Quick,
    /// Calls that fsync what they wrote: batched with each other.
    Durable,
    /// Calls that move shard data or walk a drive, or sync all of it: always alone.
    Alone,
}

impl DriveCall {
    pub fn batching(&self) -> Batching {
        use DriveCall::*;
        match self {
            ReadFormat | ReadBucketMeta { .. } | ListBuckets | ReadObjectMeta { .. } | HasStaging { .. } => {
                Batching::Quick
            }
            ListDir { .. } | ReadUploadFile { .. } | ListUploadFiles { .. } | ListUploads { .. } => Batching::Quick,
            ReadSystemFile { .. } | Usage | WriteShard { .. } | CommitMergedDeferred { .. } => Batching::Quick,
            SyncShard { .. } | WriteShardSynced { .. } | RemoveStaging { .. } | MakeBucket { .. } => Batching::Durable,
            DeleteBucket { .. } | CommitObject { .. } | RemoveDataDirs { .. } | RestoreObject { .. } => {
                Batching::Durable
            }
            DeleteObject { .. } | WriteUploadFile { .. } | CommitPart { .. } | StageUploadParts { .. } => {
                Batching::Durable
            }
            RemoveUpload { .. } | WriteSystemFile { .. } | CommitMerged { .. } => Batching::Durable,
            Reformat | ReadShard { .. } | Walk { .. } | SyncDrive | PushShards { .. } => Batching::Alone,
        }
    }
}

/// Frames a call and its payload as a request body.
pub fn encode_request(call: &DriveCall, payload: &[u8]) -> Vec<u8> {
    let call = postcard::to_stdvec(call).expect("drive calls serialise");
    let mut body = Vec::with_capacity(4 + call.len() + payload.len());
    body.extend_from_slice(&(call.len() as u32).to_le_bytes());
    body.extend_from_slice(&call);
    body.extend_from_slice(payload);
    body
}

/// Splits a request body into the call and its payload.
pub fn decode_request(body: &[u8]) -> Result<(DriveCall, &[u8]), String> {
    let length = body.get(..4).ok_or("request too short")?;
    let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
    let call = body.get(4..4 + length).ok_or("call length out of bounds")?;
    let (call, rest) = postcard::take_from_bytes(call).map_err(|e| format!("malformed call: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("malformed call: {} bytes after it", rest.len()));
    }
    Ok((call, &body[4 + length..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_garbage_is_refused() {
        let calls = [("/d1", &b"call one"[..]), ("/d2", b""), ("", b"\0\xff")];
        let body = bytes::Bytes::from(encode_batch(calls.iter().copied()));
        let decoded = decode_batch(&body).unwrap();
        let decoded: Vec<(&str, &[u8])> = decoded.iter().map(|(d, r)| (d.as_str(), &r[..])).collect();
        assert_eq!(decoded, calls);
        assert_eq!(decode_batch(&bytes::Bytes::new()), Ok(Vec::new()));
        // Cut anywhere, a batch is refused, or (cut between two calls) reads as the calls before.
        for cut in 1..body.len() {
            if let Ok(prefix) = decode_batch(&body.slice(..cut)) {
                assert!(prefix.len() < calls.len(), "cut at {cut}");
                assert!(prefix.iter().zip(&calls).all(|((d, r), (dc, rc))| d == dc && &r[..] == *rc), "cut at {cut}");
            }
        }
        let too_many = encode_batch((0..=MAX_BATCHED_CALLS).map(|_| ("/d", &b"x"[..])));
        assert!(decode_batch(&bytes::Bytes::from(too_many)).is_err());
        let huge_length = bytes::Bytes::from_static(b"\xff\xff\xff\xff/d");
        assert!(decode_batch(&huge_length).is_err());
    }

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let call = DriveCall::ReadShard {
            bucket: "b".into(),
            path: ("a/%dotdot/c".into(), false),
            data_dir: Uuid::from_u128(7),
            part_number: 3,
            offset: 1 << 40,
            len: 4096,
        };
        let body = encode_request(&call, b"payload");
        assert_eq!(decode_request(&body), Ok((call, &b"payload"[..])));
        for bad in [&b""[..], b"\x05\x00\x00\x00ab", b"\xff\xff\xff\xff", b"\x01\x00\x00\x00\xff"] {
            assert!(decode_request(bad).is_err());
        }
    }

    /// A drive call has no checksum (the RPC signature covers it on the wire): what it
    /// accepts from random or mutated bytes, it must have read exactly, every byte
    /// accounted for, and it must never panic.
    #[test]
    fn mutated_requests_decode_exactly_or_are_refused() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let call = DriveCall::ListDir { bucket: "b".into(), relative: "a/b".into() };
        let seed = encode_request(&call, b"payload");
        let mut accepted = 0;
        for round in 0..20_000 {
            let input: Vec<u8> = if round % 4 == 0 {
                (0..rng.random_range(0..256)).map(|_| rng.random()).collect()
            } else {
                crate::format::fuzz::mutate(&mut rng, &seed)
            };
            if let Ok((call, payload)) = decode_request(&input) {
                accepted += 1;
                assert_eq!(
                    encode_request(&call, payload),
                    input,
                    "round {round}: {call:?} was decoded from bytes that do not encode it"
                );
            }
        }
        assert!(accepted > 100, "mutated drive calls decode often enough to check: {accepted}");
    }
}
