//! `GET /ws`: the chat & notification service, one instance per worker.
//!
//! Each worker is two things at once. For its own connections it keeps the users and the
//! local members of each room (`local.rs`) and queues frames to them. For the rooms and users
//! whose name hashes to it, it is the *home* (`home.rs`): it gives a room's messages their
//! `seq`, keeps the room's history, counts its members and knows which workers hold them, and
//! it knows where each of its users is connected. Requests go to the home as messages
//! (`msg.rs`); the home answers and delivers with messages back. A message is serialized to
//! JSON once and framed once by the home; the same shared bytes are queued to every member on
//! every worker (compressed once per worker), with no lock on the way.
//!
//! Ordering rules that make this correct:
//! - a room has one home, and the home sends a worker everything for a room over one FIFO
//!   inbox, so every member sees one order;
//! - requests to a home always travel as messages (for this worker too, through the reactor's
//!   local queue), never as direct calls, so they never run while a connection's state is
//!   lent to `on_message`;
//! - a home's replies to its own worker are direct calls, so a joiner on the home worker is
//!   added before the home's next delivery, exactly as a remote worker is (its `JoinDone`
//!   arrives before later deliveries);
//! - so a command may follow a `room.join` at once (pipelined): it reaches the room's home
//!   after the join, and its answers come back after the `JoinDone` that makes the connection
//!   a local member. Membership checks at the sender's worker therefore accept a join still on
//!   its way.
//!
//! Owns the protocol's behaviour; the JSON itself is `crate::chat` (sans-IO), sockets and
//! frames are the reactor's.

pub mod admission;
pub mod cluster;
pub mod conn;
pub mod history;
pub mod home;
pub mod local;
pub mod msg;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;

use super::{AppShared, ConnState, PeerMsg};
use crate::chat::command::{Command, CommandParser, Id, Limits as ParseLimits, OwnedId};
use crate::chat::error::ErrorCode;
use crate::chat::wire::{self, RoomInfo};
use crate::chat::{api, command};
use crate::config::Config;
use crate::guard::ratelimit::TokenBucket;
use crate::http::{RequestHead, Response, Status};
use crate::reactor::{ConnId, Cx, Decision, Millis, Outbound, SendStatus, SharedFrame};
use crate::ws::{CloseCode, DataKind};
use admission::{Admission, Refusal};
use conn::{ChatConn, Joined};
use home::{Directory, HomeRooms};
use local::{Local, Member};
use msg::Reply;
use msg::{home_of, user_home, Addr, ApiPublishReq, ChatMsg, JoinReq, PrivateReq, PublishReq};

/// The room every user is in; it never expires.
pub const GENERAL: &str = "general";

type ChatCx<'a> = Cx<'a, ConnState, PeerMsg>;

/// One worker's chat counters (written by that worker only, read by `/metrics`).
#[derive(Debug, Default)]
pub struct ChatStats {
    /// Frames queued to chat connections (one per recipient).
    pub deliveries: AtomicU64,
    /// Client messages dropped for the message rate.
    pub rate_limited_messages: AtomicU64,
    /// Connections closed with 1008 for sustained abuse of the message rate.
    pub rate_limit_closes: AtomicU64,
    /// `/ws` upgrade attempts refused for the per-IP connection rate (429).
    pub refused_rate: AtomicU64,
    /// Refused for their `Origin` (403).
    pub refused_origin: AtomicU64,
    /// Refused for a missing or bad token (401).
    pub refused_auth: AtomicU64,
    /// Refused for a missing or bad `username` (400).
    pub refused_request: AtomicU64,
    /// Chat messages sequenced by this worker as a home (chat and API publishes).
    pub published: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// What every worker's chat instance shares: settings, counters, gauges.
#[derive(Debug)]
pub struct ChatShared {
    /// The server's settings.
    pub cfg: Arc<Config>,
    /// Each worker's counters.
    pub stats: Vec<Arc<ChatStats>>,
    /// Fan-out latency, microseconds: each worker's histogram, copied here once a second.
    pub latency: Vec<Mutex<Histogram<u64>>>,
    /// Rooms that have members (kept by the rooms' homes).
    pub rooms_active: AtomicUsize,
    /// Open WebSocket connections of every endpoint (kept by the router, `apps::Corecast`).
    pub ws_open: AtomicUsize,
    /// When the server started.
    pub started: Instant,
    /// Wall clock at start, for event ids.
    pub started_unix_ms: u64,
    /// Who may open `/ws`.
    pub admission: Admission,
}

impl ChatShared {
    /// Shared state for `workers` workers; the error is one line naming a bad setting.
    pub fn new(cfg: Arc<Config>, workers: usize) -> Result<Self, String> {
        Ok(Self {
            admission: Admission::from_config(&cfg)?,
            stats: (0..workers).map(|_| Arc::default()).collect(),
            latency: (0..workers).map(|_| Mutex::new(new_histogram())).collect(),
            rooms_active: AtomicUsize::new(0),
            ws_open: AtomicUsize::new(0),
            started: Instant::now(),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            cfg,
        })
    }

    /// Chat counters summed over the workers.
    pub fn sum(&self, f: impl Fn(&ChatStats) -> &AtomicU64) -> u64 {
        self.stats.iter().map(|s| f(s).load(Relaxed)).sum()
    }

    /// The fan-out latency histogram of all workers, merged.
    pub fn latency(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for h in &self.latency {
            if let Ok(h) = h.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }
}

/// Microseconds from 1 µs to 60 s, 2 significant digits (1 % resolution; about 20 KB).
fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; the fallback is never taken.
    Histogram::new_with_bounds(1, 60_000_000, 2)
        .or_else(|_| Histogram::new(2))
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// A room list being gathered from every worker.
#[derive(Debug)]
struct Gather {
    remaining: usize,
    rooms: Vec<(Arc<str>, u32)>,
    purpose: Purpose,
}

#[derive(Debug)]
enum Purpose {
    /// `room.list` (and the one after `welcome`).
    RoomList { conn: ConnId, id: Option<OwnedId> },
    /// `GET /api/rooms`.
    ApiRooms { conn: ConnId },
}

/// One worker's chat service.
pub struct Chat {
    me: usize,
    workers: usize,
    app: Arc<AppShared>,
    stats: Arc<ChatStats>,
    parser: Option<CommandParser>,
    local: Local,
    rooms: HomeRooms,
    dir: Directory,
    general: Arc<str>,
    gathers: HashMap<u64, Gather>,
    next_gather: u64,
    next_event: u64,
    /// Scratch for outgoing JSON.
    out: Vec<u8>,
    /// Scratch for the workers a room's frame goes to.
    targets: Vec<usize>,
    latency: Histogram<u64>,
    room_ttl: Millis,
    /// The relay side, with `--redis-url`.
    cluster: Option<cluster::Cluster>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat").field("worker", &self.me).finish()
    }
}

impl Chat {
    /// Worker `me`'s instance.
    pub fn new(me: usize, app: Arc<AppShared>) -> Self {
        let shared = &app.chat;
        let cfg = &shared.cfg;
        let workers = cfg.workers;
        Self {
            me,
            workers,
            stats: shared.stats[me].clone(),
            parser: Some(CommandParser::new(ParseLimits {
                max_content_chars: crate::chat::validate::DEFAULT_MAX_CONTENT_CHARS,
                max_history: cfg.history.min(u32::MAX as usize) as u32,
            })),
            local: Local::default(),
            rooms: HomeRooms::new(cfg.history, workers),
            dir: Directory::default(),
            general: GENERAL.into(),
            gathers: HashMap::new(),
            next_gather: 0,
            next_event: 0,
            out: Vec::with_capacity(4096),
            targets: Vec::with_capacity(workers),
            latency: new_histogram(),
            room_ttl: cfg.room_ttl.as_millis().min(u128::from(u32::MAX / 2)) as Millis,
            cluster: app.relay.as_ref().map(|(relay, scripts)| {
                cluster::Cluster::new(
                    relay.clone(),
                    cfg.redis_prefix.clone(),
                    scripts.clone(),
                    cfg,
                )
            }),
            app: app.clone(),
        }
        .with_general()
    }

    /// `general` always exists at its home, members or not (a publish to it takes a seq).
    fn with_general(mut self) -> Self {
        if home_of(GENERAL, self.workers) == self.me {
            let general = self.general.clone();
            self.rooms.get_or_create(&general, 0);
        }
        self
    }

    fn cfg(&self) -> &Config {
        &self.app.chat.cfg
    }

    fn shared(&self) -> &ChatShared {
        &self.app.chat
    }

    // ---- admission and connection life -----------------------------------------------------

    /// Decides a `GET /ws` request: who it is, and whether it may connect.
    pub fn on_request(
        &mut self,
        id: ConnId,
        head: &RequestHead<'_>,
        cx: &mut ChatCx<'_>,
    ) -> Decision<ConnState> {
        let shared = &self.app.chat;
        let mono_ms = shared.started.elapsed().as_millis() as u64;
        let unix_s = cx.unix_ms() / 1000;
        let peer = cx.peer_addr(id).map(|a| a.ip());
        match shared.admission.check(peer, head, mono_ms, unix_s) {
            Ok(who) => {
                let bucket = TokenBucket::new(shared.admission.msg_rate, cx.mono_ms());
                let conn = ChatConn::new(who.id.into(), who.name.into(), bucket);
                Decision::Upgrade {
                    state: ConnState::Chat(Box::new(conn)),
                    max_message: self.cfg().chat_max_message,
                }
            }
            Err(refusal) => {
                let counter = match &refusal {
                    Refusal::Rate => &self.stats.refused_rate,
                    Refusal::Origin(_) | Refusal::Role => &self.stats.refused_origin,
                    Refusal::Auth(_) => &self.stats.refused_auth,
                    Refusal::BadRequest(_) => &self.stats.refused_request,
                };
                add(counter, 1);
                tracing::debug!(?refusal, "chat upgrade refused");
                Decision::Respond(refusal.response())
            }
        }
    }

    /// The worker is about to wait: the relay thread is woken once for everything this
    /// batch queued for it.
    pub fn on_settled(&mut self) {
        if let Some(cl) = self.cluster.as_mut() {
            cl.wake();
        }
    }

    /// A `/ws` connection opened: register it, join `general`, welcome it.
    pub fn on_open(&mut self, id: ConnId, c: &mut ChatConn, cx: &mut ChatCx<'_>) {
        let (user, uid) = self.local.attach(&c.uid, id);
        c.user = user;
        if c.name == c.uid {
            c.name = uid.clone(); // one allocation for both when the name is the id
        }
        c.uid = uid.clone();
        self.request(
            user_home(&uid, self.workers),
            ChatMsg::UserUp {
                user: uid.clone(),
                worker: self.me,
            },
            cx,
        );
        // `general` is joined at once locally (messages from other local members reach the
        // connection from now on); its home counts it when the join arrives.
        let general = self.general.clone();
        let slot = self.local.join(&general, Member { conn: id, user });
        c.rooms.push(Joined {
            room: general.clone(),
            slot: Some(slot),
        });
        self.request(
            home_of(GENERAL, self.workers),
            ChatMsg::Join(Box::new(JoinReq {
                room: general,
                user: uid.clone(),
                since: None,
                rejoin: false,
                on_connect: true,
                reply: self.reply(id, None),
            })),
            cx,
        );
        self.out.clear();
        wire::welcome(&mut self.out, &uid, &c.name, [GENERAL]);
        self.send_out(id, cx);
        // Without a relay, gathered after the join above reached general's home, so the list
        // counts this user. With one, only once the join is registered in Redis (`JoinDone`).
        if self.cluster.is_none() {
            self.start_gather(Purpose::RoomList { conn: id, id: None }, cx);
        }
    }

    /// After `welcome` (with the relay configured, once `general`'s join is registered): the
    /// user's stored notifications, then the room list.
    fn after_welcome(&mut self, id: ConnId, cx: &mut ChatCx<'_>) {
        if self.relay_up() {
            let Some(ConnState::Chat(c)) = cx.state(id) else {
                return;
            };
            let uid = c.uid.clone();
            self.relay_inbox(id, &uid);
        } else {
            self.start_gather(Purpose::RoomList { conn: id, id: None }, cx);
        }
    }

    /// A `/ws` connection is gone: leave its rooms, tell its user's home.
    pub fn on_close(&mut self, id: ConnId, c: ChatConn, cx: &mut ChatCx<'_>) {
        for j in c.rooms {
            if let Some(slot) = j.slot {
                self.local_leave(&j.room, slot, cx);
            }
            // Also for a join still on its way: the home counts it before this leave.
            let home = home_of(&j.room, self.workers);
            self.request(
                home,
                ChatMsg::Leave {
                    room: j.room,
                    user: c.uid.clone(),
                    worker: self.me,
                },
                cx,
            );
        }
        self.local.detach(c.user, id);
        self.request(
            user_home(&c.uid, self.workers),
            ChatMsg::UserDown {
                user: c.uid,
                worker: self.me,
            },
            cx,
        );
    }

    /// One client message.
    pub fn on_message(
        &mut self,
        id: ConnId,
        c: &mut ChatConn,
        kind: DataKind,
        payload: &[u8],
        cx: &mut ChatCx<'_>,
    ) {
        let Some(mut parser) = self.parser.take() else {
            return;
        };
        let parsed = if kind == DataKind::Text {
            parser.parse(payload)
        } else {
            command::Parsed {
                id: None,
                result: Err(crate::chat::error::CommandError::new(
                    ErrorCode::BadJson,
                    "binary messages are not json",
                )),
            }
        };
        let now = cx.now_ms();
        if !c.bucket.try_take(cx.mono_ms()) {
            add(&self.stats.rate_limited_messages, 1);
            let max = self.cfg().msg_burst.saturating_mul(2);
            if c.strikes.strike(now, max) {
                add(&self.stats.rate_limit_closes, 1);
                cx.close(id, CloseCode::POLICY, "rate limit");
            } else {
                self.error(
                    id,
                    ErrorCode::RateLimited,
                    "message rate limit exceeded",
                    parsed.id.as_ref(),
                    cx,
                );
            }
        } else {
            match parsed.result {
                Ok(cmd) => self.command(id, c, cmd, parsed.id.as_ref(), cx),
                Err(e) => self.error(id, e.code, e.reason, parsed.id.as_ref(), cx),
            }
        }
        self.parser = Some(parser);
    }

    fn command(
        &mut self,
        id: ConnId,
        c: &mut ChatConn,
        cmd: Command<'_>,
        msg_id: Option<&Id<'_>>,
        cx: &mut ChatCx<'_>,
    ) {
        let owned = || msg_id.map(Id::to_owned_id);
        match cmd {
            Command::Chat { room, content } => {
                let Some(j) = c.room(room) else {
                    return self.not_in_room(id, msg_id, cx);
                };
                let req = PublishReq {
                    room: j.room.clone(),
                    from: c.uid.clone(),
                    content: content.into(),
                    reply: self.reply(id, owned()),
                };
                self.request(
                    home_of(room, self.workers),
                    ChatMsg::Publish(Box::new(req)),
                    cx,
                );
            }
            Command::Join { room, since } => {
                let (room, rejoin) = match c.room(room) {
                    Some(j) => (j.room.clone(), true),
                    None if c.rooms.len() >= self.cfg().max_rooms => {
                        return self.error(
                            id,
                            ErrorCode::Forbidden,
                            "room limit reached",
                            msg_id,
                            cx,
                        );
                    }
                    None => {
                        let room: Arc<str> = room.into();
                        c.rooms.push(Joined {
                            room: room.clone(),
                            slot: None,
                        });
                        (room, false)
                    }
                };
                let home = home_of(&room, self.workers);
                let req = JoinReq {
                    room,
                    user: c.uid.clone(),
                    since,
                    rejoin,
                    on_connect: false,
                    reply: self.reply(id, owned()),
                };
                self.request(home, ChatMsg::Join(Box::new(req)), cx);
            }
            Command::Leave { room } => {
                if room == GENERAL {
                    return self.error(
                        id,
                        ErrorCode::Forbidden,
                        "general cannot be left",
                        msg_id,
                        cx,
                    );
                }
                let Some(pos) = c.rooms.iter().position(|j| &*j.room == room) else {
                    return self.not_in_room(id, msg_id, cx);
                };
                let j = c.rooms.remove(pos);
                if let Some(slot) = j.slot {
                    self.local_leave(&j.room, slot, cx);
                }
                let home = home_of(room, self.workers);
                self.request(
                    home,
                    ChatMsg::Leave {
                        room: j.room,
                        user: c.uid.clone(),
                        worker: self.me,
                    },
                    cx,
                );
                self.ack(id, msg_id, cx);
            }
            Command::Private { to, content } => {
                let req = PrivateReq {
                    from: c.uid.clone(),
                    to: to.into(),
                    content: content.into(),
                    reply: self.reply(id, owned()),
                };
                self.request(
                    user_home(to, self.workers),
                    ChatMsg::Private(Box::new(req)),
                    cx,
                );
            }
            Command::Typing { room } => {
                let Some(j) = c.room(room) else {
                    return self.not_in_room(id, msg_id, cx);
                };
                self.out.clear();
                wire::typing(&mut self.out, room, &c.uid);
                let frame = Outbound::new(DataKind::Text, &self.out).frame().clone();
                let msg = ChatMsg::Typing {
                    room: j.room.clone(),
                    user: c.uid.clone(),
                    frame,
                };
                self.request(home_of(room, self.workers), msg, cx);
                self.ack(id, msg_id, cx);
            }
            Command::RoomList => {
                self.start_gather(
                    Purpose::RoomList {
                        conn: id,
                        id: owned(),
                    },
                    cx,
                );
            }
            Command::UserList { room } => {
                let Some(j) = c.room(room) else {
                    return self.not_in_room(id, msg_id, cx);
                };
                let msg = ChatMsg::UserList {
                    room: j.room.clone(),
                    reply: self.reply(id, owned()),
                };
                self.request(home_of(room, self.workers), msg, cx);
            }
            Command::History { room, limit } => {
                let Some(j) = c.room(room) else {
                    return self.not_in_room(id, msg_id, cx);
                };
                let msg = ChatMsg::History {
                    room: j.room.clone(),
                    limit,
                    reply: self.reply(id, owned()),
                };
                self.request(home_of(room, self.workers), msg, cx);
            }
            Command::Ping => {
                self.out.clear();
                wire::pong(&mut self.out);
                self.send_out(id, cx);
                self.ack(id, msg_id, cx);
            }
        }
    }

    // ---- messages between workers ----------------------------------------------------------

    /// A message from another worker (or this one).
    pub fn on_peer(&mut self, msg: ChatMsg, cx: &mut ChatCx<'_>) {
        match msg {
            ChatMsg::Join(req) => self.home_join(*req, cx),
            ChatMsg::Leave { room, user, worker } => self.home_leave(&room, &user, worker, cx),
            ChatMsg::Publish(req) => self.home_publish(*req, cx),
            ChatMsg::Typing { room, user, frame } if self.relay_up() => {
                self.relay_typing(&room, &user, frame);
            }
            ChatMsg::Typing { room, user, frame } => {
                if self.rooms.get(&room).is_some() {
                    let mut out = outbound(frame);
                    self.deliver_room(&room, &mut out, Some(user), cx);
                }
            }
            ChatMsg::UserList { room, reply } if self.relay_up() => {
                self.relay_user_list(room, reply);
            }
            ChatMsg::UserList { room, reply } => {
                self.out.clear();
                let users = self
                    .rooms
                    .get(&room)
                    .map(|r| r.users_sorted())
                    .unwrap_or_default();
                wire::user_list(&mut self.out, &room, users);
                let json = self.out.clone();
                self.reply_json(&reply, json, cx);
                self.reply_ack(&reply, cx);
            }
            ChatMsg::History { room, limit, reply } if self.relay_up() => {
                self.relay_history(room, limit, reply);
            }
            ChatMsg::History { room, limit, reply } => {
                self.local_history_answer(&room, limit, &reply, cx);
            }
            ChatMsg::RoomsPart { worker, gather } => {
                let rooms = self.rooms.with_members();
                self.answer(worker, ChatMsg::RoomsReply { gather, rooms }, cx);
            }
            ChatMsg::ApiPublish(req) => self.home_api_publish(*req, cx),
            ChatMsg::ApiRoomUsers { room, http } if self.relay_up() => {
                self.relay_room_users(room, http);
            }
            ChatMsg::ApiRoomUsers { room, http } => {
                let response = match self.rooms.get(&room).filter(|r| r.user_count() > 0) {
                    Some(r) => {
                        let mut body = Vec::new();
                        api::write_room_users(&mut body, &room, r.users_sorted());
                        Response::json(Status::OK, body)
                    }
                    None => json_error(Status::NOT_FOUND, "no such room"),
                };
                self.answer_http(http, response, cx);
            }
            ChatMsg::UserUp { user, worker } => {
                self.dir.up(user.clone(), worker);
                let n = self.dir.devices(&user);
                self.relay_conn(&user, n);
            }
            ChatMsg::UserDown { user, worker } => {
                self.dir.down(&user, worker);
                let n = self.dir.devices(&user);
                self.relay_conn(&user, n);
            }
            ChatMsg::Relay(ev) => self.on_relay(ev, cx),
            ChatMsg::Private(req) => self.home_private(*req, cx),
            ChatMsg::SenderCopy {
                user,
                frame,
                except,
            } => {
                self.deliver_user_everywhere(&user, &frame, Some(except), cx);
            }
            ChatMsg::Notify {
                user,
                frame,
                http,
                store,
            } if self.relay_up() => {
                self.relay_notify(user, frame, http, store);
            }
            ChatMsg::Notify {
                user, frame, http, ..
            } => {
                let delivered = self.dir.devices(&user);
                self.deliver_user_everywhere(&user, &frame, None, cx);
                let mut body = Vec::new();
                api::write_delivered(&mut body, delivered);
                let response = Response::json(Status::OK, body);
                self.answer_http(http, response, cx);
            }
            ChatMsg::Disconnect { user, http } if self.relay_up() => {
                self.relay_disconnect(user, http);
            }
            ChatMsg::Disconnect { user, http } => {
                let n = self.dir.devices(&user);
                let places: Vec<usize> =
                    self.dir.places(&user).into_iter().map(|(w, _)| w).collect();
                for w in places {
                    self.answer(w, ChatMsg::CloseUser { user: user.clone() }, cx);
                }
                let mut body = Vec::new();
                api::write_disconnected(&mut body, n);
                let response = Response::json(Status::OK, body);
                self.answer_http(http, response, cx);
            }
            ChatMsg::Deliver {
                room,
                frame,
                except_user,
                published,
            } => {
                let mut out = outbound(frame);
                self.local_deliver(&room, &mut out, except_user.as_deref(), published, cx);
            }
            ChatMsg::DeliverUser {
                user,
                frame,
                except,
            } => {
                let mut out = outbound(frame);
                self.local_deliver_user(&user, &mut out, except, cx);
            }
            ChatMsg::CloseUser { user } => {
                let conns = self
                    .local
                    .user_by_id(&user)
                    .map(|(_, u)| u.conns.clone())
                    .unwrap_or_default();
                for conn in conns {
                    cx.close(conn, CloseCode::POLICY, "disconnected by server");
                }
            }
            ChatMsg::JoinDone {
                room,
                conn,
                replies,
                welcome,
            } => {
                if let Some(ConnState::Chat(c)) = cx.state(conn) {
                    let user = c.user;
                    if let Some(j) = c.rooms.iter_mut().find(|j| j.room == room) {
                        if j.slot.is_none() {
                            j.slot = Some(self.local.join(&room, Member { conn, user }));
                        }
                    }
                }
                for json in replies {
                    let _ = cx.send(conn, DataKind::Text, &json);
                }
                if welcome && cx.is_open(conn) {
                    self.after_welcome(conn, cx);
                }
            }
            ChatMsg::ToConn { conn, json } => {
                let _ = cx.send(conn, DataKind::Text, &json);
            }
            ChatMsg::RoomsReply { gather, rooms } => self.gather_part(gather, rooms, cx),
            ChatMsg::Http { conn, response } => {
                cx.respond(conn, &response);
            }
        }
    }

    /// Expires empty rooms; publishes this worker's latency histogram.
    pub fn on_tick(&mut self, cx: &mut ChatCx<'_>) {
        self.rooms.expire(cx.now_ms(), self.room_ttl, GENERAL);
        self.relay_tick(cx);
        if self.me == 0 {
            let shared = &self.app.chat;
            shared
                .admission
                .prune(shared.started.elapsed().as_millis() as u64);
        }
        if let Some(slot) = self.shared().latency.get(self.me) {
            if let Ok(mut h) = slot.lock() {
                if h.len() != self.latency.len() {
                    h.clone_from(&self.latency);
                }
            }
        }
    }

    /// `history` from this node's ring.
    fn local_history_answer(&mut self, room: &str, limit: u32, reply: &Reply, cx: &mut ChatCx<'_>) {
        self.out.clear();
        match self.rooms.get(room) {
            Some(r) => {
                let (messages, complete) = r.history.newest(limit as usize);
                wire::history(&mut self.out, room, messages, complete);
            }
            None => wire::history(&mut self.out, room, std::iter::empty::<&[u8]>(), true),
        }
        let json = self.out.clone();
        self.reply_json(reply, json, cx);
        self.reply_ack(reply, cx);
    }

    // ---- the home of rooms -----------------------------------------------------------------

    fn home_join(&mut self, req: JoinReq, cx: &mut ChatCx<'_>) {
        let now = cx.now_ms();
        let presence_max = self.cfg().presence_max_members;
        let room = self.rooms.get_or_create(&req.room, now);
        let mut first = false;
        if !req.rejoin {
            first = room.add(&req.user, req.reply.to.worker);
            if room.conn_count() == 1 {
                self.app.chat.rooms_active.fetch_add(1, Relaxed);
            }
        }
        let presence = first && room.user_count() <= presence_max;
        if self.relay_up() {
            // Redis answers (and sends the presence notice to every node).
            return self.relay_join(req, first, cx);
        }
        if presence {
            self.out.clear();
            wire::presence_join(&mut self.out, &req.room, &req.user);
            let mut out = Outbound::new(DataKind::Text, &self.out);
            self.deliver_room(&req.room, &mut out, Some(req.user.clone()), cx);
        }
        self.local_join_answer(req, cx);
    }

    /// Answers a join from this node's own state (no relay, or Redis unreachable).
    fn local_join_answer(&mut self, req: JoinReq, cx: &mut ChatCx<'_>) {
        let Some(room) = self.rooms.get(&req.room) else {
            return;
        };
        let mut replies = Vec::new();
        if let Some(since) = req.since {
            let mut json = Vec::new();
            let (messages, complete) = room.history.since(since, room.seq);
            wire::history(&mut json, &req.room, messages, complete);
            replies.push(json);
        }
        if !req.on_connect {
            let mut json = Vec::new();
            wire::user_list(&mut json, &req.room, room.users_sorted());
            replies.push(json);
        }
        if let Some(id) = &req.reply.id {
            let mut json = Vec::new();
            wire::ack(&mut json, &id.as_id());
            replies.push(json);
        }
        // Without a relay, a join on connect needs no answer (the room list after `welcome`
        // was asked after it and is answered after it); with one, the list waits for this.
        let welcome = req.on_connect && self.cluster.is_some();
        if welcome || !replies.is_empty() {
            let to = req.reply.to;
            self.answer(
                to.worker,
                ChatMsg::JoinDone {
                    room: req.room,
                    conn: to.conn,
                    replies,
                    welcome,
                },
                cx,
            );
        }
    }

    fn home_leave(
        &mut self,
        room_name: &Arc<str>,
        user: &Arc<str>,
        worker: usize,
        cx: &mut ChatCx<'_>,
    ) {
        let now = cx.now_ms();
        let presence_max = self.cfg().presence_max_members;
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        let had = room.conn_count();
        let gone = room.remove(user, worker, now);
        let empty = had > 0 && room.conn_count() == 0;
        let users_now = room.user_count();
        if empty {
            self.app.chat.rooms_active.fetch_sub(1, Relaxed);
        }
        if self.cluster.is_some() {
            // Redis sends the presence notice to every node (after an outage too: the leave
            // waits in the relay's backlog).
            self.relay_leave(room_name, user, gone, empty);
            if self.relay_up() {
                return;
            }
        }
        if gone && users_now < presence_max {
            self.out.clear();
            wire::presence_leave(&mut self.out, room_name, user);
            let mut out = Outbound::new(DataKind::Text, &self.out);
            self.deliver_room(room_name, &mut out, Some(user.clone()), cx);
        }
    }

    fn home_publish(&mut self, req: PublishReq, cx: &mut ChatCx<'_>) {
        if self.relay_up() {
            return self.relay_publish(req, cx);
        }
        self.local_publish(req, cx);
    }

    /// Orders and delivers a chat here (no relay, or Redis unreachable).
    fn local_publish(&mut self, req: PublishReq, cx: &mut ChatCx<'_>) {
        let unix_ms = cx.unix_ms();
        let Some(room) = self.rooms.get_mut(&req.room) else {
            // The sender's join reached this home before its message: cannot happen unless
            // the room expired under a member, which a member prevents.
            return self.reply_error(
                &req.reply,
                ErrorCode::NotInRoom,
                "not a member of the room",
                cx,
            );
        };
        let seq = room.next_seq();
        self.out.clear();
        wire::chat(
            &mut self.out,
            &req.room,
            &req.from,
            &req.content,
            seq,
            unix_ms,
        );
        let mut out = Outbound::new(DataKind::Text, &self.out);
        let frame = out.frame();
        room.history
            .push(seq, frame.slice(frame.len() - self.out.len()..));
        add(&self.stats.published, 1);
        self.deliver_room(&req.room, &mut out, None, cx);
        self.replay_later(&req.room, seq, |out| {
            wire::chat(out, &req.room, &req.from, &req.content, u64::MAX, unix_ms);
        });
        if let Some(id) = &req.reply.id {
            self.out.clear();
            wire::ack_seq(&mut self.out, &id.as_id(), seq);
            let json = self.out.clone();
            self.reply_json(&req.reply, json, cx);
        }
    }

    /// With the relay configured but Redis unreachable: a message this node just ordered
    /// alone (as `seq`) goes to the other nodes when Redis is back. `write` writes its JSON with
    /// the seq placeholder `u64::MAX` (Redis numbers it then).
    fn replay_later(&mut self, room: &Arc<str>, seq: u64, write: impl FnOnce(&mut Vec<u8>)) {
        if self.cluster.is_none() {
            return;
        }
        self.out.clear();
        write(&mut self.out);
        let json = std::mem::take(&mut self.out);
        self.relay_replay_later(room, &json, seq);
        self.out = json;
    }

    fn home_api_publish(&mut self, req: ApiPublishReq, cx: &mut ChatCx<'_>) {
        if self.relay_up() {
            return self.relay_api_publish(req, cx);
        }
        self.local_api_publish(req, cx);
    }

    fn local_api_publish(&mut self, req: ApiPublishReq, cx: &mut ChatCx<'_>) {
        let unix_ms = cx.unix_ms();
        let (delivered, seq) = match self.rooms.get_mut(&req.room) {
            // "0 for a room with no members; the room is not created."
            None => (0, 0),
            Some(room) => {
                let seq = room.next_seq();
                let delivered = u64::from(room.conn_count());
                self.out.clear();
                wire::notification(
                    &mut self.out,
                    &req.event_type,
                    &req.data,
                    &req.id,
                    unix_ms,
                    Some((&req.room, seq)),
                );
                let mut out = Outbound::new(DataKind::Text, &self.out);
                let frame = out.frame();
                room.history
                    .push(seq, frame.slice(frame.len() - self.out.len()..));
                add(&self.stats.published, 1);
                self.deliver_room(&req.room, &mut out, None, cx);
                self.replay_later(&req.room, seq, |out| {
                    let room = Some((&*req.room, u64::MAX));
                    wire::notification(out, &req.event_type, &req.data, &req.id, unix_ms, room);
                });
                (delivered, seq)
            }
        };
        let mut body = Vec::new();
        api::write_published(&mut body, delivered, seq);
        self.answer_http(req.http, Response::json(Status::OK, body), cx);
    }

    /// Sends a room's frame to every worker holding members (this one by a direct call).
    fn deliver_room(
        &mut self,
        room_name: &Arc<str>,
        out: &mut Outbound,
        except: Option<Arc<str>>,
        cx: &mut ChatCx<'_>,
    ) {
        let published = Instant::now();
        let Some(room) = self.rooms.get(room_name) else {
            return;
        };
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        targets.extend(room.workers());
        for &w in &targets {
            if w == self.me {
                self.local_deliver(room_name, out, except.as_deref(), published, cx);
            } else {
                cx.send_peer(
                    w,
                    PeerMsg::Chat(ChatMsg::Deliver {
                        room: room_name.clone(),
                        frame: out.frame().clone(),
                        except_user: except.clone(),
                        published,
                    }),
                );
            }
        }
        self.targets = targets;
    }

    // ---- the home of users -----------------------------------------------------------------

    fn home_private(&mut self, req: PrivateReq, cx: &mut ChatCx<'_>) {
        if self.relay_up() {
            return self.relay_private(req, cx);
        }
        self.local_private(req, cx);
    }

    /// A private message to the connections this node holds.
    fn local_private(&mut self, req: PrivateReq, cx: &mut ChatCx<'_>) {
        let devices = self.dir.devices(&req.to);
        if devices == 0 {
            return self.reply_error(
                &req.reply,
                ErrorCode::UserNotFound,
                "user is not connected",
                cx,
            );
        }
        let unix_ms = cx.unix_ms();
        self.out.clear();
        wire::private(&mut self.out, &req.from, &req.to, &req.content, unix_ms);
        let frame = Outbound::new(DataKind::Text, &self.out).frame().clone();
        self.deliver_user_everywhere(&req.to, &frame, None, cx);
        if req.from != req.to {
            let home = user_home(&req.from, self.workers);
            self.request(
                home,
                ChatMsg::SenderCopy {
                    user: req.from.clone(),
                    frame,
                    except: req.reply.to,
                },
                cx,
            );
        }
        if let Some(id) = &req.reply.id {
            self.out.clear();
            wire::ack_delivered(&mut self.out, &id.as_id(), devices);
            let json = self.out.clone();
            self.reply_json(&req.reply, json, cx);
        }
    }

    fn deliver_user_everywhere(
        &mut self,
        user: &Arc<str>,
        frame: &SharedFrame,
        except: Option<Addr>,
        cx: &mut ChatCx<'_>,
    ) {
        let places: Vec<usize> = self.dir.places(user).into_iter().map(|(w, _)| w).collect();
        for w in places {
            let except = except.filter(|a| a.worker == w).map(|a| a.conn);
            self.answer(
                w,
                ChatMsg::DeliverUser {
                    user: user.clone(),
                    frame: frame.clone(),
                    except,
                },
                cx,
            );
        }
    }

    // ---- this worker's connections ---------------------------------------------------------

    fn local_deliver(
        &mut self,
        room: &str,
        out: &mut Outbound,
        except: Option<&str>,
        published: Instant,
        cx: &mut ChatCx<'_>,
    ) {
        let except = except
            .and_then(|u| self.local.user_by_id(u))
            .map(|(k, _)| k);
        let Some(group) = self.local.members(room) else {
            return;
        };
        let mut delivered = 0;
        for i in 0..group.len() {
            let m = group.members()[i];
            if Some(m.user) != except && cx.send_shared(m.conn, out) == SendStatus::Queued {
                delivered += 1;
            }
        }
        add(&self.stats.deliveries, delivered);
        let micros = published.elapsed().as_micros().max(1) as u64;
        let _ = self.latency.record(micros.min(60_000_000));
    }

    fn local_deliver_user(
        &mut self,
        user: &str,
        out: &mut Outbound,
        except: Option<ConnId>,
        cx: &mut ChatCx<'_>,
    ) {
        let Some((_, u)) = self.local.user_by_id(user) else {
            return;
        };
        let mut delivered = 0;
        for &conn in &u.conns {
            if Some(conn) != except && cx.send_shared(conn, out) == SendStatus::Queued {
                delivered += 1;
            }
        }
        add(&self.stats.deliveries, delivered);
    }

    /// Removes a local member, fixing the slot of the member moved into its place.
    fn local_leave(&mut self, room: &Arc<str>, slot: crate::hub::Slot, cx: &mut ChatCx<'_>) {
        if let Some(moved) = self.local.leave(room, slot) {
            // Never the connection whose state is lent out: that one just left.
            if let Some(ConnState::Chat(c)) = cx.state(moved.conn) {
                if let Some(j) = c.rooms.iter_mut().find(|j| &j.room == room) {
                    j.slot = Some(slot);
                }
            }
        }
    }

    fn start_gather(&mut self, purpose: Purpose, cx: &mut ChatCx<'_>) {
        if self.relay_up() {
            return self.relay_rooms(match purpose {
                Purpose::RoomList { conn, id } => cluster::RoomsFor::Conn(conn, id),
                Purpose::ApiRooms { conn } => cluster::RoomsFor::Api(conn),
            });
        }
        self.start_local_gather(purpose, cx);
    }

    /// The rooms with members on this node, from every worker.
    fn start_local_gather(&mut self, purpose: Purpose, cx: &mut ChatCx<'_>) {
        let gather = self.next_gather;
        self.next_gather += 1;
        self.gathers.insert(
            gather,
            Gather {
                remaining: self.workers,
                rooms: Vec::new(),
                purpose,
            },
        );
        for w in 0..self.workers {
            self.request(
                w,
                ChatMsg::RoomsPart {
                    worker: self.me,
                    gather,
                },
                cx,
            );
        }
    }

    fn gather_part(&mut self, gather: u64, mut rooms: Vec<(Arc<str>, u32)>, cx: &mut ChatCx<'_>) {
        let Some(g) = self.gathers.get_mut(&gather) else {
            return;
        };
        g.rooms.append(&mut rooms);
        g.remaining -= 1;
        if g.remaining > 0 {
            return;
        }
        let Some(mut g) = self.gathers.remove(&gather) else {
            return;
        };
        g.rooms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        match g.purpose {
            Purpose::RoomList { conn, id } => {
                let Some(ConnState::Chat(c)) = cx.state(conn) else {
                    return;
                };
                self.out.clear();
                wire::room_list(
                    &mut self.out,
                    g.rooms.iter().map(|(room, users)| RoomInfo {
                        room,
                        members: u64::from(*users),
                        joined: c.room(room).is_some(),
                    }),
                );
                self.send_out(conn, cx);
                if let Some(id) = id {
                    self.out.clear();
                    wire::ack(&mut self.out, &id.as_id());
                    self.send_out(conn, cx);
                }
            }
            Purpose::ApiRooms { conn } => {
                let mut body = Vec::new();
                api::write_rooms(
                    &mut body,
                    g.rooms.iter().map(|(r, n)| (&**r, u64::from(*n))),
                );
                cx.respond(conn, &Response::json(Status::OK, body));
            }
        }
    }

    // ---- the HTTP API ----------------------------------------------------------------------

    /// `POST /api/publish` (answered later through `http`).
    pub fn api_publish(&mut self, p: api::Publish, http: ConnId, cx: &mut ChatCx<'_>) {
        let id = match p.id {
            Some(id) => id.into_boxed_str(),
            None => self.event_id(),
        };
        let req = ApiPublishReq {
            room: p.room.as_str().into(),
            event_type: p.event_type.into_boxed_str(),
            data: p.data,
            id,
            http: Addr {
                worker: self.me,
                conn: http,
            },
        };
        self.request(
            home_of(&p.room, self.workers),
            ChatMsg::ApiPublish(Box::new(req)),
            cx,
        );
    }

    /// `POST /api/notify`.
    pub fn api_notify(&mut self, n: api::Notify, http: ConnId, cx: &mut ChatCx<'_>) {
        let unix_ms = cx.unix_ms();
        let id = self.event_id();
        self.out.clear();
        wire::notification(&mut self.out, &n.event_type, &n.data, &id, unix_ms, None);
        let frame = Outbound::new(DataKind::Text, &self.out).frame().clone();
        let msg = ChatMsg::Notify {
            user: n.user.as_str().into(),
            store: n.store,
            frame,
            http: Addr {
                worker: self.me,
                conn: http,
            },
        };
        self.request(user_home(&n.user, self.workers), msg, cx);
    }

    /// `POST /api/disconnect`.
    pub fn api_disconnect(&mut self, d: api::Disconnect, http: ConnId, cx: &mut ChatCx<'_>) {
        let msg = ChatMsg::Disconnect {
            user: d.user.as_str().into(),
            http: Addr {
                worker: self.me,
                conn: http,
            },
        };
        self.request(user_home(&d.user, self.workers), msg, cx);
    }

    /// `GET /api/rooms`.
    pub fn api_rooms(&mut self, http: ConnId, cx: &mut ChatCx<'_>) {
        self.start_gather(Purpose::ApiRooms { conn: http }, cx);
    }

    /// `GET /api/rooms/{room}/users`.
    pub fn api_room_users(&mut self, room: &str, http: ConnId, cx: &mut ChatCx<'_>) {
        let msg = ChatMsg::ApiRoomUsers {
            room: room.into(),
            http: Addr {
                worker: self.me,
                conn: http,
            },
        };
        self.request(home_of(room, self.workers), msg, cx);
    }

    /// A unique event id: start time, worker, counter.
    fn event_id(&mut self) -> Box<str> {
        self.next_event += 1;
        format!(
            "evt-{:x}-{}-{}",
            self.shared().started_unix_ms,
            self.me,
            self.next_event
        )
        .into_boxed_str()
    }

    // ---- plumbing --------------------------------------------------------------------------

    fn reply(&self, conn: ConnId, id: Option<OwnedId>) -> Reply {
        Reply {
            to: Addr {
                worker: self.me,
                conn,
            },
            id,
        }
    }

    /// A request to a home: always a message (queued for this worker), see the module doc.
    fn request(&mut self, worker: usize, msg: ChatMsg, cx: &mut ChatCx<'_>) {
        cx.send_peer(worker, PeerMsg::Chat(msg));
    }

    /// A reply or delivery from a home: a direct call when it is for this worker.
    fn answer(&mut self, worker: usize, msg: ChatMsg, cx: &mut ChatCx<'_>) {
        if worker == self.me {
            self.on_peer(msg, cx);
        } else {
            cx.send_peer(worker, PeerMsg::Chat(msg));
        }
    }

    /// The answer to a deferred HTTP request, to the worker that holds it.
    fn answer_http(&mut self, http: Addr, response: Response, cx: &mut ChatCx<'_>) {
        self.answer(
            http.worker,
            ChatMsg::Http {
                conn: http.conn,
                response,
            },
            cx,
        );
    }

    fn reply_json(&mut self, reply: &Reply, json: Vec<u8>, cx: &mut ChatCx<'_>) {
        self.answer(
            reply.to.worker,
            ChatMsg::ToConn {
                conn: reply.to.conn,
                json,
            },
            cx,
        );
    }

    fn reply_ack(&mut self, reply: &Reply, cx: &mut ChatCx<'_>) {
        if let Some(id) = &reply.id {
            let mut json = Vec::new();
            wire::ack(&mut json, &id.as_id());
            self.reply_json(reply, json, cx);
        }
    }

    fn reply_error(&mut self, reply: &Reply, code: ErrorCode, text: &str, cx: &mut ChatCx<'_>) {
        let mut json = Vec::new();
        wire::error(
            &mut json,
            code,
            text,
            reply.id.as_ref().map(OwnedId::as_id).as_ref(),
        );
        self.reply_json(reply, json, cx);
    }

    fn send_out(&mut self, conn: ConnId, cx: &mut ChatCx<'_>) {
        let _ = cx.send(conn, DataKind::Text, &self.out);
    }

    fn ack(&mut self, conn: ConnId, id: Option<&Id<'_>>, cx: &mut ChatCx<'_>) {
        if let Some(id) = id {
            self.out.clear();
            wire::ack(&mut self.out, id);
            self.send_out(conn, cx);
        }
    }

    fn error(
        &mut self,
        conn: ConnId,
        code: ErrorCode,
        text: &str,
        id: Option<&Id<'_>>,
        cx: &mut ChatCx<'_>,
    ) {
        self.out.clear();
        wire::error(&mut self.out, code, text, id);
        self.send_out(conn, cx);
    }

    fn not_in_room(&mut self, conn: ConnId, id: Option<&Id<'_>>, cx: &mut ChatCx<'_>) {
        self.error(
            conn,
            ErrorCode::NotInRoom,
            "not a member of the room",
            id,
            cx,
        );
    }
}

/// A frame from another worker (made by `Outbound::new` there).
fn outbound(frame: SharedFrame) -> Outbound {
    Outbound::from_frame(frame).unwrap_or_else(|| Outbound::new(DataKind::Text, b"{}"))
}

/// `{"error":"…"}` with `status`.
pub fn json_error(status: Status, reason: &str) -> Response {
    let mut body = Vec::new();
    api::write_error(&mut body, reason);
    Response::json(status, body)
}
