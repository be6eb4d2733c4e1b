//! Command-line interface: one subcommand per mode plus the options every mode shares. Parsing
//! and the checks every mode shares (targets must be loopback, counts and times in range); a
//! mode's own limits are checked by its module (`modes::validate`). No sockets are opened
//! here, and nothing here imports a mode.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Load generator for WebSocket servers on this machine: how many sockets can one box hold,
/// and at what latency? Prints a progress line and a summary to stderr and exactly one JSON
/// line with every figure to stdout.
#[derive(Parser, Debug, Clone)]
#[command(name = "corecast-load", version)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: ModeArgs,

    /// Internal: run as worker W of N under a coordinating process ("W/N").
    #[arg(long, hide = true, global = true)]
    pub worker: Option<WorkerSlot>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ModeArgs {
    /// C connections each keep D messages of S bytes in flight on an echo endpoint; reports
    /// msgs/s and round-trip percentiles.
    Echo(EchoArgs),
    /// R receivers + K senders on a relay-to-all endpoint; reports deliveries/s, fan-out
    /// latency, lost / duplicated / out-of-order deliveries.
    Broadcast(BroadcastArgs),
    /// Opens C connections (ramped at --rate) and holds them; reports connect rate and, with
    /// --server-pid, the server's RSS per connection.
    Idle(IdleArgs),
    /// Upgrade handshake + close handshake in a loop with N in flight; reports handshakes/s.
    Connect(ConnectArgs),
    /// N users over R rooms on the chat protocol (JSON on GET /ws); reports deliveries/s,
    /// publish -> delivery latency, lost / duplicated / out-of-order messages by the room's seq,
    /// acks and errors by code.
    ///
    /// User N connects as `/ws?username=uN` (the server in development mode, without
    /// --jwt-secret), waits for `welcome` and the `room.list` after it, sends
    /// `{"type":"room.join","room":"room-K","id":"j"}` for K = N % R and waits for the room's
    /// `user.list` and the `ack`. The ramp ends when every user has joined. Then users
    /// 0 .. S-1 (--senders S) send `{"type":"chat","room":"room-K","content":...,"id":C}` at
    /// --send-rate in total, the content being a stamp (sender, counter C, send time) and a
    /// mark (sent in the measured window or not) padded to --size characters. After --warmup
    /// seconds the measured window of --duration seconds starts; then sending stops and
    /// --drain seconds are left for acks and deliveries.
    ///
    /// Every member parses each `chat` it gets: deliveries/s (received in the window),
    /// latency (send time in the content to receipt, same clock), the room's seq (every member
    /// must see 1, 2, 3... with no gap, duplicate or reordering; within one process, the same
    /// seq must carry the same message for every member) and lost deliveries: messages sent in
    /// the window and acked, times the room's members at the start, minus the unique
    /// deliveries of those messages. `{"type":"error"}` answers are counted by code.
    ///
    /// The server's per-connection message rate applies (--msg-rate, default 20/s with a burst
    /// of 40): keep --send-rate / --senders under it, or raise it, or the run counts
    /// rate_limited errors. With --server-pid: server CPU per delivery and RSS per connection.
    Chat(ChatArgs),
    /// N owners on an event gateway endpoint (corecast's `[[endpoint]]` with
    /// `identity = "query:NAME"`) and a publisher on its RabbitMQ exchange; reports events/s
    /// delivered, publish -> socket latency, lost / duplicated / misrouted / reordered events
    /// and, with --server-pid and --broker-pid, the CPU time of the gateway and the broker per
    /// delivered event.
    ///
    /// Owner N connects as `PATH?PARAM=PREFIXN` (`/ws/riders?userID=owner-17`). Once every
    /// owner is open and the publisher (a lapin client in worker process 0, on its own
    /// thread) is connected, the publisher sends events 0, 1, 2... at --publish-rate to the
    /// exchange with --routing-key and the body `{"ownerId":"owner-K","data":{"s":"<stamp>",
    /// "p":"xx.."}}`, K chosen per event (--addressing), the stamp holding K, the event number
    /// and the CLOCK_MONOTONIC publish time. Every owner checks each frame it gets byte for
    /// byte against `{"type":"<routing key>","data":<data>}`, that it was addressed to it, and
    /// records the event number (duplicates, per-owner order) and the latency. Lost: events
    /// the broker confirmed (or, with --no-confirm, that were written) minus the distinct
    /// events received. The CPU of --server-pid and --broker-pid is sampled by the publisher
    /// at the edges of the measured window (after --warmup), in the same instants.
    Gateway(GatewayArgs),
}

/// Options shared by every mode.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server address(es), comma-separated; connections are spread round-robin. Only
    /// 127.0.0.0/8 and ::1 are accepted.
    #[arg(long, short = 't', value_delimiter = ',', required = true)]
    pub target: Vec<String>,

    /// Request path (default: /echo for echo, /broadcast for broadcast, /ws for chat,
    /// /ws/riders for gateway, /echo otherwise).
    #[arg(long)]
    pub path: Option<String>,

    /// Length of the measured phase, in seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,

    /// New connections per second while ramping up (0 = as fast as --connect-inflight allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,

    /// Connection attempts (TCP connect + upgrade) in progress at once, over all processes.
    #[arg(long, default_value_t = 256)]
    pub connect_inflight: usize,

    /// Seconds allowed for the ramp-up beyond connections/--rate before the test starts with
    /// whatever is open.
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout: f64,

    /// Client sockets bind to 127.0.0.1 .. 127.0.0.N (IPv4 targets) so that ports never run out.
    #[arg(long, default_value_t = 16)]
    pub source_ips: u8,

    /// Worker processes (default: as many as the open-file limit requires).
    #[arg(long)]
    pub processes: Option<usize>,

    /// Most connections one worker process holds (default: RLIMIT_NOFILE minus a reserve).
    #[arg(long)]
    pub conns_per_process: Option<usize>,

    /// Server process(es) to sample (CPU time and RSS from /proc, summed over the list) for
    /// per-CPU-second and per-connection figures.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,

    /// Largest server frame (and message) accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    pub max_frame: u64,

    /// Exit with status 1 when any error was counted (not only when nothing was measured).
    #[arg(long)]
    pub fail_on_errors: bool,

    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EchoArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections.
    #[arg(long, short = 'c', default_value_t = 100)]
    pub connections: usize,
    /// Messages in flight per connection.
    #[arg(long, short = 'D', default_value_t = 1)]
    pub inflight: usize,
    /// Payload size in bytes.
    #[arg(long, short = 's', default_value_t = 32)]
    pub size: usize,
    /// Send text frames (the payload is ASCII) instead of binary.
    #[arg(long)]
    pub text: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BroadcastArgs {
    #[command(flatten)]
    pub common: Common,
    /// Receiving connections (senders receive too: every client gets every message).
    #[arg(long, short = 'r', default_value_t = 1000)]
    pub receivers: usize,
    /// Sending connections.
    #[arg(long, short = 'k', default_value_t = 4)]
    pub senders: usize,
    /// Total messages per second over all senders (0 = as fast as --window allows).
    #[arg(long, default_value_t = 0.0)]
    pub send_rate: f64,
    /// Messages per sender in flight: sent and not yet received by every client (of its
    /// server, in the sender's worker process).
    #[arg(long, short = 'w', default_value_t = 4)]
    pub window: usize,
    /// Payload size in bytes (at least 40: sender id, sequence and timestamp in hex).
    #[arg(long, short = 's', default_value_t = 64)]
    pub size: usize,
    /// Seconds to wait after the last send for deliveries still in flight.
    #[arg(long, default_value_t = 2.0)]
    pub drain: f64,
}

#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open and hold.
    #[arg(long, short = 'c', default_value_t = 1000)]
    pub connections: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connection cycles (connect, upgrade, close handshake) in flight.
    #[arg(long, short = 'n', default_value_t = 64)]
    pub inflight: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ChatArgs {
    #[command(flatten)]
    pub common: Common,
    /// Users: one connection each, as `?username=uN` (N = 0, 1, ...).
    #[arg(long, short = 'c', default_value_t = 1000)]
    pub users: usize,
    /// Rooms room-0 .. room-(R-1); user N joins room-(N % R). With 1, every user is in room-0.
    #[arg(long, short = 'R', default_value_t = 1)]
    pub rooms: usize,
    /// Sending users S: users 0 .. S-1, so the senders cover the rooms round-robin. Every
    /// user receives.
    #[arg(long, short = 'k', default_value_t = 10)]
    pub senders: usize,
    /// Chat messages per second over all senders (paced; > 0, so the count is bounded).
    #[arg(long, default_value_t = 100.0)]
    pub send_rate: f64,
    /// `content` length in characters: 41..=2000 (the stamp, a window mark, 'x' padding).
    #[arg(long, short = 's', default_value_t = 64)]
    pub size: usize,
    /// Seconds of sending before the measured window (not counted).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Seconds to wait after the last send for acks and deliveries in flight.
    #[arg(long, default_value_t = 2.0)]
    pub drain: f64,
}

/// How the gateway mode's publisher picks the owner of each event.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// Event n goes to owner n % N.
    RoundRobin,
    /// Event n goes to owner hash(n) % N (a fixed hash: every process agrees).
    Random,
}

#[derive(Args, Debug, Clone)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub common: Common,
    /// Owners: one connection (device) each, owner N as PREFIXN.
    #[arg(long, short = 'c', default_value_t = 10_000)]
    pub owners: usize,
    /// The query parameter naming the owner (the endpoint's `identity = "query:NAME"`).
    #[arg(long, default_value = "userID")]
    pub param: String,
    /// Owner ids are PREFIX0, PREFIX1, ... (letters, digits, `-`, `_`, `.`).
    #[arg(long, default_value = "owner-")]
    pub owner_prefix: String,
    /// The broker (the host must be 127.0.0.0/8, ::1 or localhost).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// The topic exchange corecast consumes from (declared durable if absent).
    #[arg(long, default_value = "bench")]
    pub exchange: String,
    /// Routing key of every event (corecast's queue must be bound to it).
    #[arg(long, default_value = "bench.event.created")]
    pub routing_key: String,
    /// The body member holding the owner (`[amqp] owner_field`).
    #[arg(long, default_value = "ownerId")]
    pub owner_field: String,
    /// Events per second, paced in 1 ms steps (> 0, so the count is bounded).
    #[arg(long, default_value_t = 10_000.0)]
    pub publish_rate: f64,
    /// Who gets event n.
    #[arg(long, value_enum, default_value_t = Addressing::Random)]
    pub addressing: Addressing,
    /// Length of each event's `data` in bytes (55..=65536: the stamp and padding).
    #[arg(long, short = 's', default_value_t = 128)]
    pub size: usize,
    /// Publish without publisher confirms (loss is then counted against what was written).
    #[arg(long)]
    pub no_confirm: bool,
    /// Publish persistent messages (delivery mode 2; the broker writes them to disk).
    #[arg(long)]
    pub persistent: bool,
    /// Publishes in flight (not yet confirmed, or not yet written without confirms) at most;
    /// at the bound the publisher waits and falls behind the rate (reported).
    #[arg(long, default_value_t = 20_000)]
    pub max_in_flight: usize,
    /// Seconds of publishing before the measured window (not counted in rates and CPU).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds to wait after the last publish for confirms and deliveries in flight.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// The broker's process(es) (beam.smp) to sample for CPU time, like --server-pid.
    #[arg(long, value_delimiter = ',')]
    pub broker_pid: Vec<u32>,
}

impl ModeArgs {
    pub fn common(&self) -> &Common {
        match self {
            ModeArgs::Echo(a) => &a.common,
            ModeArgs::Broadcast(a) => &a.common,
            ModeArgs::Idle(a) => &a.common,
            ModeArgs::Connect(a) => &a.common,
            ModeArgs::Chat(a) => &a.common,
            ModeArgs::Gateway(a) => &a.common,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModeArgs::Echo(_) => "echo",
            ModeArgs::Broadcast(_) => "broadcast",
            ModeArgs::Idle(_) => "idle",
            ModeArgs::Connect(_) => "connect",
            ModeArgs::Chat(_) => "chat",
            ModeArgs::Gateway(_) => "gateway",
        }
    }

    /// The request path, with the mode's default.
    pub fn path(&self) -> String {
        if let Some(p) = &self.common().path {
            return p.clone();
        }
        match self {
            ModeArgs::Broadcast(_) => "/broadcast".into(),
            ModeArgs::Chat(_) => "/ws".into(),
            ModeArgs::Gateway(_) => "/ws/riders".into(),
            _ => "/echo".into(),
        }
    }

    /// Connections held at once over the whole run (for connect: cycles in flight).
    pub fn connections(&self) -> usize {
        match self {
            ModeArgs::Echo(a) => a.connections,
            ModeArgs::Broadcast(a) => a.receivers + a.senders,
            ModeArgs::Idle(a) => a.connections,
            ModeArgs::Connect(a) => a.inflight,
            ModeArgs::Chat(a) => a.users,
            ModeArgs::Gateway(a) => a.owners,
        }
    }

    /// Seconds of traffic before the measured window (chat and gateway).
    pub fn warmup_secs(&self) -> f64 {
        match self {
            ModeArgs::Chat(a) => a.warmup,
            ModeArgs::Gateway(a) => a.warmup,
            _ => 0.0,
        }
    }

    /// Seconds a run may spend after the measured phase (drain + closing).
    pub fn tail_secs(&self) -> f64 {
        let drain = match self {
            ModeArgs::Broadcast(a) => a.drain,
            ModeArgs::Chat(a) => a.drain,
            ModeArgs::Gateway(a) => a.drain,
            ModeArgs::Echo(_) => 1.0,
            _ => 0.0,
        };
        drain + close_timeout(self.connections() as u64).as_secs_f64()
    }

    /// Checks what every mode shares before any socket is opened (the mode's own numbers are
    /// checked by `modes::validate`, which calls this first).
    pub fn validate_common(&self) -> Result<()> {
        let c = self.common();
        if !(c.duration > 0.0 && c.duration <= 24.0 * 3600.0) {
            bail!("--duration must be in (0, 86400] seconds");
        }
        if !(c.rate >= 0.0 && c.rate.is_finite()) {
            bail!("--rate must be >= 0");
        }
        if !(c.connect_timeout > 0.0 && c.connect_timeout <= 3600.0) {
            bail!("--connect-timeout must be in (0, 3600] seconds");
        }
        if c.connect_inflight == 0 || c.source_ips == 0 {
            bail!("--connect-inflight and --source-ips must be at least 1");
        }
        let n = self.connections();
        if n == 0 || n > MAX_CONNECTIONS {
            bail!("connection count must be in 1..={MAX_CONNECTIONS}");
        }
        let path = self.path();
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            bail!("--path must start with '/' and contain no spaces or control characters");
        }
        Ok(())
    }
}

/// Upper bound on connections per run (the tool spreads them over processes).
pub const MAX_CONNECTIONS: usize = 2_000_000;

/// How long the closing handshakes of `conns` connections may take at the end of a run:
/// 2 s plus 1 s per 5,000 connections, at most 10 s.
pub fn close_timeout(conns: u64) -> Duration {
    Duration::from_secs(2 + (conns / 5000).min(8))
}

/// "W/N": this process is worker W (0-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSlot {
    pub index: usize,
    pub count: usize,
}

impl WorkerSlot {
    /// How many of `total` (connections, senders) this worker owns: global indices w, w+N,
    /// w+2N, ... below `total`.
    pub fn share(self, total: u64) -> u64 {
        let (w, n) = (self.index as u64, self.count as u64);
        (total + n - 1 - w) / n
    }
}

impl std::str::FromStr for WorkerSlot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (w, n) = s.split_once('/').ok_or("expected W/N")?;
        let index = w.parse().map_err(|_| "bad W")?;
        let count = n.parse().map_err(|_| "bad N")?;
        if index >= count {
            return Err("W must be < N".into());
        }
        Ok(WorkerSlot { index, count })
    }
}

/// Resolves `--target` values and refuses anything that is not loopback: this tool only ever
/// sends traffic to the machine it runs on.
pub fn resolve_targets(raw: &[String]) -> Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for t in raw {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        let addrs: Vec<SocketAddr> = match t.parse::<SocketAddr>() {
            Ok(a) => vec![a],
            Err(_) => t
                .to_socket_addrs()
                .with_context(|| format!("cannot resolve target {t:?} (want IP:PORT)"))?
                .collect(),
        };
        let Some(addr) = addrs.first().copied() else {
            bail!("target {t:?} resolves to nothing");
        };
        if !is_local(addr.ip()) {
            bail!("target {t} is not a loopback address: only 127.0.0.0/8 and ::1 are allowed");
        }
        if addr.port() == 0 {
            bail!("target {t} has port 0");
        }
        out.push(addr);
    }
    if out.is_empty() {
        bail!("no --target given");
    }
    Ok(out)
}

/// 127.0.0.0/8 or ::1.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_pass() {
        let ok = resolve_targets(&[
            "127.0.0.1:9001".into(),
            "127.9.8.7:1".into(),
            "[::1]:80".into(),
        ]);
        assert_eq!(ok.map(|v| v.len()).ok(), Some(3));
        for bad in [
            "10.0.0.1:80",
            "8.8.8.8:53",
            "[::2]:80",
            "0.0.0.0:80",
            "127.0.0.1:0",
        ] {
            assert!(resolve_targets(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn worker_slot_parses() {
        assert_eq!(
            "2/5".parse::<WorkerSlot>(),
            Ok(WorkerSlot { index: 2, count: 5 })
        );
        assert!("5/5".parse::<WorkerSlot>().is_err());
        assert!("x".parse::<WorkerSlot>().is_err());
    }

    #[test]
    fn shares_cover_every_connection_once() {
        for total in [1u64, 7, 100, 19_001] {
            for n in 1..6 {
                let sum: u64 = (0..n)
                    .map(|index| WorkerSlot { index, count: n }.share(total))
                    .sum();
                assert_eq!(sum, total, "total {total} over {n}");
            }
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
