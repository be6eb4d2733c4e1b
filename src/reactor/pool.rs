//! Per-worker byte buffers lent to connections while data is in flight.
//!
//! An idle connection holds no buffer: input leftovers and output chunks are taken from here
//! when bytes are pending and given back as soon as they drain, so steady-state traffic
//! allocates nothing. Owns only the free list of buffers (output queues have their own, in
//! `outq`, which builds on this one); never touches sockets.

/// Capacity of a fresh buffer: a few echoed messages or a 101 response fit; larger output
/// grows it (and `OutQueue` chains further buffers).
const BUF_CAPACITY: usize = 4 << 10;
/// Buffers that grew past this (large messages) are freed instead of kept.
const MAX_KEPT_CAPACITY: usize = 256 << 10;

/// A free list of byte buffers, bounded in bytes.
#[derive(Debug)]
pub(crate) struct BufPool {
    bufs: Vec<Vec<u8>>,
    /// Sum of the capacities in `bufs`.
    free_bytes: usize,
    /// Most bytes of free buffers kept; more are freed. Bounds what a burst (a ramp of
    /// thousands of handshakes, a fan-out to thousands of slow readers) leaves behind.
    max_free_bytes: usize,
}

impl BufPool {
    pub(crate) fn new(max_free_bytes: usize) -> Self {
        Self {
            bufs: Vec::new(),
            free_bytes: 0,
            max_free_bytes,
        }
    }

    /// An empty buffer with at least `BUF_CAPACITY` bytes of capacity.
    pub(crate) fn get_buf(&mut self) -> Vec<u8> {
        match self.bufs.pop() {
            Some(buf) => {
                self.free_bytes -= buf.capacity();
                buf
            }
            None => Vec::with_capacity(BUF_CAPACITY),
        }
    }

    /// Returns a buffer to the pool.
    pub(crate) fn put_buf(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= MAX_KEPT_CAPACITY
            && buf.capacity() >= BUF_CAPACITY
            && self.free_bytes + buf.capacity() <= self.max_free_bytes
        {
            buf.clear();
            self.free_bytes += buf.capacity();
            self.bufs.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_buffers_are_bounded_in_bytes() {
        let mut pool = BufPool::new(3 * BUF_CAPACITY);
        let bufs: Vec<_> = (0..5).map(|_| pool.get_buf()).collect();
        for b in bufs {
            pool.put_buf(b);
        }
        assert_eq!(pool.bufs.len(), 3);
        assert_eq!(pool.free_bytes, 3 * BUF_CAPACITY);
        let b = pool.get_buf();
        assert_eq!(pool.free_bytes, 2 * BUF_CAPACITY);
        pool.put_buf(b);
        assert_eq!(pool.free_bytes, 3 * BUF_CAPACITY);
        // A buffer that grew past the kept size is freed, not kept.
        let mut big = pool.get_buf();
        big.reserve(MAX_KEPT_CAPACITY + 1);
        pool.put_buf(big);
        assert_eq!(pool.bufs.len(), 2);
        assert_eq!(pool.free_bytes, 2 * BUF_CAPACITY);
    }
}
