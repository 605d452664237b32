//! Helpers for the engine's unit tests: a store of two sets on temporary directories.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use super::{PutOptions, Store, bootstrap};
use crate::error::StoreResult;
use crate::metrics::Metrics;
use crate::placement::topology::TopologyRules;

/// 20 drives under `dir`: two sets of 10.
pub fn open_two_sets(dir: &std::path::Path) -> Arc<Store> {
    let paths: Vec<std::path::PathBuf> = (0..20).map(|i| dir.join(format!("d{i}"))).collect();
    for path in &paths {
        std::fs::create_dir_all(path).unwrap();
    }
    let (store, _heal) = bootstrap::open_store(paths, Arc::new(Metrics::new())).unwrap();
    assert_eq!(store.sets().len(), 2);
    store
}

pub async fn read(store: &Store, bucket: &str, key: &str) -> StoreResult<Vec<u8>> {
    let read = store.get_object(bucket, key, Box::new(|info| Ok((0, info.size)))).await?;
    let mut body = read.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    Ok(bytes)
}

pub fn body(bytes: Vec<u8>) -> super::BodyStream {
    Box::pin(futures::stream::once(async move { Ok(Bytes::from(bytes)) }))
}

pub async fn put(store: &Store, bucket: &str, key: &str, bytes: Vec<u8>) {
    let length = bytes.len() as u64;
    store
        .put_object(bucket, key, body(bytes), PutOptions { content_length: Some(length), ..PutOptions::default() })
        .await
        .unwrap();
}

/// Installs the next generation with set 1 draining (out of the ring).
pub async fn drain_set_one(store: &Store) {
    let next = store.topology().with_set_draining(1).unwrap();
    store.install_topology(next).await.unwrap();
}

/// Deterministic test bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
