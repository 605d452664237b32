//! Full-object checksums S3 clients send or ask for (x-amz-checksum-*), computed while
//! the body streams through. Pure computation; values are base64 of the big-endian digest
//! as on the wire.

use base64::Engine;
use md5::Digest as _;

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
}
