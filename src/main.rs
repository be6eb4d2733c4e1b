//! The `corecast` binary: flags, environment and a `--config` file → [`corecast::Config`] →
//! workers; signals → drain.
//!
//! `anyhow` is used here only, at the edge.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use corecast::amqp::{Amqp, Sink as AmqpSink};
use corecast::apps::chat::cluster::route;
use corecast::apps::chat::msg::ChatMsg;
use corecast::apps::gateway::msg::{home_of as gateway_home, GatewayMsg, RELAY_CLIENT};
use corecast::apps::{AppShared, Corecast, PeerMsg};
use corecast::config::flags::Args;
use corecast::config::load::{load, LoadError};
use corecast::relay::{RedisUrl, Relay, RelayConfig, RelayEvent, Sink};
use corecast::Server;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// corecast: WebSocket engine and real-time chat, notification and event server.
/// Serves /ws (chat), /echo, /broadcast, / (demo page), /health, /metrics, /api/ and the
/// gateway endpoints of a --config file.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: Args,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Prints a signed HS256 token for /ws and gateway endpoints (and nothing else), e.g.
    /// `corecast token --sub alice --name Alice --ttl 24h` or `corecast token --sub d1 --role driver`.
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The user id (`sub`): 1-128 bytes, no control characters.
    #[arg(long)]
    sub: String,
    /// The display name (`name`).
    #[arg(long)]
    name: Option<String>,
    /// A role for gateway endpoints with `roles` (repeat for several: one gives the `role`
    /// claim, several the `roles` claim).
    #[arg(long)]
    role: Vec<String>,
    /// Lifetime (`exp` = now + ttl).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// The HS256 secret (as the server's --jwt-secret).
    #[arg(long, env = "CORECAST_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, no backtrace: "corecast: binding 127.0.0.1:80: permission denied".
            let _ = writeln!(std::io::stderr(), "corecast: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `corecast token`: the token on stdout, nothing else.
fn print_token(t: TokenArgs, serve_secret: Option<String>) -> anyhow::Result<()> {
    let secret = t
        .jwt_secret
        .or(serve_secret)
        .ok_or_else(|| anyhow::anyhow!("token: --jwt-secret or CORECAST_JWT_SECRET is required"))?;
    if secret.is_empty() {
        anyhow::bail!("token: the jwt secret must not be empty");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let exp = now.saturating_add(t.ttl.as_secs().max(1));
    let token = corecast::apps::chat::admission::sign_token(
        &secret,
        &t.sub,
        t.name.as_deref(),
        &t.role,
        exp,
    )
    .map_err(|e| anyhow::anyhow!("token: {e}"))?;
    let mut out = std::io::stdout();
    writeln!(out, "{token}")?;
    Ok(())
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // lapin warns once per returned (unroutable) publish with the whole message,
                // body included, and once per failed connection attempt; the bridge reports
                // both itself (counters, one rate-limited line), without payloads.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,lapin=error")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal (journald and log files get plain lines); NO_COLOR too.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    // Flags > environment > --config file > defaults; the configuration comes back checked.
    let loaded = match load::<Cli>(
        std::env::args_os().collect(),
        |c| &c.serve,
        |c| c.cmd.is_none(),
    ) {
        Ok(l) => l,
        // --help and --version print and exit 0.
        Err(LoadError::Cli(e)) if !e.use_stderr() => e.exit(),
        Err(e) => anyhow::bail!("{e}"),
    };
    let cli = loaded.cli;
    if let Some(Cmd::Token(t)) = cli.cmd {
        return print_token(t, cli.serve.jwt_secret);
    }
    let cfg = loaded
        .config
        .ok_or_else(|| anyhow::anyhow!("no configuration"))?;
    if cli.serve.print_config {
        let mut out = std::io::stdout();
        out.write_all(corecast::config::print::to_toml(&cfg).as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    if cfg
        .jwt_secret
        .as_ref()
        .is_some_and(|s| s.0.len() < corecast::guard::jwt::MIN_SECRET_LEN)
    {
        tracing::warn!(
            min = corecast::guard::jwt::MIN_SECRET_LEN,
            "--jwt-secret is shorter than RFC 7518 asks for HS256 (32 bytes)"
        );
    }

    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let workers = cfg.workers;
    if cfg.jwt_secret.is_none() {
        tracing::warn!(
            "no --jwt-secret: /ws trusts ?username= (development mode); set a secret in production"
        );
    }
    // Register signals before the workers start so an early SIGTERM is not lost.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    let server = Server::bind(cfg.clone()).with_context(|| format!("binding {}", cfg.listen))?;
    let addr = server.local_addr();
    let relay = match &cfg.redis_url {
        Some(url) => {
            let url = RedisUrl::parse(&url.0)
                .map_err(|e| anyhow::anyhow!("invalid configuration: --redis-url: {e}"))?;
            let relay = Relay::new(RelayConfig {
                url,
                node_id: cfg.node_id.clone(),
                backlog: cfg.relay_backlog,
                first_connect: corecast::apps::chat::cluster::first_connect_commands(
                    &cfg,
                    &corecast::apps::chat::cluster::Scripts::new(),
                ),
            })
            .context("starting the relay")?;
            tracing::info!(node = %cfg.node_id, prefix = %cfg.redis_prefix, "relay on");
            Some(relay)
        }
        None => None,
    };
    let amqp = match &cfg.amqp {
        Some(a) => {
            let mut bridge = a.to_bridge(&cfg.node_id);
            bridge.backlog = cfg.amqp_backlog;
            bridge.start_grace = cfg.amqp_grace;
            let url = bridge.url_for_logs();
            if cfg.node_id == corecast::config::default_node_id() {
                tracing::warn!(
                    queue = %bridge.queue,
                    "no --node-id: the gateway's queue is named after this process; a restarted \
                     node gets a new queue and the old one's events expire with it (set --node-id)"
                );
            }
            let amqp = Amqp::new(bridge)
                .map_err(|e| anyhow::anyhow!("invalid configuration: [amqp]: {e}"))?;
            tracing::info!(%url, exchange = %a.exchange, "amqp gateway on");
            Some(amqp)
        }
        None => None,
    };
    if cfg.amqp.as_ref().is_some_and(|a| a.store_offline) && cfg.redis_url.is_none() {
        tracing::warn!(
            "[amqp] store_offline needs --redis-url (the stored events live in Redis): not storing"
        );
    }
    for e in &cfg.endpoints {
        if let corecast::config::Identity::Query(p) = &e.identity {
            tracing::warn!(
                path = %e.path,
                "gateway endpoint trusts ?{p}= (development mode); set --jwt-secret in production"
            );
        }
    }
    let shared = AppShared::new(
        cfg.clone(),
        server.shared().clone(),
        relay.as_ref().map(Relay::handle),
        amqp.as_ref().map(Amqp::handle),
    )
    .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let app_shared = shared.clone();
    let handle = server
        .start(move |worker| Corecast::new(worker, &app_shared))
        .context("starting workers")?;
    let mut relay_thread = None;
    if let (Some(relay), Some((_, scripts))) = (relay, shared.relay.as_ref()) {
        let to_workers = handle.sender();
        let waker = handle.sender();
        let workers = to_workers.workers();
        let prefix = cfg.redis_prefix.clone();
        let sink = Sink {
            deliver: Box::new(move |w, ev| {
                let msg = match ev {
                    // The gateway's offline store asked.
                    RelayEvent::Reply { client, .. } if client == RELAY_CLIENT => {
                        PeerMsg::Gateway(GatewayMsg::Relay(ev))
                    }
                    RelayEvent::Up => {
                        let _ = to_workers.send_quietly(w, PeerMsg::Gateway(GatewayMsg::RelayUp));
                        PeerMsg::Chat(ChatMsg::Relay(ev))
                    }
                    ev => PeerMsg::Chat(ChatMsg::Relay(ev)),
                };
                let _ = to_workers.send_quietly(w, msg);
            }),
            wake: Box::new(move |w| waker.wake(w)),
            route: Box::new(move |channel| route(&prefix, workers, channel)),
            workers,
        };
        relay_thread = Some((
            relay.handle(),
            relay
                .start(sink, scripts.all())
                .context("starting the relay")?,
        ));
    }
    let mut amqp_thread = None;
    if let Some(amqp) = amqp {
        let to_workers = handle.sender();
        let waker = handle.sender();
        let workers = to_workers.workers();
        let sink = AmqpSink {
            deliver: Box::new(move |w, ev| {
                let _ = to_workers.send_quietly(w, PeerMsg::Gateway(GatewayMsg::Amqp(ev)));
            }),
            wake: Box::new(move |w| waker.wake(w)),
            route: Box::new(move |owner| gateway_home(owner, workers)),
            workers,
        };
        amqp_thread = Some((
            amqp.handle(),
            amqp.start(sink).context("starting the amqp bridge")?,
        ));
    }
    tracing::info!(%addr, workers, "corecast listening");
    // One machine-readable line on stdout for scripts and tests.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();

    let first = signals.forever().next();
    tracing::info!(signal = ?first, "draining");
    handle.shutdown();
    // A second signal ends the process at once.
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            std::process::exit(130);
        }
    });
    let stats = handle.stats();
    handle.join();
    // The workers' last words to Redis (leaves, connection counts of the drained clients)
    // are written before the process ends.
    if let Some((relay, thread)) = relay_thread {
        relay.stop();
        let _ = thread.join();
    }
    // Lifecycle events of the drained clients are published, deliveries not acknowledged
    // yet go back to the queue.
    if let Some((amqp, thread)) = amqp_thread {
        amqp.stop();
        let _ = thread.join();
    }
    tracing::info!(?stats, "stopped");
    Ok(())
}
