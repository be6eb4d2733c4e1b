//! The reactor: thread-per-core mio workers that own every socket.
//!
//! The only user of mio in the crate. It knows applications only through the [`App`] seam
//! (requests, connection ids, bytes) and knows nothing about rooms or JSON. [`Server::bind`]
//! opens one SO_REUSEPORT listener per worker (so bind errors surface before any thread
//! starts), [`Server::start`] spawns the workers with one application instance each, and
//! [`ServerHandle`] reaches them from other threads and stops them gracefully.

mod accept;
mod app;
mod clock;
mod compress;
mod conn;
mod ctx;
mod input;
mod outq;
mod pool;
pub mod stats;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::config::Config;
pub use app::{App, ConnId, Cx, Decision, Outbound, SendStatus};
pub use clock::Millis;
use ctx::{Inbox, Peer};
pub use stats::{StatsSnapshot, WorkerStats};
use worker::{Worker, WAKER};

/// A complete, encoded server frame shared by every recipient (cloning is a refcount bump).
pub type SharedFrame = bytes::Bytes;

/// What every worker shares with the rest of the process, readable from any thread.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Each worker's counters, indexed by worker id.
    pub stats: Arc<[Arc<WorkerStats>]>,
    /// Open connections of the whole process.
    pub connections: Arc<AtomicUsize>,
}

impl Shared {
    /// Counters summed over all workers.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot::sum(self.stats.iter().map(|s| &**s))
    }

    /// Open connections of the whole process (any phase).
    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    cfg: Config,
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
    shared: Shared,
}

impl Server {
    /// Validates `cfg` and binds one listener per worker.
    pub fn bind(cfg: Config) -> io::Result<Self> {
        cfg.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let first = accept::bind_reuseport(cfg.listen, cfg.backlog)?;
        // With port 0 the others must join the port the first one got.
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..cfg.workers {
            listeners.push(accept::bind_reuseport(local_addr, cfg.backlog)?);
        }
        let shared = Shared {
            stats: (0..cfg.workers)
                .map(|_| Arc::new(WorkerStats::default()))
                .collect(),
            connections: Arc::new(AtomicUsize::new(0)),
        };
        Ok(Self {
            cfg,
            listeners,
            local_addr,
            shared,
        })
    }

    /// The address the workers listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters and gauges shared by the workers (for applications that report them).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Starts the workers; `make_app(worker_id)` builds each worker's application instance
    /// on the worker's own thread.
    pub fn start<A, F>(self, make_app: F) -> io::Result<ServerHandle<A::PeerMsg>>
    where
        A: App,
        F: Fn(usize) -> A + Send + Sync + 'static,
    {
        let n = self.listeners.len();
        let mut polls = Vec::with_capacity(n);
        let mut peers = Vec::with_capacity(n);
        let mut inboxes = Vec::with_capacity(n);
        for _ in 0..n {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = crossbeam_channel::unbounded();
            peers.push(Peer { tx, waker });
            inboxes.push(rx);
            polls.push(poll);
        }
        let peers: Arc<[Peer<A::PeerMsg>]> = peers.into();
        let make_app = Arc::new(make_app);
        let cfg = Arc::new(self.cfg);
        let mut threads = Vec::with_capacity(n);
        for (id, ((poll, listener), inbox)) in polls
            .into_iter()
            .zip(self.listeners)
            .zip(inboxes)
            .enumerate()
        {
            let (peers, make_app, cfg) = (peers.clone(), make_app.clone(), cfg.clone());
            let stats = self.shared.stats[id].clone();
            let total = self.shared.connections.clone();
            // Registration errors surface here, before the thread starts.
            let worker = move || -> io::Result<()> {
                let app = make_app(id);
                let w = Worker::new(id, poll, listener, &cfg, inbox, peers, stats, total, app)?;
                w.run();
                Ok(())
            };
            let t = std::thread::Builder::new()
                .name(format!("corecast-w{id}"))
                .spawn(move || {
                    if let Err(e) = worker() {
                        tracing::error!(worker = id, error = %e, "worker failed to start");
                    }
                })?;
            threads.push(t);
        }
        Ok(ServerHandle {
            peers,
            threads,
            shared: self.shared,
            local_addr: self.local_addr,
        })
    }
}

/// Hands messages to the workers' `App::on_peer` from any thread (the relay's, the
/// gateway's). Cheap to clone.
pub struct WorkerSender<P> {
    peers: Arc<[Peer<P>]>,
}

impl<P> Clone for WorkerSender<P> {
    fn clone(&self) -> Self {
        Self {
            peers: self.peers.clone(),
        }
    }
}

impl<P: Send + 'static> WorkerSender<P> {
    /// Sends `msg` to worker `worker` and wakes it. False if there is no such worker or it has
    /// exited.
    pub fn send(&self, worker: usize, msg: P) -> bool {
        match self.peers.get(worker) {
            Some(p) => p.tx.send(Inbox::App(msg)).is_ok() && p.waker.wake().is_ok(),
            None => false,
        }
    }

    /// Queues `msg` for worker `worker` without waking it (call [`WorkerSender::wake`] once
    /// after a batch). False if there is no such worker or it has exited.
    pub fn send_quietly(&self, worker: usize, msg: P) -> bool {
        self.peers
            .get(worker)
            .is_some_and(|p| p.tx.send(Inbox::App(msg)).is_ok())
    }

    /// Wakes worker `worker`.
    pub fn wake(&self, worker: usize) {
        if let Some(p) = self.peers.get(worker) {
            let _ = p.waker.wake();
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.peers.len()
    }
}

/// A running server.
pub struct ServerHandle<P> {
    peers: Arc<[Peer<P>]>,
    threads: Vec<JoinHandle<()>>,
    shared: Shared,
    local_addr: SocketAddr,
}

impl<P> std::fmt::Debug for ServerHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("workers", &self.threads.len())
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl<P: Send + 'static> ServerHandle<P> {
    /// The address the workers listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A sender to the workers, for other threads.
    pub fn sender(&self) -> WorkerSender<P> {
        WorkerSender {
            peers: self.peers.clone(),
        }
    }

    /// Asks every worker to stop accepting, send 1001 to every connection and exit once its
    /// connections are gone or the drain timeout passes.
    pub fn shutdown(&self) {
        for p in self.peers.iter() {
            let _ = p.tx.send(Inbox::Shutdown);
            let _ = p.waker.wake();
        }
    }

    /// Counters summed over all workers.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.snapshot()
    }

    /// Waits for every worker to exit.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}
