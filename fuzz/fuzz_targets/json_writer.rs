//! Fuzzes the chat layer's outgoing JSON writer (`corecast::chat::json`) against two strict
//! parsers, serde_json and simd-json.
//!
//! Input layout:
//! - byte 0: mode. 0: the rest as text (invalid UTF-8 replaced by U+FFFD); 1: the rest as
//!   characters, 3 bytes each (a value modulo 0x110000, surrogates skipped), which reaches
//!   U+2028/2029 and non-BMP characters far more often; 2: the rest as a JSON document to
//!   parse as the chat layer does (simd-json + `chat::tape::make_strict`) and re-serialize
//!   with `write_value`; anything else: mode 0.
//!
//! Checks, for text: the written string has no raw control character and no raw
//! U+2028/2029, and both parsers read it back as the same string; an object and an array built
//! with the builders from pieces of the text (keys too), with integers and floats taken from
//! the input, parse with both parsers to exactly what was written; re-serializing that
//! object's simd-json tape with `write_value` gives the same bytes. For a document: the strict
//! parse accepts exactly what serde_json accepts (bar serde_json's nesting limit and integers
//! beyond 64 bits, which simd-json refuses), `write_value`'s output parses with serde_json to
//! the same value as the document, and re-serializing it again is a fixed point.

#![no_main]

use corecast::chat::json::{write_str, write_value, ArrayWriter, Number, ObjectWriter};
use corecast::chat::tape::make_strict;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use simd_json::{Node, StaticNode};

fn text_of(mode: u8, rest: &[u8]) -> String {
    if mode == 1 {
        rest.chunks(3)
            .filter_map(|c| {
                let v = c.iter().fold(0u32, |a, &b| a << 8 | u32::from(b));
                char::from_u32(v % 0x11_0000)
            })
            .collect()
    } else {
        String::from_utf8_lossy(rest).into_owned()
    }
}

fn simd_tape_string(json: &[u8]) -> String {
    let mut buf = json.to_vec();
    let tape = simd_json::to_tape(&mut buf).expect("simd-json parses the writer's string");
    match tape.0.as_slice() {
        [Node::String(s)] => (*s).to_owned(),
        other => panic!("not one string: {other:?}"),
    }
}

/// Splits `s` into up to 4 pieces at char boundaries chosen by its own length.
fn pieces(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    for k in [3, 5, 7] {
        let mut at = rest.len() / k;
        while !rest.is_char_boundary(at) {
            at += 1;
        }
        let (a, b) = rest.split_at(at);
        out.push(a);
        rest = b;
    }
    out.push(rest);
    out
}

fn check_text(s: &str, seed: &[u8]) {
    // One string.
    let mut out = Vec::new();
    write_str(&mut out, s);
    let written = std::str::from_utf8(&out).expect("output is UTF-8");
    assert!(out.iter().all(|&b| b >= 0x20), "raw control character");
    assert!(
        !written.contains(['\u{2028}', '\u{2029}']),
        "raw U+2028/2029"
    );
    let by_serde: String = serde_json::from_slice(&out).expect("serde_json parses it");
    assert_eq!(by_serde, s);
    assert_eq!(simd_tape_string(&out), s);

    // An object and an array from the builders, with numbers from the input.
    let mut word = [0u8; 8];
    for (i, b) in seed.iter().take(8).enumerate() {
        word[i] = *b;
    }
    let u = u64::from_le_bytes(word);
    let i = u.rotate_left(17) as i64;
    let f = Number::from_f64(f64::from_bits(u.rotate_left(29))).unwrap_or(Number::from_u64(0));
    let parts = pieces(s);
    let mut out = Vec::new();
    {
        let mut o = ObjectWriter::new(&mut out);
        o.str("s", s)
            .u64("u", u)
            .i64("i", i)
            .number("f", f)
            .bool("b", u & 1 == 1)
            .str_concat("c", &parts)
            .str_array("a", &parts);
        // A key of the text's own, prefixed so it cannot repeat one of the fixed keys.
        o.str(&format!("k{}", parts[0]), parts[1]);
        let mut arr = o.array("nested");
        arr.strs(&parts).u64(u);
        arr.object().str(s, s);
        arr.array().str(parts[3]);
    }
    let v: Value = serde_json::from_slice(&out).expect("serde_json parses the object");
    assert_eq!(v["s"], Value::from(s));
    assert_eq!(v["u"].as_u64(), Some(u));
    assert_eq!(v["i"].as_i64(), Some(i));
    match f.as_f64() {
        Some(x) => assert_eq!(v["f"].as_f64().map(f64::to_bits), Some(x.to_bits())),
        None => assert_eq!(v["f"].as_u64(), Some(0)),
    }
    assert_eq!(v["c"], Value::from(s));
    let strs: Vec<Value> = parts.iter().map(|p| Value::from(*p)).collect();
    assert_eq!(v["a"], Value::Array(strs.clone()));
    assert_eq!(v[format!("k{}", parts[0])], Value::from(parts[1]));
    let nested = v["nested"].as_array().expect("nested array");
    assert_eq!(nested[..4], strs[..]);
    assert_eq!(nested[4].as_u64(), Some(u));
    assert_eq!(nested[5][s], Value::from(s));
    assert_eq!(nested[6][0], Value::from(parts[3]));

    // simd-json agrees on the numbers, and re-serializing its tape reproduces the bytes
    // (unless a key repeats, which the builder allows and a tape keeps as written anyway).
    let mut buf = out.clone();
    let tape = simd_json::to_tape(&mut buf).expect("simd-json parses the object");
    let mut again = Vec::new();
    let n = write_value(&mut again, &tape.0).expect("a parsed tape re-serializes");
    assert_eq!(n, tape.0.len());
    assert_eq!(
        again, out,
        "write_value is not a fixed point of the builders' output"
    );
    assert!(tape.0.contains(&Node::Static(StaticNode::U64(u))));

    let mut arr_out = Vec::new();
    ArrayWriter::new(&mut arr_out).strs(&parts).raw(&out);
    let v: Value = serde_json::from_slice(&arr_out).expect("serde_json parses the array");
    assert_eq!(v.as_array().map(Vec::len), Some(5));
}

fn check_document(doc: &[u8]) {
    let mut buf = doc.to_vec();
    let Ok(mut tape) = simd_json::to_tape(&mut buf) else {
        return;
    };
    // As the chat layer parses: simd-json's leniencies refused, its misread numbers repaired.
    let strict = make_strict(doc, &mut tape.0);
    let reference = match serde_json::from_slice::<Value>(doc) {
        Ok(v) => v,
        Err(e) => {
            assert!(
                !strict || e.to_string().contains("recursion limit"),
                "make_strict accepts what serde_json rejects: {e}"
            );
            return;
        }
    };
    assert!(strict, "make_strict refuses what serde_json accepts");
    let mut out = Vec::new();
    write_value(&mut out, &tape.0).expect("a parsed tape re-serializes");
    let rewritten: Value = serde_json::from_slice(&out).expect("write_value output is JSON");
    assert!(same(&rewritten, &reference), "values differ");
    let mut buf2 = out.clone();
    let mut tape2 = simd_json::to_tape(&mut buf2).expect("simd-json parses its rewrite");
    assert!(make_strict(&out, &mut tape2.0));
    let mut out2 = Vec::new();
    write_value(&mut out2, &tape2.0).expect("re-serializes");
    assert_eq!(out, out2, "write_value is not idempotent");
}

/// Value equality with numbers compared by value (`-0` may be an integer on one side and a
/// float on the other) and objects with repeated keys read the same way by both sides.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || x.as_f64() == y.as_f64()
                    && (x.is_f64() || y.is_f64() || x.as_i64() == y.as_i64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode == 2 {
        check_document(rest);
    } else {
        check_text(&text_of(mode, rest), rest);
    }
});
