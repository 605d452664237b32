//! Placement: which erasure set holds an object. Pure functions of the topology and the
//! key; no I/O.

pub mod ring;
pub mod topology;
