//! One client text message → a typed [`Command`] or a [`CommandError`], plus the message's
//! `id` so that an error can echo it.
//!
//! Owns the client → server half of the wire protocol: field names, defaults, validation and
//! the order in which faults are reported. Parsing is simd-json's tape API over a per-worker
//! [`CommandParser`] (scratch copy of the message, simd-json buffers and tape all reused), so
//! a message allocates nothing once the parser has seen a message of its size. Must not know
//! rooms, users or connections: whether the sender is a member, or the recipient exists, is the
//! service's decision.
//!
//! Rules, in the order they are checked:
//! 1. Not JSON (strictly: simd-json's leniencies are refused, see `tape.rs`), or not an
//!    object → `bad_json`, without an id.
//! 2. `id` that is neither a string, a number nor null, or given twice → `bad_request`,
//!    without an id. Otherwise the id (if any) is echoed by every later error.
//! 3. Any other protocol field (`type`, `room`, `content`, `to`, `since`, `limit`) given twice →
//!    `bad_request`. Unknown fields are ignored, whatever their value.
//! 4. `type` missing, not a string, or unknown → `bad_request`.
//! 5. The command's own fields, in the order they are listed on [`Command`]: missing (absent
//!    or `null`), ill-typed, invalid → `bad_request`. An optional field given as `null` takes
//!    its default. Fields that the command does not use are ignored.
//! 6. `content` longer than the limit, in Unicode scalar values → `too_long`.

use simd_json::{Buffers, Node, StaticNode, Tape};

use super::error::{CommandError, ErrorCode};
use super::json::{Number, ObjectWriter};
use super::tape;
use super::validate::{exceeds_chars, is_room_name, is_user_id, DEFAULT_MAX_CONTENT_CHARS};

/// The room a `chat` without `room` goes to; every user is a member.
pub const DEFAULT_ROOM: &str = "general";
/// `history` without `limit` returns this many messages (or the history size if smaller).
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;
/// Default history ring size (`--history`).
pub const DEFAULT_MAX_HISTORY: u32 = 100;

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest `content`, in Unicode scalar values. Default: 2000.
    pub max_content_chars: usize,
    /// The history ring size (`--history`): the largest `limit`. Default: 100. With 0, every
    /// explicit `limit` is out of range and the default limit is 0.
    pub max_history: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_content_chars: DEFAULT_MAX_CONTENT_CHARS,
            max_history: DEFAULT_MAX_HISTORY,
        }
    }
}

/// A client message's `id`, echoed in its `ack` or `error`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Id<'a> {
    /// A string id, JSON escapes decoded (written back escaped).
    Str(&'a str),
    /// A number id (written back as its JSON number: integers as sent, floats in shortest
    /// round-trip form, so `1.50` comes back as `1.5`).
    Num(Number),
}

impl Id<'_> {
    /// Appends the id as a JSON value.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Id::Str(s) => super::json::write_str(out, s),
            Id::Num(n) => n.write(out),
        }
    }

    /// An owned copy, for ids that must outlive the parser's buffer (for example an ack sent
    /// after a room's home worker assigned the seq). Allocates for string ids only.
    #[must_use]
    pub fn to_owned_id(&self) -> OwnedId {
        match self {
            Id::Str(s) => OwnedId::Str((*s).into()),
            Id::Num(n) => OwnedId::Num(*n),
        }
    }
}

/// An [`Id`] that owns its string.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedId {
    /// A string id.
    Str(Box<str>),
    /// A number id.
    Num(Number),
}

impl OwnedId {
    /// Borrows it as an [`Id`] for the encoders.
    #[must_use]
    pub fn as_id(&self) -> Id<'_> {
        match self {
            OwnedId::Str(s) => Id::Str(s),
            OwnedId::Num(n) => Id::Num(*n),
        }
    }
}

/// A valid client command. Strings borrow the parser's buffer, JSON escapes decoded; room
/// names and user ids are already validated, `content` is non-empty and within the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `{"type":"chat","room":"backend","content":"hi"}`; `room` defaults to `general`.
    Chat {
        /// Target room (default [`DEFAULT_ROOM`]).
        room: &'a str,
        /// The text, exactly as sent.
        content: &'a str,
    },
    /// `{"type":"room.join","room":"backend","since":41}`.
    Join {
        /// Room to join (created if needed).
        room: &'a str,
        /// Send history after this seq first, if given.
        since: Option<u64>,
    },
    /// `{"type":"room.leave","room":"backend"}`.
    Leave {
        /// Room to leave.
        room: &'a str,
    },
    /// `{"type":"private","to":"vali","content":"hi"}`.
    Private {
        /// Recipient user id (validated with [`is_user_id`]).
        to: &'a str,
        /// The text, exactly as sent.
        content: &'a str,
    },
    /// `{"type":"typing","room":"backend"}`.
    Typing {
        /// Room the sender is typing in.
        room: &'a str,
    },
    /// `{"type":"room.list"}`.
    RoomList,
    /// `{"type":"user.list","room":"backend"}`.
    UserList {
        /// Room whose users are asked for.
        room: &'a str,
    },
    /// `{"type":"history","room":"backend","limit":50}`.
    History {
        /// Room whose history is asked for.
        room: &'a str,
        /// Newest messages wanted: `1..=max_history`, default `min(50, max_history)` (so 0
        /// only when history is disabled; [`Command::write_json`] then omits it).
        limit: u32,
    },
    /// `{"type":"ping"}`, answered by `{"type":"pong"}`.
    Ping,
}

impl Command<'_> {
    /// The message's `type` string.
    #[must_use]
    pub fn type_str(&self) -> &'static str {
        match self {
            Command::Chat { .. } => "chat",
            Command::Join { .. } => "room.join",
            Command::Leave { .. } => "room.leave",
            Command::Private { .. } => "private",
            Command::Typing { .. } => "typing",
            Command::RoomList => "room.list",
            Command::UserList { .. } => "user.list",
            Command::History { .. } => "history",
            Command::Ping => "ping",
        }
    }

    /// Appends this command as a client would send it (`type`, the command's fields, then
    /// `id` if given), with the server's JSON writer. Parsing the output gives back the same
    /// command and id. Used by tests, the fuzz round trip and load tools.
    pub fn write_json(&self, id: Option<&Id<'_>>, out: &mut Vec<u8>) {
        let mut o = ObjectWriter::new(out);
        o.str("type", self.type_str());
        match *self {
            Command::Chat { room, content } => {
                o.str("room", room).str("content", content);
            }
            Command::Join { room, since } => {
                o.str("room", room);
                if let Some(since) = since {
                    o.u64("since", since);
                }
            }
            Command::Private { to, content } => {
                o.str("to", to).str("content", content);
            }
            Command::Leave { room } | Command::Typing { room } | Command::UserList { room } => {
                o.str("room", room);
            }
            Command::History { room, limit } => {
                o.str("room", room);
                // 0 only comes from the default with history disabled; it cannot be sent.
                if limit > 0 {
                    o.u64("limit", limit.into());
                }
            }
            Command::RoomList | Command::Ping => {}
        }
        if let Some(id) = id {
            o.value("id", |out| id.write(out));
        }
        o.finish();
    }
}

/// The outcome of one message: exactly one of a command or an error, and the id whenever it
/// could be read (see the module's rules).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parsed<'a> {
    /// The message's `id`, if it had a valid one.
    pub id: Option<Id<'a>>,
    /// The command, or why the message was refused.
    pub result: Result<Command<'a>, CommandError>,
}

impl<'a> Parsed<'a> {
    fn error(id: Option<Id<'a>>, code: ErrorCode, reason: &'static str) -> Self {
        Self {
            id,
            result: Err(CommandError::new(code, reason)),
        }
    }
}

/// Initial size of the parser's buffers: the default `--chat-max-message` (4 KiB).
pub const DEFAULT_PARSER_CAPACITY: usize = 4096;

/// A per-worker parser: reusable buffers for simd-json, which parses in place.
///
/// Call [`CommandParser::parse`] once per received text message; the result borrows the
/// parser until it is dropped. After the first message of a given size, parsing allocates
/// nothing (checked by `tests/chat_alloc.rs`).
pub struct CommandParser {
    /// A mutable copy of the message (simd-json decodes strings into it).
    scratch: Vec<u8>,
    /// simd-json's stage 1/2 buffers.
    buffers: Buffers,
    /// The tape's storage, always empty between calls.
    tape: Tape<'static>,
    limits: Limits,
}

impl std::fmt::Debug for CommandParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandParser")
            .field("limits", &self.limits)
            .field("capacity", &self.scratch.capacity())
            .finish_non_exhaustive()
    }
}

impl CommandParser {
    /// A parser with buffers for messages of [`DEFAULT_PARSER_CAPACITY`] bytes (larger ones
    /// grow them once).
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self::with_capacity(limits, DEFAULT_PARSER_CAPACITY)
    }

    /// A parser with buffers sized for messages of `capacity` bytes.
    #[must_use]
    pub fn with_capacity(limits: Limits, capacity: usize) -> Self {
        Self {
            scratch: Vec::with_capacity(capacity),
            buffers: Buffers::new(capacity),
            tape: Tape(Vec::with_capacity(64)),
            limits,
        }
    }

    /// The limits this parser applies.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Parses and validates one client text message.
    pub fn parse<'a>(&'a mut self, msg: &[u8]) -> Parsed<'a> {
        self.scratch.clear();
        self.scratch.extend_from_slice(msg);
        let mut tape: Tape<'a> = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let is_json = simd_json::fill_tape(&mut self.scratch, &mut self.buffers, &mut tape).is_ok()
            && tape::make_strict(msg, &mut tape.0);
        let parsed = if is_json {
            parse_tape(&tape.0, &self.limits)
        } else {
            Parsed::error(None, ErrorCode::BadJson, NOT_JSON)
        };
        self.tape = tape.reset();
        parsed
    }
}

const NOT_JSON: &str = "message is not valid json";
const BAD_ID: &str = "id must be a string or a number";

/// The protocol fields of a message: the first node of each value, and whether one was
/// repeated.
#[derive(Default)]
struct Fields<'de> {
    kind: Option<Node<'de>>,
    id: Option<Node<'de>>,
    room: Option<Node<'de>>,
    content: Option<Node<'de>>,
    to: Option<Node<'de>>,
    since: Option<Node<'de>>,
    limit: Option<Node<'de>>,
    duplicate_id: bool,
    duplicate: bool,
}

impl<'de> Fields<'de> {
    fn collect(nodes: &[Node<'de>]) -> Option<Self> {
        let mut f = Fields::default();
        let is_object = tape::for_each_field(nodes, |key, value| {
            let slot = match key {
                "type" => &mut f.kind,
                "id" => &mut f.id,
                "room" => &mut f.room,
                "content" => &mut f.content,
                "to" => &mut f.to,
                "since" => &mut f.since,
                "limit" => &mut f.limit,
                _ => return,
            };
            if slot.is_some() {
                if key == "id" {
                    f.duplicate_id = true;
                } else {
                    f.duplicate = true;
                }
            }
            *slot = value.first().copied();
        });
        is_object.then_some(f)
    }
}

fn parse_tape<'de>(nodes: &[Node<'de>], limits: &Limits) -> Parsed<'de> {
    let Some(f) = Fields::collect(nodes) else {
        return Parsed::error(None, ErrorCode::BadJson, "message must be a json object");
    };
    if f.duplicate_id {
        return Parsed::error(None, ErrorCode::BadRequest, "duplicate field: id");
    }
    let id = match f.id {
        None | Some(Node::Static(StaticNode::Null)) => None,
        Some(Node::String(s)) => Some(Id::Str(s)),
        Some(Node::Static(ref n)) => match Number::from_static(n) {
            Some(n) => Some(Id::Num(n)),
            None => return Parsed::error(None, ErrorCode::BadRequest, BAD_ID),
        },
        Some(_) => return Parsed::error(None, ErrorCode::BadRequest, BAD_ID),
    };
    let result = if f.duplicate {
        Err(CommandError::bad_request("duplicate field"))
    } else {
        command(&f, limits)
    };
    Parsed { id, result }
}

fn command<'de>(f: &Fields<'de>, limits: &Limits) -> Result<Command<'de>, CommandError> {
    let kind = match f.kind {
        None | Some(Node::Static(StaticNode::Null)) => {
            return Err(CommandError::bad_request("missing field: type"))
        }
        Some(Node::String(s)) => s,
        Some(_) => return Err(CommandError::bad_request("type must be a string")),
    };
    let cmd = match kind {
        "chat" => {
            let room = match optional_str(f.room, "room must be a string")? {
                Some(room) => valid_room(room)?,
                None => DEFAULT_ROOM,
            };
            let content = content(f.content, limits)?;
            Command::Chat { room, content }
        }
        "room.join" => {
            let room = room(f.room)?;
            let since = match f.since {
                None | Some(Node::Static(StaticNode::Null)) => None,
                Some(Node::Static(ref n)) => Some(
                    Number::from_static(n)
                        .and_then(|n| n.as_u64())
                        .ok_or(SINCE)?,
                ),
                Some(_) => return Err(SINCE),
            };
            Command::Join { room, since }
        }
        "room.leave" => Command::Leave {
            room: room(f.room)?,
        },
        "private" => {
            let to = required_str(f.to, "missing field: to", "to must be a string")?;
            if !is_user_id(to) {
                return Err(CommandError::bad_request("invalid user id"));
            }
            let content = content(f.content, limits)?;
            Command::Private { to, content }
        }
        "typing" => Command::Typing {
            room: room(f.room)?,
        },
        "room.list" => Command::RoomList,
        "user.list" => Command::UserList {
            room: room(f.room)?,
        },
        "history" => {
            let room = room(f.room)?;
            let limit = match f.limit {
                None | Some(Node::Static(StaticNode::Null)) => {
                    DEFAULT_HISTORY_LIMIT.min(limits.max_history)
                }
                Some(Node::Static(ref n)) => Number::from_static(n)
                    .and_then(|n| n.as_u64())
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| (1..=limits.max_history).contains(n))
                    .ok_or(LIMIT)?,
                Some(_) => return Err(LIMIT),
            };
            Command::History { room, limit }
        }
        "ping" => Command::Ping,
        _ => return Err(CommandError::bad_request("unknown type")),
    };
    Ok(cmd)
}

const SINCE: CommandError = CommandError::bad_request("since must be a non-negative integer");
const LIMIT: CommandError =
    CommandError::bad_request("limit must be an integer from 1 to the history size");

/// A string field that may be absent (or null).
fn optional_str<'de>(
    node: Option<Node<'de>>,
    ill_typed: &'static str,
) -> Result<Option<&'de str>, CommandError> {
    match node {
        None | Some(Node::Static(StaticNode::Null)) => Ok(None),
        Some(Node::String(s)) => Ok(Some(s)),
        Some(_) => Err(CommandError::bad_request(ill_typed)),
    }
}

/// A string field that must be present.
fn required_str<'de>(
    node: Option<Node<'de>>,
    missing: &'static str,
    ill_typed: &'static str,
) -> Result<&'de str, CommandError> {
    optional_str(node, ill_typed)?.ok_or(CommandError::bad_request(missing))
}

fn valid_room(room: &str) -> Result<&str, CommandError> {
    if is_room_name(room) {
        Ok(room)
    } else {
        Err(CommandError::bad_request("invalid room name"))
    }
}

/// The required `room` field.
fn room(node: Option<Node<'_>>) -> Result<&str, CommandError> {
    valid_room(required_str(
        node,
        "missing field: room",
        "room must be a string",
    )?)
}

/// The required, non-empty `content` field, within the character limit.
fn content<'de>(node: Option<Node<'de>>, limits: &Limits) -> Result<&'de str, CommandError> {
    let content = required_str(node, "missing field: content", "content must be a string")?;
    if content.is_empty() {
        return Err(CommandError::bad_request("content is empty"));
    }
    if exceeds_chars(content, limits.max_content_chars) {
        return Err(CommandError::new(
            ErrorCode::TooLong,
            "content is longer than the limit",
        ));
    }
    Ok(content)
}

#[cfg(test)]
mod tests;
