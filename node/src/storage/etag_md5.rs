//! The MD5 of an upload (its ETag), with the blocks of concurrent uploads hashed together.
//!
//! One MD5 stream cannot be split: every 64-byte block depends on the one before. Blocks
//! of *different* uploads can be hashed side by side in SIMD lanes (8 with AVX2, 16 with
//! AVX-512), as MinIO does with its md5-simd server. Large blocks go to one hashing
//! thread that takes whatever blocks are waiting, one per upload, and hashes them in one
//! multi-buffer call; each upload keeps its own state and waits for its block. Alone, an
//! upload's block is hashed on that thread with the single-stream code, at the same cost.
//! Measured in docs/benchmarks.md ("MD5 of concurrent uploads hashed together").

use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use bytes::Bytes;
use md5_many::{Md5Many, Md5State};

/// Blocks smaller than this are hashed where they are: the hand-off would cost more than
/// the lanes save.
const SHARED_FROM_BYTES: usize = 64 * 1024;
/// The most blocks hashed in one call (AVX-512 lanes).
const MAX_BATCH: usize = 16;

/// One upload's MD5.
pub struct EtagMd5 {
    state: Md5State,
}

impl Default for EtagMd5 {
    fn default() -> Self {
        EtagMd5 { state: Md5State::new() }
    }
}

/// A block to hash on the shared thread, with the state it continues and where the new
/// state goes back.
struct Job {
    state: Md5State,
    block: Bytes,
    reply: SyncSender<Md5State>,
}

impl EtagMd5 {
    /// Hands a large block to the hashing thread and returns at once; `wait` answers
    /// when it is hashed (so the caller can do other work meanwhile). A small block, or
    /// one no thread takes, is hashed here.
    pub fn start(&mut self, block: &Bytes) -> Pending<'_> {
        if block.len() >= SHARED_FROM_BYTES
            && let Some(jobs) = hashing_thread()
        {
            let (reply, answer) = sync_channel(1);
            let job = Job { state: self.state, block: block.clone(), reply };
            if jobs.send(job).is_ok() {
                return Pending { md5: self, block: block.clone(), answer: Some(answer) };
            }
        }
        self.state.update(block);
        Pending { md5: self, block: Bytes::new(), answer: None }
    }

    /// Appends a block and waits until it is hashed.
    pub fn update(&mut self, block: &Bytes) {
        self.start(block).wait();
    }

    pub fn finalize(&self) -> [u8; 16] {
        self.state.finalize()
    }
}

/// A block handed to the hashing thread: `wait` for it, or the block is not in the MD5.
#[must_use = "the block is only in the MD5 once waited for"]
pub struct Pending<'a> {
    md5: &'a mut EtagMd5,
    block: Bytes,
    answer: Option<Receiver<Md5State>>,
}

impl Pending<'_> {
    pub fn wait(self) {
        if let Some(answer) = self.answer {
            match answer.recv() {
                Ok(state) => self.md5.state = state,
                // The thread is gone (it panicked): the state was not changed, hash here.
                Err(_) => self.md5.state.update(&self.block),
            }
        }
    }
}

/// The queue of the one hashing thread, started on first use; `None` when no thread
/// could be started (every block is then hashed by its upload).
fn hashing_thread() -> Option<&'static SyncSender<Job>> {
    static JOBS: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let (jobs, inbox) = sync_channel::<Job>(4 * MAX_BATCH);
        std::thread::Builder::new().name("buckets-md5".into()).spawn(move || serve(inbox)).ok().map(|_| jobs)
    })
    .as_ref()
}

fn serve(inbox: Receiver<Job>) {
    let engine = Md5Many::new();
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = inbox.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH
            && let Ok(job) = inbox.try_recv()
        {
            batch.push(job);
        }
        hash_batch(engine, &mut batch);
        for job in batch.drain(..) {
            let _ = job.reply.send(job.state);
        }
    }
}

/// Appends each job's block to its state. Two to eight blocks fill 8 lanes and nine to
/// sixteen fill 16, the spare lanes hashing copies of the first job: a full SIMD call
/// over 4 uploads' blocks hashes 2.5x the bytes of one lane (bench: md5-many).
fn hash_batch(engine: Md5Many, batch: &mut [Job]) {
    if let [job] = batch {
        job.state.update(&job.block);
        return;
    }
    let lanes = if batch.len() <= 8 { 8 } else { MAX_BATCH };
    let mut states: Vec<Md5State> = batch.iter().map(|job| job.state).collect();
    let mut inputs: Vec<&[u8]> = batch.iter().map(|job| &job.block[..]).collect();
    while states.len() < lanes {
        states.push(batch[0].state);
        inputs.push(&batch[0].block);
    }
    engine.update_many(&mut states, &inputs);
    for (job, state) in batch.iter_mut().zip(states) {
        job.state = state;
    }
}

#[cfg(test)]
mod tests {
    use md5::Digest as _;

    use super::*;

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed as u32).to_le_bytes()[3]).collect()
    }

    /// Many uploads at once, blocks of mixed sizes (large ones shared, small ones local,
    /// lengths not a multiple of 64): each digest is the reference crate's.
    #[test]
    fn concurrent_uploads_get_their_own_md5() {
        let uploads: Vec<std::thread::JoinHandle<()>> = (0..12u8)
            .map(|n| {
                std::thread::spawn(move || {
                    let body = body(3 * 1024 * 1024 + 1000 * n as usize + 7, n);
                    let mut md5 = EtagMd5::default();
                    let sizes = [1 << 20, 100_003, 1_000, 65_536, 700_001];
                    let mut at = 0;
                    for size in sizes.iter().cycle() {
                        if at == body.len() {
                            break;
                        }
                        let end = (at + size).min(body.len());
                        let block = Bytes::copy_from_slice(&body[at..end]);
                        if n % 2 == 0 {
                            md5.update(&block);
                        } else {
                            let pending = md5.start(&block);
                            std::thread::yield_now();
                            pending.wait();
                        }
                        at = end;
                    }
                    assert_eq!(md5.finalize(), <[u8; 16]>::from(md5::Md5::digest(&body)), "upload {n}");
                })
            })
            .collect();
        for upload in uploads {
            upload.join().unwrap();
        }
    }

    #[test]
    fn empty_and_small_bodies() {
        assert_eq!(EtagMd5::default().finalize(), <[u8; 16]>::from(md5::Md5::digest(b"")));
        let mut md5 = EtagMd5::default();
        md5.update(&Bytes::from_static(b"abc"));
        assert_eq!(md5.finalize(), <[u8; 16]>::from(md5::Md5::digest(b"abc")));
    }
}
