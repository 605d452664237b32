//! Prometheus metrics of a node. Names start with `buckets_`, units go last.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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
        for collector in [
            Box::new(s3_requests.clone()) as Box<dyn prometheus::core::Collector>,
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
