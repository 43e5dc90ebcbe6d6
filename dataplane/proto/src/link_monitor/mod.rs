//! Path liveness for one overlay link: hellos on every path, RTT and loss, up/down decisions and
//! the choice of the path the link sends on, all in the data plane and in milliseconds.
//!
//! A link between two nodes has up to eight paths (interface pairs, i.e. ISP pairs), listed in
//! preference order by the config. The [`LinkMonitor`] sends a hello on every path every
//! `hello_interval` (10 ms by default), declares a path up once three consecutive hellos of the
//! peer arrived and down once none arrived for `hello_interval + dead_after` (110 ms by default),
//! and makes the first up path the link's active one. Spines, for comparison, sends hellos every
//! 100 ms, needs 6 to bring a link up and about 1.05 s to declare it dead (notes §1.5).
//!
//! Clocks are not synchronised between nodes. Each hello carries its send time in the sender's
//! clock, and an echo of the peer's last send time together with how long it was held, so each
//! side measures RTT with its own clock only: `now − echo − held`.
//!
//! Submodules: [`config`](LinkMonitorConfig) (settings), `hello` (the fields a hello carries),
//! `state` (the path state machine and its declared transitions), `event` (what is reported),
//! `path` (per-path bookkeeping and [`PathStats`]), `rtt`, `seq_window` (loss and proof) and
//! `timer` (the fixed timer table).

mod config;
mod event;
mod hello;
mod path;
mod rtt;
mod seq_window;
mod state;
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests;
mod timer;

use core::time::Duration;

use weft_shared::ids::{Incarnation, MAX_PATHS_PER_LINK, PathId};
use weft_shared::time::Instant;

pub use config::{LinkMonitorConfig, LinkMonitorConfigError, LocalIdentity, VersionRange};
pub use event::{LinkEvent, Mismatch, PathDownReason};
pub use hello::{HelloFields, HelloIgnored};
pub use path::PathStats;
pub use state::PathState;

use event::EventQueue;
use path::Path;
use state::PathInput;
use timer::{Timer, TimerKind, TimerTable};

const PATHS: usize = MAX_PATHS_PER_LINK as usize;

/// The liveness monitor of one overlay link: a sans-IO state machine with fixed-size storage
/// (no allocation at all).
///
/// # Call order
///
/// The driver (engine or simulator) owns the clock and the sockets and, on every turn:
///
/// 1. for each hello received on one of the link's paths, calls
///    [`handle_hello(now, path, &fields)`](Self::handle_hello);
/// 2. when [`poll_timeout()`](Self::poll_timeout) is at or before `now`, calls
///    [`handle_timeout(now)`](Self::handle_timeout);
/// 3. calls [`poll_transmit(now)`](Self::poll_transmit) until it returns `None`, sending each
///    hello on its path right away (the hello is stamped with `now`);
/// 4. calls [`poll_event()`](Self::poll_event) until it returns `None`;
/// 5. sleeps until [`poll_timeout()`](Self::poll_timeout) or the next packet.
///
/// `now` never goes backwards. A `poll_timeout` in the past means "call again now".
///
/// ```
/// use weft_proto::link_monitor::{LinkMonitor, LinkMonitorConfig, LocalIdentity, VersionRange};
/// use weft_shared::ids::Incarnation;
/// use weft_shared::time::Instant;
///
/// let local = LocalIdentity {
///     incarnation: Incarnation(1),
///     config_hash: 0xfeed,
///     versions: VersionRange { min: 1, max: 1 },
/// };
/// let config = LinkMonitorConfig { path_count: 2, ..LinkMonitorConfig::default() };
/// let mut monitor = LinkMonitor::new(config, local, Instant::ZERO)?;
/// let mut now = Instant::ZERO;
/// let mut sent = 0;
/// while now < Instant::from_millis(100) {
///     // (1) received hellos: `monitor.handle_hello(now, path, &fields)` for each.
///     if monitor.poll_timeout().is_some_and(|at| at <= now) {
///         monitor.handle_timeout(now);
///     }
///     while let Some((_path, _hello)) = monitor.poll_transmit(now) {
///         sent += 1; // map to the wire hello and send on `_path`
///     }
///     while let Some(event) = monitor.poll_event() {
///         println!("{event:?}");
///     }
///     now = monitor.poll_timeout().unwrap_or(Instant::FAR_FUTURE).max(now);
/// }
/// assert_eq!(sent, 2 * 10, "a hello per path every 10 ms");
/// assert_eq!(monitor.active_path(), None, "nobody answered");
/// # Ok::<(), weft_proto::link_monitor::LinkMonitorConfigError>(())
/// ```
///
/// # Decisions
///
/// - A path is **up** once the peer's last `up_after_hellos` hellos on it, all sent after the
///   path last fell, have arrived (reordering is fine: a late hello fills its hole). It is
///   **down** once no hello has arrived for `hello_interval + dead_after`. It is in
///   **mismatch** while the peer's config hash differs or the two share no wire version.
/// - The **active path** is the first up path in preference order (path id order). Failover is
///   immediate when the active path goes down; failing back waits for the preferred path's proof
///   of `up_after_hellos` hellos, which is the hysteresis. RTT does not pick paths: the operator's
///   order does, and routing weighs the link by the stats.
/// - A **peer restart** (new incarnation) resets every path's sequence, loss and echo tracking
///   without counting the jump as loss; path states are kept. Hellos still carrying the previous
///   incarnation are stragglers and are ignored.
/// - **RTT** takes one sample per new echo. Each side echoes only the newest hello it received,
///   so when one-way jitter is comparable to the gap between the two ends' send phases, a slow
///   hello overtaken by the next one is never echoed and the smoothed RTT reads a little low
///   (in the pair simulation: −1.6 % on a 10 ms path with up to 2 ms of jitter each way).
/// - **Loss** is the fraction of the peer's last 1024 hello sequence numbers (10 s at 10 ms)
///   that did not arrive; a hello still in flight behind a reordered one counts as missing until
///   it arrives.
#[derive(Clone, Debug)]
pub struct LinkMonitor {
    config: LinkMonitorConfig,
    local: LocalIdentity,
    paths: [Path; PATHS],
    timers: TimerTable,
    /// Paths whose hello is due but not yet handed out by `poll_transmit` (bit per path).
    tx_due: u8,
    active: Option<PathId>,
    peer: Option<Incarnation>,
    peer_previous: Option<Incarnation>,
    events: EventQueue,
}

impl LinkMonitor {
    /// A monitor for a link with `config.path_count` paths, all [`PathState::Unknown`], whose
    /// first hellos go out within one `hello_interval` of `now`.
    pub fn new(
        config: LinkMonitorConfig,
        local: LocalIdentity,
        now: Instant,
    ) -> Result<Self, LinkMonitorConfigError> {
        config.check(&local)?;
        let mut monitor = LinkMonitor {
            config,
            local,
            paths: [Path::new(now); PATHS],
            timers: TimerTable::new(),
            tx_due: 0,
            active: None,
            peer: None,
            peer_previous: None,
            events: EventQueue::new(),
        };
        for path in monitor.path_ids() {
            let offset = phase_offset(config.phase_seed, path, config.hello_interval);
            monitor.timers.set(
                Timer {
                    kind: TimerKind::Hello,
                    path,
                },
                now + offset,
            );
        }
        Ok(monitor)
    }

    /// Takes in a hello the peer sent on `path`. `Err` says why it did not count towards the
    /// path's liveness (a mismatched hello still moves the path to [`PathState::Mismatch`]).
    pub fn handle_hello(
        &mut self,
        now: Instant,
        path: PathId,
        hello: &HelloFields,
    ) -> Result<(), HelloIgnored> {
        if path.get() >= self.config.path_count {
            return Err(HelloIgnored::UnknownPath(path.get()));
        }
        if let Some(mismatch) = self.mismatch(hello) {
            if self.transition(now, path, PathInput::Mismatched) {
                self.events.push(LinkEvent::Mismatch { path, mismatch });
                self.update_active();
            }
            return Err(HelloIgnored::Mismatch);
        }
        self.check_incarnation(hello.incarnation)?;
        let p = usize::from(path.get());
        if self.paths[p].state == PathState::Mismatch {
            self.transition(now, path, PathInput::Matched);
        }
        self.paths[p].on_hello(now, hello, self.config.max_rtt)?;
        match self.paths[p].state {
            PathState::Up => {
                let dead_at = now + self.config.hello_interval + self.config.dead_after;
                self.timers.set(
                    Timer {
                        kind: TimerKind::Dead,
                        path,
                    },
                    dead_at,
                );
            }
            PathState::Unknown | PathState::Down => {
                if self.paths[p].is_proven(self.config.up_after_hellos) {
                    self.transition(now, path, PathInput::Proven);
                    self.update_active();
                }
            }
            PathState::Mismatch => {}
        }
        Ok(())
    }

    /// Runs the timers due at `now`: paths fall silent, hellos become due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for path in self.path_ids() {
            let dead = Timer {
                kind: TimerKind::Dead,
                path,
            };
            if self.timers.is_expired(dead, now) {
                self.timers.stop(dead);
                self.transition(now, path, PathInput::Silent);
            }
        }
        // One active-path decision for everything that fell at once.
        self.update_active();
        self.collect_due_hellos(now);
    }

    /// The next hello to send, with its path: one per call, until none is due at `now`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(PathId, HelloFields)> {
        self.collect_due_hellos(now);
        if self.tx_due == 0 {
            return None;
        }
        let bit = self.tx_due.trailing_zeros();
        self.tx_due &= !(1 << bit);
        let path = PathId::new(u8::try_from(bit).ok()?)?;
        let hello = self.paths[usize::from(path.get())].build_hello(now, &self.local);
        Some((path, hello))
    }

    /// When the monitor next needs [`handle_timeout`](Self::handle_timeout) (or, if hellos are
    /// due and not yet polled, a time in the past).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.tx_due != 0 {
            return Some(Instant::ZERO);
        }
        self.timers.next()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop()
    }

    /// The path the link sends on: the first up path in preference order.
    pub fn active_path(&self) -> Option<PathId> {
        self.active
    }

    /// Whether any path is up.
    pub fn is_link_up(&self) -> bool {
        self.active.is_some()
    }

    /// A snapshot of `path`, or `None` if the link has no such path.
    pub fn path_stats(&self, path: PathId) -> Option<PathStats> {
        (path.get() < self.config.path_count).then(|| self.paths[usize::from(path.get())].stats())
    }

    /// The one-way delay estimate of `path` (smoothed RTT / 2), for deadline age accounting.
    pub fn one_way_delay(&self, path: PathId) -> Option<Duration> {
        if path.get() >= self.config.path_count {
            return None;
        }
        self.paths[usize::from(path.get())]
            .srtt()
            .map(|srtt| srtt / 2)
    }

    /// The peer's incarnation, once a matching hello arrived.
    pub fn peer_incarnation(&self) -> Option<Incarnation> {
        self.peer
    }

    /// Events dropped because the queue was full (the driver did not poll them).
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped()
    }

    /// The settings the monitor runs with.
    pub fn config(&self) -> &LinkMonitorConfig {
        &self.config
    }

    fn path_ids(&self) -> impl Iterator<Item = PathId> + use<> {
        (0..self.config.path_count).filter_map(PathId::new)
    }

    fn mismatch(&self, hello: &HelloFields) -> Option<Mismatch> {
        if !self.local.versions.overlaps(hello.versions) {
            return Some(Mismatch::Version {
                ours: self.local.versions,
                theirs: hello.versions,
            });
        }
        if hello.config_hash != self.local.config_hash {
            let (ours, theirs) = (self.local.config_hash, hello.config_hash);
            return Some(Mismatch::ConfigHash { ours, theirs });
        }
        None
    }

    /// Learns the peer's incarnation and notices restarts; rejects stragglers.
    fn check_incarnation(&mut self, incarnation: Incarnation) -> Result<(), HelloIgnored> {
        match self.peer {
            None => self.peer = Some(incarnation),
            Some(current) if current == incarnation => {}
            Some(_) if self.peer_previous == Some(incarnation) => {
                return Err(HelloIgnored::StaleIncarnation);
            }
            Some(old) => {
                self.peer_previous = Some(old);
                self.peer = Some(incarnation);
                for path in &mut self.paths {
                    path.on_peer_restart();
                }
                self.events.push(LinkEvent::PeerRestarted {
                    old,
                    new: incarnation,
                });
            }
        }
        Ok(())
    }

    /// Moves `path` along the declared edge for `input`, if there is one, and reports it; the
    /// caller then updates the active path. Returns whether the state changed.
    fn transition(&mut self, now: Instant, path: PathId, input: PathInput) -> bool {
        let p = &mut self.paths[usize::from(path.get())];
        let from = p.state;
        let Some(to) = from.on_input(input) else {
            return false;
        };
        p.state = to;
        p.last_change = now;
        let dead = Timer {
            kind: TimerKind::Dead,
            path,
        };
        match to {
            PathState::Up => {
                let dead_at = now + self.config.hello_interval + self.config.dead_after;
                self.timers.set(dead, dead_at);
                self.events.push(LinkEvent::PathUp(path));
            }
            PathState::Down | PathState::Mismatch => {
                self.timers.stop(dead);
                p.on_fall();
                if from == PathState::Up {
                    let reason = match input {
                        PathInput::Mismatched => PathDownReason::Mismatch,
                        _ => PathDownReason::Silent,
                    };
                    self.events.push(LinkEvent::PathDown { path, reason });
                }
            }
            PathState::Unknown => {}
        }
        true
    }

    /// Makes the first up path active and reports changes.
    fn update_active(&mut self) {
        let best = self
            .path_ids()
            .find(|p| self.paths[usize::from(p.get())].state.is_up());
        if best == self.active {
            return;
        }
        let from = self.active;
        self.active = best;
        self.events
            .push(LinkEvent::ActivePathChanged { from, to: best });
        match (from, best) {
            (None, Some(_)) => self.events.push(LinkEvent::LinkUp),
            (Some(_), None) => self.events.push(LinkEvent::LinkDown),
            _ => {}
        }
    }

    /// Marks the hellos due at `now` and schedules their successors on the same phase; a driver
    /// that fell behind skips the missed hellos instead of bursting them.
    fn collect_due_hellos(&mut self, now: Instant) {
        for path in self.path_ids() {
            let timer = Timer {
                kind: TimerKind::Hello,
                path,
            };
            let Some(due) = self.timers.get(timer) else {
                continue;
            };
            if due > now {
                continue;
            }
            self.tx_due |= 1 << path.get();
            let mut next = due + self.config.hello_interval;
            if next <= now {
                next = now + self.config.hello_interval;
            }
            self.timers.set(timer, next);
        }
    }
}

/// A deterministic offset in `[0, interval)` per (seed, path), so that paths (and links, through
/// the seed) do not send in lockstep.
fn phase_offset(seed: u64, path: PathId, interval: Duration) -> Duration {
    // splitmix64 finaliser: a cheap, well-mixed hash.
    let mut z = seed ^ (u64::from(path.get()) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let interval_ns = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_nanos(z % interval_ns)
}
