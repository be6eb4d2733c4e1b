//! corecast: a WebSocket engine and real-time chat & notification server.
//!
//! - [`ws`]: sans-IO RFC 6455 (handshake, frames, assembly, UTF-8, close rules).
//! - [`reactor`]: thread-per-core mio workers that own every socket.
//! - [`hub`]: per-worker delivery groups; frames encoded once, shared by every recipient.
//! - [`chat`]: the chat protocol, sans-IO: client commands, server messages, JSON writer.
//! - [`route`]: path → endpoint.
//! - [`config`]: the server's settings with their defaults.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod chat;
pub mod config;
pub mod hub;
pub mod reactor;
pub mod route;
pub mod ws;

pub use config::Config;
pub use reactor::{Server, ServerHandle};
