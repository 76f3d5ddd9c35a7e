//! `chat-node`: the fault-tolerant chat server, its interactive client, two probes and a
//! test tool (`forge`, an outsider that replays and forges peer datagrams).

use chat_node::client::{discovery, probe, ui, SessionConfig};
use chat_node::settings::ServeArgs;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "chat-node",
    version,
    about = "A fault-tolerant chat server cluster: UDP discovery, heartbeats, LCR election, replicated chat log",
    after_help = "\
Examples:
  # three servers on one subnet find each other by broadcast and elect a leader; every
  # one needs the same cluster secret (openssl rand -hex 32 > /etc/chat-node/secret)
  chat-node serve --id 1 --cluster-size 3 --data-dir /var/lib/chat-node \
      --cluster-secret-file /etc/chat-node/secret
  chat-node serve --cluster-size 3 --log-format pretty --insecure   # an experiment

  # chat: finds a server by broadcast (or give --server ip:7070); asks for the password
  chat-node client --user alice

  # ask a node how it sees the cluster; the container healthcheck
  chat-node status --addr 10.99.0.2:7070
  chat-node status --json
  chat-node health || echo unhealthy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server. Every flag also reads an environment variable (shown in brackets).
    #[command(after_help = "\
Examples:
  chat-node serve --id 1 --cluster-size 3 --cluster-secret-file ./secret
  chat-node serve --id 2 --heartbeat 50ms --failure-timeout 300ms --data-dir ./n2 \
      --cluster-secret-file ./secret
  CHAT_NODE_ID=3 CHAT_INTERFACE=eth0 CHAT_CLUSTER_SECRET_FILE=./secret chat-node serve

Without a cluster secret (--cluster-secret-file, --cluster-secret, CHAT_CLUSTER_SECRET) a
node refuses to start, unless --insecure (experiments and self-tests only).

Events go to stdout as JSON lines (see docs/EVENTS.md); diagnostics go to stderr
(RUST_LOG=debug for more). SIGTERM leaves the cluster gracefully.")]
    Serve(ServeArgs),

    /// Chat interactively: /msg, /join, /post, /rooms, /who, /status, /help, /quit.
    #[command(after_help = "\
Examples:
  chat-node client --user alice                     # find a server by broadcast
  chat-node client --user bob --server 10.99.0.2:7070 --password-file ~/.chat-pw
  printf '/join general\\nhello\\n/quit\\n' | CHAT_PASSWORD=s3cret chat-node client --user carol

The first login of a name registers it with the password given; every later login needs it.
Without --password-file or CHAT_PASSWORD the password is asked on the terminal (not echoed).")]
    Client(ClientArgs),

    /// Print how a node sees the cluster (leader, epoch, members).
    #[command(after_help = "\
Examples:
  chat-node status                                  # the node on this host
  docker exec node1 /chat-node status --json")]
    Status(StatusArgs),

    /// Exit 0 if the local node answers a UDP `find_server` within 1 s, else 1 (the image's
    /// HEALTHCHECK; over UDP so probes leave no client sessions in the event log).
    Health(HealthArgs),

    /// TEST TOOL, not part of a deployment: run as an outsider on the cluster's network (not
    /// a member) that captures and replays peer datagrams and forges every message kind, for
    /// a fixed time. The harness's `forge:` step runs it; JSON lines on stdout say what it
    /// sent (started, learned, progress, done).
    #[command(after_help = "\
Examples:
  chat-node forge --for 10s --rate 200 --kinds all
  chat-node forge --for 5s --kinds heartbeat,append --target 10.99.0.11:7400 --user alice

Point it only at a test cluster: against nodes started with --insecure (no cluster secret)
one forged heartbeat poisons the epoch for good.")]
    Forge(chat_node::forge::ForgeArgs),
}

#[derive(clap::Args)]
struct ClientArgs {
    /// Your user name (1-32 characters of A-Z a-z 0-9 _ . -).
    #[arg(long, env = "CHAT_USER")]
    user: String,
    /// A file whose first line is the password (for scripts). Default: CHAT_PASSWORD, else
    /// ask on the terminal without echo.
    #[arg(long)]
    password_file: Option<std::path::PathBuf>,
    /// A server's client address; repeat for several. Default: find servers by broadcast.
    #[arg(long = "server", env = "CHAT_SERVER", value_delimiter = ',')]
    servers: Vec<String>,
    /// Cluster name to look for.
    #[arg(long, env = "CHAT_CLUSTER", default_value = "faultline")]
    cluster: String,
    /// The servers' peer port, where discovery broadcasts go.
    #[arg(long, env = "CHAT_PEER_PORT", default_value_t = 7400)]
    peer_port: u16,
    /// Log in where the leader's assignment sends you (the least-loaded live server; every
    /// server serves chat) instead of moving to the leader.
    #[arg(long, env = "CHAT_ASSIGNED", value_parser = clap::builder::BoolishValueParser::new())]
    assigned: bool,
}

#[derive(clap::Args)]
struct StatusArgs {
    /// The node's client address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    addr: String,
    /// Print the status as JSON (protocol::ClusterStatus).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct HealthArgs {
    /// The cluster name the local node serves. Default: the one the container's `serve`
    /// (PID 1) was started with, flags or environment, else CHAT_CLUSTER, else `faultline`.
    #[arg(long)]
    cluster: Option<String>,
    /// The local node's UDP peer port. Default: as for `--cluster` (7400).
    #[arg(long)]
    peer_port: Option<u16>,
}

fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people: container logs and the harness get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn runtime(multi_thread: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
}

/// The client's password: `--password-file`, else `CHAT_PASSWORD`, else asked on the
/// terminal without echo.
fn password(args: &ClientArgs) -> anyhow::Result<String> {
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading --password-file {}: {e}", path.display()))?;
        let first = text.lines().next().unwrap_or("").to_string();
        if first.is_empty() {
            anyhow::bail!(
                "--password-file {}: the first line is empty",
                path.display()
            );
        }
        return Ok(first);
    }
    if let Ok(password) = std::env::var("CHAT_PASSWORD") {
        if !password.is_empty() {
            return Ok(password);
        }
    }
    rpassword::prompt_password(format!("password for {}: ", args.user)).map_err(|e| {
        anyhow::anyhow!(
            "cannot ask for the password ({e}): give --password-file PATH or set CHAT_PASSWORD"
        )
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => {
            chat_node::runtime::memory::return_large_blocks();
            init_tracing("info");
            runtime(true).map_err(Into::into).and_then(|rt| {
                rt.block_on(chat_node::runtime::serve(args))
                    .map(|_| ExitCode::SUCCESS)
            })
        }
        Command::Client(args) => {
            init_tracing("warn");
            password(&args).and_then(|password| {
                let mut config = SessionConfig::new(&args.user, &password);
                config.cluster = args.cluster;
                config.peer_port = args.peer_port;
                config.servers = args.servers;
                config.prefer_leader = !args.assigned;
                runtime(true)
                    .map_err(Into::into)
                    .and_then(|rt| rt.block_on(ui::run(config)).map(|_| ExitCode::SUCCESS))
            })
        }
        Command::Status(args) => {
            init_tracing("warn");
            runtime(false).map_err(Into::into).and_then(|rt| {
                let status =
                    rt.block_on(probe::cluster_status(&args.addr, Duration::from_secs(3)))?;
                if args.json {
                    println!("{}", serde_json::to_string(&status)?);
                } else {
                    print!("{}", probe::format_status(&status));
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Forge(args) => {
            init_tracing("warn");
            runtime(false).map_err(Into::into).and_then(|rt| {
                rt.block_on(chat_node::forge::run(args))
                    .map(|_| ExitCode::SUCCESS)
            })
        }
        Command::Health(args) => {
            init_tracing("warn");
            // Ask with the settings the node runs with: PID 1's `serve` command line (the
            // container's), else the environment and defaults `serve` would use.
            let serving = ServeArgs::of_pid1().or_else(|| {
                ServeArgs::from_command_line(&["chat-node".to_string(), "serve".to_string()])
            });
            let cluster = args
                .cluster
                .or_else(|| serving.as_ref().map(|s| s.cluster.clone()))
                .unwrap_or_else(|| "faultline".to_string());
            let peer_port = args
                .peer_port
                .or_else(|| serving.as_ref().map(|s| s.peer_port))
                .unwrap_or(7400);
            // A `find_server` datagram to the local node: answered by the same loop that runs
            // the protocol, so an answer means the node is alive and not stuck.
            let local = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, peer_port));
            runtime(false).map_err(Into::into).map(|rt| {
                match rt.block_on(discovery::ask_one(&cluster, local, Duration::from_secs(1))) {
                    Ok(Some(info)) => {
                        println!(
                            "healthy: node {} is {} in epoch {}",
                            info.node, info.role, info.epoch
                        );
                        ExitCode::SUCCESS
                    }
                    Ok(None) => {
                        eprintln!(
                            "unhealthy: no answer from cluster `{cluster}` on {local} within 1 s"
                        );
                        ExitCode::FAILURE
                    }
                    Err(e) => {
                        eprintln!("unhealthy: cannot ask {local}: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat-node: {e:#}");
            ExitCode::from(2)
        }
    }
}
