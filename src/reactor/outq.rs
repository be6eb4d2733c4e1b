//! A connection's outbound bytes: owned frames it produced itself (echo, pongs, close) and
//! shared frames fanned out to many connections, in order, bounded in bytes.
//!
//! Owns write ordering and partial-write bookkeeping, and the worker's free list of queues.
//! Writing uses vectored IO over the queued chunks so several messages go out in one syscall
//! (corking). Buffers come from the worker's [`BufPool`].

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use super::pool::BufPool;
use super::SharedFrame;

/// Most chunks handed to one writev(2).
const MAX_IOVECS: usize = 64;
/// An owned chunk stops taking appended frames past this size, so one chunk never grows
/// without bound and can go back to the pool.
const OWNED_APPEND_LIMIT: usize = 64 << 10;

/// One queued piece of output.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Bytes this connection produced (pooled buffer).
    Owned(Vec<u8>),
    /// A frame shared with other recipients.
    Shared(SharedFrame),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(f) => f,
        }
    }
}

/// A socket written with send(2)/sendmsg(2) and `MSG_NOSIGNAL`: the socket calls skip the
/// VFS layer that write(2)/writev(2) go through (measurably cheaper per call on loopback),
/// and a peer that is gone yields `EPIPE` rather than `SIGPIPE` even where the embedding
/// program did not ignore that signal.
pub(crate) struct SocketWriter<'a>(pub(crate) socket2::SockRef<'a>);

impl Write for SocketWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send_with_flags(buf, libc::MSG_NOSIGNAL)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Pending output of one connection.
///
/// Invariant: `bytes` = total length of `chunks` minus `head_offset`; `head_offset` is less
/// than the length of the first chunk when there is one.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    chunks: VecDeque<Chunk>,
    head_offset: usize,
    bytes: usize,
}

impl OutQueue {
    /// Bytes not yet written.
    pub(crate) fn len(&self) -> usize {
        self.bytes
    }

    /// Nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Appends bytes produced by `fill` to an owned chunk (the tail one when it has room).
    pub(crate) fn push_owned(&mut self, pool: &mut BufPool, fill: impl FnOnce(&mut Vec<u8>)) {
        let tail = match self.chunks.back_mut() {
            Some(Chunk::Owned(v)) if v.len() < OWNED_APPEND_LIMIT => v,
            _ => {
                self.chunks.push_back(Chunk::Owned(pool.get_buf()));
                match self.chunks.back_mut() {
                    Some(Chunk::Owned(v)) => v,
                    _ => return, // unreachable: just pushed an owned chunk
                }
            }
        };
        let before = tail.len();
        fill(tail);
        self.bytes += tail.len() - before;
    }

    /// Appends a shared frame.
    pub(crate) fn push_shared(&mut self, frame: SharedFrame) {
        self.bytes += frame.len();
        self.chunks.push_back(Chunk::Shared(frame));
    }

    /// Drops everything not yet started (slow consumer eviction); a partly written chunk
    /// stays so the stream remains a valid sequence of frames.
    pub(crate) fn discard_unsent(&mut self, pool: &mut BufPool) {
        let keep = usize::from(self.head_offset > 0).min(self.chunks.len());
        while self.chunks.len() > keep {
            if let Some(Chunk::Owned(v)) = self.chunks.pop_back() {
                pool.put_buf(v);
            }
        }
        self.bytes = self
            .chunks
            .front()
            .map_or(0, |c| c.bytes().len() - self.head_offset);
    }

    /// Writes as much as the socket takes. Returns the bytes written; `WouldBlock` is
    /// reported as `Ok` with what was written before it.
    pub(crate) fn write_to<W: Write>(
        &mut self,
        w: &mut W,
        pool: &mut BufPool,
    ) -> io::Result<usize> {
        let mut total = 0;
        while !self.chunks.is_empty() {
            let n = {
                let result = match self.chunks.front() {
                    // The common case (an echo, a reply): no iovec array to build.
                    Some(only) if self.chunks.len() == 1 => {
                        w.write(&only.bytes()[self.head_offset..])
                    }
                    _ => self.write_vectored(w),
                };
                match result {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            total += n;
            self.advance(n, pool);
        }
        Ok(total)
    }

    /// One vectored write of up to `MAX_IOVECS` chunks.
    fn write_vectored<W: Write>(&self, w: &mut W) -> io::Result<usize> {
        let mut iov: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (i, c) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
            let b = c.bytes();
            iov[i] = IoSlice::new(if i == 0 { &b[self.head_offset..] } else { b });
            count += 1;
        }
        w.write_vectored(&iov[..count])
    }

    fn advance(&mut self, mut n: usize, pool: &mut BufPool) {
        self.bytes -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.head_offset;
            if n < left {
                self.head_offset += n;
                return;
            }
            n -= left;
            self.head_offset = 0;
            if let Some(Chunk::Owned(v)) = self.chunks.pop_front() {
                pool.put_buf(v);
            }
        }
    }

    /// Empties the queue, returning owned buffers to the pool.
    pub(crate) fn clear(&mut self, pool: &mut BufPool) {
        while let Some(c) = self.chunks.pop_front() {
            if let Chunk::Owned(v) = c {
                pool.put_buf(v);
            }
        }
        self.head_offset = 0;
        self.bytes = 0;
        // A queue that once held a long backlog does not keep its large ring in the pool.
        if self.chunks.capacity() > MAX_IOVECS {
            self.chunks.shrink_to(MAX_IOVECS);
        }
    }
}

/// Free output queues of one worker, so a connection that gets output again reuses one.
#[derive(Debug)]
pub(crate) struct QueuePool {
    // Boxed because connections hold `Option<Box<OutQueue>>` (8 bytes while idle).
    #[allow(clippy::vec_box)]
    free: Vec<Box<OutQueue>>,
    /// Most free queues kept; more are freed.
    max_free: usize,
}

impl QueuePool {
    pub(crate) fn new(max_free: usize) -> Self {
        Self {
            free: Vec::new(),
            max_free,
        }
    }

    /// An empty output queue.
    pub(crate) fn get(&mut self) -> Box<OutQueue> {
        self.free.pop().unwrap_or_default()
    }

    /// Returns a queue, giving any buffers it still holds back to `bufs`.
    pub(crate) fn put(&mut self, mut q: Box<OutQueue>, bufs: &mut BufPool) {
        q.clear(bufs);
        if self.free.len() < self.max_free {
            self.free.push(q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then blocks after `budget` bytes.
    struct Trickle {
        out: Vec<u8>,
        cap: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.cap).min(self.budget);
            self.out.extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn preserves_order_across_partial_writes() {
        let mut pool = BufPool::new(1 << 20);
        let mut q = OutQueue::default();
        q.push_owned(&mut pool, |v| v.extend_from_slice(b"abc"));
        q.push_shared(SharedFrame::from_static(b"defg"));
        q.push_owned(&mut pool, |v| v.extend_from_slice(b"hi"));
        q.push_owned(&mut pool, |v| v.extend_from_slice(b"jk"));
        assert_eq!(q.len(), 11);
        let mut w = Trickle {
            out: Vec::new(),
            cap: 3,
            budget: 5,
        };
        assert_eq!(q.write_to(&mut w, &mut pool).unwrap(), 5);
        assert_eq!(q.len(), 6);
        w.budget = 100;
        assert_eq!(q.write_to(&mut w, &mut pool).unwrap(), 6);
        assert_eq!(w.out, b"abcdefghijk");
        assert!(q.is_empty());
    }

    #[test]
    fn discard_keeps_partly_written_head() {
        let mut pool = BufPool::new(1 << 20);
        let mut q = OutQueue::default();
        q.push_shared(SharedFrame::from_static(b"0123456789"));
        q.push_shared(SharedFrame::from_static(b"abcdef"));
        let mut w = Trickle {
            out: Vec::new(),
            cap: 4,
            budget: 4,
        };
        q.write_to(&mut w, &mut pool).unwrap();
        q.discard_unsent(&mut pool);
        assert_eq!(q.len(), 6);
        q.push_owned(&mut pool, |v| v.extend_from_slice(b"X"));
        w.budget = 100;
        q.write_to(&mut w, &mut pool).unwrap();
        assert_eq!(w.out, b"0123456789X");
        // Nothing partly written: everything goes.
        q.push_shared(SharedFrame::from_static(b"zz"));
        q.discard_unsent(&mut pool);
        assert!(q.is_empty());
    }
}
