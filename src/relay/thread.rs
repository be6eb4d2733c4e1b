//! The relay thread: owns the node's two Redis connections (commands, subscriptions), and
//! talks to the workers only through channels — a crossbeam inbox woken by a `mio::Waker` one
//! way, the workers' own inboxes the other.
//!
//! Commands from all workers are pipelined: each loop iteration appends everything queued to
//! the command connection's send buffer and writes it in as few syscalls as the socket allows;
//! replies come back in order and are routed to the worker (and token) that asked. The
//! subscriber connection carries SUBSCRIBE/UNSUBSCRIBE and the messages, which are routed by
//! channel. When Redis is unreachable the relay reconnects with exponential backoff and full
//! jitter (100 ms → 10 s), re-authenticates, reloads its scripts, resubscribes every channel,
//! sends the backlog of commands queued meanwhile (bounded; the oldest are dropped and
//! counted) and tells every worker it is up again. A worker never blocks on Redis.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Events, Poll, Token};

use super::link::{Link, LinkError};
use super::resp::{write_command, PubSub, Reply};
use super::{ClientId, RelayCmd, RelayConfig, RelayEvent, RelayShared, RelayState, Script, Sink};

const CMD: Token = Token(0);
const SUB: Token = Token(1);
pub(super) const WAKER: Token = Token(2);

/// First reconnect delay; it doubles up to [`BACKOFF_MAX`] (each wait is random in 0..delay).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// After a reconnect, how long the backlog waits so that the workers' resync (which raises
/// each room's seq to what this node reached alone) goes first.
const BACKLOG_GRACE: Duration = Duration::from_millis(300);
/// The longest a reply (or a new connection's setup) may take. Beyond it Redis is taken for
/// gone (stalled, or its host vanished without a reset, which TCP alone would notice only
/// after minutes): both links are closed and the node goes on alone until it reconnects.
/// The chat service's heartbeat keeps a command in flight every 2 s, so a silent Redis is
/// noticed within this plus 2 s.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping relay waits for the replies of what it wrote out.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// What a reply on the command connection is for.
enum Pending {
    /// Part of the connection setup (AUTH, SELECT, SCRIPT LOAD, CLIENT SETNAME).
    Setup { sent: Instant },
    /// A worker's command: the reply goes back to it.
    Worker {
        worker: usize,
        client: ClientId,
        token: u64,
        sent: Instant,
    },
    /// A command that wants no answer (its error is only counted).
    Quiet { sent: Instant },
}

/// A worker's command waiting for the link to come up.
struct Queued {
    cmd: Vec<u8>,
    worker: usize,
    client: ClientId,
    token: u64,
    quiet: bool,
}

pub(super) struct RelayThread {
    cfg: RelayConfig,
    poll: Poll,
    inbox: Receiver<RelayCmd>,
    shared: Arc<RelayShared>,
    sink: Sink,
    scripts: Vec<Script>,
    cmd: Option<Link>,
    sub: Option<Link>,
    pending: VecDeque<Pending>,
    /// Setup replies still expected on each link before it is up.
    cmd_setup: usize,
    sub_setup: usize,
    /// Commands sent while down, in order (bounded by `cfg.backlog`).
    backlog: VecDeque<Queued>,
    /// Channels this node is subscribed to (or wants to be): waiters for confirmation.
    channels: HashMap<Vec<u8>, Vec<(usize, u64)>>,
    up: bool,
    /// Set after a reconnect while the backlog waits (see [`BACKLOG_GRACE`]).
    grace_until: Option<Instant>,
    backoff: Duration,
    reconnect_at: Option<Instant>,
    rng: u64,
    /// The read buffer of both links.
    scratch: Box<[u8]>,
    /// Workers handed an event this iteration: woken once at its end.
    to_wake: Vec<bool>,
    /// When the links of the current attempt were opened (for the setup's timeout).
    connected_at: Option<Instant>,
    /// `cfg.first_connect` went out on a connection that came up.
    first_connect_done: bool,
    /// Set by [`RelayCmd::Stop`] (or when every handle is gone): the thread ends once the
    /// command link has written everything and has no reply pending, or at this deadline.
    stopping: Option<Instant>,
}

impl RelayThread {
    pub(super) fn new(
        cfg: RelayConfig,
        poll: Poll,
        inbox: Receiver<RelayCmd>,
        shared: Arc<RelayShared>,
        sink: Sink,
        scripts: Vec<Script>,
    ) -> Self {
        let seed = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
        Self {
            cfg,
            poll,
            inbox,
            shared,
            sink,
            scripts,
            cmd: None,
            sub: None,
            pending: VecDeque::new(),
            cmd_setup: 0,
            sub_setup: 0,
            backlog: VecDeque::new(),
            channels: HashMap::new(),
            up: false,
            grace_until: None,
            backoff: BACKOFF_MIN,
            reconnect_at: Some(Instant::now()),
            rng: seed | 1,
            scratch: vec![0; 64 << 10].into_boxed_slice(),
            to_wake: Vec::new(),
            connected_at: None,
            first_connect_done: false,
            stopping: None,
        }
    }

    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            let now = Instant::now();
            let timeout = [
                self.reconnect_at,
                self.grace_until,
                self.reply_deadline(),
                self.stopping.map(|_| now + Duration::from_millis(10)),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "relay poll failed");
                    return;
                }
            }
            let mut failed: Option<LinkError> = None;
            for ev in events.iter() {
                let r = match ev.token() {
                    WAKER => Ok(()),
                    CMD => self.on_cmd_event(ev.is_readable(), ev.is_writable()),
                    SUB => self.on_sub_event(ev.is_readable(), ev.is_writable()),
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    failed = Some(e);
                }
            }
            if failed.is_none() && self.reply_deadline().is_some_and(|t| Instant::now() >= t) {
                failed = Some(LinkError::Timeout(REPLY_TIMEOUT));
            }
            if let Some(e) = failed {
                self.link_failed(&e);
            }
            if self.stopping.is_none() && self.reconnect_at.is_some_and(|t| Instant::now() >= t) {
                self.reconnect_at = None;
                if let Err(e) = self.connect() {
                    self.link_failed(&LinkError::Io(e));
                }
            }
            if self.grace_until.is_some_and(|t| Instant::now() >= t) {
                self.grace_until = None;
                self.send_backlog();
            }
            if self.drain_inbox() && self.stopping.is_none() {
                // Every handle is gone: the server stopped without saying so.
                self.stopping = Some(Instant::now() + STOP_WAIT);
            }
            if let Err(e) = self.flush() {
                self.link_failed(&e);
            }
            self.wake_workers();
            if let Some(deadline) = self.stopping {
                let done = self
                    .cmd
                    .as_ref()
                    .is_none_or(|l| l.written() && self.pending.is_empty());
                if done || Instant::now() >= deadline {
                    if !self.backlog.is_empty() || !self.pending.is_empty() {
                        tracing::warn!(
                            unsent = self.backlog.len(),
                            unanswered = self.pending.len(),
                            "relay stopped with commands Redis did not take"
                        );
                    }
                    return;
                }
            }
        }
    }

    /// When the oldest reply in flight (or the setup of a connection that is not up yet) is
    /// overdue.
    fn reply_deadline(&self) -> Option<Instant> {
        self.cmd.as_ref()?;
        let oldest = match self.pending.front() {
            Some(
                Pending::Setup { sent } | Pending::Worker { sent, .. } | Pending::Quiet { sent },
            ) => Some(*sent),
            None => None,
        };
        let setup = if self.up { None } else { self.connected_at };
        [oldest, setup]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t + REPLY_TIMEOUT)
    }

    /// Hands `ev` to worker `w` (woken at the end of the iteration).
    fn deliver(&mut self, w: usize, ev: RelayEvent) {
        (self.sink.deliver)(w, ev);
        if self.to_wake.len() < self.sink.workers {
            self.to_wake.resize(self.sink.workers, false);
        }
        if let Some(f) = self.to_wake.get_mut(w) {
            *f = true;
        }
    }

    fn wake_workers(&mut self) {
        for (w, f) in self.to_wake.iter_mut().enumerate() {
            if std::mem::take(f) {
                (self.sink.wake)(w);
            }
        }
    }

    /// Takes the workers' commands. True when every sender is gone.
    fn drain_inbox(&mut self) -> bool {
        loop {
            match self.inbox.try_recv() {
                Ok(cmd) => self.handle(cmd),
                Err(crossbeam_channel::TryRecvError::Empty) => return false,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return true,
            }
        }
    }

    fn handle(&mut self, cmd: RelayCmd) {
        match cmd {
            RelayCmd::Command {
                cmd,
                worker,
                client,
                token,
                backlog,
            } => {
                if self.up && (self.grace_until.is_none() || !backlog) {
                    self.send_worker_command(cmd, worker, client, token);
                } else if backlog {
                    self.push_backlog(Queued {
                        cmd,
                        worker,
                        client,
                        token,
                        quiet: false,
                    });
                } else {
                    self.deliver(
                        worker,
                        RelayEvent::Reply {
                            client,
                            token,
                            reply: Err(()),
                        },
                    );
                }
            }
            RelayCmd::Quiet { cmd, backlog } => {
                if self.up && (self.grace_until.is_none() || !backlog) {
                    self.send_quiet(cmd);
                } else if backlog {
                    self.push_backlog(Queued {
                        cmd,
                        worker: 0,
                        client: ClientId(0),
                        token: 0,
                        quiet: true,
                    });
                }
            }
            RelayCmd::Subscribe {
                channel,
                worker,
                token,
            } => {
                let confirmed_before = self.channels.contains_key(&channel);
                let waiters = self.channels.entry(channel.clone()).or_default();
                waiters.push((worker, token));
                if self.up && !confirmed_before {
                    if let Some(sub) = self.sub.as_mut() {
                        write_command(sub.out(), &[b"SUBSCRIBE", &channel]);
                    }
                } else if self.up && confirmed_before && waiters.len() == 1 {
                    // Subscribed already (no confirmation pending): answer at once.
                    waiters.clear();
                    self.deliver(worker, RelayEvent::Subscribed { token, channel });
                }
            }
            RelayCmd::Unsubscribe { channel } => {
                if self.channels.remove(&channel).is_some() && self.up {
                    if let Some(sub) = self.sub.as_mut() {
                        write_command(sub.out(), &[b"UNSUBSCRIBE", &channel]);
                    }
                }
            }
            RelayCmd::Stop => {
                self.stopping.get_or_insert(Instant::now() + STOP_WAIT);
            }
        }
    }

    fn push_backlog(&mut self, q: Queued) {
        if self.backlog.len() >= self.cfg.backlog {
            if let Some(dropped) = self.backlog.pop_front() {
                self.shared.stats.dropped_backlog.fetch_add(1, Relaxed);
                if !dropped.quiet {
                    self.deliver(
                        dropped.worker,
                        RelayEvent::Reply {
                            client: dropped.client,
                            token: dropped.token,
                            reply: Err(()),
                        },
                    );
                }
            }
        }
        self.backlog.push_back(q);
        self.shared
            .stats
            .backlog
            .store(self.backlog.len() as u64, Relaxed);
    }

    fn send_worker_command(&mut self, cmd: Vec<u8>, worker: usize, client: ClientId, token: u64) {
        if let Some(link) = self.cmd.as_mut() {
            link.out().extend_from_slice(&cmd);
            self.pending.push_back(Pending::Worker {
                worker,
                client,
                token,
                sent: Instant::now(),
            });
        }
    }

    fn send_quiet(&mut self, cmd: Vec<u8>) {
        if let Some(link) = self.cmd.as_mut() {
            link.out().extend_from_slice(&cmd);
            self.pending.push_back(Pending::Quiet {
                sent: Instant::now(),
            });
        }
    }

    fn flush(&mut self) -> Result<(), LinkError> {
        let registry = self.poll.registry();
        if let Some(l) = self.cmd.as_mut() {
            l.flush(registry)?;
        }
        if let Some(l) = self.sub.as_mut() {
            l.flush(registry)?;
        }
        Ok(())
    }

    fn connect(&mut self) -> io::Result<()> {
        let addr = resolve(&self.cfg.url.host, self.cfg.url.port)?;
        let registry = self.poll.registry();
        let mut cmd = Link::connect(addr, CMD, registry)?;
        let mut sub = Link::connect(addr, SUB, registry)?;
        self.pending.clear();
        self.cmd_setup = 0;
        self.sub_setup = 0;
        let now = Instant::now();
        self.connected_at = Some(now);
        for (link, setup, name) in [
            (&mut cmd, &mut self.cmd_setup, "cmd"),
            (&mut sub, &mut self.sub_setup, "sub"),
        ] {
            let url = &self.cfg.url;
            if let Some(pass) = &url.password {
                match &url.user {
                    Some(user) => {
                        write_command(link.out(), &[b"AUTH", user.as_bytes(), pass.as_bytes()])
                    }
                    None => write_command(link.out(), &[b"AUTH", pass.as_bytes()]),
                }
                *setup += 1;
            }
            let client = format!("corecast:{}:{name}", self.cfg.node_id);
            write_command(link.out(), &[b"CLIENT", b"SETNAME", client.as_bytes()]);
            *setup += 1;
            if name == "cmd" && url.db != 0 {
                write_command(link.out(), &[b"SELECT", url.db.to_string().as_bytes()]);
                *setup += 1;
            }
        }
        for s in &self.scripts {
            write_command(cmd.out(), &[b"SCRIPT", b"LOAD", s.source.as_bytes()]);
            self.cmd_setup += 1;
        }
        for _ in 0..self.cmd_setup {
            self.pending.push_back(Pending::Setup { sent: now });
        }
        // Before anything a worker sends on this connection (workers send once it is up).
        if !self.first_connect_done {
            for c in &self.cfg.first_connect {
                cmd.out().extend_from_slice(c);
                self.pending.push_back(Pending::Quiet { sent: now });
            }
        }
        self.cmd = Some(cmd);
        self.sub = Some(sub);
        Ok(())
    }

    fn on_cmd_event(&mut self, readable: bool, writable: bool) -> Result<(), LinkError> {
        let registry = self.poll.registry();
        let Some(link) = self.cmd.as_mut() else {
            return Ok(());
        };
        if writable {
            link.on_writable(registry)?;
        }
        if readable {
            let mut replies = Vec::new();
            link.on_readable(&mut self.scratch, |r| replies.push(r))?;
            for r in replies {
                self.on_cmd_reply(r)?;
            }
        }
        Ok(())
    }

    fn on_cmd_reply(&mut self, reply: Reply) -> Result<(), LinkError> {
        match self.pending.pop_front() {
            Some(Pending::Setup { .. }) => {
                if let Reply::Error(e) = &reply {
                    let text = String::from_utf8_lossy(e).into_owned();
                    return Err(LinkError::Io(io::Error::other(format!(
                        "redis setup: {text}"
                    ))));
                }
                self.cmd_setup -= 1;
                self.maybe_up();
            }
            Some(Pending::Worker {
                worker,
                client,
                token,
                sent,
            }) => {
                self.shared.record_rtt(sent.elapsed());
                self.deliver(
                    worker,
                    RelayEvent::Reply {
                        client,
                        token,
                        reply: Ok(reply),
                    },
                );
            }
            Some(Pending::Quiet { sent }) => {
                self.shared.record_rtt(sent.elapsed());
                if let Reply::Error(e) = &reply {
                    self.shared.stats.command_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %String::from_utf8_lossy(e), "redis command failed");
                }
            }
            None => {
                return Err(LinkError::Io(io::Error::other(
                    "unexpected reply from redis",
                )));
            }
        }
        Ok(())
    }

    fn on_sub_event(&mut self, readable: bool, writable: bool) -> Result<(), LinkError> {
        let registry = self.poll.registry();
        let Some(link) = self.sub.as_mut() else {
            return Ok(());
        };
        if writable {
            link.on_writable(registry)?;
        }
        if readable {
            let mut replies = Vec::new();
            link.on_readable(&mut self.scratch, |r| replies.push(r))?;
            for r in replies {
                self.on_sub_reply(r)?;
            }
        }
        Ok(())
    }

    fn on_sub_reply(&mut self, reply: Reply) -> Result<(), LinkError> {
        if self.sub_setup > 0 {
            if let Reply::Error(e) = &reply {
                let text = String::from_utf8_lossy(e).into_owned();
                return Err(LinkError::Io(io::Error::other(format!(
                    "redis setup: {text}"
                ))));
            }
            self.sub_setup -= 1;
            self.maybe_up();
            return Ok(());
        }
        match reply.pubsub() {
            Some(PubSub::Message { channel, payload }) => {
                self.shared.stats.received.fetch_add(1, Relaxed);
                let worker = (self.sink.route)(channel);
                self.deliver(
                    worker,
                    RelayEvent::Message {
                        channel: channel.to_vec(),
                        payload: payload.to_vec(),
                    },
                );
            }
            Some(PubSub::Subscribed { channel, .. }) => {
                let waiters = self
                    .channels
                    .get_mut(channel)
                    .map(std::mem::take)
                    .unwrap_or_default();
                {
                    for (worker, token) in waiters {
                        self.deliver(
                            worker,
                            RelayEvent::Subscribed {
                                token,
                                channel: channel.to_vec(),
                            },
                        );
                    }
                }
            }
            Some(_) => {}
            None => {
                if let Reply::Error(e) = &reply {
                    tracing::warn!(error = %String::from_utf8_lossy(e), "redis subscriber error");
                }
            }
        }
        Ok(())
    }

    /// Both links finished their setup: resubscribe, send the backlog, tell the workers.
    fn maybe_up(&mut self) {
        if self.up || self.cmd_setup > 0 || self.sub_setup > 0 {
            return;
        }
        let (Some(_), Some(sub)) = (self.cmd.as_ref(), self.sub.as_mut()) else {
            return;
        };
        for channel in self.channels.keys() {
            write_command(sub.out(), &[b"SUBSCRIBE", channel]);
        }
        self.up = true;
        self.first_connect_done = true;
        self.connected_at = None;
        self.backoff = BACKOFF_MIN;
        self.shared.set_state(RelayState::Up);
        tracing::info!(node = %self.cfg.node_id, "relay connected to redis");
        for w in 0..self.sink.workers {
            self.deliver(w, RelayEvent::Up);
        }
        if self.backlog.is_empty() {
            self.grace_until = None;
        } else {
            self.grace_until = Some(Instant::now() + BACKLOG_GRACE);
        }
    }

    /// Sends what waited for Redis, in order.
    fn send_backlog(&mut self) {
        for q in std::mem::take(&mut self.backlog) {
            if q.quiet {
                self.send_quiet(q.cmd);
            } else {
                self.send_worker_command(q.cmd, q.worker, q.client, q.token);
            }
        }
        self.shared.stats.backlog.store(0, Relaxed);
    }

    /// A link failed: close both, fail what was in flight, schedule a reconnect.
    fn link_failed(&mut self, e: &LinkError) {
        let registry = self.poll.registry();
        if let Some(l) = self.cmd.take() {
            l.close(registry);
        }
        if let Some(l) = self.sub.take() {
            l.close(registry);
        }
        // Commands in flight may or may not have run: they are failed, never resent (a
        // publish sent twice would be delivered twice).
        for p in std::mem::take(&mut self.pending) {
            match p {
                Pending::Worker {
                    worker,
                    client,
                    token,
                    ..
                } => {
                    self.shared.stats.dropped_in_flight.fetch_add(1, Relaxed);
                    self.deliver(
                        worker,
                        RelayEvent::Reply {
                            client,
                            token,
                            reply: Err(()),
                        },
                    );
                }
                Pending::Quiet { .. } => {
                    self.shared.stats.dropped_in_flight.fetch_add(1, Relaxed);
                }
                Pending::Setup { .. } => {}
            }
        }
        let was_up = std::mem::replace(&mut self.up, false);
        self.grace_until = None;
        if was_up {
            self.shared.stats.reconnects.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "relay lost redis; reconnecting");
            for w in 0..self.sink.workers {
                self.deliver(w, RelayEvent::Down);
            }
        } else {
            tracing::debug!(error = %e, "relay cannot reach redis");
        }
        self.shared.set_state(RelayState::Down);
        // Full jitter: a random wait in [0, backoff), then double the backoff.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let wait_ms = self.rng % (self.backoff.as_millis() as u64).max(1);
        self.reconnect_at = Some(Instant::now() + Duration::from_millis(wait_ms));
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("no address for {host}")))
}
