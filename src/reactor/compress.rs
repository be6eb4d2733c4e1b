//! Which compressor or inflater a message uses, and the memory each connection pays for it.
//!
//! Owns the per-worker shared compressors (one per window size, created on first use), the
//! per-worker shared inflater for clients without context takeover, and each connection's
//! optional per-connection state. The transforms themselves are `ws::deflate` (sans-IO).

use crate::ws::assemble::DataKind;
use crate::ws::deflate::{CompressionMode, DeflateParams, Deflater, InflateError, Inflater};
use crate::ws::frame::{encode_frame, RSV1};

/// Compression state of one connection that negotiated permessage-deflate.
#[derive(Debug)]
pub(crate) struct ConnDeflate {
    pub(crate) params: DeflateParams,
    /// Inflate window kept between messages (the client uses context takeover).
    inflater: Option<Inflater>,
    /// Compressor kept between messages (dedicated mode, server context takeover).
    deflater: Option<Deflater>,
}

impl ConnDeflate {
    pub(crate) fn new(params: DeflateParams) -> Self {
        Self {
            params,
            inflater: None,
            deflater: None,
        }
    }

    /// Messages to this connection can share one compression per message (no server
    /// context takeover).
    pub(crate) fn is_shared(&self) -> bool {
        self.params.server_no_context_takeover
    }
}

/// Settings and shared state of one worker.
#[derive(Debug)]
pub(crate) struct WorkerDeflate {
    pub(crate) mode: CompressionMode,
    level: u8,
    /// Messages shorter than this go out uncompressed.
    pub(crate) min_size: usize,
    shared_inflater: Option<Inflater>,
    /// Indexed by window bits (8..=15).
    shared: [Option<Deflater>; 16],
    scratch: Vec<u8>,
}

impl WorkerDeflate {
    pub(crate) fn new(mode: CompressionMode, level: u8, min_size: usize) -> Self {
        Self {
            mode,
            level,
            min_size,
            shared_inflater: None,
            shared: Default::default(),
            scratch: Vec::new(),
        }
    }

    /// Inflates a compressed message from `conn` into `out`.
    pub(crate) fn inflate(
        &mut self,
        conn: &mut ConnDeflate,
        payload: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        if conn.params.client_no_context_takeover {
            self.shared_inflater
                .get_or_insert_with(Inflater::default)
                .inflate_message(payload, out, max, true)
        } else {
            conn.inflater
                .get_or_insert_with(Inflater::default)
                .inflate_message(payload, out, max, false)
        }
    }

    /// Appends one whole frame carrying `payload` for a connection: compressed when it
    /// negotiated permessage-deflate and the message is large enough, plain otherwise.
    pub(crate) fn encode_message(
        &mut self,
        conn: Option<&mut ConnDeflate>,
        kind: DataKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        if let Some(conn) = conn {
            if payload.len() >= self.min_size {
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.clear();
                let level = self.level;
                let bits = conn.params.server_max_window_bits;
                let ok = if conn.is_shared() {
                    self.shared_deflater(bits)
                        .compress_message(payload, &mut scratch, true)
                } else {
                    conn.deflater
                        .get_or_insert_with(|| Deflater::new(level, bits))
                        .compress_message(payload, &mut scratch, false)
                };
                if ok {
                    encode_frame(out, kind.opcode(), RSV1, &scratch);
                }
                self.scratch = scratch;
                if ok {
                    return;
                }
            }
        }
        encode_frame(out, kind.opcode(), 0, payload);
    }

    /// A whole compressed frame for every shared-mode connection with this window size, or
    /// `None` when the message goes out plain.
    pub(crate) fn shared_frame(
        &mut self,
        bits: u8,
        kind: DataKind,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        if payload.len() < self.min_size {
            return None;
        }
        self.scratch.clear();
        let mut scratch = std::mem::take(&mut self.scratch);
        let ok = self
            .shared_deflater(bits)
            .compress_message(payload, &mut scratch, true);
        let frame = ok.then(|| {
            let mut f = Vec::with_capacity(scratch.len() + 10);
            encode_frame(&mut f, kind.opcode(), RSV1, &scratch);
            f
        });
        self.scratch = scratch;
        frame
    }

    fn shared_deflater(&mut self, bits: u8) -> &mut Deflater {
        let level = self.level;
        let i = usize::from(bits.clamp(8, 15));
        self.shared[i].get_or_insert_with(|| Deflater::new(level, bits))
    }
}
