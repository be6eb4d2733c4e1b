//! Sans-IO RFC 6455: handshake, frames, masking, message assembly, UTF-8 and close rules.
//!
//! Everything here is a pure function or a state machine over byte slices. It must not touch
//! sockets, mio, clocks, threads or logging: the reactor feeds it bytes and acts on what it
//! returns, and fuzz targets drive it directly.

pub mod assemble;
pub mod client;
pub mod close;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;

pub use assemble::{Assembler, DataKind, Decoded, Event, MessageLimits, ProtocolError};
pub use close::{CloseCode, CloseFrame};
pub use frame::{FrameError, FrameHeader, HeaderRules, HeaderStatus, OpCode};
pub use handshake::UpgradeError;
