//! The reliable service on real processes (`docs/reliable.md`): a client's reliable flow is
//! delivered to the receiving client in order, exactly once, with nothing missing:
//!
//! - across a link that loses 5 % of its packets each way (both of its paths through
//!   `weft-linkem`): the hops recover the losses (`rel_retransmitted` counts them);
//! - while an intermediate node on the route is SIGKILLed and later restarted: the route moves
//!   around it, and what it held when it died comes again from the source node (`rel_resent`);
//! - with no path at all for 4 s: the source reports the flow stalled (`weftctl show reliable`),
//!   holds at most its window, holds the client back, and delivers everything once the path
//!   returns;
//! - with a receiver that stops reading: the sender is held back within bounded memory.
//!
//! Each message carries its index; the receiver checks that the n-th message it gets is index
//! n, so a loss, a duplicate or a reordering fails the test at once.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weft_client::{Addr, Client, Service};
use weft_shared::ids::{NodeId, Port};
use weft_tests::overlay::{EmulatedPath, LinkSpec, Overlay, Start};

const PORT: u16 = 4100;

fn link(id: u16, a: u16, b: u16, cost_ms: u32) -> LinkSpec {
    LinkSpec {
        id,
        a,
        b,
        cost_us: cost_ms * 1000,
    }
}

/// Receives `count` messages on `port` of the node at `socket`, checking each one's index and
/// that it is at least `min_age_us` old (the links it crossed); gives up after `within`.
fn receiver(
    socket: PathBuf,
    count: u64,
    within: Duration,
    min_age_us: u32,
) -> JoinHandle<Result<u64, String>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut client = Client::connect(&socket, "rel-recv").map_err(|e| e.to_string())?;
        client.bind(Port(PORT)).map_err(|e| e.to_string())?;
        let _ = ready_tx.send(());
        let mut buf = vec![0u8; 2048];
        let deadline = Instant::now() + within;
        let mut got = 0u64;
        while got < count {
            if Instant::now() > deadline {
                return Err(format!("only {got} of {count} messages within {within:?}"));
            }
            let Some(d) = client
                .recv_timeout(&mut buf, Duration::from_millis(50))
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            let index = u64::from_be_bytes(buf[..8].try_into().unwrap());
            if index != got || d.seq != got {
                return Err(format!(
                    "message {got} expected, got index {index} (seq {})",
                    d.seq
                ));
            }
            if d.age_us < min_age_us {
                return Err(format!("message {got} is {} µs old", d.age_us));
            }
            got += 1;
        }
        // Nothing more may come: a duplicate would show here.
        if let Some(d) = client
            .recv_timeout(&mut buf, Duration::from_millis(500))
            .map_err(|e| e.to_string())?
        {
            return Err(format!("an extra message after the last: seq {}", d.seq));
        }
        Ok(got)
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    h
}

/// Sends `count` messages of `size` bytes on a reliable flow to `dst`, at most `rate` per
/// second (blocking sends wait for credit: the node's backpressure).
fn sender(
    socket: PathBuf,
    dst: u16,
    count: u64,
    size: usize,
    rate: u64,
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut client = Client::connect(&socket, "rel-send").map_err(|e| e.to_string())?;
        let from = client.bind(Port(0)).map_err(|e| e.to_string())?;
        let to = Addr {
            node: NodeId::new(dst).ok_or("bad node")?,
            port: Port(PORT),
        };
        let flow = client
            .open_flow(from, to, Service::reliable())
            .map_err(|e| e.to_string())?;
        let mut payload = vec![0u8; size.max(8)];
        let start = Instant::now();
        let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
        for i in 0..count {
            let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            payload[..8].copy_from_slice(&i.to_be_bytes());
            client.send(&flow, &payload).map_err(|e| e.to_string())?;
        }
        client
            .linger(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn counter(o: &Overlay, node: u16, name: &str) -> u64 {
    let v = o.weftctl_json(node, &["show", "counters"]);
    v["total"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("node {node}: no counter {name}: {v}"))
}

#[test]
fn a_reliable_flow_crosses_a_lossy_link_complete_in_order_and_once() {
    let links = [link(0, 1, 2, 5), link(1, 2, 3, 5), link(2, 3, 4, 5)];
    let lossy = "latency_ms=5 loss=0.05";
    let emulated = [
        EmulatedPath::new(1, 0, lossy),
        EmulatedPath::new(1, 1, lossy),
    ];
    let o = Overlay::start_emulated("rel-lossy", 4, &links, &emulated);
    o.wait_converged(Duration::from_secs(15));
    let count = 20_000;
    let rx = receiver(o.session_socket(4), count, Duration::from_secs(60), 4_000);
    let tx = sender(o.session_socket(1), 4, count, 200, 5_000);
    tx.join().unwrap().unwrap();
    assert_eq!(rx.join().unwrap(), Ok(count));
    let retx = counter(&o, 2, "rel_retransmitted");
    let recovered = counter(&o, 3, "rel_recovered");
    let delivered = counter(&o, 4, "rel_delivered");
    eprintln!(
        "node 2 retransmitted {retx}, node 3 recovered {recovered}, node 4 delivered {delivered}"
    );
    assert!(
        retx > 100,
        "the losses were recovered on the lossy link: {retx}"
    );
    assert!(recovered > 100, "{recovered}");
    assert_eq!(delivered, count);
    // Per link and per flow in `weftctl show reliable` (written every 100 ms).
    std::thread::sleep(Duration::from_millis(300));
    let r2 = o.weftctl_json(2, &["show", "reliable"]);
    let lossy_link = r2["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["link"] == 1)
        .unwrap_or_else(|| panic!("no link 1: {r2}"));
    assert!(lossy_link["retransmitted"].as_u64().unwrap() > 100, "{r2}");
    assert_eq!(lossy_link["held"], 0, "everything was acked: {r2}");
    let r1 = o.weftctl_json(1, &["show", "reliable"]);
    let source = &r1["flows"][0];
    assert_eq!(
        (source["end"].as_u64(), source["peer"].as_u64()),
        (Some(1), Some(4)),
        "{r1}"
    );
    assert_eq!(source["delivered"].as_u64(), Some(count), "{r1}");
    let r4 = o.weftctl_json(4, &["show", "reliable"]);
    let sink = &r4["flows"][0];
    assert_eq!(
        (sink["end"].as_u64(), sink["delivered"].as_u64()),
        (Some(2), Some(count)),
        "{r4}"
    );
    let (code, text, _) = o.weftctl(4, &["show", "reliable"]);
    assert_eq!(code, 0);
    eprintln!("{text}");
    assert!(
        text.contains("reliable flows") && text.contains("sink"),
        "{text}"
    );
}

#[test]
fn a_reliable_flow_survives_the_crash_and_restart_of_an_intermediate_node() {
    // 1-2-4 (10 + 10 ms) is the route, 1-3-4 (20 + 20 ms) the detour.
    let links = [
        link(0, 1, 2, 10),
        link(1, 1, 3, 20),
        link(2, 2, 4, 10),
        link(3, 3, 4, 20),
    ];
    let mut o = Overlay::start("rel-crash", 4, &links, Start::Separate);
    o.wait_converged(Duration::from_secs(15));
    let count = 100_000;
    let rate = 10_000;
    let rx = receiver(o.session_socket(4), count, Duration::from_secs(90), 0);
    let tx = sender(o.session_socket(1), 4, count, 100, rate);
    std::thread::sleep(Duration::from_secs(3));
    o.kill_node(2);
    std::thread::sleep(Duration::from_secs(3));
    o.start_node(2);
    tx.join().unwrap().unwrap();
    assert_eq!(rx.join().unwrap(), Ok(count));
    let resent = counter(&o, 1, "rel_resent");
    let delivered = counter(&o, 4, "rel_delivered");
    eprintln!("node 1 resent {resent} end to end, node 4 delivered {delivered}");
    assert_eq!(delivered, count);
    assert!(resent > 0, "what node 2 held came again from node 1");
}

#[test]
fn a_receiver_that_stops_reading_stops_the_sender_within_bounded_memory() {
    let links = [link(0, 1, 2, 5), link(1, 2, 3, 5)];
    let o = Overlay::start("rel-stall", 3, &links, Start::Separate);
    o.wait_converged(Duration::from_secs(15));
    // The receiver binds its port and reads nothing for the first 4 s.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<u64>();
    let socket = o.session_socket(3);
    let rx = std::thread::spawn(move || -> Result<u64, String> {
        let mut client = Client::connect(&socket, "rel-stall-recv").map_err(|e| e.to_string())?;
        client.bind(Port(PORT)).map_err(|e| e.to_string())?;
        let _ = ready_tx.send(());
        let count = go_rx.recv().map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 2048];
        for want in 0..count {
            let Some(d) = client
                .recv_timeout(&mut buf, Duration::from_secs(10))
                .map_err(|e| e.to_string())?
            else {
                return Err(format!("message {want} of {count} never came"));
            };
            let index = u64::from_be_bytes(buf[..8].try_into().unwrap());
            if index != want || d.seq != want {
                return Err(format!("message {want} expected, got {index}"));
            }
        }
        Ok(count)
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut client = Client::connect(o.session_socket(1), "rel-stall-send").unwrap();
    let from = client.bind(Port(0)).unwrap();
    let to = Addr {
        node: NodeId::new(3).unwrap(),
        port: Port(PORT),
    };
    let flow = client.open_flow(from, to, Service::reliable()).unwrap();
    // Send as fast as the node takes messages, for 3 s.
    let mut accepted = 0u64;
    let mut would_block = 0u64;
    let mut payload = [0u8; 100];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        payload[..8].copy_from_slice(&accepted.to_be_bytes());
        match client.try_send(&flow, &payload) {
            Ok(()) => accepted += 1,
            Err(weft_client::ClientError::WouldBlock) => {
                would_block += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("send: {e}"),
        }
    }
    let held = counter(&o, 2, "rel_held");
    eprintln!("accepted {accepted}, would-block {would_block}, node 2 holds {held}");
    // The flow's window (1,024) plus what the receiver's output buffer (1 MiB) and socket take:
    // without backpressure 3 s of sending would be hundreds of thousands.
    assert!(would_block > 0, "the sender was held back");
    assert!(accepted < 1024 + 15_000, "{accepted} messages taken");
    assert!(
        held <= 4096,
        "node 2's link sender holds at most its window: {held}"
    );
    // The receiver reads: everything accepted arrives, in order, once.
    go_tx.send(accepted).unwrap();
    let _ = client.linger(Duration::from_secs(5));
    assert_eq!(rx.join().unwrap(), Ok(accepted));
}

#[test]
fn with_no_path_for_seconds_the_flow_stalls_within_its_window_and_resumes() {
    // A line: node 2 is the only way from 1 to 3.
    let links = [link(0, 1, 2, 5), link(1, 2, 3, 5)];
    let mut o = Overlay::start("rel-nopath", 3, &links, Start::Separate);
    o.wait_converged(Duration::from_secs(15));
    let count = 15_000;
    let rx = receiver(o.session_socket(3), count, Duration::from_secs(90), 0);
    let tx = sender(o.session_socket(1), 3, count, 100, 3_000);
    std::thread::sleep(Duration::from_secs(2));
    o.kill_node(2);
    // Long enough for the source to report the flow stalled (no progress for 2 s).
    std::thread::sleep(Duration::from_secs(4));
    let r1 = o.weftctl_json(1, &["show", "reliable"]);
    let source = &r1["flows"][0];
    eprintln!("during the outage: {source}");
    assert_eq!(source["stalled"].as_u64(), Some(1), "{r1}");
    let held = source["held"].as_u64().unwrap();
    assert!(held > 0 && held <= 1024, "at most the window is held: {r1}");
    assert!(
        source["messages"].as_u64().unwrap() < 5 * 3_000,
        "the client was held back while no path existed: {r1}"
    );
    o.start_node(2);
    tx.join().unwrap().unwrap();
    assert_eq!(rx.join().unwrap(), Ok(count));
    assert!(o.log(1).contains("stalled"), "the node logged the stall");
}

#[test]
fn a_lossless_reliable_flow_is_not_held_back_by_its_credits() {
    // Credits come back as the far end delivers; once they waited for a resend timer, and a
    // lossless flow crept at a few hundred messages a second. 20,000 messages flat out must
    // take a few seconds here, not a minute (a generous bound: about 25,000/s were measured).
    let links = [link(0, 1, 2, 5), link(1, 2, 3, 5)];
    let o = Overlay::start("rel-fast", 3, &links, Start::Separate);
    o.wait_converged(Duration::from_secs(15));
    let count = 20_000;
    let start = Instant::now();
    let rx = receiver(o.session_socket(3), count, Duration::from_secs(60), 0);
    let tx = sender(o.session_socket(1), 3, count, 1000, 1_000_000);
    tx.join().unwrap().unwrap();
    assert_eq!(rx.join().unwrap(), Ok(count));
    let took = start.elapsed();
    eprintln!("{count} messages in {took:?}");
    assert!(
        took < Duration::from_secs(20),
        "{count} messages took {took:?}"
    );
}
