//! The HTTP side door on the WebSocket port: `GET /` (the demo chat page), `GET /health`,
//! `GET /metrics` and the JSON API under `/api/`.
//!
//! Owns routing and the HTTP rules of these paths (methods, the API key, body limits,
//! statuses); the chat service does what an API call asks (`Chat::api_*`), answering later
//! through the reactor's deferred responses. One request per connection (`Connection: close`).

pub mod metrics;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::chat::{json_error, Chat};
use super::{AppShared, ConnState, PeerMsg};
use crate::chat::api;
use crate::chat::json::ObjectWriter;
use crate::chat::validate::is_room_name;
use crate::http::{RequestHead, Response, Status};
use crate::reactor::{ConnId, Cx, Decision};

/// The demo chat page, embedded (no build step, no CDN).
const DEMO_PAGE: &str = include_str!("demo.html");
/// Largest API request body.
pub const MAX_API_BODY: usize = 64 << 10;

type SideCx<'a> = Cx<'a, ConnState, PeerMsg>;

/// Paths the side door serves (everything else is for the WebSocket apps or 404).
pub fn is_side_path(path: &str) -> bool {
    matches!(path, "/" | "/health" | "/metrics") || path == "/api" || path.starts_with("/api/")
}

/// An API call, from its path and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiRoute<'a> {
    Publish,
    Notify,
    Disconnect,
    Rooms,
    RoomUsers(&'a str),
}

impl<'a> ApiRoute<'a> {
    /// The call at `path`, and the method it takes; `None` for an unknown path.
    fn parse(path: &'a str) -> Option<(Self, &'static str)> {
        match path {
            "/api/publish" => Some((Self::Publish, "POST")),
            "/api/notify" => Some((Self::Notify, "POST")),
            "/api/disconnect" => Some((Self::Disconnect, "POST")),
            "/api/rooms" => Some((Self::Rooms, "GET")),
            _ => {
                let room = path.strip_prefix("/api/rooms/")?.strip_suffix("/users")?;
                Some((Self::RoomUsers(room), "GET"))
            }
        }
    }
}

/// The side door of one worker.
#[derive(Debug)]
pub struct SideDoor {
    shared: Arc<AppShared>,
}

impl SideDoor {
    /// For one worker.
    pub fn new(shared: Arc<AppShared>) -> Self {
        Self { shared }
    }

    /// A request for a side-door path.
    pub fn on_request(
        &mut self,
        id: ConnId,
        head: &RequestHead<'_>,
        chat: &mut Chat,
        cx: &mut SideCx<'_>,
    ) -> Decision<ConnState> {
        match head.path {
            "/" => page(head, "text/html; charset=utf-8", DEMO_PAGE.as_bytes()),
            "/health" => only_get(head).unwrap_or_else(|| Decision::Respond(self.health(cx))),
            "/metrics" => only_get(head).unwrap_or_else(|| {
                let relay = self.shared.relay.as_ref().map(|(r, _)| &*r.shared);
                let text = metrics::render(
                    &self.shared.reactor,
                    &self.shared.chat,
                    relay,
                    &self.shared.gateway,
                );
                Decision::Respond(Response::with_type(
                    Status::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text.into_bytes(),
                ))
            }),
            path => self.api(id, head, path, chat, cx),
        }
    }

    /// The body of an API call arrived.
    pub fn on_body(
        &mut self,
        id: ConnId,
        head: &RequestHead<'_>,
        body: &[u8],
        chat: &mut Chat,
        cx: &mut SideCx<'_>,
    ) -> Decision<ConnState> {
        let result = match ApiRoute::parse(head.path) {
            Some((ApiRoute::Publish, _)) => {
                api::parse_publish(body).map(|p| chat.api_publish(p, id, cx))
            }
            Some((ApiRoute::Notify, _)) => {
                api::parse_notify(body).map(|n| chat.api_notify(n, id, cx))
            }
            Some((ApiRoute::Disconnect, _)) => {
                api::parse_disconnect(body).map(|d| chat.api_disconnect(d, id, cx))
            }
            _ => return Decision::Respond(json_error(Status::NOT_FOUND, "no such api call")),
        };
        match result {
            Ok(()) => Decision::Defer(ConnState::Http),
            Err(e) => Decision::Respond(json_error(Status::BAD_REQUEST, &e.to_string())),
        }
    }

    fn health(&self, cx: &mut SideCx<'_>) -> Response {
        let chat = &self.shared.chat;
        let mut body = Vec::new();
        ObjectWriter::new(&mut body)
            .str("status", "ok")
            .u64("connections", chat.ws_open.load(Relaxed) as u64)
            .u64("rooms", chat.rooms_active.load(Relaxed) as u64)
            .u64("workers", cx.workers() as u64)
            .u64("uptime_s", chat.started.elapsed().as_secs())
            .str("relay", self.shared.relay_state().as_str())
            .str("amqp", self.shared.amqp_state().as_str());
        Response::json(Status::OK, body)
    }

    fn api(
        &mut self,
        id: ConnId,
        head: &RequestHead<'_>,
        path: &str,
        chat: &mut Chat,
        cx: &mut SideCx<'_>,
    ) -> Decision<ConnState> {
        // Refused calls have no effect: the key is checked before anything else is read.
        let Some(key) = &self.shared.chat.cfg.api_key else {
            return Decision::Respond(json_error(
                Status::FORBIDDEN,
                "the api is disabled (start the server with --api-key)",
            ));
        };
        if !bearer_matches(head.authorization, key.0.as_bytes()) {
            return Decision::Respond(
                json_error(Status::UNAUTHORIZED, "missing or wrong api key")
                    .header("WWW-Authenticate", "Bearer"),
            );
        }
        let Some((route, method)) = ApiRoute::parse(path) else {
            return Decision::Respond(json_error(Status::NOT_FOUND, "no such api call"));
        };
        if head.method != method {
            return Decision::Respond(
                json_error(Status::METHOD_NOT_ALLOWED, &format!("use {method}"))
                    .header("Allow", method),
            );
        }
        match route {
            ApiRoute::Publish | ApiRoute::Notify | ApiRoute::Disconnect => Decision::ReadBody {
                limit: MAX_API_BODY,
            },
            ApiRoute::Rooms => {
                chat.api_rooms(id, cx);
                Decision::Defer(ConnState::Http)
            }
            ApiRoute::RoomUsers(room) if is_room_name(room) => {
                chat.api_room_users(room, id, cx);
                Decision::Defer(ConnState::Http)
            }
            ApiRoute::RoomUsers(_) => {
                Decision::Respond(json_error(Status::NOT_FOUND, "no such room"))
            }
        }
    }
}

/// `None` for GET (go on), else the 405.
fn only_get(head: &RequestHead<'_>) -> Option<Decision<ConnState>> {
    (head.method != "GET").then(|| {
        Decision::Respond(
            Response::text(Status::METHOD_NOT_ALLOWED, "use GET").header("Allow", "GET"),
        )
    })
}

fn page(head: &RequestHead<'_>, content_type: &'static str, body: &[u8]) -> Decision<ConnState> {
    only_get(head).unwrap_or_else(|| {
        Decision::Respond(
            Response::with_type(Status::OK, content_type, body.to_vec())
                .header("Cache-Control", "no-cache")
                .header("X-Content-Type-Options", "nosniff"),
        )
    })
}

/// `Authorization: Bearer <key>` with the right key, compared in constant time.
fn bearer_matches(authorization: Option<&[u8]>, key: &[u8]) -> bool {
    let Some(v) = authorization else {
        return false;
    };
    let Some(given) = v
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case(b"bearer "))
        .map(|_| v[7..].trim_ascii())
    else {
        return false;
    };
    constant_time_eq(given, key)
}

/// Equal bytes, in time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_routes() {
        assert_eq!(
            ApiRoute::parse("/api/publish"),
            Some((ApiRoute::Publish, "POST"))
        );
        assert_eq!(
            ApiRoute::parse("/api/rooms/backend/users"),
            Some((ApiRoute::RoomUsers("backend"), "GET"))
        );
        assert_eq!(ApiRoute::parse("/api/rooms/backend"), None);
        assert_eq!(ApiRoute::parse("/api/nope"), None);
    }

    #[test]
    fn bearer_keys() {
        assert!(bearer_matches(Some(b"Bearer s3cret"), b"s3cret"));
        assert!(bearer_matches(Some(b"bearer s3cret "), b"s3cret"));
        assert!(!bearer_matches(Some(b"Bearer s3cre"), b"s3cret"));
        assert!(!bearer_matches(Some(b"Basic s3cret"), b"s3cret"));
        assert!(!bearer_matches(Some(b"Bearer"), b"s3cret"));
        assert!(!bearer_matches(None, b"s3cret"));
    }
}
