//! The two clients of one measured flow: a sender on the first node that sends `count`
//! messages of `size` bytes, each carrying its index in its first 8 bytes, and a receiver on
//! the last node that checks them.
//!
//! The sender uses blocking `send`: a reliable flow's credits come back only as the far end
//! delivers, so it runs exactly as fast as the flow carries; a best-effort flow is paced at a
//! given rate instead. Both threads end by themselves (the receiver at a deadline) or when the
//! shared stop flag is set; a sender blocked for credit ends when its node goes away (the
//! session socket closes).
//!
//! The receiver checks every message: reliable flows must deliver index n and end-to-end
//! sequence n as the n-th message (anything else is counted out of order), an index seen
//! before is a duplicate; after the last expected message it listens a little longer for
//! extras.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use hdrhistogram::Histogram;
use weft_client::{Addr, Client, Service};
use weft_shared::ids::{NodeId, Port};

/// How long the receiver keeps listening after the last expected message (duplicates).
const TAIL: Duration = Duration::from_millis(500);

/// What the sender has done so far, shared with the thread (it may stay blocked for credit
/// until its node goes away, so the caller reads this rather than joining it).
#[derive(Debug, Default)]
pub struct Sending {
    /// Messages handed to the node.
    pub sent: AtomicU64,
    /// Set once the last send returned (or the sender gave up).
    pub done: AtomicBool,
    /// The error that ended it early, if any.
    pub error: Mutex<Option<String>>,
}

impl Sending {
    /// The error that ended it early, if any.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

/// What the receiver saw.
#[derive(Debug)]
pub struct Received {
    /// Distinct indices received.
    pub unique: u64,
    /// Messages whose index had been received before.
    pub duplicates: u64,
    /// Messages that were not the next one expected (index or end-to-end sequence), counting
    /// once each; for best effort, an index below the highest seen.
    pub out_of_order: u64,
    /// Messages too short to carry an index, or with an index beyond the count, or cut.
    pub bogus: u64,
    /// The first misorderings, for the report (`expected, index, seq`).
    pub first_errors: Vec<(u64, u64, u64)>,
    /// When the last new message arrived.
    pub last: Option<Instant>,
    /// Per-message age (µs, accumulated hop by hop by the nodes).
    pub age_us: Histogram<u64>,
    /// Whether it stopped at its deadline (or the stop flag) before getting everything.
    pub timed_out: bool,
    /// The error that ended it, if any.
    pub error: Option<String>,
}

/// Starts the receiver: binds `port` on the node at `socket` and returns once bound.
pub fn receiver(
    socket: PathBuf,
    port: u16,
    count: u64,
    reliable: bool,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Received>> {
    let mut client = Client::connect(&socket, "goodput-recv")
        .with_context(|| format!("connecting to {}", socket.display()))?;
    client.bind(Port(port)).context("binding the receiver")?;
    Ok(std::thread::spawn(move || {
        receive(&mut client, count, reliable, deadline, &stop)
    }))
}

fn receive(
    client: &mut Client,
    count: u64,
    reliable: bool,
    deadline: Instant,
    stop: &AtomicBool,
) -> Received {
    let mut r = Received {
        unique: 0,
        duplicates: 0,
        out_of_order: 0,
        bogus: 0,
        first_errors: Vec::new(),
        last: None,
        age_us: Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
            Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
        }),
        timed_out: false,
        error: None,
    };
    let mut seen = vec![false; usize::try_from(count).unwrap_or(usize::MAX)];
    let mut highest: Option<u64> = None;
    let mut buf = vec![0u8; 2048];
    let mut tail_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if tail_until.is_some_and(|t| now > t) {
            break;
        }
        if tail_until.is_none() && (now > deadline || stop.load(Ordering::Relaxed)) {
            r.timed_out = true;
            break;
        }
        let d = match client.recv_timeout(&mut buf, Duration::from_millis(20)) {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(e) => {
                r.error = Some(e.to_string());
                break;
            }
        };
        let Some(index) = buf
            .get(..8)
            .filter(|_| d.len >= 8 && !d.truncated)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .filter(|&i| i < count)
        else {
            r.bogus += 1;
            continue;
        };
        let _ = r.age_us.record(u64::from(d.age_us).max(1));
        let slot = &mut seen[index as usize];
        if *slot {
            r.duplicates += 1;
            continue;
        }
        *slot = true;
        let misordered = if reliable {
            index != r.unique || d.seq != r.unique
        } else {
            highest.is_some_and(|h| index < h)
        };
        if misordered {
            r.out_of_order += 1;
            if r.first_errors.len() < 10 {
                r.first_errors.push((r.unique, index, d.seq));
            }
        }
        highest = Some(highest.map_or(index, |h| h.max(index)));
        r.unique += 1;
        r.last = Some(Instant::now());
        if r.unique == count {
            tail_until = Some(Instant::now() + TAIL);
        }
    }
    r
}

/// How the sender sends.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Blocking sends, as fast as credits come back (reliable flows).
    Credits,
    /// At most this many messages per second (best effort).
    Rate(f64),
}

/// Starts the sender on the node at `socket`: a flow with `service` to `dst`:`port`, sending
/// from the moment it is called. It keeps its session open after the last send until `stop`
/// is set (a closed session would drop what the node still holds for it).
#[allow(clippy::too_many_arguments, reason = "a flat list of settings")]
pub fn sender(
    socket: PathBuf,
    dst: u16,
    port: u16,
    service: Service,
    count: u64,
    size: usize,
    pace: Pace,
    stop: Arc<AtomicBool>,
) -> Result<Arc<Sending>> {
    let mut client = Client::connect(&socket, "goodput-send")
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let from = client.bind(Port(0)).context("binding the sender")?;
    let to = Addr {
        node: NodeId::new(dst).ok_or_else(|| anyhow!("bad node id {dst}"))?,
        port: Port(port),
    };
    let flow = client
        .open_flow(from, to, service)
        .context("opening the flow")?;
    let progress = Arc::new(Sending::default());
    let p = Arc::clone(&progress);
    std::thread::spawn(move || {
        let mut payload = vec![0u8; size.max(8)];
        let start = Instant::now();
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Pace::Rate(r) = pace {
                let due = start + Duration::from_secs_f64(i as f64 / r.max(1.0));
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            payload[..8].copy_from_slice(&i.to_be_bytes());
            if let Err(e) = client.send(&flow, &payload) {
                if let Ok(mut slot) = p.error.lock() {
                    *slot = Some(e.to_string());
                }
                break;
            }
            p.sent.fetch_add(1, Ordering::Relaxed);
        }
        p.done.store(true, Ordering::Relaxed);
        while !stop.load(Ordering::Relaxed) {
            // Takes in credits and deliveries meanwhile; ends when the node goes away.
            match client.linger(Duration::from_millis(50)) {
                Ok(false) => {}
                Ok(true) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    Ok(progress)
}
