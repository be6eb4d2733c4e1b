use super::*;

const SECRET: &[u8] = b"corecast-test-secret-of-32-bytes!";
const NOW: u64 = 1_700_000_000;

/// A token with `header` and `claims` as given (any bytes), correctly signed with `secret`.
fn forge(secret: &[u8], header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = HmacSha256::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

fn hs256(claims: &str) -> String {
    forge(SECRET, br#"{"alg":"HS256","typ":"JWT"}"#, claims.as_bytes())
}

fn verify(token: &str) -> Result<Claims, JwtError> {
    Verifier::new(SECRET).verify(token, NOW)
}

fn verify_claims(claims: &str) -> Result<Claims, JwtError> {
    verify(&hs256(claims))
}

// ---- Known vectors ----

/// RFC 7515 Appendix A.1: the signature verifies; the token has no `sub`, so it is refused
/// for that (and not for its signature or its CRLF-laden JSON).
#[test]
fn rfc7515_a1_signature_verifies_then_sub_is_missing() {
    let key = URL_SAFE_NO_PAD
        .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
        .unwrap();
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
        eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
        dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let v = Verifier::new(&key);
    assert_eq!(v.verify(token, 1_300_819_379), Err(JwtError::MissingSub));
    assert_eq!(
        Verifier::new(b"another key").verify(token, 1_300_819_379),
        Err(JwtError::BadSignature)
    );
}

/// jwt.io's default HS256 example (secret `your-256-bit-secret`): valid MAC, no `exp`.
#[test]
fn jwt_io_example_has_no_exp() {
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
        SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let v = Verifier::new(b"your-256-bit-secret");
    assert_eq!(v.verify(token, NOW), Err(JwtError::MissingExp));
}

/// The jwt.io example with `exp` added, signed by Python's hmac module.
#[test]
fn jwt_io_example_with_exp_verifies() {
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyLCJleHAiOjIwMDAwMDAwMDB9.\
        3VEPp-gKXFT5m_HDHLbxiKB8GfAWyvKPoN_cKD-2ZCI";
    let claims = Verifier::new(b"your-256-bit-secret")
        .verify(token, NOW)
        .unwrap();
    assert_eq!(claims.sub, "1234567890");
    assert_eq!(claims.name.as_deref(), Some("John Doe"));
    assert_eq!(claims.exp, 2_000_000_000);
    assert_eq!(claims.display_name(), "John Doe");
}

/// Signed by Python: fractional dates, roles, ignored `aud` and nested unknown claims.
#[test]
fn python_vector_with_every_claim() {
    let token = "eyJhbGciOiJIUzI1NiJ9.\
        eyJzdWIiOiJhdXRoMHwxMjMiLCJleHAiOjE3MDAwMDAxMDAuNzUsIm5iZiI6MTY5OTk5OTk5OS41LCJyb2xlIjoiYWRtaW4iLCJyb2xlcyI6WyJhIiwiYiJdLCJhdWQiOlsieCJdLCJuZXN0ZWQiOnsiYSI6WzEseyJiIjpudWxsfV19fQ.\
        7y-DthuXDUCMX0c68rx5QghzP6gsw2gGdafkNhmxHD4";
    let claims = verify(token).unwrap();
    assert_eq!(
        claims,
        Claims {
            sub: "auth0|123".into(),
            name: None,
            exp: 1_700_000_100,
            nbf: Some(1_700_000_000),
            role: Some("admin".into()),
            roles: Some(vec!["a".into(), "b".into()]),
        }
    );
    assert_eq!(claims.display_name(), "auth0|123");
}

// ---- Signing ----

#[test]
fn sign_round_trips_and_escapes() {
    let mut c = Claims::new("ali \"q\" \\ \u{e9}\u{1F600}", NOW + 60);
    c.name = Some("Ali\n\u{1}\u{2028}\t</script>".into());
    c.nbf = Some(NOW - 5);
    c.role = Some("admin".into());
    c.roles = Some(vec!["x".into(), "\u{7f}".into()]);
    let token = sign(SECRET, &c);
    assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
    assert_eq!(verify(&token), Ok(c.clone()));
    // The claims JSON is strict JSON that serde_json reads back the same.
    let json = claims_json(&c);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["name"], "Ali\n\u{1}\u{2028}\t</script>");
    assert!(json.contains("\\u2028") && json.contains("\\u0001"));
    // Empty roles and no optional claims.
    let mut bare = Claims::new("a", NOW + 1);
    assert_eq!(verify(&sign(SECRET, &bare)), Ok(bare.clone()));
    bare.roles = Some(vec![]);
    assert_eq!(verify(&sign(SECRET, &bare)), Ok(bare));
}

#[test]
fn signing_header_constant_is_its_json() {
    assert_eq!(
        URL_SAFE_NO_PAD.decode(SIGNED_HEADER_B64).unwrap(),
        br#"{"alg":"HS256","typ":"JWT"}"#
    );
}

#[test]
fn verifier_is_shareable() {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<Verifier>();
}

#[test]
fn verifier_debug_hides_the_secret() {
    assert_eq!(format!("{:?}", Verifier::new(SECRET)), "Verifier { .. }");
}

// ---- Structure ----

#[test]
fn malformed_structure() {
    let good = hs256(&format!(r#"{{"sub":"a","exp":{}}}"#, NOW + 10));
    assert!(verify(&good).is_ok());
    let m = |t: &str| verify(t).unwrap_err();
    assert_eq!(m(""), Malformed::Parts.into());
    assert_eq!(m("a.b"), Malformed::Parts.into());
    assert_eq!(m(&format!("{good}.")), Malformed::Parts.into());
    assert_eq!(m(&format!("{good}.x")), Malformed::Parts.into());
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    assert_eq!(m(&format!("{head}.{sig}")), Malformed::Parts.into());
    assert_eq!(
        m(&format!("{head}!.{payload}.{sig}")),
        Malformed::Base64("header").into()
    );
    assert_eq!(
        m(&format!("{head}.{payload}.{sig}*")),
        Malformed::Base64("signature").into()
    );
    // Bad payload base64 behind a good MAC (only the secret holder can do that).
    let bad_payload = {
        let input = format!("{head}.@@");
        let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    assert_eq!(m(&bad_payload), Malformed::Base64("payload").into());
    // Standard (non-URL) alphabet.
    let std_alphabet = good.replace('-', "+").replace('_', "/");
    if std_alphabet != good {
        assert!(matches!(m(&std_alphabet), JwtError::Malformed(_)));
    }
    // Too long, even if otherwise fine.
    let long = hs256(&format!(
        r#"{{"sub":"a","exp":{},"pad":"{}"}}"#,
        NOW + 10,
        "x".repeat(MAX_TOKEN_LEN)
    ));
    assert_eq!(m(&long), Malformed::TooLong.into());
    let at_limit = hs256(&format!(
        r#"{{"sub":"a","exp":{},"pad":"{}"}}"#,
        NOW + 10,
        "x".repeat(6000)
    ));
    assert!(at_limit.len() <= MAX_TOKEN_LEN);
    assert!(verify(&at_limit).is_ok());
}

#[test]
fn padding_and_whitespace_are_malformed() {
    let good = forge(
        SECRET,
        br#"{"alg":"HS256" }"#,
        format!(r#"{{"sub":"abcd","exp":{}}}"#, NOW + 10).as_bytes(),
    );
    let parts: Vec<&str> = good.split('.').collect();
    // Properly padded base64url of each part (re-signed, so the MAC is right): '=' is never
    // accepted. Sizes are chosen so that every part needs padding.
    let pad = |p: &str| format!("{p}{}", "=".repeat((4 - p.len() % 4) % 4));
    assert!(parts.iter().all(|p| p.len() % 4 != 0), "{parts:?}");
    let resign = |h: &str, p: &str| {
        let input = format!("{h}.{p}");
        let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    assert_eq!(
        verify(&resign(&pad(parts[0]), parts[1])),
        Err(Malformed::Base64("header").into())
    );
    assert_eq!(
        verify(&resign(parts[0], &pad(parts[1]))),
        Err(Malformed::Base64("payload").into())
    );
    assert_eq!(
        verify(&format!("{}.{}.{}", parts[0], parts[1], pad(parts[2]))),
        Err(Malformed::Base64("signature").into())
    );
    assert!(verify(&resign(parts[0], parts[1])).is_ok());
    for ws in [" ", "\t", "\n", "\r\n"] {
        assert!(matches!(
            verify(&format!("{ws}{good}")),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            verify(&format!("{good}{ws}")),
            Err(JwtError::Malformed(_))
        ));
        // Inside the payload it changes the signed text, which is checked first.
        let mid = good.replacen('.', &format!(".{ws}"), 1);
        assert_eq!(verify(&mid), Err(JwtError::BadSignature));
    }
    // Non-canonical trailing bits in the signature: same bytes, different text.
    let sig = parts[2];
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    // 32 bytes -> 43 chars: the last char carries 4 meaningful bits and 2 zero bits.
    assert_eq!(idx & 0b11, 0);
    let other = alphabet.as_bytes()[idx | 1] as char;
    let tweaked = format!(
        "{}.{}.{}{}",
        parts[0],
        parts[1],
        &sig[..sig.len() - 1],
        other
    );
    assert_eq!(verify(&tweaked), Err(Malformed::Base64("signature").into()));
}

#[test]
fn whitespace_inside_the_json_is_fine() {
    let token = forge(
        SECRET,
        b" {\r\n\t\"alg\" : \"HS256\" } ",
        format!("\n{{ \"sub\" :\t\"a\", \"exp\": {} }}\n", NOW + 1).as_bytes(),
    );
    assert_eq!(verify(&token).unwrap().sub, "a");
}

#[test]
fn header_and_claims_must_be_strict_json_objects() {
    let exp = NOW + 10;
    let claims = format!(r#"{{"sub":"a","exp":{exp}}}"#);
    let bad_headers: [&[u8]; 10] = [
        b"",
        b"[]",
        b"\"HS256\"",
        b"null",
        br#"{"alg":"HS256",}"#,
        br#"{"alg":"HS256"} x"#,
        br#"{"alg":"HS256","x":"\ud800"}"#,
        br#"{"alg":"HS256","x":"\udc00\ud800"}"#,
        b"{\"alg\":\"HS256\",\"x\":\"\x01\"}",
        b"{\"alg\":\"HS256\",\"x\":\"\xff\"}",
    ];
    for h in bad_headers {
        assert_eq!(
            verify(&forge(SECRET, h, claims.as_bytes())),
            Err(Malformed::Json("header").into()),
            "{}",
            String::from_utf8_lossy(h)
        );
    }
    let bad_claims: [&str; 11] = [
        // Found by the jwt fuzz target: simd-json took the control byte for whitespace, and
        // junk after a long number for part of it.
        "{\"sub\":\"a\",\"exp\":10000000000000000000\x10}",
        r#"{"sub":"a","exp":17000000007000000000.50.5}"#,
        "{\"sub\":\"a\",\x0c\"exp\":10000000000000000000}",
        "",
        "[]",
        "1",
        r#"{"sub":"a","exp":1,}"#,
        r#"{"sub":"a" "exp":1}"#,
        r#"{"sub":"\ud800a","exp":99999999999}"#,
        r#"{"sub":"a","exp":99999999999,"x":"\uZZZZ"}"#,
        r#"{"sub":"a","exp":99999999999,"x":"\q"}"#,
    ];
    for c in bad_claims {
        assert_eq!(
            verify_claims(c),
            Err(Malformed::Json("payload").into()),
            "{c}"
        );
    }
    // A proper surrogate pair is fine.
    let ok = verify_claims(&format!(r#"{{"sub":"\ud83d\ude00","exp":{exp}}}"#)).unwrap();
    assert_eq!(ok.sub, "\u{1F600}");
}

#[test]
fn duplicate_keys_are_refused() {
    let claims = format!(r#"{{"sub":"a","exp":{}}}"#, NOW + 10);
    let token = forge(
        SECRET,
        br#"{"alg":"HS256","alg":"none"}"#,
        claims.as_bytes(),
    );
    assert_eq!(
        verify(&token),
        Err(Malformed::DuplicateKey("header").into())
    );
    // The same key written with an escape is the same key.
    let token = forge(
        SECRET,
        br#"{"alg":"HS256","\u0061lg":"HS256"}"#,
        claims.as_bytes(),
    );
    assert_eq!(
        verify(&token),
        Err(Malformed::DuplicateKey("header").into())
    );
    assert_eq!(
        verify_claims(&format!(r#"{{"sub":"a","sub":"b","exp":{}}}"#, NOW + 10)),
        Err(Malformed::DuplicateKey("payload").into())
    );
    assert_eq!(
        verify_claims(&format!(r#"{{"sub":"a","exp":{},"x":1,"x":2}}"#, NOW + 10)),
        Err(Malformed::DuplicateKey("payload").into())
    );
    // Keys repeated in nested objects are not top-level duplicates.
    assert!(verify_claims(&format!(
        r#"{{"sub":"a","exp":{},"o":{{"x":1}},"p":{{"x":1}}}}"#,
        NOW + 10
    ))
    .is_ok());
}

// ---- Algorithm ----

#[test]
fn only_exactly_hs256_is_accepted() {
    let claims = format!(r#"{{"sub":"a","exp":{}}}"#, NOW + 10);
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"HS384"}"#,
        r#"{"alg":"HS512"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":"HS256 "}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"ES256"}"#,
        r#"{"alg":""}"#,
        r#"{"alg":null}"#,
        r#"{"alg":256}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{"typ":"JWT"}"#,
        r#"{}"#,
    ] {
        let token = forge(SECRET, header.as_bytes(), claims.as_bytes());
        assert_eq!(verify(&token), Err(JwtError::UnsupportedAlg), "{header}");
    }
}

/// `alg: none` with an empty signature (the classic bypass) and alg confusion (RS256 header
/// with an HMAC over the secret as if it were a public key) are both refused for the alg.
#[test]
fn alg_none_and_alg_confusion() {
    let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"a","exp":{}}}"#, NOW + 10));
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(
        verify(&format!("{none}.{claims}.")),
        Err(JwtError::UnsupportedAlg)
    );
    let rs = forge(
        SECRET,
        br#"{"alg":"RS256","typ":"JWT"}"#,
        format!(r#"{{"sub":"a","exp":{}}}"#, NOW + 10).as_bytes(),
    );
    assert_eq!(verify(&rs), Err(JwtError::UnsupportedAlg));
    // An HS256 header spliced onto a token signed for another header: signature fails.
    let hs = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let (_, rest) = rs.split_once('.').unwrap();
    assert_eq!(verify(&format!("{hs}.{rest}")), Err(JwtError::BadSignature));
}

#[test]
fn header_parameters() {
    let claims = format!(r#"{{"sub":"a","exp":{}}}"#, NOW + 10);
    let with = |h: &str| verify(&forge(SECRET, h.as_bytes(), claims.as_bytes()));
    for typ in ["JWT", "jwt", "Jwt"] {
        assert!(with(&format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#)).is_ok());
    }
    for typ in [r#""JWS""#, r#""""#, r#""JWT ""#, r#""at+jwt""#] {
        assert_eq!(
            with(&format!(r#"{{"alg":"HS256","typ":{typ}}}"#)),
            Err(Malformed::Typ.into())
        );
    }
    for value in ["null", "1", "true", "{}", "[]"] {
        assert_eq!(
            with(&format!(r#"{{"alg":"HS256","kid":{value}}}"#)),
            Err(Malformed::HeaderValue.into())
        );
        assert_eq!(
            with(&format!(r#"{{"alg":"HS256","typ":{value}}}"#)),
            Err(Malformed::HeaderValue.into())
        );
    }
    for param in REFUSED_HEADER_PARAMS {
        assert_eq!(
            with(&format!(r#"{{"alg":"HS256","{param}":"x"}}"#)),
            Err(Malformed::HeaderParam(param).into()),
            "{param}"
        );
    }
    assert!(with(r#"{"alg":"HS256","kid":"k1","cty":"x","custom":"y"}"#).is_ok());
}

// ---- Signature ----

#[test]
fn tampering_breaks_the_signature() {
    let token = hs256(&format!(r#"{{"sub":"alice","exp":{}}}"#, NOW + 10));
    assert!(verify(&token).is_ok());
    let (head, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    // Another user's claims with alice's signature.
    let evil = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"admin","exp":{}}}"#, NOW + 10));
    assert_eq!(
        verify(&format!("{head}.{evil}.{sig}")),
        Err(JwtError::BadSignature)
    );
    // Every single-character change of the signature (but the last, which has spare bits).
    let sig_start = token.len() - sig.len();
    for i in sig_start..token.len() - 1 {
        let mut t = token.clone().into_bytes();
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(t).unwrap();
        assert_eq!(verify(&t), Err(JwtError::BadSignature), "byte {i}");
    }
    // A truncated or extended signature.
    assert!(verify(&token[..token.len() - 4]).is_err());
    assert_eq!(verify(&format!("{token}AAAA")), Err(JwtError::BadSignature));
    assert_eq!(
        verify(&format!("{head}.{}.", rest.split_once('.').unwrap().0)),
        Err(JwtError::BadSignature)
    );
    // Wrong secret.
    assert_eq!(
        Verifier::new(b"another-secret").verify(&token, NOW),
        Err(JwtError::BadSignature)
    );
}

// ---- Claims ----

#[test]
fn sub_rules() {
    let exp = NOW + 10;
    let v = |sub: &str| verify_claims(&format!(r#"{{"sub":{sub},"exp":{exp}}}"#));
    assert_eq!(v("null"), Err(JwtError::MissingSub));
    assert_eq!(
        verify_claims(&format!(r#"{{"exp":{exp}}}"#)),
        Err(JwtError::MissingSub)
    );
    for bad in ["1", "true", "[]", "{}", r#""""#] {
        assert_eq!(v(bad), Err(JwtError::InvalidClaim("sub")), "{bad}");
    }
    for bad in [
        r#""a\u0000""#,
        r#""a\n""#,
        r#""\t""#,
        r#""a\u007f""#,
        r#""\u0085""#,
        r#""a\u2028b""#,
        r#""\u202e""#,
        r#""\u2066x""#,
    ] {
        assert_eq!(v(bad), Err(JwtError::InvalidClaim("sub")), "{bad}");
    }
    let max = "é".repeat(64); // 128 bytes
    assert_eq!(v(&format!("\"{max}\"")).unwrap().sub, max);
    assert_eq!(
        v(&format!("\"{max}x\"")),
        Err(JwtError::InvalidClaim("sub"))
    );
    for good in ["auth0|123", "alice@example.com", "a b", "用户", "\u{1F600}"] {
        assert_eq!(v(&format!("\"{good}\"")).unwrap().sub, good);
    }
    assert_eq!(check_sub("ok"), Ok(()));
    assert_eq!(check_sub(""), Err(JwtError::InvalidClaim("sub")));
}

#[test]
fn exp_rules_with_zero_leeway() {
    let v = |exp: &str| verify_claims(&format!(r#"{{"sub":"a","exp":{exp}}}"#));
    assert_eq!(verify_claims(r#"{"sub":"a"}"#), Err(JwtError::MissingExp));
    assert_eq!(v("null"), Err(JwtError::MissingExp));
    for bad in [r#""1800000000""#, "true", "[]", "{}", "1e20", "-1e20"] {
        assert_eq!(v(bad), Err(JwtError::InvalidClaim("exp")), "{bad}");
    }
    assert_eq!(v(&NOW.to_string()), Err(JwtError::Expired), "now == exp");
    assert_eq!(v(&(NOW - 1).to_string()), Err(JwtError::Expired));
    assert_eq!(v("0"), Err(JwtError::Expired));
    assert_eq!(v("-5"), Err(JwtError::Expired));
    assert_eq!(v("-0"), Err(JwtError::Expired));
    assert_eq!(v(&(NOW + 1).to_string()).unwrap().exp, NOW + 1);
    assert_eq!(v(&u64::MAX.to_string()).unwrap().exp, u64::MAX);
    // Fractions: exp rounds down, so NOW + 0.9 is already expired at NOW.
    assert_eq!(v(&format!("{NOW}.9")), Err(JwtError::Expired));
    assert_eq!(v(&format!("{}.1", NOW + 1)).unwrap().exp, NOW + 1);
    assert_eq!(v("1.8e9").unwrap().exp, 1_800_000_000);
    // Integers beyond u64 are not numbers simd-json keeps: malformed.
    assert!(matches!(
        v("18446744073709551616"),
        Err(JwtError::Malformed(_))
    ));
}

#[test]
fn nbf_rules() {
    let exp = NOW + 100;
    let v = |nbf: &str| verify_claims(&format!(r#"{{"sub":"a","exp":{exp},"nbf":{nbf}}}"#));
    assert_eq!(v(&(NOW + 1).to_string()), Err(JwtError::NotYetValid));
    assert_eq!(
        v(&format!("{}.5", NOW)),
        Err(JwtError::NotYetValid),
        "rounds up"
    );
    assert_eq!(
        v(&NOW.to_string()).unwrap().nbf,
        Some(NOW),
        "now == nbf is valid"
    );
    assert_eq!(v("0").unwrap().nbf, Some(0));
    assert_eq!(v("-3.5").unwrap().nbf, Some(0));
    assert_eq!(v("null").unwrap().nbf, None);
    for bad in [r#""0""#, "false", "[0]", "1e30"] {
        assert_eq!(v(bad), Err(JwtError::InvalidClaim("nbf")), "{bad}");
    }
    // Expired wins over not-yet-valid when both hold (exp is checked first).
    assert_eq!(
        verify_claims(&format!(r#"{{"sub":"a","exp":{NOW},"nbf":{}}}"#, NOW + 5)),
        Err(JwtError::Expired)
    );
}

#[test]
fn optional_claims_are_typed() {
    let exp = NOW + 10;
    let v = |extra: &str| verify_claims(&format!(r#"{{"sub":"a","exp":{exp},{extra}}}"#));
    for (claim, bad) in [
        ("name", "1"),
        ("name", "[]"),
        ("role", "true"),
        ("role", "{}"),
        ("roles", r#""admin""#),
        ("roles", r#"["a",1]"#),
        ("roles", r#"[null]"#),
        ("roles", r#"[["a"]]"#),
    ] {
        assert_eq!(
            v(&format!(r#""{claim}":{bad}"#)),
            Err(JwtError::InvalidClaim(claim)),
            "{claim}: {bad}"
        );
    }
    let c = v(r#""name":null,"role":null,"roles":null"#).unwrap();
    assert_eq!((c.name, c.role, c.roles), (None, None, None));
    let c = v(r#""name":"Ali","role":"","roles":[]"#).unwrap();
    assert_eq!(c.name.as_deref(), Some("Ali"));
    assert_eq!(c.role.as_deref(), Some(""));
    assert_eq!(c.roles, Some(vec![]));
    // Unknown and registered-but-unchecked claims of any type are ignored.
    assert!(v(r#""iat":"x","iss":1,"aud":["other"],"jti":{},"deep":[[[[[[[[{}]]]]]]]]"#).is_ok());
}

#[test]
fn every_error_has_a_reason_and_a_message() {
    let all = [
        JwtError::Malformed(Malformed::TooLong),
        JwtError::UnsupportedAlg,
        JwtError::BadSignature,
        JwtError::Expired,
        JwtError::NotYetValid,
        JwtError::MissingSub,
        JwtError::MissingExp,
        JwtError::InvalidClaim("sub"),
    ];
    let mut reasons: Vec<&str> = all.iter().map(JwtError::reason).collect();
    reasons.sort_unstable();
    reasons.dedup();
    assert_eq!(reasons.len(), all.len());
    assert_eq!(
        JwtError::from(Malformed::Base64("header")).to_string(),
        "malformed token: bad base64url in header"
    );
    assert_eq!(
        JwtError::InvalidClaim("nbf").to_string(),
        "invalid nbf claim"
    );
}

/// simd-json's tape of `json`, made strict the way `verify` does it.
fn is_lexically_strict(json: &[u8]) -> bool {
    let mut copy = json.to_vec();
    match simd_json::to_tape(&mut copy) {
        Ok(mut tape) => crate::chat::tape::make_strict(json, &mut tape.0),
        Err(_) => false,
    }
}

#[test]
fn strict_json() {
    let ok: [&[u8]; 7] = [
        br#"{"a":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"}"#,
        b"{\t\"a\":\n1}\r\n",
        br#"[0,-0,1.5,-12.25e+3,1E5,0.1e-1,10,true,false,null,"x"]"#,
        br#"{"a":[1],"b":{"c":null}}"#,
        b"1",
        b"\"\xc3\xa9\"",
        br#"[1 ,2]"#,
    ];
    for j in ok {
        assert!(is_lexically_strict(j), "{}", String::from_utf8_lossy(j));
    }
    let bad: [&[u8]; 30] = [
        br#"{"a":"\u00e"}"#,
        br#"{"a":"\u"#,
        br#"{"a":"\ud83d\u0041"}"#,
        br#"{"a":"\ud83d\"}"#,
        br#"{"a":"\ud83d"#,
        br#"{"a":"\udc00"}"#,
        br#"{"a":"\"#,
        br#"{"a":"\x"}"#,
        br#"{"a":1}\"#,
        b"\"\x1f\"",
        b"{\"a\":1\x10}",
        b"\x0c{}",
        br#"{"a":1700000000700000000.50.5}"#,
        br#"{"a":01}"#,
        br#"{"a":-01}"#,
        br#"{"a":1.}"#,
        br#"{"a":.5}"#,
        br#"{"a":1.e5}"#,
        br#"{"a":1e}"#,
        br#"{"a":1e+}"#,
        br#"{"a":-}"#,
        br#"{"a":+1}"#,
        br#"{"a":1x}"#,
        br#"{"a":1:}"#,
        br#"{"a":tru}"#,
        br#"{"a":truex}"#,
        br#"{"a":nul}"#,
        br#"{"a":NaN}"#,
        br#"{"a":'x'}"#,
        b"\xef\xbb\xbf{}",
    ];
    for j in bad {
        assert!(!is_lexically_strict(j), "{}", String::from_utf8_lossy(j));
    }
}

// ---- Differential: jsonwebtoken signs, we verify ----

mod reference {
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde::Serialize;

    #[derive(Serialize)]
    struct RefClaims<'a> {
        sub: &'a str,
        exp: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        nbf: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        roles: Option<Vec<&'a str>>,
        iat: u64,
        iss: &'a str,
    }

    fn jwt(alg: Algorithm, secret: &[u8], c: &RefClaims) -> String {
        let mut header = Header::new(alg);
        header.kid = Some("key-1".into());
        encode(&header, c, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn tokens_signed_by_jsonwebtoken_verify_the_same() {
        let subs = ["alice", "auth0|123", "é\u{1F600}\"\\", "x"];
        for (i, sub) in subs.iter().enumerate() {
            let i = i as u64;
            let c = RefClaims {
                sub,
                exp: NOW + 1 + i * 1000,
                nbf: (i % 2 == 0).then_some(NOW - i),
                name: (i != 1).then_some("Ali \n Vali"),
                role: (i == 2).then_some("admin"),
                roles: (i == 3).then(|| vec!["r1", "r2"]),
                iat: NOW - 100,
                iss: "corecast",
            };
            let token = jwt(Algorithm::HS256, SECRET, &c);
            let got = verify(&token).unwrap();
            assert_eq!(got.sub, *sub);
            assert_eq!(got.exp, c.exp);
            assert_eq!(got.nbf, c.nbf);
            assert_eq!(got.name.as_deref(), c.name);
            assert_eq!(got.role.as_deref(), c.role);
            assert_eq!(
                got.roles,
                c.roles.map(|r| r.into_iter().map(String::from).collect())
            );
            // Ours signs what jsonwebtoken verifies (with its clock checks off: the
            // reference cannot take an injected `now`).
            let ours = sign(SECRET, &got);
            let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
            validation.validate_exp = false;
            validation.required_spec_claims = ["exp".to_string(), "sub".to_string()].into();
            let back = jsonwebtoken::decode::<serde_json::Value>(
                &ours,
                &jsonwebtoken::DecodingKey::from_secret(SECRET),
                &validation,
            )
            .unwrap();
            assert_eq!(back.claims["sub"], *sub);
            assert_eq!(back.claims["exp"], c.exp);
        }
    }

    #[test]
    fn jsonwebtoken_errors_map_to_ours() {
        let c = RefClaims {
            sub: "alice",
            exp: NOW + 10,
            nbf: None,
            name: None,
            role: None,
            roles: None,
            iat: NOW,
            iss: "i",
        };
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            assert_eq!(verify(&jwt(alg, SECRET, &c)), Err(JwtError::UnsupportedAlg));
        }
        assert_eq!(
            verify(&jwt(Algorithm::HS256, b"other secret", &c)),
            Err(JwtError::BadSignature)
        );
        let expired = RefClaims { exp: NOW, ..c };
        assert_eq!(
            verify(&jwt(Algorithm::HS256, SECRET, &expired)),
            Err(JwtError::Expired)
        );
        let early = RefClaims {
            exp: NOW + 10,
            nbf: Some(NOW + 1),
            ..expired
        };
        assert_eq!(
            verify(&jwt(Algorithm::HS256, SECRET, &early)),
            Err(JwtError::NotYetValid)
        );
    }
}
