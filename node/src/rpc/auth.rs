//! Peer RPC authentication. Every call carries, in `AUTH_HEADER`, a keyed BLAKE3 MAC
//! (the key derived from the cluster secret) over the method, the receiving node's
//! authority, the path and query, a timestamp, a nonce and the whole body; every answer
//! to an authenticated call carries a MAC of that call's nonce, the status, the error
//! kind and the body (`ANSWER_AUTH_HEADER`). So a call captured on the wire cannot be
//! replayed (the nonce), sent to another node (the authority), changed (the body), or
//! answered with something else (the answer MAC).
//!
//! The nonce is the calling process's random session id and a counter per receiving node.
//! A receiver keeps, per session, the highest counter it accepted and the lower counters
//! not seen yet (calls overtaken in flight), each for at most the skew window: a replay
//! is refused without remembering every call of the window, and memory stays bounded
//! (`MAX_SESSIONS`, `MAX_PENDING_PER_SESSION`).
//!
//! Must never accept a call whose MAC does not verify (compared in constant time), whose
//! timestamp is further than `MAX_CLOCK_SKEW_SECS` from ours, or whose nonce it accepted
//! before; must never let unauthenticated input change its state (the replay window
//! moves only after a MAC verified). Does no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Header of a call: `2:<unix seconds>:<session hex>:<counter>:<MAC hex>`.
pub const AUTH_HEADER: &str = "x-buckets-auth";
/// Header of an answer: `<MAC hex>`.
pub const ANSWER_AUTH_HEADER: &str = "x-buckets-answer-auth";
/// How far a caller's clock may be from ours; also how long a receiver remembers the
/// counters it still expects.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// Sender sessions a receiver tracks at once (every peer process is one session; a
/// restart makes a new one). When full, the least recently seen goes and calls of
/// unknown sessions at or before its last timestamp are refused from then on.
const MAX_SESSIONS: usize = 1024;
/// Counters below a session's highest that may still arrive (calls overtaken in flight;
/// a node has a few hundred calls in flight to one peer at most). Beyond it the oldest
/// are dropped: such a late call is refused, the caller sees an error and retries.
const MAX_PENDING_PER_SESSION: usize = 16_384;
/// The header's version field.
const VERSION: &str = "2";
/// The BLAKE3 key-derivation context: a key for this purpose only.
const KEY_CONTEXT: &str = "buckets 2026-12-02 peer RPC call and answer MAC v2";

/// A call's nonce: the caller's session and its counter for the receiving node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce {
    pub session: [u8; 16],
    pub counter: u64,
}

/// Why a call was refused; `reason` is the metric label and the log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `AUTH_HEADER`.
    Unsigned,
    /// A header that does not parse (or an old version's).
    Malformed,
    /// A timestamp outside the skew window.
    Stale,
    /// A MAC that does not verify: another secret, or an altered call.
    Forged,
    /// A nonce accepted before.
    Replayed,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::Malformed => "malformed",
            Refusal::Stale => "stale",
            Refusal::Forged => "forged",
            Refusal::Replayed => "replayed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unsigned => "the call carries no signature",
            Refusal::Malformed => "the call's signature header is malformed",
            Refusal::Stale => "the call's timestamp is outside the clock-skew window",
            Refusal::Forged => "the call's signature does not match (another cluster's secret, or an altered call)",
            Refusal::Replayed => "the call was seen before (a replay)",
        }
    }
}

fn derive_key(secret: &[u8]) -> [u8; 32] {
    blake3::derive_key(KEY_CONTEXT, secret)
}

fn call_mac(
    key: &[u8; 32],
    method: &str,
    authority: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &Nonce,
    body: &[u8],
) -> blake3::Hash {
    let mut mac = blake3::Hasher::new_keyed(key);
    // Newline-separated: none of the fields can hold a newline (HTTP forbids it), and the
    // body comes last, so no two calls share an input.
    for field in ["call", method, authority, path_and_query, &timestamp.to_string(), &hex::encode(nonce.session)] {
        mac.update(field.as_bytes());
        mac.update(b"\n");
    }
    mac.update(nonce.counter.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac.finalize()
}

fn answer_mac(key: &[u8; 32], nonce: &Nonce, status: u16, error_kind: Option<&str>, body: &[u8]) -> blake3::Hash {
    let mut mac = blake3::Hasher::new_keyed(key);
    for field in [
        "answer",
        &hex::encode(nonce.session),
        &nonce.counter.to_string(),
        &status.to_string(),
        error_kind.unwrap_or("-"),
    ] {
        mac.update(field.as_bytes());
        mac.update(b"\n");
    }
    mac.update(body);
    mac.finalize()
}

fn parse_hash(text: &str) -> Option<blake3::Hash> {
    let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
    Some(blake3::Hash::from_bytes(bytes))
}

/// The calling side: signs calls and checks their answers. One per process (its session).
pub struct PeerKey {
    key: [u8; 32],
    session: [u8; 16],
    /// Next counter per receiving node's authority.
    counters: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerKey").field("session", &hex::encode(self.session)).finish_non_exhaustive()
    }
}

impl PeerKey {
    /// A key for `secret` with a new random session.
    pub fn new(secret: &[u8]) -> PeerKey {
        PeerKey { key: derive_key(secret), session: *uuid::Uuid::new_v4().as_bytes(), counters: Mutex::default() }
    }

    /// The `AUTH_HEADER` value of a call to the node at `authority` (`host:port`, as in
    /// its drive URLs), and the call's nonce (to check the answer with).
    pub fn sign(&self, method: &str, authority: &str, path_and_query: &str, body: &[u8], now: i64) -> (String, Nonce) {
        let counter = {
            let mut counters = self.counters.lock().expect("counters");
            let next = counters.entry(authority.to_string()).or_insert(1);
            let counter = *next;
            *next += 1;
            counter
        };
        let nonce = Nonce { session: self.session, counter };
        let mac = call_mac(&self.key, method, authority, path_and_query, now, &nonce, body);
        (format!("{VERSION}:{now}:{}:{counter}:{}", hex::encode(self.session), mac.to_hex()), nonce)
    }

    /// Whether an answer to the call with `nonce` is the receiver's, unaltered.
    pub fn answer_is_authentic(
        &self,
        nonce: &Nonce,
        status: u16,
        error_kind: Option<&str>,
        body: &[u8],
        header: Option<&str>,
    ) -> bool {
        let Some(claimed) = header.and_then(parse_hash) else { return false };
        // blake3::Hash compares in constant time.
        answer_mac(&self.key, nonce, status, error_kind, body) == claimed
    }
}

/// What a call's header claims, parsed before its body is read.
#[derive(Debug, Clone)]
pub struct Claimed {
    timestamp: i64,
    nonce: Nonce,
    mac: blake3::Hash,
}

impl Claimed {
    pub fn nonce(&self) -> Nonce {
        self.nonce
    }
}

/// One sender session's replay window.
#[derive(Debug, Default)]
struct Window {
    highest: u64,
    /// Counters below `highest` not seen yet → when they became pending (receiver time).
    pending: BTreeMap<u64, i64>,
    /// The newest call timestamp accepted from the session.
    last_timestamp: i64,
}

impl Window {
    /// Accepts `counter` once.
    fn accept(&mut self, counter: u64, timestamp: i64, now: i64) -> bool {
        let accepted = if counter > self.highest {
            let skipped_from = (self.highest + 1).max(counter.saturating_sub(MAX_PENDING_PER_SESSION as u64));
            for missing in skipped_from..counter {
                self.pending.insert(missing, now);
            }
            self.highest = counter;
            true
        } else {
            self.pending.remove(&counter).is_some()
        };
        if accepted {
            self.last_timestamp = self.last_timestamp.max(timestamp);
        }
        // Counters pending longer than the skew window belong to calls that can no longer
        // arrive in time; beyond the bound the oldest go.
        while let Some((&oldest, &since)) = self.pending.first_key_value() {
            if since >= now - MAX_CLOCK_SKEW_SECS && self.pending.len() <= MAX_PENDING_PER_SESSION {
                break;
            }
            self.pending.remove(&oldest);
        }
        accepted
    }
}

#[derive(Debug, Default)]
struct ReplayGuard {
    sessions: HashMap<[u8; 16], Window>,
    /// Calls of sessions not tracked, with a timestamp at or before this, are refused: a
    /// session forgotten for room may have sent them.
    forgotten_until: i64,
}

impl ReplayGuard {
    fn accept(&mut self, nonce: &Nonce, timestamp: i64, now: i64) -> bool {
        if !self.sessions.contains_key(&nonce.session) {
            if timestamp <= self.forgotten_until {
                return false;
            }
            if self.sessions.len() >= MAX_SESSIONS {
                // Sessions quiet for longer than the skew window cannot send an acceptable
                // call any more; else the least recently seen goes, and with it every
                // call it may have sent.
                self.sessions.retain(|_, w| w.last_timestamp >= now - 2 * MAX_CLOCK_SKEW_SECS);
                if self.sessions.len() >= MAX_SESSIONS
                    && let Some((&oldest, window)) = self.sessions.iter().min_by_key(|(_, w)| w.last_timestamp)
                {
                    self.forgotten_until = self.forgotten_until.max(window.last_timestamp);
                    self.sessions.remove(&oldest);
                    if timestamp <= self.forgotten_until {
                        return false;
                    }
                }
            }
        }
        self.sessions.entry(nonce.session).or_default().accept(nonce.counter, timestamp, now)
    }
}

/// The receiving side: verifies calls to this node and signs their answers.
pub struct CallVerifier {
    key: [u8; 32],
    /// This node's authority as peers name it (in drive URLs).
    own_authority: String,
    replay: Mutex<ReplayGuard>,
}

impl CallVerifier {
    pub fn new(secret: &[u8], own_authority: &str) -> CallVerifier {
        CallVerifier { key: derive_key(secret), own_authority: own_authority.to_string(), replay: Mutex::default() }
    }

    /// Parses the header and checks its timestamp (before the body is read).
    pub fn claimed(&self, header: Option<&str>, now: i64) -> Result<Claimed, Refusal> {
        let header = header.ok_or(Refusal::Unsigned)?;
        let fields: Vec<&str> = header.split(':').collect();
        let [VERSION, timestamp, session, counter, mac] = fields[..] else { return Err(Refusal::Malformed) };
        let timestamp: i64 = timestamp.parse().map_err(|_| Refusal::Malformed)?;
        let session: [u8; 16] = hex::decode(session).ok().and_then(|s| s.try_into().ok()).ok_or(Refusal::Malformed)?;
        let counter: u64 = counter.parse().map_err(|_| Refusal::Malformed)?;
        let mac = parse_hash(mac).ok_or(Refusal::Malformed)?;
        if now.abs_diff(timestamp) > MAX_CLOCK_SKEW_SECS as u64 {
            return Err(Refusal::Stale);
        }
        Ok(Claimed { timestamp, nonce: Nonce { session, counter }, mac })
    }

    /// Verifies the MAC over the whole call, then accepts its nonce once.
    pub fn verify(
        &self,
        claimed: &Claimed,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), Refusal> {
        let expected =
            call_mac(&self.key, method, &self.own_authority, path_and_query, claimed.timestamp, &claimed.nonce, body);
        // blake3::Hash compares in constant time.
        if expected != claimed.mac {
            return Err(Refusal::Forged);
        }
        if !self.replay.lock().expect("replay guard").accept(&claimed.nonce, claimed.timestamp, now) {
            return Err(Refusal::Replayed);
        }
        Ok(())
    }

    /// The `ANSWER_AUTH_HEADER` value of an answer to the call with `nonce`.
    pub fn sign_answer(&self, nonce: &Nonce, status: u16, error_kind: Option<&str>, body: &[u8]) -> String {
        answer_mac(&self.key, nonce, status, error_kind, body).to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn call(key: &PeerKey, body: &[u8]) -> (String, Nonce) {
        key.sign("POST", "node-1:9001", "/rpc/v1/drive?drive=2f64", body, NOW)
    }

    fn check(verifier: &CallVerifier, header: &str, path: &str, body: &[u8], now: i64) -> Result<(), Refusal> {
        let claimed = verifier.claimed(Some(header), now)?;
        verifier.verify(&claimed, "POST", path, body, now)
    }

    #[test]
    fn a_call_verifies_once_and_only_as_it_was_signed() {
        let key = PeerKey::new(b"secret");
        let verifier = CallVerifier::new(b"secret", "node-1:9001");
        let path = "/rpc/v1/drive?drive=2f64";
        let (header, _) = call(&key, b"shard bytes");
        assert_eq!(check(&verifier, &header, path, b"shard bytes", NOW), Ok(()));
        // The same call again: a replay.
        assert_eq!(check(&verifier, &header, path, b"shard bytes", NOW), Err(Refusal::Replayed));
        // A new call with another body, the header of an earlier one: forged.
        let (header, _) = call(&key, b"shard bytes");
        assert_eq!(check(&verifier, &header, path, b"shard bytez", NOW), Err(Refusal::Forged));
        // ...and the forged attempt did not use up the nonce.
        assert_eq!(check(&verifier, &header, path, b"shard bytes", NOW), Ok(()));
        // Another path, another method, another node, another cluster.
        let (header, _) = call(&key, b"x");
        assert_eq!(check(&verifier, &header, "/rpc/v1/drive?drive=2f65", b"x", NOW), Err(Refusal::Forged));
        let claimed = verifier.claimed(Some(&header), NOW).unwrap();
        assert_eq!(verifier.verify(&claimed, "PUT", path, b"x", NOW), Err(Refusal::Forged));
        let other_node = CallVerifier::new(b"secret", "node-2:9001");
        assert_eq!(check(&other_node, &header, path, b"x", NOW), Err(Refusal::Forged));
        let other_cluster = PeerKey::new(b"another cluster");
        let (header, _) = call(&other_cluster, b"x");
        assert_eq!(check(&verifier, &header, path, b"x", NOW), Err(Refusal::Forged));
    }

    #[test]
    fn headers_are_checked_before_the_body() {
        let key = PeerKey::new(b"secret");
        let verifier = CallVerifier::new(b"secret", "node-1:9001");
        let (header, _) = call(&key, b"");
        assert_eq!(verifier.claimed(None, NOW).err(), Some(Refusal::Unsigned));
        for bad in ["", "garbage", "1:1800000000:00:1:00", &header.replacen("2:", "3:", 1), &header[..header.len() - 2]]
        {
            assert_eq!(verifier.claimed(Some(bad), NOW).err(), Some(Refusal::Malformed), "{bad}");
        }
        assert!(verifier.claimed(Some(&header), NOW + MAX_CLOCK_SKEW_SECS).is_ok());
        assert_eq!(verifier.claimed(Some(&header), NOW + MAX_CLOCK_SKEW_SECS + 1).err(), Some(Refusal::Stale));
        assert_eq!(verifier.claimed(Some(&header), NOW - MAX_CLOCK_SKEW_SECS - 1).err(), Some(Refusal::Stale));
    }

    #[test]
    fn calls_overtaken_in_flight_are_accepted_once_each() {
        let key = PeerKey::new(b"secret");
        let verifier = CallVerifier::new(b"secret", "node-1:9001");
        let path = "/rpc/v1/drive?drive=2f64";
        let calls: Vec<String> = (0..100).map(|n| call(&key, &[n as u8]).0).collect();
        // Arrival order: every odd call first, then the even ones backwards.
        let order: Vec<usize> = (0..100).filter(|n| n % 2 == 1).chain((0..100).filter(|n| n % 2 == 0).rev()).collect();
        for &n in &order {
            assert_eq!(check(&verifier, &calls[n], path, &[n as u8], NOW), Ok(()), "call {n}");
        }
        for &n in &order {
            assert_eq!(check(&verifier, &calls[n], path, &[n as u8], NOW), Err(Refusal::Replayed), "call {n}");
        }
        // Counters are per receiving node: calls to another node do not leave gaps here.
        for _ in 0..10 {
            key.sign("POST", "node-2:9001", path, b"", NOW);
        }
        let (header, nonce) = call(&key, b"next");
        assert_eq!(nonce.counter, 101);
        assert_eq!(check(&verifier, &header, path, b"next", NOW), Ok(()));
    }

    #[test]
    fn the_replay_window_stays_bounded_and_forgets_nothing_it_could_still_accept() {
        let mut window = Window::default();
        assert!(window.accept(1_000_000, NOW, NOW));
        assert_eq!(window.pending.len(), MAX_PENDING_PER_SESSION);
        assert!(window.accept(1_000_000 - 1, NOW, NOW));
        assert!(!window.accept(1, NOW, NOW), "too late: dropped, never accepted");
        // Pending counters expire with the skew window.
        assert!(window.accept(1_000_001, NOW, NOW + MAX_CLOCK_SKEW_SECS + 1));
        assert!(window.pending.is_empty());
        assert!(!window.accept(1_000_000 - 2, NOW, NOW + MAX_CLOCK_SKEW_SECS + 1));

        // Sessions: at the bound the least recently seen goes, and calls of sessions not
        // tracked from before its last call are refused.
        let mut guard = ReplayGuard::default();
        for n in 0..MAX_SESSIONS {
            let nonce = Nonce { session: (n as u128).to_le_bytes(), counter: 1 };
            assert!(guard.accept(&nonce, NOW + n as i64 % 100, NOW));
        }
        let newcomer = Nonce { session: u128::MAX.to_le_bytes(), counter: 1 };
        assert!(guard.accept(&newcomer, NOW + 150, NOW));
        assert_eq!(guard.sessions.len(), MAX_SESSIONS);
        assert_eq!(guard.forgotten_until, NOW);
        let forgotten = Nonce { session: 0u128.to_le_bytes(), counter: 1 };
        assert!(!guard.accept(&forgotten, NOW, NOW), "a forgotten session's call is refused");
        let late_joiner = Nonce { session: (u128::MAX - 1).to_le_bytes(), counter: 1 };
        assert!(guard.accept(&late_joiner, NOW + 1, NOW));
    }

    #[test]
    fn answers_verify_only_for_their_call_unaltered() {
        let key = PeerKey::new(b"secret");
        let verifier = CallVerifier::new(b"secret", "node-1:9001");
        let (_, nonce) = call(&key, b"");
        let (_, other) = call(&key, b"");
        let header = verifier.sign_answer(&nonce, 200, None, b"answer");
        assert!(key.answer_is_authentic(&nonce, 200, None, b"answer", Some(&header)));
        assert!(!key.answer_is_authentic(&other, 200, None, b"answer", Some(&header)));
        assert!(!key.answer_is_authentic(&nonce, 204, None, b"answer", Some(&header)));
        assert!(!key.answer_is_authentic(&nonce, 200, Some("other"), b"answer", Some(&header)));
        assert!(!key.answer_is_authentic(&nonce, 200, None, b"answeR", Some(&header)));
        assert!(!key.answer_is_authentic(&nonce, 200, None, b"answer", None));
        let foreign = CallVerifier::new(b"another", "node-1:9001").sign_answer(&nonce, 200, None, b"answer");
        assert!(!key.answer_is_authentic(&nonce, 200, None, b"answer", Some(&foreign)));
    }
}
