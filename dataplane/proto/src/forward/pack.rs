//! Packing data records into one link packet: the paper's flow aggregation, done per next hop.
//!
//! A worker that sends several data records to the same link and path in one turn can put them
//! into one datagram: one link header, one syscall share, one AEAD seal and one tag for all of
//! them. [`LinkSender::open_data`] writes the link header of a data packet into a buffer and
//! returns an [`OpenData`]; [`OpenData::append`] adds records while they fit;
//! [`LinkSender::close_data`] zeroes the tag space and seals the packet (on a keyed link) once
//! no more records come. The receiver needs nothing new: it already walks every record of a
//! packet (`Forwarder::handle_datagram`), and every record keeps its own link sequence, flags
//! and overlay header, so link protocols see each record as before.
//!
//! Nothing here holds a record back in time: the engine closes every open packet at the end of
//! the turn that opened it, so packing adds no latency beyond the turn (docs/dataplane.md).

use weft_shared::DropReason;
use weft_shared::ids::{LinkId, PathId};
use weft_shared::wire::lane::flow_sub_lane;
use weft_shared::wire::{
    DataRepr, EmitError, LINK_HEADER_LEN, LinkProto, MAX_DATAGRAM_LEN, PacketType, RecordFlags,
    RecordKind, RecordWriter,
};

use super::sender::{LinkSender, emit_error_drop};

/// One data record to write: already encoded (forwarded, or kept by a link protocol for
/// retransmission) or a locally originated message encoded in place.
#[derive(Clone, Copy, Debug)]
pub enum DataRecord<'a> {
    /// An encoded record body with its record header fields.
    Encoded {
        /// The record body (overlay header, fragment header, payload).
        body: &'a [u8],
        /// The link protocol's sequence number, 0 for best effort.
        link_seq: u32,
        /// [`RecordFlags::RETRANSMIT`] on a copy, else none.
        flags: RecordFlags,
    },
    /// A message to encode, best effort (link_seq 0, no flags).
    Message(&'a DataRepr<'a>),
}

impl DataRecord<'_> {
    /// Bytes the record takes in a packet, its header included.
    pub fn wire_len(&self) -> usize {
        use weft_shared::wire::{RECORD_HEADER_LEN, RecordBody};
        RECORD_HEADER_LEN
            + match self {
                DataRecord::Encoded { body, .. } => body.len(),
                DataRecord::Message(m) => m.body_len(),
            }
    }

    /// The sub-lane of this worker the record goes on, on a link with `subs` sub-lanes: a
    /// best-effort record's flow picks one ([`flow_sub_lane`], from the source node and flow
    /// id, so a flow's records keep their order); anything else (reliable, real-time, a record
    /// with a link sequence or flags, a body too short to say) goes on sub-lane 0, the lane
    /// its link protocol's receiver tracks.
    pub fn sub_lane(&self, subs: u8) -> u8 {
        if subs <= 1 {
            return 0;
        }
        match *self {
            DataRecord::Encoded {
                body,
                link_seq: 0,
                flags,
            } if flags == RecordFlags::NONE => {
                let field = |at: usize, n: usize| body.get(at..at + n);
                match (field(2, 1), field(8, 2), field(24, 4)) {
                    (Some(&[proto]), Some(&[a, b]), Some(&[c, d, e, f]))
                        if proto == LinkProto::BestEffort as u8 =>
                    {
                        flow_sub_lane(
                            u16::from_be_bytes([a, b]),
                            u32::from_be_bytes([c, d, e, f]),
                            subs,
                        )
                    }
                    _ => 0,
                }
            }
            DataRecord::Message(m) if m.overlay.link_proto == LinkProto::BestEffort => {
                flow_sub_lane(m.overlay.src.get(), m.overlay.flow.0, subs)
            }
            _ => 0,
        }
    }

    fn write(&self, w: &mut RecordWriter<'_>) -> Result<(), EmitError> {
        match *self {
            DataRecord::Encoded {
                body,
                link_seq,
                flags,
            } => w.push_bytes(RecordKind::Data, flags, link_seq, body),
            DataRecord::Message(m) => w.push(RecordFlags::NONE, 0, m),
        }
    }
}

/// A data packet whose link header is written and which takes records until it is closed.
/// It remembers only lengths: the caller keeps the buffer and passes it to every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenData {
    link: LinkId,
    path: PathId,
    /// The sub-lane the packet was numbered on.
    sub: u8,
    /// Body bytes written so far (after the link header).
    body_len: usize,
    /// The most body bytes the packet may carry (its size limit less header and tag).
    body_limit: usize,
    /// Tag bytes after the body: 16 on a keyed link, else 0.
    trailer: usize,
    records: u32,
}

impl OpenData {
    /// The link the packet goes out on.
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// The path the packet goes out on.
    pub fn path(&self) -> PathId {
        self.path
    }

    /// The sub-lane the packet goes out on.
    pub fn sub(&self) -> u8 {
        self.sub
    }

    /// Records in the packet.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// Body bytes still free for records (record headers included).
    pub fn room(&self) -> usize {
        self.body_limit - self.body_len
    }

    /// Appends `record` to the packet in `buf` (the buffer it was opened in). `Ok(false)` if
    /// it does not fit (the packet is unchanged: close it and open another); an error if the
    /// record itself is invalid.
    pub fn append(&mut self, buf: &mut [u8], record: &DataRecord<'_>) -> Result<bool, DropReason> {
        let start = LINK_HEADER_LEN + self.body_len;
        let Some(rest) = buf.get_mut(start..) else {
            return Ok(false);
        };
        let mut w = RecordWriter::new(rest, self.room(), PacketType::Data);
        match record.write(&mut w) {
            Ok(()) => {
                self.body_len += w.len();
                self.records += 1;
                Ok(true)
            }
            Err(EmitError::BufferTooSmall { .. }) => Ok(false),
            Err(e) => Err(emit_error_drop(e)),
        }
    }
}

impl LinkSender {
    /// Writes the link header of a data packet on `link`, `path` and this worker's sub-lane
    /// `sub` (0 unless the packet carries only best-effort records, [`DataRecord::sub_lane`])
    /// into `buf` and opens it for records; the packet will be at most `max_len` bytes, tag
    /// included. Consumes a packet number, so open a packet only with a record to put in it.
    pub fn open_data(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        sub: u8,
        max_len: usize,
    ) -> Result<OpenData, DropReason> {
        let header = self.next_header_on(link, path, PacketType::Data, sub)?;
        let max_len = max_len.min(buf.len()).min(MAX_DATAGRAM_LEN);
        let trailer = header.trailer_len();
        let body_limit =
            max_len
                .checked_sub(LINK_HEADER_LEN + trailer)
                .ok_or(DropReason::BadLength {
                    field: "packet.len",
                    value: max_len,
                })?;
        header.emit(buf).map_err(emit_error_drop)?;
        Ok(OpenData {
            link,
            path,
            sub,
            body_len: 0,
            body_limit,
            trailer,
            records: 0,
        })
    }

    /// Ends the packet `open` in `buf`: zeroes the tag space, seals it on a keyed link and
    /// returns the datagram's length. A packet without records is refused.
    pub fn close_data(&self, buf: &mut [u8], open: &OpenData) -> Result<usize, DropReason> {
        if open.records == 0 {
            return Err(DropReason::BadField {
                field: "packet.records",
                value: 0,
            });
        }
        let end = LINK_HEADER_LEN + open.body_len;
        let len = end + open.trailer;
        buf.get_mut(end..len)
            .ok_or(DropReason::BadLength {
                field: "packet.len",
                value: len,
            })?
            .fill(0);
        self.seal(buf, open.link, len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use weft_shared::ids::{Incarnation, NodeId};
    use weft_shared::wire::{RECORD_HEADER_LEN, Records};

    use super::*;

    fn sender() -> LinkSender {
        LinkSender::new(NodeId::new(1).unwrap(), Incarnation(7), 0)
    }

    fn link() -> LinkId {
        LinkId::new(3).unwrap()
    }

    fn path() -> PathId {
        PathId::new(0).unwrap()
    }

    /// The (link_seq, flags, body) of every data record of a plaintext packet.
    fn records(packet: &[u8]) -> Vec<(u32, RecordFlags, Vec<u8>)> {
        Records::new(&packet[LINK_HEADER_LEN..], PacketType::Data)
            .map(|r| {
                let r = r.unwrap();
                assert_eq!(r.header.kind, RecordKind::Data);
                (r.header.link_seq, r.header.flags, r.body.to_vec())
            })
            .collect()
    }

    #[test]
    fn records_pack_until_the_limit_and_come_out_in_order() {
        let mut s = sender();
        let mut buf = [0u8; 1500];
        let mut open = s.open_data(&mut buf, link(), path(), 0, 200).unwrap();
        let body = [0xab; 40];
        let mut n = 0u32;
        while open
            .append(
                &mut buf,
                &DataRecord::Encoded {
                    body: &body,
                    link_seq: n,
                    flags: RecordFlags::NONE,
                },
            )
            .unwrap()
        {
            n += 1;
        }
        // (200 - 24) / (8 + 40) = 3 records fit, the 4th does not.
        assert_eq!(n, 3);
        assert_eq!(open.records(), 3);
        let len = s.close_data(&mut buf, &open).unwrap();
        assert_eq!(len, LINK_HEADER_LEN + 3 * (RECORD_HEADER_LEN + 40));
        let got = records(&buf[..len]);
        assert_eq!(got.len(), 3);
        for (i, (seq, flags, b)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u32);
            assert_eq!(*flags, RecordFlags::NONE);
            assert_eq!(b.as_slice(), &body);
        }
    }

    #[test]
    fn an_empty_packet_is_refused_and_a_full_one_is_left_unchanged() {
        let mut s = sender();
        let mut buf = [0u8; 256];
        let mut open = s.open_data(&mut buf, link(), path(), 0, 100).unwrap();
        assert!(s.close_data(&mut buf, &open).is_err());
        let big = [1u8; 90];
        let before = open;
        let fits = open
            .append(
                &mut buf,
                &DataRecord::Encoded {
                    body: &big,
                    link_seq: 0,
                    flags: RecordFlags::NONE,
                },
            )
            .unwrap();
        assert!(!fits);
        assert_eq!(open, before);
    }

    #[test]
    fn a_limit_below_the_header_is_a_clear_error() {
        let mut s = sender();
        let mut buf = [0u8; 64];
        assert!(matches!(
            s.open_data(&mut buf, link(), path(), 0, 10),
            Err(DropReason::BadLength { .. })
        ));
    }

    /// Only best-effort records with an overlay header's flow ids pick a sub-lane; sequenced
    /// records, copies, other link protocols and short bodies stay on sub-lane 0.
    #[test]
    fn the_sub_lane_comes_from_a_best_effort_flow_only() {
        let mut body = vec![0u8; 44];
        body[8..10].copy_from_slice(&5u16.to_be_bytes());
        let encoded = |body: &[u8], link_seq, flags| {
            DataRecord::Encoded {
                body,
                link_seq,
                flags,
            }
            .sub_lane(4)
        };
        let lanes: std::collections::BTreeSet<u8> = (0..64u32)
            .map(|flow| {
                body[24..28].copy_from_slice(&flow.to_be_bytes());
                let s = encoded(&body, 0, RecordFlags::NONE);
                assert_eq!(s, weft_shared::wire::lane::flow_sub_lane(5, flow, 4));
                assert_eq!(encoded(&body, 9, RecordFlags::NONE), 0, "sequenced");
                assert_eq!(encoded(&body, 0, RecordFlags::RETRANSMIT), 0, "a copy");
                let single = DataRecord::Encoded {
                    body: &body,
                    link_seq: 0,
                    flags: RecordFlags::NONE,
                };
                assert_eq!(single.sub_lane(1), 0, "a link without sub-lanes");
                s
            })
            .collect();
        assert_eq!(lanes.len(), 4, "64 flows use every sub-lane");
        body[2] = LinkProto::Realtime as u8;
        assert!((0..64u32).all(|flow| {
            body[24..28].copy_from_slice(&flow.to_be_bytes());
            encoded(&body, 0, RecordFlags::NONE) == 0
        }));
        assert_eq!(encoded(&body[..20], 0, RecordFlags::NONE), 0, "too short");
    }
}
