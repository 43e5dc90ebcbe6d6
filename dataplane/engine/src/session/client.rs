//! One client connection's state: its phase, buffers, flows, ports and groups.
//!
//! A slot is allocated when it is first used and kept after its client leaves, so a later client
//! in the same slot reuses its buffers and tables: nothing allocates per message, and after the
//! first `max_clients` connections nothing allocates per connection either.

use std::os::unix::net::UnixStream;

use weft_shared::ids::{FlowId, GroupId, Port};
use weft_shared::session::{Destination, FlowHandle, MAX_CLIENT_NAME_LEN, RecvBuf};

use super::config::SessionConfig;
use super::outbuf::OutBuf;
use super::{FlowService, PeerCred};

/// Where a client connection is in its life.
///
/// ```text
/// Free ──accept──► AwaitHello ──Hello (version ok)──► Open
///                      │                               │
///                      └──── anything else ────────────┴── Goodbye, EOF, error ──► Dead ──reap──► Free
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No client in this slot.
    Free,
    /// Connected; the first frame must be `Hello`.
    AwaitHello,
    /// Handshake done; requests are served.
    Open,
    /// Gone: ports, flows and groups are released; waiting for the caller's `reap`.
    Dead,
}

/// One open flow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow {
    /// The handle the client uses.
    pub(crate) handle: FlowHandle,
    /// The node-unique network flow id.
    pub(crate) id: FlowId,
    /// The bound port it sends from.
    pub(crate) src_port: Port,
    /// Where it sends.
    pub(crate) dst: Destination,
    /// Its service, as `OpenFlow` asked.
    pub(crate) service: FlowService,
    /// The sequence number the next accepted `Send` gets.
    pub(crate) next_seq: u64,
    /// Sends the client may still make.
    pub(crate) credits: u32,
    /// Credits consumed in the current batch, returned in one `Credit` when it ends.
    pub(crate) to_return: u32,
}

/// A flow table slot; the generation makes a closed flow's handle stale.
#[derive(Clone, Copy, Debug)]
struct FlowSlot {
    flow: Option<Flow>,
    generation: u16,
}

/// A client's flows: `max_flows` slots allocated once. A handle is `generation << 16 | index`,
/// so a handle of a closed flow is refused (`UnknownFlow`) even after its slot is reused.
#[derive(Debug)]
pub(crate) struct Flows {
    slots: Vec<FlowSlot>,
    open: usize,
}

impl Flows {
    fn new(max: u16) -> Self {
        Flows {
            slots: vec![
                FlowSlot {
                    flow: None,
                    generation: 0,
                };
                usize::from(max)
            ],
            open: 0,
        }
    }

    /// Flows open now.
    pub(crate) fn open_count(&self) -> usize {
        self.open
    }

    /// A handle for a new flow in a free slot, or `None` when every slot is in use.
    pub(crate) fn free_handle(&self) -> Option<FlowHandle> {
        let index = self.slots.iter().position(|s| s.flow.is_none())?;
        let generation = self.slots.get(index)?.generation;
        let index = u32::try_from(index).ok()?;
        Some(FlowHandle(u32::from(generation) << 16 | index))
    }

    /// Stores `flow` under its handle (from [`Flows::free_handle`]).
    pub(crate) fn insert(&mut self, flow: Flow) {
        let index = (flow.handle.0 & 0xffff) as usize;
        if let Some(slot) = self.slots.get_mut(index).filter(|s| s.flow.is_none()) {
            slot.flow = Some(flow);
            self.open += 1;
        }
    }

    /// The open flow with `handle`.
    pub(crate) fn get_mut(&mut self, handle: FlowHandle) -> Option<&mut Flow> {
        let slot = self.slots.get_mut((handle.0 & 0xffff) as usize)?;
        slot.flow.as_mut().filter(|f| f.handle == handle)
    }

    /// Closes the flow with `handle`, returning it.
    pub(crate) fn close(&mut self, handle: FlowHandle) -> Option<Flow> {
        let slot = self.slots.get_mut((handle.0 & 0xffff) as usize)?;
        if slot.flow.is_none_or(|f| f.handle != handle) {
            return None;
        }
        slot.generation = slot.generation.wrapping_add(1);
        self.open -= 1;
        slot.flow.take()
    }

    /// The open flow with network id `id`.
    pub(crate) fn by_id_mut(&mut self, id: FlowId) -> Option<&mut Flow> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.flow.as_mut())
            .find(|f| f.id == id)
    }

    /// Closes every flow for which `pick` is true, calling `closed` with each.
    pub(crate) fn close_where(&mut self, pick: impl Fn(&Flow) -> bool, closed: impl FnMut(Flow)) {
        let mut closed = closed;
        for slot in &mut self.slots {
            if let Some(f) = slot.flow.filter(|f| pick(f)) {
                slot.flow = None;
                slot.generation = slot.generation.wrapping_add(1);
                self.open -= 1;
                closed(f);
            }
        }
    }
}

/// Everything about a client except its socket and receive buffer (kept apart so frames borrowed
/// from the receive buffer can be handled while this is changed).
#[derive(Debug)]
pub(crate) struct ClientState {
    pub(crate) phase: Phase,
    pub(crate) out: OutBuf,
    pub(crate) flows: Flows,
    pub(crate) ports: Vec<Port>,
    pub(crate) groups: Vec<GroupId>,
    /// Input may be waiting (in the receive buffer or the socket) that no readiness event will
    /// announce: the last turn stopped at the batch limit or for lack of output space.
    pub(crate) pending: bool,
    /// A write failed: the client is closed at its next turn.
    pub(crate) broken: bool,
    /// The negotiated protocol version.
    pub(crate) version: u16,
    name: [u8; MAX_CLIENT_NAME_LEN],
    name_len: usize,
    pub(crate) peer: Option<PeerCred>,
}

impl ClientState {
    /// Records the client's name from `Hello` (already checked to be UTF-8 within the limit).
    pub(crate) fn set_name(&mut self, name: &str) {
        let n = name.len().min(MAX_CLIENT_NAME_LEN);
        if let (Some(dst), Some(src)) = (self.name.get_mut(..n), name.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
            self.name_len = n;
        }
    }

    /// The client's name from `Hello` ("" before the handshake).
    pub(crate) fn name(&self) -> &str {
        core::str::from_utf8(self.name.get(..self.name_len).unwrap_or_default()).unwrap_or("")
    }
}

/// A client slot.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) stream: Option<UnixStream>,
    pub(crate) rx: RecvBuf,
    pub(crate) st: ClientState,
}

impl Client {
    /// A free slot with its buffers and tables sized by `cfg` (the only allocation of a slot).
    pub(crate) fn new(cfg: &SessionConfig) -> Self {
        Client {
            stream: None,
            rx: RecvBuf::new(cfg.recv_buf_bytes),
            st: ClientState {
                phase: Phase::Free,
                out: OutBuf::new(cfg.out_buf_bytes),
                flows: Flows::new(cfg.max_flows),
                ports: Vec::with_capacity(usize::from(cfg.max_ports)),
                groups: Vec::with_capacity(usize::from(cfg.max_groups)),
                pending: false,
                broken: false,
                version: 0,
                name: [0; MAX_CLIENT_NAME_LEN],
                name_len: 0,
                peer: None,
            },
        }
    }

    /// Puts a newly accepted connection in this (free) slot.
    pub(crate) fn start(&mut self, stream: UnixStream, peer: Option<PeerCred>) {
        let consumed = self.rx.data().len();
        self.rx.consume(consumed);
        let st = &mut self.st;
        st.phase = Phase::AwaitHello;
        st.out.clear();
        st.pending = false;
        st.broken = false;
        st.version = 0;
        st.name_len = 0;
        st.peer = peer;
        self.stream = Some(stream);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use weft_shared::ids::NodeId;
    use weft_shared::session::{DeliveryMode, LinkProtocol, RoutingMode, Strikes};

    use super::*;

    fn flow(handle: FlowHandle, port: u16) -> Flow {
        Flow {
            handle,
            id: FlowId(1),
            src_port: Port(port),
            dst: Destination::Node {
                node: NodeId::new(1).unwrap(),
                port: Port(1),
            },
            service: FlowService {
                protocol: LinkProtocol::BestEffort,
                routing: RoutingMode::LinkState,
                priority: 0,
                deadline_us: 0,
                strikes: Strikes { n: 0, m: 0 },
                delivery: DeliveryMode::AtDeadline,
                pack_delay_us: 0,
            },
            next_seq: 0,
            credits: 0,
            to_return: 0,
        }
    }

    #[test]
    fn stale_handles_are_refused_after_slot_reuse() {
        let mut flows = Flows::new(2);
        let a = flows.free_handle().unwrap();
        flows.insert(flow(a, 1));
        let b = flows.free_handle().unwrap();
        assert_ne!(a, b);
        flows.insert(flow(b, 2));
        assert_eq!(flows.free_handle(), None, "full");
        assert!(flows.close(a).is_some());
        assert!(flows.close(a).is_none(), "closed twice");
        let c = flows.free_handle().unwrap();
        assert_eq!(c.0 & 0xffff, a.0 & 0xffff, "same slot");
        assert_ne!(c, a, "new generation");
        flows.insert(flow(c, 1));
        assert!(flows.get_mut(a).is_none());
        assert!(flows.get_mut(c).is_some());
        assert!(flows.get_mut(FlowHandle(0xdead_beef)).is_none());

        let mut closed = Vec::new();
        flows.close_where(|f| f.src_port == Port(1), |f| closed.push(f.handle));
        assert_eq!(closed, vec![c]);
        assert_eq!(flows.open_count(), 1);
        assert!(flows.get_mut(b).is_some());
    }
}
