//! Reading: bytes from a socket into the worker's shared receive buffer, then either a
//! request (head, optional body) handed to the application for a [`Decision`], or WebSocket
//! frames decoded in place and delivered as messages.
//!
//! Owns the order of input handling and what is kept between reads (only an unfinished head,
//! body or frame, in a pooled buffer). Output and endings go through [`Ctx`](super::ctx).

use std::io::{self, Read};

use super::app::{App, ConnId, Decision};
use super::compress::ConnDeflate;
use super::conn::Phase;
use super::stats;
use super::worker::Worker;
use crate::http::{self, parse_head, RequestHead, Response, Status};
use crate::ws::close::encode_close_payload;
use crate::ws::handshake::{validate_upgrade, write_accept};
use crate::ws::{deflate, CloseCode, DataKind, Event, OpCode};

/// Reads per readiness event before the connection yields to others (fairness).
const READ_BUDGET: usize = 16;

impl<A: App> Worker<A> {
    /// Reads until `WouldBlock`, or until a short read when the peer has not closed its side:
    /// a read that did not fill the buffer drained the socket, and anything arriving later
    /// raises a new edge, so the extra read(2) that would only say `WouldBlock` is skipped.
    /// When the event reports the peer's FIN (`read_closed`), reading goes on until EOF.
    pub(crate) fn on_readable(&mut self, key: usize, read_closed: bool) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let done = self.read_some(key, read_closed, &mut buf);
        self.read_buf = buf;
        if !done {
            self.rerun.push(key);
        }
    }

    /// One readiness event's reads; false when the budget ran out before the socket drained.
    fn read_some(&mut self, key: usize, read_closed: bool, buf: &mut [u8]) -> bool {
        for _ in 0..READ_BUDGET {
            let Some(conn) = self.conns.get_mut(key) else {
                return true;
            };
            if conn.phase == Phase::Closed {
                return true;
            }
            let n = match conn.sock.read(buf) {
                Ok(0) => {
                    // Peer's FIN. In Lingering this is the end we waited for; otherwise the
                    // peer left without a close handshake (1006 on its side).
                    self.ctx.close_now(key, conn);
                    return true;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.ctx.close_now(key, conn);
                    return true;
                }
            };
            conn.last_rx = self.ctx.now;
            stats::add(&self.ctx.stats.bytes_in, n as u64);
            let drained = n < buf.len() && !read_closed;
            if !matches!(conn.phase, Phase::Lingering | Phase::Pending) {
                // What the connection sends itself while this read is handled is corked
                // and written once, right after (its replies to one read, in one send(2)).
                // Unless the application sent messages to workers meanwhile: a reply may say
                // they are done (an ack after a request to a room's home), so it waits in
                // the queue, flushed at the end of the iteration as before the cork: after
                // this worker handled its own messages and woke the others.
                self.ctx.cork_key = key;
                let sent = self.ctx.peer_messages;
                self.handle_read(key, &mut buf[..n]);
                let write = self.ctx.peer_messages == sent;
                self.ctx.uncork(key, self.conns.get_mut(key), write);
            } // else: discard
            if drained {
                return true;
            }
        }
        false
    }

    /// Processes freshly read bytes: appends them to a leftover if there is one, otherwise
    /// handles them straight from the receive buffer and keeps only what is unfinished.
    fn handle_read(&mut self, key: usize, data: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(mut input) = conn.input.take() {
            input.extend_from_slice(data);
            let used = self.handle_input(key, &mut input);
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if matches!(
                conn.phase,
                Phase::Closed | Phase::Lingering | Phase::Pending
            ) || used == input.len()
            {
                self.ctx.bufs.put_buf(input);
            } else {
                input.drain(..used);
                conn.input = Some(input);
            }
        } else {
            let used = self.handle_input(key, data);
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if used < data.len()
                && matches!(
                    conn.phase,
                    Phase::Handshake | Phase::Body | Phase::Open | Phase::Closing
                )
            {
                let mut input = self.ctx.bufs.get_buf();
                input.extend_from_slice(&data[used..]);
                conn.input = Some(input);
            }
        }
    }

    /// Handles as much of `data` as is complete; returns the bytes used.
    fn handle_input(&mut self, key: usize, data: &mut [u8]) -> usize {
        let mut pos = 0;
        if matches!(
            self.conns.get(key).map(|c| c.phase),
            Some(Phase::Handshake | Phase::Body)
        ) {
            match self.handle_request(key, data) {
                Some(n) => pos = n,
                None => return data.len(),
            }
            if self.conns.get(key).map(|c| c.phase) != Some(Phase::Open) {
                return pos;
            }
        }
        pos + self.handle_frames(key, &mut data[pos..])
    }

    /// Parses the request and acts on the application's decision. `Some(n)`: `n` bytes of
    /// head used (0: incomplete, wait for more; the phase says whether the upgrade happened);
    /// `None`: answered, deferred or refused, discard the input.
    fn handle_request(&mut self, key: usize, data: &[u8]) -> Option<usize> {
        let conn = self.conns.get_mut(key)?;
        let id = ConnId {
            key: key as u32,
            gen: conn.gen,
        };
        let head = match parse_head(data, self.ctx.limits.max_head) {
            Ok(None) => return Some(0),
            Ok(Some(h)) => h,
            Err(e) => {
                stats::add(&self.ctx.stats.rejected, 1);
                self.ctx.respond(key, conn, &e.response());
                return None;
            }
        };
        let decision = if conn.phase == Phase::Body {
            // `limit` is the length `body_len` accepted when the application asked for it.
            let body = match http::body(&head, data, conn.limit as usize) {
                Ok(Some(body)) => body,
                Ok(None) => return Some(0),
                Err(e) => {
                    self.ctx.respond(key, conn, &e.response());
                    return None;
                }
            };
            let (app, mut cx) = self.cx();
            app.on_body(id, &head, body, &mut cx)
        } else {
            let (app, mut cx) = self.cx();
            app.on_request(id, &head, &mut cx)
        };
        self.apply(key, id, &head, data, decision)
    }

    fn apply(
        &mut self,
        key: usize,
        id: ConnId,
        head: &RequestHead<'_>,
        data: &[u8],
        decision: Decision<A::Conn>,
    ) -> Option<usize> {
        let conn = self.conns.get_mut(key)?;
        match decision {
            Decision::Respond(r) => {
                self.ctx.respond(key, conn, &r);
                None
            }
            Decision::Defer(state) => {
                conn.phase = Phase::Pending;
                conn.app = Some(state);
                if let Some(input) = conn.input.take() {
                    self.ctx.bufs.put_buf(input);
                }
                None
            }
            Decision::ReadBody { limit } => {
                if conn.phase == Phase::Body {
                    let r = Response::text(Status::INTERNAL_ERROR, "the body was already read");
                    self.ctx.respond(key, conn, &r);
                    return None;
                }
                match http::body_len(head, limit) {
                    Err(e) => {
                        self.ctx.respond(key, conn, &e.response());
                        None
                    }
                    Ok(n) => {
                        conn.phase = Phase::Body;
                        // Within `limit`, which the application keeps small (64 KiB for the API).
                        conn.limit = n.min(u32::MAX as usize) as u32;
                        // The body may have come with the head.
                        self.handle_request(key, data)
                    }
                }
            }
            Decision::Upgrade { state, max_message } => {
                let upgrade = match validate_upgrade(head) {
                    Ok(u) => u,
                    Err(e) => {
                        stats::add(&self.ctx.stats.rejected, 1);
                        self.ctx.respond(key, conn, &e.response());
                        return None;
                    }
                };
                let negotiated = deflate::negotiate(head.extensions(), self.ctx.deflate.mode);
                let ext = negotiated.as_ref().map(|(_, r)| r.as_str());
                // The 101 goes first into the connection's own output, with what `on_open`
                // sends after it, all written once this read is handled: after `on_open`. A
                // client may act on the 101 at once (a gateway device is owed every event
                // published after it sees it), so what `on_open` sets up is in place before.
                self.ctx
                    .push_own(key, conn, |v| write_accept(v, &upgrade, None, ext));
                conn.deflate = negotiated.map(|(p, _)| Box::new(ConnDeflate::new(p)));
                conn.phase = Phase::Open;
                conn.limit = max_message.min(u32::MAX as usize) as u32;
                conn.last_rx = self.ctx.now;
                conn.last_ping = self.ctx.now;
                stats::add(&self.ctx.stats.handshakes, 1);
                let mut state = state;
                let (app, mut cx) = self.cx();
                app.on_open(id, &mut state, &mut cx);
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.app = Some(state);
                }
                Some(head.head_len)
            }
        }
    }

    /// Decodes frames and hands messages to the application. The connection's assembler and
    /// application state are taken out of the slab while its frames are handled, so the
    /// application can reach every connection (its own included) through `Cx`.
    fn handle_frames(&mut self, key: usize, data: &mut [u8]) -> usize {
        let Some(conn) = self.conns.get_mut(key) else {
            return data.len();
        };
        let id = ConnId {
            key: key as u32,
            gen: conn.gen,
        };
        let mut asm = std::mem::take(&mut conn.asm);
        let mut state = conn.app.take();
        // Fixed for the connection's life (its limit and whether it negotiated deflate).
        let limits = self.ctx.limits.messages(conn.limit, conn.deflate.is_some());
        let mut messages = 0u64;
        let mut pos = 0;
        let used = loop {
            let Some(conn) = self.conns.get_mut(key) else {
                break data.len();
            };
            if pos >= data.len() || !matches!(conn.phase, Phase::Open | Phase::Closing) {
                break pos;
            }
            let decoded = match asm.handle_bytes(&mut data[pos..], &limits) {
                Ok(d) => d,
                Err(e) => {
                    stats::add(&self.ctx.stats.protocol_errors, 1);
                    tracing::debug!(key, error = %e, "protocol error");
                    self.ctx.fail(key, conn, e.close_code(), &e.to_string());
                    break data.len();
                }
            };
            let consumed = decoded.consumed;
            match decoded.event {
                None if consumed == 0 => break pos,
                None => {}
                Some(Event::Message {
                    kind,
                    payload,
                    compressed,
                }) => {
                    messages += 1;
                    if conn.phase != Phase::Open {
                        // after our close, data is discarded
                    } else if !compressed {
                        if let Some(s) = state.as_mut() {
                            let (app, mut cx) = self.cx();
                            app.on_message(id, s, kind, payload, &mut cx);
                        }
                    } else {
                        let mut inflated = std::mem::take(&mut self.ctx.inflated);
                        let result = match conn.deflate.as_deref_mut() {
                            // RSV1 is only accepted from connections that negotiated deflate.
                            None => Err((CloseCode::PROTOCOL, "unexpected rsv1")),
                            Some(cd) => self
                                .ctx
                                .deflate
                                .inflate(cd, payload, &mut inflated, limits.max_message)
                                .map_err(|e| {
                                    let code = e.close_code();
                                    if code == CloseCode::TOO_BIG {
                                        (code, "message too big")
                                    } else {
                                        (code, "invalid compressed data")
                                    }
                                })
                                .and_then(|()| {
                                    if kind == DataKind::Text
                                        && std::str::from_utf8(&inflated).is_err()
                                    {
                                        Err((
                                            CloseCode::INVALID_PAYLOAD,
                                            "invalid utf-8 in text message",
                                        ))
                                    } else {
                                        Ok(())
                                    }
                                }),
                        };
                        match result {
                            Err((code, reason)) => {
                                stats::add(&self.ctx.stats.protocol_errors, 1);
                                self.ctx.fail(key, conn, code, reason);
                            }
                            Ok(()) => {
                                if let Some(s) = state.as_mut() {
                                    let (app, mut cx) = self.cx();
                                    app.on_message(id, s, kind, &inflated, &mut cx);
                                }
                            }
                        }
                        if inflated.capacity() > 1 << 20 {
                            inflated = Vec::new(); // keep no big buffer around
                        }
                        self.ctx.inflated = inflated;
                    }
                }
                Some(Event::Ping(p)) if conn.phase == Phase::Open => {
                    self.ctx.queue_control(key, conn, OpCode::Pong, p);
                }
                Some(Event::Ping(_) | Event::Pong(_)) => {}
                Some(Event::Close(frame)) => {
                    if conn.phase == Phase::Open {
                        // "If an endpoint receives a Close frame and did not previously send a
                        // Close frame, the endpoint MUST send a Close frame in response ...
                        // typically echoing the status code it received."
                        let mut payload = [0u8; 125];
                        let n = frame
                            .code
                            .map_or(0, |c| encode_close_payload(c, "", &mut payload));
                        self.ctx
                            .queue_control(key, conn, OpCode::Close, &payload[..n]);
                    } else {
                        self.ctx.mark_dirty(key, conn); // the flush closes the socket
                    }
                    self.ctx.linger(conn);
                    conn.close_done = true;
                    break data.len();
                }
            }
            pos += consumed;
        };
        stats::add(&self.ctx.stats.messages_in, messages);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.asm = asm;
            conn.app = state;
        }
        used
    }
}
