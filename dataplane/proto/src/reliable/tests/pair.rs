//! A sender–receiver pair and a source–sink pair over lossy, reordering channels, in 1 ms
//! steps of virtual time (property tests): every record is passed on exactly once, everything
//! is acked in the end, and no table grows past its limit.

use core::time::Duration;

use proptest::prelude::*;
use weft_shared::time::Instant;
use weft_shared::wire::{AckRepr, NackRepr};

use super::super::{E2eAck, E2eParams, E2eSink, E2eSource, RelClass};
use super::link_pair;

/// A seeded xorshift generator: the proptest input is the seed, so failures shrink to one.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1e6 < p
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One direction of a link: loss, a base delay and a uniform jitter that reorders.
struct Channel<T> {
    loss: f64,
    delay: u64,
    jitter: u64,
    in_flight: Vec<(u64, T)>,
}

impl<T> Channel<T> {
    fn new(loss: f64, delay: u64, jitter: u64) -> Self {
        Channel {
            loss,
            delay,
            jitter,
            in_flight: Vec::new(),
        }
    }

    fn send(&mut self, rng: &mut Rng, now: u64, item: T) {
        if !rng.chance(self.loss) {
            let at = now + self.delay + rng.below(self.jitter + 1);
            self.in_flight.push((at, item));
        }
    }

    fn arrivals(&mut self, now: u64) -> Vec<T> {
        let (due, later): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|(t, _)| *t <= now);
        self.in_flight = later;
        due.into_iter().map(|(_, v)| v).collect()
    }
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Sends `count` records over a lossy link; returns how often each was passed on, and
/// whether the sender ended with nothing in flight.
fn run_link(seed: u64, count: u32, loss: f64, jitter: u64, refuse: f64) -> (Vec<u32>, bool) {
    let mut rng = Rng(seed | 1);
    let (mut tx, mut rx) = link_pair(64);
    let mut data: Channel<(u32, Vec<u8>, bool)> = Channel::new(loss, 10, jitter);
    let mut acks: Channel<AckRepr> = Channel::new(loss, 10, jitter);
    let mut nacks: Channel<NackRepr> = Channel::new(loss, 10, jitter);
    let mut passed = vec![0u32; count as usize];
    let mut next = 0u32;
    for now in 0..600_000u64 {
        let t = at(now);
        // The source: up to 4 records a millisecond while the window has room.
        for _ in 0..4 {
            if next == count || !tx.has_room() {
                break;
            }
            tx.handle_send(t, &next.to_be_bytes()).unwrap();
            next += 1;
        }
        for a in acks.arrivals(now) {
            tx.handle_ack(t, &a);
        }
        for n in nacks.arrivals(now) {
            tx.handle_nack(t, n.seqs());
        }
        if tx.poll_timeout().is_some_and(|d| d <= t) {
            tx.handle_timeout(t);
        }
        while let Some(r) = tx.poll_transmit(t) {
            let item = (r.link_seq, r.record.to_vec(), r.retransmission);
            data.send(&mut rng, now, item);
        }
        for (seq, body, retx) in data.arrivals(now) {
            match rx.classify(seq) {
                RelClass::New if rng.chance(refuse) => rx.refuse(t, seq),
                RelClass::New => {
                    rx.accept(t, seq, retx);
                    let id = u32::from_be_bytes(body[..4].try_into().unwrap());
                    passed[id as usize] += 1;
                }
                class => rx.duplicate(t, class),
            }
        }
        while let Some(n) = rx.poll_nack(t) {
            nacks.send(&mut rng, now, n);
        }
        if let Some(a) = rx.poll_ack(t) {
            acks.send(&mut rng, now, a);
        }
        assert!(tx.in_flight() <= tx.window());
        assert!(
            tx.pipe() <= tx.cwnd().max(64),
            "retransmissions aside, the pipe follows cwnd"
        );
        assert!(rx.pending() <= 256);
        if next == count && tx.in_flight() == 0 {
            return (passed, true);
        }
    }
    (passed, tx.in_flight() == 0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_record_is_passed_on_exactly_once(
        seed in any::<u64>(),
        loss in 0.0f64..0.3,
        jitter in 0u64..8,
        refuse in prop_oneof![Just(0.0), 0.0f64..0.2],
    ) {
        let (passed, drained) = run_link(seed, 2_000, loss, jitter, refuse);
        prop_assert!(drained, "records left in flight");
        for (i, &n) in passed.iter().enumerate() {
            prop_assert_eq!(n, 1, "record {} passed on {} times", i, n);
        }
    }

    #[test]
    fn the_sink_delivers_every_message_once_in_order(
        seed in any::<u64>(),
        loss in 0.0f64..0.5,
        jitter in 0u64..40,
        reads in 1u64..4,
    ) {
        let (delivered, drained) = run_e2e(seed, 3_000, loss, jitter, reads);
        prop_assert!(drained, "messages outstanding at the end");
        prop_assert_eq!(delivered, (1..=3_000).collect::<Vec<u64>>());
    }
}

/// A source and a sink over a path that loses messages (as if nodes on it crashed) and acks,
/// and reorders; the receiving client reads `reads` messages a millisecond. Returns what the
/// client got, and whether the source ended with nothing outstanding.
fn run_e2e(seed: u64, count: u64, loss: f64, jitter: u64, reads: u64) -> (Vec<u64>, bool) {
    let mut rng = Rng(seed | 1);
    let params = E2eParams {
        window: 64,
        msg_len: 8,
        ..E2eParams::for_path(Duration::from_millis(40))
    };
    let mut src = E2eSource::new(params);
    let mut sink = E2eSink::new(params);
    let mut fwd: Channel<(u64, Vec<u8>)> = Channel::new(loss, 20, jitter);
    let mut back: Channel<E2eAck> = Channel::new(loss, 20, jitter);
    let mut got = Vec::new();
    let mut next = 1u64;
    for now in 0..600_000u64 {
        let t = at(now);
        while next <= count && src.credit() > 0 {
            let seq = src.handle_send(t, &next.to_be_bytes()).unwrap();
            assert_eq!(seq, next);
            fwd.send(&mut rng, now, (seq, next.to_be_bytes().to_vec()));
            next += 1;
        }
        for a in back.arrivals(now) {
            src.handle_ack(t, &a);
        }
        if src.poll_timeout().is_some_and(|d| d <= t) {
            src.handle_timeout(t);
        }
        while let Some((seq, msg)) = src.peek_resend() {
            let item = (seq, msg.to_vec());
            fwd.send(&mut rng, now, item);
            src.commit_resend();
        }
        for (seq, msg) in fwd.arrivals(now) {
            sink.handle_packet(t, seq, &msg);
        }
        for _ in 0..reads {
            let Some((seq, msg)) = sink.peek_deliver() else {
                break;
            };
            assert_eq!(msg, seq.to_be_bytes());
            got.push(seq);
            sink.consume(t);
        }
        if let Some(a) = sink.poll_ack(t) {
            back.send(&mut rng, now, a);
        }
        assert!(src.outstanding() <= 64);
        assert!(sink.held() <= 64);
        if next > count && src.outstanding() == 0 {
            return (got, true);
        }
    }
    (got, src.outstanding() == 0)
}
