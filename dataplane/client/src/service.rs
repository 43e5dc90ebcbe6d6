//! Addresses, flows and the service a flow asks for.
//!
//! [`Service`] is a builder with the defaults most applications want: best effort over the
//! link-state shortest path. [`Flow`] is the handle `open_flow` returns; it is a small `Copy`
//! value, valid on the client that opened it until `close_flow`.

use core::fmt;
use core::str::FromStr;
use std::time::Duration;

use weft_shared::ids::{NodeId, Port};
use weft_shared::session::{
    DeliveryMode, Destination, FlowHandle, LinkProtocol, OpenFlow, RoutingMode, Strikes,
};

/// A client's address in the overlay: a port on a node, written `NODE:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    /// The node.
    pub node: NodeId,
    /// The port on that node.
    pub port: Port,
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.port)
    }
}

/// Why a `NODE:PORT` string did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad address {input:?}: expected NODE:PORT with NODE in 1..=1023 and PORT in 0..=65535")]
pub struct AddrParseError {
    /// The text that did not parse.
    pub input: String,
}

impl FromStr for Addr {
    type Err = AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || AddrParseError {
            input: s.to_owned(),
        };
        let (node, port) = s.split_once(':').ok_or_else(err)?;
        let node = node.parse().ok().and_then(NodeId::new).ok_or_else(err)?;
        let port = Port(port.parse().map_err(|_| err())?);
        Ok(Addr { node, port })
    }
}

impl From<Addr> for Destination {
    fn from(a: Addr) -> Self {
        Destination::Node {
            node: a.node,
            port: a.port,
        }
    }
}

/// NM-strikes parameters used by [`Service::realtime`] unless changed: 3 requests per gap and
/// 2 retransmissions per request. A node refuses values beyond its tables (`Unsupported`).
pub const DEFAULT_STRIKES: Strikes = Strikes { n: 3, m: 2 };

/// The service a flow asks for: link protocol, routing mode and their parameters.
///
/// ```
/// use std::time::Duration;
/// use weft_client::Service;
/// use weft_shared::session::RoutingMode;
///
/// let default = Service::default(); // best effort, link-state routing
/// let video = Service::realtime(Duration::from_millis(200)).routing(RoutingMode::KPaths(2));
/// # let _ = (default, video);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    protocol: LinkProtocol,
    routing: RoutingMode,
    priority: u8,
    deadline_us: u32,
    strikes: Strikes,
    delivery: DeliveryMode,
    pack_delay_us: u32,
}

impl Default for Service {
    /// Best effort over the link-state shortest path.
    fn default() -> Self {
        Service::best_effort()
    }
}

impl Service {
    /// Forward and forget, over the link-state shortest path.
    pub const fn best_effort() -> Self {
        Service {
            protocol: LinkProtocol::BestEffort,
            routing: RoutingMode::LinkState,
            priority: 0,
            deadline_us: 0,
            strikes: Strikes { n: 0, m: 0 },
            delivery: DeliveryMode::InOrderAsap,
            pack_delay_us: 0,
        }
    }

    /// Hop-by-hop ARQ with in-order, exactly-once delivery, over the link-state shortest path.
    pub const fn reliable() -> Self {
        Service {
            protocol: LinkProtocol::Reliable,
            ..Service::best_effort()
        }
    }

    /// NM-strikes with a per-message `deadline` (whole microseconds, saturating at `u32::MAX`),
    /// [`DEFAULT_STRIKES`] and delivery as soon as in order.
    pub fn realtime(deadline: Duration) -> Self {
        Service {
            protocol: LinkProtocol::Realtime,
            deadline_us: u32::try_from(deadline.as_micros()).unwrap_or(u32::MAX),
            strikes: DEFAULT_STRIKES,
            ..Service::best_effort()
        }
    }

    /// Intrusion-tolerant priority at `priority` (higher is served first).
    pub const fn it_priority(priority: u8) -> Self {
        Service {
            protocol: LinkProtocol::ItPriority,
            priority,
            ..Service::best_effort()
        }
    }

    /// Intrusion-tolerant reliable.
    pub const fn it_reliable() -> Self {
        Service {
            protocol: LinkProtocol::ItReliable,
            ..Service::best_effort()
        }
    }

    /// The same service with another routing mode.
    pub const fn routing(mut self, routing: RoutingMode) -> Self {
        self.routing = routing;
        self
    }

    /// The same service with other NM-strikes parameters (realtime only).
    pub const fn strikes(mut self, n: u8, m: u8) -> Self {
        self.strikes = Strikes { n, m };
        self
    }

    /// The same service with a pack delay (best effort only; at most
    /// [`MAX_PACK_DELAY_US`](weft_shared::session::MAX_PACK_DELAY_US)): the source node may hold
    /// each message up to `delay_us` microseconds so that later ones share its datagram.
    pub const fn pack_delay(mut self, delay_us: u32) -> Self {
        self.pack_delay_us = delay_us;
        self
    }

    /// The pack delay in microseconds (0: messages are packed within one turn only).
    pub const fn pack_delay_us(&self) -> u32 {
        self.pack_delay_us
    }

    /// The same service with another delivery mode (realtime only).
    pub const fn delivery(mut self, delivery: DeliveryMode) -> Self {
        self.delivery = delivery;
        self
    }

    /// The link protocol.
    pub const fn protocol(&self) -> LinkProtocol {
        self.protocol
    }

    /// The routing mode.
    pub const fn routing_mode(&self) -> RoutingMode {
        self.routing
    }

    /// The per-message deadline in microseconds (0: none).
    pub const fn deadline_us(&self) -> u32 {
        self.deadline_us
    }

    /// The `OpenFlow` request for a flow from `local_port` to `destination` with this service.
    pub const fn open_flow(&self, local_port: Port, destination: Destination) -> OpenFlow {
        OpenFlow {
            local_port,
            destination,
            protocol: self.protocol,
            routing: self.routing,
            priority: self.priority,
            deadline_us: self.deadline_us,
            strikes: self.strikes,
            delivery: self.delivery,
            pack_delay_us: self.pack_delay_us,
        }
    }
}

/// An open flow: a handle for `send`, `send_batch` and `close_flow` on the client that opened
/// it. Copying it does not open another flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub(crate) handle: FlowHandle,
    pub(crate) local_port: Port,
    pub(crate) destination: Destination,
    pub(crate) service: Service,
}

impl Flow {
    /// The node's handle for this flow on this connection.
    pub const fn handle(&self) -> FlowHandle {
        self.handle
    }

    /// The local port the flow sends from.
    pub const fn local_port(&self) -> Port {
        self.local_port
    }

    /// Where the flow sends.
    pub const fn destination(&self) -> Destination {
        self.destination
    }

    /// The service the flow was opened with.
    pub const fn service(&self) -> Service {
        self.service
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print() {
        let a: Addr = "12:7000".parse().unwrap();
        assert_eq!((a.node.get(), a.port), (12, Port(7000)));
        assert_eq!(a.to_string(), "12:7000");
        for bad in ["", "12", "0:1", "1024:1", "1:65536", "x:1", "1:-1", ":5"] {
            assert!(bad.parse::<Addr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn services_fill_open_flow() {
        let dest = Destination::from("3:9".parse::<Addr>().unwrap());
        let o = Service::default().open_flow(Port(1), dest);
        assert_eq!(o.protocol, LinkProtocol::BestEffort);
        assert_eq!(o.routing, RoutingMode::LinkState);
        assert_eq!(o.deadline_us, 0);
        let r = Service::realtime(Duration::from_millis(150))
            .routing(RoutingMode::KPaths(2))
            .strikes(4, 1)
            .open_flow(Port(1), dest);
        assert_eq!(r.protocol, LinkProtocol::Realtime);
        assert_eq!(r.deadline_us, 150_000);
        assert_eq!(r.routing, RoutingMode::KPaths(2));
        assert_eq!(r.strikes, Strikes { n: 4, m: 1 });
    }
}
