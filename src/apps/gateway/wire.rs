//! The JSON the gateway sends its clients and the broker, written into a caller's buffer.
//!
//! - an event: `{"type":"<routing key>","data":<data>}`, `data` copied byte for byte;
//! - `{"type":"ack","id":<id>}` once the broker confirmed a client's upstream message;
//! - `{"type":"error","code":"forbidden","content":"…","id":<id>}` (`id` when the message had
//!   one, copied as the client wrote it);
//! - a lifecycle event's data: `{"endpoint":"/ws/drivers","query":{…},"node":"n1","devices":1}`.

use crate::chat::json::{write_str, write_u64};

/// An event frame's payload.
pub fn event(out: &mut Vec<u8>, routing_key: &str, data: &[u8]) {
    out.extend_from_slice(b"{\"type\":");
    write_str(out, routing_key);
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(data);
    out.push(b'}');
}

/// An `ack` for the message whose `id` was `id` (raw JSON).
pub fn ack(out: &mut Vec<u8>, id: &[u8]) {
    out.extend_from_slice(b"{\"type\":\"ack\",\"id\":");
    out.extend_from_slice(id);
    out.push(b'}');
}

/// An `error` with `code` and a human `content`.
pub fn error(out: &mut Vec<u8>, code: &str, content: &str, id: Option<&[u8]>) {
    out.extend_from_slice(b"{\"type\":\"error\",\"code\":");
    write_str(out, code);
    out.extend_from_slice(b",\"content\":");
    write_str(out, content);
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        out.extend_from_slice(id);
    }
    out.push(b'}');
}

/// Query parameters as a JSON object of strings (later duplicates overwrite nothing: each
/// pair is written in order).
pub fn query_object<'a>(out: &mut Vec<u8>, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    out.push(b'{');
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_str(out, v);
    }
    out.push(b'}');
}

/// A lifecycle event's `data`.
pub fn lifecycle_data(out: &mut Vec<u8>, endpoint: &str, query: &[u8], node: &str, devices: u32) {
    out.extend_from_slice(b"{\"endpoint\":");
    write_str(out, endpoint);
    out.extend_from_slice(b",\"query\":");
    out.extend_from_slice(if query.is_empty() { b"{}" } else { query });
    out.extend_from_slice(b",\"node\":");
    write_str(out, node);
    out.extend_from_slice(b",\"devices\":");
    write_u64(out, u64::from(devices));
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn shapes() {
        assert_eq!(
            text(|o| event(o, "trip.event.x\"", br#"{"a": 1}"#)),
            r#"{"type":"trip.event.x\"","data":{"a": 1}}"#
        );
        assert_eq!(text(|o| ack(o, b"\"c1\"")), r#"{"type":"ack","id":"c1"}"#);
        assert_eq!(
            text(|o| error(o, "forbidden", "no", Some(b"7"))),
            r#"{"type":"error","code":"forbidden","content":"no","id":7}"#
        );
        assert_eq!(
            text(|o| error(o, "bad_json", "x", None)),
            r#"{"type":"error","code":"bad_json","content":"x"}"#
        );
        let q = text(|o| query_object(o, [("packageSlug", "sedan"), ("a\"", "é")]));
        assert_eq!(q, r#"{"packageSlug":"sedan","a\"":"é"}"#);
        assert_eq!(
            text(|o| lifecycle_data(o, "/ws/drivers", q.as_bytes(), "n1", 2)),
            r#"{"endpoint":"/ws/drivers","query":{"packageSlug":"sedan","a\"":"é"},"node":"n1","devices":2}"#
        );
        assert_eq!(
            text(|o| lifecycle_data(o, "/p", b"", "n", 0)),
            r#"{"endpoint":"/p","query":{},"node":"n","devices":0}"#
        );
    }
}
