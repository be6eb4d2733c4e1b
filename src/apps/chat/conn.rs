//! One chat connection's state (boxed inside the reactor's connection): who it is, which
//! rooms it is in, and its message-rate budget.

use std::sync::Arc;

use crate::guard::ratelimit::TokenBucket;
use crate::hub::Slot;
use crate::reactor::Millis;

/// Rejected messages within [`STRIKE_WINDOW_MS`] beyond which (more than twice the burst) a
/// connection is closed with 1008.
pub const STRIKE_WINDOW_MS: Millis = 10_000;

/// A room the connection is in, or asked to join.
#[derive(Debug)]
pub struct Joined {
    /// The room.
    pub room: Arc<str>,
    /// Its slot among the room's local members; `None` while the join is on its way to the
    /// room's home (the connection receives the room's messages once it is back).
    pub slot: Option<Slot>,
}

/// A `/ws` connection.
#[derive(Debug)]
pub struct ChatConn {
    /// The user's id.
    pub uid: Arc<str>,
    /// The user's display name.
    pub name: Arc<str>,
    /// The user's key in the worker's local users (set when the connection opens).
    pub user: u32,
    /// Rooms joined or being joined, `general` first. At most `--max-rooms`.
    pub rooms: Vec<Joined>,
    /// Message rate (`--msg-rate`, `--msg-burst`).
    pub bucket: TokenBucket,
    /// Messages refused for the rate lately.
    pub strikes: Strikes,
}

/// Messages refused for the rate within the current [`STRIKE_WINDOW_MS`] (the chat's and the
/// gateway's connections).
#[derive(Debug, Default, Clone, Copy)]
pub struct Strikes {
    count: u32,
    since: Millis,
}

impl Strikes {
    /// Counts a refused message; true when the connection has now been refused more than
    /// `max` times within the strike window.
    pub fn strike(&mut self, now: Millis, max: u32) -> bool {
        if now.wrapping_sub(self.since) >= STRIKE_WINDOW_MS {
            self.since = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > max
    }
}

impl ChatConn {
    /// A connection of user `uid` about to open.
    pub fn new(uid: Arc<str>, name: Arc<str>, bucket: TokenBucket) -> Self {
        Self {
            uid,
            name,
            user: u32::MAX,
            // general and, typically, one more room: no reallocation, no slack.
            rooms: Vec::with_capacity(2),
            bucket,
            strikes: Strikes::default(),
        }
    }

    /// The entry for `room`, if joined or joining.
    pub fn room(&self, room: &str) -> Option<&Joined> {
        self.rooms.iter().find(|j| &*j.room == room)
    }
}
