//! What the gateway's instances on different workers (and the AMQP bridge) send each other.
//!
//! Every user has a gateway *home* worker ([`home_of`], a fixed hash): it keeps where the
//! user's devices are (which workers, how many per endpoint), receives the user's AMQP
//! deliveries, and publishes the user's lifecycle events. Connections tell the home with
//! [`GatewayMsg::Up`] / [`GatewayMsg::Down`]; the home hands a delivery's frame to each worker
//! holding a device ([`GatewayMsg::Deliver`]), which answers [`GatewayMsg::Queued`] once the
//! frame is queued to every local device, so the home acknowledges the delivery only then.

use std::sync::Arc;

use crate::amqp::AmqpEvent;
use crate::reactor::SharedFrame;
use crate::relay::{ClientId, RelayEvent};

/// The gateway's name as a relay client: the relay's sink hands the replies to its Redis
/// commands to the gateway.
pub const RELAY_CLIENT: ClientId = ClientId(1);

/// The gateway home of `user`: every worker computes the same one.
pub fn home_of(user: &str, workers: usize) -> usize {
    crate::apps::chat::msg::user_home(user, workers)
}

/// A gateway message.
#[derive(Debug)]
pub enum GatewayMsg {
    /// From the bridge (to the owner's home, to the publishing worker, or to every worker).
    Amqp(AmqpEvent),
    /// From the Redis relay: the reply to one of the gateway's commands ([`RELAY_CLIENT`]).
    Relay(RelayEvent),
    /// From the Redis relay: connected (again); every worker registers its users again.
    RelayUp,
    /// To the home: a device of `user` opened on `worker`'s endpoint `endpoint`.
    Up {
        /// The user.
        user: Arc<str>,
        /// Where.
        worker: usize,
        /// Index of the endpoint in the configuration.
        endpoint: u16,
        /// The connection's query parameters as a JSON object (for the lifecycle event;
        /// empty when the endpoint publishes none).
        query: Box<[u8]>,
    },
    /// To the home: that device closed.
    Down {
        /// The user.
        user: Arc<str>,
        /// Where.
        worker: usize,
        /// Index of the endpoint.
        endpoint: u16,
        /// As in `Up` (the disconnect event carries the last device's parameters).
        query: Box<[u8]>,
    },
    /// From the home: queue `frame` to every local device of `user`, then answer `Queued`
    /// with `token` to `home`.
    Deliver {
        /// The owner.
        user: Arc<str>,
        /// `{"type":…,"data":…}`, framed once.
        frame: SharedFrame,
        /// The home.
        home: usize,
        /// The home's token for the delivery.
        token: u64,
    },
    /// To the home: a `Deliver` is queued on the sending worker.
    Queued {
        /// The home's token.
        token: u64,
    },
}
