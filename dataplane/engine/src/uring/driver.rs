//! The per-worker UDP driver: one io_uring, a set of UDP sockets, a provided-buffer ring (or two:
//! `DriverConfig::separate_ring` gives the last sockets their own), a tx pool, and fds watched for
//! readability.
//!
//! Run loop contract: the worker thread that creates a [`UdpDriver`] calls
//! [`UdpDriver::run_once`] in a loop. Each call pushes the SQEs that are due (receive re-arms,
//! watch re-arms and removals, queued sends grouped for GSO), then makes **one** `io_uring_enter`
//! that submits them and waits for at least one completion or the timeout, then drains every
//! completion, calling the caller back once per datagram or readiness event. Inside the callback
//! the caller can queue sends on the [`TxQueue`] it is given; they go out with the next call. No
//! syscall is made per packet, and nothing allocates after [`UdpDriver::new`]. An SQE is submitted
//! early only when the submission queue is full.
//!
//! The driver knows nothing of Weft's packet formats.

#![allow(unsafe_code, reason = "pushes SQEs that point at driver-owned memory")]

use std::cell::Cell;
use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};

use super::bufring::{BGID, BufRing};
use super::config::{DriverConfig, DriverError, DriverStats, RxStats};
use super::event::{BufId, Datagram, Event, WatchId};
use super::probe::{Features, build_ring};
use super::socket::{
    GRO_CONTROL_LEN, NAME_LEN, decode_addr, gro_segment_size, parse_recvmsg_out, recv_msghdr,
};
use super::token::{GENERATION_MASK, Token};
use super::tx::TxQueue;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arm {
    /// Not yet armed.
    Idle,
    /// A multishot request is live in the kernel.
    Armed,
    /// The multishot request ended; arm again when buffers are available.
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WatchState {
    Free,
    /// Waiting to be armed (first time or after the multishot poll ended).
    NeedArm {
        rearm: bool,
    },
    Armed,
    /// Removal asked for while armed: a POLL_REMOVE is due.
    Removing,
}

#[derive(Clone, Copy, Debug)]
struct Watch {
    state: WatchState,
    fd: RawFd,
    token: u64,
    generation: u32,
}

/// The per-worker io_uring UDP driver. See the module docs for the run-loop contract.
///
/// Create it on the thread that runs it: the ring is set up `SINGLE_ISSUER`, so the type is not
/// `Send`:
///
/// ```compile_fail
/// fn needs_send<T: Send>() {}
/// needs_send::<weft_dataplane::uring::UdpDriver>();
/// ```
pub struct UdpDriver {
    // Field order is drop order: the ring goes first, so the kernel is done with the memory
    // below before it is unmapped.
    ring: IoUring,
    /// The buffer rings; ring `g` is buffer group `BGID + g`.
    bufs: Box<[BufRing]>,
    tx: TxQueue,
    recv_msgs: Box<[libc::msghdr]>,
    arms: Box<[Arm]>,
    /// The buffer ring of each socket.
    sock_ring: Box<[u16]>,
    sockets: Box<[UdpSocket]>,
    watches: Box<[Watch]>,
    control_len: usize,
    stats: DriverStats,
}

impl UdpDriver {
    /// Sets up a ring, registers `sockets` (bound by the caller, e.g. with
    /// [`super::bind_udp`]) and a buffer ring, and allocates the tx pool. Receives are armed by
    /// the first [`UdpDriver::run_once`] or [`UdpDriver::submit`].
    pub fn new(
        features: &Features,
        config: &DriverConfig,
        sockets: Vec<UdpSocket>,
    ) -> Result<Self, DriverError> {
        let (stride, separate_stride) = config.validate(sockets.len())?;
        let control_len = if config.gro { GRO_CONTROL_LEN } else { 0 };
        // Memory first, ring last: on an error below, locals drop in reverse order, ring first.
        let mut bufs = vec![BufRing::new(config.buf_entries, stride).map_err(DriverError::Memory)?];
        let mut sock_ring = vec![0u16; sockets.len()];
        if let (Some(r), Some(stride)) = (&config.separate_ring, separate_stride) {
            bufs.push(BufRing::new(r.buf_entries, stride).map_err(DriverError::Memory)?);
            sock_ring[r.first_socket..].fill(1);
        }
        let tx = TxQueue::new(
            config.tx_slots,
            config.tx_buf_size as usize,
            sockets.len(),
            config.max_gso_segments,
            config.gso && features.udp_gso,
        )
        .map_err(DriverError::Memory)?;
        let recv_msgs: Box<[libc::msghdr]> =
            sockets.iter().map(|_| recv_msghdr(control_len)).collect();
        let ring = build_ring(
            config.sq_entries,
            config.cq_entries,
            features.single_issuer,
            features.defer_taskrun,
        )
        .map_err(DriverError::Setup)?;
        let fds: Vec<RawFd> = sockets.iter().map(AsRawFd::as_raw_fd).collect();
        ring.submitter()
            .register_files(&fds)
            .map_err(DriverError::RegisterFiles)?;
        for (g, b) in (BGID..).zip(&bufs) {
            // SAFETY: the ring memory is a live, page-aligned mapping of `entries` descriptors
            // owned by `bufs`, which the driver keeps until `Drop` has unregistered it.
            unsafe {
                ring.submitter()
                    .register_buf_ring_with_flags(b.ring_addr(), b.entries(), g, 0)
            }
            .map_err(DriverError::RegisterBufRing)?;
        }
        let watch = Watch {
            state: WatchState::Free,
            fd: -1,
            token: 0,
            generation: 0,
        };
        Ok(Self {
            ring,
            bufs: bufs.into_boxed_slice(),
            tx,
            arms: vec![Arm::Idle; sockets.len()].into_boxed_slice(),
            sock_ring: sock_ring.into_boxed_slice(),
            recv_msgs,
            sockets: sockets.into_boxed_slice(),
            watches: vec![watch; config.max_watches as usize].into_boxed_slice(),
            control_len: control_len as usize,
            stats: DriverStats::default(),
        })
    }

    /// The sockets, in the order given to [`UdpDriver::new`].
    pub fn sockets(&self) -> &[UdpSocket] {
        &self.sockets
    }

    /// The transmit queue, to queue packets outside the callback.
    pub fn tx(&mut self) -> &mut TxQueue {
        &mut self.tx
    }

    /// All counters.
    pub fn stats(&self) -> DriverStats {
        DriverStats {
            tx: self.tx.stats(),
            ..self.stats
        }
    }

    /// Packets handed to the kernel whose send completion has not been reaped yet.
    pub fn sends_in_flight(&self) -> usize {
        self.tx.in_flight()
    }

    /// Packets queued and not yet handed to the kernel.
    pub fn sends_pending(&self) -> usize {
        self.tx.pending()
    }

    /// Receive buffers currently available to the kernel, in all rings.
    pub fn buffers_in_kernel(&self) -> u32 {
        self.bufs.iter().map(BufRing::in_kernel).sum()
    }

    /// Receive buffers the caller holds, from all rings.
    pub fn buffers_held(&self) -> u32 {
        self.bufs.iter().map(BufRing::held).sum()
    }

    /// Receive buffers in all rings: the most the caller can hold at once.
    pub fn buffers(&self) -> u32 {
        self.bufs.iter().map(|b| u32::from(b.entries())).sum()
    }

    /// The payload of a held buffer.
    pub fn held_payload(&self, id: &BufId) -> Option<&[u8]> {
        self.bufs.get(usize::from(id.ring))?.held_payload(id.bid)
    }

    /// Gives a held buffer back to the kernel. Returns false if it was not held.
    pub fn release(&mut self, id: BufId) -> bool {
        self.bufs
            .get_mut(usize::from(id.ring))
            .is_some_and(|b| b.recycle(id.bid))
    }

    /// Watches `fd` for readability with a multishot poll; each wake-up is reported as
    /// [`Event::Readable`] with `token`. The fd must stay open until [`UdpDriver::unwatch`]. Armed
    /// with the next submit.
    pub fn watch(&mut self, fd: BorrowedFd<'_>, token: u64) -> Result<WatchId, DriverError> {
        let Some(slot) = self
            .watches
            .iter()
            .position(|w| w.state == WatchState::Free)
        else {
            return Err(DriverError::WatchesFull(self.watches.len() as u32));
        };
        let w = &mut self.watches[slot];
        w.state = WatchState::NeedArm { rearm: false };
        w.fd = fd.as_raw_fd();
        w.token = token;
        Ok(WatchId(slot as u32))
    }

    /// Stops watching. Returns false if `id` was not being watched. No event for it is
    /// reported after this returns.
    pub fn unwatch(&mut self, id: WatchId) -> bool {
        let Some(w) = self.watches.get_mut(id.0 as usize) else {
            return false;
        };
        match w.state {
            WatchState::Free | WatchState::Removing => return false,
            WatchState::Armed => w.state = WatchState::Removing,
            WatchState::NeedArm { .. } => w.state = WatchState::Free,
        }
        // A completion of the old poll now carries a stale generation and is ignored.
        w.generation = (w.generation + 1) & GENERATION_MASK;
        true
    }

    /// Pushes what is due and submits it without waiting: one `io_uring_enter`.
    pub fn submit(&mut self) -> io::Result<()> {
        self.push_due()?;
        self.stats.enters += 1;
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Submits what is due, waits until at least one completion is ready or `timeout` passes
    /// (`None`: no limit), then hands every completed receive and readiness event to `on_event`.
    /// Returns how many events were handed over.
    ///
    /// `on_event` gets the [`TxQueue`] so it can queue replies; they are sent by the next call.
    //
    // Hot loop (see `drain`): per packet one CQE read, one header parse, the callback, and one
    // release store to the buffer ring tail. No figures measured for it yet.
    pub fn run_once<F>(&mut self, timeout: Option<Duration>, mut on_event: F) -> io::Result<usize>
    where
        F: FnMut(&mut TxQueue, Event<'_>),
    {
        self.push_due()?;
        self.stats.enters += 1;
        // Waiting for one completion also runs deferred task work, and returns at once when
        // completions are already waiting.
        let res = match timeout {
            Some(t) => {
                let ts = Timespec::from(t);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        match res {
            Ok(_) => {}
            Err(e) if is_transient(&e) => {}
            Err(e) => return Err(e),
        }
        Ok(self.drain(&mut on_event))
    }

    /// Pushes receive re-arms, watch changes and queued sends into the SQ.
    fn push_due(&mut self) -> io::Result<()> {
        // Receives first: without buffers a re-armed receive would end at once with ENOBUFS,
        // so wait until the caller gives some back.
        for sock in 0..self.arms.len() {
            let state = self.arms[sock];
            let group = self.sock_ring[sock];
            if state == Arm::Armed || self.bufs[usize::from(group)].in_kernel() == 0 {
                continue;
            }
            let msg: *const libc::msghdr = &self.recv_msgs[sock];
            let token = Token::Recv { sock: sock as u16 };
            let sqe = opcode::RecvMsgMulti::new(Fixed(sock as u32), msg, BGID + group)
                .build()
                .user_data(token.encode());
            // SAFETY: the msghdr lives in `recv_msgs`, which is never modified and outlives the
            // ring (dropped after it); the buffer group is the registered `bufs` ring.
            if !unsafe { self.push(&sqe) }? {
                return Ok(());
            }
            self.arms[sock] = Arm::Armed;
            if state == Arm::Ended {
                self.stats.rx.rearms += 1;
            }
        }
        for slot in 0..self.watches.len() {
            let w = self.watches[slot];
            let (sqe, next) = match w.state {
                WatchState::NeedArm { .. } => {
                    let token = Token::Watch {
                        slot: slot as u32,
                        generation: w.generation,
                    };
                    let sqe = opcode::PollAdd::new(Fd(w.fd), libc::POLLIN as u32)
                        .multi(true)
                        .build()
                        .user_data(token.encode());
                    (sqe, WatchState::Armed)
                }
                WatchState::Removing => {
                    let old = (w.generation + GENERATION_MASK) & GENERATION_MASK;
                    let target = Token::Watch {
                        slot: slot as u32,
                        generation: old,
                    }
                    .encode();
                    let sqe = opcode::PollRemove::new(target)
                        .build()
                        .user_data(Token::Cancel.encode());
                    (sqe, WatchState::Free)
                }
                WatchState::Free | WatchState::Armed => continue,
            };
            // SAFETY: POLL_ADD and POLL_REMOVE point at no memory; the fd is the caller's, who
            // keeps it open until `unwatch` (a closed fd only fails the poll with EBADF).
            if !unsafe { self.push(&sqe) }? {
                return Ok(());
            }
            if w.state == (WatchState::NeedArm { rearm: true }) {
                self.stats.watch_rearms += 1;
            }
            self.watches[slot].state = next;
        }
        self.push_sends()
    }

    /// Submits the queued sends now, without waiting for or reaping any completion (they are
    /// reaped by the next [`UdpDriver::run_once`]): for a caller in the middle of a long batch
    /// whose packets should not wait for its end.
    pub fn send_now(&mut self) -> io::Result<()> {
        if self.tx.pending() == 0 {
            return Ok(());
        }
        self.push_sends()?;
        self.stats.enters += 1;
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Pushes the tx queue's send groups into the SQ (as many as fit).
    fn push_sends(&mut self) -> io::Result<()> {
        while let Some(group) = self.tx.peek_group() {
            let msg = self.tx.prepare(&group);
            let sqe = opcode::SendMsg::new(Fixed(u32::from(group.sock)), msg)
                .build()
                .user_data(Token::Send { head: group.head }.encode());
            // SAFETY: the msghdr, its name, control message, iovecs and the tx buffers they point
            // at belong to the group's slots, which `commit` marks in flight: nothing writes
            // them until this send's completion frees them, and they outlive the ring.
            if !unsafe { self.push(&sqe) }? {
                return Ok(());
            }
            self.tx.commit(&group);
        }
        Ok(())
    }

    /// Pushes one SQE, submitting once first if the SQ is full. Returns false if it is still
    /// full (the kernel is refusing submissions until completions are reaped).
    ///
    /// # Safety
    ///
    /// Whatever `sqe` points at must stay valid and unmodified until its final completion.
    unsafe fn push(&mut self, sqe: &squeue::Entry) -> io::Result<bool> {
        // SAFETY: forwarded from this function's contract.
        if unsafe { self.ring.submission().push(sqe) }.is_ok() {
            return Ok(true);
        }
        self.stats.sq_full_submits += 1;
        self.stats.enters += 1;
        match self.ring.submit() {
            Ok(_) => {}
            Err(e) if is_transient(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
        // SAFETY: as above.
        Ok(unsafe { self.ring.submission().push(sqe) }.is_ok())
    }

    /// Handles every completion currently in the CQ.
    fn drain<F>(&mut self, on_event: &mut F) -> usize
    where
        F: FnMut(&mut TxQueue, Event<'_>),
    {
        let Self {
            ring,
            bufs,
            tx,
            arms,
            sock_ring,
            watches,
            control_len,
            stats,
            ..
        } = self;
        let mut events = 0;
        let mut cq = ring.completion();
        stats.cq_overflow = cq.overflow();
        for cqe in &mut cq {
            let (res, flags) = (cqe.result(), cqe.flags());
            match Token::decode(cqe.user_data()) {
                Some(Token::Recv { sock }) => {
                    let sock = usize::from(sock);
                    if !cqueue::more(flags) {
                        if let Some(a) = arms.get_mut(sock) {
                            *a = Arm::Ended;
                        }
                    }
                    let Some(bid) = cqueue::buffer_select(flags) else {
                        if res == -libc::ENOBUFS {
                            stats.rx.enobufs += 1;
                        } else if res < 0 {
                            stats.rx.errors += 1;
                            stats.rx.last_errno = -res;
                        }
                        continue;
                    };
                    let group = sock_ring.get(sock).copied().unwrap_or(0);
                    let Some(ring) = bufs.get_mut(usize::from(group)) else {
                        stats.rx.malformed += 1;
                        continue;
                    };
                    if !ring.take(bid) {
                        stats.rx.malformed += 1;
                        continue;
                    }
                    events += deliver(
                        ring,
                        tx,
                        &mut stats.rx,
                        sock,
                        (group, bid),
                        res,
                        *control_len,
                        on_event,
                    );
                }
                Some(Token::Send { head }) => {
                    if !tx.complete(head, res) {
                        stats.unknown_completions += 1;
                    }
                }
                Some(Token::Watch { slot, generation }) => {
                    let Some(w) = watches.get_mut(slot as usize) else {
                        stats.unknown_completions += 1;
                        continue;
                    };
                    if w.state != WatchState::Armed || w.generation != generation {
                        continue; // A removed watch's last completion.
                    }
                    let token = w.token;
                    if res < 0 {
                        w.state = WatchState::Free;
                        w.generation = (w.generation + 1) & GENERATION_MASK;
                        on_event(tx, Event::WatchEnded { token, errno: -res });
                    } else {
                        if !cqueue::more(flags) {
                            w.state = WatchState::NeedArm { rearm: true };
                        }
                        on_event(
                            tx,
                            Event::Readable {
                                token,
                                events: res as u32,
                            },
                        );
                    }
                    events += 1;
                }
                Some(Token::Cancel) => {}
                None => stats.unknown_completions += 1,
            }
        }
        events
    }
}

/// Parses one received buffer and hands it to the caller; recycles it unless held.
#[allow(
    clippy::too_many_arguments,
    reason = "disjoint borrows of the driver's fields"
)]
fn deliver<F>(
    bufs: &mut BufRing,
    tx: &mut TxQueue,
    stats: &mut RxStats,
    sock: usize,
    (group, bid): (u16, u16),
    res: i32,
    control_len: usize,
    on_event: &mut F,
) -> usize
where
    F: FnMut(&mut TxQueue, Event<'_>),
{
    let hold = Cell::new(false);
    let mut delivered = 0;
    let buf = bufs.bytes(bid, usize::try_from(res).unwrap_or(0));
    match parse_recvmsg_out(buf, NAME_LEN as usize, control_len) {
        None => stats.malformed += 1,
        Some(out) if out.truncated => stats.truncated += 1,
        Some(out) => match decode_addr(&buf[out.name.clone()]) {
            None => stats.malformed += 1,
            Some(source) => {
                let payload = &buf[out.payload.clone()];
                let segment_size = gro_segment_size(&buf[out.control.clone()]);
                stats.datagrams += 1;
                stats.bytes += payload.len() as u64;
                stats.gro_datagrams += u64::from(segment_size.is_some());
                let d = Datagram::new(sock, source, payload, segment_size, (group, bid), &hold);
                on_event(tx, Event::Datagram(d));
                delivered = 1;
                if hold.get() {
                    // Offsets fit u32: a buffer is at most stride (< 2^17) bytes.
                    bufs.hold(bid, out.payload.start as u32, out.payload.len() as u32);
                }
            }
        },
    }
    if !hold.get() {
        bufs.recycle(bid);
    }
    delivered
}

/// Errors from `io_uring_enter` that mean "nothing more to do now", not failure.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
    )
}

impl Drop for UdpDriver {
    fn drop(&mut self) {
        // Cancel every request (synchronously) and unregister the buffer rings, so the kernel
        // holds no pointer into `bufs`, `tx` or `recv_msgs` when they are unmapped after the
        // ring's fd is closed.
        let _ = self
            .ring
            .submitter()
            .register_sync_cancel(None, CancelBuilder::any());
        for g in (BGID..).take(self.bufs.len()) {
            let _ = self.ring.submitter().unregister_buf_ring(g);
        }
    }
}

impl std::fmt::Debug for UdpDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpDriver")
            .field("sockets", &self.sockets.len())
            .field("bufs", &self.bufs)
            .field("tx", &self.tx)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
