//! Kernel receive timestamps for the sink: `SO_TIMESTAMPNS` on the sink's socket, read with
//! every `recvmsg` alongside the `UDP_GRO` segment size ([`recv_stamped`], [`parse_cmsgs`]),
//! and converted from the kernel's `CLOCK_REALTIME` to the `CLOCK_MONOTONIC` of the probe
//! headers' send stamps ([`ClockOffset`]).
//!
//! Why: the sink's latency was (when the loop read the packet) − (send stamp), so whatever
//! kept the loop from reading (a preemption, a batch being sent) was counted as the path's
//! latency; in the one-thread loop that wait hits the records through node 2 (delivered
//! while the loop is busy) but not `--direct`'s (in the socket when the send returns), which
//! biased the difference. With the kernel's stamp the latency ends when the packet was
//! queued on the receive path, whatever the loop did after.
//!
//! Where the kernel stamps: with timestamping enabled on any socket, an skb is stamped
//! (`ktime_get_real`) when it enters the receive path; on loopback that is `netif_rx` in the
//! sending thread's context (the per-CPU backlog enqueue, `netdev_tstamp_prequeue` = 1, the
//! default), just before the softirq hands it to the socket. A GRO/GSO super-packet is one
//! skb with one stamp, used for each of its segments. There is no socket option that stamps
//! received packets in `CLOCK_MONOTONIC`, hence the offset.

#![allow(
    unsafe_code,
    reason = "recvmsg with a control buffer has no safe wrapper in std, and nix's does not expose its cmsg parsing to test"
)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use hdrhistogram::Histogram;
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
use nix::time::{ClockId, clock_gettime};
use weft_client::report::Percentiles;

/// `SO_TIMESTAMPNS_NEW` (`SCM_TIMESTAMPNS_NEW`): the y2038-safe variant, a
/// `__kernel_timespec` of two `i64`s (x86-64 uses the old number, 35, with the same layout).
const SO_TIMESTAMPNS_NEW: libc::c_int = 64;

/// Which clock a run's latency ends on (the report's `rx_stamp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxStampSource {
    /// The kernel's receive timestamp of every data packet.
    Kernel,
    /// The kernel's where it came, the loop's read time for the rest (`rx_stamp_missing`).
    Mixed,
    /// The loop's read time: timestamping could not be enabled, or no packet had a stamp.
    Read,
}

impl RxStampSource {
    /// From whether stamps were enabled, receives with data and how many lacked a stamp.
    pub fn of(enabled: bool, receives: u64, missing: u64) -> Self {
        if !enabled || (receives > 0 && missing >= receives) {
            RxStampSource::Read
        } else if missing > 0 {
            RxStampSource::Mixed
        } else {
            RxStampSource::Kernel
        }
    }

    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            RxStampSource::Kernel => "kernel",
            RxStampSource::Mixed => "kernel+read",
            RxStampSource::Read => "read",
        }
    }
}

/// `CLOCK_REALTIME − CLOCK_MONOTONIC`, measured from back-to-back reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockOffset {
    /// Realtime minus monotonic, ns.
    pub real_minus_mono_ns: i64,
    /// The monotonic time between the two monotonic reads around the realtime read of the
    /// pair kept: the uncertainty of the offset (half of it, either way).
    pub gap_ns: u64,
}

impl ClockOffset {
    /// Of `(monotonic before, realtime, monotonic after)` samples (ns), the one with the
    /// smallest gap between its monotonic reads, the realtime read taken as halfway.
    /// `None` without a usable sample.
    pub fn best_of(samples: &[(u64, u64, u64)]) -> Option<Self> {
        samples
            .iter()
            .filter(|(a, _, b)| b >= a)
            .min_by_key(|(a, _, b)| b - a)
            .and_then(|&(a, real, b)| {
                let mid = a / 2 + b / 2 + (a % 2 + b % 2) / 2;
                let off = i128::from(real) - i128::from(mid);
                Some(ClockOffset {
                    real_minus_mono_ns: i64::try_from(off).ok()?,
                    gap_ns: b - a,
                })
            })
    }

    /// Measures it: the best of `tries` triples of clock reads (at least one).
    pub fn measure(tries: usize) -> Option<Self> {
        let read = |id| {
            clock_gettime(id)
                .ok()
                .and_then(|t| timespec_ns(t.tv_sec(), t.tv_nsec()))
        };
        let samples: Vec<(u64, u64, u64)> = (0..tries.max(1))
            .filter_map(|_| {
                let a = read(ClockId::CLOCK_MONOTONIC)?;
                let r = read(ClockId::CLOCK_REALTIME)?;
                let b = read(ClockId::CLOCK_MONOTONIC)?;
                Some((a, r, b))
            })
            .collect();
        Self::best_of(&samples)
    }

    /// A `CLOCK_REALTIME` time (ns) on the monotonic clock (0 if it would be before its zero).
    pub fn to_monotonic(&self, real_ns: u64) -> u64 {
        let m = i128::from(real_ns) - i128::from(self.real_minus_mono_ns);
        u64::try_from(m.max(0)).unwrap_or(u64::MAX)
    }
}

/// The sink's receive clock: timestamping on its socket, the clock offset, the loop-read
/// latencies beside the kernel-stamped ones, and the receives that came without a stamp.
#[derive(Debug)]
pub struct RxClock {
    enabled: bool,
    offset: Option<ClockOffset>,
    /// Receives counted (since the last [`RxClock::reset`]).
    pub receives: u64,
    /// Of those, how many came without a kernel timestamp (their read time was used).
    pub missing: u64,
    /// Probe latency to when the loop read each packet, ns (the old measure).
    pub read_latency: Histogram<u64>,
}

/// What [`RxClock`] reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RxStampReport {
    /// The clock `latency_us` ends on.
    pub source: RxStampSource,
    /// Receives without a kernel timestamp.
    pub missing: u64,
    /// Probe latency to the loop's read, µs.
    pub latency_read_us: Percentiles,
    /// The uncertainty of the clock offset, ns.
    pub offset_gap_ns: Option<u64>,
    /// How much `CLOCK_REALTIME − CLOCK_MONOTONIC` moved from the start to the report (a
    /// clock step or slew in between shifts every converted stamp by up to this), ns.
    pub offset_change_ns: Option<i64>,
}

impl RxClock {
    /// Enables kernel timestamps on `sock` and measures the clock offset; if either fails
    /// the read time is used throughout.
    pub fn on(sock: &UdpSocket) -> anyhow::Result<Self> {
        let offset = ClockOffset::measure(OFFSET_TRIES);
        let enabled = offset.is_some() && enable(sock).is_ok();
        Ok(RxClock {
            enabled,
            offset,
            receives: 0,
            missing: 0,
            read_latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)?,
        })
    }

    /// The time (monotonic ns) a receive's latency ends on: its kernel stamp, or `read_ns`
    /// (when the loop read it) if it came without one (counted).
    pub fn arrival_ns(&mut self, rx_realtime_ns: Option<u64>, read_ns: u64) -> u64 {
        self.receives += 1;
        match (rx_realtime_ns, self.offset) {
            (Some(real), Some(o)) if self.enabled => o.to_monotonic(real),
            _ => {
                self.missing += 1;
                read_ns
            }
        }
    }

    /// Forgets what was counted (the run starts).
    pub fn reset(&mut self) {
        self.receives = 0;
        self.missing = 0;
        self.read_latency.reset();
    }

    /// The report, the offset measured again to see whether it moved.
    pub fn report(&self) -> RxStampReport {
        let end = ClockOffset::measure(OFFSET_TRIES);
        RxStampReport {
            source: RxStampSource::of(self.enabled, self.receives, self.missing),
            missing: self.missing,
            latency_read_us: Percentiles::from_ns(&self.read_latency),
            offset_gap_ns: self.offset.map(|o| o.gap_ns),
            offset_change_ns: self
                .offset
                .zip(end)
                .map(|(a, b)| b.real_minus_mono_ns.saturating_sub(a.real_minus_mono_ns)),
        }
    }
}

impl Default for RxStampReport {
    fn default() -> Self {
        RxStampReport {
            source: RxStampSource::Read,
            missing: 0,
            latency_read_us: Percentiles::default(),
            offset_gap_ns: None,
            offset_change_ns: None,
        }
    }
}

/// Triples of clock reads the offset is the best of.
const OFFSET_TRIES: usize = 32;

/// A `timespec` as ns, `None` if negative or out of range.
pub fn timespec_ns(sec: i64, nsec: i64) -> Option<u64> {
    let sec = u64::try_from(sec).ok()?;
    let nsec = u64::try_from(nsec).ok().filter(|&n| n < 1_000_000_000)?;
    sec.checked_mul(1_000_000_000)?.checked_add(nsec)
}

/// What the control messages of one receive said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cmsgs {
    /// The `UDP_GRO` segment size, if the kernel coalesced.
    pub gro_segment: Option<usize>,
    /// The kernel's software receive timestamp, `CLOCK_REALTIME` ns.
    pub rx_realtime_ns: Option<u64>,
}

/// `CMSG_ALIGN`: control messages and their data are aligned to `size_of::<usize>()` (the
/// kernel's `sizeof(long)`), counted from the start of the control buffer.
const fn cmsg_align(n: usize) -> usize {
    let a = size_of::<usize>();
    (n + a - 1) & !(a - 1)
}

/// A native-endian signed integer of `width` (4 or 8) bytes at `at` in `b`.
fn int_at(b: &[u8], at: usize, width: usize) -> Option<i64> {
    let s = b.get(at..at.checked_add(width)?)?;
    match width {
        4 => Some(i64::from(i32::from_ne_bytes(s.try_into().ok()?))),
        8 => Some(i64::from_ne_bytes(s.try_into().ok()?)),
        _ => None,
    }
}

/// A timespec of two `width`-byte fields at the start of `data`.
fn timespec_at(data: &[u8], width: usize) -> Option<u64> {
    timespec_ns(int_at(data, 0, width)?, int_at(data, width, width)?)
}

/// Walks a control buffer as the kernel fills it (`msg_controllen` bytes of `cmsghdr`s, each
/// followed by its data): the `UDP_GRO` segment size and the `SCM_TIMESTAMPNS` (old or new
/// layout) or `SCM_TIMESTAMPING` (its software stamp) receive time. Other messages are
/// skipped; a truncated or malformed one ends the walk with what was found before it.
pub fn parse_cmsgs(control: &[u8]) -> Cmsgs {
    let hdr = size_of::<libc::cmsghdr>();
    let len_width = size_of::<usize>();
    let long = size_of::<libc::c_long>();
    let mut out = Cmsgs::default();
    let mut off = 0usize;
    while let Some(h) = off.checked_add(hdr).and_then(|e| control.get(off..e)) {
        // cmsg_len (size_t), cmsg_level (int), cmsg_type (int).
        let Some(len) = h
            .get(..len_width)
            .and_then(|s| Some(usize::from_ne_bytes(s.try_into().ok()?)))
        else {
            break;
        };
        let (Some(level), Some(kind)) = (int_at(h, len_width, 4), int_at(h, len_width + 4, 4))
        else {
            break;
        };
        if len < hdr {
            break;
        }
        let Some(data) = off
            .checked_add(len)
            .and_then(|end| control.get(off + cmsg_align(hdr)..end))
        else {
            break;
        };
        let (level, kind) = (level as libc::c_int, kind as libc::c_int);
        if level == libc::SOL_UDP && kind == libc::UDP_GRO {
            if let Some(seg) = int_at(data, 0, 4).filter(|&s| s > 0) {
                out.gro_segment = usize::try_from(seg).ok();
            }
        } else if level == libc::SOL_SOCKET {
            let stamp = if kind == SO_TIMESTAMPNS_NEW {
                timespec_at(data, 8)
            } else if kind == libc::SCM_TIMESTAMPNS {
                timespec_at(data, long)
            } else if kind == libc::SCM_TIMESTAMPING {
                // Three timespecs: software, (deprecated), hardware; the first is ours.
                timespec_at(data, long)
            } else {
                None
            };
            if let Some(ns) = stamp.filter(|&ns| ns > 0) {
                out.rx_realtime_ns = Some(ns);
            }
        }
        match off.checked_add(cmsg_align(len)) {
            Some(next) if next > off => off = next,
            _ => break,
        }
    }
    out
}

/// Turns on `SO_TIMESTAMPNS`: each received datagram comes with the kernel's receive time.
pub fn enable(sock: &UdpSocket) -> io::Result<()> {
    setsockopt(sock, ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// A control buffer for one receive: room for a `UDP_GRO` int and a timestamp (or three),
/// aligned as `cmsghdr` needs.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub struct CmsgBuf([u8; 128]);

impl Default for CmsgBuf {
    fn default() -> Self {
        CmsgBuf([0; 128])
    }
}

/// One receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes in the buffer.
    pub len: usize,
    /// Segment size (`UDP_GRO`; the length when the kernel did not coalesce).
    pub segment: usize,
    /// The kernel's receive time, `CLOCK_REALTIME` ns, if it came.
    pub rx_realtime_ns: Option<u64>,
}

/// Receives one buffer into `buf` (blocking or not, as the socket is), with its `UDP_GRO`
/// segment size and kernel timestamp from the control messages.
pub fn recv_stamped(sock: &UdpSocket, buf: &mut [u8], ctrl: &mut CmsgBuf) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is "no name, no iovec, no control".
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl.0.as_mut_ptr().cast();
    msg.msg_controllen = ctrl.0.len() as _;
    // SAFETY: msg points at one live iovec over `buf` and at `ctrl`'s bytes, both borrowed
    // mutably for the whole call; the kernel writes at most their stated lengths.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = usize::try_from(n).unwrap_or(0);
    #[allow(
        clippy::unnecessary_cast,
        reason = "msg_controllen is not size_t on every libc"
    )]
    let used = (msg.msg_controllen as usize).min(ctrl.0.len());
    let c = parse_cmsgs(ctrl.0.get(..used).unwrap_or(&[]));
    Ok(Received {
        len,
        segment: c.gro_segment.unwrap_or(len),
        rx_realtime_ns: c.rx_realtime_ns,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    /// Appends one cmsg as the kernel lays it out: header, data at `CMSG_DATA`, padded to
    /// the next `CMSG_SPACE` boundary.
    fn push_cmsg(buf: &mut Vec<u8>, level: libc::c_int, kind: libc::c_int, data: &[u8]) {
        let hdr = size_of::<libc::cmsghdr>();
        let start = buf.len();
        buf.extend_from_slice(&(cmsg_align(hdr) + data.len()).to_ne_bytes());
        buf.extend_from_slice(&level.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.resize(start + cmsg_align(hdr), 0);
        buf.extend_from_slice(data);
        buf.resize(start + cmsg_align(cmsg_align(hdr) + data.len()), 0);
    }

    fn timespec(sec: i64, nsec: i64, width: usize) -> Vec<u8> {
        match width {
            4 => [(sec as i32).to_ne_bytes(), (nsec as i32).to_ne_bytes()].concat(),
            _ => [sec.to_ne_bytes(), nsec.to_ne_bytes()].concat(),
        }
    }

    #[test]
    fn the_layout_matches_the_libc_cmsg_macros() {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic on their argument.
        let (space4, len16) =
            unsafe { (libc::CMSG_SPACE(4) as usize, libc::CMSG_LEN(16) as usize) };
        let mut b = Vec::new();
        push_cmsg(&mut b, libc::SOL_UDP, libc::UDP_GRO, &1234i32.to_ne_bytes());
        assert_eq!(b.len(), space4);
        let mut t = Vec::new();
        push_cmsg(&mut t, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &[0; 16]);
        assert_eq!(usize::from_ne_bytes(t[..8].try_into().unwrap()), len16);
    }

    #[test]
    fn gro_segment_and_timestamp_are_both_found_in_either_order() {
        let long = size_of::<libc::c_long>();
        let ts = timespec(1_700_000_000, 123_456_789, long);
        let want = Cmsgs {
            gro_segment: Some(1396),
            rx_realtime_ns: Some(1_700_000_000_123_456_789),
        };
        let mut a = Vec::new();
        push_cmsg(&mut a, libc::SOL_UDP, libc::UDP_GRO, &1396i32.to_ne_bytes());
        push_cmsg(&mut a, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &ts);
        assert_eq!(parse_cmsgs(&a), want);
        let mut b = Vec::new();
        push_cmsg(&mut b, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &ts);
        // An unknown message in between is skipped.
        push_cmsg(&mut b, libc::SOL_IP, libc::IP_TOS, &[0x10]);
        push_cmsg(&mut b, libc::SOL_UDP, libc::UDP_GRO, &1396i32.to_ne_bytes());
        assert_eq!(parse_cmsgs(&b), want);
        // The new layout and SCM_TIMESTAMPING's first (software) stamp.
        let mut c = Vec::new();
        push_cmsg(
            &mut c,
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS_NEW,
            &timespec(5, 6, 8),
        );
        assert_eq!(parse_cmsgs(&c).rx_realtime_ns, Some(5_000_000_006));
        let mut d = Vec::new();
        let three = [timespec(7, 8, long), vec![0; 4 * long]].concat();
        push_cmsg(&mut d, libc::SOL_SOCKET, libc::SCM_TIMESTAMPING, &three);
        assert_eq!(parse_cmsgs(&d).rx_realtime_ns, Some(7_000_000_008));
    }

    #[test]
    fn missing_truncated_or_garbage_control_data_gives_nothing_and_never_panics() {
        assert_eq!(parse_cmsgs(&[]), Cmsgs::default());
        let mut a = Vec::new();
        push_cmsg(&mut a, libc::SOL_UDP, libc::UDP_GRO, &1396i32.to_ne_bytes());
        assert_eq!(parse_cmsgs(&a).rx_realtime_ns, None);
        let ts = timespec(1, 2, size_of::<libc::c_long>());
        push_cmsg(&mut a, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &ts);
        // Cut anywhere: what is complete before the cut stands, the rest is not read.
        for cut in 0..a.len() {
            let c = parse_cmsgs(&a[..cut]);
            assert_eq!(c.gro_segment.is_some(), cut >= 20, "cut {cut}");
            assert_eq!(c.rx_realtime_ns, None, "cut {cut}");
        }
        // A zero-length or oversized header, a bad nsec, a zero GRO size.
        let mut z = Vec::new();
        z.extend_from_slice(&0usize.to_ne_bytes());
        z.extend_from_slice(&[0; 8]);
        assert_eq!(parse_cmsgs(&z), Cmsgs::default());
        let mut big = a.clone();
        big[..8].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(parse_cmsgs(&big), Cmsgs::default());
        let mut bad = Vec::new();
        let ts = timespec(1, 1_000_000_000, size_of::<libc::c_long>());
        push_cmsg(&mut bad, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &ts);
        push_cmsg(&mut bad, libc::SOL_UDP, libc::UDP_GRO, &0i32.to_ne_bytes());
        assert_eq!(parse_cmsgs(&bad), Cmsgs::default());
        for seed in 0..200u64 {
            let junk: Vec<u8> = (0..64u64).map(|i| (seed * 31 + i * 7) as u8).collect();
            let _ = parse_cmsgs(&junk);
        }
    }

    #[test]
    fn the_offset_keeps_the_tightest_pair_and_converts_both_ways() {
        let samples = [
            (1_000, 5_000_000_001_500, 2_000),
            // The tightest: mono 10_000..10_040, real read taken at 10_020.
            (10_000, 5_000_000_010_020, 10_040),
            (20_000, 5_000_000_025_000, 30_000),
            // Backwards monotonic reads are not samples.
            (50_000, 1, 40_000),
        ];
        let o = ClockOffset::best_of(&samples).unwrap();
        assert_eq!(
            o,
            ClockOffset {
                real_minus_mono_ns: 5_000_000_000_000,
                gap_ns: 40
            }
        );
        assert_eq!(o.to_monotonic(5_000_000_123_456), 123_456);
        // Before the monotonic zero: 0, not a wrap.
        assert_eq!(o.to_monotonic(1), 0);
        assert_eq!(ClockOffset::best_of(&[]), None);
        // Odd ends: the midpoint does not overflow or lose the half.
        let m = ClockOffset::best_of(&[(u64::MAX - 2, u64::MAX, u64::MAX)]).unwrap();
        assert_eq!((m.real_minus_mono_ns, m.gap_ns), (1, 2));
        assert_eq!(timespec_ns(-1, 0), None);
        assert_eq!(timespec_ns(2, -1), None);
        assert_eq!(timespec_ns(3, 4), Some(3_000_000_004));
    }

    #[test]
    fn the_measured_offset_is_tight_and_matches_the_clocks() {
        let o = ClockOffset::measure(16).unwrap();
        assert!(o.gap_ns < 1_000_000, "{o:?}");
        let real = clock_gettime(ClockId::CLOCK_REALTIME).unwrap();
        let real = timespec_ns(real.tv_sec(), real.tv_nsec()).unwrap();
        let mono = weft_client::probe::monotonic_ns();
        assert!(o.to_monotonic(real).abs_diff(mono) < 5_000_000);
    }

    #[test]
    fn a_loopback_datagram_comes_with_a_kernel_stamp_between_send_and_read() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&rx).unwrap();
        crate::udp_baseline::sockopt::enable_gro(&rx).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let o = ClockOffset::measure(8).unwrap();
        let before = weft_client::probe::monotonic_ns();
        tx.send_to(&[7; 100], rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 2048];
        let mut ctrl = CmsgBuf::default();
        let r = recv_stamped(&rx, &mut buf, &mut ctrl).unwrap();
        let after = weft_client::probe::monotonic_ns();
        assert_eq!((r.len, r.segment), (100, 100));
        let at = o.to_monotonic(r.rx_realtime_ns.unwrap());
        // Within the offset's uncertainty (and a little for the clocks' own steps).
        let slack = o.gap_ns + 10_000;
        assert!(
            at + slack >= before && at <= after + slack,
            "{before} {at} {after}"
        );
    }

    #[test]
    fn a_gso_send_arrives_as_one_gro_buffer_with_both_cmsgs() {
        use crate::udp_baseline::sockopt;
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&rx).unwrap();
        sockopt::enable_gro(&rx).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let seg = [3u8; 1000];
        let segs: Vec<&[u8]> = vec![&seg; 4];
        sockopt::send_gso(&tx, rx.local_addr().unwrap(), &segs, 1000).unwrap();
        let mut buf = vec![0u8; sockopt::MAX_UDP_PAYLOAD];
        let mut ctrl = CmsgBuf::default();
        let mut got = 0;
        while got < 4000 {
            let r = recv_stamped(&rx, &mut buf, &mut ctrl).unwrap();
            // Loopback keeps the GSO skb whole: one buffer, its segment size, one stamp.
            assert_eq!(r.segment, 1000);
            assert!(r.rx_realtime_ns.is_some());
            got += r.len;
        }
        assert_eq!(got, 4000);
    }
}
