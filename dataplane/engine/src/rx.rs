//! A worker's held receive buffers, sorted by what their Weft packets carry.
//!
//! With `UDP_GRO` the kernel may hand over several datagrams of one sender in one receive buffer:
//! the segments of a super-packet, all of the segment size the `UDP_GRO` control message gives
//! except the last, which may be shorter. Each segment is one Weft packet. So:
//!
//! - [`RxBatch::sort`] (in the receive callback) counts every segment as received, peeks its
//!   class, counts a segment that fails the peek as a drop, and holds the buffer if any segment
//!   is worth handling, noting whether it has hello/control segments, data segments or both.
//! - [`RxBatch::handle_critical`] hands over every hello and control segment of the buffers that
//!   arrived this turn, before any data.
//! - [`RxBatch::handle_data`] then hands over every data segment, oldest buffer first.
//! - [`RxBatch::release_done`] gives a buffer back to the ring once all its segments have been
//!   handled: at the end of the turn, all of them.
//!
//! Every buffer goes back each turn on purpose. The data ring is shared by all of a worker's data
//! sockets: a worker that kept buffers of a flooded socket across turns (to bound its work per
//! turn) would leave too few for its other sockets, whose datagrams then wait in the kernel (when
//! hellos shared those sockets, until their paths were declared dead). The worker sizes its tx
//! pool for a whole turn instead. Worker 0's control sockets have a ring of their own.
//!
//! Nothing allocates: the list of held buffers has room for every buffer of the rings, which is
//! the most that can be held at once. The class byte is peeked twice per segment (once to sort,
//! once to pick), which costs two loads and saves a per-segment list.

use weft_shared::DropReason;
use weft_shared::shm::{Counter, WorkerCounters};
use weft_shared::time::Instant;
use weft_shared::wire::{PriorityClass, peek_class};

use crate::uring::{BufId, Datagram, Segments, UdpDriver};

/// True for hellos, feedback and control: everything that goes ahead of data.
fn is_critical(c: PriorityClass) -> bool {
    c != PriorityClass::Data
}

/// One buffer held until all its segments are handled.
#[derive(Debug)]
struct Held {
    id: BufId,
    segment_size: Option<u16>,
    /// When the turn that received it started (for the packets' residence time).
    rx_at: Instant,
    /// It has hello or control segments not yet handed over.
    critical: bool,
    /// Offset in the payload from which data segments are still to be handed over; `None` when
    /// none are left.
    data_at: Option<usize>,
}

/// Counters of what arrived, for the worker's exit report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxTotals {
    /// Weft packets (segments) received.
    pub(crate) packets: u64,
    /// Of those, segments that arrived in a GRO super-packet of two or more.
    pub(crate) coalesced: u64,
    /// Buffers that held two or more segments.
    pub(crate) super_packets: u64,
}

/// The buffers a worker holds.
#[derive(Debug)]
pub(crate) struct RxBatch {
    held: Vec<Held>,
    totals: RxTotals,
}

impl RxBatch {
    /// A batch with room for `buffers` held buffers: those of all the driver's rings
    /// ([`UdpDriver::buffers`]).
    pub(crate) fn new(buffers: u32) -> Self {
        Self {
            held: Vec::with_capacity(buffers as usize),
            totals: RxTotals::default(),
        }
    }

    /// What arrived so far.
    pub(crate) fn totals(&self) -> RxTotals {
        self.totals
    }

    /// True if a held buffer has a hello or control segment not yet handed over.
    pub(crate) fn has_critical(&self) -> bool {
        self.held.iter().any(|h| h.critical)
    }

    /// True if a held buffer has a data segment not yet handed over.
    pub(crate) fn has_data(&self) -> bool {
        self.held.iter().any(|h| h.data_at.is_some())
    }

    /// Counts and classifies the segments of a datagram received in the turn that started at
    /// `rx_at`, and holds its buffer if one of them is to be handled. Called from the receive
    /// callback.
    pub(crate) fn sort(&mut self, d: &Datagram<'_>, rx_at: Instant, counters: &WorkerCounters) {
        let (mut segments, mut critical, mut data) = (0u64, false, false);
        for seg in d.segments() {
            segments += 1;
            match peek_class(seg) {
                Err(reason) => counters.add_drop(reason, 1),
                Ok(c) if is_critical(c) => critical = true,
                Ok(_) => data = true,
            }
        }
        counters.add(Counter::Received, segments);
        self.totals.packets += segments;
        if segments > 1 {
            self.totals.coalesced += segments;
            self.totals.super_packets += 1;
        }
        if !(critical || data) {
            return;
        }
        if self.held.len() == self.held.capacity() {
            // Cannot happen: the driver lends at most `buffers()` buffers, the capacity. Drop
            // rather than grow, so the hot path never allocates.
            counters.add_drop(DropReason::QueueFull, segments);
            return;
        }
        self.held.push(Held {
            id: d.hold(),
            segment_size: d.segment_size(),
            rx_at,
            critical,
            data_at: data.then_some(0),
        });
    }

    /// Calls `handle` with every hello and control segment not yet handed over, in arrival
    /// order, each copied into `scratch` (the pipeline rewrites packets in place; `scratch` is as
    /// long as a receive buffer's payload).
    pub(crate) fn handle_critical(
        &mut self,
        driver: &mut UdpDriver,
        scratch: &mut [u8],
        mut handle: impl FnMut(&mut UdpDriver, &mut [u8]),
    ) {
        for h in self.held.iter_mut().filter(|h| h.critical) {
            h.critical = false;
            let mut offset = 0;
            while let Some((n, next)) = next_segment(driver, h, offset, true, scratch) {
                offset = next;
                handle(driver, &mut scratch[..n]);
            }
        }
    }

    /// Calls `handle` with every data segment not yet handed over, oldest first, each copied
    /// into `scratch`, with the start of the turn that received it. Returns how many it handed
    /// over.
    pub(crate) fn handle_data(
        &mut self,
        driver: &mut UdpDriver,
        scratch: &mut [u8],
        mut handle: impl FnMut(&mut UdpDriver, Instant, &mut [u8]),
    ) -> usize {
        let mut done = 0;
        for h in &mut self.held {
            while let Some(offset) = h.data_at {
                match next_segment(driver, h, offset, false, scratch) {
                    Some((n, next)) => {
                        h.data_at = Some(next);
                        done += 1;
                        handle(driver, h.rx_at, &mut scratch[..n]);
                    }
                    None => h.data_at = None,
                }
            }
        }
        done
    }

    /// Gives every buffer whose segments have all been handed over back to the driver's ring;
    /// the others stay held, in order.
    pub(crate) fn release_done(&mut self, driver: &mut UdpDriver) {
        let mut kept = 0;
        for i in 0..self.held.len() {
            let h = &self.held[i];
            if h.critical || h.data_at.is_some() {
                self.held.swap(kept, i);
                kept += 1;
            }
        }
        for h in self.held.drain(kept..) {
            driver.release(h.id);
        }
    }
}

/// Finds the next segment of `h` at or after `offset` whose class is critical (or data), copies
/// it into `scratch`, and returns its length and the offset after it. The driver's buffer is
/// borrowed only here, so the caller can hand the copy to code that needs the driver. Every
/// segment but the last is `segment_size` long, so splitting the rest again is the same split.
fn next_segment(
    driver: &UdpDriver,
    h: &Held,
    mut offset: usize,
    critical: bool,
    scratch: &mut [u8],
) -> Option<(usize, usize)> {
    let rest = driver.held_payload(&h.id)?.get(offset..)?;
    for seg in Segments::new(rest, h.segment_size) {
        if seg.is_empty() {
            return None;
        }
        offset += seg.len();
        if matches!(peek_class(seg), Ok(c) if is_critical(c) == critical) {
            let n = seg.len().min(scratch.len());
            scratch[..n].copy_from_slice(&seg[..n]);
            return Some((n, offset));
        }
    }
    None
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]
mod tests {
    use std::io::IoSlice;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::time::Duration;

    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
    use weft_shared::shm::{CounterTotals, ShmLayout, ShmRegion};
    use weft_shared::wire::{LINK_HEADER_LEN, PacketType, WIRE_VERSION};

    use super::*;
    use crate::uring::{DriverConfig, Event, SocketOptions, bind_udp, probe};

    /// `len` bytes that peek as `t` and carry `id` in bytes 2..6 (peek reads only bytes 0 and 1).
    fn packet(t: PacketType, id: u32, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(LINK_HEADER_LEN)];
        p[0] = WIRE_VERSION;
        p[1] = t as u8;
        p[2..6].copy_from_slice(&id.to_le_bytes());
        p
    }

    fn id_of(p: &[u8]) -> u32 {
        u32::from_le_bytes(p[2..6].try_into().unwrap())
    }

    /// Sends `packets` (all the size of the first but the last) as one GSO send.
    fn send_burst(tx: &UdpSocket, to: &SockaddrStorage, packets: &[Vec<u8>]) {
        let seg = u16::try_from(packets[0].len()).unwrap();
        let wire = packets.concat();
        let cmsg = [ControlMessage::UdpGsoSegments(&seg)];
        let n = sendmsg(
            tx.as_raw_fd(),
            &[IoSlice::new(&wire)],
            &cmsg,
            MsgFlags::empty(),
            Some(to),
        );
        assert_eq!(n.unwrap(), wire.len());
    }

    #[test]
    fn segments_are_sorted_and_handled_by_class_and_buffers_return_when_done() {
        let features = probe().unwrap();
        let opts = SocketOptions {
            gro: true,
            ..SocketOptions::default()
        };
        let rx_sock = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let to = SockaddrStorage::from(rx_sock.local_addr().unwrap());
        let mut driver =
            UdpDriver::new(&features, &DriverConfig::with_gro(), vec![rx_sock]).unwrap();
        let region = Arc::new(ShmRegion::create_memfd(&ShmLayout::default(), 1).unwrap());
        let counters = WorkerCounters::new(region.clone(), 0).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();

        // Burst A: data 0..60, then a short control packet (id 1000).
        // Burst B: a hello (id 1001), data 60..110, a segment with a bad version byte.
        // Burst C: data 110..170.
        let data = |range: std::ops::Range<u32>| range.map(|i| packet(PacketType::Data, i, 64));
        let mut a: Vec<_> = data(0..60).collect();
        a.push(packet(PacketType::Control, 1000, 40));
        let mut b = vec![packet(PacketType::Hello, 1001, 64)];
        b.extend(data(60..110));
        let mut bad = packet(PacketType::Data, 9999, 64);
        bad[0] = 0xEE;
        b.push(bad);
        let c: Vec<_> = data(110..170).collect();
        for burst in [&a, &b, &c] {
            send_burst(&tx, &to, burst);
        }

        let mut batch = RxBatch::new(DriverConfig::with_gro().buf_entries);
        let at = Instant::from_nanos(7);
        let mut datagrams = 0;
        for _ in 0..100 {
            driver
                .run_once(Some(Duration::from_millis(20)), |_, ev| {
                    if let Event::Datagram(d) = ev {
                        datagrams += 1;
                        batch.sort(&d, at, &counters);
                    }
                })
                .unwrap();
            if datagrams == 3 {
                break;
            }
        }
        assert_eq!(datagrams, 3, "each burst arrives as one super-packet");
        assert_eq!(batch.totals().packets, 61 + 52 + 60);
        assert_eq!(batch.totals().super_packets, 3);
        let totals = CounterTotals::read_worker(&region, 0);
        assert_eq!(totals.get(Counter::Received), 173);
        assert_eq!(
            totals.drops[DropReason::UnsupportedVersion(0xEE).index()],
            1
        );
        assert_eq!(driver.buffers_held(), 3);

        let mut scratch = vec![0u8; 65_536];
        let mut critical = Vec::new();
        assert!(batch.has_critical());
        batch.handle_critical(&mut driver, &mut scratch, |_, p| {
            critical.push((p[1], id_of(p), p.len()));
        });
        assert_eq!(
            critical,
            [
                (PacketType::Control as u8, 1000, 40),
                (PacketType::Hello as u8, 1001, 64)
            ]
        );
        assert!(!batch.has_critical());

        // Then every data packet, in order, skipping the control, hello and bad segments.
        let mut got = Vec::new();
        let n = batch.handle_data(&mut driver, &mut scratch, |_, rx_at, p| {
            assert_eq!((rx_at, p[1], p.len()), (at, PacketType::Data as u8, 64));
            got.push(id_of(p));
        });
        assert_eq!(n, 170);
        assert!(!batch.has_data());
        assert_eq!(driver.buffers_held(), 3, "held until released");
        batch.release_done(&mut driver);
        assert_eq!(driver.buffers_held(), 0);
        assert_eq!(got, (0..170).collect::<Vec<u32>>());
        // Nothing is handed over twice.
        batch.handle_critical(&mut driver, &mut scratch, |_, _| panic!("critical again"));
        assert_eq!(
            batch.handle_data(&mut driver, &mut scratch, |_, _, _| {}),
            0
        );
    }
}
