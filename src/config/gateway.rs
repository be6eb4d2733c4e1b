//! The event gateway's settings, typed: the RabbitMQ side (`[amqp]`) and the WebSocket
//! endpoints (`[[endpoint]]`) of a `--config` file, with the checks each value must pass on
//! its own. How they are read from TOML (and checked against the flags, e.g. `"jwt"` needs
//! `--jwt-secret`) is `config::file`'s job; running the bridge is [`crate::amqp`]'s, whose own
//! rules ([`crate::amqp::AmqpConfig::validate`], [`crate::amqp::topic::validate`]) every value
//! here passes too ([`AmqpConfig::to_bridge`]). No IO.

use super::Secret;
pub use crate::amqp::DataEncoding;

/// Default of `[amqp] owner_field`.
pub const DEFAULT_OWNER_FIELD: &str = crate::amqp::body::DEFAULT_OWNER_FIELD;
/// Default of `[amqp] prefetch`.
pub const DEFAULT_PREFETCH: u16 = 1000;

/// The gateway's RabbitMQ side as the `[amqp]` table writes it. [`AmqpConfig::to_bridge`]
/// makes the bridge's own [`crate::amqp::AmqpConfig`] of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// `amqp://[user[:password]@]host[:port][/vhost][?options]` (checked by [`check_amqp_url`];
    /// a secret: it usually holds a password). Required.
    pub url: Secret,
    /// The topic exchange events are consumed from and client commands published to (declared
    /// durable if absent). Required; 1-255 of `A-Z a-z 0-9 - _ . :`, not `amq.*`.
    pub exchange: String,
    /// Routing-key patterns this node's queue is bound with (each passed
    /// [`check_topic_pattern`]). Default: none.
    pub bind: Vec<String>,
    /// The body field holding the owner's user id. Default: `ownerId`.
    pub owner_field: String,
    /// How `data` is carried in message bodies. Default: [`DataEncoding::Json`].
    pub data_encoding: DataEncoding,
    /// `basic.qos` prefetch count: deliveries in flight unacknowledged. 1-65535; default 1000.
    pub prefetch: u16,
    /// Put an event whose owner is connected nowhere in the owner's stored-notification inbox
    /// (needs `--redis-url`). Default: false.
    pub store_offline: bool,
    /// The exchange the node's queue dead-letters to (`x-dead-letter-exchange`: where
    /// malformed bodies go); `""` is the default exchange. Same name rules as `exchange`,
    /// empty allowed. Default: none (the broker drops them).
    pub dead_letter_exchange: Option<String>,
}

impl AmqpConfig {
    /// The bridge's settings for node `node_id` (which names its queue), with the bridge's
    /// defaults for what the file does not set (backlog, queue expiry, depth interval).
    pub fn to_bridge(&self, node_id: &str) -> crate::amqp::AmqpConfig {
        let mut b = crate::amqp::AmqpConfig::new(&self.url.0, &self.exchange, node_id);
        b.bind.clone_from(&self.bind);
        b.prefetch = self.prefetch;
        b.owner_field.clone_from(&self.owner_field);
        b.data_encoding = self.data_encoding;
        b.dead_letter_exchange
            .clone_from(&self.dead_letter_exchange);
        b
    }
}

/// `"json"` or `"base64"` (`[amqp] data_encoding`).
pub fn parse_data_encoding(s: &str) -> Result<DataEncoding, String> {
    s.parse()
        .map_err(|_| format!("expected \"json\" or \"base64\", got {s:?}"))
}

/// Checks a topic pattern (`bind`, `upstream`): the bridge's rule, 1-255 bytes (an AMQP short
/// string, [`crate::amqp::topic::validate`]), and none of what can only be a typo: an empty
/// word (a dot at an end, two dots), `*` or `#` inside a word (`trip*`), a control character.
/// RabbitMQ would take those, and bind nothing anyone publishes to.
pub fn check_topic_pattern(p: &str) -> Result<(), String> {
    use crate::amqp::topic::{validate, TopicError, MAX_LEN};
    match validate(p) {
        Err(TopicError::Empty) => return Err("empty topic pattern".into()),
        Err(TopicError::TooLong) => {
            return Err(format!(
                "topic pattern is {} bytes, over AMQP's {MAX_LEN}",
                p.len()
            ))
        }
        Ok(()) => {}
    }
    if p.chars().any(char::is_control) {
        return Err(format!("control character in topic pattern {p:?}"));
    }
    for word in p.split('.') {
        if word.is_empty() {
            return Err(format!(
                "empty word in topic pattern {p:?} (a dot at an end, or two dots)"
            ));
        }
        if word.len() > 1 && word.contains(['*', '#']) {
            return Err(format!(
                "`*` and `#` must be whole words in topic pattern {p:?}"
            ));
        }
    }
    Ok(())
}

/// One gateway WebSocket endpoint (`[[endpoint]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// The request path it is served at (checked by [`check_endpoint_path`]; unique, and not
    /// one of corecast's own routes).
    pub path: String,
    /// Who a connection belongs to. Effective value: always [`Identity::Jwt`] when
    /// `--jwt-secret` is set (the query parameter is then ignored).
    pub identity: Identity,
    /// With `--jwt-secret`, the parameter a `query:NAME` identity in the file named: ignored
    /// for identity, and left out of lifecycle events' `query` (a client could set it to
    /// anyone, and a service reading it would take it for the user). `None` otherwise.
    pub ignored_param: Option<String>,
    /// With JWT identity, the token's `role` or `roles` claim must hold one of these (403
    /// otherwise); empty: any authenticated user. Not checked in development mode (query
    /// identity). Default: empty.
    pub roles: Vec<String>,
    /// Patterns a client message's `type` must match to be published upstream. Default:
    /// empty (nothing goes upstream).
    /// (Each passed [`check_topic_pattern`]; matched with [`crate::amqp::topic::matches()`].)
    pub upstream: Vec<String>,
    /// Publish `gateway.connected` / `gateway.disconnected` for each user's first and last
    /// connection. Default: false.
    pub lifecycle: bool,
}

/// How an endpoint learns who a connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `"query:NAME"`: the query parameter `NAME` (development mode, like `?username=`).
    Query(String),
    /// `"jwt"`: the token's `sub` (needs `--jwt-secret`).
    Jwt,
}

impl Identity {
    /// `"jwt"`, or `"query:NAME"` with NAME 1-64 of `A-Z a-z 0-9 - _ .`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "jwt" {
            return Ok(Self::Jwt);
        }
        match s.strip_prefix("query:") {
            Some(name)
                if (1..=64).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
            {
                Ok(Self::Query(name.to_owned()))
            }
            Some(_) => Err(format!(
                "bad query parameter name in {s:?} (1-64 of A-Z a-z 0-9 - _ .)"
            )),
            None => Err(format!("expected \"jwt\" or \"query:NAME\", got {s:?}")),
        }
    }
}

impl std::fmt::Display for Identity {
    /// The form [`Identity::parse`] takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Query(name) => write!(f, "query:{name}"),
            Self::Jwt => f.write_str("jwt"),
        }
    }
}

/// Checks an `[amqp] url`: `amqps://` is refused for now (no TLS client yet); then what the
/// bridge's own parser refuses ([`crate::amqp::AmqpConfig::validate`]: the scheme, the host,
/// the port, `heartbeat` and `connection_timeout` options); then what that parser would quietly
/// repair or default: no host (`amqp://` means localhost to it), port 0, a malformed `%XX`
/// escape, a space or control character.
pub fn check_amqp_url(url: &str) -> Result<(), String> {
    if url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("amqps://"))
    {
        return Err(
            "amqps:// (TLS) is not supported yet: use amqp:// on a trusted network, or a local \
             TLS tunnel to the broker"
                .into(),
        );
    }
    crate::amqp::AmqpConfig::new(url, "x", "x")
        .validate()
        .map_err(|e| e.to_string())?;
    let rest = url
        .strip_prefix("amqp://")
        .ok_or("the url must start with amqp://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed [ in the url's host")?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("no host in the url".into());
    }
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(format!("bad port {p:?} in the url"));
        }
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err("space or control character in the url".into());
    }
    let bytes: Vec<u8> = authority.bytes().chain(tail.bytes()).collect();
    for (i, _) in bytes.iter().enumerate().filter(|(_, &c)| c == b'%') {
        let ok = bytes
            .get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if !ok {
            return Err("bad %-escape in the url".into());
        }
    }
    Ok(())
}

/// Checks an `[amqp] exchange` name: 1-255 of `A-Z a-z 0-9 - _ . :` (what RabbitMQ accepts),
/// and not `amq.*` (reserved: declaring one fails).
pub fn check_exchange(name: &str) -> Result<(), String> {
    check_exchange_name(name, false)
}

/// Checks an `[amqp] dead_letter_exchange`: as [`check_exchange`], but `""` (the default
/// exchange, which routes dead letters by their routing key) is allowed.
pub fn check_dead_letter_exchange(name: &str) -> Result<(), String> {
    check_exchange_name(name, true)
}

fn check_exchange_name(name: &str, may_be_empty: bool) -> Result<(), String> {
    if name.is_empty() && may_be_empty {
        return Ok(());
    }
    if name.is_empty() {
        return Err("empty exchange name (the default exchange is not a topic exchange)".into());
    }
    if name.len() > 255 {
        return Err(format!("exchange name is {} bytes, over 255", name.len()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(format!(
            "exchange name {name:?} may hold only A-Z a-z 0-9 - _ . :"
        ));
    }
    if name.starts_with("amq.") {
        return Err(format!("exchange name {name:?}: amq.* names are reserved"));
    }
    Ok(())
}

/// Checks an `[amqp] owner_field`: 1-255 bytes, no control character.
pub fn check_owner_field(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err("must be 1-255 bytes without control characters".into());
    }
    Ok(())
}

/// Checks a role name: 1-128 bytes, no control character.
pub fn check_role(role: &str) -> Result<(), String> {
    if role.is_empty() || role.len() > 128 || role.chars().any(char::is_control) {
        return Err("a role must be 1-128 bytes without control characters".into());
    }
    Ok(())
}

/// Longest endpoint path, bytes.
pub const MAX_PATH_BYTES: usize = 255;

/// Checks an endpoint `path`: starts with `/`, at most [`MAX_PATH_BYTES`], printable ASCII
/// without space, `?` or `#` (a request path is compared exactly, without its query), and
/// not one of corecast's own routes ([`crate::apps::is_reserved_path`]).
pub fn check_endpoint_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with /"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "path is {} bytes, over {MAX_PATH_BYTES}",
            path.len()
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|&c| !c.is_ascii_graphic() || c == '?' || c == '#')
    {
        return Err(format!(
            "{path:?} holds {c:?}: a path is printable ASCII without space, query or fragment"
        ));
    }
    if crate::apps::is_reserved_path(path) {
        return Err(format!("{path:?} is one of corecast's own routes"));
    }
    Ok(())
}

/// An `[amqp] url` with the password replaced by `***` (`amqp://guest:***@host/`), for
/// `--print-config` and logs. The user info is found as URL parsers find it (in the
/// authority, which ends at the first `/`, `?` or `#`); a bare user info is a user name and
/// kept.
pub fn mask_amqp_url(url: &str) -> String {
    mask_userinfo(url, "amqp://", &['/', '?', '#'], false)
}

/// A `--redis-url` with the password replaced by `***` (`redis://:***@host:6379/0`), found as
/// [`crate::relay::RedisUrl::parse`] finds it (the authority ends at the first `/`; a bare
/// user info is the password, and masked).
pub fn mask_redis_url(url: &str) -> String {
    mask_userinfo(url, "redis://", &['/'], true)
}

/// `url` with the password of its user info masked; all of it but the scheme when it does not
/// start with `scheme`.
fn mask_userinfo(
    url: &str,
    scheme: &str,
    authority_ends: &[char],
    bare_is_password: bool,
) -> String {
    let Some(rest) = url.strip_prefix(scheme) else {
        return "***".into();
    };
    let end = rest.find(authority_ends).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_owned();
    };
    let (userinfo, after) = (&rest[..at], &rest[at + 1..]);
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None if bare_is_password => "***".to_owned(),
        None => userinfo.to_owned(),
    };
    format!("{scheme}{masked}@{after}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities() {
        assert_eq!(Identity::parse("jwt"), Ok(Identity::Jwt));
        assert_eq!(
            Identity::parse("query:userID"),
            Ok(Identity::Query("userID".into()))
        );
        for bad in [
            "",
            "JWT",
            "query:",
            "query:a b",
            "query:a&b",
            "sub",
            "query",
        ] {
            assert!(Identity::parse(bad).is_err(), "{bad}");
        }
        assert!(Identity::parse(&format!("query:{}", "a".repeat(65))).is_err());
        for s in ["jwt", "query:user.id-1_x"] {
            assert_eq!(Identity::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn encodings() {
        assert_eq!(parse_data_encoding("json"), Ok(DataEncoding::Json));
        assert_eq!(parse_data_encoding("base64"), Ok(DataEncoding::Base64));
        assert_eq!(
            parse_data_encoding("Base64"),
            Err("expected \"json\" or \"base64\", got \"Base64\"".into())
        );
    }

    #[test]
    fn topic_patterns() {
        assert_eq!(check_topic_pattern(""), Err("empty topic pattern".into()));
        assert_eq!(
            check_topic_pattern(&"a".repeat(256)),
            Err("topic pattern is 256 bytes, over AMQP's 255".into())
        );
        assert_eq!(check_topic_pattern(&"a".repeat(255)), Ok(()));
        for s in [".a", "a.", "a..b", "."] {
            let e = check_topic_pattern(s).unwrap_err();
            assert!(e.starts_with("empty word"), "{s}: {e}");
        }
        for s in ["trip*", "a.#b", "**", "a.*#.b", "#x"] {
            let e = check_topic_pattern(s).unwrap_err();
            assert!(e.contains("whole words"), "{s}: {e}");
        }
        assert!(check_topic_pattern("a\nb")
            .unwrap_err()
            .starts_with("control character"));
        for s in [
            "#",
            "*",
            "trip.event.*",
            "driver.cmd.#",
            "a.*.#.b",
            "ünï.cödé",
        ] {
            assert_eq!(check_topic_pattern(s), Ok(()), "{s}");
            // Everything accepted here the bridge accepts too.
            assert_eq!(crate::amqp::topic::validate(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn the_bridge_takes_what_the_file_gives() {
        let a = AmqpConfig {
            url: Secret("amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            exchange: "trip".into(),
            bind: vec!["driver.cmd.trip_request".into(), "trip.event.*".into()],
            owner_field: "owner".into(),
            data_encoding: DataEncoding::Base64,
            prefetch: 7,
            store_offline: false,
            dead_letter_exchange: Some("trip.dlx".into()),
        };
        let b = a.to_bridge("node-a");
        assert_eq!(b.validate(), Ok(()));
        assert_eq!(b.url, a.url.0);
        assert_eq!(
            (b.exchange.as_str(), b.queue.as_str()),
            ("trip", "corecast.gateway.node-a")
        );
        assert_eq!(b.bind, a.bind);
        assert_eq!((b.prefetch, b.owner_field.as_str()), (7, "owner"));
        assert_eq!(b.data_encoding, DataEncoding::Base64);
        assert_eq!(b.dead_letter_exchange.as_deref(), Some("trip.dlx"));
        assert_eq!(check_dead_letter_exchange(""), Ok(()));
        assert!(check_dead_letter_exchange("amq.x").is_err());
    }

    #[test]
    fn amqp_urls() {
        for ok in [
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            "amqp://localhost",
            "amqp://u@[::1]:5672/vh?heartbeat=10",
            "amqp://h/",
        ] {
            assert_eq!(check_amqp_url(ok), Ok(()), "{ok}");
        }
        let err = check_amqp_url("amqps://h").unwrap_err();
        assert!(err.contains("not supported"), "{err}");
        for bad in [
            "http://h",
            "AMQP://h",
            "amqp://",
            "amqp://u:p@/vh",
            "amqp://h:0",
            "amqp://h:99999",
            "amqp://h:x",
            "amqp://[::1",
            "amqp://h/%zz",
            "amqp://h/%2",
            "amqp://h/a b",
            "amqp://h\n",
            "amqp://h?heartbeat=x",
        ] {
            assert!(check_amqp_url(bad).is_err(), "{bad}");
        }
        assert!(check_amqp_url("AMQPS://h")
            .unwrap_err()
            .contains("not supported"));
    }

    #[test]
    fn exchanges_paths_roles() {
        assert_eq!(check_exchange("trip"), Ok(()));
        assert_eq!(check_exchange("a-b_c.d:e"), Ok(()));
        for bad in ["", "amq.topic", "a b", "é"] {
            assert!(check_exchange(bad).is_err(), "{bad}");
        }
        assert!(check_exchange(&"x".repeat(256)).is_err());
        assert_eq!(check_endpoint_path("/ws/drivers"), Ok(()));
        assert_eq!(check_endpoint_path("/wss"), Ok(()));
        assert_eq!(check_endpoint_path("/apix"), Ok(()));
        for bad in [
            "",
            "ws",
            "/",
            "/ws",
            "/echo",
            "/broadcast",
            "/health",
            "/metrics",
            "/api",
            "/api/x",
            "/a?b",
            "/a#b",
            "/a b",
            "/é",
        ] {
            assert!(check_endpoint_path(bad).is_err(), "{bad}");
        }
        assert!(check_endpoint_path(&format!("/{}", "a".repeat(255))).is_err());
        assert_eq!(check_role("driver"), Ok(()));
        assert!(check_role("").is_err());
        assert!(check_role("a\tb").is_err());
        assert_eq!(check_owner_field("ownerId"), Ok(()));
        assert!(check_owner_field("").is_err());
    }

    #[test]
    fn masking() {
        assert_eq!(
            mask_amqp_url("amqp://guest:guest@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
        assert_eq!(mask_amqp_url("amqp://user@h/"), "amqp://user@h/");
        assert_eq!(mask_amqp_url("amqp://a:b@c@h"), "amqp://a:***@h");
        assert_eq!(mask_amqp_url("amqp://h/v@x?q=a@b"), "amqp://h/v@x?q=a@b");
        assert_eq!(
            mask_redis_url("redis://pw@h:6379/0"),
            "redis://***@h:6379/0"
        );
        assert_eq!(mask_redis_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(mask_redis_url("redis://h:6379"), "redis://h:6379");
        // A `?` is part of a Redis password (RedisUrl's authority ends at `/` only).
        assert_eq!(mask_redis_url("redis://:p?x@h"), "redis://:***@h");
        assert_eq!(mask_redis_url("nonsense"), "***");
        // Whatever the parsers read as the password is what is masked.
        for url in ["redis://u:p?w@h/1", "redis://p@ss@h", "redis://:@h"] {
            let parsed = crate::relay::RedisUrl::parse(url).unwrap();
            let masked = crate::relay::RedisUrl::parse(&mask_redis_url(url)).unwrap();
            assert_eq!(masked.password.as_deref(), Some("***"), "{url}");
            assert_eq!(
                (masked.host, masked.user),
                (parsed.host, parsed.user),
                "{url}"
            );
        }
    }
}
