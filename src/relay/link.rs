//! One Redis connection of the relay thread: a non-blocking socket registered with the relay's
//! mio `Poll`, a send buffer of pipelined commands and a receive buffer decoded incrementally.
//!
//! Owns the socket and its buffers only; what the commands mean and what the replies are for
//! is the relay thread's business (`thread.rs`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::resp::{Decoder, Reply, RespError};

/// Why a link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket failed (or the server closed it).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server sent something that is not RESP (or over our limits).
    #[error("{0}")]
    Resp(#[from] RespError),
    /// The server closed the connection.
    #[error("connection closed by redis")]
    Closed,
    /// A reply (or the connection setup) took longer than the relay allows: Redis is stalled
    /// or its host is gone without a reset.
    #[error("no reply from redis in {0:?}")]
    Timeout(std::time::Duration),
}

/// A connection in progress or established.
#[derive(Debug)]
pub struct Link {
    sock: TcpStream,
    token: Token,
    /// Commands not yet written (from `out_pos`).
    out: Vec<u8>,
    out_pos: usize,
    /// Received bytes not yet consumed.
    input: Vec<u8>,
    decoder: Decoder,
    /// Registered for writable readiness (while output is pending or connecting).
    writable: bool,
    /// The TCP connection is established (the first writable event came without error).
    pub connected: bool,
}

impl Link {
    /// Starts a non-blocking connect to `addr`, registered under `token`.
    pub fn connect(addr: SocketAddr, token: Token, registry: &Registry) -> io::Result<Self> {
        let mut sock = TcpStream::connect(addr)?;
        registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Self {
            sock,
            token,
            out: Vec::new(),
            out_pos: 0,
            input: Vec::new(),
            decoder: Decoder::default(),
            writable: true,
            connected: false,
        })
    }

    /// Deregisters the socket (it closes when dropped).
    pub fn close(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.sock);
    }

    /// Whether everything appended to the send buffer was written to the socket.
    pub fn written(&self) -> bool {
        self.out_pos >= self.out.len()
    }

    /// The send buffer, to append commands to (then call [`Link::flush`]).
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// On a writable event: finishes the connect (checking for an error) and writes.
    pub fn on_writable(&mut self, registry: &Registry) -> Result<(), LinkError> {
        if !self.connected {
            if let Some(e) = self.sock.take_error()? {
                return Err(e.into());
            }
            match self.sock.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let _ = self.sock.set_nodelay(true);
        }
        self.flush(registry)
    }

    /// Writes what the socket takes; keeps writable interest only while bytes remain.
    pub fn flush(&mut self, registry: &Registry) -> Result<(), LinkError> {
        if !self.connected {
            return Ok(());
        }
        while self.out_pos < self.out.len() {
            match self.sock.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 1 << 20 {
                self.out = Vec::new();
            }
        }
        let want = self.out_pos < self.out.len();
        if want != self.writable {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.sock, self.token, interest)?;
            self.writable = want;
        }
        Ok(())
    }

    /// On a readable event: reads until `WouldBlock` and hands every complete reply to
    /// `on_reply`, in order. `scratch` is the thread's read buffer (reused, never re-zeroed).
    pub fn on_readable(
        &mut self,
        scratch: &mut [u8],
        mut on_reply: impl FnMut(Reply),
    ) -> Result<(), LinkError> {
        loop {
            match self.sock.read(scratch) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => {
                    self.input.extend_from_slice(&scratch[..n]);
                    let mut used = 0;
                    while let Some((reply, n)) = self.decoder.decode(&self.input[used..])? {
                        used += n;
                        on_reply(reply);
                    }
                    self.input.drain(..used);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
