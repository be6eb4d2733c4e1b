//! HS256 JSON Web Tokens (RFC 7519 over RFC 7515's compact serialization): verification of
//! the token a chat client presents before its WebSocket upgrade, and signing for
//! `corecast token`.
//!
//! Owns the token's syntax (three base64url parts, JSON header and claims), the algorithm
//! rule (exactly `HS256`, nothing else, `none` included), the MAC check (HMAC-SHA-256,
//! compared in constant time) and the claim rules below. It does no IO, reads no clock (the
//! caller passes `now` in unix seconds) and logs nothing: every refusal is a [`JwtError`] the
//! caller answers with 401 and logs as it sees fit ([`JwtError::reason`] is a short label).
//!
//! Rules, checked in this order (the first failure is reported):
//! 1. At most [`MAX_TOKEN_LEN`] bytes and exactly three `.`-separated parts, each strict
//!    base64url without padding and without non-zero trailing bits (so a token has one
//!    encoding); any whitespace, padding or other byte is [`Malformed`].
//! 2. The header is a JSON object (RFC 8259 strictly: no lone surrogate escapes, no control
//!    characters) without duplicate keys. `alg` must be the string `"HS256"` exactly (not
//!    `hs256`, `HS384`, `none`, absent or another type): else [`JwtError::UnsupportedAlg`].
//!    Every header value must be a string; `typ`, when present, is `JWT` in any case;
//!    `crit`, `jku`, `jwk`, `x5u`, `x5c`, `enc`, `zip` and `b64` are refused (they name keys,
//!    extensions or encryption this server does not use; RFC 7515 §4.1.11 requires refusing
//!    a `crit` one does not understand). Other parameters (`kid`, `cty`, ...) are ignored.
//! 3. The signature is the HMAC-SHA-256 of `header.payload` under the secret, compared in
//!    constant time ([`hmac::Mac::verify_slice`]); else [`JwtError::BadSignature`]. The claims
//!    are not parsed before the signature is known to be good.
//! 4. The claims are a JSON object without duplicate keys (same strictness as the header).
//!    A claim whose value is `null` counts as absent. `sub`: required string of 1 to
//!    [`MAX_SUB_LEN`] bytes without control characters, line separators or bidirectional
//!    controls (see [`check_sub`]). `exp`: required number. `nbf`: optional number. `name`,
//!    `role`: optional strings. `roles`: optional array of strings. Other claims (`iat`,
//!    `iss`, `aud`, ...) are ignored: this server is the token's only audience.
//! 5. Time, with zero leeway (the server and the issuer are the same operator; a clock skew
//!    allowance would only lengthen every token): expired when `now >= exp` (RFC 7519 §4.1.4:
//!    the current time "MUST be before" `exp`), not yet valid when `now < nbf`. Fractional
//!    NumericDates are allowed (RFC 7519 §2) and rounded against the holder: `exp` down,
//!    `nbf` up. Negative values are in the past; values beyond `u64` are an invalid claim.
//!
//! The JSON parser is simd-json's tape: it shows every key of the top-level object (so
//! duplicates are seen, not silently merged) and skips nested values of ignored claims
//! without building them. After it runs, `chat::tape::make_strict` holds the text to RFC 8259
//! and replaces every number with Rust's exact parse (simd-json 0.14 alone is laxer: lone
//! surrogates, control bytes or junk after long numbers, misread 19-digit floats).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use simd_json::prelude::*;
use simd_json::ValueType;

/// Largest accepted token, in bytes (longer is [`Malformed::TooLong`]). Real tokens are a few
/// hundred bytes; the limit keeps every step linear in something small.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Largest `sub`, in bytes (UTF-8).
pub const MAX_SUB_LEN: usize = 128;

/// Shortest secret RFC 7518 §3.2 allows for HS256 ("a key of the same size as the hash output
/// ... MUST be used"), in bytes. [`Verifier::new`] accepts any length; the configuration
/// decides whether a shorter secret is refused or warned about.
pub const MIN_SECRET_LEN: usize = 32;

/// The only algorithm accepted.
const ALG_HS256: &str = "HS256";

/// `base64url({"alg":"HS256","typ":"JWT"})`: the header of every token [`sign`] writes.
const SIGNED_HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Header parameters that are refused when present (see the module rules).
const REFUSED_HEADER_PARAMS: [&str; 8] = ["crit", "jku", "jwk", "x5u", "x5c", "enc", "zip", "b64"];

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused. The server answers 401 to every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a well-formed compact JWS with JSON objects inside (see [`Malformed`]).
    #[error("malformed token: {0}")]
    Malformed(#[from] Malformed),
    /// The header's `alg` is not exactly `"HS256"` (absent, `none`, `HS384`, `hs256`, ...).
    #[error("unsupported alg")]
    UnsupportedAlg,
    /// The MAC does not match: wrong secret or altered header or claims.
    #[error("bad signature")]
    BadSignature,
    /// `now >= exp`.
    #[error("token expired")]
    Expired,
    /// `now < nbf`.
    #[error("token not yet valid")]
    NotYetValid,
    /// No `sub` claim (or `null`).
    #[error("missing sub claim")]
    MissingSub,
    /// No `exp` claim (or `null`).
    #[error("missing exp claim")]
    MissingExp,
    /// A claim has the wrong type or breaks its rule; names the claim.
    #[error("invalid {0} claim")]
    InvalidClaim(&'static str),
}

impl JwtError {
    /// A short fixed label for logs and metrics (`malformed`, `alg`, `signature`, `expired`,
    /// `not_yet_valid`, `missing_sub`, `missing_exp`, `claim`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnsupportedAlg => "alg",
            Self::BadSignature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingSub => "missing_sub",
            Self::MissingExp => "missing_exp",
            Self::InvalidClaim(_) => "claim",
        }
    }
}

/// The ways a token can be syntactically wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("longer than 8 KiB")]
    TooLong,
    /// Not exactly three `.`-separated parts.
    #[error("not three parts")]
    Parts,
    /// A part is not strict unpadded base64url; names the part.
    #[error("bad base64url in {0}")]
    Base64(&'static str),
    /// The header or the claims are not a JSON object; names the part.
    #[error("{0} is not a json object")]
    Json(&'static str),
    /// A key appears twice in the header or the claims; names the part.
    #[error("duplicate key in {0}")]
    DuplicateKey(&'static str),
    /// A header parameter's value is not a string.
    #[error("header value is not a string")]
    HeaderValue,
    /// `typ` is not `JWT`.
    #[error("typ is not jwt")]
    Typ,
    /// A refused header parameter (`crit`, `jku`, `jwk`, `x5u`, `x5c`, `enc`, `zip`, `b64`).
    #[error("unsupported header parameter {0}")]
    HeaderParam(&'static str),
}

/// The claims of a verified token (or of one to sign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user id: 1 to [`MAX_SUB_LEN`] bytes, no control characters (see [`check_sub`]).
    pub sub: String,
    /// Display name; the chat layer shows `sub` when absent.
    pub name: Option<String>,
    /// Expiry, unix seconds (rounded down when the token had a fraction). Always > the `now`
    /// the token was verified at.
    pub exp: u64,
    /// Not-before, unix seconds (rounded up; a negative one is 0). Always <= `now` when
    /// verified.
    pub nbf: Option<u64>,
    /// A single role, kept for the gateway (not interpreted here).
    pub role: Option<String>,
    /// Several roles, kept for the gateway (not interpreted here).
    pub roles: Option<Vec<String>>,
}

impl Claims {
    /// Claims with only `sub` and `exp`.
    pub fn new(sub: impl Into<String>, exp: u64) -> Self {
        Self {
            sub: sub.into(),
            name: None,
            exp,
            nbf: None,
            role: None,
            roles: None,
        }
    }

    /// `name`, or `sub` when there is no name.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.sub)
    }
}

/// Checks the `sub` rule: 1 to [`MAX_SUB_LEN`] bytes, and no character that is a control
/// character (`char::is_control`: C0, DEL, C1), a line or paragraph separator (U+2028,
/// U+2029) or a bidirectional control (U+202A..U+202E, U+2066..U+2069), which would let an
/// id break lines or reorder text where it is shown. `corecast token` calls this before
/// signing.
pub fn check_sub(sub: &str) -> Result<(), JwtError> {
    let printable = sub.chars().all(|c| {
        !c.is_control()
            && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    });
    if sub.is_empty() || sub.len() > MAX_SUB_LEN || !printable {
        return Err(JwtError::InvalidClaim("sub"));
    }
    Ok(())
}

/// Verifies HS256 tokens under one secret. Cheap to clone (the keyed HMAC state is
/// precomputed once); shareable across threads.
#[derive(Clone)]
pub struct Verifier {
    /// HMAC-SHA-256 keyed with the secret, cloned per token.
    mac: HmacSha256,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier { .. }")
    }
}

impl Verifier {
    /// A verifier for `secret` (the raw bytes of `--jwt-secret`). Any length works; see
    /// [`MIN_SECRET_LEN`].
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    /// Verifies `token` at `now_unix_s` (seconds since the Unix epoch) and returns its
    /// claims. See the module documentation for every rule and the order they are checked in.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<Claims, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Malformed::TooLong.into());
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Malformed::Parts.into());
        };

        let mut header = decode_part(header_b64, "header")?;
        check_header(&mut header)?;

        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| Malformed::Base64("signature"))?;
        let signed_len = header_b64.len() + 1 + payload_b64.len();
        let mut mac = self.mac.clone();
        mac.update(&token.as_bytes()[..signed_len]);
        mac.verify_slice(&sig).map_err(|_| JwtError::BadSignature)?;

        let mut payload = decode_part(payload_b64, "payload")?;
        check_claims(&mut payload, now_unix_s)
    }

    /// Signs `claims` with this verifier's secret (see [`sign`]).
    pub fn sign(&self, claims: &Claims) -> String {
        let mut token = String::with_capacity(256);
        token.push_str(SIGNED_HEADER_B64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json(claims), &mut token);
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let tag = mac.finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        token
    }
}

/// Signs `claims` as an HS256 token with header `{"alg":"HS256","typ":"JWT"}` and claims
/// `sub`, `exp` and whichever of `name`, `nbf`, `role`, `roles` are set, in that order.
/// It does not check the claims: call [`check_sub`] first, or the token will not verify.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    Verifier::new(secret).sign(claims)
}

/// The claims as compact JSON.
fn claims_json(c: &Claims) -> String {
    let mut out = String::with_capacity(64 + c.sub.len());
    out.push_str("{\"sub\":");
    write_json_str(&mut out, &c.sub);
    out.push_str(",\"exp\":");
    out.push_str(&c.exp.to_string());
    if let Some(name) = &c.name {
        out.push_str(",\"name\":");
        write_json_str(&mut out, name);
    }
    if let Some(nbf) = c.nbf {
        out.push_str(",\"nbf\":");
        out.push_str(&nbf.to_string());
    }
    if let Some(role) = &c.role {
        out.push_str(",\"role\":");
        write_json_str(&mut out, role);
    }
    if let Some(roles) = &c.roles {
        out.push_str(",\"roles\":[");
        for (i, r) in roles.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_str(&mut out, r);
        }
        out.push(']');
    }
    out.push('}');
    out
}

/// Writes `s` as a JSON string: quotes, backslash and control characters escaped, and
/// U+2028/U+2029 as `\u` escapes (so the text is also a valid JavaScript literal).
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Decodes one base64url part (strict: no padding, canonical trailing bits).
fn decode_part(b64: &str, part: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| Malformed::Base64(part).into())
}

/// Parses `json` (in place) as a JSON object and calls `f` with its tape value.
fn with_object<T>(
    json: &mut [u8],
    part: &'static str,
    f: impl FnOnce(simd_json::tape::Object<'_, '_>) -> Result<T, JwtError>,
) -> Result<T, JwtError> {
    // simd-json parses in place; the strictness check needs the text as it came.
    let original = json.to_vec();
    let mut tape = simd_json::to_tape(json).map_err(|_| Malformed::Json(part))?;
    if !crate::chat::tape::make_strict(&original, &mut tape.0) {
        return Err(Malformed::Json(part).into());
    }
    let value = tape.as_value();
    let Some(object) = value.as_object() else {
        return Err(Malformed::Json(part).into());
    };
    let mut keys: Vec<&str> = object.keys().collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(Malformed::DuplicateKey(part).into());
    }
    f(object)
}

/// The header rules (module rule 2).
fn check_header(json: &mut [u8]) -> Result<(), JwtError> {
    with_object(json, "header", |header| {
        if header.get("alg").and_then(|v| v.into_string()) != Some(ALG_HS256) {
            return Err(JwtError::UnsupportedAlg);
        }
        for (key, value) in header.iter() {
            let Some(value) = value.into_string() else {
                return Err(Malformed::HeaderValue.into());
            };
            if let Some(param) = REFUSED_HEADER_PARAMS.iter().find(|p| **p == key) {
                return Err(Malformed::HeaderParam(param).into());
            }
            if key == "typ" && !value.eq_ignore_ascii_case("JWT") {
                return Err(Malformed::Typ.into());
            }
        }
        Ok(())
    })
}

/// A claim's value, `None` when absent or `null`.
fn claim<'t, 'i>(
    claims: &simd_json::tape::Object<'t, 'i>,
    name: &str,
) -> Option<simd_json::tape::Value<'t, 'i>> {
    claims.get(name).filter(|v| !v.is_null())
}

/// An optional string claim.
fn opt_string(
    claims: &simd_json::tape::Object<'_, '_>,
    name: &'static str,
) -> Result<Option<String>, JwtError> {
    match claim(claims, name) {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(|s| Some(s.to_owned()))
            .ok_or(JwtError::InvalidClaim(name)),
    }
}

/// A NumericDate as whole seconds: fractions rounded down (`ceil == false`) or up.
fn numeric_date(
    v: simd_json::tape::Value<'_, '_>,
    name: &'static str,
    ceil: bool,
) -> Result<i128, JwtError> {
    /// Beyond this a float is not a plausible date (and `u64` could not hold it).
    const MAX_ABS: f64 = 1e19;
    let whole = match v.value_type() {
        ValueType::U64 => v.as_u64().map(i128::from),
        ValueType::I64 => v.as_i64().map(i128::from),
        ValueType::F64 => v
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() <= MAX_ABS)
            .map(|f| (if ceil { f.ceil() } else { f.floor() }) as i128),
        _ => None,
    };
    whole.ok_or(JwtError::InvalidClaim(name))
}

/// The claim rules (module rules 4 and 5).
fn check_claims(json: &mut [u8], now: u64) -> Result<Claims, JwtError> {
    with_object(json, "payload", |claims| {
        let sub = match claim(&claims, "sub") {
            None => return Err(JwtError::MissingSub),
            Some(v) => v.into_string().ok_or(JwtError::InvalidClaim("sub"))?,
        };
        check_sub(sub)?;
        let exp = match claim(&claims, "exp") {
            None => return Err(JwtError::MissingExp),
            Some(v) => numeric_date(v, "exp", false)?,
        };
        let nbf = claim(&claims, "nbf")
            .map(|v| numeric_date(v, "nbf", true))
            .transpose()?;
        let name = opt_string(&claims, "name")?;
        let role = opt_string(&claims, "role")?;
        let roles = match claim(&claims, "roles") {
            None => None,
            Some(v) => {
                let array = v.as_array().ok_or(JwtError::InvalidClaim("roles"))?;
                let roles = array
                    .iter()
                    .map(|r| r.into_string().map(str::to_owned))
                    .collect::<Option<Vec<String>>>();
                Some(roles.ok_or(JwtError::InvalidClaim("roles"))?)
            }
        };

        let now = i128::from(now);
        if now >= exp {
            return Err(JwtError::Expired);
        }
        if nbf.is_some_and(|nbf| now < nbf) {
            return Err(JwtError::NotYetValid);
        }
        Ok(Claims {
            sub: sub.to_owned(),
            name,
            exp: u64::try_from(exp).map_err(|_| JwtError::InvalidClaim("exp"))?,
            nbf: nbf.map(|n| u64::try_from(n.max(0)).unwrap_or(0)),
            role,
            roles,
        })
    })
}

#[cfg(test)]
mod tests;
