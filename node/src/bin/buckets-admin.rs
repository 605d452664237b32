//! `buckets-admin`: the command line for a cluster's admin API (`/admin/v1/`), signed with
//! the root credentials: the topology (show, apply, preview), draining a set, the
//! migration (status with a live progress bar, pause, resume, throttle), and the nodes.
//! Every read command takes `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use buckets_api::client::refusal;
use buckets_api::wire::{AddSet, ApplyTopology, BootstrapPool, BootstrapRequest, PreviewRequest, SetChange, Throttle};
use buckets_api::{AdminClient, MigrationStatus, SetAction, Topology};

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
    /// Form a cluster of nodes started with --node-address that wait for a topology: each
    /// SET argument is one erasure set's drive URLs (ellipses expand), e.g.
    /// 'http://node{1...4}:9001/data/d1'.
    Bootstrap {
        /// The sets, one argument each.
        #[arg(required = true, value_name = "SET")]
        sets: Vec<String>,
        /// Name of the pool the sets form.
        #[arg(long, default_value = "pool-0")]
        pool: String,
        #[arg(long)]
        json: bool,
    },
    /// Whether the node serves a topology or waits for one, and its address.
    Node {
        #[arg(long)]
        json: bool,
    },
    /// The cluster's topology: pools, sets, their states, and its generation.
    #[command(subcommand)]
    Topology(TopologyCommand),
    /// Add a set of new drives (4 to 16) to a pool; the migration moves its share in.
    #[command(alias = "add-node")]
    AddSet {
        /// The drives of the new set (MinIO-style ellipses are expanded: /data/d{1...8}).
        #[arg(required = true)]
        drives: Vec<String>,
        /// The pool to add it to (created if absent; default: the first pool).
        #[arg(long)]
        pool: Option<String>,
        #[arg(long)]
        expected_generation: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Take a set out of the ring: new writes go elsewhere and the migration empties it.
    DrainSet {
        /// The set's id (`buckets-admin topology show`).
        set: u32,
        /// Fail unless the topology is still at this generation.
        #[arg(long)]
        expected_generation: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Retire a drained set once it is empty (refused, with what is left, otherwise).
    #[command(alias = "remove-node")]
    RemoveSet {
        set: u32,
        #[arg(long)]
        expected_generation: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// The migration that follows a topology change.
    #[command(subcommand)]
    Migration(MigrationCommand),
    /// The nodes of the cluster and their drives.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Same as `migration status`.
    MigrationStatus(StatusArgs),
    /// Same as `migration pause`.
    MigrationPause,
    /// Same as `migration resume`.
    MigrationResume,
    /// Same as `nodes list`.
    ListNodes {
        #[arg(long)]
        json: bool,
    },
    /// Same as `nodes info`.
    NodeInfo {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct StatusArgs {
    /// Print JSON instead of a summary.
    #[arg(long)]
    json: bool,
    /// Follow the migration with a progress bar until it is done.
    #[arg(long, conflicts_with = "json")]
    watch: bool,
}

#[derive(Subcommand)]
enum MigrationCommand {
    /// Objects and bytes moved / total, rate, ETA, errors, per-set state.
    Status(StatusArgs),
    /// Stop moving objects (moves in flight finish); survives restarts.
    Pause,
    /// Continue a paused migration.
    Resume,
    /// Limit the migration's bandwidth, all nodes together (`0` removes the limit).
    Throttle {
        /// Bytes per second; suffixes K, M, G (powers of 1024) and KB, MB, GB are accepted.
        rate: String,
    },
}

#[derive(Subcommand)]
enum NodesCommand {
    /// Every node with its drive counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One node (`HOST:PORT` of its admin address) with each of its drives.
    Info {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TopologyCommand {
    /// Print the current topology.
    Show {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// How many objects and bytes a proposed topology would move (counted, not applied).
    Preview {
        /// JSON file with the proposed topology (its generation one above the current).
        file: PathBuf,
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

/// How often `migration status --watch` asks the node for its progress.
const WATCH_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Parses `50M`, `1.5G`, `200KB`, `1000`: bytes per second.
fn parse_rate(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().with_context(|| format!("{text:?} is not a rate such as 50M or 1000"))?;
    let factor = match unit.trim().to_ascii_uppercase().trim_end_matches("/S").trim_end_matches('B') {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "KI" => 1024.0,
        "MI" => 1024.0 * 1024.0,
        "GI" => 1024.0 * 1024.0 * 1024.0,
        _ => bail!("unknown unit in {text:?}: use K, M or G"),
    };
    Ok((number * factor).round() as u64)
}

fn human_bytes(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{value:.0} {}", units[unit]) } else { format!("{value:.1} {}", units[unit]) }
}

/// One line: objects and bytes moved of the totals, rate and ETA.
fn progress_line(status: &MigrationStatus) -> String {
    format!(
        "{}/{} objects, {}/{} at {}/s, ETA {}",
        status.moved_objects,
        status.total_objects,
        human_bytes(status.moved_bytes as f64),
        human_bytes(status.total_bytes as f64),
        human_bytes(status.rate_bytes_per_second),
        status.eta_seconds.map_or("-".to_string(), |s| format!("{s}s")),
    )
}

fn print_status(status: &MigrationStatus) {
    println!(
        "generation {}  {}  {:.1}%  {}{}",
        status.generation,
        status.state,
        status.percent,
        progress_line(status),
        if status.bytes_per_second_limit > 0 {
            format!("  limit {}/s", human_bytes(status.bytes_per_second_limit as f64))
        } else {
            String::new()
        }
    );
    if status.failed_objects > 0 {
        println!("failed (retried): {}", status.failed_objects);
    }
    if let Some(error) = &status.last_error {
        println!("last error: {error}");
    }
    if !status.sets.is_empty() {
        println!("{:>4}  {:<8} {:>10} {:>10} {:>12}", "SET", "PHASE", "MOVED", "TOTAL", "BYTES MOVED");
        for set in &status.sets {
            println!(
                "{:>4}  {:<8} {:>10} {:>10} {:>12}",
                set.set,
                set.phase.as_str(),
                set.moved_objects,
                set.total_objects,
                human_bytes(set.moved_bytes as f64)
            );
        }
    }
}

async fn migration_status(admin: &AdminClient, args: StatusArgs) -> anyhow::Result<()> {
    let fetch = async || -> anyhow::Result<MigrationStatus> {
        let value = admin.json::<serde_json::Value>("GET", "/admin/v1/migration", Vec::new()).await?;
        serde_json::from_value(value).context("the server's migration status is malformed")
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&fetch().await?)?);
        return Ok(());
    }
    if !args.watch {
        print_status(&fetch().await?);
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {percent:>3}% {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    loop {
        let status = fetch().await?;
        bar.set_prefix(format!("generation {} {}", status.generation, status.state));
        bar.set_position((status.percent * 10.0) as u64);
        bar.set_message(progress_line(&status));
        if !status.state.in_progress() {
            bar.finish();
            return Ok(());
        }
        tokio::time::sleep(WATCH_POLL).await;
    }
}

/// Drain or remove a set: POST with the optional expected generation, print the result.
async fn set_change(
    admin: &AdminClient,
    set: buckets_api::SetId,
    action: SetAction,
    expected: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let body = match expected {
        Some(generation) => serde_json::to_vec(&SetChange { expected_generation: Some(generation) })?,
        None => Vec::new(),
    };
    let topology = admin.json::<serde_json::Value>("POST", &action.path(set), body).await?;
    print_topology(&serde_json::from_value(topology)?, json)
}

fn print_nodes(nodes: &[serde_json::Value], detail: bool) {
    println!("{:<24} {:<7} {:>8}", "NODE", "STATE", "DRIVES");
    for node in nodes {
        println!(
            "{:<24} {:<7} {:>3}/{:<3}",
            node["name"].as_str().unwrap_or("?"),
            if node["online"].as_bool() == Some(true) { "online" } else { "offline" },
            node["drivesOnline"],
            node["drivesTotal"]
        );
        if detail {
            for drive in node["drives"].as_array().into_iter().flatten() {
                println!(
                    "    set {:<4} {:<9} {:<8} {}",
                    drive["set"],
                    drive["setState"].as_str().unwrap_or("?"),
                    if drive["online"].as_bool() == Some(true) { "online" } else { "offline" },
                    drive["drive"].as_str().unwrap_or("?")
                );
            }
        }
    }
}

/// The server's error message, or the raw body.
fn explain(status: u16, body: &[u8]) -> String {
    refusal(status, body).to_string()
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
    let admin = AdminClient::new(cli.endpoint.clone(), cli.user.clone(), cli.password.clone(), AdminClient::http(tls));
    match cli.command {
        Command::Topology(TopologyCommand::Show { json }) => {
            let (status, body) = admin.call("GET", "/admin/v1/topology", Vec::new()).await?;
            if status != 200 {
                bail!("{}", explain(status, &body));
            }
            print_topology(&serde_json::from_slice(&body).context("the server's topology is malformed")?, json)
        }
        Command::Topology(TopologyCommand::Preview { file, json }) => {
            let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let topology: Topology = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a topology document", file.display()))?;
            let body = serde_json::to_vec(&PreviewRequest { topology })?;
            let preview = admin.json::<serde_json::Value>("POST", "/admin/v1/topology/preview", body).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&preview)?);
                return Ok(());
            }
            println!(
                "generation {} would move {} of {} objects, {} of {} ({:.1}% of the bytes)",
                preview["generation"],
                preview["movedObjects"],
                preview["totalObjects"],
                human_bytes(preview["movedBytes"].as_f64().unwrap_or(0.0)),
                human_bytes(preview["totalBytes"].as_f64().unwrap_or(0.0)),
                preview["fraction"].as_f64().unwrap_or(0.0) * 100.0
            );
            for flow in preview["flows"].as_array().into_iter().flatten() {
                println!(
                    "  set {} -> set {}: {} objects, {}",
                    flow["from"],
                    flow["to"],
                    flow["objects"],
                    human_bytes(flow["bytes"].as_f64().unwrap_or(0.0))
                );
            }
            Ok(())
        }
        Command::Bootstrap { sets, pool, json } => {
            let mut expanded = Vec::new();
            for set in &sets {
                expanded
                    .push(buckets_node::storage::bootstrap::expand_ellipses(set).map_err(|e| anyhow::anyhow!("{e}"))?);
            }
            let body =
                serde_json::to_vec(&BootstrapRequest { pools: vec![BootstrapPool { name: pool, sets: expanded }] })?;
            let topology = admin.json::<serde_json::Value>("POST", "/admin/v1/bootstrap", body).await?;
            print_topology(&serde_json::from_value(topology)?, json)
        }
        Command::Node { json } => {
            let node = admin.json::<serde_json::Value>("GET", "/admin/v1/node", Vec::new()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&node)?);
            } else {
                println!(
                    "{}  {}  topology generation {}",
                    node["nodeAddress"].as_str().unwrap_or_default(),
                    node["state"].as_str().unwrap_or_default(),
                    node["topologyGeneration"]
                );
            }
            Ok(())
        }
        Command::AddSet { drives, pool, expected_generation, json } => {
            let mut expanded = Vec::new();
            for drive in &drives {
                expanded.extend(
                    buckets_node::storage::bootstrap::expand_ellipses(drive).map_err(|e| anyhow::anyhow!("{e}"))?,
                );
            }
            let body = serde_json::to_vec(&AddSet { pool, drives: expanded, expected_generation })?;
            let topology = admin.json::<serde_json::Value>("POST", "/admin/v1/sets", body).await?;
            print_topology(&serde_json::from_value(topology)?, json)
        }
        Command::DrainSet { set, expected_generation, json } => {
            set_change(&admin, set, SetAction::Drain, expected_generation, json).await
        }
        Command::RemoveSet { set, expected_generation, json } => {
            set_change(&admin, set, SetAction::Remove, expected_generation, json).await
        }
        Command::Migration(MigrationCommand::Status(args)) | Command::MigrationStatus(args) => {
            migration_status(&admin, args).await
        }
        Command::Migration(MigrationCommand::Pause) | Command::MigrationPause => {
            let status = admin.json::<serde_json::Value>("POST", "/admin/v1/migration/pause", Vec::new()).await?;
            print_status(&serde_json::from_value(status)?);
            Ok(())
        }
        Command::Migration(MigrationCommand::Resume) | Command::MigrationResume => {
            let status = admin.json::<serde_json::Value>("POST", "/admin/v1/migration/resume", Vec::new()).await?;
            print_status(&serde_json::from_value(status)?);
            Ok(())
        }
        Command::Migration(MigrationCommand::Throttle { rate }) => {
            let bytes_per_second = parse_rate(&rate)?;
            let body = serde_json::to_vec(&Throttle { bytes_per_second })?;
            let status = admin.json::<serde_json::Value>("POST", "/admin/v1/migration/throttle", body).await?;
            print_status(&serde_json::from_value(status)?);
            Ok(())
        }
        Command::Nodes(NodesCommand::List { json }) | Command::ListNodes { json } => {
            let nodes = admin.json::<serde_json::Value>("GET", "/admin/v1/nodes", Vec::new()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                print_nodes(nodes.as_array().map(Vec::as_slice).unwrap_or_default(), false);
            }
            Ok(())
        }
        Command::Nodes(NodesCommand::Info { name, json }) | Command::NodeInfo { name, json } => {
            let node = admin.json::<serde_json::Value>("GET", &format!("/admin/v1/nodes/{name}"), Vec::new()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&node)?);
            } else {
                print_nodes(std::slice::from_ref(&node), true);
            }
            Ok(())
        }
        Command::Topology(TopologyCommand::Apply { file, expected_generation, json }) => {
            let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let topology: Topology = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a topology document", file.display()))?;
            let body = serde_json::to_vec(&ApplyTopology { expected_generation, topology })?;
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

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_parse_with_binary_units() {
        assert_eq!(parse_rate("1000").unwrap(), 1000);
        assert_eq!(parse_rate("50M").unwrap(), 50 * 1024 * 1024);
        assert_eq!(parse_rate("1.5G").unwrap(), 1_610_612_736);
        assert_eq!(parse_rate("200KB").unwrap(), 200 * 1024);
        assert_eq!(parse_rate("10MiB/s").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_rate("0").unwrap(), 0);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10X").is_err());
    }
}
