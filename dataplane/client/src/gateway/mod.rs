//! The UDP gateway: carries an unmodified application's UDP datagrams (an MPEG-TS stream from
//! ffmpeg, say) across the overlay, one datagram per overlay message, unchanged and in order.
//! `weft gateway` (the launcher's subcommand, `docs/gateway.md`) runs it.
//!
//! - **Ingress** ([`Ingress`]): receives datagrams on a local UDP address and sends each as one
//!   message on an overlay flow to `NODE:PORT`, or to a group (`group:GROUP:PORT`, every
//!   member; `anycast:GROUP:PORT`, the nearest) with the chosen [`Service`](crate::Service).
//!   A datagram larger than the node's payload limit (`Welcome.max_payload`) is dropped and
//!   counted. While the flow has no credit, datagrams **wait** in a bounded FIFO
//!   ([`QueueLimits`]); when it is full, arriving datagrams are **dropped and counted**
//!   (`dropped_queue_full`). The gateway keeps reading its UDP socket meanwhile, so the drops
//!   are its own, counted ones, not the kernel's.
//! - **Egress** ([`Egress`]): binds an overlay port, or joins a group and takes its messages
//!   to that port (or both), and sends every delivered message as one datagram to a local UDP
//!   address, in the order the node delivers them. Egresses on several nodes joined to one
//!   group each get every message of a multicast stream. It reorders nothing
//!   and holds nothing back; the flow's service decides the order (best effort may reorder or
//!   lose messages when routes change; [`SeqCheck`] counts gaps and late messages).
//! - **Several mappings** run in one process, one thread and one session each ([`Running`]);
//!   [`GatewayConfig`] reads them from a TOML file.
//!
//! Memory is bounded: each mapping allocates its buffers when it opens (a 64 KiB datagram
//! buffer, the ingress FIFO, the client's buffers) and nothing per datagram after that.
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! use weft_client::gateway::{Gateway, IngressSpec, MappingSpec, Running};
//!
//! let spec = IngressSpec::parse(
//!     "--",
//!     Path::new("/run/weft/n1.sock"),
//!     "127.0.0.1:5000",
//!     "4:5000",
//!     "best-effort",
//! )?;
//! let gateway = Gateway::open(&MappingSpec::Ingress(spec))?;
//! eprintln!("{}", gateway.describe());
//! let running = Running::spawn(vec![gateway])?;
//! std::thread::sleep(std::time::Duration::from_secs(10));
//! for outcome in running.stop() {
//!     println!("{}: {}", outcome.mapping, outcome.stats);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod counters;
mod egress;
mod fifo;
mod ingress;
mod run;
mod seq;
mod service;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use config::{
    DestinationText, EgressSpec, GatewayConfig, IngressSpec, MAX_QUEUE, MappingSpec, QueueLimits,
    SpecError, parse_destination, parse_group, parse_overlay_addr, parse_port, parse_udp_addr,
};
pub use counters::{EgressCounters, EgressStats, GatewayStats, IngressCounters, IngressStats};
pub use egress::Egress;
pub use ingress::{Ingress, READ_BURST, SEND_BATCH};
pub use run::{Gateway, GatewayCounters, Outcome, Running, STOP_LINGER};
pub use seq::{SeqCheck, SeqEvent, TRACKED_STREAMS};
pub use service::{
    DEFAULT_DEADLINE, MAX_DEADLINE_MS, ServiceParseError, ServiceText, parse_service,
};

use crate::error::ClientError;

/// Why a gateway could not open or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A bad option or config field.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A call to the local node failed: connecting (no node running, wrong socket), binding
    /// the overlay port (in use), opening the flow (service refused), or the session later
    /// (the node went away).
    #[error("{what}: {source}")]
    Node {
        /// What the gateway was doing.
        what: String,
        /// The client library's error.
        #[source]
        source: ClientError,
    },
    /// The ingress UDP socket could not be bound.
    #[error("cannot receive on UDP {addr}: {}", explain_bind(.source))]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: io::Error,
    },
    /// The egress UDP socket could not be made for the deliver address.
    #[error("cannot send to UDP {addr}: {source}")]
    Deliver {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// A UDP socket failed while running.
    #[error("UDP socket {addr}: {source}")]
    Udp {
        /// The socket's address (local for ingress, the deliver address for egress).
        addr: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A worker thread could not start, or panicked (a bug).
    #[error("gateway thread: {0}")]
    Thread(String),
}

impl GatewayError {
    /// A [`GatewayError::Node`] for `what`.
    pub(crate) fn node(what: impl Into<String>) -> impl FnOnce(ClientError) -> GatewayError {
        let what = what.into();
        move |source| GatewayError::Node { what, source }
    }
}

/// A bind error in words that say what to do.
fn explain_bind(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            "address in use: another program receives on it; stop it or choose another address"
                .to_owned()
        }
        io::ErrorKind::AddrNotAvailable => "not an address of this host".to_owned(),
        io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)".to_owned()
        }
        _ => e.to_string(),
    }
}

/// How often a repeated warning is printed at most (the count in between is given).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A rate-limited warning on stderr: the first one at once, then at most one per
/// [`WARN_EVERY`], saying how many were held back.
#[derive(Debug, Default)]
pub(crate) struct Warning {
    last: Option<Instant>,
    held: u64,
}

impl Warning {
    /// Warns about `msg` for the mapping `mapping`, unless one was printed recently.
    pub(crate) fn warn(&mut self, mapping: &dyn std::fmt::Display, msg: &dyn std::fmt::Display) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            self.held += 1;
            return;
        }
        let held = std::mem::take(&mut self.held);
        let more = if held > 0 {
            format!(" ({held} more like it since the last warning)")
        } else {
            String::new()
        };
        eprintln!("weft gateway: {mapping}: warning: {msg}{more}");
        self.last = Some(now);
    }
}
