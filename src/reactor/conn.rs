//! One connection's state as the reactor sees it: socket, phase, protocol state, timestamps,
//! the buffers it borrows while bytes are in flight, and the application's inline state.
//!
//! Kept small on purpose (an idle connection is this struct and nothing else on the heap,
//! unless its application state boxes something).

use mio::net::TcpStream;

use super::clock::Millis;
use super::compress::ConnDeflate;
use super::outq::OutQueue;
use crate::ws::Assembler;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the complete request head. `deadline` = handshake timeout.
    Handshake,
    /// Waiting for a request body of `limit` bytes (at most; the head gives the length).
    /// `deadline` = handshake timeout.
    Body,
    /// The application answers later (`Cx::respond`). `deadline` = handshake timeout.
    Pending,
    /// Upgraded; messages flow.
    Open,
    /// We sent a close frame and wait for the peer's. `deadline` = close timeout.
    Closing,
    /// Nothing more to say: flush what is queued, then close at once if the close handshake
    /// is complete (`close_done`), otherwise shut down our side and discard input until the
    /// peer's FIN or `deadline`.
    Lingering,
    /// Done; removed from the slab at the end of the loop iteration.
    Closed,
}

/// A connection owned by one worker. `S` is the application's per-connection state.
#[derive(Debug)]
pub(crate) struct Conn<S> {
    pub(crate) sock: TcpStream,
    pub(crate) phase: Phase,
    /// Registered for writable readiness (only while output is pending).
    pub(crate) writable_interest: bool,
    /// Listed in the worker's flush list for this iteration.
    pub(crate) dirty: bool,
    /// Our write side is shut down.
    pub(crate) shut_wr: bool,
    /// Both close frames have been exchanged: the peer sends nothing more, so once our
    /// output is flushed the socket is closed at once instead of waiting for its FIN.
    pub(crate) close_done: bool,
    /// Counted against `--max-connections` (false for one refused at the limit, which only
    /// lingers to deliver its 503).
    pub(crate) counted: bool,
    /// Tells this connection from a later one with the same slab key (`ConnId`).
    pub(crate) gen: u32,
    /// `Open`: the largest message accepted, bytes. `Body`: the largest body accepted.
    pub(crate) limit: u32,
    /// Last time the peer sent anything.
    pub(crate) last_rx: Millis,
    /// Last time we sent a ping.
    pub(crate) last_ping: Millis,
    /// Deadline of the current phase (handshake, closing, lingering).
    pub(crate) deadline: Millis,
    /// Last time pending output made progress (or became pending).
    pub(crate) out_progress: Millis,
    /// Receive state machine.
    pub(crate) asm: Assembler,
    /// Unconsumed input (a partial head or frame); `None` when there is none.
    pub(crate) input: Option<Vec<u8>>,
    /// Pending output; `None` when everything is written.
    pub(crate) out: Option<Box<OutQueue>>,
    /// permessage-deflate state, when negotiated.
    pub(crate) deflate: Option<Box<ConnDeflate>>,
    /// The application's state: `Some` from the upgrade (or a deferred request) until the
    /// connection is freed, except while it is lent to an `App` callback.
    pub(crate) app: Option<S>,
}

impl<S> Conn<S> {
    pub(crate) fn new(sock: TcpStream, gen: u32, now: Millis, handshake_deadline: Millis) -> Self {
        Self {
            sock,
            phase: Phase::Handshake,
            writable_interest: false,
            dirty: false,
            shut_wr: false,
            close_done: false,
            counted: true,
            gen,
            limit: 0,
            last_rx: now,
            last_ping: now,
            deadline: handshake_deadline,
            out_progress: now,
            asm: Assembler::default(),
            input: None,
            out: None,
            deflate: None,
            app: None,
        }
    }

    /// Bytes queued for writing.
    pub(crate) fn pending_out(&self) -> usize {
        self.out.as_ref().map_or(0, |q| q.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connection_is_small() {
        // The per-connection memory target is 160 bytes of RSS for an idle `/echo`
        // connection; the struct (the slab's tag fits in its niches) is most of it. A 16-byte state is the
        // size of the server's own connection state (`apps::ConnState`: a tag and a box).
        let size = std::mem::size_of::<Conn<(u64, Box<u64>)>>();
        eprintln!("size_of::<Conn<_>>() = {size}");
        assert!(size <= 128, "Conn is {size} bytes");
    }
}
