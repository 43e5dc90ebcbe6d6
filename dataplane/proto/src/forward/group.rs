//! Multicast in the pipeline: a record addressed to a group is looked up by (group, source
//! node), delivered here when this node has members, and copied onto every out-link of the
//! source's shortest-path tree (`docs/groups.md`).
//!
//! The tree comes from the control plane, which computes it the same way on every node, so a
//! node sends one copy per tree link and each member node gets one copy. A copy is never sent
//! back on the link the record came in on, whatever the FIB says (two nodes with FIBs of
//! different generations could otherwise bounce a record until its TTL runs out). Each copy
//! has its own age (the next link's one-way delay differs) and, for real-time and reliable
//! flows, goes to that link's own sender: recovery is per tree link, hop by hop.

use weft_shared::DropReason;
use weft_shared::ids::{GroupId, LinkId, NodeId};
use weft_shared::shm::fib::{FibTable, LinkMask};
use weft_shared::wire::{DataPacket, LinkProto, LinkRepr, RecordFlags};

use super::{
    Forwarder, LinkTable, LocalDelivery, PipelineOutput, RtDelivery, Times, payload_of, us,
};
use crate::realtime::RtMeta;

/// Where this node sends a multicast record of one (group, source) tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// The tree's out-links from this node (only links this node has).
    pub links: LinkMask,
    /// Whether this node has members to deliver to.
    pub local: bool,
}

impl Fanout {
    /// The out-links, without `arrival` (the link the record came in on, if any).
    pub fn copies(&self, arrival: Option<LinkId>) -> impl Iterator<Item = LinkId> + '_ {
        self.links.iter().filter(move |&l| Some(l) != arrival)
    }
}

impl Forwarder {
    /// The fan-out of a record of `group` sent by node `source`: [`DropReason::NoMembers`]
    /// when the FIB has no entry (no members, or this node is not on the source's tree) or
    /// the entry names only links this node does not have.
    pub fn multicast_fanout(
        &self,
        group: GroupId,
        source: NodeId,
        fib: &FibTable,
        links: &impl LinkTable,
    ) -> Result<Fanout, DropReason> {
        let route = fib.multicast(group, source).ok_or(DropReason::NoMembers)?;
        let mut mask = *route.links;
        for l in route.links.iter() {
            if links.link(l).is_none() {
                mask.remove(l);
            }
        }
        if mask.is_empty() && !route.local_delivery {
            return Err(DropReason::NoMembers);
        }
        Ok(Fanout {
            links: mask,
            local: route.local_delivery,
        })
    }

    /// A best-effort or real-time multicast record that arrived on `rx.link`: delivered here
    /// if the node has members, and one copy per other tree link. A copy that cannot go (TTL
    /// spent, past its deadline, the link's sender refused it) is counted and the others go on.
    #[allow(
        clippy::too_many_arguments,
        reason = "the pipeline's inputs, passed through"
    )]
    pub(super) fn multicast(
        &self,
        rx: &LinkRepr,
        times: Times,
        residence_us: u32,
        body: &mut [u8],
        fanout: &Fanout,
        recovered: bool,
        links: &impl LinkTable,
        out: &mut impl PipelineOutput,
    ) {
        let (base_age, realtime) = match DataPacket::new_checked(&*body) {
            Ok(d) => (
                d.overlay().age_us,
                d.overlay().link_proto == LinkProto::Realtime,
            ),
            Err(reason) => return out.drop_record(reason),
        };
        if fanout.local
            && let Err(reason) = deliver_copy(rx, base_age, residence_us, recovered, body, out)
        {
            out.drop_record(reason);
        }
        if fanout.copies(Some(rx.link)).next().is_none() {
            return;
        }
        if let Err(reason) = decrement_ttl(body) {
            return out.drop_record(reason);
        }
        let mut copies = 0;
        for link in fanout.copies(Some(rx.link)) {
            let delay = links.link(link).map_or(0, |l| l.one_way_delay_us);
            let age = base_age.saturating_add(residence_us).saturating_add(delay);
            let sent = set_age(body, age).and_then(|remaining| {
                if !realtime {
                    out.forward(link, 0, RecordFlags::NONE, body);
                    return Ok(());
                }
                let remaining = remaining.unwrap_or(0);
                if remaining == 0 {
                    return Err(DropReason::Late);
                }
                let strikes = DataPacket::new_checked(&*body)?.overlay().strikes;
                let one_way = us(delay);
                let meta = RtMeta {
                    strikes,
                    deadline: times
                        .now
                        .saturating_add(one_way)
                        .saturating_add(us(remaining)),
                };
                let rt = out
                    .realtime()
                    .ok_or(DropReason::Unsupported("real-time flows on this node"))?;
                let link_seq = rt.send(times.now, link, one_way, meta, body)?;
                out.forward(link, link_seq, RecordFlags::NONE, body);
                Ok(())
            });
            match sent {
                Ok(()) => copies += 1,
                Err(reason) => out.drop_record(reason),
            }
        }
        out.multicast_copies(copies);
    }

    /// A new reliable multicast record from `rx.link`: every tree link's sender must have room,
    /// or the record is refused whole ([`DropReason::QueueFull`]: not acked, so the previous
    /// hop sends it again and no link gets it twice). Then it is delivered here if the node
    /// has members, and each tree link's sender takes a copy.
    #[allow(
        clippy::too_many_arguments,
        reason = "the pipeline's inputs, passed through"
    )]
    pub(super) fn multicast_reliable(
        &self,
        rx: &LinkRepr,
        times: Times,
        residence_us: u32,
        body: &mut [u8],
        fanout: &Fanout,
        links: &impl LinkTable,
        out: &mut impl PipelineOutput,
    ) -> Result<(), DropReason> {
        let rel = out
            .reliable()
            .ok_or(DropReason::Unsupported("reliable flows on this node"))?;
        if !fanout.copies(Some(rx.link)).all(|l| rel.has_room(l)) {
            return Err(DropReason::QueueFull);
        }
        let base_age = DataPacket::new_checked(&*body)?.overlay().age_us;
        if fanout.local
            && let Err(reason) = deliver_copy(rx, base_age, residence_us, false, body, out)
        {
            out.drop_record(reason);
        }
        if fanout.copies(Some(rx.link)).next().is_none() {
            return Ok(());
        }
        if let Err(reason) = decrement_ttl(body) {
            // Delivered here if it could be; the copies can never arrive.
            out.drop_record(reason);
            return Ok(());
        }
        let mut copies = 0;
        for link in fanout.copies(Some(rx.link)) {
            let delay = links.link(link).map_or(0, |l| l.one_way_delay_us);
            let age = base_age.saturating_add(residence_us).saturating_add(delay);
            let sent = set_age(body, age).and_then(|_| {
                let rel = out
                    .reliable()
                    .ok_or(DropReason::Unsupported("reliable flows on this node"))?;
                rel.send(times.now, link, us(delay.saturating_mul(2)), body)
                    .map(|_| ())
            });
            match sent {
                Ok(()) => copies += 1,
                Err(reason) => out.drop_record(reason),
            }
        }
        out.multicast_copies(copies);
        Ok(())
    }
}

/// Delivers the record in `body` to this node's members with its age set to `base_age` plus
/// the residence time.
fn deliver_copy(
    rx: &LinkRepr,
    base_age: u32,
    residence_us: u32,
    recovered: bool,
    body: &mut [u8],
    out: &mut impl PipelineOutput,
) -> Result<(), DropReason> {
    set_age(body, base_age.saturating_add(residence_us))?;
    let data = DataPacket::new_checked(&*body)?;
    let overlay = *data.overlay();
    let payload_len = data.payload().len();
    let realtime = RtDelivery::of(&overlay, recovered);
    let delivery = LocalDelivery::of(
        &overlay,
        overlay.age_us,
        realtime,
        payload_of(body, payload_len),
    );
    out.deliver(rx, &delivery, body);
    Ok(())
}

/// Sets the age of the data record in `body`; returns the real-time budget left, if any.
fn set_age(body: &mut [u8], age_us: u32) -> Result<Option<u32>, DropReason> {
    let mut data = DataPacket::new_checked(body)?;
    let h = data.header_mut();
    h.age_us = age_us.into();
    Ok(h.remaining_us())
}

fn decrement_ttl(body: &mut [u8]) -> Result<(), DropReason> {
    DataPacket::new_checked(body)?.header_mut().decrement_ttl()
}
