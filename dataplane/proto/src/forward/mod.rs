//! The per-core forwarding pipeline: one received datagram in, per-record decisions out.
//!
//! [`Forwarder::handle_datagram`] checks the link header, then walks the records and decides for
//! each one, without allocating, reading a clock or touching a socket:
//!
//! | record  | decision |
//! |---------|----------|
//! | Hello   | [`PipelineOutput::hello`]: to the link monitor of the link named in the header |
//! | Control | [`PipelineOutput::control`]: the envelope is punted to the control plane |
//! | Data    | TTL and age, then [`PipelineOutput::deliver`] (to this node) or [`PipelineOutput::forward`] (FIB next hop) |
//! | Nack (real-time) | [`PipelineOutput::nack`]: to the lane that sent the data it asks for |
//! | Ack, Nack (reliable) | [`PipelineOutput::reliable_feedback`]: to the lane that sent the data they answer |
//!
//! Group-addressed data (`docs/groups.md`) takes the same paths: an anycast record goes, hop by
//! hop, towards the member node the FIB names for its group (and is delivered here when that is
//! this node); a multicast record is looked up by (group, source node) and copied onto every
//! out-link of the source's tree (never back onto the link it came from), and delivered here
//! when the node has members (`group`). Each copy gets its own age and, for real-time and
//! reliable flows, its own link sender: recovery is per tree link, hop by hop.
//!
//! Every other outcome is a [`PipelineOutput::drop_record`] with its [`DropReason`]: one per bad
//! record, or one for the whole datagram when the link header is bad. The sender link and path
//! come from the header (sender node, link id, path id), never from the UDP source address, so
//! relays and NAT do not confuse them; the sender must be the configured neighbour on that link.
//!
//! Data records are changed in place (TTL decremented, age increased by the residence time and
//! the next link's one-way delay) before they are handed to `forward`; the caller copies the
//! record body into an outgoing packet built with [`LinkSender`].
//!
//! Real-time data (`link_proto` 2, NM-Strikes, `docs/realtime.md`) also goes through the
//! worker's [`RtLinks`] (from [`PipelineOutput::realtime`]): on arrival the receiver of
//! (link, peer lane) suppresses duplicates and notes gaps; on the way out the sender of the next
//! link assigns the `link_seq` and keeps a copy for retransmission. A record whose budget is
//! spent is dropped as [`DropReason::Late`]. An output without real-time state refuses such
//! records as unsupported.
//!
//! Reliable data (`link_proto` 1, `docs/reliable.md`) goes through the worker's [`RelLinks`]
//! (from [`PipelineOutput::reliable`]): on arrival the receiver of (link, peer lane) says
//! whether the record is new; a new record is delivered or taken by the next link's sender
//! (which transmits it from the worker's reliable turn, as its window, congestion window and
//! pacer allow) and only then accepted (acked). A record the next link has no room for, or no
//! route yet, is refused: not acked, so the previous hop keeps it and sends it again. Nothing is
//! dropped that was acked, except what can never be delivered (TTL spent, a malformed record).
//!
//! # Call order
//!
//! The engine, once per received datagram: `handle_datagram(rx_at, now, datagram, fib, links,
//! out)`. `rx_at` is when the batch holding the datagram was received and `now` the engine's
//! batch time; both come from the engine's clock (time is an input). The FIB view must stay
//! entered for the call.

mod group;
mod hello;
mod pack;
mod sender;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests_group;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests_realtime;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests_reliable;

use core::time::Duration;
use weft_shared::DropReason;

use weft_shared::ids::{FlowId, Incarnation, LinkId, NodeId, Port};
use weft_shared::session::DeliveredTo;
use weft_shared::shm::fib::FibTable;
use weft_shared::time::Instant;
use weft_shared::wire::{
    AckRepr, ControlRepr, DataPacket, Delivery, HelloRepr, LINK_HEADER_LEN, LinkProto, LinkRepr,
    NackRepr, RECORD_HEADER_LEN, RecordFlags, RecordKind, RecordRepr, Route,
};

use crate::auth::AuthTable;
use crate::realtime::{RtLinks, RtMeta};
use crate::reliable::{RelClass, RelFeedback, RelLinks};

pub use group::Fanout;
pub use hello::{hello_fields, hello_repr};
pub use pack::{DataRecord, OpenData};
pub use sender::{DEFAULT_TTL, LinkSender, emit_error_drop};

/// What the pipeline knows about one of this node's links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// The node at the other end.
    pub neighbour: NodeId,
    /// Number of configured paths (path ids are `0..path_count`).
    pub path_count: u8,
    /// The link's one-way delay estimate in microseconds (smoothed RTT / 2 of its active path), or
    /// 0 before one is measured.
    pub one_way_delay_us: u32,
}

/// The node's links as the pipeline sees them; the engine backs it with its link table.
pub trait LinkTable {
    /// The link `id`, if this node has it.
    fn link(&self, id: LinkId) -> Option<LinkInfo>;
}

/// A data record addressed to a port on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalDelivery<'a> {
    /// The destination port on this node.
    pub dst_port: Port,
    /// The source node.
    pub src: NodeId,
    /// The source port.
    pub src_port: Port,
    /// The source node's data-plane incarnation (flow ids are unique per incarnation).
    pub src_incarnation: Incarnation,
    /// The flow id chosen by the source node.
    pub flow: FlowId,
    /// The end-to-end sequence number.
    pub seq: u64,
    /// Microseconds accumulated since the source sent it.
    pub age_us: u32,
    /// What the destination's deadline buffer needs, for a real-time flow.
    pub realtime: Option<RtDelivery>,
    /// A message of a reliable flow (in-order, exactly-once delivery by the destination's
    /// end-to-end sink for a flow to a node; hop-by-hop recovery only for a group).
    pub reliable: bool,
    /// How it was addressed: to this node, or to a group with members here.
    pub to: DeliveredTo,
    /// The application's bytes.
    pub payload: &'a [u8],
}

/// The service of a real-time message, from its overlay header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtDelivery {
    /// The flow's deadline in microseconds after origin.
    pub deadline_us: u32,
    /// Release at the deadline or as soon as order allows.
    pub delivery: Delivery,
    /// A retransmission on the last link brought it.
    pub recovered: bool,
}

impl RtDelivery {
    fn of(o: &weft_shared::wire::OverlayRepr, recovered: bool) -> Option<Self> {
        if o.link_proto != LinkProto::Realtime {
            return None;
        }
        Some(RtDelivery {
            deadline_us: o.deadline_us.map_or(0, |d| d.get()),
            delivery: o.delivery,
            recovered,
        })
    }
}

impl<'a> LocalDelivery<'a> {
    /// Reads the delivery out of a data record body (as handed to
    /// [`PipelineOutput::deliver`], e.g. after a hop between workers); `recovered` is what the
    /// record's flags said (it is not in the body).
    pub fn parse(record_body: &'a [u8], recovered: bool) -> Result<Self, DropReason> {
        let data = DataPacket::new_checked(record_body)?;
        let o = *data.overlay();
        let (_, _, payload) = data.into_parts();
        Ok(Self::of(
            &o,
            o.age_us,
            RtDelivery::of(&o, recovered),
            payload,
        ))
    }

    /// The delivery of a message with overlay header `o`, age `age_us` and `payload`.
    fn of(
        o: &weft_shared::wire::OverlayRepr,
        age_us: u32,
        realtime: Option<RtDelivery>,
        payload: &'a [u8],
    ) -> Self {
        LocalDelivery {
            dst_port: o.dst_port,
            src: o.src,
            src_port: o.src_port,
            src_incarnation: o.src_incarnation,
            flow: o.flow,
            seq: o.seq,
            age_us,
            realtime,
            reliable: o.link_proto == LinkProto::Reliable,
            to: match o.route {
                Route::Multicast(g) => DeliveredTo::Multicast(g),
                Route::Anycast(g) => DeliveredTo::Anycast(g),
                Route::Unicast(_) | Route::SourceRouted { .. } => DeliveredTo::Node,
            },
            payload,
        }
    }
}

/// Where the pipeline's decisions go. Each call's slices are valid only during the call.
pub trait PipelineOutput {
    /// A hello from the neighbour on `rx.link`, path `rx.path`.
    fn hello(&mut self, rx: &LinkRepr, hello: &HelloRepr);
    /// A control envelope (the record body, as `docs/wire.md` defines it) to punt.
    fn control(&mut self, rx: &LinkRepr, envelope: &[u8]);
    /// A data record for a local port; `record_body` is the whole (checked) data record body.
    fn deliver(&mut self, rx: &LinkRepr, delivery: &LocalDelivery<'_>, record_body: &[u8]);
    /// A data record to send on `link`, TTL and age already updated in `record_body`, with the
    /// record header's `link_seq` and `flags` (0 and none for best effort).
    fn forward(&mut self, link: LinkId, link_seq: u32, flags: RecordFlags, record_body: &[u8]);
    /// A record (or a whole datagram) dropped for `reason`.
    fn drop_record(&mut self, reason: DropReason);
    /// The worker's real-time link state, if it runs NM-Strikes; without it real-time data is
    /// refused as unsupported.
    fn realtime(&mut self) -> Option<&mut RtLinks> {
        None
    }
    /// A real-time Nack from the neighbour on `rx.link`, for the data of lane
    /// `nack.data_lane()`. The default refuses it.
    fn nack(&mut self, rx: &LinkRepr, nack: &NackRepr) {
        let _ = (rx, nack);
        self.drop_record(DropReason::Unsupported("real-time feedback"));
    }
    /// `copies` multicast copies of one record went to tree links (for the group counters).
    fn multicast_copies(&mut self, copies: u32) {
        let _ = copies;
    }
    /// The worker's reliable link state, if it runs the reliable protocol; without it reliable
    /// data is refused as unsupported.
    fn reliable(&mut self) -> Option<&mut RelLinks> {
        None
    }
    /// The worker's authentication state, if it authenticates links; without it an AUTH packet
    /// is refused as unsupported and every link is taken as unauthenticated.
    fn auth(&mut self) -> Option<&mut AuthTable> {
        None
    }
    /// Reliable-link feedback (an Ack or a Nack) from the neighbour on `rx.link`, for the data
    /// of lane `data_lane`. The default refuses it.
    fn reliable_feedback(&mut self, rx: &LinkRepr, feedback: &RelFeedback) {
        let _ = (rx, feedback);
        self.drop_record(DropReason::Unsupported("reliable link feedback"));
    }
}

/// Authenticates a datagram whose header checked out (`auth::AuthTable::open`): returns where
/// its plaintext records end.
fn open(
    rx: &LinkRepr,
    datagram: &mut [u8],
    out: &mut impl PipelineOutput,
) -> Result<usize, DropReason> {
    match out.auth() {
        Some(table) => table.open(rx, datagram),
        None if rx.auth => Err(DropReason::Unsupported("authenticated link packets")),
        None => Ok(datagram.len()),
    }
}

/// The forwarding decision for a destination node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// The destination is this node.
    Local,
    /// Send on this link.
    Link(LinkId),
}

/// The sans-IO pipeline of one worker: stateless apart from the node's identity, so every
/// worker (and the simulator) can hold its own copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forwarder {
    node: NodeId,
}

impl Forwarder {
    /// The pipeline of node `node`.
    pub fn new(node: NodeId) -> Self {
        Forwarder { node }
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Where a packet for `dst` goes: here, or the FIB's next hop if it is one of our links.
    pub fn next_hop(
        &self,
        dst: NodeId,
        fib: &FibTable,
        links: &impl LinkTable,
    ) -> Result<NextHop, DropReason> {
        if dst == self.node {
            return Ok(NextHop::Local);
        }
        let route = fib.unicast(dst).ok_or(DropReason::NoRoute)?;
        // A FIB that names a link we do not have is as good as no route.
        links.link(route.next_hop).ok_or(DropReason::NoRoute)?;
        Ok(NextHop::Link(route.next_hop))
    }

    /// Where a unicast or anycast record goes: here, or the FIB's next hop. An anycast group
    /// goes towards the member node the FIB chose for it (the nearest), and is delivered here
    /// when that is this node.
    pub fn route_hop(
        &self,
        route: &Route,
        fib: &FibTable,
        links: &impl LinkTable,
    ) -> Result<NextHop, DropReason> {
        match *route {
            Route::Unicast(dst) => self.next_hop(dst, fib, links),
            Route::Anycast(group) => {
                let r = fib.anycast(group).ok_or(DropReason::NoMembers)?;
                match r.next_hop {
                    None if r.target == self.node => Ok(NextHop::Local),
                    None => Err(DropReason::NoMembers),
                    Some(link) => {
                        links.link(link).ok_or(DropReason::NoRoute)?;
                        Ok(NextHop::Link(link))
                    }
                }
            }
            Route::Multicast(_) => Err(DropReason::Unsupported("multicast has no single hop")),
            Route::SourceRouted { .. } => Err(DropReason::Unsupported("source routing")),
        }
    }

    /// Checks the link header of `datagram` and decides for each of its records (module doc).
    /// Returns the parsed link header if it was valid.
    pub fn handle_datagram(
        &self,
        rx_at: Instant,
        now: Instant,
        datagram: &mut [u8],
        fib: &FibTable,
        links: &impl LinkTable,
        out: &mut impl PipelineOutput,
    ) -> Option<LinkRepr> {
        let checked = self
            .check_header(datagram, links)
            .and_then(|rx| Ok((rx, open(&rx, datagram, out)?)));
        let (rx, end) = match checked {
            Ok(v) => v,
            Err(reason) => {
                out.drop_record(reason);
                return None;
            }
        };
        let times = Times { rx_at, now };
        let records = datagram.get_mut(..end).unwrap_or_default();
        let mut at = LINK_HEADER_LEN;
        while at < records.len() {
            match self.handle_record(&rx, times, &mut records[at..], fib, links, out) {
                Ok(used) => at += used,
                Err(reason) => {
                    // A bad record header: the rest of the body cannot be delimited.
                    out.drop_record(reason);
                    break;
                }
            }
        }
        Some(rx)
    }

    fn check_header(
        &self,
        datagram: &[u8],
        links: &impl LinkTable,
    ) -> Result<LinkRepr, DropReason> {
        let (rx, body) = LinkRepr::parse(datagram)?;
        if body.len() <= rx.trailer_len() {
            return Err(DropReason::Truncated {
                needed: LINK_HEADER_LEN + RECORD_HEADER_LEN + rx.trailer_len(),
                got: datagram.len(),
            });
        }
        let link = links
            .link(rx.link)
            .ok_or(DropReason::UnknownLink(rx.link.get()))?;
        if link.neighbour != rx.sender {
            return Err(DropReason::BadField {
                field: "link.sender_node",
                value: rx.sender.get().into(),
            });
        }
        if rx.path.get() >= link.path_count {
            return Err(DropReason::BadField {
                field: "link.path_id",
                value: rx.path.get().into(),
            });
        }
        Ok(rx)
    }

    /// Handles the record at the front of `rest`; returns its length (header included), or an
    /// error if the record header itself is bad. Errors in the body are reported to `out`.
    fn handle_record(
        &self,
        rx: &LinkRepr,
        times: Times,
        rest: &mut [u8],
        fib: &FibTable,
        links: &impl LinkTable,
        out: &mut impl PipelineOutput,
    ) -> Result<usize, DropReason> {
        let (header, after) = RecordRepr::parse(rest)?;
        if header.kind.packet_type() != rx.packet_type {
            return Err(DropReason::UnknownRecordKind(header.kind as u8));
        }
        let len = usize::from(header.body_len);
        if len > after.len() {
            return Err(DropReason::BadLength {
                field: "record.len",
                value: len,
            });
        }
        let body = &mut rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len];
        let result = match header.kind {
            RecordKind::Hello => HelloRepr::parse(body).map(|hello| out.hello(rx, &hello)),
            RecordKind::Control => ControlRepr::parse(body).map(|_| out.control(rx, body)),
            RecordKind::Data => self.handle_data(rx, &header, times, body, fib, links, out),
            RecordKind::Nack => NackRepr::parse(body).map(|nack| {
                if nack.link_proto() == LinkProto::Realtime {
                    out.nack(rx, &nack);
                } else {
                    out.reliable_feedback(rx, &RelFeedback::Nack(nack));
                }
            }),
            RecordKind::Ack => AckRepr::parse(body).and_then(|ack| {
                if ack.link_proto == LinkProto::Reliable {
                    out.reliable_feedback(rx, &RelFeedback::Ack(ack));
                    Ok(())
                } else {
                    // Real-time receivers request; they never ack.
                    Err(DropReason::Unsupported("real-time acks"))
                }
            }),
        };
        if let Err(reason) = result {
            out.drop_record(reason);
        }
        Ok(RECORD_HEADER_LEN + len)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the pipeline's inputs, passed through"
    )]
    fn handle_data(
        &self,
        rx: &LinkRepr,
        header: &RecordRepr,
        times: Times,
        body: &mut [u8],
        fib: &FibTable,
        links: &impl LinkTable,
        out: &mut impl PipelineOutput,
    ) -> Result<(), DropReason> {
        let residence_us = duration_us(times.now.saturating_duration_since(times.rx_at));
        let mut data = DataPacket::new_checked(&mut *body)?;
        let overlay = *data.overlay();
        let (realtime, reliable) = match overlay.link_proto {
            LinkProto::BestEffort => {
                // Best effort has no link sequence and never retransmits (docs/wire.md).
                if header.link_seq != 0 {
                    return Err(DropReason::BadField {
                        field: "record.link_seq",
                        value: header.link_seq.into(),
                    });
                }
                if header.flags != RecordFlags::NONE {
                    return Err(DropReason::ReservedBitsSet {
                        field: "record.flags",
                    });
                }
                (false, false)
            }
            LinkProto::Realtime => (true, false),
            LinkProto::Reliable => (false, true),
            _ => {
                return Err(DropReason::Unsupported(
                    "the intrusion-tolerant link protocols",
                ));
            }
        };
        if data.fragment().is_some() {
            return Err(DropReason::Unsupported("fragmented messages"));
        }
        if let Route::SourceRouted { .. } = overlay.route {
            return Err(DropReason::Unsupported("source routing"));
        }
        let retransmission = header.flags == RecordFlags::RETRANSMIT;
        if realtime {
            // The budget left on arrival here: the age already counts the link just crossed.
            let remaining = data.header().remaining_us().ok_or(DropReason::BadField {
                field: "overlay.deadline_us",
                value: 0,
            })?;
            let one_way = links.link(rx.link).map_or(0, |l| l.one_way_delay_us);
            let meta = RtMeta {
                strikes: overlay.strikes,
                deadline: times.rx_at.saturating_add(us(remaining)),
            };
            let rt = out
                .realtime()
                .ok_or(DropReason::Unsupported("real-time flows on this node"))?;
            rt.receive(
                times.rx_at,
                rx.link,
                rx.lane,
                rx.sender_incarnation,
                us(one_way),
                header.link_seq,
                meta,
                retransmission,
            )?;
        }
        if reliable {
            return self.handle_reliable(rx, header, times, body, &overlay.route, fib, links, out);
        }
        if let Route::Multicast(group) = overlay.route {
            let fanout = self.multicast_fanout(group, overlay.src, fib, links)?;
            self.multicast(
                rx,
                times,
                residence_us,
                body,
                &fanout,
                retransmission,
                links,
                out,
            );
            return Ok(());
        }
        match self.route_hop(&overlay.route, fib, links)? {
            NextHop::Local => {
                let h = data.header_mut();
                h.add_age_us(residence_us);
                let age_us = h.age_us.get();
                let payload_len = data.payload().len();
                let delivery = LocalDelivery::of(
                    &overlay,
                    age_us,
                    RtDelivery::of(&overlay, retransmission),
                    payload_of(body, payload_len),
                );
                out.deliver(rx, &delivery, body);
            }
            NextHop::Link(link) => {
                let delay = links.link(link).map_or(0, |l| l.one_way_delay_us);
                let h = data.header_mut();
                h.decrement_ttl()?;
                h.add_age_us(residence_us.saturating_add(delay));
                if !realtime {
                    out.forward(link, 0, RecordFlags::NONE, body);
                    return Ok(());
                }
                let remaining = h.remaining_us().unwrap_or(0);
                if remaining == 0 {
                    return Err(DropReason::Late);
                }
                let strikes = h.strikes;
                let rt = out
                    .realtime()
                    .ok_or(DropReason::Unsupported("real-time flows on this node"))?;
                let one_way = us(delay);
                // The latest useful arrival at the far end: the age counts the link ahead.
                let meta = RtMeta {
                    strikes: weft_shared::wire::Strikes::from_byte(strikes),
                    deadline: times
                        .now
                        .saturating_add(one_way)
                        .saturating_add(us(remaining)),
                };
                let link_seq = rt.send(times.now, link, one_way, meta, body)?;
                out.forward(link, link_seq, RecordFlags::NONE, body);
            }
        }
        Ok(())
    }
}

impl Forwarder {
    /// A reliable data record (module doc): new or not on its link, then delivered or taken by
    /// the next link's sender, and only then acked; refused when it cannot be passed on now.
    #[allow(
        clippy::too_many_arguments,
        reason = "the pipeline's inputs, passed through"
    )]
    fn handle_reliable(
        &self,
        rx: &LinkRepr,
        header: &RecordRepr,
        times: Times,
        body: &mut [u8],
        route: &Route,
        fib: &FibTable,
        links: &impl LinkTable,
        out: &mut impl PipelineOutput,
    ) -> Result<(), DropReason> {
        let (link, lane, peer, seq) = (rx.link, rx.lane, rx.sender_incarnation, header.link_seq);
        let retransmission = header.flags == RecordFlags::RETRANSMIT;
        let rel = out
            .reliable()
            .ok_or(DropReason::Unsupported("reliable flows on this node"))?;
        match rel.classify(link, lane, peer, seq)? {
            RelClass::New => {}
            class => {
                rel.duplicate(times.rx_at, link, lane, peer, class)?;
                return Err(DropReason::Duplicate);
            }
        }
        let residence_us = duration_us(times.now.saturating_duration_since(times.rx_at));
        let passed = match *route {
            Route::Multicast(group) => {
                let src = DataPacket::new_checked(&*body)?.overlay().src;
                // No tree here (no members, or this node is not on the source's tree) can
                // never deliver: it is accepted and counted below, so the previous hop stops.
                self.multicast_fanout(group, src, fib, links)
                    .map_err(|_| DropReason::NoMembers)
                    .and_then(|f| {
                        self.multicast_reliable(rx, times, residence_us, body, &f, links, out)
                    })
            }
            _ => self.pass_reliable(rx, times, residence_us, body, route, fib, links, out),
        };
        let rel = out
            .reliable()
            .ok_or(DropReason::Unsupported("reliable flows on this node"))?;
        match passed {
            Ok(()) => rel.accept(times.rx_at, link, lane, peer, seq, retransmission),
            // Room or a route may come: the previous hop keeps the record and resends it.
            Err(reason @ (DropReason::QueueFull | DropReason::NoRoute)) => {
                rel.refuse(times.rx_at, link, lane, peer, seq)?;
                Err(reason)
            }
            // It can never be passed on: ack it so the previous hop stops, and count the drop.
            Err(reason) => {
                rel.accept(times.rx_at, link, lane, peer, seq, retransmission)?;
                Err(reason)
            }
        }
    }
}

impl Forwarder {
    /// Delivers a new reliable record or hands it to the next link's sender.
    #[allow(
        clippy::too_many_arguments,
        reason = "the pipeline's inputs, passed through"
    )]
    fn pass_reliable(
        &self,
        rx: &LinkRepr,
        times: Times,
        residence_us: u32,
        body: &mut [u8],
        route: &Route,
        fib: &FibTable,
        links: &impl LinkTable,
        out: &mut impl PipelineOutput,
    ) -> Result<(), DropReason> {
        match self.route_hop(route, fib, links)? {
            NextHop::Local => {
                let mut data = DataPacket::new_checked(&mut *body)?;
                let overlay = *data.overlay();
                let h = data.header_mut();
                h.add_age_us(residence_us);
                let age_us = h.age_us.get();
                let payload_len = data.payload().len();
                let delivery =
                    LocalDelivery::of(&overlay, age_us, None, payload_of(body, payload_len));
                // The destination's end-to-end sink takes it from here; if it cannot keep it,
                // the source still has it and resends it (docs/reliable.md).
                out.deliver(rx, &delivery, body);
                Ok(())
            }
            NextHop::Link(next) => {
                let delay = links.link(next).map_or(0, |l| l.one_way_delay_us);
                let mut data = DataPacket::new_checked(&mut *body)?;
                let h = data.header_mut();
                h.decrement_ttl()?;
                h.add_age_us(residence_us.saturating_add(delay));
                let rtt = us(delay.saturating_mul(2));
                let rel = out
                    .reliable()
                    .ok_or(DropReason::Unsupported("reliable flows on this node"))?;
                rel.send(times.now, next, rtt, body).map(|_| ())
            }
        }
    }
}

/// When the datagram being handled was received, and the engine's batch time.
#[derive(Clone, Copy, Debug)]
struct Times {
    rx_at: Instant,
    now: Instant,
}

/// Microseconds as a duration.
fn us(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

/// The payload at the end of a checked data record body.
fn payload_of(body: &[u8], len: usize) -> &[u8] {
    &body[body.len() - len..]
}

/// A duration in whole microseconds, saturating at `u32::MAX` (about 71 minutes).
fn duration_us(d: core::time::Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
