//! The gateway's RabbitMQ bridge: owner-addressed events from an AMQP 0-9-1 topic exchange to
//! the workers, and the clients' commands back upstream.
//!
//! One thread per node (`thread.rs`) owns the AMQP connection and talks to the workers only
//! through channels, as the Redis relay does: workers hand it [`AmqpCmd`]s through an
//! [`AmqpHandle`] (a crossbeam sender and a wake the bridge's async loop awaits; never
//! blocking), and it hands back [`AmqpEvent`]s through the workers' own inboxes (a [`Sink`]),
//! waking each worker once per loop iteration. On every (re)connect it declares the topology:
//! the exchange (topic, durable), the node's queue `corecast.gateway.NODE_ID` (durable,
//! `x-expires` 10 minutes, optionally a dead-letter exchange) bound with every `bind` key,
//! QoS `prefetch`, a consumer with manual acks, and publisher confirms on a second channel.
//!
//! Each delivery's body is read once for its owner ([`body`]); a valid one becomes an
//! [`AmqpEvent::Delivery`] for the worker the sink routes the owner to, with `data` byte for
//! byte; the worker acks ([`AmqpCmd::Ack`]) once the frame is queued to every device of the
//! owner (or there is none). A malformed body is nacked without requeue by the bridge itself
//! (a dead-letter exchange on the queue gets it), counted, and logged at most once per 10 s.
//! Publishes wait in a bounded backlog while the broker is unreachable; each gets exactly one
//! [`AmqpEvent::Confirmed`].
//!
//! What the events mean to users and devices is the gateway application's business; this
//! module knows bodies, routing keys, tags and its connection. The formats are sans-IO:
//! [`body`] (the message body) and [`topic`] (routing keys and patterns).
//!
//! Without an `[amqp]` section none of this exists: no thread, no handle.

pub mod body;
pub mod command;
mod thread;
pub mod topic;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Sender;
use tokio::sync::Notify;

pub use body::DataEncoding;

/// The node's queue name for `node_id`: `corecast.gateway.NODE_ID`.
pub fn queue_name(node_id: &str) -> String {
    format!("corecast.gateway.{node_id}")
}

/// How long the node's queue outlives its last consumer (`x-expires`): a restarted node gets
/// its backlog within it, a dead node's queue (and what it held) goes away after it.
pub const QUEUE_EXPIRES: Duration = Duration::from_secs(600);

/// The bridge's settings.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost`, with optional `?heartbeat=S&connection_timeout=MS`
    /// (defaults here: heartbeat 10 s, connection timeout 5 s; `amqps` is not supported).
    pub url: String,
    /// The topic exchange (declared durable if absent).
    pub exchange: String,
    /// Binding patterns of the node's queue (`*` one word, `#` any number). Bound on every
    /// connect; a pattern removed from the list stays bound on the durable queue until the
    /// queue expires or an operator unbinds it (AMQP cannot list a queue's bindings).
    pub bind: Vec<String>,
    /// The node's queue. Default: [`queue_name`]`(node_id)`.
    pub queue: String,
    /// Unacknowledged deliveries the broker may push (`basic.qos`), always >= 1. Default 1000.
    pub prefetch: u16,
    /// Publishes kept while the broker is unreachable; beyond it they fail at once. Default
    /// 10,000.
    pub backlog: usize,
    /// This node's id (names the queue and the consumer).
    pub node_id: String,
    /// The body member holding the owner. Default `ownerId`.
    pub owner_field: String,
    /// How `data` is written in bodies (both directions). Default JSON.
    pub data_encoding: DataEncoding,
    /// Set as the queue's `x-dead-letter-exchange` (where malformed and nacked messages go).
    /// Default none: they are dropped by the broker. A queue declared before with other
    /// arguments must be deleted first (or the dead-letter exchange set by a policy instead).
    pub dead_letter_exchange: Option<String>,
    /// The queue's `x-expires`. Default [`QUEUE_EXPIRES`].
    pub queue_expires: Duration,
    /// How often the queue depth ([`AmqpStats::queue_depth`]) is refreshed. Default 5 s.
    pub depth_interval: Duration,
    /// From the thread's start, how long deliveries wait before they are handed to the
    /// workers (they are taken from the broker, up to `prefetch`, but not acknowledged): the
    /// devices of a restarted node reconnect first and get the queue's backlog. Publishing is
    /// not delayed. Default 0.
    pub start_grace: Duration,
}

impl AmqpConfig {
    /// The settings with their defaults for a node, a broker and an exchange.
    pub fn new(url: &str, exchange: &str, node_id: &str) -> Self {
        Self {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            bind: Vec::new(),
            queue: queue_name(node_id),
            prefetch: 1000,
            backlog: 10_000,
            node_id: node_id.to_owned(),
            owner_field: body::DEFAULT_OWNER_FIELD.to_owned(),
            data_encoding: DataEncoding::Json,
            dead_letter_exchange: None,
            queue_expires: QUEUE_EXPIRES,
            depth_interval: Duration::from_secs(5),
            start_grace: Duration::ZERO,
        }
    }

    /// Checks what the broker would refuse (or what cannot work) before any connection: the
    /// URL, names within 255 bytes, bind patterns non-empty, prefetch >= 1.
    pub fn validate(&self) -> Result<(), AmqpConfigError> {
        parse_url(&self.url)?;
        let name = |what: &'static str, s: &str, may_be_empty: bool| {
            if (s.is_empty() && !may_be_empty) || s.len() > topic::MAX_LEN {
                Err(AmqpConfigError::BadName(what, s.to_owned()))
            } else {
                Ok(())
            }
        };
        name("exchange", &self.exchange, false)?;
        name("queue", &self.queue, false)?;
        if let Some(dlx) = &self.dead_letter_exchange {
            // "" is the default exchange: dead letters routed by their original key.
            name("dead-letter exchange", dlx, true)?;
        }
        if self.owner_field.is_empty() {
            return Err(AmqpConfigError::BadName("owner field", String::new()));
        }
        for b in &self.bind {
            topic::validate(b).map_err(|e| AmqpConfigError::BadPattern(b.clone(), e))?;
        }
        if self.prefetch == 0 {
            return Err(AmqpConfigError::Prefetch);
        }
        if self.queue_expires.as_millis() == 0
            || self.queue_expires.as_millis() > u128::from(u32::MAX)
        {
            return Err(AmqpConfigError::Expires);
        }
        if self.depth_interval.is_zero() {
            return Err(AmqpConfigError::DepthInterval);
        }
        Ok(())
    }
}

/// Why an [`AmqpConfig`] cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmqpConfigError {
    /// The URL does not parse.
    #[error("invalid amqp url: {0}")]
    Url(String),
    /// `amqps://`: this build has no TLS.
    #[error("amqps is not supported (use amqp:// on a trusted network, or a local TLS proxy)")]
    Tls,
    /// An empty or over-long name.
    #[error("invalid {0} name {1:?} (1-255 bytes)")]
    BadName(&'static str, String),
    /// An invalid bind pattern.
    #[error("invalid bind pattern {0:?}: {1}")]
    BadPattern(String, topic::TopicError),
    /// `prefetch = 0` (unlimited: the broker would push the whole queue).
    #[error("prefetch must be at least 1")]
    Prefetch,
    /// `x-expires` of zero or beyond 49 days.
    #[error("queue expiry must be between 1 ms and 2^32 ms")]
    Expires,
    /// A depth interval of zero.
    #[error("queue depth interval must not be zero")]
    DepthInterval,
}

impl AmqpConfig {
    /// The URL without its password, for logs.
    pub fn url_for_logs(&self) -> String {
        match parse_url(&self.url) {
            Ok(u) => format!(
                "amqp://{}@{}:{}/{}",
                u.authority.userinfo.username,
                u.authority.host,
                u.authority.port,
                // As a URL writes it: the default vhost `/` is `%2f`.
                u.vhost.replace('%', "%25").replace('/', "%2f")
            ),
            Err(_) => "(invalid url)".into(),
        }
    }
}

/// The URL with this bridge's defaults filled in.
fn parse_url(url: &str) -> Result<lapin::uri::AMQPUri, AmqpConfigError> {
    let mut uri: lapin::uri::AMQPUri = url.parse().map_err(AmqpConfigError::Url)?;
    if uri.scheme != lapin::uri::AMQPScheme::AMQP {
        return Err(AmqpConfigError::Tls);
    }
    uri.query.heartbeat.get_or_insert(10);
    uri.query.connection_timeout.get_or_insert(5_000);
    Ok(uri)
}

/// Identifies a delivery to acknowledge. Carries the generation of the channel it came on: an
/// ack or nack after a reconnect (when the broker has requeued the message already) is
/// ignored instead of acknowledging another message that reuses the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryTag {
    generation: u64,
    tag: u64,
}

impl DeliveryTag {
    /// A tag from its parts, for tests of applications that handle [`AmqpEvent::Delivery`]
    /// without a broker. (The bridge numbers generations from 1 and tags from 1 per
    /// connection; a made-up tag that matches a real delivery acknowledges it.)
    pub fn from_parts(generation: u64, tag: u64) -> Self {
        Self { generation, tag }
    }
}

/// What a worker asks of the bridge.
#[derive(Debug)]
pub enum AmqpCmd {
    /// Publish `body` to the exchange with `routing_key`: persistent, `application/json`,
    /// mandatory, with a publisher confirm. [`AmqpEvent::Confirmed`] with `token` goes back to
    /// `worker` once, whatever happens. While the broker is unreachable it waits in the
    /// backlog (in order); a full backlog fails it at once.
    Publish {
        /// The routing key (1–255 bytes; see [`topic::validate`]).
        routing_key: String,
        /// The body (see [`body::write_body`]).
        body: Vec<u8>,
        /// Who gets the confirmation.
        worker: usize,
        /// The worker's correlation token.
        token: u64,
    },
    /// The delivery was handled: the broker forgets it.
    Ack {
        /// From [`AmqpEvent::Delivery`].
        tag: DeliveryTag,
    },
    /// The delivery cannot be handled: the broker dead-letters it (no requeue).
    Nack {
        /// From [`AmqpEvent::Delivery`].
        tag: DeliveryTag,
    },
    /// The server stops: acks queued before are sent, confirms awaited briefly, the
    /// connection closed (unacknowledged deliveries go back to the queue), the thread ends.
    Stop,
}

/// What the bridge tells a worker.
#[derive(Debug, Clone)]
pub enum AmqpEvent {
    /// An event for `owner` (to the worker the sink routes the owner to). Acknowledge it with
    /// [`AmqpCmd::Ack`] once handled; until then the broker keeps it (and redelivers it if
    /// this node's connection goes away).
    Delivery {
        /// The routing key it was published with (the frame's `type`).
        routing_key: String,
        /// The owner (unescaped).
        owner: String,
        /// The `data` value's JSON text, byte for byte as published (decoded from base64 with
        /// [`DataEncoding::Base64`]).
        data: Bytes,
        /// For the ack.
        tag: DeliveryTag,
        /// The AMQP `message_id` property, if the publisher set one.
        message_id: Option<String>,
        /// The broker delivered it before (to this or another consumer) without an ack.
        redelivered: bool,
    },
    /// The outcome of a [`AmqpCmd::Publish`]: `ok` when the broker confirmed it and a queue
    /// took it; not `ok` when it was nacked, unroutable (no queue bound for the key), failed
    /// with the connection or unconfirmed after 15 s (it may or may not have arrived then),
    /// or found the backlog full.
    Confirmed {
        /// The worker's token.
        token: u64,
        /// Confirmed and routed.
        ok: bool,
    },
    /// Connected (again): the topology is declared, consuming, the backlog sent.
    Up,
    /// Lost the broker: publishes wait in the backlog until [`AmqpEvent::Up`]; deliveries not
    /// acknowledged yet will come again (to this node after the reconnect), so acks for them
    /// are ignored.
    Down,
}

/// The bridge's connection state, as `/health` shows it.
pub type AmqpState = crate::link::LinkState;

/// The bridge's counters (written by the bridge thread or the workers, read by `/metrics`).
#[derive(Debug, Default)]
pub struct AmqpStats {
    /// Deliveries received (valid or not).
    pub consumed: AtomicU64,
    /// Deliveries queued to at least one local device (counted by the application).
    pub delivered: AtomicU64,
    /// Deliveries whose owner had no local device (counted by the application).
    pub undelivered: AtomicU64,
    /// Deliveries nacked without requeue: malformed ones (by the bridge) and the workers'
    /// [`AmqpCmd::Nack`]s.
    pub dead_lettered: AtomicU64,
    /// Of those, bodies that did not parse.
    pub malformed: AtomicU64,
    /// Publishes the broker confirmed.
    pub published: AtomicU64,
    /// Publishes that failed (nacked, lost with the connection, backlog full, unroutable).
    pub publish_failed: AtomicU64,
    /// Of those, confirmed but returned unroutable (no queue bound for the key).
    pub unroutable: AtomicU64,
    /// Times the connection was lost after being up.
    pub reconnects: AtomicU64,
    /// Publishes waiting in the backlog now.
    pub backlog: AtomicU64,
    /// Messages ready in this node's queue at the last check (every few seconds).
    pub queue_depth: AtomicU64,
}

/// What the bridge thread shares with everyone: state and counters.
#[derive(Debug)]
pub struct AmqpShared {
    state: crate::link::StateCell,
    /// Counters.
    pub stats: AmqpStats,
}

impl AmqpShared {
    fn new() -> Self {
        Self {
            state: crate::link::StateCell::default(),
            stats: AmqpStats::default(),
        }
    }

    /// The connection state (`Up` or `Down`: a bridge that exists is configured).
    pub fn state(&self) -> AmqpState {
        self.state.get()
    }

    fn set_state(&self, s: AmqpState) {
        self.state.set(s);
    }
}

/// How the bridge reaches the workers.
///
/// - [`AmqpEvent::Delivery`] goes to `route(owner)`;
/// - [`AmqpEvent::Confirmed`] to the worker that published;
/// - [`AmqpEvent::Up`] and [`AmqpEvent::Down`] to every worker `0..workers`.
pub type Sink = crate::link::WorkerSink<AmqpEvent, str>;

/// The sending half the workers share; the last one dropped wakes the bridge so it notices.
#[derive(Debug)]
struct Inbox {
    tx: Option<Sender<AmqpCmd>>,
    notify: Arc<Notify>,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // Disconnect first, then wake: the bridge sees the channel closed when it looks.
        drop(self.tx.take());
        self.notify.notify_one();
    }
}

/// The workers' side of the bridge: send commands, read its state.
#[derive(Debug, Clone)]
pub struct AmqpHandle {
    inbox: Arc<Inbox>,
    /// State and counters.
    pub shared: Arc<AmqpShared>,
    /// This node's id.
    pub node_id: Arc<str>,
}

impl AmqpHandle {
    /// Hands `cmd` to the bridge thread (never blocks).
    pub fn send(&self, cmd: AmqpCmd) {
        self.send_later(cmd);
        self.wake();
    }

    /// Queues `cmd` without waking the bridge: the caller calls [`AmqpHandle::wake`] once
    /// after a batch (at the end of its loop iteration).
    pub fn send_later(&self, cmd: AmqpCmd) {
        if let Some(tx) = &self.inbox.tx {
            let _ = tx.send(cmd);
        }
    }

    /// Wakes the bridge for what [`AmqpHandle::send_later`] queued.
    pub fn wake(&self) {
        self.inbox.notify.notify_one();
    }

    /// Asks the bridge to finish (see [`AmqpCmd::Stop`]); join its thread afterwards.
    pub fn stop(&self) {
        self.send(AmqpCmd::Stop);
    }
}

/// Why the bridge cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// The configuration.
    #[error(transparent)]
    Config(#[from] AmqpConfigError),
    /// The thread.
    #[error("cannot start the amqp thread: {0}")]
    Io(#[from] std::io::Error),
}

/// A bridge whose thread has not started yet (the workers need the handle first).
pub struct Amqp {
    cfg: AmqpConfig,
    uri: lapin::uri::AMQPUri,
    inbox: crossbeam_channel::Receiver<AmqpCmd>,
    handle: AmqpHandle,
}

impl Amqp {
    /// Checks the configuration and prepares the bridge (no connection yet).
    pub fn new(cfg: AmqpConfig) -> Result<Self, AmqpError> {
        cfg.validate()?;
        let uri = parse_url(&cfg.url)?;
        let (tx, inbox) = crossbeam_channel::unbounded();
        let handle = AmqpHandle {
            inbox: Arc::new(Inbox {
                tx: Some(tx),
                notify: Arc::new(Notify::new()),
            }),
            shared: Arc::new(AmqpShared::new()),
            node_id: cfg.node_id.as_str().into(),
        };
        Ok(Self {
            cfg,
            uri,
            inbox,
            handle,
        })
    }

    /// The handle the workers use.
    pub fn handle(&self) -> AmqpHandle {
        self.handle.clone()
    }

    /// Starts the thread; it connects at once and runs until [`AmqpHandle::stop`] or until
    /// every handle is dropped.
    pub fn start(self, sink: Sink) -> Result<std::thread::JoinHandle<()>, AmqpError> {
        let bridge = thread::Bridge::new(
            self.cfg,
            self.uri,
            self.inbox,
            self.handle.inbox.notify.clone(),
            self.handle.shared.clone(),
            sink,
        );
        drop(self.handle);
        Ok(std::thread::Builder::new()
            .name("corecast-amqp".into())
            .spawn(move || bridge.run())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let ok = AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "trip", "n1");
        assert_eq!(ok.queue, "corecast.gateway.n1");
        assert_eq!(ok.validate(), Ok(()));
        let with = |f: &dyn Fn(&mut AmqpConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate()
        };
        assert_eq!(
            with(&|c| c.url = "amqps://h/%2f".into()),
            Err(AmqpConfigError::Tls)
        );
        assert!(matches!(
            with(&|c| c.url = "http://h".into()),
            Err(AmqpConfigError::Url(_))
        ));
        assert!(matches!(
            with(&|c| c.exchange = String::new()),
            Err(AmqpConfigError::BadName("exchange", _))
        ));
        assert!(matches!(
            with(&|c| c.bind = vec!["a.b".into(), String::new()]),
            Err(AmqpConfigError::BadPattern(_, topic::TopicError::Empty))
        ));
        assert!(matches!(
            with(&|c| c.bind = vec!["x".repeat(256)]),
            Err(AmqpConfigError::BadPattern(_, topic::TopicError::TooLong))
        ));
        assert_eq!(with(&|c| c.prefetch = 0), Err(AmqpConfigError::Prefetch));
        assert_eq!(
            with(&|c| c.dead_letter_exchange = Some(String::new())),
            Ok(())
        );
        assert_eq!(ok.url_for_logs(), "amqp://guest@127.0.0.1:5672/%2f");
        let uri = parse_url("amqp://127.0.0.1/%2f?heartbeat=3").unwrap();
        assert_eq!(uri.query.heartbeat, Some(3));
        assert_eq!(uri.query.connection_timeout, Some(5_000));
        assert_eq!(
            parse_url("amqp://127.0.0.1").unwrap().query.heartbeat,
            Some(10)
        );
    }
}
