//! The chat layer's JSON protocol, sans-IO: client commands in, server messages out.
//!
//! Owns the wire format of `GET /ws` chat messages and of the HTTP JSON API bodies: parsing
//! (simd-json, in place, into a reused tape), validation, and the outgoing JSON writer. Pure
//! functions and types only: no sockets, no clock reads (timestamps come in as unix
//! milliseconds), no threads, no logging of payloads. Rooms, users and delivery live in the
//! chat service built on top of this.
//!
//! - [`json`]: escaped strings, numbers, object/array builders, tape re-serialization.
//! - [`tape`]: strict simd-json parsing (its 0.14.3 leniencies refused or repaired), fields.
//! - [`time`]: RFC 3339 UTC timestamps with milliseconds.
//! - [`validate`]: room names, user ids, development usernames, event types.
//! - [`error`]: the protocol's error codes and a command's error.
//! - [`command`]: one client text message → a [`command::Command`] or an error, plus its `id`.
//! - [`wire`]: one encoder per server → client message.
//! - [`api`]: the HTTP JSON API bodies (publish, notify, disconnect) and responses.

pub mod api;
pub mod command;
pub mod error;
pub mod json;
pub mod tape;
pub mod time;
pub mod validate;
pub mod wire;
