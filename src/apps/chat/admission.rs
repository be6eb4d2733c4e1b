//! Who may open `/ws`, decided before the upgrade, cheapest check first (the connection limit,
//! 503, is the reactor's and comes before all of these):
//!
//! 1. the client IP's upgrade rate (token bucket per IP, node-wide) → 429; every attempt takes
//!    a token, accepted or not;
//! 2. `Origin` (`--allowed-origins`, or same-origin) → 403;
//! 3. identity: with `--jwt-secret` a valid HS256 token from the query (`token`), a cookie
//!    (`token`) or `Authorization: Bearer`, checked in that order, the first present one
//!    decides → 401; without a secret `?username=` (development) → 400 when missing or bad.
//!
//! Owns the order of the checks and their answers; the checks themselves are `crate::guard`.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use crate::chat::validate::is_dev_username;
use crate::config::Config;
use crate::guard::jwt::{self, Verifier};
use crate::guard::origin::OriginPolicy;
use crate::guard::proxy::{client_ip, TrustedProxies};
use crate::guard::query::{bearer, cookie, query_param};
use crate::guard::ratelimit::{IpRateLimiter, RateLimit, DEFAULT_MAX_ENTRIES_PER_SHARD};
use crate::http::{RequestHead, Response, Status};

/// Who a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id (JWT `sub` or development username).
    pub id: String,
    /// Display name (JWT `name`, default the id).
    pub name: String,
    /// The token's `role` and `roles` claims (empty in development mode).
    pub roles: Vec<String>,
}

/// Why an upgrade was refused; each knows its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over the per-IP upgrade rate.
    Rate,
    /// Origin not allowed.
    Origin(String),
    /// No token, or a bad one.
    Auth(String),
    /// Development mode: no or a bad `username` (or the gateway endpoint's parameter).
    BadRequest(String),
    /// Authenticated, but the token holds none of the endpoint's roles.
    Role,
}

impl Refusal {
    /// The HTTP answer.
    pub fn response(&self) -> Response {
        match self {
            Self::Rate => Response::text(Status::TOO_MANY_REQUESTS, "too many connection attempts")
                .header("Retry-After", "1"),
            Self::Origin(why) => Response::text(Status::FORBIDDEN, why),
            Self::Auth(why) => {
                Response::text(Status::UNAUTHORIZED, why).header("WWW-Authenticate", "Bearer")
            }
            Self::BadRequest(why) => Response::text(Status::BAD_REQUEST, why),
            Self::Role => Response::text(Status::FORBIDDEN, "forbidden: role not allowed here"),
        }
    }
}

/// The admission policy of one server, shared by every worker.
#[derive(Debug)]
pub struct Admission {
    ip_rate: IpRateLimiter,
    proxies: TrustedProxies,
    origins: OriginPolicy,
    jwt: Option<Verifier>,
    /// Each connection's message rate.
    pub msg_rate: RateLimit,
}

impl Admission {
    /// From the configuration; the error is one line naming the setting.
    pub fn from_config(cfg: &Config) -> Result<Self, String> {
        let ip_limit = RateLimit::new(cfg.conn_rate, cfg.conn_burst)
            .map_err(|e| format!("--conn-rate/--conn-burst: {e}"))?;
        let msg_rate = RateLimit::new(cfg.msg_rate, cfg.msg_burst)
            .map_err(|e| format!("--msg-rate/--msg-burst: {e}"))?;
        let proxies = if cfg.trusted_proxies.trim().is_empty() {
            TrustedProxies::none()
        } else {
            TrustedProxies::parse(&cfg.trusted_proxies)
                .map_err(|e| format!("--trusted-proxies: {e}"))?
        };
        let origins = OriginPolicy::from_flag(cfg.allowed_origins.as_deref())
            .map_err(|e| format!("--allowed-origins: {e}"))?;
        Ok(Self {
            ip_rate: IpRateLimiter::new(ip_limit, DEFAULT_MAX_ENTRIES_PER_SHARD),
            proxies,
            origins,
            jwt: cfg
                .jwt_secret
                .as_ref()
                .map(|s| Verifier::new(s.0.as_bytes())),
            msg_rate,
        })
    }

    /// Runs the checks for one upgrade request. `peer` is the TCP peer; `mono_ms` a
    /// process-wide monotonic clock; `unix_s` the wall clock.
    pub fn check(
        &self,
        peer: Option<IpAddr>,
        head: &RequestHead<'_>,
        mono_ms: u64,
        unix_s: u64,
    ) -> Result<Identity, Refusal> {
        self.check_as(peer, head, mono_ms, unix_s, DevIdentity::CHAT)
    }

    /// Whether identities come from tokens (`--jwt-secret` set).
    pub fn uses_tokens(&self) -> bool {
        self.jwt.is_some()
    }

    /// [`Admission::check`] with the development-mode identity taken as `dev` says (the
    /// gateway's `identity = "query:NAME"`); with a secret, always the token.
    pub fn check_as(
        &self,
        peer: Option<IpAddr>,
        head: &RequestHead<'_>,
        mono_ms: u64,
        unix_s: u64,
        dev: DevIdentity<'_>,
    ) -> Result<Identity, Refusal> {
        // A peer whose address cannot be read is gone already; count it under one key.
        let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let xff: Vec<&[u8]> = if self.proxies.is_empty() {
            Vec::new()
        } else {
            head.header_values("x-forwarded-for").collect()
        };
        let real_ip = if self.proxies.is_empty() {
            None
        } else {
            head.header_values("x-real-ip").last()
        };
        let ip = client_ip(peer, &xff, real_ip, &self.proxies);
        if !self.ip_rate.try_take(ip, mono_ms) {
            return Err(Refusal::Rate);
        }
        // Two Origin headers: a browser never sends that; which one would we check?
        if head.header_values("origin").nth(1).is_some() {
            return Err(Refusal::Origin(
                "origin not allowed: several origin headers".into(),
            ));
        }
        self.origins
            .check(head.origin, head.host)
            .map_err(|e| Refusal::Origin(format!("origin not allowed: {e}")))?;
        match &self.jwt {
            Some(v) => self.token_identity(v, head, unix_s),
            None => dev_identity(head, dev),
        }
    }

    fn token_identity(
        &self,
        v: &Verifier,
        head: &RequestHead<'_>,
        unix_s: u64,
    ) -> Result<Identity, Refusal> {
        let bad = |what: &str| Refusal::Auth(format!("invalid token: {what}"));
        let target = head.target.as_bytes();
        let token: Cow<'_, str> =
            if let Some(t) = query_param(target, "token").map_err(|_| bad("bad query encoding"))? {
                t
            } else {
                let cookies: Vec<&[u8]> = head.header_values("cookie").collect();
                match cookie(&cookies, "token").map_err(|_| bad("bad cookie encoding"))? {
                Some(t) => t,
                None => match head.authorization {
                    Some(a) => Cow::Borrowed(bearer(a).ok_or_else(|| bad("not a bearer token"))?),
                    None => return Err(Refusal::Auth(
                        "a token is required (query token, cookie token or Authorization: Bearer)"
                            .into(),
                    )),
                },
            }
            };
        let claims = v.verify(&token, unix_s).map_err(|e| bad(&e.to_string()))?;
        let mut roles: Vec<String> = claims.role.iter().cloned().collect();
        roles.extend(claims.roles.iter().flatten().cloned());
        Ok(Identity {
            name: claims.display_name().to_owned(),
            id: claims.sub,
            roles,
        })
    }

    /// Forgets clients whose buckets are full again (called from a worker's tick).
    pub fn prune(&self, mono_ms: u64) {
        self.ip_rate.prune(mono_ms);
    }
}

/// Where a development-mode identity comes from: a query parameter and its rule.
#[derive(Debug, Clone, Copy)]
pub struct DevIdentity<'a> {
    /// The query parameter.
    pub param: &'a str,
    /// What a valid value is, and the text saying so.
    pub valid: fn(&str) -> bool,
    /// The rule in words (for the 400).
    pub rule: &'static str,
}

impl DevIdentity<'_> {
    /// `/ws`: `?username=`, 1-64 of `A-Z a-z 0-9 . _ -`.
    pub const CHAT: DevIdentity<'static> = DevIdentity {
        param: "username",
        valid: is_dev_username,
        rule: "1-64 of A-Z a-z 0-9 . _ -",
    };
}

fn dev_identity(head: &RequestHead<'_>, dev: DevIdentity<'_>) -> Result<Identity, Refusal> {
    let p = dev.param;
    let name = query_param(head.target.as_bytes(), p)
        .map_err(|_| Refusal::BadRequest(format!("invalid {p}: bad query encoding")))?
        .ok_or_else(|| Refusal::BadRequest(format!("missing {p}")))?;
    if !(dev.valid)(&name) {
        return Err(Refusal::BadRequest(format!("invalid {p}: {}", dev.rule)));
    }
    Ok(Identity {
        id: name.clone().into_owned(),
        name: name.into_owned(),
        roles: Vec::new(),
    })
}

/// Signs a token for `corecast token`.
pub fn sign_token(
    secret: &str,
    sub: &str,
    name: Option<&str>,
    roles: &[String],
    exp: u64,
) -> Result<String, String> {
    jwt::check_sub(sub).map_err(|e| format!("--sub: {e}"))?;
    if let Some(r) = roles
        .iter()
        .find(|r| crate::config::gateway::check_role(r).is_err())
    {
        return Err(format!(
            "--role {r:?}: 1-128 bytes without control characters"
        ));
    }
    let mut claims = jwt::Claims::new(sub, exp);
    claims.name = name.map(str::to_owned);
    match roles {
        [] => {}
        [one] => claims.role = Some(one.clone()),
        many => claims.roles = Some(many.to_vec()),
    }
    Ok(jwt::sign(secret.as_bytes(), &claims))
}
