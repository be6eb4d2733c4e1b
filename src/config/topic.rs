//! AMQP topic patterns, as the gateway's `bind` keys and `upstream` allow-lists are written:
//! parsing (the rules RabbitMQ's topic exchange and AMQP's `shortstr` impose, plus refusing
//! what can only be a typo) and matching a routing key. Pure functions: no IO, no broker.

/// An AMQP topic pattern: words separated by `.`, where the word `*` matches exactly one word
/// and `#` matches zero or more words (`trip.event.*`, `driver.cmd.#`).
///
/// Invariants (checked by [`TopicPattern::parse`]): 1 to 255 bytes (an AMQP `shortstr`); no
/// empty word (no leading, trailing or doubled dot); `*` and `#` only as whole words; no
/// control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern(String);

/// Longest pattern or routing key AMQP can carry (`shortstr`), bytes.
pub const MAX_TOPIC_BYTES: usize = 255;

/// Why a topic pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The empty string.
    #[error("empty topic pattern")]
    Empty,
    /// Over [`MAX_TOPIC_BYTES`].
    #[error("topic pattern is {0} bytes, over AMQP's 255")]
    TooLong(usize),
    /// A leading, trailing or doubled `.`.
    #[error("empty word in topic pattern {0:?} (a dot at an end, or two dots)")]
    EmptyWord(String),
    /// `*` or `#` inside a word (`trip*`, `a.#b`).
    #[error("`*` and `#` must be whole words in topic pattern {0:?}")]
    Wildcard(String),
    /// A control character.
    #[error("control character in topic pattern {0:?}")]
    Control(String),
}

impl TopicPattern {
    /// Checks `s` against the invariants above.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s.len() > MAX_TOPIC_BYTES {
            return Err(PatternError::TooLong(s.len()));
        }
        if s.chars().any(char::is_control) {
            return Err(PatternError::Control(s.to_owned()));
        }
        for word in s.split('.') {
            if word.is_empty() {
                return Err(PatternError::EmptyWord(s.to_owned()));
            }
            if word.len() > 1 && word.contains(['*', '#']) {
                return Err(PatternError::Wildcard(s.to_owned()));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `routing_key` matches, as a RabbitMQ topic exchange decides: word by word,
    /// `*` for exactly one word, `#` for zero or more. A routing key's words are what lies
    /// between its dots (so `""` is one empty word, which `*` and `#` match). Time and memory
    /// are O(pattern words x key words), whatever the number of `#`.
    pub fn matches(&self, routing_key: &str) -> bool {
        let pat: Vec<&str> = self.0.split('.').collect();
        let key: Vec<&str> = routing_key.split('.').collect();
        // row[j]: pat[i..] matches key[j..], computed from the last pattern word back.
        let mut row = vec![false; key.len() + 1];
        row[key.len()] = true;
        for p in pat.iter().rev() {
            let mut next = vec![false; key.len() + 1];
            for j in (0..=key.len()).rev() {
                next[j] = match *p {
                    // Zero words (row[j]) or one more word (next[j + 1]).
                    "#" => row[j] || (j < key.len() && next[j + 1]),
                    "*" => j < key.len() && row[j + 1],
                    w => j < key.len() && key[j] == w && row[j + 1],
                };
            }
            row = next;
        }
        row[0]
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious recursive reference (exponential in the number of `#`, fine for tests).
    fn reference(pat: &[&str], key: &[&str]) -> bool {
        match pat.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|skip| reference(rest, &key[skip..])),
            Some((&"*", rest)) => !key.is_empty() && reference(rest, &key[1..]),
            Some((w, rest)) => key.first() == Some(w) && reference(rest, &key[1..]),
        }
    }

    #[test]
    fn refuses_what_amqp_or_the_operator_cannot_mean() {
        assert_eq!(TopicPattern::parse(""), Err(PatternError::Empty));
        let long = "a".repeat(256);
        assert_eq!(TopicPattern::parse(&long), Err(PatternError::TooLong(256)));
        assert!(TopicPattern::parse(&"a".repeat(255)).is_ok());
        for s in [".a", "a.", "a..b", "."] {
            assert!(
                matches!(TopicPattern::parse(s), Err(PatternError::EmptyWord(_))),
                "{s}"
            );
        }
        for s in ["trip*", "a.#b", "**", "a.*#.b", "#x"] {
            assert!(
                matches!(TopicPattern::parse(s), Err(PatternError::Wildcard(_))),
                "{s}"
            );
        }
        assert!(matches!(
            TopicPattern::parse("a\nb"),
            Err(PatternError::Control(_))
        ));
        for s in [
            "#",
            "*",
            "trip.event.*",
            "driver.cmd.#",
            "a.*.#.b",
            "ünï.cödé",
        ] {
            assert_eq!(
                TopicPattern::parse(s).map(|p| p.to_string()).as_deref(),
                Ok(s)
            );
        }
    }

    #[test]
    fn matches_like_a_topic_exchange() {
        let m = |p: &str, k: &str| TopicPattern::parse(p).unwrap().matches(k);
        assert!(m("trip.event.*", "trip.event.driver_assigned"));
        assert!(!m("trip.event.*", "trip.event"));
        assert!(!m("trip.event.*", "trip.event.a.b"));
        assert!(m("trip.#", "trip"));
        assert!(m("trip.#", "trip.a.b.c"));
        assert!(!m("trip.#", "trips.a"));
        assert!(m("#", ""));
        assert!(m("#", "a.b"));
        assert!(m("*", ""));
        assert!(m("#.b.#", "b"));
        assert!(m("a.*.#.d", "a.b.c.d"));
        assert!(!m("a.*.#.d", "a.d"));
        assert!(m("driver.cmd.trip_accept", "driver.cmd.trip_accept"));
        assert!(!m("driver.cmd.trip_accept", "driver.cmd.trip_accept.x"));
    }

    #[test]
    fn matching_agrees_with_the_reference() {
        let words = ["a", "b", "*", "#"];
        let keys = [
            "", "a", "b", "a.b", "b.a", "a.a.b", "a.b.a.b", "b.b.b", "a..b",
        ];
        // Every pattern of up to four words over {a, b, *, #}.
        let mut pats = vec![String::new()];
        for _ in 0..4 {
            let mut longer = Vec::new();
            for p in &pats {
                for w in words {
                    longer.push(if p.is_empty() {
                        w.to_owned()
                    } else {
                        format!("{p}.{w}")
                    });
                }
            }
            pats.extend(longer);
        }
        for p in pats.iter().filter(|p| !p.is_empty()) {
            let pat = TopicPattern::parse(p).unwrap();
            let pw: Vec<&str> = p.split('.').collect();
            for k in keys {
                let kw: Vec<&str> = k.split('.').collect();
                assert_eq!(pat.matches(k), reference(&pw, &kw), "{p} vs {k:?}");
            }
        }
    }

    #[test]
    fn many_hashes_stay_fast() {
        let p = TopicPattern::parse(&["#"; 127].join(".")).unwrap();
        let key = ["x"; 127].join(".");
        assert!(p.matches(&key));
        assert!(!TopicPattern::parse(&format!("{}.y", ["#"; 126].join(".")))
            .unwrap()
            .matches(&key));
    }
}
