//! Fixtures for the relay tests (`relay_*.rs`): a real `redis-server` and a real `nginx`, each
//! on a free port above 61000 with its files in a temporary directory, stopped by PID when
//! dropped; and corecast nodes joined through that Redis.
//!
//! Without `redis-server` (or `nginx`) on the PATH a test prints `SKIPPED` and returns, having
//! checked nothing. CI installs both (`tools/setup.sh`); under `CI=true` a missing one fails the
//! test instead. Owns no assertion about corecast itself beyond "the relay came up".

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::chat_client::{health, http, status, Client};
use crate::fixture::{can_run, free_port, require, signal, temp_dir};
use crate::harness::Server;

/// The API key every node is started with.
pub const KEY: &str = "relay-test-key";
/// How long a node may take to reach Redis (or to notice it is gone).
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether `program` is installed (see [`require`]).
fn installed(program: &str, version_flag: &str) -> bool {
    require(can_run(program, version_flag), program, "relay")
}

// ---- Redis -------------------------------------------------------------------------------

/// A `redis-server` of one test: no persistence, bound to 127.0.0.1, killed by PID on drop.
pub struct Redis {
    child: Option<Child>,
    /// Its port (kept across [`Redis::restart`]).
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts one and waits for its PONG; `None` (skip) when `redis-server` is not installed.
    pub fn start() -> Option<Redis> {
        if !installed("redis-server", "--version") {
            return None;
        }
        for _ in 0..5 {
            let port = free_port();
            let mut redis = Redis {
                child: None,
                port,
                dir: temp_dir("redis", port),
            };
            if redis.spawn() {
                return Some(redis);
            }
            // The port was taken between the probe and redis' bind: try another.
        }
        panic!("redis-server did not start");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process on `self.port`; true once it answers PING.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().expect("try_wait").is_some() {
                    self.child = None;
                    return false;
                }
            }
            if self.ping() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    /// Whether it answers `PING` with `+PONG` right now.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// SIGKILL, and waits for the process to be gone (its data is lost: no persistence).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP (`stop = true`) or SIGCONT: Redis stalls with its connections open, as a
    /// frozen host or a long fork would make it.
    pub fn pause(&self, stop: bool) {
        if let Some(c) = self.child.as_ref() {
            signal(c.id(), if stop { "STOP" } else { "CONT" });
        }
    }

    /// Starts it again on the same port (empty).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running redis-server");
        // The old listener is gone with the process; a port in TIME_WAIT is no obstacle to
        // redis (SO_REUSEADDR), but give a slow machine a few tries.
        for _ in 0..20 {
            if self.spawn() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- corecast nodes ----------------------------------------------------------------------

/// Starts node `node_id` joined through `redis` under `prefix`, with the API key [`KEY`], no
/// message rate limit and `extra` flags; returns once its `/health` says the relay is up.
pub fn node(redis: &Redis, prefix: &str, node_id: &str, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut flags = vec![
        "--redis-url",
        &url,
        "--node-id",
        node_id,
        "--redis-prefix",
        prefix,
        "--api-key",
        KEY,
        "--msg-rate",
        "65535",
        "--msg-burst",
        "65535",
    ];
    flags.extend_from_slice(extra);
    let server = Server::start(&flags);
    wait_relay(server.addr, "up");
    server
}

/// Nodes `a`, `b`, … (`n` of them) on one Redis under `prefix`.
pub fn nodes(redis: &Redis, prefix: &str, n: usize, extra: &[&str]) -> Vec<Server> {
    ["a", "b", "c", "d"][..n]
        .iter()
        .map(|id| node(redis, prefix, id, extra))
        .collect()
}

/// Polls `/health` until its `relay` is `state`; fails after [`RELAY_TIMEOUT`]. Returns how
/// long it took.
pub fn wait_relay(addr: SocketAddr, state: &str) -> Duration {
    let start = Instant::now();
    loop {
        let h = health(addr);
        if h["relay"] == state {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < RELAY_TIMEOUT,
            "{addr}: relay not {state} after {RELAY_TIMEOUT:?}: {h}"
        );
        thread::sleep(Duration::from_millis(25));
    }
}

/// The value of an unlabelled metric (or of one exact `name{labels}` series) from `/metrics`.
pub fn metric(addr: SocketAddr, series: &str) -> f64 {
    let resp = http(addr, "GET", "/metrics", &[], b"");
    assert_eq!(status(&resp), 200);
    let text = String::from_utf8(resp.body).expect("metrics are utf-8");
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(|v| v.trim().parse::<f64>().expect("metric value"))
        })
        .unwrap_or_else(|| panic!("{addr}: no {series} in /metrics"))
}

/// Takes `c`'s messages up to and including the chat in `room` with `content`; returns the
/// ones before it (all removed).
pub fn until_chat(c: &mut Client, room: &str, content: &str) -> Vec<Value> {
    let mut got = c.until(|m| m["type"] == "chat" && m["room"] == room && m["content"] == content);
    got.pop();
    got
}

/// A chat from `sender` in `room` that every client in `observers` then reads up to (the
/// sender too): a barrier for everything published on the room's channel before it. Asserts
/// that nothing came before it for anyone, and returns its seq.
pub fn quiet_barrier(sender: &mut Client, observers: &mut [&mut Client], room: &str) -> u64 {
    let content = format!("barrier-{}", sender.fresh_id());
    let seq = sender.chat(room, &content);
    let before = until_chat(sender, room, &content);
    assert!(before.is_empty(), "{}: unexpected {before:?}", sender.user);
    for c in observers.iter_mut() {
        let before = until_chat(c, room, &content);
        assert!(before.is_empty(), "{}: unexpected {before:?}", c.user);
    }
    seq
}

/// Polls `what` every 25 ms until it returns `Some`; fails after `within` with `msg`.
pub fn eventually<T>(within: Duration, msg: &str, mut what: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = what() {
            return v;
        }
        assert!(start.elapsed() < within, "{msg} (after {within:?})");
        thread::sleep(Duration::from_millis(25));
    }
}

// ---- nginx -------------------------------------------------------------------------------

/// An `nginx` in front of corecast nodes (generated config in a temp dir, `daemon off`),
/// stopped by PID on drop.
pub struct Nginx {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx proxying to `upstreams` and waits until `/health` answers through it;
    /// `None` (skip) when `nginx` is not installed.
    pub fn start(upstreams: &[SocketAddr]) -> Option<Nginx> {
        if !installed("nginx", "-v") {
            return None;
        }
        for _ in 0..5 {
            let port = free_port();
            let dir = temp_dir("nginx", port);
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, nginx_conf(&dir, port, upstreams)).expect("nginx.conf");
            let child = Command::new("nginx")
                .arg("-p")
                .arg(format!("{}/", dir.display()))
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.join("error.log"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning nginx");
            let mut nginx = Nginx {
                child: Some(child),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(c) = nginx.child.as_mut() {
                    if c.try_wait().expect("try_wait").is_some() {
                        nginx.child = None;
                        break; // port taken meanwhile (see error.log): try another
                    }
                }
                if TcpStream::connect(nginx.addr).is_ok() {
                    let resp = http(nginx.addr, "GET", "/health", &["Connection: close"], b"");
                    assert_eq!(status(&resp), 200, "through nginx: {resp:?}");
                    return Some(nginx);
                }
                thread::sleep(Duration::from_millis(20));
            }
            if nginx.child.is_some() {
                panic!("nginx did not listen: {}", nginx.error_log());
            }
        }
        panic!("nginx did not start");
    }

    /// Its error log so far.
    pub fn error_log(&self) -> String {
        ["error.log", "logs/error.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM lets the master take its workers down; SIGKILL if it lingers.
            signal(c.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// docs/deploy/nginx.conf as shipped, with only its listen address and upstream servers
/// replaced (so the tests check the configuration users copy). Its relative paths (pid, logs,
/// temp files) are under `dir`, nginx's `-p` prefix.
fn nginx_conf(dir: &std::path::Path, port: u16, upstreams: &[SocketAddr]) -> String {
    let shipped = include_str!("../../docs/deploy/nginx.conf");
    for sub in ["logs", "temp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("nginx dirs");
    }
    let servers: String = upstreams
        .iter()
        .map(|a| format!("        server {a} max_fails=3 fail_timeout=10s;\n"))
        .collect();
    let mut out = String::new();
    let (mut listens, mut replaced) = (0, 0);
    for line in shipped.lines() {
        let t = line.trim_start();
        if t == "listen 8080;" {
            listens += 1;
            out.push_str(&format!("        listen 127.0.0.1:{port};\n"));
        } else if t.starts_with("server 127.0.0.1:808") {
            if replaced == 0 {
                out.push_str(&servers);
            }
            replaced += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_eq!(
        (listens, replaced),
        (1, 2),
        "docs/deploy/nginx.conf no longer has `listen 8080;` and two `server 127.0.0.1:808x` lines"
    );
    out
}
