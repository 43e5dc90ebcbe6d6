//! `--one-thread`: the generator and the sink (and both fake ends' hellos) in one loop on one
//! thread, so that they never preempt each other and the sink's receive time is when the data
//! arrived, not when the scheduler next ran the sink thread.
//!
//! Each turn of the loop:
//! 1. sends what the pacing says is due ([`Pacer`]): if at least `min_packets` full link
//!    packets' worth of messages are due (fewer only for the last ones), up to one GSO send of
//!    them, stamped just before the send;
//! 2. drains the sink's socket without blocking (`UDP_GRO` receives, at most [`DRAIN_MAX`] a
//!    turn) and records every data record with `weft-recv`'s statistics, answering node 2's
//!    hellos found among them; a record's latency ends on the kernel's receive timestamp of
//!    its datagram ([`super::rx_stamp`]), so time the packet then waited in the socket for
//!    the loop (a send in progress, a preemption) is not counted; the latency to the read
//!    is kept beside it (`latency_read_us`);
//! 3. every millisecond, reads the source end's socket (node 2's hellos) and sends both ends'
//!    due hellos;
//! 4. when it neither sent nor received, by default (`--wait spin`) it turns again at once:
//!    the loop **busy-polls** (one non-blocking `recvmsg` and a clock read a turn, about a
//!    microsecond). Core 0 is meant to be the tool's alone, and a `poll()` or a sleep adds the
//!    kernel's wake-up time to every record that arrives while the loop waits: to the records
//!    through node 2, which arrive while it waits, but not to `--direct`'s, which are in the
//!    socket when the send returns, so the difference of the two would count the wake-up as
//!    node 2's. `--wait poll` instead waits in `ppoll()` on both sockets until the next send
//!    is due or the next hello service (timer slack set to 1 ns): for a shared core, where a
//!    spinning thread uses up its CFS share and is then preempted for whole time slices while
//!    a thread that sleeps is woken ahead of a CPU hog.
//!
//! `--direct` sends the same packets (link 0's headers, from the generator's address) straight
//! to the sink's socket instead of to node 2: same pacing, same loop, so the difference of the
//! two latency distributions at one rate is what node 2 (one data-plane hop plus one more
//! loopback crossing) adds. The sink records only data packets whose link header names the
//! expected sender: node 2 (`via`), or in `--direct` the generator (`from`); others are
//! counted (`loop.wrong_sender`). Node 2 keeps running and both links keep their hellos in
//! both modes.
//!
//! If the loop cannot keep up, it falls behind its pacing and sends bigger batches (whatever
//! is due, up to one GSO send): `loop.pacing_lag_us` (how late each send's first message went,
//! against when the pacing made it due) and `loop.behind_at_end` (messages due but never sent)
//! say by how much.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use weft_client::probe::monotonic_ns;
use weft_client::report::{Percentiles, RecvStats};
use weft_shared::ids::NodeId;
use weft_shared::wire::{PriorityClass, peek_class};

use super::cpu::thread_cpu_seconds;
use super::fake_node::{FakeEnd, now};
use super::generator::{GenPlan, GenReport, build_batch, send_packets};
use super::packet::{DataCounts, DataStream, read_data_packet_from};
use super::rx_stamp::{CmsgBuf, RxClock, recv_stamped};
use super::sink::{SinkPlan, SinkReport, Timeline, socket_drops};
use crate::udp_baseline::sockopt::{self, MAX_BATCH, MAX_UDP_PAYLOAD};

/// Receives from the sink's socket per turn, at most (so sending is never starved).
pub const DRAIN_MAX: usize = 64;

/// Hellos are read and due ones sent this often.
const SERVICE_EVERY: Duration = Duration::from_millis(1);

/// The pacing arithmetic: message `k` (0-based) of a run at `rate` messages/s is due
/// `(k + 1) / rate` seconds after the start; flat out (`rate` 0) all are due at once.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    rate: f64,
    count: u64,
}

impl Pacer {
    /// At most `count` messages at `rate` messages/s (0 or less: flat out).
    pub fn new(rate: f64, count: u64) -> Self {
        Pacer {
            rate: if rate.is_finite() && rate > 0.0 {
                rate
            } else {
                0.0
            },
            count,
        }
    }

    /// Messages due `elapsed_ns` after the start.
    pub fn due_by(&self, elapsed_ns: u64) -> u64 {
        if self.rate == 0.0 {
            return self.count;
        }
        // An estimate, then corrected against `due_at_ns` so that the two agree exactly
        // (message `k` is due from `due_at_ns(k)` on, not one rounding step before or after).
        let mut due = (elapsed_ns as f64 * self.rate / 1e9) as u64;
        while due < self.count && self.due_at_ns(due) <= elapsed_ns {
            due += 1;
        }
        while due > 0 && self.due_at_ns(due - 1) > elapsed_ns {
            due -= 1;
        }
        due.min(self.count)
    }

    /// When message `k` is due, in ns after the start (0 flat out).
    pub fn due_at_ns(&self, k: u64) -> u64 {
        if self.rate == 0.0 {
            return 0;
        }
        ((k + 1) as f64 * 1e9 / self.rate).ceil() as u64
    }

    /// How many messages to send `elapsed_ns` after the start with `written` sent so far: what
    /// is due, at most `max`, and nothing until at least `min` are due (or all that are left
    /// of `count`, if fewer).
    pub fn to_send(&self, elapsed_ns: u64, written: u64, max: u64, min: u64) -> u64 {
        let left = self.count.saturating_sub(written);
        let due = self.due_by(elapsed_ns).saturating_sub(written);
        if due == 0 || due < min.max(1).min(left) {
            0
        } else {
            due.min(max)
        }
    }

    /// How many messages from `written` on are more than `max_lag_ns` overdue at
    /// `elapsed_ns` (message `k` is overdue by `elapsed_ns - due_at_ns(k)`): those a loop that
    /// fell behind skips. 0 flat out.
    pub fn overdue(&self, elapsed_ns: u64, written: u64, max_lag_ns: u64) -> u64 {
        if self.rate <= 0.0 || elapsed_ns <= max_lag_ns {
            return 0;
        }
        self.due_by(elapsed_ns - max_lag_ns).saturating_sub(written)
    }

    /// How late a send of message `k` onwards is `elapsed_ns` after the start, in ns.
    pub fn lag_ns(&self, elapsed_ns: u64, k: u64) -> u64 {
        elapsed_ns.saturating_sub(self.due_at_ns(k))
    }
}

/// How the loop waits when it has nothing to do (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Wait {
    /// Busy-poll: turn again at once.
    #[default]
    Spin,
    /// `ppoll()` on both sockets until the next send or hello service is due.
    Poll,
}

impl Wait {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Spin => "busy-poll",
            Wait::Poll => "ppoll",
        }
    }
}

/// Sets the calling thread's timer slack to 1 ns, so a short `ppoll` timeout is kept to.
#[allow(
    unsafe_code,
    reason = "prctl has no safe wrapper in std or in the nix features this crate enables"
)]
fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no memory of ours; a
    // failure only leaves the default slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Waits until one of `socks` is readable or `timeout_ns` passed (a signal ends it early too).
#[allow(
    unsafe_code,
    reason = "ppoll has no safe wrapper with a nanosecond timeout in std or the nix features this crate enables"
)]
fn wait_readable(socks: [&std::net::UdpSocket; 2], timeout_ns: u64) {
    use std::os::fd::AsRawFd;
    let mut fds = socks.map(|s| libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: fds is a live array of two pollfds and ts a live timespec for the duration of
    // the call; no signal mask is passed. The result only says whether to look, and the loop
    // reads both sockets anyway, so it is ignored.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        );
    }
}

/// How the loop runs (from the command line).
#[derive(Clone, Copy, Debug)]
pub struct LoopPlan {
    /// What and how fast to send.
    pub send: GenPlan,
    /// When to stop receiving, and the timeline.
    pub sink: SinkPlan,
    /// Send straight to the sink's socket instead of to the node under test.
    pub direct: bool,
    /// Hold a send until this many full link packets are due (at least 1).
    pub min_packets: usize,
    /// The node the sink expects data from: the node under test, or in `direct` the source.
    pub expect_sender: NodeId,
    /// How the loop waits.
    pub wait: Wait,
    /// When the loop falls more than this many µs behind its pacing (it was preempted), the
    /// messages due before that are skipped instead of sent in one catch-up burst, which would
    /// queue at the node under test and show as its latency (0: always catch up).
    pub max_lag_us: u64,
}

/// What only the one-thread loop measures.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopReport {
    /// How the loop waits: `"busy-poll"` or `"ppoll"` (see the module doc).
    pub wait: &'static str,
    /// Whether the generator sent straight to the sink.
    pub direct: bool,
    /// Messages a send waits for (`min_packets` full packets).
    pub min_send_msgs: u64,
    /// Turns of the loop while sending.
    pub turns: u64,
    /// Of those, turns that neither sent nor received.
    pub idle_turns: u64,
    /// How late each send's first message went against its pacing time, in µs (the hold for
    /// `min_packets` included: `(min_send_msgs - 1) / rate`).
    pub pacing_lag_us: Percentiles,
    /// Messages the pacing had made due by the end that were never sent.
    pub behind_at_end: u64,
    /// Messages skipped because the loop fell more than `max_lag_us` behind.
    pub skipped: u64,
    /// How many times that happened.
    pub skips: u64,
    /// Messages per send (mean).
    pub msgs_per_send: f64,
    /// Link packets per receive (mean; GRO).
    pub packets_per_receive: f64,
    /// Data packets from a node other than the expected sender (not recorded).
    pub wrong_sender: u64,
}

/// The sink's side of the loop.
struct SinkSide {
    r: SinkReport,
    interval: Histogram<u64>,
    buf: Vec<u8>,
    first: Option<Instant>,
    last: Option<Instant>,
    wrong_sender: u64,
    expect: NodeId,
    clock: RxClock,
    ctrl: CmsgBuf,
}

impl SinkSide {
    /// Receives what is in the sink's socket (at most [`DRAIN_MAX`] buffers); returns how many.
    fn drain(&mut self, end: &mut FakeEnd) -> usize {
        let mut got = 0;
        while got < DRAIN_MAX {
            let Ok(rcv) = recv_stamped(end.socket(), &mut self.buf, &mut self.ctrl) else {
                break;
            };
            let read_ns = monotonic_ns();
            let at = Instant::now();
            got += 1;
            self.r.receives += 1;
            // The latency ends on the kernel's receive stamp (one per GRO buffer), not on
            // this read: see `rx_stamp`.
            let rx_ns = self.clock.arrival_ns(rcv.rx_realtime_ns, read_ns);
            let mut data_seen = false;
            let Some(received) = self.buf.get(..rcv.len) else {
                break;
            };
            for seg in received.chunks(rcv.segment.max(1)) {
                match peek_class(seg) {
                    Ok(PriorityClass::Data) => {
                        let res = read_data_packet_from(
                            seg,
                            Some(self.expect),
                            rx_ns,
                            &mut self.r.stats,
                            &mut self.r.data,
                            &mut self.interval,
                            Some((read_ns, &mut self.clock.read_latency)),
                        );
                        match res {
                            Ok(true) => {
                                data_seen = true;
                                self.r.packets += 1;
                                self.r.packet_bytes += seg.len() as u64;
                            }
                            Ok(false) => self.wrong_sender += 1,
                            Err(e) => {
                                self.r.bad_packets += 1;
                                self.r.first_error.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                    Ok(_) => end.handle_control(now(), seg),
                    Err(e) => {
                        self.r.bad_packets += 1;
                        self.r.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            if data_seen {
                self.first.get_or_insert(at);
                self.last = Some(at);
            }
        }
        got
    }
}

/// Reads the source end's socket (hellos from the node under test) and sends both ends' due
/// hellos.
fn service(gen_end: &mut FakeEnd, sink_end: &mut FakeEnd, buf: &mut [u8]) {
    for _ in 0..MAX_BATCH {
        match gen_end.socket().recv_from(buf) {
            Ok((n, _)) => {
                if let Some(d) = buf.get(..n) {
                    gen_end.handle_control(now(), d);
                }
            }
            Err(_) => break,
        }
    }
    gen_end.poll(now());
    sink_end.poll(now());
}

/// Runs the loop (see the module doc): brings both links up, sends for `plan.send.seconds`,
/// then receives until the data stopped for `plan.sink.idle`. Returns the generator's and the
/// sink's reports as the two threads would, plus the loop's own.
pub fn run(
    mut gen_end: FakeEnd,
    mut sink_end: FakeEnd,
    mut stream: DataStream,
    plan: LoopPlan,
) -> anyhow::Result<(GenReport, SinkReport, LoopReport)> {
    gen_end.socket().set_nonblocking(true)?;
    sockopt::set_buffers(gen_end.socket(), 4 << 20)?;
    sink_end.socket().set_nonblocking(true)?;
    sockopt::set_buffers(sink_end.socket(), 8 << 20)?;
    sockopt::enable_gro(sink_end.socket())?;
    let clock = RxClock::on(sink_end.socket())?;
    let to: SocketAddr = if plan.direct {
        sink_end.socket().local_addr()?
    } else {
        gen_end.remote()
    };
    let mut rx = vec![0u8; 2048];
    let mut sink = SinkSide {
        r: SinkReport::empty(),
        interval: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)?,
        buf: vec![0u8; MAX_UDP_PAYLOAD],
        first: None,
        last: None,
        wrong_sender: 0,
        expect: plan.expect_sender,
        clock,
        ctrl: CmsgBuf::default(),
    };

    // Both links up, then three hundred ms more so the node under test has seen the echoes.
    let wait = Instant::now();
    while !(gen_end.is_up() && sink_end.is_up()) {
        if wait.elapsed() > Duration::from_secs(5) {
            bail!(
                "links not up after 5 s (source end up: {}, sink end up: {}); is the node running with this config? {:?} {:?}",
                gen_end.is_up(),
                sink_end.is_up(),
                gen_end.counts(),
                sink_end.counts()
            );
        }
        sink.drain(&mut sink_end);
        service(&mut gen_end, &mut sink_end, &mut rx);
        std::thread::sleep(Duration::from_millis(1));
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(300) {
        sink.drain(&mut sink_end);
        service(&mut gen_end, &mut sink_end, &mut rx);
        std::thread::sleep(Duration::from_millis(1));
    }
    // Nothing from before the start counts (there should be no data at all).
    sink.r.stats = RecvStats::new();
    sink.r.data = DataCounts::default();
    (sink.r.packets, sink.r.packet_bytes, sink.r.receives) = (0, 0, 0);
    (sink.first, sink.last) = (None, None);
    sink.clock.reset();

    let gen_plan = plan.send;
    let pacer = Pacer::new(gen_plan.rate, gen_plan.count);
    let per_send = gen_plan.packets_per_send();
    let max_msgs = (per_send * gen_plan.pack) as u64;
    let min_msgs = (plan.min_packets.clamp(1, per_send) * gen_plan.pack) as u64;
    let mut slots = vec![[0u8; 2048]; per_send];
    let mut lens = vec![0usize; per_send];
    let mut g = GenReport::default();
    let mut lr = LoopReport {
        wait: plan.wait.name(),
        direct: plan.direct,
        min_send_msgs: min_msgs,
        ..LoopReport::default()
    };
    let mut lag = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)?;
    let mut tl = plan.sink.interval.map(Timeline::new).transpose()?;
    let limit_ns = (gen_plan.seconds.max(0.0) * 1e9) as u64;

    if plan.wait == Wait::Poll {
        tight_timer_slack();
    }
    let cpu0 = thread_cpu_seconds();
    let begin = Instant::now();
    let start = Instant::now();
    let start_ns = monotonic_ns();
    let mut next_service = start;
    let mut written = 0u64;
    let mut done_at: Option<Instant> = None;
    sink.interval.reset();
    loop {
        let mut busy = false;
        if done_at.is_none() {
            let elapsed = monotonic_ns().saturating_sub(start_ns);
            if elapsed >= limit_ns || written >= gen_plan.count {
                g.seconds = start.elapsed().as_secs_f64();
                lr.behind_at_end = pacer.due_by(elapsed.min(limit_ns)).saturating_sub(written);
                done_at = Some(Instant::now());
            } else {
                lr.turns += 1;
                if plan.max_lag_us > 0 {
                    let skip = pacer.overdue(elapsed, written, plan.max_lag_us * 1000);
                    if skip > 0 {
                        written += skip;
                        lr.skipped += skip;
                        lr.skips += 1;
                    }
                }
                let n = pacer.to_send(elapsed, written, max_msgs, min_msgs);
                if n > 0 {
                    busy = true;
                    lag.saturating_record(pacer.lag_ns(elapsed, written).max(1));
                    let sent_ns = monotonic_ns();
                    let (packets, msgs) = build_batch(
                        &mut gen_end,
                        &mut stream,
                        &gen_plan,
                        &mut slots,
                        &mut lens,
                        n,
                        sent_ns,
                    )?;
                    written += msgs;
                    let refs: Vec<&[u8]> = (0..packets).map(|i| &slots[i][..lens[i]]).collect();
                    loop {
                        g.syscalls += 1;
                        match send_packets(gen_end.socket(), to, &refs, lens[0]) {
                            Ok(_) => {
                                g.sent += msgs;
                                g.packets += packets as u64;
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                // The send buffer is full: make progress on the sink side and
                                // try the same batch again.
                                g.retries += 1;
                                sink.drain(&mut sink_end);
                                continue;
                            }
                            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                                return Err(e.into());
                            }
                            Err(_) => g.send_errors += msgs,
                        }
                        break;
                    }
                }
            }
        }

        busy |= sink.drain(&mut sink_end) > 0;
        let at = Instant::now();
        if at >= next_service {
            service(&mut gen_end, &mut sink_end, &mut rx);
            next_service = at + SERVICE_EVERY;
        }
        if let Some(tl) = tl.as_mut() {
            tl.step(
                at,
                start_ns,
                g.sent,
                sink.r.data.records,
                &mut sink.interval,
                &sink_end,
            );
        }
        if let Some(d) = done_at {
            let quiet = sink.last.map_or(d, |l| l.max(d));
            if at.duration_since(quiet) > plan.sink.idle {
                break;
            }
        } else if !busy {
            lr.idle_turns += 1;
        }
        if begin.elapsed() > plan.sink.limit {
            break;
        }
        if !busy {
            match plan.wait {
                Wait::Spin => std::hint::spin_loop(),
                Wait::Poll => {
                    // Until the next send is due (while sending) or the next hello service.
                    let now_ns = monotonic_ns();
                    let mut until = now_ns + SERVICE_EVERY.as_nanos() as u64;
                    if done_at.is_none() {
                        let left = gen_plan.count.saturating_sub(written);
                        let k = written + min_msgs.min(left).max(1) - 1;
                        until = until.min(start_ns + pacer.due_at_ns(k).min(limit_ns));
                    }
                    let service_ns = next_service
                        .saturating_duration_since(Instant::now())
                        .as_nanos() as u64;
                    until = until.min(now_ns + service_ns);
                    if until > now_ns {
                        wait_readable([gen_end.socket(), sink_end.socket()], until - now_ns);
                    }
                }
            }
        }
    }
    let cpu = thread_cpu_seconds() - cpu0;
    g.cpu_s = cpu;
    g.end = gen_end.counts();
    lr.pacing_lag_us = Percentiles::from_ns(&lag);
    lr.msgs_per_send = g.sent as f64 / g.syscalls.max(1) as f64;
    lr.packets_per_receive = sink.r.packets as f64 / sink.r.receives.max(1) as f64;
    lr.wrong_sender = sink.wrong_sender;
    let mut s = sink.r;
    s.seconds = match (sink.first, sink.last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    s.cpu_s = cpu;
    s.socket_drops = socket_drops(sink_end.socket());
    s.end = sink_end.counts();
    s.rx = sink.clock.report();
    if let Some(tl) = tl {
        s.timeline = tl.into_rows();
    }
    Ok((g, s, lr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_messages_fall_due_one_per_interval() {
        // 1 M msgs/s: one message a microsecond.
        let p = Pacer::new(1e6, 100);
        assert_eq!(p.due_by(0), 0);
        assert_eq!(p.due_by(999), 0);
        assert_eq!(p.due_by(1_000), 1);
        assert_eq!(p.due_by(10_500), 10);
        // Never more than the count.
        assert_eq!(p.due_by(1_000_000_000), 100);
        assert_eq!(p.due_at_ns(0), 1_000);
        assert_eq!(p.due_at_ns(9), 10_000);
        // A message is due exactly at its time, not one rounding step later, at odd rates too.
        for rate in [1.0, 3.0, 7.0e5, 2_963_123.0, 4_530_001.5, 9.06e6] {
            let p = Pacer::new(rate, u64::MAX);
            for k in (0..2_000_000u64).step_by(9_973) {
                let t = p.due_at_ns(k);
                assert!(p.due_by(t) > k, "rate {rate} k {k} t {t}");
                assert!(
                    p.due_by(t.saturating_sub(1)) <= k,
                    "rate {rate} k {k} t {t}"
                );
            }
        }
    }

    #[test]
    fn flat_out_everything_is_due_at_once() {
        let p = Pacer::new(0.0, 1000);
        assert_eq!(
            (p.due_by(0), p.due_at_ns(999), p.lag_ns(5, 999)),
            (1000, 0, 5)
        );
        assert_eq!(p.to_send(0, 0, 576, 9), 576);
        assert_eq!(p.to_send(0, 990, 576, 9), 10);
        assert_eq!(p.to_send(0, 1000, 576, 9), 0);
        // A nonsense rate is flat out, not a panic or a stall.
        assert_eq!(Pacer::new(f64::NAN, 7).due_by(0), 7);
        assert_eq!(Pacer::new(-3.0, 7).due_by(0), 7);
    }

    #[test]
    fn a_send_waits_for_its_minimum_and_takes_at_most_one_batch() {
        // 1 M msgs/s, 9 records a packet, 64 packets a send at most.
        let p = Pacer::new(1e6, 1000);
        // 8 due, 9 needed: wait.
        assert_eq!(p.to_send(8_000, 0, 576, 9), 0);
        assert_eq!(p.to_send(9_000, 0, 576, 9), 9);
        // Behind: what is due, up to one batch.
        assert_eq!(p.to_send(100_000, 0, 576, 9), 100);
        assert_eq!(p.to_send(700_000, 0, 576, 9), 576);
        // The last messages of the count go even if fewer than the minimum.
        assert_eq!(p.to_send(1_000_000, 995, 576, 9), 5);
        assert_eq!(p.to_send(999_000, 995, 576, 9), 0);
        // A minimum of 0 is 1.
        assert_eq!(p.to_send(1_000, 0, 576, 0), 1);
        // Lag: the first message of a send against its due time.
        assert_eq!(p.lag_ns(9_000, 0), 8_000);
        assert_eq!(p.lag_ns(9_000, 8), 0);
        assert_eq!(p.lag_ns(9_000, 20), 0);
    }

    #[test]
    fn only_messages_overdue_past_the_limit_are_skipped() {
        // 1 M msgs/s: message k is due at (k + 1) us.
        let p = Pacer::new(1e6, 1_000_000);
        // 50 us in, nothing sent: messages due by 50 - 20 = 30 us are more than 20 us late.
        assert_eq!(p.overdue(50_000, 0, 20_000), 30);
        // Those already sent are not counted again.
        assert_eq!(p.overdue(50_000, 30, 20_000), 0);
        assert_eq!(p.overdue(50_000, 40, 20_000), 0);
        // On time or within the limit: nothing.
        assert_eq!(p.overdue(10_000, 0, 20_000), 0);
        // Flat out never skips.
        assert_eq!(Pacer::new(0.0, 10).overdue(1_000_000, 0, 1), 0);
        assert_eq!(Pacer::new(f64::NAN, 10).overdue(1_000_000, 0, 1), 0);
    }
}
