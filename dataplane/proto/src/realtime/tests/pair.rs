//! A sender and a receiver over a seeded channel that loses (both directions) and reorders,
//! with the receiver delivering into a deadline buffer; stepped to the earliest wakeup. The
//! property tests check what must hold for any loss and reordering: no sequence is accepted or
//! released twice, releases are in order and on time, nothing is sent too late, and memory
//! stays within the limits.

use std::collections::{BTreeMap, HashSet};

use core::time::Duration;
use proptest::prelude::*;
use weft_shared::time::Instant;
use weft_shared::wire::{Delivery, MAX_NACK_SEQS};

use super::super::{
    DeadlineBuffer, DeadlineParams, ReceiverLimits, RtReceiver, RtSender, SenderLimits,
};
use super::{meta, params};

const ONE_WAY: Duration = Duration::from_millis(10);
const SENDER: SenderLimits = SenderLimits {
    history: 64,
    record_len: 8,
    schedule: 8,
};
const RECEIVER: ReceiverLimits = ReceiverLimits {
    window: 128,
    pending: 16,
    nack_queue: 16,
};
const DEST_CAP: u32 = 256;

/// One direction: loss probability, 10 ms + uniform jitter (reorders when above 1 ms).
struct Channel {
    state: u64,
    loss: f64,
    jitter_us: u64,
}

impl Channel {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// When a packet sent at `now` arrives, or `None` if lost.
    fn fate(&mut self, now: Instant) -> Option<Instant> {
        let lost = (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= self.loss && self.loss > 0.0;
        let jitter = self.next() % (self.jitter_us + 1);
        (!lost).then(|| now + ONE_WAY + Duration::from_micros(jitter))
    }
}

#[derive(Clone, Debug)]
enum Ev {
    Data {
        seq: u32,
        record: [u8; 8],
        retx: bool,
    },
    Nack(Vec<u32>),
}

#[derive(Clone, Copy, Debug)]
struct Setup {
    count: u64,
    loss_fwd: f64,
    loss_rev: f64,
    jitter_us: u64,
    n: u8,
    m: u8,
    deadline_ms: u64,
    at_deadline: bool,
    seed: u64,
}

#[derive(Debug, Default)]
struct Outcome {
    released: u64,
    late: u64,
    data_sent: u64,
    nacks: u64,
}

fn run(s: Setup) -> Outcome {
    let deadline = Duration::from_millis(s.deadline_ms);
    let mut tx = RtSender::new(params(), SENDER);
    let mut rx = RtReceiver::new(params(), RECEIVER);
    let delivery = if s.at_deadline {
        Delivery::AtDeadline
    } else {
        Delivery::AsSoonAsOrdered
    };
    let mut dest: DeadlineBuffer<Instant> = DeadlineBuffer::new(
        DeadlineParams {
            deadline,
            delivery,
            capacity: DEST_CAP,
        },
        Some(0),
    );
    let mut fwd = Channel {
        state: s.seed,
        loss: s.loss_fwd,
        jitter_us: s.jitter_us,
    };
    let mut rev = Channel {
        state: s.seed ^ 0xdead_beef,
        loss: s.loss_rev,
        jitter_us: s.jitter_us,
    };
    let mut queue: BTreeMap<(Instant, u64), Ev> = BTreeMap::new();
    let mut order = 0u64;
    let mut accepted = HashSet::new();
    let mut last_released: Option<u64> = None;
    let mut out = Outcome::default();
    let mut next_send = 0u64;
    let mut now = Instant::ZERO;
    let origin = |e2e: u64| Instant::from_millis(e2e);
    loop {
        let candidates = [
            queue.keys().next().map(|k| k.0),
            (next_send < s.count).then(|| origin(next_send)),
            tx.poll_timeout(),
            rx.poll_timeout(),
            dest.poll_timeout(),
        ];
        let Some(t) = candidates.into_iter().flatten().min() else {
            break;
        };
        now = now.max(t);
        // The source: one message per ms.
        if next_send < s.count && origin(next_send) <= now {
            let e2e = next_send;
            next_send += 1;
            let m = meta(s.n, s.m, origin(e2e) + deadline);
            if let Ok(seq) = tx.handle_send(now, m, &e2e.to_be_bytes()) {
                out.data_sent += 1;
                if let Some(at) = fwd.fate(now) {
                    order += 1;
                    let record = e2e.to_be_bytes();
                    queue.insert(
                        (at, order),
                        Ev::Data {
                            seq,
                            record,
                            retx: false,
                        },
                    );
                }
            }
        }
        // Arrivals due now.
        while let Some(entry) = queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Ev::Data { seq, record, retx } => {
                    let e2e = u64::from_be_bytes(record);
                    let m = meta(s.n, s.m, origin(e2e) + deadline);
                    let outcome = rx.handle_packet(now, seq, m, retx);
                    if outcome.is_accepted() {
                        assert!(accepted.insert(seq), "link seq {seq} accepted twice");
                        assert!(seq >= 1 && seq < tx.next_seq(), "seq {seq} never sent");
                        dest.handle_packet(now, e2e, origin(e2e), retx, now);
                    }
                }
                Ev::Nack(seqs) => tx.handle_nack(now, &seqs),
            }
        }
        rx.handle_timeout(now);
        while let Some(nack) = rx.poll_nack() {
            assert!(!nack.seqs().is_empty() && nack.seqs().len() <= MAX_NACK_SEQS);
            out.nacks += 1;
            if let Some(at) = rev.fate(now) {
                order += 1;
                queue.insert((at, order), Ev::Nack(nack.seqs().to_vec()));
            }
        }
        while let Some(copy) = tx.poll_transmit(now) {
            let mut record = [0u8; 8];
            record.copy_from_slice(copy.record);
            let e2e = u64::from_be_bytes(record);
            assert!(
                now + ONE_WAY <= origin(e2e) + deadline,
                "copy sent too late"
            );
            assert!(copy.copy >= 1 && copy.copy <= s.m);
            out.data_sent += 1;
            if let Some(at) = fwd.fate(now) {
                order += 1;
                let seq = copy.link_seq;
                queue.insert(
                    (at, order),
                    Ev::Data {
                        seq,
                        record,
                        retx: true,
                    },
                );
            }
        }
        while let Some(r) = dest.poll_release(now) {
            assert!(
                last_released.is_none_or(|l| r.seq > l),
                "release out of order"
            );
            last_released = Some(r.seq);
            assert!(
                r.item <= r.origin + deadline,
                "released a message that arrived late"
            );
            assert!(r.latency <= deadline, "released after the deadline");
            if s.at_deadline {
                assert_eq!(r.latency, deadline);
            }
            out.released += 1;
        }
        assert!(tx.scheduled() <= SENDER.schedule);
        assert!(rx.pending() <= RECEIVER.pending);
        assert!(rx.queued() <= RECEIVER.nack_queue);
        assert!(dest.held() <= DEST_CAP as usize);
    }
    let st = dest.stats();
    assert_eq!(st.on_time, out.released);
    assert!(st.on_time + st.late <= s.count);
    assert!(st.on_time + st.late + st.lost <= s.count);
    let c = tx.counters();
    assert!(c.retransmitted <= c.answered * u64::from(s.m));
    out.late = st.late;
    out
}

fn setup() -> Setup {
    Setup {
        count: 2_000,
        loss_fwd: 0.0,
        loss_rev: 0.0,
        jitter_us: 0,
        n: 2,
        m: 2,
        deadline_ms: 200,
        at_deadline: false,
        seed: 1,
    }
}

#[test]
fn without_loss_everything_is_released_once_and_nothing_requested() {
    for at_deadline in [false, true] {
        let o = run(Setup {
            at_deadline,
            ..setup()
        });
        assert_eq!(o.released, 2_000);
        assert_eq!(o.data_sent, 2_000);
        assert_eq!(o.nacks, 0);
    }
}

#[test]
fn strikes_recover_most_losses() {
    // 10 % loss both ways: unrecovered ≈ p · (p² + p²) = 0.2 %; N = M = 0 loses 10 %.
    let lossy = Setup {
        count: 10_000,
        loss_fwd: 0.1,
        loss_rev: 0.1,
        ..setup()
    };
    let none = run(Setup {
        n: 0,
        m: 0,
        ..lossy
    });
    let some = run(lossy);
    assert!(none.released < 9_200, "{none:?}");
    assert!(some.released > 9_950, "{some:?}");
    // Overhead ≈ 1 + M·p = 1.2.
    let overhead = some.data_sent as f64 / 10_000.0;
    assert!((overhead - 1.2).abs() < 0.03, "{overhead}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_loss_and_reordering_keeps_the_invariants(
        count in 1u64..400,
        loss_fwd in 0.0f64..0.5,
        loss_rev in 0.0f64..0.5,
        jitter_us in 0u64..15_000,
        n in 0u8..4,
        m in 0u8..4,
        deadline_ms in 15u64..300,
        at_deadline in any::<bool>(),
        seed in any::<u64>(),
    ) {
        run(Setup { count, loss_fwd, loss_rev, jitter_us, n, m, deadline_ms, at_deadline, seed });
    }
}
