//! `--redis-url`: `redis://[[user]:password@]host[:port][/db]`. Parsing only; no IO.

/// Where the relay connects and how it logs in.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or address (IPv6 in brackets in the URL, without them here).
    pub host: String,
    /// TCP port. Default: 6379.
    pub port: u16,
    /// ACL user (Redis 6+), with the password.
    pub user: Option<String>,
    /// `AUTH` password.
    pub password: Option<String>,
    /// `SELECT` database. Default: 0.
    pub db: u32,
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)?;
        if self.password.is_some() {
            f.write_str(" (with a password)")?;
        }
        Ok(())
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `redis://`.
    #[error("the url must start with redis://")]
    Scheme,
    /// No host.
    #[error("no host in the url")]
    Host,
    /// A port that is not 1-65535.
    #[error("bad port {0:?}")]
    Port(String),
    /// A database that is not a number.
    #[error("bad database {0:?}")]
    Db(String),
    /// `%XX` that does not decode to UTF-8.
    #[error("bad percent-encoding in the user or password")]
    Encoding,
}

impl RedisUrl {
    /// Parses `s`.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let rest = s.strip_prefix("redis://").ok_or(UrlError::Scheme)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (
                    (!user.is_empty()).then(|| decode(user)).transpose()?,
                    Some(decode(pass)?),
                ),
                // `redis://secret@host`: a bare userinfo is the password (redis-cli's reading).
                None => (None, Some(decode(u)?)),
            },
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or(UrlError::Host)?;
            (h, tail.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::Host);
        }
        let port = match port {
            None => 6379,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| UrlError::Port(p.to_owned()))?,
        };
        let db = match path {
            "" => 0,
            d => d.parse::<u32>().map_err(|_| UrlError::Db(d.to_owned()))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            user,
            password,
            db,
        })
    }
}

fn decode(s: &str) -> Result<String, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(UrlError::Encoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::Encoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::Encoding)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let u = RedisUrl::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.db, u.password),
            ("127.0.0.1", 6380, 2, None)
        );
        let u = RedisUrl::parse("redis://:p%40ss@h").unwrap();
        assert_eq!(
            (u.port, u.password.as_deref(), u.user),
            (6379, Some("p@ss"), None)
        );
        let u = RedisUrl::parse("redis://app:pw@[::1]:7000").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 7000));
        assert_eq!(
            (u.user.as_deref(), u.password.as_deref()),
            (Some("app"), Some("pw"))
        );
        let u = RedisUrl::parse("redis://secret@localhost/").unwrap();
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert!(!format!("{u:?}").contains("secret"));
    }

    #[test]
    fn errors() {
        assert_eq!(RedisUrl::parse("http://h"), Err(UrlError::Scheme));
        assert_eq!(RedisUrl::parse("redis://"), Err(UrlError::Host));
        assert_eq!(
            RedisUrl::parse("redis://h:0"),
            Err(UrlError::Port("0".into()))
        );
        assert_eq!(
            RedisUrl::parse("redis://h:x"),
            Err(UrlError::Port("x".into()))
        );
        assert_eq!(
            RedisUrl::parse("redis://h/x"),
            Err(UrlError::Db("x".into()))
        );
        assert_eq!(RedisUrl::parse("redis://:%zz@h"), Err(UrlError::Encoding));
    }
}
