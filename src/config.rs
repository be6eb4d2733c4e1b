//! Server settings with their defaults. No IO: `main` fills this from flags, environment and
//! a `--config` file ([`load`]), tests build it directly, and [`Config::validate`] rejects
//! combinations that cannot work.
//!
//! Submodules: [`flags`] (the serving flags, the one table of settings), [`file`](mod@file) (reading a
//! TOML file), [`load`] (precedence: command line > environment > file > default),
//! [`print`](mod@print) (`--print-config`) and [`gateway`] (the event gateway's typed
//! settings).

pub mod file;
pub mod flags;
pub mod gateway;
pub mod load;
pub mod print;

use std::net::SocketAddr;
use std::time::Duration;

use crate::ws::deflate::CompressionMode;
pub use gateway::{AmqpConfig, DataEncoding, EndpointConfig, Identity};

/// Everything a running server needs to know. Every field has a default that serves
/// `/echo`, `/broadcast` and the chat service (development mode) safely on loopback.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address every worker listens on (SO_REUSEPORT). Default: 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// Worker threads, one event loop each. Default: available cores.
    pub workers: usize,
    /// Largest payload of one frame, bytes; a smaller `max_message` caps it. Default: 16 MiB.
    pub max_frame: usize,
    /// Largest message (all fragments), bytes. Default: 16 MiB.
    pub max_message: usize,
    /// Largest HTTP request head, bytes; larger heads get 431. Default: 8 KiB.
    pub max_head: usize,
    /// Send a ping after this long without traffic from the peer. Default: 30 s.
    pub ping_interval: Duration,
    /// Close a connection that sent nothing (not even a pong) for this long. Default: 60 s.
    pub idle_timeout: Duration,
    /// Close a connection whose upgrade request is not complete after this long. Default: 10 s.
    pub handshake_timeout: Duration,
    /// Wait this long for the peer's close frame / FIN after ours. Default: 5 s.
    pub close_timeout: Duration,
    /// Close a connection whose pending output made no progress for this long. Default: 30 s.
    pub write_stall_timeout: Duration,
    /// On SIGINT/SIGTERM, wait this long for peers to finish the close handshake. Default: 10 s.
    pub drain_timeout: Duration,
    /// Connections the whole process accepts; more get 503. Default: 1,000,000.
    pub max_connections: usize,
    /// Bytes queued for one connection beyond which it is evicted as a slow consumer (1008).
    /// A single message is always accepted into an queue that is below the limit, so the
    /// worst case is this plus one message. Default: 1 MiB.
    pub send_buffer_limit: usize,
    /// listen(2) backlog per worker. Default: 1024.
    pub backlog: i32,
    /// permessage-deflate memory policy. Default: shared.
    pub compression: CompressionMode,
    /// Deflate level 0-9. Default: 1 (fastest; text still shrinks several-fold).
    pub compression_level: u8,
    /// Messages shorter than this are sent uncompressed. Default: 128 bytes.
    pub compression_min_size: usize,

    // ---- chat service (`GET /ws`) ---------------------------------------------------------
    /// Messages kept per room for `history` and `since` recovery. Default: 100.
    pub history: usize,
    /// How long an empty room's history and seq are kept (a rejoin within it continues the
    /// seq). Default: 10 min.
    pub room_ttl: Duration,
    /// Presence notices (join/leave) are skipped in rooms with more members than this.
    /// Default: 1000.
    pub presence_max_members: usize,
    /// Largest `/ws` message (all fragments, after inflate); larger ones close with 1009.
    /// Default: 4 KiB.
    pub chat_max_message: usize,
    /// Rooms one connection may be in, `general` included. Default: 100.
    pub max_rooms: usize,
    /// Upgrade attempts on `/ws` per client IP per second (token bucket). Default: 20.
    pub conn_rate: u32,
    /// Burst of upgrade attempts per client IP. Default: 40.
    pub conn_burst: u32,
    /// Messages per `/ws` connection per second (token bucket). Default: 20.
    pub msg_rate: u32,
    /// Burst of messages per `/ws` connection. Default: 40.
    pub msg_burst: u32,
    /// Proxies whose `X-Forwarded-For` / `X-Real-IP` are believed: comma-separated IPs or
    /// CIDRs. Default: none.
    pub trusted_proxies: String,
    /// Origins allowed to open `/ws` (comma-separated `scheme://host[:port]`, or `*`).
    /// Default: none given, same-origin only.
    pub allowed_origins: Option<String>,
    /// HS256 secret for JWTs; without it `/ws` takes `?username=` (development).
    pub jwt_secret: Option<Secret>,
    /// Key for the HTTP API (`Authorization: Bearer KEY`); without it the API answers 403.
    pub api_key: Option<Secret>,

    // ---- many nodes as one (`--redis-url`) -------------------------------------------------
    /// `redis://[[user]:password@]host[:port][/db]`: joins this node to the others through
    /// Redis. Default: none (the node runs alone, with no Redis code on its paths).
    pub redis_url: Option<Secret>,
    /// This node's id, unique in the cluster (`[A-Za-z0-9._:-]{1,64}`). Default: hostname-pid.
    pub node_id: String,
    /// Prefix of every Redis key and channel. Default: `corecast`.
    pub redis_prefix: String,
    /// Stored notifications kept per user (oldest dropped). Default: 100.
    pub inbox_max: usize,
    /// How long stored notifications are kept. Default: 7 days.
    pub inbox_ttl: Duration,
    /// Commands kept for Redis while it is unreachable (oldest dropped). Default: 10,000.
    pub relay_backlog: usize,
    /// Upstream publishes kept while RabbitMQ is unreachable; beyond it they fail. Default:
    /// 10,000.
    pub amqp_backlog: usize,
    /// After start, how long the gateway waits before handling its queue's events (devices
    /// reconnecting to a restarted node get what was kept for them). Default: 5 s.
    pub amqp_grace: Duration,

    // ---- event gateway (`[amqp]` and `[[endpoint]]` of a `--config` file) -----------------
    // The bridge is `crate::amqp`, the endpoints `crate::apps::gateway`.
    /// The RabbitMQ side of the gateway. Default: none (no gateway).
    pub amqp: Option<AmqpConfig>,
    /// Gateway WebSocket endpoints, in file order: paths unique and none of corecast's own
    /// routes; identities resolved (always JWT with `--jwt-secret`). Non-empty only with
    /// `amqp`. Default: none.
    pub endpoints: Vec<EndpointConfig>,
}

/// `hostname-pid`, cut to what a node id may hold.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        .take(48)
        .collect();
    let host = if host.is_empty() { "node".into() } else { host };
    format!("{host}-{}", std::process::id())
}

/// A secret setting: never printed (`Debug` shows its length only).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_frame: 16 << 20,
            max_message: 16 << 20,
            max_head: crate::http::DEFAULT_MAX_HEAD,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            write_stall_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            max_connections: 1_000_000,
            send_buffer_limit: 1 << 20,
            backlog: 1024,
            compression: CompressionMode::Shared,
            compression_level: 1,
            compression_min_size: 128,
            history: 100,
            room_ttl: Duration::from_secs(600),
            presence_max_members: 1000,
            chat_max_message: 4 << 10,
            max_rooms: 100,
            conn_rate: 20,
            conn_burst: 40,
            msg_rate: 20,
            msg_burst: 40,
            trusted_proxies: String::new(),
            allowed_origins: None,
            jwt_secret: None,
            api_key: None,
            redis_url: None,
            node_id: default_node_id(),
            redis_prefix: "corecast".into(),
            inbox_max: 100,
            inbox_ttl: Duration::from_secs(7 * 24 * 3600),
            relay_backlog: 10_000,
            amqp_backlog: 10_000,
            amqp_grace: Duration::from_secs(5),
            amqp: None,
            endpoints: Vec::new(),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Zero workers.
    #[error("workers must be at least 1")]
    NoWorkers,
    /// A size that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroSize(&'static str),
    /// idle timeout not longer than the ping interval: peers would be closed before a ping.
    #[error("idle timeout must be longer than the ping interval")]
    IdleBeforePing,
    /// Deflate level above 9.
    #[error("compression level must be 0-9, got {0}")]
    CompressionLevel(u8),
    /// A timeout of zero or beyond what the millisecond timer can hold (24 days).
    #[error("{0} must be between 1 ms and 24 days")]
    BadTimeout(&'static str),
    /// `--amqp-grace` beyond 10 minutes (the queue's own expiry).
    #[error("amqp grace must be at most 10 minutes")]
    Grace,
    /// A count outside its range.
    #[error("{0} must be between {1} and {2}")]
    OutOfRange(&'static str, u64, u64),
    /// An empty secret.
    #[error("{0} must not be empty")]
    EmptySecret(&'static str),
    /// A node id or key prefix that cannot be used in keys and envelopes.
    #[error("{0} must be 1-64 of A-Z a-z 0-9 . _ : -")]
    BadName(&'static str),
}

/// Longest timeout the worker clock represents (wrapping u32 milliseconds, half range).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 24 * 3600);

impl Config {
    /// Checks the settings; the server refuses to start on an error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::NoWorkers);
        }
        for (name, v) in [
            ("max frame size", self.max_frame),
            ("max message size", self.max_message),
            ("max head size", self.max_head),
            ("max connections", self.max_connections),
            ("send buffer limit", self.send_buffer_limit),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroSize(name));
            }
        }
        for (name, t) in [
            ("ping interval", self.ping_interval),
            ("idle timeout", self.idle_timeout),
            ("handshake timeout", self.handshake_timeout),
            ("close timeout", self.close_timeout),
            ("write stall timeout", self.write_stall_timeout),
            ("drain timeout", self.drain_timeout),
            ("room ttl", self.room_ttl),
            ("inbox ttl", self.inbox_ttl),
        ] {
            if t < Duration::from_millis(1) || t > MAX_TIMEOUT {
                return Err(ConfigError::BadTimeout(name));
            }
        }
        if self.amqp_grace > Duration::from_secs(600) {
            return Err(ConfigError::Grace);
        }
        if self.compression_level > 9 {
            return Err(ConfigError::CompressionLevel(self.compression_level));
        }
        if self.idle_timeout <= self.ping_interval {
            return Err(ConfigError::IdleBeforePing);
        }
        for (name, v, lo, hi) in [
            ("history", self.history as u64, 0, 1_000_000),
            (
                "presence max members",
                self.presence_max_members as u64,
                0,
                u64::MAX,
            ),
            (
                "chat max message",
                self.chat_max_message as u64,
                16,
                1 << 30,
            ),
            ("max rooms", self.max_rooms as u64, 1, 100_000),
            ("conn rate", u64::from(self.conn_rate), 1, 65_535),
            ("conn burst", u64::from(self.conn_burst), 1, 65_535),
            ("msg rate", u64::from(self.msg_rate), 1, 65_535),
            ("msg burst", u64::from(self.msg_burst), 1, 65_535),
            ("inbox max", self.inbox_max as u64, 1, 1_000_000),
            ("relay backlog", self.relay_backlog as u64, 1, 10_000_000),
            ("amqp backlog", self.amqp_backlog as u64, 1, 10_000_000),
        ] {
            if v < lo || v > hi {
                return Err(ConfigError::OutOfRange(name, lo, hi));
            }
        }
        for (name, v) in [
            ("node id", &self.node_id),
            ("redis prefix", &self.redis_prefix),
        ] {
            if !crate::relay::envelope::is_node_id(v) {
                return Err(ConfigError::BadName(name));
            }
        }
        for (name, s) in [("jwt secret", &self.jwt_secret), ("api key", &self.api_key)] {
            if s.as_ref().is_some_and(|s| s.0.is_empty()) {
                return Err(ConfigError::EmptySecret(name));
            }
        }
        Ok(())
    }

    /// How often each worker sweeps its connections for timeouts: a quarter of the shortest
    /// timeout, between 10 ms and 1 s.
    pub fn sweep_interval(&self) -> Duration {
        let shortest = [
            self.ping_interval,
            self.idle_timeout,
            self.handshake_timeout,
            self.close_timeout,
            self.write_stall_timeout,
        ]
        .into_iter()
        .min()
        .unwrap_or(Duration::from_secs(1));
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::default().sweep_interval(), Duration::from_secs(1));
    }

    #[test]
    fn rejects_bad_combinations() {
        let c = Config {
            workers: 0,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::NoWorkers));
        // A message limit below the frame limit caps it: not an error.
        let c = Config {
            max_frame: 10,
            max_message: 5,
            ..Config::default()
        };
        assert_eq!(c.validate(), Ok(()));
        let c = Config {
            idle_timeout: Duration::from_secs(1),
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::IdleBeforePing));
        let c = Config {
            close_timeout: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::BadTimeout("close timeout")));
    }
}
