//! Encoders for every server → client message of the chat protocol.
//!
//! Each function appends exactly one complete JSON object to `out` (nothing else: no newline,
//! no framing) with the fields in the order of the protocol's examples. Nothing here allocates
//! besides `out` growing, reads a clock (timestamps come in as unix milliseconds) or decides
//! who receives what.

use super::command::Id;
use super::error::{CommandError, ErrorCode};
use super::json::ObjectWriter;
use super::time::Timestamp;

/// `{"type":"welcome","user":"ali","name":"Ali","rooms":["general"]}`, the first message on a
/// new connection.
pub fn welcome<I, S>(out: &mut Vec<u8>, user: &str, name: &str, rooms: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    ObjectWriter::new(out)
        .str("type", "welcome")
        .str("user", user)
        .str("name", name)
        .str_array("rooms", rooms);
}

/// One entry of a `room.list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomInfo<'a> {
    /// Room name.
    pub room: &'a str,
    /// Members, counted in users (not connections).
    pub members: u64,
    /// Whether the receiving connection is a member.
    pub joined: bool,
}

/// `{"type":"room.list","rooms":[{"room":"general","members":3,"joined":true},…]}`; the caller
/// passes the rooms sorted by name.
pub fn room_list<'a>(out: &mut Vec<u8>, rooms: impl IntoIterator<Item = RoomInfo<'a>>) {
    let mut o = ObjectWriter::new(out);
    o.str("type", "room.list");
    let mut list = o.array("rooms");
    for r in rooms {
        list.object()
            .str("room", r.room)
            .u64("members", r.members)
            .bool("joined", r.joined);
    }
}

/// `{"type":"chat","room":"general","from":"ali","content":"hi","seq":42,
/// "timestamp":"2026-12-01T10:00:00.123Z"}`. These bytes are also what a room's history keeps.
pub fn chat(out: &mut Vec<u8>, room: &str, from: &str, content: &str, seq: u64, unix_ms: u64) {
    ObjectWriter::new(out)
        .str("type", "chat")
        .str("room", room)
        .str("from", from)
        .str("content", content)
        .u64("seq", seq)
        .str("timestamp", Timestamp::from_unix_ms(unix_ms).as_str());
}

/// `{"type":"user.list","room":"backend","users":["ali","vali"]}`; the caller passes one
/// entry per user, sorted.
pub fn user_list<I, S>(out: &mut Vec<u8>, room: &str, users: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    ObjectWriter::new(out)
        .str("type", "user.list")
        .str("room", room)
        .str_array("users", users);
}

/// `{"type":"history","room":"backend","messages":[…],"complete":true}`. Each message is a
/// stored object exactly as [`chat`] (or [`notification`], for room events) wrote it, oldest
/// first; they are copied verbatim.
pub fn history<I, M>(out: &mut Vec<u8>, room: &str, messages: I, complete: bool)
where
    I: IntoIterator<Item = M>,
    M: AsRef<[u8]>,
{
    let mut o = ObjectWriter::new(out);
    o.str("type", "history").str("room", room);
    let mut list = o.array("messages");
    for m in messages {
        list.raw(m.as_ref());
    }
    list.finish();
    o.bool("complete", complete);
}

/// `{"type":"room.join","room":"backend","from":"system","user":"ali","content":"ali joined"}`,
/// to the room's other members when a user's first connection joins.
pub fn presence_join(out: &mut Vec<u8>, room: &str, user: &str) {
    presence(out, "room.join", room, user, " joined");
}

/// `{"type":"room.leave","room":"backend","from":"system","user":"ali","content":"ali left"}`,
/// when a user's last connection leaves or disconnects.
pub fn presence_leave(out: &mut Vec<u8>, room: &str, user: &str) {
    presence(out, "room.leave", room, user, " left");
}

fn presence(out: &mut Vec<u8>, kind: &str, room: &str, user: &str, verb: &str) {
    ObjectWriter::new(out)
        .str("type", kind)
        .str("room", room)
        .str("from", "system")
        .str("user", user)
        .str_concat("content", &[user, verb]);
}

/// `{"type":"private","from":"ali","to":"vali","content":"hi","timestamp":"…"}`.
pub fn private(out: &mut Vec<u8>, from: &str, to: &str, content: &str, unix_ms: u64) {
    ObjectWriter::new(out)
        .str("type", "private")
        .str("from", from)
        .str("to", to)
        .str("content", content)
        .str("timestamp", Timestamp::from_unix_ms(unix_ms).as_str());
}

/// `{"type":"typing","room":"backend","from":"ali"}`.
pub fn typing(out: &mut Vec<u8>, room: &str, from: &str) {
    ObjectWriter::new(out)
        .str("type", "typing")
        .str("room", room)
        .str("from", from);
}

/// `{"type":"ack","id":"c1"}`: a command with an id that has no other answer field (join,
/// leave, typing, lists, history, ping).
pub fn ack(out: &mut Vec<u8>, id: &Id<'_>) {
    ObjectWriter::new(out)
        .str("type", "ack")
        .value("id", |o| id.write(o));
}

/// `{"type":"ack","id":"c1","seq":42}`: a chat message was ordered as `seq` in its room.
pub fn ack_seq(out: &mut Vec<u8>, id: &Id<'_>, seq: u64) {
    ObjectWriter::new(out)
        .str("type", "ack")
        .value("id", |o| id.write(o))
        .u64("seq", seq);
}

/// `{"type":"ack","id":"p1","status":"delivered","devices":2}`: a private message was queued
/// to `devices` connections of the recipient.
pub fn ack_delivered(out: &mut Vec<u8>, id: &Id<'_>, devices: u64) {
    ObjectWriter::new(out)
        .str("type", "ack")
        .value("id", |o| id.write(o))
        .str("status", "delivered")
        .u64("devices", devices);
}

/// `{"type":"error","code":"not_in_room","content":"<human text>","id":"c1"}`; `id` only when
/// the client message had one.
pub fn error(out: &mut Vec<u8>, code: ErrorCode, content: &str, id: Option<&Id<'_>>) {
    let mut o = ObjectWriter::new(out);
    o.str("type", "error")
        .str("code", code.as_str())
        .str("content", content);
    if let Some(id) = id {
        o.value("id", |o| id.write(o));
    }
}

/// [`error`] for a message the parser refused.
pub fn command_error(out: &mut Vec<u8>, err: &CommandError, id: Option<&Id<'_>>) {
    error(out, err.code, err.reason, id);
}

/// `{"type":"pong"}`, the answer to `{"type":"ping"}`.
pub fn pong(out: &mut Vec<u8>) {
    ObjectWriter::new(out).str("type", "pong");
}

/// `{"type":"<event type>","data":{…},"id":"<event id>","timestamp":"…"}`, plus
/// `"room":…,"seq":…` when published to a room (`room` = `Some((room, seq))`). `data` is a JSON
/// object already validated and re-serialized (see `api.rs`); it is copied verbatim.
pub fn notification(
    out: &mut Vec<u8>,
    event_type: &str,
    data: &[u8],
    event_id: &str,
    unix_ms: u64,
    room: Option<(&str, u64)>,
) {
    let mut o = ObjectWriter::new(out);
    o.str("type", event_type)
        .raw("data", data)
        .str("id", event_id)
        .str("timestamp", Timestamp::from_unix_ms(unix_ms).as_str());
    if let Some((room, seq)) = room {
        o.str("room", room).u64("seq", seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::json::Number;

    /// 2026-12-01T10:00:00.123Z
    const T: u64 = 1_796_083_200_000 + 36_000_123;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        let s = String::from_utf8(out).unwrap();
        // Every message is one valid JSON object.
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert!(v.is_object(), "{s}");
        s
    }

    #[test]
    fn welcome_and_lists() {
        assert_eq!(
            text(|o| welcome(o, "ali", "Ali", ["general"])),
            r#"{"type":"welcome","user":"ali","name":"Ali","rooms":["general"]}"#
        );
        assert_eq!(
            text(|o| room_list(
                o,
                [
                    RoomInfo {
                        room: "backend",
                        members: 1,
                        joined: false
                    },
                    RoomInfo {
                        room: "general",
                        members: 3,
                        joined: true
                    },
                ]
            )),
            r#"{"type":"room.list","rooms":[{"room":"backend","members":1,"joined":false},{"room":"general","members":3,"joined":true}]}"#
        );
        assert_eq!(
            text(|o| room_list(o, [])),
            r#"{"type":"room.list","rooms":[]}"#
        );
        assert_eq!(
            text(|o| user_list(o, "backend", ["ali".to_string(), "vali".to_string()])),
            r#"{"type":"user.list","room":"backend","users":["ali","vali"]}"#
        );
    }

    #[test]
    fn chat_private_typing() {
        assert_eq!(
            text(|o| chat(o, "general", "ali", "hi", 42, T)),
            r#"{"type":"chat","room":"general","from":"ali","content":"hi","seq":42,"timestamp":"2026-12-01T10:00:00.123Z"}"#
        );
        assert_eq!(
            text(|o| private(o, "ali", "vali", "hi", T)),
            r#"{"type":"private","from":"ali","to":"vali","content":"hi","timestamp":"2026-12-01T10:00:00.123Z"}"#
        );
        assert_eq!(
            text(|o| typing(o, "backend", "ali")),
            r#"{"type":"typing","room":"backend","from":"ali"}"#
        );
    }

    #[test]
    fn content_is_escaped() {
        assert_eq!(
            text(|o| chat(o, "r", "a\"b", "<\n\u{2028}\"\\\u{1}😀>", 1, 0)),
            r#"{"type":"chat","room":"r","from":"a\"b","content":"<\n\u2028\"\\\u0001😀>","seq":1,"timestamp":"1970-01-01T00:00:00.000Z"}"#
        );
    }

    #[test]
    fn history_copies_stored_messages() {
        let mut m1 = Vec::new();
        chat(&mut m1, "backend", "ali", "one", 41, T);
        let mut m2 = Vec::new();
        chat(&mut m2, "backend", "vali", "two", 42, T);
        assert_eq!(
            text(|o| history(o, "backend", [&m1, &m2], true)),
            format!(
                r#"{{"type":"history","room":"backend","messages":[{},{}],"complete":true}}"#,
                String::from_utf8(m1.clone()).unwrap(),
                String::from_utf8(m2.clone()).unwrap()
            )
        );
        assert_eq!(
            text(|o| history(o, "x", Vec::<Vec<u8>>::new(), false)),
            r#"{"type":"history","room":"x","messages":[],"complete":false}"#
        );
    }

    #[test]
    fn presence() {
        assert_eq!(
            text(|o| presence_join(o, "backend", "ali")),
            r#"{"type":"room.join","room":"backend","from":"system","user":"ali","content":"ali joined"}"#
        );
        assert_eq!(
            text(|o| presence_leave(o, "backend", "a\"li")),
            r#"{"type":"room.leave","room":"backend","from":"system","user":"a\"li","content":"a\"li left"}"#
        );
    }

    #[test]
    fn acks_echo_both_kinds_of_id() {
        let s = Id::Str("c\"1");
        let n = Id::Num(Number::from_u64(7));
        let f = Id::Num(Number::from_f64(1.5).unwrap());
        assert_eq!(text(|o| ack(o, &s)), r#"{"type":"ack","id":"c\"1"}"#);
        assert_eq!(text(|o| ack(o, &f)), r#"{"type":"ack","id":1.5}"#);
        assert_eq!(
            text(|o| ack_seq(o, &Id::Str("c1"), 42)),
            r#"{"type":"ack","id":"c1","seq":42}"#
        );
        assert_eq!(
            text(|o| ack_seq(o, &n, 42)),
            r#"{"type":"ack","id":7,"seq":42}"#
        );
        assert_eq!(
            text(|o| ack_delivered(o, &Id::Str("p1"), 2)),
            r#"{"type":"ack","id":"p1","status":"delivered","devices":2}"#
        );
        assert_eq!(
            text(|o| ack_delivered(o, &Id::Num(Number::from_i64(-3)), 0)),
            r#"{"type":"ack","id":-3,"status":"delivered","devices":0}"#
        );
    }

    #[test]
    fn errors_with_and_without_id() {
        assert_eq!(
            text(|o| error(
                o,
                ErrorCode::NotInRoom,
                "not a member of backend",
                Some(&Id::Str("c1"))
            )),
            r#"{"type":"error","code":"not_in_room","content":"not a member of backend","id":"c1"}"#
        );
        assert_eq!(
            text(|o| error(o, ErrorCode::RateLimited, "slow down", None)),
            r#"{"type":"error","code":"rate_limited","content":"slow down"}"#
        );
        let e = CommandError {
            code: ErrorCode::BadRequest,
            reason: "missing field: room",
        };
        assert_eq!(
            text(|o| command_error(o, &e, Some(&Id::Num(Number::from_u64(9))))),
            r#"{"type":"error","code":"bad_request","content":"missing field: room","id":9}"#
        );
    }

    #[test]
    fn pong_and_notifications() {
        assert_eq!(text(pong), r#"{"type":"pong"}"#);
        assert_eq!(
            text(|o| notification(o, "order.created", br#"{"order":7}"#, "e1", T, None)),
            r#"{"type":"order.created","data":{"order":7},"id":"e1","timestamp":"2026-12-01T10:00:00.123Z"}"#
        );
        assert_eq!(
            text(|o| notification(
                o,
                "announcement",
                b"{}",
                "e\u{2028}",
                T,
                Some(("general", 43))
            )),
            r#"{"type":"announcement","data":{},"id":"e\u2028","timestamp":"2026-12-01T10:00:00.123Z","room":"general","seq":43}"#
        );
    }

    #[test]
    fn appends_without_touching_earlier_bytes() {
        let mut out = b"prefix".to_vec();
        pong(&mut out);
        pong(&mut out);
        assert_eq!(out, br#"prefix{"type":"pong"}{"type":"pong"}"#);
    }
}
