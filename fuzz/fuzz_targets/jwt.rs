//! Fuzzes HS256 token verification (`corecast::guard::jwt`) against the `jsonwebtoken` crate.
//!
//! Input layout:
//! - byte 0, low 2 bits: the mode.
//!   - 0: the rest of the input is the token (lossily made UTF-8).
//!   - 1, 2, 3: structured. Next 2 bytes: `h` (u16 LE, taken modulo the remaining length);
//!     then `h` bytes of header JSON and the rest as claims JSON. The target base64url-encodes
//!     them and signs them correctly with the fixed secret, so the fuzzer gets past the MAC.
//!     Mode 2 then flips bit (byte 0 >> 2) & 7 of the token byte at position (byte 1 of the
//!     header length) modulo the token length; mode 3 signs with another secret.
//!
//! Checks, at a fixed `now`:
//! - never a panic;
//! - never accepts a token the reference refuses. The reference is `jsonwebtoken::decode`
//!   with `Validation::new(HS256)` (HS256 only), `sub` and `exp` required, decoding the claims
//!   into a typed struct (`sub: String`, `exp: f64`, optional `nbf: f64`, `name`, `role`:
//!   strings, `roles`: strings), followed by the same time rules with the fixed `now`
//!   (expired when `now >= exp`, early when `now < nbf`): jsonwebtoken reads the system
//!   clock, so its own time checks are turned off;
//! - an accepted token's claims equal the reference's (`exp` rounded down, `nbf` up);
//! - a token whose header's `alg` (read independently with serde_json) is not exactly
//!   `"HS256"` is refused;
//! - when the reference accepts, ours does not blame the MAC or the alg (a refusal then must
//!   come from one of our stricter rules: `sub`, duplicates, strict strings, header values).

#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use corecast::guard::jwt::{JwtError, Verifier};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use sha2::Sha256;
use std::sync::OnceLock;

const SECRET: &[u8] = b"corecast-fuzz-secret-0123456789a";
const NOW: u64 = 1_700_000_000;

#[derive(Deserialize)]
struct RefClaims {
    sub: String,
    exp: f64,
    nbf: Option<f64>,
    name: Option<String>,
    role: Option<String>,
    roles: Option<Vec<String>>,
}

struct Fixture {
    ours: Verifier,
    key: DecodingKey,
    validation: Validation,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.required_spec_claims = ["exp".to_string(), "sub".to_string()].into();
        Fixture {
            ours: Verifier::new(SECRET),
            key: DecodingKey::from_secret(SECRET),
            validation,
        }
    })
}

/// The reference verdict: claims when jsonwebtoken accepts and the time rules pass.
fn reference(token: &str) -> Option<RefClaims> {
    let f = fixture();
    let data = jsonwebtoken::decode::<RefClaims>(token, &f.key, &f.validation).ok()?;
    let c = data.claims;
    let now = NOW as f64;
    if now >= c.exp || c.nbf.is_some_and(|nbf| now < nbf) {
        return None;
    }
    Some(c)
}

/// The header's `alg` as read by serde_json, if the first part decodes to an object.
fn header_alg(token: &str) -> Option<String> {
    let first = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(first).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(str::to_owned)
}

fn forge(secret: &[u8], header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{sig}")
}

fn check(token: &str) {
    let ours = fixture().ours.verify(token, NOW);
    let reference = reference(token);
    match (&ours, &reference) {
        (Ok(c), Some(r)) => {
            assert_eq!(c.sub, r.sub);
            assert_eq!(c.name, r.name);
            assert_eq!(c.role, r.role);
            assert_eq!(c.roles, r.roles);
            // Same NumericDates (within f64 precision of large values).
            let close = |a: u64, b: f64| (a as f64 - b).abs() <= 1.0 + b.abs() * 1e-15;
            assert!(close(c.exp, r.exp.floor()), "exp {} vs {}", c.exp, r.exp);
            match (c.nbf, r.nbf) {
                (None, None) => {}
                (Some(a), Some(b)) => assert!(close(a, b.ceil().max(0.0)), "nbf {a} vs {b}"),
                (a, b) => panic!("nbf {a:?} vs {b:?}"),
            }
            assert_eq!(header_alg(token).as_deref(), Some("HS256"));
        }
        (Ok(c), None) => panic!("accepted a token the reference refuses: {c:?}"),
        (Err(e), Some(_)) => assert!(
            !matches!(e, JwtError::BadSignature | JwtError::UnsupportedAlg),
            "reference accepts, ours says {e:?}"
        ),
        (Err(_), None) => {}
    }
    if header_alg(token).as_deref() != Some("HS256") {
        assert!(ours.is_err());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    match first & 3 {
        0 => check(&String::from_utf8_lossy(rest)),
        mode => {
            let [lo, hi, rest @ ..] = rest else {
                return;
            };
            let h = usize::from(u16::from_le_bytes([*lo, *hi])) % (rest.len() + 1);
            let (header, claims) = rest.split_at(h);
            let secret: &[u8] = if mode == 3 { b"another secret" } else { SECRET };
            let token = forge(secret, header, claims);
            if mode == 2 {
                let mut bytes = token.into_bytes();
                let at = usize::from(*hi) % bytes.len();
                bytes[at] ^= 1 << ((first >> 2) & 7);
                check(&String::from_utf8_lossy(&bytes));
            } else {
                check(&token);
            }
        }
    }
});
