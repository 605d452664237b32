//! Secret keys at rest: sealed with ChaCha20-Poly1305 under a key derived from the
//! cluster secret (the root password on a lone node without one), bound to their access
//! key, so a copied store file reveals no secret and a sealed secret moved to another key
//! does not open.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const KEY_CONTEXT: &str = "buckets 2026-12-04 identity store: secret keys of access keys";
const NONCE_BYTES: usize = 12;

pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    pub fn new(secret: &[u8]) -> Self {
        let key = blake3::derive_key(KEY_CONTEXT, secret);
        Sealer { cipher: ChaCha20Poly1305::new(Key::from_slice(&key)) }
    }

    pub fn seal(&self, access_key: &str, secret_key: &str) -> String {
        let random = uuid::Uuid::new_v4();
        let nonce = &random.as_bytes()[..NONCE_BYTES];
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(nonce), Payload { msg: secret_key.as_bytes(), aad: access_key.as_bytes() })
            .expect("sealing a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
    }

    /// The secret, or `None` when it was sealed under another key or for another access key.
    pub fn open(&self, access_key: &str, sealed: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(sealed).ok()?;
        if bytes.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: access_key.as_bytes() })
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_access_key() {
        let sealer = Sealer::new(b"cluster secret");
        let sealed = sealer.seal("BKUALICE", "the secret");
        assert!(!sealed.contains("the secret"));
        assert_eq!(sealer.open("BKUALICE", &sealed).as_deref(), Some("the secret"));
        assert_ne!(sealer.seal("BKUALICE", "the secret"), sealed, "a fresh nonce each time");
        assert_eq!(sealer.open("BKUBOB", &sealed), None);
        assert_eq!(Sealer::new(b"another secret").open("BKUALICE", &sealed), None);
        let mut tampered = sealed.clone().into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(sealer.open("BKUALICE", std::str::from_utf8(&tampered).unwrap()), None);
        assert_eq!(sealer.open("BKUALICE", "not base64!"), None);
        assert_eq!(sealer.open("BKUALICE", ""), None);
    }
}
