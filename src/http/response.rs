//! Statuses and responses: everything the server answers over plain HTTP, written into the
//! connection's output in one piece. Every response closes the connection
//! (`Connection: close`): the side door serves one request per connection.

use std::io::Write as _;

/// An HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Status(pub u16);

impl Status {
    /// 200 OK.
    pub const OK: Self = Self(200);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthorized.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not Found.
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// 408 Request Timeout.
    pub const REQUEST_TIMEOUT: Self = Self(408);
    /// 411 Length Required.
    pub const LENGTH_REQUIRED: Self = Self(411);
    /// 413 Content Too Large.
    pub const PAYLOAD_TOO_LARGE: Self = Self(413);
    /// 426 Upgrade Required.
    pub const UPGRADE_REQUIRED: Self = Self(426);
    /// 429 Too Many Requests.
    pub const TOO_MANY_REQUESTS: Self = Self(429);
    /// 431 Request Header Fields Too Large.
    pub const HEADER_FIELDS_TOO_LARGE: Self = Self(431);
    /// 500 Internal Server Error.
    pub const INTERNAL_ERROR: Self = Self(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);

    /// Reason phrase for the status line.
    pub fn reason(self) -> &'static str {
        match self.0 {
            101 => "Switching Protocols",
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            413 => "Content Too Large",
            426 => "Upgrade Required",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            _ => "Unknown",
        }
    }
}

/// A complete response: status, content type, extra headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: Status,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// Further headers (`Content-Length` and `Connection` are always written).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A plain-text response whose body is `text` and a newline.
    pub fn text(status: Status, text: &str) -> Self {
        let mut body = Vec::with_capacity(text.len() + 1);
        body.extend_from_slice(text.as_bytes());
        body.push(b'\n');
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body,
        }
    }

    /// A JSON response (the body must already be JSON).
    pub fn json(status: Status, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// A response with any content type.
    pub fn with_type(status: Status, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Appends the response to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        write_head(
            out,
            self.status,
            self.content_type,
            self.headers.iter().map(|(k, v)| (*k, v.as_str())),
            self.body.len(),
        );
        out.extend_from_slice(&self.body);
    }
}

/// Writes a status line and headers for a body of `body_len` bytes, closing the connection.
pub fn write_head<'h>(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    body_len: usize,
) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\nConnection: close\r\n",
        status.0,
        status.reason()
    );
    for (k, v) in headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_complete_response() {
        let mut out = Vec::new();
        Response::text(Status::METHOD_NOT_ALLOWED, "method not allowed")
            .header("Allow", "GET")
            .write_to(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 19\r\nConnection: close\r\nAllow: GET\r\n\r\nmethod not allowed\n"
        );
        let mut out = Vec::new();
        Response::json(Status::OK, b"{}".to_vec()).write_to(&mut out);
        assert!(out.ends_with(b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"));
    }
}
