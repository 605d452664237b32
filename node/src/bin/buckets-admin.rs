//! `buckets-admin`: the command line for a cluster's admin API (`/admin/v1/`), signed with
//! the root credentials: the topology (show, apply, preview), draining a set, the
//! migration (status with a live progress bar, pause, resume, throttle), the nodes, and
//! the identity store (users, access keys, groups, policies). Every read command takes
//! `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use buckets_api::AdminErrorCode;
use buckets_api::bucket::{BucketInfo, BucketVersioning, PutBucket};
use buckets_api::client::refusal;
use buckets_api::iam::{
    Attachment, CreatedKey, GroupInfo, KeyInfo, MemberChange, NewKey, NewName, NewPolicy, PolicyInfo, UserInfo,
};
use buckets_api::wire::{AddSet, ApplyTopology, BootstrapPool, BootstrapRequest, PreviewRequest, SetChange, Throttle};
use buckets_api::{AdminClient, MigrationState, MigrationStatus, SetAction, Topology};

#[derive(Parser)]
#[command(name = "buckets-admin", version, about = "Administer a Buckets cluster through its admin API")]
struct Cli {
    /// Admin endpoint of any node (its --admin-address).
    #[arg(long, env = "BUCKETS_ENDPOINT", default_value = "http://127.0.0.1:9001", global = true)]
    endpoint: String,
    /// The root user's name (the admin API is the root user's).
    #[arg(long = "root-user", env = "BUCKETS_ROOT_USER", default_value = "bucketsadmin", global = true)]
    root_user: String,
    #[arg(
        long = "root-password",
        alias = "password",
        env = "BUCKETS_ROOT_PASSWORD",
        default_value = "bucketsadmin",
        hide_default_value = true,
        global = true
    )]
    root_password: String,
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
    /// Users of the S3 API.
    #[command(subcommand)]
    User(UserCommand),
    /// Access keys of users (secrets are shown once, at creation).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Groups of users, which share the policies attached to the group.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Policies in the AWS IAM policy language, attached to users and groups.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Buckets, declared as the operator's BucketsBucket declares them.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Same as `migration status`.
    MigrationStatus(StatusArgs),
    /// Same as `migration pause`.
    MigrationPause(PauseArgs),
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

#[derive(clap::Args)]
struct PauseArgs {
    /// Wait until the state reads `paused` (every set's mover has stopped).
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits before it fails, e.g. 90s or 5m.
    #[arg(long, default_value = "5m", requires = "wait", value_parser = parse_seconds)]
    timeout: u64,
}

#[derive(Subcommand)]
enum MigrationCommand {
    /// Objects and bytes moved / total, rate, ETA, errors, per-set state.
    Status(StatusArgs),
    /// Stop moving objects (moves in flight finish: the state reads `pausing` until every
    /// set's mover has stopped, then `paused`); survives restarts.
    Pause(PauseArgs),
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

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (with no keys and no policies yet).
    Add {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Every user with its state, keys, policies and groups.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One user.
    Info {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and its keys.
    Remove { name: String },
    /// Let a disabled user's keys sign requests again.
    Enable { name: String },
    /// Refuse every request signed with the user's keys (kept, for `enable`).
    Disable { name: String },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an access key for USER; prints its secret, the only time it is shown.
    Create {
        user: String,
        /// When the key stops working: an RFC 3339 time or a duration from now (90d, 12h, 30m).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The keys of USER (never their secrets).
    List {
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an access key: requests it signs are refused from now on.
    Remove { access_key: String },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create a group, optionally with members.
    Add {
        name: String,
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every group with its members and policies.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a group (its users stay).
    Remove { name: String },
    /// Show a group's members, or change them with --add / --remove.
    Members {
        name: String,
        #[arg(long, value_delimiter = ',')]
        add: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Store a policy from a JSON file (`-` reads standard input).
    Create {
        name: String,
        file: PathBuf,
        /// Replace a policy of the same name.
        #[arg(long)]
        replace: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every policy, the built-in ones too, with where it is attached.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One policy's document and attachments.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a policy (refused while it is attached).
    Remove { name: String },
    /// Attach a policy to a user or a group.
    Attach(AttachArgs),
    /// Detach a policy from a user or a group.
    Detach(AttachArgs),
}

#[derive(Subcommand)]
enum BucketCommand {
    /// Create a bucket, or change an existing one: the same command again changes
    /// nothing. Its policy is kept unless --policy or --no-policy is given.
    Create {
        name: String,
        /// Enabled or Suspended (a versioned bucket never becomes unversioned again).
        #[arg(long, value_parser = ["Enabled", "Suspended"])]
        versioning: Option<String>,
        /// With S3 Object Lock (only when the bucket is created; implies versioning).
        #[arg(long)]
        object_lock: bool,
        /// The bucket policy, a JSON file (`-` reads standard input).
        #[arg(long, conflicts_with = "no_policy")]
        policy: Option<PathBuf>,
        /// Remove the bucket's policy.
        #[arg(long)]
        no_policy: bool,
        #[arg(long)]
        json: bool,
    },
    /// A bucket's versioning, object lock, policy and whether it is empty.
    Info {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a bucket (refused while it holds anything).
    Remove { name: String },
}

#[derive(clap::Args)]
struct AttachArgs {
    policy: String,
    #[arg(long, conflicts_with = "group", required_unless_present = "group")]
    user: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    json: bool,
}

/// Parses `--expires`: an RFC 3339 time, or a duration from now such as 90d, 12h or 30m.
fn parse_expiry(text: &str, now: u64) -> anyhow::Result<u64> {
    if let Ok(time) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return u64::try_from(time.unix_timestamp()).context("an expiry before 1970");
    }
    let seconds =
        parse_seconds(text).with_context(|| format!("{text:?} is neither an RFC 3339 time nor a duration"))?;
    Ok(now + seconds)
}

/// A duration such as `90s`, `5m`, `12h` or `90d`, in seconds.
fn parse_seconds(text: &str) -> anyhow::Result<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().with_context(|| format!("{text:?} is not a duration such as 90s or 5m"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("unknown unit in {text:?}: use s, m, h or d"),
    };
    Ok(number * seconds)
}

fn said(text: String) -> anyhow::Result<()> {
    println!("{text}");
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_users(users: &[UserInfo]) -> anyhow::Result<()> {
    println!("{:<24} {:<9} {:>4}  {:<24} GROUPS", "USER", "STATE", "KEYS", "POLICIES");
    for user in users {
        println!(
            "{:<24} {:<9} {:>4}  {:<24} {}",
            user.name,
            if user.enabled { "enabled" } else { "disabled" },
            user.keys.len(),
            user.policies.join(","),
            user.groups.join(",")
        );
    }
    Ok(())
}

fn print_keys(keys: &[KeyInfo]) -> anyhow::Result<()> {
    println!("{:<22} {:<16} {:<22} EXPIRES", "ACCESS KEY", "USER", "CREATED");
    let when = |t: u64| {
        time::OffsetDateTime::from_unix_timestamp(t as i64)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| t.to_string())
    };
    for key in keys {
        println!(
            "{:<22} {:<16} {:<22} {}",
            key.access_key,
            key.user,
            when(key.created),
            key.expires.map_or("never".to_string(), when)
        );
    }
    Ok(())
}

fn print_groups(groups: &[GroupInfo]) -> anyhow::Result<()> {
    println!("{:<24} {:<32} POLICIES", "GROUP", "MEMBERS");
    for group in groups {
        println!("{:<24} {:<32} {}", group.name, group.members.join(","), group.policies.join(","));
    }
    Ok(())
}

fn print_policies(policies: &[PolicyInfo]) -> anyhow::Result<()> {
    println!("{:<24} {:<8} {:<24} GROUPS", "POLICY", "BUILTIN", "USERS");
    for policy in policies {
        println!(
            "{:<24} {:<8} {:<24} {}",
            policy.name,
            if policy.builtin { "yes" } else { "no" },
            policy.users.join(","),
            policy.groups.join(",")
        );
    }
    Ok(())
}

fn print_bucket(bucket: &BucketInfo) -> anyhow::Result<()> {
    let yes = |on: bool| if on { "yes" } else { "no" };
    println!("{:<24} {:<11} {:<11} {:<6} EMPTY", "BUCKET", "VERSIONING", "OBJECT-LOCK", "POLICY");
    println!(
        "{:<24} {:<11} {:<11} {:<6} {}",
        bucket.name,
        bucket.versioning.map_or("-", |v| v.as_str()),
        yes(bucket.object_lock),
        yes(bucket.policy.is_some()),
        yes(bucket.empty)
    );
    Ok(())
}

async fn bucket_command(admin: &AdminClient, command: BucketCommand) -> anyhow::Result<()> {
    let path = |name: &str| format!("/admin/v1/buckets/{name}");
    match command {
        BucketCommand::Create { name, versioning, object_lock, policy, no_policy, json } => {
            let policy = match (policy, no_policy) {
                (_, true) => None,
                (Some(file), false) => {
                    let text = if file.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin()).context("reading the policy from standard input")?
                    } else {
                        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
                    };
                    Some(serde_json::Value::String(text))
                }
                // Keep what the bucket has (a declaration without a policy removes it).
                (None, false) => match admin.json::<BucketInfo>("GET", &path(&name), Vec::new()).await {
                    Ok(info) => info.policy,
                    Err(e) if e.code() == Some(&AdminErrorCode::NoSuchBucket) => None,
                    Err(e) => return Err(e.into()),
                },
            };
            let versioning = versioning.as_deref().map(|v| match v {
                "Enabled" => BucketVersioning::Enabled,
                _ => BucketVersioning::Suspended,
            });
            let bucket: BucketInfo =
                admin.send("PUT", &path(&name), &PutBucket { versioning, object_lock, policy }).await?;
            if json { print_json(&bucket) } else { print_bucket(&bucket) }
        }
        BucketCommand::Info { name, json } => {
            let bucket: BucketInfo = admin.json("GET", &path(&name), Vec::new()).await?;
            if json {
                return print_json(&bucket);
            }
            print_bucket(&bucket)?;
            if let Some(policy) = &bucket.policy {
                println!("{}", serde_json::to_string_pretty(policy)?);
            }
            Ok(())
        }
        BucketCommand::Remove { name } => {
            admin.json::<serde_json::Value>("DELETE", &path(&name), Vec::new()).await?;
            said(format!("removed bucket {name}"))
        }
    }
}

async fn iam_command(admin: &AdminClient, command: Command) -> anyhow::Result<()> {
    const IAM: &str = "/admin/v1/iam";
    let get = async |path: String| admin.json::<serde_json::Value>("GET", &format!("{IAM}/{path}"), Vec::new()).await;
    let delete =
        async |path: String| admin.json::<serde_json::Value>("DELETE", &format!("{IAM}/{path}"), Vec::new()).await;
    match command {
        Command::User(UserCommand::Add { name, json }) => {
            let user: UserInfo = admin.send("POST", &format!("{IAM}/users"), &NewName { name }).await?;
            if json { print_json(&user) } else { print_users(&[user]) }
        }
        Command::User(UserCommand::List { json }) => {
            let users: Vec<UserInfo> = serde_json::from_value(get("users".into()).await?)?;
            if json { print_json(&users) } else { print_users(&users) }
        }
        Command::User(UserCommand::Info { name, json }) => {
            let user: UserInfo = serde_json::from_value(get(format!("users/{name}")).await?)?;
            if json {
                return print_json(&user);
            }
            print_users(std::slice::from_ref(&user))?;
            println!("canonical id {}\narn {}", user.canonical_id, user.arn);
            print_keys(&user.keys)?;
            Ok(())
        }
        Command::User(UserCommand::Remove { name }) => {
            delete(format!("users/{name}")).await?;
            said(format!("removed user {name}"))
        }
        Command::User(UserCommand::Enable { name }) => {
            let user: UserInfo = admin.json("POST", &format!("{IAM}/users/{name}/enable"), Vec::new()).await?;
            print_users(&[user])
        }
        Command::User(UserCommand::Disable { name }) => {
            let user: UserInfo = admin.json("POST", &format!("{IAM}/users/{name}/disable"), Vec::new()).await?;
            print_users(&[user])
        }
        Command::Key(KeyCommand::Create { user, expires, json }) => {
            let expires = expires.map(|e| parse_expiry(&e, buckets_node::clock::unix_seconds())).transpose()?;
            let key: CreatedKey = admin.send("POST", &format!("{IAM}/users/{user}/keys"), &NewKey { expires }).await?;
            if json {
                return print_json(&key);
            }
            println!("Access key: {}\nSecret key: {}", key.access_key, key.secret_key);
            println!("The secret key is shown only now: keep it somewhere safe.");
            Ok(())
        }
        Command::Key(KeyCommand::List { user, json }) => {
            let keys: Vec<KeyInfo> = serde_json::from_value(get(format!("users/{user}/keys")).await?)?;
            if json { print_json(&keys) } else { print_keys(&keys) }
        }
        Command::Key(KeyCommand::Remove { access_key }) => {
            delete(format!("keys/{access_key}")).await?;
            said(format!("removed access key {access_key}"))
        }
        Command::Group(GroupCommand::Add { name, members, json }) => {
            let mut group: GroupInfo =
                admin.send("POST", &format!("{IAM}/groups"), &NewName { name: name.clone() }).await?;
            if !members.is_empty() {
                let change = MemberChange { add: members, remove: Vec::new() };
                group = admin.send("POST", &format!("{IAM}/groups/{name}/members"), &change).await?;
            }
            if json { print_json(&group) } else { print_groups(&[group]) }
        }
        Command::Group(GroupCommand::List { json }) => {
            let groups: Vec<GroupInfo> = serde_json::from_value(get("groups".into()).await?)?;
            if json { print_json(&groups) } else { print_groups(&groups) }
        }
        Command::Group(GroupCommand::Remove { name }) => {
            delete(format!("groups/{name}")).await?;
            said(format!("removed group {name}"))
        }
        Command::Group(GroupCommand::Members { name, add, remove, json }) => {
            let group: GroupInfo = if add.is_empty() && remove.is_empty() {
                serde_json::from_value(get(format!("groups/{name}")).await?)?
            } else {
                admin.send("POST", &format!("{IAM}/groups/{name}/members"), &MemberChange { add, remove }).await?
            };
            if json { print_json(&group) } else { print_groups(&[group]) }
        }
        Command::Policy(PolicyCommand::Create { name, file, replace, json }) => {
            let document = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the policy from standard input")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let policy: PolicyInfo = if replace {
                admin.json("PUT", &format!("{IAM}/policies/{name}"), document.into_bytes()).await?
            } else {
                admin.send("POST", &format!("{IAM}/policies"), &NewPolicy { name, document }).await?
            };
            if json { print_json(&policy) } else { print_policies(&[policy]) }
        }
        Command::Policy(PolicyCommand::List { json }) => {
            let policies: Vec<PolicyInfo> = serde_json::from_value(get("policies".into()).await?)?;
            if json { print_json(&policies) } else { print_policies(&policies) }
        }
        Command::Policy(PolicyCommand::Show { name, json }) => {
            let policy: PolicyInfo = serde_json::from_value(get(format!("policies/{name}")).await?)?;
            if json {
                return print_json(&policy);
            }
            print_policies(std::slice::from_ref(&policy))?;
            println!("{}", serde_json::to_string_pretty(&policy.document)?);
            Ok(())
        }
        Command::Policy(PolicyCommand::Remove { name }) => {
            delete(format!("policies/{name}")).await?;
            said(format!("removed policy {name}"))
        }
        Command::Policy(command @ (PolicyCommand::Attach(_) | PolicyCommand::Detach(_))) => {
            let (action, args) = match command {
                PolicyCommand::Attach(args) => ("attach", args),
                PolicyCommand::Detach(args) => ("detach", args),
                _ => unreachable!("matched above"),
            };
            let to = Attachment { user: args.user, group: args.group };
            let policy: PolicyInfo =
                admin.send("POST", &format!("{IAM}/policies/{}/{action}", args.policy), &to).await?;
            if args.json { print_json(&policy) } else { print_policies(&[policy]) }
        }
        _ => unreachable!("only identity store commands come here"),
    }
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

/// Polls the migration status until the pause is confirmed (or nothing is left to pause).
async fn wait_for_pause(
    admin: &AdminClient,
    mut status: MigrationStatus,
    timeout: u64,
) -> anyhow::Result<MigrationStatus> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    while status.state == MigrationState::Pausing {
        if std::time::Instant::now() >= deadline {
            bail!(
                "the migration still reads pausing after {timeout} s: a set's mover has not confirmed it stopped \
                 (is a node, or all of a set's drives, unreachable?)"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        status = fetch_migration_status(admin).await?;
    }
    Ok(status)
}

async fn fetch_migration_status(admin: &AdminClient) -> anyhow::Result<MigrationStatus> {
    let value = admin.json::<serde_json::Value>("GET", "/admin/v1/migration", Vec::new()).await?;
    serde_json::from_value(value).context("the server's migration status is malformed")
}

async fn migration_status(admin: &AdminClient, args: StatusArgs) -> anyhow::Result<()> {
    let fetch = || fetch_migration_status(admin);
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
    let admin = AdminClient::new(
        cli.endpoint.clone(),
        cli.root_user.clone(),
        cli.root_password.clone(),
        AdminClient::http(tls),
    );
    match cli.command {
        command @ (Command::User(_) | Command::Key(_) | Command::Group(_) | Command::Policy(_)) => {
            iam_command(&admin, command).await
        }
        Command::Bucket(command) => bucket_command(&admin, command).await,
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
        Command::Migration(MigrationCommand::Pause(args)) | Command::MigrationPause(args) => {
            let status = admin.json::<serde_json::Value>("POST", "/admin/v1/migration/pause", Vec::new()).await?;
            let status: MigrationStatus = serde_json::from_value(status)?;
            let status = if args.wait { wait_for_pause(&admin, status, args.timeout).await? } else { status };
            print_status(&status);
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
    // Like other command-line tools, end quietly when the reader of the output has gone
    // (`buckets-admin ... | grep -q`, `| head`) instead of failing to print.
    sigpipe::reset();
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
    use super::{parse_expiry, parse_rate, parse_seconds};

    #[test]
    fn expiries_are_times_or_durations_from_now() {
        assert_eq!(parse_expiry("90d", 1000).unwrap(), 1000 + 90 * 86_400);
        assert_eq!(parse_expiry("12h", 0).unwrap(), 43_200);
        assert_eq!(parse_expiry("2027-01-01T00:00:00Z", 0).unwrap(), 1_798_761_600);
        assert!(parse_expiry("soon", 0).is_err());
        assert!(parse_expiry("3w", 0).is_err());
    }

    #[test]
    fn timeouts_are_durations_with_a_unit() {
        assert_eq!(parse_seconds("90s").unwrap(), 90);
        assert_eq!(parse_seconds("5m").unwrap(), 300);
        assert!(parse_seconds("90").is_err());
        assert!(parse_seconds("2027-01-01T00:00:00Z").is_err());
    }

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
