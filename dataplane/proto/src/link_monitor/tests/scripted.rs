//! One monitor driven by a script of peer hellos in virtual time (STYLE.md §12(b)): exact event
//! sequences for coming up, failing over, failing back, mismatches and peer restarts.

use core::time::Duration;

use weft_shared::ids::{Incarnation, PathId};
use weft_shared::time::Instant;

use super::super::{
    HelloFields, HelloIgnored, LinkEvent, LinkMonitor, Mismatch, PathDownReason, PathState,
    VersionRange,
};
use super::{HASH, config, identity, path};

/// The monitor under test, its clock and everything it produced.
struct Endpoint {
    m: LinkMonitor,
    now: Instant,
    log: Vec<(Instant, LinkEvent)>,
    sent: Vec<(Instant, PathId, HelloFields)>,
}

impl Endpoint {
    fn new(paths: u8) -> Self {
        let m = LinkMonitor::new(config(paths), identity(1, HASH), Instant::ZERO).unwrap();
        Endpoint {
            m,
            now: Instant::ZERO,
            log: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Runs every timer due up to `to`, at its own time, then sets the clock to `to`.
    fn advance(&mut self, to: Instant) {
        while let Some(at) = self.m.poll_timeout().filter(|at| *at <= to) {
            self.now = self.now.max(at);
            self.m.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(to);
    }

    fn drain(&mut self) {
        while let Some((p, hello)) = self.m.poll_transmit(self.now) {
            self.sent.push((self.now, p, hello));
        }
        while let Some(event) = self.m.poll_event() {
            self.log.push((self.now, event));
        }
    }

    fn hello(&mut self, at: Instant, p: PathId, h: &HelloFields) -> Result<(), HelloIgnored> {
        self.advance(at);
        let result = self.m.handle_hello(self.now, p, h);
        self.drain();
        result
    }

    fn state(&self, p: PathId) -> PathState {
        self.m.path_stats(p).unwrap().state
    }
}

/// The scripted peer: numbers its hellos per path; a skipped number is a hello lost on the way.
struct Peer {
    seq: [u32; 8],
    incarnation: u32,
    config_hash: u64,
    last_tx_ns: u64,
}

impl Peer {
    fn new() -> Self {
        Peer {
            seq: [0; 8],
            incarnation: 9,
            config_hash: HASH,
            last_tx_ns: 0,
        }
    }

    fn next(&mut self, p: PathId, at: Instant) -> HelloFields {
        let seq = self.seq[usize::from(p.get())];
        self.seq[usize::from(p.get())] += 1;
        // The peer's clock has another origin than ours.
        self.last_tx_ns = at.as_nanos() + 7_000_000_000;
        HelloFields {
            seq,
            tx_time_ns: self.last_tx_ns,
            echo_tx_time_ns: 0,
            echo_held_us: 0,
            incarnation: Incarnation(self.incarnation),
            config_hash: self.config_hash,
            versions: VersionRange { min: 2, max: 3 },
            rx_loss_ppm: None,
        }
    }

    fn lose(&mut self, p: PathId, n: u32) {
        self.seq[usize::from(p.get())] += n;
    }
}

fn ms(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn up(p: u8) -> LinkEvent {
    LinkEvent::PathUp(path(p))
}

fn down(p: u8) -> LinkEvent {
    LinkEvent::PathDown {
        path: path(p),
        reason: PathDownReason::Silent,
    }
}

fn active(from: Option<u8>, to: Option<u8>) -> LinkEvent {
    LinkEvent::ActivePathChanged {
        from: from.map(path),
        to: to.map(path),
    }
}

#[test]
fn paths_come_up_fail_over_and_fail_back_with_hysteresis() {
    let mut ep = Endpoint::new(2);
    let mut peer = Peer::new();
    // Path 0: hellos at 1, 11, .., 51 ms; then 24 lost; from 301 ms on again, except the one
    // at 311 ms. Path 1: hellos at 2, 12, .., 592 ms. Both stop after 600 ms.
    for t in (1..600).step_by(10) {
        let p0_delivered = t <= 51 || (t >= 301 && t != 311);
        if p0_delivered {
            let h = peer.next(path(0), ms(t));
            ep.hello(ms(t), path(0), &h).unwrap();
        } else {
            peer.lose(path(0), 1);
        }
        let h = peer.next(path(1), ms(t + 1));
        ep.hello(ms(t + 1), path(1), &h).unwrap();
    }
    ep.advance(ms(900));
    let expected = vec![
        // The third hello on each path brings it up; path 0 is preferred.
        (ms(21), up(0)),
        (ms(21), active(None, Some(0))),
        (ms(21), LinkEvent::LinkUp),
        (ms(22), up(1)),
        // Last hello on path 0 at 51 ms; down at 51 + 10 + 100 ms; the link fails over at once.
        (ms(161), down(0)),
        (ms(161), active(Some(0), Some(1))),
        // Back at 301 ms, but 311 is lost, so the run restarts: 321, 331, 341 bring it up (at
        // 321 ms it would have come up without the hysteresis), and the link fails back.
        (ms(341), up(0)),
        (ms(341), active(Some(1), Some(0))),
        // The peer falls silent on both paths after 591 / 592 ms.
        (ms(701), down(0)),
        (ms(701), active(Some(0), Some(1))),
        (ms(702), down(1)),
        (ms(702), active(Some(1), None)),
        (ms(702), LinkEvent::LinkDown),
    ];
    assert_eq!(ep.log, expected);
    assert_eq!(ep.m.active_path(), None);
    let stats = ep.m.path_stats(path(0)).unwrap();
    assert_eq!(stats.state, PathState::Down);
    assert_eq!(stats.last_change, ms(701));
    assert_eq!(stats.hellos_missing, 24 + 1);
}

#[test]
fn a_silent_path_goes_down_between_dead_after_and_one_interval_later() {
    let config = config(1);
    let (dead_after, interval) = (config.dead_after, config.hello_interval);
    // The peer goes silent at `cut`, at 41 phases across one hello interval.
    for step in 0..=40u64 {
        let cut = Instant::from_micros(300_000 + step * 250);
        let mut ep = Endpoint::new(1);
        let mut peer = Peer::new();
        let mut t = ms(3);
        while t < cut {
            let h = peer.next(path(0), t);
            ep.hello(t, path(0), &h).unwrap();
            t = t + interval;
        }
        ep.advance(cut + Duration::from_millis(500));
        let downs: Vec<_> = ep.log.iter().filter(|(_, e)| *e == down(0)).collect();
        assert_eq!(downs.len(), 1, "cut at {cut:?}: {:?}", ep.log);
        let detection = downs[0].0 - cut;
        assert!(
            detection >= dead_after && detection <= dead_after + interval,
            "cut at {cut:?}: detected after {detection:?}"
        );
    }
}

#[test]
fn hellos_go_out_on_every_path_each_interval_out_of_phase() {
    let mut ep = Endpoint::new(4);
    ep.advance(ms(1_000));
    for p in 0..4 {
        let times: Vec<Instant> = ep
            .sent
            .iter()
            .filter(|(_, q, _)| *q == path(p))
            .map(|(t, _, _)| *t)
            .collect();
        assert_eq!(times.len(), 100, "path {p}");
        assert!(
            times
                .windows(2)
                .all(|w| w[1] - w[0] == Duration::from_millis(10))
        );
        let seqs: Vec<u32> = ep
            .sent
            .iter()
            .filter(|(_, q, _)| *q == path(p))
            .map(|(_, _, h)| h.seq)
            .collect();
        assert_eq!(seqs, (0..100).collect::<Vec<u32>>());
    }
    let first: Vec<Instant> = (0..4)
        .map(|p| {
            ep.sent
                .iter()
                .find(|(_, q, _)| *q == path(p))
                .map(|(t, _, _)| *t)
                .unwrap()
        })
        .collect();
    let mut distinct = first.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "paths send in lockstep: {first:?}");
    assert!(first.iter().all(|t| *t < ms(10)));
}

#[test]
fn rtt_comes_from_the_echo_minus_the_hold_and_odd_echoes_are_ignored() {
    let mut ep = Endpoint::new(1);
    let mut peer = Peer::new();
    ep.advance(ms(20));
    let (sent_at, _, ours) = *ep.sent.last().unwrap();
    let first_tx = ep.sent[0].2.tx_time_ns;
    let mut reply = |ep: &mut Endpoint, at: Instant, echo: u64, held_us: u32| {
        let mut h = peer.next(path(0), at);
        h.echo_tx_time_ns = echo;
        h.echo_held_us = held_us;
        ep.hello(at, path(0), &h).unwrap();
        ep.m.path_stats(path(0)).unwrap()
    };
    let tick = Duration::from_micros(100);
    // Echo 0, an echo from the future and one before our first hello are not samples.
    for echo in [0, ep.now.as_nanos() + 1_000_000_000, first_tx - 1] {
        let at = ep.now + tick;
        let stats = reply(&mut ep, at, echo, 0);
        assert_eq!(stats.rtt_samples, 0, "echo {echo}");
    }
    // A hold longer than the time since we sent it is impossible.
    let at = ep.now + tick;
    let stats = reply(&mut ep, at, ours.tx_time_ns, 60_000);
    assert_eq!(stats.rtt_samples, 0);
    // The peer held our hello 2 ms; it comes back 12 ms after we sent it: RTT 10 ms.
    let at = sent_at + Duration::from_millis(12);
    let stats = reply(&mut ep, at, ours.tx_time_ns, 2_000);
    assert_eq!(stats.rtt_samples, 1);
    assert_eq!(
        (stats.srtt_us, stats.min_rtt_us),
        (Some(10_000), Some(10_000))
    );
    assert_eq!(ep.m.one_way_delay(path(0)), Some(Duration::from_millis(5)));
    // The same echo again (the peer heard nothing newer) is not a second sample.
    let at = ep.now + Duration::from_millis(5);
    let stats = reply(&mut ep, at, ours.tx_time_ns, 7_000);
    assert_eq!(stats.rtt_samples, 1);
    // Our next hello echoes the peer's latest send time and how long we held it.
    let (last_rx, peer_tx) = (ep.now, peer.last_tx_ns);
    ep.advance(ep.now + Duration::from_millis(10));
    let (at, _, next) = *ep.sent.last().unwrap();
    assert!(at > last_rx);
    assert_eq!(next.echo_tx_time_ns, peer_tx);
    assert_eq!(
        u64::from(next.echo_held_us),
        (at - last_rx).as_micros() as u64
    );
}

#[test]
fn a_config_hash_mismatch_keeps_the_path_down_and_is_reported_once() {
    let mut ep = Endpoint::new(1);
    let mut peer = Peer::new();
    for t in (1..=31).step_by(10) {
        let h = peer.next(path(0), ms(t));
        ep.hello(ms(t), path(0), &h).unwrap();
    }
    assert_eq!(ep.state(path(0)), PathState::Up);
    ep.log.clear();
    // The peer reloads another config: its hellos keep coming, every 10 ms, for a second.
    peer.config_hash = HASH ^ 1;
    for t in (41..1_041).step_by(10) {
        let h = peer.next(path(0), ms(t));
        assert_eq!(ep.hello(ms(t), path(0), &h), Err(HelloIgnored::Mismatch));
    }
    ep.advance(ms(1_500));
    let mismatch = Mismatch::ConfigHash {
        ours: HASH,
        theirs: HASH ^ 1,
    };
    let expected = vec![
        (
            ms(41),
            LinkEvent::PathDown {
                path: path(0),
                reason: PathDownReason::Mismatch,
            },
        ),
        (
            ms(41),
            LinkEvent::Mismatch {
                path: path(0),
                mismatch,
            },
        ),
        (ms(41), active(Some(0), None)),
        (ms(41), LinkEvent::LinkDown),
    ];
    assert_eq!(ep.log, expected);
    assert_eq!(ep.state(path(0)), PathState::Mismatch);
    // Matching hellos again: the path needs its full proof before it is up.
    peer.config_hash = HASH;
    ep.log.clear();
    for t in (1_501..=1_521).step_by(10) {
        let h = peer.next(path(0), ms(t));
        ep.hello(ms(t), path(0), &h).unwrap();
        let expected = if t < 1_521 {
            PathState::Down
        } else {
            PathState::Up
        };
        assert_eq!(ep.state(path(0)), expected, "at {t} ms");
    }
    assert_eq!(ep.log[0], (ms(1_521), up(0)));
}

#[test]
fn a_version_mismatch_from_the_start_never_comes_up() {
    let mut ep = Endpoint::new(2);
    let mut peer = Peer::new();
    for t in (1..500).step_by(10) {
        let mut h = peer.next(path(1), ms(t));
        h.versions = VersionRange { min: 3, max: 4 };
        assert_eq!(ep.hello(ms(t), path(1), &h), Err(HelloIgnored::Mismatch));
    }
    let mismatch = Mismatch::Version {
        ours: VersionRange { min: 1, max: 2 },
        theirs: VersionRange { min: 3, max: 4 },
    };
    assert_eq!(
        ep.log,
        vec![(
            ms(1),
            LinkEvent::Mismatch {
                path: path(1),
                mismatch
            }
        )]
    );
    assert_eq!(ep.state(path(1)), PathState::Mismatch);
    assert_eq!(ep.state(path(0)), PathState::Unknown);
    let h = peer.next(path(0), ms(600));
    assert_eq!(
        ep.hello(ms(600), path(2), &h),
        Err(HelloIgnored::UnknownPath(2))
    );
}

#[test]
fn a_peer_restart_is_reported_once_and_is_not_loss() {
    let mut ep = Endpoint::new(2);
    let mut peer = Peer::new();
    peer.seq = [1_000; 8];
    let mut t = 1;
    while t < 500 {
        for p in 0..2 {
            let h = peer.next(path(p), ms(t));
            ep.hello(ms(t), path(p), &h).unwrap();
        }
        t += 10;
    }
    let old = peer.incarnation;
    let straggler = peer.next(path(0), ms(t));
    // The peer restarts: a new incarnation, sequence numbers from 0, a new clock.
    peer.incarnation = 10;
    peer.seq = [0; 8];
    ep.log.clear();
    while t < 1_500 {
        for p in 0..2 {
            let h = peer.next(path(p), ms(t));
            ep.hello(ms(t), path(p), &h).unwrap();
            let stats = ep.m.path_stats(path(p)).unwrap();
            assert_eq!(
                stats.rx_loss_ppm,
                Some(0),
                "loss spike at {t} ms on path {p}"
            );
            assert_eq!(stats.hellos_missing, 0);
            assert_eq!(stats.state, PathState::Up);
        }
        if t == 601 {
            // A hello of the old incarnation, late: ignored, not a second restart.
            assert_eq!(
                ep.hello(ms(t), path(0), &straggler),
                Err(HelloIgnored::StaleIncarnation)
            );
        }
        t += 10;
    }
    let restarted = LinkEvent::PeerRestarted {
        old: Incarnation(old),
        new: Incarnation(10),
    };
    assert_eq!(ep.log, vec![(ms(501), restarted)]);
    assert_eq!(ep.m.peer_incarnation(), Some(Incarnation(10)));
    assert_eq!(ep.m.active_path(), Some(path(0)));
}

#[test]
fn paths_falling_together_give_one_active_path_change() {
    let mut ep = Endpoint::new(3);
    let mut peer = Peer::new();
    for t in [5, 15, 25] {
        for p in 0..3 {
            let h = peer.next(path(p), ms(t));
            ep.hello(ms(t), path(p), &h).unwrap();
        }
    }
    ep.log.clear();
    ep.advance(ms(500));
    let expected = vec![
        (ms(135), down(0)),
        (ms(135), down(1)),
        (ms(135), down(2)),
        (ms(135), active(Some(0), None)),
        (ms(135), LinkEvent::LinkDown),
    ];
    assert_eq!(ep.log, expected);
    assert_eq!(ep.m.events_dropped(), 0);
}
