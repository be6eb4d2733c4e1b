//! `/broadcast`: every data message goes to every `/broadcast` connection on every worker,
//! the sender included.
//!
//! Owns this worker's member group. A message is framed once by the worker that received it;
//! the same shared bytes go to the other workers' inboxes and to every local member (one
//! compressed variant per window size for members that negotiated permessage-deflate).

use super::{ConnState, PeerMsg};
use crate::hub::{Group, Slot};
use crate::reactor::{ConnId, Cx, Outbound, SharedFrame};
use crate::ws::DataKind;

/// One worker's `/broadcast` members.
#[derive(Debug, Default)]
pub struct Broadcast {
    members: Group<ConnId>,
}

impl Broadcast {
    /// A new member; the returned slot is kept in its connection state.
    pub fn join(&mut self, id: ConnId) -> Slot {
        self.members.join(id)
    }

    /// A member left.
    pub fn leave(&mut self, slot: Slot, cx: &mut Cx<'_, ConnState, PeerMsg>) {
        if let Some(moved) = self.members.leave(slot) {
            // on_close runs from the reactor's reap, never inside another callback, so the
            // moved member's state is in its connection.
            if let Some(ConnState::Broadcast(s)) = cx.state(moved) {
                *s = slot;
            }
        }
    }

    /// A member sent a message: frame it once, hand it to the other workers, deliver here.
    pub fn on_message(
        &mut self,
        kind: DataKind,
        payload: &[u8],
        cx: &mut Cx<'_, ConnState, PeerMsg>,
    ) {
        let mut out = Outbound::new(kind, payload);
        let me = cx.worker();
        for w in (0..cx.workers()).filter(|&w| w != me) {
            cx.send_peer(w, PeerMsg::Broadcast(out.frame().clone()));
        }
        self.deliver(&mut out, cx);
    }

    /// A frame from another worker.
    pub fn on_peer(&mut self, frame: SharedFrame, cx: &mut Cx<'_, ConnState, PeerMsg>) {
        // Frames come from `Outbound::new` on another worker; anything else is a bug there.
        if let Some(mut out) = Outbound::from_frame(frame) {
            self.deliver(&mut out, cx);
        }
    }

    fn deliver(&mut self, out: &mut Outbound, cx: &mut Cx<'_, ConnState, PeerMsg>) {
        // Indexing, not iterating: an eviction does not change membership until on_close.
        for i in 0..self.members.len() {
            let id = self.members.members()[i];
            let _ = cx.send_shared(id, out);
        }
    }
}
