//! The group database: every stored bucket advert by (origin, bucket), and the index from
//! group to member nodes that the route computation reads. Every change to the stored
//! adverts goes through [`Database`], so the index can never disagree with them.

use std::collections::BTreeMap;

use weft_shared::ids::{GroupId, Incarnation, NodeId};
use weft_shared::time::Instant;

use super::advert::Bucket;
use crate::link_state::UpdateId;

/// A stored bucket advert and when it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBucket {
    /// Origin, incarnation and sequence of the stored version.
    pub id: UpdateId,
    /// The bucket's groups with members at the origin (increasing); empty for a withdrawal.
    pub groups: Vec<GroupId>,
    /// When this version arrived (or was originated).
    pub received_at: Instant,
}

/// Stored adverts plus the group → members index.
#[derive(Clone, Debug, Default)]
pub(super) struct Database {
    entries: BTreeMap<(NodeId, Bucket), StoredBucket>,
    /// Member nodes of every group with at least one, in increasing order.
    members: BTreeMap<GroupId, Vec<NodeId>>,
    /// Whether some group's member set changed since [`Database::take_changed`].
    changed: bool,
}

impl Database {
    pub(super) fn get(&self, key: &(NodeId, Bucket)) -> Option<&StoredBucket> {
        self.entries.get(key)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&(NodeId, Bucket), &StoredBucket)> + '_ {
        self.entries.iter()
    }

    pub(super) fn keys(&self) -> Vec<(NodeId, Bucket)> {
        self.entries.keys().copied().collect()
    }

    /// The stored buckets of `origin`.
    pub(super) fn keys_of(&self, origin: NodeId) -> Vec<(NodeId, Bucket)> {
        self.entries
            .range((origin, Bucket::MIN)..=(origin, Bucket::MAX))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Stores `stored` under `key`, replacing any older copy, and updates the index.
    pub(super) fn insert(&mut self, key: (NodeId, Bucket), stored: StoredBucket) {
        let old = self.entries.insert(key, stored);
        let old_groups = old.map(|o| o.groups).unwrap_or_default();
        let new_groups = self
            .entries
            .get(&key)
            .map(|s| s.groups.clone())
            .unwrap_or_default();
        self.reindex(key.0, &old_groups, &new_groups);
    }

    /// Removes `key` and its groups from the index.
    pub(super) fn remove(&mut self, key: &(NodeId, Bucket)) {
        if let Some(old) = self.entries.remove(key) {
            self.reindex(key.0, &old.groups, &[]);
        }
    }

    /// Removes every stored bucket of `origin` from an incarnation below `incarnation`;
    /// returns how many.
    pub(super) fn remove_older(&mut self, origin: NodeId, incarnation: Incarnation) -> usize {
        let stale: Vec<(NodeId, Bucket)> = self
            .entries
            .range((origin, Bucket::MIN)..=(origin, Bucket::MAX))
            .filter(|(_, s)| s.id.incarnation < incarnation)
            .map(|(k, _)| *k)
            .collect();
        for key in &stale {
            self.remove(key);
        }
        stale.len()
    }

    /// Removes every entry for which `expired` holds; returns how many.
    pub(super) fn remove_if(
        &mut self,
        mut expired: impl FnMut(&(NodeId, Bucket), &StoredBucket) -> bool,
    ) -> usize {
        let gone: Vec<(NodeId, Bucket)> = self
            .entries
            .iter()
            .filter(|(k, s)| expired(k, s))
            .map(|(k, _)| *k)
            .collect();
        for key in &gone {
            self.remove(key);
        }
        gone.len()
    }

    /// The member nodes of `group`, in increasing order.
    pub(super) fn members(&self, group: GroupId) -> &[NodeId] {
        self.members.get(&group).map_or(&[], Vec::as_slice)
    }

    /// Every group with members, in increasing order.
    pub(super) fn groups(&self) -> impl Iterator<Item = (GroupId, &[NodeId])> + '_ {
        self.members.iter().map(|(g, m)| (*g, m.as_slice()))
    }

    pub(super) fn group_count(&self) -> usize {
        self.members.len()
    }

    pub(super) fn changed(&self) -> bool {
        self.changed
    }

    pub(super) fn clear_changed(&mut self) {
        self.changed = false;
    }

    /// `origin` left the groups of `old` not in `new` and joined those of `new` not in `old`
    /// (both increasing).
    fn reindex(&mut self, origin: NodeId, old: &[GroupId], new: &[GroupId]) {
        let (mut i, mut j) = (0, 0);
        loop {
            match (old.get(i), new.get(j)) {
                (None, None) => break,
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    self.leave(*a, origin);
                    i += 1;
                }
                (Some(a), None) => {
                    self.leave(*a, origin);
                    i += 1;
                }
                (_, Some(b)) => {
                    self.join(*b, origin);
                    j += 1;
                }
            }
        }
    }

    fn join(&mut self, group: GroupId, node: NodeId) {
        let members = self.members.entry(group).or_default();
        if let Err(at) = members.binary_search(&node) {
            members.insert(at, node);
            self.changed = true;
        }
    }

    fn leave(&mut self, group: GroupId, node: NodeId) {
        let Some(members) = self.members.get_mut(&group) else {
            return;
        };
        if let Ok(at) = members.binary_search(&node) {
            members.remove(at);
            self.changed = true;
        }
        if members.is_empty() {
            self.members.remove(&group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u16) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn stored(origin: u16, inc: u32, groups: &[u32]) -> StoredBucket {
        StoredBucket {
            id: UpdateId {
                origin: n(origin),
                incarnation: Incarnation(inc),
                seq: 1,
            },
            groups: groups.iter().copied().map(GroupId).collect(),
            received_at: Instant::ZERO,
        }
    }

    fn members(db: &Database, g: u32) -> Vec<u16> {
        db.members(GroupId(g)).iter().map(|x| x.get()).collect()
    }

    #[test]
    fn the_index_follows_every_change() {
        let mut db = Database::default();
        let b = Bucket::MIN;
        db.insert((n(2), b), stored(2, 1, &[1, 5, 9]));
        db.insert((n(1), b), stored(1, 1, &[5]));
        assert!(db.changed());
        db.clear_changed();
        assert_eq!(members(&db, 5), vec![1, 2]);
        // The same groups again (a refresh): no change.
        db.insert((n(2), b), stored(2, 1, &[1, 5, 9]));
        assert!(!db.changed());
        // Node 2 leaves 1 and 5, joins 7.
        db.insert((n(2), b), stored(2, 1, &[7, 9]));
        assert!(db.changed());
        assert_eq!(members(&db, 1), Vec::<u16>::new());
        assert_eq!(members(&db, 5), vec![1]);
        assert_eq!(members(&db, 7), vec![2]);
        assert_eq!(db.group_count(), 3);
        // A newer incarnation of node 2 drops its old buckets.
        assert_eq!(db.remove_older(n(2), Incarnation(2)), 1);
        assert_eq!(db.groups().map(|(g, _)| g.0).collect::<Vec<_>>(), vec![5]);
        assert_eq!(db.remove_if(|_, _| true), 1);
        assert_eq!(db.group_count(), 0);
        assert_eq!(db.iter().count(), 0);
    }
}
