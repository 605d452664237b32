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
    /// Print the CustomResourceDefinitions (BucketsCluster, BucketsPool) as YAML.
    Crd {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        output_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
