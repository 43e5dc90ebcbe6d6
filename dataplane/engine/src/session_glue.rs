//! The adapter between worker 0 and the session server (clients on the node's Unix socket).
//!
//! PLACEHOLDER until branch `sessrv` lands: this binds the session socket so that tools see the
//! node as up, but accepts no clients; deliveries are counted as
//! `Unsupported("session server")` drops.

use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use weft_proto::forward::{Forwarder, LinkSender, LocalDelivery};
use weft_shared::DropReason;
use weft_shared::ids::{Incarnation, NodeId};
use weft_shared::shm::WorkerCounters;
use weft_shared::shm::fib::FibTable;
use weft_shared::time::Instant;

use crate::links::Links;
use crate::uring::{DriverError, TxQueue, UdpDriver};
use crate::worker::TOKEN_SESSION_BASE;

/// Worker 0's session server.
pub struct SessionGlue {
    listener: UnixListener,
    path: PathBuf,
}

impl SessionGlue {
    /// Binds the session socket at `path` for node `node`.
    pub fn bind(path: &Path, _node: NodeId) -> anyhow::Result<Self> {
        let listener =
            weft_shared::session::bind_listener(path, weft_shared::session::DEFAULT_SOCKET_MODE)?;
        Ok(SessionGlue {
            listener,
            path: path.to_owned(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Watches the listening socket.
    pub fn watch_listener(&self, driver: &mut UdpDriver) -> Result<(), DriverError> {
        driver
            .watch(self.listener.as_fd(), TOKEN_SESSION_BASE)
            .map(|_| ())
    }

    /// Accepts new clients and stops watching closed ones.
    pub fn handle_accepts(&mut self, _tokens: &[u64], _driver: &mut UdpDriver) {}

    /// Reads the requests of clients whose tokens are in `tokens`.
    pub fn handle_clients(&mut self, _tokens: &[u64], _sink: &mut Originate<'_>) {}

    /// Writes queued output.
    pub fn flush(&mut self) {}

    /// Whether output is still queued.
    pub fn wants_flush(&self) -> bool {
        false
    }

    /// Hands a message to the client bound to its port.
    pub fn deliver(&mut self, _d: &LocalDelivery<'_>) -> Result<(), DropReason> {
        Err(DropReason::Unsupported("session server"))
    }
}

/// What a client's send needs: the FIB, the links, and worker 0's sender and tx queue.
pub struct Originate<'a> {
    /// Batch time.
    pub now: Instant,
    /// This node.
    pub node: NodeId,
    /// The data plane's incarnation (the overlay header's source incarnation).
    pub incarnation: Incarnation,
    /// The pipeline (for the next hop).
    pub forwarder: &'a Forwarder,
    /// The FIB generation entered for this batch.
    pub fib: &'a FibTable,
    /// The node's links.
    pub links: &'a Links,
    /// Worker 0's packet builder.
    pub sender: &'a mut LinkSender,
    /// Worker 0's counters.
    pub counters: &'a WorkerCounters,
    /// Worker 0's tx queue.
    pub tx: &'a mut TxQueue,
}
