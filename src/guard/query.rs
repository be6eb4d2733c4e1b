//! The request parameters the chat endpoint reads before an upgrade: a query parameter
//! (`token`, `username`), a cookie (`token`) and a Bearer credential (`Authorization`).
//!
//! Owns only their syntax: values come back borrowed from the request when no decoding is
//! needed. It knows nothing of what the values mean and never panics on request bytes.

use std::borrow::Cow;

use super::trim_ows;

/// A parameter that is present but unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A `%` not followed by two hex digits.
    #[error("bad percent-encoding")]
    BadPercent,
    /// The decoded value is not UTF-8.
    #[error("value is not utf-8")]
    BadUtf8,
    /// The query parameter appears more than once (which one would count is ambiguous).
    #[error("repeated parameter")]
    Repeated,
}

/// The value of query parameter `name` in a request target (`/ws?token=abc&username=ali`).
///
/// The query is what follows the first `?` (up to a `#`, should one be sent); pairs are
/// separated by `&`, a pair without `=` has the empty value. Names and values are
/// form-decoded (`%XX`, and `+` as a space, as browsers' `URLSearchParams` write them);
/// names compare exactly after decoding. `Ok(None)` when absent; an error when the value's
/// encoding is invalid or when the parameter appears twice. Pairs whose name is not `name`
/// are never decoded, so their errors do not matter.
pub fn query_param<'a>(target: &'a [u8], name: &str) -> Result<Option<Cow<'a, str>>, ParamError> {
    let Some(q) = target.iter().position(|b| *b == b'?') else {
        return Ok(None);
    };
    let query = &target[q + 1..];
    let query = query.split(|b| *b == b'#').next().unwrap_or(query);
    let mut found = None;
    for pair in query.split(|b| *b == b'&') {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        if !decode(key, true).is_ok_and(|k| k == name) {
            continue;
        }
        if found.is_some() {
            return Err(ParamError::Repeated);
        }
        found = Some(decode(value, true)?);
    }
    Ok(found)
}

/// Every query parameter of a request target, decoded as [`query_param`] decodes them, in
/// order; a pair whose name or value does not decode is skipped.
pub fn query_pairs(target: &[u8]) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let Some(q) = target.iter().position(|b| *b == b'?') else {
        return Vec::new();
    };
    let query = &target[q + 1..];
    let query = query.split(|b| *b == b'#').next().unwrap_or(query);
    query
        .split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            Some((decode(key, true).ok()?, decode(value, true).ok()?))
        })
        .collect()
}

/// The value of cookie `name` from the request's `Cookie` headers (all instances, in order).
///
/// Each header is `name=value` pairs separated by `;` (RFC 6265 §4.2; spaces around pairs,
/// names and values are ignored). Names compare exactly (case-sensitive). A value in double
/// quotes loses them; `%XX` escapes are decoded (as `encodeURIComponent` writes them; `+`
/// stays `+`). When the cookie appears more than once the first wins: browsers send the one
/// with the longest path first. `Ok(None)` when absent; an error when its value's encoding
/// is invalid.
pub fn cookie<'a>(
    cookie_headers: &[&'a [u8]],
    name: &str,
) -> Result<Option<Cow<'a, str>>, ParamError> {
    for header in cookie_headers {
        for pair in header.split(|b| *b == b';') {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if trim_ows(&pair[..eq]) != name.as_bytes() {
                continue;
            }
            let mut value = trim_ows(&pair[eq + 1..]);
            if let [b'"', inner @ .., b'"'] = value {
                value = inner;
            }
            return decode(value, false).map(Some);
        }
    }
    Ok(None)
}

/// The token of an `Authorization: Bearer <token>` header value (RFC 6750 §2.1): the scheme
/// is case-insensitive, one or more spaces follow it, surrounding spaces and tabs are
/// ignored, and the token must be token68 (`A-Z a-z 0-9 - . _ ~ + /`, then `=` padding
/// only). `None` for another scheme, an empty or invalid token.
pub fn bearer(authorization: &[u8]) -> Option<&str> {
    let value = trim_ows(authorization);
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = trim_ows(rest);
    let body_len = token
        .iter()
        .position(|b| {
            !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
        })
        .unwrap_or(token.len());
    let valid = body_len > 0 && token[body_len..].iter().all(|b| *b == b'=');
    if !valid {
        return None;
    }
    std::str::from_utf8(token).ok()
}

/// Percent-decodes `s` (and `+` as space when `plus` is set), borrowing when nothing changes.
fn decode(s: &[u8], plus: bool) -> Result<Cow<'_, str>, ParamError> {
    if !s.iter().any(|b| *b == b'%' || (plus && *b == b'+')) {
        return std::str::from_utf8(s)
            .map(Cow::Borrowed)
            .map_err(|_| ParamError::BadUtf8);
    }
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    s.get(i + 1).copied().and_then(hex),
                    s.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(ParamError::BadPercent);
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| ParamError::BadUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q<'a>(t: &'a str, name: &str) -> Result<Option<Cow<'a, str>>, ParamError> {
        query_param(t.as_bytes(), name)
    }

    #[test]
    fn query_parameters() {
        let t = "/ws?token=abc.def-ghi_&username=ali";
        assert_eq!(q(t, "token").unwrap().as_deref(), Some("abc.def-ghi_"));
        assert!(matches!(q(t, "token").unwrap(), Some(Cow::Borrowed(_))));
        assert_eq!(q(t, "username").unwrap().as_deref(), Some("ali"));
        assert_eq!(q(t, "user").unwrap(), None);
        assert_eq!(q("/ws", "token").unwrap(), None);
        assert_eq!(q("/ws?", "token").unwrap(), None);
        assert_eq!(q("/ws?tokenx=1&xtoken=2", "token").unwrap(), None);
        assert_eq!(q("/ws?token", "token").unwrap().as_deref(), Some(""));
        assert_eq!(q("/ws?token=", "token").unwrap().as_deref(), Some(""));
        assert_eq!(
            q("/ws?a=1&&token=x&", "token").unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(q("/ws?token=a=b", "token").unwrap().as_deref(), Some("a=b"));
        assert_eq!(
            q("/ws?token=x#frag", "token").unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(
            q("/ws?a=%zz&token=ok", "token").unwrap().as_deref(),
            Some("ok")
        );
        // Decoding of values and names.
        assert_eq!(
            q("/ws?username=al%69", "username").unwrap().as_deref(),
            Some("ali")
        );
        assert_eq!(
            q("/ws?username=%C3%A9+x", "username").unwrap().as_deref(),
            Some("é x")
        );
        assert_eq!(
            q("/ws?user%6Eame=v", "username").unwrap().as_deref(),
            Some("v")
        );
        assert_eq!(q("/ws?my+name=v", "my name").unwrap().as_deref(), Some("v"));
        assert!(matches!(q("/ws?u=%41", "u").unwrap(), Some(Cow::Owned(_))));
        // Errors.
        assert_eq!(q("/ws?token=%", "token"), Err(ParamError::BadPercent));
        assert_eq!(q("/ws?token=%4", "token"), Err(ParamError::BadPercent));
        assert_eq!(q("/ws?token=%g1", "token"), Err(ParamError::BadPercent));
        assert_eq!(q("/ws?token=%FF", "token"), Err(ParamError::BadUtf8));
        assert_eq!(q("/ws?token=%C3", "token"), Err(ParamError::BadUtf8));
        assert_eq!(q("/ws?token=a&token=b", "token"), Err(ParamError::Repeated));
        assert_eq!(
            q("/ws?token=a&tok%65n=a", "token"),
            Err(ParamError::Repeated)
        );
        assert_eq!(
            query_param(b"/ws?token=\xff", "token"),
            Err(ParamError::BadUtf8)
        );
    }

    #[test]
    fn cookies() {
        let h: [&[u8]; 2] = [b"a=1; token=abc.def; b=2", b"token=second"];
        assert_eq!(cookie(&h, "token").unwrap().as_deref(), Some("abc.def"));
        assert_eq!(cookie(&h, "b").unwrap().as_deref(), Some("2"));
        assert_eq!(cookie(&h, "c").unwrap(), None);
        assert_eq!(
            cookie(&h, "Token").unwrap(),
            None,
            "names are case-sensitive"
        );
        assert_eq!(cookie(&[], "token").unwrap(), None);
        let h: [&[u8]; 1] = [b"  token = \"q v\" ;x;=y; other=%41"];
        assert_eq!(cookie(&h, "token").unwrap().as_deref(), Some("q v"));
        assert_eq!(cookie(&h, "other").unwrap().as_deref(), Some("A"));
        assert_eq!(
            cookie(&h, "x").unwrap(),
            None,
            "a pair without '=' is skipped"
        );
        let h: [&[u8]; 1] = [b"a=x+y; b=%zz; c=%FF; d=\"; e="];
        assert_eq!(cookie(&h, "a").unwrap().as_deref(), Some("x+y"));
        assert_eq!(cookie(&h, "b"), Err(ParamError::BadPercent));
        assert_eq!(cookie(&h, "c"), Err(ParamError::BadUtf8));
        assert_eq!(cookie(&h, "d").unwrap().as_deref(), Some("\""));
        assert_eq!(cookie(&h, "e").unwrap().as_deref(), Some(""));
        // The second header is read when the first has no such cookie.
        let h: [&[u8]; 2] = [b"a=1", b"token=t2"];
        assert_eq!(cookie(&h, "token").unwrap().as_deref(), Some("t2"));
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer(b"Bearer abc.DEF-_~+/=="), Some("abc.DEF-_~+/=="));
        assert_eq!(bearer(b"bearer x"), Some("x"));
        assert_eq!(bearer(b"BEARER x"), Some("x"));
        assert_eq!(bearer(b"  Bearer    x \t"), Some("x"));
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer  \t",
            b"Basic dXNlcjpwYXNz",
            b"Bearerx y",
            b"Bearer a b",
            b"Bearer a=b",
            b"Bearer =",
            b"Bearer a,b",
            b"Bearer \xff",
            b"",
            b"x",
        ] {
            assert_eq!(bearer(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn all_pairs() {
        let p = query_pairs(b"/ws/drivers?userID=d1&packageSlug=sedan+xl&bad=%zz&flag#frag");
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            p,
            [("userID", "d1"), ("packageSlug", "sedan xl"), ("flag", "")]
        );
        assert!(query_pairs(b"/x").is_empty());
    }
}
