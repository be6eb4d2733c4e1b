//! What the tests' process fixtures share (Redis and nginx in `cluster.rs`, RabbitMQ in
//! `rabbit.rs`): free ports, temporary directories, signals, and the rule for a program that is
//! not installed. Also compiled into `tests/amqp_bridge.rs` (`#[path]`), so it holds no
//! assertion about corecast and uses nothing else of the `it` binary.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether a test can go on: `found` says whether `what` is installed. When it is not: under
/// `CI=true` the test fails (CI must run these `tests`; `tools/setup.sh` installs what they
/// need); otherwise it prints `SKIPPED` and the caller returns, having checked nothing.
pub fn require(found: bool, what: &str, tests: &str) -> bool {
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is not installed, and CI must run the {tests} tests (tools/setup.sh installs it)"
        );
        eprintln!("SKIPPED: {what} not found; this {tests} test checks nothing here");
    }
    found
}

/// Whether `program` can be run (it is found and starts), tried with the harmless `arg`
/// (`--version`, `-v`, `-help`; its exit status does not matter).
pub fn can_run(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A port above 61000 that nothing listens on right now (found by binding it).
pub fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 20);
    for _ in 0..1000 {
        let n = NEXT
            .fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed)
            .wrapping_add(seed)
            .wrapping_mul(6_364_136_223_846_793_005);
        let port = 61001 + ((n >> 33) % 4000) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port above 61000");
}

/// A fresh, empty temporary directory for one fixture (`kind` and `port` name it).
pub fn temp_dir(kind: &str, port: u16) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "corecast-it-{kind}-{}-{port}-{}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Sends signal `sig` (`STOP`, `CONT`, `TERM`, …) to `pid` through kill(1) (the tests use no
/// libc).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}
