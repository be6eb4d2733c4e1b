//! One connection's state as the reactor sees it: socket, phase, protocol state, timestamps,
//! and the buffers it borrows while bytes are in flight.
//!
//! Kept small on purpose (an idle connection is this struct and nothing else on the heap).

use mio::net::TcpStream;

use super::clock::Millis;
use super::compress::ConnDeflate;
use super::outq::OutQueue;
use crate::hub::Slot;
use crate::route::Route;
use crate::ws::Assembler;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the complete upgrade request. `deadline` = handshake timeout.
    Handshake,
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

/// A connection owned by one worker.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) sock: TcpStream,
    pub(crate) phase: Phase,
    /// Endpoint, meaningful once `Open`.
    pub(crate) route: Route,
    /// Registered for writable readiness (only while output is pending).
    pub(crate) writable_interest: bool,
    /// Listed in the worker's flush list for this iteration.
    pub(crate) dirty: bool,
    /// Our write side is shut down.
    pub(crate) shut_wr: bool,
    /// Both close frames have been exchanged: the peer sends nothing more, so once our
    /// output is flushed the socket is closed at once instead of waiting for its FIN.
    pub(crate) close_done: bool,
    /// Last time the peer sent anything.
    pub(crate) last_rx: Millis,
    /// Last time we sent a ping.
    pub(crate) last_ping: Millis,
    /// Deadline of the current phase (handshake, closing, lingering).
    pub(crate) deadline: Millis,
    /// Last time pending output made progress (or became pending).
    pub(crate) out_progress: Millis,
    /// Slot in the hub's broadcast group, if a member.
    pub(crate) slot: Option<Slot>,
    /// Receive state machine.
    pub(crate) asm: Assembler,
    /// Unconsumed input (a partial head or frame); `None` when there is none.
    pub(crate) input: Option<Vec<u8>>,
    /// Pending output; `None` when everything is written.
    pub(crate) out: Option<Box<OutQueue>>,
    /// permessage-deflate state, when negotiated.
    pub(crate) deflate: Option<Box<ConnDeflate>>,
}

impl Conn {
    pub(crate) fn new(sock: TcpStream, now: Millis, handshake_deadline: Millis) -> Self {
        Self {
            sock,
            phase: Phase::Handshake,
            route: Route::Echo,
            writable_interest: false,
            dirty: false,
            shut_wr: false,
            close_done: false,
            last_rx: now,
            last_ping: now,
            deadline: handshake_deadline,
            out_progress: now,
            slot: None,
            asm: Assembler::default(),
            input: None,
            out: None,
            deflate: None,
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
        // The per-connection memory target is 256 bytes of RSS for an idle connection; the
        // struct (plus the slab's tag) is most of it.
        let size = std::mem::size_of::<Conn>();
        eprintln!("size_of::<Conn>() = {size}");
        assert!(size <= 160, "Conn is {size} bytes");
    }
}
