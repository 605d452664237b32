//! Gathers the small drive calls a node sends one peer at the same moment into one
//! request (`protocol::DRIVE_BATCH_PATH`): a write or a move calls every drive of a set
//! at once, several on each peer, and each call alone costs an HTTP exchange, its
//! signatures and a task on both sides, far more than the metadata read or commit it
//! carries.
//!
//! The first call queued for a peer spawns the task that sends the queue; it runs once
//! the calling task yields, so the calls a `join_all` issues together (and any other task
//! queues meanwhile) leave as one request. No call waits for a timer. Owns only that
//! queueing: what a call means and how its answer is read stay with `client`.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::client::{Answer, PeerTransport};
use super::protocol::{
    BatchedAnswer, Batching, DRIVE_BATCH_PATH, DRIVE_CALL_PATH, MAX_BATCHED_CALLS, MAX_RPC_BODY_BYTES, encode_batch,
};

/// Calls with a larger body (shard data) go alone: batching saves per-call overhead,
/// which only matters next to small bodies (shard pieces batched together measured no
/// faster: docs/benchmarks.md), and a large one would hold up the others.
const MAX_BATCHED_BODY_BYTES: usize = 16 * 1024;
/// Most request bytes in one batch: a node of an earlier version reads a body of up to
/// 64 KiB on a path it does not know before it answers "unknown" (404, signed), which is
/// how a caller learns to send it calls one by one; a larger body it would refuse unread,
/// failing every call in it.
const MAX_BATCH_BYTES: usize = 60 * 1024;
/// How long a peer that answered the batch path "unknown" (an earlier version) gets its
/// calls one by one before a batch is tried again (it may have been upgraded).
const UNBATCHED_FOR: Duration = Duration::from_secs(60);

/// A call waiting in a peer's queue.
struct Queued {
    drive: String,
    request: Bytes,
    timeout: Duration,
    answer: oneshot::Sender<io::Result<Answer>>,
}

/// The calls waiting per peer endpoint and kind, and when each peer that does not know
/// batches said so.
#[derive(Default)]
pub struct Batcher {
    queues: Mutex<HashMap<(String, Batching), Vec<Queued>>>,
    unbatched: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

/// `DRIVE_CALL_PATH` for the drive at `drive_path` on a peer.
pub fn drive_call_path(drive_path: &str) -> String {
    format!("{DRIVE_CALL_PATH}?drive={}", hex::encode(drive_path.as_bytes()))
}

/// An error for each caller of a batch that got no answer (`io::Error` is not `Clone`).
fn copy_of(error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), error.to_string())
}

/// The bytes a call takes in a batch's body (`encode_batch`).
fn framed_bytes(drive: &str, request: &[u8]) -> usize {
    4 + drive.len() + 4 + request.len()
}

/// How many calls, in order, go in each batch, given each call's framed bytes: at most
/// `MAX_BATCHED_CALLS` calls and `MAX_BATCH_BYTES` bytes a batch (a call larger than
/// that alone; none is, since calls over `MAX_BATCHED_BODY_BYTES` are never queued).
fn batch_lengths(sizes: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut lengths: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for size in sizes {
        match lengths.last_mut() {
            Some(length) if *length < MAX_BATCHED_CALLS && bytes + size <= MAX_BATCH_BYTES => {
                *length += 1;
                bytes += size;
            }
            _ => {
                lengths.push(1);
                bytes = size;
            }
        }
    }
    lengths
}

impl Batcher {
    fn batches_to(&self, endpoint: &str) -> bool {
        let mut unbatched = self.unbatched.lock().expect("unbatched peers");
        match unbatched.get(endpoint) {
            Some(since) if since.elapsed() < UNBATCHED_FOR => false,
            Some(_) => {
                unbatched.remove(endpoint);
                true
            }
            None => true,
        }
    }
}

impl PeerTransport {
    /// One drive call (`request`: `encode_request`'s body) to the drive at `drive_path` on
    /// `endpoint`; small ones travel with the others of their kind (`batching`) queued
    /// for that peer.
    pub async fn drive_call(
        &self,
        (endpoint, drive_path): (&str, &str),
        request: Bytes,
        timeout: Duration,
        batching: Batching,
    ) -> io::Result<Answer> {
        let alone = batching == Batching::Alone || request.len() > MAX_BATCHED_BODY_BYTES;
        if alone || !self.batcher().batches_to(endpoint) {
            return self.call(endpoint, &drive_call_path(drive_path), request, timeout, MAX_RPC_BODY_BYTES).await;
        }
        let (sender, receiver) = oneshot::channel();
        let queued = Queued { drive: drive_path.to_string(), request, timeout, answer: sender };
        let first = {
            let mut queues = self.batcher().queues.lock().expect("batch queues");
            let queue = queues.entry((endpoint.to_string(), batching)).or_default();
            queue.push(queued);
            queue.len() == 1
        };
        if first {
            let (transport, queue) = (self.clone(), (endpoint.to_string(), batching));
            tokio::spawn(async move { transport.send_queue(queue).await });
        }
        receiver.await.unwrap_or_else(|_| Err(io::Error::other("the call's batch was dropped unanswered")))
    }

    /// Sends what is queued for a peer once the tasks that queue calls now have.
    async fn send_queue(self, queue: (String, Batching)) {
        tokio::task::yield_now().await;
        let queued = self.batcher().queues.lock().expect("batch queues").remove(&queue).unwrap_or_default();
        let endpoint = queue.0;
        let lengths = batch_lengths(queued.iter().map(|call| framed_bytes(&call.drive, &call.request)));
        let mut rest = queued.into_iter();
        let chunks: Vec<Vec<Queued>> = lengths.into_iter().map(|length| rest.by_ref().take(length).collect()).collect();
        futures::future::join_all(chunks.into_iter().map(|chunk| self.send_batch(&endpoint, chunk))).await;
    }

    /// A queued call as a request of its own.
    async fn send_alone(&self, endpoint: &str, queued: Queued) {
        let Queued { drive, request, timeout, answer } = queued;
        let _ = answer.send(self.call(endpoint, &drive_call_path(&drive), request, timeout, MAX_RPC_BODY_BYTES).await);
    }

    /// One request for `calls` (a single call goes as itself); each caller gets its answer.
    async fn send_batch(&self, endpoint: &str, mut calls: Vec<Queued>) {
        if calls.len() == 1 {
            return self.send_alone(endpoint, calls.pop().expect("one call")).await;
        }
        let timeout = calls.iter().map(|c| c.timeout).max().unwrap_or_default();
        let body = Bytes::from(encode_batch(calls.iter().map(|c| (c.drive.as_str(), &c.request[..]))));
        let limit = MAX_RPC_BODY_BYTES.saturating_mul(calls.len());
        let answers = match self.call(endpoint, DRIVE_BATCH_PATH, body, timeout, limit).await {
            Ok(answer) if answer.status == http::StatusCode::NOT_FOUND && answer.error_kind.is_none() => {
                // A peer of an earlier version: the calls one by one, and no batches for a while.
                self.batcher().unbatched.lock().expect("unbatched peers").insert(endpoint.to_string(), Instant::now());
                let singles = calls.into_iter().map(|queued| self.send_alone(endpoint, queued));
                futures::future::join_all(singles).await;
                return;
            }
            Ok(answer) if answer.status == http::StatusCode::OK => {
                postcard::from_bytes::<Vec<BatchedAnswer>>(&answer.body)
                    .map_err(|e| io::Error::other(format!("{endpoint}: batch answer malformed: {e}")))
                    .and_then(|answers| match answers.len() == calls.len() {
                        true => Ok(answers),
                        false => Err(io::Error::other(format!(
                            "{endpoint}: {} answers to a batch of {} calls",
                            answers.len(),
                            calls.len()
                        ))),
                    })
            }
            Ok(answer) => Err(io::Error::other(format!(
                "{endpoint}: batch refused ({}): {}",
                answer.status,
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(512)]).trim()
            ))),
            Err(e) => Err(e),
        };
        match answers {
            Ok(answers) => {
                for (queued, answer) in calls.into_iter().zip(answers) {
                    let result = http::StatusCode::from_u16(answer.status)
                        .map(|status| Answer { status, error_kind: answer.error_kind, body: Bytes::from(answer.body) })
                        .map_err(|_| {
                            io::Error::other(format!("{endpoint}: batch answer with status {}", answer.status))
                        });
                    let _ = queued.answer.send(result);
                }
            }
            Err(e) => {
                for queued in calls {
                    let _ = queued.answer.send(Err(copy_of(&e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every batch stays within what a node of an earlier version reads before it answers
    /// "unknown" (64 KiB, framing included) and within the call limit, keeps the calls in
    /// order, and leaves none out.
    #[test]
    fn batches_stay_within_their_limits_and_keep_every_call() {
        let largest = framed_bytes("/data/drive-16", &[0; MAX_BATCHED_BODY_BYTES]);
        let cases: Vec<Vec<usize>> = vec![
            vec![],
            vec![largest],
            vec![largest; 10],
            vec![40; 200],
            (0..300).map(|n| [40, 700, largest, 5_000][n % 4]).collect(),
        ];
        for sizes in cases {
            let lengths = batch_lengths(sizes.iter().copied());
            assert_eq!(lengths.iter().sum::<usize>(), sizes.len(), "{sizes:?}");
            let mut at = 0;
            for length in lengths {
                let batch = &sizes[at..at + length];
                let body = encode_batch(batch.iter().map(|&size| ("", &[0u8; 1 << 15][..size - 8])));
                assert!(body.len() <= MAX_BATCH_BYTES && MAX_BATCH_BYTES < 64 * 1024, "{batch:?}");
                assert!((1..=MAX_BATCHED_CALLS).contains(&length));
                at += length;
            }
        }
    }
}
