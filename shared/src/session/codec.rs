//! The session messages' wire layouts and their codec: `decode` from a borrowed [`Frame`], and
//! [`Encode`] into a caller's buffer, for [`ClientMessage`] and [`ServerMessage`].
//!
//! Each message is a fixed part, laid out as a zerocopy struct of big-endian fields with no
//! padding, plus for a few messages a variable tail that runs to the end of the frame (a name, a
//! payload, a text), so tails need no length field. Layouts are listed in `docs/session.md`.

use zerocopy::byteorder::network_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::error::{DecodeError, EncodeError, ErrorCode};
use super::frame::{Encode, Frame};
use super::message::{ClientMessage, Deliver, ErrorMsg, Hello, MsgType, ServerMessage, Welcome};
use super::types::{
    AddrKind, DeliveredTo, DeliveryMode, Destination, FlowHandle, LinkProtocol, OpenFlow,
    RoutingMode, Strikes,
};
use super::{HELLO_MAGIC, MAX_CLIENT_NAME_LEN, MAX_ERROR_TEXT_LEN, MAX_PAYLOAD};
use crate::ids::{FlowId, GroupId, NodeId, Port};

// Fixed parts, as laid out on the wire (big-endian, no padding).

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct HelloFixed {
    magic: U32,
    min_version: U16,
    max_version: U16,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct WelcomeBody {
    version: U16,
    node: U16,
    max_payload: U32,
    default_credits: U32,
    max_flows: U16,
    max_ports: U16,
    max_groups: U16,
    reserved: U16,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct PortBody {
    port: U16,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct OpenFlowBody {
    local_port: U16,
    dest_kind: u8,
    protocol: u8,
    dest_id: U32,
    dest_port: U16,
    routing: u8,
    k: u8,
    priority: u8,
    delivery: u8,
    strikes_n: u8,
    strikes_m: u8,
    deadline_us: U32,
}

/// The optional tail of an `OpenFlow` body: present only when the pack delay is nonzero, so a
/// flow without one encodes as it always did.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct OpenFlowPackTail {
    pack_delay_us: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FlowBody {
    flow: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FlowCreditBody {
    flow: U32,
    credits: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct GroupBody {
    group: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct DeliverFixed {
    local_port: U16,
    source_node: U16,
    source_port: U16,
    kind: u8,
    reserved: u8,
    group: U32,
    flow: U32,
    seq: U64,
    age_us: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ErrorFixed {
    code: U16,
    reserved: U16,
    detail: U32,
}

const _: () = {
    assert!(size_of::<HelloFixed>() == 8);
    assert!(size_of::<WelcomeBody>() == 20);
    assert!(size_of::<PortBody>() == 2);
    assert!(size_of::<OpenFlowBody>() == 20);
    assert!(size_of::<OpenFlowPackTail>() == 4);
    assert!(size_of::<FlowBody>() == 4);
    assert!(size_of::<FlowCreditBody>() == 8);
    assert!(size_of::<GroupBody>() == 4);
    assert!(size_of::<DeliverFixed>() == 28);
    assert!(size_of::<ErrorFixed>() == 8);
};

// Decoding helpers.

/// Flags and the reserved field must be zero in version 1.
fn check_header(frame: &Frame<'_>) -> Result<(), DecodeError> {
    if frame.flags != 0 {
        return Err(DecodeError::ReservedBitsSet { field: "flags" });
    }
    if frame.reserved != 0 {
        return Err(DecodeError::ReservedBitsSet {
            field: "frame reserved",
        });
    }
    Ok(())
}

/// The fixed part `T` at the start of `body`, and the tail after it.
fn fixed<'a, T>(body: &'a [u8], msg: &'static str) -> Result<(&'a T, &'a [u8]), DecodeError>
where
    T: FromBytes + KnownLayout + Immutable + Unaligned,
{
    T::ref_from_prefix(body).map_err(|_| DecodeError::Truncated {
        msg,
        needed: size_of::<T>(),
        got: body.len(),
    })
}

/// The fixed part `T` making up all of `body`.
fn exact<'a, T>(body: &'a [u8], msg: &'static str) -> Result<&'a T, DecodeError>
where
    T: FromBytes + KnownLayout + Immutable + Unaligned,
{
    let (value, tail) = fixed::<T>(body, msg)?;
    if tail.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes {
            msg,
            extra: tail.len(),
        })
    }
}

/// Checks that a message without a body has none.
fn empty(body: &[u8], msg: &'static str) -> Result<(), DecodeError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::TrailingBytes {
            msg,
            extra: body.len(),
        })
    }
}

fn text<'a>(bytes: &'a [u8], field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TextTooLong {
            field,
            len: bytes.len(),
            max,
        });
    }
    core::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8 { field })
}

fn payload(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(DecodeError::PayloadTooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD,
        });
    }
    Ok(bytes)
}

fn node_id(raw: u32, field: &'static str) -> Result<NodeId, DecodeError> {
    u16::try_from(raw)
        .ok()
        .and_then(NodeId::new)
        .ok_or(DecodeError::BadField {
            field,
            value: u64::from(raw),
        })
}

// Encoding helpers.

/// Writes `head` then `tail` into `body`, which must be exactly their combined size.
fn put<T: IntoBytes + Immutable>(
    body: &mut [u8],
    head: &T,
    tail: &[u8],
) -> Result<(), EncodeError> {
    let head = head.as_bytes();
    let needed = head.len() + tail.len();
    if body.len() != needed {
        return Err(EncodeError::BufferFull {
            needed,
            available: body.len(),
        });
    }
    let (a, b) = body.split_at_mut(head.len());
    a.copy_from_slice(head);
    b.copy_from_slice(tail);
    Ok(())
}

fn check_text(s: &str, field: &'static str, max: usize) -> Result<(), EncodeError> {
    if s.len() > max {
        return Err(EncodeError::TextTooLong {
            field,
            len: s.len(),
            max,
        });
    }
    Ok(())
}

fn check_payload(p: &[u8]) -> Result<(), EncodeError> {
    if p.len() > MAX_PAYLOAD {
        return Err(EncodeError::PayloadTooLarge {
            len: p.len(),
            max: MAX_PAYLOAD,
        });
    }
    Ok(())
}

fn decode_open_flow(body: &[u8]) -> Result<OpenFlow, DecodeError> {
    let (b, tail) = fixed::<OpenFlowBody>(body, "OpenFlow")?;
    let pack_delay_us = if tail.is_empty() {
        0
    } else {
        exact::<OpenFlowPackTail>(tail, "OpenFlow")?
            .pack_delay_us
            .get()
    };
    let mut flow = decode_open_flow_fixed(b)?;
    flow.pack_delay_us = pack_delay_us;
    Ok(flow)
}

fn decode_open_flow_fixed(b: &OpenFlowBody) -> Result<OpenFlow, DecodeError> {
    let bad = |field, value: u8| DecodeError::BadField {
        field,
        value: u64::from(value),
    };
    let dest_id = b.dest_id.get();
    let port = Port(b.dest_port.get());
    let destination =
        match AddrKind::from_u8(b.dest_kind).ok_or(bad("destination kind", b.dest_kind))? {
            AddrKind::Node => Destination::Node {
                node: node_id(dest_id, "destination node")?,
                port,
            },
            AddrKind::Multicast => Destination::Multicast {
                group: GroupId(dest_id),
                port,
            },
            AddrKind::Anycast => Destination::Anycast {
                group: GroupId(dest_id),
                port,
            },
        };
    Ok(OpenFlow {
        local_port: Port(b.local_port.get()),
        destination,
        protocol: LinkProtocol::from_u8(b.protocol).ok_or(bad("link protocol", b.protocol))?,
        routing: RoutingMode::from_wire(b.routing, b.k).ok_or(bad("routing mode", b.routing))?,
        priority: b.priority,
        deadline_us: b.deadline_us.get(),
        strikes: Strikes {
            n: b.strikes_n,
            m: b.strikes_m,
        },
        delivery: DeliveryMode::from_u8(b.delivery).ok_or(bad("delivery mode", b.delivery))?,
        pack_delay_us: 0,
    })
}

fn encode_open_flow(f: &OpenFlow) -> OpenFlowBody {
    let (dest_id, dest_port) = match f.destination {
        Destination::Node { node, port } => (u32::from(node.get()), port),
        Destination::Multicast { group, port } | Destination::Anycast { group, port } => {
            (group.0, port)
        }
    };
    OpenFlowBody {
        local_port: U16::new(f.local_port.0),
        dest_kind: f.destination.kind().as_u8(),
        protocol: f.protocol.as_u8(),
        dest_id: U32::new(dest_id),
        dest_port: U16::new(dest_port.0),
        routing: f.routing.code(),
        k: f.routing.k(),
        priority: f.priority,
        delivery: f.delivery.as_u8(),
        strikes_n: f.strikes.n,
        strikes_m: f.strikes.m,
        deadline_us: U32::new(f.deadline_us),
    }
}

impl<'a> ClientMessage<'a> {
    /// Decodes a frame a client sent. Server-only types are [`DecodeError::UnknownType`].
    pub fn decode(frame: &Frame<'a>) -> Result<Self, DecodeError> {
        check_header(frame)?;
        let body = frame.body;
        let Some(t) = MsgType::from_u8(frame.msg_type).filter(|t| !t.is_from_server()) else {
            return Err(DecodeError::UnknownType(frame.msg_type));
        };
        Ok(match t {
            MsgType::Hello => {
                let (h, name) = fixed::<HelloFixed>(body, "Hello")?;
                if h.magic.get() != HELLO_MAGIC {
                    let value = u64::from(h.magic.get());
                    return Err(DecodeError::BadField {
                        field: "hello magic",
                        value,
                    });
                }
                ClientMessage::Hello(Hello {
                    min_version: h.min_version.get(),
                    max_version: h.max_version.get(),
                    name: text(name, "client name", MAX_CLIENT_NAME_LEN)?,
                })
            }
            MsgType::Bind => ClientMessage::Bind {
                port: Port(exact::<PortBody>(body, "Bind")?.port.get()),
            },
            MsgType::Unbind => ClientMessage::Unbind {
                port: Port(exact::<PortBody>(body, "Unbind")?.port.get()),
            },
            MsgType::OpenFlow => ClientMessage::OpenFlow(decode_open_flow(body)?),
            MsgType::CloseFlow => ClientMessage::CloseFlow {
                flow: FlowHandle(exact::<FlowBody>(body, "CloseFlow")?.flow.get()),
            },
            MsgType::Send => {
                let (f, p) = fixed::<FlowBody>(body, "Send")?;
                ClientMessage::Send {
                    flow: FlowHandle(f.flow.get()),
                    payload: payload(p)?,
                }
            }
            MsgType::Join => ClientMessage::Join {
                group: GroupId(exact::<GroupBody>(body, "Join")?.group.get()),
            },
            MsgType::Leave => ClientMessage::Leave {
                group: GroupId(exact::<GroupBody>(body, "Leave")?.group.get()),
            },
            MsgType::ClientGoodbye => {
                empty(body, "Goodbye")?;
                ClientMessage::Goodbye
            }
            _ => return Err(DecodeError::UnknownType(frame.msg_type)),
        })
    }

    /// The message's type code.
    pub const fn kind(&self) -> MsgType {
        match self {
            ClientMessage::Hello(_) => MsgType::Hello,
            ClientMessage::Bind { .. } => MsgType::Bind,
            ClientMessage::Unbind { .. } => MsgType::Unbind,
            ClientMessage::OpenFlow(_) => MsgType::OpenFlow,
            ClientMessage::CloseFlow { .. } => MsgType::CloseFlow,
            ClientMessage::Send { .. } => MsgType::Send,
            ClientMessage::Join { .. } => MsgType::Join,
            ClientMessage::Leave { .. } => MsgType::Leave,
            ClientMessage::Goodbye => MsgType::ClientGoodbye,
        }
    }
}

impl Encode for ClientMessage<'_> {
    fn msg_type(&self) -> u8 {
        self.kind().as_u8()
    }

    fn body_len(&self) -> usize {
        match self {
            ClientMessage::Hello(h) => size_of::<HelloFixed>() + h.name.len(),
            ClientMessage::Bind { .. } | ClientMessage::Unbind { .. } => size_of::<PortBody>(),
            ClientMessage::OpenFlow(f) => {
                size_of::<OpenFlowBody>()
                    + if f.pack_delay_us == 0 {
                        0
                    } else {
                        size_of::<OpenFlowPackTail>()
                    }
            }
            ClientMessage::CloseFlow { .. } => size_of::<FlowBody>(),
            ClientMessage::Send { payload, .. } => size_of::<FlowBody>() + payload.len(),
            ClientMessage::Join { .. } | ClientMessage::Leave { .. } => size_of::<GroupBody>(),
            ClientMessage::Goodbye => 0,
        }
    }

    fn check(&self) -> Result<(), EncodeError> {
        match self {
            ClientMessage::Hello(h) => check_text(h.name, "client name", MAX_CLIENT_NAME_LEN),
            ClientMessage::Send { payload, .. } => check_payload(payload),
            ClientMessage::OpenFlow(OpenFlow {
                routing: RoutingMode::KPaths(0),
                ..
            }) => Err(EncodeError::BadField {
                field: "k",
                value: 0,
            }),
            _ => Ok(()),
        }
    }

    fn write_body(&self, body: &mut [u8]) -> Result<(), EncodeError> {
        match *self {
            ClientMessage::Hello(h) => {
                let head = HelloFixed {
                    magic: U32::new(HELLO_MAGIC),
                    min_version: U16::new(h.min_version),
                    max_version: U16::new(h.max_version),
                };
                put(body, &head, h.name.as_bytes())
            }
            ClientMessage::Bind { port } | ClientMessage::Unbind { port } => put(
                body,
                &PortBody {
                    port: U16::new(port.0),
                },
                &[],
            ),
            ClientMessage::OpenFlow(ref f) => {
                let tail = OpenFlowPackTail {
                    pack_delay_us: U32::new(f.pack_delay_us),
                };
                let tail = if f.pack_delay_us == 0 {
                    &[][..]
                } else {
                    tail.as_bytes()
                };
                put(body, &encode_open_flow(f), tail)
            }
            ClientMessage::CloseFlow { flow } => put(
                body,
                &FlowBody {
                    flow: U32::new(flow.0),
                },
                &[],
            ),
            ClientMessage::Send { flow, payload } => put(
                body,
                &FlowBody {
                    flow: U32::new(flow.0),
                },
                payload,
            ),
            ClientMessage::Join { group } | ClientMessage::Leave { group } => put(
                body,
                &GroupBody {
                    group: U32::new(group.0),
                },
                &[],
            ),
            ClientMessage::Goodbye => put(body, &[0u8; 0], &[]),
        }
    }
}

impl<'a> ServerMessage<'a> {
    /// Decodes a frame a server sent. Client-only types are [`DecodeError::UnknownType`].
    pub fn decode(frame: &Frame<'a>) -> Result<Self, DecodeError> {
        check_header(frame)?;
        let body = frame.body;
        let Some(t) = MsgType::from_u8(frame.msg_type).filter(|t| t.is_from_server()) else {
            return Err(DecodeError::UnknownType(frame.msg_type));
        };
        Ok(match t {
            MsgType::Welcome => {
                let w = exact::<WelcomeBody>(body, "Welcome")?;
                if w.reserved.get() != 0 {
                    return Err(DecodeError::ReservedBitsSet {
                        field: "Welcome reserved",
                    });
                }
                ServerMessage::Welcome(Welcome {
                    version: w.version.get(),
                    node: node_id(u32::from(w.node.get()), "node")?,
                    max_payload: w.max_payload.get(),
                    default_credits: w.default_credits.get(),
                    max_flows: w.max_flows.get(),
                    max_ports: w.max_ports.get(),
                    max_groups: w.max_groups.get(),
                })
            }
            MsgType::Bound => ServerMessage::Bound {
                port: Port(exact::<PortBody>(body, "Bound")?.port.get()),
            },
            MsgType::FlowOpened => {
                let b = exact::<FlowCreditBody>(body, "FlowOpened")?;
                ServerMessage::FlowOpened {
                    flow: FlowHandle(b.flow.get()),
                    credits: b.credits.get(),
                }
            }
            MsgType::Ok => {
                empty(body, "Ok")?;
                ServerMessage::Ok
            }
            MsgType::Deliver => {
                let (d, p) = fixed::<DeliverFixed>(body, "Deliver")?;
                if d.reserved != 0 {
                    return Err(DecodeError::ReservedBitsSet {
                        field: "Deliver reserved",
                    });
                }
                let group = d.group.get();
                let to = match AddrKind::from_u8(d.kind) {
                    Some(AddrKind::Node) if group == 0 => DeliveredTo::Node,
                    Some(AddrKind::Node) => {
                        return Err(DecodeError::BadField {
                            field: "group",
                            value: u64::from(group),
                        });
                    }
                    Some(AddrKind::Multicast) => DeliveredTo::Multicast(GroupId(group)),
                    Some(AddrKind::Anycast) => DeliveredTo::Anycast(GroupId(group)),
                    None => {
                        return Err(DecodeError::BadField {
                            field: "address kind",
                            value: u64::from(d.kind),
                        });
                    }
                };
                ServerMessage::Deliver(Deliver {
                    local_port: Port(d.local_port.get()),
                    to,
                    source_node: node_id(u32::from(d.source_node.get()), "source node")?,
                    source_port: Port(d.source_port.get()),
                    flow: FlowId(d.flow.get()),
                    seq: d.seq.get(),
                    age_us: d.age_us.get(),
                    payload: payload(p)?,
                })
            }
            MsgType::Credit => {
                let b = exact::<FlowCreditBody>(body, "Credit")?;
                ServerMessage::Credit {
                    flow: FlowHandle(b.flow.get()),
                    credits: b.credits.get(),
                }
            }
            MsgType::Error => {
                let (e, t) = fixed::<ErrorFixed>(body, "Error")?;
                if e.reserved.get() != 0 {
                    return Err(DecodeError::ReservedBitsSet {
                        field: "Error reserved",
                    });
                }
                ServerMessage::Error(ErrorMsg {
                    code: ErrorCode::from_u16(e.code.get()),
                    detail: e.detail.get(),
                    text: text(t, "error text", MAX_ERROR_TEXT_LEN)?,
                })
            }
            MsgType::ServerGoodbye => {
                empty(body, "Goodbye")?;
                ServerMessage::Goodbye
            }
            _ => return Err(DecodeError::UnknownType(frame.msg_type)),
        })
    }

    /// The message's type code.
    pub const fn kind(&self) -> MsgType {
        match self {
            ServerMessage::Welcome(_) => MsgType::Welcome,
            ServerMessage::Bound { .. } => MsgType::Bound,
            ServerMessage::FlowOpened { .. } => MsgType::FlowOpened,
            ServerMessage::Ok => MsgType::Ok,
            ServerMessage::Deliver(_) => MsgType::Deliver,
            ServerMessage::Credit { .. } => MsgType::Credit,
            ServerMessage::Error(_) => MsgType::Error,
            ServerMessage::Goodbye => MsgType::ServerGoodbye,
        }
    }
}

impl Encode for ServerMessage<'_> {
    fn msg_type(&self) -> u8 {
        self.kind().as_u8()
    }

    fn body_len(&self) -> usize {
        match self {
            ServerMessage::Welcome(_) => size_of::<WelcomeBody>(),
            ServerMessage::Bound { .. } => size_of::<PortBody>(),
            ServerMessage::FlowOpened { .. } | ServerMessage::Credit { .. } => {
                size_of::<FlowCreditBody>()
            }
            ServerMessage::Ok | ServerMessage::Goodbye => 0,
            ServerMessage::Deliver(d) => size_of::<DeliverFixed>() + d.payload.len(),
            ServerMessage::Error(e) => size_of::<ErrorFixed>() + e.text.len(),
        }
    }

    fn check(&self) -> Result<(), EncodeError> {
        match self {
            ServerMessage::Deliver(d) => check_payload(d.payload),
            ServerMessage::Error(e) => check_text(e.text, "error text", MAX_ERROR_TEXT_LEN),
            _ => Ok(()),
        }
    }

    fn write_body(&self, body: &mut [u8]) -> Result<(), EncodeError> {
        match *self {
            ServerMessage::Welcome(w) => {
                let b = WelcomeBody {
                    version: U16::new(w.version),
                    node: U16::new(w.node.get()),
                    max_payload: U32::new(w.max_payload),
                    default_credits: U32::new(w.default_credits),
                    max_flows: U16::new(w.max_flows),
                    max_ports: U16::new(w.max_ports),
                    max_groups: U16::new(w.max_groups),
                    reserved: U16::new(0),
                };
                put(body, &b, &[])
            }
            ServerMessage::Bound { port } => put(
                body,
                &PortBody {
                    port: U16::new(port.0),
                },
                &[],
            ),
            ServerMessage::FlowOpened { flow, credits }
            | ServerMessage::Credit { flow, credits } => put(
                body,
                &FlowCreditBody {
                    flow: U32::new(flow.0),
                    credits: U32::new(credits),
                },
                &[],
            ),
            ServerMessage::Ok | ServerMessage::Goodbye => put(body, &[0u8; 0], &[]),
            ServerMessage::Deliver(d) => {
                let group = match d.to {
                    DeliveredTo::Node => 0,
                    DeliveredTo::Multicast(g) | DeliveredTo::Anycast(g) => g.0,
                };
                let head = DeliverFixed {
                    local_port: U16::new(d.local_port.0),
                    source_node: U16::new(d.source_node.get()),
                    source_port: U16::new(d.source_port.0),
                    kind: d.to.kind().as_u8(),
                    reserved: 0,
                    group: U32::new(group),
                    flow: U32::new(d.flow.0),
                    seq: U64::new(d.seq),
                    age_us: U32::new(d.age_us),
                };
                put(body, &head, d.payload)
            }
            ServerMessage::Error(e) => {
                let head = ErrorFixed {
                    code: U16::new(e.code.as_u16()),
                    reserved: U16::new(0),
                    detail: U32::new(e.detail),
                };
                put(body, &head, e.text.as_bytes())
            }
        }
    }
}
