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

use std::path::Path;
use std::time::Duration;

use weft_proto::forward::LocalDelivery;
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, NodeId, Port};
use weft_shared::session::{DeliveredTo, Destination, ErrorCode, LinkProtocol, RoutingMode};
use weft_shared::shm::{Counter, LocalGroupsWriter, WorkerCounters};
use weft_shared::time::Instant;

use crate::deadline_flows::{DeadlineFlows, FlowKey, ReleaseSink};
use crate::reliable_flows::{E2E_ACK_PORT, FlowOutput, ReliableFlows, SourceInfo};
use crate::session::{
    ClientId, ClientStatus, DeliverError, DeliverInfo, FlowService, OutboundMessage, SessionConfig,
    SessionServer, SessionSink,
};
use crate::uring::{DriverError, UdpDriver, WatchId};
use crate::worker::TOKEN_SESSION_BASE;

pub use crate::originate::{LocalQueue, Originate};

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
    /// The server's group epoch last published to shared memory.
    groups_published: Option<u64>,
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
            groups_published: None,
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

    /// Publishes the groups with local members if they changed since the last publish (and
    /// once at start, so the control plane sees an empty set rather than none).
    pub fn publish_groups(&mut self, w: &LocalGroupsWriter, counters: &WorkerCounters) {
        let epoch = self.server.group_epoch();
        if self.groups_published == Some(epoch) {
            return;
        }
        // Allocates only when the membership changed: joins and leaves, not packets.
        let groups: Vec<_> = self.server.local_groups().collect();
        match w.publish(groups.into_iter()) {
            Ok(()) => self.groups_published = Some(epoch),
            // The session server caps a node's groups at the table's size, so this is a bug;
            // count it rather than stop the worker.
            Err(_) => counters.add_drop(DropReason::QueueFull, 1),
        }
    }

    /// Delivers the same-node messages queued by the last batch.
    pub fn deliver_local(&mut self, local: &mut LocalQueue, counters: &WorkerCounters) {
        let server = &mut self.server;
        local.drain(|to, port, info, payload| {
            match server.deliver_addressed(to, port, info, payload) {
                Ok(()) => count_delivered(counters, to),
                Err(e) => counters.add_drop(deliver_drop(e, port), 1),
            }
        });
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
        if d.reliable && d.to == DeliveredTo::Node {
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
        count_delivered(counters, d.to);
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
        let result = self
            .server
            .deliver_addressed(d.to, d.dst_port, &info, d.payload);
        self.flush_pending = true;
        result.map_err(|e| deliver_drop(e, d.dst_port))
    }
}

/// Released real-time messages go to the session server.
/// Counts one message handed to local clients, and whether it was addressed to a group.
fn count_delivered(counters: &WorkerCounters, to: DeliveredTo) {
    counters.add(Counter::Delivered, 1);
    match to {
        DeliveredTo::Node => {}
        DeliveredTo::Multicast(_) => counters.add(Counter::McastDelivered, 1),
        DeliveredTo::Anycast(_) => counters.add(Counter::AnycastDelivered, 1),
    }
}

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
            .deliver_addressed(flow.to, flow.dst_port, &info, payload)
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
            // To a group: hop-by-hop recovery on each tree link only.
            return self.out.send(msg);
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
            return self.out.flow_opened(flow, src_port, dst, service);
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
