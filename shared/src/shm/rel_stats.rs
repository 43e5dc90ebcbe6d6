//! The reliable service's statistics in shared memory (`docs/reliable.md`): per worker and
//! link, what the lane's reliable link machines did; per flow, what the end-to-end sources and
//! sinks of worker 0 hold and did. Written by the data plane every 100 ms, read by `weftctl
//! show reliable`.
//!
//! Each value is one relaxed atomic written by one worker, so a reader sees every value whole
//! but a row is not a snapshot: a row may mix two writes. These are counters and gauges for
//! people, not inputs to decisions.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use zerocopy::FromBytes;

use super::layout::{MAX_WORKERS, Section};
use super::region::ShmRegion;
use crate::ids::{LinkId, MAX_LINKS};

/// Flow rows: the sources (up to 256) and then the sinks (up to 64) of worker 0.
pub const MAX_REL_FLOWS: usize = 320;

/// What one lane did on one link, and what its sender holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelLinkValues {
    /// Records transmitted for the first time.
    pub sent: u64,
    /// Retransmissions.
    pub retransmitted: u64,
    /// Records accepted from the peer.
    pub accepted: u64,
    /// Of those, brought by a retransmission.
    pub recovered: u64,
    /// Of those, arrived below the highest sequence seen.
    pub out_of_order: u64,
    /// Duplicates suppressed.
    pub duplicates: u64,
    /// Records refused for want of room or route downstream.
    pub refused: u64,
    /// Records held now in the link's sender (a gauge).
    pub held: u64,
}

const LINK_VALUES: usize = 8;

impl RelLinkValues {
    fn to_array(self) -> [u64; LINK_VALUES] {
        [
            self.sent,
            self.retransmitted,
            self.accepted,
            self.recovered,
            self.out_of_order,
            self.duplicates,
            self.refused,
            self.held,
        ]
    }

    fn from_array(v: [u64; LINK_VALUES]) -> Self {
        RelLinkValues {
            sent: v[0],
            retransmitted: v[1],
            accepted: v[2],
            recovered: v[3],
            out_of_order: v[4],
            duplicates: v[5],
            refused: v[6],
            held: v[7],
        }
    }

    /// Adds `other` (summing workers).
    pub fn add(&mut self, other: &RelLinkValues) {
        let (mut a, b) = (self.to_array(), other.to_array());
        for (x, y) in a.iter_mut().zip(b) {
            *x = x.wrapping_add(y);
        }
        *self = Self::from_array(a);
    }
}

/// One end of a reliable flow at this node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelFlowValues {
    /// 1: this node is the flow's source; 2: its destination.
    pub end: u64,
    /// The flow id (chosen by the source node).
    pub flow: u64,
    /// The node at the other end.
    pub peer: u64,
    /// The port at this end.
    pub port: u64,
    /// Source: messages taken from the client; sink: messages accepted.
    pub messages: u64,
    /// Messages delivered to the receiving client (reported by the sink).
    pub delivered: u64,
    /// Source: messages resent end to end; sink: out-of-order arrivals.
    pub resent_or_reordered: u64,
    /// Source: sends refused for want of credit; sink: duplicates dropped.
    pub blocked_or_duplicates: u64,
    /// Source: messages outstanding; sink: messages held (gauges).
    pub held: u64,
    /// Source: 1 while the flow is stalled (no progress for 2 s).
    pub stalled: u64,
}

const FLOW_VALUES: usize = 10;

impl RelFlowValues {
    fn to_array(self) -> [u64; FLOW_VALUES] {
        [
            self.end,
            self.flow,
            self.peer,
            self.port,
            self.messages,
            self.delivered,
            self.resent_or_reordered,
            self.blocked_or_duplicates,
            self.held,
            self.stalled,
        ]
    }

    fn from_array(v: [u64; FLOW_VALUES]) -> Self {
        RelFlowValues {
            end: v[0],
            flow: v[1],
            peer: v[2],
            port: v[3],
            messages: v[4],
            delivered: v[5],
            resent_or_reordered: v[6],
            blocked_or_duplicates: v[7],
            held: v[8],
            stalled: v[9],
        }
    }
}

#[derive(FromBytes)]
#[repr(C)]
struct Cells<const N: usize> {
    values: [AtomicU64; N],
}

impl<const N: usize> Cells<N> {
    fn store(&self, v: [u64; N]) {
        for (cell, x) in self.values.iter().zip(v) {
            cell.store(x, Ordering::Relaxed);
        }
    }

    fn load(&self) -> [u64; N] {
        core::array::from_fn(|i| self.values[i].load(Ordering::Relaxed))
    }
}

/// The section: per worker, per link; then the flow rows.
#[derive(FromBytes)]
#[repr(C)]
pub(crate) struct RelStatsSection {
    links: [[Cells<LINK_VALUES>; MAX_LINKS as usize]; MAX_WORKERS],
    flows: [Cells<FLOW_VALUES>; MAX_REL_FLOWS],
}

fn section(region: &ShmRegion) -> &RelStatsSection {
    // SAFETY: RelStatsSection is the type laid out there (the layout gives it its own
    // page-aligned section of exactly its size); it is all atomics, valid for any bytes.
    unsafe { region.section_ref::<RelStatsSection>(Section::RelStats, 0) }
}

/// One worker's writer of the reliable statistics.
pub struct RelStatsWriter {
    region: Arc<ShmRegion>,
    worker: usize,
}

impl RelStatsWriter {
    /// The writer of worker `worker` (rows out of range are ignored).
    pub fn new(region: Arc<ShmRegion>, worker: usize) -> Self {
        RelStatsWriter { region, worker }
    }

    /// The values of link `link` for this worker's lane.
    pub fn set_link(&self, link: LinkId, v: &RelLinkValues) {
        if let Some(row) = section(&self.region)
            .links
            .get(self.worker)
            .and_then(|r| r.get(usize::from(link.get())))
        {
            row.store(v.to_array());
        }
    }

    /// Flow row `slot` (worker 0 only); `None` clears it.
    pub fn set_flow(&self, slot: usize, v: Option<&RelFlowValues>) {
        if let Some(row) = section(&self.region).flows.get(slot) {
            row.store(v.copied().unwrap_or_default().to_array());
        }
    }
}

/// Reads the reliable statistics.
pub struct RelStatsReader<'a> {
    region: &'a ShmRegion,
}

impl<'a> RelStatsReader<'a> {
    /// A reader of `region`.
    pub fn new(region: &'a ShmRegion) -> Self {
        RelStatsReader { region }
    }

    /// Link `link`'s values summed over `workers` workers.
    pub fn link(&self, link: LinkId, workers: usize) -> RelLinkValues {
        let mut total = RelLinkValues::default();
        for w in section(self.region).links.iter().take(workers) {
            if let Some(row) = w.get(usize::from(link.get())) {
                total.add(&RelLinkValues::from_array(row.load()));
            }
        }
        total
    }

    /// The flow rows in use.
    pub fn flows(&self) -> Vec<RelFlowValues> {
        section(self.region)
            .flows
            .iter()
            .map(|r| RelFlowValues::from_array(r.load()))
            .filter(|v| v.end != 0)
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use crate::shm::ShmLayout;

    #[test]
    fn links_sum_over_workers_and_flows_list_the_rows_in_use() {
        let region = Arc::new(ShmRegion::create_memfd(&ShmLayout::default(), 0).unwrap());
        let link = LinkId::new(7).unwrap();
        let w0 = RelStatsWriter::new(region.clone(), 0);
        let w1 = RelStatsWriter::new(region.clone(), 1);
        let v = RelLinkValues {
            sent: 10,
            retransmitted: 2,
            held: 3,
            ..RelLinkValues::default()
        };
        w0.set_link(link, &v);
        w1.set_link(link, &v);
        let reader = RelStatsReader::new(&region);
        let total = reader.link(link, 2);
        assert_eq!((total.sent, total.retransmitted, total.held), (20, 4, 6));
        assert_eq!(reader.link(link, 1).sent, 10);
        assert_eq!(
            reader.link(LinkId::new(8).unwrap(), 2),
            RelLinkValues::default()
        );
        assert!(reader.flows().is_empty());
        let f = RelFlowValues {
            end: 1,
            flow: 5,
            peer: 4,
            messages: 100,
            ..RelFlowValues::default()
        };
        w0.set_flow(3, Some(&f));
        w0.set_flow(MAX_REL_FLOWS, Some(&f)); // out of range: ignored
        assert_eq!(reader.flows(), [f]);
        w0.set_flow(3, None);
        assert!(reader.flows().is_empty());
    }
}
