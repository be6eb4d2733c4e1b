//! The applications corecast serves, composed into the one [`App`] the reactor runs: the
//! router that sends each request path to its endpoint.
//!
//! Owns the path table, the per-connection state enum and the peer message enum; each
//! endpoint's behaviour lives in its own module: `echo`, `broadcast`, `chat` (`/ws`),
//! `gateway` (the `[[endpoint]]`s of `--config`) and `side` (`/`, `/health`, `/metrics`,
//! `/api/…`), which routes before the WebSocket apps. Unknown paths get 404.

pub mod broadcast;
pub mod chat;
pub mod echo;
pub mod gateway;
pub mod side;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::amqp::{AmqpHandle, AmqpState};
use crate::config::Config;
use crate::http::{RequestHead, Response, Status};
use crate::hub::Slot;
use crate::reactor::{self, App, ConnId, Cx, Decision, SharedFrame};
use crate::relay::{RelayHandle, RelayState};
use crate::ws::DataKind;
use broadcast::Broadcast;
use chat::cluster::Scripts;
use chat::conn::ChatConn;
use chat::msg::ChatMsg;
use chat::{Chat, ChatShared};
use gateway::msg::GatewayMsg;
use gateway::{Gateway, GatewayConn, GatewayShared};
use side::SideDoor;

/// True for the paths corecast serves itself: the WebSocket apps (`/ws`, `/echo`,
/// `/broadcast`) and the side door (`/`, `/health`, `/metrics`, `/api`, `/api/…`). Gateway
/// endpoints (`[[endpoint]]` in `--config`) may not take one. Keep in step with
/// [`Corecast::on_request`]'s match.
pub fn is_reserved_path(path: &str) -> bool {
    side::is_side_path(path) || matches!(path, "/ws" | "/echo" | "/broadcast")
}

/// A connection's application state, inline in the reactor's connection (16 bytes; the chat
/// state is boxed so that an idle `/echo` connection does not pay for it).
#[derive(Debug)]
pub enum ConnState {
    /// On `/echo`.
    Echo,
    /// On `/broadcast`, at this slot of the worker's member group.
    Broadcast(Slot),
    /// On `/ws`.
    Chat(Box<ChatConn>),
    /// On a gateway endpoint.
    Gateway(Box<GatewayConn>),
    /// An HTTP request waiting for its answer (an API call at another worker).
    Http,
}

/// What the workers' instances send each other.
#[derive(Debug)]
pub enum PeerMsg {
    /// A `/broadcast` frame for this worker's members.
    Broadcast(SharedFrame),
    /// The chat service.
    Chat(ChatMsg),
    /// The event gateway (and its bridge).
    Gateway(GatewayMsg),
}

/// What every worker's applications share.
pub struct AppShared {
    /// The reactor's counters and gauges.
    pub reactor: reactor::Shared,
    /// The chat service's settings, counters and gauges.
    pub chat: ChatShared,
    /// The relay (with `--redis-url`): its handle and the chat service's scripts.
    pub relay: Option<(RelayHandle, Arc<Scripts>)>,
    /// The gateway's endpoints and its bridge (with `[amqp]`).
    pub gateway: GatewayShared,
}

impl std::fmt::Debug for AppShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppShared")
            .field(
                "relay",
                &self.relay.as_ref().map(|(r, _)| r.node_id.clone()),
            )
            .finish()
    }
}

impl AppShared {
    /// For a server bound with `cfg`, joined to other nodes by `relay` and to RabbitMQ by
    /// `amqp` when given; the error is one line naming a bad setting.
    pub fn new(
        cfg: Config,
        reactor: reactor::Shared,
        relay: Option<RelayHandle>,
        amqp: Option<AmqpHandle>,
    ) -> Result<Arc<Self>, String> {
        let workers = cfg.workers;
        Ok(Arc::new(Self {
            gateway: GatewayShared::new(&cfg, amqp),
            reactor,
            chat: ChatShared::new(Arc::new(cfg), workers)?,
            relay: relay.map(|r| (r, Arc::new(Scripts::new()))),
        }))
    }

    /// The relay's state for `/health`: off, up or down.
    pub fn relay_state(&self) -> RelayState {
        self.relay
            .as_ref()
            .map_or(RelayState::Off, |(r, _)| r.shared.state())
    }

    /// The gateway bridge's state for `/health`: off, up or down.
    pub fn amqp_state(&self) -> AmqpState {
        self.gateway
            .amqp
            .as_ref()
            .map_or(AmqpState::Off, |a| a.shared.state())
    }
}

/// One worker's instance of the server's applications.
#[derive(Debug)]
pub struct Corecast {
    shared: Arc<AppShared>,
    broadcast: Broadcast,
    chat: Chat,
    gateway: Gateway,
    side: SideDoor,
}

impl Corecast {
    /// The applications for worker `worker`.
    pub fn new(worker: usize, shared: &Arc<AppShared>) -> Self {
        Self {
            shared: shared.clone(),
            broadcast: Broadcast::default(),
            chat: Chat::new(worker, shared.clone()),
            gateway: Gateway::new(worker, shared.clone()),
            side: SideDoor::new(shared.clone()),
        }
    }
}

type AppCx<'a> = Cx<'a, ConnState, PeerMsg>;

impl App for Corecast {
    type Conn = ConnState;
    type PeerMsg = PeerMsg;

    fn on_request(
        &mut self,
        id: ConnId,
        head: &RequestHead<'_>,
        cx: &mut AppCx<'_>,
    ) -> Decision<ConnState> {
        match head.path {
            p if side::is_side_path(p) => self.side.on_request(id, head, &mut self.chat, cx),
            "/ws" => self.chat.on_request(id, head, cx),
            "/echo" => Decision::Upgrade {
                state: ConnState::Echo,
                max_message: usize::MAX,
            },
            "/broadcast" => Decision::Upgrade {
                state: ConnState::Broadcast(Slot(u32::MAX)),
                max_message: usize::MAX,
            },
            p => match self.shared.gateway.endpoint(p) {
                Some(i) => self.gateway.on_request(i, id, head, cx),
                None => Decision::Respond(Response::text(Status::NOT_FOUND, "not found")),
            },
        }
    }

    fn on_body(
        &mut self,
        id: ConnId,
        head: &RequestHead<'_>,
        body: &[u8],
        cx: &mut AppCx<'_>,
    ) -> Decision<ConnState> {
        self.side.on_body(id, head, body, &mut self.chat, cx)
    }

    fn on_open(&mut self, id: ConnId, conn: &mut ConnState, cx: &mut AppCx<'_>) {
        self.shared.chat.ws_open.fetch_add(1, Relaxed);
        match conn {
            ConnState::Broadcast(slot) => *slot = self.broadcast.join(id),
            ConnState::Chat(c) => self.chat.on_open(id, c, cx),
            ConnState::Gateway(c) => self.gateway.on_open(id, c, cx),
            ConnState::Echo | ConnState::Http => {}
        }
    }

    fn on_message(
        &mut self,
        id: ConnId,
        conn: &mut ConnState,
        kind: DataKind,
        payload: &[u8],
        cx: &mut AppCx<'_>,
    ) {
        match conn {
            ConnState::Echo => echo::on_message(id, kind, payload, cx),
            ConnState::Broadcast(_) => self.broadcast.on_message(kind, payload, cx),
            ConnState::Chat(c) => self.chat.on_message(id, c, kind, payload, cx),
            ConnState::Gateway(c) => self.gateway.on_message(id, c, kind, payload, cx),
            ConnState::Http => {}
        }
    }

    fn on_close(&mut self, id: ConnId, conn: ConnState, cx: &mut AppCx<'_>) {
        if !matches!(conn, ConnState::Http) {
            self.shared.chat.ws_open.fetch_sub(1, Relaxed);
        }
        match conn {
            ConnState::Echo | ConnState::Http => {}
            ConnState::Broadcast(slot) => self.broadcast.leave(slot, cx),
            ConnState::Chat(c) => self.chat.on_close(id, *c, cx),
            ConnState::Gateway(c) => self.gateway.on_close(id, *c, cx),
        }
    }

    fn on_peer(&mut self, msg: PeerMsg, cx: &mut AppCx<'_>) {
        match msg {
            PeerMsg::Broadcast(frame) => self.broadcast.on_peer(frame, cx),
            PeerMsg::Chat(m) => self.chat.on_peer(m, cx),
            PeerMsg::Gateway(m) => self.gateway.on_peer(m, cx),
        }
    }

    fn on_tick(&mut self, cx: &mut AppCx<'_>) {
        self.chat.on_tick(cx);
    }

    fn on_settled(&mut self) {
        self.chat.on_settled();
        self.gateway.on_settled();
    }
}
