//! The Redis relay: what joins several corecast nodes into one service (issue 9).
//!
//! The relay thread will live here: one per node, owning the node's Redis connections (one
//! subscriber, one for commands), driven by its own mio `Poll` with non-blocking, pipelined
//! writes, and talking to the workers only through channels and their `mio::Waker`s. It must
//! never be called from a worker, and nothing outside it talks to Redis.
//!
//! This part is sans-IO: [`resp`] encodes commands and decodes replies (RESP2) from bytes the
//! caller reads, and [`envelope`] writes and parses the header the relay puts in front of every
//! message it publishes or stores. Neither opens a socket, reads a clock or logs a payload, so
//! both are tested byte for byte and fuzzed (`fuzz/fuzz_targets/{resp,relay_envelope}.rs`).

pub mod envelope;
pub mod resp;
