//! One pinned data-plane worker: a run-to-completion loop around a [`UdpDriver`] that drives the
//! sans-IO [`Forwarder`].
//!
//! # One turn of the loop
//!
//! 1. `quiesce()` the FIB reader, announce sleep on the rings it consumes, and block in
//!    [`UdpDriver::run_once`] until a datagram, a watched fd or the next timer. Worker 0 receives
//!    on its data sockets and on the interfaces' control sockets, where the steering program
//!    ([`crate::steer`]) puts every hello, feedback and control packet; the control sockets have
//!    a buffer ring of their own ([`CONTROL_RX_BUFFERS`]), so a data flood, which can take every
//!    buffer of the data ring, never leaves them without.
//! 2. The callback only sorts (`RxBatch::sort` in `rx.rs`): with `UDP_GRO` a receive buffer can
//!    hold several Weft packets (the segments of a super-packet); each one is counted as received
//!    and its class peeked with `peek_class`, and the buffer is kept for the turn.
//! 3. Hello and control packets (class 0 and 1) of the new buffers are handled first, so a flood
//!    of data never delays them once they are read. Worker 0 runs the pipeline on them; the other
//!    workers hand those they get (a hello that arrived behind data in a GRO super-packet, for
//!    one) to worker 0 through their [handoff](crate::handoff) ring.
//! 4. `enter()` the FIB once, then run the pipeline on every data packet: forwards are written
//!    into tx buffers at once (sent by the next `run_once`), local deliveries go to the session
//!    server (worker 0) or to worker 0's handoff ring (other workers). Then every buffer goes
//!    back to the ring.
//! 5. Worker 0 then drains the handoff rings, the session sockets, the inject ring and its link
//!    monitors' timers (sending hellos), releases real-time messages whose time has come, and
//!    writes link statistics on events and every 100 ms.
//! 6. Every worker runs its lane's real-time link state ([`RtLinks`], NM-Strikes): Nacks that
//!    worker 0 handed over (other workers), then due requests (Nack records out) and due
//!    retransmissions (copies out). Its timers bound the sleep of step 1.
//!
//! Nothing here allocates per packet, takes a lock or makes a syscall per packet: buffers are
//! sized at start-up, counters are single-writer atomics in shared memory. Every 100 ms each
//! worker reads its sockets' kernel drop counters (one `getsockopt` per socket; data and control
//! sockets are summed apart for the exit report).
//!
//! # Receive buffers
//!
//! With GRO (the default) a worker has [`RX_GRO_BUFFERS`] buffers of 65,507 bytes (the largest
//! UDP payload, so any super-packet fits), about 4.2 MB per worker, all mapped and populated at
//! start-up; a datagram that was not coalesced takes a whole buffer too, so a turn handles at
//! most that many datagrams (more stay queued in the socket). Its tx pool ([`TX_SLOTS_GRO`])
//! has room to forward every segment a turn can bring. Without GRO (`--no-gro`, or a kernel that
//! refuses `UDP_GRO`) it has [`RX_BUFFERS`] buffers of [`RX_PAYLOAD`] bytes and [`TX_SLOTS`]
//! tx buffers. Worker 0's control sockets share a ring of [`CONTROL_RX_BUFFERS`] more buffers of
//! the same size (1 MiB with GRO).

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use weft_proto::forward::{Forwarder, LinkSender, LocalDelivery};
use weft_proto::realtime::{RtLinks, RtLinksLimits, RtTotals};
use weft_proto::reliable::{RelLinks, RelLinksLimits, RelTotals};
use weft_shared::config::Timers;
use weft_shared::ids::{Incarnation, NodeId};
use weft_shared::shm::fib::FibTable;
use weft_shared::shm::{
    Counter, EventFd, FibReader, LocalGroupsWriter, Notify, RelLinkValues, RelStatsWriter,
    RingConsumer, RingProducer, ShmRegion, StatsWriter, WorkerCounters,
};
use weft_shared::time::Instant;
use weft_shared::wire::{AckRepr, NackRepr};

use crate::clock;
use crate::handoff::{
    HANDOFF_DATAGRAM, HANDOFF_DELIVER, HANDOFF_DELIVER_RECOVERED, HANDOFF_NACK, HANDOFF_REL_ACK,
    HANDOFF_REL_NACK, HandoffProducer, split_incarnation,
};
use crate::keys::KeyWatch;
use crate::links::Links;
use crate::monitors::Monitors;
use crate::output::{
    Out, RoleOut, count_in, send_on_link, send_realtime_output, send_reliable_output,
};
use crate::packer::{PackTx, Packer};
use crate::rx::{RxBatch, RxTotals};
use crate::session_glue::{LocalQueue, Originate, SessionGlue};
use crate::uring::{
    DriverConfig, Event, Features, MAX_UDP_PAYLOAD, SeparateRing, UdpDriver, socket_drops,
};

/// Watch token of a worker's doorbell eventfd.
pub const TOKEN_DOORBELL: u64 = 0;
/// Watch token of the inject ring's eventfd (worker 0).
pub const TOKEN_INJECT: u64 = 1;
/// Watch tokens from here on belong to the session server (worker 0).
pub const TOKEN_SESSION_BASE: u64 = 2;

/// Without GRO: the largest datagram a worker receives; longer ones are truncated and dropped by
/// the driver (counted as `kernel_drops`).
pub const RX_PAYLOAD: u32 = 2048;
/// Without GRO: receive buffers per worker; also the most datagrams one turn holds.
pub const RX_BUFFERS: u32 = 256;
/// With GRO: receive buffers per worker, each holding a whole super-packet (65,507 bytes); also
/// the most datagrams or super-packets one turn holds.
pub const RX_GRO_BUFFERS: u32 = 64;
/// Tx buffers (2,048 bytes each) per worker without GRO: a turn reads at most 256 datagrams,
/// and hellos and client sends need room too.
pub const TX_SLOTS: u32 = 1024;
/// Tx buffers per worker with GRO: a turn can forward every segment of 64 super-packets of up
/// to 64 segments (the kernel's GRO limit and the driver's GSO limit), plus the same room for
/// hellos and client sends. 10 MiB per worker.
pub const TX_SLOTS_GRO: u32 = RX_GRO_BUFFERS * 64 + TX_SLOTS;
/// Worker 0: receive buffers of the control sockets' own ring (each as large as a data buffer),
/// so also the most control datagrams one turn reads; more wait in the control sockets. Hellos
/// arrive at about 100 a second per path, so a turn rarely finds more than a few.
pub const CONTROL_RX_BUFFERS: u32 = 16;
/// Most ring items handled per ring per turn.
const RING_BURST: usize = 256;
/// Link statistics are written at least this often.
const STATS_INTERVAL: Duration = Duration::from_millis(100);
/// A worker sends what it forwarded so far at least every this many data packets of a turn
/// (flushing its packer and submitting its tx queue without waiting), and whenever
/// [`SEND_EVERY_TIME`] has passed since the last such send (looked at every
/// [`SEND_CHECK_EVERY`] packets). Otherwise what a turn forwards would leave only at its end,
/// and a turn over a backlog (64 GRO buffers hold thousands of packets) would hold its first
/// packet for milliseconds.
const SEND_EVERY_PACKETS: usize = 64;
/// See [`SEND_EVERY_PACKETS`].
const SEND_EVERY_TIME: Duration = Duration::from_micros(25);
/// See [`SEND_EVERY_PACKETS`].
const SEND_CHECK_EVERY: usize = 8;
/// Longest sleep of a worker with no timer (it is woken by its doorbell anyway).
const IDLE_TIMEOUT: Duration = Duration::from_millis(500);

/// Everything a worker thread needs, made by the main thread.
pub struct WorkerSetup {
    /// Worker index: lane, counter row and FIB reader slot.
    pub index: usize,
    /// The core to pin to.
    pub core: Option<core_affinity::CoreId>,
    /// This node.
    pub node: NodeId,
    /// The data plane's incarnation.
    pub incarnation: Incarnation,
    /// The worker's data socket for each interface, in config order, bound by the main thread
    /// ([`crate::sockets`]).
    pub sockets: Vec<UdpSocket>,
    /// The node's links.
    pub links: Arc<Links>,
    /// The node's shared-memory region.
    pub region: Arc<ShmRegion>,
    /// What the kernel's io_uring offers.
    pub features: Features,
    /// Enable `UDP_GRO` on the sockets (the caller checked that the kernel accepts it).
    pub gro: bool,
    /// Whether data records for one next hop share datagrams ([`crate::packer`]).
    pub packing: bool,
    /// How long to keep polling without blocking after a turn with work (0: block at once).
    pub busy_poll: Duration,
    /// Set by the main thread to stop.
    pub stop: Arc<AtomicBool>,
    /// This worker's doorbell.
    pub doorbell: Arc<EventFd>,
    /// Worker 0's extra duties, or another worker's handoff ring.
    pub role: RoleSetup,
}

/// What differs between worker 0 and the others.
pub enum RoleSetup {
    /// Worker 0.
    Zero(Box<ZeroSetup>),
    /// Any other worker: its ring to worker 0 and worker 0's ring to it.
    Other(HandoffProducer, RingConsumer),
}

/// Worker 0's extra inputs.
pub struct ZeroSetup {
    /// The control socket of each interface, in config order ([`crate::sockets`]).
    pub control: Vec<UdpSocket>,
    /// Consumer ends of the other workers' handoff rings.
    pub handoff: Vec<RingConsumer>,
    /// Producer ends of the rings to the other workers (index k − 1 for worker k).
    pub to_lanes: Vec<HandoffProducer>,
    /// Producer end of the punt ring.
    pub punt: RingProducer,
    /// The punt ring's eventfd (written when the control plane sleeps).
    pub punt_wake: Arc<EventFd>,
    /// Consumer end of the inject ring.
    pub inject: RingConsumer,
    /// The inject ring's eventfd (written by the control plane).
    pub inject_wake: Arc<EventFd>,
    /// The link statistics writer.
    pub stats: StatsWriter,
    /// The overlay's timers.
    pub timers: Timers,
    /// The config hash carried in hellos.
    pub config_hash: u64,
    /// Builds the session server on the worker's thread.
    pub session: Box<dyn FnOnce() -> anyhow::Result<SessionGlue> + Send>,
}

/// Runs a worker until `stop` is set. Start-up errors are sent on `ready` (and returned); `Ok`
/// on `ready` means the io_uring driver is set up and the loop is about to start.
pub fn run(setup: WorkerSetup, ready: mpsc::Sender<anyhow::Result<()>>) -> anyhow::Result<()> {
    let index = setup.index;
    let (mut worker, mut driver) = match Worker::new(setup) {
        Ok(w) => w,
        Err(e) => {
            let text = format!("worker {index}: {e:#}");
            let _ = ready.send(Err(anyhow::anyhow!(text.clone())));
            return Err(anyhow::anyhow!(text));
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let mut result = Ok(());
    while !worker.stop.load(Ordering::Relaxed) {
        result = worker
            .turn(&mut driver)
            .with_context(|| format!("worker {index}"));
        if result.is_err() {
            break;
        }
    }
    worker.report(&driver);
    result
}

struct Worker {
    index: usize,
    incarnation: Incarnation,
    forwarder: Forwarder,
    sender: LinkSender,
    /// The data packets open this turn, one per next hop at most ([`crate::packer`]).
    packer: Packer,
    /// The key files of the authenticated links, installed in `sender`'s auth table.
    keys: KeyWatch,
    links: Arc<Links>,
    counters: WorkerCounters,
    fib: FibReader,
    /// Hello and control packets never consult the FIB; they run against this empty table.
    empty_fib: Box<FibTable>,
    /// Each Weft packet is copied here from its receive buffer before the pipeline runs on it.
    scratch: Box<[u8]>,
    /// The lane's NM-Strikes state on every link.
    rt: RtLinks,
    /// `rt`'s totals already added to the counters.
    rt_counted: RtTotals,
    /// The lane's reliable-link state on every link.
    rel: RelLinks,
    /// `rel`'s totals already added to the counters.
    rel_counted: RelTotals,
    /// Where the lane's per-link reliable figures go (and worker 0's per-flow ones).
    rel_stats: RelStatsWriter,
    rx: RxBatch,
    gro: bool,
    /// [`WorkerSetup::busy_poll`].
    busy_poll: Duration,
    /// When the last turn with data or a client's request ended its `run_once`.
    last_work: Instant,
    stop: Arc<AtomicBool>,
    doorbell: Arc<EventFd>,
    role: Role,
    /// The driver's loss counters already added to `KernelDrops`.
    kernel_drops_seen: u64,
    /// Each socket's kernel drop counter as last read (it wraps at 2^32).
    socket_drops_seen: Box<[u32]>,
    /// The driver's first sockets are data sockets; the rest (worker 0) are control sockets.
    data_sockets: usize,
    /// The data sockets' drops added to `KernelDrops`, for the exit report.
    data_drops_total: u64,
    /// The same for the control sockets (0 unless hellos and control alone overflow them).
    control_drops_total: u64,
    /// When the socket drop counters are read next.
    socket_drops_due: Instant,
}

enum Role {
    Zero(Box<Zero>),
    Other(HandoffProducer, RingConsumer),
}

struct Zero {
    monitors: Monitors,
    handoff: Vec<RingConsumer>,
    to_lanes: Vec<HandoffProducer>,
    punt: RingProducer,
    punt_wake: Arc<EventFd>,
    inject: RingConsumer,
    inject_wake: Arc<EventFd>,
    stats: StatsWriter,
    stats_due: Instant,
    session: SessionGlue,
    local: LocalQueue,
    /// Where the groups with local members go for the control plane.
    groups: LocalGroupsWriter,
    /// Watch tokens reported by the last `run_once`, for the session server.
    readable: Vec<u64>,
    inject_woken: bool,
}

impl Worker {
    fn new(setup: WorkerSetup) -> anyhow::Result<(Self, UdpDriver)> {
        if let Some(core) = setup.core {
            if !core_affinity::set_for_current(core) {
                eprintln!(
                    "weft-dataplane: worker {}: could not pin to core {}",
                    setup.index, core.id
                );
            }
        }
        let fib = FibReader::register(setup.region.clone(), setup.index)
            .context("registering the FIB reader")?;
        let counters = WorkerCounters::new(setup.region.clone(), setup.index)
            .context("opening the worker counters")?;
        let mut sockets = setup.sockets;
        let data_sockets = sockets.len();
        let (buf_entries, buf_payload) = if setup.gro {
            (RX_GRO_BUFFERS, MAX_UDP_PAYLOAD as u32)
        } else {
            (RX_BUFFERS, RX_PAYLOAD)
        };
        let mut role = setup.role;
        let mut separate_ring = None;
        if let RoleSetup::Zero(z) = &mut role {
            if !z.control.is_empty() {
                separate_ring = Some(SeparateRing {
                    first_socket: data_sockets,
                    buf_entries: CONTROL_RX_BUFFERS,
                    buf_payload,
                });
                sockets.append(&mut z.control);
            }
        }
        let all_sockets = sockets.len();
        let config = DriverConfig {
            buf_entries,
            buf_payload,
            gro: setup.gro,
            tx_slots: if setup.gro { TX_SLOTS_GRO } else { TX_SLOTS },
            tx_buf_size: 2048,
            max_watches: 1024,
            separate_ring,
            ..DriverConfig::default()
        };
        let mut driver =
            UdpDriver::new(&setup.features, &config, sockets).context("setting up io_uring")?;
        driver
            .watch(setup.doorbell.as_fd(), TOKEN_DOORBELL)
            .context("watching the doorbell")?;
        let now = clock::now();
        let role = match role {
            RoleSetup::Other(p, c) => Role::Other(p, c),
            RoleSetup::Zero(z) => {
                let z = *z;
                driver
                    .watch(z.inject_wake.as_fd(), TOKEN_INJECT)
                    .context("watching the inject eventfd")?;
                let session = (z.session)().context("starting the session server")?;
                session
                    .watch_listener(&mut driver)
                    .context("watching the session socket")?;
                let monitors = Monitors::new(
                    setup.links.clone(),
                    &z.timers,
                    setup.incarnation,
                    z.config_hash,
                    now,
                )
                .map_err(|e| anyhow::anyhow!("link monitor settings: {e}"))?;
                Role::Zero(Box::new(Zero {
                    monitors,
                    handoff: z.handoff,
                    to_lanes: z.to_lanes,
                    punt: z.punt,
                    punt_wake: z.punt_wake,
                    inject: z.inject,
                    inject_wake: z.inject_wake,
                    stats: z.stats,
                    stats_due: now,
                    session,
                    local: LocalQueue::new(),
                    groups: LocalGroupsWriter::new(setup.region.clone()),
                    readable: Vec::with_capacity(1024),
                    inject_woken: false,
                }))
            }
        };
        let lane = u8::try_from(setup.index).context("more than 256 workers")?;
        let rt = RtLinks::new(
            setup
                .links
                .iter()
                .map(|l| (l.id, Duration::from_micros(u64::from(l.one_way_delay_us())))),
            RtLinksLimits::default(),
        );
        let rel = RelLinks::new(
            setup.links.iter().map(|l| {
                (
                    l.id,
                    Duration::from_micros(2 * u64::from(l.one_way_delay_us())),
                )
            }),
            RelLinksLimits::default(),
        );
        let mut sender = LinkSender::new(setup.node, setup.incarnation, lane);
        let keys = KeyWatch::new(setup.index, &setup.links, sender.auth_mut(), now)
            .context("loading the link key files")?;
        let worker = Worker {
            index: setup.index,
            incarnation: setup.incarnation,
            forwarder: Forwarder::new(setup.node),
            sender,
            packer: Packer::new(setup.packing),
            keys,
            links: setup.links,
            counters,
            fib,
            empty_fib: FibTable::new_boxed(),
            scratch: vec![0u8; buf_payload as usize].into_boxed_slice(),
            rt,
            rt_counted: RtTotals::default(),
            rel,
            rel_counted: RelTotals::default(),
            rel_stats: RelStatsWriter::new(setup.region.clone(), setup.index),
            rx: RxBatch::new(driver.buffers()),
            gro: setup.gro,
            stop: setup.stop,
            doorbell: setup.doorbell,
            role,
            kernel_drops_seen: 0,
            socket_drops_seen: vec![0; all_sockets].into_boxed_slice(),
            data_sockets,
            data_drops_total: 0,
            control_drops_total: 0,
            socket_drops_due: now,
            busy_poll: setup.busy_poll,
            last_work: now,
        };
        Ok((worker, driver))
    }

    /// One turn of the loop (module doc).
    fn turn(&mut self, driver: &mut UdpDriver) -> anyhow::Result<()> {
        let before = clock::now();
        let mut timeout = self.prepare_sleep(before, driver);
        // Busy polling: within `busy_poll` of the last turn with work, look and return at once
        // instead of blocking, so a burst right behind the last one costs no wake-up.
        if !self.busy_poll.is_zero()
            && before.saturating_duration_since(self.last_work) < self.busy_poll
        {
            timeout = Duration::ZERO;
        }
        self.fib.quiesce();
        let rx = &mut self.rx;
        let counters = &self.counters;
        let mut rang = false;
        let mut readable_tokens = match &mut self.role {
            Role::Zero(z) => Some(&mut z.readable),
            Role::Other(..) => None,
        };
        let events = driver.run_once(Some(timeout), |_tx, event| match event {
            Event::Datagram(d) => rx.sort(&d, before, counters),
            Event::Readable { token, .. } | Event::WatchEnded { token, .. } => {
                if token == TOKEN_DOORBELL {
                    rang = true;
                } else if let Some(tokens) = readable_tokens.as_mut() {
                    if tokens.len() < tokens.capacity() {
                        tokens.push(token);
                    }
                }
            }
        })?;
        // Work is data or a client's request; hellos and send completions alone do not keep an
        // idle worker polling.
        let client = matches!(&self.role, Role::Zero(z) if !z.readable.is_empty());
        if events > 0 && (self.rx.has_data() || client) {
            self.last_work = clock::now();
        }
        if rang {
            let _ = self.doorbell.drain();
        }
        let now = clock::now();
        self.finish_sleep();
        self.keys.poll(now, &self.links, self.sender.auth_mut());
        self.handle_critical(now, driver);
        self.handle_data(now, driver);
        self.rx.release_done(driver);
        if let Role::Zero(_) = self.role {
            self.worker0_turn(now, driver);
        }
        self.realtime_turn(now, driver);
        // Every packet packed this turn leaves with the next `run_once`, but for those a
        // flow's pack delay may still hold.
        self.packer.flush_due(
            &mut PackTx {
                tx: driver.tx(),
                sender: &mut self.sender,
                links: &self.links,
                worker: self.index,
                counters: &self.counters,
            },
            now,
        );
        match &mut self.role {
            Role::Other(p, _) => p.publish().context("ringing worker 0's doorbell")?,
            Role::Zero(z) => {
                for p in &mut z.to_lanes {
                    p.publish().context("ringing a worker's doorbell")?;
                }
            }
        }
        // Datagrams the driver lost: too long for a receive buffer, nonsense completions, send
        // errors.
        let st = driver.stats();
        let lost = st.rx.truncated + st.rx.malformed + st.tx.errors;
        if lost != self.kernel_drops_seen {
            self.counters
                .add(Counter::KernelDrops, lost - self.kernel_drops_seen);
            self.kernel_drops_seen = lost;
        }
        if now >= self.socket_drops_due {
            self.socket_drops_due = now.saturating_add(STATS_INTERVAL);
            self.read_socket_drops(driver);
            self.count_realtime();
        }
        Ok(())
    }

    /// The lane's real-time link work: Nacks worker 0 handed over, then what is due.
    fn realtime_turn(&mut self, now: Instant, driver: &mut UdpDriver) {
        if let Role::Other(_, from_zero) = &mut self.role {
            let rt = &mut self.rt;
            let rel = &mut self.rel;
            let counters = &self.counters;
            from_zero.pop_burst(RING_BURST, |meta, bytes| {
                let result = match (meta.flags, meta.link) {
                    (HANDOFF_NACK, Some(link)) => {
                        NackRepr::parse(bytes).and_then(|n| rt.handle_nack(now, link, &n))
                    }
                    (HANDOFF_REL_ACK, Some(link)) => split_incarnation(bytes).and_then(|(p, b)| {
                        AckRepr::parse(b).and_then(|a| rel.handle_ack(now, link, p, &a))
                    }),
                    (HANDOFF_REL_NACK, Some(link)) => {
                        split_incarnation(bytes).and_then(|(p, b)| {
                            NackRepr::parse(b).and_then(|n| rel.handle_nack(now, link, p, &n))
                        })
                    }
                    _ => Err(weft_shared::DropReason::BadField {
                        field: "handoff.flags",
                        value: meta.flags.into(),
                    }),
                };
                if let Err(reason) = result {
                    counters.add_drop(reason, 1);
                }
            });
        }
        let mut t = PackTx {
            tx: driver.tx(),
            sender: &mut self.sender,
            links: &self.links,
            worker: self.index,
            counters: &self.counters,
        };
        send_realtime_output(now, &mut self.rt, &mut t, &mut self.packer);
        send_reliable_output(now, &mut self.rel, &mut t, &mut self.packer);
    }

    /// Adds what the lane's real-time state counted since the last call to the counters.
    fn count_realtime(&mut self) {
        let t = self.rt.totals();
        let before = self.rt_counted;
        self.counters.add(
            Counter::RtRetransmitted,
            t.retransmitted.saturating_sub(before.retransmitted),
        );
        self.counters.add(
            Counter::RtRequested,
            t.requested.saturating_sub(before.requested),
        );
        self.rt_counted = t;
        let r = self.rel.totals();
        let before = self.rel_counted;
        for (counter, now, then) in [
            (
                Counter::RelRetransmitted,
                r.retransmitted,
                before.retransmitted,
            ),
            (Counter::RelRecovered, r.recovered, before.recovered),
            (Counter::RelOutOfOrder, r.out_of_order, before.out_of_order),
            (Counter::RelDuplicates, r.duplicates, before.duplicates),
            (Counter::RelRefused, r.refused, before.refused),
        ] {
            self.counters.add(counter, now.saturating_sub(then));
        }
        self.counters.set(Counter::RelHeld, r.held);
        self.rel_counted = r;
        for (link, t) in self.rel.per_link() {
            let v = RelLinkValues {
                sent: t.sent,
                retransmitted: t.retransmitted,
                accepted: t.accepted,
                recovered: t.recovered,
                out_of_order: t.out_of_order,
                duplicates: t.duplicates,
                refused: t.refused,
                held: t.held,
            };
            self.rel_stats.set_link(link, &v);
        }
        if let Role::Zero(z) = &self.role {
            z.session.write_reliable_stats(&self.rel_stats);
        }
    }

    /// Adds what the kernel dropped at the sockets (receive buffer full) since the last reading
    /// to `KernelDrops`. A socket whose counter cannot be read is skipped.
    fn read_socket_drops(&mut self, driver: &UdpDriver) {
        for (i, (sock, seen)) in driver
            .sockets()
            .iter()
            .zip(self.socket_drops_seen.iter_mut())
            .enumerate()
        {
            if let Ok(total) = socket_drops(sock) {
                let new = u64::from(total.wrapping_sub(*seen));
                *seen = total;
                if new > 0 {
                    self.counters.add(Counter::KernelDrops, new);
                    if i < self.data_sockets {
                        self.data_drops_total += new;
                    } else {
                        self.control_drops_total += new;
                    }
                }
            }
        }
    }

    /// One line on stderr when the worker stops: what it received and what was lost on the way.
    fn report(&mut self, driver: &UdpDriver) {
        self.read_socket_drops(driver);
        self.count_realtime();
        let rt = self.rt.totals();
        if rt.sent + rt.requested + rt.suppressed > 0 {
            eprintln!(
                "weft-dataplane: worker {} real-time links: sent {}, retransmitted {}, expired {}; \
                 received: requested {}, recovered {}, duplicates suppressed {}",
                self.index,
                rt.sent,
                rt.retransmitted,
                rt.expired,
                rt.requested,
                rt.recovered,
                rt.suppressed
            );
        }
        let rel = self.rel.totals();
        if rel.sent + rel.accepted > 0 {
            eprintln!(
                "weft-dataplane: worker {} reliable links: sent {}, retransmitted {}, given up \
                 on restarted peers {}; received: accepted {}, recovered {}, out of order {}, \
                 duplicates {}, refused for want of room {}",
                self.index,
                rel.sent,
                rel.retransmitted,
                rel.abandoned,
                rel.accepted,
                rel.recovered,
                rel.out_of_order,
                rel.duplicates,
                rel.refused
            );
        }
        if let Role::Zero(z) = &self.role {
            z.session.log_realtime();
        }
        let RxTotals {
            packets,
            coalesced,
            super_packets,
        } = self.rx.totals();
        let rx = driver.stats().rx;
        let control = if self.socket_drops_seen.len() > self.data_sockets {
            format!(", control sockets {}", self.control_drops_total)
        } else {
            String::new()
        };
        eprintln!(
            "weft-dataplane: worker {} stopped: UDP_GRO {}; received {packets} Weft packets in \
             {} datagrams, {coalesced} of them in {super_packets} GRO super-packets; kernel \
             drops: socket buffer full: data sockets {}{control}; {} too long; {} ENOBUFS re-arms",
            self.index,
            if self.gro { "on" } else { "off" },
            rx.datagrams,
            self.data_drops_total,
            rx.truncated,
            rx.enobufs,
        );
    }

    /// How long `run_once` may block; worker 0 also announces sleep on the rings it consumes
    /// (and does not block if one of them has items).
    fn prepare_sleep(&mut self, now: Instant, driver: &UdpDriver) -> Duration {
        let rt_due = [
            self.rt.poll_timeout(),
            self.rel.poll_timeout(),
            self.packer.next_close(),
        ]
        .into_iter()
        .flatten()
        .min();
        let z = match &mut self.role {
            Role::Zero(z) => z,
            Role::Other(_, from_zero) => {
                let mut timeout = rt_due
                    .map_or(IDLE_TIMEOUT, |t| t.saturating_duration_since(now))
                    .min(IDLE_TIMEOUT);
                if !from_zero.prepare_sleep() {
                    timeout = Duration::ZERO;
                }
                return timeout;
            }
        };
        let mut next = z.stats_due;
        for t in [
            z.monitors.next_timeout(),
            rt_due,
            z.session.realtime_timeout(),
            z.session.reliable_timeout(),
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(t);
        }
        let mut timeout = next.saturating_duration_since(now).min(IDLE_TIMEOUT);
        if z.session.wants_flush() || driver.sends_pending() > 0 {
            timeout = timeout.min(Duration::from_millis(1));
        }
        let mut busy = !z.inject.prepare_sleep();
        for ring in &mut z.handoff {
            busy |= !ring.prepare_sleep();
        }
        if busy {
            timeout = Duration::ZERO;
        }
        timeout
    }

    fn finish_sleep(&mut self) {
        match &mut self.role {
            Role::Zero(z) => {
                z.inject.finish_sleep();
                for ring in &mut z.handoff {
                    ring.finish_sleep();
                }
            }
            Role::Other(_, from_zero) => from_zero.finish_sleep(),
        }
    }

    /// Runs every hello and control packet of the turn (worker 0), or hands it to worker 0.
    fn handle_critical(&mut self, now: Instant, driver: &mut UdpDriver) {
        if !self.rx.has_critical() {
            return;
        }
        self.rx.handle_critical(
            driver,
            &mut self.scratch,
            |driver, packet| match &mut self.role {
                Role::Other(p, _) => {
                    if let Err(reason) = p.stage(HANDOFF_DATAGRAM, packet) {
                        self.counters.add_drop(reason, 1);
                    }
                }
                Role::Zero(z) => {
                    let mut out = Out {
                        now,
                        worker: self.index,
                        incarnation: self.incarnation,
                        tx: driver.tx(),
                        sender: &mut self.sender,
                        packer: &mut self.packer,
                        links: &self.links,
                        counters: &self.counters,
                        rt: &mut self.rt,
                        rel: &mut self.rel,
                        role: RoleOut::Zero {
                            monitors: &mut z.monitors,
                            punt: &mut z.punt,
                            session: &mut z.session,
                            to_lanes: &mut z.to_lanes,
                        },
                    };
                    let n = packet.len();
                    let rx = self.forwarder.handle_datagram(
                        now,
                        now,
                        packet,
                        &self.empty_fib,
                        &*self.links,
                        &mut out,
                    );
                    count_in(&self.links, self.index, rx.as_ref(), n);
                }
            },
        );
    }

    /// Runs the pipeline on every data packet of the turn.
    fn handle_data(&mut self, now: Instant, driver: &mut UdpDriver) {
        if !self.rx.has_data() {
            return;
        }
        let view = self.fib.enter();
        let (mut since_send, mut sent_at) = (0usize, now);
        self.rx
            .handle_data(driver, &mut self.scratch, |driver, rx_at, packet| {
                let role = match &mut self.role {
                    Role::Other(p, _) => RoleOut::Other { handoff: p },
                    Role::Zero(z) => RoleOut::Zero {
                        monitors: &mut z.monitors,
                        punt: &mut z.punt,
                        session: &mut z.session,
                        to_lanes: &mut z.to_lanes,
                    },
                };
                let mut out = Out {
                    now,
                    worker: self.index,
                    incarnation: self.incarnation,
                    tx: driver.tx(),
                    sender: &mut self.sender,
                    packer: &mut self.packer,
                    links: &self.links,
                    counters: &self.counters,
                    rt: &mut self.rt,
                    rel: &mut self.rel,
                    role,
                };
                let n = packet.len();
                let rx = self.forwarder.handle_datagram(
                    rx_at,
                    now,
                    packet,
                    view.table(),
                    &*self.links,
                    &mut out,
                );
                count_in(&self.links, self.index, rx.as_ref(), n);
                since_send += 1;
                let due = since_send >= SEND_EVERY_PACKETS
                    || (since_send % SEND_CHECK_EVERY == 0 && {
                        let t = clock::now();
                        t.saturating_duration_since(sent_at) >= SEND_EVERY_TIME
                    });
                if due {
                    // Packets a flow's pack delay holds stay open; the rest leave now.
                    self.packer.flush_due(
                        &mut PackTx {
                            tx: driver.tx(),
                            sender: &mut self.sender,
                            links: &self.links,
                            worker: self.index,
                            counters: &self.counters,
                        },
                        clock::now(),
                    );
                    if let Err(e) = driver.send_now() {
                        // The turn's end submits again; count nothing twice.
                        eprintln!(
                            "weft-dataplane: worker {}: sending mid-turn: {e}",
                            self.index
                        );
                    }
                    since_send = 0;
                    sent_at = clock::now();
                }
            });
    }

    fn worker0_turn(&mut self, now: Instant, driver: &mut UdpDriver) {
        let Role::Zero(z) = &mut self.role else {
            return;
        };
        // Handoffs from the other workers: their hellos and control packets, then deliveries.
        for ring in &mut z.handoff {
            let scratch = &mut self.scratch;
            let forwarder = &self.forwarder;
            let empty_fib = &self.empty_fib;
            let links = &*self.links;
            let counters = &self.counters;
            let sender = &mut self.sender;
            let packer = &mut self.packer;
            let tx = driver.tx();
            let (monitors, punt, session) = (&mut z.monitors, &mut z.punt, &mut z.session);
            let to_lanes = &mut z.to_lanes;
            let rt = &mut self.rt;
            let rel = &mut self.rel;
            let incarnation = self.incarnation;
            let worker = self.index;
            ring.pop_burst(RING_BURST, |meta, bytes| {
                if matches!(meta.flags, HANDOFF_DELIVER | HANDOFF_DELIVER_RECOVERED) {
                    let recovered = meta.flags == HANDOFF_DELIVER_RECOVERED;
                    let result = LocalDelivery::parse(bytes, recovered)
                        .and_then(|d| session.deliver(now, &d, counters));
                    if let Err(reason) = result {
                        counters.add_drop(reason, 1);
                    }
                    return;
                }
                let n = bytes.len().min(scratch.len());
                scratch[..n].copy_from_slice(&bytes[..n]);
                let mut out = Out {
                    now,
                    worker,
                    incarnation,
                    tx: &mut *tx,
                    sender: &mut *sender,
                    packer: &mut *packer,
                    links,
                    counters,
                    rt: &mut *rt,
                    rel: &mut *rel,
                    role: RoleOut::Zero {
                        monitors: &mut *monitors,
                        punt: &mut *punt,
                        session: &mut *session,
                        to_lanes: &mut *to_lanes,
                    },
                };
                forwarder.handle_datagram(now, now, &mut scratch[..n], empty_fib, links, &mut out);
            });
        }
        // Clients: accept, read their requests (sends need the FIB), write what is queued.
        let reliable_due = z.session.reliable_timeout().is_some_and(|t| t <= now);
        if !z.readable.is_empty() || z.session.wants_flush() || reliable_due {
            let view = self.fib.enter();
            let mut sink = Originate::new(
                now,
                self.forwarder.node(),
                self.incarnation,
                &self.forwarder,
                view.table(),
                &self.links,
                &mut self.sender,
                &mut self.packer,
                &self.counters,
                driver.tx(),
                &mut z.local,
                &mut self.rt,
                &mut self.rel,
            );
            z.session.handle_clients(&z.readable, &mut sink);
            z.session.poll_reliable(now, &mut sink);
            z.session.deliver_local(&mut z.local, &self.counters);
            z.session.handle_accepts(&z.readable, driver);
            z.readable.clear();
            z.session.flush();
        }
        // Joins, leaves and disconnects: the control plane floods the node's groups.
        z.session.publish_groups(&z.groups, &self.counters);
        // Control packets from the control plane.
        {
            let _ = z.inject_wake.drain();
            let links = &*self.links;
            let counters = &self.counters;
            let sender = &mut self.sender;
            let tx = driver.tx();
            z.inject.pop_burst(RING_BURST, |meta, bytes| {
                let result = send_on_link(
                    tx,
                    sender,
                    links,
                    0,
                    counters,
                    meta,
                    |s, buf, link, path, max| s.write_control(buf, link, path, bytes, max),
                );
                if let Err(reason) = result {
                    counters.add_drop(reason, 1);
                }
            });
            z.inject_woken = false;
        }
        // Real-time messages whose release time has come.
        z.session.poll_realtime(now, &self.counters);
        if z.session.wants_flush() {
            z.session.flush();
        }
        // Link monitors: timers and hellos.
        z.monitors
            .poll(now, driver.tx(), &mut self.sender, &self.counters);
        if z.monitors.is_dirty() || now >= z.stats_due {
            z.monitors.write_stats(&z.stats, self.sender.auth());
            z.stats_due = now.saturating_add(STATS_INTERVAL);
        }
        if z.punt.publish() == Notify::NeedsWakeup {
            let _ = z.punt_wake.notify();
        }
    }
}
