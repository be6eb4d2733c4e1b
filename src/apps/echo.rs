//! `/echo`: every data message goes back to its sender with its opcode.
//!
//! The simplest application: no state, no peers. The reply is encoded into the sender's own
//! pooled output buffer (compressed for it when it negotiated permessage-deflate), so an
//! echoed message allocates nothing.

use crate::reactor::{ConnId, Cx};
use crate::ws::DataKind;

/// Sends `payload` back to `id`.
pub fn on_message<S, P>(id: ConnId, kind: DataKind, payload: &[u8], cx: &mut Cx<'_, S, P>) {
    // Queued, evicted or gone: nothing more to do either way.
    let _ = cx.send(id, kind, payload);
}
