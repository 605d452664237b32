//! `buckets-operator`: `crd` prints the CustomResourceDefinitions, `run` runs the
//! controller.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "buckets-operator", version, about = "Kubernetes operator for Buckets object storage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (BucketsCluster, BucketsPool, BucketsUser,
    /// BucketsPolicy, BucketsBucket) as YAML.
    Crd {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        output_dir: Option<std::path::PathBuf>,
    },
    /// Run the controller: watch BucketsClusters and BucketsPools in every namespace the
    /// kubeconfig (or the in-cluster service account) can see.
    Run {
        /// DNS suffix of the Kubernetes cluster; drive URLs name pods by their fully
        /// qualified names under it.
        #[arg(long, env = "BUCKETS_OPERATOR_CLUSTER_DOMAIN", default_value = "cluster.local")]
        cluster_domain: String,
        /// Listen address of /metrics, /healthz and /readyz.
        #[arg(long, env = "BUCKETS_OPERATOR_METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
        metrics_address: std::net::SocketAddr,
        /// Reconcile only while holding the Lease `buckets-operator-leader` (for more than
        /// one replica); a replica that loses it exits and is restarted as a follower.
        #[arg(long, env = "BUCKETS_OPERATOR_LEADER_ELECTION")]
        leader_election: bool,
        /// Namespace of the leader Lease (default: POD_NAMESPACE, else `default`).
        #[arg(long, env = "BUCKETS_OPERATOR_LEADER_ELECTION_NAMESPACE")]
        leader_election_namespace: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { cluster_domain, metrics_address, leader_election, leader_election_namespace } => match run(
            cluster_domain,
            metrics_address,
            leader_election.then(|| {
                leader_election_namespace
                    .or_else(|| std::env::var("POD_NAMESPACE").ok())
                    .unwrap_or_else(|| "default".into())
            }),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("buckets-operator: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Crd { output_dir } => match print_crds(output_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("buckets-operator: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn print_crds(output_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    use anyhow::Context;
    match output_dir {
        None => print!("{}", buckets_operator::crd::crd_yaml().context("rendering the CRDs")?),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, yaml) in buckets_operator::crd::crd_files().context("rendering the CRDs")? {
                let path = dir.join(name);
                std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Name of the Lease replicas compete for.
const LEADER_LEASE: &str = "buckets-operator-leader";

fn run(
    cluster_domain: String,
    metrics_address: std::net::SocketAddr,
    leader_election: Option<String>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::sync::Arc;
    buckets_api::logging::init_logging();
    // kube and the node client both use rustls; one process-wide provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the Kubernetes API (KUBECONFIG or the in-cluster service account)")?;
        let metrics = Arc::new(buckets_operator::metrics::Metrics::new());
        let served = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = buckets_operator::metrics::serve(metrics_address, served).await {
                tracing::error!(error = %e, %metrics_address, "cannot serve metrics");
            }
        });
        let instance = std::env::var("POD_NAME").ok().or_else(|| std::env::var("HOSTNAME").ok());
        let ctx = Arc::new(buckets_operator::controller::Context {
            client,
            nodes: Arc::new(buckets_operator::admin::HttpNodeApi::new()),
            settings: buckets_operator::build::Settings { cluster_domain },
            metrics,
            reporter: kube::runtime::events::Reporter { controller: "buckets-operator".into(), instance },
        });
        let Some(namespace) = leader_election else {
            tracing::info!("buckets-operator running");
            buckets_operator::controller::run(ctx).await;
            return Ok(());
        };
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("buckets-operator-{}", std::process::id()));
        let manager = kube_lease_manager::LeaseManagerBuilder::new(ctx.client.clone(), LEADER_LEASE)
            .with_namespace(namespace.clone())
            .with_identity(identity.clone())
            .with_duration(15)
            .with_grace(5)
            .with_field_manager("buckets-operator-lease")
            .build()
            .await
            .with_context(|| format!("preparing the Lease {namespace}/{LEADER_LEASE}"))?;
        let (mut leader, _lease_task) = manager.watch().await;
        tracing::info!(%identity, "waiting to lead (Lease {namespace}/{LEADER_LEASE})");
        while !*leader.borrow_and_update() {
            leader.changed().await.context("the Lease task ended")?;
        }
        tracing::info!(%identity, "leading: buckets-operator running");
        let lost = async {
            loop {
                if leader.changed().await.is_err() || !*leader.borrow() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = buckets_operator::controller::run(ctx) => Ok(()),
            _ = lost => anyhow::bail!("lost the leader Lease; exiting so a restart follows the new leader"),
        }
    })
}
