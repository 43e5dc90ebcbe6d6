//! The real-time service (NM-Strikes) on real processes: an MPEG-TS stream (7 × 188 B per
//! datagram, as ffmpeg sends it with `pkt_size=1316`) crosses a 4-node line from an ingress
//! `weft gateway` on node 1 to an egress gateway on node 4, with 2 % loss each way on the
//! middle link (both of its paths run through `weft-linkem`):
//!
//! ```text
//!  UDP -> ingress  1 ── 2 ══ 3 ── 4  egress -> UDP      ══: 10 ms, 2 % loss each way
//! ```
//!
//! - with `realtime:200:3:3` every datagram arrives unchanged and in order and the TS headers
//!   show no continuity-counter error, although the relay lost dozens of them: node 3 asked
//!   for them (`rt_requested`), node 2 sent copies (`rt_retransmitted`), and node 4 released
//!   every message on time (`rt_on_time`, no `rt_lost`);
//! - with `realtime:200:0:0` (no strikes) the same path loses datagrams and the stream shows
//!   continuity errors: the first case is the protocol's doing, not luck.
//!
//! A lost packet is found when a later one arrives, so the stream ends with a few datagrams of
//! another PID that the check ignores (a flow's last packet, if lost, is not recovered:
//! `docs/realtime.md`, "Known limits").

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

#[allow(
    dead_code,
    reason = "shared with real_gateway; not every helper is used here"
)]
mod real_gateway_common;

use std::net::UdpSocket;
use std::time::Duration;

use real_gateway_common::{
    GatewayProc, TsStream, assert_same_stream, final_counters, path, receive, send_paced, strings,
    ts_errors,
};
use serde_json::Value;
use weft_tests::overlay::{Addrs, EmulatedPath, LinkSpec, Overlay};

/// The stream: 2,400 datagrams at 400/s (6 s, 4.2 Mbit/s), then 40 trailing ones.
const COUNT: usize = 2_400;
const TRAILER: usize = 40;
const RATE: u64 = 400;
const PID: u16 = 0x100;
const TRAILER_PID: u16 = 0x1ff;
const LOSSY: &str = "latency_ms=10 loss=0.02";

fn line(name: &str) -> Overlay {
    let link = |id, a, b| LinkSpec {
        id,
        a,
        b,
        cost_us: 5_000,
    };
    let links = [link(0, 1, 2), link(1, 2, 3), link(2, 3, 4)];
    let emulated = [
        EmulatedPath::new(1, 0, LOSSY),
        EmulatedPath::new(1, 1, LOSSY),
    ];
    let o = Overlay::start_emulated(name, 4, &links, &emulated);
    o.wait_converged(Duration::from_secs(15));
    o
}

/// The total of counter `name` on node `node`.
fn counter(o: &Overlay, node: u16, name: &str) -> u64 {
    let v = o.weftctl_json(node, &["show", "counters"]);
    v["total"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("node {node}: no counter {name}: {v}"))
}

/// Datagrams the relay's loss model dropped on link 1, both paths, both directions.
fn relay_lost(stats: &Value) -> u64 {
    stats["paths"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| [&p["a_to_b"], &p["b_to_a"]])
        .map(|d| d["lost"].as_u64().unwrap_or(0))
        .sum()
}

/// Sends the stream through gateways with `service`; returns the main PID's datagrams as
/// received, what was sent, and the egress gateway's final counters.
fn run_stream(o: &Overlay, name: &str, service: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Value) {
    let addrs = Addrs::new(name);
    let player = addrs.host(0, 100, 6000);
    let listen = addrs.host(0, 101, 5000);
    let sink = UdpSocket::bind(player).unwrap();
    let mut egress = GatewayProc::start(&strings(&[
        "--socket",
        &path(&o.session_socket(4)),
        "--port",
        "5000",
        "--deliver",
        &player.to_string(),
        "--json",
    ]));
    egress.wait_ready(1);
    let mut ingress = GatewayProc::start(&strings(&[
        "--socket",
        &path(&o.session_socket(1)),
        "--listen",
        &listen.to_string(),
        "--to",
        "4:5000",
        "--service",
        service,
        "--json",
    ]));
    eprintln!("{}", ingress.wait_ready(1).join("\n"));
    let stream = TsStream::datagrams(PID, 42, COUNT);
    let mut all = stream.clone();
    all.extend(TsStream::datagrams(TRAILER_PID, 7, TRAILER));
    let receiver = receive(sink, all.len(), Duration::from_secs(3));
    send_paced(listen, &all, RATE);
    let got = receiver.join().unwrap();
    let (code, _, err) = ingress.stop();
    assert_eq!(code, 0, "ingress exit status; stderr:\n{err}");
    let (code, out, err) = egress.stop();
    assert_eq!(code, 0, "egress exit status; stderr:\n{err}");
    let e = final_counters(&out, "egress");
    eprintln!("egress: {e}");
    // The TS PID is in bytes 1..3 of the first packet of each datagram.
    let main: Vec<Vec<u8>> = got
        .into_iter()
        .filter(|d| d.len() > 3 && (u16::from(d[1] & 0x1f) << 8 | u16::from(d[2])) == PID)
        .collect();
    (main, stream, e)
}

#[test]
fn a_ts_stream_crosses_a_lossy_link_without_continuity_errors() {
    let name = "rt-ts";
    let o = line(name);
    let lost_before = relay_lost(&o.linkem().stats());
    let (got, sent, egress) = run_stream(&o, name, "realtime:200:3:3");
    let lost = relay_lost(&o.linkem().stats()) - lost_before;
    let requested = counter(&o, 3, "rt_requested") + counter(&o, 2, "rt_requested");
    let retransmitted = counter(&o, 2, "rt_retransmitted") + counter(&o, 3, "rt_retransmitted");
    let on_time = counter(&o, 4, "rt_on_time");
    let late = counter(&o, 4, "rt_late");
    let rt_lost = counter(&o, 4, "rt_lost");
    eprintln!(
        "relay lost {lost}; requested {requested}, retransmitted {retransmitted}; node 4: on \
         time {on_time}, late {late}, lost {rt_lost}; received {} of {COUNT}",
        got.len()
    );
    // 2 % of ~2,440 data packets one way plus hellos and Nacks: dozens.
    assert!(lost >= 20, "the relay lost only {lost}: no loss to recover");
    assert!(requested >= 20, "{requested} requests for {lost} losses");
    assert!(retransmitted >= requested / 2, "{retransmitted} copies");
    assert_same_stream("node 1 -> node 4, realtime:200:3:3", &sent, &got, PID);
    assert!(on_time >= COUNT as u64, "{on_time} released on time");
    assert_eq!(rt_lost, 0, "messages given up at node 4");
    assert_eq!(egress["delivered"], (COUNT + TRAILER) as u64);
}

#[test]
fn without_strikes_the_same_link_breaks_the_stream() {
    let name = "rt-none";
    let o = line(name);
    let (got, sent, _) = run_stream(&o, name, "realtime:200:0:0");
    let (_, cc_errors) = ts_errors(&got, PID);
    eprintln!(
        "received {} of {}, {cc_errors} continuity errors",
        got.len(),
        sent.len()
    );
    assert!(got.len() < sent.len(), "nothing lost without strikes?");
    assert!(cc_errors > 0);
    assert_eq!(counter(&o, 2, "rt_retransmitted"), 0);
    assert!(
        counter(&o, 4, "rt_lost") > 0,
        "node 4 counts what it gave up"
    );
}
