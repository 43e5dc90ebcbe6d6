//! ping: round trips through the overlay with the weft-client API.
//!
//! Start a responder on one node and a pinger on another (or the same) node:
//!
//! ```text
//! cargo run -p weft-client --example ping -- /run/weft/b.sock serve 7
//! cargo run -p weft-client --example ping -- /run/weft/a.sock ping 2:7 5
//! ```
//!
//! The pinger binds any free port, opens a best-effort flow to `NODE:PORT`, and sends `COUNT`
//! messages, one at a time, each carrying its number; it waits up to a second for each echo and
//! prints the round-trip time. The responder binds `PORT` and echoes every message back to its
//! sender, opening one flow per sender it has seen.

use std::time::{Duration, Instant};

use weft_client::{Addr, Client, Flow, Service};
use weft_shared::ids::Port;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [socket, "serve", port] => serve(socket, Port(port.parse()?)),
        [socket, "ping", to, rest @ ..] => {
            let count = rest.first().map_or(Ok(5), |c| c.parse())?;
            ping(socket, to.parse()?, count)
        }
        _ => Err("usage: ping SOCKET serve PORT | ping SOCKET ping NODE:PORT [COUNT]".into()),
    }
}

/// Sends `count` numbered messages to `to` and waits for each echo.
fn ping(socket: &str, to: Addr, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    // One session with the local node; the name shows in the node's logs.
    let mut client = Client::connect(socket, "ping")?;
    // Any free port: the responder answers to whatever port the echo request came from.
    let port = client.bind(Port(0))?;
    // Best effort over link-state routing; `Service::reliable()` and others are one call away.
    let flow = client.open_flow(port, to, Service::default())?;
    println!("ping {to} from {}:{port}", client.node());

    let mut buf = [0u8; 64];
    for seq in 0..count {
        let start = Instant::now();
        // Blocks only if the flow is out of credit.
        client.send(&flow, &seq.to_be_bytes())?;
        // Wait for the echo with this number; older echoes that arrive late are skipped.
        let deadline = start + Duration::from_secs(1);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match client.recv_timeout(&mut buf, left)? {
                Some(d) if buf.get(..d.len) == Some(&seq.to_be_bytes()[..]) => {
                    println!(
                        "{} bytes from {}: seq={seq} time={:?}",
                        d.len,
                        d.from,
                        start.elapsed()
                    );
                    break;
                }
                Some(_) => continue,
                None => {
                    println!("seq={seq}: no answer within 1 s");
                    break;
                }
            }
        }
    }
    // Says Goodbye; the node releases the port and the flow.
    client.close()?;
    Ok(())
}

/// Echoes every message on `port` back to its sender.
fn serve(socket: &str, port: Port) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = Client::connect(socket, "ping-responder")?;
    let port = client.bind(port)?;
    println!("echoing on {}:{port}", client.node());
    let mut flows: Vec<(Addr, Flow)> = Vec::new();
    let mut buf = vec![0u8; 65_000];
    loop {
        let d = client.recv(&mut buf)?;
        // A flow per sender, opened on first contact and kept.
        let flow = match flows.iter().find(|(a, _)| *a == d.from) {
            Some((_, f)) => *f,
            None => {
                let f = client.open_flow(port, d.from, Service::default())?;
                flows.push((d.from, f));
                f
            }
        };
        client.send(&flow, &buf[..d.len])?;
    }
}
