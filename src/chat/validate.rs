//! Validation of the names the protocol carries: room names, user ids, development usernames,
//! API event types, and content length in characters.
//!
//! Pure predicates on `&str` (already UTF-8); owns the limits' constants. Must not know
//! messages or JSON.

/// Longest room name, in bytes (all allowed characters are ASCII).
pub const MAX_ROOM_NAME_LEN: usize = 64;
/// Longest user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 128;
/// Longest development username (`?username=`), in bytes (ASCII only).
pub const MAX_USERNAME_LEN: usize = 64;
/// Longest API event `type`, in characters (Unicode scalar values).
pub const MAX_EVENT_TYPE_CHARS: usize = 64;
/// Default longest `content`, in characters (Unicode scalar values, not UTF-16 units).
pub const DEFAULT_MAX_CONTENT_CHARS: usize = 2000;

/// Server → client message types; an API event may not use them as its `type`, so that a
/// notification is never mistaken for a chat message, an error or an ack.
pub const RESERVED_EVENT_TYPES: &[&str] = &[
    "ack",
    "chat",
    "error",
    "history",
    "pong",
    "private",
    "room.join",
    "room.leave",
    "room.list",
    "typing",
    "user.list",
    "welcome",
];

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// A room name: `[A-Za-z0-9._-]{1,64}`.
#[must_use]
pub fn is_room_name(s: &str) -> bool {
    (1..=MAX_ROOM_NAME_LEN).contains(&s.len()) && s.bytes().all(is_name_byte)
}

/// A development username (`?username=` without a JWT secret): `[A-Za-z0-9._-]{1,64}`.
#[must_use]
pub fn is_dev_username(s: &str) -> bool {
    (1..=MAX_USERNAME_LEN).contains(&s.len()) && s.bytes().all(is_name_byte)
}

/// A user id (JWT `sub`, or a development username): 1–128 bytes of printable UTF-8, that is
/// without control characters (Unicode `Cc`: U+0000–U+001F, U+007F–U+009F). Spaces, `|`, `@`
/// and non-ASCII letters are fine (`auth0|123`, an e-mail address).
#[must_use]
pub fn is_user_id(s: &str) -> bool {
    (1..=MAX_USER_ID_LEN).contains(&s.len()) && !s.chars().any(char::is_control)
}

/// An API event `type`: 1–64 characters, no control characters. (Whether it is reserved is
/// [`is_reserved_event_type`].)
#[must_use]
pub fn is_event_type(s: &str) -> bool {
    !s.is_empty() && !exceeds_chars(s, MAX_EVENT_TYPE_CHARS) && !s.chars().any(char::is_control)
}

/// Whether `s` is one of [`RESERVED_EVENT_TYPES`].
#[must_use]
pub fn is_reserved_event_type(s: &str) -> bool {
    RESERVED_EVENT_TYPES.contains(&s)
}

/// Whether `s` has more than `max` Unicode scalar values. Counts only when the byte length
/// could exceed `max` (a character is at least one byte).
#[must_use]
pub fn exceeds_chars(s: &str, max: usize) -> bool {
    s.len() > max && char_count(s) > max
}

/// The number of Unicode scalar values in `s`: bytes that do not continue a sequence.
fn char_count(s: &str) -> usize {
    s.bytes().filter(|&b| (b as i8) >= -0x40).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert!(is_room_name("general"));
        assert!(is_room_name("a"));
        assert!(is_room_name("Back-end_2.0"));
        assert!(is_room_name(&"x".repeat(64)));
        assert!(!is_room_name(&"x".repeat(65)));
        assert!(!is_room_name(""));
        for bad in ["a b", "a/b", "é", "a\0", "a:b", "#x", "a\u{2028}"] {
            assert!(!is_room_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn dev_usernames() {
        assert!(is_dev_username("ali"));
        assert!(is_dev_username("a.b-c_d9"));
        assert!(is_dev_username(&"u".repeat(64)));
        assert!(!is_dev_username(&"u".repeat(65)));
        assert!(!is_dev_username(""));
        assert!(!is_dev_username("auth0|123"));
        assert!(!is_dev_username("a@b.c"));
    }

    #[test]
    fn user_ids() {
        assert!(is_user_id("ali"));
        assert!(is_user_id("auth0|123"));
        assert!(is_user_id("ali@example.com"));
        assert!(is_user_id("Ali Veli"));
        assert!(is_user_id("şükrü"));
        assert!(is_user_id(&"x".repeat(128)));
        // 128 bytes limit, not characters: 43 three-byte characters are 129 bytes.
        assert!(is_user_id(&"€".repeat(42)));
        assert!(!is_user_id(&"€".repeat(43)));
        assert!(!is_user_id(&"x".repeat(129)));
        assert!(!is_user_id(""));
        for bad in ["a\0", "a\nb", "\t", "a\u{7f}", "a\u{85}", "a\u{9f}"] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn event_types() {
        assert!(is_event_type("order.created"));
        assert!(is_event_type("x"));
        assert!(is_event_type(&"é".repeat(64)));
        assert!(!is_event_type(&"é".repeat(65)));
        assert!(!is_event_type(""));
        assert!(!is_event_type("a\nb"));
        assert!(is_reserved_event_type("chat"));
        assert!(is_reserved_event_type("error"));
        assert!(!is_reserved_event_type("announcement"));
        assert!(!is_reserved_event_type("Chat"));
    }

    #[test]
    fn characters_are_scalar_values() {
        assert!(!exceeds_chars("", 0));
        assert!(exceeds_chars("a", 0));
        assert!(!exceeds_chars(&"a".repeat(2000), 2000));
        assert!(exceeds_chars(&"a".repeat(2001), 2000));
        // 2000 non-BMP characters are 4000 UTF-16 units and 8000 bytes, but 2000 characters.
        assert!(!exceeds_chars(&"😀".repeat(2000), 2000));
        assert!(exceeds_chars(&"😀".repeat(2001), 2000));
        assert!(!exceeds_chars(&"é".repeat(2000), 2000));
        assert_eq!(char_count("aé€😀"), 4);
    }
}
