//! `--config FILE`: a file's settings take effect (history, max-rooms, api-key seen through
//! the chat protocol and the API), the command line and the environment win over it, a bad
//! file stops startup with exit 2 and one line on stderr naming the file, line and key, and
//! `--print-config` output reads back to the same configuration. The issue's ride-sharing
//! gateway file is accepted (its endpoints are parsed; the gateway itself is not wired yet).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::chat_client::{api, assert_error, connect, health};
use crate::harness::Server;

/// A file in a directory of its own under the system temp dir, removed on drop.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("corecast-it-config-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write config");
        TempFile { dir, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a `corecast` run that should end by itself printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `corecast <args>` with only `env` among `CORECAST_*` variables, and waits (at most
/// 15 s, then kills it and fails) for it to exit.
fn corecast(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corecast"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CORECAST_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning corecast");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut stderr = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("corecast {args:?} still running after 15 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = err.read_to_string(&mut stderr);
    Run {
        code: status.code(),
        stdout: reader.join().expect("stdout reader"),
        stderr,
    }
}

/// `corecast --print-config <args>`, which must succeed.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let r = corecast(&all, env);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stderr, "", "nothing on stderr");
    r.stdout
}

/// The value printed for `key` (`None` when printed as not set).
fn printed<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
}

#[test]
fn a_file_configures_the_server() {
    // listen and workers lose to the harness's --listen 127.0.0.1:0 --workers 2.
    let file = TempFile::new(
        "corecast.toml",
        "# chat settings\nlisten = \"192.0.2.1:1\"\nworkers = 1\nhistory = 2\nmax-rooms = 2\n\
         api-key = \"file-key\"\n",
    );
    let server = Server::start(&["--config", file.path()]);
    assert_eq!(health(server.addr)["workers"], 2);
    // api-key: the API is on, with the file's key.
    let (code, _, _) = api(server.addr, Some("file-key"), "GET", "/api/rooms", None);
    assert_eq!(code, 200);
    let (code, _, _) = api(server.addr, Some("other"), "GET", "/api/rooms", None);
    assert_eq!(code, 401);
    // max-rooms = 2: general and one more.
    let (mut c, _) = connect(server.addr, "ali");
    c.join("a");
    let a = c.ask(json!({"type":"room.join","room":"b"}));
    assert_error(&a, "forbidden", a.get("id"));
    // history = 2: only the last two messages are kept.
    for i in 1..=3 {
        assert_eq!(c.chat("general", &format!("m{i}")), i);
    }
    let got = c.ask_all(json!({"type":"history","room":"general"}));
    let h = got
        .iter()
        .find(|m| m["type"] == "history")
        .unwrap_or_else(|| panic!("no history in {got:?}"));
    let contents: Vec<&str> = h["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(contents, ["m2", "m3"], "{h}");
}

#[test]
fn flags_beat_the_file() {
    let file = TempFile::new("c.toml", "max-rooms = 1\napi-key = \"file-key\"\n");
    let server = Server::start(&[
        "--config",
        file.path(),
        "--max-rooms",
        "3",
        "--api-key",
        "flag-key",
    ]);
    let (code, _, _) = api(server.addr, Some("flag-key"), "GET", "/api/rooms", None);
    assert_eq!(code, 200);
    let (code, _, _) = api(server.addr, Some("file-key"), "GET", "/api/rooms", None);
    assert_eq!(code, 401);
    let (mut c, _) = connect(server.addr, "ali");
    c.join("a");
    c.join("b");
    let a = c.ask(json!({"type":"room.join","room":"c"}));
    assert_error(&a, "forbidden", a.get("id"));
}

#[test]
fn command_line_then_environment_then_file_then_default() {
    let file = TempFile::new(
        "c.toml",
        "history = 3\nmax-rooms = 4\nmsg-rate = 5\nroom-ttl = \"1m\"\n",
    );
    let env = [("CORECAST_HISTORY", "30"), ("CORECAST_MAX_ROOMS", "40")];
    let text = print_config(&["--config", file.path(), "--history", "300"], &env);
    assert_eq!(
        printed(&text, "history"),
        Some("300"),
        "flag over env and file"
    );
    assert_eq!(printed(&text, "max-rooms"), Some("40"), "env over file");
    assert_eq!(printed(&text, "msg-rate"), Some("5"), "file over default");
    assert_eq!(printed(&text, "room-ttl"), Some("\"1m\""));
    assert_eq!(printed(&text, "msg-burst"), Some("40"), "default");
    // The file named by CORECAST_CONFIG.
    let text = print_config(&[], &[("CORECAST_CONFIG", file.path())]);
    assert_eq!(printed(&text, "history"), Some("3"));
    // A bad environment value is reported as such, not blamed on the file.
    let r = corecast(
        &["--config", file.path(), "--listen", "127.0.0.1:0"],
        &[("CORECAST_MSG_RATE", "0")],
    );
    assert_eq!(r.code, Some(2));
    assert_eq!(
        r.stderr,
        "corecast: invalid configuration: msg rate must be between 1 and 65535\n"
    );
}

#[test]
fn bad_files_stop_startup_with_one_line() {
    let gw = "[amqp]\nurl = \"amqp://127.0.0.1\"\nexchange = \"trip\"\n";
    let cases: Vec<(&str, String, &str)> = vec![
        ("syntax", "history = 1\nhistory = 2\n".into(), "2:1: duplicate key"),
        (
            "unknown",
            "history = 1\n\nmax_rooms = 2\n".into(),
            "3: max_rooms: unknown key (did you mean max-rooms?)",
        ),
        (
            "type",
            "room-ttl = 600\n".into(),
            "1: room-ttl: expected a string such as \"30s\" or \"10m\", found an integer",
        ),
        (
            "value",
            "max-frame = \"1 parsec\"\n".into(),
            "1: max-frame: invalid value \"1 parsec\": unknown size unit \"parsec\"",
        ),
        (
            "range",
            "max-rooms = 5\nhistory = 2000000\n".into(),
            "2: history: history must be between 0 and 1000000",
        ),
        (
            "validation",
            "max-rooms = 0\n".into(),
            "1: max-rooms: max rooms must be between 1 and 100000",
        ),
        (
            "pattern",
            format!("{gw}[[endpoint]]\npath = \"/ws/x\"\nidentity = \"query:u\"\nupstream = [\"ok\", \"\"]\n"),
            "7: endpoint[0].upstream[1]: empty topic pattern",
        ),
        (
            "long-pattern",
            format!("{gw}bind = [\"{}\"]\n", "a".repeat(256)),
            "4: amqp.bind[0]: topic pattern is 256 bytes, over AMQP's 255",
        ),
        (
            "unknown-in-endpoint",
            format!("{gw}\n[[endpoint]]\npath = \"/ws/x\"\nidentity = \"query:u\"\nrole = [\"a\"]\n"),
            "8: endpoint[0].role: unknown key",
        ),
        (
            "route",
            format!("{gw}[[endpoint]]\npath = \"/metrics\"\nidentity = \"query:u\"\n"),
            "5: endpoint[0].path: \"/metrics\" is one of corecast's own routes",
        ),
        (
            "jwt",
            format!("{gw}[[endpoint]]\npath = \"/ws/x\"\nidentity = \"jwt\"\n"),
            "6: endpoint[0].identity: \"jwt\" needs --jwt-secret",
        ),
        (
            "amqps",
            "[amqp]\nurl = \"amqps://h\"\nexchange = \"x\"\n".into(),
            "2: amqp.url: amqps:// (TLS) is not supported yet: use amqp:// on a trusted network, \
             or a local TLS tunnel to the broker",
        ),
    ];
    for (name, text, want) in cases {
        let file = TempFile::new(&format!("{name}.toml"), &text);
        let r = corecast(&["--config", file.path(), "--listen", "127.0.0.1:0"], &[]);
        assert_eq!(r.code, Some(2), "{name}: {}", r.stderr);
        assert_eq!(
            r.stderr,
            format!("corecast: {}:{want}\n", file.path()),
            "{name}"
        );
        assert_eq!(r.stdout, "", "{name}: nothing served");
    }
    let r = corecast(&["--config", "/nonexistent/corecast.toml"], &[]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .starts_with("corecast: /nonexistent/corecast.toml: cannot read: "),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
}

#[test]
fn print_config_reads_back_to_itself() {
    // Serving keys, then the ride-sharing example's [amqp] and [[endpoint]] tables as shipped.
    let example = include_str!("../../docs/examples/ride-sharing/gateway.toml");
    let file = TempFile::new(
        "ride.toml",
        &format!(
            r#"history = 200
room-ttl = "15m"
max-frame = "1MiB"
allowed-origins = ["https://a.example", "https://b.example"]
trusted-proxies = "10.0.0.0/8"
node-id = "node-a"

{example}"#
        ),
    );
    let env = [("CORECAST_API_KEY", "an api key")];
    let first = print_config(&["--config", file.path(), "--msg-rate", "7"], &env);
    assert_eq!(printed(&first, "history"), Some("200"));
    assert_eq!(printed(&first, "msg-rate"), Some("7"));
    assert_eq!(printed(&first, "max-frame"), Some("1048576"));
    assert_eq!(printed(&first, "api-key"), Some("\"***\""));
    assert_eq!(
        printed(&first, "url"),
        Some("\"amqp://guest:***@127.0.0.1:5672/%2f\"")
    );
    assert!(!first.contains("an api key") && !first.contains("guest:guest"));
    assert!(
        first.contains("\n[[endpoint]]\npath = \"/ws/riders\"\n"),
        "{first}"
    );
    let again = TempFile::new("printed.toml", &first);
    let second = print_config(&["--config", again.path()], &[]);
    assert_eq!(second, first);
}

#[test]
fn the_ride_sharing_gateway_file_starts() {
    // The example as shipped (its broker need not be up: /health reports "amqp" apart).
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/ride-sharing/gateway.toml"
    );
    let server = Server::start(&[
        "--config",
        file,
        "--jwt-secret",
        "0123456789abcdef0123456789abcdef",
    ]);
    assert_eq!(health(server.addr)["status"], "ok");
}

#[test]
fn the_token_command_takes_the_file_secret() {
    let secret = "0123456789abcdef0123456789abcdef";
    let file = TempFile::new("secret.toml", &format!("jwt-secret = \"{secret}\"\n"));
    let r = corecast(&["--config", file.path(), "token", "--sub", "bob"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let token = r.stdout.trim();
    let server = Server::start(&["--config", file.path()]);
    let mut ws = crate::harness::ws(server.addr, &format!("/ws?token={token}"));
    let welcome: serde_json::Value = match ws.read().expect("welcome") {
        tungstenite::Message::Text(t) => serde_json::from_str(t.as_str()).expect("json"),
        other => panic!("{other:?}"),
    };
    assert_eq!(welcome["user"], "bob");
}
