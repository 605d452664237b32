//! `topology.bkt`, on every drive: the topology document (`buckets_api::topology`, what
//! the admin API shows and takes) as pretty JSON in a frame.
//!
//! Owns: the file's bytes. Whether a decoded topology is a valid one is placement's rule
//! (`TopologyRules::decode` checks it); this module only refuses bytes that are not a
//! topology file.

use buckets_api::Topology;

use super::{FormatError, decode_frame, encode_frame};

pub const TOPOLOGY_MAGIC: &[u8; 8] = b"BKTTOPOL";
pub const TOPOLOGY_VERSION: u16 = 1;
/// File name of the topology in every drive's system directory.
pub const TOPOLOGY_FILE: &str = "topology.bkt";

pub fn encode(topology: &Topology) -> Vec<u8> {
    let body = serde_json::to_vec_pretty(topology).expect("topology serialises");
    encode_frame(TOPOLOGY_MAGIC, TOPOLOGY_VERSION, &body)
}

/// The document in a topology file, unchecked.
pub fn decode(bytes: &[u8]) -> Result<Topology, FormatError> {
    let (_, body) = decode_frame(TOPOLOGY_MAGIC, TOPOLOGY_VERSION, bytes)?;
    serde_json::from_slice(body).map_err(|e| FormatError::Body(e.to_string()))
}
