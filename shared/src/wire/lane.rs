//! Lanes: the link header's lane byte, a packet-number space per (sending worker, sub-lane).
//!
//! Each data-plane worker sends on its own lanes, so workers never share a packet counter. A
//! worker spreads its best-effort traffic on one link over several *sub-lanes*, one per flow
//! hash, so that the receiving node's steering program sends them to different workers: one
//! link's traffic then spreads over the receiver's cores even when the sender has one worker
//! (docs/wire.md "Lanes and packet numbers"). Reliable and real-time records, and hellos,
//! feedback and control, always go on sub-lane 0, whose lane byte is the worker index.
//!
//! The lane byte is `worker | sub << 6`: the worker index in the low six bits and the sub-lane
//! (0..[`MAX_SUB_LANES`]) in the top two. A link uses `sub_lanes(sender_workers,
//! receiver_workers)` sub-lanes, which both ends compute from the shared config: as many as the
//! receiver has workers, at most four, and one if the sender has more than 64 workers (its
//! worker index would not fit in six bits; its lane byte is then the worker index alone).

/// Sub-lanes per sending worker and link, at most.
pub const MAX_SUB_LANES: u8 = 4;

/// Workers a sender may have and still use sub-lanes (its index fits in the low six bits).
pub const MAX_SUB_LANE_WORKERS: usize = 64;

/// Bit position of the sub-lane in the lane byte.
const SUB_SHIFT: u8 = 6;

/// Mask of the worker index in a lane byte of a link with sub-lanes.
const WORKER_MASK: u8 = (1 << SUB_SHIFT) - 1;

/// Sub-lanes each worker of a node with `sender_workers` workers uses on a link to a node with
/// `receiver_workers` workers: `min(receiver_workers, 4)`, and 1 if either count is 0 or the
/// sender has more than [`MAX_SUB_LANE_WORKERS`].
pub fn sub_lanes(sender_workers: usize, receiver_workers: usize) -> u8 {
    if sender_workers == 0 || sender_workers > MAX_SUB_LANE_WORKERS {
        return 1;
    }
    receiver_workers.clamp(1, usize::from(MAX_SUB_LANES)) as u8
}

/// The lane byte of `worker`'s sub-lane `sub`. `sub` must be below the link's
/// [`sub_lanes`]; sub-lane 0 is the worker index itself, whatever the worker count.
pub fn lane_byte(worker: u8, sub: u8) -> u8 {
    if sub == 0 {
        worker
    } else {
        (worker & WORKER_MASK) | sub << SUB_SHIFT
    }
}

/// The sub-lane a receiver's steering program reads from a lane byte (the top two bits).
pub fn sub_lane_of(lane: u8) -> u8 {
    lane >> SUB_SHIFT
}

/// Where a peer's lane falls among its `peer_workers · subs` lanes on one link, for per-lane
/// state such as replay windows: `worker + peer_workers · sub`. `None` for a lane the peer does
/// not have (a worker index past `peer_workers`, or a sub-lane past `subs`).
pub fn lane_slot(lane: u8, peer_workers: usize, subs: u8) -> Option<usize> {
    let (worker, sub) = if subs <= 1 {
        (usize::from(lane), 0)
    } else {
        (
            usize::from(lane & WORKER_MASK),
            usize::from(lane >> SUB_SHIFT),
        )
    };
    (worker < peer_workers.max(1) && sub < usize::from(subs.max(1)))
        .then_some(worker + peer_workers.max(1) * sub)
}

/// A best-effort flow's sub-lane among `subs`, from the flow's source node and flow id (a
/// flow's records all take one sub-lane, so their order is kept).
pub fn flow_sub_lane(src_node: u16, flow_id: u32, subs: u8) -> u8 {
    if subs <= 1 {
        return 0;
    }
    // A multiplicative mix of the two ids; the top bits are the best mixed.
    let key = (u64::from(src_node) << 32 | u64::from(flow_id)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((key >> 32) % u64::from(subs)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_link_has_as_many_sub_lanes_as_the_receiver_has_workers_up_to_four() {
        assert_eq!(sub_lanes(1, 1), 1);
        assert_eq!(sub_lanes(1, 2), 2);
        assert_eq!(sub_lanes(2, 3), 3);
        assert_eq!(sub_lanes(8, 16), 4);
        assert_eq!(sub_lanes(64, 16), 4);
        assert_eq!(
            sub_lanes(65, 16),
            1,
            "a worker index past 63 leaves no bits"
        );
        assert_eq!(sub_lanes(0, 4), 1);
        assert_eq!(sub_lanes(4, 0), 1);
    }

    #[test]
    fn every_lane_of_a_link_has_its_own_slot() {
        for peer_workers in [1usize, 2, 3, 16, 64] {
            for subs in 1..=MAX_SUB_LANES {
                let mut slots = BTreeSet::new();
                for w in 0..peer_workers {
                    for s in 0..subs {
                        let lane = lane_byte(w as u8, s);
                        assert_eq!(sub_lane_of(lane), if subs > 1 { s } else { 0 });
                        let slot = lane_slot(lane, peer_workers, subs).unwrap();
                        assert!(slot < peer_workers * usize::from(subs));
                        assert!(slots.insert(slot), "two lanes share slot {slot}");
                    }
                }
            }
        }
        // Lanes the peer does not have.
        assert_eq!(lane_slot(2, 2, 1), None);
        assert_eq!(lane_slot(lane_byte(0, 2), 2, 2), None);
        assert_eq!(lane_slot(lane_byte(3, 1), 2, 2), None);
        // A sender with more than 64 workers uses plain worker lanes.
        assert_eq!(lane_slot(200, 201, 1), Some(200));
    }

    #[test]
    fn flows_spread_over_the_sub_lanes_and_each_keeps_one() {
        let mut count = [0u32; MAX_SUB_LANES as usize];
        for flow in 0..4000u32 {
            let s = flow_sub_lane(3, flow, MAX_SUB_LANES);
            assert_eq!(s, flow_sub_lane(3, flow, MAX_SUB_LANES));
            count[usize::from(s)] += 1;
        }
        assert!(count.iter().all(|&c| (800..1200).contains(&c)), "{count:?}");
        assert_eq!(flow_sub_lane(3, 7, 1), 0);
        assert!((0..100).all(|f| flow_sub_lane(9, f, 2) < 2));
    }
}
