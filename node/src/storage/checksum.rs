//! Full-object checksums S3 clients send or ask for (x-amz-checksum-*), computed while
//! the body streams through. Pure computation; values are base64 of the big-endian digest
//! as on the wire.

use base64::Engine;
use sha2::Digest as _;

use crate::format::object::ChecksumAlgorithm;

pub enum Hasher {
    Crc(ChecksumAlgorithm, crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        use crc_fast::CrcAlgorithm;
        match algorithm {
            ChecksumAlgorithm::Crc32 => Hasher::Crc(algorithm, crc_fast::Digest::new(CrcAlgorithm::Crc32IsoHdlc)),
            ChecksumAlgorithm::Crc32c => Hasher::Crc(algorithm, crc_fast::Digest::new(CrcAlgorithm::Crc32Iscsi)),
            ChecksumAlgorithm::Crc64Nvme => Hasher::Crc(algorithm, crc_fast::Digest::new(CrcAlgorithm::Crc64Nvme)),
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, digest) => digest.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self {
            Hasher::Crc(algorithm, _) => *algorithm,
            Hasher::Sha1(_) => ChecksumAlgorithm::Sha1,
            Hasher::Sha256(_) => ChecksumAlgorithm::Sha256,
        }
    }

    /// The base64 value as S3 puts it in `x-amz-checksum-*`.
    pub fn finish(self) -> (ChecksumAlgorithm, String) {
        let algorithm = self.algorithm();
        let bytes: Vec<u8> = match self {
            Hasher::Crc(ChecksumAlgorithm::Crc64Nvme, digest) => digest.finalize().to_be_bytes().to_vec(),
            Hasher::Crc(_, digest) => (digest.finalize() as u32).to_be_bytes().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        };
        (algorithm, base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

pub fn algorithm_name(algorithm: ChecksumAlgorithm) -> &'static str {
    match algorithm {
        ChecksumAlgorithm::Crc32 => "CRC32",
        ChecksumAlgorithm::Crc32c => "CRC32C",
        ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
        ChecksumAlgorithm::Sha1 => "SHA1",
        ChecksumAlgorithm::Sha256 => "SHA256",
    }
}

/// The CRC of a concatenation from the CRCs (base64, as in `x-amz-checksum-*`) and lengths
/// of its pieces, in order. `None` for a non-CRC algorithm or a value that does not decode.
pub fn combine_crcs(algorithm: ChecksumAlgorithm, pieces: &[(&str, u64)]) -> Option<String> {
    use crc_fast::CrcAlgorithm;
    let crc = match algorithm {
        ChecksumAlgorithm::Crc32 => CrcAlgorithm::Crc32IsoHdlc,
        ChecksumAlgorithm::Crc32c => CrcAlgorithm::Crc32Iscsi,
        ChecksumAlgorithm::Crc64Nvme => CrcAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => return None,
    };
    if pieces.is_empty() {
        return Some(Hasher::new(algorithm).finish().1);
    }
    let width = if algorithm == ChecksumAlgorithm::Crc64Nvme { 8 } else { 4 };
    let mut combined: Option<u64> = None;
    for (value, length) in pieces {
        let bytes = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
        if bytes.len() != width {
            return None;
        }
        let piece = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        combined = Some(match combined {
            None => piece,
            Some(so_far) => crc_fast::checksum_combine(crc, so_far, piece, *length),
        });
    }
    let value = combined?.to_be_bytes();
    Some(base64::engine::general_purpose::STANDARD.encode(&value[8 - width..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Values as the AWS SDKs compute them for the body "hello".
        let table = [
            (ChecksumAlgorithm::Crc32, "NhCmhg=="),
            (ChecksumAlgorithm::Crc32c, "mnG7TA=="),
            (ChecksumAlgorithm::Sha1, "qvTGHdzF6KLavt4PO0gs2a6pQ00="),
            (ChecksumAlgorithm::Sha256, "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="),
        ];
        for (algorithm, expected) in table {
            let mut hasher = Hasher::new(algorithm);
            hasher.update(b"hel");
            hasher.update(b"lo");
            assert_eq!(hasher.finish(), (algorithm, expected.to_string()));
        }
    }

    #[test]
    fn crcs_of_pieces_combine_into_the_crc_of_the_whole() {
        let whole = |algorithm, data: &[u8]| {
            let mut hasher = Hasher::new(algorithm);
            hasher.update(data);
            hasher.finish().1
        };
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for algorithm in [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64Nvme] {
            let (a, rest) = data.split_at(70_000);
            let (b, c) = rest.split_at(1);
            let pieces = [whole(algorithm, a), whole(algorithm, b), whole(algorithm, c)];
            let lengths = [a.len(), b.len(), c.len()];
            let pieces: Vec<(&str, u64)> = pieces.iter().map(String::as_str).zip(lengths.map(|l| l as u64)).collect();
            assert_eq!(combine_crcs(algorithm, &pieces), Some(whole(algorithm, &data)), "{algorithm:?}");
            assert_eq!(combine_crcs(algorithm, &[]), Some(whole(algorithm, b"")));
        }
        assert_eq!(combine_crcs(ChecksumAlgorithm::Sha256, &[("AAAA", 3)]), None);
        assert_eq!(combine_crcs(ChecksumAlgorithm::Crc32, &[("not base64!", 3)]), None);
    }
}
