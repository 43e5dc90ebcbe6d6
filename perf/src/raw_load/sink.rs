//! The sink thread: plays the destination node on its link from the node under test. It
//! receives with `UDP_GRO` on that node's configured address, answers the node's hellos with
//! the fake end's monitor (its own hellos go out between receives), and records every data
//! record of every forwarded link packet with `weft-recv`'s statistics. With a timeline
//! interval it also keeps, per interval, the offered and delivered rates and the latency
//! percentiles of the records that arrived in it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use weft_client::probe::monotonic_ns;
use weft_client::report::{Percentiles, RecvStats};
use weft_shared::wire::{PriorityClass, peek_class};

use super::Shared;
use super::cpu::thread_cpu_seconds;
use super::fake_node::{EndCounts, FakeEnd, now};
use super::packet::{DataCounts, read_data_packet_from};
use super::rx_stamp::{CmsgBuf, RxClock, RxStampReport, recv_stamped};
use crate::udp_baseline::sockopt::{self, MAX_UDP_PAYLOAD};

/// How long the sink runs.
#[derive(Clone, Copy, Debug)]
pub struct SinkPlan {
    /// Stop this long after the last data once the generator is done.
    pub idle: Duration,
    /// Stop after this long in any case.
    pub limit: Duration,
    /// Timeline interval, if any.
    pub interval: Option<Duration>,
}

/// What the sink saw.
#[derive(Debug)]
pub struct SinkReport {
    /// `weft-recv`'s statistics over every data record.
    pub stats: RecvStats,
    /// Seconds from the first data record to the last.
    pub seconds: f64,
    /// Data records and their payload bytes.
    pub data: DataCounts,
    /// Data link packets (GRO segments) and their bytes, headers included.
    pub packets: u64,
    /// Bytes of those packets.
    pub packet_bytes: u64,
    /// Receive calls that returned a buffer (GRO super-packets count once).
    pub receives: u64,
    /// Datagrams that failed to parse (the first reason is kept).
    pub bad_packets: u64,
    /// The first parse failure seen.
    pub first_error: Option<String>,
    /// Datagrams the kernel dropped at the sink's socket (receive buffer full), from
    /// `/proc/self/net/udp`; a GRO/GSO super-packet dropped whole counts once.
    pub socket_drops: Option<u64>,
    /// CPU time of the sink thread.
    pub cpu_s: f64,
    /// The fake destination end's counts.
    pub end: EndCounts,
    /// One entry per timeline interval.
    pub timeline: Vec<Value>,
    /// Which clock the latencies end on, and the loop-read latency beside them.
    pub rx: RxStampReport,
}

impl SinkReport {
    /// A report of nothing received yet.
    pub fn empty() -> Self {
        SinkReport {
            stats: RecvStats::new(),
            seconds: 0.0,
            data: DataCounts::default(),
            packets: 0,
            packet_bytes: 0,
            receives: 0,
            bad_packets: 0,
            first_error: None,
            socket_drops: None,
            cpu_s: 0.0,
            end: EndCounts::default(),
            timeline: Vec::new(),
            rx: RxStampReport::default(),
        }
    }
}

/// The timeline's per-interval state.
pub(super) struct Timeline {
    every: Duration,
    next: Option<Instant>,
    start_ns: u64,
    last_sent: u64,
    last_received: u64,
    latency: Histogram<u64>,
    rows: Vec<Value>,
}

impl Timeline {
    /// A timeline of one row per `every`, starting with the generator.
    pub(super) fn new(every: Duration) -> anyhow::Result<Self> {
        Ok(Timeline {
            every,
            next: None,
            start_ns: 0,
            last_sent: 0,
            last_received: 0,
            latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)?,
            rows: Vec::new(),
        })
    }

    /// The rows so far.
    pub(super) fn into_rows(self) -> Vec<Value> {
        self.rows
    }

    /// Called once per loop turn at `at`: starts the first interval once the generator has
    /// (`start_ns`, 0 before), and closes an interval that is over with the latencies in
    /// `interval` (then emptied), `sent` messages offered and `received` recorded so far.
    pub(super) fn step(
        &mut self,
        at: Instant,
        start_ns: u64,
        sent: u64,
        received: u64,
        interval: &mut Histogram<u64>,
        end: &FakeEnd,
    ) {
        if start_ns != 0 && self.next.is_none() {
            self.start_ns = start_ns;
            self.next = Some(at + self.every);
            interval.reset();
        }
        if self.next.is_some_and(|t| at >= t) {
            std::mem::swap(&mut self.latency, interval);
            self.row(at, sent, received, end);
            interval.reset();
        }
    }

    fn row(&mut self, at: Instant, sent: u64, received: u64, end: &FakeEnd) {
        let dt = self.every.as_secs_f64();
        let t = monotonic_ns().saturating_sub(self.start_ns) as f64 / 1e9;
        self.rows.push(json!({
            "t_s": (t * 1000.0).round() / 1000.0,
            "offered": ((sent - self.last_sent) as f64 / dt).round(),
            "delivered": ((received - self.last_received) as f64 / dt).round(),
            "latency_us": Percentiles::from_ns(&self.latency),
            "sink_link_srtt_us": end.srtt_us(),
            "sink_link_downs": end.counts().link_downs,
        }));
        self.latency.reset();
        self.last_sent = sent;
        self.last_received = received;
        self.next = Some(at + self.every);
    }
}

/// Runs the sink (see the module doc) until the generator is done and the data stopped.
pub fn run(mut end: FakeEnd, plan: SinkPlan, shared: &Shared) -> anyhow::Result<SinkReport> {
    let result = receive_all(&mut end, plan, shared);
    shared.sink_done.store(true, Ordering::Release);
    let mut r = result?;
    r.end = end.counts();
    Ok(r)
}

fn receive_all(end: &mut FakeEnd, plan: SinkPlan, shared: &Shared) -> anyhow::Result<SinkReport> {
    let sock = end.socket();
    sock.set_read_timeout(Some(Duration::from_millis(2)))?;
    sockopt::set_buffers(sock, 8 << 20)?;
    sockopt::enable_gro(sock)?;
    let mut clock = RxClock::on(sock)?;
    let mut ctrl = CmsgBuf::default();
    let hist = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3);
    let mut r = SinkReport::empty();
    let mut tl = plan.interval.map(Timeline::new).transpose()?;
    let mut interval = hist()?;
    let mut buf = vec![0u8; MAX_UDP_PAYLOAD];
    let cpu0 = thread_cpu_seconds();
    let begin = Instant::now();
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    let mut done_at: Option<Instant> = None;
    loop {
        let got = recv_stamped(end.socket(), &mut buf, &mut ctrl);
        let read_ns = monotonic_ns();
        let at = Instant::now();
        if let Ok(got) = got {
            r.receives += 1;
            let rx_ns = clock.arrival_ns(got.rx_realtime_ns, read_ns);
            let mut data_seen = false;
            let received = buf.get(..got.len).unwrap_or(&[]);
            for seg in received.chunks(got.segment.max(1)) {
                match peek_class(seg) {
                    Ok(PriorityClass::Data) => {
                        data_seen = true;
                        r.packets += 1;
                        r.packet_bytes += seg.len() as u64;
                        let res = read_data_packet_from(
                            seg,
                            None,
                            rx_ns,
                            &mut r.stats,
                            &mut r.data,
                            &mut interval,
                            Some((read_ns, &mut clock.read_latency)),
                        );
                        if let Err(e) = res {
                            r.bad_packets += 1;
                            r.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                    Ok(_) => end.handle_control(now(), seg),
                    Err(e) => {
                        r.bad_packets += 1;
                        r.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            if data_seen {
                first.get_or_insert(at);
                last = Some(at);
            }
        }
        end.poll(now());
        shared.sink_up.store(end.is_up(), Ordering::Release);

        if let Some(tl) = tl.as_mut() {
            let start_ns = shared.gen_start_ns.load(Ordering::Acquire);
            let sent = shared.sent.load(Ordering::Acquire);
            tl.step(at, start_ns, sent, r.data.records, &mut interval, end);
        }

        if shared.gen_done.load(Ordering::Acquire) {
            let d = *done_at.get_or_insert(at);
            let quiet = last.map_or(d, |l| l.max(d));
            if at.duration_since(quiet) > plan.idle {
                break;
            }
        }
        if begin.elapsed() > plan.limit {
            break;
        }
    }
    if let Some(tl) = tl {
        r.timeline = tl.into_rows();
    }
    r.seconds = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    r.cpu_s = thread_cpu_seconds() - cpu0;
    r.socket_drops = socket_drops(end.socket());
    r.rx = clock.report();
    Ok(r)
}

/// The datagrams the kernel dropped at `sock` so far (see [`SinkReport::socket_drops`]).
pub(super) fn socket_drops(sock: &std::net::UdpSocket) -> Option<u64> {
    sock.local_addr()
        .ok()
        .and_then(|a| {
            std::fs::read_to_string("/proc/self/net/udp")
                .ok()
                .map(|t| (a, t))
        })
        .and_then(|(a, t)| udp_drops(&t, a))
}

/// The `drops` column of the IPv4 socket bound to `addr` in a `/proc/net/udp` table.
fn udp_drops(table: &str, addr: std::net::SocketAddr) -> Option<u64> {
    let std::net::SocketAddr::V4(v4) = addr else {
        return None;
    };
    // The kernel prints the address as the u32 in host order, in hex, then the port.
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(v4.ip().octets()),
        v4.port()
    );
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(1) == Some(&want.as_str()))
            .then(|| cols.last().and_then(|d| d.parse().ok()))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_count_of_a_bound_socket_is_found_in_the_proc_table() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let table = std::fs::read_to_string("/proc/self/net/udp").unwrap();
        assert_eq!(udp_drops(&table, addr), Some(0));
        let line = format!(
            "  sl  local_address rem_address   st ...\n  7: {:08X}:{:04X} 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 42\n",
            u32::from_ne_bytes([127, 0, 77, 3]),
            17103
        );
        let a = "127.0.77.3:17103".parse().unwrap();
        assert_eq!(udp_drops(&line, a), Some(42));
        assert_eq!(udp_drops(&line, "127.0.77.4:1".parse().unwrap()), None);
    }
}
