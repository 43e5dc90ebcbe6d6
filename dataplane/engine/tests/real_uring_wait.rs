//! Waiting: an idle `run_once` sleeps in the kernel until its timeout, and a write to a watched
//! eventfd wakes it early with the caller's token.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]

mod uring_common;

use std::cell::Cell;
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use uring_common::{driver, peer, run_until};
use weft_dataplane::uring::{DriverConfig, Event, SocketOptions};

#[test]
fn idle_run_once_returns_after_the_timeout() {
    let (mut d, _) = driver(&DriverConfig::default(), &SocketOptions::default());
    for _ in 0..3 {
        let t0 = Instant::now();
        let n = d
            .run_once(Some(Duration::from_millis(20)), |_, _| panic!("no traffic"))
            .unwrap();
        let waited = t0.elapsed();
        assert_eq!(n, 0);
        assert!(
            waited >= Duration::from_millis(19) && waited < Duration::from_secs(1),
            "waited {waited:?}"
        );
    }
    // Blocking, not spinning: three 20 ms waits took three io_uring_enter calls.
    assert_eq!(d.stats().enters, 3);
}

#[test]
fn eventfd_write_wakes_run_once_early() {
    let (mut d, addr) = driver(&DriverConfig::default(), &SocketOptions::default());
    let efd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).unwrap();
    let id = d.watch(efd.as_fd(), 42).unwrap();
    // Arm the watch, then let another thread write while we block with a 5 s timeout.
    d.run_once(Some(Duration::ZERO), |_, _| {}).unwrap();
    for round in 0..2 {
        let t0 = Instant::now();
        let writer = {
            let efd = efd.as_fd().try_clone_to_owned().unwrap();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                nix::unistd::write(&efd, &1u64.to_ne_bytes()).unwrap();
            })
        };
        let mut woke = None;
        while woke.is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "round {round}: no wake-up"
            );
            d.run_once(Some(Duration::from_secs(5)), |_, ev| {
                if let Event::Readable { token, events } = ev {
                    woke = Some((token, events));
                }
            })
            .unwrap();
        }
        let waited = t0.elapsed();
        writer.join().unwrap();
        let (token, events) = woke.unwrap();
        assert_eq!(token, 42);
        assert_ne!(events & libc::POLLIN as u32, 0);
        assert!(
            waited < Duration::from_secs(2),
            "round {round}: woke after {waited:?}"
        );
        assert_eq!(efd.read().unwrap(), 1, "the caller drains the eventfd");
    }

    // Datagrams and readiness share one wait.
    peer().send_to(b"x", addr).unwrap();
    let got = Cell::new(false);
    run_until(
        &mut d,
        Duration::from_secs(5),
        "a datagram next to the watch",
        |_, ev| got.set(got.get() | matches!(ev, Event::Datagram(_))),
        |_| got.get(),
    );

    // After unwatch, writes are no longer reported.
    assert!(d.unwatch(id));
    assert!(!d.unwatch(id));
    efd.write(1).unwrap();
    for _ in 0..3 {
        d.run_once(Some(Duration::from_millis(10)), |_, ev| {
            assert!(
                !matches!(ev, Event::Readable { .. }),
                "event after unwatch: {ev:?}"
            );
        })
        .unwrap();
    }
    assert_eq!(d.stats().unknown_completions, 0);
}
