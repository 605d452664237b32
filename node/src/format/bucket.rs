//! A bucket's metadata file (`%bucket` on every drive): a JSON body in a frame.

use serde::{Deserialize, Serialize};

use super::JsonFile;

pub const BUCKET_META_MAGIC: &[u8; 8] = b"BKTBUCKT";
pub const BUCKET_META_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketMeta {
    pub created_ns: i64,
}

impl JsonFile for BucketMeta {
    const MAGIC: &'static [u8; 8] = BUCKET_META_MAGIC;
    const VERSION: u16 = BUCKET_META_VERSION;
}
