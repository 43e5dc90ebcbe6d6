//! The generator thread: plays the source node on its link to the node under test, keeps that
//! link up (hellos every few milliseconds, between sends) and sends data link packets to the
//! node, each batch as one `UDP_SEGMENT` (GSO) send of equal-size packets, at a fixed rate of
//! messages or flat out.
//!
//! A batch the socket cannot take yet (`EAGAIN`: the send buffer is full) is retried whole
//! after a short pause, so every message given a sequence number is sent once; any other send
//! error skips the batch and counts its messages as `send_errors`.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use weft_client::probe::monotonic_ns;

use super::Shared;
use super::cpu::thread_cpu_seconds;
use super::fake_node::{EndCounts, FakeEnd, now};
use super::packet::DataStream;
use crate::udp_baseline::sockopt::{self, MAX_BATCH, MAX_UDP_PAYLOAD};

/// How the generator sends (from the command line).
#[derive(Clone, Copy, Debug)]
pub struct GenPlan {
    /// Messages to send at most.
    pub count: u64,
    /// Messages per second; 0 is flat out.
    pub rate: f64,
    /// Stop sending after this long.
    pub seconds: f64,
    /// Data records per link packet.
    pub pack: usize,
    /// Link packets per send (one GSO send).
    pub batch: usize,
    /// Largest link packet (the link's UDP payload limit).
    pub max_len: usize,
}

impl GenPlan {
    /// Packets per GSO send: `batch`, within 64 segments and one 65,507-byte send.
    pub fn packets_per_send(&self) -> usize {
        self.batch
            .min(MAX_BATCH)
            .min(MAX_UDP_PAYLOAD / self.max_len.max(1))
            .max(1)
    }
}

/// What the generator did.
#[derive(Clone, Copy, Debug, Default)]
pub struct GenReport {
    /// Messages sent (taken by the kernel).
    pub sent: u64,
    /// Messages in batches a send error skipped.
    pub send_errors: u64,
    /// Link packets sent.
    pub packets: u64,
    /// Send syscalls.
    pub syscalls: u64,
    /// Sends retried after `EAGAIN`.
    pub retries: u64,
    /// Seconds from the first send to the last.
    pub seconds: f64,
    /// CPU time of the generator thread while sending.
    pub cpu_s: f64,
    /// The fake source end's counts.
    pub end: EndCounts,
}

/// Hellos are received and due ones sent at least this often while sending.
const SERVICE_EVERY: Duration = Duration::from_millis(1);

/// Receives whatever the node sent to the fake source (hellos) and sends due hellos.
fn service(end: &mut FakeEnd, buf: &mut [u8]) {
    for _ in 0..MAX_BATCH {
        match end.socket().recv_from(buf) {
            Ok((n, _)) => {
                if let Some(d) = buf.get(..n) {
                    end.handle_control(now(), d);
                }
            }
            Err(_) => break,
        }
    }
    end.poll(now());
}

/// Runs the generator (see the module doc) until `plan` is done, then keeps the link up until
/// the sink is finished.
pub fn run(
    mut end: FakeEnd,
    mut stream: DataStream,
    plan: GenPlan,
    shared: &Shared,
) -> anyhow::Result<GenReport> {
    end.socket().set_nonblocking(true)?;
    sockopt::set_buffers(end.socket(), 4 << 20)?;
    let mut rx = vec![0u8; 2048];
    let result = send_all(&mut end, &mut stream, plan, shared, &mut rx);
    shared.gen_done.store(true, Ordering::Release);
    // Keep answering hellos while the sink drains, so the link never falls during a run.
    let linger = Instant::now();
    while !shared.sink_done.load(Ordering::Acquire) && linger.elapsed() < Duration::from_secs(30) {
        service(&mut end, &mut rx);
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut report = result?;
    report.end = end.counts();
    Ok(report)
}

fn send_all(
    end: &mut FakeEnd,
    stream: &mut DataStream,
    plan: GenPlan,
    shared: &Shared,
    rx: &mut [u8],
) -> anyhow::Result<GenReport> {
    // Both links up (this one and the sink's), then three more hello intervals so the node
    // under test has seen the echoes too.
    let wait = Instant::now();
    while !(end.is_up() && shared.sink_up.load(Ordering::Acquire)) {
        if wait.elapsed() > Duration::from_secs(5) {
            bail!(
                "links not up after 5 s (source end up: {}, sink end up: {}); is the node running with this config? {:?}",
                end.is_up(),
                shared.sink_up.load(Ordering::Acquire),
                end.counts()
            );
        }
        service(end, rx);
        std::thread::sleep(Duration::from_millis(1));
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(300) {
        service(end, rx);
        std::thread::sleep(Duration::from_millis(1));
    }

    let per_send = plan.packets_per_send();
    let mut slots = vec![[0u8; 2048]; per_send];
    let mut lens = vec![0usize; per_send];
    let mut r = GenReport::default();
    let cpu0 = thread_cpu_seconds();
    shared.gen_start_ns.store(monotonic_ns(), Ordering::Release);
    let start = Instant::now();
    let limit = Duration::from_secs_f64(plan.seconds.max(0.0));
    let mut next_service = start;
    let mut written = 0u64;
    while written < plan.count && start.elapsed() < limit {
        let t = Instant::now();
        if t >= next_service {
            service(end, rx);
            next_service = t + SERVICE_EVERY;
        }
        let mut due = (plan.count - written).min((per_send * plan.pack) as u64);
        if plan.rate > 0.0 {
            let target = (start.elapsed().as_secs_f64() * plan.rate) as u64;
            due = due.min(target.saturating_sub(written));
            if due == 0 {
                let next = start + Duration::from_secs_f64((written + 1) as f64 / plan.rate);
                let until = next.min(next_service);
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                continue;
            }
        }
        let sent_ns = monotonic_ns();
        let (packets, msgs) = build_batch(end, stream, &plan, &mut slots, &mut lens, due, sent_ns)?;
        written += msgs;
        let refs: Vec<&[u8]> = (0..packets).map(|i| &slots[i][..lens[i]]).collect();
        loop {
            r.syscalls += 1;
            let res = send_packets(end.socket(), end.remote(), &refs, lens[0]);
            match res {
                Ok(_) => {
                    r.sent += msgs;
                    r.packets += packets as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    r.retries += 1;
                    service(end, rx);
                    std::thread::sleep(Duration::from_micros(50));
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Err(e.into()),
                Err(_) => r.send_errors += msgs,
            }
            break;
        }
        shared.sent.store(r.sent, Ordering::Release);
    }
    r.seconds = start.elapsed().as_secs_f64();
    r.cpu_s = thread_cpu_seconds() - cpu0;
    Ok(r)
}

/// Writes up to `due` messages stamped `sent_ns` into `slots` (one link packet each, headers
/// from `end`): full packets of `plan.pack` first, a shorter last one if `due` runs out, at
/// most `slots.len()` packets. Returns the packets and messages written; their lengths are in
/// `lens`.
pub(super) fn build_batch(
    end: &mut FakeEnd,
    stream: &mut DataStream,
    plan: &GenPlan,
    slots: &mut [[u8; 2048]],
    lens: &mut [usize],
    due: u64,
    sent_ns: u64,
) -> anyhow::Result<(usize, u64)> {
    let per_send = slots.len().min(lens.len());
    let (mut packets, mut msgs) = (0usize, 0u64);
    while packets < per_send && msgs < due {
        let want = (due - msgs).min(plan.pack as u64) as usize;
        let header = end
            .data_header()
            .map_err(|e| anyhow::anyhow!("data header: {e}"))?;
        let (len, n) =
            stream.write_packet(&mut slots[packets], &header, plan.max_len, want, sent_ns)?;
        lens[packets] = len;
        packets += 1;
        msgs += n as u64;
    }
    Ok((packets, msgs))
}

/// Sends `packets` (all `segment` bytes but the last) to `to`: one plain send for one packet,
/// one GSO send for more.
pub(super) fn send_packets(
    sock: &std::net::UdpSocket,
    to: std::net::SocketAddr,
    packets: &[&[u8]],
    segment: usize,
) -> io::Result<usize> {
    match packets {
        [] => Ok(0),
        [one] => sock.send_to(one, to),
        _ => sockopt::send_gso(sock, to, packets, segment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_stays_within_64_segments_and_one_udp_send() {
        let plan = GenPlan {
            count: 1,
            rate: 0.0,
            seconds: 1.0,
            pack: 1,
            batch: 64,
            max_len: 1472,
        };
        assert_eq!(plan.packets_per_send(), 44);
        assert_eq!(
            GenPlan {
                max_len: 200,
                ..plan
            }
            .packets_per_send(),
            64
        );
        assert_eq!(GenPlan { batch: 0, ..plan }.packets_per_send(), 1);
    }
}
