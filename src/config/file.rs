//! Reading a `--config` file: TOML text into the flag settings it makes (each as the text the
//! flag itself would take, with its line) and the gateway tables, typed. Every refusal is a
//! [`FileError`]: one line naming the file, the line (from toml's byte spans) and the key.
//!
//! Knows the flags only through [`flags::FILE_KEYS`]: each flag's value parser runs later, in
//! `config::load`, which also merges the file under the command line and the environment.
//! No IO except in [`ConfigFile::read`].

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::flags::{self, FileKind};
use super::gateway::{self, AmqpConfig, DataEncoding, EndpointConfig, Identity};
use super::{Config, Secret};

/// Largest configuration file read, bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Keys of `[amqp]`.
pub const AMQP_KEYS: &[&str] = &[
    "url",
    "exchange",
    "bind",
    "owner_field",
    "data_encoding",
    "prefetch",
    "store_offline",
    "dead_letter_exchange",
];

/// Keys of each `[[endpoint]]`.
pub const ENDPOINT_KEYS: &[&str] = &["path", "identity", "roles", "upstream", "lifecycle"];

/// A configuration file, read and checked value by value.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The path as given, for messages.
    path: String,
    /// The flags it sets, in file order.
    pub settings: Vec<FileSetting>,
    amqp: Option<AmqpDraft>,
    endpoints: Vec<EndpointDraft>,
}

/// One flag set by the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetting {
    /// The flag's long name (`history`).
    pub key: String,
    /// The value as the flag takes it on the command line (`200`, `10m`, `a,b`).
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// `[amqp]`, and where to point when a flag makes it wrong.
#[derive(Debug, Clone)]
struct AmqpDraft {
    config: AmqpConfig,
    /// Line of the `[amqp]` header (or of its first dotted key).
    line: usize,
    /// Line of `store_offline = true`, if so.
    store_offline_line: Option<usize>,
}

/// One `[[endpoint]]` before the flags are known (the default identity depends on them).
#[derive(Debug, Clone)]
struct EndpointDraft {
    path: String,
    /// The identity as written, with its line.
    identity: Option<(Identity, usize)>,
    roles: Vec<String>,
    upstream: Vec<String>,
    lifecycle: bool,
    /// Line of the `[[endpoint]]` header (or inline table).
    line: usize,
}

/// Why a configuration file was refused: `FILE[:LINE[:COLUMN]][: KEY]: WHAT`, one line
/// (control characters anywhere are escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct FileError {
    /// The file, as given.
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (characters), for syntax errors.
    pub column: Option<usize>,
    /// The key, dotted with 0-based indices: `history`, `amqp.url`, `endpoint[1].upstream[0]`.
    pub key: Option<String>,
    /// What is wrong.
    pub kind: FileErrorKind,
}

/// What is wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileErrorKind {
    /// It could not be opened or read.
    #[error("cannot read: {0}")]
    Read(String),
    /// Over [`MAX_FILE_BYTES`].
    #[error("larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    /// Not UTF-8 (TOML is).
    #[error("not UTF-8")]
    NotUtf8,
    /// Not TOML (the parser's message).
    #[error("{0}")]
    Syntax(String),
    /// A key that is not a setting; with a hint when one is close.
    #[error("unknown key{}", .0.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Unknown(Option<String>),
    /// A value of the wrong TOML type.
    #[error("expected {expected}, found {found}")]
    Type {
        /// What the key takes (`an integer`).
        expected: &'static str,
        /// What was written (`a string`).
        found: &'static str,
    },
    /// A required key is absent.
    #[error("missing (required)")]
    Missing,
    /// A value or setting refused by its parser or by validation.
    #[error("{0}")]
    Invalid(String),
}

impl FileError {
    fn render(&self) -> String {
        let mut s = self.path.clone();
        if let Some(line) = self.line {
            s.push_str(&format!(":{line}"));
            if let Some(col) = self.column {
                s.push_str(&format!(":{col}"));
            }
        }
        if let Some(key) = &self.key {
            s.push_str(": ");
            s.push_str(key);
        }
        s.push_str(": ");
        s.push_str(&self.kind.to_string());
        one_line(&s)
    }

    /// An error about the whole file (reading it).
    fn file(path: &Path, kind: FileErrorKind) -> Self {
        Self {
            path: path.display().to_string(),
            line: None,
            column: None,
            key: None,
            kind,
        }
    }
}

/// `s` with control characters escaped (`\n`, `\u{1b}`), so that it is one line.
pub fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A key as it would be written in TOML: bare when it can be, else quoted and escaped.
fn key_name(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        k.to_owned()
    } else {
        format!("{k:?}")
    }
}

/// A close known key: the same up to case and `-`/`_`, or with a plural `s`.
fn hint(key: &str, known: &[&str]) -> Option<String> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let k = norm(key);
    known
        .iter()
        .find(|w| {
            let w = norm(w);
            w == k || format!("{w}s") == k
        })
        .map(|w| format!("did you mean {w}?"))
}

/// True for a string of ASCII digits whose value is beyond a TOML integer (`i64::MAX`).
pub fn is_beyond_i64(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<i64>().is_err()
}

/// The TOML type of a value, for messages.
fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

type Item<'a, 'i> = (
    &'a Spanned<std::borrow::Cow<'i, str>>,
    &'a Spanned<DeValue<'i>>,
);

/// A table's entries in file order (toml keeps them sorted by name).
fn in_file_order<'a, 'i>(t: &'a DeTable<'i>) -> Vec<Item<'a, 'i>> {
    let mut v: Vec<Item<'a, 'i>> = t.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

/// The text being read, for locations.
struct Doc<'a> {
    path: &'a str,
    text: &'a str,
}

impl Doc<'_> {
    /// 1-based line and column (in characters) of byte `offset`.
    fn position(&self, offset: usize) -> (usize, usize) {
        let bytes = self.text.as_bytes();
        let offset = offset.min(bytes.len());
        let before = &bytes[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
        (line, col)
    }

    fn line(&self, span: &Range<usize>) -> usize {
        self.position(span.start).0
    }

    fn err(&self, span: &Range<usize>, key: &str, kind: FileErrorKind) -> FileError {
        FileError {
            path: self.path.to_owned(),
            line: Some(self.line(span)),
            column: None,
            key: Some(key.to_owned()),
            kind,
        }
    }

    fn invalid(&self, span: &Range<usize>, key: &str, msg: impl Into<String>) -> FileError {
        self.err(span, key, FileErrorKind::Invalid(msg.into()))
    }

    fn wrong_type(&self, v: &Spanned<DeValue<'_>>, key: &str, expected: &'static str) -> FileError {
        self.err(
            &v.span(),
            key,
            FileErrorKind::Type {
                expected,
                found: type_name(v.get_ref()),
            },
        )
    }

    fn string<'v>(&self, v: &'v Spanned<DeValue<'_>>, key: &str) -> Result<&'v str, FileError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s),
            _ => Err(self.wrong_type(v, key, "a string")),
        }
    }

    fn integer(&self, v: &Spanned<DeValue<'_>>, key: &str) -> Result<i64, FileError> {
        match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.invalid(&v.span(), key, "integer out of range")),
            _ => Err(self.wrong_type(v, key, "an integer")),
        }
    }

    fn boolean(&self, v: &Spanned<DeValue<'_>>, key: &str) -> Result<bool, FileError> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type(v, key, "a boolean (true or false)")),
        }
    }

    /// An array of strings, each with its span.
    fn strings(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &str,
    ) -> Result<Vec<(String, Range<usize>)>, FileError> {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(v, key, "an array of strings"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let s = self.string(item, &format!("{key}[{i}]"))?;
                Ok((s.to_owned(), item.span()))
            })
            .collect()
    }

    /// An array of topic patterns ([`gateway::check_topic_pattern`]).
    fn patterns(&self, v: &Spanned<DeValue<'_>>, key: &str) -> Result<Vec<String>, FileError> {
        let items = self.strings(v, key)?;
        for (i, (s, span)) in items.iter().enumerate() {
            gateway::check_topic_pattern(s)
                .map_err(|e| self.invalid(span, &format!("{key}[{i}]"), e))?;
        }
        Ok(items.into_iter().map(|(s, _)| s).collect())
    }

    fn unknown(
        &self,
        k: &Spanned<std::borrow::Cow<'_, str>>,
        prefix: &str,
        known: &[&str],
    ) -> FileError {
        let name = key_name(k.get_ref());
        self.err(
            &k.span(),
            &format!("{prefix}{name}"),
            FileErrorKind::Unknown(hint(k.get_ref(), known)),
        )
    }
}

impl ConfigFile {
    /// Reads and checks the file at `path` (at most [`MAX_FILE_BYTES`]).
    pub fn read(path: &Path) -> Result<Self, FileError> {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
            .map_err(|e| FileError::file(path, FileErrorKind::Read(e.to_string())))?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(FileError::file(path, FileErrorKind::TooLarge));
        }
        Self::parse(path, &bytes)
    }

    /// Checks `bytes`, the contents of the file at `path` (named in errors only).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, FileError> {
        let path_s = path.display().to_string();
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let lossy = String::from_utf8_lossy(&bytes[..e.valid_up_to()]);
                let doc = Doc {
                    path: &path_s,
                    text: &lossy,
                };
                let (line, col) = doc.position(lossy.len());
                return Err(FileError {
                    path: path_s,
                    line: Some(line),
                    column: Some(col),
                    key: None,
                    kind: FileErrorKind::NotUtf8,
                });
            }
        };
        let doc = Doc {
            path: &path_s,
            text,
        };
        let root = DeTable::parse(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| doc.position(s.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            FileError {
                path: path_s.clone(),
                line,
                column,
                key: None,
                kind: FileErrorKind::Syntax(e.message().to_owned()),
            }
        })?;
        let mut file = ConfigFile {
            path: path_s.clone(),
            settings: Vec::new(),
            amqp: None,
            endpoints: Vec::new(),
        };
        let known: Vec<&str> = flags::FILE_KEYS
            .iter()
            .map(|(k, _)| *k)
            .chain(["amqp", "endpoint"])
            .collect();
        for (k, v) in in_file_order(root.get_ref()) {
            match k.get_ref().as_ref() {
                "amqp" => {
                    let DeValue::Table(t) = v.get_ref() else {
                        return Err(doc.wrong_type(v, "amqp", "a table ([amqp])"));
                    };
                    file.amqp = Some(doc.amqp(t, &v.span())?);
                }
                "endpoint" => {
                    let DeValue::Array(items) = v.get_ref() else {
                        return Err(doc.wrong_type(
                            v,
                            "endpoint",
                            "an array of tables ([[endpoint]])",
                        ));
                    };
                    for (i, item) in items.iter().enumerate() {
                        let key = format!("endpoint[{i}]");
                        let DeValue::Table(t) = item.get_ref() else {
                            return Err(doc.wrong_type(item, &key, "a table"));
                        };
                        let e = doc.endpoint(t, &item.span(), &key)?;
                        if let Some(j) = file.endpoints.iter().position(|o| o.path == e.path) {
                            let span = t.get("path").map_or(item.span(), Spanned::span);
                            return Err(doc.invalid(
                                &span,
                                &format!("{key}.path"),
                                format!("{:?} is also endpoint[{j}]'s path", e.path),
                            ));
                        }
                        file.endpoints.push(e);
                    }
                }
                name => {
                    let Some(kind) = flags::file_kind(name) else {
                        let mut e = doc.unknown(k, "", &known);
                        if matches!(name, "config" | "print-config") {
                            e.kind = FileErrorKind::Unknown(Some(
                                "a command-line setting, not a file one".into(),
                            ));
                        }
                        return Err(e);
                    };
                    let value = doc.flag_value(v, name, kind)?;
                    file.settings.push(FileSetting {
                        key: name.to_owned(),
                        value,
                        line: doc.line(&k.span()),
                    });
                }
            }
        }
        Ok(file)
    }

    /// The path as given, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The error `msg` pinned on setting `i` (its line and key).
    pub fn setting_error(&self, i: usize, msg: String) -> FileError {
        FileError {
            path: self.path.clone(),
            line: self.settings.get(i).map(|s| s.line),
            column: None,
            key: self.settings.get(i).map(|s| s.key.clone()),
            kind: FileErrorKind::Invalid(msg),
        }
    }

    /// The gateway configuration, once the flags are known (`flags`: the configuration without
    /// it): with `--jwt-secret`, identities default to, and become, [`Identity::Jwt`] (`"jwt"`
    /// needs it); `store_offline` needs `--redis-url`; endpoints need `[amqp]`; and the bridge
    /// must take the result for this node ([`AmqpConfig::to_bridge`], checked as a last
    /// guard: every value passed the bridge's rules already).
    pub fn gateway(
        &self,
        flags: &Config,
    ) -> Result<(Option<AmqpConfig>, Vec<EndpointConfig>), FileError> {
        let (jwt, redis) = (flags.jwt_secret.is_some(), flags.redis_url.is_some());
        let at = |line: usize, key: String, kind: FileErrorKind| FileError {
            path: self.path.clone(),
            line: Some(line),
            column: None,
            key: Some(key),
            kind,
        };
        if let Some(a) = &self.amqp {
            if let Err(e) = a.config.to_bridge(&flags.node_id).validate() {
                return Err(at(
                    a.line,
                    "amqp".into(),
                    FileErrorKind::Invalid(e.to_string()),
                ));
            }
            if let (Some(line), false) = (a.store_offline_line, redis) {
                return Err(at(
                    line,
                    "amqp.store_offline".into(),
                    FileErrorKind::Invalid(
                        "needs --redis-url (stored notifications live in Redis)".into(),
                    ),
                ));
            }
        }
        let mut endpoints = Vec::with_capacity(self.endpoints.len());
        for (i, e) in self.endpoints.iter().enumerate() {
            if self.amqp.is_none() {
                return Err(at(
                    e.line,
                    format!("endpoint[{i}]"),
                    FileErrorKind::Invalid("gateway endpoints need an [amqp] table".into()),
                ));
            }
            let identity =
                match (&e.identity, jwt) {
                    (Some(_), true) | (None, true) => Identity::Jwt,
                    (Some((Identity::Jwt, line)), false) => {
                        return Err(at(
                            *line,
                            format!("endpoint[{i}].identity"),
                            FileErrorKind::Invalid("\"jwt\" needs --jwt-secret".into()),
                        ))
                    }
                    (Some((q, _)), false) => q.clone(),
                    (None, false) => return Err(at(
                        e.line,
                        format!("endpoint[{i}].identity"),
                        FileErrorKind::Invalid(
                            "required without --jwt-secret (\"query:NAME\"), or set --jwt-secret"
                                .into(),
                        ),
                    )),
                };
            let ignored_param = match (&e.identity, jwt) {
                (Some((Identity::Query(p), _)), true) => Some(p.clone()),
                _ => None,
            };
            endpoints.push(EndpointConfig {
                path: e.path.clone(),
                identity,
                ignored_param,
                roles: e.roles.clone(),
                upstream: e.upstream.clone(),
                lifecycle: e.lifecycle,
            });
        }
        Ok((self.amqp.as_ref().map(|a| a.config.clone()), endpoints))
    }
}

impl Doc<'_> {
    /// A flag's value as the text the flag takes.
    fn flag_value(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &str,
        kind: FileKind,
    ) -> Result<String, FileError> {
        match (kind, v.get_ref()) {
            (FileKind::Str | FileKind::Size | FileKind::List, DeValue::String(s)) => {
                Ok(s.to_string())
            }
            (FileKind::Str, _) => Err(self.wrong_type(v, key, "a string")),
            (FileKind::Int | FileKind::Size, DeValue::Integer(_)) => {
                Ok(self.integer(v, key)?.to_string())
            }
            // TOML integers stop at i64::MAX; a larger count (a usize flag can hold one) is
            // written as a string of digits, as --print-config writes it.
            (FileKind::Int, DeValue::String(s)) if is_beyond_i64(s) => Ok(s.to_string()),
            (FileKind::Int, _) => Err(self.wrong_type(v, key, "an integer")),
            (FileKind::Size, _) => {
                Err(self.wrong_type(v, key, "an integer (bytes) or a string such as \"16MiB\""))
            }
            (FileKind::Duration, DeValue::String(s)) => Ok(s.to_string()),
            (FileKind::Duration, _) => {
                Err(self.wrong_type(v, key, "a string such as \"30s\" or \"10m\""))
            }
            (FileKind::List, DeValue::Array(_)) => {
                let items = self.strings(v, key)?;
                for (i, (s, span)) in items.iter().enumerate() {
                    if s.trim().is_empty() || s.contains(',') {
                        return Err(self.invalid(
                            span,
                            &format!("{key}[{i}]"),
                            "an entry must be non-empty and hold no comma",
                        ));
                    }
                }
                Ok(items
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect::<Vec<_>>()
                    .join(","))
            }
            (FileKind::List, _) => {
                Err(self.wrong_type(v, key, "an array of strings or a comma-separated string"))
            }
        }
    }

    /// `[amqp]`.
    fn amqp(&self, t: &DeTable<'_>, span: &Range<usize>) -> Result<AmqpDraft, FileError> {
        let (mut url, mut exchange, mut bind) = (None, None, Vec::new());
        let mut owner_field = gateway::DEFAULT_OWNER_FIELD.to_owned();
        let mut data_encoding = DataEncoding::Json;
        let mut prefetch = gateway::DEFAULT_PREFETCH;
        let (mut store_offline, mut store_offline_line) = (false, None);
        let mut dead_letter_exchange = None;
        for (k, v) in in_file_order(t) {
            let key = format!("amqp.{}", key_name(k.get_ref()));
            let vs = v.span();
            match k.get_ref().as_ref() {
                "url" => {
                    let s = self.string(v, &key)?;
                    gateway::check_amqp_url(s).map_err(|e| self.invalid(&vs, &key, e))?;
                    url = Some(Secret(s.to_owned()));
                }
                "exchange" => {
                    let s = self.string(v, &key)?;
                    gateway::check_exchange(s).map_err(|e| self.invalid(&vs, &key, e))?;
                    exchange = Some(s.to_owned());
                }
                "bind" => bind = self.patterns(v, &key)?,
                "owner_field" => {
                    let s = self.string(v, &key)?;
                    gateway::check_owner_field(s).map_err(|e| self.invalid(&vs, &key, e))?;
                    s.clone_into(&mut owner_field);
                }
                "data_encoding" => {
                    data_encoding = gateway::parse_data_encoding(self.string(v, &key)?)
                        .map_err(|e| self.invalid(&vs, &key, e))?;
                }
                "prefetch" => {
                    prefetch = u16::try_from(self.integer(v, &key)?)
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| self.invalid(&vs, &key, "must be between 1 and 65535"))?;
                }
                "store_offline" => {
                    store_offline = self.boolean(v, &key)?;
                    store_offline_line = store_offline.then(|| self.line(&k.span()));
                }
                "dead_letter_exchange" => {
                    let s = self.string(v, &key)?;
                    gateway::check_dead_letter_exchange(s)
                        .map_err(|e| self.invalid(&vs, &key, e))?;
                    dead_letter_exchange = Some(s.to_owned());
                }
                _ => return Err(self.unknown(k, "amqp.", AMQP_KEYS)),
            }
        }
        let url = url.ok_or_else(|| self.err(span, "amqp.url", FileErrorKind::Missing))?;
        let exchange =
            exchange.ok_or_else(|| self.err(span, "amqp.exchange", FileErrorKind::Missing))?;
        Ok(AmqpDraft {
            config: AmqpConfig {
                url,
                exchange,
                bind,
                owner_field,
                data_encoding,
                prefetch,
                store_offline,
                dead_letter_exchange,
            },
            line: self.line(span),
            store_offline_line,
        })
    }

    /// One `[[endpoint]]`, named `prefix` (`endpoint[1]`) in messages.
    fn endpoint(
        &self,
        t: &DeTable<'_>,
        span: &Range<usize>,
        prefix: &str,
    ) -> Result<EndpointDraft, FileError> {
        let mut e = EndpointDraft {
            path: String::new(),
            identity: None,
            roles: Vec::new(),
            upstream: Vec::new(),
            lifecycle: false,
            line: self.line(span),
        };
        let mut path = None;
        for (k, v) in in_file_order(t) {
            let key = format!("{prefix}.{}", key_name(k.get_ref()));
            let vs = v.span();
            match k.get_ref().as_ref() {
                "path" => {
                    let s = self.string(v, &key)?;
                    gateway::check_endpoint_path(s).map_err(|e| self.invalid(&vs, &key, e))?;
                    path = Some(s.to_owned());
                }
                "identity" => {
                    let id = Identity::parse(self.string(v, &key)?)
                        .map_err(|e| self.invalid(&vs, &key, e))?;
                    e.identity = Some((id, self.line(&k.span())));
                }
                "roles" => {
                    e.roles = Vec::new();
                    for (i, (role, rs)) in self.strings(v, &key)?.into_iter().enumerate() {
                        gateway::check_role(&role)
                            .map_err(|m| self.invalid(&rs, &format!("{key}[{i}]"), m))?;
                        e.roles.push(role);
                    }
                }
                "upstream" => e.upstream = self.patterns(v, &key)?,
                "lifecycle" => e.lifecycle = self.boolean(v, &key)?,
                _ => return Err(self.unknown(k, &format!("{prefix}."), ENDPOINT_KEYS)),
            }
        }
        e.path =
            path.ok_or_else(|| self.err(span, &format!("{prefix}.path"), FileErrorKind::Missing))?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, FileError> {
        ConfigFile::parse(Path::new("/etc/corecast.toml"), text.as_bytes())
    }

    /// The one-line message for `text`, which must be refused.
    fn err(text: &str) -> String {
        let e = parse(text).expect_err(text).to_string();
        assert!(!e.contains('\n'), "{e:?}");
        e
    }

    const AMQP: &str = "[amqp]\nurl = \"amqp://h\"\nexchange = \"trip\"\n";

    /// The flags' part of a configuration: with a JWT secret, with a Redis URL.
    fn flags(jwt: bool, redis: bool) -> Config {
        Config {
            jwt_secret: jwt.then(|| Secret("s".into())),
            redis_url: redis.then(|| Secret("redis://h".into())),
            ..Config::default()
        }
    }

    #[test]
    fn reads_flags_in_their_file_forms() {
        let f = parse(
            "listen = \"0.0.0.0:8080\"\nhistory = 200\nmax-frame = \"16MiB\"\n\
             max-message = 1024\nroom-ttl = \"10m\"\n\
             allowed-origins = [\"https://a\", \"https://b\"]\ntrusted-proxies = \"10.0.0.1, 10.0.0.2\"\n\
             backlog = -1\nworkers = 0x10\n",
        )
        .unwrap();
        let got: Vec<(&str, &str, usize)> = f
            .settings
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str(), s.line))
            .collect();
        assert_eq!(
            got,
            [
                ("listen", "0.0.0.0:8080", 1),
                ("history", "200", 2),
                ("max-frame", "16MiB", 3),
                ("max-message", "1024", 4),
                ("room-ttl", "10m", 5),
                ("allowed-origins", "https://a,https://b", 6),
                ("trusted-proxies", "10.0.0.1, 10.0.0.2", 7),
                ("backlog", "-1", 8),
                ("workers", "16", 9),
            ]
        );
        assert!(parse("").unwrap().settings.is_empty());
        assert!(parse("# nothing\n\n").unwrap().settings.is_empty());
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        assert_eq!(
            err("history = 1\nhistory = 2\n"),
            "/etc/corecast.toml:2:1: duplicate key"
        );
        assert_eq!(
            err("a = 1\nb = \n"),
            "/etc/corecast.toml:2:5: string values must be quoted, expected literal string"
        );
        assert_eq!(
            err("\n\nlisten = \"abc"),
            "/etc/corecast.toml:3:14: invalid basic string, expected `\"`"
        );
        // Columns count characters, not bytes.
        assert!(err("# é\nx = \"é\" é").starts_with("/etc/corecast.toml:2:9: "));
        let deep = format!("history = {}{}", "[".repeat(200), "]".repeat(200));
        assert!(err(&deep).starts_with("/etc/corecast.toml:1:"), "{deep}");
    }

    #[test]
    fn not_utf8_names_the_line() {
        let e = ConfigFile::parse(Path::new("c.toml"), b"a = 1\n\nb = \"\xff\"").unwrap_err();
        assert_eq!(e.to_string(), "c.toml:3:6: not UTF-8");
        assert_eq!(e.kind, FileErrorKind::NotUtf8);
    }

    #[test]
    fn unknown_keys_anywhere() {
        assert_eq!(
            err("\nhistroy = 1"),
            "/etc/corecast.toml:2: histroy: unknown key"
        );
        assert_eq!(
            err("max_rooms = 1"),
            "/etc/corecast.toml:1: max_rooms: unknown key (did you mean max-rooms?)"
        );
        assert_eq!(
            err("[endpoints]"),
            "/etc/corecast.toml:1: endpoints: unknown key (did you mean endpoint?)"
        );
        assert_eq!(
            err("config = \"other.toml\""),
            "/etc/corecast.toml:1: config: unknown key (a command-line setting, not a file one)"
        );
        assert_eq!(
            err("print-config = true"),
            "/etc/corecast.toml:1: print-config: unknown key (a command-line setting, not a file one)"
        );
        assert_eq!(
            err(&format!("{AMQP}Prefetch = 1")),
            "/etc/corecast.toml:4: amqp.Prefetch: unknown key (did you mean prefetch?)"
        );
        assert_eq!(
            err(&format!(
                "{AMQP}[[endpoint]]\npath = \"/a\"\n[[endpoint]]\npath = \"/b\"\n\"two words\" = 1"
            )),
            "/etc/corecast.toml:8: endpoint[1].\"two words\": unknown key"
        );
        assert_eq!(
            err("listen.port = 1"),
            "/etc/corecast.toml:1: listen: expected a string, found a table"
        );
        // Control characters in a key are escaped: the message stays one line.
        assert_eq!(
            err("\"a\\nb\" = 1"),
            "/etc/corecast.toml:1: \"a\\nb\": unknown key"
        );
    }

    #[test]
    fn wrong_types() {
        for (text, want) in [
            ("history = \"200\"", "history: expected an integer, found a string"),
            ("history = 1.5", "history: expected an integer, found a float"),
            ("listen = 8080", "listen: expected a string, found an integer"),
            (
                "room-ttl = 600",
                "room-ttl: expected a string such as \"30s\" or \"10m\", found an integer",
            ),
            (
                "max-frame = true",
                "max-frame: expected an integer (bytes) or a string such as \"16MiB\", found a boolean",
            ),
            (
                "allowed-origins = 1979-05-27",
                "allowed-origins: expected an array of strings or a comma-separated string, found a date-time",
            ),
            (
                "allowed-origins = [\"https://a\", 2]",
                "allowed-origins[1]: expected a string, found an integer",
            ),
            ("amqp = 1", "amqp: expected a table ([amqp]), found an integer"),
            (
                "[endpoint]\npath = \"/x\"",
                "endpoint: expected an array of tables ([[endpoint]]), found a table",
            ),
            ("endpoint = [1]", "endpoint[0]: expected a table, found an integer"),
        ] {
            assert_eq!(err(text), format!("/etc/corecast.toml:1: {want}"), "{text}");
        }
        for (line, want) in [
            (
                "prefetch = \"5\"",
                "amqp.prefetch: expected an integer, found a string",
            ),
            (
                "store_offline = \"yes\"",
                "amqp.store_offline: expected a boolean (true or false), found a string",
            ),
            (
                "bind = \"a.b\"",
                "amqp.bind: expected an array of strings, found a string",
            ),
            (
                "bind = [[\"a\"]]",
                "amqp.bind[0]: expected a string, found an array",
            ),
        ] {
            assert_eq!(
                err(&format!("{AMQP}{line}")),
                format!("/etc/corecast.toml:4: {want}"),
                "{line}"
            );
        }
        assert_eq!(
            err("history = 9223372036854775808"),
            "/etc/corecast.toml:1: history: integer out of range"
        );
        // Beyond TOML's integers, a count is a string of digits; only then.
        let f = parse("presence-max-members = \"18446744073709551615\"").unwrap();
        assert_eq!(f.settings[0].value, "18446744073709551615");
        assert_eq!(
            err("presence-max-members = \"9223372036854775807\""),
            "/etc/corecast.toml:1: presence-max-members: expected an integer, found a string"
        );
    }

    #[test]
    fn list_entries_are_single_entries() {
        assert_eq!(
            err("trusted-proxies = [\"10.0.0.1\",\n \"10.0.0.2,10.0.0.3\"]"),
            "/etc/corecast.toml:2: trusted-proxies[1]: an entry must be non-empty and hold no comma"
        );
        assert_eq!(
            err("allowed-origins = [\" \"]"),
            "/etc/corecast.toml:1: allowed-origins[0]: an entry must be non-empty and hold no comma"
        );
        let f = parse("trusted-proxies = []").unwrap();
        assert_eq!(f.settings[0].value, "");
    }

    #[test]
    fn amqp_values() {
        for (line, want) in [
            (
                "bind = [\"ok\", \"a..b\"]",
                "amqp.bind[1]: empty word in topic pattern \"a..b\" (a dot at an end, or two dots)",
            ),
            ("bind = [\"\"]", "amqp.bind[0]: empty topic pattern"),
            (
                "bind = [\"trip*\"]",
                "amqp.bind[0]: `*` and `#` must be whole words in topic pattern \"trip*\"",
            ),
            ("prefetch = 0", "amqp.prefetch: must be between 1 and 65535"),
            (
                "prefetch = 65536",
                "amqp.prefetch: must be between 1 and 65535",
            ),
            (
                "data_encoding = \"hex\"",
                "amqp.data_encoding: expected \"json\" or \"base64\", got \"hex\"",
            ),
            (
                "owner_field = \"\"",
                "amqp.owner_field: must be 1-255 bytes without control characters",
            ),
            (
                "dead_letter_exchange = \"amq.direct\"",
                "amqp.dead_letter_exchange: exchange name \"amq.direct\": amq.* names are reserved",
            ),
            (
                "dead_letter_exchange = 1",
                "amqp.dead_letter_exchange: expected a string, found an integer",
            ),
        ] {
            assert_eq!(
                err(&format!("{AMQP}{line}")),
                format!("/etc/corecast.toml:4: {want}"),
                "{line}"
            );
        }
        let long = "a".repeat(256);
        assert_eq!(
            err(&format!("{AMQP}bind = [\n\"{long}\"]")),
            "/etc/corecast.toml:5: amqp.bind[0]: topic pattern is 256 bytes, over AMQP's 255"
        );
        assert_eq!(
            err("[amqp]\nurl = \"amqps://h\"\nexchange = \"x\""),
            "/etc/corecast.toml:2: amqp.url: amqps:// (TLS) is not supported yet: use amqp:// on a \
             trusted network, or a local TLS tunnel to the broker"
        );
        assert_eq!(
            err("[amqp]\nurl = \"redis://h\"\nexchange = \"x\""),
            "/etc/corecast.toml:2: amqp.url: invalid amqp url: Invalid AMQP scheme: redis"
        );
        assert_eq!(
            err("\n[amqp]\nurl = \"amqp://h\""),
            "/etc/corecast.toml:2: amqp.exchange: missing (required)"
        );
        assert_eq!(
            err("[amqp]\nexchange = \"x\""),
            "/etc/corecast.toml:1: amqp.url: missing (required)"
        );
        assert_eq!(
            err("[amqp]\nurl = \"amqp://h\"\nexchange = \"amq.topic\""),
            "/etc/corecast.toml:3: amqp.exchange: exchange name \"amq.topic\": amq.* names are reserved"
        );
    }

    #[test]
    fn endpoint_values() {
        let ep = |body: &str| format!("{AMQP}[[endpoint]]\n{body}");
        for (body, want) in [
            ("path = \"ws\"", "endpoint[0].path: \"ws\" must start with /"),
            ("path = \"/ws\"", "endpoint[0].path: \"/ws\" is one of corecast's own routes"),
            ("path = \"/api/x\"", "endpoint[0].path: \"/api/x\" is one of corecast's own routes"),
            (
                "path = \"/a?b=1\"",
                "endpoint[0].path: \"/a?b=1\" holds '?': a path is printable ASCII without space, query or fragment",
            ),
            ("path = \"/a\"\nidentity = \"sub\"", "endpoint[0].identity: expected \"jwt\" or \"query:NAME\", got \"sub\""),
            ("path = \"/a\"\nroles = [\"\"]", "endpoint[0].roles[0]: a role must be 1-128 bytes without control characters"),
            ("path = \"/a\"\nupstream = [\"a.#x\"]", "endpoint[0].upstream[0]: `*` and `#` must be whole words in topic pattern \"a.#x\""),
            ("path = \"/a\"\nlifecycle = 1", "endpoint[0].lifecycle: expected a boolean (true or false), found an integer"),
        ] {
            let e = err(&ep(body));
            let line = 4 + body.lines().count();
            assert_eq!(e, format!("/etc/corecast.toml:{line}: {want}"), "{body}");
        }
        assert_eq!(
            err(&ep("identity = \"jwt\"")),
            "/etc/corecast.toml:4: endpoint[0].path: missing (required)"
        );
        assert_eq!(
            err(&format!(
                "{AMQP}[[endpoint]]\npath = \"/x\"\n\n[[endpoint]]\npath = \"/y\"\n[[endpoint]]\npath = \"/x\""
            )),
            "/etc/corecast.toml:10: endpoint[2].path: \"/x\" is also endpoint[0]'s path"
        );
        // Inline tables are tables too (before [amqp]: after it, the key would be amqp's).
        let f = parse(&format!(
            "endpoint = [{{path = \"/x\", identity = \"jwt\"}}]\n{AMQP}"
        ))
        .unwrap();
        assert_eq!(f.gateway(&flags(true, false)).unwrap().1[0].path, "/x");
        assert_eq!(
            err(&format!("{AMQP}endpoint = [{{path = \"/x\"}}]")),
            "/etc/corecast.toml:4: amqp.endpoint: unknown key"
        );
    }

    #[test]
    fn gateway_needs_the_flags_it_names() {
        let ride = "[amqp]\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\nexchange = \"trip\"\n\
                    bind = [\"driver.cmd.trip_request\", \"trip.event.*\"]\nowner_field = \"ownerId\"\n\
                    data_encoding = \"base64\"\nprefetch = 1000\n\n\
                    [[endpoint]]\npath = \"/ws/drivers\"\nidentity = \"query:userID\"\nroles = [\"driver\"]\n\
                    upstream = [\"driver.cmd.trip_accept\", \"driver.cmd.trip_decline\"]\nlifecycle = true\n\n\
                    [[endpoint]]\npath = \"/ws/riders\"\nidentity = \"query:userID\"\nupstream = []\n";
        let f = parse(ride).unwrap();
        let (amqp, eps) = f.gateway(&flags(false, false)).unwrap();
        let amqp = amqp.unwrap();
        assert_eq!(amqp.url.0, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(amqp.exchange, "trip");
        assert_eq!(amqp.bind, ["driver.cmd.trip_request", "trip.event.*"]);
        assert_eq!(amqp.data_encoding, DataEncoding::Base64);
        assert_eq!((amqp.prefetch, amqp.store_offline), (1000, false));
        assert_eq!(amqp.owner_field, "ownerId");
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].identity, Identity::Query("userID".into()));
        assert_eq!(eps[0].roles, ["driver"]);
        assert_eq!(eps[0].upstream.len(), 2);
        assert!(eps[0].lifecycle);
        assert_eq!(
            (
                eps[1].path.as_str(),
                eps[1].lifecycle,
                eps[1].upstream.len()
            ),
            ("/ws/riders", false, 0)
        );
        // With a secret, every endpoint takes the JWT's sub.
        let (_, eps) = f.gateway(&flags(true, false)).unwrap();
        assert!(eps.iter().all(|e| e.identity == Identity::Jwt));

        // Defaults.
        let f = parse(&format!("{AMQP}[[endpoint]]\npath = \"/e\"")).unwrap();
        let (amqp, eps) = f.gateway(&flags(true, false)).unwrap();
        let amqp = amqp.unwrap();
        assert_eq!(
            (amqp.owner_field.as_str(), amqp.data_encoding, amqp.prefetch),
            ("ownerId", DataEncoding::Json, 1000)
        );
        assert!(amqp.bind.is_empty() && !amqp.store_offline);
        assert_eq!(amqp.dead_letter_exchange, None);
        let dlx = parse(&format!("{AMQP}dead_letter_exchange = \"\""))
            .unwrap()
            .gateway(&flags(false, false))
            .unwrap()
            .0
            .unwrap()
            .dead_letter_exchange;
        assert_eq!(dlx.as_deref(), Some(""), "the default exchange");
        assert_eq!(eps[0].identity, Identity::Jwt);
        assert!(eps[0].roles.is_empty() && eps[0].upstream.is_empty() && !eps[0].lifecycle);
        assert_eq!(
            f.gateway(&flags(false, false)).unwrap_err().to_string(),
            "/etc/corecast.toml:4: endpoint[0].identity: required without --jwt-secret \
             (\"query:NAME\"), or set --jwt-secret"
        );

        let f = parse(&format!(
            "{AMQP}[[endpoint]]\npath = \"/e\"\nidentity = \"jwt\""
        ))
        .unwrap();
        assert_eq!(
            f.gateway(&flags(false, false)).unwrap_err().to_string(),
            "/etc/corecast.toml:6: endpoint[0].identity: \"jwt\" needs --jwt-secret"
        );
        let f = parse(&format!("{AMQP}store_offline = true")).unwrap();
        assert_eq!(
            f.gateway(&flags(false, false)).unwrap_err().to_string(),
            "/etc/corecast.toml:4: amqp.store_offline: needs --redis-url (stored notifications live in Redis)"
        );
        assert!(
            f.gateway(&flags(false, true))
                .unwrap()
                .0
                .unwrap()
                .store_offline
        );
        let f = parse("\n[[endpoint]]\npath = \"/e\"\nidentity = \"query:u\"").unwrap();
        assert_eq!(
            f.gateway(&flags(false, false)).unwrap_err().to_string(),
            "/etc/corecast.toml:2: endpoint[0]: gateway endpoints need an [amqp] table"
        );
        // [amqp] alone is fine.
        assert!(parse(AMQP)
            .unwrap()
            .gateway(&flags(false, false))
            .unwrap()
            .1
            .is_empty());
    }

    #[test]
    fn reading_files() {
        let missing = Path::new("/nonexistent/corecast.toml");
        let e = ConfigFile::read(missing).unwrap_err();
        assert_eq!(e.path, "/nonexistent/corecast.toml");
        assert!(matches!(e.kind, FileErrorKind::Read(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/corecast.toml: cannot read: "),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("corecast-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES + 1]).unwrap();
        assert_eq!(
            ConfigFile::read(&big).unwrap_err().kind,
            FileErrorKind::TooLarge
        );
        let ok = dir.join("ok.toml");
        std::fs::write(&ok, "history = 5\n").unwrap();
        assert_eq!(ConfigFile::read(&ok).unwrap().settings[0].value, "5");
        assert!(matches!(
            ConfigFile::read(&dir).unwrap_err().kind,
            FileErrorKind::Read(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn paths_with_newlines_stay_one_line() {
        let e = ConfigFile::parse(Path::new("a\nb.toml"), b"x = 1").unwrap_err();
        assert_eq!(e.to_string(), "a\\nb.toml:1: x: unknown key");
    }
}
