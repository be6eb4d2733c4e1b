//! A worker's shared state besides its connections (split from the slab so both can be
//! borrowed at once): limits, clock, pools, the flush list, compression, the peers, and every
//! operation that puts bytes into a connection's output or ends it.
//!
//! Owns output to connections and their ending (close handshake, lingering, eviction). It
//! never reads from sockets (that is `input`), never decides what a message means (that is
//! the `App`).

use std::collections::VecDeque;
use std::net::Shutdown;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use mio::{Interest, Registry, Token, Waker};

use super::app::{Outbound, SendStatus};
use super::clock::{millis, Millis};
use super::compress::WorkerDeflate;
use super::conn::{Conn, Phase};
use super::outq::{OutQueue, QueuePool, SocketWriter};
use super::pool::BufPool;
use super::stats::{self, WorkerStats};
use super::SharedFrame;
use crate::config::Config;
use crate::http::Response;
use crate::ws::close::encode_close_payload;
use crate::ws::frame::{encode_frame, HeaderRules, RSV1};
use crate::ws::{CloseCode, DataKind, MessageLimits, OpCode};

/// `Ctx::cork_key` while no connection's input is being handled.
pub(crate) const NO_CORK: usize = usize::MAX;
/// Bytes a connection's own output (replies, control frames, a 101 or an HTTP answer) may
/// take in the cork before it goes to its queue.
const CORK_LIMIT: usize = 64 << 10;

/// What a worker's inbox carries.
#[derive(Debug)]
pub(crate) enum Inbox<P> {
    /// For the application's `on_peer`.
    App(P),
    /// Stop accepting, send 1001 to everyone, drain, exit.
    Shutdown,
}

/// A worker's handle on another worker (or itself).
#[derive(Debug)]
pub(crate) struct Peer<P> {
    pub(crate) tx: Sender<Inbox<P>>,
    pub(crate) waker: Arc<Waker>,
}

/// Settings converted to the worker's units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_frame: u64,
    pub(crate) max_message: usize,
    pub(crate) max_head: usize,
    pub(crate) send_buffer_limit: usize,
    pub(crate) ping_interval: Millis,
    pub(crate) idle_timeout: Millis,
    pub(crate) handshake_timeout: Millis,
    pub(crate) close_timeout: Millis,
    pub(crate) write_stall_timeout: Millis,
    pub(crate) drain_timeout: Millis,
    pub(crate) sweep_interval: Millis,
    pub(crate) max_connections: usize,
}

impl Limits {
    pub(crate) fn new(cfg: &Config) -> Self {
        Self {
            max_frame: cfg.max_frame as u64,
            max_message: cfg.max_message,
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

    /// Frame and message limits for a connection whose own message limit is `max_message`
    /// and that did (`deflate`) or did not negotiate permessage-deflate.
    pub(crate) fn messages(&self, max_message: u32, deflate: bool) -> MessageLimits {
        let max_message = self.max_message.min(max_message as usize);
        MessageLimits {
            header: HeaderRules {
                require_mask: true,
                allowed_rsv: if deflate { RSV1 } else { 0 },
                max_frame: self.max_frame.min(max_message as u64),
            },
            max_message,
        }
    }
}

/// Everything a connection handler needs besides the connections themselves.
pub(crate) struct Ctx<P> {
    pub(crate) id: usize,
    pub(crate) now: Millis,
    /// `now` without wrapping.
    pub(crate) now64: u64,
    /// Wall clock of this iteration, read on first use.
    unix_ms: Option<u64>,
    pub(crate) limits: Limits,
    pub(crate) registry: Registry,
    pub(crate) bufs: BufPool,
    pub(crate) queues: QueuePool,
    /// Connections with output queued and not yet offered to the socket, in the order they
    /// got it. Flushed a budget at a time between polls, so that a long flush (a fan-out to
    /// many thousands) takes in what arrives meanwhile and a connection further back in the
    /// queue leaves with everything queued for it in one write. May hold keys freed since
    /// they were pushed (flushing a reused key early is harmless).
    pub(crate) dirty: VecDeque<usize>,
    /// Connections to free after this iteration.
    pub(crate) closed: Vec<usize>,
    pub(crate) stats: Arc<WorkerStats>,
    /// Open connections of the whole process (for `max_connections`).
    pub(crate) total_conns: Arc<AtomicUsize>,
    /// Compression settings and shared compressors.
    pub(crate) deflate: WorkerDeflate,
    /// Scratch for inflated messages.
    pub(crate) inflated: Vec<u8>,
    /// The connection whose input is being handled ([`NO_CORK`] between reads): what it
    /// sends itself goes into `cork`, written straight to its socket after the read.
    pub(crate) cork_key: usize,
    /// Output of `cork_key`, at most [`CORK_LIMIT`] bytes plus one frame. Invariant: empty,
    /// or `cork_key`'s connection has no output queue (whatever would take the queue moves
    /// these bytes into it first, so order is kept). Reused: the hot path writes a reply
    /// from one warm buffer instead of a pooled one per connection.
    pub(crate) cork: Vec<u8>,
    /// Every worker's inbox, this one's included (indexed by worker id).
    pub(crate) peers: Arc<[Peer<P>]>,
    /// Peers sent something this iteration: woken once at its end.
    pub(crate) to_wake: Vec<bool>,
    /// Messages this worker sent itself, handled later in the same iteration.
    pub(crate) local: VecDeque<P>,
    /// Messages sent to workers (this one included) so far: a read whose handling sent any
    /// does not write its cork at once (see `input::on_readable`).
    pub(crate) peer_messages: u64,
    /// Generation for the next accepted connection.
    pub(crate) next_gen: u32,
}

impl<P> Ctx<P> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        cfg: &Config,
        registry: Registry,
        peers: Arc<[Peer<P>]>,
        stats: Arc<WorkerStats>,
        total_conns: Arc<AtomicUsize>,
        pool_max_free_queues: usize,
        pool_max_free_bytes: usize,
    ) -> Self {
        let n = peers.len();
        Self {
            id,
            now: 0,
            now64: 0,
            unix_ms: None,
            limits: Limits::new(cfg),
            registry,
            bufs: BufPool::new(pool_max_free_bytes),
            queues: QueuePool::new(pool_max_free_queues),
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
            cork_key: NO_CORK,
            cork: Vec::new(),
            peers,
            to_wake: vec![false; n],
            local: VecDeque::new(),
            peer_messages: 0,
            next_gen: 0,
        }
    }

    /// Starts a new iteration at `now64` (worker milliseconds).
    pub(crate) fn set_now(&mut self, now64: u64) {
        self.now64 = now64;
        self.now = now64 as Millis;
        self.unix_ms = None;
    }

    pub(crate) fn unix_ms(&mut self) -> u64 {
        *self.unix_ms.get_or_insert_with(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        })
    }

    pub(crate) fn send_peer(&mut self, worker: usize, msg: P) {
        self.peer_messages = self.peer_messages.wrapping_add(1);
        if worker == self.id {
            self.local.push_back(msg);
        } else if let Some(peer) = self.peers.get(worker) {
            // A worker's inbox outlives it only during shutdown; a lost message then is moot.
            let _ = peer.tx.send(Inbox::App(msg));
            self.to_wake[worker] = true;
        }
    }

    /// Wakes every peer sent something since the last call.
    pub(crate) fn wake_peers(&mut self) {
        for (i, wake) in self.to_wake.iter_mut().enumerate() {
            if std::mem::take(wake) {
                let _ = self.peers[i].waker.wake();
            }
        }
    }

    /// The connection's output queue (taken from the pool if it had none), marked for flush.
    /// What the connection had corked moves into it first.
    pub(crate) fn queue<'c, S>(&mut self, key: usize, conn: &'c mut Conn<S>) -> &'c mut OutQueue {
        self.mark_dirty(key, conn);
        if conn.out.is_none() {
            conn.out_progress = self.now;
        }
        let q = conn.out.get_or_insert_with(|| self.queues.get());
        if key == self.cork_key && !self.cork.is_empty() {
            let cork = &self.cork;
            q.push_owned(&mut self.bufs, |v| v.extend_from_slice(cork));
            self.cork.clear();
        }
        q
    }

    /// Writes what `key` corked while its input was handled (one send(2) for all its
    /// replies to one read), queueing what the socket does not take; or, unless `write`,
    /// queues all of it (flushed at the end of the iteration, after the messages the worker
    /// sent itself). Ends the cork.
    pub(crate) fn uncork<S>(&mut self, key: usize, conn: Option<&mut Conn<S>>, write: bool) {
        match conn.filter(|c| c.phase != Phase::Closed) {
            _ if self.cork.is_empty() => {}
            None => self.cork.clear(),
            Some(conn) if !write => {
                self.queue(key, conn); // takes the corked bytes
            }
            Some(conn) => self.write_cork(key, conn),
        }
        self.cork_key = NO_CORK;
    }

    /// One send(2) of the cork; the rest, if any, to the queue.
    fn write_cork<S>(&mut self, key: usize, conn: &mut Conn<S>) {
        let written = {
            let mut sock = SocketWriter(socket2::SockRef::from(&conn.sock));
            loop {
                match std::io::Write::write(&mut sock, &self.cork) {
                    Ok(n) => break Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Ok(0),
                    Err(e) => break Err(e),
                }
            }
        };
        let Ok(written) = written else {
            self.close_now(key, conn); // clears the cork
            return;
        };
        if written > 0 {
            conn.out_progress = self.now;
            stats::add(&self.stats.bytes_out, written as u64);
        }
        if written < self.cork.len() {
            self.cork.drain(..written);
            self.queue(key, conn); // takes the rest, flushed later
        } else {
            self.cork.clear();
            if conn.phase == Phase::Lingering {
                // An answer or a close frame is out: shut down or close, as a flush would.
                self.flush(key, conn);
            }
        }
    }

    pub(crate) fn mark_dirty<S>(&mut self, key: usize, conn: &mut Conn<S>) {
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push_back(key);
        }
    }

    /// One data message for the connection, compressed for it when it negotiated
    /// permessage-deflate: into the cork when it answers the input being handled and
    /// nothing is queued, else into its queue (a pooled buffer).
    pub(crate) fn send_owned<S>(
        &mut self,
        key: usize,
        conn: &mut Conn<S>,
        kind: DataKind,
        payload: &[u8],
    ) -> SendStatus {
        if conn.phase != Phase::Open {
            return SendStatus::Gone;
        }
        if key == self.cork_key
            && conn.out.is_none()
            && self.cork.len() + payload.len() <= CORK_LIMIT
        {
            // A reply to the input being handled, nothing queued before it: no queue, no
            // pooled buffer, no flush-list entry (written when the read is handled).
            match conn.deflate.as_deref_mut() {
                None => encode_frame(&mut self.cork, kind.opcode(), 0, payload),
                Some(cd) => self
                    .deflate
                    .encode_message(Some(cd), kind, payload, &mut self.cork),
            }
            stats::add(&self.stats.messages_out, 1);
            return SendStatus::Queued;
        }
        self.queue(key, conn);
        let Some(q) = conn.out.as_deref_mut() else {
            return SendStatus::Gone; // unreachable: `queue` made it
        };
        let before = q.len();
        match conn.deflate.as_deref_mut() {
            // The common case: no per-message compression check, a plain frame.
            None => q.push_owned(&mut self.bufs, |v| {
                encode_frame(v, kind.opcode(), 0, payload)
            }),
            Some(cd) => {
                let wd = &mut self.deflate;
                q.push_owned(&mut self.bufs, |v| {
                    wd.encode_message(Some(cd), kind, payload, v)
                });
            }
        }
        let added = q.len() - before;
        stats::add(&self.stats.messages_out, 1);
        if self.is_slow_consumer(key, conn, added) {
            self.evict(key, conn);
            return SendStatus::Evicted;
        }
        if conn.phase == Phase::Open {
            SendStatus::Queued
        } else {
            SendStatus::Gone // the flush found the socket dead
        }
    }

    /// A shared frame (or its compressed variant for the connection's window size).
    pub(crate) fn send_shared<S>(
        &mut self,
        key: usize,
        conn: &mut Conn<S>,
        msg: &mut Outbound,
    ) -> SendStatus {
        if conn.phase != Phase::Open {
            return SendStatus::Gone;
        }
        if self.is_slow_consumer(key, conn, 0) {
            self.evict(key, conn);
            return SendStatus::Evicted;
        }
        if conn.phase != Phase::Open {
            return SendStatus::Gone; // the flush found the socket dead
        }
        stats::add(&self.stats.messages_out, 1);
        match conn.deflate.as_deref() {
            None => self.queue(key, conn).push_shared(msg.frame().clone()),
            Some(cd) if cd.is_shared() => {
                let bits = cd.params.server_max_window_bits;
                if msg.variant(bits).is_none() {
                    let made = self
                        .deflate
                        .shared_frame(bits, msg.kind(), msg.payload())
                        .map(SharedFrame::from);
                    *msg.variant(bits) = Some(made);
                }
                let frame = match msg.variant(bits) {
                    Some(Some(compressed)) => compressed.clone(),
                    _ => msg.frame().clone(),
                };
                self.queue(key, conn).push_shared(frame);
            }
            Some(_) => {
                self.queue(key, conn);
                let Some(q) = conn.out.as_deref_mut() else {
                    return SendStatus::Gone; // unreachable: `queue` made it
                };
                let wd = &mut self.deflate;
                let cd = conn.deflate.as_deref_mut();
                let kind = msg.kind();
                q.push_owned(&mut self.bufs, |v| {
                    wd.encode_message(cd, kind, msg.payload(), v)
                });
            }
        }
        SendStatus::Queued
    }

    /// True when more than the send-buffer limit stays queued even after offering it to the
    /// socket: output corked during this iteration does not count against a reader that
    /// keeps up.
    ///
    /// `just_queued` bytes at the tail are the message being delivered now: only the backlog
    /// in front of it counts, so a single message larger than the limit is always accepted
    /// into a queue that keeps up (the bound is the limit plus one message).
    pub(crate) fn is_slow_consumer<S>(
        &mut self,
        key: usize,
        conn: &mut Conn<S>,
        just_queued: usize,
    ) -> bool {
        let limit = self.limits.send_buffer_limit;
        if conn.pending_out().saturating_sub(just_queued) <= limit {
            return false;
        }
        self.flush(key, conn);
        conn.phase != Phase::Closed && conn.pending_out().saturating_sub(just_queued) > limit
    }

    pub(crate) fn queue_control<S>(
        &mut self,
        key: usize,
        conn: &mut Conn<S>,
        opcode: OpCode,
        payload: &[u8],
    ) {
        // Control frames are never dropped: they bypass the send-buffer limit.
        self.push_own(key, conn, |v| encode_frame(v, opcode, 0, payload));
    }

    /// Bytes the connection produced itself (a 101, a control frame, an HTTP answer): into
    /// the cork when they answer the input being handled and nothing is queued, else into
    /// its queue.
    pub(crate) fn push_own<S>(
        &mut self,
        key: usize,
        conn: &mut Conn<S>,
        fill: impl FnOnce(&mut Vec<u8>),
    ) {
        if key == self.cork_key && conn.out.is_none() && self.cork.len() <= CORK_LIMIT {
            fill(&mut self.cork);
        } else {
            self.queue(key, conn);
            if let Some(q) = conn.out.as_deref_mut() {
                q.push_owned(&mut self.bufs, fill);
            }
        }
    }

    /// Sends a close frame and waits for the peer's (close handshake initiated by us).
    pub(crate) fn start_close<S>(
        &mut self,
        key: usize,
        conn: &mut Conn<S>,
        code: CloseCode,
        reason: &str,
    ) {
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
    pub(crate) fn fail<S>(
        &mut self,
        key: usize,
        conn: &mut Conn<S>,
        code: CloseCode,
        reason: &str,
    ) {
        let mut payload = [0u8; 125];
        let n = encode_close_payload(code, reason, &mut payload);
        self.queue_control(key, conn, OpCode::Close, &payload[..n]);
        self.linger(conn);
    }

    /// Evicts a slow consumer: drops its unsent backlog and closes with 1008.
    pub(crate) fn evict<S>(&mut self, key: usize, conn: &mut Conn<S>) {
        stats::add(&self.stats.slow_consumers, 1);
        tracing::debug!(key, queued = conn.pending_out(), "slow consumer evicted");
        if let Some(q) = conn.out.as_mut() {
            q.discard_unsent(&mut self.bufs);
        }
        self.start_close(key, conn, CloseCode::POLICY, "slow consumer");
    }

    /// Answers an HTTP request and closes.
    pub(crate) fn respond<S>(&mut self, key: usize, conn: &mut Conn<S>, response: &Response) {
        tracing::debug!(key, status = response.status.0, "answered");
        self.push_own(key, conn, |v| response.write_to(v));
        self.linger(conn);
    }

    /// Flush what is queued, then shut down our side and wait for the peer's FIN.
    pub(crate) fn linger<S>(&mut self, conn: &mut Conn<S>) {
        conn.phase = Phase::Lingering;
        conn.deadline = self.now.wrapping_add(self.limits.close_timeout);
        if let Some(input) = conn.input.take() {
            self.bufs.put_buf(input);
        }
    }

    /// Writes pending output; adjusts writable interest; shuts down a lingering connection
    /// once everything is out.
    pub(crate) fn flush<S>(&mut self, key: usize, conn: &mut Conn<S>) {
        if conn.phase == Phase::Closed {
            return;
        }
        if let Some(q) = conn.out.as_mut() {
            let mut sock = SocketWriter(socket2::SockRef::from(&conn.sock));
            match q.write_to(&mut sock, &mut self.bufs) {
                Ok(0) => {}
                Ok(n) => {
                    conn.out_progress = self.now;
                    stats::add(&self.stats.bytes_out, n as u64);
                }
                Err(_) => {
                    self.close_now(key, conn);
                    return;
                }
            }
            if q.is_empty() {
                if let Some(q) = conn.out.take() {
                    self.queues.put(q, &mut self.bufs);
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
    pub(crate) fn close_now<S>(&mut self, key: usize, conn: &mut Conn<S>) {
        if conn.phase == Phase::Closed {
            return;
        }
        conn.phase = Phase::Closed;
        if key == self.cork_key {
            self.cork.clear();
        }
        if let Some(q) = conn.out.take() {
            self.queues.put(q, &mut self.bufs);
        }
        if let Some(input) = conn.input.take() {
            self.bufs.put_buf(input);
        }
        self.closed.push(key);
    }
}
