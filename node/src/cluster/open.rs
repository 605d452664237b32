//! Opening the store of one node of a static cluster (drive URLs given on the command
//! line, the same on every node): this node's drives local, formatted when blank and
//! checked otherwise; the others reached through peer RPC. Must never format a drive that
//! holds data or belongs to another cluster.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::rpc::client::{PeerTransport, RemoteDrive};
use crate::storage::bootstrap::{
    BootstrapError, DriveUrl, SetOpener, build_sets, cluster_formats, load_topology, spread_over_nodes,
};
use crate::storage::drive::{Drive, LocalDrive};
use crate::storage::locks::NamespaceLocks;
use crate::storage::set::ErasureSet;
use crate::storage::{HEAL_QUEUE_CAPACITY, HealRequest, Store};

/// Assembles the store of one node of a static cluster: its own drives (those whose
/// authority is `own_authority`) are local, formatted if blank and checked otherwise; the
/// others are reached over peer RPC. Returns the local drives by path for the RPC server.
#[allow(clippy::type_complexity)]
pub fn open_cluster_store(
    urls: Vec<DriveUrl>,
    own_authority: &str,
    secret: &[u8],
    transport: PeerTransport,
    metrics: Arc<Metrics>,
    opener: &dyn SetOpener,
) -> Result<(Arc<Store>, mpsc::Receiver<HealRequest>, Vec<(String, Arc<LocalDrive>)>), BootstrapError> {
    let mut seen = std::collections::HashSet::new();
    for url in &urls {
        if !seen.insert(url.clone()) {
            return Err(BootstrapError::Duplicate(format!("http://{}{}", url.authority, url.path)));
        }
    }
    if !urls.iter().any(|u| u.authority == own_authority) {
        return Err(BootstrapError::Argument(
            own_authority.to_string(),
            "no drive URL names this node's --admin-address".into(),
        ));
    }
    let urls = spread_over_nodes(urls);
    let formats = cluster_formats(secret, &urls)?;
    let size = formats[0].set_drives as usize;
    let (heal_sender, heal_receiver) = mpsc::channel(HEAL_QUEUE_CAPACITY);
    let locks = Arc::new(NamespaceLocks::default());
    let mut local = Vec::new();
    let mut drives: Vec<Arc<dyn Drive>> = Vec::with_capacity(urls.len());
    for (url, expected) in urls.iter().zip(&formats) {
        if url.authority != own_authority {
            let remote = RemoteDrive::new(
                format!("{}://{}", url.scheme, url.authority),
                url.path.clone(),
                expected.clone(),
                transport.clone(),
            );
            drives.push(Arc::new(remote));
            continue;
        }
        let path = PathBuf::from(&url.path);
        let io_error = |source| BootstrapError::Io { path: url.path.clone(), source };
        match LocalDrive::read_format(&path).map_err(io_error)? {
            Some(found) if found.cluster_id != expected.cluster_id => {
                return Err(BootstrapError::ForeignCluster {
                    path: url.path.clone(),
                    found: found.cluster_id,
                    expected: expected.cluster_id,
                });
            }
            Some(found) if found != *expected => {
                return Err(BootstrapError::WrongPosition {
                    path: url.path.clone(),
                    found_set: found.set_index,
                    found_drive: found.drive_index,
                    expected_set: expected.set_index,
                    expected_drive: expected.drive_index,
                });
            }
            Some(_) => {}
            None => {
                if !LocalDrive::is_blank(&path).map_err(io_error)? {
                    return Err(BootstrapError::Unformatted(url.path.clone()));
                }
                std::fs::create_dir_all(&path).map_err(io_error)?;
                LocalDrive::write_format(&path, expected).map_err(io_error)?;
            }
        }
        let drive = Arc::new(LocalDrive::new(path, expected.clone()));
        drive.clean_tmp().map_err(io_error)?;
        local.push((url.path.clone(), drive.clone()));
        drives.push(drive);
    }
    let chunks: Vec<Vec<Arc<dyn Drive>>> = drives.chunks(size).map(<[_]>::to_vec).collect();
    metrics.drives_total.set(urls.len() as i64);
    let names: Vec<String> = urls.iter().map(|u| format!("{}://{}{}", u.scheme, u.authority, u.path)).collect();
    let (topology, ids, added) = load_topology(&chunks, formats[0].cluster_id, &names, size)?;
    let mut sets = build_sets(chunks, &ids, &locks, &heal_sender, &metrics);
    for (id, drives) in added {
        let drives = opener.open(formats[0].cluster_id, id, &drives)?;
        sets.push(Arc::new(ErasureSet::new(id, drives, locks.clone(), heal_sender.clone(), metrics.clone())));
    }
    Ok((Arc::new(Store::new(topology, sets, metrics)), heal_receiver, local))
}
