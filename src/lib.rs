//! corecast: a WebSocket engine and real-time chat & notification server.
//!
//! - [`http`]: sans-IO HTTP/1.1 request heads, bodies and responses.
//! - [`ws`]: sans-IO RFC 6455/7692 (upgrade rules, frames, assembly, UTF-8, close, deflate).
//! - [`reactor`]: thread-per-core mio workers that own every socket, and the [`reactor::App`]
//!   seam through which applications act on connections.
//! - [`hub`]: per-worker delivery groups (who receives a frame encoded once).
//! - [`chat`]: the chat protocol, sans-IO: client commands, server messages, JSON writer.
//! - [`apps`]: the applications served (`/ws` chat, `/echo`, `/broadcast`, the HTTP side
//!   door) and the path router.
//! - [`config`]: the server's settings with their defaults.
//! - [`guard`]: admission checks before an upgrade (client IP, rate limits, Origin, JWT).
//! - [`relay`]: what joins nodes through Redis; so far its sans-IO parts (RESP2 codec, message
//!   envelope).
//! - [`amqp`]: the gateway's RabbitMQ bridge thread and its sans-IO parts (message body,
//!   topic patterns).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod amqp;
pub mod apps;
pub mod chat;
pub mod config;
pub mod guard;
pub mod http;
pub mod hub;
pub mod link;
pub mod reactor;
pub mod relay;
pub mod ws;

pub use config::Config;
pub use reactor::{Server, ServerHandle};
