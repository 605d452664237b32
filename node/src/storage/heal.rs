//! Background repair: heals objects that reads found damaged, scans every object
//! periodically, and re-formats a drive that comes back empty (then scans at once).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::drive::Drive;
use super::{HealRequest, Store, blocking};
use crate::format::JsonFile;

/// How often a heal that found drives offline is tried again, and how long apart (times
/// the attempt number): about five minutes in all.
const HEAL_RETRIES: u32 = 10;
const HEAL_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Longest wait between probes of a peer drive that does not answer.
const MAX_PEER_PROBE_DELAY: Duration = Duration::from_secs(30);
/// Keys fetched per listing page of a heal scan.
const SCAN_PAGE_KEYS: usize = 1000;

pub struct HealConfig {
    /// Time between full scans of every object.
    pub scan_interval: Duration,
    /// Every this many scans, also read and verify every shard (bitrot scan).
    pub deep_scan_every: u32,
    /// Time between checks that every drive still carries its format file.
    pub drive_check_interval: Duration,
}

pub async fn run_healer(store: Arc<Store>, mut requests: mpsc::Receiver<HealRequest>, config: HealConfig) {
    let mut scan_timer = tokio::time::interval(config.scan_interval);
    scan_timer.tick().await;
    let mut scans: u32 = 0;
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { return };
                // A set removed since the request was queued has nothing left to heal.
                let Some(set) = store.set_by_id(request.set) else { continue };
                match set.heal_object(&request.bucket, &request.key, request.deep).await {
                    Ok(true) => tracing::info!(bucket = %request.bucket, key = %request.key, "healed object"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(bucket = %request.bucket, key = %request.key, error = %e, "heal failed"),
                }
                // Drives that were offline could not get their copy: try again later, so a
                // write that landed on write quorum regains full redundancy soon after the
                // drives return, not at the next scan.
                let incomplete = !set.is_complete(&request.bucket, &request.key).await;
                if incomplete && request.attempt < HEAL_RETRIES {
                    let delay = HEAL_RETRY_DELAY * (request.attempt + 1);
                    let set = set.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        set.requeue_heal(request);
                    });
                }
            }
            _ = scan_timer.tick() => {
                scans = scans.wrapping_add(1);
                let deep = config.deep_scan_every > 0 && scans.is_multiple_of(config.deep_scan_every);
                scan(&store, deep).await;
            }
            _ = store.scan_now.notified() => {
                scan(&store, false).await;
            }
        }
    }
}

/// Heals every bucket and object once.
pub async fn scan(store: &Arc<Store>, deep: bool) {
    store.metrics.heal_scans.inc();
    let buckets = heal_buckets(store).await;
    for set in store.sets().iter() {
        for bucket in &buckets {
            let mut marker = String::new();
            loop {
                let keys = match set.list_all_keys(bucket, &marker, SCAN_PAGE_KEYS).await {
                    Ok(keys) => keys,
                    Err(e) => {
                        tracing::warn!(bucket, error = %e, "heal scan listing failed");
                        break;
                    }
                };
                for key in &keys {
                    if let Err(e) = set.heal_object(bucket, key, deep).await {
                        tracing::warn!(bucket, key, error = %e, "heal failed");
                    }
                }
                match keys.last() {
                    Some(last) if keys.len() == SCAN_PAGE_KEYS => marker = last.clone(),
                    _ => break,
                }
            }
        }
    }
}

/// Re-creates bucket directories on drives that lost them; returns the bucket names.
async fn heal_buckets(store: &Arc<Store>) -> Vec<String> {
    store.ensure_system_buckets().await;
    let buckets = match store.list_all_buckets().await {
        Ok(buckets) => buckets,
        Err(_) => return Vec::new(),
    };
    for bucket in &buckets {
        // Re-checked right before repairing, so a bucket deleted since the listing is not
        // brought back.
        // The settings a quorum agrees on, on every drive (a drive that missed a change of
        // them, or came back empty, gets them).
        let Ok(agreed) = store.head_bucket(&bucket.name).await else { continue };
        let meta = agreed.meta.encode();
        for drive in store.all_drives().into_iter().filter(|d| d.is_online()) {
            let drive = drive.clone();
            let name = bucket.name.clone();
            let (meta, expected) = (meta.clone(), agreed.meta.clone());
            blocking(move || {
                let stale = match drive.read_bucket_meta(&name) {
                    Ok(None) => true,
                    Ok(Some(bytes)) => super::BucketMeta::decode(&bytes).is_none_or(|held| held != expected),
                    Err(_) => false,
                };
                if stale && let Err(e) = drive.make_bucket(&name, &meta) {
                    tracing::warn!(drive = %drive.name(), bucket = name, error = %e, "heal bucket");
                }
            })
            .await;
        }
    }
    buckets.into_iter().map(|b| b.name).collect()
}

/// Watches every drive's format file; a drive that lost it (wiped or replaced by an empty
/// one) is formatted again with its old identity and healed.
pub async fn run_drive_monitor(store: Arc<Store>, interval: Duration) {
    let mut timer = tokio::time::interval(interval);
    // Offline peer drives are probed with exponential backoff: (next probe, current delay).
    let mut backoff: HashMap<usize, (Instant, Duration)> = HashMap::new();
    loop {
        timer.tick().await;
        let mut reformatted = false;
        for (index, drive) in store.all_drives().into_iter().enumerate() {
            let drive: Arc<dyn Drive> = drive.clone();
            let remote_offline = !drive.is_local() && !drive.is_marked_online();
            if remote_offline && backoff.get(&index).is_some_and(|(next, _)| Instant::now() < *next) {
                continue;
            }
            let probed = drive.clone();
            let changed = blocking(move || check_drive(probed.as_ref())).await;
            if !drive.is_local() && !drive.is_marked_online() {
                let delay = backoff.get(&index).map_or(interval, |(_, d)| (*d * 2).min(MAX_PEER_PROBE_DELAY));
                backoff.insert(index, (Instant::now() + delay, delay));
            } else {
                backoff.remove(&index);
            }
            reformatted |= changed;
        }
        let online = store.all_drives().into_iter().filter(|d| d.is_marked_online()).count();
        store.metrics.drives_online.set(online as i64);
        // A topology applied through another node reaches this one by push; this check
        // catches a push that was missed.
        if let Err(e) = store.reload_topology().await {
            tracing::warn!(error = %e, "the drives hold a topology this node cannot adopt");
        }
        let local: Vec<Arc<dyn Drive>> = store.all_drives().into_iter().filter(|d| d.is_local()).collect();
        blocking(move || {
            for drive in local {
                drive.empty_trash(super::drive::TRASH_RETENTION);
            }
        })
        .await;
        if reformatted {
            store.scan_now.notify_one();
        }
    }
}

/// Returns true when the drive needs its objects healed: formatted again, or back after
/// being offline (it missed writes and deletes meanwhile).
fn check_drive(drive: &dyn Drive) -> bool {
    if !drive.is_local() {
        let was_online = drive.is_marked_online();
        let reachable = matches!(drive.read_current_format(), Ok(Some(format)) if format == *drive.format());
        drive.set_online(reachable);
        if reachable && !was_online {
            tracing::info!(drive = %drive.name(), "peer drive is online");
        }
        // Back since the last check, whether the probe or an I/O call noticed first.
        let returned = drive.take_returned();
        return reachable && (!was_online || returned);
    }
    match drive.read_current_format() {
        Ok(Some(format)) if format == *drive.format() => {
            if !drive.is_online() {
                tracing::info!(drive = %drive.name(), "drive is back online");
                drive.set_online(true);
                // It missed what was written and deleted while it was away.
                return true;
            }
            false
        }
        Ok(Some(other)) => {
            if drive.is_online() {
                tracing::error!(
                    drive = %drive.name(),
                    found_cluster = %other.cluster_id,
                    found_drive = %other.drive_id,
                    "drive now carries another drive's format; taking it offline"
                );
                drive.set_online(false);
            }
            false
        }
        Ok(None) => {
            drive.set_online(false);
            match drive.reformat() {
                Ok(true) => {
                    tracing::warn!(drive = %drive.name(), "drive came back without its format: formatted again, healing");
                    drive.set_online(true);
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    tracing::error!(drive = %drive.name(), error = %e, "cannot format drive");
                    false
                }
            }
        }
        Err(e) => {
            if drive.is_online() {
                tracing::error!(drive = %drive.name(), error = %e, "drive unreadable; taking it offline");
                drive.set_online(false);
            }
            false
        }
    }
}
