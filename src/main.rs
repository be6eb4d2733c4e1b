//! The `corecast` binary: flags and environment → [`Config`] → workers; signals → drain.
//!
//! `anyhow` is used here only, at the edge.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use corecast::apps::chat::cluster::route;
use corecast::apps::chat::msg::ChatMsg;
use corecast::apps::{AppShared, Corecast, PeerMsg};
use corecast::config::Secret;
use corecast::relay::{RedisUrl, Relay, RelayConfig, Sink};
use corecast::ws::deflate::CompressionMode;
use corecast::{Config, Server};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// corecast: WebSocket engine and real-time chat, notification and event server.
/// Serves /ws (chat), /echo, /broadcast, / (demo page), /health, /metrics and /api/.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: Args,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Prints a signed HS256 token for /ws (and nothing else), e.g.
    /// `corecast token --sub alice --name Alice --ttl 24h`.
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
    /// Lifetime (`exp` = now + ttl).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// The HS256 secret (as the server's --jwt-secret).
    #[arg(long, env = "CORECAST_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

/// Serving flags.
#[derive(Debug, clap::Args)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CORECAST_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads (one event loop each). Default: available cores.
    #[arg(long, env = "CORECAST_WORKERS")]
    workers: Option<usize>,
    /// Largest frame payload (bytes; suffixes K, KiB, M, MiB accepted).
    #[arg(long, env = "CORECAST_MAX_FRAME", default_value = "16MiB", value_parser = parse_size)]
    max_frame: usize,
    /// Largest message, all fragments together.
    #[arg(long, env = "CORECAST_MAX_MESSAGE", default_value = "16MiB", value_parser = parse_size)]
    max_message: usize,
    /// Largest HTTP request head (431 above it).
    #[arg(long, env = "CORECAST_MAX_HEAD", default_value = "8KiB", value_parser = parse_size)]
    max_head: usize,
    /// Ping a peer that has been silent this long (e.g. 30s, 500ms).
    #[arg(long, env = "CORECAST_PING_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    ping_interval: Duration,
    /// Close a peer that has been silent this long.
    #[arg(long, env = "CORECAST_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Close a connection whose upgrade request is incomplete after this long (408).
    #[arg(long, env = "CORECAST_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    handshake_timeout: Duration,
    /// Wait this long for the peer's side of a close.
    #[arg(long, env = "CORECAST_CLOSE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    close_timeout: Duration,
    /// Close a connection whose pending output made no progress for this long.
    #[arg(long, env = "CORECAST_WRITE_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    write_stall_timeout: Duration,
    /// On SIGINT/SIGTERM, wait this long for peers to close.
    #[arg(long, env = "CORECAST_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Connections the process accepts (503 beyond).
    #[arg(long, env = "CORECAST_MAX_CONNECTIONS", default_value_t = 1_000_000)]
    max_connections: usize,
    /// Bytes queued for one connection before it is evicted as a slow consumer (1008).
    #[arg(long, env = "CORECAST_SEND_BUFFER_LIMIT", default_value = "1MiB", value_parser = parse_size)]
    send_buffer_limit: usize,
    /// listen(2) backlog per worker.
    #[arg(long, env = "CORECAST_BACKLOG", default_value_t = 1024)]
    backlog: i32,
    /// permessage-deflate: off, shared (no server context takeover, one compressor per
    /// worker; default) or dedicated (per-connection compressor with context takeover).
    #[arg(long, env = "CORECAST_COMPRESSION", default_value = "shared", value_parser = parse_mode)]
    compression: CompressionMode,
    /// Deflate level 0-9.
    #[arg(long, env = "CORECAST_COMPRESSION_LEVEL", default_value_t = 1)]
    compression_level: u8,
    /// Messages shorter than this are sent uncompressed.
    #[arg(long, env = "CORECAST_COMPRESSION_MIN_SIZE", default_value = "128", value_parser = parse_size)]
    compression_min_size: usize,

    /// Chat: messages kept per room for history and `since` recovery.
    #[arg(long, env = "CORECAST_HISTORY", default_value_t = 100)]
    history: usize,
    /// Chat: how long an empty room keeps its history and seq.
    #[arg(long, env = "CORECAST_ROOM_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    room_ttl: Duration,
    /// Chat: no join/leave notices in rooms with more members than this.
    #[arg(long, env = "CORECAST_PRESENCE_MAX_MEMBERS", default_value_t = 1000)]
    presence_max_members: usize,
    /// Chat: largest /ws message (after inflate); larger ones close with 1009.
    #[arg(long, env = "CORECAST_CHAT_MAX_MESSAGE", default_value = "4KiB", value_parser = parse_size)]
    chat_max_message: usize,
    /// Chat: rooms per connection, general included.
    #[arg(long, env = "CORECAST_MAX_ROOMS", default_value_t = 100)]
    max_rooms: usize,
    /// Chat: /ws upgrade attempts per client IP per second.
    #[arg(long, env = "CORECAST_CONN_RATE", default_value_t = 20)]
    conn_rate: u32,
    /// Chat: burst of upgrade attempts per client IP.
    #[arg(long, env = "CORECAST_CONN_BURST", default_value_t = 40)]
    conn_burst: u32,
    /// Chat: messages per connection per second.
    #[arg(long, env = "CORECAST_MSG_RATE", default_value_t = 20)]
    msg_rate: u32,
    /// Chat: burst of messages per connection.
    #[arg(long, env = "CORECAST_MSG_BURST", default_value_t = 40)]
    msg_burst: u32,
    /// Proxies whose X-Forwarded-For / X-Real-IP are believed (comma-separated IPs or CIDRs).
    #[arg(long, env = "CORECAST_TRUSTED_PROXIES", default_value = "")]
    trusted_proxies: String,
    /// Origins allowed on /ws (comma-separated scheme://host[:port], or *); default same-origin.
    #[arg(long, env = "CORECAST_ALLOWED_ORIGINS")]
    allowed_origins: Option<String>,
    /// HS256 secret: /ws requires a JWT (query token, cookie token or Authorization: Bearer).
    #[arg(long, env = "CORECAST_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Enables the HTTP API (/api/...) with this key (Authorization: Bearer KEY).
    #[arg(long, env = "CORECAST_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// Joins this node to others through Redis: redis://[[user]:password@]host[:port][/db].
    #[arg(long, env = "CORECAST_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// This node's id, unique in the cluster. Default: hostname-pid.
    #[arg(long, env = "CORECAST_NODE_ID")]
    node_id: Option<String>,
    /// Prefix of every Redis key and channel.
    #[arg(long, env = "CORECAST_REDIS_PREFIX", default_value = "corecast")]
    redis_prefix: String,
    /// Stored notifications kept per user (relay on; oldest dropped).
    #[arg(long, env = "CORECAST_INBOX_MAX", default_value_t = 100)]
    inbox_max: usize,
    /// How long stored notifications are kept.
    #[arg(long, env = "CORECAST_INBOX_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    inbox_ttl: Duration,
    /// Commands kept for Redis while it is unreachable: the room messages to replay to the other nodes, leaves, connection counts (oldest dropped).
    #[arg(long, env = "CORECAST_RELAY_BACKLOG", default_value_t = 10_000)]
    relay_backlog: usize,
}

fn parse_mode(s: &str) -> Result<CompressionMode, String> {
    match s {
        "off" => Ok(CompressionMode::Off),
        "shared" => Ok(CompressionMode::Shared),
        "dedicated" => Ok(CompressionMode::Dedicated),
        _ => Err(format!("expected off, shared or dedicated, got {s:?}")),
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("unknown size unit {u:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

impl Args {
    fn into_config(self) -> Config {
        let d = Config::default();
        Config {
            listen: self.listen,
            workers: self.workers.unwrap_or(d.workers),
            max_frame: self.max_frame,
            max_message: self.max_message,
            max_head: self.max_head,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            handshake_timeout: self.handshake_timeout,
            close_timeout: self.close_timeout,
            write_stall_timeout: self.write_stall_timeout,
            drain_timeout: self.drain_timeout,
            max_connections: self.max_connections,
            send_buffer_limit: self.send_buffer_limit,
            backlog: self.backlog,
            compression: self.compression,
            compression_level: self.compression_level,
            compression_min_size: self.compression_min_size,
            history: self.history,
            room_ttl: self.room_ttl,
            presence_max_members: self.presence_max_members,
            chat_max_message: self.chat_max_message,
            max_rooms: self.max_rooms,
            conn_rate: self.conn_rate,
            conn_burst: self.conn_burst,
            msg_rate: self.msg_rate,
            msg_burst: self.msg_burst,
            trusted_proxies: self.trusted_proxies,
            allowed_origins: self.allowed_origins,
            jwt_secret: self.jwt_secret.map(Secret),
            api_key: self.api_key.map(Secret),
            redis_url: self.redis_url.map(Secret),
            node_id: self.node_id.unwrap_or(d.node_id),
            redis_prefix: self.redis_prefix,
            inbox_max: self.inbox_max,
            inbox_ttl: self.inbox_ttl,
            relay_backlog: self.relay_backlog,
        }
    }
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

/// The flags, or one line on what is wrong with them (`--help` and `--version` print and exit).
fn parse_args() -> anyhow::Result<Cli> {
    match Cli::try_parse() {
        Ok(a) => Ok(a),
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            anyhow::bail!("{}", first.trim_start_matches("error: "))
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
    let token =
        corecast::apps::chat::admission::sign_token(&secret, &t.sub, t.name.as_deref(), exp)
            .map_err(|e| anyhow::anyhow!("token: {e}"))?;
    let mut out = std::io::stdout();
    writeln!(out, "{token}")?;
    Ok(())
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal (journald and log files get plain lines); NO_COLOR too.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let cli = parse_args()?;
    if let Some(Cmd::Token(t)) = cli.cmd {
        return print_token(t, cli.serve.jwt_secret);
    }
    let cfg = cli.serve.into_config();
    cfg.validate().context("invalid configuration")?;
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
    let shared = AppShared::new(
        cfg.clone(),
        server.shared().clone(),
        relay.as_ref().map(Relay::handle),
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
                let _ = to_workers.send_quietly(w, PeerMsg::Chat(ChatMsg::Relay(ev)));
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
    tracing::info!(?stats, "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("8k"), Ok(8 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1x").is_err());
        assert!(parse_size("").is_err());
    }
}
