//! Building the generator's data packets and reading the sink's, with the project's wire types.
//!
//! [`DataStream`] writes best-effort unicast data records as a real source node would (TTL
//! [`DEFAULT_TTL`], its incarnation, one flow id per flow, one sequence space per flow), each
//! payload starting with the probe header of `weft-send` ([`weft_client::probe`]), packed
//! several to a link packet with [`PacketWriter`]. [`read_data_packet`] walks a received link
//! packet record by record with the same checks as [`weft_shared::wire::parse_packet`] and
//! hands every data payload to [`RecvStats`], as `weft-recv` does with its deliveries.

use hdrhistogram::Histogram;
use weft_client::probe::ProbeHeader;
use weft_client::report::RecvStats;
use weft_proto::forward::DEFAULT_TTL;
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, NodeId, Port};
use weft_shared::wire::{
    DataRepr, Delivery, EmitError, LINK_HEADER_LEN, LinkProto, LinkRepr, Message,
    OVERLAY_HEADER_LEN, OverlayRepr, Packet, PacketType, PacketWriter, RECORD_HEADER_LEN,
    RecordFlags, Route, Strikes,
};

/// Bytes one data record of `payload` bytes takes in a packet (record + overlay header).
pub const fn record_len(payload: usize) -> usize {
    RECORD_HEADER_LEN + OVERLAY_HEADER_LEN + payload
}

/// How many data records of `payload` bytes fit in one unkeyed link packet of `max_len` bytes.
pub const fn records_per_packet(payload: usize, max_len: usize) -> usize {
    max_len.saturating_sub(LINK_HEADER_LEN) / record_len(payload)
}

/// The source side of the generator's flows (see the module doc).
#[derive(Clone, Debug)]
pub struct DataStream {
    src: NodeId,
    src_port: Port,
    dst: NodeId,
    dst_port: Port,
    src_incarnation: Incarnation,
    /// Next sequence number per flow.
    next_seq: Vec<u64>,
    next_flow: usize,
    payload: Vec<u8>,
}

impl DataStream {
    /// `flows` (at least 1) flows of `size`-byte messages from `src:src_port` to
    /// `dst:dst_port`; the payload filler is a fixed pattern.
    pub fn new(
        src: NodeId,
        src_port: Port,
        dst: NodeId,
        dst_port: Port,
        src_incarnation: Incarnation,
        flows: u32,
        size: usize,
    ) -> Self {
        DataStream {
            src,
            src_port,
            dst,
            dst_port,
            src_incarnation,
            next_seq: vec![0; flows.max(1) as usize],
            next_flow: 0,
            payload: vec![0x5a; size],
        }
    }

    /// Messages written so far (over all flows).
    pub fn written(&self) -> u64 {
        self.next_seq.iter().sum()
    }

    /// Writes one data packet with link header `header` and up to `records` messages (flows
    /// in turn) stamped `sent_ns` into `buf`, at most `max_len` bytes. Returns the datagram
    /// length and the messages written (at least 1, or an error).
    pub fn write_packet(
        &mut self,
        buf: &mut [u8],
        header: &LinkRepr,
        max_len: usize,
        records: usize,
        sent_ns: u64,
    ) -> Result<(usize, usize), EmitError> {
        let mut w = PacketWriter::new(buf, header, max_len)?;
        let mut n = 0;
        while n < records {
            let flow = self.next_flow;
            let seq = self.next_seq[flow];
            ProbeHeader {
                flow_index: flow as u32,
                seq,
                sent_ns,
            }
            .write(&mut self.payload);
            let data = DataRepr {
                overlay: OverlayRepr {
                    route: Route::Unicast(self.dst),
                    ttl: DEFAULT_TTL,
                    link_proto: LinkProto::BestEffort,
                    delivery: Delivery::AsSoonAsOrdered,
                    priority: 0,
                    strikes: Strikes::NONE,
                    src: self.src,
                    src_port: self.src_port,
                    dst_port: self.dst_port,
                    src_incarnation: self.src_incarnation,
                    flow: FlowId(flow as u32 + 1),
                    seq,
                    deadline_us: None,
                    age_us: 0,
                },
                fragment: None,
                payload: &self.payload,
            };
            match w.records().push(RecordFlags::NONE, 0, &data) {
                Ok(()) => {}
                Err(EmitError::BufferTooSmall { .. }) if n > 0 => break,
                Err(e) => return Err(e),
            }
            self.next_seq[flow] += 1;
            self.next_flow = (flow + 1) % self.next_seq.len();
            n += 1;
        }
        Ok((w.finish()?, n))
    }
}

/// What one received data packet held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataCounts {
    /// Data records recorded.
    pub records: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
}

/// Reads one data link packet: every data record's payload goes to `stats` with the arrival
/// time `now_ns`, and its probe latency (ns) also to `interval` (the sink's histogram of the
/// current timeline interval). Records before a bad one stand (as in the data plane); the
/// error is the first problem found.
pub fn read_data_packet(
    datagram: &[u8],
    now_ns: u64,
    stats: &mut RecvStats,
    counts: &mut DataCounts,
    interval: &mut Histogram<u64>,
) -> Result<(), DropReason> {
    read_data_packet_from(datagram, None, now_ns, stats, counts, interval, None).map(|_| ())
}

/// [`read_data_packet`], but with `sender` set only a packet whose link header names that
/// node as its sender is recorded: `Ok(false)` for one from any other node (nothing recorded).
/// The one-thread loop uses it to tell node 2's forwarded packets from the generator's own
/// (`--direct`, where the sink expects the generator's).
///
/// `now_ns` is the time the latency ends on (the sink's kernel receive stamp, see
/// [`super::rx_stamp`]); with `read` given, each probe's latency to `read.0` (when the sink's
/// loop read the packet) also goes to `read.1`.
pub fn read_data_packet_from(
    datagram: &[u8],
    sender: Option<NodeId>,
    now_ns: u64,
    stats: &mut RecvStats,
    counts: &mut DataCounts,
    interval: &mut Histogram<u64>,
    mut read: Option<(u64, &mut Histogram<u64>)>,
) -> Result<bool, DropReason> {
    let packet = Packet::parse(datagram)?;
    if packet.header.packet_type != PacketType::Data {
        return Err(DropReason::BadField {
            field: "link.packet_type",
            value: packet.header.packet_type.byte().into(),
        });
    }
    if sender.is_some_and(|s| s != packet.header.sender) {
        return Ok(false);
    }
    for record in packet.records() {
        if let Message::Data(data) = Message::parse(&record?)? {
            let o = &data.overlay;
            stats.record(o.src, o.src_port, data.payload, o.age_us, now_ns);
            if let Some(p) = ProbeHeader::read(data.payload) {
                interval.saturating_record(now_ns.saturating_sub(p.sent_ns).max(1));
                if let Some((read_ns, h)) = read.as_mut() {
                    h.saturating_record(read_ns.saturating_sub(p.sent_ns).max(1));
                }
            }
            counts.records += 1;
            counts.payload_bytes += data.payload.len() as u64;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_shared::ids::{LinkId, PathId};
    use weft_shared::wire::{MTU_1500_UDP_PAYLOAD, parse_packet};

    fn stream(flows: u32, size: usize) -> DataStream {
        let n = |i| NodeId::new(i).unwrap();
        DataStream::new(n(1), Port(9), n(3), Port(700), Incarnation(42), flows, size)
    }

    fn header(counter: u64) -> LinkRepr {
        LinkRepr {
            packet_type: PacketType::Data,
            auth: false,
            key_epoch: 0,
            lane: 0,
            sender: NodeId::new(1).unwrap(),
            link: LinkId::new(0).unwrap(),
            path: PathId::new(0).unwrap(),
            sender_incarnation: Incarnation(42),
            packet_number: counter,
        }
    }

    #[test]
    fn record_budget_matches_the_nodes_largest_payload() {
        // 1472 − 24 − 8 − 44 = 1396 B: one record of the largest single-packet payload.
        assert_eq!(records_per_packet(1396, MTU_1500_UDP_PAYLOAD), 1);
        assert_eq!(records_per_packet(1397, MTU_1500_UDP_PAYLOAD), 0);
        assert_eq!(records_per_packet(100, MTU_1500_UDP_PAYLOAD), 9);
    }

    #[test]
    fn a_generated_packet_parses_back_to_the_records_written() {
        let mut s = stream(3, 100);
        let mut buf = [0u8; 2048];
        let (len, n) = s
            .write_packet(&mut buf, &header(5), MTU_1500_UDP_PAYLOAD, 9, 1234)
            .unwrap();
        assert_eq!((len, n), (LINK_HEADER_LEN + 9 * record_len(100), 9));
        let summary = parse_packet(&buf[..len]).unwrap();
        assert_eq!(summary.header, header(5));
        assert_eq!((summary.records, summary.data_payload_bytes), (9, 900));

        // Flows in turn, each its own sequence space, probe header inside.
        let packet = Packet::parse(&buf[..len]).unwrap();
        let mut seen = Vec::new();
        for r in packet.records() {
            let Message::Data(d) = Message::parse(&r.unwrap()).unwrap() else {
                panic!("not data");
            };
            let probe = ProbeHeader::read(d.payload).unwrap();
            assert_eq!(d.overlay.flow.0, probe.flow_index + 1);
            assert_eq!(d.overlay.seq, probe.seq);
            assert_eq!(probe.sent_ns, 1234);
            assert_eq!(d.overlay.route, Route::Unicast(NodeId::new(3).unwrap()));
            assert_eq!(
                (d.overlay.dst_port, d.overlay.ttl),
                (Port(700), DEFAULT_TTL)
            );
            seen.push((probe.flow_index, probe.seq));
        }
        let want: Vec<_> = (0..9u64).map(|i| ((i % 3) as u32, i / 3)).collect();
        assert_eq!(seen, want);
        assert_eq!(s.written(), 9);
    }

    #[test]
    fn a_packet_takes_only_what_fits_and_the_sink_counts_it_as_weft_recv_would() {
        let mut s = stream(1, 1000);
        let mut buf = [0u8; 4096];
        // Asked for 4, only one 1000-byte record fits a 1472-byte packet.
        let (len, n) = s
            .write_packet(&mut buf, &header(1), MTU_1500_UDP_PAYLOAD, 4, 10)
            .unwrap();
        assert_eq!(n, 1);
        let (len2, _) = s
            .write_packet(&mut buf[len..], &header(2), MTU_1500_UDP_PAYLOAD, 1, 10)
            .unwrap();
        let mut stats = RecvStats::new();
        let mut c = DataCounts::default();
        let mut h = Histogram::<u64>::new(3).unwrap();
        read_data_packet(&buf[len..len + len2], 20, &mut stats, &mut c, &mut h).unwrap();
        read_data_packet(&buf[..len], 30, &mut stats, &mut c, &mut h).unwrap();
        assert_eq!((h.len(), h.max()), (2, 20));
        assert_eq!(
            c,
            DataCounts {
                records: 2,
                payload_bytes: 2000
            }
        );
        let sum = stats.summary(1.0);
        assert_eq!((sum.received, sum.reordered, sum.lost), (2, 1, 0));
        assert_eq!(sum.latency_us.max, 0.02);

        // A record too big for the limit is an error, not an empty packet.
        let mut big = stream(1, 1500);
        assert!(
            big.write_packet(&mut buf, &header(3), MTU_1500_UDP_PAYLOAD, 1, 0)
                .is_err()
        );
        // Garbage and truncated packets are reported, never a panic.
        assert!(read_data_packet(&[1, 0x81, 0], 0, &mut stats, &mut c, &mut h).is_err());
        assert!(read_data_packet(&buf[..len - 1], 0, &mut stats, &mut c, &mut h).is_err());
        assert_eq!(c.records, 2);
    }

    #[test]
    fn with_a_sender_given_only_that_nodes_packets_are_recorded() {
        let mut s = stream(1, 100);
        let mut buf = [0u8; 2048];
        // header() names node 1 as the sender.
        let (len, _) = s
            .write_packet(&mut buf, &header(1), MTU_1500_UDP_PAYLOAD, 9, 10)
            .unwrap();
        let mut stats = RecvStats::new();
        let mut c = DataCounts::default();
        let mut h = Histogram::<u64>::new(3).unwrap();
        let n = |i| NodeId::new(i).unwrap();
        let from2 = read_data_packet_from(
            &buf[..len],
            Some(n(2)),
            20,
            &mut stats,
            &mut c,
            &mut h,
            None,
        );
        assert_eq!(from2, Ok(false));
        assert_eq!((c.records, h.len()), (0, 0));
        let from1 = read_data_packet_from(
            &buf[..len],
            Some(n(1)),
            20,
            &mut stats,
            &mut c,
            &mut h,
            None,
        );
        assert_eq!(from1, Ok(true));
        assert_eq!(c.records, 9);
        assert_eq!(
            read_data_packet_from(&buf[..len], None, 20, &mut stats, &mut c, &mut h, None),
            Ok(true)
        );
        // With a read time, each probe's latency to it goes to a second histogram too.
        let mut read = Histogram::<u64>::new(3).unwrap();
        let mut h2 = Histogram::<u64>::new(3).unwrap();
        let res = read_data_packet_from(
            &buf[..len],
            None,
            25,
            &mut stats,
            &mut c,
            &mut h2,
            Some((90, &mut read)),
        );
        assert_eq!(res, Ok(true));
        assert_eq!((h2.len(), h2.max(), read.len(), read.max()), (9, 15, 9, 80));
        // A bad packet is an error whatever the sender filter.
        assert!(
            read_data_packet_from(&buf[..3], Some(n(1)), 0, &mut stats, &mut c, &mut h, None)
                .is_err()
        );
    }
}
