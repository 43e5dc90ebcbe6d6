//! Names in a scenario checked against the Weft config: nodes by id or name, links by id or by
//! their two nodes, paths by id; and each path's link model, built from the link's cost and
//! the scenario's settings.

use std::time::Duration;

use weft_shared::config::Config;
use weft_shared::ids::{LinkId, NodeId};

use crate::linkmodel::LinkParams;
use crate::sim::scenario::{LinkRef, NodeRef, Scenario, ScenarioError};

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
