//! The adapter between worker 0's loop and the [`SessionServer`]: watch tokens, the
//! [`SessionSink`] that turns a client's message into an overlay packet, and deliveries.
//!
//! Tokens: [`TOKEN_SESSION_BASE`] is the listening socket, `TOKEN_SESSION_BASE + 1 + id` the
//! client with [`ClientId`] `id`. A message between two clients of this node never touches the
//! network: the sink queues it (bounded, counted `QueueFull` when full) and it is delivered right
//! after the client's batch, because the server cannot deliver while it is handing out sends.
//!
//! Real-time flows (`LinkProtocol::Realtime`): a client's message leaves with `link_proto` 2,
//! the flow's strikes, deadline and delivery mode, and the first link's `RtLinks` sender numbers
//! it and keeps a copy. Arriving at its destination, a real-time message goes into the flow's
//! deadline buffer ([`DeadlineFlows`]) and reaches the client when the buffer releases it.
//!
//! Reliable flows (`LinkProtocol::Reliable`, `docs/reliable.md`): a client's message is taken
//! by the flow's end-to-end source ([`ReliableFlows`]) and handed to the first link's reliable
//! sender; arriving at its destination it goes through the flow's end-to-end sink, which
//! delivers in order, exactly once, as fast as the client reads. The client's credits come
//! back as the far end delivers.

use std::ops::Range;
use std::path::Path;

use std::num::NonZeroU32;
use std::time::Duration;

use weft_proto::forward::{DEFAULT_TTL, Forwarder, LinkSender, LocalDelivery, NextHop};
use weft_proto::realtime::{RtLinks, RtMeta};
use weft_proto::reliable::RelLinks;
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, NodeId, Port};
use weft_shared::session::{DeliveryMode, Destination, ErrorCode, LinkProtocol, RoutingMode};
use weft_shared::shm::fib::FibTable;
use weft_shared::shm::{Counter, PacketMeta, WorkerCounters};
use weft_shared::time::Instant;
use weft_shared::wire::{DataRepr, Delivery, LinkProto, OverlayRepr, RecordFlags, Route, Strikes};

use crate::deadline_flows::{DeadlineFlows, FlowKey, ReleaseSink};
use crate::links::Links;
use crate::output::send_on_link;
use crate::reliable_flows::{E2E_ACK_PORT, FlowOutput, ReliableFlows, SourceInfo};
use crate::session::{
    ClientId, ClientStatus, DeliverError, DeliverInfo, FlowService, OutboundMessage, SessionConfig,
    SessionServer, SessionSink,
};
use crate::uring::{DriverError, TxQueue, UdpDriver, WatchId};
use crate::worker::TOKEN_SESSION_BASE;

/// Bytes of payload the same-node queue holds per batch.
const LOCAL_BYTES: usize = 256 * 1024;
/// Messages the same-node queue holds per batch.
const LOCAL_MESSAGES: usize = 1024;

/// Worker 0's session server with its watches.
pub struct SessionGlue {
    server: SessionServer,
    /// The watch of each client, indexed by [`ClientId::index`].
    watches: Vec<Option<WatchId>>,
    closed: Vec<ClientId>,
    flush_pending: bool,
    /// The destination end of real-time flows.
    realtime: DeadlineFlows,
    /// Both ends of reliable flows.
    reliable: ReliableFlows,
}

impl SessionGlue {
    /// Binds the session socket at `path` for node `node`; `max_payload` is the largest payload
    /// one overlay packet carries.
    pub fn bind(
        path: &Path,
        node: NodeId,
        incarnation: Incarnation,
        max_payload: u32,
    ) -> anyhow::Result<Self> {
        let config = SessionConfig {
            max_payload,
            ..SessionConfig::default()
        };
        let reliable =
            ReliableFlows::new(incarnation, config.reliable_window, max_payload as usize);
        let server = SessionServer::bind(path, node, config)?;
        Ok(SessionGlue {
            server,
            watches: Vec::new(),
            closed: Vec::with_capacity(64),
            flush_pending: false,
            realtime: DeadlineFlows::new(max_payload as usize),
            reliable,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        self.server.path()
    }

    /// Watches the listening socket.
    pub fn watch_listener(&self, driver: &mut UdpDriver) -> Result<(), DriverError> {
        driver
            .watch(self.server.listener_fd(), TOKEN_SESSION_BASE)
            .map(|_| ())
    }

    /// Accepts new clients (if the listener is in `tokens`) and stops watching closed ones.
    pub fn handle_accepts(&mut self, tokens: &[u64], driver: &mut UdpDriver) {
        for c in self.closed.drain(..) {
            if let Some(w) = self.watches.get_mut(c.index()).and_then(Option::take) {
                driver.unwatch(w);
            }
            self.server.reap(c);
        }
        if !tokens.contains(&TOKEN_SESSION_BASE) {
            return;
        }
        let watches = &mut self.watches;
        let mut refused = Vec::new();
        self.server.handle_accept(&mut |fd, id| {
            let token = TOKEN_SESSION_BASE + 1 + u64::from(id.0);
            match driver.watch(fd, token) {
                Ok(w) => {
                    if watches.len() <= id.index() {
                        watches.resize(id.index() + 1, None);
                    }
                    watches[id.index()] = Some(w);
                }
                Err(_) => refused.push(id),
            }
        });
        // A client we cannot watch would never be read: close it at once.
        let mut sink = Refuse;
        for id in refused {
            self.server.disconnect(id, &mut sink);
            self.server.reap(id);
        }
    }

    /// Reads the requests of the clients in `tokens` and of those with input still buffered.
    /// Same-node messages wait in the sink's [`LocalQueue`]: deliver them with
    /// [`SessionGlue::deliver_local`] once the sink is gone.
    pub fn handle_clients(&mut self, tokens: &[u64], sink: &mut Originate<'_>) {
        let sink = &mut WithReliable {
            out: sink,
            reliable: &mut self.reliable,
        };
        for &t in tokens {
            let Some(id) = t
                .checked_sub(TOKEN_SESSION_BASE + 1)
                .and_then(|i| u32::try_from(i).ok())
            else {
                continue;
            };
            let id = ClientId(id);
            if self.server.handle_readable(id, sink) == ClientStatus::Closed
                && !self.closed.contains(&id)
            {
                self.closed.push(id);
            }
        }
        let mut prev = None;
        while let Some(id) = self.server.next_pending(prev) {
            prev = Some(id);
            if self.server.handle_readable(id, sink) == ClientStatus::Closed
                && !self.closed.contains(&id)
            {
                self.closed.push(id);
            }
        }
    }

    /// Delivers the same-node messages queued by the last batch.
    pub fn deliver_local(&mut self, local: &mut LocalQueue, counters: &WorkerCounters) {
        let server = &mut self.server;
        local.drain(
            |port, info, payload| match server.deliver(port, info, payload) {
                Ok(()) => counters.add(weft_shared::shm::Counter::Delivered, 1),
                Err(e) => counters.add_drop(deliver_drop(e, port), 1),
            },
        );
    }

    /// Writes queued output; remembers whether some is left.
    pub fn flush(&mut self) {
        self.flush_pending = self.server.flush();
    }

    /// Whether output is still queued or a client has input left to read.
    pub fn wants_flush(&self) -> bool {
        self.flush_pending || self.server.has_pending() || !self.closed.is_empty()
    }

    /// Hands a message to the client bound to its port (counted `Delivered`), or, for a
    /// real-time flow, to the flow's deadline buffer.
    pub fn deliver(
        &mut self,
        now: Instant,
        d: &LocalDelivery<'_>,
        counters: &WorkerCounters,
    ) -> Result<(), DropReason> {
        if let Some(rt) = d.realtime {
            return self.realtime.handle(now, d, rt, counters);
        }
        if d.dst_port == E2E_ACK_PORT {
            return self.reliable.on_ack(now, d);
        }
        if d.reliable {
            let server = &mut self.server;
            self.flush_pending = true;
            return self.reliable.on_data(
                now,
                d,
                &mut |port, info, payload| server.deliver(port, info, payload),
                counters,
            );
        }
        self.deliver_now(d)?;
        counters.add(Counter::Delivered, 1);
        Ok(())
    }

    /// The reliable flows' periodic work (deliveries the clients now take, end-to-end acks,
    /// resends, credits back), sending through `out`.
    pub fn poll_reliable(&mut self, now: Instant, out: &mut Originate<'_>) {
        let counters = out.counters;
        let mut glue = ReliableOut {
            server: &mut self.server,
            out,
            touched: false,
        };
        self.reliable.poll(now, &mut glue, counters);
        self.flush_pending |= glue.touched;
    }

    /// Writes the reliable flows' rows for `weftctl show reliable`.
    pub fn write_reliable_stats(&self, w: &weft_shared::shm::RelStatsWriter) {
        self.reliable.write_stats(w);
    }

    /// When the reliable flows have work next.
    pub fn reliable_timeout(&self) -> Option<Instant> {
        self.reliable.poll_timeout()
    }

    /// Releases the real-time messages due at `now` to their clients.
    pub fn poll_realtime(&mut self, now: Instant, counters: &WorkerCounters) {
        let mut sink = ServerRelease {
            server: &mut self.server,
            released: false,
        };
        self.realtime.poll(now, &mut sink, counters);
        self.flush_pending |= sink.released;
    }

    /// When the next real-time message is due for release.
    pub fn realtime_timeout(&self) -> Option<Instant> {
        self.realtime.poll_timeout()
    }

    /// Logs the counters of the real-time flows still tracked (at exit).
    pub fn log_realtime(&self) {
        self.realtime.log_all();
    }

    fn deliver_now(&mut self, d: &LocalDelivery<'_>) -> Result<(), DropReason> {
        let info = DeliverInfo {
            from_node: d.src,
            from_port: d.src_port,
            flow: d.flow,
            seq: d.seq,
            age_us: d.age_us,
            group: None,
        };
        let result = self.server.deliver(d.dst_port, &info, d.payload);
        self.flush_pending = true;
        result.map_err(|e| deliver_drop(e, d.dst_port))
    }
}

/// Released real-time messages go to the session server.
struct ServerRelease<'a> {
    server: &'a mut SessionServer,
    released: bool,
}

impl ReleaseSink for ServerRelease<'_> {
    fn release(
        &mut self,
        flow: &FlowKey,
        seq: u64,
        latency: Duration,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        let info = DeliverInfo {
            from_node: flow.src,
            from_port: flow.src_port,
            flow: flow.flow,
            seq,
            age_us: u32::try_from(latency.as_micros()).unwrap_or(u32::MAX),
            group: None,
        };
        self.released = true;
        self.server
            .deliver(flow.dst_port, &info, payload)
            .map_err(|e| deliver_drop(e, flow.dst_port))
    }
}

/// The drop a failed delivery is counted as.
fn deliver_drop(e: DeliverError, port: Port) -> DropReason {
    match e {
        DeliverError::NoSuchPort => DropReason::BadField {
            field: "overlay.dst_port",
            value: port.0.into(),
        },
        DeliverError::ClientBacklogFull => DropReason::QueueFull,
        DeliverError::PayloadTooLarge => DropReason::BadLength {
            field: "deliver.payload",
            value: 0,
        },
    }
}

/// A sink for clients closed before they could send anything.
struct Refuse;

impl SessionSink for Refuse {
    fn send(&mut self, _msg: &OutboundMessage<'_>) -> Result<(), DropReason> {
        Err(DropReason::Unsupported("client being closed"))
    }
}

/// Same-node messages waiting for the end of the client batch. Fixed capacity.
pub struct LocalQueue {
    bytes: Vec<u8>,
    items: Vec<(Port, DeliverInfo, Range<usize>)>,
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

    fn push(&mut self, port: Port, info: DeliverInfo, payload: &[u8]) -> Result<(), DropReason> {
        if self.items.len() == LOCAL_MESSAGES || self.bytes.len() + payload.len() > LOCAL_BYTES {
            return Err(DropReason::QueueFull);
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.items.push((port, info, start..self.bytes.len()));
        Ok(())
    }

    fn drain(&mut self, mut f: impl FnMut(Port, &DeliverInfo, &[u8])) {
        for (port, info, range) in self.items.drain(..) {
            f(port, &info, &self.bytes[range]);
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
        let mut body = [0u8; RECORD_SCRATCH];
        let Ok(n) = data.emit(&mut body) else {
            return false;
        };
        let rtt = Duration::from_micros(2 * u64::from(delay));
        self.rel.send(self.now, link, rtt, &body[..n]).is_ok()
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
        let meta = PacketMeta {
            link: Some(link),
            path: None,
            flags: 0,
        };
        send_on_link(
            self.tx,
            self.sender,
            self.links,
            0,
            self.counters,
            meta,
            |s, buf, link, path, max| s.write_data(buf, link, path, &data, max),
        )
    }
}

/// The reliable flows' outputs: the session server and worker 0's senders.
struct ReliableOut<'s, 'o> {
    server: &'s mut SessionServer,
    out: &'s mut Originate<'o>,
    /// Something was queued for a client.
    touched: bool,
}

impl FlowOutput for ReliableOut<'_, '_> {
    fn deliver(
        &mut self,
        port: Port,
        info: &DeliverInfo,
        payload: &[u8],
    ) -> Result<(), DeliverError> {
        self.touched = true;
        self.server.deliver(port, info, payload)
    }

    fn send_ack(&mut self, to: NodeId, src_port: Port, body: &[u8]) {
        if let Err(reason) = self.out.send_e2e_ack(to, src_port, body) {
            self.out.counters.add_drop(reason, 1);
        }
    }

    fn resend(&mut self, info: &SourceInfo, seq: u64, msg: &[u8]) -> bool {
        self.out.transmit_reliable(info, seq, msg)
    }

    fn grant(&mut self, flow: FlowId, n: u32) {
        self.touched = true;
        self.server.grant_credits(flow, n);
    }
}

/// The session sink of one batch with the reliable flows beside it: reliable sends go to their
/// flow's source, everything else to [`Originate`].
struct WithReliable<'s, 'o> {
    out: &'s mut Originate<'o>,
    reliable: &'s mut ReliableFlows,
}

impl SessionSink for WithReliable<'_, '_> {
    fn send(&mut self, msg: &OutboundMessage<'_>) -> Result<(), DropReason> {
        if msg.service.protocol != LinkProtocol::Reliable {
            return self.out.send(msg);
        }
        let Destination::Node { node, .. } = msg.dst else {
            return Err(DropReason::Unsupported("multicast and anycast"));
        };
        if node == self.out.node {
            // Between two clients of this node nothing can be lost on the way.
            return self.out.send(msg);
        }
        let (seq, info) = self.reliable.take(self.out.now, msg.flow, msg.payload)?;
        // If it cannot leave now, it stays in the source and its resend timer sends it.
        self.out.transmit_reliable(&info, seq, msg.payload);
        Ok(())
    }

    fn flow_opened(
        &mut self,
        flow: FlowId,
        src_port: Port,
        dst: Destination,
        service: &FlowService,
    ) -> Result<(), ErrorCode> {
        if service.protocol != LinkProtocol::Reliable {
            return self.out.flow_opened(flow, src_port, dst, service);
        }
        let Destination::Node { node, port } = dst else {
            return Err(ErrorCode::Unsupported);
        };
        if service.routing != RoutingMode::LinkState {
            return Err(ErrorCode::Unsupported);
        }
        let info = SourceInfo {
            flow,
            src_port,
            dst: node,
            dst_port: port,
        };
        if self.reliable.open(info) {
            Ok(())
        } else {
            Err(ErrorCode::TooManyFlows)
        }
    }

    fn flow_closed(&mut self, flow: FlowId) {
        self.reliable.close(flow);
        self.out.flow_closed(flow);
    }

    fn joined(&mut self, group: weft_shared::ids::GroupId, client: ClientId) {
        self.out.joined(group, client);
    }

    fn left(&mut self, group: weft_shared::ids::GroupId, client: ClientId) {
        self.out.left(group, client);
    }
}

/// A real-time record body is encoded here first, so the link sender can keep a copy.
const RECORD_SCRATCH: usize = 2048;

impl SessionSink for Originate<'_> {
    fn send(&mut self, msg: &OutboundMessage<'_>) -> Result<(), DropReason> {
        let Destination::Node { node, port } = msg.dst else {
            return Err(DropReason::Unsupported("multicast and anycast"));
        };
        match self.forwarder.next_hop(node, self.fib, self.links)? {
            NextHop::Local => {
                let info = DeliverInfo {
                    from_node: self.node,
                    from_port: msg.src_port,
                    flow: msg.flow,
                    seq: msg.seq,
                    age_us: 0,
                    group: None,
                };
                self.local.push(port, info, msg.payload)
            }
            NextHop::Link(link) => {
                let delay = self.links.get(link).map_or(0, |l| l.one_way_delay_us());
                let service = &msg.service;
                let realtime = service.protocol == LinkProtocol::Realtime;
                let data = DataRepr {
                    overlay: OverlayRepr {
                        route: Route::Unicast(node),
                        ttl: DEFAULT_TTL,
                        link_proto: if realtime {
                            LinkProto::Realtime
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
                let meta = PacketMeta {
                    link: Some(link),
                    path: None,
                    flags: 0,
                };
                if !realtime {
                    return send_on_link(
                        self.tx,
                        self.sender,
                        self.links,
                        0,
                        self.counters,
                        meta,
                        |s, buf, link, path, max| s.write_data(buf, link, path, &data, max),
                    );
                }
                // Real time: encode the record body, let the link's sender number it and keep
                // a copy, then send it.
                let mut body = [0u8; RECORD_SCRATCH];
                let n = data
                    .emit(&mut body)
                    .map_err(weft_proto::forward::emit_error_drop)?;
                let body = &body[..n];
                let one_way = Duration::from_micros(u64::from(delay));
                let remaining = service.deadline_us.saturating_sub(delay);
                let rt_meta = RtMeta {
                    strikes: data.overlay.strikes,
                    deadline: self
                        .now
                        .saturating_add(one_way)
                        .saturating_add(Duration::from_micros(u64::from(remaining))),
                };
                let link_seq = self.rt.send(self.now, link, one_way, rt_meta, body)?;
                send_on_link(
                    self.tx,
                    self.sender,
                    self.links,
                    0,
                    self.counters,
                    meta,
                    |s, buf, link, path, max| {
                        s.write_sequenced_data(
                            buf,
                            link,
                            path,
                            body,
                            link_seq,
                            RecordFlags::NONE,
                            max,
                        )
                    },
                )
            }
        }
    }

    fn flow_opened(
        &mut self,
        _flow: FlowId,
        _src_port: Port,
        dst: Destination,
        service: &FlowService,
    ) -> Result<(), ErrorCode> {
        // Only what this data plane runs today: best effort and real time, link-state unicast.
        let supported = matches!(
            service.protocol,
            LinkProtocol::BestEffort | LinkProtocol::Realtime
        ) && service.routing == RoutingMode::LinkState
            && matches!(dst, Destination::Node { .. });
        if supported {
            Ok(())
        } else {
            Err(ErrorCode::Unsupported)
        }
    }
}
