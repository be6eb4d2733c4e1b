//! Per-worker buffers lent to connections while data is in flight.
//!
//! An idle connection holds no buffer: input leftovers and output queues are taken from here
//! when bytes are pending and given back as soon as they drain, so steady-state traffic
//! allocates nothing. Owns only the free lists; never touches sockets.

use super::outq::OutQueue;

/// Capacity of a fresh buffer. Default: 16 KiB.
const BUF_CAPACITY: usize = 16 << 10;
/// Buffers that grew past this (large messages) are freed instead of kept.
const MAX_KEPT_CAPACITY: usize = 256 << 10;

/// Free lists of byte buffers and output queues.
#[derive(Debug)]
pub(crate) struct BufPool {
    bufs: Vec<Vec<u8>>,
    // Boxed because connections hold `Option<Box<OutQueue>>` (8 bytes while idle).
    #[allow(clippy::vec_box)]
    queues: Vec<Box<OutQueue>>,
    /// Most free items kept per list; more are freed.
    max_free: usize,
}

impl BufPool {
    pub(crate) fn new(max_free: usize) -> Self {
        Self {
            bufs: Vec::new(),
            queues: Vec::new(),
            max_free,
        }
    }

    /// An empty buffer with at least 16 KiB capacity.
    pub(crate) fn get_buf(&mut self) -> Vec<u8> {
        self.bufs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_CAPACITY))
    }

    /// Returns a buffer to the pool.
    pub(crate) fn put_buf(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= MAX_KEPT_CAPACITY
            && buf.capacity() >= BUF_CAPACITY
            && self.bufs.len() < self.max_free
        {
            buf.clear();
            self.bufs.push(buf);
        }
    }

    /// An empty output queue.
    pub(crate) fn get_queue(&mut self) -> Box<OutQueue> {
        self.queues.pop().unwrap_or_default()
    }

    /// Returns an output queue (and any buffers it still holds) to the pool.
    pub(crate) fn put_queue(&mut self, mut q: Box<OutQueue>) {
        q.clear(self);
        if self.queues.len() < self.max_free {
            self.queues.push(q);
        }
    }
}
