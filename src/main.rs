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
    /// Run the hub controller (and the push-mode syncers) against the ambient kubeconfig or in-cluster config.
    Controller(ControllerArgs),
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

#[derive(clap::Args)]
struct ControllerArgs {
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// A heartbeat older than this (seconds) makes a cluster unreachable.
    #[arg(long, default_value_t = 15)]
    cluster_grace: u64,
    /// How often syncers renew their heartbeat (seconds).
    #[arg(long, default_value_t = 5)]
    heartbeat_interval: u64,
    /// How often syncers summarise member capacity (seconds).
    #[arg(long, default_value_t = 10)]
    capacity_interval: u64,
    /// Elect a leader among replicas with a Lease; only the leader writes.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leader Lease (defaults to $POD_NAMESPACE, then marshal-system).
    #[arg(long)]
    leader_namespace: Option<String>,
    /// Workloads reconciled in parallel.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Do not run push-mode syncers in this process.
    #[arg(long)]
    no_push: bool,
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn controller(args: ControllerArgs) -> Result<(), String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    let client = kube::Client::try_default().await.map_err(|e| format!("cannot connect to the hub: {e}"))?;
    let metrics = marshal::metrics::Metrics::new().map_err(|e| format!("metrics: {e}"))?;
    let ready = Arc::new(AtomicBool::new(false));
    let http = marshal::http::HttpState { metrics: metrics.clone(), ready: ready.clone() };
    let addr = args.metrics_addr;
    tokio::spawn(async move {
        if let Err(e) = marshal::http::serve(addr, http).await {
            tracing::error!(error = %e, %addr, "cannot serve metrics");
            std::process::exit(2);
        }
    });
    marshal::controller::wait_for_crds(&client, Duration::from_secs(120)).await?;
    let leader = if args.leader_elect {
        let ns = args
            .leader_namespace
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "marshal-system".into());
        marshal::leader::acquire(client.clone(), &ns, metrics.clone()).await?
    } else {
        metrics.leader.set(1);
        Arc::new(AtomicBool::new(true))
    };
    ready.store(true, Ordering::Relaxed);
    if !args.no_push {
        let ctx = Arc::new(marshal::sync::SyncContext {
            hub: client.clone(),
            metrics: metrics.clone(),
            config: marshal::sync::SyncConfig {
                heartbeat_interval: Duration::from_secs(args.heartbeat_interval),
                cluster_grace: Duration::from_secs(args.cluster_grace),
                capacity_interval: Duration::from_secs(args.capacity_interval),
            },
        });
        tokio::spawn(async move {
            if let Err(e) = marshal::sync::run_push(ctx, std::future::pending()).await {
                tracing::error!(error = %e, "push syncers stopped");
            }
        });
    }
    let opts = marshal::controller::Options {
        cluster_grace: Duration::from_secs(args.cluster_grace),
        concurrency: args.concurrency,
    };
    marshal::controller::run(client, metrics, opts, leader, shutdown_signal()).await.map_err(|e| e.to_string())
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
        Command::Controller(args) => {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| Error::Output(e.to_string()))?;
            runtime.block_on(controller(args)).map_err(Error::Runtime)
        }
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
