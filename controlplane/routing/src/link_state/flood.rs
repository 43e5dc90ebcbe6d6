//! Reliable flooding: the per-link record of adverts sent and not yet acknowledged. Shared by
//! link state (keyed by origin) and group state (keyed by origin and bucket).

use std::collections::BTreeMap;
use std::time::Duration;

use weft_shared::time::Instant;

use super::advert::UpdateId;

/// An advert sent on a link and waiting for the neighbour's ack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The version sent last.
    pub(crate) id: UpdateId,
    /// When to send it again.
    pub(crate) next_at: Instant,
    /// The current retransmission interval.
    pub(crate) interval: Duration,
}

impl Pending {
    /// Sent at `now`; first retransmission after `initial`.
    pub(crate) fn new(id: UpdateId, now: Instant, initial: Duration) -> Self {
        Pending {
            id,
            next_at: now + initial,
            interval: initial,
        }
    }

    /// Sent again at `now`: the interval doubles, up to `max`.
    pub(crate) fn back_off(&mut self, now: Instant, max: Duration) {
        self.interval = (self.interval * 2).min(max);
        self.next_at = now + self.interval;
    }
}

/// The neighbour has `id` of the advert `key` (it acked it, or sent it or something newer):
/// stop retransmitting every version of that advert up to `id`.
pub(crate) fn acknowledge<K: Ord>(pending: &mut BTreeMap<K, Pending>, key: &K, id: UpdateId) {
    if pending
        .get(key)
        .is_some_and(|p| p.id.version() <= id.version())
    {
        pending.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_shared::ids::{Incarnation, NodeId};

    fn id(seq: u32) -> UpdateId {
        UpdateId {
            origin: NodeId::new(4).unwrap(),
            incarnation: Incarnation(9),
            seq,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let t0 = Instant::from_millis(1_000);
        let mut p = Pending::new(id(1), t0, Duration::from_millis(50));
        assert_eq!(p.next_at, Instant::from_millis(1_050));
        let mut gaps = Vec::new();
        for _ in 0..6 {
            let now = p.next_at;
            p.back_off(now, Duration::from_millis(400));
            gaps.push((p.next_at - now).as_millis());
        }
        assert_eq!(gaps, vec![100, 200, 400, 400, 400, 400]);
    }

    #[test]
    fn an_ack_for_an_older_version_keeps_the_newer_pending() {
        let mut pending = BTreeMap::new();
        pending.insert(
            id(5).origin,
            Pending::new(id(5), Instant::ZERO, Duration::from_millis(50)),
        );
        acknowledge(&mut pending, &id(4).origin, id(4));
        assert_eq!(pending.len(), 1);
        acknowledge(&mut pending, &id(5).origin, id(5));
        assert!(pending.is_empty());
    }
}
