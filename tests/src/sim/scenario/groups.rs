//! Groups in a scenario: flows to a multicast or anycast group (`to_group`, `to_anycast`) and
//! the `join` and `leave` events, with their checks.

use std::time::Duration;

use weft_shared::ids::GroupId;

use super::raw::RawMembership;
use super::{Action, Check, NodeRef, ScenarioError, node_ref};

/// How a flow addresses its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// `to_group`: every member node gets a copy, along the source's shortest-path tree.
    Multicast,
    /// `to_anycast`: the member node nearest the source gets it.
    Anycast,
}

/// The group a flow is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupTarget {
    /// Multicast or anycast.
    pub kind: GroupKind,
    /// The group (never 0).
    pub group: GroupId,
}

/// A membership change of a group event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupChange {
    /// `join`: a simulated client on the node joins the group.
    Join,
    /// `leave`: the node's member leaves.
    Leave,
}

/// `[[event]]` with `join` or `leave`: a node's local membership of a group changes.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupEventSpec {
    /// When, from the start of the simulation.
    pub at: Duration,
    /// The node.
    pub node: NodeRef,
    /// The group (never 0).
    pub group: GroupId,
    /// Join or leave.
    pub change: GroupChange,
    /// Its index in the whole time-sorted timeline (network and group events together,
    /// file order at equal times): the index reports use for it.
    pub position: usize,
}

/// One parsed `[[event]]`'s action.
pub(crate) enum Timed {
    Network(Action),
    Group(NodeRef, GroupId, GroupChange),
}

impl Check<'_> {
    /// The destination of a flow to `group`: the placeholder `to` and the target.
    pub(crate) fn group_flow(
        &self,
        field: String,
        kind: GroupKind,
        group: u32,
    ) -> Result<(NodeRef, Option<GroupTarget>), ScenarioError> {
        let group = self.group(field, group)?;
        let shown = match kind {
            GroupKind::Multicast => "multicast",
            GroupKind::Anycast => "anycast",
        };
        let to = NodeRef::Name(format!("({shown} group {group})"));
        Ok((to, Some(GroupTarget { kind, group })))
    }

    pub(crate) fn group(&self, field: String, group: u32) -> Result<GroupId, ScenarioError> {
        if group == 0 {
            return Err(self.err(field, "group 0 is not a group"));
        }
        Ok(GroupId(group))
    }

    pub(crate) fn membership(
        &self,
        field: String,
        m: &RawMembership,
        change: GroupChange,
    ) -> Result<Timed, ScenarioError> {
        let group = self.group(format!("{field}.group"), m.group)?;
        Ok(Timed::Group(node_ref(&m.node), group, change))
    }
}
