//! One worker: a mio `Poll`, its own SO_REUSEPORT listener, a slab of connections that never
//! leave it, an inbox woken by a `Waker`, a timer sweep, and one instance of the application.
//!
//! Owns the event loop and the life of connections (accept, timers, freeing). Readiness is
//! edge-triggered: reads and writes go until `WouldBlock` (reads within a per-event budget,
//! the rest is resumed next iteration), and writable interest is registered only while output
//! is pending. What a connection sends itself while one of its reads is handled (an echo, a
//! reply, a 101) is corked in one worker buffer and written right after that read. Other
//! output (fan-out, messages from peers, what the cork could not write) is queued and
//! flushed at the end of the iteration, oldest first and at most `FLUSH_BUDGET` connections
//! (or as many as events were handled) per iteration; the rest go on the next, after a poll
//! that does not wait, so messages that arrive during a long fan-out join the writes still
//! to come.
//! Closed connections are freed after the events of an iteration are handled, so a token is
//! never reused within one batch of events.
//!
//! Iteration order: poll → handle events (accept, inbox, reads, writes) → settle (messages the
//! worker sent itself, then free closed connections, calling `App::on_close`) → wake peers →
//! flush → sweep timers and `App::on_tick` (when due) → settle and wake again.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::app::{App, ConnId, Cx};
use super::clock::{elapsed, millis, reached, Clock, Millis};
use super::conn::{Conn, Phase};
use super::ctx::{Ctx, Inbox, Peer};
use super::stats::{self, WorkerStats};
use crate::config::Config;
use crate::http::{Response, Status};
use crate::ws::{CloseCode, OpCode};

pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// Bytes read per read(2) into the worker's shared receive buffer.
const READ_BUF_SIZE: usize = 64 << 10;
/// Connections flushed per loop iteration before new events are taken in, at least. The
/// budget is raised to the number of events handled in the iteration, so output a connection
/// queued for itself (a close reply, what the cork could not write: an owned pooled buffer
/// each) never piles up faster than it is flushed; only fan-out (shared frames, a few bytes
/// of queue per recipient) is spread over several iterations.
const FLUSH_BUDGET: usize = 256;
/// Events taken per poll.
const EVENTS_CAPACITY: usize = 1024;
/// How long accepting pauses after EMFILE/ENFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Free output queues kept per worker (small: a box and an empty deque).
const POOL_MAX_FREE_QUEUES: usize = 4096;
/// Bytes of free buffers kept per worker.
const POOL_MAX_FREE_BYTES: usize = 4 << 20;

pub(crate) struct Worker<A: App> {
    poll: Poll,
    listener: Option<TcpListener>,
    pub(crate) conns: Slab<Conn<A::Conn>>,
    pub(crate) read_buf: Box<[u8]>,
    pub(crate) ctx: Ctx<A::PeerMsg>,
    pub(crate) app: A,
    clock: Clock,
    inbox: Receiver<Inbox<A::PeerMsg>>,
    /// Connections whose read budget ran out; resumed next iteration.
    pub(crate) rerun: Vec<usize>,
    accept_paused_until: Option<Millis>,
    next_sweep: Millis,
    /// Set on shutdown: exit when all connections are gone or at this time.
    drain_deadline: Option<Millis>,
}

impl<A: App> Worker<A> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        poll: Poll,
        listener: std::net::TcpListener,
        cfg: &Config,
        inbox: Receiver<Inbox<A::PeerMsg>>,
        peers: Arc<[Peer<A::PeerMsg>]>,
        stats: Arc<WorkerStats>,
        total_conns: Arc<AtomicUsize>,
        app: A,
    ) -> io::Result<Self> {
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let registry = poll.registry().try_clone()?;
        let clock = Clock::new();
        let mut ctx = Ctx::new(
            id,
            cfg,
            registry,
            peers,
            stats,
            total_conns,
            POOL_MAX_FREE_QUEUES,
            POOL_MAX_FREE_BYTES,
        );
        ctx.set_now(clock.now64());
        let next_sweep = ctx.limits.sweep_interval;
        Ok(Self {
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            read_buf: vec![0u8; READ_BUF_SIZE].into_boxed_slice(),
            ctx,
            app,
            clock,
            inbox,
            rerun: Vec::new(),
            accept_paused_until: None,
            next_sweep,
            drain_deadline: None,
        })
    }

    /// Runs the event loop until shutdown completes.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        tracing::debug!(worker = self.ctx.id, "worker started");
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(worker = self.ctx.id, error = %e, "poll failed");
                    return;
                }
            }
            self.ctx.set_now(self.clock.now64());

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
            self.settle();
            self.flush_dirty(FLUSH_BUDGET.max(handled));
            if reached(self.ctx.now, self.next_sweep) {
                self.sweep();
                self.next_sweep = self.ctx.now.wrapping_add(self.ctx.limits.sweep_interval);
                self.settle();
            }
            if let Some(deadline) = self.drain_deadline {
                // Done when no worker holds a connection any more and nothing is left in this
                // one's inbox: the endings of the other workers' connections may still bring
                // work here (a room's or user's home handles their leaves).
                let done = self.conns.is_empty()
                    && self.ctx.total_conns.load(Ordering::SeqCst) == 0
                    && self.inbox.is_empty()
                    && self.ctx.local.is_empty();
                if done || reached(self.ctx.now, deadline) {
                    tracing::debug!(
                        worker = self.ctx.id,
                        left = self.conns.len(),
                        "worker drained"
                    );
                    return;
                }
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        if !self.rerun.is_empty()
            || !self.ctx.dirty.is_empty()
            || !self.ctx.closed.is_empty()
            || !self.ctx.local.is_empty()
        {
            return Duration::ZERO;
        }
        let now = self.clock.now();
        let until = |t: Millis| {
            if reached(now, t) {
                0
            } else {
                t.wrapping_sub(now)
            }
        };
        let mut wait = until(self.next_sweep);
        if let Some(t) = self.accept_paused_until {
            wait = wait.min(until(t));
        }
        if let Some(t) = self.drain_deadline {
            wait = wait.min(until(t));
            if self.conns.is_empty() {
                // Waiting for the other workers' connections to end: look again soon.
                wait = wait.min(10);
            }
        }
        Duration::from_millis(u64::from(wait))
    }

    /// The application's handle for this worker.
    pub(crate) fn cx(&mut self) -> (&mut A, Cx<'_, A::Conn, A::PeerMsg>) {
        (
            &mut self.app,
            Cx {
                conns: &mut self.conns,
                ctx: &mut self.ctx,
            },
        )
    }

    /// Handles what this worker sent itself and frees closed connections (`on_close` may send
    /// more of both), then wakes the peers that were sent something.
    fn settle(&mut self) {
        loop {
            if let Some(msg) = self.ctx.local.pop_front() {
                let (app, mut cx) = self.cx();
                app.on_peer(msg, &mut cx);
            } else if !self.ctx.closed.is_empty() {
                self.reap();
            } else {
                break;
            }
        }
        self.app.on_settled();
        self.ctx.wake_peers();
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
                    tracing::warn!(worker = self.ctx.id, error = %e, "accept failed; pausing accepts");
                    self.accept_paused_until =
                        Some(self.ctx.now.wrapping_add(millis(ACCEPT_BACKOFF)));
                    return;
                }
                Err(e) => {
                    // ECONNABORTED and friends concern one connection only.
                    tracing::debug!(worker = self.ctx.id, error = %e, "accept error");
                }
            }
        }
    }

    fn on_accept(&mut self, mut sock: TcpStream) {
        let ctx = &mut self.ctx;
        // A refused connection lingers like any other answered request (its 503 is flushed,
        // then our side is shut down and its request read and discarded until its FIN or the
        // close timeout), so that closing never resets a request not yet read and the client
        // sees the 503. It does not count against the limit.
        let over_limit =
            ctx.total_conns.fetch_add(1, Ordering::Relaxed) >= ctx.limits.max_connections;
        if over_limit {
            ctx.total_conns.fetch_sub(1, Ordering::Relaxed);
        }
        if !super::accept::NODELAY_INHERITED {
            let _ = sock.set_nodelay(true);
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = ctx
            .registry
            .register(&mut sock, Token(key), Interest::READABLE)
        {
            tracing::warn!(error = %e, "register failed");
            if !over_limit {
                ctx.total_conns.fetch_sub(1, Ordering::Relaxed);
            }
            return;
        }
        let deadline = ctx.now.wrapping_add(ctx.limits.handshake_timeout);
        ctx.next_gen = ctx.next_gen.wrapping_add(1);
        let conn = entry.insert(Conn::new(sock, ctx.next_gen, ctx.now, deadline));
        conn.counted = !over_limit;
        stats::add(&ctx.stats.accepted, 1);
        stats::add(&ctx.stats.connections, 1);
        if over_limit {
            stats::add(&ctx.stats.over_limit, 1);
            let r = Response::text(Status::SERVICE_UNAVAILABLE, "server at connection limit");
            ctx.respond(key, conn, &r);
        }
        // Edge-triggered: data that arrived with the SYN is reported by the first poll.
    }

    fn drain_inbox(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                Inbox::App(m) => {
                    let (app, mut cx) = self.cx();
                    app.on_peer(m, &mut cx);
                }
                Inbox::Shutdown => self.begin_shutdown(),
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.drain_deadline.is_some() {
            return;
        }
        tracing::info!(
            worker = self.ctx.id,
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
                Phase::Handshake | Phase::Body | Phase::Pending => self.ctx.close_now(key, conn),
                Phase::Open => self
                    .ctx
                    .start_close(key, conn, CloseCode::GOING_AWAY, "going away"),
                _ => {}
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

    /// Checks every connection's timers (a coarse sweep instead of a timer per socket), then
    /// gives the application its tick.
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
                Phase::Handshake | Phase::Body if reached(now, conn.deadline) => {
                    stats::add(&self.ctx.stats.timeouts, 1);
                    let r = Response::text(Status::REQUEST_TIMEOUT, "handshake timeout");
                    self.ctx.respond(key, conn, &r);
                }
                Phase::Pending if reached(now, conn.deadline) => {
                    stats::add(&self.ctx.stats.timeouts, 1);
                    let r = Response::text(Status::SERVICE_UNAVAILABLE, "no answer in time");
                    self.ctx.respond(key, conn, &r);
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
        let (app, mut cx) = self.cx();
        app.on_tick(&mut cx);
        self.flush_dirty(usize::MAX);
    }

    /// Frees closed connections; the application hears of each one that had state.
    fn reap(&mut self) {
        let closed = std::mem::take(&mut self.ctx.closed);
        for &key in &closed {
            let Some(conn) = self.conns.try_remove(key) else {
                continue;
            };
            stats::dec(&self.ctx.stats.connections);
            let id = ConnId {
                key: key as u32,
                gen: conn.gen,
            };
            let state = conn.app;
            if let Some(state) = state {
                let (app, mut cx) = self.cx();
                app.on_close(id, state, &mut cx);
            }
            // After `on_close`: what it sent other workers is in their inboxes before the
            // process-wide count drops, so a draining worker that sees 0 connections and an
            // empty inbox has nothing left to handle (see the drain check in `run`). Before
            // the socket closes: a client that saw this connection end finds its slot free.
            if conn.counted {
                self.ctx.total_conns.fetch_sub(1, Ordering::SeqCst);
            }
            drop(conn.sock); // closes the socket
        }
        let mut closed = closed;
        closed.clear();
        // Closes during on_close went to the fresh list; keep whichever has capacity.
        if self.ctx.closed.is_empty() {
            self.ctx.closed = closed;
        }
    }
}
