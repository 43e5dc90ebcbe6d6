//! In-process handoff between workers: bounded SPSC rings plus doorbells.
//!
//! Worker 0 owns everything per link and per client (link monitors, the session server, punt and
//! inject). Another worker that receives a hello or a control packet hands the whole datagram
//! over; one that receives data for a local port hands over the data record body. Each worker
//! has its own ring to worker 0 (single producer, single consumer), so nothing is locked.
//!
//! The other way, worker 0 has one ring to each other worker, for link feedback: every feedback
//! packet reaches worker 0 (the steering program puts it on the control socket), and a
//! real-time Nack for the data of lane `k` belongs to worker `k`, whose `RtLinks` sent that
//! data ([`HANDOFF_NACK`]); reliable Acks and Nacks likewise ([`HANDOFF_REL_ACK`],
//! [`HANDOFF_REL_NACK`]).
//!
//! The rings are the shared-memory ring type ([`weft_shared::shm::ring`]) over a private memfd
//! region that no other process sees: it is the tested SPSC ring with burst publish and the
//! sleep/wake protocol, so there is one ring implementation in the code base, not two. A full
//! ring is a counted drop ([`DropReason::QueueFull`](weft_shared::DropReason::QueueFull)); a
//! record larger than a slot (2,032 B, more than any 1500-MTU packet) is a counted
//! `BadLength` drop.

use std::io;
use std::sync::Arc;

use weft_shared::shm::{
    EventFd, Notify, PacketMeta, RingConsumer, RingId, RingProducer, ShmError, ShmLayout, ShmRegion,
};

/// Slots per handoff ring.
pub const HANDOFF_SLOTS: u32 = 1024;

/// `PacketMeta::flags`: the slot holds a whole hello or control datagram.
pub const HANDOFF_DATAGRAM: u16 = 1;
/// `PacketMeta::flags`: the slot holds a data record body for local delivery.
pub const HANDOFF_DELIVER: u16 = 2;
/// `PacketMeta::flags`: like [`HANDOFF_DELIVER`], and a retransmission brought the record.
pub const HANDOFF_DELIVER_RECOVERED: u16 = 3;
/// `PacketMeta::flags` (worker 0 to worker k): the slot holds a real-time Nack record body for
/// worker k's lane, received on `PacketMeta::link`.
pub const HANDOFF_NACK: u16 = 4;

/// `PacketMeta::flags` (worker 0 to worker k): the slot holds the sender's data-plane
/// incarnation (4 bytes, big-endian) and a reliable Ack record body for worker k's lane,
/// received on `PacketMeta::link`.
pub const HANDOFF_REL_ACK: u16 = 5;
/// `PacketMeta::flags` (worker 0 to worker k): like [`HANDOFF_REL_ACK`], with a reliable Nack
/// record body.
pub const HANDOFF_REL_NACK: u16 = 6;

/// Splits a reliable feedback slot into the peer incarnation and the record body.
pub fn split_incarnation(
    bytes: &[u8],
) -> Result<(weft_shared::ids::Incarnation, &[u8]), weft_shared::DropReason> {
    match bytes {
        [a, b, c, d, rest @ ..] => Ok((
            weft_shared::ids::Incarnation(u32::from_be_bytes([*a, *b, *c, *d])),
            rest,
        )),
        _ => Err(weft_shared::DropReason::Truncated {
            needed: 4,
            got: bytes.len(),
        }),
    }
}

/// The rings and the doorbell of worker 0, made once at start-up.
pub struct Handoff {
    region: Arc<ShmRegion>,
    workers: usize,
    /// Worker 0's doorbell: written by producers on [`Notify::NeedsWakeup`] and by the main
    /// thread to stop.
    pub doorbell: Arc<EventFd>,
}

impl Handoff {
    /// Rings for `workers` workers (ring `w` belongs to worker `w`; ring 0 is unused), both
    /// ways.
    pub fn new(workers: usize, doorbell: Arc<EventFd>) -> Result<Self, ShmError> {
        let rings = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        let layout = ShmLayout {
            punt_rings: rings,
            inject_rings: rings,
            ring_slots: HANDOFF_SLOTS,
        };
        let region = Arc::new(ShmRegion::create_memfd(&layout, 0)?);
        Ok(Handoff {
            region,
            workers,
            doorbell,
        })
    }

    /// The producer end for worker `worker` (1..workers).
    pub fn producer(&self, worker: usize) -> Result<HandoffProducer, ShmError> {
        let ring = RingProducer::attach(self.region.clone(), RingId::Punt(worker as u32))?;
        Ok(HandoffProducer {
            ring,
            doorbell: self.doorbell.clone(),
        })
    }

    /// Worker 0's consumer ends, one per other worker.
    pub fn consumers(&self) -> Result<Vec<RingConsumer>, ShmError> {
        (1..self.workers)
            .map(|w| RingConsumer::attach(self.region.clone(), RingId::Punt(w as u32)))
            .collect()
    }

    /// Worker 0's producer ends towards workers 1.., each ringing that worker's doorbell
    /// (`doorbells[w]`).
    pub fn to_workers(&self, doorbells: &[Arc<EventFd>]) -> Result<Vec<HandoffProducer>, ShmError> {
        (1..self.workers)
            .map(|w| {
                let ring = RingProducer::attach(self.region.clone(), RingId::Inject(w as u32))?;
                Ok(HandoffProducer {
                    ring,
                    doorbell: doorbells
                        .get(w)
                        .cloned()
                        .unwrap_or_else(|| self.doorbell.clone()),
                })
            })
            .collect()
    }

    /// Worker `worker`'s consumer end of worker 0's ring to it.
    pub fn from_zero(&self, worker: usize) -> Result<RingConsumer, ShmError> {
        RingConsumer::attach(self.region.clone(), RingId::Inject(worker as u32))
    }
}

/// One worker's sending end.
pub struct HandoffProducer {
    ring: RingProducer,
    doorbell: Arc<EventFd>,
}

impl HandoffProducer {
    /// Stages one item; it becomes visible at [`HandoffProducer::publish`].
    pub fn stage(&mut self, flags: u16, bytes: &[u8]) -> Result<(), weft_shared::DropReason> {
        let meta = PacketMeta {
            link: None,
            path: None,
            flags,
        };
        self.stage_meta(meta, bytes)
    }

    /// Stages one item with its whole `meta` (a link id, for one).
    pub fn stage_meta(
        &mut self,
        meta: PacketMeta,
        bytes: &[u8],
    ) -> Result<(), weft_shared::DropReason> {
        self.ring.stage(meta, bytes).map_err(|e| match e {
            weft_shared::shm::PushError::Full => weft_shared::DropReason::QueueFull,
            weft_shared::shm::PushError::Oversized { len, .. } => {
                weft_shared::DropReason::BadLength {
                    field: "handoff.len",
                    value: len,
                }
            }
        })
    }

    /// Publishes what was staged and rings the consumer's doorbell if it sleeps.
    pub fn publish(&mut self) -> io::Result<()> {
        match self.ring.publish() {
            Notify::NeedsWakeup => self.doorbell.notify(),
            Notify::NotNeeded => Ok(()),
        }
    }
}
