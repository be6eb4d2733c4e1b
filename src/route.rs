//! The route table: which request path is served by which endpoint.
//!
//! Owns only the mapping from path to [`Route`]; what an endpoint does with a message is the
//! reactor's dispatch (`/echo`) or the hub's (`/broadcast`). Plain HTTP endpoints (health,
//! metrics, the publish API) and the chat endpoint join this table as new variants; the
//! reactor asks [`Route::is_websocket`] before it validates an upgrade.

/// An endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Route {
    /// Echoes every data message with its opcode.
    Echo,
    /// Relays every data message to every `/broadcast` connection on every worker.
    Broadcast,
}

impl Route {
    /// Endpoints reached by a WebSocket upgrade (all of them, for now).
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Echo | Self::Broadcast)
    }
}

/// Path → endpoint. Exact matches only; the query string is not part of the path.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<(&'static str, Route)>,
}

impl Default for Router {
    fn default() -> Self {
        Self {
            routes: vec![("/echo", Route::Echo), ("/broadcast", Route::Broadcast)],
        }
    }
}

impl Router {
    /// The endpoint for `path`, if any.
    pub fn resolve(&self, path: &str) -> Option<Route> {
        self.routes
            .iter()
            .find(|(p, _)| *p == path)
            .map(|&(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_paths() {
        let r = Router::default();
        assert_eq!(r.resolve("/echo"), Some(Route::Echo));
        assert_eq!(r.resolve("/broadcast"), Some(Route::Broadcast));
        assert_eq!(r.resolve("/echo/"), None);
        assert_eq!(r.resolve("/"), None);
    }
}
