//! [`Gateway`] (one mapping of either kind) and [`Running`]: several mappings in one process,
//! one thread and one session with the node each, stopped together.
//!
//! All mappings are opened first ([`Gateway::open`]), so a bad one stops the process before
//! any runs. A mapping that fails while running sets the shared stop flag: the others stop
//! too, and [`Running::stop`] returns every mapping's outcome and final counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::GatewayError;
use super::config::{DestinationText, MappingSpec};
use super::counters::{EgressCounters, GatewayStats, IngressCounters};
use super::egress::Egress;
use super::ingress::Ingress;
use super::service::ServiceText;

/// How long a stopping ingress waits for credit and for the node to send on what it holds.
pub const STOP_LINGER: Duration = Duration::from_secs(1);

/// One open mapping.
#[derive(Debug)]
pub enum Gateway {
    /// UDP in, overlay out.
    Ingress(Box<Ingress>),
    /// Overlay in, UDP out.
    Egress(Box<Egress>),
}

/// A mapping's counters, to snapshot while it runs.
#[derive(Clone, Debug)]
pub enum GatewayCounters {
    /// An ingress mapping's.
    Ingress(Arc<IngressCounters>),
    /// An egress mapping's.
    Egress(Arc<EgressCounters>),
}

impl GatewayCounters {
    /// The values now.
    pub fn snapshot(&self) -> GatewayStats {
        match self {
            GatewayCounters::Ingress(c) => GatewayStats::Ingress(c.snapshot()),
            GatewayCounters::Egress(c) => GatewayStats::Egress(c.snapshot()),
        }
    }
}

impl Gateway {
    /// Opens the mapping `spec`.
    pub fn open(spec: &MappingSpec) -> Result<Gateway, GatewayError> {
        Ok(match spec {
            MappingSpec::Ingress(s) => Gateway::Ingress(Box::new(Ingress::open(s)?)),
            MappingSpec::Egress(s) => Gateway::Egress(Box::new(Egress::open(s)?)),
        })
    }

    /// The mapping in short, as counters are labelled: `ingress udp 127.0.0.1:5000 ->
    /// overlay 4:5000 (best-effort)`.
    pub fn mapping(&self) -> String {
        match self {
            Gateway::Ingress(g) => g.spec().to_string(),
            Gateway::Egress(g) => g.spec().to_string(),
        }
    }

    /// The mapping with what opening it found out, for a start-up line: the UDP address
    /// bound, the overlay address sent from, the node's payload limit; the group an egress
    /// joined, on which node.
    pub fn describe(&self) -> String {
        match self {
            Gateway::Ingress(g) => format!(
                "ingress udp {} -> overlay {} ({}, from {}, at most {} B per datagram)",
                g.local_addr(),
                DestinationText(g.spec().to),
                ServiceText(g.spec().service),
                g.from(),
                g.max_payload()
            ),
            Gateway::Egress(g) => match g.group() {
                Some(group) => format!(
                    "{} (member of group {group} on node {})",
                    g.spec(),
                    g.node()
                ),
                None => g.spec().to_string(),
            },
        }
    }

    /// Its counters.
    pub fn counters(&self) -> GatewayCounters {
        match self {
            Gateway::Ingress(g) => GatewayCounters::Ingress(g.counters()),
            Gateway::Egress(g) => GatewayCounters::Egress(g.counters()),
        }
    }

    /// Runs until `stop` is set or a fatal error.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), GatewayError> {
        match self {
            Gateway::Ingress(g) => g.run(stop),
            Gateway::Egress(g) => g.run(stop),
        }
    }

    /// Stops (an ingress sends on what it still queues, for up to [`STOP_LINGER`]) and
    /// returns the final counters.
    pub fn finish(self) -> GatewayStats {
        match self {
            Gateway::Ingress(g) => GatewayStats::Ingress(g.finish(STOP_LINGER)),
            Gateway::Egress(g) => GatewayStats::Egress(g.finish()),
        }
    }
}

/// How one mapping ended.
#[derive(Debug)]
pub struct Outcome {
    /// The mapping ([`Gateway::mapping`]).
    pub mapping: String,
    /// Its final counters.
    pub stats: GatewayStats,
    /// `Ok` if it ran until asked to stop, else why it stopped.
    pub result: Result<(), GatewayError>,
}

#[derive(Debug)]
struct Worker {
    mapping: String,
    counters: GatewayCounters,
    handle: JoinHandle<(Result<(), GatewayError>, GatewayStats)>,
}

/// Mappings running, one thread each.
#[derive(Debug)]
pub struct Running {
    stop: Arc<AtomicBool>,
    workers: Vec<Worker>,
}

impl Running {
    /// Starts one thread per gateway. If a thread cannot start, those started are stopped
    /// and the error returned.
    pub fn spawn(gateways: Vec<Gateway>) -> Result<Running, GatewayError> {
        let mut running = Running {
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::with_capacity(gateways.len()),
        };
        for (i, mut gateway) in gateways.into_iter().enumerate() {
            let mapping = gateway.mapping();
            let counters = gateway.counters();
            let stop = Arc::clone(&running.stop);
            let spawned = std::thread::Builder::new()
                .name(format!("gateway-{i}"))
                .spawn(move || {
                    let result = gateway.run(&stop);
                    if result.is_err() {
                        // One mapping failed: the process stops, with every mapping's counters.
                        stop.store(true, Ordering::Relaxed);
                    }
                    (result, gateway.finish())
                });
            match spawned {
                Ok(handle) => running.workers.push(Worker {
                    mapping,
                    counters,
                    handle,
                }),
                Err(e) => {
                    drop(running.stop());
                    return Err(GatewayError::Thread(format!("cannot start a thread: {e}")));
                }
            }
        }
        Ok(running)
    }

    /// Whether a stop was asked for, or a mapping failed (and so asked for it).
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Every mapping's counters now.
    pub fn snapshot(&self) -> Vec<(String, GatewayStats)> {
        self.workers
            .iter()
            .map(|w| (w.mapping.clone(), w.counters.snapshot()))
            .collect()
    }

    /// Stops every mapping and waits for them (an ingress may take up to [`STOP_LINGER`] to
    /// send on what it queues); returns how each ended.
    pub fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.workers
            .into_iter()
            .map(|w| match w.handle.join() {
                Ok((result, stats)) => Outcome {
                    mapping: w.mapping,
                    stats,
                    result,
                },
                Err(_) => Outcome {
                    mapping: w.mapping,
                    stats: w.counters.snapshot(),
                    result: Err(GatewayError::Thread("the thread panicked".to_owned())),
                },
            })
            .collect()
    }
}
