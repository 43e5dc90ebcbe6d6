//! Building outgoing link packets into caller-supplied buffers: the link header with this node's
//! identity, the chosen path, the worker's lane (a sub-lane of it for best-effort data, see
//! [`weft_shared::wire::lane`]) and a packet number per (link, lane), then one record. On an authenticated link (the sender's [`AuthTable`] has keys for it) every packet
//! is AUTH with the current send epoch, and is sealed before the write returns, so whatever
//! queues it (alone or as one segment of a GSO send) queues a finished, sealed datagram.

use weft_shared::DropReason;

use crate::auth::AuthTable;
use weft_shared::ids::{Incarnation, LinkId, MAX_LINKS, NodeId, PathId};
use weft_shared::wire::lane::{MAX_SUB_LANES, lane_byte};
use weft_shared::wire::{
    AckRepr, ControlRepr, DataRepr, EmitError, HelloRepr, KEY_EPOCH_SLOTS, LinkRepr, NackRepr,
    PacketType, PacketWriter, RecordFlags, RecordKind,
};

/// The TTL a locally originated data packet starts with: more hops than any sane overlay path.
pub const DEFAULT_TTL: u8 = 32;

/// Maps an emit failure to the drop the caller counts: a packet that does not fit is a length
/// problem, anything else a bad field.
pub fn emit_error_drop(e: EmitError) -> DropReason {
    match e {
        EmitError::BufferTooSmall { needed, .. } => DropReason::BadLength {
            field: "packet.len",
            value: needed,
        },
        EmitError::Invalid { field, value } => DropReason::BadField { field, value },
    }
}

/// Builds one worker's outgoing link packets. Packet numbers are `lane << 56 | counter` with one
/// counter per (link, sub-lane), so they are strictly increasing per (link, direction, lane,
/// incarnation) as `docs/wire.md` asks; lanes (a worker's sub-lanes) never share a number space.
#[derive(Clone, Debug)]
pub struct LinkSender {
    node: NodeId,
    incarnation: Incarnation,
    lane: u8,
    /// Next counter per (link id, sub-lane), at `link * MAX_SUB_LANES + sub` (fixed size:
    /// [`MAX_LINKS`] · [`MAX_SUB_LANES`] entries, allocated once).
    counters: Box<[u64]>,
    /// Keys and replay windows of the authenticated links.
    auth: AuthTable,
}

impl LinkSender {
    /// A sender for node `node` with data-plane incarnation `incarnation` (never 0) on `lane`.
    pub fn new(node: NodeId, incarnation: Incarnation, lane: u8) -> Self {
        LinkSender {
            node,
            incarnation,
            lane,
            counters: vec![0; usize::from(MAX_LINKS) * usize::from(MAX_SUB_LANES)]
                .into_boxed_slice(),
            auth: AuthTable::new(node),
        }
    }

    /// The authentication state (keys, send epochs, replay windows).
    pub fn auth(&self) -> &AuthTable {
        &self.auth
    }

    /// The authentication state, to install keys, note a peer's epoch or open packets.
    pub fn auth_mut(&mut self) -> &mut AuthTable {
        &mut self.auth
    }

    /// Seals the finished packet `buf[..len]` if its link is authenticated; returns `len`.
    pub(super) fn seal(
        &self,
        buf: &mut [u8],
        link: LinkId,
        len: usize,
    ) -> Result<usize, DropReason> {
        if self.auth.is_keyed(link) {
            let packet = buf.get_mut(..len).ok_or(DropReason::BadLength {
                field: "packet.len",
                value: len,
            })?;
            self.auth.seal(packet)?;
        }
        Ok(len)
    }

    /// The lane this sender stamps.
    pub fn lane(&self) -> u8 {
        self.lane
    }

    /// The header of the next packet on `link`, `path`, on this worker's sub-lane 0; consumes a
    /// packet number.
    pub fn next_header(
        &mut self,
        link: LinkId,
        path: PathId,
        packet_type: PacketType,
    ) -> Result<LinkRepr, DropReason> {
        self.next_header_on(link, path, packet_type, 0)
    }

    /// Like [`LinkSender::next_header`] on sub-lane `sub` (below the link's
    /// [`sub_lanes`](weft_shared::wire::lane::sub_lanes); best-effort data only).
    pub fn next_header_on(
        &mut self,
        link: LinkId,
        path: PathId,
        packet_type: PacketType,
        sub: u8,
    ) -> Result<LinkRepr, DropReason> {
        if sub >= MAX_SUB_LANES {
            return Err(DropReason::BadField {
                field: "link.sub_lane",
                value: sub.into(),
            });
        }
        let counter = self
            .counters
            .get_mut(usize::from(link.get()) * usize::from(MAX_SUB_LANES) + usize::from(sub))
            .ok_or(DropReason::UnknownLink(link.get()))?;
        let lane = lane_byte(self.lane, sub);
        let packet_number = LinkRepr::packet_number(lane, *counter).ok_or(
            DropReason::Unsupported("packet counter exhausted (restart with a new incarnation)"),
        )?;
        *counter += 1;
        let epoch = self.auth.send_epoch(link);
        Ok(LinkRepr {
            packet_type,
            auth: epoch.is_some(),
            key_epoch: epoch.map_or(0, |e| e % KEY_EPOCH_SLOTS),
            lane,
            sender: self.node,
            link,
            path,
            sender_incarnation: self.incarnation,
            packet_number,
        })
    }

    /// Writes a hello packet into `buf`; returns its length.
    pub fn write_hello(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        hello: &HelloRepr,
    ) -> Result<usize, DropReason> {
        let header = self.next_header(link, path, PacketType::Hello)?;
        // The hello announces the newest key epoch this node holds for the link.
        let hello = HelloRepr {
            key_epoch: self.auth.newest_epoch(link),
            ..*hello
        };
        let max_len = buf.len();
        let mut w = PacketWriter::new(buf, &header, max_len).map_err(emit_error_drop)?;
        w.records()
            .push(RecordFlags::NONE, 0, &hello)
            .map_err(emit_error_drop)?;
        let len = w.finish().map_err(emit_error_drop)?;
        self.seal(buf, link, len)
    }

    /// Writes a control packet carrying one envelope (already encoded, as in the inject ring)
    /// into `buf`; the envelope is checked first. Returns the packet length.
    pub fn write_control(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        envelope: &[u8],
        max_len: usize,
    ) -> Result<usize, DropReason> {
        ControlRepr::parse(envelope)?;
        self.write_record(buf, link, path, RecordKind::Control, envelope, max_len)
    }

    /// Writes a data packet with one record whose body is already encoded (a forwarded record)
    /// into `buf`, at most `max_len` bytes; returns the packet length.
    pub fn write_data_record(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        record_body: &[u8],
        max_len: usize,
    ) -> Result<usize, DropReason> {
        self.write_record(buf, link, path, RecordKind::Data, record_body, max_len)
    }

    /// Like [`LinkSender::write_data_record`] for a link protocol with sequences: the record
    /// header carries `link_seq` and `flags` ([`RecordFlags::RETRANSMIT`] on a copy).
    #[allow(
        clippy::too_many_arguments,
        reason = "the record header's fields, passed through"
    )]
    pub fn write_sequenced_data(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        record_body: &[u8],
        link_seq: u32,
        flags: RecordFlags,
        max_len: usize,
    ) -> Result<usize, DropReason> {
        let header = self.next_header(link, path, PacketType::Data)?;
        let mut w = PacketWriter::new(buf, &header, max_len).map_err(emit_error_drop)?;
        w.records()
            .push_bytes(RecordKind::Data, flags, link_seq, record_body)
            .map_err(emit_error_drop)?;
        let len = w.finish().map_err(emit_error_drop)?;
        self.seal(buf, link, len)
    }

    /// Writes a feedback packet carrying one Ack record into `buf`; returns its length.
    pub fn write_ack(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        ack: &AckRepr,
        max_len: usize,
    ) -> Result<usize, DropReason> {
        let header = self.next_header(link, path, PacketType::Feedback)?;
        let mut w = PacketWriter::new(buf, &header, max_len).map_err(emit_error_drop)?;
        w.records()
            .push(RecordFlags::NONE, 0, ack)
            .map_err(emit_error_drop)?;
        let len = w.finish().map_err(emit_error_drop)?;
        self.seal(buf, link, len)
    }

    /// Writes a feedback packet carrying one Nack record into `buf`; returns its length.
    pub fn write_nack(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        nack: &NackRepr,
        max_len: usize,
    ) -> Result<usize, DropReason> {
        let header = self.next_header(link, path, PacketType::Feedback)?;
        let mut w = PacketWriter::new(buf, &header, max_len).map_err(emit_error_drop)?;
        w.records()
            .push(RecordFlags::NONE, 0, nack)
            .map_err(emit_error_drop)?;
        let len = w.finish().map_err(emit_error_drop)?;
        self.seal(buf, link, len)
    }

    /// Writes a data packet with one record encoded from `data` (a locally originated message)
    /// into `buf`, at most `max_len` bytes; returns the packet length.
    pub fn write_data(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        data: &DataRepr<'_>,
        max_len: usize,
    ) -> Result<usize, DropReason> {
        let header = self.next_header(link, path, PacketType::Data)?;
        let mut w = PacketWriter::new(buf, &header, max_len).map_err(emit_error_drop)?;
        w.records()
            .push(RecordFlags::NONE, 0, data)
            .map_err(emit_error_drop)?;
        let len = w.finish().map_err(emit_error_drop)?;
        self.seal(buf, link, len)
    }

    fn write_record(
        &mut self,
        buf: &mut [u8],
        link: LinkId,
        path: PathId,
        kind: RecordKind,
        body: &[u8],
        max_len: usize,
    ) -> Result<usize, DropReason> {
        let header = self.next_header(link, path, kind.packet_type())?;
        let mut w = PacketWriter::new(buf, &header, max_len).map_err(emit_error_drop)?;
        w.records()
            .push_bytes(kind, RecordFlags::NONE, 0, body)
            .map_err(emit_error_drop)?;
        let len = w.finish().map_err(emit_error_drop)?;
        self.seal(buf, link, len)
    }
}
