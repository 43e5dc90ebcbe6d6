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
use weft_shared::wire::{
    DataRepr, EmitError, LINK_HEADER_LEN, MAX_DATAGRAM_LEN, PacketType, RecordFlags, RecordKind,
    RecordWriter,
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
    /// Writes the link header of a data packet on `link`, `path` into `buf` and opens it for
    /// records; the packet will be at most `max_len` bytes, tag included. Consumes a packet
    /// number, so open a packet only with a record to put in it.
    pub fn open_data(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        max_len: usize,
    ) -> Result<OpenData, DropReason> {
        let header = self.next_header(link, path, PacketType::Data)?;
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
        let mut open = s.open_data(&mut buf, link(), path(), 200).unwrap();
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
        let mut open = s.open_data(&mut buf, link(), path(), 100).unwrap();
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
            s.open_data(&mut buf, link(), path(), 10),
            Err(DropReason::BadLength { .. })
        ));
    }
}
