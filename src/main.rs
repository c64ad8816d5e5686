//! `huatuo-bamai`: run the agent (default) or talk to a running one (`ctl`, `events`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use ractor::Actor;

use huatuo_bamai::cli::events::EventsArgs;
use huatuo_bamai::cli::upstream_flags::{self, UpstreamFlags};
use huatuo_bamai::config::{self, FlagOverrides};
use huatuo_bamai::core::control_protocol::Request;
use huatuo_bamai::core::AgentContext;
use huatuo_bamai::supervisor::{AgentSupervisor, SupervisorArgs};
use huatuo_bamai::{cli::ctl, ebpf, registry, telemetry};

/// Exit code for configuration errors (unknown keys, wrong types, bad values).
const EXIT_CONFIG: u8 = 2;
/// How long `--dry-run` lets the agent run.
const DRY_RUN: std::time::Duration = std::time::Duration::from_secs(2);
const UPSTREAM_HEADING: &str = "Upstream HUATUO flags (accepted for compatibility)";

#[derive(Parser)]
#[command(
    name = "huatuo-bamai",
    version,
    about = "HUATUO node agent: kernel metrics from eBPF and procfs"
)]
struct Cli {
    /// Configuration file (TOML). Default: /etc/huatuo/huatuo-bamai.toml if it exists.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// `region` label on every series.
    #[arg(long)]
    region: Option<String>,
    /// HTTP listen address (http.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Control socket path (control.socket).
    #[arg(long)]
    control_socket: Option<PathBuf>,
    /// Log filter, e.g. `info` or `huatuo_bamai=debug` (agent.log_level).
    #[arg(long)]
    log_level: Option<String>,
    /// Root of procfs to read (agent.procfs_root), e.g. a fixture tree.
    #[arg(long)]
    procfs_root: Option<PathBuf>,
    /// Root of sysfs to read (agent.sysfs_root); cgroupfs is read below it at fs/cgroup.
    #[arg(long)]
    sysfs_root: Option<PathBuf>,
    /// Probes to disable, comma separated (e.g. `--disable softirq,runqlat`).
    #[arg(long, value_delimiter = ',')]
    disable: Vec<String>,
    /// Run for 2 s, then stop as on SIGTERM (start-up checks and tests; upstream's flag too).
    #[arg(long)]
    dry_run: bool,
    /// Upstream: the directory of the --config file.
    #[arg(long, help_heading = UPSTREAM_HEADING)]
    config_dir: Option<PathBuf>,
    /// Upstream: BPF object directory. Ignored: the BPF programs are embedded.
    #[arg(long, help_heading = UPSTREAM_HEADING)]
    bpf_dir: Option<PathBuf>,
    /// Upstream: tools directory for /tasks. Ignored: no external tools here.
    #[arg(long, help_heading = UPSTREAM_HEADING)]
    tools_bin_dir: Option<PathBuf>,
    /// Upstream: self cgroup limit. Ignored (use the DaemonSet's or systemd's limits).
    #[arg(long, help_heading = UPSTREAM_HEADING)]
    enable_cgroup: bool,
    /// Upstream: no kubelet. Ours: [containers] kubelet_url = "", kubelet_https_url = "".
    #[arg(long, help_heading = UPSTREAM_HEADING)]
    disable_kubelet: bool,
    /// Upstream: no storage. Ours: [events.elasticsearch] enabled = false.
    #[arg(long, help_heading = UPSTREAM_HEADING)]
    disable_storage: bool,
    /// Upstream tracer names to disable (comma separated). Ours: --disable.
    #[arg(long, value_delimiter = ',', help_heading = UPSTREAM_HEADING)]
    disable_tracing: Vec<String>,
    /// Upstream: debug logging. Ours: --log-level debug.
    #[arg(long, help_heading = UPSTREAM_HEADING)]
    log_debug: bool,
    /// Upstream: root prefix of /proc and /sys. Ours: --procfs-root P/proc --sysfs-root P/sys.
    #[arg(long, help_heading = UPSTREAM_HEADING)]
    procfs_prefix: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the configuration and print it as resolved (defaults, file, environment, flags).
    CheckConfig,
    /// Configuration files generated from the code's defaults and docs.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Talk to a running agent over its control socket.
    Ctl {
        /// Control socket (default: control.socket from the configuration).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Print the raw JSON reply.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: CtlAction,
    },
    /// Read the kernel events a running agent stored (over its HTTP API).
    Events(EventsArgs),
    /// Profile the host, a container or a process through a running agent (GET /v1/profile):
    /// a flame graph SVG, folded stacks, flamedata JSON or pprof, by the -o extension.
    Profile(huatuo_bamai::cli::profile::ProfileArgs),
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the default configuration file, every key documented (config/huatuo-bamai.toml).
    Default {
        /// The DaemonSet's variant (host paths under /host, as deploy/kubernetes mounts them).
        #[arg(long)]
        daemonset: bool,
    },
    /// Convert upstream HUATUO's huatuo-bamai.conf to ours, on stdout; what cannot be carried
    /// over is listed on stderr (`not supported: <Key>: <why>`) and as comments in the output.
    Import {
        /// The upstream configuration file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum CtlAction {
    /// Every actor: state, restarts, last error, uptime.
    Status,
    /// Start a probe live.
    Enable { name: String },
    /// Stop a probe live.
    Disable { name: String },
    /// Change one configuration key live (validated; on error the old config stays).
    Set { key: String, value: String },
    /// Re-read the configuration file and apply what changed.
    Reload,
    /// Fault injection: kill an actor as if it crashed; the supervisor restarts it.
    Kill { name: String },
}

fn main() -> ExitCode {
    // glibc gives each thread that allocates its own arena; with the tokio workers and the
    // blocking threads that load BPF objects that kept ~10 MiB of idle RSS in half-empty
    // arenas (measured: 57 -> 47 MiB). Two arenas are plenty for this agent's allocation rate.
    // Before any thread exists, as mallopt requires.
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let cli = Cli::parse_from(upstream_flags::normalize_args(std::env::args()));
    if cli.command.is_some() {
        // `ctl status | head` must end quietly, not panic on a closed pipe (the agent itself
        // keeps Rust's default, where a closed socket is an error value).
        // SAFETY: restoring the default SIGPIPE disposition has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let mut flags = FlagOverrides {
        region: cli.region.clone(),
        listen: cli.listen.clone(),
        control_socket: cli.control_socket.clone(),
        log_level: cli.log_level.clone(),
        procfs_root: cli.procfs_root.clone(),
        sysfs_root: cli.sysfs_root.clone(),
        disable: cli.disable.clone(),
        settings: Vec::new(),
    };
    let upstream = UpstreamFlags {
        config_dir: cli.config_dir.clone(),
        bpf_dir: cli.bpf_dir.clone(),
        tools_bin_dir: cli.tools_bin_dir.clone(),
        enable_cgroup: cli.enable_cgroup,
        disable_kubelet: cli.disable_kubelet,
        disable_storage: cli.disable_storage,
        disable_tracing: cli.disable_tracing.clone(),
        log_debug: cli.log_debug,
        procfs_prefix: cli.procfs_prefix.clone(),
    };
    let mut config_path = cli.config.clone();
    match upstream_flags::apply(
        &upstream,
        &mut config_path,
        &mut flags,
        &registry::probe_names(),
    ) {
        Ok(notes) => {
            for note in notes {
                eprintln!("huatuo-bamai: {note}");
            }
        }
        Err(e) => {
            eprintln!("huatuo-bamai: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let source = config::source_from(config_path.as_deref(), flags, registry::sections());
    let loaded = source.load();
    match cli.command {
        Some(Command::CheckConfig) => match loaded {
            Ok(config) => {
                // The effective config is for reading over a shoulder: no secrets in it.
                let mut tree = config.to_tree();
                mask_passwords(&mut tree);
                match toml::to_string_pretty(&tree) {
                    Ok(text) => println!("{text}"),
                    Err(e) => println!("{tree:#} ({e})"),
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&source.path, &e),
        },
        Some(Command::Config {
            action: ConfigAction::Default { daemonset },
        }) => {
            let overrides: &[config::template::Override] = if daemonset {
                &huatuo_bamai::containers::DAEMONSET_PATHS
            } else {
                &[]
            };
            print!(
                "{}",
                config::template::render(&registry::sections(), overrides)
            );
            ExitCode::SUCCESS
        }
        Some(Command::Config {
            action: ConfigAction::Import { file },
        }) => match config::upstream::import_file(&file, &registry::sections()) {
            Ok(imported) => {
                for unsupported in &imported.unsupported {
                    eprintln!("{unsupported}");
                }
                for note in &imported.notes {
                    eprintln!("note: {note}");
                }
                print!("{}", imported.text);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("huatuo-bamai config import: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Some(Command::Ctl {
            socket,
            json,
            action,
        }) => {
            let socket = socket
                .or_else(|| loaded.as_ref().ok().map(|c| c.control.socket.clone()))
                .unwrap_or_else(|| config::ControlConfig::default().socket);
            run_ctl(&socket, json, action)
        }
        Some(Command::Events(args)) => {
            let server = args.server.unwrap_or_else(|| {
                let listen = loaded.as_ref().ok().map(|c| c.http.listen.clone());
                let listen = listen.unwrap_or_else(|| config::HttpConfig::default().listen);
                huatuo_bamai::cli::events::server_of_listen(&listen)
            });
            huatuo_bamai::cli::events::run(&server, args.action)
        }
        Some(Command::Profile(args)) => {
            let server = args.server.clone().unwrap_or_else(|| {
                let listen = loaded.as_ref().ok().map(|c| c.http.listen.clone());
                let listen = listen.unwrap_or_else(|| config::HttpConfig::default().listen);
                huatuo_bamai::cli::events::server_of_listen(&listen)
            });
            huatuo_bamai::cli::profile::run(&server, &args)
        }
        None => match loaded {
            Ok(config) => run_agent(config, source, cli.dry_run),
            Err(e) => config_error(&source.path, &e),
        },
    }
}

/// Replaces every non-empty `password` value with asterisks.
fn mask_passwords(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = value {
        for (key, inner) in map.iter_mut() {
            if key == "password" && inner.as_str().is_some_and(|p| !p.is_empty()) {
                *inner = serde_json::Value::String("********".into());
            } else {
                mask_passwords(inner);
            }
        }
    }
}

fn config_error(path: &std::path::Path, error: &config::ConfigError) -> ExitCode {
    eprintln!(
        "huatuo-bamai: configuration error ({}): {error}",
        path.display()
    );
    ExitCode::from(EXIT_CONFIG)
}

fn run_ctl(socket: &std::path::Path, json: bool, action: CtlAction) -> ExitCode {
    let request = match action {
        CtlAction::Status => Request::Status,
        CtlAction::Enable { name } => Request::Enable { name },
        CtlAction::Disable { name } => Request::Disable { name },
        CtlAction::Set { key, value } => Request::Set { key, value },
        CtlAction::Reload => Request::Reload,
        CtlAction::Kill { name } => Request::Kill { name },
    };
    match ctl::send(socket, &request) {
        Ok(response) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&response).unwrap_or_default()
                );
            } else {
                println!("{}", ctl::render(&request, &response));
            }
            if response.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("huatuo-bamai ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_agent(config: config::Config, source: config::ConfigSource, dry_run: bool) -> ExitCode {
    telemetry::init_logging(&config.agent.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("huatuo-bamai: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(agent(config, source, dry_run)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("huatuo-bamai: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn agent(
    config: config::Config,
    source: config::ConfigSource,
    dry_run: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    if !source.path.exists() {
        tracing::warn!(path = %source.path.display(), "no configuration file; using defaults");
    }
    let fs = ebpf::ensure_kernel_filesystems();
    for mounted in &fs.mounted {
        tracing::info!(mount_point = %mounted, "mounted kernel filesystem");
    }
    for failed in &fs.failed {
        tracing::warn!("kernel filesystem unavailable: {failed}");
    }
    // Held for the agent's lifetime; the kernel turns stats off again when it is dropped.
    let _bpf_stats = if config.agent.bpf_stats {
        ebpf::BpfStatsGuard::enable()
            .inspect_err(|e| tracing::warn!("{e}; BPF program costs will read 0"))
            .ok()
    } else {
        None
    };
    let prometheus = telemetry::install_recorder(&config).map_err(anyhow::Error::msg)?;
    let ctx = Arc::new(AgentContext::started_at(
        source, prometheus, &config, started,
    ));
    // The production tree is built here, where the program starts.
    let args = SupervisorArgs {
        config,
        ctx,
        parts: registry::parts(),
    };
    let (supervisor, handle) = Actor::spawn(Some("supervisor".to_string()), AgentSupervisor, args)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the supervisor: {e}"))?;

    // Start-up (BTF parsing, BPF loads) leaves ~10 MiB of freed heap that glibc keeps; hand it
    // back once probes are up, and again now and then after reconfigurations.
    tokio::spawn(async {
        let mut period = std::time::Duration::from_secs(5);
        loop {
            tokio::time::sleep(period).await;
            // SAFETY: malloc_trim only releases free heap pages; no preconditions.
            unsafe {
                libc::malloc_trim(0);
            }
            period = std::time::Duration::from_secs(300);
        }
    });

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut handle = handle;
    let dry_run_over = async {
        if dry_run {
            tokio::time::sleep(DRY_RUN).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = dry_run_over => tracing::info!("--dry-run: {DRY_RUN:?} passed, shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        result = &mut handle => {
            // The supervisor only ends by itself when a service could not start.
            let status = supervisor.get_status();
            return Err(anyhow::anyhow!("supervisor stopped ({status:?}): {result:?}; see the error above"));
        }
    }
    supervisor
        .stop_and_wait(
            Some("shutdown".into()),
            Some(std::time::Duration::from_secs(10)),
        )
        .await
        .map_err(|e| anyhow::anyhow!("shutdown: {e}"))?;
    Ok(())
}
