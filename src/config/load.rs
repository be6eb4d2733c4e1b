//! Where each setting comes from: command line > environment variable > `--config` file >
//! built-in default, and the checks the server runs before it starts.
//!
//! clap does all the flag parsing, environment included: a file value that neither the
//! command line nor the environment gave (`ArgMatches::value_source`) becomes a
//! `--key=value` argument placed before the real ones, after passing that flag's own value
//! parser, so a value is accepted or refused the same way from either place. A setting that
//! only fails the whole-configuration checks ([`check`]) is pinned on the file line that made
//! it fail. Reads the file (through the caller's `read`) and the environment (through clap);
//! nothing else.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, Parser};

use super::file::{one_line, ConfigFile, FileError};
use super::flags::Args;
use super::Config;

/// The command line as parsed with the file merged in, and the configuration it makes.
#[derive(Debug)]
pub struct Loaded<P> {
    /// The parsed command line (file values included, as if they had been flags).
    pub cli: P,
    /// The checked configuration; `None` when the command line does not serve (a subcommand).
    pub config: Option<Config>,
}

/// Why the server cannot start; one line each.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A bad flag or environment variable (clap's first line, without `error: `), or a
    /// `--help` / `--version` request (`use_stderr()` false: print it and exit 0).
    #[error("{}", clap_line(.0))]
    Cli(clap::Error),
    /// A bad configuration file.
    #[error(transparent)]
    File(#[from] FileError),
    /// Settings from the command line or the environment that do not work together.
    #[error("invalid configuration: {}", one_line(.0))]
    Invalid(String),
}

fn clap_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    one_line(first.trim_start_matches("error: "))
}

/// Everything the server checks before it starts, as one line naming the setting:
/// [`Config::validate`], the admission settings (rate limits, `--trusted-proxies`,
/// `--allowed-origins`) and `--redis-url`.
pub fn check(cfg: &Config) -> Result<(), String> {
    cfg.validate().map_err(|e| e.to_string())?;
    crate::apps::chat::admission::Admission::from_config(cfg)?;
    if let Some(url) = &cfg.redis_url {
        crate::relay::RedisUrl::parse(&url.0).map_err(|e| format!("--redis-url: {e}"))?;
    }
    Ok(())
}

/// Parses `argv` (the program name first) as `P`, merges the `--config` file if one is
/// given (read from disk), and builds and checks the configuration when `serving(&cli)`.
/// `args` finds the flattened serving flags in `P`.
pub fn load<P: Parser>(
    argv: Vec<OsString>,
    args: impl Fn(&P) -> &Args,
    serving: impl Fn(&P) -> bool,
) -> Result<Loaded<P>, LoadError> {
    load_with(argv, args, serving, ConfigFile::read)
}

/// [`load`], with the file read by `read` (tests and the fuzz target hand in bytes).
pub fn load_with<P: Parser>(
    argv: Vec<OsString>,
    args: impl Fn(&P) -> &Args,
    serving: impl Fn(&P) -> bool,
    read: impl FnOnce(&Path) -> Result<ConfigFile, FileError>,
) -> Result<Loaded<P>, LoadError> {
    // Built once (clap's checks of the definition run then), cloned for every parse.
    let mut cmd = P::command();
    cmd.build();
    let parse = |argv: Vec<OsString>| -> Result<(P, ArgMatches), LoadError> {
        let matches = cmd
            .clone()
            .try_get_matches_from(argv)
            .map_err(LoadError::Cli)?;
        let cli = P::from_arg_matches(&matches).map_err(LoadError::Cli)?;
        Ok((cli, matches))
    };
    let (cli, matches) = parse(argv.clone())?;
    let Some(path) = args(&cli).config.clone() else {
        let config = if serving(&cli) {
            let config = args(&cli).clone().into_config();
            check(&config).map_err(LoadError::Invalid)?;
            Some(config)
        } else {
            None
        };
        return Ok(Loaded { cli, config });
    };
    let file = read(&path)?;
    let extra = file_args(&cmd, &matches, &file)?;
    // The command line with the first `n` file arguments before the real ones.
    let with = |n: usize| -> Result<P, LoadError> {
        let mut v = Vec::with_capacity(argv.len() + n);
        v.extend(argv.first().cloned());
        v.extend(extra[..n].iter().map(|(_, a)| a.clone()));
        v.extend(argv.iter().skip(1).cloned());
        parse(v).map(|(cli, _)| cli)
    };
    let cli = with(extra.len())?;
    if !serving(&cli) {
        return Ok(Loaded { cli, config: None });
    }
    let mut config = args(&cli).clone().into_config();
    if let Err(msg) = check(&config) {
        return Err(blame(&file, &extra, &msg, |n| {
            with(n).map(|c| check(&args(&c).clone().into_config()))
        }));
    }
    let (amqp, endpoints) = file.gateway(&config)?;
    config.amqp = amqp;
    config.endpoints = endpoints;
    Ok(Loaded {
        cli,
        config: Some(config),
    })
}

/// The file's settings as `--key=value` arguments, with the index of each setting, leaving
/// out those the command line or the environment gave. Every value goes through its flag's
/// own parser first, so that a refusal names the file line.
fn file_args(
    cmd: &Command,
    matches: &ArgMatches,
    file: &ConfigFile,
) -> Result<Vec<(usize, OsString)>, FileError> {
    let mut out = Vec::with_capacity(file.settings.len());
    for (i, s) in file.settings.iter().enumerate() {
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(s.key.as_str()))
        else {
            return Err(file.setting_error(i, "not a flag of this command".into()));
        };
        let flag = OsString::from(format!("--{}={}", s.key, s.value));
        let alone = Command::new("corecast")
            .no_binary_name(true)
            .arg(arg.clone().env(None::<&'static str>));
        if let Err(e) = alone.try_get_matches_from([flag.clone()]) {
            let cause = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_else(|| clap_line(&e));
            let msg = if cause.contains(s.value.as_str()) {
                cause
            } else {
                format!("invalid value {:?}: {cause}", s.value)
            };
            return Err(file.setting_error(i, msg));
        }
        // Checked even when overridden (a file is valid or not whatever the flags say), but
        // only used when neither the command line nor the environment set the flag.
        if !matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            out.push((i, flag));
        }
    }
    Ok(out)
}

/// Who made the configuration fail [`check`] with `msg`: the file setting whose argument,
/// added after those before it, first makes `check_first(n)` (the check with the first `n`
/// file arguments) fail with the same message; nobody in the file when the command line and
/// environment alone already do.
fn blame(
    file: &ConfigFile,
    extra: &[(usize, OsString)],
    msg: &str,
    check_first: impl Fn(usize) -> Result<Result<(), String>, LoadError>,
) -> LoadError {
    for n in 0..=extra.len() {
        match check_first(n) {
            Err(e) => return e,
            Ok(Err(m)) if m == msg => {
                let Some(i) = n.checked_sub(1) else {
                    break;
                };
                let (setting, _) = extra[i];
                let key = file.settings.get(setting).map_or("", |s| s.key.as_str());
                // `--trusted-proxies: bad entry` is already named by the key.
                let msg = msg
                    .strip_prefix(&format!("--{key}: "))
                    .unwrap_or(msg)
                    .to_owned();
                return LoadError::File(file.setting_error(setting, msg));
            }
            Ok(_) => {}
        }
    }
    LoadError::Invalid(msg.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Identity;

    #[derive(Debug, clap::Parser)]
    struct TestCli {
        #[command(flatten)]
        args: Args,
    }

    /// `corecast <flags>` with `text` as the file named by `--config` (when given).
    fn run(flags: &[&str], text: &str) -> Result<Config, String> {
        let argv = std::iter::once("corecast")
            .chain(flags.iter().copied())
            .map(OsString::from)
            .collect();
        load_with(
            argv,
            |c: &TestCli| &c.args,
            |_| true,
            |p| ConfigFile::parse(p, text.as_bytes()),
        )
        .map(|l| l.config.expect("serving"))
        .map_err(|e| e.to_string())
    }

    fn with_file(flags: &[&str], text: &str) -> Result<Config, String> {
        let mut all = vec!["--config", "c.toml"];
        all.extend_from_slice(flags);
        run(&all, text)
    }

    #[test]
    fn command_line_beats_file_beats_default() {
        let file = "history = 7\nmax-rooms = 3\nroom-ttl = \"2m\"\nmax-frame = \"1KiB\"";
        let c = with_file(&[], file).unwrap();
        assert_eq!(
            (c.history, c.max_rooms, c.room_ttl, c.max_frame),
            (7, 3, Duration::from_secs(120), 1024)
        );
        // Untouched settings keep their defaults.
        assert_eq!(c.msg_rate, Config::default().msg_rate);
        let c = with_file(&["--history", "9", "--room-ttl=5s"], file).unwrap();
        assert_eq!(
            (c.history, c.max_rooms, c.room_ttl),
            (9, 3, Duration::from_secs(5))
        );
        // Flags may come before or after --config.
        let c = run(&["--max-rooms", "4", "--config", "c.toml"], file).unwrap();
        assert_eq!((c.history, c.max_rooms), (7, 4));
        // No --config: the file is not read at all.
        let c = run(&[], "this is not toml").unwrap();
        assert_eq!(c.history, Config::default().history);
    }

    #[test]
    fn a_file_value_meets_the_flags_parser() {
        assert_eq!(
            with_file(&[], "\nmax-frame = \"2 parsecs\"").unwrap_err(),
            "c.toml:2: max-frame: invalid value \"2 parsecs\": unknown size unit \"parsecs\""
        );
        assert_eq!(
            with_file(&[], "compression-level = 300").unwrap_err(),
            "c.toml:1: compression-level: 300 is not in 0..=255"
        );
        assert_eq!(
            with_file(&[], "compression = \"fast\"").unwrap_err(),
            "c.toml:1: compression: expected off, shared or dedicated, got \"fast\""
        );
        assert_eq!(
            with_file(&[], "history = -1").unwrap_err(),
            "c.toml:1: history: invalid value \"-1\": invalid digit found in string"
        );
        // The same value as a flag is refused by the same parser.
        assert!(run(&["--compression", "fast"], "")
            .unwrap_err()
            .ends_with("expected off, shared or dedicated, got \"fast\""));
        // Checked even when the command line overrides it.
        assert_eq!(
            with_file(&["--compression", "off"], "compression = \"fast\"").unwrap_err(),
            "c.toml:1: compression: expected off, shared or dedicated, got \"fast\""
        );
    }

    #[test]
    fn an_invalid_setting_is_pinned_on_its_line() {
        assert_eq!(
            with_file(&[], "history = 5\n\nhistory-x = 1").unwrap_err(),
            "c.toml:3: history-x: unknown key"
        );
        assert_eq!(
            with_file(&[], "max-rooms = 5\nhistory = 2000000").unwrap_err(),
            "c.toml:2: history: history must be between 0 and 1000000"
        );
        assert_eq!(
            with_file(&[], "workers = 0").unwrap_err(),
            "c.toml:1: workers: workers must be at least 1"
        );
        assert_eq!(
            with_file(&[], "jwt-secret = \"\"").unwrap_err(),
            "c.toml:1: jwt-secret: jwt secret must not be empty"
        );
        assert_eq!(
            with_file(&[], "history = 1\ntrusted-proxies = [\"10.0.0.0/33\"]").unwrap_err(),
            "c.toml:2: trusted-proxies: invalid trusted proxy \"10.0.0.0/33\": prefix length too long"
        );
        assert_eq!(
            with_file(&[], "redis-url = \"http://h\"").unwrap_err(),
            "c.toml:1: redis-url: the url must start with redis://"
        );
        assert_eq!(
            with_file(&[], "msg-rate = 70000").unwrap_err(),
            "c.toml:1: msg-rate: msg rate must be between 1 and 65535"
        );
        // Two settings at odds: the one that makes it fail, in file order.
        assert_eq!(
            with_file(
                &[],
                "history = 1\nidle-timeout = \"10s\"\nping-interval = \"20s\""
            )
            .unwrap_err(),
            "c.toml:2: idle-timeout: idle timeout must be longer than the ping interval"
        );
        // Fine together.
        assert!(with_file(&[], "ping-interval = \"2m\"\nidle-timeout = \"3m\"").is_ok());
        // A file setting at odds with a flag is still the file's line...
        assert_eq!(
            with_file(&["--ping-interval", "50s"], "idle-timeout = \"40s\"").unwrap_err(),
            "c.toml:1: idle-timeout: idle timeout must be longer than the ping interval"
        );
        // ...unless the flags fail alone (here with the default idle timeout, 60 s).
        assert_eq!(
            with_file(&["--ping-interval", "2m"], "idle-timeout = \"90s\"").unwrap_err(),
            "invalid configuration: idle timeout must be longer than the ping interval"
        );
        // What the command line alone gets wrong is not blamed on the file.
        assert_eq!(
            with_file(&["--workers", "0"], "history = 3").unwrap_err(),
            "invalid configuration: workers must be at least 1"
        );
        assert_eq!(
            run(&["--workers", "0"], "").unwrap_err(),
            "invalid configuration: workers must be at least 1"
        );
    }

    #[test]
    fn gateway_identity_follows_the_secret_from_anywhere() {
        let gw = "[amqp]\nurl = \"amqp://h\"\nexchange = \"x\"\n[[endpoint]]\npath = \"/e\"\n";
        assert_eq!(
            with_file(&[], gw).unwrap_err(),
            "c.toml:4: endpoint[0].identity: required without --jwt-secret (\"query:NAME\"), \
             or set --jwt-secret"
        );
        let c = with_file(&["--jwt-secret", "s"], gw).unwrap();
        assert_eq!(c.endpoints[0].identity, Identity::Jwt);
        // The secret from the file itself counts too.
        let c = with_file(&[], &format!("jwt-secret = \"s\"\n{gw}")).unwrap();
        assert_eq!(c.endpoints[0].identity, Identity::Jwt);
        assert_eq!(c.amqp.unwrap().exchange, "x");
        let c = with_file(&[], &format!("{gw}identity = \"query:u\"")).unwrap();
        assert_eq!(c.endpoints[0].identity, Identity::Query("u".into()));
        assert_eq!(
            with_file(
                &[],
                "[amqp]\nurl = \"amqp://h\"\nexchange = \"x\"\nstore_offline = true"
            )
            .unwrap_err(),
            "c.toml:4: amqp.store_offline: needs --redis-url (stored notifications live in Redis)"
        );
        assert!(with_file(
            &["--redis-url", "redis://h"],
            "[amqp]\nurl = \"amqp://h\"\nexchange = \"x\"\nstore_offline = true"
        )
        .is_ok());
    }

    #[test]
    fn bad_flags_and_files_are_one_line() {
        let e = run(&["--history", "x"], "").unwrap_err();
        assert_eq!(
            e,
            "invalid value 'x' for '--history <HISTORY>': invalid digit found in string"
        );
        let e = load_with(
            vec!["corecast".into(), "--config".into(), "/no/such.toml".into()],
            |c: &TestCli| &c.args,
            |_| true,
            ConfigFile::read,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("/no/such.toml: cannot read: "), "{e}");
        assert!(!e.contains('\n'));
        // --help is not an error to print on stderr.
        let help = load_with(
            vec!["corecast".into(), "--help".into()],
            |c: &TestCli| &c.args,
            |_| true,
            ConfigFile::read,
        )
        .unwrap_err();
        assert!(matches!(help, LoadError::Cli(ref e) if !e.use_stderr()));
    }

    #[test]
    fn not_serving_builds_no_configuration() {
        let l = load_with(
            vec!["corecast".into(), "--config".into(), "c.toml".into()],
            |c: &TestCli| &c.args,
            |_| false,
            |p| ConfigFile::parse(p, b"workers = 0\njwt-secret = \"s\""),
        )
        .unwrap();
        assert!(l.config.is_none());
        // The file's values are in the parsed command line all the same.
        assert_eq!(l.cli.args.jwt_secret.as_deref(), Some("s"));
    }
}
