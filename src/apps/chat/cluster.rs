//! The chat service when nodes are joined by Redis (`--redis-url`): what a worker does
//! differently when a room's order, its history and its members live in Redis.
//!
//! - **Order.** A room's home (on every node) sends a message to Redis as one Lua script
//!   (`lua/publish.lua`): the next `seq`, the capped history list and the publish on the room's
//!   channel, atomically. Every node subscribed to the channel gets the messages in seq order;
//!   the room's home on each node delivers them to its local members, holding back a gap and
//!   filling it from the history list (`lua/range.lua`) rather than delivering out of order.
//!   The sender's ack waits until its own message has come back and been delivered, so its copy
//!   still comes first.
//! - **Members.** A node subscribes to a room's channel while it has members of the room, to a
//!   user's channel while it holds a connection of the user. Joins and leaves of a user's first
//!   and last connection on a node update the cluster's counts (`lua/join.lua`, `leave.lua`),
//!   which publish presence notices for the user's first/last node; every connection updates
//!   the user's device count (`conn.lua`). Each node beats every 2 s (`heartbeat.lua`); a node
//!   silent for 3 beats is taken out of every count by the others.
//! - **Users.** Private messages, notifications and disconnects are one script each
//!   (`deliver.lua`): it counts the user's connections everywhere and publishes on the user's
//!   channel (a notification for a user with none is stored when asked: `inbox.lua` hands it to
//!   the next connection, once). The origin node delivers to its own connections itself and
//!   skips its own envelopes.
//! - **Outages.** While Redis is down a home orders its rooms itself again (continuing their
//!   seq); publishes wait in the relay's bounded backlog and go out when it is back, lists are
//!   this node's own. When Redis is back every room is synced again and a seq is never reused
//!   backwards (`lua/bump.lua` raises Redis' counter to the local one).
//!
//! Owns the relay-mode behaviour of `Chat`; the relay thread (`crate::relay`) owns the Redis
//! connections, and `home.rs` / `local.rs` stay the same in both modes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;

use super::msg::{
    home_of, user_home, Addr, ApiPublishReq, ChatMsg, JoinReq, PrivateReq, PublishReq, Reply,
};
use super::{Chat, ChatCx, GENERAL};
use crate::chat::command::OwnedId;
use crate::chat::error::ErrorCode;
use crate::chat::wire::{self, RoomInfo};
use crate::chat::{api, json};
use crate::http::{Response, Status};
use crate::reactor::{ConnId, Millis, Outbound};
use crate::relay::envelope::{Envelope, Target};
use crate::relay::resp::{Command, Reply as Resp};
use crate::relay::{ClientId, RelayCmd, RelayEvent, RelayHandle, Script};
use crate::ws::DataKind;

/// The chat's name as a relay client (the gateway's is [`crate::apps::gateway::msg::RELAY_CLIENT`]):
/// the relay's sink hands the replies to its commands to the chat.
pub const RELAY_CLIENT: ClientId = ClientId(0);

/// Heartbeat period, ms; a node silent for 3 of them is dead.
const BEAT_MS: Millis = 2_000;
/// A placeholder seq the JSON is written with, then split around (never a real seq).
const SEQ_MARK: u64 = u64::MAX;

/// The scripts, loaded by the relay on every connect.
#[allow(missing_docs)]
pub struct Scripts {
    pub publish: Script,
    pub join: Script,
    pub leave: Script,
    pub range: Script,
    pub conn: Script,
    pub deliver: Script,
    pub inbox: Script,
    pub heartbeat: Script,
    pub bump: Script,
    pub rooms: Script,
    /// The gateway's offline store (`apps/gateway/lua/store.lua`).
    pub gateway_store: Script,
}

impl Scripts {
    /// Every script of the chat service and the gateway's offline store.
    pub fn new() -> Self {
        Self {
            publish: Script::new(include_str!("lua/publish.lua")),
            join: Script::new(include_str!("lua/join.lua")),
            leave: Script::new(include_str!("lua/leave.lua")),
            range: Script::new(include_str!("lua/range.lua")),
            conn: Script::new(include_str!("lua/conn.lua")),
            deliver: Script::new(include_str!("lua/deliver.lua")),
            inbox: Script::new(include_str!("lua/inbox.lua")),
            heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
            bump: Script::new(include_str!("lua/bump.lua")),
            rooms: Script::new(include_str!("lua/rooms.lua")),
            gateway_store: Script::new(include_str!("../gateway/lua/store.lua")),
        }
    }

    /// All of them, for the relay to load.
    pub fn all(&self) -> Vec<Script> {
        vec![
            self.publish.clone(),
            self.join.clone(),
            self.leave.clone(),
            self.range.clone(),
            self.conn.clone(),
            self.deliver.clone(),
            self.inbox.clone(),
            self.heartbeat.clone(),
            self.bump.clone(),
            self.rooms.clone(),
            self.gateway_store.clone(),
        ]
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

/// The worker that handles messages of `channel` on this node (`PREFIX:room:R` → R's home,
/// `PREFIX:user:U` → U's home).
pub fn route(prefix: &str, workers: usize, channel: &[u8]) -> usize {
    let rest = channel
        .strip_prefix(prefix.as_bytes())
        .and_then(|r| r.strip_prefix(b":"))
        .unwrap_or(b"");
    let text = std::str::from_utf8(rest).unwrap_or("");
    if let Some(room) = text.strip_prefix("room:") {
        home_of(room, workers)
    } else if let Some(user) = text.strip_prefix("user:") {
        user_home(user, workers)
    } else {
        0
    }
}

/// A room's relay state at its home on this node.
#[derive(Debug, Default)]
pub struct RoomRelay {
    sub: Sub,
    /// The last seq delivered here (`None` until the room is synced with Redis).
    last: Option<u64>,
    /// Messages that came ahead of a gap (or before the sync), by seq; `true`: this node's own
    /// replayed message, already delivered here during the outage (order only).
    held: BTreeMap<u64, (Bytes, bool)>,
    /// A range fetch is on its way.
    fetching: bool,
    /// Acks waiting for their message to be delivered here: (seq, who).
    acks: Vec<(u64, Reply)>,
    /// Joins waiting for the subscription: (request, register).
    waiting: Vec<(JoinReq, bool)>,
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
enum Sub {
    #[default]
    No,
    /// SUBSCRIBE sent; joins wait.
    Pending,
    Yes,
}

/// What a relay reply (or confirmation) is for.
enum Pending {
    Subscribed(Arc<str>),
    UserSubscribed(Arc<str>),
    Join(Box<JoinReq>),
    Publish(Box<PublishReq>, u64),
    ApiPublish(Box<ApiPublishReq>),
    Range(Arc<str>),
    Bump(Arc<str>),
    Private(Box<PrivateReq>, Bytes),
    Notify {
        user: Arc<str>,
        frame: Bytes,
        http: Addr,
        store: bool,
    },
    Disconnect {
        user: Arc<str>,
        http: Addr,
    },
    Rooms(RoomsFor),
    RoomUsers(Arc<str>, Addr),
    UserList(Arc<str>, Reply),
    History(Arc<str>, u32, Reply),
    Inbox(ConnId),
    /// A registration sent again after an outage: nothing to answer.
    Registered,
    /// Where a room is (its seq), for a subscription made without a join.
    Sync(Arc<str>),
}

/// Who asked for the cluster's rooms.
pub enum RoomsFor {
    /// `room.list` of a connection (with its command id).
    Conn(ConnId, Option<OwnedId>),
    /// `GET /api/rooms`.
    Api(ConnId),
}

/// One worker's relay side.
pub struct Cluster {
    relay: RelayHandle,
    prefix: String,
    scripts: Arc<Scripts>,
    /// Redis reachable, as far as this worker was told.
    up: bool,
    next_token: u64,
    pending: HashMap<u64, Pending>,
    /// Rooms homed here with their relay state.
    rooms: HashMap<Arc<str>, RoomRelay>,
    /// Users homed here whose channel this node subscribes to.
    users: HashMap<Arc<str>, bool>,
    cmd: Vec<u8>,
    next_beat: Millis,
    /// Commands were queued for the relay thread since it was last woken.
    wake_relay: bool,
    inbox_max: usize,
    inbox_ttl_s: u64,
    room_ttl_s: u64,
    presence_max: usize,
    history: usize,
}

impl Cluster {
    /// For one worker.
    pub fn new(
        relay: RelayHandle,
        prefix: String,
        scripts: Arc<Scripts>,
        cfg: &crate::config::Config,
    ) -> Self {
        Self {
            relay,
            prefix,
            scripts,
            up: false,
            next_token: 1,
            pending: HashMap::new(),
            rooms: HashMap::new(),
            users: HashMap::new(),
            cmd: Vec::new(),
            next_beat: 0,
            wake_relay: false,
            inbox_max: cfg.inbox_max,
            inbox_ttl_s: cfg.inbox_ttl.as_secs().max(1),
            room_ttl_s: cfg.room_ttl.as_secs().max(1),
            presence_max: cfg.presence_max_members,
            history: cfg.history,
        }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    fn node(&self) -> &str {
        &self.relay.node_id
    }

    /// The live nodes (node → last beat, ms): written by every beat and by every script
    /// that registers something of this node, so that a node killed before its first beat
    /// is still found dead by the others.
    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    fn token(&mut self, pending: Pending) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(token, pending);
        token
    }

    /// Sends `self.cmd` for a reply to `pending`.
    fn ask(&mut self, worker: usize, pending: Pending, backlog: bool) {
        let token = self.token(pending);
        let cmd = std::mem::take(&mut self.cmd);
        self.send(RelayCmd::Command {
            cmd,
            worker,
            client: RELAY_CLIENT,
            token,
            backlog,
        });
    }

    /// Hands `cmd` to the relay thread, woken once per worker iteration ([`Cluster::wake`]).
    fn send(&mut self, cmd: RelayCmd) {
        self.relay.send_later(cmd);
        self.wake_relay = true;
    }

    /// Wakes the relay thread if this worker handed it something since the last call.
    pub(super) fn wake(&mut self) {
        if std::mem::take(&mut self.wake_relay) {
            self.relay.wake();
        }
    }

    /// `join.lua` for `user` in `room` into `self.cmd`: registers the membership when
    /// `register`, announces it when the room has at most `presence_max` users, and returns
    /// the history after `since` (-1: none).
    fn join_command(
        &mut self,
        room: &str,
        user: &str,
        presence_max: usize,
        register: bool,
        since: i64,
    ) {
        let mut presence = self.head(Target::Presence {
            room,
            user: user.into(),
        });
        wire::presence_join(&mut presence, room, user);
        let member = format!("{room}\n{user}");
        let keys = [
            self.key("members", room),
            format!("{}:rooms", self.prefix),
            format!("{}:node:{}:rm", self.prefix, self.node()),
            self.key("seq", room),
            self.key("hist", room),
            self.nodes_key(),
        ];
        let channel = self.key("room", room);
        let (max, since) = (presence_max.to_string(), since.to_string());
        let sha = self.scripts.join.sha.clone();
        let node = self.node().to_owned();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.eval(
            &sha,
            &keys,
            &[
                room.as_bytes(),
                user.as_bytes(),
                member.as_bytes(),
                max.as_bytes(),
                channel.as_bytes(),
                &presence,
                if register { b"1" } else { b"0" },
                since.as_bytes(),
                node.as_bytes(),
            ],
        );
    }

    /// Sends `self.cmd`; nobody waits for the reply.
    fn tell(&mut self, backlog: bool) {
        let cmd = std::mem::take(&mut self.cmd);
        self.send(RelayCmd::Quiet { cmd, backlog });
    }

    fn head(&self, target: Target<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let env = Envelope {
            origin: self.node(),
            target,
            payload: b"",
        };
        // Names were validated on the way in; a failure would only drop a notice.
        let _ = env.write_header(&mut out);
        out
    }

    /// `EVALSHA sha n keys... args...` into `self.cmd`.
    fn eval(&mut self, sha: &str, keys: &[&str], args: &[&[u8]]) {
        crate::relay::resp::evalsha(&mut self.cmd, sha, keys, args);
    }

    /// The publish script's EVALSHA for `json` (written with [`SEQ_MARK`]) into `self.cmd`;
    /// `replay`: announced as this node's own replay. False when the JSON has no seq.
    fn publish_command(
        &mut self,
        room: &str,
        json: &[u8],
        must_exist: bool,
        replay: Option<u64>,
    ) -> bool {
        let Some((before, after)) = split_at_seq(json) else {
            return false;
        };
        let target = if replay.is_some() {
            Target::Replay { room, seq: 1 }
        } else {
            Target::Room { room, seq: 1 }
        };
        let floor = replay.unwrap_or(0).to_string();
        let mut head = self.head(target);
        // The header ends with the seq ("... ROOM 1\n"): the script writes the real one.
        head.truncate(head.len().saturating_sub(2));
        let keys = [self.key("seq", room), self.key("hist", room)];
        let channel = self.key("room", room);
        let cap = self.history.to_string();
        let sha = self.scripts.publish.sha.clone();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let flag: &[u8] = if must_exist { b"1" } else { b"0" };
        self.eval(
            &sha,
            &keys,
            &[
                channel.as_bytes(),
                before,
                after,
                cap.as_bytes(),
                &head,
                flag,
                floor.as_bytes(),
            ],
        );
        true
    }

    fn publish_plain(&mut self, channel: &str, payload: &[u8]) {
        let mut c = Command::new(&mut self.cmd, "PUBLISH");
        c.arg(channel).arg(payload);
        c.finish();
        self.tell(false);
    }
}

/// A JSON message split around its seq (written with [`SEQ_MARK`]).
fn split_at_seq(json: &[u8]) -> Option<(&[u8], &[u8])> {
    let mark = format!("\"seq\":{SEQ_MARK}");
    let at = json
        .windows(mark.len())
        .position(|w| w == mark.as_bytes())?;
    let head = at + "\"seq\":".len();
    Some((&json[..head], &json[at + mark.len()..]))
}

fn items(r: &Resp) -> &[Resp] {
    r.as_array().unwrap_or(&[])
}

fn int(r: Option<&Resp>) -> u64 {
    r.and_then(Resp::as_i64).map_or(0, |n| n.max(0) as u64)
}

/// The JSON of every envelope in a history list reply (a malformed one is left out).
fn payloads(r: Option<&Resp>) -> Vec<Vec<u8>> {
    r.map(items)
        .unwrap_or(&[])
        .iter()
        .filter_map(Resp::as_bytes)
        .filter_map(|b| Envelope::parse(b).ok().map(|e| e.payload.to_vec()))
        .collect()
}

fn strings(r: Option<&Resp>) -> Vec<String> {
    r.map(items)
        .unwrap_or(&[])
        .iter()
        .filter_map(Resp::as_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

impl Chat {
    /// True when Redis orders the rooms (configured and reachable).
    pub(super) fn relay_up(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.up)
    }

    // ---- rooms ------------------------------------------------------------------------------

    /// A join at the room's home while the relay is up: once this node is subscribed to the
    /// room's channel, one script registers the member (`register`: the user's first
    /// connection in the room on this node) and answers with the seq, users and history.
    pub(super) fn relay_join(&mut self, req: JoinReq, register: bool, cx: &mut ChatCx<'_>) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let rr = cl.rooms.entry(req.room.clone()).or_default();
        match rr.sub {
            Sub::Yes => self.relay_join_script(req, register, cx),
            Sub::Pending => rr.waiting.push((req, register)),
            Sub::No => {
                rr.sub = Sub::Pending;
                let room = req.room.clone();
                rr.waiting.push((req, register));
                let channel = cl.key("room", &room).into_bytes();
                let token = cl.token(Pending::Subscribed(room));
                cl.send(RelayCmd::Subscribe {
                    channel,
                    worker: me,
                    token,
                });
            }
        }
    }

    fn relay_join_script(&mut self, req: JoinReq, register: bool, _cx: &mut ChatCx<'_>) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let since = req.since.map_or(-1, |s| s.min(i64::MAX as u64) as i64);
        let max = cl.presence_max;
        cl.join_command(&req.room, &req.user, max, register, since);
        cl.ask(me, Pending::Join(Box::new(req)), false);
    }

    fn relay_join_done(&mut self, req: JoinReq, reply: &Resp, cx: &mut ChatCx<'_>) {
        let parts = items(reply);
        let seq = int(parts.first());
        let mut users = strings(parts.get(1));
        users.sort_unstable();
        let first = int(parts.get(2));
        let mut replies = Vec::new();
        if let Some(since) = req.since {
            let messages = payloads(parts.get(3));
            let complete = since <= seq && (since == seq || first <= since + 1);
            let mut json = Vec::new();
            wire::history(&mut json, &req.room, &messages, complete);
            replies.push(json);
        }
        if !req.on_connect {
            let mut json = Vec::new();
            wire::user_list(&mut json, &req.room, &users);
            replies.push(json);
        }
        if let Some(id) = &req.reply.id {
            let mut json = Vec::new();
            wire::ack(&mut json, &id.as_id());
            replies.push(json);
        }
        // The first answer since the subscription tells where the room is: anything held with a
        // seq above it is delivered after the joiner is a member.
        let newly_synced = self
            .cluster
            .as_mut()
            .and_then(|cl| cl.rooms.get_mut(&req.room))
            .is_some_and(|rr| {
                if rr.last.is_none() {
                    rr.last = Some(seq);
                    true
                } else {
                    false
                }
            });
        if let Some(room) = self.rooms.get_mut(&req.room) {
            room.seq = room.seq.max(seq);
        }
        // A join on connect is answered too: the room list after `welcome` waits for it.
        let to = req.reply.to;
        self.answer(
            to.worker,
            ChatMsg::JoinDone {
                room: req.room.clone(),
                conn: to.conn,
                replies,
                welcome: req.on_connect,
            },
            cx,
        );
        if newly_synced {
            self.relay_drain_held(&req.room, cx);
        }
    }

    /// The user's last connection on this node left the room (`user_gone`); the room's last
    /// member on this node left it (`room_empty`).
    pub(super) fn relay_leave(
        &mut self,
        room: &Arc<str>,
        user: &str,
        user_gone: bool,
        room_empty: bool,
    ) {
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        if user_gone {
            let mut presence = cl.head(Target::Presence {
                room,
                user: user.into(),
            });
            wire::presence_leave(&mut presence, room, user);
            let member = format!("{room}\n{user}");
            let ttl = if &**room == GENERAL { 0 } else { cl.room_ttl_s }.to_string();
            let keys = [
                cl.key("members", room),
                format!("{}:rooms", cl.prefix),
                format!("{}:node:{}:rm", cl.prefix, cl.node()),
                cl.key("seq", room),
                cl.key("hist", room),
            ];
            let channel = cl.key("room", room);
            let max = cl.presence_max.to_string();
            let sha = cl.scripts.leave.sha.clone();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            cl.eval(
                &sha,
                &keys,
                &[
                    room.as_bytes(),
                    user.as_bytes(),
                    member.as_bytes(),
                    max.as_bytes(),
                    channel.as_bytes(),
                    &presence,
                    ttl.as_bytes(),
                ],
            );
            cl.tell(true);
        }
        if room_empty {
            if let Some(rr) = cl.rooms.remove(room) {
                if rr.sub != Sub::No {
                    let channel = cl.key("room", room).into_bytes();
                    cl.send(RelayCmd::Unsubscribe { channel });
                }
            }
        }
    }

    // ---- room messages ----------------------------------------------------------------------

    /// A chat at the room's home while the relay is up: sequenced by Redis. The ack waits for
    /// the message to come back.
    pub(super) fn relay_publish(&mut self, req: PublishReq, cx: &mut ChatCx<'_>) {
        let unix_ms = cx.unix_ms();
        self.out.clear();
        wire::chat(
            &mut self.out,
            &req.room,
            &req.from,
            &req.content,
            SEQ_MARK,
            unix_ms,
        );
        let json = std::mem::take(&mut self.out);
        self.relay_sequence(
            &req.room.clone(),
            &json,
            false,
            Pending::Publish(Box::new(req), unix_ms),
        );
        self.out = json;
    }

    /// `POST /api/publish` while the relay is up.
    pub(super) fn relay_api_publish(&mut self, req: ApiPublishReq, cx: &mut ChatCx<'_>) {
        let unix_ms = cx.unix_ms();
        self.out.clear();
        wire::notification(
            &mut self.out,
            &req.event_type,
            &req.data,
            &req.id,
            unix_ms,
            Some((&req.room, SEQ_MARK)),
        );
        let json = std::mem::take(&mut self.out);
        let must_exist = &*req.room != GENERAL;
        self.relay_sequence(
            &req.room.clone(),
            &json,
            must_exist,
            Pending::ApiPublish(Box::new(req)),
        );
        self.out = json;
    }

    fn relay_sequence(&mut self, room: &Arc<str>, json: &[u8], must_exist: bool, pending: Pending) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        if cl.publish_command(room, json, must_exist, None) {
            // Kept through an outage (sent when Redis is back) rather than failed: the sender
            // gets its ack once the message is out.
            cl.ask(me, pending, true);
            cl.relay.shared.stats.published.fetch_add(1, Relaxed);
        }
    }

    /// A message this node delivered on its own while Redis was unreachable: sent to Redis
    /// when it is back (through the relay's backlog), for the other nodes.
    pub(super) fn relay_replay_later(&mut self, room: &Arc<str>, json: &[u8], local_seq: u64) {
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        if cl.publish_command(room, json, false, Some(local_seq)) {
            cl.tell(true);
        }
    }

    /// The seq Redis gave a chat: ack once delivered here.
    fn relay_published(
        &mut self,
        req: PublishReq,
        reply: Result<Resp, ()>,
        unix_ms: u64,
        cx: &mut ChatCx<'_>,
    ) {
        match reply.ok().and_then(|r| r.as_i64()) {
            Some(seq) => {
                let seq = seq.max(0) as u64;
                let Some(id) = req.reply.id.clone() else {
                    return;
                };
                let delivered = self
                    .cluster
                    .as_ref()
                    .and_then(|cl| cl.rooms.get(&req.room))
                    .and_then(|rr| rr.last)
                    .is_some_and(|last| last >= seq);
                if delivered {
                    self.ack_seq(&req.reply, &id, seq, cx);
                } else if let Some(rr) = self
                    .cluster
                    .as_mut()
                    .and_then(|cl| cl.rooms.get_mut(&req.room))
                {
                    rr.acks.push((seq, req.reply));
                }
            }
            // Redis failed before answering: the message may or may not be out there. It is
            // ordered here instead (and acked), so the sender is never left without an answer;
            // at worst a member elsewhere sees it twice with two seqs.
            None => {
                let _ = unix_ms;
                self.local_publish(req, cx);
            }
        }
    }

    fn ack_seq(&mut self, reply: &Reply, id: &OwnedId, seq: u64, cx: &mut ChatCx<'_>) {
        let mut json = Vec::new();
        wire::ack_seq(&mut json, &id.as_id(), seq);
        self.reply_json(reply, json, cx);
    }

    /// A message on a room channel.
    fn relay_room_message(&mut self, env: &Envelope<'_>, cx: &mut ChatCx<'_>) {
        let own = self
            .cluster
            .as_ref()
            .is_some_and(|c| c.node() == env.origin);
        match &env.target {
            Target::Room { room, seq } | Target::Replay { room, seq } => {
                // A replay of this node's own message was delivered here during the outage.
                let skip = own && matches!(env.target, Target::Replay { .. });
                let room: Arc<str> = (*room).into();
                let json = Bytes::copy_from_slice(env.payload);
                let Some(rr) = self.cluster.as_mut().and_then(|cl| cl.rooms.get_mut(&room)) else {
                    return; // not subscribed (any more)
                };
                match rr.last {
                    Some(last) if *seq <= last => {} // seen (a gap fill raced the live copy)
                    Some(last) if *seq == last + 1 && rr.held.is_empty() => {
                        rr.last = Some(*seq);
                        self.relay_deliver(&room, *seq, json, skip, cx);
                    }
                    _ => {
                        rr.held.insert(*seq, (json, skip));
                        self.relay_drain_held(&room, cx);
                    }
                }
            }
            Target::Presence { room, user } if self.rooms.get(room).is_some() => {
                let room: Arc<str> = (*room).into();
                let mut out = Outbound::new(DataKind::Text, env.payload);
                self.deliver_room(&room, &mut out, Some(user.as_ref().into()), cx);
            }
            _ => {}
        }
    }

    /// Delivers held messages that are next in order; asks for a missing range once.
    fn relay_drain_held(&mut self, room: &Arc<str>, cx: &mut ChatCx<'_>) {
        loop {
            let Some(rr) = self.cluster.as_mut().and_then(|cl| cl.rooms.get_mut(room)) else {
                return;
            };
            let Some(last) = rr.last else {
                return; // not synced yet: the join's answer tells where the room is
            };
            while rr.held.first_key_value().is_some_and(|(&s, _)| s <= last) {
                rr.held.pop_first();
            }
            match rr.held.first_key_value() {
                Some((&s, _)) if s == last + 1 => {
                    let Some((s, (json, skip))) = rr.held.pop_first() else {
                        return;
                    };
                    rr.last = Some(s);
                    self.relay_deliver(room, s, json, skip, cx);
                }
                Some(_) if !rr.fetching => {
                    rr.fetching = true;
                    self.relay_fetch(room, last + 1);
                    return;
                }
                _ => return,
            }
        }
    }

    fn relay_fetch(&mut self, room: &Arc<str>, from: u64) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let keys = [cl.key("seq", room), cl.key("hist", room)];
        let sha = cl.scripts.range.sha.clone();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        cl.eval(&sha, &keys, &[from.to_string().as_bytes(), b"0"]);
        cl.ask(me, Pending::Range(room.clone()), false);
    }

    /// A gap fill arrived: what is still kept is delivered in order; what is gone is skipped.
    fn relay_range(&mut self, room: &Arc<str>, reply: Result<Resp, ()>, cx: &mut ChatCx<'_>) {
        let node = self.cluster.as_ref().map(|c| c.relay.node_id.clone());
        let Some(rr) = self.cluster.as_mut().and_then(|cl| cl.rooms.get_mut(room)) else {
            return;
        };
        rr.fetching = false;
        let Ok(reply) = reply else {
            return; // Redis went away: the resync after it comes back fills the gap
        };
        let parts = items(&reply);
        for m in parts.get(2).map(items).unwrap_or(&[]) {
            let Some(env) = m.as_bytes().and_then(|b| Envelope::parse(b).ok()) else {
                continue;
            };
            let (seq, replay) = match env.target {
                Target::Room { seq, .. } => (seq, false),
                Target::Replay { seq, .. } => (seq, true),
                _ => continue,
            };
            let skip = replay && node.as_deref() == Some(env.origin);
            rr.held
                .entry(seq)
                .or_insert_with(|| (Bytes::copy_from_slice(env.payload), skip));
        }
        // Messages no longer kept cannot be delivered: go on after them.
        if let (Some(last), Some((&first, _))) = (rr.last, rr.held.first_key_value()) {
            if first > last + 1 {
                rr.last = Some(first - 1);
            }
        }
        self.relay_drain_held(room, cx);
    }

    /// Delivers message `seq` of a room to this node's members; acks the senders waiting for
    /// it. Keeps the local history in step (for an outage).
    fn relay_deliver(
        &mut self,
        room: &Arc<str>,
        seq: u64,
        json: Bytes,
        skip: bool,
        cx: &mut ChatCx<'_>,
    ) {
        let mut out = Outbound::new(DataKind::Text, &json);
        if let Some(r) = self.rooms.get_mut(room) {
            r.seq = r.seq.max(seq);
            if !skip {
                let frame = out.frame();
                r.history.push(seq, frame.slice(frame.len() - json.len()..));
            }
        }
        if !skip {
            self.deliver_room(room, &mut out, None, cx);
        }
        let acks: Vec<(u64, Reply)> =
            match self.cluster.as_mut().and_then(|cl| cl.rooms.get_mut(room)) {
                Some(rr) => {
                    let (ready, later): (Vec<_>, Vec<_>) =
                        rr.acks.drain(..).partition(|(s, _)| *s <= seq);
                    rr.acks = later;
                    ready
                }
                None => Vec::new(),
            };
        for (s, reply) in acks {
            if let Some(id) = reply.id.clone() {
                self.ack_seq(&reply, &id, s, cx);
            }
        }
    }

    fn relay_api_published(
        &mut self,
        req: ApiPublishReq,
        reply: Result<Resp, ()>,
        cx: &mut ChatCx<'_>,
    ) {
        match reply.ok().and_then(|r| r.as_i64()) {
            Some(seq) => {
                let mut body = Vec::new();
                // "N = connections queued on this node": the room's home here knows them. A
                // room that exists nowhere is not created (-1 from the script): seq 0.
                let delivered = self
                    .rooms
                    .get(&req.room)
                    .map_or(0, |r| u64::from(r.conn_count()));
                let seq = if seq < 0 { 0 } else { seq as u64 };
                api::write_published(&mut body, if seq == 0 { 0 } else { delivered }, seq);
                self.answer_http(req.http, Response::json(Status::OK, body), cx);
            }
            None => self.local_api_publish(req, cx),
        }
    }

    // ---- users ------------------------------------------------------------------------------

    /// At the user's home: this node now holds `node_devices` connections of `user`. Sets the
    /// node's count in Redis (absolute, so it can be sent again) and keeps this node subscribed
    /// to the user's channel while it holds any.
    pub(super) fn relay_conn(&mut self, user: &Arc<str>, node_devices: u64) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        if node_devices > 0 && !cl.users.contains_key(user) {
            cl.users.insert(user.clone(), false);
            let channel = cl.key("user", user).into_bytes();
            let token = cl.token(Pending::UserSubscribed(user.clone()));
            cl.send(RelayCmd::Subscribe {
                channel,
                worker: me,
                token,
            });
        }
        if node_devices == 0 && cl.users.remove(user).is_some() {
            let channel = cl.key("user", user).into_bytes();
            cl.send(RelayCmd::Unsubscribe { channel });
        }
        let keys = [
            format!("{}:conns", cl.prefix),
            format!("{}:node:{}:conns", cl.prefix, cl.node()),
            cl.nodes_key(),
        ];
        let sha = cl.scripts.conn.sha.clone();
        let node = cl.node().to_owned();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        cl.eval(
            &sha,
            &keys,
            &[
                user.as_bytes(),
                node_devices.to_string().as_bytes(),
                node.as_bytes(),
            ],
        );
        cl.tell(true);
    }

    /// A private message at the recipient's home while the relay is up.
    pub(super) fn relay_private(&mut self, req: PrivateReq, cx: &mut ChatCx<'_>) {
        let unix_ms = cx.unix_ms();
        self.out.clear();
        wire::private(&mut self.out, &req.from, &req.to, &req.content, unix_ms);
        // The envelopes carry the JSON; this node's own connections get the frame.
        let frame = Outbound::new(DataKind::Text, &self.out).frame().clone();
        let json = &self.out;
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let mut to_env = cl.head(Target::User {
            user: req.to.as_ref().into(),
        });
        to_env.extend_from_slice(json);
        let (copy_channel, copy_env) = if req.from != req.to {
            let mut e = cl.head(Target::User {
                user: req.from.as_ref().into(),
            });
            e.extend_from_slice(json);
            (cl.key("user", &req.from), e)
        } else {
            (String::new(), Vec::new())
        };
        let keys = [format!("{}:conns", cl.prefix), cl.key("inbox", &req.to)];
        let channel = cl.key("user", &req.to);
        let sha = cl.scripts.deliver.sha.clone();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        cl.eval(
            &sha,
            &keys,
            &[
                req.to.as_bytes(),
                channel.as_bytes(),
                &to_env,
                copy_channel.as_bytes(),
                &copy_env,
                b"0",
                b"",
                b"0",
                b"0",
            ],
        );
        cl.ask(me, Pending::Private(Box::new(req), frame), false);
    }

    fn relay_private_done(
        &mut self,
        req: PrivateReq,
        frame: Bytes,
        reply: Result<Resp, ()>,
        cx: &mut ChatCx<'_>,
    ) {
        let Ok(reply) = reply else {
            // Redis went away before answering: this node's connections still get it.
            return self.local_private(req, cx);
        };
        let devices = int(items(&reply).first());
        if devices == 0 {
            return self.reply_error(
                &req.reply,
                ErrorCode::UserNotFound,
                "user is not connected",
                cx,
            );
        }
        // This node's own connections (the envelopes skip their origin).
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
            let mut json = Vec::new();
            wire::ack_delivered(&mut json, &id.as_id(), devices);
            self.reply_json(&req.reply, json, cx);
        }
    }

    /// `POST /api/notify` at the user's home while the relay is up (`store`: keep it when the
    /// user is connected nowhere).
    pub(super) fn relay_notify(&mut self, user: Arc<str>, frame: Bytes, http: Addr, store: bool) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        // `frame` is the whole WebSocket frame (for this node's connections); the envelope and
        // the inbox keep its JSON.
        let json =
            Outbound::from_frame(frame.clone()).map_or_else(Vec::new, |o| o.payload().to_vec());
        let mut env = cl.head(Target::Notify {
            user: user.as_ref().into(),
        });
        env.extend_from_slice(&json);
        let keys = [format!("{}:conns", cl.prefix), cl.key("inbox", &user)];
        let channel = cl.key("user", &user);
        let (max, ttl) = (cl.inbox_max.to_string(), cl.inbox_ttl_s.to_string());
        let sha = cl.scripts.deliver.sha.clone();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        cl.eval(
            &sha,
            &keys,
            &[
                user.as_bytes(),
                channel.as_bytes(),
                &env,
                b"",
                b"",
                if store { b"1" } else { b"0" },
                &json,
                max.as_bytes(),
                ttl.as_bytes(),
            ],
        );
        cl.ask(
            me,
            Pending::Notify {
                user,
                frame,
                http,
                store,
            },
            false,
        );
    }

    /// `POST /api/disconnect` at the user's home while the relay is up.
    pub(super) fn relay_disconnect(&mut self, user: Arc<str>, http: Addr) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let env = cl.head(Target::Disconnect {
            user: user.as_ref().into(),
        });
        let keys = [format!("{}:conns", cl.prefix), cl.key("inbox", &user)];
        let channel = cl.key("user", &user);
        let sha = cl.scripts.deliver.sha.clone();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        cl.eval(
            &sha,
            &keys,
            &[
                user.as_bytes(),
                channel.as_bytes(),
                &env,
                b"",
                b"",
                b"0",
                b"",
                b"0",
                b"0",
            ],
        );
        cl.ask(me, Pending::Disconnect { user, http }, false);
    }

    /// A message on a user channel (another node's private message, notification or
    /// disconnect): for this node's connections of the user.
    fn relay_user_message(&mut self, env: &Envelope<'_>, cx: &mut ChatCx<'_>) {
        if env.origin == self.cluster.as_ref().map_or("", |c| c.node()) {
            return; // the origin delivered to its own connections
        }
        match &env.target {
            Target::User { user } | Target::Notify { user } => {
                let user: Arc<str> = user.as_ref().into();
                let frame = Outbound::new(DataKind::Text, env.payload).frame().clone();
                self.deliver_user_everywhere(&user, &frame, None, cx);
            }
            Target::Disconnect { user } => {
                let user: Arc<str> = user.as_ref().into();
                let places: Vec<usize> =
                    self.dir.places(&user).into_iter().map(|(w, _)| w).collect();
                for w in places {
                    self.answer(w, ChatMsg::CloseUser { user: user.clone() }, cx);
                }
            }
            _ => {}
        }
    }

    /// Takes a new connection's stored notifications (sent right after its welcome).
    pub(super) fn relay_inbox(&mut self, conn: ConnId, user: &str) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let key = cl.key("inbox", user);
        let sha = cl.scripts.inbox.sha.clone();
        cl.eval(&sha, &[&key], &[]);
        cl.ask(me, Pending::Inbox(conn), false);
    }

    // ---- lists ------------------------------------------------------------------------------

    /// `history` while the relay is up: the newest `limit` messages of the room from Redis.
    pub(super) fn relay_history(&mut self, room: Arc<str>, limit: u32, reply: Reply) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let keys = [cl.key("seq", &room), cl.key("hist", &room)];
        let sha = cl.scripts.range.sha.clone();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        cl.eval(&sha, &keys, &[b"-1", limit.to_string().as_bytes()]);
        cl.ask(me, Pending::History(room, limit, reply), false);
    }

    fn relay_history_done(
        &mut self,
        room: Arc<str>,
        limit: u32,
        reply: Reply,
        r: &Resp,
        cx: &mut ChatCx<'_>,
    ) {
        let parts = items(r);
        let from = int(parts.get(1));
        let messages = payloads(parts.get(2));
        // As on one node: complete unless older messages were lost and fewer than asked came.
        let complete = messages.is_empty() || from <= 1 || messages.len() >= limit as usize;
        let mut json = Vec::new();
        wire::history(&mut json, &room, &messages, complete);
        self.reply_json(&reply, json, cx);
        self.reply_ack(&reply, cx);
    }

    /// The cluster's rooms (for `room.list` or the API) while the relay is up.
    pub(super) fn relay_rooms(&mut self, rooms_for: RoomsFor) {
        self.relay_rooms_query("", Pending::Rooms(rooms_for));
    }

    /// A room's users (for `user.list`) while the relay is up.
    pub(super) fn relay_user_list(&mut self, room: Arc<str>, reply: Reply) {
        let room2 = room.clone();
        self.relay_rooms_query(&room2, Pending::UserList(room, reply));
    }

    /// `GET /api/rooms/{room}/users` while the relay is up.
    pub(super) fn relay_room_users(&mut self, room: Arc<str>, http: Addr) {
        let room2 = room.clone();
        self.relay_rooms_query(&room2, Pending::RoomUsers(room, http));
    }

    fn relay_rooms_query(&mut self, room: &str, pending: Pending) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let keys = [format!("{}:rooms", cl.prefix), cl.key("members", room)];
        let sha = cl.scripts.rooms.sha.clone();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        cl.eval(&sha, &keys, &[room.as_bytes()]);
        cl.ask(me, pending, false);
    }

    fn relay_rooms_done(&mut self, pending: Pending, reply: Result<Resp, ()>, cx: &mut ChatCx<'_>) {
        let reply = reply.unwrap_or(Resp::Array(None));
        let parts = items(&reply);
        let kv = strings(parts.first());
        let mut rooms: Vec<(String, u64)> = kv
            .chunks_exact(2)
            .map(|p| (p[0].clone(), p[1].parse().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        rooms.sort_unstable();
        let mut users = strings(parts.get(1));
        users.sort_unstable();
        match pending {
            Pending::Rooms(RoomsFor::Conn(conn, id)) => {
                let Some(super::super::ConnState::Chat(c)) = cx.state(conn) else {
                    return;
                };
                self.out.clear();
                wire::room_list(
                    &mut self.out,
                    rooms.iter().map(|(room, n)| RoomInfo {
                        room,
                        members: *n,
                        joined: c.room(room).is_some(),
                    }),
                );
                let _ = cx.send(conn, DataKind::Text, &self.out);
                if let Some(id) = id {
                    self.out.clear();
                    wire::ack(&mut self.out, &id.as_id());
                    let _ = cx.send(conn, DataKind::Text, &self.out);
                }
            }
            Pending::Rooms(RoomsFor::Api(conn)) => {
                let mut body = Vec::new();
                api::write_rooms(&mut body, rooms.iter().map(|(r, n)| (r.as_str(), *n)));
                cx.respond(conn, &Response::json(Status::OK, body));
            }
            Pending::UserList(room, reply) => {
                let mut json = Vec::new();
                wire::user_list(&mut json, &room, &users);
                self.reply_json(&reply, json, cx);
                self.reply_ack(&reply, cx);
            }
            Pending::RoomUsers(room, http) => {
                let response = if users.is_empty() {
                    super::json_error(Status::NOT_FOUND, "no such room")
                } else {
                    let mut body = Vec::new();
                    api::write_room_users(&mut body, &room, &users);
                    Response::json(Status::OK, body)
                };
                self.answer_http(http, response, cx);
            }
            _ => {}
        }
    }

    // ---- events -----------------------------------------------------------------------------

    /// What the relay thread said.
    pub(super) fn on_relay(&mut self, ev: RelayEvent, cx: &mut ChatCx<'_>) {
        match ev {
            RelayEvent::Up => self.relay_now_up(cx),
            RelayEvent::Down => {
                if let Some(cl) = self.cluster.as_mut() {
                    cl.up = false;
                    // Rooms go on here with their own order; the subscriptions come back with
                    // the relay, and each room is synced again then.
                    for rr in cl.rooms.values_mut() {
                        rr.held.clear();
                        rr.fetching = false;
                    }
                }
                // Senders still waiting for the echo of their message get it acked from here:
                // their message was delivered locally or will be resent by no one.
                let waiting: Vec<(u64, Reply)> = self
                    .cluster
                    .as_mut()
                    .map(|cl| {
                        cl.rooms
                            .values_mut()
                            .flat_map(|rr| rr.acks.drain(..))
                            .collect()
                    })
                    .unwrap_or_default();
                for (seq, reply) in waiting {
                    if let Some(id) = reply.id.clone() {
                        self.ack_seq(&reply, &id, seq, cx);
                    }
                }
            }
            RelayEvent::Subscribed { token, .. } => {
                match self
                    .cluster
                    .as_mut()
                    .and_then(|cl| cl.pending.remove(&token))
                {
                    Some(Pending::Subscribed(room)) => {
                        let waiting =
                            match self.cluster.as_mut().and_then(|cl| cl.rooms.get_mut(&room)) {
                                Some(rr) => {
                                    rr.sub = Sub::Yes;
                                    std::mem::take(&mut rr.waiting)
                                }
                                None => Vec::new(),
                            };
                        if waiting.is_empty() {
                            self.relay_sync(room);
                        }
                        for (req, register) in waiting {
                            self.relay_join_script(req, register, cx);
                        }
                    }
                    Some(Pending::UserSubscribed(user)) => {
                        if let Some(s) =
                            self.cluster.as_mut().and_then(|cl| cl.users.get_mut(&user))
                        {
                            *s = true;
                        }
                    }
                    _ => {}
                }
            }
            RelayEvent::Message {
                channel: _,
                payload,
            } => {
                let Ok(env) = Envelope::parse(&payload) else {
                    if let Some(cl) = &self.cluster {
                        cl.relay
                            .shared
                            .stats
                            .dropped_malformed
                            .fetch_add(1, Relaxed);
                    }
                    tracing::debug!("malformed relay envelope dropped");
                    return;
                };
                match env.target {
                    Target::Room { .. } | Target::Replay { .. } | Target::Presence { .. } => {
                        self.relay_room_message(&env, cx)
                    }
                    _ => self.relay_user_message(&env, cx),
                }
            }
            RelayEvent::Reply { token, reply, .. } => {
                let Some(p) = self
                    .cluster
                    .as_mut()
                    .and_then(|cl| cl.pending.remove(&token))
                else {
                    return;
                };
                self.relay_reply(p, reply, cx);
            }
        }
    }

    fn relay_reply(&mut self, p: Pending, reply: Result<Resp, ()>, cx: &mut ChatCx<'_>) {
        let failed = match &reply {
            Ok(Resp::Error(e)) => {
                tracing::warn!(error = %String::from_utf8_lossy(e), "redis script failed");
                true
            }
            Ok(_) => false,
            Err(()) => true,
        };
        let reply = if failed { Err(()) } else { reply };
        match p {
            Pending::Join(req) => match reply {
                Ok(r) => self.relay_join_done(*req, &r, cx),
                Err(()) => self.local_join_answer(*req, cx),
            },
            Pending::Publish(req, unix_ms) => self.relay_published(*req, reply, unix_ms, cx),
            Pending::ApiPublish(req) => self.relay_api_published(*req, reply, cx),
            Pending::Range(room) => self.relay_range(&room, reply, cx),
            // Redis' seq is now at least this node's: nothing else to do here. What was
            // published while this node could not hear (another node's replay, or everything
            // when Redis itself stayed up) arrives as a gap, filled from the history.
            //
            // Not only then: what another node replayed into the room while this one was still
            // reconnecting was published before this node resubscribed, and a quiet room might
            // not see another message for a long time. Redis' seq (the bump's answer) tells
            // whether anything was missed; if so, it is fetched now.
            Pending::Bump(room) => {
                let seq = reply.ok().and_then(|r| r.as_i64()).unwrap_or(0);
                let from = self
                    .cluster
                    .as_mut()
                    .and_then(|cl| cl.rooms.get_mut(&room))
                    .and_then(|rr| match rr.last {
                        Some(last) if (last as i64) < seq && !rr.fetching => {
                            rr.fetching = true;
                            Some(last + 1)
                        }
                        _ => None,
                    });
                match from {
                    Some(from) => self.relay_fetch(&room, from),
                    None => self.relay_drain_held(&room, cx),
                }
            }
            Pending::Private(req, frame) => self.relay_private_done(*req, frame, reply, cx),
            Pending::Notify {
                user,
                frame,
                http,
                store,
            } => {
                let Ok(r) = reply else {
                    // Not reached: this node's connections of the user still get it.
                    let delivered = self.dir.devices(&user);
                    self.deliver_user_everywhere(&user, &frame, None, cx);
                    let mut body = Vec::new();
                    api::write_delivered(&mut body, delivered);
                    return self.answer_http(http, Response::json(Status::OK, body), cx);
                };
                let parts = items(&r);
                let (n, stored) = (int(parts.first()), int(parts.get(1)) == 1);
                let dropped = int(parts.get(2));
                if dropped > 0 {
                    if let Some(cl) = self.cluster.as_ref() {
                        cl.relay
                            .shared
                            .stats
                            .inbox_dropped
                            .fetch_add(dropped, Relaxed);
                    }
                }
                if n > 0 {
                    self.deliver_user_everywhere(&user, &frame, None, cx);
                }
                let mut body = Vec::new();
                {
                    let mut o = json::ObjectWriter::new(&mut body);
                    o.u64("delivered", n);
                    if store {
                        o.bool("stored", stored);
                    }
                }
                self.answer_http(http, Response::json(Status::OK, body), cx);
            }
            Pending::Disconnect { user, http } => {
                let n = match &reply {
                    Ok(r) => int(items(r).first()),
                    Err(()) => self.dir.devices(&user),
                };
                let places: Vec<usize> =
                    self.dir.places(&user).into_iter().map(|(w, _)| w).collect();
                for w in places {
                    self.answer(w, ChatMsg::CloseUser { user: user.clone() }, cx);
                }
                let mut body = Vec::new();
                api::write_disconnected(&mut body, n);
                self.answer_http(http, Response::json(Status::OK, body), cx);
            }
            p @ (Pending::Rooms(_) | Pending::UserList(..) | Pending::RoomUsers(..)) => {
                if reply.is_err() {
                    return self.relay_lists_fallback(p, cx);
                }
                self.relay_rooms_done(p, reply, cx);
            }
            Pending::History(room, limit, who) => match reply {
                Ok(r) => self.relay_history_done(room, limit, who, &r, cx),
                Err(()) => self.local_history_answer(&room, limit, &who, cx),
            },
            Pending::Registered => {}
            Pending::Sync(room) => {
                let seq = reply.ok().map_or(0, |r| int(items(&r).first()));
                if let Some(rr) = self.cluster.as_mut().and_then(|cl| cl.rooms.get_mut(&room)) {
                    if rr.last.is_none() {
                        rr.last = Some(seq);
                    }
                }
                self.relay_drain_held(&room, cx);
            }
            Pending::Inbox(conn) => {
                if let Ok(r) = reply {
                    for m in items(&r) {
                        if let Some(b) = m.as_bytes() {
                            let _ = cx.send(conn, DataKind::Text, b);
                        }
                    }
                }
                // Then the room list, as without the relay.
                self.start_gather(super::Purpose::RoomList { conn, id: None }, cx);
            }
            Pending::Subscribed(_) | Pending::UserSubscribed(_) => {}
        }
    }

    /// Lists while Redis cannot answer: this node's own.
    fn relay_lists_fallback(&mut self, p: Pending, cx: &mut ChatCx<'_>) {
        match p {
            Pending::Rooms(RoomsFor::Conn(conn, id)) => {
                self.start_local_gather(super::Purpose::RoomList { conn, id }, cx)
            }
            Pending::Rooms(RoomsFor::Api(conn)) => {
                self.start_local_gather(super::Purpose::ApiRooms { conn }, cx)
            }
            Pending::UserList(room, reply) => {
                let home = home_of(&room, self.workers);
                self.request(home, ChatMsg::UserList { room, reply }, cx);
            }
            Pending::RoomUsers(room, http) => {
                let home = home_of(&room, self.workers);
                self.request(home, ChatMsg::ApiRoomUsers { room, http }, cx);
            }
            _ => {}
        }
    }

    /// Redis is reachable (again): every room homed here is synced — its Redis seq raised to
    /// what this node reached alone, then anything missed fetched.
    fn relay_now_up(&mut self, _cx: &mut ChatCx<'_>) {
        let me = self.me;
        match self.cluster.as_mut() {
            Some(cl) => cl.up = true,
            None => return,
        }
        // Every room homed here with members on this node: rooms joined before the outage
        // (the relay resubscribed their channels before saying up) and rooms joined during it
        // (subscribed now, then synced).
        let local: Vec<(Arc<str>, u64, Vec<Arc<str>>)> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.conn_count() > 0)
            .map(|(name, r)| {
                let users = r.users_sorted().into_iter().map(Arc::from).collect();
                (name.clone(), r.seq, users)
            })
            .collect();
        for (room, seq, users) in local {
            let Some(cl) = self.cluster.as_mut() else {
                return;
            };
            let rr = cl.rooms.entry(room.clone()).or_default();
            if rr.sub == Sub::No {
                rr.sub = Sub::Pending;
                let channel = cl.key("room", &room).into_bytes();
                let token = cl.token(Pending::Subscribed(room.clone()));
                cl.send(RelayCmd::Subscribe {
                    channel,
                    worker: me,
                    token,
                });
            }
            // Redis' seq raised to what this node reached alone: no seq is given out twice here.
            let key = cl.key("seq", &room);
            let sha = cl.scripts.bump.sha.clone();
            cl.eval(&sha, &[&key], &[seq.to_string().as_bytes()]);
            cl.ask(me, Pending::Bump(room.clone()), false);
            // Registrations are idempotent: sent again, they restore what a Redis restart lost
            // or what the other nodes removed while this one could not beat.
            for user in users {
                let req = JoinReq {
                    room: room.clone(),
                    user,
                    since: None,
                    rejoin: false,
                    on_connect: true,
                    reply: Reply {
                        to: Addr {
                            worker: me,
                            conn: ConnId::for_tests(u32::MAX, 0),
                        },
                        id: None,
                    },
                };
                self.relay_register_again(req);
            }
        }
        for (user, devices) in self.dir.users() {
            self.relay_conn(&user, devices);
        }
    }

    /// A room subscribed without a join to answer (after an outage): learn where it is.
    fn relay_sync(&mut self, room: Arc<str>) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let keys = [cl.key("seq", &room), cl.key("hist", &room)];
        let sha = cl.scripts.range.sha.clone();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        cl.eval(&sha, &keys, &[b"-1", b"0"]);
        cl.ask(me, Pending::Sync(room), false);
    }

    fn relay_register_again(&mut self, req: JoinReq) {
        let me = self.me;
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        // A presence limit of 0: a registration sent again announces nobody.
        cl.join_command(&req.room, &req.user, 0, true, -1);
        cl.ask(me, Pending::Registered, false);
    }

    /// Worker 0 beats for the node every 2 s (and removes dead nodes from the counts).
    pub(super) fn relay_tick(&mut self, cx: &mut ChatCx<'_>) {
        if self.me != 0 {
            return;
        }
        let now = cx.now_ms();
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        if !cl.up || (now.wrapping_sub(cl.next_beat) as i32) < 0 {
            return;
        }
        cl.next_beat = now.wrapping_add(BEAT_MS);
        let beat = heartbeat_command(
            &cl.scripts,
            &cl.prefix,
            cl.node(),
            cl.presence_max,
            cl.room_ttl_s,
            false,
        );
        cl.cmd = beat;
        cl.tell(false);
    }

    /// Typing while the relay is up: to every node's members but the typist's connections.
    /// The envelope carries the notice's JSON (each node frames it for its own members).
    pub(super) fn relay_typing(&mut self, room: &Arc<str>, user: &str, frame: Bytes) {
        let Some(cl) = self.cluster.as_mut() else {
            return;
        };
        let Some(notice) = Outbound::from_frame(frame) else {
            return;
        };
        let mut env = cl.head(Target::Presence {
            room,
            user: user.into(),
        });
        env.extend_from_slice(notice.payload());
        let channel = cl.key("room", room);
        cl.publish_plain(&channel, &env);
    }
}

/// `EVALSHA heartbeat.lua` for `node`: beats, and takes nodes silent for 3 beats out of the
/// counts (with leave notices in their names: "cc1 presence " + node + room + user, built
/// by the script). With `reset`, `node`'s own registrations go too: the first command of a
/// process, which may reuse the id of one that was killed (its users are not here any more).
fn heartbeat_command(
    scripts: &Scripts,
    prefix: &str,
    node: &str,
    presence_max: usize,
    room_ttl_s: u64,
    reset: bool,
) -> Vec<u8> {
    let head = format!("{} {} ", crate::relay::envelope::VERSION, "presence");
    let key = format!("{prefix}:nodes");
    let (expiry, max) = ((3 * BEAT_MS).to_string(), presence_max.to_string());
    let ttl = room_ttl_s.to_string();
    let mut cmd = Vec::new();
    let mut c = Command::new(&mut cmd, "EVALSHA");
    c.arg(&scripts.heartbeat.sha).arg_u64(1).arg(&key);
    for a in [
        node.as_bytes(),
        expiry.as_bytes(),
        prefix.as_bytes(),
        max.as_bytes(),
        head.as_bytes(),
        ttl.as_bytes(),
        if reset { b"1" } else { b"0" },
    ] {
        c.arg(a);
    }
    c.finish();
    cmd
}

/// What the relay sends on the process's first connection, before any registration of
/// this run: the registrations a previous process with the same node id left behind (it was
/// killed, or lost Redis at its end) are taken out, with leave notices.
pub fn first_connect_commands(cfg: &crate::config::Config, scripts: &Scripts) -> Vec<Vec<u8>> {
    vec![heartbeat_command(
        scripts,
        &cfg.redis_prefix,
        &cfg.node_id,
        cfg.presence_max_members,
        cfg.room_ttl.as_secs().max(1),
        true,
    )]
}
