//! AMQP topic routing keys and patterns, sans-IO: which names are valid, and whether a routing
//! key matches a pattern the way a RabbitMQ topic exchange matches a binding.
//!
//! A routing key is up to 255 bytes (an AMQP short string) of words separated by dots. In a
//! pattern, the word `*` matches exactly one word and `#` matches zero or more words; every
//! other word matches itself. The gateway uses [`matches()`] for an endpoint's `upstream` list
//! (which client `type`s may be published) and [`validate`] for every configured key and
//! pattern. Owns no IO and knows nothing of exchanges or connections.

/// The longest routing key or pattern (AMQP 0-9-1 `shortstr`), in bytes.
pub const MAX_LEN: usize = 255;

/// Why a routing key or pattern is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Empty.
    #[error("empty routing key or pattern")]
    Empty,
    /// Longer than [`MAX_LEN`] bytes.
    #[error("routing key or pattern over 255 bytes")]
    TooLong,
}

/// Whether `s` can be a routing key or binding pattern: 1–255 bytes. (RabbitMQ accepts any
/// bytes; an empty pattern binds only the empty key, which no service means.)
pub fn validate(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        Err(TopicError::Empty)
    } else if s.len() > MAX_LEN {
        Err(TopicError::TooLong)
    } else {
        Ok(())
    }
}

/// Whether routing key `key` matches topic pattern `pattern` (`*` one word, `#` zero or more).
/// Linear in the words of both (a `#` is tried at each position only once: the classic
/// wildcard-matching walk with one backtrack point per `#`).
pub fn matches(pattern: &str, key: &str) -> bool {
    let p = words(pattern);
    let k = words(key);
    let (mut pi, mut ki) = (0, 0);
    // Where to resume after the last `#`: (its pattern index, the key index it covers up to).
    let mut star: Option<(usize, usize)> = None;
    while ki < k.len() {
        match p.get(pi) {
            Some(&"#") => {
                star = Some((pi, ki));
                pi += 1;
            }
            Some(&w) if w == "*" || w == k[ki] => {
                pi += 1;
                ki += 1;
            }
            _ => match star {
                // Let the last `#` swallow one more word and retry.
                Some((sp, sk)) => {
                    star = Some((sp, sk + 1));
                    pi = sp + 1;
                    ki = sk + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|w| *w == "#")
}

/// The dot-separated words of a key or pattern; the empty string has none (as in RabbitMQ,
/// where `#` matches the empty key and `*` does not).
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rabbitmq_examples() {
        // From the RabbitMQ topic tutorial.
        let cases = [
            ("*.orange.*", "quick.orange.rabbit", true),
            ("*.*.rabbit", "quick.orange.rabbit", true),
            ("*.orange.*", "lazy.orange.elephant", true),
            ("lazy.#", "lazy.orange.elephant", true),
            ("*.orange.*", "quick.brown.fox", false),
            ("lazy.#", "lazy.brown.fox", true),
            ("lazy.#", "lazy.pink.rabbit", true),
            ("*.*.rabbit", "quick.brown.fox", false),
            ("*.orange.*", "orange", false),
            ("*.orange.*", "quick.orange.new.rabbit", false),
            ("lazy.#", "lazy.orange.new.rabbit", true),
            ("#", "", true),
            ("#", "a.b.c", true),
            ("lazy.#", "lazy", true),
            ("#.rabbit", "rabbit", true),
            ("a.#.b.#.c", "a.b.c", true),
            ("a.#.b.#.c", "a.x.b.y.z.c", true),
            ("a.#.b.#.c", "a.x.c", false),
            ("*", "", false),
            ("", "", true),
            ("", "a", false),
            ("a.*.c", "a..c", true),
            ("*", "a.b", false),
            ("driver.cmd.trip_accept", "driver.cmd.trip_accept", true),
            ("driver.cmd.trip_accept", "driver.cmd.trip_decline", false),
            ("driver.cmd.*", "driver.cmd.trip_accept", true),
            ("trip.event.*", "trip.event.driver_assigned", true),
            ("trip.event.*", "trip.event", false),
        ];
        for (p, k, want) in cases {
            assert_eq!(matches(p, k), want, "{p} ~ {k}");
        }
    }

    #[test]
    fn validation() {
        assert_eq!(validate(""), Err(TopicError::Empty));
        assert_eq!(validate(&"a".repeat(255)), Ok(()));
        assert_eq!(validate(&"a".repeat(256)), Err(TopicError::TooLong));
        assert_eq!(validate("trip.event.*"), Ok(()));
    }

    /// Exponential reference: the definition, recursively.
    fn reference(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| reference(rest, &k[i..])),
            Some((w, rest)) => {
                k.first().is_some_and(|x| *w == "*" || w == x) && reference(rest, &k[1..])
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_definition(
            p in prop::collection::vec(prop::sample::select(vec!["a", "b", "*", "#"]), 1..7),
            k in prop::collection::vec(prop::sample::select(vec!["a", "b", ""]), 1..7),
        ) {
            let (ps, ks) = (p.join("."), k.join("."));
            prop_assert_eq!(matches(&ps, &ks), reference(&words(&ps), &words(&ks)), "{} ~ {}", ps, ks);
        }
    }
}
