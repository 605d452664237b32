//! Admin API authentication with the root credentials, without sending the password:
//!
//! `Authorization: BUCKETS-HMAC-SHA256 Credential=<user>, Timestamp=<unix seconds>,
//! Signature=<hex>` where the signature is HMAC-SHA256 keyed by the root password over
//! `METHOD \n PATH?QUERY \n TIMESTAMP \n hex(SHA-256(body))`. Requests older or newer than
//! five minutes are refused.

use hmac::{KeyInit, Mac};
use sha2::Digest;

pub const SCHEME: &str = "BUCKETS-HMAC-SHA256";
const MAX_SKEW_SECS: i64 = 300;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(password: &[u8], method: &str, path_and_query: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(password).expect("HMAC takes any key length");
    let body_hash = hex::encode(sha2::Sha256::digest(body));
    mac.update(format!("{method}\n{path_and_query}\n{timestamp}\n{body_hash}").as_bytes());
    mac
}

/// The `Authorization` header for an admin request.
pub fn authorization(user: &str, password: &[u8], method: &str, path_and_query: &str, body: &[u8], now: i64) -> String {
    let signature = hex::encode(mac(password, method, path_and_query, now, body).finalize().into_bytes());
    format!("{SCHEME} Credential={user}, Timestamp={now}, Signature={signature}")
}

/// Seconds since the Unix epoch: the timestamp a request is signed with.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Checks an admin request; the error says why it was refused.
pub fn verify(
    user: &str,
    password: &[u8],
    method: &str,
    path_and_query: &str,
    body: &[u8],
    header: Option<&str>,
    now: i64,
) -> Result<(), &'static str> {
    let header = header.ok_or("the admin API needs an Authorization header signed with the root credentials")?;
    let fields = header.strip_prefix(SCHEME).ok_or("unsupported authorization scheme")?;
    let mut credential = None;
    let mut timestamp = None;
    let mut signature = None;
    for field in fields.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", value)) => credential = Some(value),
            Some(("Timestamp", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("Signature", value)) => signature = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(credential), Some(timestamp), Some(signature)) = (credential, timestamp, signature) else {
        return Err("malformed Authorization header");
    };
    if credential != user {
        return Err("unknown credential");
    }
    if (now - timestamp).abs() > MAX_SKEW_SECS {
        return Err("request time too far from the server's clock");
    }
    mac(password, method, path_and_query, timestamp, body)
        .verify_slice(&signature)
        .map_err(|_| "signature does not match")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_root_credentials_sign() {
        let header = authorization("root", b"password", "GET", "/admin/v1/topology", b"", 1000);
        assert_eq!(verify("root", b"password", "GET", "/admin/v1/topology", b"", Some(&header), 1000), Ok(()));
        assert!(verify("root", b"other", "GET", "/admin/v1/topology", b"", Some(&header), 1000).is_err());
        assert!(verify("admin", b"password", "GET", "/admin/v1/topology", b"", Some(&header), 1000).is_err());
        assert!(verify("root", b"password", "POST", "/admin/v1/topology", b"", Some(&header), 1000).is_err());
        assert!(verify("root", b"password", "GET", "/admin/v1/topology", b"x", Some(&header), 1000).is_err());
        assert!(verify("root", b"password", "GET", "/admin/v1/topology", b"", Some(&header), 1400).is_err());
        assert!(verify("root", b"password", "GET", "/admin/v1/topology", b"", None, 1000).is_err());
        assert!(
            verify("root", b"password", "GET", "/admin/v1/topology", b"", Some("Basic cm9vdDpwYXNz"), 1000).is_err()
        );
    }
}
