//! Turning the DRIVE arguments into formatted drives and erasure sets: ellipsis
//! expansion, set sizing, and the format checks that keep a node off a drive of another
//! cluster or a drive plugged in at the wrong position.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::drive::{Drive, LocalDrive};
use super::set::ErasureSet;
use super::{HEAL_QUEUE_CAPACITY, HealRequest, Store};
use crate::erasure::{MAX_SET_DRIVES, MIN_SET_DRIVES};
use crate::format::drive::DriveFormat;
use crate::format::topology::TOPOLOGY_FILE;
use crate::metrics::Metrics;
use crate::placement::ring::SetId;
use crate::placement::topology::TopologyRules;
use crate::placement::topology::{SetState, Topology};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("invalid drive argument {0:?}: {1}")]
    Argument(String, String),
    #[error(
        "{0} drives given: need {MIN_SET_DRIVES} to {MAX_SET_DRIVES} drives per erasure set, and a count that divides into such sets"
    )]
    DriveCount(usize),
    #[error("drive {0} is given twice")]
    Duplicate(String),
    #[error("drive {path} belongs to cluster {found}, but the other drives belong to cluster {expected}")]
    ForeignCluster { path: String, found: Uuid, expected: Uuid },
    #[error(
        "drive {path} is drive {found_drive} of set {found_set}, but was given at position {expected_drive} of set {expected_set}; give the drives in their original order"
    )]
    WrongPosition { path: String, found_set: u32, found_drive: u32, expected_set: u32, expected_drive: u32 },
    #[error("drive {0} has data but no format file; refusing to format over it (empty it or remove it)")]
    Unformatted(String),
    #[error("drive {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("topology: {0}")]
    Topology(String),
}

/// Expands MinIO-style ellipses: `/data/d{1...4}` → `/data/d1` … `/data/d4`. Several
/// ellipses expand as a cross product, leftmost slowest.
pub fn expand_ellipses(argument: &str) -> Result<Vec<String>, BootstrapError> {
    let Some(open) = argument.find('{') else {
        return Ok(vec![argument.to_string()]);
    };
    let bad = |why: &str| BootstrapError::Argument(argument.to_string(), why.to_string());
    let close = argument[open..].find('}').map(|i| i + open).ok_or_else(|| bad("unclosed '{'"))?;
    let inner = &argument[open + 1..close];
    let (from, to) = inner.split_once("...").ok_or_else(|| bad("expected {A...B}"))?;
    let width = if from.starts_with('0') && from.len() > 1 { from.len() } else { 0 };
    let from: u64 = from.parse().map_err(|_| bad("range start is not a number"))?;
    let to: u64 = to.parse().map_err(|_| bad("range end is not a number"))?;
    if from > to || to - from >= 4096 {
        return Err(bad("range is empty or too large"));
    }
    let mut out = Vec::new();
    for value in from..=to {
        let head = format!("{}{:0width$}", &argument[..open], value, width = width);
        for tail in expand_ellipses(&argument[close + 1..])? {
            out.push(format!("{head}{tail}"));
        }
    }
    Ok(out)
}

/// Drives per set for `count` drives: the largest size in 4..=16 that divides the count.
pub fn set_size(count: usize) -> Result<usize, BootstrapError> {
    (MIN_SET_DRIVES..=MAX_SET_DRIVES)
        .rev()
        .find(|size| count.is_multiple_of(*size))
        .ok_or(BootstrapError::DriveCount(count))
}

/// Reads or writes the format of every drive and assembles the store.
pub fn open_store(
    paths: Vec<PathBuf>,
    metrics: Arc<Metrics>,
) -> Result<(Arc<Store>, mpsc::Receiver<HealRequest>), BootstrapError> {
    let count = paths.len();
    let size = set_size(count)?;
    let mut seen = std::collections::HashSet::new();
    for path in &paths {
        if !seen.insert(path.clone()) {
            return Err(BootstrapError::Duplicate(path.display().to_string()));
        }
    }
    let io_error = |path: &PathBuf| {
        let path = path.display().to_string();
        move |source| BootstrapError::Io { path: path.clone(), source }
    };
    let mut formats = Vec::with_capacity(count);
    for path in &paths {
        formats.push(LocalDrive::read_format(path).map_err(io_error(path))?);
    }
    // The cluster id the formatted drives agree on (majority), or a fresh one.
    let mut votes: std::collections::HashMap<Uuid, usize> = Default::default();
    for format in formats.iter().flatten() {
        *votes.entry(format.cluster_id).or_default() += 1;
    }
    let cluster_id = votes.into_iter().max_by_key(|(_, v)| *v).map(|(id, _)| id).unwrap_or_else(Uuid::new_v4);
    for (position, (path, format)) in paths.iter().zip(&formats).enumerate() {
        let Some(format) = format else { continue };
        if format.cluster_id != cluster_id {
            return Err(BootstrapError::ForeignCluster {
                path: path.display().to_string(),
                found: format.cluster_id,
                expected: cluster_id,
            });
        }
        let (expected_set, expected_drive) = ((position / size) as u32, (position % size) as u32);
        if format.set_index != expected_set || format.drive_index != expected_drive || format.set_drives != size as u32
        {
            return Err(BootstrapError::WrongPosition {
                path: path.display().to_string(),
                found_set: format.set_index,
                found_drive: format.drive_index,
                expected_set,
                expected_drive,
            });
        }
    }
    let metrics_clone = metrics.clone();
    let (heal_sender, heal_receiver) = mpsc::channel(HEAL_QUEUE_CAPACITY);
    let locks = Arc::new(super::locks::NamespaceLocks::default());
    let mut chunks: Vec<Vec<Arc<dyn Drive>>> = Vec::new();
    for set_index in 0..count / size {
        let range = set_index * size..(set_index + 1) * size;
        // Drive ids of the set: from any formatted member, else new.
        let drive_ids: Vec<Uuid> = formats[range.clone()]
            .iter()
            .flatten()
            .next()
            .map(|f| f.set_drive_ids.clone())
            .unwrap_or_else(|| (0..size).map(|_| Uuid::new_v4()).collect());
        let mut drives = Vec::with_capacity(size);
        for position in range {
            let path = &paths[position];
            let drive_index = position % size;
            let format = match &formats[position] {
                Some(format) => format.clone(),
                None => {
                    if !LocalDrive::is_blank(path).map_err(io_error(path))? {
                        return Err(BootstrapError::Unformatted(path.display().to_string()));
                    }
                    let format = DriveFormat {
                        cluster_id,
                        drive_id: drive_ids[drive_index],
                        set_index: set_index as u32,
                        drive_index: drive_index as u32,
                        set_drives: size as u32,
                        set_drive_ids: drive_ids.clone(),
                    };
                    std::fs::create_dir_all(path).map_err(io_error(path))?;
                    LocalDrive::write_format(path, &format).map_err(io_error(path))?;
                    format
                }
            };
            let drive = LocalDrive::new(path.clone(), format);
            drive.clean_tmp().map_err(io_error(path))?;
            drives.push(Arc::new(drive) as Arc<dyn Drive>);
        }
        chunks.push(drives);
    }
    metrics.drives_total.set(count as i64);
    metrics.drives_online.set(count as i64);
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let (topology, ids, added) = load_topology(&chunks, cluster_id, &names, size)?;
    let mut sets = build_sets(chunks, &ids, &locks, &heal_sender, &metrics_clone);
    for (id, paths) in added {
        let drives = open_added_local_set(cluster_id, id, &paths)?;
        sets.push(Arc::new(ErasureSet::new(id, drives, locks.clone(), heal_sender.clone(), metrics_clone.clone())));
    }
    Ok((Arc::new(Store::new(topology, sets, metrics)), heal_receiver))
}

/// The erasure sets in service: each chunk of drives with its topology id, skipping the
/// chunks of removed sets.
pub(crate) fn build_sets(
    chunks: Vec<Vec<Arc<dyn Drive>>>,
    ids: &[Option<SetId>],
    locks: &Arc<super::locks::NamespaceLocks>,
    heal_sender: &mpsc::Sender<HealRequest>,
    metrics: &Arc<Metrics>,
) -> Vec<Arc<ErasureSet>> {
    chunks
        .into_iter()
        .zip(ids)
        .filter_map(|(drives, id)| {
            id.map(|id| Arc::new(ErasureSet::new(id, drives, locks.clone(), heal_sender.clone(), metrics.clone())))
        })
        .collect()
}

/// A topology as loaded at start: the topology, the id of each chunk of drives given
/// (`None`: a removed set's), and the sets added at runtime after them (id, drives).
pub(crate) type LoadedTopology = (Topology, Vec<Option<SetId>>, Vec<(SetId, Vec<String>)>);

/// The topology this node's own drives hold (the newest generation among them), or the
/// first topology of the drives given, and the topology id of each chunk of drives given
/// (`None` for a removed set's). The drives given must be the topology's sets, with or
/// without the removed ones. Every local drive is brought up to that generation.
pub(crate) fn load_topology(
    chunks: &[Vec<Arc<dyn Drive>>],
    cluster_id: Uuid,
    names: &[String],
    set_size: usize,
) -> Result<LoadedTopology, BootstrapError> {
    let local: Vec<&Arc<dyn Drive>> = chunks.iter().flatten().filter(|d| d.is_local()).collect();
    let newest = newest_topology(local.iter().map(|d| d.as_ref()), Some(cluster_id))?;
    let topology = newest.unwrap_or_else(|| Topology::initial(cluster_id, names, set_size));
    topology.validate().map_err(|e| BootstrapError::Topology(e.to_string()))?;
    let configured: Vec<&[String]> = names.chunks(set_size).collect();
    let all: Vec<(&[String], SetId, SetState)> =
        topology.sets().map(|(_, s)| (s.drives.as_slice(), s.id, s.state)).collect();
    let serving: Vec<(&[String], SetId, SetState)> = all.iter().filter(|s| s.2 != SetState::Removed).copied().collect();
    // The drives given are the topology's first sets (with or without the removed ones);
    // sets added at runtime come after them and are opened from the topology.
    let starts_with = |sets: &[(&[String], SetId, SetState)]| {
        sets.len() >= configured.len() && sets[..configured.len()].iter().map(|s| s.0).eq(configured.iter().copied())
    };
    let matched: &[(&[String], SetId, SetState)] = if starts_with(&all) {
        &all
    } else if starts_with(&serving) {
        &serving
    } else {
        return Err(BootstrapError::Topology(format!(
            "the drives hold topology generation {} whose sets differ from the drives given; start with the drives of that topology",
            topology.generation
        )));
    };
    let ids: Vec<Option<SetId>> =
        matched[..configured.len()].iter().map(|s| (s.2 != SetState::Removed).then_some(s.1)).collect();
    let added: Vec<(SetId, Vec<String>)> =
        matched[configured.len()..].iter().filter(|s| s.2 != SetState::Removed).map(|s| (s.1, s.0.to_vec())).collect();
    let encoded = topology.encode();
    for drive in local {
        let current = drive.read_system_file(TOPOLOGY_FILE).ok().flatten();
        if current.as_deref() != Some(encoded.as_slice()) {
            drive
                .write_system_file(TOPOLOGY_FILE, &encoded)
                .map_err(|source| BootstrapError::Io { path: drive.name(), source })?;
        }
    }
    Ok((topology, ids, added))
}

pub use buckets_api::DriveUrl;

/// One drive of a static multi-node cluster, from its URL `http://HOST:PORT/PATH`.
pub fn parse_drive_url(url: &str) -> Result<DriveUrl, BootstrapError> {
    DriveUrl::parse(url).map_err(|e| BootstrapError::Argument(e.url, e.reason.to_string()))
}

/// Cluster and drive identities of a static cluster, derived from the cluster secret and
/// the drive list so that every node computes the same ones without talking to the others.
/// The formats of the drives of a set added at runtime: identities derived from the
/// cluster, the set id and the position, so every node computes the same ones.
pub fn added_set_formats(cluster_id: Uuid, set: SetId, drives: usize) -> Vec<DriveFormat> {
    let drive_id = |position: usize| {
        derived_uuid(&[b"buckets-added-drive", cluster_id.as_bytes(), &set.to_le_bytes(), &position.to_le_bytes()])
    };
    let ids: Vec<Uuid> = (0..drives).map(drive_id).collect();
    (0..drives)
        .map(|position| DriveFormat {
            cluster_id,
            drive_id: ids[position],
            set_index: set,
            drive_index: position as u32,
            set_drives: drives as u32,
            set_drive_ids: ids.clone(),
        })
        .collect()
}

/// Opens the drives of a set added at runtime: this node's own drives formatted (when
/// blank) with their derived identity and served, the others reached over peer RPC.
pub trait SetOpener: Send + Sync {
    fn open(&self, cluster_id: Uuid, set: SetId, drives: &[String]) -> Result<Vec<Arc<dyn Drive>>, BootstrapError>;
}

/// The opener of a lone node: every drive is a local path.
pub struct LocalSetOpener;

impl SetOpener for LocalSetOpener {
    fn open(&self, cluster_id: Uuid, set: SetId, drives: &[String]) -> Result<Vec<Arc<dyn Drive>>, BootstrapError> {
        open_added_local_set(cluster_id, set, drives)
    }
}

/// Checks the drive count of a set added at runtime.
pub fn check_added_set_size(drives: &[String]) -> Result<(), BootstrapError> {
    if !(MIN_SET_DRIVES..=MAX_SET_DRIVES).contains(&drives.len()) {
        return Err(BootstrapError::Argument(
            drives.join(" "),
            format!("a set has {MIN_SET_DRIVES} to {MAX_SET_DRIVES} drives, not {}", drives.len()),
        ));
    }
    Ok(())
}

/// Opens one local drive of a set added at runtime, formatting it when blank; a drive
/// formatted otherwise is refused.
pub fn open_added_local_drive(path: &std::path::Path, expected: DriveFormat) -> Result<LocalDrive, BootstrapError> {
    let io_error = |source| BootstrapError::Io { path: path.display().to_string(), source };
    match LocalDrive::read_format(path).map_err(io_error)? {
        Some(found) if found == expected => {}
        Some(found) => {
            return Err(BootstrapError::Argument(
                path.display().to_string(),
                format!("the drive already belongs to set {} of cluster {}", found.set_index, found.cluster_id),
            ));
        }
        None => {
            if !LocalDrive::is_blank(path).map_err(io_error)? {
                return Err(BootstrapError::Unformatted(path.display().to_string()));
            }
            std::fs::create_dir_all(path).map_err(io_error)?;
            LocalDrive::write_format(path, &expected).map_err(io_error)?;
        }
    }
    let drive = LocalDrive::new(path.to_path_buf(), expected);
    drive.clean_tmp().map_err(io_error)?;
    Ok(drive)
}

/// Opens the local drives of a set added at runtime to a lone node.
pub fn open_added_local_set(
    cluster_id: Uuid,
    set: SetId,
    paths: &[String],
) -> Result<Vec<Arc<dyn Drive>>, BootstrapError> {
    check_added_set_size(paths)?;
    let formats = added_set_formats(cluster_id, set, paths.len());
    let mut drives: Vec<Arc<dyn Drive>> = Vec::with_capacity(paths.len());
    for (path, expected) in paths.iter().zip(formats) {
        if path.contains("://") || !path.starts_with('/') {
            return Err(BootstrapError::Argument(path.clone(), "a drive of a lone node is an absolute path".into()));
        }
        drives.push(Arc::new(open_added_local_drive(std::path::Path::new(path), expected)?));
    }
    Ok(drives)
}

/// The newest topology the drives hold. All must be of one cluster: `cluster_id` when
/// given, else the first one found.
pub fn newest_topology<'a>(
    drives: impl Iterator<Item = &'a dyn Drive>,
    cluster_id: Option<Uuid>,
) -> Result<Option<Topology>, BootstrapError> {
    let mut newest: Option<Topology> = None;
    for drive in drives {
        let bytes = drive
            .read_system_file(TOPOLOGY_FILE)
            .map_err(|source| BootstrapError::Io { path: drive.name(), source })?;
        let Some(bytes) = bytes else { continue };
        let topology = Topology::decode(&bytes)
            .map_err(|e| BootstrapError::Topology(format!("{}: unreadable topology: {e}", drive.name())))?;
        let expected = cluster_id.or(newest.as_ref().map(|n| n.cluster_id));
        if expected.is_some_and(|expected| topology.cluster_id != expected) {
            return Err(BootstrapError::Topology(format!(
                "{} holds the topology of cluster {}",
                drive.name(),
                topology.cluster_id
            )));
        }
        if newest.as_ref().is_none_or(|n| topology.generation > n.generation) {
            newest = Some(topology);
        }
    }
    Ok(newest)
}

/// A UUID derived from `parts` (length-prefixed, SHA-256): the same inputs give the same
/// id on every node.
pub(crate) fn derived_uuid(parts: &[&[u8]]) -> Uuid {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    uuid::Builder::from_random_bytes(digest[..16].try_into().expect("16 bytes")).into_uuid()
}

pub fn cluster_formats(secret: &[u8], urls: &[DriveUrl]) -> Result<Vec<DriveFormat>, BootstrapError> {
    let size = set_size(urls.len())?;
    let listing: Vec<u8> = urls.iter().flat_map(|u| format!("{}{}\n", u.authority, u.path).into_bytes()).collect();
    let cluster_id = derived_uuid(&[b"buckets-cluster", secret, &listing]);
    let drive_id = |position: usize| derived_uuid(&[b"buckets-drive", cluster_id.as_bytes(), &position.to_le_bytes()]);
    Ok((0..urls.len())
        .map(|position| {
            let set_index = position / size;
            DriveFormat {
                cluster_id,
                drive_id: drive_id(position),
                set_index: set_index as u32,
                drive_index: (position % size) as u32,
                set_drives: size as u32,
                set_drive_ids: (set_index * size..(set_index + 1) * size).map(drive_id).collect(),
            }
        })
        .collect())
}

/// Orders drive URLs so that consecutive drives sit on different nodes: the first drive of
/// every node (in order of first appearance), then the second of each, and so on. Sets
/// are consecutive runs of this order, so each set spans as many nodes as it can and a
/// lost node costs each set as few drives as possible (4 nodes × 5 drives in two sets of
/// 10: at most 3 drives of a set per node, within parity 4).
pub fn spread_over_nodes(urls: Vec<DriveUrl>) -> Vec<DriveUrl> {
    let mut nodes: Vec<(String, std::collections::VecDeque<DriveUrl>)> = Vec::new();
    for url in urls {
        match nodes.iter_mut().find(|(authority, _)| *authority == url.authority) {
            Some((_, drives)) => drives.push_back(url),
            None => nodes.push((url.authority.clone(), std::collections::VecDeque::from([url]))),
        }
    }
    let mut out = Vec::new();
    while nodes.iter().any(|(_, drives)| !drives.is_empty()) {
        for (_, drives) in &mut nodes {
            if let Some(url) = drives.pop_front() {
                out.push(url);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipses() {
        assert_eq!(expand_ellipses("/d{1...3}").unwrap(), vec!["/d1", "/d2", "/d3"]);
        assert_eq!(expand_ellipses("/n{1...2}/d{1...2}").unwrap(), vec!["/n1/d1", "/n1/d2", "/n2/d1", "/n2/d2"]);
        assert_eq!(expand_ellipses("/d{01...02}").unwrap(), vec!["/d01", "/d02"]);
        assert_eq!(expand_ellipses("/plain").unwrap(), vec!["/plain"]);
        assert!(expand_ellipses("/d{1..3}").is_err());
        assert!(expand_ellipses("/d{3...1}").is_err());
        assert!(expand_ellipses("/d{1...").is_err());
    }

    #[test]
    fn drive_urls() {
        let url = parse_drive_url("http://127.0.0.2:9001/data/n2/d1").unwrap();
        assert_eq!(
            url,
            DriveUrl { scheme: "http".into(), authority: "127.0.0.2:9001".into(), path: "/data/n2/d1".into() }
        );
        assert_eq!(parse_drive_url("https://n1:9001/d").unwrap().scheme, "https");
        for bad in ["ftp://h:1/d", "http://h/d", "http://h:1", "http://h:1/", "http://h:1/a/../b", "/plain"] {
            assert!(parse_drive_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_node_derives_the_same_formats() {
        let urls: Vec<DriveUrl> = (0..16)
            .map(|i| parse_drive_url(&format!("http://127.0.0.{}:9001/d{}", 2 + i / 4, i % 4)).unwrap())
            .collect();
        let a = cluster_formats(b"secret", &urls).unwrap();
        assert_eq!(a, cluster_formats(b"secret", &urls).unwrap());
        assert_ne!(a[0].cluster_id, cluster_formats(b"other", &urls).unwrap()[0].cluster_id);
        assert!(a.iter().all(|f| f.set_drives == 16 && f.set_drive_ids.len() == 16));
        let ids: std::collections::HashSet<_> = a.iter().map(|f| f.drive_id).collect();
        assert_eq!(ids.len(), 16);
    }

    #[test]
    fn sets_span_every_node() {
        // 4 nodes × 5 drives, listed node by node: two sets of 10.
        let urls: Vec<DriveUrl> = (0..20)
            .map(|i| parse_drive_url(&format!("http://127.0.0.{}:9001/d{}", 2 + i / 5, i % 5)).unwrap())
            .collect();
        let spread = spread_over_nodes(urls.clone());
        let mut sorted = spread.clone();
        sorted.sort_by(|a, b| (&a.authority, &a.path).cmp(&(&b.authority, &b.path)));
        assert_eq!(sorted, urls, "the same drives, reordered");
        for set in spread.chunks(10) {
            for node in 2..6 {
                let on_node = set.iter().filter(|u| u.authority == format!("127.0.0.{node}:9001")).count();
                assert!((2..=3).contains(&on_node), "{on_node} drives of a set on node {node}");
            }
        }
        // Drives of one node keep their order.
        let first_node: Vec<&str> =
            spread.iter().filter(|u| u.authority == "127.0.0.2:9001").map(|u| u.path.as_str()).collect();
        assert_eq!(first_node, ["/d0", "/d1", "/d2", "/d3", "/d4"]);
    }

    #[test]
    fn set_sizes() {
        assert_eq!(set_size(4).unwrap(), 4);
        assert_eq!(set_size(16).unwrap(), 16);
        assert_eq!(set_size(32).unwrap(), 16);
        assert_eq!(set_size(24).unwrap(), 12);
        assert_eq!(set_size(20).unwrap(), 10);
        assert!(set_size(3).is_err());
        assert!(set_size(17).is_err());
    }
}
