//! The serving flags (clap, each with its `CORECAST_*` environment variable), their value
//! parsers, and how each may be written in a `--config` file ([`file_kind`]). This is the
//! one table of settings: the file loader, `--print-config` and `--help` all read it.
//!
//! Parsing only: clap reads the command line and the environment; nothing here opens files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::{Config, Secret};
use crate::ws::deflate::CompressionMode;

/// The serving flags, each with its `CORECAST_*` environment variable. `main` flattens them
/// into its command line; [`super::load`] merges a `--config` file under them.
// The field comments are `--help` text, which shows brackets as they are
// (`scheme://host[:port]`), not Markdown links.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A TOML file that sets any of these flags by name (`history = 200`) and defines gateway
    /// endpoints (`[amqp]`, `[[endpoint]]`); flags and environment variables win over it.
    #[arg(long, env = "CORECAST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Prints the effective configuration as TOML (secrets as "***") and exits.
    #[arg(long)]
    pub print_config: bool,

    /// Address to listen on.
    #[arg(long, env = "CORECAST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Worker threads (one event loop each). Default: available cores.
    #[arg(long, env = "CORECAST_WORKERS")]
    pub workers: Option<usize>,
    /// Largest frame payload (bytes; suffixes K, KiB, M, MiB accepted).
    #[arg(long, env = "CORECAST_MAX_FRAME", default_value = "16MiB", value_parser = parse_size)]
    pub max_frame: usize,
    /// Largest message, all fragments together.
    #[arg(long, env = "CORECAST_MAX_MESSAGE", default_value = "16MiB", value_parser = parse_size)]
    pub max_message: usize,
    /// Largest HTTP request head (431 above it).
    #[arg(long, env = "CORECAST_MAX_HEAD", default_value = "8KiB", value_parser = parse_size)]
    pub max_head: usize,
    /// Ping a peer that has been silent this long (e.g. 30s, 500ms).
    #[arg(long, env = "CORECAST_PING_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,
    /// Close a peer that has been silent this long.
    #[arg(long, env = "CORECAST_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Close a connection whose upgrade request is incomplete after this long (408).
    #[arg(long, env = "CORECAST_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Wait this long for the peer's side of a close.
    #[arg(long, env = "CORECAST_CLOSE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub close_timeout: Duration,
    /// Close a connection whose pending output made no progress for this long.
    #[arg(long, env = "CORECAST_WRITE_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_stall_timeout: Duration,
    /// On SIGINT/SIGTERM, wait this long for peers to close.
    #[arg(long, env = "CORECAST_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Connections the process accepts (503 beyond).
    #[arg(long, env = "CORECAST_MAX_CONNECTIONS", default_value_t = 1_000_000)]
    pub max_connections: usize,
    /// Bytes queued for one connection before it is evicted as a slow consumer (1008).
    #[arg(long, env = "CORECAST_SEND_BUFFER_LIMIT", default_value = "1MiB", value_parser = parse_size)]
    pub send_buffer_limit: usize,
    /// listen(2) backlog per worker.
    #[arg(long, env = "CORECAST_BACKLOG", default_value_t = 1024)]
    pub backlog: i32,
    /// permessage-deflate: off, shared (no server context takeover, one compressor per
    /// worker; default) or dedicated (per-connection compressor with context takeover).
    #[arg(long, env = "CORECAST_COMPRESSION", default_value = "shared", value_parser = parse_mode)]
    pub compression: CompressionMode,
    /// Deflate level 0-9.
    #[arg(long, env = "CORECAST_COMPRESSION_LEVEL", default_value_t = 1)]
    pub compression_level: u8,
    /// Messages shorter than this are sent uncompressed.
    #[arg(long, env = "CORECAST_COMPRESSION_MIN_SIZE", default_value = "128", value_parser = parse_size)]
    pub compression_min_size: usize,

    /// Chat: messages kept per room for history and `since` recovery.
    #[arg(long, env = "CORECAST_HISTORY", default_value_t = 100)]
    pub history: usize,
    /// Chat: how long an empty room keeps its history and seq.
    #[arg(long, env = "CORECAST_ROOM_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub room_ttl: Duration,
    /// Chat: no join/leave notices in rooms with more members than this.
    #[arg(long, env = "CORECAST_PRESENCE_MAX_MEMBERS", default_value_t = 1000)]
    pub presence_max_members: usize,
    /// Chat: largest /ws message (after inflate); larger ones close with 1009.
    #[arg(long, env = "CORECAST_CHAT_MAX_MESSAGE", default_value = "4KiB", value_parser = parse_size)]
    pub chat_max_message: usize,
    /// Chat: rooms per connection, general included.
    #[arg(long, env = "CORECAST_MAX_ROOMS", default_value_t = 100)]
    pub max_rooms: usize,
    /// Chat: /ws upgrade attempts per client IP per second.
    #[arg(long, env = "CORECAST_CONN_RATE", default_value_t = 20)]
    pub conn_rate: u32,
    /// Chat: burst of upgrade attempts per client IP.
    #[arg(long, env = "CORECAST_CONN_BURST", default_value_t = 40)]
    pub conn_burst: u32,
    /// Chat: messages per connection per second.
    #[arg(long, env = "CORECAST_MSG_RATE", default_value_t = 20)]
    pub msg_rate: u32,
    /// Chat: burst of messages per connection.
    #[arg(long, env = "CORECAST_MSG_BURST", default_value_t = 40)]
    pub msg_burst: u32,
    /// Proxies whose X-Forwarded-For / X-Real-IP are believed (comma-separated IPs or CIDRs).
    #[arg(long, env = "CORECAST_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Origins allowed on /ws (comma-separated scheme://host[:port], or *); default same-origin.
    #[arg(long, env = "CORECAST_ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// HS256 secret: /ws requires a JWT (query token, cookie token or Authorization: Bearer).
    #[arg(long, env = "CORECAST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Enables the HTTP API (/api/...) with this key (Authorization: Bearer KEY).
    #[arg(long, env = "CORECAST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Joins this node to others through Redis: redis://[[user]:password@]host[:port][/db].
    #[arg(long, env = "CORECAST_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// This node's id, unique in the cluster. Default: hostname-pid.
    #[arg(long, env = "CORECAST_NODE_ID")]
    pub node_id: Option<String>,
    /// Prefix of every Redis key and channel.
    #[arg(long, env = "CORECAST_REDIS_PREFIX", default_value = "corecast")]
    pub redis_prefix: String,
    /// Stored notifications kept per user (relay on; oldest dropped).
    #[arg(long, env = "CORECAST_INBOX_MAX", default_value_t = 100)]
    pub inbox_max: usize,
    /// How long stored notifications are kept.
    #[arg(long, env = "CORECAST_INBOX_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    pub inbox_ttl: Duration,
    /// Commands kept for Redis while it is unreachable: the room messages to replay to the other nodes, leaves, connection counts (oldest dropped).
    #[arg(long, env = "CORECAST_RELAY_BACKLOG", default_value_t = 10_000)]
    pub relay_backlog: usize,
    /// Upstream publishes kept while RabbitMQ is unreachable (gateway; beyond it they fail with upstream_unavailable).
    #[arg(long, env = "CORECAST_AMQP_BACKLOG", default_value_t = 10_000)]
    pub amqp_backlog: usize,
    /// After start, how long the gateway waits before it handles its queue's events, so that devices reconnecting to a restarted node get the events kept for them (0: at once).
    #[arg(long, env = "CORECAST_AMQP_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub amqp_grace: Duration,
}

/// `--compression`: off, shared or dedicated.
pub fn parse_mode(s: &str) -> Result<CompressionMode, String> {
    match s {
        "off" => Ok(CompressionMode::Off),
        "shared" => Ok(CompressionMode::Shared),
        "dedicated" => Ok(CompressionMode::Dedicated),
        _ => Err(format!("expected off, shared or dedicated, got {s:?}")),
    }
}

/// A size in bytes: digits, then optionally K/KB/KiB, M/MB/MiB or G/GB/GiB (all binary;
/// case-insensitive).
pub fn parse_size(s: &str) -> Result<usize, String> {
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
    /// The settings these flags give ([`Config::amqp`] and [`Config::endpoints`] come from
    /// the file alone and stay empty here).
    pub fn into_config(self) -> Config {
        Config {
            listen: self.listen,
            workers: self.workers.unwrap_or_else(default_workers),
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
            node_id: self.node_id.unwrap_or_else(|| default_node_id().to_owned()),
            redis_prefix: self.redis_prefix,
            inbox_max: self.inbox_max,
            inbox_ttl: self.inbox_ttl,
            relay_backlog: self.relay_backlog,
            amqp_backlog: self.amqp_backlog,
            amqp_grace: self.amqp_grace,
            amqp: None,
            endpoints: Vec::new(),
        }
    }
}

/// [`Config::default`]'s machine-dependent values, computed once per process: the loader
/// builds a configuration several times (to find which file line made it invalid), and
/// counting the cores reads cgroup files.
fn machine_defaults() -> &'static (usize, String) {
    static DEFAULTS: OnceLock<(usize, String)> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let d = Config::default();
        (d.workers, d.node_id)
    })
}

/// `--workers` when not given: the available cores (as [`Config::default`]).
pub fn default_workers() -> usize {
    machine_defaults().0
}

/// `--node-id` when not given: hostname-pid (as [`Config::default`]).
pub fn default_node_id() -> &'static str {
    &machine_defaults().1
}

/// How a flag is written in a `--config` file. Whatever the form, the value reaches the
/// flag's own parser as the text the flag would take, so the file and the flag accept the
/// same values and refuse them with the same message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A string: `listen = "0.0.0.0:8080"`.
    Str,
    /// An integer: `history = 200`.
    Int,
    /// Bytes: an integer, or a string with a unit as the flag takes: `max-frame = "16MiB"`.
    Size,
    /// A duration string as the flag takes: `room-ttl = "10m"`.
    Duration,
    /// An array of strings, or the flag's comma-separated string:
    /// `allowed-origins = ["https://a.example", "https://b.example"]`.
    List,
}

/// Every flag a `--config` file may set, by long name, in `--help` order. Not `config` (no
/// includes) nor `print-config` (an action, not a setting).
pub const FILE_KEYS: &[(&str, FileKind)] = &[
    ("listen", FileKind::Str),
    ("workers", FileKind::Int),
    ("max-frame", FileKind::Size),
    ("max-message", FileKind::Size),
    ("max-head", FileKind::Size),
    ("ping-interval", FileKind::Duration),
    ("idle-timeout", FileKind::Duration),
    ("handshake-timeout", FileKind::Duration),
    ("close-timeout", FileKind::Duration),
    ("write-stall-timeout", FileKind::Duration),
    ("drain-timeout", FileKind::Duration),
    ("max-connections", FileKind::Int),
    ("send-buffer-limit", FileKind::Size),
    ("backlog", FileKind::Int),
    ("compression", FileKind::Str),
    ("compression-level", FileKind::Int),
    ("compression-min-size", FileKind::Size),
    ("history", FileKind::Int),
    ("room-ttl", FileKind::Duration),
    ("presence-max-members", FileKind::Int),
    ("chat-max-message", FileKind::Size),
    ("max-rooms", FileKind::Int),
    ("conn-rate", FileKind::Int),
    ("conn-burst", FileKind::Int),
    ("msg-rate", FileKind::Int),
    ("msg-burst", FileKind::Int),
    ("trusted-proxies", FileKind::List),
    ("allowed-origins", FileKind::List),
    ("jwt-secret", FileKind::Str),
    ("api-key", FileKind::Str),
    ("redis-url", FileKind::Str),
    ("node-id", FileKind::Str),
    ("redis-prefix", FileKind::Str),
    ("inbox-max", FileKind::Int),
    ("inbox-ttl", FileKind::Duration),
    ("relay-backlog", FileKind::Int),
    ("amqp-backlog", FileKind::Int),
    ("amqp-grace", FileKind::Duration),
];

/// How flag `--long` is written in a `--config` file; `None` when a file cannot set it.
pub fn file_kind(long: &str) -> Option<FileKind> {
    FILE_KEYS
        .iter()
        .find(|(k, _)| *k == long)
        .map(|(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("8k"), Ok(8 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1x").is_err());
        assert!(parse_size("").is_err());
    }

    /// The file table and the flags cannot drift apart: a new flag without a file form (or a
    /// file key without a flag) fails here.
    #[test]
    fn every_flag_has_a_file_form() {
        let cmd = Cli::command();
        let longs: Vec<&str> = cmd
            .get_arguments()
            .filter_map(clap::Arg::get_long)
            .filter(|l| !matches!(*l, "config" | "print-config" | "help" | "version"))
            .collect();
        let keys: Vec<&str> = FILE_KEYS.iter().map(|(k, _)| *k).collect();
        assert_eq!(longs, keys);
    }
}
