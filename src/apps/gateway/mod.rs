//! The event gateway's WebSocket endpoints (`[[endpoint]]` in `--config`), one instance per
//! worker: RabbitMQ events to every device of their owner, clients' messages upstream.
//!
//! - **Admission** is the chat's (per-IP rate 429, `Origin` 403, JWT 401), with the endpoint's
//!   identity (`query:NAME` in development, the token's `sub` with `--jwt-secret`) and its
//!   `roles` (403 before the upgrade when the token holds none of them).
//! - **Delivery.** The bridge hands each event to its owner's gateway home (`msg.rs`), which
//!   knows on which workers the owner has devices (`home.rs`). The home writes the frame
//!   `{"type":"<routing key>","data":<data>}` once, queues it to its own devices and hands the
//!   same bytes to the other workers; each answers once the frame is queued to its devices,
//!   and the home acknowledges the delivery to the broker only when every worker has. An
//!   owner with no device on this node is counted (`undelivered`) and acknowledged.
//! - **Upstream.** A client message whose `type` matches one of the endpoint's `upstream`
//!   patterns is published with routing key = `type` and body
//!   `{"<owner field>":"<authenticated user>","data":<data>}` (a client's own `ownerId` is
//!   never used); with an `id` the client gets `ack` once the broker confirmed it, else
//!   `error` `upstream_unavailable`; a type not allowed gets `forbidden`.
//! - **Lifecycle.** With `lifecycle = true` the home publishes `gateway.connected` when a
//!   user's first device opens on the endpoint and `gateway.disconnected` when the last one
//!   closes.
//! - **Offline owners** (`store_offline` with the Redis relay, `offline.rs`): an event whose
//!   owner has no device on any node is stored once cluster-wide and handed to the owner's
//!   next device.
//!
//! Owns what events mean to users and devices; the broker connection is `crate::amqp`, the
//! sockets the reactor's. Talks to the bridge only through its handle (never blocks).

pub mod home;
pub mod msg;
pub mod offline;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::chat::admission::{DevIdentity, Refusal};
use super::chat::conn::Strikes;
use super::{AppShared, ConnState, PeerMsg};
use crate::amqp::{self, command, AmqpCmd, AmqpEvent, AmqpHandle, DataEncoding, DeliveryTag};
use crate::chat::validate::is_user_id;
use crate::config::{Config, EndpointConfig, Identity};
use crate::guard::query::query_pairs;
use crate::guard::ratelimit::TokenBucket;
use crate::http::RequestHead;
use crate::reactor::{ConnId, Cx, Decision, Outbound};
use crate::relay::RelayEvent;
use crate::ws::{CloseCode, DataKind};
use home::Directory;
use msg::{home_of, GatewayMsg};
use offline::Offline;

type GatewayCx<'a> = Cx<'a, ConnState, PeerMsg>;

/// Routing key of the event published when a user's first device connects to an endpoint.
pub const CONNECTED: &str = "gateway.connected";
/// Routing key of the event published when a user's last device leaves an endpoint.
pub const DISCONNECTED: &str = "gateway.disconnected";

/// One gateway endpoint, as the workers use it.
#[derive(Debug)]
pub struct Endpoint {
    /// The request path.
    pub path: String,
    /// The query parameter naming the user in development mode; `None` with JWT identity.
    pub param: Option<String>,
    /// The query parameter kept out of lifecycle events: the identity one, or with JWT
    /// identity the one the file named (which a client may set to anyone).
    pub unlisted: Option<String>,
    /// Roles of which a token must hold one (empty: any).
    pub roles: Vec<String>,
    /// Topic patterns a client message's type must match to go upstream.
    pub upstream: Vec<String>,
    /// Publish lifecycle events.
    pub lifecycle: bool,
}

impl Endpoint {
    fn new(e: &EndpointConfig) -> Self {
        Self {
            path: e.path.clone(),
            param: match &e.identity {
                Identity::Query(p) => Some(p.clone()),
                Identity::Jwt => None,
            },
            unlisted: match &e.identity {
                Identity::Query(p) => Some(p.clone()),
                Identity::Jwt => e.ignored_param.clone(),
            },
            roles: e.roles.clone(),
            upstream: e.upstream.clone(),
            lifecycle: e.lifecycle,
        }
    }

    /// Whether a message of type `kind` may go upstream from this endpoint.
    pub fn allows(&self, kind: &str) -> bool {
        self.upstream.iter().any(|p| amqp::topic::matches(p, kind))
    }
}

/// One worker's gateway counters (written by that worker, read by `/metrics`).
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Client messages published upstream (handed to the bridge).
    pub upstream: AtomicU64,
    /// Client messages refused with `forbidden` (type not allowed on the endpoint).
    pub forbidden: AtomicU64,
    /// Upstream messages answered `upstream_unavailable`.
    pub unavailable: AtomicU64,
    /// Upgrades refused for the endpoint's roles (403).
    pub refused_role: AtomicU64,
    /// Upgrades refused otherwise (rate, origin, token, identity).
    pub refused: AtomicU64,
    /// Lifecycle events published.
    pub lifecycle: AtomicU64,
    /// Events for owners connected nowhere, stored in their inbox.
    pub stored: AtomicU64,
    /// Events for owners offline here whose copy another node stored, or who were connected
    /// to another node.
    pub stored_elsewhere: AtomicU64,
    /// Events that could not be stored (Redis failed).
    pub store_failed: AtomicU64,
    /// Stored events pushed out of a full inbox.
    pub store_dropped: AtomicU64,
    /// Stored events handed to a device that opened.
    pub replayed: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// What every worker's gateway shares.
#[derive(Debug)]
pub struct GatewayShared {
    /// The endpoints, in configuration order (a connection keeps its index).
    pub endpoints: Vec<Endpoint>,
    /// The bridge, with `[amqp]`.
    pub amqp: Option<AmqpHandle>,
    /// The body member naming the owner (`ownerId`).
    pub owner_field: String,
    /// How bodies write `data`.
    pub encoding: DataEncoding,
    /// Largest client message, bytes.
    pub max_message: usize,
    /// Each worker's counters.
    pub stats: Vec<Arc<GatewayStats>>,
}

impl GatewayShared {
    /// For `cfg`'s endpoints, with the bridge `amqp` when `[amqp]` is set.
    pub fn new(cfg: &Config, amqp: Option<AmqpHandle>) -> Self {
        let (owner_field, encoding) = cfg.amqp.as_ref().map_or_else(
            || {
                (
                    amqp::body::DEFAULT_OWNER_FIELD.to_owned(),
                    DataEncoding::Json,
                )
            },
            |a| (a.owner_field.clone(), a.data_encoding),
        );
        Self {
            endpoints: cfg.endpoints.iter().map(Endpoint::new).collect(),
            amqp,
            owner_field,
            encoding,
            max_message: cfg.chat_max_message,
            stats: (0..cfg.workers.max(1)).map(|_| Arc::default()).collect(),
        }
    }

    /// The endpoint served at `path`.
    pub fn endpoint(&self, path: &str) -> Option<usize> {
        self.endpoints.iter().position(|e| e.path == path)
    }

    /// Gateway counters summed over the workers.
    pub fn sum(&self, f: impl Fn(&GatewayStats) -> &AtomicU64) -> u64 {
        self.stats.iter().map(|s| f(s).load(Relaxed)).sum()
    }
}

/// A gateway connection.
#[derive(Debug)]
pub struct GatewayConn {
    /// The user.
    pub uid: Arc<str>,
    /// Its endpoint's index.
    pub endpoint: u16,
    /// Message rate (`--msg-rate`, `--msg-burst`).
    pub bucket: TokenBucket,
    /// Messages refused for the rate lately.
    pub strikes: Strikes,
    /// The query parameters as a JSON object (lifecycle endpoints only; else empty).
    pub query: Box<[u8]>,
}

/// An upstream publish waiting for its confirmation.
#[derive(Debug)]
struct Upstream {
    conn: ConnId,
    id: Option<Box<[u8]>>,
}

/// A delivery waiting for other workers before its ack.
#[derive(Debug)]
struct PendingAck {
    tag: DeliveryTag,
    remaining: usize,
}

/// One worker's gateway.
pub struct Gateway {
    me: usize,
    workers: usize,
    app: Arc<AppShared>,
    stats: Arc<GatewayStats>,
    /// This worker's devices per user.
    local: HashMap<Arc<str>, Vec<ConnId>>,
    /// The users whose home this worker is.
    dir: Directory,
    upstream: HashMap<u64, Upstream>,
    acks: HashMap<u64, PendingAck>,
    next_token: u64,
    /// Commands were queued for the bridge in this batch.
    wake_bridge: bool,
    out: Vec<u8>,
    body: Vec<u8>,
    targets: Vec<usize>,
    /// Offline owners' events in Redis (`store_offline` with the relay).
    offline: Option<Offline>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("worker", &self.me).finish()
    }
}

impl Gateway {
    /// Worker `me`'s gateway.
    pub fn new(me: usize, app: Arc<AppShared>) -> Self {
        let stats = app.gateway.stats.get(me).cloned().unwrap_or_default();
        let store = app.chat.cfg.amqp.as_ref().is_some_and(|a| a.store_offline);
        let offline = match (&app.relay, store) {
            (Some((relay, scripts)), true) => {
                Some(Offline::new(relay.clone(), scripts.clone(), &app.chat.cfg))
            }
            _ => None,
        };
        Self {
            offline,
            me,
            workers: app.chat.cfg.workers.max(1),
            app,
            stats,
            local: HashMap::new(),
            dir: Directory::default(),
            upstream: HashMap::new(),
            acks: HashMap::new(),
            next_token: 0,
            wake_bridge: false,
            out: Vec::new(),
            body: Vec::new(),
            targets: Vec::new(),
        }
    }

    fn shared(&self) -> &GatewayShared {
        &self.app.gateway
    }

    fn bridge(&mut self, cmd: AmqpCmd) -> bool {
        match &self.app.gateway.amqp {
            Some(a) => {
                a.send_later(cmd);
                self.wake_bridge = true;
                true
            }
            None => false,
        }
    }

    /// The worker is about to wait: wake the bridge once for what this batch queued.
    pub fn on_settled(&mut self) {
        if std::mem::take(&mut self.wake_bridge) {
            if let Some(a) = &self.app.gateway.amqp {
                a.wake();
            }
        }
        if let Some(o) = self.offline.as_mut() {
            o.wake();
        }
    }

    // ---- admission and connection life -----------------------------------------------------

    /// Decides an upgrade request for endpoint `index`.
    pub fn on_request(
        &mut self,
        index: usize,
        id: ConnId,
        head: &RequestHead<'_>,
        cx: &mut GatewayCx<'_>,
    ) -> Decision<ConnState> {
        let chat = &self.app.chat;
        let Some(ep) = self.app.gateway.endpoints.get(index) else {
            return Decision::Respond(crate::http::Response::text(
                crate::http::Status::NOT_FOUND,
                "not found",
            ));
        };
        let mono_ms = chat.started.elapsed().as_millis() as u64;
        let unix_s = cx.unix_ms() / 1000;
        let peer = cx.peer_addr(id).map(|a| a.ip());
        let dev = DevIdentity {
            param: ep.param.as_deref().unwrap_or("userID"),
            valid: is_user_id,
            rule: "1-128 bytes without control characters",
        };
        let who = chat
            .admission
            .check_as(peer, head, mono_ms, unix_s, dev)
            .and_then(|who| {
                let allowed = !chat.admission.uses_tokens()
                    || ep.roles.is_empty()
                    || who.roles.iter().any(|r| ep.roles.contains(r));
                if allowed {
                    Ok(who)
                } else {
                    Err(Refusal::Role)
                }
            });
        match who {
            Ok(who) => {
                let mut query = Vec::new();
                if ep.lifecycle {
                    let pairs = query_pairs(head.target.as_bytes());
                    let skip = |k: &str| k == "token" || ep.unlisted.as_deref() == Some(k);
                    wire::query_object(
                        &mut query,
                        pairs
                            .iter()
                            .filter(|(k, _)| !skip(k))
                            .map(|(k, v)| (&**k, &**v)),
                    );
                }
                let conn = GatewayConn {
                    uid: who.id.into(),
                    endpoint: index as u16,
                    bucket: TokenBucket::new(chat.admission.msg_rate, cx.mono_ms()),
                    strikes: Strikes::default(),
                    query: query.into_boxed_slice(),
                };
                Decision::Upgrade {
                    state: ConnState::Gateway(Box::new(conn)),
                    max_message: self.shared().max_message,
                }
            }
            Err(refusal) => {
                add(
                    if refusal == Refusal::Role {
                        &self.stats.refused_role
                    } else {
                        &self.stats.refused
                    },
                    1,
                );
                tracing::debug!(?refusal, path = %ep.path, "gateway upgrade refused");
                Decision::Respond(refusal.response())
            }
        }
    }

    /// A device opened: this worker delivers to it from now on; its home counts it.
    pub fn on_open(&mut self, id: ConnId, c: &mut GatewayConn, cx: &mut GatewayCx<'_>) {
        match self.local.get_key_value(&*c.uid) {
            Some((k, _)) => c.uid = k.clone(),
            None => {
                self.local.insert(c.uid.clone(), Vec::with_capacity(1));
            }
        }
        if let Some(v) = self.local.get_mut(&*c.uid) {
            v.push(id);
        }
        let msg = GatewayMsg::Up {
            user: c.uid.clone(),
            worker: self.me,
            endpoint: c.endpoint,
            query: c.query.clone(),
        };
        cx.send_peer(home_of(&c.uid, self.workers), PeerMsg::Gateway(msg));
        if let Some(o) = self.offline.as_mut().filter(|o| o.up()) {
            o.take(self.me, &c.uid, id);
        }
    }

    /// A device closed.
    pub fn on_close(&mut self, id: ConnId, c: GatewayConn, cx: &mut GatewayCx<'_>) {
        if let Some(v) = self.local.get_mut(&*c.uid) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.local.remove(&*c.uid);
            }
        }
        let home = home_of(&c.uid, self.workers);
        let msg = GatewayMsg::Down {
            user: c.uid,
            worker: self.me,
            endpoint: c.endpoint,
            query: c.query,
        };
        cx.send_peer(home, PeerMsg::Gateway(msg));
    }

    /// A client message: upstream, if its type is allowed here.
    pub fn on_message(
        &mut self,
        id: ConnId,
        c: &mut GatewayConn,
        kind: DataKind,
        payload: &[u8],
        cx: &mut GatewayCx<'_>,
    ) {
        if !c.bucket.try_take(cx.mono_ms()) {
            self.app.chat.stats[self.me]
                .rate_limited_messages
                .fetch_add(1, Relaxed);
            let max = self.app.chat.cfg.msg_burst.saturating_mul(2);
            if c.strikes.strike(cx.now_ms(), max) {
                self.app.chat.stats[self.me]
                    .rate_limit_closes
                    .fetch_add(1, Relaxed);
                cx.close(id, CloseCode::POLICY, "rate limit");
            } else {
                let msg_id = command::parse(payload).ok().and_then(|m| m.id);
                self.error(
                    id,
                    "rate_limited",
                    "message rate limit exceeded",
                    msg_id,
                    cx,
                );
            }
            return;
        }
        if kind != DataKind::Text {
            return self.error(id, "bad_json", "binary messages are not json", None, cx);
        }
        let msg = match command::parse(payload) {
            Ok(m) => m,
            Err((e, msg_id)) => {
                let code = if e.is_json() {
                    "bad_json"
                } else {
                    "bad_request"
                };
                return self.error(id, code, &e.to_string(), msg_id, cx);
            }
        };
        let allowed = self
            .shared()
            .endpoints
            .get(usize::from(c.endpoint))
            .is_some_and(|ep| ep.allows(&msg.kind));
        if !allowed {
            add(&self.stats.forbidden, 1);
            return self.error(
                id,
                "forbidden",
                "this type may not be sent upstream here",
                msg.id,
                cx,
            );
        }
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        amqp::body::write_body(
            &mut body,
            &self.app.gateway.owner_field,
            &c.uid,
            msg.data,
            self.app.gateway.encoding,
        );
        let token = self.token();
        let cmd = AmqpCmd::Publish {
            routing_key: msg.kind.into_owned(),
            body,
            worker: self.me,
            token,
        };
        if !self.bridge(cmd) {
            add(&self.stats.unavailable, 1);
            return self.error(
                id,
                "upstream_unavailable",
                "no broker configured",
                msg.id,
                cx,
            );
        }
        add(&self.stats.upstream, 1);
        self.upstream.insert(
            token,
            Upstream {
                conn: id,
                id: msg.id.map(Box::from),
            },
        );
    }

    fn token(&mut self) -> u64 {
        self.next_token = self.next_token.wrapping_add(1);
        self.next_token
    }

    fn error(
        &mut self,
        conn: ConnId,
        code: &str,
        text: &str,
        id: Option<&[u8]>,
        cx: &mut GatewayCx<'_>,
    ) {
        self.out.clear();
        wire::error(&mut self.out, code, text, id);
        let _ = cx.send(conn, DataKind::Text, &self.out);
    }

    // ---- messages from the bridge and the other workers ------------------------------------

    /// A message from the bridge, another worker or this one.
    pub fn on_peer(&mut self, msg: GatewayMsg, cx: &mut GatewayCx<'_>) {
        match msg {
            GatewayMsg::Amqp(ev) => self.on_amqp(ev, cx),
            GatewayMsg::Relay(RelayEvent::Reply { token, reply, .. }) => {
                self.on_relay_reply(token, &reply, cx);
            }
            GatewayMsg::Relay(_) => {}
            GatewayMsg::RelayUp => {
                if let Some(o) = self.offline.as_mut() {
                    for (user, devices) in self.dir.users() {
                        o.devices(user, devices);
                    }
                }
            }
            GatewayMsg::Up {
                user,
                worker,
                endpoint,
                query,
            } => {
                let n = self.dir.up(user.clone(), worker, endpoint);
                if n == 1 {
                    self.lifecycle(CONNECTED, &user, endpoint, &query, n);
                }
                let devices = self.dir.devices(&user);
                if let Some(o) = self.offline.as_mut() {
                    o.devices(&user, devices);
                }
            }
            GatewayMsg::Down {
                user,
                worker,
                endpoint,
                query,
            } => {
                if self.dir.down(&user, worker, endpoint) == Some(0) {
                    self.lifecycle(DISCONNECTED, &user, endpoint, &query, 0);
                }
                let devices = self.dir.devices(&user);
                if let Some(o) = self.offline.as_mut() {
                    o.devices(&user, devices);
                }
            }
            GatewayMsg::Deliver {
                user,
                frame,
                home,
                token,
            } => {
                if let Some(mut out) = Outbound::from_frame(frame) {
                    self.queue_local(&user, &mut out, cx);
                }
                self.answer(home, GatewayMsg::Queued { token }, cx);
            }
            GatewayMsg::Queued { token } => {
                if let Some(p) = self.acks.get_mut(&token) {
                    p.remaining = p.remaining.saturating_sub(1);
                    if p.remaining == 0 {
                        let tag = p.tag;
                        self.acks.remove(&token);
                        self.bridge(AmqpCmd::Ack { tag });
                    }
                }
            }
        }
    }

    /// To another worker as a message; to this one as a direct call.
    fn answer(&mut self, worker: usize, msg: GatewayMsg, cx: &mut GatewayCx<'_>) {
        if worker == self.me {
            self.on_peer(msg, cx);
        } else {
            cx.send_peer(worker, PeerMsg::Gateway(msg));
        }
    }

    fn on_amqp(&mut self, ev: AmqpEvent, cx: &mut GatewayCx<'_>) {
        match ev {
            AmqpEvent::Delivery {
                routing_key,
                owner,
                data,
                tag,
                message_id,
                ..
            } => self.deliver(&routing_key, &owner, &data, tag, message_id.as_deref(), cx),
            AmqpEvent::Confirmed { token, ok } => {
                let Some(up) = self.upstream.remove(&token) else {
                    return; // a lifecycle event
                };
                self.out.clear();
                if ok {
                    let Some(id) = up.id else { return };
                    wire::ack(&mut self.out, &id);
                } else {
                    add(&self.stats.unavailable, 1);
                    wire::error(
                        &mut self.out,
                        "upstream_unavailable",
                        "the broker did not take the message",
                        up.id.as_deref(),
                    );
                }
                let _ = cx.send(up.conn, DataKind::Text, &self.out);
            }
            // Deliveries not acknowledged yet come again after the reconnect; acks for them
            // would be ignored by the bridge.
            AmqpEvent::Down => self.acks.clear(),
            AmqpEvent::Up => {}
        }
    }

    /// The home's part of a delivery: frame once, queue everywhere, ack when all queued.
    fn deliver(
        &mut self,
        routing_key: &str,
        owner: &str,
        data: &[u8],
        tag: DeliveryTag,
        message_id: Option<&str>,
        cx: &mut GatewayCx<'_>,
    ) {
        self.targets.clear();
        self.targets.extend(self.dir.workers(owner));
        if self.targets.is_empty() {
            if let Some(a) = &self.app.gateway.amqp {
                a.shared.stats.undelivered.fetch_add(1, Relaxed);
            }
            if let Some(o) = self.offline.as_mut() {
                // Acknowledged once Redis has answered (stored here, or elsewhere, or failed).
                self.out.clear();
                wire::event(&mut self.out, routing_key, data);
                let mark = offline::mark(message_id, routing_key, owner, data);
                o.store(self.me, owner, &self.out, &mark, tag);
                return;
            }
            self.bridge(AmqpCmd::Ack { tag });
            return;
        }
        if let Some(a) = &self.app.gateway.amqp {
            a.shared.stats.delivered.fetch_add(1, Relaxed);
        }
        self.out.clear();
        wire::event(&mut self.out, routing_key, data);
        let mut out = Outbound::new(DataKind::Text, &self.out);
        let token = self.token();
        let mut remote = 0;
        let targets = std::mem::take(&mut self.targets);
        // The directory's own key (a refcount, no allocation per delivery).
        let user: Option<Arc<str>> = targets
            .iter()
            .any(|w| *w != self.me)
            .then(|| self.dir.key(owner))
            .flatten();
        for &w in &targets {
            if w == self.me {
                self.queue_local(owner, &mut out, cx);
            } else if let Some(user) = &user {
                remote += 1;
                let msg = GatewayMsg::Deliver {
                    user: user.clone(),
                    frame: out.frame().clone(),
                    home: self.me,
                    token,
                };
                cx.send_peer(w, PeerMsg::Gateway(msg));
            }
        }
        self.targets = targets;
        if remote == 0 {
            self.bridge(AmqpCmd::Ack { tag });
        } else {
            self.acks.insert(
                token,
                PendingAck {
                    tag,
                    remaining: remote,
                },
            );
        }
    }

    /// A reply from Redis to one of the offline store's commands.
    fn on_relay_reply(
        &mut self,
        token: u64,
        reply: &Result<crate::relay::resp::Reply, ()>,
        cx: &mut GatewayCx<'_>,
    ) {
        let Some(p) = self.offline.as_mut().and_then(|o| o.finish(token)) else {
            return;
        };
        match p {
            offline::Pending::Store(tag) => {
                match offline::stored(reply) {
                    Some((true, dropped)) => {
                        add(&self.stats.stored, 1);
                        add(&self.stats.store_dropped, dropped);
                    }
                    Some((false, _)) => add(&self.stats.stored_elsewhere, 1),
                    None => {
                        add(&self.stats.store_failed, 1);
                        tracing::warn!(
                            ?reply,
                            "gateway: an offline owner's event could not be stored"
                        );
                    }
                }
                self.bridge(AmqpCmd::Ack { tag });
            }
            offline::Pending::Take(conn) => {
                for json in offline::taken(reply) {
                    add(&self.stats.replayed, 1);
                    let _ = cx.send(conn, DataKind::Text, json);
                }
            }
        }
    }

    /// Queues `out` to every device of `user` on this worker.
    fn queue_local(&mut self, user: &str, out: &mut Outbound, cx: &mut GatewayCx<'_>) {
        if let Some(conns) = self.local.get(user) {
            for &c in conns {
                let _ = cx.send_shared(c, out);
            }
        }
    }

    /// Publishes a lifecycle event of `user` on endpoint `endpoint`, if it asks for them.
    fn lifecycle(&mut self, key: &str, user: &str, endpoint: u16, query: &[u8], devices: u32) {
        let Some(path) = self.app.gateway.lifecycle_path(endpoint) else {
            return;
        };
        let node = self
            .app
            .gateway
            .amqp
            .as_ref()
            .map_or_else(|| Arc::from(""), |a| a.node_id.clone());
        self.out.clear();
        wire::lifecycle_data(&mut self.out, &path, query, &node, devices);
        let mut body = Vec::with_capacity(self.out.len() + 64);
        amqp::body::write_body(
            &mut body,
            &self.app.gateway.owner_field,
            user,
            &self.out,
            self.app.gateway.encoding,
        );
        let token = self.token();
        if self.bridge(AmqpCmd::Publish {
            routing_key: key.to_owned(),
            body,
            worker: self.me,
            token,
        }) {
            add(&self.stats.lifecycle, 1);
        }
    }
}

impl GatewayShared {
    /// The path of endpoint `index` when it publishes lifecycle events.
    fn lifecycle_path(&self, index: u16) -> Option<String> {
        self.endpoints
            .get(usize::from(index))
            .filter(|e| e.lifecycle)
            .map(|e| e.path.clone())
    }
}
