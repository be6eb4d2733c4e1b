//! The HTTP JSON API's request bodies (`POST /api/publish`, `/api/notify`, `/api/disconnect`)
//! and response bodies.
//!
//! Owns the bodies' fields and their validation; not the HTTP side (methods, paths, the API
//! key, size limits, statuses) and not delivery. Not on the hot path: parsing copies the body
//! and returns owned values. Rules: the body must be a JSON object (`bad json` otherwise);
//! unknown fields are ignored; a protocol field given twice is refused; an optional field
//! given as `null` is absent. `type` is 1–64 characters without control characters and not
//! one of the chat protocol's own message types; `data` is an object (default `{}`),
//! re-serialized compactly; an event `id` is 1–128 bytes without control characters.

use simd_json::{Node, StaticNode};

use super::json::{write_value, ObjectWriter};
use super::tape;
use super::validate::{is_event_type, is_reserved_event_type, is_room_name, is_user_id};

/// `POST /api/publish {"room":"x","type":"announcement","data":{…},"id":"optional"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Target room (a valid room name).
    pub room: String,
    /// The event type (the notification's `type`).
    pub event_type: String,
    /// The `data` object as compact JSON (`{}` when absent).
    pub data: Vec<u8>,
    /// The event id, if the caller chose one (otherwise the service generates one).
    pub id: Option<String>,
}

/// `POST /api/notify {"user":"alice","type":"order.created","data":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Target user id.
    pub user: String,
    /// Keep it for the user's next connection when the user is connected nowhere (with the
    /// relay on; default false).
    pub store: bool,
    /// The event type.
    pub event_type: String,
    /// The `data` object as compact JSON (`{}` when absent).
    pub data: Vec<u8>,
}

/// `POST /api/disconnect {"user":"alice"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// The user whose connections are closed.
    pub user: String,
}

/// Why a body was refused; the server answers 400 `{"error":"<this error's text>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Not JSON at all.
    #[error("body is not valid json")]
    BadJson,
    /// JSON, but not an object.
    #[error("body must be a json object")]
    NotObject,
    /// A field given twice.
    #[error("duplicate field: {0}")]
    Duplicate(&'static str),
    /// A required field absent or null.
    #[error("missing field: {0}")]
    Missing(&'static str),
    /// A field that must be a string is not.
    #[error("{0} must be a string")]
    NotString(&'static str),
    /// `room` is not `[A-Za-z0-9._-]{1,64}`.
    #[error("invalid room name")]
    BadRoom,
    /// `user` is not 1–128 bytes of printable UTF-8.
    #[error("invalid user id")]
    BadUser,
    /// `type` is empty, longer than 64 characters, or has control characters.
    #[error("type must be 1-64 characters without control characters")]
    BadType,
    /// `type` is one of the chat protocol's message types.
    #[error("type is reserved by the chat protocol")]
    ReservedType,
    /// `data` is not an object.
    #[error("data must be an object")]
    DataNotObject,
    /// `id` is empty, over 128 bytes, or has control characters.
    #[error("id must be 1-128 bytes without control characters")]
    BadId,
    /// `store` is not a boolean.
    #[error("store must be true or false")]
    NotBool,
}

impl ApiError {
    /// Appends `{"error":"<reason>"}`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_error(out, &self.to_string());
    }
}

/// Parses a publish body.
///
/// # Errors
/// [`ApiError`] for a body that breaks the module's rules.
pub fn parse_publish(body: &[u8]) -> Result<Publish, ApiError> {
    with_fields(
        body,
        ["room", "type", "data", "id"],
        |[room, kind, data, id]| {
            let room = required_str("room", room)?;
            if !is_room_name(room) {
                return Err(ApiError::BadRoom);
            }
            let event_type = event_type(kind)?;
            let data = data_object(data)?;
            let id = match optional_str("id", id)? {
                Some(id) if !is_user_id(id) => return Err(ApiError::BadId),
                id => id.map(str::to_owned),
            };
            Ok(Publish {
                room: room.to_owned(),
                event_type,
                data,
                id,
            })
        },
    )
}

/// Parses a notify body.
///
/// # Errors
/// [`ApiError`] for a body that breaks the module's rules.
pub fn parse_notify(body: &[u8]) -> Result<Notify, ApiError> {
    with_fields(
        body,
        ["user", "type", "data", "store"],
        |[user, kind, data, store]| {
            Ok(Notify {
                user: user_id(user)?,
                store: match store {
                    None | Some([Node::Static(StaticNode::Null), ..]) => false,
                    Some([Node::Static(StaticNode::Bool(b)), ..]) => *b,
                    Some(_) => return Err(ApiError::NotBool),
                },
                event_type: event_type(kind)?,
                data: data_object(data)?,
            })
        },
    )
}

/// Parses a disconnect body.
///
/// # Errors
/// [`ApiError`] for a body that breaks the module's rules.
pub fn parse_disconnect(body: &[u8]) -> Result<Disconnect, ApiError> {
    with_fields(body, ["user"], |[user]| {
        Ok(Disconnect {
            user: user_id(user)?,
        })
    })
}

/// A field's value: the tape from its first node.
type Value<'t, 'de> = Option<&'t [Node<'de>]>;

/// Parses `body` as an object and hands `f` the value of each of `keys` (absent → `None`).
fn with_fields<const N: usize, T>(
    body: &[u8],
    keys: [&'static str; N],
    f: impl FnOnce([Value<'_, '_>; N]) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut buf = body.to_vec();
    let mut tape = simd_json::to_tape(&mut buf).map_err(|_| ApiError::BadJson)?;
    if !tape::make_strict(body, &mut tape.0) {
        return Err(ApiError::BadJson);
    }
    let mut values: [Value<'_, '_>; N] = [None; N];
    let mut duplicate = None;
    let is_object = tape::for_each_field(&tape.0, |key, value| {
        if let Some(i) = keys.iter().position(|k| *k == key) {
            if values[i].is_some() {
                duplicate = duplicate.or(Some(keys[i]));
            }
            values[i] = Some(value);
        }
    });
    if !is_object {
        return Err(ApiError::NotObject);
    }
    if let Some(key) = duplicate {
        return Err(ApiError::Duplicate(key));
    }
    f(values)
}

fn optional_str<'de>(name: &'static str, v: Value<'_, 'de>) -> Result<Option<&'de str>, ApiError> {
    match v.and_then(|v| v.first()) {
        None | Some(Node::Static(StaticNode::Null)) => Ok(None),
        Some(Node::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::NotString(name)),
    }
}

fn required_str<'de>(name: &'static str, v: Value<'_, 'de>) -> Result<&'de str, ApiError> {
    optional_str(name, v)?.ok_or(ApiError::Missing(name))
}

fn user_id(v: Value<'_, '_>) -> Result<String, ApiError> {
    let user = required_str("user", v)?;
    if !is_user_id(user) {
        return Err(ApiError::BadUser);
    }
    Ok(user.to_owned())
}

fn event_type(v: Value<'_, '_>) -> Result<String, ApiError> {
    let kind = required_str("type", v)?;
    if !is_event_type(kind) {
        return Err(ApiError::BadType);
    }
    if is_reserved_event_type(kind) {
        return Err(ApiError::ReservedType);
    }
    Ok(kind.to_owned())
}

fn data_object(v: Value<'_, '_>) -> Result<Vec<u8>, ApiError> {
    let nodes = match v {
        None => return Ok(b"{}".to_vec()),
        Some(nodes) => nodes,
    };
    match nodes.first() {
        Some(Node::Static(StaticNode::Null)) => Ok(b"{}".to_vec()),
        Some(Node::Object { .. }) => {
            let mut out = Vec::new();
            // A tape from the parser is always complete and finite.
            write_value(&mut out, nodes).map_err(|_| ApiError::DataNotObject)?;
            Ok(out)
        }
        _ => Err(ApiError::DataNotObject),
    }
}

/// Appends `{"error":"<reason>"}`, the body of every 400 answer.
pub fn write_error(out: &mut Vec<u8>, reason: &str) {
    ObjectWriter::new(out).str("error", reason);
}

/// Appends `{"delivered":N,"seq":S}`, the answer to a publish.
pub fn write_published(out: &mut Vec<u8>, delivered: u64, seq: u64) {
    ObjectWriter::new(out)
        .u64("delivered", delivered)
        .u64("seq", seq);
}

/// Appends `{"delivered":N}`, the answer to a notify.
pub fn write_delivered(out: &mut Vec<u8>, delivered: u64) {
    ObjectWriter::new(out).u64("delivered", delivered);
}

/// Appends `{"disconnected":N}`, the answer to a disconnect.
pub fn write_disconnected(out: &mut Vec<u8>, disconnected: u64) {
    ObjectWriter::new(out).u64("disconnected", disconnected);
}

/// Appends `{"rooms":[{"room":…,"members":N},…]}` (`GET /api/rooms`) from (room, members)
/// pairs in the caller's order.
pub fn write_rooms<'a>(out: &mut Vec<u8>, rooms: impl IntoIterator<Item = (&'a str, u64)>) {
    let mut o = ObjectWriter::new(out);
    let mut list = o.array("rooms");
    for (room, members) in rooms {
        list.object().str("room", room).u64("members", members);
    }
}

/// Appends `{"room":…,"users":[…]}` (`GET /api/rooms/{room}/users`).
pub fn write_room_users<I, S>(out: &mut Vec<u8>, room: &str, users: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    ObjectWriter::new(out)
        .str("room", room)
        .str_array("users", users);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(body: &str) -> Result<Publish, ApiError> {
        parse_publish(body.as_bytes())
    }

    #[test]
    fn publish_full_and_minimal() {
        assert_eq!(
            publish(
                r#"{"room":"x","type":"announcement","data":{"a":[1, 2.5, "\u2028"], "b" : {}},"id":"e1","extra":[{}]}"#
            ),
            Ok(Publish {
                room: "x".into(),
                event_type: "announcement".into(),
                data: br#"{"a":[1,2.5,"\u2028"],"b":{}}"#.to_vec(),
                id: Some("e1".into()),
            })
        );
        assert_eq!(
            publish(r#"{"room":"x","type":"t"}"#),
            Ok(Publish {
                room: "x".into(),
                event_type: "t".into(),
                data: b"{}".to_vec(),
                id: None
            })
        );
        assert_eq!(
            publish(r#"{"room":"x","type":"t","data":null,"id":null}"#),
            Ok(Publish {
                room: "x".into(),
                event_type: "t".into(),
                data: b"{}".to_vec(),
                id: None
            })
        );
    }

    #[test]
    fn publish_errors() {
        let cases: &[(&str, ApiError)] = &[
            ("", ApiError::BadJson),
            ("{", ApiError::BadJson),
            (
                r#"{"room":"x","type":"t","data":{"s":"\ud800"}}"#,
                ApiError::BadJson,
            ),
            (
                "{\"room\":\"x\",\"type\":\"t\",\"data\":{\"n\":1\u{0}2}}",
                ApiError::BadJson,
            ),
            (
                r#"{"room":"x","type":"t","data":{"n":12345678901234567890x}}"#,
                ApiError::BadJson,
            ),
            ("[]", ApiError::NotObject),
            ("\"x\"", ApiError::NotObject),
            (r#"{"type":"t"}"#, ApiError::Missing("room")),
            (r#"{"room":null,"type":"t"}"#, ApiError::Missing("room")),
            (r#"{"room":5,"type":"t"}"#, ApiError::NotString("room")),
            (r#"{"room":"a b","type":"t"}"#, ApiError::BadRoom),
            (r#"{"room":"x"}"#, ApiError::Missing("type")),
            (r#"{"room":"x","type":1}"#, ApiError::NotString("type")),
            (r#"{"room":"x","type":""}"#, ApiError::BadType),
            (r#"{"room":"x","type":"a\nb"}"#, ApiError::BadType),
            (r#"{"room":"x","type":"chat"}"#, ApiError::ReservedType),
            (r#"{"room":"x","type":"error"}"#, ApiError::ReservedType),
            (
                r#"{"room":"x","type":"t","data":[]}"#,
                ApiError::DataNotObject,
            ),
            (
                r#"{"room":"x","type":"t","data":"{}"}"#,
                ApiError::DataNotObject,
            ),
            (
                r#"{"room":"x","type":"t","data":1}"#,
                ApiError::DataNotObject,
            ),
            (
                r#"{"room":"x","type":"t","id":7}"#,
                ApiError::NotString("id"),
            ),
            (r#"{"room":"x","type":"t","id":""}"#, ApiError::BadId),
            (r#"{"room":"x","type":"t","id":"a\u0000"}"#, ApiError::BadId),
            (
                r#"{"room":"x","room":"y","type":"t"}"#,
                ApiError::Duplicate("room"),
            ),
            (
                r#"{"room":"x","type":"t","data":{},"data":{}}"#,
                ApiError::Duplicate("data"),
            ),
        ];
        for (body, e) in cases {
            assert_eq!(publish(body), Err(*e), "{body}");
        }
        let long = format!(r#"{{"room":"x","type":"{}"}}"#, "é".repeat(65));
        assert_eq!(publish(&long), Err(ApiError::BadType));
        let ok64 = format!(r#"{{"room":"x","type":"{}"}}"#, "é".repeat(64));
        assert!(publish(&ok64).is_ok());
        let long_id = format!(r#"{{"room":"x","type":"t","id":"{}"}}"#, "i".repeat(129));
        assert_eq!(publish(&long_id), Err(ApiError::BadId));
    }

    #[test]
    fn notify_and_disconnect() {
        assert_eq!(
            parse_notify(br#"{"user":"auth0|1","type":"order.created","data":{"order":7}}"#),
            Ok(Notify {
                user: "auth0|1".into(),
                store: false,
                event_type: "order.created".into(),
                data: br#"{"order":7}"#.to_vec(),
            })
        );
        let stored = parse_notify(br#"{"user":"u","type":"t","store":true}"#).unwrap();
        assert!(stored.store);
        assert!(
            !parse_notify(br#"{"user":"u","type":"t","store":null}"#)
                .unwrap()
                .store
        );
        assert_eq!(
            parse_notify(br#"{"user":"u","type":"t","store":1}"#),
            Err(ApiError::NotBool)
        );
        assert_eq!(
            parse_notify(br#"{"user":"u","type":"t"}"#).map(|n| n.data),
            Ok(b"{}".to_vec())
        );
        assert_eq!(
            parse_notify(br#"{"type":"t"}"#),
            Err(ApiError::Missing("user"))
        );
        assert_eq!(
            parse_notify(br#"{"user":"","type":"t"}"#),
            Err(ApiError::BadUser)
        );
        assert_eq!(
            parse_notify(br#"{"user":"u"}"#),
            Err(ApiError::Missing("type"))
        );
        assert_eq!(
            parse_notify(br#"{"user":"u","type":"t","data":[1]}"#),
            Err(ApiError::DataNotObject)
        );
        assert_eq!(
            parse_disconnect(br#"{"user":"alice","type":5}"#),
            Ok(Disconnect {
                user: "alice".into()
            })
        );
        assert_eq!(parse_disconnect(b"{}"), Err(ApiError::Missing("user")));
        assert_eq!(
            parse_disconnect(br#"{"user":["a"]}"#),
            Err(ApiError::NotString("user"))
        );
        assert_eq!(
            parse_disconnect(br#"{"user":"a\tb"}"#),
            Err(ApiError::BadUser)
        );
        assert_eq!(parse_disconnect(b"nope"), Err(ApiError::BadJson));
    }

    #[test]
    fn data_is_reserialized_to_the_same_value() {
        let body = r#"{"room":"x","type":"t","data":{"n":[0,-1,1e300,1.5,true,null,3077999.0000000000000000],"s":"\"\\\u0001😀","o":{"p":{"q":[]}}}}"#;
        let data = publish(body).unwrap().data;
        let expected: serde_json::Value = serde_json::from_str(body).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(got, expected["data"]);
        // Exactly rounded, which simd-json 0.14.3 alone is not (and serde_json without its
        // float_roundtrip feature is off by one ulp here).
        let body = r#"{"room":"x","type":"t","data":{"f":-95555555.755555522337}}"#;
        assert_eq!(publish(body).unwrap().data, br#"{"f":-95555555.75555553}"#);
    }

    #[test]
    fn responses() {
        let text = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            f(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            text(&|o| write_published(o, 3, 17)),
            r#"{"delivered":3,"seq":17}"#
        );
        assert_eq!(text(&|o| write_delivered(o, 0)), r#"{"delivered":0}"#);
        assert_eq!(text(&|o| write_disconnected(o, 2)), r#"{"disconnected":2}"#);
        assert_eq!(
            text(&|o| write_rooms(o, [("backend", 1), ("general", 3)])),
            r#"{"rooms":[{"room":"backend","members":1},{"room":"general","members":3}]}"#
        );
        assert_eq!(text(&|o| write_rooms(o, [])), r#"{"rooms":[]}"#);
        assert_eq!(
            text(&|o| write_room_users(o, "backend", ["ali", "vali"])),
            r#"{"room":"backend","users":["ali","vali"]}"#
        );
        assert_eq!(
            text(&|o| ApiError::Missing("room").write_json(o)),
            r#"{"error":"missing field: room"}"#
        );
        assert_eq!(
            text(&|o| write_error(o, "bad \"thing\"")),
            r#"{"error":"bad \"thing\""}"#
        );
    }
}
