//! One path's measurements and hello bookkeeping: what we sent, what arrived, RTT and loss.
//!
//! The path's liveness decisions live in [`LinkMonitor`](super::LinkMonitor); this file only
//! records and measures.

use core::time::Duration;

use weft_shared::time::Instant;

use super::config::LocalIdentity;
use super::hello::{HelloFields, HelloIgnored};
use super::rtt::RttEstimator;
use super::seq_window::{SeqOutcome, SeqWindow};
use super::state::PathState;

/// A snapshot of one path, for the engine to copy into the shared-memory link statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathStats {
    /// Liveness state.
    pub state: PathState,
    /// When `state` last changed (the monitor's creation time if it never did).
    pub last_change: Instant,
    /// Smoothed RTT (RFC 6298), since the path last came back; `None` without a sample.
    pub srtt_us: Option<u32>,
    /// RTT variation (RFC 6298 RTTVAR).
    pub rttvar_us: Option<u32>,
    /// Smallest RTT sample since the path last came back.
    pub min_rtt_us: Option<u32>,
    /// Number of RTT samples behind `srtt_us`.
    pub rtt_samples: u64,
    /// Loss of the peer's hellos to us over the last 1024 hellos (ppm); `None` before the first.
    pub rx_loss_ppm: Option<u32>,
    /// Loss of our hellos to the peer, as the peer last reported it (ppm).
    pub tx_loss_ppm: Option<u32>,
    /// Hellos sent on this path.
    pub hellos_sent: u64,
    /// Distinct hellos received on this path (duplicates, stragglers and mismatched ones are not
    /// counted).
    pub hellos_received: u64,
    /// Peer hellos that never arrived (gaps in its sequence numbers, not counting the resets a
    /// peer restart causes).
    pub hellos_missing: u64,
}

/// Per-path bookkeeping.
#[derive(Clone, Copy, Debug)]
pub(super) struct Path {
    pub(super) state: PathState,
    pub(super) last_change: Instant,
    /// The peer's sequence numbers.
    window: SeqWindow,
    /// The peer's highest sequence number when the path last fell: the proof that brings it back
    /// must consist of newer hellos only.
    recovery_floor: Option<u32>,
    rtt: RttEstimator,
    /// Our next hello sequence number.
    tx_seq: u32,
    /// Our first and latest hello send times (ns, our clock): an echo outside is not ours.
    tx_first_ns: u64,
    tx_last_ns: u64,
    /// The newest echo already turned into an RTT sample.
    last_echo_ns: u64,
    /// The peer's latest hello send time (its clock) and when we received it (ours), to echo.
    echo: Option<(u64, Instant)>,
    tx_loss_ppm: Option<u32>,
    hellos_sent: u64,
    hellos_received: u64,
    /// Missing hellos counted before the last peer restart reset the window.
    missing_before_reset: u64,
}

impl Path {
    pub(super) fn new(now: Instant) -> Self {
        Path {
            state: PathState::Unknown,
            last_change: now,
            window: SeqWindow::default(),
            recovery_floor: None,
            rtt: RttEstimator::default(),
            tx_seq: 0,
            tx_first_ns: 0,
            tx_last_ns: 0,
            last_echo_ns: 0,
            echo: None,
            tx_loss_ppm: None,
            hellos_sent: 0,
            hellos_received: 0,
            missing_before_reset: 0,
        }
    }

    /// The next hello to send on this path at `now`.
    pub(super) fn build_hello(&mut self, now: Instant, local: &LocalIdentity) -> HelloFields {
        // 0 means "no echo" on the wire, so a send at the clock's origin is stamped 1 ns later.
        let tx_time_ns = now.as_nanos().max(1);
        if self.tx_first_ns == 0 {
            self.tx_first_ns = tx_time_ns;
        }
        self.tx_last_ns = tx_time_ns;
        let (echo_tx_time_ns, echo_held_us) = self
            .echo
            .and_then(|(peer_tx, rx_at)| {
                // Rounded to the nearest microsecond, so RTT samples carry no bias.
                let held_ns = now.saturating_duration_since(rx_at).as_nanos();
                let held = u32::try_from((held_ns + 500) / 1_000).ok()?;
                Some((peer_tx, held))
            })
            .unwrap_or((0, 0));
        let hello = HelloFields {
            seq: self.tx_seq,
            tx_time_ns,
            echo_tx_time_ns,
            echo_held_us,
            incarnation: local.incarnation,
            config_hash: local.config_hash,
            versions: local.versions,
            rx_loss_ppm: self.window.loss_ppm(),
        };
        self.tx_seq = self.tx_seq.wrapping_add(1);
        self.hellos_sent += 1;
        hello
    }

    /// Records a matching hello from the current peer incarnation: its sequence number, its echo
    /// (an RTT sample) and its send time (to echo back). `Err` when the hello says nothing new.
    pub(super) fn on_hello(
        &mut self,
        now: Instant,
        hello: &HelloFields,
        max_rtt: Duration,
    ) -> Result<(), HelloIgnored> {
        match self.window.on_seq(hello.seq) {
            SeqOutcome::Duplicate => return Err(HelloIgnored::Duplicate),
            SeqOutcome::TooOld => return Err(HelloIgnored::TooOld),
            SeqOutcome::Filled => {}
            SeqOutcome::New { .. } => {
                // Only the newest hello is worth echoing; a late one would understate its hold.
                self.echo = Some((hello.tx_time_ns, now));
                if hello.rx_loss_ppm.is_some() {
                    self.tx_loss_ppm = hello.rx_loss_ppm;
                }
            }
        }
        self.hellos_received += 1;
        if let Some(rtt) = self.rtt_sample(now, hello, max_rtt) {
            self.last_echo_ns = hello.echo_tx_time_ns;
            self.rtt.on_sample(rtt);
        }
        Ok(())
    }

    /// RTT = now − echoed send time − time the peer held it, if the echo is one of ours, newer
    /// than the last one used, and the result is plausible.
    fn rtt_sample(&self, now: Instant, hello: &HelloFields, max_rtt: Duration) -> Option<Duration> {
        let echo = hello.echo_tx_time_ns;
        if echo == 0
            || echo < self.tx_first_ns
            || echo > self.tx_last_ns
            || echo <= self.last_echo_ns
        {
            return None;
        }
        let elapsed = now.as_nanos().checked_sub(echo)?;
        let sample = elapsed.checked_sub(u64::from(hello.echo_held_us) * 1_000)?;
        let sample = Duration::from_nanos(sample);
        (sample <= max_rtt).then_some(sample)
    }

    /// Whether the peer's last `n` hellos arrived and are all newer than the path's last fall.
    pub(super) fn is_proven(&self, n: u8) -> bool {
        let n = u32::from(n);
        let Some(highest) = self.window.highest() else {
            return false;
        };
        let fresh = self.recovery_floor.is_none_or(|floor| {
            let newer = highest.wrapping_sub(floor);
            newer <= i32::MAX as u32 && newer >= n
        });
        fresh && self.window.top_run() >= n
    }

    /// The path fell (down or mismatch): the next proof must be new, and the RTT starts over,
    /// since the path that comes back may take another route.
    pub(super) fn on_fall(&mut self) {
        self.recovery_floor = self.window.highest();
        self.rtt = RttEstimator::default();
    }

    /// The peer restarted: its sequence numbers and clock start over, so forget them (without
    /// counting the jump as loss).
    pub(super) fn on_peer_restart(&mut self) {
        self.missing_before_reset += self.window.missing();
        self.window = SeqWindow::default();
        self.recovery_floor = None;
        self.echo = None;
        self.tx_loss_ppm = None;
    }

    /// Smoothed RTT, if measured.
    pub(super) fn srtt(&self) -> Option<Duration> {
        self.rtt.smoothed()
    }

    pub(super) fn stats(&self) -> PathStats {
        let us = |d: Option<Duration>| d.map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        PathStats {
            state: self.state,
            last_change: self.last_change,
            srtt_us: us(self.rtt.smoothed()),
            rttvar_us: us(self.rtt.variation()),
            min_rtt_us: us(self.rtt.min()),
            rtt_samples: self.rtt.samples(),
            rx_loss_ppm: self.window.loss_ppm(),
            tx_loss_ppm: self.tx_loss_ppm,
            hellos_sent: self.hellos_sent,
            hellos_received: self.hellos_received,
            hellos_missing: self.missing_before_reset + self.window.missing(),
        }
    }
}
