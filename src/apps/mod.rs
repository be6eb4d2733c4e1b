//! The applications corecast serves, composed into the one [`App`] the reactor runs: the
//! router that sends each request path to its endpoint.
//!
//! Owns the path table and the per-connection state enum; each endpoint's behaviour lives in
//! its own module (`echo`, `broadcast`). Unknown paths get 404.

pub mod broadcast;
pub mod echo;

use crate::config::Config;
use crate::http::{RequestHead, Response, Status};
use crate::hub::Slot;
use crate::reactor::{App, ConnId, Cx, Decision, SharedFrame};
use crate::ws::DataKind;
use broadcast::Broadcast;

/// A connection's application state (inline in the reactor's connection: 16 bytes).
#[derive(Debug)]
pub enum ConnState {
    /// On `/echo`.
    Echo,
    /// On `/broadcast`, at this slot of the worker's member group.
    Broadcast(Slot),
}

/// What the workers' instances send each other.
#[derive(Debug)]
pub enum PeerMsg {
    /// A `/broadcast` frame for this worker's members.
    Broadcast(SharedFrame),
}

/// One worker's instance of the server's applications.
#[derive(Debug)]
pub struct Corecast {
    broadcast: Broadcast,
}

impl Corecast {
    /// The applications for one worker.
    pub fn new(_cfg: &Config) -> Self {
        Self {
            broadcast: Broadcast::default(),
        }
    }
}

type Cx2<'a> = Cx<'a, ConnState, PeerMsg>;

impl App for Corecast {
    type Conn = ConnState;
    type PeerMsg = PeerMsg;

    fn on_request(
        &mut self,
        _id: ConnId,
        head: &RequestHead<'_>,
        _cx: &mut Cx2<'_>,
    ) -> Decision<ConnState> {
        match head.path {
            "/echo" => Decision::Upgrade {
                state: ConnState::Echo,
                max_message: usize::MAX,
            },
            "/broadcast" => Decision::Upgrade {
                state: ConnState::Broadcast(Slot(u32::MAX)),
                max_message: usize::MAX,
            },
            _ => Decision::Respond(Response::text(Status::NOT_FOUND, "not found")),
        }
    }

    fn on_body(
        &mut self,
        _id: ConnId,
        _head: &RequestHead<'_>,
        _body: &[u8],
        _cx: &mut Cx2<'_>,
    ) -> Decision<ConnState> {
        Decision::Respond(Response::text(Status::NOT_FOUND, "not found"))
    }

    fn on_open(&mut self, id: ConnId, conn: &mut ConnState, _cx: &mut Cx2<'_>) {
        if let ConnState::Broadcast(slot) = conn {
            *slot = self.broadcast.join(id);
        }
    }

    fn on_message(
        &mut self,
        id: ConnId,
        conn: &mut ConnState,
        kind: DataKind,
        payload: &[u8],
        cx: &mut Cx2<'_>,
    ) {
        match conn {
            ConnState::Echo => echo::on_message(id, kind, payload, cx),
            ConnState::Broadcast(_) => self.broadcast.on_message(kind, payload, cx),
        }
    }

    fn on_close(&mut self, _id: ConnId, conn: ConnState, cx: &mut Cx2<'_>) {
        match conn {
            ConnState::Echo => {}
            ConnState::Broadcast(slot) => self.broadcast.leave(slot, cx),
        }
    }

    fn on_peer(&mut self, msg: PeerMsg, cx: &mut Cx2<'_>) {
        match msg {
            PeerMsg::Broadcast(frame) => self.broadcast.on_peer(frame, cx),
        }
    }
}
