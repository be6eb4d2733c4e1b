//! What the workers' chat instances send each other.
//!
//! Requests go to the *home* worker of a room or a user (`home_of`), which owns its order,
//! history, membership counts and device directory; replies and deliveries come back to the
//! workers that hold the connections. Everything a message carries is owned and `Send`; a
//! frame for many recipients travels as shared bytes, encoded once.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use crate::chat::command::OwnedId;
use crate::http::Response;
use crate::reactor::{ConnId, SharedFrame};

/// A connection anywhere in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    /// The worker that holds it.
    pub worker: usize,
    /// Its id there.
    pub conn: ConnId,
}

/// Where an answer to a client command goes: the connection, and the command's `id` if it
/// had one (every command with an id is answered by exactly one `ack` or `error`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The asking connection.
    pub to: Addr,
    /// The command's `id`.
    pub id: Option<OwnedId>,
}

/// A user as the chat layer knows them: id (JWT `sub` or development username) and display
/// name. Shared by all of a user's connections on a worker.
#[derive(Debug, PartialEq, Eq)]
pub struct User {
    /// Identifies the user in every message, list and API call.
    pub id: Arc<str>,
    /// Shown to people (JWT `name`, default the id).
    pub name: Arc<str>,
}

/// A `room.join` on its way to the room's home.
#[derive(Debug)]
pub struct JoinReq {
    /// The room (valid name).
    pub room: Arc<str>,
    /// Who joins.
    pub user: Arc<str>,
    /// Send the history after this seq first.
    pub since: Option<u64>,
    /// The connection is already counted as a member (a repeated join): only answer.
    pub rejoin: bool,
    /// The automatic join of `general` on connect: no `user.list` answer.
    pub on_connect: bool,
    /// Who asked.
    pub reply: Reply,
}

/// A `chat` on its way to the room's home.
#[derive(Debug)]
pub struct PublishReq {
    /// The room (the sender is a member).
    pub room: Arc<str>,
    /// The sender's id.
    pub from: Arc<str>,
    /// The text.
    pub content: Box<str>,
    /// The sender, for the ack.
    pub reply: Reply,
}

/// A `private` on its way to the recipient's home.
#[derive(Debug)]
pub struct PrivateReq {
    /// Sender's id.
    pub from: Arc<str>,
    /// Recipient's id.
    pub to: Arc<str>,
    /// The text.
    pub content: Box<str>,
    /// The sender, for the ack and the copy to its other connections.
    pub reply: Reply,
}

/// `POST /api/publish`, at the room's home.
#[derive(Debug)]
pub struct ApiPublishReq {
    /// Target room.
    pub room: Arc<str>,
    /// Event type.
    pub event_type: Box<str>,
    /// The `data` object, compact JSON.
    pub data: Vec<u8>,
    /// The event id (given or generated).
    pub id: Box<str>,
    /// The waiting HTTP request.
    pub http: Addr,
}

/// A chat message between workers.
#[derive(Debug)]
pub enum ChatMsg {
    // ---- to a room's home -----------------------------------------------------------------
    /// Join a room (or answer a repeated join).
    Join(Box<JoinReq>),
    /// One connection of `user` on `worker` left the room (or closed).
    Leave {
        /// The room.
        room: Arc<str>,
        /// Whose connection.
        user: Arc<str>,
        /// Where it was.
        worker: usize,
    },
    /// A chat message to sequence and deliver.
    Publish(Box<PublishReq>),
    /// A typing notice (a ready frame) for every member but `user`'s connections.
    Typing {
        /// The room.
        room: Arc<str>,
        /// The typist.
        user: Arc<str>,
        /// `{"type":"typing",…}`.
        frame: SharedFrame,
    },
    /// The room's users, for `user.list`.
    UserList {
        /// The room.
        room: Arc<str>,
        /// Who asked.
        reply: Reply,
    },
    /// The room's newest `limit` messages, for `history`.
    History {
        /// The room.
        room: Arc<str>,
        /// How many.
        limit: u32,
        /// Who asked.
        reply: Reply,
    },
    /// Every room homed on the receiver that has members, for a room list gathered by
    /// `worker` under `gather`.
    RoomsPart {
        /// The gathering worker.
        worker: usize,
        /// Its gather id.
        gather: u64,
    },
    /// `POST /api/publish`.
    ApiPublish(Box<ApiPublishReq>),
    /// `GET /api/rooms/{room}/users`.
    ApiRoomUsers {
        /// The room.
        room: Arc<str>,
        /// The waiting HTTP request.
        http: Addr,
    },

    // ---- to a user's home -----------------------------------------------------------------
    /// `worker` opened a connection of `user`.
    UserUp {
        /// The user.
        user: Arc<str>,
        /// The worker.
        worker: usize,
    },
    /// A connection of `user` on `worker` closed.
    UserDown {
        /// The user.
        user: Arc<str>,
        /// The worker.
        worker: usize,
    },
    /// A private message to deliver to every connection of `to`.
    Private(Box<PrivateReq>),
    /// The sender's copy of a private message, for its other connections.
    SenderCopy {
        /// The sender.
        user: Arc<str>,
        /// `{"type":"private",…}`.
        frame: SharedFrame,
        /// The sending connection (it has its ack).
        except: Addr,
    },
    /// `POST /api/notify`: deliver `frame` to every connection of `user`.
    Notify {
        /// The user.
        user: Arc<str>,
        /// Keep it for the user's next connection if connected nowhere (relay on).
        store: bool,
        /// The notification.
        frame: SharedFrame,
        /// The waiting HTTP request.
        http: Addr,
    },
    /// `POST /api/disconnect`: close every connection of `user` with 1008.
    Disconnect {
        /// The user.
        user: Arc<str>,
        /// The waiting HTTP request.
        http: Addr,
    },

    // ---- to the workers that hold the connections -----------------------------------------
    /// A room's frame for its local members (but `except_user`'s connections).
    Deliver {
        /// The room.
        room: Arc<str>,
        /// The frame.
        frame: SharedFrame,
        /// Skip this user's connections (presence, typing).
        except_user: Option<Arc<str>>,
        /// When the home published it (fan-out latency).
        published: Instant,
    },
    /// A frame for every local connection of `user` (but `except`).
    DeliverUser {
        /// The user.
        user: Arc<str>,
        /// The frame.
        frame: SharedFrame,
        /// Skip this connection.
        except: Option<ConnId>,
    },
    /// Close every local connection of `user` with 1008.
    CloseUser {
        /// The user.
        user: Arc<str>,
    },
    /// The room's home registered a join: add the connection to the local members (unless it
    /// was a repeated join), then send it `replies` in order.
    JoinDone {
        /// The room.
        room: Arc<str>,
        /// The joining connection.
        conn: ConnId,
        /// history / user.list / ack, as needed.
        replies: Vec<Vec<u8>>,
        /// The connection's automatic join of `general` (with the relay configured): once
        /// it is registered, the connection gets its stored notifications and room list.
        welcome: bool,
    },
    /// One JSON text message for one connection.
    ToConn {
        /// The connection.
        conn: ConnId,
        /// The message.
        json: Vec<u8>,
    },
    /// A worker's part of a room list: (room, users) for every room homed there.
    RoomsReply {
        /// The gather it answers.
        gather: u64,
        /// Its rooms.
        rooms: Vec<(Arc<str>, u32)>,
    },
    /// From the relay thread.
    Relay(crate::relay::RelayEvent),
    /// The answer to a deferred HTTP request.
    Http {
        /// The waiting connection.
        conn: ConnId,
        /// The answer.
        response: Response,
    },
}

/// The home worker of a room or user name: a fixed hash, the same on every worker.
pub fn home_of(name: &str, workers: usize) -> usize {
    // DefaultHasher::new() has fixed keys: every worker (and every run) agrees.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    (h.finish() % workers.max(1) as u64) as usize
}

/// A user's home: hashed apart from rooms of the same name.
pub fn user_home(user: &str, workers: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b'u'.hash(&mut h);
    user.hash(&mut h);
    (h.finish() % workers.max(1) as u64) as usize
}
