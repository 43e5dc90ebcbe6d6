//! The figures of a run so far: [`Simulation::report`].

use weft_shared::time::Instant;

use super::{Simulation, groups};
use crate::linkmodel::LinkCounters;
use crate::sim::report::{LinkDirReport, NodeSummary, Report};

impl Simulation {
    /// The figures so far (flows' open gaps are closed at the current time).
    pub fn report(&self) -> Report {
        let events: Vec<(Instant, String)> = self
            .timeline
            .iter()
            .map(|(at, _, what)| (*at, what.clone()))
            .collect();
        let flows = self
            .flows
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.finish(self.now.min(self.end), &self.window_starts);
                f.report(&self.report_spec.percentiles, &events)
            })
            .collect();
        let group_flows = self.group_flow_reports(&events);
        let links = self.report_spec.links.then(|| {
            let mut v = Vec::new();
            for l in &self.net {
                for (p, path) in l.paths.iter().enumerate() {
                    for side in 0..2 {
                        let c: LinkCounters = path.dir[side].counters();
                        v.push(LinkDirReport {
                            link: l.id.get(),
                            path: p as u8,
                            from: l.nodes[side].get(),
                            to: l.nodes[1 - side].get(),
                            offered: c.offered,
                            delivered: c.delivered,
                            lost: c.lost,
                            queue_drops: c.queue_drops,
                            down_drops: c.down_drops,
                        });
                    }
                }
            }
            v
        });
        let nodes = self
            .nodes
            .iter()
            .map(|n| NodeSummary {
                id: n.id.get(),
                name: n.name.clone(),
                up: n.running.is_some(),
                incarnation: n.running.as_ref().map(|r| r.incarnation.0),
                fib_publishes: n.running.as_ref().map_or(0, |r| r.fib_publishes),
                routes: n.running.as_ref().map_or(0, |r| r.fib.counts().unicast),
                hellos_ignored: n.running.as_ref().map_or(0, |r| r.hellos_ignored),
                control_refused: n.running.as_ref().map_or(0, |r| r.control_refused),
                groups: n.running.as_ref().map(groups::summary).unwrap_or_default(),
            })
            .collect();
        Report {
            scenario: self.scenario_name.clone(),
            seed: self.seed,
            virtual_ms: self.now.as_nanos() as f64 / 1e6,
            flows,
            group_flows,
            events: events
                .iter()
                .map(|(at, what)| (at.as_nanos() as f64 / 1e6, what.clone()))
                .collect(),
            nodes,
            links,
            counters: self.counters,
            trace_hash: format!("{:016x}", self.trace.hash()),
            trace_records: self.trace.len(),
        }
    }
}
