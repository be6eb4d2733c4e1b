//! Listening sockets: one per worker on the same address with SO_REUSEPORT, so the kernel
//! spreads incoming connections over the workers without a shared accept queue.
//!
//! Owns socket creation only; the worker decides what to do with accept errors.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// True where a connection accepted from a listener with TCP_NODELAY has it too (Linux
/// clones the listener's TCP options into the connection): the worker then spends no
/// setsockopt(2) per accepted connection. Pinned by a test.
pub(crate) const NODELAY_INHERITED: bool = cfg!(target_os = "linux");

/// Binds a non-blocking listener with SO_REUSEADDR, SO_REUSEPORT and TCP_NODELAY (for the
/// connections it accepts, see [`NODELAY_INHERITED`]).
pub(crate) fn bind_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    sock.set_nodelay(true)?;
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    Ok(sock.into())
}

/// Accept errors that mean "out of a resource": retrying at once would busy-loop.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_connections_have_nodelay_where_it_is_inherited() {
        let listener = bind_reuseport("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let mut accepted = None;
        for _ in 0..200 {
            match listener.accept() {
                Ok((s, _)) => {
                    accepted = Some(s);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        let accepted = accepted.expect("no connection accepted within 2 s");
        if NODELAY_INHERITED {
            assert!(accepted.nodelay().unwrap(), "TCP_NODELAY not inherited");
        }
    }
}
