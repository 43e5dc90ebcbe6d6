//! Names in a scenario checked against the Weft config: nodes by id or name, links by id or by
//! their two nodes, paths by id; the timeline (network and group events merged in time order);
//! and each path's link model, built from the link's cost and the scenario's settings.

use std::time::Duration;

use weft_shared::config::Config;
use weft_shared::ids::{GroupId, LinkId, NodeId};
use weft_shared::time::Instant;

use crate::linkmodel::LinkParams;
use crate::sim::node::Misbehaviour;
use crate::sim::scenario::{
    Action, Behaviour, GroupChange, LinkRef, NodeRef, Scenario, ScenarioError,
};

/// A timeline action with its names resolved: links and nodes by their position in the
/// config's (sorted) lists.
#[derive(Clone, Debug)]
pub(crate) enum Resolved {
    CutLink(usize),
    RestoreLink(usize),
    CutPath(usize, u8),
    RestorePath(usize, u8),
    FailNode(usize),
    RestartNode(usize),
    Misbehave(usize, Misbehaviour),
    /// A simulated client of the node joins the group.
    Join(usize, GroupId),
    /// The node's member leaves the group.
    Leave(usize, GroupId),
}

/// Resolves names for one scenario against one config.
pub(crate) struct Resolver<'a> {
    pub(crate) config: &'a Config,
    pub(crate) scenario: &'a Scenario,
}

impl Resolver<'_> {
    fn err(&self, field: &str, message: String) -> ScenarioError {
        ScenarioError::new(&self.scenario.file, field, message)
    }

    /// The node `r` names; `field` is where it was written.
    pub(crate) fn node(&self, field: &str, r: &NodeRef) -> Result<NodeId, ScenarioError> {
        let found = match r {
            NodeRef::Id(id) => NodeId::new(*id)
                .and_then(|id| self.config.node(id))
                .map(|n| n.id()),
            NodeRef::Name(name) => self.config.node_by_name(name).map(|n| n.id()),
        };
        found.ok_or_else(|| {
            let known: Vec<String> = self
                .config
                .nodes()
                .iter()
                .map(|n| format!("{} ({})", n.id(), n.name()))
                .collect();
            let shown = match r {
                NodeRef::Id(id) => id.to_string(),
                NodeRef::Name(name) => format!("{name:?}"),
            };
            self.err(
                field,
                format!(
                    "no node {shown} in {} (nodes: {})",
                    self.scenario.config,
                    known.join(", ")
                ),
            )
        })
    }

    /// The link `r` names, as its position in `config.links()`.
    pub(crate) fn link(&self, field: &str, r: &LinkRef) -> Result<usize, ScenarioError> {
        let links = self.config.links();
        match r {
            LinkRef::Id(id) => LinkId::new(*id)
                .and_then(|id| links.iter().position(|l| l.id() == id))
                .ok_or_else(|| {
                    let ids: Vec<String> = links.iter().map(|l| l.id().to_string()).collect();
                    self.err(
                        field,
                        format!(
                            "no link {id} in {} (links: {})",
                            self.scenario.config,
                            ids.join(", ")
                        ),
                    )
                }),
            LinkRef::Between(a, b) => {
                let a = self.node(field, a)?;
                let b = self.node(field, b)?;
                let link = self
                    .config
                    .link_between(a, b)
                    .ok_or_else(|| self.err(field, format!("no link between nodes {a} and {b}")))?;
                links
                    .iter()
                    .position(|l| l.id() == link.id())
                    .ok_or_else(|| self.err(field, "link vanished".to_owned()))
            }
        }
    }

    /// The node `r` names, as its position in `config.nodes()`.
    fn node_index(&self, field: &str, r: &NodeRef) -> Result<usize, ScenarioError> {
        let id = self.node(field, r)?;
        self.config
            .nodes()
            .iter()
            .position(|n| n.id() == id)
            .ok_or_else(|| self.err(field, "node vanished".to_owned()))
    }

    /// The timeline, resolved, in the scenario's (time) order, each with a description:
    /// network events, with the group events at their positions.
    pub(crate) fn timeline(&self) -> Result<Vec<(Instant, Resolved, String)>, ScenarioError> {
        let network = self.network_events()?;
        let mut network = network.into_iter();
        let nodes = self.config.nodes();
        let mut groups = self.scenario.group_events.iter().peekable();
        let mut timeline = Vec::new();
        for position in 0..self.scenario.timeline_len() {
            let Some(g) = groups.next_if(|g| g.position == position) else {
                timeline.extend(network.next());
                continue;
            };
            let key = match g.change {
                GroupChange::Join => "join",
                GroupChange::Leave => "leave",
            };
            let field = format!("event[{}].{key}.node", g.position);
            let x = self.node_index(&field, &g.node)?;
            let named = format!("node {} ({})", nodes[x].id(), nodes[x].name());
            let (action, what) = match g.change {
                GroupChange::Join => (
                    Resolved::Join(x, g.group),
                    format!("{named} joins group {}", g.group),
                ),
                GroupChange::Leave => (
                    Resolved::Leave(x, g.group),
                    format!("{named} leaves group {}", g.group),
                ),
            };
            timeline.push((Instant::ZERO + g.at, action, what));
        }
        Ok(timeline)
    }

    /// The network events, resolved, in time order.
    fn network_events(&self) -> Result<Vec<(Instant, Resolved, String)>, ScenarioError> {
        let links = self.config.links();
        let nodes = self.config.nodes();
        let mut timeline = Vec::new();
        for (i, e) in self.scenario.events.iter().enumerate() {
            let field = format!("event[{i}]");
            let node = |f: &str, n| self.node_index(&format!("{field}.{f}"), n);
            let named = |x: usize| format!("node {} ({})", nodes[x].id(), nodes[x].name());
            let (action, what) = match &e.action {
                Action::CutLink(l) => {
                    let x = self.link(&format!("{field}.cut_link"), l)?;
                    (Resolved::CutLink(x), format!("cut link {}", links[x].id()))
                }
                Action::RestoreLink(l) => {
                    let x = self.link(&format!("{field}.restore_link"), l)?;
                    let what = format!("restore link {}", links[x].id());
                    (Resolved::RestoreLink(x), what)
                }
                Action::CutPath(l, p) => {
                    let x = self.link(&format!("{field}.cut_path.link"), l)?;
                    let p = self.path(&format!("{field}.cut_path.path"), x, *p)?;
                    let what = format!("cut link {} path {p}", links[x].id());
                    (Resolved::CutPath(x, p), what)
                }
                Action::RestorePath(l, p) => {
                    let x = self.link(&format!("{field}.restore_path.link"), l)?;
                    let p = self.path(&format!("{field}.restore_path.path"), x, *p)?;
                    let what = format!("restore link {} path {p}", links[x].id());
                    (Resolved::RestorePath(x, p), what)
                }
                Action::FailNode(n) => {
                    let x = node("fail_node", n)?;
                    (Resolved::FailNode(x), format!("fail {}", named(x)))
                }
                Action::RestartNode(n) => {
                    let x = node("restart_node", n)?;
                    (Resolved::RestartNode(x), format!("restart {}", named(x)))
                }
                Action::Misbehave(n, b) => {
                    let x = node("misbehave.node", n)?;
                    let m = match b {
                        Behaviour::Honest => Misbehaviour::Honest,
                        Behaviour::DropAll => Misbehaviour::DropAll,
                        Behaviour::DropFraction(f) => Misbehaviour::DropFraction(*f),
                        Behaviour::Delay(d) => Misbehaviour::Delay(*d),
                        Behaviour::Duplicate(c) => Misbehaviour::Duplicate(*c),
                        Behaviour::Flood { to, rate_pps, size } => Misbehaviour::Flood {
                            to: self.node(&format!("{field}.misbehave.to"), to)?,
                            interval_ns: (1e9 / rate_pps).round().max(1.0) as u64,
                            size: *size,
                        },
                    };
                    let what = format!("{} misbehaves: {m:?}", named(x));
                    (Resolved::Misbehave(x, m), what)
                }
            };
            timeline.push((Instant::ZERO + e.at, action, what));
        }
        Ok(timeline)
    }

    /// Checks that link `index` has path `path`.
    pub(crate) fn path(&self, field: &str, index: usize, path: u8) -> Result<u8, ScenarioError> {
        let link = &self.config.links()[index];
        if usize::from(path) >= link.paths().len() {
            return Err(self.err(
                field,
                format!(
                    "link {} has {} path(s), ids 0..{}",
                    link.id(),
                    link.paths().len(),
                    link.paths().len()
                ),
            ));
        }
        Ok(path)
    }

    /// The model of every path of every link (config order, then path id): the link's cost as
    /// its latency, then `[link_model]`, then each matching `[[link_override]]` in file order.
    pub(crate) fn path_params(&self) -> Result<Vec<Vec<LinkParams>>, ScenarioError> {
        let mut all: Vec<Vec<LinkParams>> = self
            .config
            .links()
            .iter()
            .map(|l| {
                let mut p = LinkParams {
                    latency: Duration::from_micros(u64::from(l.cost_us())),
                    ..LinkParams::default()
                };
                self.scenario.link_model.apply(&mut p);
                vec![p; l.paths().len()]
            })
            .collect();
        for (i, o) in self.scenario.link_overrides.iter().enumerate() {
            let field = format!("link_override[{i}]");
            let link = self.link(&format!("{field}.link"), &o.link)?;
            let paths = &mut all[link];
            match o.path {
                Some(p) => {
                    let p = self.path(&format!("{field}.path"), link, p)?;
                    o.spec.apply(&mut paths[usize::from(p)]);
                }
                None => paths.iter_mut().for_each(|p| o.spec.apply(p)),
            }
        }
        Ok(all)
    }
}
