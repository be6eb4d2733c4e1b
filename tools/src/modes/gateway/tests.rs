use super::*;
use crate::cli::{Cli, ModeArgs, WorkerSlot};
use crate::conn::Tx;
use crate::rng::XorShift;
use clap::Parser;

/// Gateway arguments and this (single) worker's driver settings from a command line.
fn setup(flags: &[&str]) -> (GatewayArgs, DriverConfig) {
    let mut argv = vec!["corecast-load", "gateway", "-t", "127.0.0.1:9"];
    argv.extend_from_slice(flags);
    let cli = Cli::try_parse_from(argv).expect("valid command line");
    let ModeArgs::Gateway(a) = cli.mode.clone() else {
        panic!("not gateway");
    };
    validate(&a).expect("valid gateway arguments");
    let targets = vec!["127.0.0.1:9".parse().expect("addr")];
    let slot = WorkerSlot { index: 0, count: 1 };
    (a, crate::modes::driver_config(&cli.mode, &targets, slot))
}

/// One fake connection per owner (its key = its owner index).
struct Owners {
    tx: Vec<Tx>,
    rng: XorShift,
}

impl Owners {
    fn new(n: usize) -> Self {
        Owners {
            tx: (0..n).map(|_| Tx::default()).collect(),
            rng: XorShift::new(1),
        }
    }

    fn with<R>(&mut self, g: usize, f: impl FnOnce(&mut ConnIo<'_>) -> R) -> R {
        let mut io = ConnIo::for_test(ConnKey(g), g as u64, &mut self.tx[g], &mut self.rng);
        f(&mut io)
    }

    fn receive(&mut self, gw: &mut Gateway, g: usize, frame: &[u8], now_ns: u64) {
        self.with(g, |io| gw.on_message(io, DataKind::Text, frame, now_ns));
    }
}

/// The frame corecast sends for event `n` to `owner`, published at `sent_ns`.
fn frame(key: &str, owner: u64, n: u64, sent_ns: u64, size: usize) -> Vec<u8> {
    let mut f = format!("{{\"type\":\"{key}\",\"data\":").into_bytes();
    body::write_data(&mut f, owner, n, sent_ns, size);
    f.push(b'}');
    f
}

fn summary(gw: &Gateway, a: &GatewayArgs, publisher: &[(&str, u64)]) -> (serde_json::Value, bool) {
    let mut r = WorkerReport::default();
    gw.report(&mut r);
    for (k, v) in publisher {
        r.add(k, *v);
    }
    let ctx = RunContext {
        processes: 1,
        targets: 1,
        server: None,
    };
    let s = summarize(a, &Merged::new(&[r]), &ctx);
    (s.fields["gateway"].clone(), s.ok)
}

#[test]
fn owners_connect_by_query_parameter() {
    let (a, cfg) = setup(&["-c", "4"]);
    let gw = Gateway::with_publisher(&a, &cfg, None);
    assert_eq!(
        gw.request_target("/ws/riders", 3),
        "/ws/riders?userID=owner-3"
    );
    let (a, cfg) = setup(&["-c", "4", "--param", "uid", "--owner-prefix", "rider-"]);
    let gw = Gateway::with_publisher(&a, &cfg, None);
    assert_eq!(gw.request_target("/ws?x=1", 0), "/ws?x=1&uid=rider-0");
}

#[test]
fn addressing_is_the_same_everywhere_and_covers_every_owner() {
    for n in 0..10 {
        assert_eq!(owner_of(n, 4, Addressing::RoundRobin), n % 4);
    }
    let mut hits = [0u32; 7];
    for n in 0..7000 {
        let o = owner_of(n, 7, Addressing::Random);
        assert_eq!(o, owner_of(n, 7, Addressing::Random));
        hits[o as usize] += 1;
    }
    assert!(hits.iter().all(|&h| (800..1200).contains(&h)), "{hits:?}");
    assert_eq!(owner_of(5, 0, Addressing::Random), 0);
}

#[test]
fn every_event_is_accounted_for() {
    let key = "bench.event.created";
    let (a, cfg) = setup(&["-c", "4", "--addressing", "round-robin", "-s", "80"]);
    let mut gw = Gateway::with_publisher(&a, &cfg, None);
    let mut owners = Owners::new(4);
    for g in 0..4 {
        owners.with(g, |io| gw.on_open(io, 0));
    }
    let mut conns = Conns::new(1);
    // Warm-up of 2 s: the window is [2 s, 12 s].
    gw.on_start(&mut conns, 0, 12_000_000_000);
    assert_eq!(gw.measure_from_ns, 2_000_000_000);
    let t = 3_000_000_000;
    // Events 0..8 (owner n % 4), each 1 ms after its publish; event 6 never arrives.
    for n in (0..8u64).filter(|&n| n != 6) {
        let f = frame(key, n % 4, n, t, 80);
        owners.receive(&mut gw, (n % 4) as usize, &f, t + 1_000_000);
    }
    let published = [
        ("pub_published", 8),
        ("pub_confirmed", 8),
        ("pub_confirms", 1),
    ];
    let (v, ok) = summary(&gw, &a, &published);
    assert_eq!(v["unique"], 7);
    assert_eq!(v["lost"], 1);
    assert!(!ok);
    owners.receive(&mut gw, 2, &frame(key, 2, 6, t, 80), t + 2_000_000);
    let (v, ok) = summary(&gw, &a, &published);
    assert_eq!(
        (v["lost"].clone(), v["deliveries"].clone()),
        (json!(0), json!(8))
    );
    assert!(ok, "{v}");
    assert_eq!(gw.latency.len(), 8);
    assert_eq!(gw.latency.value_at_quantile(0.5), 1000);

    // A duplicate, a late one (owner 1 gets 1 after 5), an event for another owner, a frame
    // that is not this run's event, and one with another size.
    owners.receive(&mut gw, 0, &frame(key, 0, 4, t, 80), t);
    owners.receive(&mut gw, 1, &frame(key, 1, 9, t, 80), t);
    owners.receive(&mut gw, 1, &frame(key, 0, 8, t, 80), t);
    owners.receive(&mut gw, 3, br#"{"type":"error","code":"x"}"#, t);
    owners.receive(&mut gw, 3, &frame(key, 3, 11, t, 81), t);
    owners.receive(&mut gw, 3, &frame("bench.event.other", 3, 11, t, 80), t);
    let (v, ok) = summary(&gw, &a, &published);
    assert_eq!(v["duplicates"], 1);
    assert_eq!(v["misrouted"], 1);
    assert_eq!(v["malformed"], 3);
    assert!(!ok);
    assert_eq!(gw.c.out_of_order, 0);
    owners.receive(&mut gw, 1, &frame(key, 1, 1 + 4 * 100, t, 80), t);
    owners.receive(&mut gw, 1, &frame(key, 1, 13, t, 80), t);
    assert_eq!(gw.c.out_of_order, 1);
    // Published before the window: delivered and unique, but not timed.
    owners.receive(&mut gw, 0, &frame(key, 0, 20, 1_000, 80), t);
    assert_eq!(gw.latency.len(), 11);
}

#[test]
fn without_confirms_what_was_written_must_arrive() {
    assert_eq!(expected_events(10, 0, 2, false), 8);
    assert_eq!(expected_events(10, 7, 2, true), 7);
}

#[test]
fn event_numbers_beyond_the_run_are_refused() {
    let (a, cfg) = setup(&[
        "-c",
        "1",
        "--publish-rate",
        "100",
        "-d",
        "1",
        "--warmup",
        "0",
    ]);
    let mut gw = Gateway::with_publisher(&a, &cfg, None);
    assert_eq!(gw.mark(0), Some(true));
    assert_eq!(gw.mark(0), Some(false));
    assert_eq!(gw.mark(gw.max_events - 1), Some(true));
    assert_eq!(gw.mark(gw.max_events), None);
    assert_eq!(gw.mark(u64::MAX), None);
}

#[test]
fn limits() {
    let bad = |flags: &[&str]| {
        let mut argv = vec!["corecast-load", "gateway", "-t", "127.0.0.1:9"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).expect("parses");
        let ModeArgs::Gateway(a) = cli.mode else {
            panic!("not gateway")
        };
        validate(&a).is_err()
    };
    assert!(!bad(&[]));
    assert!(bad(&["--publish-rate", "0"]));
    assert!(bad(&["-s", "54"]));
    assert!(bad(&["--routing-key", "a b"]));
    assert!(bad(&["--owner-prefix", "a&b"]));
    assert!(bad(&["--amqp-url", "amqp://192.168.1.1:5672/%2f"]));
    assert!(bad(&["--publish-rate", "1000000", "-d", "86400"]));
    assert!(bad(&["--max-in-flight", "0"]));
}
