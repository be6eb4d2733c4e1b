//! Plain HTTP/1.1, sans-IO: request heads that arrive in pieces, request bodies by
//! `Content-Length`, statuses and responses.
//!
//! Owns the HTTP framing that every endpoint shares: the WebSocket upgrade rules live in
//! [`crate::ws::handshake`] (which reads a [`RequestHead`]), admission policy (origins,
//! tokens, rates) in [`crate::guard`], and what each path answers in the applications. Must not
//! touch sockets, clocks or logging.

pub mod request;
pub mod response;

pub use request::{
    body, body_len, parse_head, BodyError, RequestError, RequestHead, DEFAULT_MAX_HEAD, MAX_HEADERS,
};
pub use response::{Response, Status};
