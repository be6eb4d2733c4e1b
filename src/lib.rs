//! corecast: a WebSocket engine and real-time chat & notification server.
//!
//! - [`ws`]: sans-IO RFC 6455 (handshake, frames, assembly, UTF-8, close rules).
//! - [`reactor`]: thread-per-core mio workers that own every socket.
//! - [`config`]: the server's settings with their defaults.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod ws;
