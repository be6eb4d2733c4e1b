//! `--print-config`: a [`Config`] written as a `--config` file, every setting by its flag's
//! name in `--help` order, then `[amqp]` and `[[endpoint]]`. Secrets are shown as `"***"` (in
//! URLs, only the password). Read back through `--config`, the output gives the same
//! configuration (and prints the same text); the tests hold it to that. No IO.

use std::fmt::Write as _;
use std::time::Duration;

use super::gateway::{mask_amqp_url, mask_redis_url};
use super::Config;
use crate::ws::deflate::CompressionMode;

/// What a secret is printed as.
pub const MASK: &str = "***";

/// `s` as a TOML basic string (quotes, backslashes and control characters escaped).
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An array of TOML strings.
fn toml_strings<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(toml_string).collect();
    format!("[{}]", items.join(", "))
}

/// A comma-separated flag value as an array of its trimmed entries (`""` is `[]`).
fn list(s: &str) -> String {
    if s.trim().is_empty() {
        return "[]".into();
    }
    toml_strings(s.split(',').map(str::trim))
}

/// A count or size: a TOML integer, or beyond TOML's integers (`i64::MAX`) a string of
/// digits, which the file takes for these settings.
fn int(n: impl Into<u64>) -> String {
    let n: u64 = n.into();
    if i64::try_from(n).is_ok() {
        n.to_string()
    } else {
        toml_string(&n.to_string())
    }
}

/// `usize` as [`int`] takes it (usize is at most 64 bits on every target corecast builds for).
fn uint(n: usize) -> String {
    int(u64::try_from(n).unwrap_or(u64::MAX))
}

fn duration(d: Duration) -> String {
    toml_string(&humantime::format_duration(d).to_string())
}

/// The configuration as a `--config` file.
pub fn to_toml(cfg: &Config) -> String {
    let mut o = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(o, "{key} = {value}");
    };
    line("listen", toml_string(&cfg.listen.to_string()));
    line("workers", uint(cfg.workers));
    line("max-frame", uint(cfg.max_frame));
    line("max-message", uint(cfg.max_message));
    line("max-head", uint(cfg.max_head));
    line("ping-interval", duration(cfg.ping_interval));
    line("idle-timeout", duration(cfg.idle_timeout));
    line("handshake-timeout", duration(cfg.handshake_timeout));
    line("close-timeout", duration(cfg.close_timeout));
    line("write-stall-timeout", duration(cfg.write_stall_timeout));
    line("drain-timeout", duration(cfg.drain_timeout));
    line("max-connections", uint(cfg.max_connections));
    line("send-buffer-limit", uint(cfg.send_buffer_limit));
    line("backlog", cfg.backlog.to_string());
    let mode = match cfg.compression {
        CompressionMode::Off => "off",
        CompressionMode::Shared => "shared",
        CompressionMode::Dedicated => "dedicated",
    };
    line("compression", toml_string(mode));
    line("compression-level", int(cfg.compression_level));
    line("compression-min-size", uint(cfg.compression_min_size));
    line("history", uint(cfg.history));
    line("room-ttl", duration(cfg.room_ttl));
    line("presence-max-members", uint(cfg.presence_max_members));
    line("chat-max-message", uint(cfg.chat_max_message));
    line("max-rooms", uint(cfg.max_rooms));
    line("conn-rate", int(cfg.conn_rate));
    line("conn-burst", int(cfg.conn_burst));
    line("msg-rate", int(cfg.msg_rate));
    line("msg-burst", int(cfg.msg_burst));
    line("trusted-proxies", list(&cfg.trusted_proxies));
    let mut unset = Vec::new();
    match &cfg.allowed_origins {
        Some(origins) => line("allowed-origins", list(origins)),
        None => unset.push("# allowed-origins: not set (same-origin only)"),
    }
    match &cfg.jwt_secret {
        Some(_) => line("jwt-secret", toml_string(MASK)),
        None => unset.push("# jwt-secret: not set (development mode: /ws trusts ?username=)"),
    }
    match &cfg.api_key {
        Some(_) => line("api-key", toml_string(MASK)),
        None => unset.push("# api-key: not set (the HTTP API answers 403)"),
    }
    match &cfg.redis_url {
        Some(u) => line("redis-url", toml_string(&mask_redis_url(&u.0))),
        None => unset.push("# redis-url: not set (this node runs alone)"),
    }
    // The default node id (hostname-pid) is new at every start: printing it would pin it, and
    // two nodes started from copies of the output would share it.
    if cfg.node_id == super::flags::default_node_id() {
        unset.push("# node-id: not set (hostname-pid, new at every start)");
    } else {
        line("node-id", toml_string(&cfg.node_id));
    }
    line("redis-prefix", toml_string(&cfg.redis_prefix));
    line("inbox-max", uint(cfg.inbox_max));
    line("inbox-ttl", duration(cfg.inbox_ttl));
    line("relay-backlog", uint(cfg.relay_backlog));
    line("amqp-backlog", uint(cfg.amqp_backlog));
    line("amqp-grace", duration(cfg.amqp_grace));
    for u in unset {
        let _ = writeln!(o, "{u}");
    }
    if let Some(a) = &cfg.amqp {
        let _ = writeln!(o, "\n[amqp]");
        let _ = writeln!(o, "url = {}", toml_string(&mask_amqp_url(&a.url.0)));
        let _ = writeln!(o, "exchange = {}", toml_string(&a.exchange));
        let _ = writeln!(
            o,
            "bind = {}",
            toml_strings(a.bind.iter().map(String::as_str))
        );
        let _ = writeln!(o, "owner_field = {}", toml_string(&a.owner_field));
        let _ = writeln!(
            o,
            "data_encoding = {}",
            toml_string(a.data_encoding.as_str())
        );
        let _ = writeln!(o, "prefetch = {}", a.prefetch);
        let _ = writeln!(o, "store_offline = {}", a.store_offline);
        match &a.dead_letter_exchange {
            Some(dlx) => {
                let _ = writeln!(o, "dead_letter_exchange = {}", toml_string(dlx));
            }
            None => {
                let _ = writeln!(
                    o,
                    "# dead_letter_exchange: not set (the broker drops malformed bodies)"
                );
            }
        }
    }
    for e in &cfg.endpoints {
        let _ = writeln!(o, "\n[[endpoint]]");
        let _ = writeln!(o, "path = {}", toml_string(&e.path));
        let _ = writeln!(o, "identity = {}", toml_string(&e.identity.to_string()));
        let _ = writeln!(
            o,
            "roles = {}",
            toml_strings(e.roles.iter().map(String::as_str))
        );
        let _ = writeln!(
            o,
            "upstream = {}",
            toml_strings(e.upstream.iter().map(String::as_str))
        );
        let _ = writeln!(o, "lifecycle = {}", e.lifecycle);
    }
    format!(
        "# corecast's effective configuration (command line > environment > this file > \
         defaults).\n# Secrets are shown as \"***\": put them back, or pass them in the \
         environment, before using it.\n{o}"
    )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::Path;

    use super::*;
    use crate::config::file::ConfigFile;
    use crate::config::flags::{Args, FILE_KEYS};
    use crate::config::load::load_with;
    use crate::config::Secret;

    #[derive(Debug, clap::Parser)]
    struct TestCli {
        #[command(flatten)]
        args: Args,
    }

    /// The configuration `text` makes as a `--config` file, with `flags` too.
    fn load(flags: &[&str], text: &str) -> Config {
        let argv = ["corecast", "--config", "c.toml"]
            .iter()
            .chain(flags)
            .map(OsString::from)
            .collect();
        load_with(
            argv,
            |c: &TestCli| &c.args,
            |_| true,
            |p: &Path| ConfigFile::parse(p, text.as_bytes()),
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config
        .expect("serving")
    }

    /// The configuration as `--print-config` can show it: secrets replaced as it replaces
    /// them, and comma-separated lists by their trimmed entries (the flags' parsers ignore
    /// whitespace around entries; the output is an array of them).
    fn masked(c: &Config) -> String {
        let mut c = c.clone();
        fn entries(s: &str) -> String {
            s.split(',').map(str::trim).collect::<Vec<_>>().join(",")
        }
        c.trusted_proxies = entries(&c.trusted_proxies);
        c.allowed_origins = c.allowed_origins.as_deref().map(entries);
        let star = |s: &Option<Secret>| s.as_ref().map(|_| Secret(MASK.into()));
        c.jwt_secret = star(&c.jwt_secret);
        c.api_key = star(&c.api_key);
        c.redis_url = c.redis_url.map(|u| Secret(mask_redis_url(&u.0)));
        if let Some(a) = &mut c.amqp {
            a.url = Secret(mask_amqp_url(&a.url.0));
        }
        format!("{c:?}")
    }

    /// Every setting different from its default, and a gateway.
    const EVERYTHING: &str = r#"
listen = "0.0.0.0:9999"
workers = 3
max-frame = "1MiB"
max-message = 2097152
max-head = "16KiB"
ping-interval = "15s"
idle-timeout = "1m 30s"
handshake-timeout = "1500ms"
close-timeout = "2s"
write-stall-timeout = "45s"
drain-timeout = "3s"
max-connections = 5000
send-buffer-limit = "64KiB"
backlog = 128
compression = "dedicated"
compression-level = 6
compression-min-size = 64
history = 250
room-ttl = "1h"
presence-max-members = 50
chat-max-message = "8KiB"
max-rooms = 7
conn-rate = 5
conn-burst = 9
msg-rate = 11
msg-burst = 13
trusted-proxies = "10.0.0.0/8, 192.168.1.1"
allowed-origins = ["https://a.example", "http://localhost:3000"]
jwt-secret = "a secret"
api-key = "a key"
redis-url = "redis://user:pass@redis.local:6380/2"
node-id = "node-a"
redis-prefix = "cc"
inbox-max = 20
inbox-ttl = "2days"
relay-backlog = 500
amqp-backlog = 600
amqp-grace = "2s"

[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
exchange = "trip"
bind = ["driver.cmd.trip_request", "trip.event.*"]
owner_field = "owner \"id\" \\ é"
data_encoding = "base64"
prefetch = 10
store_offline = true
dead_letter_exchange = "trip.dlx"

[[endpoint]]
path = "/ws/drivers"
roles = ["driver", "dispatcher"]
upstream = ["driver.cmd.trip_accept", "driver.cmd.#"]
lifecycle = true

[[endpoint]]
path = "/ws/riders"
"#;

    #[test]
    fn every_setting_is_printed() {
        for text in [to_toml(&Config::default()), to_toml(&load(&[], EVERYTHING))] {
            for (key, _) in FILE_KEYS {
                let n = text
                    .lines()
                    .filter(|l| {
                        l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key}: "))
                    })
                    .count();
                assert_eq!(n, 1, "{key} in\n{text}");
            }
        }
    }

    #[test]
    fn everything_set_differs_from_the_defaults() {
        let all = load(&[], EVERYTHING);
        let printed = to_toml(&all);
        let defaults = to_toml(&Config::default());
        for (key, _) in FILE_KEYS {
            let line = |t: &str| {
                t.lines()
                    .find(|l| {
                        l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key}: "))
                    })
                    .map(str::to_owned)
            };
            assert_ne!(
                line(&printed),
                line(&defaults),
                "{key}: the round trip would not test it"
            );
        }
    }

    #[test]
    fn output_reads_back_to_the_same_configuration() {
        let cases = [
            (vec![], String::new()),
            (vec![], EVERYTHING.to_owned()),
            (
                vec!["--history", "3", "--allowed-origins", "*"],
                EVERYTHING.to_owned(),
            ),
            (
                vec!["--redis-url", "redis://secret@h"],
                "trusted-proxies = []\n".to_owned(),
            ),
            // Beyond TOML's integers (i64::MAX): written as strings of digits.
            (
                vec!["--presence-max-members", "18446744073709551615"],
                "max-frame = \"9106511838G\"\n".to_owned(),
            ),
        ];
        for (flags, text) in cases {
            let first = load(&flags, &text);
            let printed = to_toml(&first);
            let second = load(&[], &printed);
            assert_eq!(masked(&first), masked(&second), "{printed}");
            assert_eq!(to_toml(&second), printed);
            // Secrets never appear.
            for secret in ["a secret", "a key", "user:pass", "guest:guest", "secret@"] {
                assert!(!printed.contains(secret), "{secret} in\n{printed}");
            }
        }
    }

    #[test]
    fn strings_are_valid_toml() {
        for s in [
            "",
            "plain",
            "quote \" backslash \\ tab \t newline \n cr \r",
            "nul \0 esc \u{1b} del \u{7f} c1 \u{85}",
            "unicode é 中 😀 \u{2028}",
            "''' \"\"\"",
        ] {
            let doc = format!("k = {}", toml_string(s));
            let t = toml::de::DeTable::parse(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
            match t.get_ref().get("k").map(|v| v.get_ref()) {
                Some(toml::de::DeValue::String(got)) => assert_eq!(got, s),
                other => panic!("{doc}: {other:?}"),
            }
        }
    }
}
