//! Node-to-node RPC on the admin listener: a node reads and writes the drives of its
//! peers. Every call is authenticated with an HMAC-SHA256 of the cluster secret over the
//! method, path and a timestamp (replays outside a short window are refused).
//!
//! Owns: the wire protocol (`protocol`), the server side that serves this node's local
//! drives (`server`), and `RemoteDrive`, the `Drive` of a peer (`client`). Must never serve
//! a drive that is not this node's own, nor a path that did not pass `storage::path`.

pub mod client;
pub mod lock;
pub mod protocol;
pub mod server;

use hmac::{KeyInit, Mac};

/// Header carrying `<unix seconds>:<hex HMAC>`.
pub const AUTH_HEADER: &str = "x-buckets-auth";
/// How far a caller's clock may be from ours; also bounds how long a captured request
/// can be replayed.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(secret: &[u8], method: &str, path_and_query: &str, timestamp: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(method.as_bytes());
    mac.update(b"\n");
    mac.update(path_and_query.as_bytes());
    mac.update(b"\n");
    mac.update(timestamp.to_string().as_bytes());
    mac
}

/// The value of `AUTH_HEADER` for a request.
pub fn sign(secret: &[u8], method: &str, path_and_query: &str, timestamp: i64) -> String {
    let tag = mac(secret, method, path_and_query, timestamp).finalize().into_bytes();
    format!("{timestamp}:{}", hex::encode(tag))
}

/// Checks `AUTH_HEADER` in constant time.
pub fn verify(secret: &[u8], method: &str, path_and_query: &str, header: Option<&str>, now: i64) -> bool {
    let Some((timestamp, tag)) = header.and_then(|h| h.split_once(':')) else { return false };
    let Ok(timestamp) = timestamp.parse::<i64>() else { return false };
    if (now - timestamp).abs() > MAX_CLOCK_SKEW_SECS {
        return false;
    }
    let Ok(tag) = hex::decode(tag) else { return false };
    mac(secret, method, path_and_query, timestamp).verify_slice(&tag).is_ok()
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_secret_path_and_fresh_time() {
        let header = sign(b"secret", "POST", "/rpc/v1/drive", 1000);
        assert!(verify(b"secret", "POST", "/rpc/v1/drive", Some(&header), 1000));
        assert!(verify(b"secret", "POST", "/rpc/v1/drive", Some(&header), 1000 + MAX_CLOCK_SKEW_SECS));
        assert!(!verify(b"other", "POST", "/rpc/v1/drive", Some(&header), 1000));
        assert!(!verify(b"secret", "GET", "/rpc/v1/drive", Some(&header), 1000));
        assert!(!verify(b"secret", "POST", "/rpc/v1/other", Some(&header), 1000));
        assert!(!verify(b"secret", "POST", "/rpc/v1/drive", Some(&header), 1001 + MAX_CLOCK_SKEW_SECS));
        assert!(!verify(b"secret", "POST", "/rpc/v1/drive", None, 1000));
        assert!(!verify(b"secret", "POST", "/rpc/v1/drive", Some("garbage"), 1000));
        assert!(!verify(b"secret", "POST", "/rpc/v1/drive", Some("1000:zz"), 1000));
    }
}
