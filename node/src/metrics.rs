//! Prometheus metrics of a node. Names start with `buckets_`, units go last.

use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub s3_requests: IntCounterVec,
    pub s3_request_duration: HistogramVec,
    pub s3_received_bytes: IntCounter,
    pub s3_sent_bytes: IntCounter,
    pub drives_total: IntGauge,
    pub drives_online: IntGauge,
    pub healed_objects: IntCounter,
    pub heal_scans: IntCounter,
    pub registry_cache_hits: IntCounter,
    pub registry_cache_misses: IntCounter,
    pub registry_cache_invalidations: IntCounter,
    pub registry_records_written: IntCounter,
    pub registry_fallback_reads: IntCounter,
    pub migration_moved_objects: IntCounter,
    pub migration_moved_bytes: IntCounter,
    pub migration_failed_objects: IntCounter,
    pub migration_total_objects: IntGauge,
    pub migration_total_bytes: IntGauge,
    pub migration_done_objects: IntGauge,
    pub migration_done_bytes: IntGauge,
    pub migration_percent: Gauge,
    pub migration_rate: Gauge,
    pub migration_eta: Gauge,
    pub migration_paused: IntGauge,
    pub migration_generation: IntGauge,
    pub placement_settled_generation: IntGauge,
    pub rpc_refused_calls: IntCounterVec,
    pub rpc_drive_calls: IntCounterVec,
    pub rpc_drive_batches: IntCounter,
    pub lifecycle_actions: IntCounterVec,
    pub lifecycle_scanned_objects: IntCounter,
    pub lifecycle_passes: IntCounter,
    pub lifecycle_last_pass: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let s3_requests = IntCounterVec::new(
            Opts::new("buckets_s3_requests_total", "S3 requests by HTTP method and status code"),
            &["method", "status"],
        )
        .expect("metric");
        let s3_request_duration = HistogramVec::new(
            HistogramOpts::new("buckets_s3_request_duration_seconds", "S3 request latency until response headers")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["method"],
        )
        .expect("metric");
        let s3_received_bytes =
            IntCounter::new("buckets_s3_received_bytes_total", "Object bytes stored by PUT and UploadPart")
                .expect("metric");
        let s3_sent_bytes = IntCounter::new("buckets_s3_sent_bytes_total", "Object bytes sent by GET").expect("metric");
        let drives_total = IntGauge::new("buckets_drives_total", "Drives this node serves").expect("metric");
        let drives_online =
            IntGauge::new("buckets_drives_online", "Drives this node serves that are online").expect("metric");
        let healed_objects =
            IntCounter::new("buckets_heal_objects_healed_total", "Objects repaired by healing").expect("metric");
        let heal_scans = IntCounter::new("buckets_heal_scans_total", "Full heal scans started").expect("metric");
        let registry_cache_hits =
            IntCounter::new("buckets_registry_cache_hits_total", "Location lookups answered by the registry cache")
                .expect("metric");
        let registry_cache_misses = IntCounter::new(
            "buckets_registry_cache_misses_total",
            "Location lookups the registry cache could not answer",
        )
        .expect("metric");
        let registry_cache_invalidations = IntCounter::new(
            "buckets_registry_cache_invalidations_total",
            "Registry cache entries dropped because the record changed or proved wrong",
        )
        .expect("metric");
        let registry_records_written =
            IntCounter::new("buckets_registry_records_written_total", "Registry records written by this node")
                .expect("metric");
        let registry_fallback_reads = IntCounter::new(
            "buckets_registry_fallback_reads_total",
            "Reads that found an object only by asking every set (no usable placement or record)",
        )
        .expect("metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("metric");
        let int_gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("metric");
        let gauge = |name: &str, help: &str| Gauge::new(name, help).expect("metric");
        let migration_moved_objects =
            counter("buckets_migration_moved_objects_total", "Objects this node moved to their ring set");
        let migration_moved_bytes =
            counter("buckets_migration_moved_bytes_total", "Bytes this node moved between sets");
        let migration_failed_objects =
            counter("buckets_migration_failed_objects_total", "Object moves that failed on this node (retried)");
        let migration_total_objects =
            int_gauge("buckets_migration_objects", "Objects the current migration moves, all sets together");
        let migration_total_bytes =
            int_gauge("buckets_migration_bytes", "Bytes the current migration moves, all sets together");
        let migration_done_objects =
            int_gauge("buckets_migration_done_objects", "Objects of the current migration already handled");
        let migration_done_bytes = int_gauge("buckets_migration_done_bytes", "Bytes of the current migration moved");
        let migration_percent = gauge("buckets_migration_progress_percent", "Progress of the current migration, 0-100");
        let migration_rate =
            gauge("buckets_migration_rate_bytes_per_second", "Average migration rate since it started");
        let migration_eta = gauge("buckets_migration_eta_seconds", "Estimated seconds left (-1 when unknown)");
        let migration_paused = int_gauge("buckets_migration_paused", "1 while the migration is paused");
        let migration_generation = int_gauge("buckets_topology_generation", "Topology generation this node serves");
        let placement_settled_generation = int_gauge(
            "buckets_placement_settled_generation",
            "Topology generation this node knows settled: every object in the set its ring names, so writes and \
             reads touch that set only (0 until then)",
        );
        let rpc_refused_calls = IntCounterVec::new(
            Opts::new(
                "buckets_rpc_refused_calls_total",
                "Peer RPC calls refused by their signature, by reason (unsigned, malformed, stale, forged, replayed)",
            ),
            &["reason"],
        )
        .expect("metric");
        let rpc_drive_calls = IntCounterVec::new(
            Opts::new(
                "buckets_rpc_drive_calls_total",
                "Drive calls this node served to its peers, by request: alone (one call a request) or batched \
                 (several small calls to this node's drives in one request)",
            ),
            &["request"],
        )
        .expect("metric");
        let rpc_drive_batches =
            IntCounter::new("buckets_rpc_drive_batches_total", "Requests carrying a batch of drive calls served")
                .expect("metric");
        let lifecycle_actions = IntCounterVec::new(
            Opts::new(
                "buckets_lifecycle_actions_total",
                "Lifecycle actions taken, by action (expire, delete_noncurrent, remove_marker, abort_upload) and \
                 outcome (done, locked: refused by object lock)",
            ),
            &["action", "outcome"],
        )
        .expect("metric");
        let lifecycle_scanned_objects =
            IntCounter::new("buckets_lifecycle_scanned_objects_total", "Keys the lifecycle worker looked at")
                .expect("metric");
        let lifecycle_passes =
            IntCounter::new("buckets_lifecycle_passes_total", "Lifecycle passes this node finished").expect("metric");
        let lifecycle_last_pass = int_gauge(
            "buckets_lifecycle_last_pass_timestamp_seconds",
            "When this node last finished a lifecycle pass (Unix seconds)",
        );
        for collector in [
            Box::new(s3_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(lifecycle_actions.clone()),
            Box::new(lifecycle_scanned_objects.clone()),
            Box::new(lifecycle_passes.clone()),
            Box::new(lifecycle_last_pass.clone()),
            Box::new(rpc_refused_calls.clone()),
            Box::new(rpc_drive_calls.clone()),
            Box::new(rpc_drive_batches.clone()),
            Box::new(s3_request_duration.clone()),
            Box::new(s3_received_bytes.clone()),
            Box::new(s3_sent_bytes.clone()),
            Box::new(drives_total.clone()),
            Box::new(drives_online.clone()),
            Box::new(healed_objects.clone()),
            Box::new(heal_scans.clone()),
            Box::new(registry_cache_hits.clone()),
            Box::new(registry_cache_misses.clone()),
            Box::new(registry_cache_invalidations.clone()),
            Box::new(registry_records_written.clone()),
            Box::new(registry_fallback_reads.clone()),
            Box::new(migration_moved_objects.clone()),
            Box::new(migration_moved_bytes.clone()),
            Box::new(migration_failed_objects.clone()),
            Box::new(migration_total_objects.clone()),
            Box::new(migration_total_bytes.clone()),
            Box::new(migration_done_objects.clone()),
            Box::new(migration_done_bytes.clone()),
            Box::new(migration_percent.clone()),
            Box::new(migration_rate.clone()),
            Box::new(migration_eta.clone()),
            Box::new(migration_paused.clone()),
            Box::new(migration_generation.clone()),
            Box::new(placement_settled_generation.clone()),
        ] {
            registry.register(collector).expect("unique metric names");
        }
        Metrics {
            registry,
            s3_requests,
            s3_request_duration,
            s3_received_bytes,
            s3_sent_bytes,
            drives_total,
            drives_online,
            healed_objects,
            heal_scans,
            registry_cache_hits,
            registry_cache_misses,
            registry_cache_invalidations,
            registry_records_written,
            registry_fallback_reads,
            migration_moved_objects,
            migration_moved_bytes,
            migration_failed_objects,
            migration_total_objects,
            migration_total_bytes,
            migration_done_objects,
            migration_done_bytes,
            migration_percent,
            migration_rate,
            migration_eta,
            migration_paused,
            migration_generation,
            placement_settled_generation,
            rpc_refused_calls,
            rpc_drive_calls,
            rpc_drive_batches,
            lifecycle_actions,
            lifecycle_scanned_objects,
            lifecycle_passes,
            lifecycle_last_pass,
        }
    }

    pub fn render(&self) -> String {
        let mut buffer = String::new();
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut buffer).expect("text encoding");
        buffer
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
