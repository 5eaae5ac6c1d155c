//! The `marshal` command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use marshal::api;
use marshal::error::Error;
use marshal::placement::Settings;
use marshal::plan;

#[derive(Parser)]
#[command(
    name = "marshal",
    version,
    about = "Places mission workloads across allied Kubernetes clusters under data-sovereignty rules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print every CRD as multi-document YAML, or write them to a directory.
    Crd {
        /// Write one file per CRD into `--dir` instead of printing.
        #[arg(long)]
        write: bool,
        /// Directory for `--write`.
        #[arg(long, default_value = "crds")]
        dir: PathBuf,
    },
    /// What-if planner: run the placement engine on YAML files, optionally through a scenario of events.
    Plan {
        /// Files or directories with SecurityPolicy, MemberCluster, ClusterLink and MissionWorkload YAML.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Scenario file with timed events.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Time zero (RFC 3339). Default: the newest observation in the inputs.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
        /// A heartbeat older than this makes a cluster unreachable.
        #[arg(long, default_value_t = 15)]
        cluster_grace: u32,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
}

fn write_crds(dir: &PathBuf) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
    for crd in api::crds() {
        let path = dir.join(api::crd_file_name(&crd));
        let text = serde_yaml::to_string(&crd).map_err(|e| Error::Output(e.to_string()))?;
        std::fs::write(&path, text).map_err(|source| Error::Write { path: path.clone(), source })?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Crd { write: true, dir } => write_crds(&dir),
        Command::Crd { write: false, .. } => {
            print!("{}", api::crds_yaml().map_err(|e| Error::Output(e.to_string()))?);
            Ok(())
        }
        Command::Plan { files, scenario, now, cluster_grace, output } => {
            let inputs = plan::input::read(&files)?;
            let events = match &scenario {
                Some(p) => plan::scenario::read(p)?,
                None => Vec::new(),
            };
            let settings = Settings { cluster_grace_seconds: cluster_grace };
            let result = plan::run(&inputs, &events, now, settings).map_err(|message| Error::Input {
                path: scenario.clone().unwrap_or_default(),
                object: "scenario".into(),
                message,
            })?;
            match output {
                Output::Table => print!("{}", plan::render::table(&result)),
                Output::Json => {
                    let text = serde_json::to_string_pretty(&plan::render::json(&result))
                        .map_err(|e| Error::Output(e.to_string()))?;
                    println!("{text}");
                }
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
