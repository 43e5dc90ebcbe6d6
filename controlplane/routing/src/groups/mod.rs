//! Group membership as a sans-IO state machine ([`GroupState`], one per node), and the
//! multicast and anycast routes computed from it ([`Trees`]).
//!
//! Every node knows only its own clients' memberships (its data plane's session server tracks
//! them); the control-plane daemon hands the node's local set of groups with at least one local
//! member to [`GroupState::set_local`]. Nodes flood, per group, whether they have members, so
//! every node knows which nodes are interested in each group. Multicast then follows the
//! shortest-path tree of the source node, and anycast goes to the nearest member node
//! ([`trees`]). A group id is one namespace for both: the sender chooses.
//!
//! The protocol (the flooding is link state's, [`crate::link_state`]):
//! - A node's membership is split into [`BUCKETS`] buckets by a stable hash of the group id
//!   ([`Bucket::of`]). Each (origin, bucket) is one advert listing the bucket's groups with
//!   members at the origin (the wire format is in [`advert`]); it fits one record (at most
//!   [`MAX_BUCKET_GROUPS`] groups, an envelope under 1,200 bytes). A local set that would
//!   overflow a bucket is refused ([`GroupError::BucketFull`]).
//! - Adverts are versioned by (origin incarnation, sequence number): one sequence counter per
//!   origin, shared by its buckets. A newer advert of a bucket is stored, acknowledged to the
//!   sender and flooded on every other up link; every advert sent is retransmitted (backing off
//!   from `retransmit_initial` to `retransmit_max`) until that neighbour acks it or sends
//!   something as new. A copy older than ours is answered with ours.
//! - A node re-originates a bucket at once when its local groups in it change; a bucket that
//!   becomes empty is advertised empty (a withdrawal), so the others drop it at once. Non-empty
//!   buckets are re-originated every `refresh`; every stored advert not refreshed within
//!   `max_age` is discarded (withdrawals are never refreshed: they only age out).
//! - A new control plane announces its incarnation at once with an empty advert of bucket 0.
//!   Seeing an origin's newer incarnation drops every bucket of its older one; adverts of an
//!   incarnation older than the newest seen are ignored and answered with our copies.
//! - Full exchange: when a link comes up ([`GroupState::set_links_up`]), and when the neighbour
//!   on a link shows a new incarnation (its control plane restarted), the whole database is
//!   sent on that link.
//! - A node that hears an advert of its own that is newer than its current version (an earlier
//!   run's, with a clock that went back) jumps past it and re-originates, withdrawing what it
//!   no longer has.
//!
//! Call order (the daemon's loop): [`GroupState::new`]; then, in any order as inputs arrive,
//! [`GroupState::set_links_up`] after each link-state update, [`GroupState::set_local`] when
//! the local set changes, [`GroupState::on_control`] for each punted group-state envelope and
//! [`GroupState::on_timer`] once [`GroupState::next_deadline`] has passed; after each input,
//! drain [`GroupState::pop_outgoing`]. When [`GroupState::changed_since_fib`] (or the overlay
//! graph) changes, build the group routes with [`Trees`] and call
//! [`GroupState::fib_published`] once the FIB is out.

pub mod advert;
mod db;
#[cfg(test)]
mod tests;
pub mod trees;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use weft_shared::DropReason;
use weft_shared::config::{Config, Timers};
use weft_shared::ids::{GroupId, Incarnation, LinkId, NodeId};
use weft_shared::shm::fib::{FibBuilder, FibError};
use weft_shared::time::Instant;

use crate::link_state::flood::{self, Pending};
use crate::link_state::{Outgoing, UpdateId};
use crate::spf::Graph;

pub use advert::{
    BUCKETS, Bucket, BucketAdvert, GROUP_ENTRY_LEN, GROUP_HEAD_LEN, GroupMessage,
    MAX_BUCKET_GROUPS, decode, encode_ack,
};
use db::Database;
pub use db::StoredBucket;
pub use trees::{GroupFibCounts, TreeEdge, Trees};

/// Tunables of the group-state protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupParams {
    /// Re-originate each non-empty bucket this often even when nothing changed.
    pub refresh: Duration,
    /// Discard a stored bucket not refreshed for this long.
    pub max_age: Duration,
    /// First retransmission of an unacknowledged advert after this long.
    pub retransmit_initial: Duration,
    /// Retransmissions back off (doubling) up to this interval.
    pub retransmit_max: Duration,
}

impl GroupParams {
    /// The protocol's defaults with the overlay's configured timers (the link-state refresh
    /// and maximum age serve group state too).
    pub fn from_timers(timers: &Timers) -> Self {
        GroupParams {
            refresh: timers.link_state_refresh(),
            max_age: timers.link_state_max_age(),
            retransmit_initial: Duration::from_millis(50),
            retransmit_max: Duration::from_secs(1),
        }
    }
}

/// Why a group state could not be built, or a local set was refused.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum GroupError {
    /// The node is not in the config.
    #[error("node {0} is not in the config")]
    UnknownNode(NodeId),
    /// Incarnation 0 is reserved (the wire refuses it).
    #[error("incarnation 0 is reserved")]
    ZeroIncarnation,
    /// Group 0 is never a group.
    #[error("group 0 is not a group")]
    ZeroGroup,
    /// More local groups fall in one bucket than one advert carries.
    #[error(
        "{groups} local groups fall in bucket {bucket}; an advert carries at most {MAX_BUCKET_GROUPS}"
    )]
    BucketFull {
        /// The bucket.
        bucket: u16,
        /// How many local groups fall in it.
        groups: usize,
    },
}

/// Counters of the protocol's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Bucket adverts originated by this node (withdrawals included).
    pub originated: u64,
    /// Adverts received that were newer than the stored copy.
    pub updates_accepted: u64,
    /// Adverts received that were duplicates, older, or of an old incarnation.
    pub updates_ignored: u64,
    /// Envelopes queued for sending (adverts and acks).
    pub sent: u64,
    /// Adverts sent again for lack of an ack.
    pub retransmissions: u64,
    /// Acks received.
    pub acks_received: u64,
    /// Full exchanges of the database (a link came up, a neighbour restarted).
    pub full_exchanges: u64,
    /// Stored buckets dropped because their origin showed a newer incarnation.
    pub superseded: u64,
    /// Stored buckets discarded for age.
    pub aged_out: u64,
    /// Messages refused (malformed, unknown link or origin).
    pub refused: u64,
}

/// One of this node's own links.
#[derive(Clone, Debug)]
struct LocalLink {
    id: LinkId,
    neighbour: NodeId,
    up: bool,
    /// The neighbour's incarnation as last heard on this link (a change means a restart).
    neighbour_incarnation: Option<Incarnation>,
    /// Adverts sent on this link and not yet acknowledged, by (origin, bucket).
    pending: BTreeMap<(NodeId, Bucket), Pending>,
}

/// One node's group-membership state: its own groups, everyone else's, and the flooding.
#[derive(Debug)]
pub struct GroupState {
    me: NodeId,
    params: GroupParams,
    nodes: Vec<NodeId>,
    links: Vec<LocalLink>,
    db: Database,
    /// The newest incarnation seen of every other origin (never forgotten, so that a stale
    /// advert cannot come back once the newer incarnation's buckets aged out).
    incarnations: BTreeMap<NodeId, Incarnation>,
    incarnation: Incarnation,
    seq: u32,
    out: VecDeque<Outgoing>,
    stats: GroupStats,
}

impl GroupState {
    /// The group state of node `me` of `config`, with the control plane's `incarnation`
    /// (nonzero, higher than any earlier run's), starting at `now` with no local group and
    /// every link down. Announces the incarnation with an empty advert of bucket 0.
    pub fn new(
        config: &Config,
        me: NodeId,
        incarnation: Incarnation,
        params: GroupParams,
        now: Instant,
    ) -> Result<GroupState, GroupError> {
        if config.node(me).is_none() {
            return Err(GroupError::UnknownNode(me));
        }
        if incarnation.0 == 0 {
            return Err(GroupError::ZeroIncarnation);
        }
        let mut links: Vec<LocalLink> = config
            .links_of(me)
            .map(|end| LocalLink {
                id: end.id(),
                neighbour: end.neighbour(),
                up: false,
                neighbour_incarnation: None,
                pending: BTreeMap::new(),
            })
            .collect();
        links.sort_by_key(|l| l.id);
        let mut nodes: Vec<NodeId> = config.nodes().iter().map(|n| n.id()).collect();
        nodes.sort();
        let mut state = GroupState {
            me,
            params,
            nodes,
            links,
            db: Database::default(),
            incarnations: BTreeMap::new(),
            incarnation,
            seq: 0,
            out: VecDeque::new(),
            stats: GroupStats::default(),
        };
        state.originate(now, Bucket::MIN, Vec::new());
        Ok(state)
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.me
    }

    /// This control plane's incarnation (it may have jumped past an older run's).
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The protocol's counters.
    pub fn stats(&self) -> GroupStats {
        self.stats
    }

    /// The member nodes of `group` (this node included when it has local members), in
    /// increasing order; none for a group nobody joined.
    pub fn members(&self, group: GroupId) -> impl Iterator<Item = NodeId> + '_ {
        self.db.members(group).iter().copied()
    }

    /// Every group with at least one member node, in increasing order, with its member nodes.
    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &[NodeId])> + '_ {
        self.db.groups()
    }

    /// Number of groups with at least one member node.
    pub fn group_count(&self) -> usize {
        self.db.group_count()
    }

    /// This node's local groups, as last set by [`GroupState::set_local`].
    pub fn local_groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.db
            .keys_of(self.me)
            .into_iter()
            .filter_map(|k| self.db.get(&k))
            .flat_map(|s| s.groups.iter().copied())
    }

    /// Every stored bucket advert (this node's own included), by (origin, bucket).
    pub fn database(&self) -> impl Iterator<Item = ((NodeId, Bucket), &StoredBucket)> + '_ {
        self.db.iter().map(|(k, s)| (*k, s))
    }

    /// Whether some group's member set changed since the last [`GroupState::fib_published`]
    /// (or since the start): the group routes must be rebuilt.
    pub fn changed_since_fib(&self) -> bool {
        self.db.changed()
    }

    /// A FIB with the group routes of the current membership was published.
    pub fn fib_published(&mut self) {
        self.db.clear_changed();
    }

    /// Writes the multicast and anycast routes of every group into a FIB being built for this
    /// node, over `graph` (the link-state router's [`crate::link_state::Router::graph`]).
    pub fn fill_fib(
        &self,
        graph: &Graph,
        fib: &mut FibBuilder<'_>,
    ) -> Result<GroupFibCounts, FibError> {
        Trees::new(graph, self.me).fill_fib(self.groups(), fib)
    }

    /// The node's whole current set of groups with at least one local member. The buckets
    /// that changed are re-originated at once (an emptied bucket as a withdrawal). Refused,
    /// with nothing changed, if it holds group 0 or overflows a bucket.
    pub fn set_local(
        &mut self,
        now: Instant,
        groups: impl IntoIterator<Item = GroupId>,
    ) -> Result<(), GroupError> {
        let set: BTreeSet<GroupId> = groups.into_iter().collect();
        if set.contains(&GroupId(0)) {
            return Err(GroupError::ZeroGroup);
        }
        let mut buckets: BTreeMap<Bucket, Vec<GroupId>> = BTreeMap::new();
        for g in set {
            buckets.entry(Bucket::of(g)).or_default().push(g);
        }
        if let Some((bucket, full)) = buckets.iter().find(|(_, g)| g.len() > MAX_BUCKET_GROUPS) {
            return Err(GroupError::BucketFull {
                bucket: bucket.get(),
                groups: full.len(),
            });
        }
        let mut touched: BTreeSet<Bucket> = buckets.keys().copied().collect();
        touched.extend(self.db.keys_of(self.me).into_iter().map(|(_, b)| b));
        for bucket in touched {
            let new = buckets.remove(&bucket).unwrap_or_default();
            let old = self.db.get(&(self.me, bucket)).map(|s| s.groups.as_slice());
            if old.unwrap_or(&[]) != new.as_slice() {
                self.originate(now, bucket, new);
            }
        }
        Ok(())
    }

    /// Which of this node's links are up now (the daemon calls it after each link-state
    /// update). A link that came up gets a full exchange; a link that went down drops its
    /// pending retransmissions. Links that are not this node's are ignored.
    pub fn set_links_up(&mut self, now: Instant, up: impl IntoIterator<Item = LinkId>) {
        let up: BTreeSet<LinkId> = up.into_iter().collect();
        let mut came_up = Vec::new();
        for l in &mut self.links {
            let is_up = up.contains(&l.id);
            if is_up && !l.up {
                came_up.push(l.id);
            }
            if !is_up {
                l.pending.clear();
            }
            l.up = is_up;
        }
        for link in came_up {
            self.full_exchange(now, link);
        }
    }

    /// A group-state control envelope arrived on `link`. A malformed or impossible message is
    /// refused with the reason (and counted); nothing else changes.
    pub fn on_control(
        &mut self,
        now: Instant,
        link: LinkId,
        envelope: &[u8],
    ) -> Result<(), DropReason> {
        let result = self.handle_control(now, link, envelope);
        if result.is_err() {
            self.stats.refused += 1;
        }
        result
    }

    fn handle_control(
        &mut self,
        now: Instant,
        link: LinkId,
        envelope: &[u8],
    ) -> Result<(), DropReason> {
        if self.local_link(link).is_none() {
            return Err(DropReason::UnknownLink(link.get()));
        }
        let message = decode(envelope)?;
        let origin = match &message {
            GroupMessage::Advert(a) => a.id.origin,
            GroupMessage::Ack { id, .. } => id.origin,
        };
        if self.nodes.binary_search(&origin).is_err() {
            return Err(DropReason::BadField {
                field: "control.origin_node",
                value: origin.get().into(),
            });
        }
        match message {
            GroupMessage::Ack { id, bucket } => {
                self.stats.acks_received += 1;
                if let Some(l) = self.local_link_mut(link) {
                    flood::acknowledge(&mut l.pending, &(id.origin, bucket), id);
                }
            }
            GroupMessage::Advert(advert) => {
                self.send(link, encode_ack(advert.id, advert.bucket));
                if advert.id.origin == self.me {
                    self.receive_own(now, link, advert);
                } else {
                    self.receive(now, link, advert);
                }
            }
        }
        Ok(())
    }

    /// Another node's advert.
    fn receive(&mut self, now: Instant, link: LinkId, advert: BucketAdvert) {
        let id = advert.id;
        let key = (id.origin, advert.bucket);
        let neighbour_restarted = self.local_link_mut(link).is_some_and(|l| {
            let restarted =
                l.neighbour == id.origin && l.neighbour_incarnation != Some(id.incarnation);
            if restarted {
                l.neighbour_incarnation = Some(id.incarnation);
            }
            restarted
        });
        let known = self.incarnations.get(&id.origin).copied();
        if known.is_some_and(|k| k > id.incarnation) {
            // An earlier run's advert: the sender has not heard of the newer incarnation yet
            // (if the sender is its origin, restarted with a clock that went back, the full
            // exchange below tells it).
            self.stats.updates_ignored += 1;
            if !neighbour_restarted {
                self.send_origin(now, link, id.origin);
            }
        } else {
            if known.is_none_or(|k| k < id.incarnation) {
                self.incarnations.insert(id.origin, id.incarnation);
                let superseded = self.db.remove_older(id.origin, id.incarnation);
                self.stats.superseded += superseded as u64;
            }
            let stored = self.db.get(&key).map(|s| s.id.version());
            match stored.map(|s| s.cmp(&id.version())) {
                None | Some(std::cmp::Ordering::Less) => {
                    self.stats.updates_accepted += 1;
                    if let Some(l) = self.local_link_mut(link) {
                        flood::acknowledge(&mut l.pending, &key, id);
                    }
                    self.db.insert(
                        key,
                        StoredBucket {
                            id,
                            groups: advert.groups,
                            received_at: now,
                        },
                    );
                    self.flood(now, key, Some(link));
                }
                Some(std::cmp::Ordering::Equal) => {
                    self.stats.updates_ignored += 1;
                    if let Some(l) = self.local_link_mut(link) {
                        flood::acknowledge(&mut l.pending, &key, id);
                    }
                }
                Some(std::cmp::Ordering::Greater) => {
                    // The neighbour is behind: give it our copy.
                    self.stats.updates_ignored += 1;
                    self.send_if_not_pending(now, link, key);
                }
            }
        }
        if neighbour_restarted {
            self.full_exchange(now, link);
        }
    }

    /// An advert of our own: an echo of the current one, an older copy, or an earlier run's.
    fn receive_own(&mut self, now: Instant, link: LinkId, advert: BucketAdvert) {
        let id = advert.id;
        let key = (self.me, advert.bucket);
        let stored = self.db.get(&key).map(|s| s.id);
        if id.version() > (self.incarnation.0, self.seq) {
            // An earlier run got further: move past it.
            self.stats.updates_ignored += 1;
            let new_incarnation = id.incarnation > self.incarnation;
            self.incarnation = self.incarnation.max(id.incarnation);
            self.seq = id.seq;
            if new_incarnation {
                self.reoriginate_all(now);
            }
            let incarnation = self.incarnation;
            let done = new_incarnation
                && self
                    .db
                    .get(&key)
                    .is_some_and(|s| s.id.incarnation == incarnation);
            if !done {
                self.reoriginate(now, advert.bucket);
            }
            return;
        }
        match stored {
            Some(s) if s == id => {
                self.stats.updates_ignored += 1;
                if let Some(l) = self.local_link_mut(link) {
                    flood::acknowledge(&mut l.pending, &key, id);
                }
            }
            Some(s) if s.version() > id.version() => {
                self.stats.updates_ignored += 1;
                self.send_if_not_pending(now, link, key);
            }
            None if id.incarnation < self.incarnation || advert.groups.is_empty() => {
                // An earlier run's (our newer incarnation supersedes it everywhere), or a
                // withdrawal we already forgot: nothing to correct.
                self.stats.updates_ignored += 1;
            }
            _ => {
                // A copy of ours we no longer hold (aged out, or an earlier run's with the
                // incarnation we adopted): advertise what we have now.
                self.stats.updates_ignored += 1;
                self.reoriginate(now, advert.bucket);
            }
        }
    }

    /// Time passed: retransmissions, refresh, aging.
    pub fn on_timer(&mut self, now: Instant) {
        self.retransmit(now);
        let refresh = self.params.refresh;
        let due: Vec<Bucket> = self
            .db
            .keys_of(self.me)
            .into_iter()
            .filter(|k| {
                self.db
                    .get(k)
                    .is_some_and(|s| !s.groups.is_empty() && now - s.received_at >= refresh)
            })
            .map(|(_, b)| b)
            .collect();
        for bucket in due {
            self.reoriginate(now, bucket);
        }
        let max_age = self.params.max_age;
        let me = self.me;
        let aged = self.db.remove_if(|k, s| {
            let refreshed = k.0 == me && !s.groups.is_empty();
            !refreshed && now - s.received_at > max_age
        });
        self.stats.aged_out += aged as u64;
    }

    /// The earliest time [`GroupState::on_timer`] has work to do ([`Instant::FAR_FUTURE`] if
    /// none).
    pub fn next_deadline(&self) -> Instant {
        let mut at = Instant::FAR_FUTURE;
        for l in self.links.iter().filter(|l| l.up) {
            for p in l.pending.values() {
                at = at.min(p.next_at);
            }
        }
        for ((origin, _), s) in self.db.iter() {
            if *origin == self.me && !s.groups.is_empty() {
                at = at.min(s.received_at + self.params.refresh);
            } else {
                at = at.min(s.received_at + self.params.max_age + Duration::from_millis(1));
            }
        }
        at
    }

    /// The next envelope to send, if any.
    pub fn pop_outgoing(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }

    /// Builds and floods a new advert of this node's `bucket` with `groups`.
    fn originate(&mut self, now: Instant, bucket: Bucket, groups: Vec<GroupId>) {
        if self.seq == u32::MAX {
            // Sequence space exhausted (after 4 billion updates): move to a new incarnation,
            // which supersedes every bucket of the old one, so re-advertise them all.
            self.incarnation = Incarnation(self.incarnation.0.saturating_add(1));
            self.seq = 0;
            self.reoriginate_all(now);
        }
        self.seq += 1;
        self.stats.originated += 1;
        let key = (self.me, bucket);
        let id = UpdateId {
            origin: self.me,
            incarnation: self.incarnation,
            seq: self.seq,
        };
        self.db.insert(
            key,
            StoredBucket {
                id,
                groups,
                received_at: now,
            },
        );
        self.flood(now, key, None);
    }

    /// Originates `bucket` again with its current groups (none if it is not stored).
    fn reoriginate(&mut self, now: Instant, bucket: Bucket) {
        let groups = self
            .db
            .get(&(self.me, bucket))
            .map(|s| s.groups.clone())
            .unwrap_or_default();
        self.originate(now, bucket, groups);
    }

    /// Originates every non-empty bucket again (under a new incarnation) and forgets this
    /// node's withdrawals of older incarnations.
    fn reoriginate_all(&mut self, now: Instant) {
        let incarnation = self.incarnation;
        let me = self.me;
        self.db
            .remove_if(|k, s| k.0 == me && s.groups.is_empty() && s.id.incarnation < incarnation);
        let buckets: Vec<Bucket> = self
            .db
            .keys_of(self.me)
            .into_iter()
            .filter(|k| {
                self.db
                    .get(k)
                    .is_some_and(|s| s.id.incarnation < incarnation)
            })
            .map(|(_, b)| b)
            .collect();
        for bucket in buckets {
            self.reoriginate(now, bucket);
        }
    }

    /// Sends the stored advert `key` on every up link except `except`.
    fn flood(&mut self, now: Instant, key: (NodeId, Bucket), except: Option<LinkId>) {
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|l| l.up && Some(l.id) != except)
            .map(|l| l.id)
            .collect();
        for link in links {
            self.send_stored(now, link, key);
        }
    }

    /// Sends the whole database on `link`.
    fn full_exchange(&mut self, now: Instant, link: LinkId) {
        self.stats.full_exchanges += 1;
        for key in self.db.keys() {
            self.send_stored(now, link, key);
        }
    }

    /// Sends every stored bucket of `origin` on `link` that is not already on its way.
    fn send_origin(&mut self, now: Instant, link: LinkId, origin: NodeId) {
        for key in self.db.keys_of(origin) {
            self.send_if_not_pending(now, link, key);
        }
    }

    /// Sends the stored advert `key` on `link` unless that very version already waits for the
    /// neighbour's ack there (its retransmission is timed already): a neighbour that keeps
    /// sending stale copies gets one answer per retransmission interval, not one per copy.
    fn send_if_not_pending(&mut self, now: Instant, link: LinkId, key: (NodeId, Bucket)) {
        let current = self.db.get(&key).map(|s| s.id);
        let pending = self
            .local_link(link)
            .and_then(|l| l.pending.get(&key))
            .map(|p| p.id);
        if current.is_some() && pending != current {
            self.send_stored(now, link, key);
        }
    }

    /// Sends the stored advert `key` on `link` and expects an ack.
    fn send_stored(&mut self, now: Instant, link: LinkId, key: (NodeId, Bucket)) {
        let Some(stored) = self.db.get(&key) else {
            return;
        };
        let id = stored.id;
        let envelope = encode_stored(key.1, stored);
        let initial = self.params.retransmit_initial;
        if let Some(l) = self.local_link_mut(link) {
            l.pending.insert(key, Pending::new(id, now, initial));
        }
        self.send(link, envelope);
    }

    fn retransmit(&mut self, now: Instant) {
        let max = self.params.retransmit_max;
        let mut resend: Vec<(LinkId, (NodeId, Bucket))> = Vec::new();
        for l in self.links.iter_mut().filter(|l| l.up) {
            for (key, p) in l.pending.iter_mut() {
                if p.next_at <= now {
                    p.back_off(now, max);
                    resend.push((l.id, *key));
                }
            }
        }
        for (link, key) in resend {
            let Some(stored) = self.db.get(&key) else {
                if let Some(l) = self.local_link_mut(link) {
                    l.pending.remove(&key);
                }
                continue;
            };
            let envelope = encode_stored(key.1, stored);
            let id = stored.id;
            if let Some(p) = self
                .local_link_mut(link)
                .and_then(|l| l.pending.get_mut(&key))
            {
                p.id = id; // a newer copy replaced the one first sent
            }
            self.stats.retransmissions += 1;
            self.send(link, envelope);
        }
    }

    fn send(&mut self, link: LinkId, envelope: Vec<u8>) {
        self.stats.sent += 1;
        self.out.push_back(Outgoing { link, envelope });
    }

    fn local_link(&self, link: LinkId) -> Option<&LocalLink> {
        self.links.iter().find(|l| l.id == link)
    }

    fn local_link_mut(&mut self, link: LinkId) -> Option<&mut LocalLink> {
        self.links.iter_mut().find(|l| l.id == link)
    }
}

fn encode_stored(bucket: Bucket, stored: &StoredBucket) -> Vec<u8> {
    BucketAdvert {
        id: stored.id,
        bucket,
        groups: stored.groups.clone(),
    }
    .encode()
}
