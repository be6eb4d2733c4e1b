//! Starting workers and talking to them. A run needing more sockets than one process may hold
//! re-executes this binary with the hidden `--worker W/N` flag; workers speak a line protocol:
//! one JSON `Up` message per line on stdout (ready, progress, result) and `GO` / `STOP` lines on
//! stdin. A single-worker run uses a thread and channels carrying the same messages.

use crate::report::WorkerReport;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// Worker -> coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "up", rename_all = "snake_case")]
pub enum Up {
    /// The ramp is over: `open` connections are up, `failed` attempts failed.
    Ready {
        open: u64,
        failed: u64,
    },
    Progress(Progress),
    Done(Box<WorkerReport>),
    Failed {
        error: String,
    },
}

/// A worker's running totals, sent once per second.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub open: u64,
    /// Connecting or upgrading.
    pub pending: u64,
    /// Successful upgrades so far.
    pub opened: u64,
    pub messages: u64,
    pub errors: u64,
}

/// Coordinator -> worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// Start the measured phase.
    Go,
    /// End the run now (close connections, report).
    Stop,
}

enum Handle {
    Thread {
        down: Sender<Down>,
        join: Option<JoinHandle<()>>,
    },
    Process {
        child: Child,
        stdin: Option<ChildStdin>,
    },
}

/// The running workers of one run.
pub struct Workers {
    rx: Receiver<(usize, Up)>,
    handles: Vec<Handle>,
}

impl Workers {
    /// One worker on a thread of this process. `body` runs the worker with its up-callback and
    /// down-channel.
    pub fn start_thread<F>(body: F) -> Result<Workers>
    where
        F: FnOnce(&dyn Fn(Up), &Receiver<Down>) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let (down_tx, down_rx) = mpsc::channel();
        let join = std::thread::Builder::new()
            .name("worker-0".into())
            .spawn(move || {
                let up = move |u: Up| {
                    let _ = tx.send((0, u));
                };
                body(&up, &down_rx);
            })
            .context("starting the worker thread")?;
        Ok(Workers {
            rx,
            handles: vec![Handle::Thread {
                down: down_tx,
                join: Some(join),
            }],
        })
    }

    /// `n` worker processes running this binary with `args` plus `--worker W/N`.
    pub fn spawn_processes(n: usize, args: &[OsString]) -> Result<Workers> {
        let exe = std::env::current_exe().context("locating this binary")?;
        let (tx, rx) = mpsc::channel();
        let mut handles = Vec::with_capacity(n);
        for w in 0..n {
            let mut child = Command::new(&exe)
                .args(args)
                .arg("--worker")
                .arg(format!("{w}/{n}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting worker process {w}"))?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let stdin = child.stdin.take();
            let tx = tx.clone();
            std::thread::spawn(move || read_worker_lines(w, stdout, tx));
            handles.push(Handle::Process { child, stdin });
        }
        Ok(Workers { rx, handles })
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Next message from any worker, or `None` after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<(usize, Up)> {
        match self.rx.recv_timeout(timeout) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(timeout);
                None
            }
        }
    }

    pub fn send_all(&mut self, d: Down) {
        let line = match d {
            Down::Go => "GO\n",
            Down::Stop => "STOP\n",
        };
        for h in &mut self.handles {
            match h {
                Handle::Thread { down, .. } => {
                    let _ = down.send(d);
                }
                Handle::Process { stdin, .. } => {
                    if let Some(s) = stdin {
                        let _ = s.write_all(line.as_bytes()).and_then(|_| s.flush());
                    }
                }
            }
        }
    }

    /// Waits for threads / reaps processes, killing any still running.
    pub fn finish(mut self) {
        for h in &mut self.handles {
            match h {
                Handle::Thread { join, down } => {
                    let _ = down.send(Down::Stop);
                    if let Some(j) = join.take() {
                        let _ = j.join();
                    }
                }
                Handle::Process { child, stdin } => {
                    drop(stdin.take());
                    let deadline = std::time::Instant::now() + Duration::from_secs(5);
                    loop {
                        match child.try_wait() {
                            Ok(Some(_)) | Err(_) => break,
                            Ok(None) if std::time::Instant::now() >= deadline => {
                                let _ = child.kill();
                                let _ = child.wait();
                                break;
                            }
                            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                        }
                    }
                }
            }
        }
    }
}

/// Forwards a worker process's stdout lines as `Up` messages; reports a worker that exits
/// without a result.
fn read_worker_lines(w: usize, stdout: std::process::ChildStdout, tx: Sender<(usize, Up)>) {
    let mut done = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Up>(&line) {
            Ok(up) => {
                done |= matches!(up, Up::Done(_) | Up::Failed { .. });
                if tx.send((w, up)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send((
                    w,
                    Up::Failed {
                        error: format!("unreadable line from worker {w}: {e}"),
                    },
                ));
                done = true;
            }
        }
    }
    if !done {
        let _ = tx.send((
            w,
            Up::Failed {
                error: format!("worker {w} exited without a result"),
            },
        ));
    }
}

/// Worker-process side: the up-callback prints one JSON line per message on stdout.
pub fn stdout_up(up: Up) {
    if let Ok(line) = serde_json::to_string(&up) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Worker-process side: `GO` / `STOP` lines from stdin as `Down` messages. EOF (the coordinator
/// is gone) becomes a dropped channel, which the driver treats as STOP.
pub fn stdin_down() -> Receiver<Down> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let d = match line.trim() {
                "GO" => Down::Go,
                "STOP" => Down::Stop,
                _ => continue,
            };
            if tx.send(d).is_err() {
                break;
            }
        }
    });
    rx
}
