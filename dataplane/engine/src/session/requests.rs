//! Request handling: the handshake, then `Bind`, `Unbind`, `OpenFlow`, `CloseFlow`, `Send`,
//! `Join`, `Leave` and `Goodbye`, with the policies described in the [module docs](super).
//!
//! Every reply goes into the client's output buffer with no space kept free: the server only
//! starts a batch when [`REPLY_RESERVE`](super::REPLY_RESERVE) bytes are free, which covers every
//! reply a batch can produce.

use core::fmt::{self, Write as _};

use weft_shared::DropReason;
use weft_shared::ids::{FlowId, GroupId, Port};
use weft_shared::session::{
    ClientMessage, Destination, ErrorCode, ErrorMsg, ErrorText, FlowHandle, Frame, LinkProtocol,
    MAX_PACK_DELAY_US, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, OpenFlow, RecvBuf, RoutingMode,
    ServerMessage, Welcome, negotiate_version,
};

use super::client::{ClientState, Flow, Phase};
use super::ports::BindError;
use super::server::Core;
use super::{ClientId, FlowService, OutboundMessage, SessionSink};

/// Whether the connection goes on after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep serving it.
    Continue,
    /// Close it (replies already queued).
    Close,
}

impl Core {
    /// Handles up to `budget` complete frames from `rx`. Returns the frames handled, the bytes
    /// they took (for `rx.consume`) and whether to go on.
    pub(crate) fn handle_frames(
        &mut self,
        slot: usize,
        rx: &RecvBuf,
        st: &mut ClientState,
        budget: usize,
        sink: &mut dyn SessionSink,
    ) -> (usize, usize, Step) {
        let mut reader = rx.frames();
        let mut handled = 0;
        let mut step = Step::Continue;
        while handled < budget && step == Step::Continue {
            match reader.next() {
                None => break,
                Some(Ok(frame)) => {
                    handled += 1;
                    self.stats.frames_in += 1;
                    step = match st.phase {
                        Phase::AwaitHello => self.on_handshake(st, &frame),
                        Phase::Open => self.on_request(slot, st, &frame, sink),
                        Phase::Free | Phase::Dead => Step::Close,
                    };
                }
                Some(Err(e)) => {
                    // The stream is out of step: one Error with request id 0, then close.
                    self.error(st, 0, e.code(), e.detail(), format_args!("{e}"));
                    step = Step::Close;
                }
            }
        }
        (handled, reader.consumed(), step)
    }

    /// Queues one `Credit` per flow whose credits the batch consumed, and gives them back.
    pub(crate) fn return_credits(&mut self, st: &mut ClientState) {
        for i in 0..self.touched.len() {
            let Some(&handle) = self.touched.get(i) else {
                break;
            };
            let Some(flow) = st.flows.get_mut(handle) else {
                continue; // Closed during the batch.
            };
            if end_to_end(flow.service.protocol, &flow.dst) {
                // A reliable flow's credits come back as its messages are delivered at the far
                // end (`SessionServer::grant_credits`): the client's backpressure.
                flow.to_return = 0;
                continue;
            }
            let n = core::mem::take(&mut flow.to_return);
            if n == 0 {
                continue;
            }
            flow.credits = flow.credits.saturating_add(n);
            self.stats.credits_returned += u64::from(n);
            self.reply(
                st,
                0,
                &ServerMessage::Credit {
                    flow: handle,
                    credits: n,
                },
            );
        }
        self.touched.clear();
    }

    /// Gives `n` credits back to flow `flow` of this client (if it is open); `true` if found.
    pub(crate) fn grant(&mut self, st: &mut ClientState, flow: FlowId, n: u32) -> bool {
        let Some(f) = st.flows.by_id_mut(flow) else {
            return false;
        };
        f.credits = f.credits.saturating_add(n);
        let handle = f.handle;
        self.stats.credits_returned += u64::from(n);
        self.reply(
            st,
            0,
            &ServerMessage::Credit {
                flow: handle,
                credits: n,
            },
        );
        true
    }

    /// Releases everything a client holds and marks it dead (its output stays for `reap`).
    pub(crate) fn release(
        &mut self,
        client: ClientId,
        st: &mut ClientState,
        sink: &mut dyn SessionSink,
    ) {
        for &port in &st.ports {
            self.ports.release(port, client.index());
        }
        st.ports.clear();
        st.flows.close_where(|_| true, |f| sink.flow_closed(f.id));
        for &group in &st.groups {
            self.member_left(group);
            sink.left(group, client);
        }
        st.groups.clear();
        st.phase = Phase::Dead;
        st.pending = false;
        self.stats.closed += 1;
        self.stats.clients = self.stats.clients.saturating_sub(1);
    }

    /// Queues a reply. It always fits (see the module docs); if it ever did not, the client is
    /// marked broken and closed rather than left waiting for a reply that never comes.
    fn reply(&mut self, st: &mut ClientState, request_id: u32, msg: &ServerMessage<'_>) {
        if st.out.push(request_id, msg, 0, &mut self.scratch).is_err() {
            self.stats.reply_overflows += 1;
            st.broken = true;
        }
    }

    /// Queues an `Error` reply with a formatted text (cut at the protocol's limit).
    fn error(
        &mut self,
        st: &mut ClientState,
        request_id: u32,
        code: ErrorCode,
        detail: u32,
        text: fmt::Arguments<'_>,
    ) {
        let mut t = ErrorText::new();
        let _ = t.write_fmt(text);
        self.stats.count_error(code);
        let msg = ServerMessage::Error(ErrorMsg {
            code,
            detail,
            text: t.as_str(),
        });
        self.reply(st, request_id, &msg);
    }

    /// The first frame of a connection: `Hello`, or the connection is refused and closed.
    fn on_handshake(&mut self, st: &mut ClientState, frame: &Frame<'_>) -> Step {
        let id = frame.request_id;
        let hello = match ClientMessage::decode(frame) {
            Ok(ClientMessage::Hello(h)) => h,
            Ok(other) => {
                let kind = other.kind();
                let msg = format_args!("the first message must be Hello, not {kind:?}");
                self.error(st, id, ErrorCode::NotConnected, 0, msg);
                return Step::Close;
            }
            Err(e) => {
                self.error(st, id, e.code(), e.detail(), format_args!("bad Hello: {e}"));
                return Step::Close;
            }
        };
        let ours = (MIN_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION);
        let Some(version) = negotiate_version((hello.min_version, hello.max_version), ours) else {
            let refusal = ErrorMsg::unsupported_version(ours.0, ours.1);
            self.stats.count_error(refusal.code);
            self.reply(st, id, &ServerMessage::Error(refusal));
            return Step::Close;
        };
        st.version = version;
        st.set_name(hello.name);
        st.phase = Phase::Open;
        self.stats.handshakes += 1;
        let welcome = Welcome {
            version,
            node: self.node,
            max_payload: self.cfg.max_payload,
            default_credits: self.cfg.credits_per_flow,
            max_flows: self.cfg.max_flows,
            max_ports: self.cfg.max_ports,
            max_groups: self.cfg.max_groups,
        };
        self.reply(st, id, &ServerMessage::Welcome(welcome));
        Step::Continue
    }

    /// A request after the handshake.
    fn on_request(
        &mut self,
        slot: usize,
        st: &mut ClientState,
        frame: &Frame<'_>,
        sink: &mut dyn SessionSink,
    ) -> Step {
        let id = frame.request_id;
        let msg = match ClientMessage::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                // Frame boundaries are intact: answer this request and go on.
                self.error(st, id, e.code(), e.detail(), format_args!("{e}"));
                return Step::Continue;
            }
        };
        let client = ClientId(slot as u32);
        match msg {
            ClientMessage::Hello(_) => {
                let detail = u32::from(msg.kind().as_u8());
                let text = format_args!("already connected");
                self.error(st, id, ErrorCode::BadRequest, detail, text);
            }
            ClientMessage::Bind { port } => self.on_bind(slot, st, id, port),
            ClientMessage::Unbind { port } => self.on_unbind(slot, st, id, port, sink),
            ClientMessage::OpenFlow(f) => self.on_open_flow(st, id, &f, sink),
            ClientMessage::CloseFlow { flow } => match st.flows.close(flow) {
                Some(f) => {
                    sink.flow_closed(f.id);
                    self.reply(st, id, &ServerMessage::Ok);
                }
                None => self.unknown_flow(st, id, flow),
            },
            ClientMessage::Send { flow, payload } => self.on_send(st, id, flow, payload, sink),
            ClientMessage::Join { group } => self.on_join(client, st, id, group, sink),
            ClientMessage::Leave { group } => {
                if let Some(i) = st.groups.iter().position(|&g| g == group) {
                    st.groups.swap_remove(i);
                    self.member_left(group);
                    sink.left(group, client);
                }
                self.reply(st, id, &ServerMessage::Ok);
            }
            ClientMessage::Goodbye => return Step::Close,
        }
        Step::Continue
    }

    fn on_bind(&mut self, slot: usize, st: &mut ClientState, id: u32, port: Port) {
        if port.0 != 0 && st.ports.contains(&port) {
            self.reply(st, id, &ServerMessage::Bound { port });
            return;
        }
        let max = self.cfg.max_ports;
        if st.ports.len() >= usize::from(max) {
            let text = format_args!("a client may bind at most {max} ports");
            self.error(st, id, ErrorCode::TooManyPorts, u32::from(max), text);
            return;
        }
        match self.ports.bind(port, slot) {
            Ok(bound) => {
                st.ports.push(bound);
                self.reply(st, id, &ServerMessage::Bound { port: bound });
            }
            Err(BindError::InUse(p)) => {
                let text = format_args!("port {p} is bound by another client");
                self.error(st, id, ErrorCode::PortInUse, u32::from(p.0), text);
            }
            Err(BindError::NoFreePort) => {
                let range = &self.cfg.ephemeral_ports;
                let (a, b) = (*range.start(), *range.end());
                let text = format_args!("no free port in {a}..={b}");
                self.error(st, id, ErrorCode::PortInUse, 0, text);
            }
        }
    }

    fn on_unbind(
        &mut self,
        slot: usize,
        st: &mut ClientState,
        id: u32,
        port: Port,
        sink: &mut dyn SessionSink,
    ) {
        let Some(i) = st.ports.iter().position(|&p| p == port) else {
            self.port_not_bound(st, id, port);
            return;
        };
        st.ports.swap_remove(i);
        self.ports.release(port, slot);
        st.flows
            .close_where(|f| f.src_port == port, |f| sink.flow_closed(f.id));
        self.reply(st, id, &ServerMessage::Ok);
    }

    fn port_not_bound(&mut self, st: &mut ClientState, id: u32, port: Port) {
        let text = format_args!("port {port} is not bound by this client");
        self.error(st, id, ErrorCode::PortNotBound, u32::from(port.0), text);
    }

    fn unknown_flow(&mut self, st: &mut ClientState, id: u32, flow: FlowHandle) {
        let text = format_args!("flow handle {:#x} is not open", flow.0);
        self.error(st, id, ErrorCode::UnknownFlow, flow.0, text);
    }

    fn on_open_flow(
        &mut self,
        st: &mut ClientState,
        id: u32,
        f: &OpenFlow,
        sink: &mut dyn SessionSink,
    ) {
        if !st.ports.contains(&f.local_port) {
            self.port_not_bound(st, id, f.local_port);
            return;
        }
        if let Destination::Multicast { group, .. } | Destination::Anycast { group, .. } =
            f.destination
        {
            if group.0 == 0 {
                let text = format_args!("group 0 is not a group");
                self.error(st, id, ErrorCode::BadRequest, 0, text);
                return;
            }
        }
        if let Err(why) = self.check_service(f) {
            self.error(st, id, ErrorCode::Unsupported, 0, format_args!("{why}"));
            return;
        }
        let max = self.cfg.max_flows;
        let Some(handle) = st.flows.free_handle() else {
            let text = format_args!("a client may hold at most {max} flows");
            self.error(st, id, ErrorCode::TooManyFlows, u32::from(max), text);
            return;
        };
        let service = FlowService {
            protocol: f.protocol,
            routing: f.routing,
            priority: f.priority,
            deadline_us: f.deadline_us,
            strikes: f.strikes,
            delivery: f.delivery,
            pack_delay_us: f.pack_delay_us,
        };
        let flow_id = FlowId(self.next_flow_id);
        if let Err(code) = sink.flow_opened(flow_id, f.local_port, f.destination, &service) {
            let text = format_args!("the node refused this flow");
            self.error(st, id, code, 0, text);
            return;
        }
        self.next_flow_id = self.next_flow_id.checked_add(1).unwrap_or(1);
        let credits = if end_to_end(f.protocol, &f.destination) {
            self.cfg.reliable_window
        } else {
            self.cfg.credits_per_flow
        };
        st.flows.insert(Flow {
            handle,
            id: flow_id,
            src_port: f.local_port,
            dst: f.destination,
            service,
            next_seq: 0,
            credits,
            to_return: 0,
        });
        self.reply(
            st,
            id,
            &ServerMessage::FlowOpened {
                flow: handle,
                credits,
            },
        );
    }

    /// The node's limits on a flow's service; `Err` says why it is refused.
    fn check_service(&self, f: &OpenFlow) -> Result<(), &'static str> {
        if let RoutingMode::KPaths(k) = f.routing {
            if k > self.cfg.max_k_paths {
                return Err("k is larger than this node allows");
            }
        }
        if f.pack_delay_us > MAX_PACK_DELAY_US {
            return Err("a pack delay is at most 10,000 us");
        }
        if f.pack_delay_us != 0 && f.protocol != LinkProtocol::BestEffort {
            return Err("a pack delay is for best-effort flows only");
        }
        if f.protocol == LinkProtocol::Realtime {
            if f.deadline_us == 0 {
                return Err("a realtime flow needs a deadline");
            }
            let max = self.cfg.max_strikes;
            if f.strikes.n > max || f.strikes.m > max {
                return Err("strikes are larger than this node allows");
            }
        }
        Ok(())
    }

    fn on_send(
        &mut self,
        st: &mut ClientState,
        id: u32,
        handle: FlowHandle,
        payload: &[u8],
        sink: &mut dyn SessionSink,
    ) {
        let max = self.cfg.max_payload;
        if payload.len() > max as usize {
            let text = format_args!("payload of {} B is over {max} B", payload.len());
            self.error(st, id, ErrorCode::MessageTooLarge, max, text);
            return;
        }
        let Some(flow) = st.flows.get_mut(handle) else {
            self.unknown_flow(st, id, handle);
            return;
        };
        if flow.credits == 0 {
            let text = format_args!("flow {:#x} has no credit", handle.0);
            self.error(st, id, ErrorCode::NoCredit, handle.0, text);
            return;
        }
        flow.credits -= 1;
        // A batch has at most MAX_FRAMES_PER_BATCH Sends, the capacity of `touched`, so this
        // never allocates and never skips a flow.
        if flow.to_return == 0 && self.touched.len() < self.touched.capacity() {
            self.touched.push(handle);
        }
        flow.to_return += 1;
        let msg = OutboundMessage {
            src_port: flow.src_port,
            flow: flow.id,
            seq: flow.next_seq,
            dst: flow.dst,
            service: flow.service,
            payload,
        };
        match sink.send(&msg) {
            Ok(()) => {
                flow.next_seq += 1;
                self.stats.sends += 1;
            }
            Err(reason) => {
                if let Some(n) = self.stats.send_drops.get_mut(reason.index()) {
                    *n += 1;
                }
                let code = match reason {
                    DropReason::Unsupported(_) => ErrorCode::Unsupported,
                    DropReason::NoRoute | DropReason::TtlExpired => ErrorCode::Unreachable,
                    _ => ErrorCode::Internal,
                };
                let detail = reason.index() as u32;
                self.error(st, id, code, detail, format_args!("dropped: {reason}"));
            }
        }
    }

    fn on_join(
        &mut self,
        client: ClientId,
        st: &mut ClientState,
        id: u32,
        group: GroupId,
        sink: &mut dyn SessionSink,
    ) {
        if group.0 == 0 {
            let text = format_args!("group 0 is not a group");
            self.error(st, id, ErrorCode::BadRequest, 0, text);
            return;
        }
        if !st.groups.contains(&group) {
            let max = self.cfg.max_groups;
            if st.groups.len() >= usize::from(max) {
                let text = format_args!("a client may join at most {max} groups");
                self.error(st, id, ErrorCode::TooManyGroups, u32::from(max), text);
                return;
            }
            let node_max = self.cfg.max_node_groups;
            if !self.groups.contains_key(&group) && self.groups.len() >= node_max as usize {
                let text = format_args!("this node's clients may join at most {node_max} groups");
                self.error(st, id, ErrorCode::TooManyGroups, node_max, text);
                return;
            }
            st.groups.push(group);
            *self.groups.entry(group).or_insert(0) += 1;
            self.group_epoch += 1;
            sink.joined(group, client);
        }
        self.reply(st, id, &ServerMessage::Ok);
    }

    /// One local member of `group` left (by `Leave` or by disconnecting).
    fn member_left(&mut self, group: GroupId) {
        if let Some(members) = self.groups.get_mut(&group) {
            *members = members.saturating_sub(1);
            if *members == 0 {
                self.groups.remove(&group);
            }
            self.group_epoch += 1;
        }
    }
}

/// Whether a flow's credits come back from its far end: a reliable flow to a node. A reliable
/// flow to a group is recovered hop by hop only, and its credits come back like best effort's.
fn end_to_end(protocol: LinkProtocol, dst: &Destination) -> bool {
    protocol == LinkProtocol::Reliable && matches!(dst, Destination::Node { .. })
}
