//! `buckets-admin`: the command line for a cluster's admin API (`/admin/v1/`), signed with
//! the root credentials. Today: `topology show` and `topology apply`; the migration and
//! node commands arrive with the migration engine.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};

use buckets_node::placement::topology::Topology;

#[derive(Parser)]
#[command(name = "buckets-admin", version, about = "Administer a Buckets cluster through its admin API")]
struct Cli {
    /// Admin endpoint of any node (its --admin-address).
    #[arg(long, env = "BUCKETS_ENDPOINT", default_value = "http://127.0.0.1:9001", global = true)]
    endpoint: String,
    #[arg(long, env = "BUCKETS_ROOT_USER", default_value = "bucketsadmin", global = true)]
    user: String,
    #[arg(
        long,
        env = "BUCKETS_ROOT_PASSWORD",
        default_value = "bucketsadmin",
        hide_default_value = true,
        global = true
    )]
    password: String,
    /// CA certificate (PEM) to verify an https:// endpoint with.
    #[arg(long, env = "BUCKETS_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The cluster's topology: pools, sets, their states, and its generation.
    #[command(subcommand)]
    Topology(TopologyCommand),
}

#[derive(Subcommand)]
enum TopologyCommand {
    /// Print the current topology.
    Show {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replace the topology, if it is still at the expected generation.
    Apply {
        /// JSON file with the new topology (its generation one above the current).
        file: PathBuf,
        /// The generation the change was prepared against.
        #[arg(long)]
        expected_generation: u64,
        #[arg(long)]
        json: bool,
    },
}

struct AdminClient {
    endpoint: String,
    user: String,
    password: String,
    client: buckets_node::rpc::client::PeerClient,
}

impl AdminClient {
    async fn call(&self, method: &str, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, Vec<u8>)> {
        let now = buckets_node::rpc::unix_now();
        let authorization =
            buckets_node::admin::auth::authorization(&self.user, self.password.as_bytes(), method, path, &body, now);
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.endpoint.trim_end_matches('/'), path))
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = self.client.request(request).await.with_context(|| format!("cannot reach {}", self.endpoint))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, body))
    }
}

/// The server's error message, or the raw body.
fn explain(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => format!(
            "{} ({status}): {}",
            value["error"].as_str().unwrap_or("error"),
            value["message"].as_str().unwrap_or_default()
        ),
        Err(_) => format!("HTTP {status}: {}", String::from_utf8_lossy(body).trim()),
    }
}

fn print_topology(topology: &Topology, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(topology)?);
        return Ok(());
    }
    println!("cluster {}  generation {}", topology.cluster_id, topology.generation);
    println!("{:<12} {:>4}  {:<9} {:>6}  {:>6}  first drive", "POOL", "SET", "STATE", "WEIGHT", "DRIVES");
    for (pool, set) in topology.sets() {
        println!(
            "{:<12} {:>4}  {:<9} {:>6.2}  {:>6}  {}",
            pool.name,
            set.id,
            format!("{:?}", set.state),
            set.weight,
            set.drives.len(),
            set.drives.first().map(String::as_str).unwrap_or("-")
        );
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let tls = match &cli.ca_file {
        Some(path) => Some(buckets_node::tls::client_config_trusting(path).context("loading the CA file")?),
        None => None,
    };
    let admin = AdminClient {
        endpoint: cli.endpoint.clone(),
        user: cli.user.clone(),
        password: cli.password.clone(),
        client: buckets_node::rpc::client::peer_client(tls),
    };
    match cli.command {
        Command::Topology(TopologyCommand::Show { json }) => {
            let (status, body) = admin.call("GET", "/admin/v1/topology", Vec::new()).await?;
            if status != 200 {
                bail!("{}", explain(status, &body));
            }
            print_topology(&serde_json::from_slice(&body).context("the server's topology is malformed")?, json)
        }
        Command::Topology(TopologyCommand::Apply { file, expected_generation, json }) => {
            let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let topology: Topology = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a topology document", file.display()))?;
            let body = serde_json::to_vec(
                &serde_json::json!({ "expectedGeneration": expected_generation, "topology": topology }),
            )?;
            let (status, body) = admin.call("POST", "/admin/v1/topology", body).await?;
            if status != 200 {
                bail!("{}", explain(status, &body));
            }
            print_topology(&serde_json::from_slice(&body)?, json)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buckets-admin: {e:#}");
            ExitCode::FAILURE
        }
    }
}
