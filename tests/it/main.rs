//! Integration tests over real sockets: each test starts its own `corecast` process on an
//! ephemeral port and talks to it with a hand-written raw client (for exact bytes and
//! violations) or tungstenite (for well-behaved peers). Tests run in parallel.
#![allow(clippy::unwrap_used)]

mod chat_client;
mod cluster;
mod fixture;
mod gateway;
mod harness;
mod rabbit;

mod admission;
mod api;
mod broadcast;
mod chat;
mod chat_history;
mod chat_order;
mod chat_rooms;
mod chat_slow;
mod close;
mod compression;
mod config;
mod echo;
mod gateway_auth;
mod gateway_data;
mod gateway_lifecycle;
mod gateway_malformed;
mod gateway_nodes;
mod gateway_offline;
mod gateway_outage;
mod gateway_ride;
mod gateway_upstream;
mod handshake;
mod limits;
mod metrics;
mod protocol;
mod relay_chat;
mod relay_failover;
mod relay_notify;
mod relay_order;
mod shutdown;
mod slow;
mod timeouts;
