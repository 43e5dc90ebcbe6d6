//! The client side of a session without I/O: per-flow credits, the request awaiting a reply,
//! requests given up on, and what each message from the node does to them.
//!
//! [`Session::handle`] takes one decoded frame and returns the `Deliver` it carries, if any,
//! for the caller to queue or hand to the application; every other message is absorbed here.
//! The I/O side ([`crate::Client`]) reads frames, calls `handle`, and writes the requests this
//! module asks for (the cleanup of abandoned requests).

use std::collections::HashMap;

use weft_shared::ids::Port;
use weft_shared::session::{ClientMessage, Deliver, FlowHandle, MsgType, ServerMessage};

use crate::error::{ClientError, Disconnect, ProtocolError, ServerError};

/// Requests given up on (see [`ClientError::ReceiveQueueFull`]) whose replies are still due.
pub(crate) const MAX_ABANDONED: usize = 16;

/// The kind of a request that gets a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReqKind {
    /// `Bind`, answered by `Bound`.
    Bind,
    /// `OpenFlow`, answered by `FlowOpened`.
    OpenFlow,
    /// `Unbind`, `CloseFlow`, `Join`, `Leave`: answered by `Ok`.
    Plain(&'static str),
}

impl ReqKind {
    fn name(self) -> &'static str {
        match self {
            ReqKind::Bind => "Bind",
            ReqKind::OpenFlow => "OpenFlow",
            ReqKind::Plain(name) => name,
        }
    }
}

/// A reply, owned so it outlives the receive buffer it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `Bound`.
    Bound(Port),
    /// `FlowOpened`.
    FlowOpened {
        /// The flow's handle.
        flow: FlowHandle,
        /// Its initial credits.
        credits: u32,
    },
    /// `Ok`.
    Ok,
    /// `Error`.
    Error(ServerError),
}

/// A flow's credit account.
#[derive(Clone, Copy, Debug)]
struct Credits {
    /// Messages the node will accept now.
    available: u32,
    /// What `FlowOpened` granted: when `available` is back to it, the node's queue for the flow
    /// is empty.
    initial: u32,
}

/// Counters of what a client did, for tests and tools. They only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// `write` calls on the socket.
    pub writes: u64,
    /// `read` calls on the socket that returned data.
    pub reads: u64,
    /// `Send` frames written.
    pub sends: u64,
    /// `Deliver`s received.
    pub delivers: u64,
    /// `Deliver`s that went through the queue (they arrived during another call).
    pub queued: u64,
    /// Times a send found its flow without credit (and waited, or returned `WouldBlock`).
    pub credit_stalls: u64,
    /// `Credit` messages received.
    pub credits: u64,
    /// Calls that returned [`ClientError::ReceiveQueueFull`].
    pub queue_full: u64,
    /// `Error`s the node returned for `Send`s (reported once through the next send call).
    pub send_errors: u64,
}

/// What a session knows, apart from its socket and buffers.
#[derive(Debug)]
pub(crate) struct Session {
    flows: HashMap<u32, Credits>,
    /// The request a call is waiting on, and its reply once it came.
    waiting: Option<(u32, ReqKind)>,
    reply: Option<Reply>,
    /// Requests whose call gave up; their replies are absorbed and undone.
    abandoned: Vec<(u32, ReqKind)>,
    /// Requests to write to undo an abandoned request's effect (release a port, close a flow).
    cleanup: Vec<ClientMessage<'static>>,
    /// The first `Error` for a `Send` not yet reported.
    send_error: Option<ServerError>,
    next_id: u32,
    pub(crate) stats: ClientStats,
}

impl Session {
    /// A session that may hold up to `max_flows` flows without reallocating.
    pub(crate) fn new(max_flows: usize) -> Self {
        Session {
            flows: HashMap::with_capacity(max_flows),
            waiting: None,
            reply: None,
            abandoned: Vec::with_capacity(MAX_ABANDONED * 2),
            cleanup: Vec::with_capacity(MAX_ABANDONED),
            send_error: None,
            // Id 1 was the Hello's.
            next_id: 2,
            stats: ClientStats::default(),
        }
    }

    /// A fresh non-zero request id.
    pub(crate) fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Starts waiting for the reply to request `id`.
    pub(crate) fn wait_for(&mut self, id: u32, kind: ReqKind) {
        self.waiting = Some((id, kind));
        self.reply = None;
    }

    /// Whether the reply to the request being waited for came.
    pub(crate) fn has_reply(&self) -> bool {
        self.reply.is_some()
    }

    /// The reply to the request being waited for, if it came; the wait then ends.
    pub(crate) fn take_reply(&mut self) -> Option<Reply> {
        let reply = self.reply.take()?;
        self.waiting = None;
        Some(reply)
    }

    /// Gives up waiting: the reply, when it comes, is absorbed and its effect undone.
    pub(crate) fn abandon(&mut self) {
        if let Some(w) = self.waiting.take() {
            // Room was checked before the request was sent (`may_request`).
            self.abandoned.push(w);
        }
    }

    /// Whether a new request may be sent: there is room to abandon it if need be.
    pub(crate) fn may_request(&self) -> bool {
        self.abandoned.len() < MAX_ABANDONED
    }

    /// Requests to write to undo abandoned requests; the caller writes and clears them.
    pub(crate) fn cleanup(&mut self) -> &mut Vec<ClientMessage<'static>> {
        &mut self.cleanup
    }

    /// Records a flow the node opened with `credits`.
    pub(crate) fn open_flow(&mut self, flow: FlowHandle, credits: u32) {
        self.flows.insert(
            flow.0,
            Credits {
                available: credits,
                initial: credits,
            },
        );
    }

    /// Forgets a flow (it is being closed).
    pub(crate) fn close_flow(&mut self, flow: FlowHandle) -> bool {
        self.flows.remove(&flow.0).is_some()
    }

    /// The flow's available credits, or `None` if it is not open.
    pub(crate) fn credits(&self, flow: FlowHandle) -> Option<u32> {
        self.flows.get(&flow.0).map(|c| c.available)
    }

    /// Takes `n` credits from a flow (which must have them).
    pub(crate) fn spend(&mut self, flow: FlowHandle, n: u32) {
        if let Some(c) = self.flows.get_mut(&flow.0) {
            c.available = c.available.saturating_sub(n);
        }
    }

    /// Whether every flow has all its initial credits back: the node has nothing queued.
    pub(crate) fn drained(&self) -> bool {
        self.flows.values().all(|c| c.available >= c.initial)
    }

    /// Takes the pending `Send` error, if any.
    pub(crate) fn take_send_error(&mut self) -> Option<ServerError> {
        self.send_error.take()
    }

    /// Handles one message from the node. A `Deliver` is returned to the caller; everything
    /// else changes the session. Errors end the session, except none do for replies.
    pub(crate) fn handle<'a>(
        &mut self,
        request_id: u32,
        msg: ServerMessage<'a>,
    ) -> Result<Option<Deliver<'a>>, ClientError> {
        let reply = match msg {
            ServerMessage::Deliver(d) => return Ok(Some(d)),
            ServerMessage::Credit { flow, credits } => {
                self.stats.credits += 1;
                // A Credit for a flow this client closed meanwhile is harmless.
                if let Some(c) = self.flows.get_mut(&flow.0) {
                    c.available = c.available.saturating_add(credits);
                }
                return Ok(None);
            }
            ServerMessage::Goodbye => {
                return Err(ClientError::Disconnected(Disconnect::NodeGoodbye));
            }
            ServerMessage::Welcome(_) => return Err(ProtocolError::DuplicateWelcome.into()),
            ServerMessage::Error(e) if request_id == 0 => {
                // A connection-level error: the node closes the session after it.
                return Err(ServerError::from_msg(&e).into());
            }
            ServerMessage::Error(e) => Reply::Error(ServerError::from_msg(&e)),
            ServerMessage::Bound { port } => Reply::Bound(port),
            ServerMessage::FlowOpened { flow, credits } => Reply::FlowOpened { flow, credits },
            ServerMessage::Ok => Reply::Ok,
        };
        self.handle_reply(request_id, reply)?;
        Ok(None)
    }

    fn handle_reply(&mut self, request_id: u32, reply: Reply) -> Result<(), ClientError> {
        let msg_type = match &reply {
            Reply::Bound(_) => MsgType::Bound,
            Reply::FlowOpened { .. } => MsgType::FlowOpened,
            Reply::Ok => MsgType::Ok,
            Reply::Error(_) => MsgType::Error,
        }
        .as_u8();
        if let Some((id, kind)) = self.waiting {
            if id == request_id {
                check_kind(kind, &reply, msg_type)?;
                self.reply = Some(reply);
                return Ok(());
            }
        }
        if let Some(i) = self.abandoned.iter().position(|&(id, _)| id == request_id) {
            let (_, kind) = self.abandoned.swap_remove(i);
            check_kind(kind, &reply, msg_type)?;
            // Undo what the abandoned request did; the undo's own reply is absorbed too.
            let undo = match reply {
                Reply::Bound(port) => Some(ClientMessage::Unbind { port }),
                Reply::FlowOpened { flow, .. } => Some(ClientMessage::CloseFlow { flow }),
                Reply::Ok | Reply::Error(_) => None,
            };
            if let Some(undo) = undo {
                self.cleanup.push(undo);
            }
            return Ok(());
        }
        match reply {
            // Sends are the only requests without a reply on success; an Error with another
            // id is for one of them.
            Reply::Error(e) => {
                self.stats.send_errors += 1;
                if self.send_error.is_none() {
                    self.send_error = Some(e);
                }
                Ok(())
            }
            _ => Err(ProtocolError::UnexpectedReply {
                msg_type,
                request_id,
            }
            .into()),
        }
    }

    /// Registers the undo request `id` as abandoned from the start: its reply is absorbed.
    pub(crate) fn absorb(&mut self, id: u32) {
        if self.abandoned.len() < MAX_ABANDONED * 2 {
            self.abandoned.push((id, ReqKind::Plain("cleanup")));
        }
    }
}

/// Checks that `reply` answers a request of `kind`.
fn check_kind(kind: ReqKind, reply: &Reply, msg_type: u8) -> Result<(), ProtocolError> {
    let ok = matches!(
        (kind, reply),
        (_, Reply::Error(_))
            | (ReqKind::Bind, Reply::Bound(_))
            | (ReqKind::OpenFlow, Reply::FlowOpened { .. })
            | (ReqKind::Plain(_), Reply::Ok)
    );
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::WrongReply {
            msg_type,
            request: kind.name(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use weft_shared::session::{ErrorCode, ErrorMsg};

    use super::*;

    #[test]
    fn replies_match_requests_by_id() {
        let mut s = Session::new(4);
        let id = s.next_id();
        s.wait_for(id, ReqKind::Bind);
        assert!(s.take_reply().is_none());
        s.handle(id, ServerMessage::Bound { port: Port(5) })
            .unwrap();
        assert_eq!(s.take_reply(), Some(Reply::Bound(Port(5))));
        // No one waits now: an Ok is a protocol error, an Error is a Send's error.
        assert!(matches!(
            s.handle(99, ServerMessage::Ok),
            Err(ClientError::Protocol(ProtocolError::UnexpectedReply { .. }))
        ));
        let e = ErrorMsg {
            code: ErrorCode::NoCredit,
            detail: 3,
            text: "",
        };
        s.handle(100, ServerMessage::Error(e)).unwrap();
        assert_eq!(
            s.take_send_error(),
            Some(ServerError::NoCredit {
                flow: FlowHandle(3)
            })
        );
        assert_eq!(s.stats.send_errors, 1);
    }

    #[test]
    fn a_wrong_reply_kind_is_a_protocol_error() {
        let mut s = Session::new(4);
        let id = s.next_id();
        s.wait_for(id, ReqKind::OpenFlow);
        assert!(matches!(
            s.handle(id, ServerMessage::Bound { port: Port(1) }),
            Err(ClientError::Protocol(ProtocolError::WrongReply { .. }))
        ));
    }

    #[test]
    fn abandoned_requests_are_undone() {
        let mut s = Session::new(4);
        let bind = s.next_id();
        s.wait_for(bind, ReqKind::Bind);
        s.abandon();
        let open = s.next_id();
        s.wait_for(open, ReqKind::OpenFlow);
        s.abandon();
        s.handle(bind, ServerMessage::Bound { port: Port(8) })
            .unwrap();
        s.handle(
            open,
            ServerMessage::FlowOpened {
                flow: FlowHandle(4),
                credits: 10,
            },
        )
        .unwrap();
        assert_eq!(
            s.cleanup().as_slice(),
            &[
                ClientMessage::Unbind { port: Port(8) },
                ClientMessage::CloseFlow {
                    flow: FlowHandle(4)
                }
            ]
        );
        assert_eq!(
            s.credits(FlowHandle(4)),
            None,
            "an abandoned flow is never usable"
        );
    }

    #[test]
    fn credits_add_up_and_drain_is_seen() {
        let mut s = Session::new(4);
        s.open_flow(FlowHandle(1), 2);
        s.spend(FlowHandle(1), 2);
        assert_eq!(s.credits(FlowHandle(1)), Some(0));
        assert!(!s.drained());
        let credit = ServerMessage::Credit {
            flow: FlowHandle(1),
            credits: 2,
        };
        assert_eq!(s.handle(0, credit).unwrap(), None);
        assert_eq!(s.credits(FlowHandle(1)), Some(2));
        assert!(s.drained());
        // Credits for an unknown flow are ignored.
        let stray = ServerMessage::Credit {
            flow: FlowHandle(9),
            credits: 1,
        };
        s.handle(0, stray).unwrap();
        assert_eq!(s.credits(FlowHandle(9)), None);
        assert!(matches!(
            s.handle(0, ServerMessage::Goodbye),
            Err(ClientError::Disconnected(Disconnect::NodeGoodbye))
        ));
    }
}
