//! A gateway client's message, sans-IO: `{"type":"driver.cmd.trip_accept","data":<any JSON>,
//! "id":<string or number>}`, read once for the three members the gateway uses.
//!
//! The whole message must be strict JSON (the rules of [`super::body`]); `type` a string that
//! is a valid routing key (1–255 bytes, [`super::topic::validate`]); `data` any JSON value,
//! kept as the exact bytes the client wrote (absent: `null`); `id` optional, a string or a
//! number, kept as written so that the answer echoes it byte for byte. Any other member
//! (`ownerId` included: the owner is always the authenticated user) is ignored. Each member at
//! most once.
//!
//! Owns the format only: no sockets, no AMQP, no logging. Never panics on input; allocates
//! only for a `type` written with escapes.

use std::borrow::Cow;
use std::ops::Range;

use super::body::{key_is, object_members, string_value, BodyError};
use super::topic;

/// The `data` of a message without one.
pub const NULL_DATA: &[u8] = b"null";

/// A client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCommand<'a> {
    /// The routing key (unescaped).
    pub kind: Cow<'a, str>,
    /// `data`'s exact text ([`NULL_DATA`] when absent).
    pub data: &'a [u8],
    /// `id`'s exact text (a JSON string with its quotes, or a number).
    pub id: Option<&'a [u8]>,
}

/// Why a client message was refused. [`CommandError::is_json`] tells a `bad_json` from a
/// `bad_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not a JSON object.
    #[error("{0}")]
    Json(BodyError),
    /// No `type`.
    #[error("missing field: type")]
    NoType,
    /// `type` not a string.
    #[error("type must be a string")]
    TypeNotString,
    /// `type` not a routing key.
    #[error("type is not a valid routing key (1-255 bytes)")]
    BadType,
    /// `id` neither a string nor a number.
    #[error("id must be a string or a number")]
    BadId,
    /// A member twice.
    #[error("duplicate field: {0}")]
    Duplicate(&'static str),
}

impl CommandError {
    /// True when the message is not a JSON object at all (`bad_json`).
    pub fn is_json(&self) -> bool {
        matches!(self, Self::Json(_))
    }
}

/// Reads a client message; on error also returns the `id` if one was found before the fault
/// (so the error can carry it).
pub fn parse(msg: &[u8]) -> Result<ClientCommand<'_>, (CommandError, Option<&[u8]>)> {
    let text =
        std::str::from_utf8(msg).map_err(|_| (CommandError::Json(BodyError::NotUtf8), None))?;
    let mut kind: Option<(Range<usize>, bool, bool)> = None;
    let mut data: Option<Range<usize>> = None;
    let mut id: Option<Range<usize>> = None;
    let mut fault: Option<CommandError> = None;
    let walked = object_members(text, |m| {
        let mut once = |slot: bool, name: &'static str| {
            if slot && fault.is_none() {
                fault = Some(CommandError::Duplicate(name));
            }
        };
        if key_is(text, m.key.clone(), m.key_escaped, "type") {
            once(kind.is_some(), "type");
            kind = Some((m.value.clone(), m.escaped, m.is_string()));
        } else if key_is(text, m.key.clone(), m.key_escaped, "data") {
            once(data.is_some(), "data");
            data = Some(m.value.clone());
        } else if key_is(text, m.key.clone(), m.key_escaped, "id") {
            once(id.is_some(), "id");
            let ok = m.is_string() || matches!(m.first, Some(b'-' | b'0'..=b'9'));
            if !ok && fault.is_none() {
                fault = Some(CommandError::BadId);
            }
            id = Some(m.value.clone());
        }
        Ok(())
    });
    let bytes = |r: &Range<usize>| msg.get(r.clone()).unwrap_or_default();
    if let Err(e) = walked {
        return Err((CommandError::Json(e), None));
    }
    let id_bytes = match fault {
        Some(CommandError::BadId) => None,
        _ => id.as_ref().map(bytes),
    };
    if let Some(f) = fault {
        return Err((f, id_bytes));
    }
    let (range, escaped, is_string) = kind.ok_or((CommandError::NoType, id_bytes))?;
    if !is_string {
        return Err((CommandError::TypeNotString, id_bytes));
    }
    let kind = string_value(text, range, escaped).map_err(|_| (CommandError::BadType, id_bytes))?;
    if topic::validate(&kind).is_err() {
        return Err((CommandError::BadType, id_bytes));
    }
    Ok(ClientCommand {
        kind,
        data: data.as_ref().map_or(NULL_DATA, bytes),
        id: id_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> ClientCommand<'_> {
        parse(s.as_bytes()).unwrap()
    }

    fn err(s: &str) -> (CommandError, Option<&[u8]>) {
        parse(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn reads_type_data_and_id_verbatim() {
        let c = ok(
            r#"{"type":"driver.cmd.trip_accept","data":{"b":1, "a":18446744073709551617,"s":"\u00e9"},"id":"x\"1"}"#,
        );
        assert_eq!(c.kind, "driver.cmd.trip_accept");
        assert_eq!(c.data, br#"{"b":1, "a":18446744073709551617,"s":"\u00e9"}"#);
        assert_eq!(c.id, Some(&br#""x\"1""#[..]));
        let c = ok(r#" {"id":-1.5e3,"type":"a\u002eb"} "#);
        assert_eq!(c.kind, "a.b");
        assert_eq!(c.data, NULL_DATA);
        assert_eq!(c.id, Some(&b"-1.5e3"[..]));
    }

    #[test]
    fn owner_members_are_ignored() {
        let c = ok(r#"{"ownerId":"someone-else","type":"t","data":{"ownerId":"x"}}"#);
        assert_eq!(c.data, br#"{"ownerId":"x"}"#);
    }

    #[test]
    fn refusals() {
        assert!(matches!(err("nope").0, CommandError::Json(_)));
        assert!(err("[1]").0.is_json());
        assert!(err("{\"type\":\"a\",}").0.is_json());
        assert_eq!(
            err(r#"{"data":1,"id":7}"#),
            (CommandError::NoType, Some(&b"7"[..]))
        );
        assert_eq!(err(r#"{"type":5}"#).0, CommandError::TypeNotString);
        assert_eq!(err(r#"{"type":""}"#).0, CommandError::BadType);
        let long = format!(r#"{{"type":"{}"}}"#, "a".repeat(256));
        assert_eq!(parse(long.as_bytes()).unwrap_err().0, CommandError::BadType);
        assert_eq!(err(r#"{"type":"a","id":{}}"#), (CommandError::BadId, None));
        assert_eq!(err(r#"{"type":"a","id":true}"#).0, CommandError::BadId);
        assert_eq!(
            err(r#"{"type":"a","type":"b"}"#).0,
            CommandError::Duplicate("type")
        );
        assert_eq!(
            err(r#"{"type":"a","data":1,"data":2,"id":"q"}"#),
            (CommandError::Duplicate("data"), Some(&br#""q""#[..]))
        );
        assert!(!CommandError::NoType.is_json());
    }
}
