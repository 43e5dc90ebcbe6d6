//! Ring tests: a model test against a `VecDeque` oracle (proptest, random bursts of stage,
//! publish, pop and sleep), the error cases, and a two-thread run through the eventfd wakeup.

#![allow(
    unsafe_code,
    reason = "one test corrupts a slot descriptor through a raw pointer"
)]

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use crate::shm::EventFd;
use crate::shm::layout::ShmLayout;

const SLOTS: u32 = 8;

fn region(slots: u32) -> Arc<ShmRegion> {
    let layout = ShmLayout {
        punt_rings: 2,
        inject_rings: 1,
        ring_slots: slots,
    };
    Arc::new(ShmRegion::create_memfd(&layout, 0).expect("region"))
}

fn pair(r: &Arc<ShmRegion>, id: RingId) -> (RingProducer, RingConsumer) {
    let p = RingProducer::attach(r.clone(), id).expect("producer");
    let c = RingConsumer::attach(r.clone(), id).expect("consumer");
    (p, c)
}

/// Packet number `n`: its metadata and bytes both derive from `n`.
fn packet(n: u64, len: usize) -> (PacketMeta, Vec<u8>) {
    let meta = PacketMeta {
        link: LinkId::new((n % 513) as u16),
        path: PathId::new((n % 9) as u8),
        flags: n as u16,
    };
    let mut bytes: Vec<u8> = (0..len).map(|i| (n as usize + i) as u8).collect();
    if len >= 8 {
        bytes[..8].copy_from_slice(&n.to_le_bytes());
    }
    (meta, bytes)
}

#[derive(Clone, Debug)]
enum Op {
    Stage { len: usize },
    Publish,
    Pop { max: usize },
    PrepareSleep,
    FinishSleep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..=RING_PAYLOAD_MAX + 20).prop_map(|len| Op::Stage { len }),
        1 => (2000..=2100usize).prop_map(|len| Op::Stage { len }),
        2 => Just(Op::Publish),
        3 => (0..12usize).prop_map(|max| Op::Pop { max }),
        1 => Just(Op::PrepareSleep),
        1 => Just(Op::FinishSleep),
    ]
}

thread_local! {
    /// One region for every proptest case: each case starts where the last left the ring (after
    /// draining it), so indices wrap at varied offsets and no case pays for a fresh mapping.
    static MODEL_REGION: Arc<ShmRegion> = region(SLOTS);
}

proptest! {
    #[test]
    fn ring_matches_a_vecdeque(
        ops in proptest::collection::vec(op(), 1..300),
        punt in any::<bool>(),
    ) {
        let r = MODEL_REGION.with(Arc::clone);
        let id = if punt { RingId::Punt(1) } else { RingId::Inject(0) };
        let (mut p, mut c) = pair(&r, id);
        let mut published: VecDeque<(PacketMeta, Vec<u8>)> = VecDeque::new();
        let mut staged: Vec<(PacketMeta, Vec<u8>)> = Vec::new();
        let (mut next, mut sleeping) = (0u64, false);
        for op in ops {
            match op {
                Op::Stage { len } => {
                    let (meta, bytes) = packet(next, len);
                    let want = if len > RING_PAYLOAD_MAX {
                        Err(PushError::Oversized { len, max: RING_PAYLOAD_MAX })
                    } else if published.len() + staged.len() == SLOTS as usize {
                        Err(PushError::Full)
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(p.stage(meta, &bytes), want);
                    if want.is_ok() {
                        staged.push((meta, bytes));
                        next += 1;
                    }
                }
                Op::Publish => {
                    let want = if !staged.is_empty() && sleeping {
                        sleeping = false;
                        Notify::NeedsWakeup
                    } else {
                        Notify::NotNeeded
                    };
                    published.extend(staged.drain(..));
                    prop_assert_eq!(p.publish(), want);
                    prop_assert_eq!(p.staged(), 0);
                }
                Op::Pop { max } => {
                    let mut got = Vec::new();
                    let n = c.pop_burst(max, |meta, bytes| got.push((meta, bytes.to_vec())));
                    prop_assert_eq!(n, got.len());
                    let want: Vec<_> = published.drain(..max.min(published.len())).collect();
                    prop_assert_eq!(got, want);
                }
                Op::PrepareSleep => {
                    let empty = published.is_empty();
                    prop_assert_eq!(c.prepare_sleep(), empty);
                    sleeping = empty;
                }
                Op::FinishSleep => {
                    c.finish_sleep();
                    sleeping = false;
                }
            }
            prop_assert_eq!(c.available(), published.len());
            prop_assert_eq!(p.free(), SLOTS as usize - published.len() - staged.len());
        }
        prop_assert_eq!(c.corrupt(), 0);
        // Leave the ring empty and awake for the next case; staged packets die with `p`.
        while c.pop_burst(usize::MAX, |_, _| ()) > 0 {}
        c.finish_sleep();
    }
}

#[test]
fn endpoints_are_exclusive_and_resume_where_the_ring_is() {
    let r = region(SLOTS);
    let (mut p, c) = pair(&r, RingId::Punt(0));
    assert!(matches!(
        RingProducer::attach(r.clone(), RingId::Punt(0)),
        Err(ShmError::RoleBusy {
            role: "ring producer",
            ..
        })
    ));
    assert!(matches!(
        RingConsumer::attach(r.clone(), RingId::Punt(2)),
        Err(ShmError::BadRing {
            ring: RingId::Punt(2),
            count: 2
        })
    ));
    let (meta, bytes) = packet(1, 100);
    assert_eq!(p.push(meta, &bytes), Ok(Notify::NotNeeded));
    // A staged but unpublished packet is lost when the producer goes away.
    p.stage(meta, &bytes).expect("stage");
    drop(p);
    drop(c);
    let (_p, mut c) = pair(&r, RingId::Punt(0));
    let mut buf = [0u8; 64];
    assert_eq!(c.pop_into(&mut buf), Some((meta, 100)));
    assert_eq!(&buf[..], &bytes[..64]);
    assert_eq!(c.pop_into(&mut buf), None);
}

#[test]
fn largest_payload_fits_and_a_bad_descriptor_is_skipped() {
    let r = region(SLOTS);
    let (mut p, mut c) = pair(&r, RingId::Inject(0));
    let (meta, bytes) = packet(7, RING_PAYLOAD_MAX);
    assert_eq!(p.push(meta, &bytes), Ok(Notify::NotNeeded));
    assert_eq!(p.push(meta, &[]), Ok(Notify::NotNeeded));
    // Corrupt the first descriptor's length as a buggy producer might.
    let slot = c.ring.slot(0);
    // SAFETY: test-only write into a published slot nobody else reads concurrently.
    unsafe { slot.cast::<u16>().write_unaligned(u16::MAX) };
    let mut lens = Vec::new();
    assert_eq!(c.pop_burst(8, |_, b| lens.push(b.len())), 2);
    assert_eq!(lens, vec![0]);
    assert_eq!(c.corrupt(), 1);
}

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "test driver: the producer pauses with a sleep"
)]
fn two_threads_move_many_packets_in_order_through_the_wakeup() {
    const TOTAL: u64 = 200_000;
    let r = region(256);
    let (mut p, mut c) = pair(&r, RingId::Punt(0));
    let event = Arc::new(EventFd::new().expect("eventfd"));
    let producer_event = event.clone();
    let producer = std::thread::spawn(move || {
        let (mut wakeups, mut bursts) = (0u64, 0u64);
        let mut n = 0u64;
        while n < TOTAL {
            // Bursts of up to 32, one publish each; pause now and then so the consumer sleeps.
            while n < TOTAL && p.staged() < 32 {
                let (meta, bytes) = packet(n, 8 + (n % 64) as usize);
                match p.stage(meta, &bytes) {
                    Ok(()) => n += 1,
                    Err(PushError::Full) => break,
                    Err(e) => unreachable!("{e}"),
                }
            }
            if p.publish() == Notify::NeedsWakeup {
                wakeups += 1;
                producer_event.notify().expect("notify");
            }
            bursts += 1;
            if bursts % 300 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            } else {
                std::thread::yield_now();
            }
        }
        wakeups
    });
    let (mut expect, mut sleeps) = (0u64, 0u64);
    while expect < TOTAL {
        let n = c.pop_burst(64, |meta, bytes| {
            let (want_meta, want_bytes) = packet(expect, 8 + (expect % 64) as usize);
            assert_eq!(
                (meta, bytes),
                (want_meta, &want_bytes[..]),
                "packet {expect}"
            );
            expect += 1;
        });
        if n == 0 && c.prepare_sleep() {
            sleeps += 1;
            let woke = event
                .wait(Some(std::time::Duration::from_secs(5)))
                .expect("wait");
            assert!(
                woke,
                "lost wakeup: producer never signalled a sleeping consumer"
            );
            c.finish_sleep();
        }
    }
    let wakeups = producer.join().expect("producer");
    assert!(
        sleeps > 0 && wakeups > 0,
        "wakeup path not exercised: {sleeps} sleeps"
    );
}
