//! Chat mode: N users over R rooms through the chat protocol on `GET /ws` (docs/protocol.md):
//! `welcome` and `room.list`, `room.join` answered by `user.list` and `ack`, then paced `chat`
//! messages from S senders, each acked with the seq the room's home worker assigned, and
//! delivered to every member of the room (the sender's connection included).
//!
//! Worker side: the setup state of every connection (the ramp waits until all have joined),
//! the pacing of the senders, and per receiving connection the room's seq (gaps, duplicates,
//! reordering), the publish → delivery latency (the content starts with a stamp holding the
//! CLOCK_MONOTONIC send time) and whether a seq carries the same message for every member of
//! this process. Lost deliveries need every process's figures: each reports, per room, its
//! members at the start and the acks of messages sent in the measured window; `summarize`
//! multiplies and subtracts the unique deliveries of those messages. The JSON scanning lives
//! in `scan`; this module never parses a whole document.

mod scan;

use self::scan::{scan, Fields, Raw};
use crate::cli::ChatArgs;
use crate::conn::{ConnIo, ConnKey};
use crate::conns::Conns;
use crate::driver::DriverConfig;
use crate::order::{Seen, SeqWindow};
use crate::report::{
    self, latency_json, latency_line, new_hist, record_ns, Merged, RunContext, Summary,
    WorkerReport,
};
use crate::stamp::{self, Stamp};
use crate::sys::monotonic_ns;
use crate::workload::Workload;
use anyhow::{bail, Result};
use corecast::ws::DataKind;
use hdrhistogram::Histogram;
use serde_json::json;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Longest `content` the protocol accepts, in characters (the server answers `too_long`).
pub const MAX_CONTENT: usize = 2000;
/// Shortest content: the stamp and the window mark.
pub const MIN_CONTENT: usize = stamp::LEN + 1;
/// The byte after the stamp: whether the sender counted the message in the measured window.
/// Receivers go by it rather than by their own clock, so every process of a run agrees on
/// which messages are expected, even at the window's edges (the processes' windows start a
/// few microseconds apart).
const MARK_MEASURED: u8 = b'm';
const MARK_OUTSIDE: u8 = b'w';
/// The `id` of every `room.join` (chat ids are numbers: the sender's counter).
const JOIN_ID: &[u8] = b"j";
/// A sender skips a send while this many bytes wait in its outbound queue.
const MAX_QUEUED_BYTES: usize = 1 << 20;
/// Tick period for pacing, in ns.
const TICK_NS: u64 = 1_000_000;
/// The drain ends this long after the last delivery once every message is answered, in ns.
const QUIET_NS: u64 = 500_000_000;
/// Send times kept per sender for the ack latency (a power of two): an ack more than this
/// many sends behind its sender is not timed.
const ACK_RING: usize = 64;
/// Entries of the seq → message consistency check over all rooms (24 bytes each); each room
/// gets a power of two of them, at most `MAX_SEQ_RING`, at least 1.
const SEQ_RING_BUDGET: usize = 1 << 19;
const MAX_SEQ_RING: usize = 4096;
/// Most senders (each keeps `ACK_RING` send times).
pub const MAX_SENDERS: usize = 100_000;
/// Longest error code kept as its own counter.
const MAX_CODE_LEN: usize = 32;

/// The mode's own limits.
pub fn validate(a: &ChatArgs) -> Result<()> {
    if a.rooms == 0 || a.rooms > a.users {
        bail!("--rooms must be in 1..=--users (every room needs a member)");
    }
    if a.senders == 0 || a.senders > a.users || a.senders > MAX_SENDERS {
        bail!("--senders must be in 1..=--users (and at most {MAX_SENDERS})");
    }
    if !(a.send_rate > 0.0 && a.send_rate <= 1e7) {
        bail!("--send-rate must be in (0, 10000000] messages per second");
    }
    if a.size < MIN_CONTENT || a.size > MAX_CONTENT {
        bail!("--size must be in {MIN_CONTENT}..={MAX_CONTENT} characters for chat");
    }
    if !(0.0..=3600.0).contains(&a.warmup) {
        bail!("--warmup must be in [0, 3600] seconds");
    }
    if !(0.0..=600.0).contains(&a.drain) {
        bail!("--drain must be in [0, 600] seconds");
    }
    Ok(())
}

/// Consistency-check slots per room for `rooms` rooms (a power of two).
fn seq_ring_len(rooms: usize) -> usize {
    let per_room = (SEQ_RING_BUDGET / rooms.max(1)).clamp(1, MAX_SEQ_RING);
    1 << per_room.ilog2()
}

/// The room of user `global`.
fn room_of(global: u64, rooms: u64) -> u32 {
    (global % rooms) as u32
}

/// `room-K` → K.
fn parse_room(name: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(b"room-")?;
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u32, |v, &d| v * 10 + u32::from(d - b'0')),
    )
}

/// Where a connection is in the protocol's setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Welcome,
    RoomList,
    /// `room.join` sent at `since_ns`; its `user.list` / `ack` arrived.
    Joining {
        since_ns: u64,
        list: bool,
        ack: bool,
    },
    Joined,
    /// The join was answered with an error, or the connection closed before joining.
    Failed,
}

/// One user's connection.
#[derive(Debug, Clone)]
struct Member {
    room: u32,
    setup: Setup,
    open: bool,
    /// Joined when the run started: its deliveries are expected.
    counted: bool,
    /// Index in `senders` (usize::MAX: not a sender).
    sender: usize,
    /// First seq of its room it saw (0: none yet); the order window starts there.
    first_seq: u64,
    order: SeqWindow,
}

#[derive(Debug, Clone)]
struct Sender {
    key: ConnKey,
    /// User index (the stamp's sender id).
    id: u32,
    room: u32,
    /// Messages sent; the next message's counter and id.
    counter: u64,
    /// Counter of the first message sent in the measured window (u64::MAX: none yet).
    first_measured: u64,
    /// Acks and errors received for its messages.
    answered: u64,
    /// Joined and still open: it sends, and the drain waits for its answers.
    active: bool,
    /// Send time of message c at `c % ACK_RING`.
    sent_ns: Vec<u64>,
}

/// Which message a seq carried, for the consistency check.
#[derive(Debug, Clone, Copy, Default)]
struct SeqSlot {
    seq: u64,
    sender: u32,
    counter: u64,
}

pub struct Chat {
    rooms: u64,
    senders_total: u64,
    /// This worker's share of the send rate, in messages per second.
    rate: f64,
    warmup_ns: u64,
    /// The content: stamp + padding (the stamp is rewritten per send).
    content: Vec<u8>,
    /// The outgoing message being built.
    msg: Vec<u8>,
    members: Vec<Option<Member>>,
    senders: Vec<Sender>,
    /// Connections open and not yet joined (or failed).
    setup_pending: u64,
    /// Lowest first seq seen per room in this process.
    room_first: Vec<u64>,
    /// `seq_ring_len` slots per room.
    seq_ring: Vec<SeqSlot>,
    seq_ring_len: usize,
    running: bool,
    start_ns: u64,
    measure_from_ns: u64,
    end_ns: u64,
    next_sender: usize,
    last_delivery_ns: u64,
    c: Counters,
    errors: BTreeMap<String, u64>,
    members_at_start: Vec<u64>,
    acked_measured: Vec<u64>,
    delivery: Histogram<u64>,
    ack: Histogram<u64>,
    join: Histogram<u64>,
}

/// Plain counters of one worker.
#[derive(Debug, Default)]
struct Counters {
    sent: u64,
    sent_measured: u64,
    acks: u64,
    acks_measured: u64,
    errors_answered: u64,
    unexpected_acks: u64,
    deliveries: u64,
    deliveries_total: u64,
    unique_measured: u64,
    duplicates: u64,
    out_of_order: u64,
    gaps: u64,
    seq_conflicts: u64,
    wrong_room: u64,
    other_room: u64,
    foreign: u64,
    malformed: u64,
    other_messages: u64,
    joined: u64,
    join_failed: u64,
    setup_incomplete: u64,
    backpressured: u64,
    senders_active: u64,
}

impl Chat {
    pub fn new(a: &ChatArgs, cfg: &DriverConfig) -> Self {
        let mut content = vec![b'x'; a.size.max(MIN_CONTENT)];
        content[..stamp::LEN].fill(b'0');
        let k = a.senders as u64;
        let mine = cfg.slot.share(k);
        let seq_ring_len = seq_ring_len(a.rooms);
        Chat {
            rooms: a.rooms as u64,
            senders_total: k,
            rate: a.send_rate * mine as f64 / k.max(1) as f64,
            warmup_ns: cfg.warmup.as_nanos() as u64,
            content,
            msg: Vec::with_capacity(a.size + 96),
            members: Vec::new(),
            senders: Vec::new(),
            setup_pending: 0,
            room_first: vec![0; a.rooms],
            seq_ring: vec![SeqSlot::default(); seq_ring_len * a.rooms],
            seq_ring_len,
            running: false,
            start_ns: 0,
            measure_from_ns: u64::MAX,
            end_ns: 0,
            next_sender: 0,
            last_delivery_ns: 0,
            c: Counters::default(),
            errors: BTreeMap::new(),
            members_at_start: vec![0; a.rooms],
            acked_measured: vec![0; a.rooms],
            delivery: new_hist(),
            ack: new_hist(),
            join: new_hist(),
        }
    }

    fn in_window(&self, t_ns: u64) -> bool {
        t_ns >= self.measure_from_ns && t_ns <= self.end_ns
    }

    /// Setup of connection `k` is over (joined or failed).
    fn setup_done(&mut self, k: usize, joined: bool, now_ns: u64) {
        let Some(Some(m)) = self.members.get_mut(k) else {
            return;
        };
        if let Setup::Joining { since_ns, .. } = m.setup {
            if joined {
                record_ns(&mut self.join, now_ns.saturating_sub(since_ns));
            }
        }
        if matches!(m.setup, Setup::Joined | Setup::Failed) {
            return;
        }
        m.setup = if joined { Setup::Joined } else { Setup::Failed };
        self.setup_pending = self.setup_pending.saturating_sub(1);
        if joined {
            self.c.joined += 1;
        } else {
            self.c.join_failed += 1;
        }
    }

    fn send_join(&mut self, io: &mut ConnIo<'_>, room: u32) {
        self.msg.clear();
        self.msg
            .extend_from_slice(br#"{"type":"room.join","room":"room-"#);
        corecast::chat::json::write_u64(&mut self.msg, u64::from(room));
        self.msg.extend_from_slice(br#"","id":""#);
        self.msg.extend_from_slice(JOIN_ID);
        self.msg.extend_from_slice(br#""}"#);
        io.send(DataKind::Text, &self.msg);
    }

    /// Sends the next message of sender `i`.
    fn send_chat(&mut self, i: usize, io: &mut ConnIo<'_>, now_ns: u64) {
        let measured = self.in_window(now_ns);
        let s = &mut self.senders[i];
        let counter = s.counter;
        s.counter += 1;
        if measured && s.first_measured == u64::MAX {
            s.first_measured = counter;
        }
        s.sent_ns[(counter as usize) & (ACK_RING - 1)] = now_ns;
        Stamp {
            sender: s.id,
            counter,
            sent_ns: now_ns,
        }
        .write(&mut self.content);
        self.content[stamp::LEN] = if measured {
            MARK_MEASURED
        } else {
            MARK_OUTSIDE
        };
        self.msg.clear();
        self.msg
            .extend_from_slice(br#"{"type":"chat","room":"room-"#);
        corecast::chat::json::write_u64(&mut self.msg, u64::from(s.room));
        self.msg.extend_from_slice(br#"","content":""#);
        self.msg.extend_from_slice(&self.content);
        self.msg.extend_from_slice(br#"","id":"#);
        corecast::chat::json::write_u64(&mut self.msg, counter);
        self.msg.push(b'}');
        io.send(DataKind::Text, &self.msg);
        self.c.sent += 1;
        self.c.sent_measured += u64::from(measured);
    }

    fn on_chat(&mut self, k: usize, f: &Fields<'_>, now_ns: u64) {
        let Some(Some(m)) = self.members.get_mut(k) else {
            return;
        };
        let room = match f.room.map(|r| (r, parse_room(r))) {
            Some((_, Some(r))) if r == m.room => r,
            Some((_, Some(_))) => {
                self.c.wrong_room += 1; // a room this connection never joined
                return;
            }
            _ => {
                self.c.other_room += 1; // `general`, or a room not ours
                return;
            }
        };
        let (Some(seq), Some(content)) = (f.seq, f.content) else {
            self.c.malformed += 1;
            return;
        };
        let Some(st) = Stamp::read(content) else {
            self.c.foreign += 1; // someone else's chat in our room
            return;
        };
        self.c.deliveries_total += 1;
        self.last_delivery_ns = now_ns;
        if now_ns >= self.measure_from_ns && now_ns <= self.end_ns {
            self.c.deliveries += 1;
        }
        if m.first_seq == 0 {
            m.first_seq = seq;
            m.order = SeqWindow::starting_at(seq);
            let first = &mut self.room_first[room as usize];
            if *first == 0 || seq < *first {
                *first = seq;
            }
        }
        match m.order.observe(seq) {
            Seen::InOrder { skipped } => self.c.gaps += skipped,
            Seen::Late => self.c.out_of_order += 1,
            Seen::Duplicate => {
                self.c.duplicates += 1;
                return;
            }
        }
        let counted = m.counted;
        let slot = &mut self.seq_ring
            [room as usize * self.seq_ring_len + (seq as usize & (self.seq_ring_len - 1))];
        if slot.seq == seq {
            if (slot.sender, slot.counter) != (st.sender, st.counter) {
                self.c.seq_conflicts += 1;
            }
        } else {
            *slot = SeqSlot {
                seq,
                sender: st.sender,
                counter: st.counter,
            };
        }
        if counted && content.get(stamp::LEN) == Some(&MARK_MEASURED) {
            self.c.unique_measured += 1;
            record_ns(&mut self.delivery, now_ns.saturating_sub(st.sent_ns));
        }
    }

    fn on_ack(&mut self, k: usize, f: &Fields<'_>, now_ns: u64) {
        let Some(Some(m)) = self.members.get_mut(k) else {
            return;
        };
        match f.id {
            Some(Raw::Str(JOIN_ID)) => {
                if let Setup::Joining {
                    ref mut ack, list, ..
                } = m.setup
                {
                    *ack = true;
                    if list {
                        self.setup_done(k, true, now_ns);
                    }
                }
            }
            Some(id) => {
                let sender = self.senders.get_mut(m.sender);
                match (id.as_u64(), sender) {
                    (Some(n), Some(s)) if n < s.counter => {
                        s.answered += 1;
                        self.c.acks += 1;
                        if n >= s.first_measured {
                            self.c.acks_measured += 1;
                            self.acked_measured[s.room as usize] += 1;
                        }
                        if n + ACK_RING as u64 >= s.counter {
                            let sent = s.sent_ns[(n as usize) & (ACK_RING - 1)];
                            record_ns(&mut self.ack, now_ns.saturating_sub(sent));
                        }
                    }
                    _ => self.c.unexpected_acks += 1,
                }
            }
            None => self.c.unexpected_acks += 1,
        }
    }

    fn on_error(&mut self, k: usize, f: &Fields<'_>, now_ns: u64) {
        let code = match f.code {
            Some(c)
                if !c.is_empty()
                    && c.len() <= MAX_CODE_LEN
                    && c.iter().all(|b| b.is_ascii_lowercase() || *b == b'_') =>
            {
                String::from_utf8_lossy(c).into_owned()
            }
            _ => "other".to_string(),
        };
        *self.errors.entry(code).or_default() += 1;
        let Some(Some(m)) = self.members.get(k) else {
            return;
        };
        match f.id {
            Some(Raw::Str(JOIN_ID)) => self.setup_done(k, false, now_ns),
            Some(id) => {
                if let (Some(n), Some(s)) = (id.as_u64(), self.senders.get_mut(m.sender)) {
                    if n < s.counter {
                        s.answered += 1;
                        self.c.errors_answered += 1;
                    }
                }
            }
            None => {}
        }
    }
}

impl Workload for Chat {
    fn request_target<'p>(&self, path: &'p str, global: u64) -> Cow<'p, str> {
        let sep = if path.contains('?') { '&' } else { '?' };
        Cow::Owned(format!("{path}{sep}username=u{global}"))
    }

    fn on_open(&mut self, io: &mut ConnIo<'_>, _now_ns: u64) {
        let k = io.key.0;
        if self.members.len() <= k {
            self.members.resize(k + 1, None);
        }
        let room = room_of(io.global, self.rooms);
        let mut sender = usize::MAX;
        if io.global < self.senders_total {
            sender = self.senders.len();
            self.senders.push(Sender {
                key: io.key,
                id: io.global as u32,
                room,
                counter: 0,
                first_measured: u64::MAX,
                answered: 0,
                active: false,
                sent_ns: vec![0; ACK_RING],
            });
        }
        self.members[k] = Some(Member {
            room,
            setup: Setup::Welcome,
            open: true,
            counted: false,
            sender,
            first_seq: 0,
            order: SeqWindow::default(),
        });
        self.setup_pending += 1;
    }

    fn on_message(&mut self, io: &mut ConnIo<'_>, kind: DataKind, payload: &[u8], now_ns: u64) {
        let k = io.key.0;
        if kind != DataKind::Text {
            self.c.foreign += 1;
            return;
        }
        let Some(f) = scan(payload) else {
            self.c.malformed += 1;
            return;
        };
        match f.kind {
            Some(b"chat") => self.on_chat(k, &f, now_ns),
            Some(b"ack") => self.on_ack(k, &f, now_ns),
            Some(b"error") => self.on_error(k, &f, now_ns),
            Some(b"welcome") => {
                if let Some(Some(m)) = self.members.get_mut(k) {
                    if m.setup == Setup::Welcome {
                        m.setup = Setup::RoomList;
                    }
                }
            }
            Some(b"room.list") => {
                let Some(Some(m)) = self.members.get_mut(k) else {
                    return;
                };
                if m.setup == Setup::RoomList {
                    m.setup = Setup::Joining {
                        since_ns: now_ns,
                        list: false,
                        ack: false,
                    };
                    let room = m.room;
                    self.send_join(io, room);
                }
            }
            Some(b"user.list") => {
                let Some(Some(m)) = self.members.get_mut(k) else {
                    return;
                };
                let ours = f.room.and_then(parse_room) == Some(m.room);
                if let Setup::Joining {
                    ref mut list, ack, ..
                } = m.setup
                {
                    if ours {
                        *list = true;
                        if ack {
                            self.setup_done(k, true, now_ns);
                        }
                    }
                }
            }
            _ => self.c.other_messages += 1,
        }
    }

    fn on_closed(&mut self, key: ConnKey, _global: u64, _clean: bool, now_ns: u64) {
        let k = key.0;
        let Some(Some(m)) = self.members.get_mut(k) else {
            return;
        };
        m.open = false;
        let sender = m.sender;
        self.setup_done(k, false, now_ns);
        if let Some(s) = self.senders.get_mut(sender) {
            s.active = false; // it sends no more; the drain does not wait for it
        }
        // The member stays for the report (a chat run opens no connection after the ramp,
        // so its key is not reused).
    }

    fn is_ready(&self) -> bool {
        self.setup_pending == 0
    }

    fn on_start(&mut self, conns: &mut Conns, now_ns: u64, end_ns: u64) {
        self.running = true;
        self.start_ns = now_ns;
        self.measure_from_ns = now_ns + self.warmup_ns;
        self.end_ns = end_ns;
        self.c.setup_incomplete = self.setup_pending;
        for m in self.members.iter_mut().flatten() {
            if m.open && m.setup == Setup::Joined {
                m.counted = true;
                self.members_at_start[m.room as usize] += 1;
            }
            if let Some(s) = self.senders.get_mut(m.sender) {
                s.active = m.open && m.setup == Setup::Joined;
            }
        }
        self.c.senders_active = self.senders.iter().filter(|s| s.active).count() as u64;
        self.on_tick(conns, now_ns);
    }

    fn tick_ns(&self) -> Option<u64> {
        Some(TICK_NS)
    }

    fn on_tick(&mut self, conns: &mut Conns, now_ns: u64) {
        // No send after the end: its stamp would fall outside the window the acks count in.
        if !self.running || self.senders.is_empty() || now_ns >= self.end_ns {
            return;
        }
        let n = self.senders.len();
        let due = ((now_ns - self.start_ns) as f64 / 1e9 * self.rate) as u64 + 1;
        let mut idle_rounds = 0;
        while self.c.sent < due && idle_rounds < n {
            let i = self.next_sender % n;
            self.next_sender = self.next_sender.wrapping_add(1);
            if !self.senders[i].active {
                idle_rounds += 1;
                continue;
            }
            let Some(mut io) = conns.io(self.senders[i].key) else {
                idle_rounds += 1;
                continue;
            };
            if io.queued() >= MAX_QUEUED_BYTES || io.is_closing() {
                self.c.backpressured += 1;
                idle_rounds += 1;
                continue;
            }
            idle_rounds = 0;
            self.send_chat(i, &mut io, now_ns);
        }
    }

    fn on_stop(&mut self, _now_ns: u64) {
        self.running = false;
    }

    fn is_drained(&self) -> bool {
        let answered = self
            .senders
            .iter()
            .all(|s| !s.active || s.answered >= s.counter);
        answered && monotonic_ns().saturating_sub(self.last_delivery_ns) > QUIET_NS
    }

    fn progress_count(&self) -> u64 {
        self.c.deliveries_total
    }

    fn report(&self, out: &mut WorkerReport) {
        let c = &self.c;
        // Members whose first seq is above the room's first (in this process) missed the start.
        let missed_start: u64 = self
            .members
            .iter()
            .flatten()
            .filter(|m| m.counted && m.first_seq > 0)
            .map(|m| m.first_seq - self.room_first[m.room as usize])
            .sum();
        for (name, v) in [
            ("sent", c.sent),
            ("sent_measured", c.sent_measured),
            ("acks", c.acks),
            ("acks_measured", c.acks_measured),
            ("errors_answered", c.errors_answered),
            ("unexpected_acks", c.unexpected_acks),
            ("deliveries", c.deliveries),
            ("deliveries_total", c.deliveries_total),
            ("unique_measured", c.unique_measured),
            ("duplicates", c.duplicates),
            ("out_of_order", c.out_of_order),
            ("gaps", c.gaps + missed_start),
            ("seq_conflicts", c.seq_conflicts),
            ("wrong_room", c.wrong_room),
            ("other_room", c.other_room),
            ("foreign", c.foreign),
            ("malformed", c.malformed),
            ("other_messages", c.other_messages),
            ("joined", c.joined),
            ("join_failed", c.join_failed),
            ("setup_incomplete", c.setup_incomplete),
            ("backpressured", c.backpressured),
            ("senders_active", c.senders_active),
        ] {
            out.add(name, v);
        }
        for (code, n) in &self.errors {
            out.add(&format!("chat_error:{code}"), *n);
        }
        for (r, (&members, &acked)) in self
            .members_at_start
            .iter()
            .zip(&self.acked_measured)
            .enumerate()
        {
            if members > 0 {
                out.add(&format!("members@{r}"), members);
            }
            if acked > 0 {
                out.add(&format!("acked@{r}"), acked);
            }
        }
        out.put_hist("delivery_us", &self.delivery);
        out.put_hist("ack_us", &self.ack);
        out.put_hist("join_us", &self.join);
    }
}

pub fn summarize(a: &ChatArgs, m: &Merged, ctx: &RunContext) -> Summary {
    let secs = m.run_secs;
    let deliveries = m.get("deliveries");
    let rate = report::per_sec(deliveries, secs);
    let sent = m.get("sent");
    let acks = m.get("acks");
    // Every message acked in the window reaches every member of its room at the start.
    let expected: u64 = (0..a.rooms)
        .map(|r| {
            m.get(&format!("acked@{r}"))
                .saturating_mul(m.get(&format!("members@{r}")))
        })
        .sum();
    let unique = m.get("unique_measured");
    let lost = expected.saturating_sub(unique);
    let unanswered = sent.saturating_sub(acks + m.get("errors_answered"));
    let errors: serde_json::Map<String, serde_json::Value> = m
        .counters
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("chat_error:")?.to_string(), json!(v))))
        .collect();
    let error_total: u64 = m
        .counters
        .iter()
        .filter(|(k, _)| k.starts_with("chat_error:"))
        .map(|(_, v)| *v)
        .sum();
    let lat = m.hist("delivery_us");
    let ack = m.hist("ack_us");
    let join = m.hist("join_us");
    let per_cpu = ctx.server.as_ref().and_then(|s| s.per_cpu_sec(deliveries));
    let held = m.get("open_at_end");
    let rss_per_conn = ctx.server.as_ref().and_then(|s| {
        (held > 0).then(|| {
            ((s.rss_end_kib.saturating_sub(s.rss_before_kib) * 1024) as f64 / held as f64).round()
        })
    });
    let bad = [
        "duplicates",
        "out_of_order",
        "gaps",
        "seq_conflicts",
        "wrong_room",
        "malformed",
        "join_failed",
        "unexpected_acks",
    ];
    let bad_total: u64 = bad.iter().map(|k| m.get(k)).sum();
    let mut fields = serde_json::Map::new();
    fields.insert(
        "chat".into(),
        json!({
            "users": a.users,
            "rooms": a.rooms,
            "senders": a.senders,
            "senders_active": m.get("senders_active"),
            "content_chars": a.size,
            "send_rate_target": a.send_rate,
            "warmup_s": a.warmup,
            "joined": m.get("joined"),
            "join_failed": m.get("join_failed"),
            "setup_incomplete_at_start": m.get("setup_incomplete"),
            "sent": sent,
            "sent_measured": m.get("sent_measured"),
            "msgs_sent_per_s": report::round1(report::per_sec(m.get("sent_measured"), secs)),
            "acks": acks,
            "acks_measured": m.get("acks_measured"),
            "unanswered": unanswered,
            "unexpected_acks": m.get("unexpected_acks"),
            "errors_by_code": errors,
            "deliveries": deliveries,
            "deliveries_per_s": report::round1(rate),
            "deliveries_per_server_cpu_s": per_cpu.map(report::round1),
            "expected_deliveries": expected,
            "unique_deliveries": unique,
            "lost": lost,
            "duplicates": m.get("duplicates"),
            "out_of_order": m.get("out_of_order"),
            "seq_gaps": m.get("gaps"),
            "seq_conflicts": m.get("seq_conflicts"),
            "wrong_room": m.get("wrong_room"),
            "other_room": m.get("other_room"),
            "foreign": m.get("foreign"),
            "malformed": m.get("malformed"),
            "other_messages": m.get("other_messages"),
            "sends_skipped_backpressure": m.get("backpressured"),
            "server_rss_per_conn_bytes": rss_per_conn,
        }),
    );
    fields.insert("delivery_latency_us".into(), latency_json(&lat));
    fields.insert("ack_latency_us".into(), latency_json(&ack));
    fields.insert("join_latency_us".into(), latency_json(&join));
    let mut lines = vec![
        format!(
            "chat: {} deliveries/s to {} users in {} room{} ({} msgs/s from {} senders) over {secs:.1} s",
            report::fmt_si(rate),
            m.get("joined"),
            a.rooms,
            if a.rooms == 1 { "" } else { "s" },
            report::fmt_si(report::per_sec(m.get("sent_measured"), secs)),
            m.get("senders_active"),
        ),
        format!("publish -> delivery: {}", latency_line(&lat)),
        format!("ack: {}", latency_line(&ack)),
        format!(
            "lost {lost} of {expected}, duplicated {}, out of order {}, seq gaps {}, seq conflicts {}",
            m.get("duplicates"),
            m.get("out_of_order"),
            m.get("gaps"),
            m.get("seq_conflicts")
        ),
        format!(
            "acks {acks} of {sent} sent, unanswered {unanswered}, errors {error_total}{}",
            if errors.is_empty() {
                String::new()
            } else {
                format!(" {}", serde_json::Value::Object(errors.clone()))
            }
        ),
    ];
    if let Some(p) = per_cpu {
        lines.push(format!(
            "per server CPU-second: {} deliveries",
            report::fmt_si(p)
        ));
    }
    if let Some(b) = rss_per_conn {
        lines.push(format!("server RSS per connection: {b:.0} B"));
    }
    Summary {
        fields,
        lines,
        ok: deliveries > 0
            && lost == 0
            && unanswered == 0
            && error_total == 0
            && bad_total == 0
            && m.get("join_failed") == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, ModeArgs, WorkerSlot};
    use crate::conn::Tx;
    use crate::rng::XorShift;
    use clap::Parser;
    use corecast::ws::OpCode;

    /// Chat arguments and this (single) worker's driver settings from a command line.
    fn setup(flags: &[&str]) -> (ChatArgs, DriverConfig) {
        let mut argv = vec!["corecast-load", "chat", "-t", "127.0.0.1:9"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).expect("valid command line");
        let ModeArgs::Chat(a) = cli.mode.clone() else {
            panic!("not chat");
        };
        validate(&a).expect("valid chat arguments");
        let targets = vec!["127.0.0.1:9".parse().expect("addr")];
        let slot = WorkerSlot { index: 0, count: 1 };
        (a, crate::modes::driver_config(&cli.mode, &targets, slot))
    }

    /// One fake connection per user: its queue and its key (= user index).
    struct Users {
        tx: Vec<Tx>,
        rng: XorShift,
    }

    impl Users {
        fn new(n: usize) -> Self {
            Users {
                tx: (0..n).map(|_| Tx::default()).collect(),
                rng: XorShift::new(1),
            }
        }

        /// Runs `f` with user `g`'s handle.
        fn with<R>(&mut self, g: usize, f: impl FnOnce(&mut ConnIo<'_>) -> R) -> R {
            let mut io = ConnIo::for_test(ConnKey(g), g as u64, &mut self.tx[g], &mut self.rng);
            f(&mut io)
        }

        fn deliver(&mut self, chat: &mut Chat, g: usize, msg: &str, now_ns: u64) {
            self.with(g, |io| {
                chat.on_message(io, DataKind::Text, msg.as_bytes(), now_ns)
            });
        }

        /// Text frames user `g` sent since the last call.
        fn sent(&mut self, g: usize) -> Vec<String> {
            let frames = self.tx[g].frames();
            self.tx[g] = Tx::default();
            frames
                .into_iter()
                .map(|(op, p)| {
                    assert_eq!(op, OpCode::Text);
                    String::from_utf8(p).expect("utf-8")
                })
                .collect()
        }
    }

    /// Opens and joins every user through the protocol's setup.
    fn join_all(chat: &mut Chat, users: &mut Users, n: usize, rooms: usize) {
        for g in 0..n {
            users.with(g, |io| chat.on_open(io, 0));
        }
        assert!(!chat.is_ready());
        for g in 0..n {
            let room = g % rooms;
            // The join goes out only after welcome and room.list, in that order.
            users.deliver(chat, g, r#"{"type":"room.list","rooms":[]}"#, 1);
            users.deliver(
                chat,
                g,
                r#"{"type":"welcome","user":"u","name":"u","rooms":["general"]}"#,
                1,
            );
            assert!(users.sent(g).is_empty());
            users.deliver(
                chat,
                g,
                r#"{"type":"room.list","rooms":[{"room":"general","members":1,"joined":true}]}"#,
                2,
            );
            assert_eq!(
                users.sent(g),
                vec![format!(
                    r#"{{"type":"room.join","room":"room-{room}","id":"j"}}"#
                )]
            );
            // Joined after the room's user.list and the ack, in either order.
            users.deliver(
                chat,
                g,
                r#"{"type":"user.list","room":"general","users":[]}"#,
                3,
            );
            if g % 2 == 0 {
                users.deliver(chat, g, r#"{"type":"ack","id":"j"}"#, 3);
                users.deliver(
                    chat,
                    g,
                    &format!(r#"{{"type":"user.list","room":"room-{room}","users":["u"]}}"#),
                    4,
                );
            } else {
                users.deliver(
                    chat,
                    g,
                    &format!(r#"{{"type":"user.list","room":"room-{room}","users":["u"]}}"#),
                    3,
                );
                assert!(!chat.is_ready() || g + 1 == n);
                users.deliver(chat, g, r#"{"type":"ack","id":"j"}"#, 4);
            }
        }
        assert!(chat.is_ready());
        assert_eq!(chat.c.joined, n as u64);
    }

    /// The chat a server would deliver for a message a sender queued.
    fn delivery(sent: &str, seq: u64) -> String {
        let v: serde_json::Value = serde_json::from_str(sent).expect("json");
        format!(
            r#"{{"type":"chat","room":{},"from":"u0","content":{},"seq":{seq},"timestamp":"2026-12-01T10:00:00.123Z"}}"#,
            v["room"], v["content"]
        )
    }

    fn summary(chat: &Chat, a: &ChatArgs) -> serde_json::Value {
        let mut r = WorkerReport::default();
        chat.report(&mut r);
        let ctx = RunContext {
            processes: 1,
            targets: 1,
            server: None,
        };
        let s = summarize(a, &Merged::new(&[r]), &ctx);
        let mut v = s.fields["chat"].clone();
        v["ok"] = json!(s.ok);
        v
    }

    #[test]
    fn request_targets_carry_the_username() {
        let (a, cfg) = setup(&["-c", "4", "-k", "1"]);
        let chat = Chat::new(&a, &cfg);
        assert_eq!(chat.request_target("/ws", 3), "/ws?username=u3");
        assert_eq!(chat.request_target("/ws?x=1", 0), "/ws?x=1&username=u0");
    }

    #[test]
    fn senders_publish_and_members_account_for_every_message() {
        // 4 users in 2 rooms (0 and 2 in room-0, 1 and 3 in room-1), user 0 sends.
        let (a, cfg) = setup(&["-c", "4", "-R", "2", "-k", "1", "-s", "50", "--warmup", "0"]);
        let mut chat = Chat::new(&a, &cfg);
        let mut users = Users::new(4);
        join_all(&mut chat, &mut users, 4, 2);
        let mut conns = Conns::new(1);
        chat.on_start(&mut conns, 1_000, 1_000_000);
        users.with(0, |io| chat.send_chat(0, io, 2_000));
        users.with(0, |io| chat.send_chat(0, io, 3_000));
        let sent = users.sent(0);
        assert_eq!(sent.len(), 2);
        for (i, m) in sent.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(m).expect("json");
            assert_eq!(v["type"], "chat");
            assert_eq!(v["room"], "room-0");
            assert_eq!(v["id"], i);
            assert_eq!(v["content"].as_str().map(str::len), Some(50));
        }
        // A receiver whose window started later (another process got GO a little later)
        // still counts both: the sender's mark decides, not the receiver's clock.
        chat.measure_from_ns = 2_500;
        // Both members of room-0 get both, in order; the acks carry the ids.
        for g in [0, 2] {
            users.deliver(&mut chat, g, &delivery(&sent[0], 7), 5_000);
            users.deliver(&mut chat, g, &delivery(&sent[1], 8), 6_000);
        }
        users.deliver(&mut chat, 0, r#"{"type":"ack","id":0,"seq":7}"#, 6_000);
        users.deliver(&mut chat, 0, r#"{"type":"ack","id":1,"seq":8}"#, 6_000);
        let v = summary(&chat, &a);
        assert_eq!(v["expected_deliveries"], 4);
        assert_eq!(v["unique_deliveries"], 4);
        assert_eq!(v["lost"], 0);
        assert_eq!(v["acks_measured"], 2);
        assert_eq!(v["unanswered"], 0);
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(chat.delivery.len(), 4);
        assert_eq!(chat.delivery.max(), 3); // 6_000 - 3_000 ns, in us (at least 1)
    }

    #[test]
    fn loss_duplicates_reordering_and_conflicts_are_counted() {
        let (a, cfg) = setup(&["-c", "6", "-R", "2", "-k", "1", "--warmup", "0"]);
        let mut chat = Chat::new(&a, &cfg);
        let mut users = Users::new(6);
        join_all(&mut chat, &mut users, 6, 2);
        let mut conns = Conns::new(1);
        chat.on_start(&mut conns, 1_000, 1_000_000);
        for t in 0..4 {
            users.with(0, |io| chat.send_chat(0, io, 2_000 + t));
        }
        let sent = users.sent(0);
        for (i, _) in sent.iter().enumerate() {
            users.deliver(
                &mut chat,
                0,
                &format!(r#"{{"type":"ack","id":{i},"seq":{}}}"#, i + 1),
                9_000,
            );
        }
        let d: Vec<String> = sent
            .iter()
            .zip(1..)
            .map(|(m, seq)| delivery(m, seq))
            .collect();
        // User 0: all four, in order. User 2: loses seq 2, gets 4 twice. User 4: 1, 3, 2, 4.
        for m in &d {
            users.deliver(&mut chat, 0, m, 9_000);
        }
        for i in [0, 2, 3, 3] {
            users.deliver(&mut chat, 2, &d[i], 9_000);
        }
        for i in [0, 2, 1, 3] {
            users.deliver(&mut chat, 4, &d[i], 9_000);
        }
        // A member of room-1 gets a room-0 message: a room it never joined.
        users.deliver(&mut chat, 1, &d[0], 9_000);
        // Seq 4 again for user 4, with another message's content: a duplicate by seq.
        users.deliver(&mut chat, 4, &delivery(&sent[0], 4), 9_000);
        // Seq 1 of room-1 carries one message for user 1 and another for user 3: a conflict
        // (not marked as measured, so they do not count as deliveries of measured ones).
        for (g, counter) in [(1, 100), (3, 101)] {
            let mut content = vec![b'x'; 64];
            Stamp {
                sender: 9,
                counter,
                sent_ns: 500,
            }
            .write(&mut content);
            let content = String::from_utf8(content).expect("ascii");
            let m = format!(
                r#"{{"type":"chat","room":"room-1","from":"u9","content":"{content}","seq":1}}"#
            );
            users.deliver(&mut chat, g, &m, 9_000);
        }
        // A rate-limit answer (no id) and an unknown message type.
        users.deliver(
            &mut chat,
            3,
            r#"{"type":"error","code":"rate_limited","content":"x"}"#,
            9_000,
        );
        users.deliver(
            &mut chat,
            3,
            r#"{"type":"typing","room":"room-1","from":"u1"}"#,
            9_000,
        );
        let v = summary(&chat, &a);
        assert_eq!(v["expected_deliveries"], 12);
        assert_eq!(v["unique_deliveries"], 11);
        assert_eq!(v["lost"], 1);
        assert_eq!(v["duplicates"], 2, "{v}"); // user 2's second seq 4, user 4's second seq 4
        assert_eq!(v["seq_conflicts"], 1);
        assert_eq!(v["out_of_order"], 1);
        assert_eq!(v["seq_gaps"], 2); // user 2 skipped seq 2, user 4 skipped it until later
        assert_eq!(v["wrong_room"], 1);
        assert_eq!(v["errors_by_code"], json!({"rate_limited": 1}));
        assert_eq!(v["other_messages"], 1);
        assert_eq!(v["ok"], false);
    }

    #[test]
    fn rooms_and_numbers() {
        assert_eq!(parse_room(b"room-0"), Some(0));
        assert_eq!(parse_room(b"room-12345"), Some(12345));
        for bad in [
            &b"room-"[..],
            b"general",
            b"room-1x",
            b"room--1",
            b"room-1234567890",
        ] {
            assert_eq!(parse_room(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        for v in [0u64, 7, 10, 99, 1234567890, u64::MAX] {
            let mut out = b"x".to_vec();
            corecast::chat::json::write_u64(&mut out, v);
            assert_eq!(out, format!("x{v}").into_bytes());
        }
        assert_eq!(room_of(7, 3), 1);
        for rooms in [1usize, 3, 200, 1000, 100_000, 2_000_000] {
            let n = seq_ring_len(rooms);
            assert!(n.is_power_of_two() && n <= MAX_SEQ_RING, "{rooms}: {n}");
            assert!(n * rooms <= SEQ_RING_BUDGET.max(rooms), "{rooms}: {n}");
        }
        assert_eq!(seq_ring_len(200), 2048);
    }
}
