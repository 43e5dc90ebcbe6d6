//! The typed config: values that are valid by construction, made only by
//! [`Config::from_raw`](super::Config::from_raw).
//!
//! Fields are private and read through accessors, so code that holds one of these never
//! re-checks it (STYLE.md §5). Nodes are sorted by id, links by id, a node's interfaces by ISP
//! name, and a link's two ends by node id; none of these orders depend on the file's order.

use core::fmt;
use core::time::Duration;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::ids::{LinkId, NodeId, PathId};

/// Longest ISP name, in bytes.
pub const MAX_ISP_NAME_LEN: usize = 15;
/// Most interfaces (ISPs) one node may have.
pub const MAX_INTERFACES: usize = 8;
/// The longest `busy_poll_us` a node may set: 1 ms.
pub const MAX_BUSY_POLL_US: i64 = 1000;

/// The link authentication mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Auth {
    /// Packets carry no authentication tag.
    None,
}

/// `[overlay]`: the overlay's name and authentication mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlay {
    pub(super) name: String,
    pub(super) auth: Auth,
}

impl Overlay {
    /// The overlay's name (ASCII letters, digits, `-`, `_`, `.`; 1..=32 bytes).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The link authentication mode.
    pub fn auth(&self) -> Auth {
        self.auth
    }
}

/// `[timers]`: protocol timers, consistent with each other (see `docs/config.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timers {
    pub(super) hello_interval: Duration,
    pub(super) path_dead_after: Duration,
    pub(super) path_up_after_hellos: u32,
    pub(super) link_state_refresh: Duration,
    pub(super) link_state_max_age: Duration,
    pub(super) fib_publish_min_interval: Duration,
}

impl Timers {
    /// Interval between hellos on each path of each link.
    pub fn hello_interval(&self) -> Duration {
        self.hello_interval
    }

    /// A path that has received no hello for this long is declared down (more than three
    /// hello intervals).
    pub fn path_dead_after(&self) -> Duration {
        self.path_dead_after
    }

    /// Consecutive hellos a down path must receive before it is declared up again (at least 1).
    pub fn path_up_after_hellos(&self) -> u32 {
        self.path_up_after_hellos
    }

    /// How often a node refloods its own link state when nothing changed.
    pub fn link_state_refresh(&self) -> Duration {
        self.link_state_refresh
    }

    /// Link state older than this is discarded (at least two refresh intervals).
    pub fn link_state_max_age(&self) -> Duration {
        self.link_state_max_age
    }

    /// The control plane publishes at most one FIB generation per this interval (may be 0).
    pub fn fib_publish_min_interval(&self) -> Duration {
        self.fib_publish_min_interval
    }
}

impl Default for Timers {
    /// The defaults documented in `docs/config.md`, which are consistent with each other.
    fn default() -> Self {
        Timers {
            hello_interval: Duration::from_millis(10),
            path_dead_after: Duration::from_millis(100),
            path_up_after_hellos: 3,
            link_state_refresh: Duration::from_millis(30_000),
            link_state_max_age: Duration::from_millis(120_000),
            fib_publish_min_interval: Duration::from_millis(5),
        }
    }
}

/// An ISP's short name: 1..=[`MAX_ISP_NAME_LEN`] ASCII letters, digits, `-` or `_`.
///
/// Stored inline so that it is `Copy` and can sit in per-path tables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IspName {
    len: u8,
    bytes: [u8; MAX_ISP_NAME_LEN],
}

impl IspName {
    /// The name `s`, or `None` if it is empty, too long or has other characters.
    pub fn new(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= MAX_ISP_NAME_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return None;
        }
        let mut bytes = [0; MAX_ISP_NAME_LEN];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(IspName {
            len: u8::try_from(s.len()).ok()?,
            bytes,
        })
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Built from a checked ASCII string, so this never falls back.
        core::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl fmt::Display for IspName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IspName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A node's UDP socket on one ISP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interface {
    pub(super) isp: IspName,
    pub(super) addr: SocketAddr,
}

impl Interface {
    /// The ISP this interface is on.
    pub fn isp(&self) -> IspName {
        self.isp
    }

    /// The address the node binds (a specific, non-wildcard IP and a non-zero port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// `[[node]]`: one overlay node and its local settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub(super) id: NodeId,
    pub(super) name: String,
    pub(super) cores: Vec<u16>,
    pub(super) session_socket: PathBuf,
    pub(super) ctl_socket: PathBuf,
    pub(super) shm_name: String,
    pub(super) packing: bool,
    pub(super) busy_poll_us: u32,
    pub(super) interfaces: Vec<Interface>,
}

impl Node {
    /// The node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// CPU core indices for the data plane workers, one worker per entry, in file order
    /// (non-empty, no duplicates).
    pub fn cores(&self) -> &[u16] {
        &self.cores
    }

    /// The Unix socket path clients connect to (absolute).
    pub fn session_socket(&self) -> &Path {
        &self.session_socket
    }

    /// The Unix socket path weftctl connects to (absolute).
    pub fn ctl_socket(&self) -> &Path {
        &self.ctl_socket
    }

    /// The shared-memory name, without a leading `/` (`shm_open` callers add it).
    pub fn shm_name(&self) -> &str {
        &self.shm_name
    }

    /// Whether the data plane packs the data records it sends to one next hop within a turn
    /// into shared datagrams (`packing`, default true; docs/dataplane.md "Packing").
    pub fn packing(&self) -> bool {
        self.packing
    }

    /// How long each data-plane worker keeps polling its ring without blocking after a turn
    /// that had work (`busy_poll_us`, default 0: block at once; at most
    /// [`MAX_BUSY_POLL_US`]; docs/dataplane.md "Busy polling").
    pub fn busy_poll(&self) -> core::time::Duration {
        core::time::Duration::from_micros(u64::from(self.busy_poll_us))
    }

    /// The node's interfaces, sorted by ISP name (1..=[`MAX_INTERFACES`] of them).
    ///
    /// [`PathEnd::interface`] indexes this slice.
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// The interface on ISP `isp`, if the node has one.
    pub fn interface(&self, isp: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.isp.as_str() == isp)
    }
}

/// One end of a path: which interface of that end's node it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathEnd {
    /// The ISP of the interface.
    pub isp: IspName,
    /// The index of the interface in [`Node::interfaces`].
    pub interface: usize,
    /// The interface's address.
    pub addr: SocketAddr,
}

/// One path of a link: an interface pair, ends in the order of [`Link::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkPath {
    pub(super) id: PathId,
    pub(super) ends: [PathEnd; 2],
}

impl LinkPath {
    /// The path id: its position in the link's path list.
    pub fn id(&self) -> PathId {
        self.id
    }

    /// The two ends, `ends()[i]` on node `link.nodes()[i]`.
    pub fn ends(&self) -> &[PathEnd; 2] {
        &self.ends
    }
}

/// `[[link]]`: an overlay link between two distinct nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub(super) id: LinkId,
    pub(super) nodes: [NodeId; 2],
    pub(super) cost_us: u32,
    pub(super) mtu: u16,
    pub(super) paths: Vec<LinkPath>,
    pub(super) key_file: Option<KeyFileRef>,
}

/// A link's key file: as the config wrote it (part of the config hash) and resolved against
/// the config file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KeyFileRef {
    pub(super) written: String,
    pub(super) path: std::path::PathBuf,
}

impl Link {
    /// The stable link id.
    pub fn id(&self) -> LinkId {
        self.id
    }

    /// The two nodes, lower id first (whatever order the file gave).
    pub fn nodes(&self) -> [NodeId; 2] {
        self.nodes
    }

    /// The base cost in microseconds (1..=10 000 000), the routing metric before measurements.
    pub fn cost_us(&self) -> u32 {
        self.cost_us
    }

    /// The path MTU in bytes (576..=65535): the largest UDP datagram plus IP and UDP headers.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// The link's key file, resolved against the config file's directory, if the link is
    /// authenticated (read it with [`LinkKeys::load`](super::LinkKeys::load)).
    pub fn key_file(&self) -> Option<&std::path::Path> {
        self.key_file.as_ref().map(|k| k.path.as_path())
    }

    /// The key file name as the config wrote it.
    pub fn key_file_written(&self) -> Option<&str> {
        self.key_file.as_ref().map(|k| k.written.as_str())
    }

    /// The paths (1..=8), indexed by [`PathId`].
    pub fn paths(&self) -> &[LinkPath] {
        &self.paths
    }

    /// The path with id `id`.
    pub fn path(&self, id: PathId) -> Option<&LinkPath> {
        self.paths.get(usize::from(id.get()))
    }

    /// Which end `node` is (0 or 1), or `None` if the link does not touch it.
    pub fn side_of(&self, node: NodeId) -> Option<usize> {
        self.nodes.iter().position(|&n| n == node)
    }

    /// The node across the link from `node`, or `None` if the link does not touch `node`.
    pub fn neighbour_of(&self, node: NodeId) -> Option<NodeId> {
        let side = self.side_of(node)?;
        Some(self.nodes[1 - side])
    }

    /// The link as seen from `node`, or `None` if the link does not touch it.
    pub fn end(&self, node: NodeId) -> Option<LinkEnd<'_>> {
        Some(LinkEnd {
            link: self,
            side: self.side_of(node)?,
        })
    }
}

/// A link as seen from one of its nodes.
#[derive(Clone, Copy, Debug)]
pub struct LinkEnd<'a> {
    link: &'a Link,
    side: usize,
}

impl<'a> LinkEnd<'a> {
    /// The link.
    pub fn link(&self) -> &'a Link {
        self.link
    }

    /// The link id.
    pub fn id(&self) -> LinkId {
        self.link.id
    }

    /// The node this view is from.
    pub fn local(&self) -> NodeId {
        self.link.nodes[self.side]
    }

    /// The node across the link.
    pub fn neighbour(&self) -> NodeId {
        self.link.nodes[1 - self.side]
    }

    /// Each path with its local and remote ends.
    pub fn paths(&self) -> impl ExactSizeIterator<Item = LocalPath> + 'a {
        let side = self.side;
        self.link.paths.iter().map(move |p| LocalPath {
            id: p.id,
            local: p.ends[side],
            remote: p.ends[1 - side],
        })
    }
}

/// One path of a link as seen from one end: where to send from and to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalPath {
    /// The path id.
    pub id: PathId,
    /// This node's end (its interface and address).
    pub local: PathEnd,
    /// The neighbour's end.
    pub remote: PathEnd,
}
