//! How a client's message leaves worker 0: [`Originate`], the [`SessionSink`] that turns a
//! `Send` into an overlay record on the first link (or, between two clients of this node, into
//! the bounded [`LocalQueue`] delivered right after the client's batch).
//!
//! - To a node: the FIB's next hop.
//! - To an anycast group: towards the member node the FIB chose (the nearest), or to one local
//!   member when that is this node.
//! - To a multicast group: one copy on each out-link of this node's own tree for the group,
//!   and every local member, from the FIB's (group, this node) entry (`docs/groups.md`). A copy
//!   that cannot go is counted; the send is refused only when no copy went. A reliable
//!   message to a group needs room in every tree link's sender, or it is refused whole
//!   (`QueueFull`), so a client retrying it never duplicates a copy.
//!
//! Real-time messages go through the first link's `RtLinks` sender, reliable ones to a group
//! through its `RelLinks` sender (hop by hop; end-to-end recovery is for flows to a node and
//! lives in [`crate::reliable_flows`]), best effort straight into the tx queue.

use std::ops::Range;

use std::num::NonZeroU32;
use std::time::Duration;

use weft_proto::forward::{DEFAULT_TTL, DataRecord, Forwarder, LinkSender, NextHop};
use weft_proto::realtime::{RtLinks, RtMeta};
use weft_proto::reliable::RelLinks;
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, GroupId, Incarnation, LinkId, NodeId, Port};
use weft_shared::session::{
    DeliveredTo, DeliveryMode, Destination, ErrorCode, LinkProtocol, RoutingMode,
};
use weft_shared::shm::fib::FibTable;
use weft_shared::shm::{Counter, WorkerCounters};
use weft_shared::time::Instant;
use weft_shared::wire::{DataRepr, Delivery, LinkProto, OverlayRepr, RecordFlags, Route, Strikes};

use crate::links::Links;
use crate::packer::{PackTx, Packer};
use crate::reliable_flows::{E2E_ACK_PORT, SourceInfo};
use crate::session::{DeliverInfo, FlowService, OutboundMessage, SessionSink};
use crate::uring::TxQueue;

/// Bytes of payload the same-node queue holds per batch.
const LOCAL_BYTES: usize = 256 * 1024;
/// Messages the same-node queue holds per batch.
const LOCAL_MESSAGES: usize = 1024;
/// A record body is encoded here first when a link sender keeps a copy (real time, reliable)
/// or several links get one.
const RECORD_SCRATCH: usize = 2048;

/// Same-node messages waiting for the end of the client batch. Fixed capacity.
pub struct LocalQueue {
    bytes: Vec<u8>,
    items: Vec<(DeliveredTo, Port, DeliverInfo, Range<usize>)>,
}

impl Default for LocalQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalQueue {
    /// An empty queue with its fixed capacity allocated.
    pub fn new() -> Self {
        LocalQueue {
            bytes: Vec::with_capacity(LOCAL_BYTES),
            items: Vec::with_capacity(LOCAL_MESSAGES),
        }
    }

    fn push(
        &mut self,
        to: DeliveredTo,
        port: Port,
        info: DeliverInfo,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        if self.items.len() == LOCAL_MESSAGES || self.bytes.len() + payload.len() > LOCAL_BYTES {
            return Err(DropReason::QueueFull);
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.items.push((to, port, info, start..self.bytes.len()));
        Ok(())
    }

    pub(crate) fn drain(&mut self, mut f: impl FnMut(DeliveredTo, Port, &DeliverInfo, &[u8])) {
        for (to, port, info, range) in self.items.drain(..) {
            f(to, port, &info, &self.bytes[range]);
        }
        self.bytes.clear();
    }
}

/// What a client's send needs: the FIB, the links, and worker 0's sender and tx queue.
pub struct Originate<'a> {
    /// Batch time.
    pub now: Instant,
    /// This node.
    pub node: NodeId,
    /// The data plane's incarnation (the overlay header's source incarnation).
    pub incarnation: Incarnation,
    /// The pipeline (for the next hop).
    pub forwarder: &'a Forwarder,
    /// The FIB generation entered for this batch.
    pub fib: &'a FibTable,
    /// The node's links.
    pub links: &'a Links,
    /// Worker 0's packet builder.
    pub sender: &'a mut LinkSender,
    /// Worker 0's open data packets.
    pub packer: &'a mut Packer,
    /// Worker 0's counters.
    pub counters: &'a WorkerCounters,
    /// Worker 0's tx queue.
    pub tx: &'a mut TxQueue,
    /// Where same-node messages wait until the batch ends.
    pub local: &'a mut LocalQueue,
    /// Worker 0's real-time link state (lane 0).
    pub rt: &'a mut RtLinks,
    /// Worker 0's reliable link state (lane 0).
    pub rel: &'a mut RelLinks,
}

impl<'a> Originate<'a> {
    /// A sink for one batch of client requests.
    #[allow(
        clippy::too_many_arguments,
        reason = "worker 0's state, borrowed once per batch"
    )]
    pub fn new(
        now: Instant,
        node: NodeId,
        incarnation: Incarnation,
        forwarder: &'a Forwarder,
        fib: &'a FibTable,
        links: &'a Links,
        sender: &'a mut LinkSender,
        packer: &'a mut Packer,
        counters: &'a WorkerCounters,
        tx: &'a mut TxQueue,
        local: &'a mut LocalQueue,
        rt: &'a mut RtLinks,
        rel: &'a mut RelLinks,
    ) -> Self {
        Originate {
            now,
            node,
            incarnation,
            forwarder,
            fib,
            links,
            sender,
            packer,
            counters,
            tx,
            local,
            rt,
            rel,
        }
    }

    /// Hands message `seq` (end to end, from 1) of reliable flow `info` to the first link's
    /// reliable sender on the route of the moment; `false` if it cannot leave now (no route,
    /// a full window): it stays in the flow's source and goes later.
    pub fn transmit_reliable(&mut self, info: &SourceInfo, seq: u64, payload: &[u8]) -> bool {
        let Ok(NextHop::Link(link)) = self.forwarder.next_hop(info.dst, self.fib, self.links)
        else {
            return false;
        };
        if !self.rel.has_room(link) {
            return false;
        }
        let delay = self.links.get(link).map_or(0, |l| l.one_way_delay_us());
        let data = DataRepr {
            overlay: OverlayRepr {
                route: Route::Unicast(info.dst),
                ttl: DEFAULT_TTL,
                link_proto: LinkProto::Reliable,
                delivery: Delivery::AsSoonAsOrdered,
                priority: 0,
                strikes: Strikes::NONE,
                src: self.node,
                src_port: info.src_port,
                dst_port: info.dst_port,
                src_incarnation: self.incarnation,
                flow: info.flow,
                seq: seq - 1,
                deadline_us: None,
                age_us: delay,
            },
            fragment: None,
            payload,
        };
        let rtt = Duration::from_micros(2 * u64::from(delay));
        self.keep_reliable(link, rtt, &data).is_ok()
    }

    /// Hands `data` to `link`'s reliable sender, encoded straight into the copy it keeps;
    /// returns its `link_seq`.
    fn keep_reliable(
        &mut self,
        link: LinkId,
        rtt: Duration,
        data: &DataRepr<'_>,
    ) -> Result<u32, DropReason> {
        self.rel.send_with(self.now, link, rtt, |slot| {
            data.emit(slot)
                .map_err(weft_proto::forward::emit_error_drop)
        })
    }

    /// Sends an end-to-end ack (`body`, [`crate::reliable_flows::AckBody`]) to node `to`, best
    /// effort, from the acked flow's destination port `src_port`.
    pub fn send_e2e_ack(
        &mut self,
        to: NodeId,
        src_port: Port,
        body: &[u8],
    ) -> Result<(), DropReason> {
        let NextHop::Link(link) = self.forwarder.next_hop(to, self.fib, self.links)? else {
            return Err(DropReason::Unsupported("an end-to-end ack to this node"));
        };
        let delay = self.links.get(link).map_or(0, |l| l.one_way_delay_us());
        let data = DataRepr {
            overlay: OverlayRepr {
                route: Route::Unicast(to),
                ttl: DEFAULT_TTL,
                link_proto: LinkProto::BestEffort,
                delivery: Delivery::AsSoonAsOrdered,
                priority: 0,
                strikes: Strikes::NONE,
                src: self.node,
                src_port,
                dst_port: E2E_ACK_PORT,
                src_incarnation: self.incarnation,
                flow: FlowId(0),
                seq: 0,
                deadline_us: None,
                age_us: delay,
            },
            fragment: None,
            payload: body,
        };
        self.send_data(link, &DataRecord::Message(&data))
    }

    /// Sends a data record on `link` through worker 0's packer.
    fn send_data(&mut self, link: LinkId, record: &DataRecord<'_>) -> Result<(), DropReason> {
        let mut t = PackTx {
            tx: self.tx,
            sender: self.sender,
            links: self.links,
            worker: 0,
            counters: self.counters,
        };
        self.packer.send(&mut t, link, record)
    }
}

impl Originate<'_> {
    /// Queues a message for this node's own clients, as it was addressed.
    fn push_local(
        &mut self,
        route: Route,
        port: Port,
        msg: &OutboundMessage<'_>,
    ) -> Result<(), DropReason> {
        let to = match route {
            Route::Multicast(g) => DeliveredTo::Multicast(g),
            Route::Anycast(g) => DeliveredTo::Anycast(g),
            Route::Unicast(_) | Route::SourceRouted { .. } => DeliveredTo::Node,
        };
        let info = DeliverInfo {
            from_node: self.node,
            from_port: msg.src_port,
            flow: msg.flow,
            seq: msg.seq,
            age_us: 0,
            group: None,
        };
        self.local.push(to, port, info, msg.payload)
    }

    /// One copy on each out-link of this node's tree for `group`, and the local members.
    fn send_multicast(
        &mut self,
        group: GroupId,
        port: Port,
        msg: &OutboundMessage<'_>,
    ) -> Result<(), DropReason> {
        let route = Route::Multicast(group);
        let fanout = self
            .forwarder
            .multicast_fanout(group, self.node, self.fib, self.links)?;
        if msg.service.protocol == LinkProtocol::Reliable
            && !fanout.copies(None).all(|l| self.rel.has_room(l))
        {
            return Err(DropReason::QueueFull);
        }
        let (mut went, mut failed) = (0u32, None);
        if fanout.local {
            match self.push_local(route, port, msg) {
                Ok(()) => went += 1,
                Err(reason) => failed = Some(reason),
            }
        }
        for link in fanout.copies(None) {
            match self.send_on(link, route, port, msg) {
                Ok(()) => {
                    went += 1;
                    self.counters.add(Counter::McastCopies, 1);
                }
                Err(reason) => {
                    if failed.is_some() {
                        self.counters.add_drop(reason, 1);
                    }
                    failed.get_or_insert(reason);
                }
            }
        }
        match failed {
            // The caller counts a refused send once; the copies that did go stand.
            Some(reason) if went == 0 => Err(reason),
            Some(reason) => {
                self.counters.add_drop(reason, 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Sends message `msg` (addressed by `route`, to `port`) on `link`: best effort into the
    /// tx queue, real time and reliable through the link's sender, which keeps a copy.
    fn send_on(
        &mut self,
        link: LinkId,
        route: Route,
        port: Port,
        msg: &OutboundMessage<'_>,
    ) -> Result<(), DropReason> {
        let delay = self.links.get(link).map_or(0, |l| l.one_way_delay_us());
        let service = &msg.service;
        let realtime = service.protocol == LinkProtocol::Realtime;
        let reliable = service.protocol == LinkProtocol::Reliable;
        let data = DataRepr {
            overlay: OverlayRepr {
                route,
                ttl: DEFAULT_TTL,
                link_proto: if realtime {
                    LinkProto::Realtime
                } else if reliable {
                    LinkProto::Reliable
                } else {
                    LinkProto::BestEffort
                },
                delivery: match service.delivery {
                    DeliveryMode::AtDeadline if realtime => Delivery::AtDeadline,
                    _ => Delivery::AsSoonAsOrdered,
                },
                priority: 0,
                strikes: if realtime {
                    Strikes::new(service.strikes.n, service.strikes.m).ok_or(
                        DropReason::BadField {
                            field: "flow.strikes",
                            value: service.strikes.n.max(service.strikes.m).into(),
                        },
                    )?
                } else {
                    Strikes::NONE
                },
                src: self.node,
                src_port: msg.src_port,
                dst_port: port,
                src_incarnation: self.incarnation,
                flow: msg.flow,
                seq: msg.seq,
                deadline_us: if realtime {
                    NonZeroU32::new(service.deadline_us)
                } else {
                    None
                },
                age_us: delay,
            },
            fragment: None,
            payload: msg.payload,
        };
        if !realtime && !reliable {
            let record = DataRecord::Message(&data);
            if service.pack_delay_us == 0 || !self.packer.enabled() {
                return self.send_data(link, &record);
            }
            let close_at = self
                .now
                .saturating_add(Duration::from_micros(u64::from(service.pack_delay_us)));
            let mut t = PackTx {
                tx: self.tx,
                sender: self.sender,
                links: self.links,
                worker: 0,
                counters: self.counters,
            };
            return self.packer.send_held(&mut t, link, &record, close_at);
        }
        let one_way = Duration::from_micros(u64::from(delay));
        if reliable {
            // The link's sender numbers it and keeps it, encoded straight into its copy; it
            // leaves from the worker's reliable turn, as the window and pacer allow.
            return self.keep_reliable(link, one_way * 2, &data).map(|_| ());
        }
        // Encode the record body, let the link's sender number it and keep a copy.
        let mut body = [0u8; RECORD_SCRATCH];
        let n = data
            .emit(&mut body)
            .map_err(weft_proto::forward::emit_error_drop)?;
        let body = &body[..n];
        let remaining = service.deadline_us.saturating_sub(delay);
        let rt_meta = RtMeta {
            strikes: data.overlay.strikes,
            deadline: self
                .now
                .saturating_add(one_way)
                .saturating_add(Duration::from_micros(u64::from(remaining))),
        };
        let link_seq = self.rt.send(self.now, link, one_way, rt_meta, body)?;
        let record = DataRecord::Encoded {
            body,
            link_seq,
            flags: RecordFlags::NONE,
        };
        self.send_data(link, &record)
    }
}

impl SessionSink for Originate<'_> {
    fn send(&mut self, msg: &OutboundMessage<'_>) -> Result<(), DropReason> {
        let (route, port) = match msg.dst {
            Destination::Node { node, port } => (Route::Unicast(node), port),
            Destination::Multicast { group, port } => (Route::Multicast(group), port),
            Destination::Anycast { group, port } => (Route::Anycast(group), port),
        };
        if let Route::Multicast(group) = route {
            return self.send_multicast(group, port, msg);
        }
        match self.forwarder.route_hop(&route, self.fib, self.links)? {
            NextHop::Local => self.push_local(route, port, msg),
            NextHop::Link(link) => self.send_on(link, route, port, msg),
        }
    }

    fn flow_opened(
        &mut self,
        _flow: FlowId,
        _src_port: Port,
        dst: Destination,
        service: &FlowService,
    ) -> Result<(), ErrorCode> {
        // Best effort and real time to anything; reliable here only to a group (reliable flows
        // to a node are end to end, `crate::reliable_flows`); link-state routing only.
        let to_group = !matches!(dst, Destination::Node { .. });
        let supported = match service.protocol {
            LinkProtocol::BestEffort | LinkProtocol::Realtime => true,
            LinkProtocol::Reliable => to_group,
            _ => false,
        } && service.routing == RoutingMode::LinkState;
        if supported {
            Ok(())
        } else {
            Err(ErrorCode::Unsupported)
        }
    }
}
