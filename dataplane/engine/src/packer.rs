//! Message packing: a worker's data records for one next hop share a datagram within a turn.
//!
//! Every data record a worker sends (forwarded, originated by a client, or a link protocol's
//! first send or copy) goes through [`Packer::send`]. The packer keeps up to [`MAX_OPEN`] open
//! data packets, each in a reserved tx buffer and each for one (link, path, sub-lane): a record
//! for a link with an open packet on its sub-lane is appended to it when it fits (best-effort
//! records take the sub-lane of their flow, `DataRecord::sub_lane`, so one link's flows spread
//! over the next node's workers; everything else takes sub-lane 0); otherwise that packet is closed
//! (sealed on a keyed link, queued for sending) and a new one opened. A packet is also closed as
//! soon as another record of the same size would not fit, so packets of large messages leave at
//! once, one record each, as without packing. [`Packer::flush`] closes every open packet; the
//! worker calls it at the end of each turn, before the next `run_once` submits the tx queue, so
//! packing holds no record past the turn that produced it: the latency bound is one turn.
//!
//! A best-effort flow may set a *pack delay* at `OpenFlow` (`pack_delay_us`, the paper's
//! latency-bounded flow aggregation): a packet holding only such records is kept open across
//! turns until the earliest of its records' `sent + delay` ([`Packer::send_held`]), so a
//! paced flow's messages share datagrams too; the worker wakes for it ([`Packer::next_close`]).
//! A record without a delay (any forwarded one, every other flow's) appended to a held packet
//! makes it leave at the end of that turn as usual.
//!
//! With packing off (`packing = false` in the node's config) every packet is closed right after
//! its first record: one record per datagram.
//!
//! Counting: the caller counts a record as forwarded when `send` returns `Ok`; a packet that
//! then fails to close or queue (a full pool cannot happen: its buffer is reserved) counts one
//! drop per record it held. `Sent` and the link's traffic counters count datagrams.

use std::net::SocketAddr;

use arrayvec::ArrayVec;
use weft_proto::forward::{DataRecord, LinkSender, OpenData};
use weft_shared::DropReason;
use weft_shared::ids::LinkId;
use weft_shared::shm::{Counter, WorkerCounters};
use weft_shared::time::Instant;

use crate::links::{LinkTraffic, Links};
use crate::uring::{Reserved, TxQueue};

/// Open packets per worker at once: more (next hop, sub-lane) pairs than that in one turn close
/// the oldest.
pub const MAX_OPEN: usize = 16;

struct Open {
    slot: Reserved,
    data: OpenData,
    sock: usize,
    dst: SocketAddr,
    /// `None`: leaves at the end of this turn; `Some(t)`: may be held until `t`.
    close_at: Option<Instant>,
}

/// When a packet with two holds must leave: the earlier one, and a record without a hold (this
/// turn) overrides any.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    Some(a?.min(b?))
}

/// A worker's open data packets (module doc).
pub struct Packer {
    enabled: bool,
    open: ArrayVec<Open, MAX_OPEN>,
}

/// What sending needs besides the packer: the worker's tx queue, link sender, links and
/// counters.
pub struct PackTx<'a> {
    /// The worker's tx queue.
    pub tx: &'a mut TxQueue,
    /// The worker's link packet builder.
    pub sender: &'a mut LinkSender,
    /// The node's links.
    pub links: &'a Links,
    /// The worker's index (for the per-worker link traffic counters).
    pub worker: usize,
    /// The worker's counters.
    pub counters: &'a WorkerCounters,
}

impl Packer {
    /// A packer that packs (`enabled`) or sends one record per datagram.
    pub fn new(enabled: bool) -> Self {
        Packer {
            enabled,
            open: ArrayVec::new(),
        }
    }

    /// Whether records share datagrams.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Open packets now.
    pub fn open_packets(&self) -> usize {
        self.open.len()
    }

    /// Sends `record` on `link`'s active path: appended to the open packet for that path, or
    /// in a new one. `Ok` means it is in a packet that will be queued by [`Packer::flush`] at
    /// the latest.
    pub fn send(
        &mut self,
        t: &mut PackTx<'_>,
        link_id: LinkId,
        record: &DataRecord<'_>,
    ) -> Result<(), DropReason> {
        self.send_within(t, link_id, record, None)
    }

    /// Like [`Packer::send`], for a record whose flow lets it wait until `close_at` for more
    /// records to share its datagram (module doc). `Ok` means it leaves by `close_at`, by the
    /// first [`Packer::flush_due`] at or after it.
    pub fn send_held(
        &mut self,
        t: &mut PackTx<'_>,
        link_id: LinkId,
        record: &DataRecord<'_>,
        close_at: Instant,
    ) -> Result<(), DropReason> {
        self.send_within(t, link_id, record, Some(close_at))
    }

    fn send_within(
        &mut self,
        t: &mut PackTx<'_>,
        link_id: LinkId,
        record: &DataRecord<'_>,
        close_at: Option<Instant>,
    ) -> Result<(), DropReason> {
        let link = t
            .links
            .get(link_id)
            .ok_or(DropReason::UnknownLink(link_id.get()))?;
        // A link without an up path has no route through it.
        let path = *link.active_path().ok_or(DropReason::NoRoute)?;
        let sub = record.sub_lane(link.sub_lanes);
        let wire_len = record.wire_len();
        if let Some(i) = self.open.iter().position(|o| {
            o.data.link() == link_id && o.data.path() == path.id && o.data.sub() == sub
        }) {
            let o = &mut self.open[i];
            if o.data.append(t.tx.reserved_buf(&o.slot), record)? {
                o.close_at = earliest(o.close_at, close_at);
                if o.data.room() < wire_len {
                    self.close(t, i);
                }
                return Ok(());
            }
            self.close(t, i);
        }
        // The link moved to another path: what is open on the old one (on this sub-lane, where
        // this record's flow is) leaves first, so a held packet is not overtaken by this one.
        if let Some(i) = self
            .open
            .iter()
            .position(|o| o.data.link() == link_id && o.data.sub() == sub)
        {
            self.close(t, i);
        }
        if self.open.is_full() {
            self.close(t, 0);
        }
        let slot = t.tx.reserve().map_err(|_| DropReason::QueueFull)?;
        let buf = t.tx.reserved_buf(&slot);
        let opened = t
            .sender
            .open_data(buf, link_id, path.id, sub, link.max_datagram)
            .and_then(|mut data| match data.append(buf, record)? {
                true => Ok(data),
                false => Err(DropReason::BadLength {
                    field: "packet.len",
                    value: wire_len,
                }),
            });
        let data = match opened {
            Ok(data) => data,
            Err(reason) => {
                t.tx.unreserve(slot);
                return Err(reason);
            }
        };
        let open = Open {
            slot,
            data,
            sock: path.interface,
            dst: path.remote,
            close_at,
        };
        if self.enabled && data.room() >= wire_len {
            self.open.push(open);
        } else {
            Self::queue(t, open);
        }
        Ok(())
    }

    /// Closes and queues every open packet.
    pub fn flush(&mut self, t: &mut PackTx<'_>) {
        // Oldest first, so the next hop opened first in the turn leaves first.
        for open in self.open.drain(..) {
            Self::queue(t, open);
        }
    }

    /// The end of a turn: closes and queues every open packet but those a pack delay holds
    /// past `now`.
    pub fn flush_due(&mut self, t: &mut PackTx<'_>, now: Instant) {
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].close_at.is_some_and(|at| at > now) {
                i += 1;
            } else {
                self.close(t, i);
            }
        }
    }

    /// When the earliest held packet must leave (the worker's wake-up), if one is held.
    pub fn next_close(&self) -> Option<Instant> {
        self.open.iter().filter_map(|o| o.close_at).min()
    }

    fn close(&mut self, t: &mut PackTx<'_>, i: usize) {
        let open = self.open.remove(i);
        Self::queue(t, open);
    }

    fn queue(t: &mut PackTx<'_>, open: Open) {
        let Open {
            slot,
            data,
            sock,
            dst,
            close_at: _,
        } = open;
        let records = u64::from(data.records());
        let len = match t.sender.close_data(t.tx.reserved_buf(&slot), &data) {
            Ok(len) => len,
            Err(reason) => {
                t.tx.unreserve(slot);
                t.counters.add_drop(reason, records);
                return;
            }
        };
        if t.tx.queue_reserved(slot, sock, dst, len).is_err() {
            t.counters.add_drop(DropReason::QueueFull, records);
            return;
        }
        t.counters.add(Counter::Sent, 1);
        if let Some(tr) = t.links.traffic(t.worker, data.link()) {
            LinkTraffic::bump(&tr.packets_out, &tr.bytes_out, len);
        }
    }
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer")
            .field("enabled", &self.enabled)
            .field("open", &self.open.len())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use std::sync::Arc;

    use weft_shared::config::Config;
    use weft_shared::ids::{Incarnation, NodeId, PathId};
    use weft_shared::shm::{CounterTotals, ShmLayout, ShmRegion};
    use weft_shared::wire::{LINK_HEADER_LEN, LinkRepr, PacketType, RecordFlags, Records};

    use super::*;

    /// Node 2 in the middle of a line 1 - 2 - 3 (links 0 and 1, MTU 1500: 1,472-byte datagrams;
    /// two ISPs, so every link has paths 0 and 1).
    const LINE: &str = r#"
schema = 1
[overlay]
name = "pack"
[[node]]
id = 1
name = "n1"
interface = [{ isp = "a", addr = "127.0.0.1:7001" }, { isp = "b", addr = "127.0.1.1:7001" }]
[[node]]
id = 2
name = "n2"
interface = [{ isp = "a", addr = "127.0.0.2:7002" }, { isp = "b", addr = "127.0.1.2:7002" }]
[[node]]
id = 3
name = "n3"
interface = [{ isp = "a", addr = "127.0.0.3:7003" }, { isp = "b", addr = "127.0.1.3:7003" }]
[[link]]
id = 0
nodes = [1, 2]
cost = 1000
[[link]]
id = 1
nodes = [2, 3]
cost = 1000
"#;

    struct Bench {
        tx: TxQueue,
        sender: LinkSender,
        links: Links,
        counters: WorkerCounters,
        region: Arc<ShmRegion>,
    }

    fn bench() -> Bench {
        bench_with(LINE)
    }

    /// The bench on `toml`'s overlay (LINE or a variant of it).
    fn bench_with(toml: &str) -> Bench {
        let config = Config::from_toml_str(toml, "pack.toml").unwrap();
        let me = NodeId::new(2).unwrap();
        let links = Links::new(&config, me, &[], 1);
        for id in [0, 1] {
            let link = links.get(LinkId::new(id).unwrap()).unwrap();
            link.set_active_path(Some(PathId::new(0).unwrap()));
        }
        let region = Arc::new(ShmRegion::create_memfd(&ShmLayout::default(), 1).unwrap());
        Bench {
            tx: TxQueue::new(64, 2048, 1, 64, true).unwrap(),
            sender: LinkSender::new(me, Incarnation(9), 0),
            links,
            counters: WorkerCounters::new(region.clone(), 0).unwrap(),
            region,
        }
    }

    impl Bench {
        fn send(&mut self, p: &mut Packer, link: u16, seq: u32, len: usize) {
            let body = vec![seq as u8; len];
            let record = DataRecord::Encoded {
                body: &body,
                link_seq: seq,
                flags: RecordFlags::NONE,
            };
            let mut t = self.pack_tx();
            p.send(&mut t, LinkId::new(link).unwrap(), &record).unwrap();
        }

        fn send_held(&mut self, p: &mut Packer, link: u16, seq: u32, until_us: u64) {
            let body = vec![seq as u8; 100];
            let record = DataRecord::Encoded {
                body: &body,
                link_seq: seq,
                flags: RecordFlags::NONE,
            };
            let mut t = self.pack_tx();
            let at = Instant::from_nanos(until_us * 1000);
            p.send_held(&mut t, LinkId::new(link).unwrap(), &record, at)
                .unwrap();
        }

        fn flush_due(&mut self, p: &mut Packer, now_us: u64) {
            let mut t = self.pack_tx();
            p.flush_due(&mut t, Instant::from_nanos(now_us * 1000));
        }

        fn flush(&mut self, p: &mut Packer) {
            let mut t = self.pack_tx();
            p.flush(&mut t);
        }

        fn pack_tx(&mut self) -> PackTx<'_> {
            PackTx {
                tx: &mut self.tx,
                sender: &mut self.sender,
                links: &self.links,
                worker: 0,
                counters: &self.counters,
            }
        }

        /// (link, link_seqs) of every queued packet, oldest first; checks each record's body.
        fn queued(&self) -> Vec<(u16, Vec<u32>)> {
            self.tx
                .pending_packets()
                .iter()
                .map(|(_, _, p)| {
                    let (h, _) = LinkRepr::parse(p).unwrap();
                    let seqs = Records::new(&p[LINK_HEADER_LEN..], PacketType::Data)
                        .map(|r| {
                            let r = r.unwrap();
                            assert!(r.body.iter().all(|&b| b == r.header.link_seq as u8));
                            r.header.link_seq
                        })
                        .collect();
                    (h.link.get(), seqs)
                })
                .collect()
        }

        fn sent(&self) -> u64 {
            CounterTotals::sum(&self.region).get(Counter::Sent)
        }
    }

    #[test]
    fn small_records_share_datagrams_in_order_and_flush_sends_the_rest() {
        let mut b = bench();
        let mut p = Packer::new(true);
        for seq in 0..30 {
            b.send(&mut p, 1, seq, 100);
        }
        // (1472 - 24) / (8 + 100) = 13 records per datagram: two full ones left at once.
        assert_eq!(b.queued().len(), 2);
        assert_eq!(p.open_packets(), 1);
        b.flush(&mut p);
        assert_eq!(p.open_packets(), 0);
        let q = b.queued();
        let lens: Vec<usize> = q.iter().map(|(_, s)| s.len()).collect();
        assert_eq!(lens, [13, 13, 4]);
        let all: Vec<u32> = q.iter().flat_map(|(_, s)| s.clone()).collect();
        assert_eq!(all, (0..30).collect::<Vec<_>>());
        assert_eq!(b.sent(), 3);
        let sizes: Vec<usize> = b.tx.pending_packets().iter().map(|x| x.2.len()).collect();
        assert_eq!(sizes[0], LINK_HEADER_LEN + 13 * 108);
        assert!(sizes.iter().all(|&s| s <= 1472));
    }

    #[test]
    fn a_pack_delay_holds_a_packet_across_turns_until_its_earliest_record_is_due() {
        let mut b = bench();
        let mut p = Packer::new(true);
        // Turn at t = 1000 us: two records of a flow with a 200 us delay.
        b.send_held(&mut p, 1, 0, 1200);
        b.send_held(&mut p, 1, 1, 1200);
        b.flush_due(&mut p, 1000);
        assert_eq!(p.open_packets(), 1, "held past the turn");
        assert!(b.queued().is_empty());
        assert_eq!(p.next_close(), Some(Instant::from_nanos(1_200_000)));
        // Later turns add to it; a later hold does not push the first record's bound.
        b.send_held(&mut p, 1, 2, 1300);
        b.flush_due(&mut p, 1100);
        assert_eq!(p.next_close(), Some(Instant::from_nanos(1_200_000)));
        assert!(b.queued().is_empty());
        // Due: it leaves, with all three.
        b.flush_due(&mut p, 1200);
        assert_eq!(b.queued(), [(1, vec![0, 1, 2])]);
        assert_eq!(p.next_close(), None);
        // A record without a delay (a forwarded one) joining a held packet takes it along at
        // the end of its turn.
        b.send_held(&mut p, 1, 3, 5000);
        b.send(&mut p, 1, 4, 100);
        b.flush_due(&mut p, 1300);
        assert_eq!(b.queued()[1..], [(1, vec![3, 4])]);
        // A full packet leaves at once, held or not.
        for seq in 10..23 {
            b.send_held(&mut p, 0, seq, 9000);
        }
        assert_eq!(b.queued()[2..], [(0, (10..23).collect::<Vec<_>>())]);
        assert_eq!(p.open_packets(), 0);
        assert_eq!(b.sent(), 3);
        // The link moves to another path while a packet is held: the held one leaves first.
        b.send_held(&mut p, 1, 30, 9000);
        b.links
            .get(LinkId::new(1).unwrap())
            .unwrap()
            .set_active_path(Some(PathId::new(1).unwrap()));
        b.send_held(&mut p, 1, 31, 9000);
        assert_eq!(b.queued()[3..], [(1, vec![30])]);
        assert_eq!(p.open_packets(), 1);
    }

    #[test]
    fn with_packing_off_every_record_is_a_datagram() {
        let mut b = bench();
        let mut p = Packer::new(false);
        for seq in 0..10 {
            b.send(&mut p, 1, seq, 100);
            assert_eq!(p.open_packets(), 0);
        }
        let q = b.queued();
        assert_eq!(q.len(), 10);
        assert!(q.iter().enumerate().all(|(i, (_, s))| s == &[i as u32]));
    }

    #[test]
    fn large_records_leave_at_once_and_next_hops_get_packets_of_their_own() {
        let mut b = bench();
        let mut p = Packer::new(true);
        b.send(&mut p, 1, 0, 1400);
        assert_eq!(p.open_packets(), 0, "no second 1,400-byte record fits");
        assert_eq!(b.queued(), [(1, vec![0])]);
        for seq in 1..=6 {
            b.send(&mut p, u16::from(seq % 2 == 0), seq, 50);
        }
        assert_eq!(p.open_packets(), 2);
        b.flush(&mut p);
        let q = b.queued();
        assert_eq!(q[1..], [(0, vec![1, 3, 5]), (1, vec![2, 4, 6])]);
    }

    #[test]
    fn a_link_without_an_up_path_or_a_record_too_large_is_refused_and_leaks_nothing() {
        let mut b = bench();
        let mut p = Packer::new(true);
        let free = b.tx.free_slots();
        let big = vec![0u8; 1500];
        let record = DataRecord::Encoded {
            body: &big,
            link_seq: 0,
            flags: RecordFlags::NONE,
        };
        let mut t = b.pack_tx();
        assert!(matches!(
            p.send(&mut t, LinkId::new(1).unwrap(), &record),
            Err(DropReason::BadLength { .. })
        ));
        assert!(matches!(
            p.send(&mut t, LinkId::new(9).unwrap(), &record),
            Err(DropReason::UnknownLink(9))
        ));
        b.links
            .get(LinkId::new(0).unwrap())
            .unwrap()
            .set_active_path(None);
        let mut t = b.pack_tx();
        assert_eq!(
            p.send(&mut t, LinkId::new(0).unwrap(), &record).err(),
            Some(DropReason::NoRoute)
        );
        assert_eq!(b.tx.free_slots(), free);
        assert_eq!(p.open_packets(), 0);
    }

    /// A best-effort record body: an overlay header's bytes as far as the flow's ids (proto
    /// byte 2, src_node at 8, flow_id at 24), then `fill`.
    fn best_effort_body(src: u16, flow: u32, fill: u8) -> Vec<u8> {
        let mut body = vec![fill; 100];
        body[2] = 0;
        body[8..10].copy_from_slice(&src.to_be_bytes());
        body[24..28].copy_from_slice(&flow.to_be_bytes());
        body
    }

    /// Node 3 runs two workers, so node 2 spreads its best-effort flows on link 1 over two
    /// sub-lanes (lanes 0 and 64): every flow stays on one, both are used, records keep their
    /// order within a flow, and a sequenced record (a link protocol's) stays on lane 0.
    #[test]
    fn best_effort_flows_spread_over_sub_lanes_and_each_keeps_one() {
        let two_workers = LINE.replace("name = \"n3\"", "name = \"n3\"\ncores = [0, 1]");
        let mut b = bench_with(&two_workers);
        assert_eq!(b.links.get(LinkId::new(1).unwrap()).unwrap().sub_lanes, 2);
        assert_eq!(b.links.get(LinkId::new(0).unwrap()).unwrap().sub_lanes, 1);
        let mut p = Packer::new(true);
        for round in 0..3u8 {
            for flow in 0..16u32 {
                let body = best_effort_body(1, flow, round);
                let record = DataRecord::Encoded {
                    body: &body,
                    link_seq: 0,
                    flags: RecordFlags::NONE,
                };
                let mut t = b.pack_tx();
                p.send(&mut t, LinkId::new(1).unwrap(), &record).unwrap();
            }
        }
        b.send(&mut p, 1, 5, 100);
        b.flush(&mut p);
        let mut lane_of_flow = std::collections::BTreeMap::new();
        let mut rounds: std::collections::BTreeMap<u32, Vec<u8>> = Default::default();
        let mut lanes = std::collections::BTreeSet::new();
        for (_, _, pkt) in b.tx.pending_packets() {
            let (h, _) = LinkRepr::parse(&pkt).unwrap();
            lanes.insert(h.lane);
            for r in Records::new(&pkt[LINK_HEADER_LEN..], PacketType::Data) {
                let r = r.unwrap();
                if r.header.link_seq != 0 {
                    assert_eq!(h.lane, 0, "a sequenced record left sub-lane 0");
                    continue;
                }
                let flow = u32::from_be_bytes(r.body[24..28].try_into().unwrap());
                let previous = lane_of_flow.insert(flow, h.lane);
                assert!(previous.is_none_or(|l| l == h.lane), "flow {flow} split");
                rounds.entry(flow).or_default().push(r.body[99]);
            }
        }
        assert_eq!(
            lanes,
            [0u8, 64].into_iter().collect(),
            "both sub-lanes used"
        );
        assert_eq!(lane_of_flow.len(), 16);
        assert!(
            rounds.values().all(|r| r == &[0, 1, 2]),
            "order kept: {rounds:?}"
        );
    }
}
