//! The protocol's error codes and the error a client message parses to.
//!
//! Owns the exact code strings of `{"type":"error","code":…}`; what triggers which code in the
//! service (membership, rate limits) is the service's business.

/// The `code` of an error message. The strings are part of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `bad_json`: the message is not JSON, or not a JSON object.
    BadJson,
    /// `bad_request`: a missing or ill-typed field, an unknown or missing `type`, a bad room
    /// name or user id, `limit` out of range, `since` not a non-negative integer.
    BadRequest,
    /// `too_long`: `content` over the character limit.
    TooLong,
    /// `not_in_room`: the sender is not a member of the room.
    NotInRoom,
    /// `user_not_found`: a private message to a user with no connection.
    UserNotFound,
    /// `forbidden`: leaving `general`, joining beyond the room limit.
    Forbidden,
    /// `rate_limited`: over the per-connection message rate; the message was dropped.
    RateLimited,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::BadJson,
        ErrorCode::BadRequest,
        ErrorCode::TooLong,
        ErrorCode::NotInRoom,
        ErrorCode::UserNotFound,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
    ];

    /// The code as sent on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLong => "too_long",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::UserNotFound => "user_not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a client message was refused: a code and a short human text (the error message's
/// `content`). The text is static, so refusing a message allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct CommandError {
    /// The protocol code.
    pub code: ErrorCode,
    /// Lowercase, one short sentence without a final period, e.g. `missing field: room`.
    pub reason: &'static str,
}

impl CommandError {
    pub(crate) const fn new(code: ErrorCode, reason: &'static str) -> Self {
        Self { code, reason }
    }

    pub(crate) const fn bad_request(reason: &'static str) -> Self {
        Self::new(ErrorCode::BadRequest, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_protocol_strings() {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "bad_json",
                "bad_request",
                "too_long",
                "not_in_room",
                "user_not_found",
                "forbidden",
                "rate_limited"
            ]
        );
        assert_eq!(ErrorCode::Forbidden.to_string(), "forbidden");
    }

    #[test]
    fn error_display() {
        let e = CommandError::bad_request("missing field: room");
        assert_eq!(e.to_string(), "bad_request: missing field: room");
    }
}
