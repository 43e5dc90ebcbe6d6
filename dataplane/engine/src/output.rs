//! What the pipeline produces on a worker, and where it goes: [`Out`] implements the sans-IO
//! pipeline's [`PipelineOutput`] for one worker (hellos to the link monitors and control
//! envelopes to the punt ring on worker 0, deliveries to the session server or to worker 0's
//! handoff ring, forwards into tx buffers, real-time Nacks to the worker that owns their lane),
//! and [`send_on_link`] writes one packet for a link into a tx buffer, on the path the link uses
//! now; [`send_realtime_output`] sends what a worker's `RtLinks` has due (Nacks and copies).

use weft_proto::auth::AuthTable;
use weft_proto::forward::{DataRecord, LinkSender, LocalDelivery, PipelineOutput};
use weft_proto::realtime::RtLinks;
use weft_proto::reliable::{RelFeedback, RelLinks};
use weft_shared::DropReason;
use weft_shared::ids::{Incarnation, LinkId, PathId};
use weft_shared::shm::{Counter, PacketMeta, PushError, RingProducer, WorkerCounters};
use weft_shared::time::Instant;
use weft_shared::wire::{HelloRepr, LinkRepr, NackRepr, PriorityClass, RecordFlags, peek_class};

use crate::handoff::{
    HANDOFF_DELIVER, HANDOFF_DELIVER_RECOVERED, HANDOFF_NACK, HANDOFF_REL_ACK, HANDOFF_REL_NACK,
    HandoffProducer,
};
use crate::links::{LinkTraffic, Links};
use crate::monitors::Monitors;
use crate::packer::{PackTx, Packer};
use crate::session_glue::SessionGlue;
use crate::uring::TxQueue;

/// Counts a received datagram on its link once its header checked out.
pub(crate) fn count_in(links: &Links, worker: usize, rx: Option<&LinkRepr>, bytes: usize) {
    if let Some(t) = rx.and_then(|rx| links.traffic(worker, rx.link)) {
        LinkTraffic::bump(&t.packets_in, &t.bytes_in, bytes);
    }
}

/// Writes one packet for `meta.link` (on `meta.path`, or the link's active path) into a tx
/// buffer with `write` and queues it on the path's socket. A hello, feedback or control packet
/// is queued alone, never coalesced into a GSO send: the receiver's steering program sees only
/// the first packet of a GSO send ([`crate::steer`]).
pub(crate) fn send_on_link(
    tx: &mut TxQueue,
    sender: &mut LinkSender,
    links: &Links,
    worker: usize,
    counters: &WorkerCounters,
    meta: PacketMeta,
    write: impl FnOnce(&mut LinkSender, &mut [u8], LinkId, PathId, usize) -> Result<usize, DropReason>,
) -> Result<(), DropReason> {
    let link_id = meta.link.ok_or(DropReason::UnknownLink(u16::MAX))?;
    let link = links
        .get(link_id)
        .ok_or(DropReason::UnknownLink(link_id.get()))?;
    // A link without an up path has no route through it.
    let path = match meta.path {
        Some(p) => link
            .paths
            .get(usize::from(p.get()))
            .ok_or(DropReason::BadField {
                field: "inject.path",
                value: p.get().into(),
            })?,
        None => link.active_path().ok_or(DropReason::NoRoute)?,
    };
    let mut slot = tx.slot().map_err(|_| DropReason::QueueFull)?;
    let n = write(sender, slot.buf(), link_id, path.id, link.max_datagram)?;
    let alone = slot
        .buf()
        .get(..n)
        .is_some_and(|p| matches!(peek_class(p), Ok(c) if c != PriorityClass::Data));
    let queued = if alone {
        slot.queue_alone(path.interface, path.remote, n)
    } else {
        slot.queue(path.interface, path.remote, n)
    };
    queued.map_err(|_| DropReason::QueueFull)?;
    counters.add(Counter::Sent, 1);
    if let Some(t) = links.traffic(worker, link_id) {
        LinkTraffic::bump(&t.packets_out, &t.bytes_out, n);
    }
    Ok(())
}

/// The pipeline's output on a worker.
pub(crate) struct Out<'a> {
    pub(crate) now: Instant,
    pub(crate) worker: usize,
    pub(crate) incarnation: Incarnation,
    pub(crate) tx: &'a mut TxQueue,
    pub(crate) sender: &'a mut LinkSender,
    /// The worker's open data packets: every data record goes through it.
    pub(crate) packer: &'a mut Packer,
    pub(crate) links: &'a Links,
    pub(crate) counters: &'a WorkerCounters,
    /// The worker's real-time link state (its lane).
    pub(crate) rt: &'a mut RtLinks,
    /// The worker's reliable link state (its lane).
    pub(crate) rel: &'a mut RelLinks,
    pub(crate) role: RoleOut<'a>,
}

pub(crate) enum RoleOut<'a> {
    Zero {
        monitors: &'a mut Monitors,
        punt: &'a mut RingProducer,
        session: &'a mut SessionGlue,
        /// Rings to workers 1.. (index k − 1), for Nacks of their lanes.
        to_lanes: &'a mut [HandoffProducer],
    },
    Other {
        handoff: &'a mut HandoffProducer,
    },
}

impl PipelineOutput for Out<'_> {
    fn hello(&mut self, rx: &LinkRepr, hello: &HelloRepr) {
        // Other workers hand hello datagrams over before the pipeline sees them.
        if let RoleOut::Zero { monitors, .. } = &mut self.role {
            monitors.handle_hello(self.now, rx, hello, self.incarnation);
            // An authenticated hello says which key epochs the peer holds (the other workers
            // read it from the link table).
            if self.sender.auth().is_keyed(rx.link) {
                self.sender
                    .auth_mut()
                    .note_peer_epoch(rx.link, hello.key_epoch);
                if let Some(l) = self.links.get(rx.link) {
                    l.set_peer_key_epoch(hello.key_epoch);
                }
            }
        }
    }

    fn control(&mut self, rx: &LinkRepr, envelope: &[u8]) {
        if let RoleOut::Zero { punt, .. } = &mut self.role {
            let meta = PacketMeta {
                link: Some(rx.link),
                path: Some(rx.path),
                flags: 0,
            };
            match punt.stage(meta, envelope) {
                Ok(()) => {}
                Err(PushError::Full) => self.counters.add_drop(DropReason::QueueFull, 1),
                Err(PushError::Oversized { len, .. }) => self.counters.add_drop(
                    DropReason::BadLength {
                        field: "punt.len",
                        value: len,
                    },
                    1,
                ),
            }
        }
    }

    fn deliver(&mut self, _rx: &LinkRepr, delivery: &LocalDelivery<'_>, record_body: &[u8]) {
        let result = match &mut self.role {
            RoleOut::Zero { session, .. } => session.deliver(self.now, delivery, self.counters),
            // Worker 0 counts the delivery when it hands it to the client.
            RoleOut::Other { handoff } => {
                let recovered = delivery.realtime.is_some_and(|r| r.recovered);
                let flags = if recovered {
                    HANDOFF_DELIVER_RECOVERED
                } else {
                    HANDOFF_DELIVER
                };
                handoff.stage(flags, record_body)
            }
        };
        if let Err(reason) = result {
            self.counters.add_drop(reason, 1);
        }
    }

    fn multicast_copies(&mut self, copies: u32) {
        self.counters.add(Counter::McastCopies, u64::from(copies));
    }

    fn forward(&mut self, link: LinkId, link_seq: u32, flags: RecordFlags, record_body: &[u8]) {
        let record = DataRecord::Encoded {
            body: record_body,
            link_seq,
            flags,
        };
        let mut t = PackTx {
            tx: self.tx,
            sender: self.sender,
            links: self.links,
            worker: self.worker,
            counters: self.counters,
        };
        match self.packer.send(&mut t, link, &record) {
            Ok(()) => self.counters.add(Counter::Forwarded, 1),
            Err(reason) => self.counters.add_drop(reason, 1),
        }
    }

    fn drop_record(&mut self, reason: DropReason) {
        self.counters.add_drop(reason, 1);
    }

    fn realtime(&mut self) -> Option<&mut RtLinks> {
        Some(self.rt)
    }

    fn auth(&mut self) -> Option<&mut AuthTable> {
        Some(self.sender.auth_mut())
    }

    fn reliable(&mut self) -> Option<&mut RelLinks> {
        Some(self.rel)
    }

    fn reliable_feedback(&mut self, rx: &LinkRepr, feedback: &RelFeedback) {
        let lane = usize::from(match feedback {
            RelFeedback::Ack(a) => a.data_lane,
            RelFeedback::Nack(n) => n.data_lane(),
        });
        let peer = rx.sender_incarnation;
        let result = if lane == self.worker {
            match feedback {
                RelFeedback::Ack(a) => self.rel.handle_ack(self.now, rx.link, peer, a),
                RelFeedback::Nack(n) => self.rel.handle_nack(self.now, rx.link, peer, n),
            }
        } else {
            match &mut self.role {
                RoleOut::Zero { to_lanes, .. } => hand_rel_feedback(to_lanes, lane, rx, feedback),
                RoleOut::Other { .. } => Err(DropReason::Unsupported("feedback off worker 0")),
            }
        };
        if let Err(reason) = result {
            self.counters.add_drop(reason, 1);
        }
    }

    fn nack(&mut self, rx: &LinkRepr, nack: &NackRepr) {
        let lane = usize::from(nack.data_lane());
        let result = if lane == self.worker {
            self.rt.handle_nack(self.now, rx.link, nack)
        } else {
            match &mut self.role {
                RoleOut::Zero { to_lanes, .. } => hand_nack(to_lanes, lane, rx, nack),
                // Other workers hand feedback packets to worker 0 before the pipeline sees them.
                RoleOut::Other { .. } => Err(DropReason::Unsupported("feedback off worker 0")),
            }
        };
        if let Err(reason) = result {
            self.counters.add_drop(reason, 1);
        }
    }
}

/// Worker 0's ring to the worker that owns `lane` (1..); `field` names the lane in the drop.
fn lane_ring<'r>(
    to_lanes: &'r mut [HandoffProducer],
    lane: usize,
    field: &'static str,
) -> Result<&'r mut HandoffProducer, DropReason> {
    lane.checked_sub(1)
        .and_then(|i| to_lanes.get_mut(i))
        .ok_or(DropReason::BadField {
            field,
            value: lane as u64,
        })
}

/// Sends one packet that `write` builds on `link` (its active path), counting a failure as a
/// drop; `Ok` says it was queued.
fn send_or_count(
    tx: &mut TxQueue,
    sender: &mut LinkSender,
    links: &Links,
    worker: usize,
    counters: &WorkerCounters,
    link: LinkId,
    write: impl FnOnce(&mut LinkSender, &mut [u8], LinkId, PathId, usize) -> Result<usize, DropReason>,
) -> bool {
    let meta = PacketMeta {
        link: Some(link),
        path: None,
        flags: 0,
    };
    match send_on_link(tx, sender, links, worker, counters, meta, write) {
        Ok(()) => true,
        Err(reason) => {
            counters.add_drop(reason, 1);
            false
        }
    }
}

/// Stages a Nack for the worker that owns `lane` (1..) on its ring from worker 0.
fn hand_nack(
    to_lanes: &mut [HandoffProducer],
    lane: usize,
    rx: &LinkRepr,
    nack: &NackRepr,
) -> Result<(), DropReason> {
    let ring = lane_ring(to_lanes, lane, "nack.data_lane")?;
    let mut body = [0u8; 4 + 4 * weft_shared::wire::MAX_NACK_SEQS];
    let n = nack
        .emit(&mut body)
        .map_err(weft_proto::forward::emit_error_drop)?;
    let meta = PacketMeta {
        link: Some(rx.link),
        path: None,
        flags: HANDOFF_NACK,
    };
    ring.stage_meta(meta, &body[..n])
}

/// Stages reliable feedback for the worker that owns `lane` (1..), behind the sender's
/// incarnation.
fn hand_rel_feedback(
    to_lanes: &mut [HandoffProducer],
    lane: usize,
    rx: &LinkRepr,
    feedback: &RelFeedback,
) -> Result<(), DropReason> {
    let ring = lane_ring(to_lanes, lane, "feedback.data_lane")?;
    let mut body = [0u8; 4 + 4 + 4 * weft_shared::wire::MAX_NACK_SEQS];
    body[..4].copy_from_slice(&rx.sender_incarnation.0.to_be_bytes());
    let (n, flags) = match feedback {
        RelFeedback::Ack(a) => (a.emit(&mut body[4..]), HANDOFF_REL_ACK),
        RelFeedback::Nack(nk) => (nk.emit(&mut body[4..]), HANDOFF_REL_NACK),
    };
    let n = n.map_err(weft_proto::forward::emit_error_drop)?;
    let meta = PacketMeta {
        link: Some(rx.link),
        path: None,
        flags,
    };
    ring.stage_meta(meta, &body[..4 + n])
}

/// Sends what the worker's reliable state has due at `now`: acks and requests (feedback
/// packets on the link back) and transmissions (first sends and retransmissions).
pub(crate) fn send_reliable_output(
    now: Instant,
    rel: &mut RelLinks,
    t: &mut PackTx<'_>,
    packer: &mut Packer,
) {
    let counters = t.counters;
    rel.handle_timeout(now);
    while let Some((link, feedback)) = rel.poll_feedback(now) {
        send_or_count(
            t.tx,
            t.sender,
            t.links,
            t.worker,
            counters,
            link,
            |s, buf, l, p, max| match &feedback {
                RelFeedback::Ack(a) => s.write_ack(buf, l, p, a, max),
                RelFeedback::Nack(n) => s.write_nack(buf, l, p, n, max),
            },
        );
    }
    rel.poll_transmit(now, |link, link_seq, flags, body| {
        let record = DataRecord::Encoded {
            body,
            link_seq,
            flags,
        };
        match packer.send(t, link, &record) {
            Ok(()) => counters.add(Counter::Forwarded, 1),
            Err(reason) => counters.add_drop(reason, 1),
        }
    });
}

/// Sends what the worker's real-time state has due at `now`: requests (Nack records, in
/// feedback packets on the link back) and retransmitted copies (data with the `RETRANSMIT` flag).
pub(crate) fn send_realtime_output(
    now: Instant,
    rt: &mut RtLinks,
    t: &mut PackTx<'_>,
    packer: &mut Packer,
) {
    let counters = t.counters;
    rt.handle_timeout(now);
    while let Some((link, nack)) = rt.poll_nack() {
        send_or_count(
            t.tx,
            t.sender,
            t.links,
            t.worker,
            counters,
            link,
            |s, buf, l, p, max| s.write_nack(buf, l, p, &nack, max),
        );
    }
    rt.poll_transmit(now, |link, link_seq, body| {
        let record = DataRecord::Encoded {
            body,
            link_seq,
            flags: RecordFlags::RETRANSMIT,
        };
        if let Err(reason) = packer.send(t, link, &record) {
            counters.add_drop(reason, 1);
        }
    });
}
