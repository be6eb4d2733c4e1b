//! Fuzzes the client-address and origin checks (`corecast::guard::{proxy, origin}`).
//!
//! Input layout: lines separated by `\n` (header values cannot hold one):
//! - line 0: the `--trusted-proxies` list; when it does not parse, `10.0.0.0/8, fd00::/8,
//!   127.0.0.1` is used so the run goes on;
//! - line 1: the peer address; when it does not parse, `10.0.0.1` (trusted by the fallback);
//! - line 2: the `X-Real-IP` value (absent when the input has fewer lines);
//! - line 3: the `Origin` value, line 4: the `Host` value (absent when missing);
//! - line 5: the `--allowed-origins` list (same-origin when it does not parse);
//! - lines 6 and on: `X-Forwarded-For` header instances, in order.
//!
//! Checks: no panic anywhere; configuration errors are one line naming the entry; an
//! untrusted peer is the client; otherwise the client is the peer or one of the addresses
//! written in the headers (each element read independently here: as it is, without brackets,
//! without a port), in canonical form; the origin check with `*` or without an `Origin`
//! always allows; a same-origin pass means the origin's host is the Host header's.

#![no_main]

use corecast::guard::origin::OriginPolicy;
use corecast::guard::proxy::{client_ip, TrustedProxies};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

/// Every address a header element could be read as.
fn candidates(element: &[u8], out: &mut Vec<IpAddr>) {
    let Ok(s) = std::str::from_utf8(element) else {
        return;
    };
    let s = s.trim_matches([' ', '\t']);
    let mut forms = vec![s];
    if let Some((host, _port)) = s.rsplit_once(':') {
        forms.push(host);
    }
    for f in forms.clone() {
        if let Some(inner) = f.strip_prefix('[').and_then(|f| f.strip_suffix(']')) {
            forms.push(inner);
        }
    }
    out.extend(
        forms
            .iter()
            .filter_map(|f| f.parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical()),
    );
}

fn host_part(authority: &str) -> &str {
    authority.split(':').next().unwrap_or(authority)
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let line = |i: usize| lines.get(i).copied();

    let trusted_text = String::from_utf8_lossy(line(0).unwrap_or(b""));
    let trusted = match TrustedProxies::parse(&trusted_text) {
        Ok(t) => t,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && msg.contains("invalid trusted proxy"));
            assert!(trusted_text.contains(e.entry.as_str()));
            TrustedProxies::parse("10.0.0.0/8, fd00::/8, 127.0.0.1").expect("valid list")
        }
    };
    let peer: IpAddr = line(1)
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(IpAddr::from([10, 0, 0, 1]));
    let real_ip = line(2);
    let xff: Vec<&[u8]> = lines.iter().skip(6).copied().collect();

    let chosen = client_ip(peer, &xff, real_ip, &trusted);
    if !trusted.contains(peer) {
        assert_eq!(chosen, peer.to_canonical());
    } else {
        let mut allowed = vec![peer.to_canonical()];
        for header in &xff {
            for element in header.split(|b| *b == b',') {
                candidates(element, &mut allowed);
            }
        }
        if let Some(r) = real_ip {
            candidates(r, &mut allowed);
        }
        assert!(allowed.contains(&chosen), "{chosen} not in {allowed:?}");
    }

    let origin = line(3);
    let host = line(4);
    let allowed_text = line(5).map(String::from_utf8_lossy);
    let listed = match allowed_text.as_deref().map(OriginPolicy::parse) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            assert!(!e.to_string().contains('\n'));
            None
        }
        None => None,
    };
    let same = OriginPolicy::same_origin();
    let same_result = same.check(origin, host);
    if let Some(p) = &listed {
        let r = p.check(origin, host);
        if p.is_any() {
            assert_eq!(r, Ok(()));
        }
    }
    assert_eq!(OriginPolicy::any().check(origin, host), Ok(()));
    assert_eq!(same.check(None, host), Ok(()));
    if same_result.is_ok() {
        if let (Some(o), Some(h)) = (origin, host) {
            let o = std::str::from_utf8(o).expect("a passing origin is text");
            let h = std::str::from_utf8(h).expect("a passing host is text");
            let authority = o.split_once("://").expect("scheme://").1;
            if !authority.contains('[') {
                assert!(
                    host_part(authority.trim_matches([' ', '\t']))
                        .eq_ignore_ascii_case(host_part(h.trim_matches([' ', '\t']))),
                    "{o} vs {h}"
                );
            }
        }
    }
});
