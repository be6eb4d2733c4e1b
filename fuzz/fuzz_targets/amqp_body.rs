//! Fuzzes the gateway's message body (`corecast::amqp::body`): what a service publishes to the
//! RabbitMQ exchange, whoever wrote it.
//!
//! Input layout: byte 0 chooses the data encoding (bit 0: json / base64) and the owner field's
//! name (bits 1-2: `ownerId`, `owner`, `o"k` (needs escaping), `data` (the same member as the
//! data)); the rest is the body. Checks:
//! - no panic;
//! - the verdict is serde_json's (the strict reference): a body is accepted exactly when it is
//!   a JSON object (serde_json parses it; numbers beyond f64, which serde_json refuses and we
//!   pass through, aside) with exactly one owner member, a string that is a user id, and
//!   exactly one `data` member; in base64 mode, `data` is a string that decodes (padded
//!   standard base64) to a JSON document;
//! - the owner is serde_json's unescaped string;
//! - json: the data is exactly the bytes serde_json's `RawValue` borrows for `data` (same
//!   offset, same length), so it is the input's own bytes; base64: it is the decoded bytes;
//! - `write_body` of the owner and data parses back to the same owner and data.

#![no_main]

use base64::Engine as _;
use corecast::amqp::body::{parse, validate_value, write_body, Data, DataEncoding};
use corecast::chat::validate::is_user_id;
use libfuzzer_sys::fuzz_target;

#[path = "../common/json_ref.rs"]
mod json_ref;
use json_ref::{serde_valid, Entries};

const OWNER_FIELDS: [&str; 4] = ["ownerId", "owner", "o\"k", "data"];

/// The reference verdict: `Some(Ok((owner, data)))`, `Some(Err(()))`, or `None` (undecided:
/// a number beyond f64 somewhere).
fn reference(
    body: &[u8],
    owner_field: &str,
    enc: DataEncoding,
) -> Option<Result<(String, Vec<u8>, Option<usize>), ()>> {
    if !serde_valid(body)? {
        return Some(Err(()));
    }
    let Ok(Entries(entries)) = serde_json::from_slice::<Entries>(body) else {
        // Valid JSON but not an object.
        return Some(Err(()));
    };
    let owners: Vec<_> = entries.iter().filter(|(k, _)| k == owner_field).collect();
    let datas: Vec<_> = entries.iter().filter(|(k, _)| k == "data").collect();
    let ([(_, owner)], [(_, data)]) = (owners.as_slice(), datas.as_slice()) else {
        return Some(Err(()));
    };
    let Ok(owner) = serde_json::from_str::<String>(owner.get()) else {
        return Some(Err(()));
    };
    if !is_user_id(&owner) {
        return Some(Err(()));
    }
    let raw = data.get().as_bytes();
    match enc {
        DataEncoding::Json => {
            let offset = raw.as_ptr() as usize - body.as_ptr() as usize;
            Some(Ok((owner, raw.to_vec(), Some(offset))))
        }
        DataEncoding::Base64 => {
            let Ok(s) = serde_json::from_slice::<String>(raw) else {
                return Some(Err(()));
            };
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(s) else {
                return Some(Err(()));
            };
            if !serde_valid(&decoded)? {
                return Some(Err(()));
            }
            Some(Ok((owner, decoded, None)))
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&cfg, body)) = input.split_first() else {
        return;
    };
    let enc = if cfg & 1 == 0 {
        DataEncoding::Json
    } else {
        DataEncoding::Base64
    };
    let owner_field = OWNER_FIELDS[usize::from(cfg >> 1) & 3];
    let ours = parse(body, owner_field, enc);
    let _ = validate_value(body);
    let Some(want) = reference(body, owner_field, enc) else {
        return;
    };
    match (&ours, &want) {
        (Ok(p), Ok((owner, data, offset))) => {
            assert_eq!(p.owner.as_ref(), owner.as_str());
            assert_eq!(p.data.bytes(body), data.as_slice());
            match (&p.data, offset) {
                (Data::Span(r), Some(o)) => assert_eq!(r.start, *o, "data at serde_json's offset"),
                (Data::Decoded(_), None) => {}
                (d, o) => panic!("data {d:?} for reference offset {o:?}"),
            }
        }
        (Err(_), Err(())) => {}
        (ours, want) => panic!("ours {ours:?}, serde_json {want:?}"),
    }
    // Upstream and back (an owner field named `data` cannot be written: two `data` members).
    if let (Ok(p), false) = (&ours, owner_field == "data") {
        let mut out = Vec::new();
        write_body(&mut out, owner_field, &p.owner, p.data.bytes(body), enc);
        let again = parse(&out, owner_field, enc).expect("a written body parses");
        assert_eq!(again.owner, p.owner);
        assert_eq!(again.data.bytes(&out), p.data.bytes(body));
    }
});
