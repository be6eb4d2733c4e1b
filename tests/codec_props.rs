//! Property tests for the sans-IO codec (`corecast::ws`), through its public API only.
//!
//! - frame headers survive encode -> decode for every fin/rsv/opcode/mask/length, and decoding
//!   any prefix of a header reports `Partial` (never an error that the whole header lacks);
//! - a stream of messages (text and binary, fragmented anywhere, with pings and pongs between
//!   the fragments) comes out of the `Assembler` exactly as it went in, whatever the chunking;
//! - the incremental UTF-8 validator agrees with `std::str::from_utf8` at every split, failing
//!   exactly at the first byte that cannot be part of valid UTF-8;
//! - a valid upgrade request cut anywhere parses as `Ok(None)` until it is complete, and then
//!   exactly as it parses whole.

#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use corecast::http::{parse_head, RequestError, DEFAULT_MAX_HEAD};
use corecast::ws::close::{encode_close_payload, MAX_CLOSE_REASON};
use corecast::ws::frame::{encode_client_frame, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use corecast::ws::handshake;
use corecast::ws::utf8::Utf8Validator;
use corecast::ws::{
    Assembler, CloseCode, DataKind, Event, FrameError, FrameHeader, HeaderRules, HeaderStatus,
    MessageLimits, OpCode, ProtocolError,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------------------------------------
// (a) Frame headers
// ---------------------------------------------------------------------------------------------

fn opcode() -> impl Strategy<Value = OpCode> {
    prop::sample::select(vec![
        OpCode::Continuation,
        OpCode::Text,
        OpCode::Binary,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ])
}

/// Payload lengths concentrated on the edges of the three length encodings.
fn payload_len() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=130u64,
        prop::sample::select(vec![125u64, 126, 127, 65535, 65536, u64::MAX >> 1]),
        126..=65535u64,
        65536..=(u64::MAX >> 1),
    ]
}

fn header() -> impl Strategy<Value = FrameHeader> {
    (
        any::<bool>(),
        0..8u8,
        opcode(),
        any::<Option<[u8; 4]>>(),
        payload_len(),
    )
        .prop_map(|(fin, rsv, opcode, mask, payload_len)| FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        })
}

/// What `decode` must say about a header under `rules`, in the documented check order.
fn expected_decode(h: &FrameHeader, rules: &HeaderRules) -> Result<(), FrameError> {
    if h.rsv & !rules.allowed_rsv != 0 {
        return Err(FrameError::ReservedBits);
    }
    match (h.mask.is_some(), rules.require_mask) {
        (true, false) => return Err(FrameError::MaskedFrame),
        (false, true) => return Err(FrameError::UnmaskedFrame),
        _ => {}
    }
    if h.opcode.is_control() {
        if !h.fin {
            return Err(FrameError::FragmentedControl);
        }
        if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(FrameError::ControlTooLong);
        }
    }
    if h.payload_len > rules.max_frame {
        return Err(FrameError::FrameTooBig);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn header_round_trip(
        h in header(),
        allowed_rsv in prop_oneof![Just(0b111u8), 0..8u8],
        require_mask in any::<bool>(),
        max_frame in prop_oneof![Just(u64::MAX >> 1), any::<u64>()],
        trailing in prop::collection::vec(any::<u8>(), 0..4),
    ) {
        let rules = HeaderRules { require_mask, allowed_rsv, max_frame };
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut out);
        if let Ok(len) = usize::try_from(h.payload_len) {
            prop_assert_eq!(n, FrameHeader::encoded_len(len, h.mask.is_some()));
        }
        let expected = expected_decode(&h, &rules);
        let mut wire = out[..n].to_vec();
        let whole = FrameHeader::decode(&wire, &rules);
        match expected {
            Ok(()) => prop_assert_eq!(
                whole,
                Ok(HeaderStatus::Complete { header: h, header_len: n })
            ),
            Err(e) => prop_assert_eq!(whole, Err(e)),
        }
        // Bytes after the header (the payload) change nothing.
        wire.extend_from_slice(&trailing);
        prop_assert_eq!(FrameHeader::decode(&wire, &rules), whole);
        // A prefix is either Partial (asking for no more than the header still lacks) or the
        // same error the whole header gives: never a different error, never Complete.
        for cut in 0..n {
            match FrameHeader::decode(&out[..cut], &rules) {
                Ok(HeaderStatus::Partial(more)) => {
                    prop_assert!(more >= 1 && cut + more <= n, "cut {} more {}", cut, more);
                }
                other => {
                    prop_assert!(whole.is_err(), "cut {}: {:?}", cut, other);
                    prop_assert_eq!(other, whole);
                }
            }
        }
    }

    /// Any bytes: decode never panics, and whatever it accepts re-encodes to a header that
    /// decodes the same (the encoding may be shorter: the decoder accepts non-minimal lengths).
    #[test]
    fn header_decode_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..=MAX_HEADER_LEN),
        require_mask in any::<bool>(),
    ) {
        let rules = HeaderRules {
            require_mask,
            allowed_rsv: 0b111,
            max_frame: u64::MAX >> 1,
        };
        if let Ok(HeaderStatus::Complete { header, header_len }) =
            FrameHeader::decode(&bytes, &rules)
        {
            prop_assert!(header_len <= bytes.len());
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = header.encode(&mut out);
            prop_assert!(n <= header_len);
            prop_assert_eq!(
                FrameHeader::decode(&out[..n], &rules),
                Ok(HeaderStatus::Complete { header, header_len: n })
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Message streams through the Assembler
// ---------------------------------------------------------------------------------------------

/// An owned copy of an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Msg(DataKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, Vec<u8>),
}

/// How a feed ended: the error, or the bytes left unconsumed.
type Fed = (Vec<Ev>, Result<Vec<u8>, ProtocolError>);

/// Feeds `wire` in chunks of `sizes` (cycling) following the call order documented on
/// `Assembler`: call `handle_bytes` until it needs more input, dropping `consumed` bytes after
/// each call.
fn feed(wire: &[u8], sizes: &[usize], limits: &MessageLimits) -> Fed {
    let mut asm = Assembler::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let mut rest = wire;
    let mut next = 0;
    while !rest.is_empty() {
        let n = sizes[next % sizes.len()].clamp(1, rest.len());
        next += 1;
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            let d = match asm.handle_bytes(&mut buf, limits) {
                Ok(d) => d,
                Err(e) => return (events, Err(e)),
            };
            let consumed = d.consumed;
            match d.event {
                Some(ev) => {
                    assert!(consumed > 0, "an event must consume its frame");
                    events.push(match ev {
                        Event::Message { kind, payload, .. } => Ev::Msg(kind, payload.to_vec()),
                        Event::Ping(p) => Ev::Ping(p.to_vec()),
                        Event::Pong(p) => Ev::Pong(p.to_vec()),
                        Event::Close(c) => Ev::Close(c.code.map(|c| c.0), c.reason.to_vec()),
                    });
                }
                None if consumed == 0 => break,
                None => {}
            }
            buf.drain(..consumed);
        }
    }
    (events, Ok(buf))
}

#[derive(Debug, Clone)]
enum Ctrl {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

impl Ctrl {
    fn encode(&self, out: &mut Vec<u8>, mask: [u8; 4]) {
        match self {
            Self::Ping(p) => encode_client_frame(out, true, OpCode::Ping, mask, p),
            Self::Pong(p) => encode_client_frame(out, true, OpCode::Pong, mask, p),
        }
    }

    fn event(&self) -> Ev {
        match self {
            Self::Ping(p) => Ev::Ping(p.clone()),
            Self::Pong(p) => Ev::Pong(p.clone()),
        }
    }
}

fn ctrl() -> impl Strategy<Value = Ctrl> {
    let payload = prop::collection::vec(any::<u8>(), 0..=MAX_CONTROL_PAYLOAD);
    prop_oneof![
        payload.clone().prop_map(Ctrl::Ping),
        payload.prop_map(Ctrl::Pong)
    ]
}

/// One data message as sent: cut into fragments at `cuts` (sorted, may repeat: empty fragments
/// are legal, and text may be cut inside a code point), with a control frame in some gaps.
#[derive(Debug, Clone)]
struct Message {
    kind: DataKind,
    payload: Vec<u8>,
    cuts: Vec<usize>,
    /// `between[i]`: control frame sent after fragment `i` (only gaps, never after the last).
    between: Vec<Option<Ctrl>>,
    mask: [u8; 4],
}

fn message() -> impl Strategy<Value = Message> {
    let text = prop_oneof![
        4 => "\\PC{0,40}",
        2 => "\\PC{30,200}",
        1 => any::<String>(),
    ]
    .prop_map(|s| (DataKind::Text, s.into_bytes()));
    let binary = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..130),
        2 => prop::collection::vec(any::<u8>(), 120..600),
        // 64-bit length form.
        1 => prop::collection::vec(any::<u8>(), 65536..66000),
    ]
    .prop_map(|b| (DataKind::Binary, b));
    (
        prop_oneof![3 => text, 2 => binary],
        prop::collection::vec(any::<Index>(), 0..5),
        prop::collection::vec(prop::option::of(ctrl()), 0..5),
        any::<[u8; 4]>(),
    )
        .prop_map(|((kind, payload), cuts, between, mask)| {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
            cuts.sort_unstable();
            Message {
                kind,
                payload,
                cuts,
                between,
                mask,
            }
        })
}

impl Message {
    /// Appends the frames to `wire` and the events they must produce to `events`.
    fn encode(&self, wire: &mut Vec<u8>, events: &mut Vec<Ev>) {
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(self.cuts.iter().copied())
            .chain(std::iter::once(self.payload.len()))
            .collect();
        let last = bounds.len() - 2;
        for (i, w) in bounds.windows(2).enumerate() {
            let opcode = if i == 0 {
                self.kind.opcode()
            } else {
                OpCode::Continuation
            };
            // A different key per frame.
            let mask = self.mask.map(|b| b.wrapping_add(i as u8));
            encode_client_frame(wire, i == last, opcode, mask, &self.payload[w[0]..w[1]]);
            if i < last {
                if let Some(Some(c)) = self.between.get(i) {
                    c.encode(wire, mask.map(|b| b ^ 0x5a));
                    events.push(c.event());
                }
            }
        }
        events.push(Ev::Msg(self.kind, self.payload.clone()));
    }
}

#[derive(Debug, Clone)]
enum Item {
    Message(Message),
    Control(Ctrl, [u8; 4]),
}

/// An optional final close frame: an allowed code and a UTF-8 reason of at most 123 bytes.
fn close() -> impl Strategy<Value = Option<(u16, String)>> {
    let code = prop_oneof![
        prop::sample::select(vec![
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011
        ]),
        3000..=4999u16,
    ];
    prop::option::of((code, "\\PC{0,60}"))
}

fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<Ev>)> {
    let item = prop_oneof![
        4 => message().prop_map(Item::Message),
        1 => (ctrl(), any::<[u8; 4]>()).prop_map(|(c, m)| Item::Control(c, m)),
    ];
    (prop::collection::vec(item, 0..6), close()).prop_map(|(items, close)| {
        let mut wire = Vec::new();
        let mut events = Vec::new();
        for item in &items {
            match item {
                Item::Message(m) => m.encode(&mut wire, &mut events),
                Item::Control(c, mask) => {
                    c.encode(&mut wire, *mask);
                    events.push(c.event());
                }
            }
        }
        if let Some((code, reason)) = close {
            let mut payload = [0u8; 125];
            let n = encode_close_payload(CloseCode(code), &reason, &mut payload);
            encode_client_frame(&mut wire, true, OpCode::Close, [9, 8, 7, 6], &payload[..n]);
            let reason = &reason.as_bytes()[..n - 2];
            assert!(reason.len() <= MAX_CLOSE_REASON);
            events.push(Ev::Close(Some(code), reason.to_vec()));
        }
        (wire, events)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn messages_survive_any_chunking(
        (wire, expected) in stream(),
        sizes in prop::collection::vec(1..200usize, 1..6),
    ) {
        let limits = MessageLimits::default();
        let done: Fed = (expected, Ok(Vec::new()));
        prop_assert_eq!(&feed(&wire, &[usize::MAX], &limits), &done, "whole");
        prop_assert_eq!(&feed(&wire, &sizes, &limits), &done, "chunks {:?}", sizes);
        prop_assert_eq!(&feed(&wire, &[1], &limits), &done, "byte at a time");
    }

    /// Arbitrary bytes (mostly invalid): whatever the chunking, the same events and the same
    /// error or leftover bytes.
    #[test]
    fn any_bytes_decode_the_same_at_any_chunking(
        (mut wire, _) in stream(),
        noise in prop::collection::vec((any::<Index>(), any::<u8>()), 0..4),
        sizes in prop::collection::vec(1..64usize, 1..6),
    ) {
        if !wire.is_empty() {
            for (at, byte) in &noise {
                let i = at.index(wire.len());
                wire[i] = *byte;
            }
        }
        let limits = MessageLimits {
            header: HeaderRules { max_frame: 4096, ..HeaderRules::default() },
            max_message: 8192,
        };
        let whole = feed(&wire, &[usize::MAX], &limits);
        prop_assert_eq!(&feed(&wire, &sizes, &limits), &whole, "chunks {:?}", sizes);
        prop_assert_eq!(&feed(&wire, &[1], &limits), &whole, "byte at a time");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) UTF-8
// ---------------------------------------------------------------------------------------------

/// Valid UTF-8 or a valid string cut inside its last code point.
fn is_valid_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// Mostly-valid text with a few bytes changed, cut short, or random bytes.
fn utf8_input() -> impl Strategy<Value = Vec<u8>> {
    let edited = (
        "\\PC{0,40}",
        prop::collection::vec((any::<Index>(), any::<u8>()), 0..3),
        any::<Option<Index>>(),
    )
        .prop_map(|(s, edits, cut)| {
            let mut b = s.into_bytes();
            if !b.is_empty() {
                for (at, byte) in edits {
                    let i = at.index(b.len());
                    b[i] = byte;
                }
            }
            if let Some(cut) = cut {
                b.truncate(cut.index(b.len() + 1));
            }
            b
        });
    // Bytes in the ranges where UTF-8's rules live (continuations, lead bytes, F4 90, ED A0).
    let tricky = prop::collection::vec(
        prop_oneof![
            0x00..0x80u8,
            0x80..0xc0u8,
            0xc0..0xe0u8,
            0xe0..0xf0u8,
            0xf0..=0xffu8
        ],
        0..16,
    );
    prop_oneof![
        3 => edited,
        2 => tricky,
        1 => prop::collection::vec(any::<u8>(), 0..32),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn utf8_validator_agrees_with_std(
        bytes in utf8_input(),
        splits in prop::collection::vec(any::<Index>(), 0..5),
    ) {
        let mut ends: Vec<usize> = splits.iter().map(|i| i.index(bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        let valid = std::str::from_utf8(&bytes).is_ok();

        let mut v = Utf8Validator::default();
        let mut start = 0;
        let mut failed = false;
        for &end in &ends {
            let fed = v.feed(&bytes[start..end]);
            // Fails exactly when the bytes so far stop being a prefix of valid UTF-8.
            prop_assert_eq!(fed.is_ok(), is_valid_prefix(&bytes[..end]), "at {}", end);
            if fed.is_err() {
                failed = true;
                break;
            }
            prop_assert_eq!(v.is_at_boundary(), std::str::from_utf8(&bytes[..end]).is_ok());
            start = end;
        }
        if failed {
            prop_assert!(!valid);
        } else {
            prop_assert_eq!(v.finish().is_ok(), valid);
        }

        // One byte at a time.
        let mut v = Utf8Validator::default();
        let bytewise = bytes
            .iter()
            .try_for_each(|b| v.feed(std::slice::from_ref(b)))
            .and_then(|()| v.finish());
        prop_assert_eq!(bytewise.is_ok(), valid);
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Handshake
// ---------------------------------------------------------------------------------------------

/// A valid upgrade request with arbitrary path, query, host, key, header order, header name
/// case and extra headers; returns it with its key.
fn upgrade_request() -> impl Strategy<Value = (Vec<u8>, String)> {
    let extra = prop::collection::vec(("X-[A-Za-z0-9-]{1,12}", "[ -~]{0,40}"), 0..6);
    (
        "/[a-zA-Z0-9/._~-]{0,30}",
        prop::option::of("[a-zA-Z0-9=&%]{0,20}"),
        "[a-z0-9.-]{1,30}(:[0-9]{1,5})?",
        any::<[u8; 16]>(),
        extra,
        any::<bool>(),
        prop::option::of("[a-z, ]{1,20}"),
        any::<u64>(),
    )
        .prop_map(
            |(path, query, host, key, extra, lower, protocols, order_seed)| {
                let key = BASE64.encode(key);
                let case = |name: &str| {
                    if lower {
                        name.to_ascii_lowercase()
                    } else {
                        name.to_string()
                    }
                };
                let mut headers = vec![
                    format!("{}: {host}", case("Host")),
                    format!("{}: websocket", case("Upgrade")),
                    format!("{}: keep-alive, Upgrade", case("Connection")),
                    format!("{}: {key}", case("Sec-WebSocket-Key")),
                    format!("{}: 13", case("Sec-WebSocket-Version")),
                ];
                if let Some(p) = protocols {
                    headers.push(format!("Sec-WebSocket-Protocol: {p}"));
                }
                headers.extend(extra.iter().map(|(k, v)| format!("{k}: {v}")));
                // A deterministic shuffle from the seed.
                let mut seed = order_seed | 1;
                for i in (1..headers.len()).rev() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    headers.swap(i, (seed % (i as u64 + 1)) as usize);
                }
                let target = match query {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                };
                let mut req = format!("GET {target} HTTP/1.1\r\n");
                for h in headers {
                    req.push_str(&h);
                    req.push_str("\r\n");
                }
                req.push_str("\r\n");
                (req.into_bytes(), key)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn handshake_parses_the_same_at_any_split(
        (req, key) in upgrade_request(),
        frames in prop::collection::vec(any::<u8>(), 0..20),
    ) {
        for cut in 0..req.len() {
            prop_assert_eq!(parse_head(&req[..cut], DEFAULT_MAX_HEAD), Ok(None), "cut {}", cut);
        }
        let head = parse_head(&req, DEFAULT_MAX_HEAD).unwrap().unwrap();
        prop_assert_eq!(head.head_len, req.len());
        let upgrade = handshake::validate_upgrade(&head).unwrap();
        prop_assert_eq!(upgrade.accept, handshake::accept_key(key.as_bytes()));
        prop_assert_eq!(head.ws_key, Some(key.as_bytes()));
        // Frames sent right behind the head are not part of it.
        let mut more = req.clone();
        more.extend_from_slice(&frames);
        prop_assert_eq!(parse_head(&more, DEFAULT_MAX_HEAD), Ok(Some(head)));
        let mut out = Vec::new();
        handshake::write_accept(&mut out, &upgrade, None, None);
        prop_assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        prop_assert!(out.ends_with(b"\r\n\r\n"));
    }
}

/// Parses `data` as the reactor does: after each arrival ending at one of `ends`, on all bytes
/// so far, until the answer is not `Ok(None)`.
fn parse_as_it_arrives(data: &[u8], ends: &[usize]) -> Result<bool, RequestError> {
    for &end in ends {
        if let Some(head) = parse_head(&data[..end], DEFAULT_MAX_HEAD)? {
            return Ok(head.head_len == data.len());
        }
    }
    Ok(false)
}

/// Regression test: a request head that is malformed in its first bytes is `Malformed` (400)
/// however it arrives, not `HeadTooLarge` (431) when more than `max_head` bytes happen to be
/// buffered (`parse_head` judges only the first `max_head` bytes).
#[test]
fn head_error_does_not_depend_on_arrival() {
    let mut data = b"GARBAGE\r\n\r\n".to_vec();
    data.resize(DEFAULT_MAX_HEAD + 1, b'a');
    let whole = parse_as_it_arrives(&data, &[data.len()]);
    let pieces = parse_as_it_arrives(&data, &[11, data.len()]);
    assert_eq!(pieces, Err(RequestError::Malformed));
    assert_eq!(whole, pieces, "same bytes, different arrival");
}
