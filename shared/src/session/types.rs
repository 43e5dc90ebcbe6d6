//! Value types carried by session messages: flow handles, destinations and the flow's service
//! (link protocol, routing mode, parameters). Each enum has a stable one-byte wire code.

use crate::ids::{GroupId, NodeId, Port};

/// A flow as the node and one client know it: chosen by the node in `FlowOpened`, valid on that
/// connection only. Distinct from the network-wide [`FlowId`](crate::ids::FlowId).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowHandle(pub u32);

/// What an address names: one node, a multicast group or an anycast group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrKind {
    /// A single node.
    Node,
    /// Every member of a multicast group.
    Multicast,
    /// The nearest member of an anycast group.
    Anycast,
}

impl AddrKind {
    /// The wire code.
    pub const fn as_u8(self) -> u8 {
        match self {
            AddrKind::Node => 0,
            AddrKind::Multicast => 1,
            AddrKind::Anycast => 2,
        }
    }

    /// The kind with wire code `v`, if there is one.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(AddrKind::Node),
            1 => Some(AddrKind::Multicast),
            2 => Some(AddrKind::Anycast),
            _ => None,
        }
    }
}

/// Where a flow sends: a port on a node, or a port on a multicast or anycast group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A client's port on one node.
    Node {
        /// The node.
        node: NodeId,
        /// The port on that node.
        port: Port,
    },
    /// Every member of a multicast group, on this port.
    Multicast {
        /// The group.
        group: GroupId,
        /// The destination port.
        port: Port,
    },
    /// The nearest member of an anycast group, on this port.
    Anycast {
        /// The group.
        group: GroupId,
        /// The destination port.
        port: Port,
    },
}

impl Destination {
    /// The kind of address.
    pub const fn kind(self) -> AddrKind {
        match self {
            Destination::Node { .. } => AddrKind::Node,
            Destination::Multicast { .. } => AddrKind::Multicast,
            Destination::Anycast { .. } => AddrKind::Anycast,
        }
    }

    /// The destination port.
    pub const fn port(self) -> Port {
        match self {
            Destination::Node { port, .. }
            | Destination::Multicast { port, .. }
            | Destination::Anycast { port, .. } => port,
        }
    }
}

/// How a delivered message was addressed: to this node, or to a group this client joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveredTo {
    /// To this node and the local port.
    Node,
    /// To a multicast group the client joined.
    Multicast(GroupId),
    /// To an anycast group the client joined.
    Anycast(GroupId),
}

impl DeliveredTo {
    /// The kind of address.
    pub const fn kind(self) -> AddrKind {
        match self {
            DeliveredTo::Node => AddrKind::Node,
            DeliveredTo::Multicast(_) => AddrKind::Multicast,
            DeliveredTo::Anycast(_) => AddrKind::Anycast,
        }
    }
}

/// The hop-by-hop link protocol a flow uses (ARCHITECTURE.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkProtocol {
    /// Forward and forget.
    BestEffort,
    /// Hop-by-hop ARQ, in-order exactly-once delivery.
    Reliable,
    /// NM-strikes: per-packet deadline, N requests and M retransmissions per gap.
    Realtime,
    /// Intrusion-tolerant priority: per-source storage, oldest lowest-priority drop.
    ItPriority,
    /// Intrusion-tolerant reliable: per source-destination storage, backpressure, e2e acks.
    ItReliable,
}

impl LinkProtocol {
    /// The wire code.
    pub const fn as_u8(self) -> u8 {
        match self {
            LinkProtocol::BestEffort => 0,
            LinkProtocol::Reliable => 1,
            LinkProtocol::Realtime => 2,
            LinkProtocol::ItPriority => 3,
            LinkProtocol::ItReliable => 4,
        }
    }

    /// The protocol with wire code `v`, if there is one.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(LinkProtocol::BestEffort),
            1 => Some(LinkProtocol::Reliable),
            2 => Some(LinkProtocol::Realtime),
            3 => Some(LinkProtocol::ItPriority),
            4 => Some(LinkProtocol::ItReliable),
            _ => None,
        }
    }
}

/// How a flow's packets are routed (ARCHITECTURE.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoutingMode {
    /// Shortest path on the link-state graph.
    LinkState,
    /// Source-based: k node-disjoint paths (k >= 1; the node may refuse a large k).
    KPaths(u8),
    /// Source-based constrained flooding.
    Flooding,
    /// Source-based dissemination graph chosen for current conditions.
    DisseminationGraph,
}

impl RoutingMode {
    /// The wire code (the `k` parameter travels in its own byte).
    pub const fn code(self) -> u8 {
        match self {
            RoutingMode::LinkState => 0,
            RoutingMode::KPaths(_) => 1,
            RoutingMode::Flooding => 2,
            RoutingMode::DisseminationGraph => 3,
        }
    }

    /// The `k` byte on the wire: k for [`RoutingMode::KPaths`], else 0.
    pub const fn k(self) -> u8 {
        match self {
            RoutingMode::KPaths(k) => k,
            _ => 0,
        }
    }

    /// The mode with wire code `code` and parameter `k`, if they form one: k must be 1 or more
    /// for k-paths and 0 for every other mode.
    pub const fn from_wire(code: u8, k: u8) -> Option<Self> {
        match (code, k) {
            (0, 0) => Some(RoutingMode::LinkState),
            (1, 1..) => Some(RoutingMode::KPaths(k)),
            (2, 0) => Some(RoutingMode::Flooding),
            (3, 0) => Some(RoutingMode::DisseminationGraph),
            _ => None,
        }
    }
}

/// When the destination hands a realtime flow's messages to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// Each message exactly at its deadline (constant latency, jitter removed).
    AtDeadline,
    /// As soon as it is in order (a gap waits at most until the deadline).
    InOrderAsap,
}

impl DeliveryMode {
    /// The wire code.
    pub const fn as_u8(self) -> u8 {
        match self {
            DeliveryMode::AtDeadline => 0,
            DeliveryMode::InOrderAsap => 1,
        }
    }

    /// The mode with wire code `v`, if there is one.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(DeliveryMode::AtDeadline),
            1 => Some(DeliveryMode::InOrderAsap),
            _ => None,
        }
    }
}

/// NM-strikes parameters: the receiver sends up to `n` spaced requests for a gap, the sender up
/// to `m` spaced retransmissions. The node refuses values beyond its tables (`Unsupported`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Strikes {
    /// Requests per gap (N).
    pub n: u8,
    /// Retransmissions per request (M).
    pub m: u8,
}

/// The `OpenFlow` request: a flow from a bound local port to a destination, with its service.
///
/// The codec checks only what the wire can express (known codes, node id range). Whether the
/// combination makes sense (a deadline for realtime, strikes within the node's tables, a bound
/// local port) is the node's call, answered with an `Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpenFlow {
    /// The client's bound port the flow sends from.
    pub local_port: Port,
    /// Where the flow sends.
    pub destination: Destination,
    /// The link protocol.
    pub protocol: LinkProtocol,
    /// The routing mode.
    pub routing: RoutingMode,
    /// Priority for intrusion-tolerant priority (higher is served first); 0 otherwise.
    pub priority: u8,
    /// Per-message deadline in microseconds for realtime flows; 0 for none.
    pub deadline_us: u32,
    /// NM-strikes parameters for realtime flows.
    pub strikes: Strikes,
    /// Delivery mode for realtime flows.
    pub delivery: DeliveryMode,
    /// Best-effort flows: how long, in microseconds, the source node may hold the flow's
    /// messages so that later ones (of any flow to the same next hop) share their datagram;
    /// 0 = packed within one turn of the data plane only, never held. On the wire only when
    /// nonzero (`docs/session.md` "OpenFlow").
    pub pack_delay_us: u32,
}

/// The largest [`OpenFlow::pack_delay_us`] a node takes (10 ms); more is `Unsupported`.
pub const MAX_PACK_DELAY_US: u32 = 10_000;

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for v in 0..=u8::MAX {
            if let Some(p) = LinkProtocol::from_u8(v) {
                assert_eq!(p.as_u8(), v);
            } else {
                assert!(v > 4);
            }
            if let Some(k) = AddrKind::from_u8(v) {
                assert_eq!(k.as_u8(), v);
            } else {
                assert!(v > 2);
            }
            if let Some(d) = DeliveryMode::from_u8(v) {
                assert_eq!(d.as_u8(), v);
            } else {
                assert!(v > 1);
            }
        }
        assert_eq!(RoutingMode::from_wire(1, 0), None, "k-paths needs k >= 1");
        assert_eq!(RoutingMode::from_wire(0, 2), None, "k only with k-paths");
        assert_eq!(RoutingMode::from_wire(4, 0), None);
        let m = RoutingMode::KPaths(3);
        assert_eq!(RoutingMode::from_wire(m.code(), m.k()), Some(m));
    }
}
