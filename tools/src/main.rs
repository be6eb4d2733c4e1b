//! corecast-load: a load generator for WebSocket servers on this machine (echo, broadcast,
//! idle, connect, chat and gateway modes). `main` only parses the command line and hands over
//! to the coordinator, or, with the hidden `--worker W/N` flag, runs one worker process of a
//! larger run. Only loopback targets are accepted; every run is bounded in connections and time.

#![deny(unsafe_code)]

mod cli;
mod conn;
mod conns;
mod coordinator;
mod driver;
mod modes;
mod order;
mod procstat;
mod report;
mod rng;
mod spawn;
mod stamp;
mod sys;
mod workload;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.worker {
        Some(slot) => worker_main(&cli, slot).map(|()| true),
        None => coordinator::run(&cli),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("corecast-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// One worker process: its share of the connections, driven by GO/STOP lines on stdin,
/// reporting JSON lines on stdout.
fn worker_main(cli: &cli::Cli, slot: cli::WorkerSlot) -> anyhow::Result<()> {
    let args = &cli.mode;
    let outcome = (|| {
        modes::validate(args)?;
        let targets = cli::resolve_targets(&args.common().target)?;
        sys::raise_nofile_limit()?;
        coordinator::start_watchdog(
            coordinator::hard_deadline(args, slot.count) + std::time::Duration::from_secs(10),
            "a worker process",
        );
        let down = spawn::stdin_down();
        modes::run_worker(args, &targets, slot, &spawn::stdout_up, &down)
    })();
    match outcome {
        Ok(report) => spawn::stdout_up(spawn::Up::Done(Box::new(report))),
        Err(e) => spawn::stdout_up(spawn::Up::Failed {
            error: format!("{e:#}"),
        }),
    }
    Ok(())
}
