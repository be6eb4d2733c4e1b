//! Fuzzes the configuration loader (`corecast::config::load`, with `config::file`,
//! `config::flags`, `config::gateway` and `config::print`).
//!
//! Input layout: the whole input is the contents of the file named by `--config`
//! (`fuzz.toml`), any bytes. Each input is loaded twice: with `--config fuzz.toml` alone, and
//! with flags that override some settings and enable the gateway's options
//! (`--history 5 --jwt-secret s --redis-url redis://h`).
//!
//! Checks: no panic; a refusal is exactly one line without control characters, starts with
//! the file's name and names a line or a key (with valid flags, nothing can be refused
//! without the file being at fault, and no file value can make clap fail after its own
//! parser accepted it); an accepted file's `--print-config` output loads back (as a file, with
//! no flags) to a configuration that prints the same text; a printed `redis-url` is the same
//! URL with its password (if any) as `***`.

#![no_main]

use std::ffi::OsString;
use std::path::Path;

use corecast::config::file::ConfigFile;
use corecast::config::flags::Args;
use corecast::config::load::{load_with, LoadError};
use corecast::config::print::to_toml;
use corecast::relay::RedisUrl;
use corecast::Config;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

const FILE: &str = "fuzz.toml";

fn load(flags: &[&str], bytes: &[u8]) -> Result<Config, LoadError> {
    let argv: Vec<OsString> = ["corecast", "--config", FILE]
        .iter()
        .chain(flags)
        .map(OsString::from)
        .collect();
    load_with(
        argv,
        |c: &Cli| &c.args,
        |_| true,
        |p: &Path| ConfigFile::parse(p, bytes),
    )
    .map(|l| l.config.expect("serving"))
}

fn check(flags: &[&str], data: &[u8]) {
    match load(flags, data) {
        Ok(cfg) => {
            let printed = to_toml(&cfg);
            // A Redis password is never printed: the printed URL is the same URL with `***`.
            if let Some(url) = &cfg.redis_url {
                let original = RedisUrl::parse(&url.0).expect("checked");
                let shown = printed
                    .lines()
                    .find_map(|l| l.strip_prefix("redis-url = "))
                    .expect("redis-url printed");
                let again = load(&[], format!("redis-url = {shown}").as_bytes())
                    .expect("printed redis-url loads");
                let masked = RedisUrl::parse(&again.redis_url.expect("set").0).expect("checked");
                assert_eq!(
                    masked.password.as_deref(),
                    original.password.as_ref().map(|_| "***")
                );
                assert_eq!(
                    (&masked.host, masked.port, &masked.user, masked.db),
                    (&original.host, original.port, &original.user, original.db)
                );
            }
            let again = load(&[], printed.as_bytes())
                .unwrap_or_else(|e| panic!("printed config refused: {e}\n{printed}"));
            assert_eq!(to_toml(&again), printed, "print -> load -> print differs");
        }
        Err(LoadError::File(e)) => {
            let msg = e.to_string();
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
            assert!(msg.starts_with(&format!("{FILE}:")), "{msg:?}");
            assert!(e.line.is_some() || e.key.is_some(), "{msg:?}");
            assert_eq!(e.path, FILE);
        }
        Err(e) => panic!("refused without naming the file: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    check(&[], data);
    check(
        &["--history", "5", "--jwt-secret", "s", "--redis-url", "redis://h"],
        data,
    );
});
