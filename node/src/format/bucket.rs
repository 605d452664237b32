//! A bucket's metadata file (`%bucket` on every drive): a JSON body in a frame.

use serde::{Deserialize, Serialize};

use super::{decode_json, encode_json};

pub const BUCKET_META_MAGIC: &[u8; 8] = b"BKTBUCKT";
pub const BUCKET_META_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketMeta {
    pub created_ns: i64,
}

impl BucketMeta {
    pub fn encode(&self) -> Vec<u8> {
        encode_json(BUCKET_META_MAGIC, BUCKET_META_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        decode_json(BUCKET_META_MAGIC, BUCKET_META_VERSION, bytes)
    }
}
