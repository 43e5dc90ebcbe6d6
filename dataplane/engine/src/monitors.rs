//! Worker 0's link monitors: one [`LinkMonitor`] per link of the node, fed with the hellos the
//! pipeline hands over, driven by their timers, sending their hellos on every path, publishing the
//! active path and one-way delay to the other workers and the statistics to shared memory.

use std::sync::Arc;

use weft_proto::auth::AuthTable;
use weft_proto::forward::{LinkSender, hello_fields, hello_repr};
use weft_proto::link_monitor::{
    LinkMonitor, LinkMonitorConfig, LinkMonitorConfigError, LocalIdentity, PathState, VersionRange,
};
use weft_shared::config::Timers;
use weft_shared::ids::{Incarnation, PathId};
use weft_shared::shm::{AuthStats, Counter, LinkState, LinkStats, StatsWriter, WorkerCounters};
use weft_shared::time::Instant;
use weft_shared::wire::{HelloRepr, LinkRepr, WIRE_VERSION_MAX, WIRE_VERSION_MIN};

use crate::links::{LinkTraffic, Links};
use crate::uring::TxQueue;

/// The monitors, in [`Links::iter`] order.
pub struct Monitors {
    links: Arc<Links>,
    monitors: Vec<LinkMonitor>,
    /// Hellos the monitors refused (duplicates, stale incarnations, mismatches, unknown paths).
    pub hellos_ignored: u64,
    /// Set when something changed that the statistics should show soon.
    dirty: bool,
}

impl Monitors {
    /// A monitor per link, with the config's timers.
    pub fn new(
        links: Arc<Links>,
        timers: &Timers,
        incarnation: Incarnation,
        config_hash: u64,
        now: Instant,
    ) -> Result<Self, LinkMonitorConfigError> {
        let local = LocalIdentity {
            incarnation,
            config_hash,
            versions: VersionRange {
                min: WIRE_VERSION_MIN,
                max: WIRE_VERSION_MAX,
            },
        };
        let monitors = links
            .iter()
            .map(|l| {
                let paths = u8::try_from(l.paths.len()).unwrap_or(u8::MAX);
                let config = LinkMonitorConfig::from_timers(timers, paths, u64::from(l.id.get()));
                LinkMonitor::new(config, local, now)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Monitors {
            links,
            monitors,
            hellos_ignored: 0,
            dirty: true,
        })
    }

    /// A hello received with link header `rx` (already checked against the link table).
    pub fn handle_hello(
        &mut self,
        now: Instant,
        rx: &LinkRepr,
        hello: &HelloRepr,
        mine: Incarnation,
    ) {
        let Some(i) = self.links.position(rx.link) else {
            return;
        };
        let fields = hello_fields(rx, hello, mine);
        if self.monitors[i]
            .handle_hello(now, rx.path, &fields)
            .is_err()
        {
            self.hellos_ignored += 1;
        }
        self.drain_events(i);
    }

    /// Runs due timers and sends due hellos on every path, each from the path's interface socket.
    pub fn poll(
        &mut self,
        now: Instant,
        tx: &mut TxQueue,
        sender: &mut LinkSender,
        counters: &WorkerCounters,
    ) {
        for i in 0..self.monitors.len() {
            if self.monitors[i].poll_timeout().is_some_and(|at| at <= now) {
                self.monitors[i].handle_timeout(now);
            }
            while let Some((path, fields)) = self.monitors[i].poll_transmit(now) {
                let peer = self.monitors[i].peer_incarnation();
                let hello = hello_repr(&fields, peer);
                self.send_hello(i, path, &hello, tx, sender, counters);
            }
            self.drain_events(i);
        }
    }

    fn send_hello(
        &self,
        i: usize,
        path: PathId,
        hello: &HelloRepr,
        tx: &mut TxQueue,
        sender: &mut LinkSender,
        counters: &WorkerCounters,
    ) {
        let Some(link) = self.links.at(i) else {
            return;
        };
        let Some(p) = link.paths.get(usize::from(path.get())) else {
            return;
        };
        let Ok(mut slot) = tx.slot() else {
            counters.add_drop(weft_shared::DropReason::QueueFull, 1);
            return;
        };
        match sender.write_hello(slot.buf(), link.id, path, hello) {
            Ok(n) => {
                // Alone: a hello coalesced behind data into one GSO send would be steered with
                // the data at the receiver (its reuseport program sees the first packet only).
                if slot.queue_alone(p.interface, p.remote, n).is_ok() {
                    counters.add(Counter::Sent, 1);
                    if let Some(t) = self.links.traffic(0, link.id) {
                        LinkTraffic::bump(&t.packets_out, &t.bytes_out, n);
                    }
                }
            }
            Err(reason) => counters.add_drop(reason, 1),
        }
    }

    /// Applies the monitor's events: the active path and delay go to the shared link table.
    fn drain_events(&mut self, i: usize) {
        let m = &mut self.monitors[i];
        // The active path and delay are read from the monitor's state below; the events only
        // say that the statistics should be written soon.
        let mut changed = false;
        while m.poll_event().is_some() {
            changed = true;
        }
        if let Some(link) = self.links.at(i) {
            let active = m.active_path();
            link.set_active_path(active);
            let delay = active
                .and_then(|p| m.one_way_delay(p))
                .map_or(0, |d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
            link.set_one_way_delay_us(delay);
        }
        self.dirty |= changed;
    }

    /// The earliest time a monitor needs [`Monitors::poll`].
    pub fn next_timeout(&self) -> Option<Instant> {
        self.monitors
            .iter()
            .filter_map(LinkMonitor::poll_timeout)
            .min()
    }

    /// Whether an event happened since the last [`Monitors::write_stats`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes every link's and path's record to shared memory, with the key epochs of the
    /// authenticated links from `auth` (worker 0's table).
    pub fn write_stats(&mut self, stats: &StatsWriter, auth: &AuthTable) {
        for (i, (link, m)) in self.links.iter().zip(&self.monitors).enumerate() {
            let [packets_in, bytes_in, packets_out, bytes_out] = self.links.traffic_total(i);
            let mut total = LinkStats {
                state: if m.is_link_up() {
                    LinkState::Up
                } else {
                    LinkState::Down
                },
                active_path: m.active_path(),
                bytes_in,
                bytes_out,
                packets_in,
                packets_out,
                auth: auth.send_epoch(link.id).map(|send_epoch| AuthStats {
                    send_epoch,
                    newest_epoch: auth.newest_epoch(link.id).unwrap_or(send_epoch),
                    peer_epoch: auth.peer_epoch(link.id),
                }),
                ..LinkStats::default()
            };
            let mut last_change = Instant::ZERO;
            for path in &link.paths {
                let Some(s) = m.path_stats(path.id) else {
                    continue;
                };
                let state = match s.state {
                    PathState::Up => LinkState::Up,
                    PathState::Down | PathState::Mismatch => LinkState::Down,
                    PathState::Unknown => LinkState::Unknown,
                };
                let record = LinkStats {
                    state,
                    active_path: None,
                    rtt_us: s.srtt_us.unwrap_or(0),
                    loss_ppm: s.rx_loss_ppm.unwrap_or(0),
                    hellos_sent: s.hellos_sent,
                    hellos_received: s.hellos_received,
                    last_change: s.last_change,
                    ..LinkStats::default()
                };
                stats.write_path(link.id, path.id, &record);
                total.hellos_sent += s.hellos_sent;
                total.hellos_received += s.hellos_received;
                last_change = last_change.max(s.last_change);
                if Some(path.id) == m.active_path() {
                    total.rtt_us = record.rtt_us;
                    total.loss_ppm = record.loss_ppm;
                }
            }
            total.last_change = last_change;
            stats.write_link(link.id, &total);
        }
        self.dirty = false;
    }
}
