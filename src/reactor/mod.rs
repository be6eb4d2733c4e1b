//! The reactor: thread-per-core mio workers that own every socket.
//!
//! The only user of mio in the crate. It knows endpoints only as [`crate::route::Route`]
//! values and hands broadcast frames to the [`crate::hub`]; it knows nothing about rooms or
//! JSON. [`Server::bind`] opens one SO_REUSEPORT listener per worker (so bind errors surface
//! before any thread starts), [`Server::start`] spawns the workers, and [`ServerHandle`]
//! stops them gracefully.

mod accept;
mod clock;
mod compress;
mod conn;
mod outq;
mod pool;
pub mod stats;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::config::Config;
use crate::hub::WorkerMsg;
pub use stats::{StatsSnapshot, WorkerStats};
use worker::{Peer, Worker, WAKER};

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    cfg: Config,
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
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
        Ok(Self {
            cfg,
            listeners,
            local_addr,
        })
    }

    /// The address the workers listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts the workers.
    pub fn start(self) -> io::Result<ServerHandle> {
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
        let peers: Arc<[Peer]> = peers.into();
        let total = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::with_capacity(n);
        let mut stats = Vec::with_capacity(n);
        for (id, ((poll, listener), inbox)) in polls
            .into_iter()
            .zip(self.listeners)
            .zip(inboxes)
            .enumerate()
        {
            let s = Arc::new(WorkerStats::default());
            stats.push(s.clone());
            let worker = Worker::new(
                id,
                poll,
                listener,
                &self.cfg,
                inbox,
                peers.clone(),
                s,
                total.clone(),
            )?;
            let t = std::thread::Builder::new()
                .name(format!("corecast-w{id}"))
                .spawn(move || worker.run())?;
            threads.push(t);
        }
        Ok(ServerHandle {
            peers,
            threads,
            stats,
            local_addr: self.local_addr,
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    peers: Arc<[Peer]>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<WorkerStats>>,
    local_addr: SocketAddr,
}

impl ServerHandle {
    /// The address the workers listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Asks every worker to stop accepting, send 1001 to every connection and exit once its
    /// connections are gone or the drain timeout passes.
    pub fn shutdown(&self) {
        for p in self.peers.iter() {
            let _ = p.tx.send(WorkerMsg::Shutdown);
            let _ = p.waker.wake();
        }
    }

    /// Counters summed over all workers.
    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot::sum(self.stats.iter().map(|s| &**s))
    }

    /// Waits for every worker to exit.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}
