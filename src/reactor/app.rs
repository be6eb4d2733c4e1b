//! The application seam: what the reactor asks of an application, and the handle ([`Cx`]) it
//! gives the application to act on connections, other workers and the clock.
//!
//! The reactor owns sockets, the RFC 6455 state of every connection, corking, compression,
//! backpressure and timers; an [`App`] owns what requests and messages mean. One `App` value
//! lives on each worker (`Worker<A>` is monomorphised), so an application keeps per-worker
//! state without locks and reaches other workers only by messages ([`Cx::send_peer`]).
//! JSON, rooms and users never cross this seam: the reactor sees bytes and connection ids.

use std::net::SocketAddr;

use slab::Slab;

use super::clock::Millis;
use super::conn::{Conn, Phase};
use super::ctx::Ctx;
use super::stats::WorkerStats;
use super::SharedFrame;
use crate::http::{RequestHead, Response};
use crate::ws::frame::{encode_frame, FrameHeader, HeaderRules, HeaderStatus};
use crate::ws::{CloseCode, DataKind, OpCode};

/// A connection on one worker: its slab key and a generation that tells a connection apart
/// from a later one that reuses the key. Only meaningful on the worker that issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

impl ConnId {
    /// The slab key (dense, reused after the connection is freed).
    pub fn key(self) -> usize {
        self.key as usize
    }

    /// An id made up by a test (never a live connection's).
    #[doc(hidden)]
    pub fn for_tests(key: u32, gen: u32) -> Self {
        Self { key, gen }
    }
}

/// What to do with a request, decided by [`App::on_request`] / [`App::on_body`].
#[derive(Debug)]
pub enum Decision<S> {
    /// Upgrade to WebSocket with this connection state, if the request is a valid upgrade
    /// (otherwise the reactor answers with the upgrade error's status and drops `state`).
    /// Messages over `max_message` bytes (all fragments, after inflate) are closed with 1009;
    /// the server-wide frame and message limits still apply when they are smaller.
    Upgrade {
        /// The connection's application state (kept in the connection until it closes).
        state: S,
        /// Largest message from this connection, bytes.
        max_message: usize,
    },
    /// Read a `Content-Length` body of at most `limit` bytes, then call [`App::on_body`].
    /// Larger bodies get 413, requests without a length 411.
    ReadBody {
        /// Largest body accepted, bytes.
        limit: usize,
    },
    /// Answer and close.
    Respond(Response),
    /// The application answers later with [`Cx::respond`] (within the handshake timeout,
    /// after which the reactor answers 503). `state` is kept until the connection closes and
    /// handed to [`App::on_close`].
    Defer(S),
}

/// What happened to output handed to [`Cx::send`] / [`Cx::send_shared`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum SendStatus {
    /// Queued (it leaves with the next flush).
    Queued,
    /// The connection was over its send-buffer limit: its backlog was dropped and it is being
    /// closed with 1008 "slow consumer".
    Evicted,
    /// Not an open WebSocket connection (closing, closed, or an unknown id).
    Gone,
}

/// An application served by the reactor. Every callback gets a [`Cx`] for the worker it runs
/// on. Call order for one connection: `on_request` (and `on_body` when it asked for one), then
/// for a WebSocket `on_open`, any number of `on_message`, and `on_close` exactly once when the
/// connection is freed; for a deferred HTTP request `on_close` once as well. `on_close` runs
/// before the connection's slab key can be reused.
pub trait App: Sized + 'static {
    /// Per-connection state, stored inline in the reactor's connection (keep it small: box
    /// anything large, since an idle connection pays for the largest variant).
    type Conn;
    /// Messages between the workers' instances of this application (and from other threads
    /// through [`super::WorkerSender::send`]).
    type PeerMsg: Send + 'static;

    /// A complete request head arrived.
    fn on_request(
        &mut self,
        id: ConnId,
        head: &RequestHead<'_>,
        cx: &mut Cx<'_, Self::Conn, Self::PeerMsg>,
    ) -> Decision<Self::Conn>;

    /// The body asked for with [`Decision::ReadBody`] arrived (`head` is parsed again).
    fn on_body(
        &mut self,
        id: ConnId,
        head: &RequestHead<'_>,
        body: &[u8],
        cx: &mut Cx<'_, Self::Conn, Self::PeerMsg>,
    ) -> Decision<Self::Conn>;

    /// The connection is open; its client sees the 101 only after this returns (what this
    /// sets up is in place when the client acts on it), and frames this queues go after the
    /// 101. `conn` is out of the slab during the call: [`Cx::state`] does not see it.
    fn on_open(
        &mut self,
        id: ConnId,
        conn: &mut Self::Conn,
        cx: &mut Cx<'_, Self::Conn, Self::PeerMsg>,
    );

    /// A complete data message (inflated, UTF-8 checked for text). `conn` is out of the slab
    /// during the call.
    fn on_message(
        &mut self,
        id: ConnId,
        conn: &mut Self::Conn,
        kind: DataKind,
        payload: &[u8],
        cx: &mut Cx<'_, Self::Conn, Self::PeerMsg>,
    );

    /// The connection is gone (closed by either side, failed, timed out or evicted).
    fn on_close(
        &mut self,
        id: ConnId,
        conn: Self::Conn,
        cx: &mut Cx<'_, Self::Conn, Self::PeerMsg>,
    );

    /// A message from another worker (or from this one, through [`Cx::send_peer`]).
    fn on_peer(&mut self, msg: Self::PeerMsg, cx: &mut Cx<'_, Self::Conn, Self::PeerMsg>);

    /// Called on every timer sweep (at most once a second): expiry of application state.
    fn on_tick(&mut self, _cx: &mut Cx<'_, Self::Conn, Self::PeerMsg>) {}

    /// Called once the worker has handled a batch of events and its own messages, before it
    /// waits again: the moment to wake another thread the application queued work for (once
    /// per batch, as the worker does for its peers).
    fn on_settled(&mut self) {}
}

/// A data frame encoded once and shared by every recipient, with its compressed variants
/// made on first use, once per window size (connections that negotiated permessage-deflate
/// without server context takeover share them). Frames for dedicated-mode connections are
/// compressed per connection.
#[derive(Debug)]
pub struct Outbound {
    frame: SharedFrame,
    kind: DataKind,
    header_len: usize,
    /// Index `bits - 8`: `None` = not made yet, `Some(None)` = goes out plain (too small, or
    /// compression did not pay).
    compressed: [Option<Option<SharedFrame>>; 8],
}

impl Outbound {
    /// Encodes `payload` as one unmasked data frame.
    pub fn new(kind: DataKind, payload: &[u8]) -> Self {
        let mut frame =
            Vec::with_capacity(FrameHeader::encoded_len(payload.len(), false) + payload.len());
        encode_frame(&mut frame, kind.opcode(), 0, payload);
        let header_len = frame.len() - payload.len();
        Self {
            frame: SharedFrame::from(frame),
            kind,
            header_len,
            compressed: Default::default(),
        }
    }

    /// Wraps a frame made by [`Outbound::new`] (possibly on another worker). `None` if it is
    /// not one complete unmasked, uncompressed data frame.
    pub fn from_frame(frame: SharedFrame) -> Option<Self> {
        let rules = HeaderRules {
            require_mask: false,
            allowed_rsv: 0,
            max_frame: u64::MAX >> 1,
        };
        let (header, header_len) = match FrameHeader::decode(&frame, &rules) {
            Ok(HeaderStatus::Complete { header, header_len }) => (header, header_len),
            _ => return None,
        };
        let kind = match header.opcode {
            OpCode::Text => DataKind::Text,
            OpCode::Binary => DataKind::Binary,
            _ => return None,
        };
        if !header.fin
            || header.mask.is_some()
            || header.rsv != 0
            || (frame.len() - header_len) as u64 != header.payload_len
        {
            return None;
        }
        Some(Self {
            frame,
            kind,
            header_len,
            compressed: Default::default(),
        })
    }

    /// The plain frame (to hand to other workers).
    pub fn frame(&self) -> &SharedFrame {
        &self.frame
    }

    /// Text or binary.
    pub fn kind(&self) -> DataKind {
        self.kind
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.frame[self.header_len..]
    }

    pub(crate) fn variant(&mut self, bits: u8) -> &mut Option<Option<SharedFrame>> {
        &mut self.compressed[usize::from(bits.clamp(8, 15) - 8)]
    }
}

/// The worker's handle, given to every [`App`] callback.
///
/// `S` is the application's connection state, `P` its peer message.
pub struct Cx<'a, S, P> {
    pub(crate) conns: &'a mut Slab<Conn<S>>,
    pub(crate) ctx: &'a mut Ctx<P>,
}

impl<S, P> Cx<'_, S, P> {
    /// This worker's index (0-based).
    pub fn worker(&self) -> usize {
        self.ctx.id
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.ctx.peers.len()
    }

    /// The worker clock: wrapping milliseconds since the worker started, read once per
    /// event-loop iteration.
    pub fn now_ms(&self) -> Millis {
        self.ctx.now
    }

    /// The worker clock without wrapping: milliseconds since the worker started.
    pub fn mono_ms(&self) -> u64 {
        self.ctx.now64
    }

    /// Wall-clock time in milliseconds since the Unix epoch, read at most once per
    /// event-loop iteration.
    pub fn unix_ms(&mut self) -> u64 {
        self.ctx.unix_ms()
    }

    /// This worker's counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.ctx.stats
    }

    /// The connection's application state, if it is stored (not during that connection's
    /// own `on_open`/`on_message`, when the state is lent to the callback).
    pub fn state(&mut self, id: ConnId) -> Option<&mut S> {
        self.conns
            .get_mut(id.key())
            .filter(|c| c.gen == id.gen)
            .and_then(|c| c.app.as_mut())
    }

    /// True while `id` is an open WebSocket connection.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.conns
            .get(id.key())
            .is_some_and(|c| c.gen == id.gen && c.phase == Phase::Open)
    }

    /// The peer's address (a getpeername(2) call; meant for admission, not per message).
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.conns
            .get(id.key())
            .filter(|c| c.gen == id.gen)
            .and_then(|c| c.sock.peer_addr().ok())
    }

    /// Queues one data message for `id`, compressed for it if it negotiated
    /// permessage-deflate. A connection whose backlog (before this message) is over the
    /// send-buffer limit even after a flush attempt is evicted.
    ///
    /// When `id` is the connection whose input is being handled, the message is written
    /// right after that read (corked with its other replies), unless the handler sent
    /// messages to workers ([`Cx::send_peer`]): then it goes out at the end of the iteration,
    /// once this worker handled its own messages and woke the others, so a reply never
    /// claims what a worker has not done yet.
    pub fn send(&mut self, id: ConnId, kind: DataKind, payload: &[u8]) -> SendStatus {
        match self.conns.get_mut(id.key()) {
            Some(conn) if conn.gen == id.gen => self.ctx.send_owned(id.key(), conn, kind, payload),
            _ => SendStatus::Gone,
        }
    }

    /// Queues a shared frame for `id` (a refcount bump; with compression, the variant for its
    /// window size, made once). A connection already over its send-buffer limit is evicted
    /// instead.
    pub fn send_shared(&mut self, id: ConnId, msg: &mut Outbound) -> SendStatus {
        match self.conns.get_mut(id.key()) {
            Some(conn) if conn.gen == id.gen => self.ctx.send_shared(id.key(), conn, msg),
            _ => SendStatus::Gone,
        }
    }

    /// Starts the close handshake with `code` (no-op unless open).
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        if let Some(conn) = self.conns.get_mut(id.key()) {
            if conn.gen == id.gen {
                self.ctx.start_close(id.key(), conn, code, reason);
            }
        }
    }

    /// Answers a request deferred with [`Decision::Defer`] and closes the connection. False
    /// if it is gone (the client left or the handshake timeout answered it).
    pub fn respond(&mut self, id: ConnId, response: &Response) -> bool {
        match self.conns.get_mut(id.key()) {
            Some(conn) if conn.gen == id.gen && conn.phase == Phase::Pending => {
                self.ctx.respond(id.key(), conn, response);
                true
            }
            _ => false,
        }
    }

    /// Sends `msg` to worker `worker`'s [`App::on_peer`]: through its inbox (woken once at
    /// the end of this iteration), or, for this worker, through a local queue handled later
    /// in the same iteration. Messages from one worker to another arrive in order.
    pub fn send_peer(&mut self, worker: usize, msg: P) {
        self.ctx.send_peer(worker, msg);
    }
}
