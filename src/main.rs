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
        /// A capacity report older than this (seconds) is unknown (`CapacityUnknown`).
        #[arg(long, default_value_t = marshal::placement::model::DEFAULT_CAPACITY_STALE_SECONDS)]
        capacity_stale: u32,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Pull mode: run the agent in (or beside) a member cluster, or print its hub RBAC or member guard.
    Agent(AgentCli),
    /// Explain a MissionWorkload's placements: why each cluster is in or out, from which fact, how old it is.
    Explain(marshal::explain_cli::ExplainArgs),
    /// Security policies: import SecurityPolicies from Open XML SPIF files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Generate an Ed25519 signing key for Assignments and print it as a hub Secret (YAML).
    Keygen {
        /// Namespace of the Secret.
        #[arg(long, default_value = "marshal-system")]
        namespace: String,
        /// Name of the Secret.
        #[arg(long, default_value = "marshal-signing-key")]
        name: String,
        /// Write the public key (the line agents trust) to this file.
        #[arg(long)]
        public_out: Option<PathBuf>,
        /// Files of further public keys the hub's push syncers keep trusting (the old key during a rotation).
        #[arg(long)]
        trust: Vec<PathBuf>,
        /// Print only the public key line of an existing private key (a file, or `-` for stdin), e.g. the one the
        /// hub chart generated: `kubectl -n marshal-system get secret marshal-signing-key -o
        /// jsonpath='{.data.signing-key}' | base64 -d | marshal keygen --public-from -`.
        #[arg(long, conflicts_with_all = ["public_out", "trust"])]
        public_from: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Read Open XML SPIF files and print one SecurityPolicy per file. Mappings to equivalent policies are resolved
    /// between the files given (give the SPIF of every policy a mapping names); anything Marshal cannot represent
    /// is refused with the element named.
    Import {
        /// SPIF files (XML).
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "yaml")]
        output: PolicyOutput,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PolicyOutput {
    Yaml,
    Json,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct AgentCli {
    #[command(subcommand)]
    command: Option<marshal::agent::AgentCommand>,
    #[command(flatten)]
    run: Option<marshal::agent::RunArgs>,
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
    /// A capacity report older than this (seconds) is unknown (`CapacityUnknown`): nothing new is placed on that
    /// cluster until it reports again. Keep it above twice the members' capacity interval.
    #[arg(long, default_value_t = marshal::placement::model::DEFAULT_CAPACITY_STALE_SECONDS)]
    capacity_stale: u32,
    /// Writes per second each member may receive from Marshal (token bucket).
    #[arg(long, default_value_t = 20)]
    member_write_budget: u32,
    /// Writes a member may receive at once after a quiet period (token bucket size).
    #[arg(long, default_value_t = 20)]
    member_write_burst: u32,
    /// Sign every Assignment with the Ed25519 key in this hub Secret (`NAMESPACE/NAME`, made by `marshal
    /// keygen`); push syncers then refuse Assignments not signed by its trusted keys. Without it Assignments
    /// are unsigned and push syncers do not check signatures (agents always do).
    #[arg(long)]
    signing_key_secret: Option<String>,
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
    /// How long an issued Assignment stays valid (seconds; its signed `notAfter`). It is renewed when half of it
    /// is left; a member cut off from the hub for longer keeps what runs but applies nothing new.
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(2..=31_536_000))]
    assignment_validity: u64,
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
    match &args.signing_key_secret {
        Some(secret) => marshal::controller::install_signing(&client, secret).await?,
        None => tracing::warn!("no --signing-key-secret: Assignments are not signed and agents will refuse them"),
    }
    ready.store(true, Ordering::Relaxed);
    if !args.no_push {
        let ctx = Arc::new(marshal::sync::SyncContext {
            hub: client.clone(),
            metrics: metrics.clone(),
            config: marshal::sync::SyncConfig {
                heartbeat_interval: Duration::from_secs(args.heartbeat_interval),
                cluster_grace: Duration::from_secs(args.cluster_grace),
                capacity_interval: Duration::from_secs(args.capacity_interval),
                write_budget: marshal::sync::budget::Budget::new(args.member_write_budget, args.member_write_burst),
                signing_secret: args.signing_key_secret.clone(),
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
        capacity_stale: Duration::from_secs(u64::from(args.capacity_stale)),
        concurrency: args.concurrency,
        assignment_validity: Duration::from_secs(args.assignment_validity),
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

fn agent(cli: AgentCli) -> Result<(), Error> {
    use marshal::agent::{AgentCommand, guard_yaml, rbac_yaml};
    let runtime = || tokio::runtime::Runtime::new().map_err(|e| Error::Output(e.to_string()));
    let text = match (cli.command, cli.run) {
        (Some(AgentCommand::Guard { cluster, clearance, syncer_users }), _) => {
            guard_yaml(&cluster, &clearance, &syncer_users).map_err(Error::Runtime)?
        }
        (Some(AgentCommand::Rbac { cluster, link_to, links_from_hub }), _) => {
            runtime()?.block_on(rbac_yaml(&cluster, &link_to, links_from_hub)).map_err(Error::Runtime)?
        }
        (None, Some(args)) => {
            return runtime()?.block_on(marshal::agent::run(args, shutdown_signal())).map_err(Error::Runtime);
        }
        (None, None) => {
            return Err(Error::Runtime(
                "marshal agent: --cluster, --hub-kubeconfig and --trusted-keys are required".into(),
            ));
        }
    };
    print!("{text}");
    Ok(())
}

fn keygen(namespace: &str, name: &str, public_out: Option<PathBuf>, trust: &[PathBuf]) -> Result<(), Error> {
    use marshal::signing;
    let mut trusted = Vec::new();
    for p in trust {
        let text = std::fs::read_to_string(p).map_err(|e| Error::Runtime(format!("--trust {}: {e}", p.display())))?;
        let ring =
            signing::KeyRing::parse(&text).map_err(|e| Error::Runtime(format!("--trust {}: {e}", p.display())))?;
        trusted.extend(ring.keys());
    }
    let signer = signing::Signer::generate().map_err(Error::Runtime)?;
    if let Some(p) = &public_out {
        let line = format!("{}  # {}\n", signing::public_key_text(&signer.public()), signer.id());
        std::fs::write(p, line).map_err(|source| Error::Write { path: p.clone(), source })?;
    }
    print!("{}", signing::secret_yaml(namespace, name, &signer, &trusted));
    eprintln!("signing key {} ({})", signer.id(), signing::public_key_text(&signer.public()));
    Ok(())
}

fn public_from(p: &PathBuf) -> Result<(), Error> {
    use marshal::signing;
    use std::io::Read;
    let mut text = String::new();
    if p.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| Error::Runtime(format!("stdin: {e}")))?;
    } else {
        text = std::fs::read_to_string(p).map_err(|e| Error::Runtime(format!("--public-from {}: {e}", p.display())))?;
    }
    let signer = signing::Signer::parse(&text).map_err(Error::Runtime)?;
    println!("{}  # {}", signing::public_key_text(&signer.public()), signer.id());
    Ok(())
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Controller(args) => {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| Error::Output(e.to_string()))?;
            runtime.block_on(controller(args)).map_err(Error::Runtime)
        }
        Command::Agent(cli) => agent(cli),
        Command::Explain(args) => {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| Error::Output(e.to_string()))?;
            print!("{}", runtime.block_on(marshal::explain_cli::run(args)).map_err(Error::Runtime)?);
            Ok(())
        }
        Command::Keygen { public_from: Some(p), .. } => public_from(&p),
        Command::Keygen { namespace, name, public_out, trust, public_from: None } => {
            keygen(&namespace, &name, public_out, &trust)
        }
        Command::Crd { write: true, dir } => write_crds(&dir),
        Command::Crd { write: false, .. } => {
            print!("{}", api::crds_yaml().map_err(|e| Error::Output(e.to_string()))?);
            Ok(())
        }
        Command::Policy { command: PolicyCommand::Import { files, output } } => {
            let policies = marshal::policy::import_files(&files)?;
            let text = match output {
                PolicyOutput::Yaml => marshal::policy::to_yaml(&policies).map_err(|e| Error::Output(e.to_string()))?,
                PolicyOutput::Json => marshal::policy::to_json(&policies).map_err(|e| Error::Output(e.to_string()))?,
            };
            print!("{text}");
            Ok(())
        }
        Command::Plan { files, scenario, now, cluster_grace, capacity_stale, output } => {
            let inputs = plan::input::read(&files)?;
            let events = match &scenario {
                Some(p) => plan::scenario::read(p)?,
                None => Vec::new(),
            };
            let settings = Settings { cluster_grace_seconds: cluster_grace, capacity_stale_seconds: capacity_stale };
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

/// The command line; named `kubectl marshal` in help and errors when started as the kubectl plugin.
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    if !std::env::args_os().next().is_some_and(|a| marshal::explain_cli::is_kubectl_plugin(&a)) {
        return Cli::parse();
    }
    let matches = Cli::command().name(marshal::explain_cli::KUBECTL_PLUGIN).bin_name("kubectl marshal").get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = parse_cli();
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
