//! The end-to-end layer of reliable flows on worker 0 (`docs/reliable.md`): an [`E2eSource`]
//! per flow this node's clients send on, an [`E2eSink`] per flow arriving here, and the
//! end-to-end acks between them.
//!
//! - **Source.** A client's message of a reliable flow is taken by the flow's source (the
//!   session gave the client a credit for it) and sent on the first link's reliable sender. It
//!   stays buffered until the destination reports it delivered; then the client gets its
//!   credit back ([`ReliableFlows::poll`]'s `grant`). A message the sink has not reported
//!   received one timeout after it was sent goes again on the route of the moment (a node on
//!   the way crashed, or the route changed).
//! - **Sink.** A message arriving here goes into its flow's reorder buffer and reaches the
//!   client in order, exactly once, as fast as the client's output buffer takes it; one that
//!   finds the client's buffer full waits in the sink, and the source's window then stops the
//!   flow (backpressure, nothing lost).
//! - **Acks.** The sink's state (delivered, received, a 1,024-bit selective bitmap) travels to
//!   the source node as a best-effort data record to port [`E2E_ACK_PORT`] (0, which no client
//!   can bind), with the flow's id and source incarnation in the payload ([`AckBody`]).
//!
//! Memory is bounded: at most [`MAX_SOURCES`] source flows and [`MAX_SINKS`] sink flows, each
//! with its window of messages, allocated when the flow opens (or its first message arrives),
//! never per message. A source flow whose client closed it, once everything was delivered, and
//! a sink idle for [`SINK_IDLE`] with nothing held, make room for a new flow (until then their
//! rows stay in `weftctl show reliable`).

use std::time::Duration;

use weft_proto::forward::LocalDelivery;
use weft_proto::reliable::{E2E_SACK_WORDS, E2eAck, E2eEvent, E2eParams, E2eSink, E2eSource};
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, NodeId, Port};
use weft_shared::shm::{Counter, RelFlowValues, RelStatsWriter, WorkerCounters};
use weft_shared::time::Instant;

use crate::session::{DeliverError, DeliverInfo};

/// The port end-to-end acks are addressed to (no client can bind port 0).
pub const E2E_ACK_PORT: Port = Port(0);
/// Reliable flows this node's clients may send on at once.
pub const MAX_SOURCES: usize = 256;
const _: () = assert!(MAX_SOURCES + MAX_SINKS <= weft_shared::shm::rel_stats::MAX_REL_FLOWS);
/// Reliable flows arriving at this node tracked at once.
pub const MAX_SINKS: usize = 64;
/// A sink with nothing held and no message for this long is retired.
pub const SINK_IDLE: Duration = Duration::from_secs(30);
/// How soon a resend that could not leave (no room on the link, no route) is tried again.
const RESEND_RETRY: Duration = Duration::from_millis(10);
/// The longest between two acks of a sink that still has messages outstanding at the source
/// (a keepalive, so that a lost ack costs little).
const ACK_KEEPALIVE: Duration = Duration::from_millis(100);

/// Bytes of an encoded [`AckBody`] before its selective words.
const ACK_HEAD: usize = 28;
/// Largest encoded [`AckBody`].
pub const ACK_BODY_MAX: usize = ACK_HEAD + 8 * E2E_SACK_WORDS;

/// An end-to-end ack on the wire (the payload of a record to [`E2E_ACK_PORT`]):
///
/// | offset | size | field |
/// |---:|---:|---|
/// | 0 | 1 | version, 1 |
/// | 1 | 1 | `words`: selective words that follow, 0..=16 |
/// | 2 | 2 | reserved, 0 |
/// | 4 | 4 | the flow's source incarnation |
/// | 8 | 4 | the flow id |
/// | 12 | 8 | `delivered` |
/// | 20 | 8 | `received` |
/// | 28 | 8 × `words` | the selective bitmap above `received`, word 0 first |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckBody {
    /// The acked flow's source incarnation (the source node's data plane).
    pub incarnation: Incarnation,
    /// The acked flow.
    pub flow: FlowId,
    /// The sink's state.
    pub ack: E2eAck,
}

impl AckBody {
    /// Encodes into `buf` (at least [`ACK_BODY_MAX`] bytes); returns the length.
    pub fn encode(&self, buf: &mut [u8]) -> usize {
        let words = self
            .ack
            .sack
            .iter()
            .rposition(|&w| w != 0)
            .map_or(0, |i| i + 1);
        buf[0] = 1;
        buf[1] = words as u8;
        buf[2..4].fill(0);
        buf[4..8].copy_from_slice(&self.incarnation.0.to_be_bytes());
        buf[8..12].copy_from_slice(&self.flow.0.to_be_bytes());
        buf[12..20].copy_from_slice(&self.ack.delivered.to_be_bytes());
        buf[20..28].copy_from_slice(&self.ack.received.to_be_bytes());
        for (i, w) in self.ack.sack[..words].iter().enumerate() {
            buf[ACK_HEAD + 8 * i..ACK_HEAD + 8 * i + 8].copy_from_slice(&w.to_be_bytes());
        }
        ACK_HEAD + 8 * words
    }

    /// Decodes a payload; anything malformed is a counted drop, never a panic.
    pub fn decode(b: &[u8]) -> Result<Self, DropReason> {
        let bad = |field| DropReason::BadField { field, value: 0 };
        if b.len() < ACK_HEAD {
            return Err(DropReason::Truncated {
                needed: ACK_HEAD,
                got: b.len(),
            });
        }
        if b[0] != 1 {
            return Err(bad("e2e_ack.version"));
        }
        if b[2] != 0 || b[3] != 0 {
            return Err(DropReason::ReservedBitsSet {
                field: "e2e_ack.reserved",
            });
        }
        let words = usize::from(b[1]);
        if words > E2E_SACK_WORDS || b.len() != ACK_HEAD + 8 * words {
            return Err(DropReason::BadLength {
                field: "e2e_ack.len",
                value: b.len(),
            });
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(w)
        };
        let mut sack = [0; E2E_SACK_WORDS];
        for (i, w) in sack.iter_mut().take(words).enumerate() {
            *w = u64_at(ACK_HEAD + 8 * i);
        }
        Ok(AckBody {
            incarnation: Incarnation(u32_at(4)),
            flow: FlowId(u32_at(8)),
            ack: E2eAck {
                delivered: u64_at(12),
                received: u64_at(20),
                sack,
            },
        })
    }
}

/// Hands a message to the client bound to a port.
pub type DeliverFn<'a> = dyn FnMut(Port, &DeliverInfo, &[u8]) -> Result<(), DeliverError> + 'a;

/// Where [`ReliableFlows::poll`] sends its work.
pub trait FlowOutput {
    /// Hands a message to the client bound to `port`.
    fn deliver(
        &mut self,
        port: Port,
        info: &DeliverInfo,
        payload: &[u8],
    ) -> Result<(), DeliverError>;
    /// Sends an end-to-end ack (an encoded [`AckBody`]) to node `to`, from port `src_port`.
    fn send_ack(&mut self, to: NodeId, src_port: Port, body: &[u8]);
    /// Resends message `seq` of flow `info`; `false` if it cannot leave now.
    fn resend(&mut self, info: &SourceInfo, seq: u64, msg: &[u8]) -> bool;
    /// Gives `n` credits back to flow `flow`'s client.
    fn grant(&mut self, flow: FlowId, n: u32);
}

/// A source flow as the resend callback sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// The flow id.
    pub flow: FlowId,
    /// The sending client's port.
    pub src_port: Port,
    /// The destination node.
    pub dst: NodeId,
    /// The destination port.
    pub dst_port: Port,
}

struct SourceFlow {
    info: SourceInfo,
    source: E2eSource,
    /// The client closed the flow: retire it once everything is delivered.
    closed: bool,
    /// `source.counters().delivered` when credits were last given back.
    granted: u64,
    /// A resend could not leave (no room or route): try again then.
    retry_at: Option<Instant>,
}

struct SinkFlow {
    src: NodeId,
    incarnation: Incarnation,
    flow: FlowId,
    src_port: Port,
    dst_port: Port,
    sink: E2eSink,
    last_active: Instant,
    last_ack: Instant,
    counted: (u64, u64),
}

/// Every reliable flow of this node, both ends (module doc).
pub struct ReliableFlows {
    params: E2eParams,
    incarnation: Incarnation,
    sources: Vec<SourceFlow>,
    sinks: Vec<SinkFlow>,
    /// An ack moved a source: its client's credits go back on the next poll, which is due at
    /// once (the client may be blocked waiting for them).
    progressed: bool,
}

impl ReliableFlows {
    /// The flows of a data plane with incarnation `incarnation`; each flow has a window of
    /// `window` messages of up to `msg_len` bytes.
    pub fn new(incarnation: Incarnation, window: u32, msg_len: usize) -> Self {
        ReliableFlows {
            params: E2eParams {
                window,
                msg_len,
                ..E2eParams::for_path(Duration::from_millis(50))
            },
            incarnation,
            sources: Vec::with_capacity(MAX_SOURCES),
            sinks: Vec::with_capacity(MAX_SINKS),
            progressed: false,
        }
    }

    /// A client opened reliable flow `info.flow`. `false` when the table is full.
    pub fn open(&mut self, info: SourceInfo) -> bool {
        if let Some(i) = self
            .sources
            .iter()
            .position(|s| s.closed && s.source.outstanding() == 0)
        {
            self.sources.swap_remove(i);
        }
        if self.sources.len() == MAX_SOURCES {
            return false;
        }
        self.sources.push(SourceFlow {
            info,
            source: E2eSource::new(self.params),
            closed: false,
            granted: 0,
            retry_at: None,
        });
        true
    }

    /// The client closed flow `flow`: what is outstanding is still delivered.
    pub fn close(&mut self, flow: FlowId) {
        if let Some(s) = self.sources.iter_mut().find(|s| s.info.flow == flow) {
            s.closed = true;
        }
    }

    /// Takes a client's message of flow `flow`; returns its end-to-end sequence (the client's
    /// sequence + 1) and where it goes. The caller then sends it.
    pub fn take(
        &mut self,
        now: Instant,
        flow: FlowId,
        payload: &[u8],
    ) -> Result<(u64, SourceInfo), DropReason> {
        let s = self
            .sources
            .iter_mut()
            .find(|s| s.info.flow == flow)
            .ok_or(DropReason::BadField {
                field: "flow",
                value: flow.0.into(),
            })?;
        let seq = s.source.handle_send(now, payload).map_err(|e| match e {
            weft_proto::reliable::E2eSendError::WouldBlock => DropReason::QueueFull,
            weft_proto::reliable::E2eSendError::TooLarge { len } => DropReason::BadLength {
                field: "reliable.payload",
                value: len,
            },
        })?;
        Ok((seq, s.info))
    }

    /// An end-to-end ack arrived (a delivery to [`E2E_ACK_PORT`]).
    pub fn on_ack(&mut self, now: Instant, d: &LocalDelivery<'_>) -> Result<(), DropReason> {
        let body = AckBody::decode(d.payload)?;
        if body.incarnation != self.incarnation {
            return Ok(()); // for a flow of this node's previous life
        }
        let s = self
            .sources
            .iter_mut()
            .find(|s| s.info.flow == body.flow && s.info.dst == d.src)
            .ok_or(DropReason::BadField {
                field: "e2e_ack.flow",
                value: body.flow.0.into(),
            })?;
        s.source.handle_ack(now, &body.ack);
        self.progressed = true;
        Ok(())
    }

    /// A message of a reliable flow arrived for a client of this node. `deliver` hands a
    /// message to the client bound to its port.
    pub fn on_data(
        &mut self,
        now: Instant,
        d: &LocalDelivery<'_>,
        deliver: &mut DeliverFn<'_>,
        counters: &WorkerCounters,
    ) -> Result<(), DropReason> {
        let i = self.sink_for(now, d)?;
        let f = &mut self.sinks[i];
        f.last_active = now;
        // The client numbers from 0, the end-to-end layer from 1.
        let seq = d.seq + 1;
        if f.sink.is_next_in_order(seq, d.payload.len()) {
            // The usual case, in order with nothing waiting: straight to the client, no copy.
            let info = f.deliver_info(seq, d.age_us);
            if deliver(f.dst_port, &info, d.payload).is_ok() {
                f.sink.handle_delivered(now, seq);
                count_delivered(counters);
                return Ok(());
            }
        }
        let outcome = f.sink.handle_packet_aged(now, seq, d.payload, d.age_us);
        drain(f, now, deliver, counters);
        match outcome {
            weft_proto::reliable::SinkOutcome::Accepted
            | weft_proto::reliable::SinkOutcome::Duplicate => Ok(()),
            weft_proto::reliable::SinkOutcome::BeyondWindow => Err(DropReason::QueueFull),
            weft_proto::reliable::SinkOutcome::TooLarge => Err(DropReason::BadLength {
                field: "reliable.payload",
                value: d.payload.len(),
            }),
        }
    }

    fn sink_for(&mut self, now: Instant, d: &LocalDelivery<'_>) -> Result<usize, DropReason> {
        if let Some(i) = self
            .sinks
            .iter()
            .position(|f| f.src == d.src && f.incarnation == d.src_incarnation && f.flow == d.flow)
        {
            return Ok(i);
        }
        if self.sinks.len() == MAX_SINKS {
            let idle = self.sinks.iter().position(|f| {
                f.sink.held() == 0 && now.saturating_duration_since(f.last_active) >= SINK_IDLE
            });
            match idle {
                Some(i) => {
                    self.sinks.swap_remove(i);
                }
                None => return Err(DropReason::QueueFull),
            }
        }
        self.sinks.push(SinkFlow {
            src: d.src,
            incarnation: d.src_incarnation,
            flow: d.flow,
            src_port: d.src_port,
            dst_port: d.dst_port,
            sink: E2eSink::new(self.params),
            last_active: now,
            last_ack: now,
            counted: (0, 0),
        });
        Ok(self.sinks.len() - 1)
    }

    /// The periodic work: sinks deliver what their clients now take and ack; sources run
    /// their timers and resend, give credits back for what was delivered, and report stalls.
    pub fn poll(&mut self, now: Instant, out: &mut dyn FlowOutput, counters: &WorkerCounters) {
        self.progressed = false;
        let mut buf = [0u8; ACK_BODY_MAX];
        for f in self.sinks.iter_mut() {
            drain(f, now, &mut |p, i, m| out.deliver(p, i, m), counters);
            let keepalive =
                f.sink.held() > 0 && now.saturating_duration_since(f.last_ack) >= ACK_KEEPALIVE;
            let ack = f
                .sink
                .poll_ack(now)
                .or_else(|| keepalive.then(|| f.sink.ack()));
            if let Some(ack) = ack {
                f.last_ack = now;
                let body = AckBody {
                    incarnation: f.incarnation,
                    flow: f.flow,
                    ack,
                };
                let n = body.encode(&mut buf);
                out.send_ack(f.src, f.dst_port, &buf[..n]);
            }
            let c = f.sink.counters();
            counters.add(Counter::RelSinkDuplicates, c.duplicates - f.counted.1);
            f.counted.1 = c.duplicates;
        }
        for s in self.sources.iter_mut() {
            if s.source.poll_timeout().is_some_and(|t| t <= now) {
                s.source.handle_timeout(now);
            }
            let before = s.source.counters().resent;
            s.retry_at = None;
            while let Some((seq, msg)) = s.source.peek_resend() {
                if !out.resend(&s.info, seq, msg) {
                    s.retry_at = Some(now + RESEND_RETRY);
                    break;
                }
                s.source.commit_resend();
            }
            counters.add(Counter::RelResent, s.source.counters().resent - before);
            let delivered = s.source.counters().delivered;
            if delivered > s.granted {
                out.grant(s.info.flow, (delivered - s.granted) as u32);
                s.granted = delivered;
            }
            match s.source.poll_event() {
                Some(E2eEvent::Stalled { outstanding }) => eprintln!(
                    "weft-dataplane: reliable flow {} to node {} stalled: no progress for {:?}, \
                     {outstanding} messages held (no path, or the receiver stopped reading)",
                    s.info.flow.0, s.info.dst, self.params.stall_after
                ),
                Some(E2eEvent::Resumed) => eprintln!(
                    "weft-dataplane: reliable flow {} to node {} moves again",
                    s.info.flow.0, s.info.dst
                ),
                None => {}
            }
        }
    }

    /// Writes one row per flow (sources first, then sinks) and clears the unused rows.
    pub fn write_stats(&self, w: &RelStatsWriter) {
        for slot in 0..MAX_SOURCES {
            let row = self.sources.get(slot).map(|s| {
                let c = s.source.counters();
                RelFlowValues {
                    end: 1,
                    flow: s.info.flow.0.into(),
                    peer: s.info.dst.get().into(),
                    port: s.info.src_port.0.into(),
                    messages: c.sent,
                    delivered: c.delivered,
                    resent_or_reordered: c.resent,
                    blocked_or_duplicates: c.would_block,
                    held: s.source.outstanding().into(),
                    stalled: u64::from(s.source.is_stalled()),
                }
            });
            w.set_flow(slot, row.as_ref());
        }
        for i in 0..MAX_SINKS {
            let row = self.sinks.get(i).map(|f| {
                let c = f.sink.counters();
                RelFlowValues {
                    end: 2,
                    flow: f.flow.0.into(),
                    peer: f.src.get().into(),
                    port: f.dst_port.0.into(),
                    messages: c.accepted,
                    delivered: c.delivered,
                    resent_or_reordered: c.out_of_order,
                    blocked_or_duplicates: c.duplicates,
                    held: c.accepted - c.delivered,
                    stalled: 0,
                }
            });
            w.set_flow(MAX_SOURCES + i, row.as_ref());
        }
    }

    /// When [`poll`](Self::poll) has work next (acks due, resends, keepalives).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.progressed {
            return Some(Instant::ZERO);
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for f in &self.sinks {
            consider(f.sink.poll_timeout());
            if f.sink.held() > 0 {
                consider(Some(f.last_ack + ACK_KEEPALIVE));
            }
        }
        for s in &self.sources {
            consider(s.source.poll_timeout());
            consider(s.retry_at);
        }
        next
    }
}

/// Hands the sink's in-order messages to the client while it takes them.
impl SinkFlow {
    /// What the client is told of end-to-end message `seq` (numbered from 1; the client
    /// numbers from 0), `age_us` old.
    fn deliver_info(&self, seq: u64, age_us: u32) -> DeliverInfo {
        DeliverInfo {
            from_node: self.src,
            from_port: self.src_port,
            flow: self.flow,
            seq: seq - 1,
            age_us,
            group: None,
        }
    }
}

fn count_delivered(counters: &WorkerCounters) {
    counters.add(Counter::Delivered, 1);
    counters.add(Counter::RelDelivered, 1);
}

fn drain(f: &mut SinkFlow, now: Instant, deliver: &mut DeliverFn<'_>, counters: &WorkerCounters) {
    while let Some((seq, msg)) = f.sink.peek_deliver() {
        let info = f.deliver_info(seq, f.sink.peek_age(now));
        match deliver(f.dst_port, &info, msg) {
            Ok(()) => {
                f.sink.consume(now);
                count_delivered(counters);
            }
            // The client's buffer is full, or nobody is bound yet: it waits here.
            Err(_) => break,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn acks_round_trip_and_malformed_ones_are_refused() {
        let mut sack = [0u64; E2E_SACK_WORDS];
        sack[0] = 0b1011;
        sack[2] = 1 << 63;
        let body = AckBody {
            incarnation: Incarnation(77),
            flow: FlowId(9),
            ack: E2eAck {
                delivered: 5,
                received: 8,
                sack,
            },
        };
        let mut buf = [0u8; ACK_BODY_MAX];
        let n = body.encode(&mut buf);
        assert_eq!(n, ACK_HEAD + 24, "trailing zero words are left out");
        assert_eq!(AckBody::decode(&buf[..n]), Ok(body));
        assert!(AckBody::decode(&buf[..n - 1]).is_err());
        assert!(AckBody::decode(&buf[..10]).is_err());
        let mut bad = buf;
        bad[0] = 2;
        assert!(AckBody::decode(&bad[..n]).is_err());
        let mut bad = buf;
        bad[1] = 17;
        assert!(AckBody::decode(&bad[..n]).is_err());
        let mut bad = buf;
        bad[3] = 1;
        assert!(AckBody::decode(&bad[..n]).is_err());
    }
}
