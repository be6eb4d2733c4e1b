//! The relay: many corecast nodes joined into one service through Redis.
//!
//! One thread per node (`thread.rs`) owns the node's two Redis connections — one for commands
//! (pipelined), one for subscriptions — and talks to the workers only through channels: workers
//! hand it [`RelayCmd`]s through a [`RelayHandle`] (a crossbeam sender and a `mio::Waker`; never
//! blocking), and it hands back [`RelayEvent`]s through the workers' own inboxes (a [`Sink`]).
//! What the commands mean — rooms, seqs, presence — is the chat service's business; the relay
//! knows bytes, channels, replies and its connection state. The wire format is sans-IO:
//! [`resp`] (RESP2) and [`envelope`] (the relay's message header).
//!
//! Without `--redis-url` none of this exists: no thread, no handle, no code on the workers'
//! paths.

pub mod envelope;
mod link;
pub mod resp;
mod thread;
pub mod url;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;
use hdrhistogram::Histogram;
use mio::{Poll, Waker};

pub use url::RedisUrl;

/// The relay's settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where Redis is.
    pub url: RedisUrl,
    /// This node's id (unique in the cluster).
    pub node_id: String,
    /// Commands kept while Redis is unreachable (the oldest are dropped beyond it).
    pub backlog: usize,
    /// Commands sent once, on the process's first connection, right after the setup and
    /// before the workers hear that the relay is up (each one command; replies are only
    /// checked for errors). The chat service clears what a previous process with the same
    /// node id left registered.
    pub first_connect: Vec<Vec<u8>>,
}

/// A Lua script the relay loads on every (re)connect, so `EVALSHA` finds it.
#[derive(Debug, Clone)]
pub struct Script {
    /// Its source.
    pub source: &'static str,
    /// SHA-1 of the source, hex (what `EVALSHA` takes).
    pub sha: String,
}

impl Script {
    /// A script and its digest.
    pub fn new(source: &'static str) -> Self {
        use sha1::{Digest, Sha1};
        let digest = Sha1::digest(source.as_bytes());
        let sha = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self { source, sha }
    }
}

/// Which client on a worker asked for a reply (the chat's cluster layer, the gateway's
/// offline store, ...). The relay passes it back untouched in [`RelayEvent::Reply`], and the
/// process's sink routes the reply by it: the relay knows no applications, and two clients'
/// tokens never need to be kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientId(pub u8);

/// What a worker asks of the relay.
#[derive(Debug)]
pub enum RelayCmd {
    /// A RESP command (already encoded); its reply goes back as [`RelayEvent::Reply`] with
    /// `token`. While Redis is down: kept in the backlog when `backlog`, else failed at once.
    Command {
        /// The encoded command (one or several, pipelined — then as many replies).
        cmd: Vec<u8>,
        /// Who gets the reply.
        worker: usize,
        /// Which of the worker's clients.
        client: ClientId,
        /// The client's correlation token.
        token: u64,
        /// Keep it while Redis is down and send it on reconnect (publishes).
        backlog: bool,
    },
    /// A command whose reply nobody waits for (heartbeats, presence upkeep); errors are counted.
    Quiet {
        /// The encoded command.
        cmd: Vec<u8>,
        /// Keep it while Redis is down.
        backlog: bool,
    },
    /// Subscribe this node to `channel` (idempotent); [`RelayEvent::Subscribed`] confirms it.
    Subscribe {
        /// The channel.
        channel: Vec<u8>,
        /// Who gets the confirmation.
        worker: usize,
        /// The worker's correlation token.
        token: u64,
    },
    /// Unsubscribe this node from `channel`.
    Unsubscribe {
        /// The channel.
        channel: Vec<u8>,
    },
    /// The server stops: write out what is queued, wait briefly for the replies, then end
    /// the thread (see [`RelayHandle::stop`]).
    Stop,
}

/// What the relay tells a worker.
#[derive(Debug)]
pub enum RelayEvent {
    /// The reply to a [`RelayCmd::Command`]; `Err` when it could not be sent or its connection
    /// failed before the reply came (it may or may not have run).
    Reply {
        /// The client that asked.
        client: ClientId,
        /// Its token.
        token: u64,
        /// The reply.
        reply: Result<resp::Reply, ()>,
    },
    /// A message published to a channel this node subscribes to.
    Message {
        /// The channel.
        channel: Vec<u8>,
        /// The published bytes.
        payload: Vec<u8>,
    },
    /// A subscription is in place: messages published from now on arrive.
    Subscribed {
        /// The worker's token.
        token: u64,
        /// The channel.
        channel: Vec<u8>,
    },
    /// Connected to Redis (again): every channel is subscribed again, the backlog sent.
    Up,
    /// Lost Redis: commands fail or wait in the backlog until [`RelayEvent::Up`].
    Down,
}

/// The relay's connection state, as `/health` shows it.
pub type RelayState = crate::link::LinkState;

/// The relay's counters (written by the relay thread or the workers, read by `/metrics`).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Messages published through Redis by this node.
    pub published: AtomicU64,
    /// Pub/sub messages received.
    pub received: AtomicU64,
    /// Commands dropped because the backlog was full.
    pub dropped_backlog: AtomicU64,
    /// Commands in flight when a connection failed (not resent).
    pub dropped_in_flight: AtomicU64,
    /// Envelopes that did not parse.
    pub dropped_malformed: AtomicU64,
    /// Times the connection was lost after being up.
    pub reconnects: AtomicU64,
    /// Commands waiting in the backlog now.
    pub backlog: AtomicU64,
    /// Error replies to commands nobody waited for.
    pub command_errors: AtomicU64,
    /// Stored notifications dropped from a full inbox (the oldest go; counted by the node
    /// that stored the new one).
    pub inbox_dropped: AtomicU64,
}

/// What the relay thread shares with everyone: state, counters, round-trip times.
#[derive(Debug)]
pub struct RelayShared {
    state: crate::link::StateCell,
    /// Counters.
    pub stats: RelayStats,
    /// Command round trips, microseconds.
    rtt: Mutex<Histogram<u64>>,
}

impl RelayShared {
    fn new() -> Self {
        Self {
            state: crate::link::StateCell::default(),
            stats: RelayStats::default(),
            rtt: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 2)
                    .or_else(|_| Histogram::new(2))
                    .unwrap_or_else(|_| unreachable!("valid histogram bounds")),
            ),
        }
    }

    /// The connection state.
    pub fn state(&self) -> RelayState {
        self.state.get()
    }

    fn set_state(&self, s: RelayState) {
        self.state.set(s);
    }

    fn record_rtt(&self, d: Duration) {
        if let Ok(mut h) = self.rtt.lock() {
            let _ = h.record((d.as_micros() as u64).clamp(1, 60_000_000));
        }
    }

    /// Round-trip quantiles in seconds (`None` before the first reply).
    pub fn rtt_quantiles(&self, qs: &[f64]) -> Option<Vec<f64>> {
        let h = self.rtt.lock().ok()?;
        if h.is_empty() {
            return None;
        }
        Some(
            qs.iter()
                .map(|&q| h.value_at_quantile(q) as f64 / 1e6)
                .collect(),
        )
    }
}

/// How the relay reaches the workers: `route(channel)` is the worker that handles a channel's
/// messages; a reply goes to the worker that asked, `Up`/`Down` to every worker.
pub type Sink = crate::link::WorkerSink<RelayEvent, [u8]>;

/// The workers' side of the relay: send commands, read its state.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    tx: Sender<RelayCmd>,
    waker: Arc<Waker>,
    /// State and counters.
    pub shared: Arc<RelayShared>,
    /// This node's id.
    pub node_id: Arc<str>,
}

impl RelayHandle {
    /// Hands `cmd` to the relay thread (never blocks).
    pub fn send(&self, cmd: RelayCmd) {
        if self.tx.send(cmd).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Queues `cmd` without waking the relay thread: the caller calls [`RelayHandle::wake`]
    /// once after a batch (a worker does at the end of its loop iteration), which saves an
    /// eventfd write and a context switch per command under load.
    pub fn send_later(&self, cmd: RelayCmd) {
        let _ = self.tx.send(cmd);
    }

    /// Asks the relay thread to finish: what the workers queued (the leaves and connection
    /// counts of a draining node) is written to Redis, and the thread ends once the replies
    /// are in, or after a second at most. Join its handle afterwards.
    pub fn stop(&self) {
        self.send(RelayCmd::Stop);
    }

    /// Wakes the relay thread for what [`RelayHandle::send_later`] queued.
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// A relay whose thread has not started yet (the workers need the handle first).
pub struct Relay {
    cfg: RelayConfig,
    poll: Poll,
    inbox: crossbeam_channel::Receiver<RelayCmd>,
    handle: RelayHandle,
}

impl Relay {
    /// Prepares the relay (no connection yet).
    pub fn new(cfg: RelayConfig) -> std::io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), thread::WAKER)?);
        let (tx, inbox) = crossbeam_channel::unbounded();
        let handle = RelayHandle {
            tx,
            waker,
            shared: Arc::new(RelayShared::new()),
            node_id: cfg.node_id.as_str().into(),
        };
        Ok(Self {
            cfg,
            poll,
            inbox,
            handle,
        })
    }

    /// The handle the workers use.
    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Starts the thread; it connects at once and runs until every handle is dropped.
    pub fn start(
        self,
        sink: Sink,
        scripts: Vec<Script>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let t = thread::RelayThread::new(
            self.cfg,
            self.poll,
            self.inbox,
            self.handle.shared.clone(),
            sink,
            scripts,
        );
        drop(self.handle);
        std::thread::Builder::new()
            .name("corecast-relay".into())
            .spawn(move || t.run())
    }
}
