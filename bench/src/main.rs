//! `buckets-load`: drives any S3 endpoint (Buckets, MinIO, …) with PUTs then GETs of
//! fixed-size objects from many concurrent workers, spread over one or more endpoints,
//! and reports throughput and latency percentiles. Used for docs/benchmarks.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use clap::Parser;

#[derive(Parser)]
#[command(about = "PUT then GET fixed-size objects against S3 endpoints and report throughput")]
struct Args {
    /// S3 endpoints; workers are spread over them round-robin.
    #[arg(long = "endpoint", required = true)]
    endpoints: Vec<String>,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY")]
    secret_key: String,
    #[arg(long, default_value = "load")]
    bucket: String,
    /// Object size in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    size: usize,
    /// Concurrent requests.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per phase (PUT, then GET).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Phase {
    operations: AtomicU64,
    errors: AtomicU64,
    latencies_us: std::sync::Mutex<Vec<u64>>,
}

fn client(endpoint: &str, args: &Args) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(&args.access_key, &args.secret_key, None, None, "load"))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

async fn run_phase(name: &str, clients: &[Client], args: &Args, body: Bytes, objects: Arc<Vec<AtomicU64>>) -> Phase {
    let phase =
        Arc::new(Phase { operations: AtomicU64::new(0), errors: AtomicU64::new(0), latencies_us: Default::default() });
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let client = clients[worker % clients.len()].clone();
        let phase = phase.clone();
        let body = body.clone();
        let bucket = args.bucket.clone();
        let objects = objects.clone();
        let put = name == "PUT";
        workers.push(tokio::spawn(async move {
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                let begin = Instant::now();
                let ok = if put {
                    let key = format!("obj/{worker}/{sequence}");
                    sequence += 1;
                    let done = client
                        .put_object()
                        .bucket(&bucket)
                        .key(key)
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .is_ok();
                    if done {
                        objects[worker].fetch_add(1, Ordering::Relaxed);
                    }
                    done
                } else {
                    // Read back the objects this worker wrote in the PUT phase.
                    let written = objects[worker].load(Ordering::Relaxed).max(1);
                    let key = format!("obj/{worker}/{}", sequence % written);
                    sequence += 1;
                    match client.get_object().bucket(&bucket).key(key).send().await {
                        Ok(response) => response.body.collect().await.is_ok(),
                        Err(_) => false,
                    }
                };
                let micros = begin.elapsed().as_micros() as u64;
                if ok {
                    phase.operations.fetch_add(1, Ordering::Relaxed);
                    phase.latencies_us.lock().unwrap().push(micros);
                } else {
                    phase.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let phase = Arc::try_unwrap(phase).ok().expect("workers done");
    let operations = phase.operations.load(Ordering::Relaxed);
    let mut latencies = phase.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let percentile =
        |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "{name}: {:.1} MiB/s, {:.1} ops/s, latency p50 {:.1} ms, p99 {:.1} ms, {} errors ({} ops in {:.1} s)",
        operations as f64 * args.size as f64 / elapsed / 1048576.0,
        operations as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
        phase.errors.load(Ordering::Relaxed),
        operations,
        elapsed
    );
    phase
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let clients: Vec<Client> = args.endpoints.iter().map(|e| client(e, &args)).collect();
    let _ = clients[0].create_bucket().bucket(&args.bucket).send().await;
    clients[0].head_bucket().bucket(&args.bucket).send().await.context("the bucket is not reachable")?;
    let body = Bytes::from((0..args.size).map(|i| (i * 131 % 251) as u8).collect::<Vec<u8>>());
    println!(
        "{} endpoint(s), {} workers, {} byte objects, {} s per phase",
        clients.len(),
        args.concurrency,
        args.size,
        args.seconds
    );
    let objects: Arc<Vec<AtomicU64>> = Arc::new((0..args.concurrency).map(|_| AtomicU64::new(0)).collect());
    run_phase("PUT", &clients, &args, body.clone(), objects.clone()).await;
    run_phase("GET", &clients, &args, body, objects).await;
    Ok(())
}
