//! The transmit side: a fixed pool of tx buffers, a FIFO of queued packets, and the coalescing of
//! runs of equal-size packets into one GSO `SENDMSG`.
//!
//! A tx slot moves `Free → Filling → Pending → InFlight → Free`. The caller takes a free slot
//! ([`TxQueue::queue`] copies into one, [`TxQueue::slot`] lends one to fill in place) and queues it
//! for a socket and destination. At flush time the driver peels groups off the FIFO: consecutive
//! packets for the same socket and destination, of the same size (the last may be shorter), at
//! most [`MAX_GSO_SEGMENTS`] and 65,507 bytes in all, become one `SENDMSG` whose iovecs point at
//! the slots and which carries a `UDP_SEGMENT` control message. A packet queued with
//! [`TxSlot::queue_alone`] is never coalesced: it goes out as a `SENDMSG` of its own, so a
//! receiver that steers datagrams by their first bytes (a reuseport BPF program looks at the
//! first segment of a GSO send only) sees it on its own. If the kernel refuses GSO with
//! `EIO` or `EINVAL`, GSO is switched off for good and the group's packets are queued again one
//! per `SENDMSG`. The send CQE frees every slot of its group. Nothing here allocates after
//! [`TxQueue::new`], and a full pool is an error, never a wait.

#![allow(
    unsafe_code,
    reason = "tx buffers and msghdrs are memory the kernel reads"
)]

use std::io;
use std::net::SocketAddr;
use std::ptr::{addr_of_mut, null_mut};

use super::mem::Region;
use super::socket::{GsoCmsg, RawAddr};

/// Most datagrams coalesced into one GSO send (the kernel accepts 64 since 4.18, 128 since 6.x).
pub const MAX_GSO_SEGMENTS: u16 = 64;

/// Largest UDP payload over IPv4, and the kernel's cap on a GSO send's total payload.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Why a packet could not be queued. The caller counts it as a drop; nothing blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Every tx buffer is queued or waiting for its send completion.
    #[error("transmit pool is full")]
    PoolFull,
    /// The packet is larger than one tx buffer.
    #[error("packet of {len} bytes exceeds the {max}-byte tx buffer")]
    TooLarge {
        /// The packet's length.
        len: usize,
        /// The tx buffer size.
        max: usize,
    },
    /// The socket index is not one the driver was built with.
    #[error("no socket with index {index}")]
    NoSuchSocket {
        /// The index given.
        index: usize,
    },
}

/// Transmit counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Packets accepted by `queue`.
    pub queued: u64,
    /// Packets refused because the pool was full.
    pub pool_full: u64,
    /// `SENDMSG` requests submitted (one per group).
    pub sendmsgs: u64,
    /// Datagrams the kernel accepted.
    pub datagrams: u64,
    /// Payload bytes the kernel accepted.
    pub bytes: u64,
    /// Successful `SENDMSG`s that carried more than one datagram with `UDP_SEGMENT`.
    pub gso_sends: u64,
    /// Datagrams sent inside those GSO sends.
    pub gso_segments: u64,
    /// GSO sends refused with `EIO`/`EINVAL` (each one re-queued its packets singly).
    pub gso_fallbacks: u64,
    /// Datagrams lost to a send error.
    pub errors: u64,
    /// The errno of the last send error, 0 if none.
    pub last_errno: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    Filling,
    Pending,
    InFlight,
}

#[derive(Clone, Copy, Debug)]
struct SlotMeta {
    state: SlotState,
    len: u32,
    sock: u16,
    /// For a group head: the number of datagrams in its `SENDMSG`.
    nseg: u16,
    /// Never coalesced with other packets.
    alone: bool,
    /// The packet's lane byte (link header offset 3), 0 for a shorter packet: a GSO send
    /// carries one lane only, since the receiver's steering program picks a worker for the
    /// whole super-packet from its first datagram (`crate::steer`).
    lane: u8,
    /// The next slot of the same group, `NONE` at the end.
    next: u32,
    dst: SocketAddr,
}

const NONE: u32 = u32::MAX;

/// How many pending packets [`TxQueue::peek_group`] looks through for ones that may join the
/// head's send: two full groups' worth.
const GATHER_WINDOW: u32 = 128;

/// Offset of the lane byte in a link packet (`docs/wire.md`: version, type, flags, lane).
const LANE_OFFSET: usize = 3;

/// What one `SENDMSG` points at. Lives in a [`Region`] so no Rust reference covers it while the
/// kernel reads it.
#[repr(C)]
struct SendHdr {
    msg: libc::msghdr,
    name: RawAddr,
    cmsg: GsoCmsg,
}

/// A group of queued packets that goes out as one `SENDMSG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    /// Its first slot, which also names the send in `user_data`.
    pub(crate) head: u32,
    /// Its socket index.
    pub(crate) sock: u16,
    /// How many packets.
    pub(crate) n: u16,
}

/// The transmit pool and queue. Reached through the driver, or inside the receive callback.
pub struct TxQueue {
    bufs: Region,
    hdrs: Region,
    iovs: Region,
    buf_size: usize,
    slots: u32,
    sockets: usize,
    max_segments: u16,
    gso: bool,
    meta: Box<[SlotMeta]>,
    free: Box<[u32]>,
    free_len: u32,
    pending: Box<[u32]>,
    pending_head: u32,
    pending_len: u32,
    in_flight: u32,
    stats: TxStats,
}

impl TxQueue {
    /// A pool of `slots` buffers of `buf_size` bytes for `sockets` sockets. GSO is used when
    /// `gso` is true and `max_segments > 1`.
    pub(crate) fn new(
        slots: u32,
        buf_size: usize,
        sockets: usize,
        max_segments: u16,
        gso: bool,
    ) -> io::Result<Self> {
        let max_segments = max_segments.clamp(1, MAX_GSO_SEGMENTS);
        let n = slots as usize;
        let placeholder = SocketAddr::from(([0, 0, 0, 0], 0));
        let meta = SlotMeta {
            state: SlotState::Free,
            len: 0,
            sock: 0,
            nseg: 0,
            alone: false,
            lane: 0,
            next: NONE,
            dst: placeholder,
        };
        Ok(Self {
            bufs: Region::new(n * buf_size)?,
            hdrs: Region::new(n * size_of::<SendHdr>())?,
            iovs: Region::new(n * usize::from(max_segments) * size_of::<libc::iovec>())?,
            buf_size,
            slots,
            sockets,
            max_segments,
            gso: gso && max_segments > 1,
            meta: vec![meta; n].into_boxed_slice(),
            // Popped from the end, so slot 0 goes out first.
            free: (0..slots).rev().collect(),
            free_len: slots,
            pending: vec![0; n].into_boxed_slice(),
            pending_head: 0,
            pending_len: 0,
            in_flight: 0,
            stats: TxStats::default(),
        })
    }

    /// Copies `data` into a free tx buffer and queues it for socket `sock` towards `dst`.
    pub fn queue(&mut self, sock: usize, dst: SocketAddr, data: &[u8]) -> Result<(), TxError> {
        self.check(sock, data.len())?;
        let slot = self.alloc()?;
        self.buf_mut(slot)[..data.len()].copy_from_slice(data);
        self.enqueue(slot, sock, dst, data.len(), false);
        Ok(())
    }

    /// Lends a free tx buffer to fill in place; [`TxSlot::queue`] queues it, dropping the
    /// [`TxSlot`] gives it back.
    pub fn slot(&mut self) -> Result<TxSlot<'_>, TxError> {
        let slot = self.alloc()?;
        self.meta[slot as usize].state = SlotState::Filling;
        Ok(TxSlot {
            q: self,
            slot,
            queued: false,
        })
    }

    /// Takes a free tx buffer to fill over several calls (a packed packet, [`crate::packer`]);
    /// [`TxQueue::queue_reserved`] queues it, [`TxQueue::unreserve`] gives it back.
    pub fn reserve(&mut self) -> Result<Reserved, TxError> {
        let slot = self.alloc()?;
        self.meta[slot as usize].state = SlotState::Filling;
        Ok(Reserved(slot))
    }

    /// The whole buffer of a reserved slot ([`TxQueue::buf_size`] bytes).
    pub fn reserved_buf(&mut self, r: &Reserved) -> &mut [u8] {
        self.buf_mut(r.0)
    }

    /// Queues the first `len` bytes of a reserved buffer for socket `sock` towards `dst`, to be
    /// coalesced like [`TxSlot::queue`]. On error the buffer goes back to the pool.
    pub fn queue_reserved(
        &mut self,
        r: Reserved,
        sock: usize,
        dst: SocketAddr,
        len: usize,
    ) -> Result<(), TxError> {
        if let Err(e) = self.check(sock, len) {
            self.release(r.0);
            return Err(e);
        }
        self.enqueue(r.0, sock, dst, len, false);
        Ok(())
    }

    /// Gives a reserved buffer back unsent.
    pub fn unreserve(&mut self, r: Reserved) {
        self.release(r.0);
    }

    /// Free tx buffers.
    pub fn free_slots(&self) -> usize {
        self.free_len as usize
    }

    /// Packets queued and not yet handed to the kernel.
    pub fn pending(&self) -> usize {
        self.pending_len as usize
    }

    /// The size of one tx buffer: the largest packet `queue` takes.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Whether sends are currently coalesced with GSO.
    pub fn gso_enabled(&self) -> bool {
        self.gso
    }

    /// The transmit counters.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    fn check(&self, sock: usize, len: usize) -> Result<(), TxError> {
        if sock >= self.sockets {
            return Err(TxError::NoSuchSocket { index: sock });
        }
        if len > self.buf_size {
            return Err(TxError::TooLarge {
                len,
                max: self.buf_size,
            });
        }
        Ok(())
    }

    fn alloc(&mut self) -> Result<u32, TxError> {
        if self.free_len == 0 {
            self.stats.pool_full += 1;
            return Err(TxError::PoolFull);
        }
        self.free_len -= 1;
        Ok(self.free[self.free_len as usize])
    }

    fn release(&mut self, slot: u32) {
        let m = &mut self.meta[slot as usize];
        debug_assert_ne!(m.state, SlotState::Free, "double free of tx slot {slot}");
        m.state = SlotState::Free;
        m.next = NONE;
        self.free[self.free_len as usize] = slot;
        self.free_len += 1;
    }

    fn enqueue(&mut self, slot: u32, sock: usize, dst: SocketAddr, len: usize, alone: bool) {
        let lane = if len > LANE_OFFSET {
            // SAFETY: `slot < slots` and `LANE_OFFSET < len <= buf_size` (checked by the
            // callers' `check`), so the byte lies inside the slot's buffer. The slot is being
            // filled or reserved by this worker, not pending or in flight, so the kernel is not
            // reading or writing it.
            unsafe { self.buf_ptr(slot).add(LANE_OFFSET).read() }
        } else {
            0
        };
        let m = &mut self.meta[slot as usize];
        m.alone = alone;
        m.lane = lane;
        m.state = SlotState::Pending;
        // Both bounded by `check`: sock < sockets <= u16::MAX + 1 and len <= buf_size <= u32::MAX.
        m.sock = sock as u16;
        m.len = len as u32;
        m.dst = dst;
        m.nseg = 0;
        m.next = NONE;
        self.push_pending(slot);
        self.stats.queued += 1;
    }

    fn push_pending(&mut self, slot: u32) {
        // Every slot is pending at most once, so the FIFO (one entry per slot) cannot overflow.
        debug_assert!(self.pending_len < self.slots);
        let idx = (self.pending_head + self.pending_len) % self.slots;
        self.pending[idx as usize] = slot;
        self.pending_len += 1;
    }

    /// Moves the pending entry at FIFO position `from` to position `to` (`to <= from`),
    /// shifting the entries in between one place back.
    fn move_pending(&mut self, from: u32, to: u32) {
        if from == to {
            return;
        }
        let moved = self.pending_at(from);
        let mut i = from;
        while i > to {
            let prev = self.pending_at(i - 1);
            let idx = ((self.pending_head + i) % self.slots) as usize;
            self.pending[idx] = prev;
            i -= 1;
        }
        let idx = ((self.pending_head + to) % self.slots) as usize;
        self.pending[idx] = moved;
    }

    fn pending_at(&self, i: u32) -> u32 {
        self.pending[((self.pending_head + i) % self.slots) as usize]
    }

    /// Copies of the queued packets, oldest first, with their socket and destination.
    #[cfg(test)]
    pub(crate) fn pending_packets(&self) -> Vec<(usize, SocketAddr, Vec<u8>)> {
        (0..self.pending_len)
            .map(|i| {
                let slot = self.pending_at(i);
                let m = self.meta[slot as usize];
                // SAFETY: `slot < slots`, so its `len <= buf_size` bytes lie inside `bufs`;
                // tests never hand the queue to a kernel, so nothing writes the buffer meanwhile.
                let bytes =
                    unsafe { std::slice::from_raw_parts(self.buf_ptr(slot), m.len as usize) };
                (usize::from(m.sock), m.dst, bytes.to_vec())
            })
            .collect()
    }

    fn buf_ptr(&self, slot: u32) -> *mut u8 {
        self.bufs
            .as_ptr()
            .wrapping_add(slot as usize * self.buf_size)
    }

    fn buf_mut(&mut self, slot: u32) -> &mut [u8] {
        debug_assert!(matches!(
            self.meta[slot as usize].state,
            SlotState::Free | SlotState::Filling
        ));
        // SAFETY: `slot < slots`, so the buffer lies inside `bufs`. It is free or being filled,
        // never queued or in flight, so the kernel does not read it, and `&mut self` makes this
        // the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.buf_ptr(slot), self.buf_size) }
    }

    /// The group at the front of the FIFO, if any: the head and, with GSO, the packets that
    /// may share its send (same socket, destination and lane; the head's size, a shorter one
    /// last; within one UDP send), gathered from the next [`GATHER_WINDOW`] pending packets and
    /// moved up behind the head. Gathering keeps order where it matters: packets that join
    /// keep their order, the ones they pass keep theirs, nothing passes a packet queued alone
    /// (hellos, control), and the first packet of the head's kind that cannot join ends the
    /// group, so no later one of that kind overtakes it. Packets of other lanes or next hops
    /// in between (a turn's packets interleave sub-lanes and next hops) are passed, which is
    /// what keeps sends coalesced when a worker's traffic spreads over sub-lanes.
    pub(crate) fn peek_group(&mut self) -> Option<Group> {
        if self.pending_len == 0 {
            return None;
        }
        let head = self.pending_at(0);
        let h = self.meta[head as usize];
        let segment = h.len;
        let mut n: u16 = 1;
        let mut total = h.len as usize;
        if self.gso && segment > 0 && !h.alone {
            let window = self.pending_len.min(GATHER_WINDOW);
            let mut i = 1u32;
            while i < window && n < self.max_segments {
                let slot = self.pending_at(i);
                let m = self.meta[slot as usize];
                if m.alone {
                    break;
                }
                if m.sock == h.sock && m.dst == h.dst && m.lane == h.lane {
                    if m.len == 0 || m.len > segment || total + m.len as usize > MAX_UDP_PAYLOAD {
                        break;
                    }
                    self.move_pending(i, u32::from(n));
                    n += 1;
                    total += m.len as usize;
                    if m.len < segment {
                        // Only the last segment may be shorter.
                        break;
                    }
                }
                i += 1;
            }
        }
        Some(Group {
            head,
            sock: h.sock,
            n,
        })
    }

    /// Writes the msghdr, iovecs and control message for `g` (the FIFO's front group) and
    /// returns the msghdr for the `SENDMSG` SQE. The FIFO is unchanged until [`Self::commit`].
    pub(crate) fn prepare(&mut self, g: &Group) -> *const libc::msghdr {
        let iov_base = self.iovs.as_ptr().cast::<libc::iovec>();
        let first_iov = iov_base.wrapping_add(g.head as usize * usize::from(self.max_segments));
        for i in 0..g.n {
            let slot = self.pending_at(u32::from(i));
            let iov = libc::iovec {
                iov_base: self.buf_ptr(slot).cast(),
                iov_len: self.meta[slot as usize].len as usize,
            };
            // SAFETY: `head < slots` and `i < n <= max_segments`, so the iovec lies inside
            // `iovs` in the head's own stride. The head slot is pending, not in flight, so the
            // kernel is not reading this stride.
            unsafe { first_iov.add(usize::from(i)).write(iov) };
        }
        let h = self.meta[g.head as usize];
        let hdr = self
            .hdrs
            .as_ptr()
            .cast::<SendHdr>()
            .wrapping_add(g.head as usize);
        // SAFETY: `head < slots`, so `hdr` lies inside `hdrs`, which is 8-aligned (page-aligned
        // mapping, SendHdr size a multiple of 8). The head slot is not in flight, so the kernel
        // does not read this header. Fields are written through raw pointers; no reference is
        // formed to memory the kernel may read for other slots.
        unsafe {
            let mut name = RawAddr::zeroed();
            let namelen = name.set(h.dst);
            addr_of_mut!((*hdr).name).write(name);
            let (control, controllen) = if g.n > 1 {
                let mut cmsg = GsoCmsg::zeroed();
                // The segment size is at most buf_size and the group total at most 65,507.
                cmsg.set(h.len as u16);
                addr_of_mut!((*hdr).cmsg).write(cmsg);
                (
                    addr_of_mut!((*hdr).cmsg).cast::<libc::c_void>(),
                    GsoCmsg::LEN,
                )
            } else {
                (null_mut(), 0)
            };
            addr_of_mut!((*hdr).msg).write(libc::msghdr {
                msg_name: addr_of_mut!((*hdr).name).cast(),
                msg_namelen: namelen,
                msg_iov: first_iov,
                msg_iovlen: usize::from(g.n),
                msg_control: control,
                msg_controllen: controllen,
                msg_flags: 0,
            });
            addr_of_mut!((*hdr).msg)
        }
    }

    /// Removes `g` from the FIFO and marks its slots in flight, linked from the head.
    pub(crate) fn commit(&mut self, g: &Group) {
        let mut prev = NONE;
        for i in 0..g.n {
            let slot = self.pending_at(u32::from(i));
            self.meta[slot as usize].state = SlotState::InFlight;
            if prev != NONE {
                self.meta[prev as usize].next = slot;
            }
            prev = slot;
        }
        self.meta[prev as usize].next = NONE;
        self.meta[g.head as usize].nseg = g.n;
        self.pending_head = (self.pending_head + u32::from(g.n)) % self.slots;
        self.pending_len -= u32::from(g.n);
        self.in_flight += u32::from(g.n);
        self.stats.sendmsgs += 1;
    }

    /// Handles the CQE of the send headed by `head` with result `res`. Returns false for a
    /// `head` that is not in flight (a driver bug, counted by the caller).
    pub(crate) fn complete(&mut self, head: u32, res: i32) -> bool {
        let Some(h) = self.meta.get(head as usize).copied() else {
            return false;
        };
        if h.state != SlotState::InFlight || h.nseg == 0 {
            return false;
        }
        let n = u64::from(h.nseg);
        let gso_refused = h.nseg > 1 && (res == -libc::EIO || res == -libc::EINVAL);
        if res >= 0 {
            self.stats.datagrams += n;
            self.stats.bytes += res as u64;
            if h.nseg > 1 {
                self.stats.gso_sends += 1;
                self.stats.gso_segments += n;
            }
        } else if gso_refused {
            self.gso = false;
            self.stats.gso_fallbacks += 1;
        } else {
            self.stats.errors += n;
            self.stats.last_errno = -res;
        }
        let mut slot = head;
        self.meta[head as usize].nseg = 0;
        self.in_flight -= u32::from(h.nseg);
        while slot != NONE {
            let next = self.meta[slot as usize].next;
            if gso_refused {
                self.meta[slot as usize].state = SlotState::Pending;
                self.meta[slot as usize].next = NONE;
                self.push_pending(slot);
            } else {
                self.release(slot);
            }
            slot = next;
        }
        true
    }

    /// Packets handed to the kernel and waiting for their send completion.
    pub fn in_flight(&self) -> usize {
        self.in_flight as usize
    }
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("slots", &self.slots)
            .field("buf_size", &self.buf_size)
            .field("free", &self.free_len)
            .field("pending", &self.pending_len)
            .field("gso", &self.gso)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A tx buffer held by its caller across calls ([`TxQueue::reserve`]); it must end in
/// [`TxQueue::queue_reserved`] or [`TxQueue::unreserve`] (it is deliberately neither `Copy` nor
/// `Clone`, so it cannot be queued twice).
#[derive(Debug, PartialEq, Eq)]
pub struct Reserved(u32);

/// A tx buffer lent to the caller to fill in place. Queue it with [`TxSlot::queue`]; dropping it
/// unqueued returns it to the pool.
pub struct TxSlot<'a> {
    q: &'a mut TxQueue,
    slot: u32,
    queued: bool,
}

impl TxSlot<'_> {
    /// The whole buffer ([`TxQueue::buf_size`] bytes); write the packet at its start.
    pub fn buf(&mut self) -> &mut [u8] {
        self.q.buf_mut(self.slot)
    }

    /// Queues the first `len` bytes of the buffer for socket `sock` towards `dst`. On error the
    /// buffer goes back to the pool.
    pub fn queue(self, sock: usize, dst: SocketAddr, len: usize) -> Result<(), TxError> {
        self.queue_with(sock, dst, len, false)
    }

    /// Like [`TxSlot::queue`], but the packet is never coalesced with others into a GSO send:
    /// for packets a receiver must see on their own (hellos, control).
    pub fn queue_alone(self, sock: usize, dst: SocketAddr, len: usize) -> Result<(), TxError> {
        self.queue_with(sock, dst, len, true)
    }

    fn queue_with(
        mut self,
        sock: usize,
        dst: SocketAddr,
        len: usize,
        alone: bool,
    ) -> Result<(), TxError> {
        self.q.check(sock, len)?;
        self.q.enqueue(self.slot, sock, dst, len, alone);
        self.queued = true;
        Ok(())
    }
}

impl Drop for TxSlot<'_> {
    fn drop(&mut self) {
        if !self.queued {
            self.q.release(self.slot);
        }
    }
}

impl std::fmt::Debug for TxSlot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxSlot")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Drains the FIFO into groups as the driver would, completing each with success.
    fn groups(q: &mut TxQueue) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        while let Some(g) = q.peek_group() {
            let _ = q.prepare(&g);
            q.commit(&g);
            out.push((g.sock, g.n));
        }
        out
    }

    #[test]
    fn coalesces_equal_runs_and_splits_on_change() {
        let mut q = TxQueue::new(128, 2048, 2, 64, true).unwrap();
        let sizes: &[(usize, u16, usize)] = &[
            (0, 1, 100),
            (0, 1, 100),
            (0, 1, 100),
            (0, 1, 50), // shorter last segment joins, then ends the group
            (0, 1, 100),
            (0, 2, 100), // new destination
            (1, 2, 100), // new socket
            (1, 2, 200), // larger: new group
            (1, 2, 200),
            (1, 2, 0), // empty datagrams never coalesce
            (1, 2, 0),
        ];
        for &(s, p, len) in sizes {
            q.queue(s, addr(p), &vec![7; len]).unwrap();
        }
        assert_eq!(
            groups(&mut q),
            vec![(0, 4), (0, 1), (0, 1), (1, 1), (1, 2), (1, 1), (1, 1)]
        );
        assert_eq!(q.in_flight(), sizes.len());
    }

    /// Packets of different lanes (byte 3) never share a GSO send: the receiver steers a
    /// super-packet by its first datagram, so mixing would move a lane's packets to another
    /// worker and reorder them.
    #[test]
    fn packets_of_different_lanes_are_never_coalesced() {
        let mut q = TxQueue::new(64, 2048, 1, 64, true).unwrap();
        let packet = |lane: u8| {
            let mut p = vec![1u8; 100];
            p[3] = lane;
            p
        };
        for lane in [0, 0, 64, 64, 64, 0, 1, 1] {
            q.queue(0, addr(1), &packet(lane)).unwrap();
        }
        // Gathered per lane, each lane's packets in their order.
        let order =
            |q: &TxQueue| -> Vec<u8> { q.pending_packets().iter().map(|(_, _, p)| p[3]).collect() };
        let mut sends = Vec::new();
        while let Some(g) = q.peek_group() {
            let lanes = order(&q);
            sends.push(lanes[..usize::from(g.n)].to_vec());
            let _ = q.prepare(&g);
            q.commit(&g);
        }
        assert_eq!(sends, vec![vec![0, 0, 0], vec![64, 64, 64], vec![1, 1]]);
    }

    /// Interleaved next hops and lanes are gathered into one send each, in order within each;
    /// a packet queued alone is never passed, and a packet of the head's kind that cannot join
    /// (larger) ends the group so nothing of that kind overtakes it.
    #[test]
    fn gathering_passes_other_kinds_but_never_a_lone_packet() {
        let mut q = TxQueue::new(64, 2048, 1, 64, true).unwrap();
        let packet = |dst: u8, seq: u8, len: usize| {
            let mut p = vec![0u8; len];
            p[3] = 0;
            p[4] = dst;
            p[5] = seq;
            p
        };
        let what = |q: &TxQueue| -> Vec<(u8, u8)> {
            q.pending_packets()
                .iter()
                .map(|(_, _, p)| (p[4], p[5]))
                .collect()
        };
        for seq in 0..4u8 {
            for dst in [1u8, 2] {
                q.queue(0, addr(u16::from(dst)), &packet(dst, seq, 100))
                    .unwrap();
            }
        }
        // A hello to next hop 1, then more data to it.
        let hello = q.slot().unwrap();
        hello.queue_alone(0, addr(1), 100).unwrap();
        q.queue(0, addr(1), &packet(1, 9, 100)).unwrap();
        // Next hop 2: a packet, a larger one that cannot join its send, and one that must not
        // pass that one.
        q.queue(0, addr(2), &packet(2, 6, 100)).unwrap();
        q.queue(0, addr(2), &packet(2, 7, 200)).unwrap();
        q.queue(0, addr(2), &packet(2, 8, 100)).unwrap();
        let mut sends = Vec::new();
        while let Some(g) = q.peek_group() {
            sends.push(what(&q)[..usize::from(g.n)].to_vec());
            let _ = q.prepare(&g);
            q.commit(&g);
        }
        assert_eq!(
            sends,
            vec![
                vec![(1, 0), (1, 1), (1, 2), (1, 3)],
                vec![(2, 0), (2, 1), (2, 2), (2, 3)],
                vec![(0, 0)], // the hello (a zeroed buffer)
                vec![(1, 9)],
                vec![(2, 6)],
                vec![(2, 7), (2, 8)], // a shorter last segment joins a larger head
            ]
        );
    }

    #[test]
    fn respects_segment_and_byte_limits() {
        let mut q = TxQueue::new(256, 2048, 1, 64, true).unwrap();
        for _ in 0..130 {
            q.queue(0, addr(1), &[1; 10]).unwrap();
        }
        assert_eq!(groups(&mut q), vec![(0, 64), (0, 64), (0, 2)]);
        let mut q = TxQueue::new(256, 2048, 1, 64, true).unwrap();
        for _ in 0..100 {
            q.queue(0, addr(1), &[1; 1400]).unwrap();
        }
        // 46 * 1400 = 64,400 <= 65,507 < 47 * 1400.
        assert_eq!(groups(&mut q), vec![(0, 46), (0, 46), (0, 8)]);
    }

    #[test]
    fn packets_queued_alone_are_never_coalesced() {
        let mut q = TxQueue::new(16, 2048, 1, 64, true).unwrap();
        let queue = |q: &mut TxQueue, len: usize, alone: bool| {
            let slot = q.slot().unwrap();
            if alone {
                slot.queue_alone(0, addr(1), len).unwrap();
            } else {
                slot.queue(0, addr(1), len).unwrap();
            }
        };
        // Data, data, a shorter hello (would join as the last segment), data, then two
        // hellos of equal size (would coalesce), then data.
        for (len, alone) in [
            (100, false),
            (100, false),
            (60, true),
            (100, false),
            (60, true),
            (60, true),
            (100, false),
            (100, false),
        ] {
            queue(&mut q, len, alone);
        }
        assert_eq!(
            groups(&mut q),
            vec![(0, 2), (0, 1), (0, 1), (0, 1), (0, 1), (0, 2)]
        );
    }

    #[test]
    fn no_gso_means_one_per_send() {
        let mut q = TxQueue::new(8, 64, 1, 64, false).unwrap();
        for _ in 0..3 {
            q.queue(0, addr(1), &[1; 10]).unwrap();
        }
        assert_eq!(groups(&mut q), vec![(0, 1); 3]);
    }

    #[test]
    fn pool_full_and_errors_never_leak_slots() {
        let mut q = TxQueue::new(2, 64, 1, 64, true).unwrap();
        assert_eq!(
            q.queue(1, addr(1), &[1]),
            Err(TxError::NoSuchSocket { index: 1 })
        );
        assert_eq!(
            q.queue(0, addr(1), &[1; 65]),
            Err(TxError::TooLarge { len: 65, max: 64 })
        );
        q.queue(0, addr(1), &[1]).unwrap();
        {
            let mut s = q.slot().unwrap();
            s.buf()[0] = 9;
            // Dropped unqueued: returned.
        }
        let mut s = q.slot().unwrap();
        s.buf()[..3].copy_from_slice(b"abc");
        s.queue(0, addr(1), 3).unwrap();
        assert_eq!(q.queue(0, addr(1), &[1]), Err(TxError::PoolFull));
        assert_eq!(q.stats().pool_full, 1);
        assert!(matches!(q.slot(), Err(TxError::PoolFull)));
        let g = q.peek_group().unwrap();
        assert_eq!(g.n, 1, "different sizes (1 then 3) do not coalesce");
        let _ = q.prepare(&g);
        q.commit(&g);
        assert!(q.complete(g.head, 1));
        assert!(!q.complete(g.head, 1), "a second completion is refused");
        assert_eq!(q.free_slots(), 1);
    }

    #[test]
    fn gso_refusal_requeues_singly_and_sticks() {
        let mut q = TxQueue::new(8, 64, 1, 64, true).unwrap();
        for i in 0..3u8 {
            // One lane (byte 3), so the three may share a send.
            q.queue(0, addr(1), &[i, 0, 0, 5, i, i, i, i, i, i])
                .unwrap();
        }
        let g = q.peek_group().unwrap();
        assert_eq!(g.n, 3);
        let _ = q.prepare(&g);
        q.commit(&g);
        assert!(q.complete(g.head, -libc::EIO));
        assert!(!q.gso_enabled());
        assert_eq!(q.pending(), 3);
        assert_eq!(groups(&mut q), vec![(0, 1); 3]);
        assert_eq!(q.stats().gso_fallbacks, 1);
        assert_eq!(q.stats().errors, 0);
    }

    #[test]
    fn prepare_points_at_the_right_bytes() {
        let mut q = TxQueue::new(8, 64, 1, 64, true).unwrap();
        q.queue(0, addr(9), b"hello").unwrap();
        q.queue(0, addr(9), b"world").unwrap();
        let g = q.peek_group().unwrap();
        let msg = q.prepare(&g);
        // SAFETY: `prepare` returned a pointer into `q.hdrs` whose iovecs point into `q.bufs`;
        // nothing else touches them in this single-threaded test.
        let (iovlen, first, second, controllen) = unsafe {
            let m = &*msg;
            let iov = std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen);
            let a = std::slice::from_raw_parts(iov[0].iov_base.cast::<u8>(), iov[0].iov_len);
            let b = std::slice::from_raw_parts(iov[1].iov_base.cast::<u8>(), iov[1].iov_len);
            (m.msg_iovlen, a.to_vec(), b.to_vec(), m.msg_controllen)
        };
        assert_eq!((iovlen, controllen), (2, 24));
        assert_eq!((&first[..], &second[..]), (&b"hello"[..], &b"world"[..]));
    }
}
