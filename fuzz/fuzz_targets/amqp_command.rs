//! Fuzzes the gateway's client message (`corecast::amqp::command`): what any WebSocket client
//! sends to a gateway endpoint.
//!
//! Checks:
//! - no panic;
//! - the verdict is serde_json's (the strict reference; numbers beyond f64, which serde_json
//!   refuses and we pass through, aside): accepted exactly when the message is a JSON object
//!   with exactly one `type` member, a string that is a routing key (1-255 bytes), at most one
//!   `data` and at most one `id`, which is a string or a number;
//! - `type` is serde_json's unescaped string; `data` exactly the bytes serde_json's `RawValue`
//!   borrows (or `null` when absent); `id` exactly its raw text;
//! - a refusal says `bad_json` exactly when serde_json does not read an object;
//! - the upstream body built from it (`write_body`, json and base64) parses back with the
//!   authenticated owner and the same data, whatever `ownerId` the client wrote.

#![no_main]

use corecast::amqp::body::{parse as parse_body, write_body, DataEncoding};
use corecast::amqp::command::{parse, NULL_DATA};
use libfuzzer_sys::fuzz_target;

#[path = "../common/json_ref.rs"]
mod json_ref;
use json_ref::{serde_valid, Entries};
use serde_json::value::RawValue;

type Want<'a> = Result<(String, &'a [u8], Option<&'a [u8]>), bool>;

/// `Err(true)`: not a JSON object (bad_json); `Err(false)`: an object refused (bad_request).
fn reference(msg: &[u8]) -> Option<Want<'_>> {
    if !serde_valid(msg)? {
        return Some(Err(true));
    }
    let Ok(Entries(entries)) = serde_json::from_slice::<Entries>(msg) else {
        return Some(Err(true));
    };
    let of = |name: &str| -> Vec<&RawValue> {
        entries
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .collect()
    };
    let (types, datas, ids) = (of("type"), of("data"), of("id"));
    if types.len() != 1 || datas.len() > 1 || ids.len() > 1 {
        return Some(Err(false));
    }
    let Ok(kind) = serde_json::from_str::<String>(types[0].get()) else {
        return Some(Err(false));
    };
    if kind.is_empty() || kind.len() > 255 {
        return Some(Err(false));
    }
    let id = match ids.first() {
        None => None,
        Some(raw) => match serde_json::from_str::<serde_json::Value>(raw.get()) {
            Ok(serde_json::Value::String(_) | serde_json::Value::Number(_)) => {
                Some(raw.get().as_bytes())
            }
            _ => return Some(Err(false)),
        },
    };
    let data = datas.first().map_or(NULL_DATA, |d| d.get().as_bytes());
    Some(Ok((kind, data, id)))
}

fuzz_target!(|msg: &[u8]| {
    let ours = parse(msg);
    let Some(want) = reference(msg) else {
        return;
    };
    match (&ours, &want) {
        (Ok(c), Ok((kind, data, id))) => {
            assert_eq!(c.kind.as_ref(), kind.as_str());
            assert_eq!(c.data, *data);
            assert_eq!(c.id, *id);
            for enc in [DataEncoding::Json, DataEncoding::Base64] {
                let mut body = Vec::new();
                write_body(&mut body, "ownerId", "driver-1", c.data, enc);
                let p = parse_body(&body, "ownerId", enc).expect("an upstream body parses");
                assert_eq!(p.owner, "driver-1");
                assert_eq!(p.data.bytes(&body), c.data);
            }
        }
        (Err((e, _)), Err(not_object)) => {
            assert_eq!(e.is_json(), *not_object, "bad_json vs bad_request: {e:?}");
        }
        (ours, want) => panic!("ours {ours:?}, serde_json {want:?}"),
    }
});
