//! Whole link packets: parse a datagram down to every record and data header, or build one.
//!
//! [`parse_packet`] is the full-packet parser that the tests and the `wire_parse` fuzz target
//! feed arbitrary bytes to. For a packet with AUTH, the body must be opened in place first (the
//! receiver verifies the tag before it trusts any record); until then only the link header is
//! meaningful.

use super::{
    AckRepr, ControlRepr, DataRepr, EmitError, HelloRepr, LINK_HEADER_LEN, LinkPacket, LinkProto,
    LinkRepr, MAX_DATAGRAM_LEN, NackRepr, RECORD_HEADER_LEN, Record, RecordFlags, RecordKind,
    RecordWriter, Records, TAG_LEN,
};
use crate::DropReason;

/// A datagram split into its checked link header, its body and its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The link header.
    pub header: LinkRepr,
    /// The body: records (plaintext once opened).
    pub body: &'a [u8],
    /// The AEAD tag, present exactly when `header.auth` is set.
    pub tag: Option<&'a [u8; TAG_LEN]>,
}

impl<'a> Packet<'a> {
    /// Checks the link header and splits the datagram; records are checked as they are read.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, DropReason> {
        let (header, body, tag) = LinkPacket::new_checked(datagram)?.into_parts();
        Ok(Packet { header, body, tag })
    }

    /// The records of the (plaintext) body.
    pub fn records(&self) -> Records<'a> {
        Records::new(self.body, self.header.packet_type)
    }
}

/// The parsed body of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A hello.
    Hello(HelloRepr),
    /// An ack.
    Ack(AckRepr),
    /// A nack.
    Nack(NackRepr),
    /// A control envelope.
    Control(ControlRepr<'a>),
    /// Overlay data.
    Data(DataRepr<'a>),
}

impl<'a> Message<'a> {
    /// Parses the body of `record` according to its kind.
    pub fn parse(record: &Record<'a>) -> Result<Self, DropReason> {
        let body = record.body;
        Ok(match record.header.kind {
            RecordKind::Hello => Message::Hello(HelloRepr::parse(body)?),
            RecordKind::Ack => Message::Ack(AckRepr::parse(body)?),
            RecordKind::Nack => Message::Nack(NackRepr::parse(body)?),
            RecordKind::Control => Message::Control(ControlRepr::parse(body)?),
            RecordKind::Data => {
                let data = DataRepr::parse(body)?;
                // Best effort has no link sequence and never retransmits.
                let header = &record.header;
                if data.overlay.link_proto == LinkProto::BestEffort {
                    if header.link_seq != 0 {
                        return Err(DropReason::BadField {
                            field: "record.link_seq",
                            value: header.link_seq.into(),
                        });
                    }
                    if header.flags != RecordFlags::NONE {
                        return Err(DropReason::ReservedBitsSet {
                            field: "record.flags",
                        });
                    }
                }
                Message::Data(data)
            }
        })
    }

    /// The record kind of this message.
    pub fn kind(&self) -> RecordKind {
        match self {
            Message::Hello(_) => RecordKind::Hello,
            Message::Ack(_) => RecordKind::Ack,
            Message::Nack(_) => RecordKind::Nack,
            Message::Control(_) => RecordKind::Control,
            Message::Data(_) => RecordKind::Data,
        }
    }

    /// Appends this message as one record.
    pub fn push_to(
        &self,
        writer: &mut RecordWriter<'_>,
        flags: RecordFlags,
        link_seq: u32,
    ) -> Result<(), EmitError> {
        match self {
            Message::Hello(m) => writer.push(flags, link_seq, m),
            Message::Ack(m) => writer.push(flags, link_seq, m),
            Message::Nack(m) => writer.push(flags, link_seq, m),
            Message::Control(m) => writer.push(flags, link_seq, m),
            Message::Data(m) => writer.push(flags, link_seq, m),
        }
    }
}

/// What [`parse_packet`] found in a valid datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketSummary {
    /// The link header.
    pub header: LinkRepr,
    /// Number of records (at least 1).
    pub records: usize,
    /// Payload bytes of all data records.
    pub data_payload_bytes: usize,
}

/// Parses a whole datagram: link header, every record header and every record body, including
/// the overlay, bitmask and fragment headers of data. Returns the first problem found. The body
/// of an AUTH packet is taken as already opened.
pub fn parse_packet(datagram: &[u8]) -> Result<PacketSummary, DropReason> {
    let packet = Packet::parse(datagram)?;
    let mut records = 0;
    let mut data_payload_bytes = 0;
    for record in packet.records() {
        if let Message::Data(data) = Message::parse(&record?)? {
            data_payload_bytes += data.payload.len();
        }
        records += 1;
    }
    Ok(PacketSummary {
        header: packet.header,
        records,
        data_payload_bytes,
    })
}

/// Builds one datagram in a caller-supplied buffer: the link header, then records up to a
/// datagram size limit, then room for the tag if the header says AUTH.
#[derive(Debug)]
pub struct PacketWriter<'a> {
    header: LinkRepr,
    records: RecordWriter<'a>,
}

impl<'a> PacketWriter<'a> {
    /// Writes `header` into `buf` and prepares for records; the datagram will be at most
    /// `max_len` bytes (e.g. [`MTU_1500_UDP_PAYLOAD`](super::MTU_1500_UDP_PAYLOAD)), tag
    /// included.
    pub fn new(buf: &'a mut [u8], header: &LinkRepr, max_len: usize) -> Result<Self, EmitError> {
        let max_len = max_len.min(buf.len()).min(MAX_DATAGRAM_LEN);
        let trailer = header.trailer_len();
        let needed = LINK_HEADER_LEN + RECORD_HEADER_LEN + trailer;
        if max_len < needed {
            return Err(EmitError::BufferTooSmall {
                needed,
                available: max_len,
            });
        }
        header.emit(buf)?;
        let body = &mut buf[LINK_HEADER_LEN..];
        let limit = max_len - LINK_HEADER_LEN - trailer;
        Ok(PacketWriter {
            header: *header,
            records: RecordWriter::new(body, limit, header.packet_type),
        })
    }

    /// The record writer for the body.
    pub fn records(&mut self) -> &mut RecordWriter<'a> {
        &mut self.records
    }

    /// Ends the packet: zeroes the tag space (sealing fills it in) and returns the datagram
    /// length. A packet needs at least one record.
    pub fn finish(self) -> Result<usize, EmitError> {
        if self.records.is_empty() {
            return Err(EmitError::Invalid {
                field: "packet.records",
                value: 0,
            });
        }
        let trailer = self.header.trailer_len();
        let (body, len) = self.records.into_parts();
        if let Some(tag) = body.get_mut(len..len + trailer) {
            tag.fill(0);
        }
        Ok(LINK_HEADER_LEN + len + trailer)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests;
