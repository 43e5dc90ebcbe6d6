//! Test traffic through a real overlay: a paced sender and a receiver on two nodes' session
//! sockets, using the `weft-client` library and `weft-recv`'s accounting (probe headers,
//! per-flow loss, duplicates, reordering, latency and the longest gap between arrivals).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weft_client::probe::{PROBE_HEADER_LEN, ProbeHeader, monotonic_ns};
use weft_client::report::{RecvStats, RecvSummary};
use weft_client::{Addr, Client, ClientError, ServerError, Service};
use weft_shared::ids::{NodeId, Port};

/// A paced flow from one node to a port on another, running on two threads.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    stop_receiver: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    sender: Option<JoinHandle<Result<(), String>>>,
    receiver: Option<JoinHandle<Result<RecvSummary, String>>>,
}

/// What a finished flow did.
#[derive(Clone, Debug)]
pub struct TrafficResult {
    /// Messages the sender handed to its node.
    pub sent: u64,
    /// The receiver's summary.
    pub recv: RecvSummary,
}

impl Traffic {
    /// Starts a receiver bound to `port` on the node at `dst_socket` (node id `dst`), then a
    /// sender on `src_socket` sending `rate` messages/s of `size` bytes to it until stopped
    /// (at most `max` seconds, so a forgotten flow still ends).
    pub fn start(
        src_socket: PathBuf,
        dst_socket: PathBuf,
        dst: u16,
        port: u16,
        rate: u64,
        size: usize,
        max: Duration,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop_receiver = Arc::new(AtomicBool::new(false));
        let stop_r = stop_receiver.clone();
        let receiver = std::thread::spawn(move || {
            let mut client =
                Client::connect(&dst_socket, "test-recv").map_err(|e| e.to_string())?;
            client.bind(Port(port)).map_err(|e| e.to_string())?;
            let _ = ready_tx.send(());
            let mut stats = RecvStats::new();
            let mut buf = vec![0u8; 65_536];
            let mut first: Option<Instant> = None;
            let mut last = Instant::now();
            let mut stopped_at: Option<Instant> = None;
            loop {
                if stop_r.load(Ordering::Relaxed) {
                    // Drain what is still in flight for a moment after the sender finished.
                    let t = *stopped_at.get_or_insert_with(Instant::now);
                    if t.elapsed() > Duration::from_millis(500) {
                        break;
                    }
                }
                match client.recv_timeout(&mut buf, Duration::from_millis(20)) {
                    Ok(Some(d)) => {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = now;
                        stats.record(
                            d.from.node,
                            d.from.port,
                            &buf[..d.len.min(buf.len())],
                            d.age_us,
                            monotonic_ns(),
                        );
                    }
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            let seconds = first.map_or(0.0, |f| (last - f).as_secs_f64());
            Ok(stats.summary(seconds))
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(5));
        let stop_s = stop.clone();
        let sent_s = sent.clone();
        let sender = std::thread::spawn(move || {
            let mut client =
                Client::connect(&src_socket, "test-send").map_err(|e| e.to_string())?;
            let from = client.bind(Port(0)).map_err(|e| e.to_string())?;
            let to = Addr {
                node: NodeId::new(dst).ok_or("bad destination node")?,
                port: Port(port),
            };
            let flow = client
                .open_flow(from, to, Service::default())
                .map_err(|e| e.to_string())?;
            let mut payload = vec![0u8; size.max(PROBE_HEADER_LEN)];
            let start = Instant::now();
            let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
            let mut seq = 0u64;
            while !stop_s.load(Ordering::Relaxed) && start.elapsed() < max {
                let due = start + interval * u32::try_from(seq).unwrap_or(u32::MAX);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                ProbeHeader {
                    flow_index: 0,
                    seq,
                    sent_ns: monotonic_ns(),
                }
                .write(&mut payload);
                // A best-effort send the node could not route (a failure not yet routed
                // around) is reported on the next send, which then sent nothing: retry it.
                loop {
                    match client.send(&flow, &payload) {
                        Ok(()) => break,
                        Err(ClientError::Server(ServerError::Unreachable { .. })) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
                seq += 1;
                sent_s.store(seq, Ordering::Relaxed);
            }
            let _ = client.linger(Duration::from_secs(1));
            Ok(())
        });
        Traffic {
            stop,
            stop_receiver,
            sent,
            sender: Some(sender),
            receiver: Some(receiver),
        }
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the sender, lets the receiver drain, and returns the figures.
    pub fn finish(mut self) -> Result<TrafficResult, String> {
        self.stop.store(true, Ordering::Relaxed);
        let join = |h: Option<JoinHandle<Result<(), String>>>| match h.map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("sender panicked".to_owned()),
            None => Ok(()),
        };
        let sent = join(self.sender.take());
        self.stop_receiver.store(true, Ordering::Relaxed);
        sent?;
        let recv = match self.receiver.take().map(JoinHandle::join) {
            Some(Ok(r)) => r?,
            _ => return Err("receiver panicked".to_owned()),
        };
        Ok(TrafficResult {
            sent: self.sent(),
            recv,
        })
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.stop_receiver.store(true, Ordering::Relaxed);
    }
}
