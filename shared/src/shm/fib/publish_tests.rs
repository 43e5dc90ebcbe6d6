//! Tests of the FIB generation protocol inside one process: threads stand in for the processes
//! (the two-process version is `shared/tests/real_shm_two_process.rs`).

use std::sync::atomic::AtomicBool;

use super::*;
use crate::ids::{LinkId, NodeId};
use crate::shm::fib::UnicastRoute;
use crate::shm::layout::ShmLayout;
use crate::shm::owner::tests::dead_pid;

fn region() -> Arc<ShmRegion> {
    let layout = ShmLayout {
        punt_rings: 1,
        inject_rings: 1,
        ring_slots: 2,
    };
    Arc::new(ShmRegion::create_memfd(&layout, 0).expect("region"))
}

fn node(n: u16) -> NodeId {
    NodeId::new(n).expect("node id")
}

/// The route generation `g` gives node `n`: every entry encodes its generation.
fn route(g: u64, n: u16) -> UnicastRoute {
    let next_hop = LinkId::new(((g + u64::from(n)) % 512) as u16).expect("link id");
    UnicastRoute {
        next_hop,
        metric_us: g as u32,
    }
}

fn fill(g: u64) -> impl FnOnce(&mut FibBuilder<'_>) -> Result<(), FibError> {
    move |b| {
        for n in 1..=1023 {
            b.set_unicast(node(n), route(g, n));
        }
        Ok(())
    }
}

/// Panics unless every unicast entry in `view` comes from the view's generation.
fn check(view: &FibView<'_>) {
    let g = view.generation().0;
    assert_eq!(
        view.table.generation().0,
        g,
        "buffer header disagrees with control word"
    );
    for n in 1..=1023 {
        let want = (g > 0).then(|| route(g, n));
        assert_eq!(view.unicast(node(n)), want, "node {n} in generation {g}");
    }
}

#[test]
fn published_generation_is_what_readers_see() {
    let r = region();
    let mut w = FibWriter::attach(r.clone(), Duration::from_millis(10)).expect("writer");
    let mut reader = FibReader::register(r.clone(), 0).expect("reader");
    check(&reader.enter());
    assert_eq!(reader.enter().generation(), Generation(0));
    assert_eq!(w.try_publish(Instant::ZERO, fill(1)), Ok(Generation(1)));
    let view = reader.enter();
    assert_eq!(view.generation(), Generation(1));
    check(&view);
    view.verify().expect("checksum");
    assert_eq!(w.current().unicast(node(9)), Some(route(1, 9)));
}

#[test]
fn a_reader_holds_back_only_the_buffer_it_reads() {
    let r = region();
    let mut w = FibWriter::attach(r.clone(), Duration::from_millis(10)).expect("writer");
    let mut reader = FibReader::register(r.clone(), 3).expect("reader");
    let t0 = Instant::from_millis(1);
    assert_eq!(w.try_publish(t0, fill(1)), Ok(Generation(1)));
    let view = reader.enter();
    assert_eq!(view.generation(), Generation(1));
    // Generation 2 goes to the other buffer: allowed.
    assert_eq!(w.try_publish(t0, fill(2)), Ok(Generation(2)));
    // Generation 3 would overwrite generation 1 under the reader.
    let me = owner::split(owner::current_thread());
    match w.try_publish(t0, fill(3)) {
        Err(PublishError::ReadersBusy {
            worker: 3,
            pid,
            tid,
            epoch: 1,
            waited,
        }) => {
            assert_eq!((pid, tid), me);
            assert_eq!(waited, Duration::ZERO);
        }
        other => unreachable!("expected ReadersBusy, got {other:?}"),
    }
    let later = t0 + Duration::from_millis(10);
    assert!(matches!(
        w.try_publish(later, fill(3)),
        Err(PublishError::ReaderStuck { worker: 3, epoch: 1, waited, .. })
            if waited == Duration::from_millis(10)
    ));
    assert_eq!(w.generation(), Generation(2), "nothing was published");
    check(&view);
    // The next batch enters generation 2, which releases buffer 1.
    assert_eq!(reader.enter().generation(), Generation(2));
    assert_eq!(w.try_publish(later, fill(3)), Ok(Generation(3)));
    // A quiescent reader never holds the writer back.
    reader.quiesce();
    for g in 4..12 {
        assert_eq!(w.try_publish(later, fill(g)), Ok(Generation(g)));
    }
    check(&reader.enter());
}

#[test]
fn dead_readers_are_reclaimed() {
    let r = region();
    let mut w = FibWriter::attach(r.clone(), Duration::from_millis(10)).expect("writer");
    for g in 1..=2 {
        assert_eq!(w.try_publish(Instant::ZERO, fill(g)), Ok(Generation(g)));
    }
    // A reader thread of a process that died inside generation 1.
    let slot = &control(&r).slots[5];
    slot.owner
        .store(u64::from(dead_pid()) << 32 | 77, Ordering::SeqCst);
    slot.epoch.store(1, Ordering::SeqCst);
    assert_eq!(w.try_publish(Instant::ZERO, fill(3)), Ok(Generation(3)));
    let info = w.readers().nth(5).expect("slot 5");
    assert_eq!(
        info,
        ReaderInfo {
            worker: 5,
            pid: 0,
            tid: 0,
            epoch: None
        }
    );
    // A live holder with an old epoch is not reclaimed.
    slot.owner.store(owner::current_thread(), Ordering::SeqCst);
    slot.epoch.store(2, Ordering::SeqCst);
    assert!(matches!(
        w.try_publish(Instant::ZERO, fill(4)),
        Err(PublishError::ReadersBusy {
            worker: 5,
            epoch: 2,
            ..
        })
    ));
    slot.owner.store(0, Ordering::SeqCst);
    slot.epoch.store(QUIESCENT, Ordering::SeqCst);
    FibReader::register(r.clone(), 5).expect("slot is free again");
}

#[test]
fn roles_are_exclusive_while_their_holder_lives() {
    let r = region();
    let _reader = FibReader::register(r.clone(), 0).expect("reader");
    assert!(matches!(
        FibReader::register(r.clone(), 0),
        Err(ShmError::RoleBusy {
            role: "fib reader slot",
            ..
        })
    ));
    assert!(matches!(
        FibReader::register(r.clone(), MAX_WORKERS),
        Err(ShmError::BadWorker {
            worker: MAX_WORKERS,
            max: MAX_WORKERS
        })
    ));
    let w = FibWriter::attach(r.clone(), Duration::ZERO).expect("writer");
    assert!(matches!(
        FibWriter::attach(r.clone(), Duration::ZERO),
        Err(ShmError::RoleBusy {
            role: "fib writer",
            ..
        })
    ));
    drop(w);
    FibWriter::attach(r, Duration::ZERO).expect("writer role released on drop");
}

#[test]
fn a_failed_fill_publishes_nothing() {
    let r = region();
    let mut w = FibWriter::attach(r, Duration::ZERO).expect("writer");
    let err = w.try_publish(Instant::ZERO, |_| {
        Err(FibError::AnycastFull { capacity: 1 })
    });
    assert_eq!(
        err,
        Err(PublishError::Build(FibError::AnycastFull { capacity: 1 }))
    );
    assert_eq!(w.generation(), Generation(0));
    // copy_previous carries the last generation forward.
    assert_eq!(w.try_publish(Instant::ZERO, fill(1)), Ok(Generation(1)));
    let g2 = w.try_publish(Instant::ZERO, |b| {
        b.copy_previous();
        b.remove_unicast(node(1));
        Ok(())
    });
    assert_eq!(g2, Ok(Generation(2)));
    assert_eq!(w.current().unicast(node(1)), None);
    assert_eq!(w.current().unicast(node(2)), Some(route(1, 2)));
    w.current().verify().expect("checksum");
}

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "test driver: a real clock bounds the run"
)]
fn threads_always_see_one_consistent_generation() {
    let r = region();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|worker| {
            let (r, stop) = (r.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reader = FibReader::register(r, worker).expect("reader");
                let (mut sections, mut last, mut distinct) = (0u64, u64::MAX, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let view = reader.enter();
                    check(&view);
                    if view.generation().0 != last {
                        (last, distinct) = (view.generation().0, distinct + 1);
                    }
                    sections += 1;
                    if sections % 4 == 0 {
                        reader.quiesce();
                    }
                }
                (sections, distinct)
            })
        })
        .collect();
    let mut w = FibWriter::attach(r, Duration::from_secs(1)).expect("writer");
    let start = std::time::Instant::now();
    let mut published = 0u64;
    // Enough generations to interleave with the readers many times, bounded in time (under load
    // a descheduled reader holds the writer back for a scheduler quantum).
    while published < 200 && start.elapsed() < Duration::from_secs(5) {
        let now = Instant::from_nanos(start.elapsed().as_nanos() as u64);
        let next = w.generation().0 + 1;
        match w.try_publish(now, fill(next)) {
            Ok(_) => published += 1,
            Err(PublishError::ReadersBusy { .. }) => std::thread::yield_now(),
            Err(e) => unreachable!("publish failed: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for handle in readers {
        let (sections, distinct) = handle
            .join()
            .expect("reader saw an inconsistent generation");
        assert!(
            sections > 10 && distinct > 2,
            "{sections} sections, {distinct} generations"
        );
    }
    assert!(published > 20, "only {published} generations published");
}
