//! corecast: a WebSocket engine and real-time chat & notification server.
//!
//! - [`ws`]: sans-IO RFC 6455 (handshake, frames, assembly, UTF-8, close rules).
//! - [`reactor`]: thread-per-core mio workers that own every socket.
//! - [`hub`]: per-worker delivery groups; frames encoded once, shared by every recipient.
//! - [`route`]: path → endpoint.
//! - [`config`]: the server's settings with their defaults.
//! - [`guard`]: admission checks before an upgrade (client IP, rate limits, Origin, JWT).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod guard;
pub mod hub;
pub mod reactor;
pub mod route;
pub mod ws;

pub use config::Config;
pub use reactor::{Server, ServerHandle};
