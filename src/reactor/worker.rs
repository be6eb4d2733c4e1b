//! One worker: a mio `Poll`, its own SO_REUSEPORT listener, a slab of connections that never
//! leave it, an inbox woken by a `Waker`, and a timer sweep.
//!
//! Owns every socket of its connections and all IO on them. Readiness is edge-triggered:
//! reads and writes go until `WouldBlock` (reads within a per-event budget, the rest is
//! resumed next iteration), and writable interest is registered only while output is
//! pending. Output produced while handling one batch of events is corked and flushed at the
//! end of the iteration, oldest first and at most `FLUSH_BUDGET` connections (or as many as
//! events were handled) per iteration; the rest go on the next, after a poll that does not
//! wait, so messages that arrive during a long fan-out join the writes still to come.
//! Closed connections are freed after the iteration, so a token is never reused within one
//! batch of events.
//!
//! Iteration order: poll → handle events (accept, inbox, reads, writes) → fan out published
//! frames (to other workers' inboxes, then to local members) → flush → sweep timers (when
//! due) → free closed connections.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use super::clock::{elapsed, millis, reached, Clock, Millis};
use super::compress::{ConnDeflate, WorkerDeflate};
use super::conn::{Conn, Phase};
use super::pool::BufPool;
use super::stats::{self, WorkerStats};
use crate::config::Config;
use crate::hub::{Hub, SharedFrame, WorkerMsg};
use crate::route::{Route, Router};
use crate::ws::assemble::DataKind;
use crate::ws::close::encode_close_payload;
use crate::ws::deflate;
use crate::ws::frame::{encode_frame, FrameHeader, HeaderStatus, RSV1};
use crate::ws::handshake::{parse_head, write_accept, write_reject};
use crate::ws::{CloseCode, Event, HandshakeError, HeaderRules, MessageLimits, OpCode};

pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// Bytes read per read(2) into the worker's shared receive buffer.
const READ_BUF_SIZE: usize = 64 << 10;
/// Reads per readiness event before the connection yields to others (fairness).
const READ_BUDGET: usize = 16;
/// Connections flushed per loop iteration before new events are taken in, at least. The
/// budget is raised to the number of events handled in the iteration, so output a connection
/// produced for itself (a 101, an echo, a close reply: an owned pooled buffer each) never
/// piles up faster than it is flushed; only fan-out (shared frames, a few bytes of queue per
/// recipient) is spread over several iterations.
const FLUSH_BUDGET: usize = 256;
/// Events taken per poll.
const EVENTS_CAPACITY: usize = 1024;
/// How long accepting pauses after EMFILE/ENFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Free output queues kept per worker (small: a box and an empty deque).
const POOL_MAX_FREE_QUEUES: usize = 4096;
/// Bytes of free buffers kept per worker.
const POOL_MAX_FREE_BYTES: usize = 4 << 20;

/// A worker's handle on another worker (or itself).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) tx: Sender<WorkerMsg>,
    pub(crate) waker: Arc<Waker>,
}

/// Settings converted to the worker's units.
#[derive(Debug, Clone, Copy)]
struct Limits {
    msg: MessageLimits,
    /// Same with RSV1 allowed (connections that negotiated permessage-deflate).
    msg_deflate: MessageLimits,
    max_head: usize,
    send_buffer_limit: usize,
    ping_interval: Millis,
    idle_timeout: Millis,
    handshake_timeout: Millis,
    close_timeout: Millis,
    write_stall_timeout: Millis,
    drain_timeout: Millis,
    sweep_interval: Millis,
    max_connections: usize,
}

impl Limits {
    fn new(cfg: &Config) -> Self {
        let msg = MessageLimits {
            header: HeaderRules {
                require_mask: true,
                allowed_rsv: 0,
                max_frame: cfg.max_frame as u64,
            },
            max_message: cfg.max_message,
        };
        let mut msg_deflate = msg;
        msg_deflate.header.allowed_rsv = RSV1;
        Self {
            msg,
            msg_deflate,
            max_head: cfg.max_head,
            send_buffer_limit: cfg.send_buffer_limit,
            ping_interval: millis(cfg.ping_interval),
            idle_timeout: millis(cfg.idle_timeout),
            handshake_timeout: millis(cfg.handshake_timeout),
            close_timeout: millis(cfg.close_timeout),
            write_stall_timeout: millis(cfg.write_stall_timeout),
            drain_timeout: millis(cfg.drain_timeout),
            sweep_interval: millis(cfg.sweep_interval()),
            max_connections: cfg.max_connections,
        }
    }
}

/// Everything a connection handler needs besides the connection itself (split from the slab
/// so both can be borrowed at once).
struct Ctx {
    now: Millis,
    limits: Limits,
    router: Router,
    registry: Registry,
    pool: BufPool,
    hub: Hub,
    /// Connections with output queued and not yet offered to the socket, in the order they
    /// got it. Flushed [`FLUSH_BUDGET`] at a time between polls, so that a long flush (a
    /// fan-out to many thousands) takes in what arrives meanwhile and a connection further
    /// back in the queue leaves with everything queued for it in one write. May hold keys
    /// freed since they were pushed (flushing a reused key early is harmless).
    dirty: VecDeque<usize>,
    /// Connections to free after this iteration.
    closed: Vec<usize>,
    stats: Arc<WorkerStats>,
    /// Open connections of the whole process (for `max_connections`).
    total_conns: Arc<AtomicUsize>,
    /// Compression settings and shared compressors.
    deflate: WorkerDeflate,
    /// Scratch for inflated messages.
    inflated: Vec<u8>,
}

/// What to do with a connection after an event borrowed from it is gone.
enum After {
    Nothing,
    Dirty,
    /// Output of this many bytes was queued for the sender itself.
    Queued(usize),
    ReplyClose(Option<CloseCode>),
    PeerClosed,
    Fail(CloseCode, &'static str),
}

pub(crate) struct Worker {
    id: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    read_buf: Box<[u8]>,
    ctx: Ctx,
    clock: Clock,
    inbox: Receiver<WorkerMsg>,
    peers: Arc<[Peer]>,
    /// Connections whose read budget ran out; resumed next iteration.
    rerun: Vec<usize>,
    /// Frames to deliver to local broadcast members this iteration.
    fanout: Vec<SharedFrame>,
    /// Frames published here this iteration, to send to other workers.
    outgoing: Vec<SharedFrame>,
    accept_paused_until: Option<Millis>,
    next_sweep: Millis,
    /// Set on shutdown: exit when all connections are gone or at this time.
    drain_deadline: Option<Millis>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        poll: Poll,
        listener: std::net::TcpListener,
        cfg: &Config,
        inbox: Receiver<WorkerMsg>,
        peers: Arc<[Peer]>,
        stats: Arc<WorkerStats>,
        total_conns: Arc<AtomicUsize>,
    ) -> io::Result<Self> {
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let registry = poll.registry().try_clone()?;
        let clock = Clock::new();
        let limits = Limits::new(cfg);
        Ok(Self {
            id,
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            read_buf: vec![0u8; READ_BUF_SIZE].into_boxed_slice(),
            ctx: Ctx {
                now: clock.now(),
                limits,
                router: Router::default(),
                registry,
                pool: BufPool::new(POOL_MAX_FREE_QUEUES, POOL_MAX_FREE_BYTES),
                hub: Hub::default(),
                dirty: VecDeque::new(),
                closed: Vec::new(),
                stats,
                total_conns,
                deflate: WorkerDeflate::new(
                    cfg.compression,
                    cfg.compression_level,
                    cfg.compression_min_size,
                ),
                inflated: Vec::new(),
            },
            clock,
            inbox,
            peers,
            rerun: Vec::new(),
            fanout: Vec::new(),
            outgoing: Vec::new(),
            accept_paused_until: None,
            next_sweep: limits.sweep_interval,
            drain_deadline: None,
        })
    }

    /// Runs the event loop until shutdown completes.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        tracing::debug!(worker = self.id, "worker started");
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(worker = self.id, error = %e, "poll failed");
                    return;
                }
            }
            self.ctx.now = self.clock.now();

            let rerun = std::mem::take(&mut self.rerun);
            let handled = rerun.len() + events.iter().count();
            for key in rerun {
                self.on_readable(key, true);
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_ready(),
                    WAKER => self.drain_inbox(),
                    Token(key) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(key, ev.is_read_closed() || ev.is_error());
                        }
                        if ev.is_writable() {
                            if let Some(conn) = self.conns.get_mut(key) {
                                self.ctx.flush(key, conn);
                            }
                        }
                    }
                }
            }
            if let Some(until) = self.accept_paused_until {
                if reached(self.ctx.now, until) {
                    self.accept_paused_until = None;
                    self.accept_ready();
                }
            }
            self.fan_out();
            self.flush_dirty(FLUSH_BUDGET.max(handled));
            if reached(self.ctx.now, self.next_sweep) {
                self.sweep();
                self.next_sweep = self.ctx.now.wrapping_add(self.ctx.limits.sweep_interval);
            }
            self.reap();
            if let Some(deadline) = self.drain_deadline {
                if self.conns.is_empty() || reached(self.ctx.now, deadline) {
                    tracing::debug!(worker = self.id, left = self.conns.len(), "worker drained");
                    return;
                }
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        if !self.rerun.is_empty() || !self.ctx.dirty.is_empty() {
            return Duration::ZERO;
        }
        let now = self.clock.now();
        let mut wait = if reached(now, self.next_sweep) {
            0
        } else {
            self.next_sweep.wrapping_sub(now)
        };
        if let Some(until) = self.accept_paused_until {
            wait = wait.min(if reached(now, until) {
                0
            } else {
                until.wrapping_sub(now)
            });
        }
        if let Some(until) = self.drain_deadline {
            wait = wait.min(if reached(now, until) {
                0
            } else {
                until.wrapping_sub(now)
            });
        }
        Duration::from_millis(u64::from(wait))
    }

    fn accept_ready(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((sock, _)) => self.on_accept(sock),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if super::accept::is_resource_exhaustion(&e) => {
                    // Retrying now would spin: the backlog stays readable. Pause, keep serving.
                    stats::add(&self.ctx.stats.accept_errors, 1);
                    tracing::warn!(worker = self.id, error = %e, "accept failed; pausing accepts");
                    self.accept_paused_until =
                        Some(self.ctx.now.wrapping_add(millis(ACCEPT_BACKOFF)));
                    return;
                }
                Err(e) => {
                    // ECONNABORTED and friends concern one connection only.
                    tracing::debug!(worker = self.id, error = %e, "accept error");
                }
            }
        }
    }

    fn on_accept(&mut self, mut sock: TcpStream) {
        let ctx = &mut self.ctx;
        if ctx.total_conns.fetch_add(1, Ordering::Relaxed) >= ctx.limits.max_connections {
            ctx.total_conns.fetch_sub(1, Ordering::Relaxed);
            stats::add(&ctx.stats.over_limit, 1);
            let mut resp = Vec::new();
            write_reject(&mut resp, &HandshakeError::ServiceUnavailable);
            let _ = sock.write(&resp); // best effort: a fresh socket's buffer takes it
            return;
        }
        let _ = sock.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = ctx
            .registry
            .register(&mut sock, Token(key), Interest::READABLE)
        {
            tracing::warn!(error = %e, "register failed");
            ctx.total_conns.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let deadline = ctx.now.wrapping_add(ctx.limits.handshake_timeout);
        entry.insert(Conn::new(sock, ctx.now, deadline));
        stats::add(&ctx.stats.accepted, 1);
        stats::add(&ctx.stats.connections, 1);
        // Edge-triggered: data that arrived with the SYN is reported by the first poll.
    }

    fn drain_inbox(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                WorkerMsg::Broadcast(frame) => self.fanout.push(frame),
                WorkerMsg::Shutdown => self.begin_shutdown(),
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.drain_deadline.is_some() {
            return;
        }
        tracing::info!(
            worker = self.id,
            connections = self.conns.len(),
            "shutting down"
        );
        if let Some(mut l) = self.listener.take() {
            let _ = self.ctx.registry.deregister(&mut l);
        }
        self.accept_paused_until = None;
        self.drain_deadline = Some(self.ctx.now.wrapping_add(self.ctx.limits.drain_timeout));
        for (key, conn) in self.conns.iter_mut() {
            match conn.phase {
                Phase::Handshake => self.ctx.close_now(key, conn),
                Phase::Open => self
                    .ctx
                    .start_close(key, conn, CloseCode::GOING_AWAY, "going away"),
                _ => {}
            }
        }
    }

    /// Reads until `WouldBlock`, or until a short read when the peer has not closed its side:
    /// a read that did not fill the buffer drained the socket, and anything arriving later
    /// raises a new edge, so the extra read(2) that would only say `WouldBlock` is skipped.
    /// When the event reports the peer's FIN (`read_closed`), reading goes on until EOF.
    fn on_readable(&mut self, key: usize, read_closed: bool) {
        for _ in 0..READ_BUDGET {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.phase == Phase::Closed {
                return;
            }
            let n = match conn.sock.read(&mut self.read_buf) {
                Ok(0) => {
                    // Peer's FIN. In Lingering this is the end we waited for; otherwise the
                    // peer left without a close handshake (1006 on its side).
                    self.ctx.close_now(key, conn);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.ctx.close_now(key, conn);
                    return;
                }
            };
            conn.last_rx = self.ctx.now;
            let drained = n < self.read_buf.len() && !read_closed;
            if conn.phase != Phase::Lingering {
                self.ctx.handle_read(key, conn, &mut self.read_buf[..n]);
            } // else: discard
            if drained {
                return;
            }
        }
        self.rerun.push(key);
    }

    /// Sends this iteration's published frames to the other workers and delivers them (and
    /// frames from the inbox) to local members, encoded once, the same bytes for everyone.
    fn fan_out(&mut self) {
        self.ctx.hub.take_published(&mut self.outgoing);
        if !self.outgoing.is_empty() {
            for (i, peer) in self.peers.iter().enumerate() {
                if i == self.id {
                    continue;
                }
                for frame in &self.outgoing {
                    let _ = peer.tx.send(WorkerMsg::Broadcast(frame.clone()));
                }
                let _ = peer.waker.wake();
            }
            self.fanout.append(&mut self.outgoing);
        }
        if self.fanout.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.fanout);
        for frame in &frames {
            self.fan_out_one(frame);
        }
        self.fanout = frames;
        self.fanout.clear();
    }

    /// Queues one frame to every local broadcast member: the plain bytes to connections
    /// without compression, one shared compressed frame per window size to shared-mode
    /// connections, a per-connection compression only to dedicated-mode ones.
    fn fan_out_one(&mut self, frame: &SharedFrame) {
        let plain_rules = HeaderRules {
            require_mask: false,
            allowed_rsv: 0,
            max_frame: u64::MAX >> 1,
        };
        let (kind, header_len) = match FrameHeader::decode(frame, &plain_rules) {
            Ok(HeaderStatus::Complete { header, header_len }) => (
                if header.opcode == OpCode::Binary {
                    DataKind::Binary
                } else {
                    DataKind::Text
                },
                header_len,
            ),
            _ => return, // frames are built by publishers in this crate; never malformed
        };
        let payload = &frame[header_len..];
        // Compressed variants by window bits, made on first use.
        let mut compressed: [Option<Option<SharedFrame>>; 16] = Default::default();
        for i in 0..self.ctx.hub.broadcast.len() {
            let key = self.ctx.hub.broadcast.members()[i];
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.phase != Phase::Open {
                continue;
            }
            if self.ctx.is_slow_consumer(key, conn, 0) {
                self.ctx.evict(key, conn);
                continue;
            }
            if conn.phase != Phase::Open {
                continue; // the flush found the socket dead
            }
            let ctx = &mut self.ctx;
            match conn.deflate.as_deref() {
                None => ctx.queue(key, conn).push_shared(frame.clone()),
                Some(cd) if cd.is_shared() => {
                    let bits = cd.params.server_max_window_bits.clamp(8, 15);
                    let variant = compressed[usize::from(bits)]
                        .get_or_insert_with(|| {
                            ctx.deflate
                                .shared_frame(bits, kind, payload)
                                .map(SharedFrame::from)
                        })
                        .clone();
                    ctx.queue(key, conn)
                        .push_shared(variant.unwrap_or_else(|| frame.clone()));
                }
                Some(_) => {
                    if conn.out.is_none() {
                        conn.out_progress = ctx.now;
                    }
                    ctx.mark_dirty(key, conn);
                    let q = conn.out.get_or_insert_with(|| ctx.pool.get_queue());
                    let wd = &mut ctx.deflate;
                    let cd = conn.deflate.as_deref_mut();
                    q.push_owned(&mut ctx.pool, |v| wd.encode_message(cd, kind, payload, v));
                }
            }
        }
    }

    /// Offers queued output to up to `budget` connections, oldest first.
    fn flush_dirty(&mut self, budget: usize) {
        for _ in 0..budget {
            let Some(key) = self.ctx.dirty.pop_front() else {
                return;
            };
            if let Some(conn) = self.conns.get_mut(key) {
                conn.dirty = false;
                self.ctx.flush(key, conn);
            }
        }
    }

    /// Checks every connection's timers (a coarse sweep instead of a timer per socket).
    fn sweep(&mut self) {
        let now = self.ctx.now;
        let l = self.ctx.limits;
        for (key, conn) in self.conns.iter_mut() {
            if conn.out.is_some() && elapsed(now, conn.out_progress) >= l.write_stall_timeout {
                stats::add(&self.ctx.stats.timeouts, 1);
                self.ctx.close_now(key, conn);
                continue;
            }
            match conn.phase {
                Phase::Handshake if reached(now, conn.deadline) => {
                    stats::add(&self.ctx.stats.timeouts, 1);
                    self.ctx.reject(key, conn, &HandshakeError::Timeout);
                }
                Phase::Open => {
                    if elapsed(now, conn.last_rx) >= l.idle_timeout {
                        // The peer answered no ping: treat it as gone.
                        stats::add(&self.ctx.stats.timeouts, 1);
                        self.ctx
                            .start_close(key, conn, CloseCode::GOING_AWAY, "idle timeout");
                    } else if elapsed(now, conn.last_rx) >= l.ping_interval
                        && elapsed(now, conn.last_ping) >= l.ping_interval
                    {
                        conn.last_ping = now;
                        self.ctx.queue_control(key, conn, OpCode::Ping, b"");
                    }
                }
                Phase::Closing | Phase::Lingering if reached(now, conn.deadline) => {
                    stats::add(&self.ctx.stats.timeouts, 1);
                    self.ctx.close_now(key, conn);
                }
                _ => {}
            }
        }
        self.flush_dirty(usize::MAX);
    }

    /// Frees connections closed during this iteration.
    fn reap(&mut self) {
        let closed = std::mem::take(&mut self.ctx.closed);
        for &key in &closed {
            let Some(conn) = self.conns.try_remove(key) else {
                continue;
            };
            if let Some(slot) = conn.slot {
                if let Some(moved) = self.ctx.hub.broadcast.leave(slot) {
                    if let Some(m) = self.conns.get_mut(moved) {
                        m.slot = Some(slot);
                    }
                }
            }
            stats::dec(&self.ctx.stats.connections);
            self.ctx.total_conns.fetch_sub(1, Ordering::Relaxed);
            drop(conn); // closes the socket
        }
        self.ctx.closed = closed;
        self.ctx.closed.clear();
    }
}

impl Ctx {
    /// Processes freshly read bytes: appends them to a leftover if there is one, otherwise
    /// handles them straight from the worker's read buffer and keeps only what is unfinished.
    fn handle_read(&mut self, key: usize, conn: &mut Conn, data: &mut [u8]) {
        if let Some(mut input) = conn.input.take() {
            input.extend_from_slice(data);
            let used = self.handle_input(key, conn, &mut input);
            if conn.phase == Phase::Closed || conn.phase == Phase::Lingering || used == input.len()
            {
                self.pool.put_buf(input);
            } else {
                input.drain(..used);
                conn.input = Some(input);
            }
        } else {
            let used = self.handle_input(key, conn, data);
            if used < data.len()
                && matches!(conn.phase, Phase::Handshake | Phase::Open | Phase::Closing)
            {
                let mut input = self.pool.get_buf();
                input.extend_from_slice(&data[used..]);
                conn.input = Some(input);
            }
        }
    }

    /// Handles as much of `data` as is complete; returns the bytes used.
    fn handle_input(&mut self, key: usize, conn: &mut Conn, data: &mut [u8]) -> usize {
        let mut pos = 0;
        if conn.phase == Phase::Handshake {
            match self.handle_handshake(key, conn, data) {
                Some(n) => pos = n,
                None => return data.len(),
            }
            if conn.phase == Phase::Handshake {
                return 0;
            }
        }
        while pos < data.len() && matches!(conn.phase, Phase::Open | Phase::Closing) {
            let limits = if conn.deflate.is_some() {
                &self.limits.msg_deflate
            } else {
                &self.limits.msg
            };
            let decoded = match conn.asm.handle_bytes(&mut data[pos..], limits) {
                Ok(d) => d,
                Err(e) => {
                    stats::add(&self.stats.protocol_errors, 1);
                    tracing::debug!(key, error = %e, "protocol error");
                    self.fail(key, conn, e.close_code(), &e.to_string());
                    return data.len();
                }
            };
            let consumed = decoded.consumed;
            let after = match decoded.event {
                None if consumed == 0 => break,
                None => After::Nothing,
                Some(Event::Message {
                    kind,
                    payload,
                    compressed,
                }) => {
                    stats::add(&self.stats.messages_in, 1);
                    if conn.phase != Phase::Open {
                        After::Nothing // after our close, data is discarded
                    } else if !compressed {
                        self.dispatch(
                            conn.route,
                            &mut conn.out,
                            &mut conn.out_progress,
                            conn.deflate.as_deref_mut(),
                            kind,
                            payload,
                        )
                    } else {
                        let mut inflated = std::mem::take(&mut self.inflated);
                        let after = match conn.deflate.as_deref_mut() {
                            // RSV1 is only accepted from connections that negotiated deflate.
                            None => After::Fail(CloseCode::PROTOCOL, "unexpected rsv1"),
                            Some(cd) => match self.deflate.inflate(
                                cd,
                                payload,
                                &mut inflated,
                                self.limits.msg.max_message,
                            ) {
                                Err(e) => After::Fail(
                                    e.close_code(),
                                    if e.close_code() == CloseCode::TOO_BIG {
                                        "message too big"
                                    } else {
                                        "invalid compressed data"
                                    },
                                ),
                                Ok(())
                                    if kind == DataKind::Text
                                        && std::str::from_utf8(&inflated).is_err() =>
                                {
                                    After::Fail(
                                        CloseCode::INVALID_PAYLOAD,
                                        "invalid utf-8 in text message",
                                    )
                                }
                                Ok(()) => self.dispatch(
                                    conn.route,
                                    &mut conn.out,
                                    &mut conn.out_progress,
                                    conn.deflate.as_deref_mut(),
                                    kind,
                                    &inflated,
                                ),
                            },
                        };
                        if inflated.capacity() > 1 << 20 {
                            inflated = Vec::new(); // keep no big buffer around
                        }
                        self.inflated = inflated;
                        after
                    }
                }
                Some(Event::Ping(p)) => {
                    if conn.phase == Phase::Open {
                        if conn.out.is_none() {
                            conn.out_progress = self.now;
                        }
                        let q = conn.out.get_or_insert_with(|| self.pool.get_queue());
                        q.push_owned(&mut self.pool, |v| encode_frame(v, OpCode::Pong, 0, p));
                        After::Dirty
                    } else {
                        After::Nothing
                    }
                }
                Some(Event::Pong(_)) => After::Nothing,
                Some(Event::Close(frame)) => {
                    if conn.phase == Phase::Open {
                        After::ReplyClose(frame.code)
                    } else {
                        After::PeerClosed
                    }
                }
            };
            pos += consumed;
            match after {
                After::Nothing => {}
                After::Dirty => self.mark_dirty(key, conn),
                After::Queued(added) => {
                    self.mark_dirty(key, conn);
                    if self.is_slow_consumer(key, conn, added) {
                        self.evict(key, conn);
                        return data.len();
                    }
                    if conn.phase == Phase::Closed {
                        return data.len();
                    }
                }
                After::ReplyClose(code) => {
                    // "If an endpoint receives a Close frame and did not previously send a
                    // Close frame, the endpoint MUST send a Close frame in response ...
                    // typically echoing the status code it received."
                    let mut payload = [0u8; 125];
                    let n = code.map_or(0, |c| encode_close_payload(c, "", &mut payload));
                    self.queue_control(key, conn, OpCode::Close, &payload[..n]);
                    self.linger(conn);
                    conn.close_done = true;
                    return data.len();
                }
                After::PeerClosed => {
                    self.linger(conn);
                    conn.close_done = true;
                    self.mark_dirty(key, conn); // the flush shuts our side down
                    return data.len();
                }
                After::Fail(code, reason) => {
                    stats::add(&self.stats.protocol_errors, 1);
                    self.fail(key, conn, code, reason);
                    return data.len();
                }
            }
        }
        pos
    }

    /// Sends a received message where its endpoint says.
    fn dispatch(
        &mut self,
        route: Route,
        out: &mut Option<Box<super::outq::OutQueue>>,
        out_progress: &mut Millis,
        deflate: Option<&mut ConnDeflate>,
        kind: DataKind,
        payload: &[u8],
    ) -> After {
        match route {
            Route::Echo => {
                if out.is_none() {
                    *out_progress = self.now;
                }
                let q = out.get_or_insert_with(|| self.pool.get_queue());
                let before = q.len();
                let wd = &mut self.deflate;
                q.push_owned(&mut self.pool, |v| {
                    wd.encode_message(deflate, kind, payload, v)
                });
                After::Queued(q.len() - before)
            }
            Route::Broadcast => {
                // Encoded once, plain; compressed variants are made once per worker in fan-out.
                let mut frame = Vec::with_capacity(
                    FrameHeader::encoded_len(payload.len(), false) + payload.len(),
                );
                encode_frame(&mut frame, kind.opcode(), 0, payload);
                self.hub.publish(SharedFrame::from(frame));
                After::Nothing
            }
        }
    }

    /// Parses the upgrade request. `Some(n)`: `n` bytes of head used (the phase says whether
    /// the upgrade happened); `None`: rejected, discard the input.
    fn handle_handshake(&mut self, key: usize, conn: &mut Conn, data: &[u8]) -> Option<usize> {
        let head = match parse_head(data, self.limits.max_head) {
            Ok(None) => return Some(0),
            Ok(Some(h)) => h,
            Err(e) => {
                self.reject(key, conn, &e);
                return None;
            }
        };
        let route = match self.router.resolve(head.path) {
            Some(r) if r.is_websocket() => r,
            _ => {
                self.reject(key, conn, &HandshakeError::NotFound);
                return None;
            }
        };
        let upgrade = match head.validate_upgrade() {
            Ok(u) => u,
            Err(e) => {
                self.reject(key, conn, &e);
                return None;
            }
        };
        let negotiated = deflate::negotiate(head.extensions(), self.deflate.mode);
        let ext = negotiated.as_ref().map(|(_, r)| r.as_str());
        let q = conn.out.get_or_insert_with(|| self.pool.get_queue());
        q.push_owned(&mut self.pool, |v| write_accept(v, &upgrade, None, ext));
        conn.deflate = negotiated.map(|(p, _)| Box::new(ConnDeflate::new(p)));
        conn.out_progress = self.now;
        conn.phase = Phase::Open;
        conn.route = route;
        conn.last_rx = self.now;
        conn.last_ping = self.now;
        if route == Route::Broadcast {
            conn.slot = Some(self.hub.broadcast.join(key));
        }
        stats::add(&self.stats.handshakes, 1);
        self.mark_dirty(key, conn);
        Some(head.head_len)
    }

    /// The connection's output queue (taken from the pool if it had none), marked for flush.
    fn queue<'c>(&mut self, key: usize, conn: &'c mut Conn) -> &'c mut super::outq::OutQueue {
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push_back(key);
        }
        if conn.out.is_none() {
            conn.out_progress = self.now;
        }
        conn.out.get_or_insert_with(|| self.pool.get_queue())
    }

    /// True when more than the send-buffer limit stays queued even after offering it to the
    /// socket: output corked during this iteration does not count against a reader that
    /// keeps up.
    ///
    /// `just_queued` bytes at the tail are the message being delivered now: only the backlog
    /// in front of it counts, so a single message larger than the limit is always accepted
    /// into a queue that keeps up (the bound is the limit plus one message).
    fn is_slow_consumer(&mut self, key: usize, conn: &mut Conn, just_queued: usize) -> bool {
        let limit = self.limits.send_buffer_limit;
        if conn.pending_out().saturating_sub(just_queued) <= limit {
            return false;
        }
        self.flush(key, conn);
        conn.phase != Phase::Closed && conn.pending_out().saturating_sub(just_queued) > limit
    }

    fn mark_dirty(&mut self, key: usize, conn: &mut Conn) {
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push_back(key);
        }
    }

    fn queue_control(&mut self, key: usize, conn: &mut Conn, opcode: OpCode, payload: &[u8]) {
        let q = self.queue(key, conn);
        // Control frames are never dropped: they bypass the send-buffer limit.
        let pool = &mut self.pool;
        q.push_owned(pool, |v| encode_frame(v, opcode, 0, payload));
    }

    /// Sends a close frame and waits for the peer's (close handshake initiated by us).
    fn start_close(&mut self, key: usize, conn: &mut Conn, code: CloseCode, reason: &str) {
        if conn.phase != Phase::Open {
            return;
        }
        let mut payload = [0u8; 125];
        let n = encode_close_payload(code, reason, &mut payload);
        self.queue_control(key, conn, OpCode::Close, &payload[..n]);
        conn.phase = Phase::Closing;
        conn.deadline = self.now.wrapping_add(self.limits.close_timeout);
    }

    /// Fails the connection: close frame with `code`, then shut down (RFC 6455 §7.1.7).
    fn fail(&mut self, key: usize, conn: &mut Conn, code: CloseCode, reason: &str) {
        let mut payload = [0u8; 125];
        let n = encode_close_payload(code, reason, &mut payload);
        self.queue_control(key, conn, OpCode::Close, &payload[..n]);
        self.linger(conn);
    }

    /// Evicts a slow consumer: drops its unsent backlog and closes with 1008.
    fn evict(&mut self, key: usize, conn: &mut Conn) {
        stats::add(&self.stats.slow_consumers, 1);
        tracing::debug!(key, queued = conn.pending_out(), "slow consumer evicted");
        if let Some(q) = conn.out.as_mut() {
            q.discard_unsent(&mut self.pool);
        }
        self.start_close(key, conn, CloseCode::POLICY, "slow consumer");
    }

    /// Answers a bad request with its HTTP status and closes.
    fn reject(&mut self, key: usize, conn: &mut Conn, err: &HandshakeError) {
        stats::add(&self.stats.rejected, 1);
        tracing::debug!(key, status = err.status(), reason = %err, "handshake rejected");
        let q = self.queue(key, conn);
        let pool = &mut self.pool;
        q.push_owned(pool, |v| write_reject(v, err));
        self.linger(conn);
    }

    /// Flush what is queued, then shut down our side and wait for the peer's FIN.
    fn linger(&mut self, conn: &mut Conn) {
        conn.phase = Phase::Lingering;
        conn.deadline = self.now.wrapping_add(self.limits.close_timeout);
        if let Some(input) = conn.input.take() {
            self.pool.put_buf(input);
        }
    }

    /// Writes pending output; adjusts writable interest; shuts down a lingering connection
    /// once everything is out.
    fn flush(&mut self, key: usize, conn: &mut Conn) {
        if conn.phase == Phase::Closed {
            return;
        }
        if let Some(q) = conn.out.as_mut() {
            let mut sock = super::outq::SocketWriter(socket2::SockRef::from(&conn.sock));
            match q.write_to(&mut sock, &mut self.pool) {
                Ok(0) => {}
                Ok(_) => conn.out_progress = self.now,
                Err(_) => {
                    self.close_now(key, conn);
                    return;
                }
            }
            if q.is_empty() {
                if let Some(q) = conn.out.take() {
                    self.pool.put_queue(q);
                }
            }
        }
        let want_writable = conn.out.is_some();
        if want_writable != conn.writable_interest {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .registry
                .reregister(&mut conn.sock, Token(key), interest)
                .is_err()
            {
                self.close_now(key, conn);
                return;
            }
            conn.writable_interest = want_writable;
        }
        if !want_writable && conn.phase == Phase::Lingering && conn.close_done {
            // RFC 6455 §7.1.1: the server closes the TCP connection first. The peer's
            // close frame was its last word, so nothing unread can turn this into a reset.
            self.close_now(key, conn);
            return;
        }
        if !want_writable && conn.phase == Phase::Lingering && !conn.shut_wr {
            conn.shut_wr = true;
            if conn.sock.shutdown(Shutdown::Write).is_err() {
                self.close_now(key, conn);
            }
        }
    }

    /// Closes at once (no more IO); the slab entry is freed after this iteration.
    fn close_now(&mut self, key: usize, conn: &mut Conn) {
        if conn.phase == Phase::Closed {
            return;
        }
        conn.phase = Phase::Closed;
        if let Some(q) = conn.out.take() {
            self.pool.put_queue(q);
        }
        if let Some(input) = conn.input.take() {
            self.pool.put_buf(input);
        }
        self.closed.push(key);
    }
}
