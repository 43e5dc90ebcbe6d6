//! The node's links as every worker sees them: what the config says (neighbour, paths with
//! their local interface and remote address, MTU) plus what worker 0 measures and shares through
//! atomics (the active path and the one-way delay), and per-worker traffic counters per link.
//!
//! Worker 0 is the only writer of the atomics (it owns the link monitors; the newest key epoch
//! the peer announced comes from its hellos too); the other workers
//! read them once per packet with relaxed loads. A worker that reads a stale active path for a
//! few packets after a failover sends them on the old path, which is what any data plane does
//! while the failure is being detected.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use weft_proto::auth::LinkWindows;
use weft_proto::forward::{LinkInfo, LinkTable};
use weft_shared::config::Config;
use weft_shared::ids::{LinkId, MAX_LINKS, MAX_PATHS_PER_LINK, NodeId, PathId};
use weft_shared::wire::lane::sub_lanes;

/// Stored in the active-path atomic when the link has no up path.
const NO_PATH: u8 = u8::MAX;
/// Stored in the peer-key-epoch atomic before the peer announced one.
const NO_EPOCH: u16 = u16::MAX;

/// One path of a link, from this node's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathInfo {
    /// The path id.
    pub id: PathId,
    /// Index of the local interface (and of each worker's socket for it).
    pub interface: usize,
    /// Where this node sends on this path (the peer's interface, or an override).
    pub remote: SocketAddr,
}

/// One link of this node.
#[derive(Debug)]
pub struct LinkEntry {
    /// The link id.
    pub id: LinkId,
    /// The node at the other end.
    pub neighbour: NodeId,
    /// Largest UDP payload a packet on this link may have (path MTU minus IP and UDP headers).
    pub max_datagram: usize,
    /// The paths, indexed by path id.
    pub paths: Vec<PathInfo>,
    /// The link's key file, if it is authenticated.
    pub key_file: Option<PathBuf>,
    /// How many workers (lanes) the neighbour's data plane runs.
    pub peer_lanes: u8,
    /// Sub-lanes each of this node's workers spreads its best-effort records over on this
    /// link, one per flow hash (`weft_shared::wire::lane`): the neighbour's worker count, at
    /// most 4, so its steering spreads them over its workers.
    pub sub_lanes: u8,
    /// The link's replay windows if it is authenticated: one object, shared by every worker's
    /// `AuthTable`, so a replay steered to another worker is caught too.
    pub replay: Option<LinkWindows>,
    active: AtomicU8,
    one_way_delay_us: AtomicU32,
    peer_key_epoch: AtomicU16,
}

impl LinkEntry {
    /// The path packets go out on now, if any is up.
    #[inline]
    pub fn active_path(&self) -> Option<&PathInfo> {
        let p = self.active.load(Ordering::Relaxed);
        self.paths.get(usize::from(p))
    }

    /// Worker 0 only: sets the active path.
    pub fn set_active_path(&self, path: Option<PathId>) {
        self.active
            .store(path.map_or(NO_PATH, PathId::get), Ordering::Relaxed);
    }

    /// The one-way delay estimate in microseconds (0 before one is measured).
    #[inline]
    pub fn one_way_delay_us(&self) -> u32 {
        self.one_way_delay_us.load(Ordering::Relaxed)
    }

    /// Worker 0 only: sets the one-way delay estimate.
    pub fn set_one_way_delay_us(&self, us: u32) {
        self.one_way_delay_us.store(us, Ordering::Relaxed);
    }

    /// The newest key epoch the peer announced in its (authenticated) hellos.
    #[inline]
    pub fn peer_key_epoch(&self) -> Option<u8> {
        u8::try_from(self.peer_key_epoch.load(Ordering::Relaxed)).ok()
    }

    /// Worker 0 only: records the newest key epoch the peer announced.
    pub fn set_peer_key_epoch(&self, epoch: Option<u8>) {
        self.peer_key_epoch
            .store(epoch.map_or(NO_EPOCH, u16::from), Ordering::Relaxed);
    }
}

/// Traffic counters of one link kept by one worker: written by that worker alone (relaxed
/// load and store), summed by worker 0 for the link statistics.
#[derive(Debug, Default)]
pub struct LinkTraffic {
    /// Datagrams received on the link.
    pub packets_in: AtomicU64,
    /// Bytes received on the link.
    pub bytes_in: AtomicU64,
    /// Datagrams sent on the link.
    pub packets_out: AtomicU64,
    /// Bytes sent on the link.
    pub bytes_out: AtomicU64,
}

impl LinkTraffic {
    /// Adds one datagram of `bytes` to a pair of counters (single writer).
    #[inline]
    pub fn bump(packets: &AtomicU64, bytes_counter: &AtomicU64, bytes: usize) {
        packets.store(packets.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        bytes_counter.store(
            bytes_counter.load(Ordering::Relaxed) + bytes as u64,
            Ordering::Relaxed,
        );
    }
}

/// Every link of this node, indexed by link id, shared by all workers.
#[derive(Debug)]
pub struct Links {
    entries: Vec<LinkEntry>,
    /// `index[link id]` is the position in `entries`, or `u16::MAX`.
    index: Box<[u16]>,
    /// `traffic[worker][position]`.
    traffic: Vec<Vec<LinkTraffic>>,
}

/// A path whose remote address is replaced (for relays and link emulators).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteOverride {
    /// The link.
    pub link: LinkId,
    /// The path.
    pub path: PathId,
    /// Where to send instead of the peer's configured interface.
    pub addr: SocketAddr,
}

impl Links {
    /// The links of `node` in `config`, with `overrides` applied, and traffic counters for
    /// `workers` workers.
    pub fn new(
        config: &Config,
        node: NodeId,
        overrides: &[RemoteOverride],
        workers: usize,
    ) -> Self {
        let mut index = vec![u16::MAX; usize::from(MAX_LINKS)].into_boxed_slice();
        let mut entries = Vec::new();
        // Sub-lanes follow the config's worker counts, which both ends of a link read alike.
        let my_workers = config.node(node).map_or(workers, |n| n.cores().len());
        for end in config.links_of(node) {
            let link = end.link();
            let paths = end
                .paths()
                .map(|p| {
                    let remote = overrides
                        .iter()
                        .find(|o| o.link == end.id() && o.path == p.id)
                        .map_or(p.remote.addr, |o| o.addr);
                    PathInfo {
                        id: p.id,
                        interface: p.local.interface,
                        remote,
                    }
                })
                .collect::<Vec<_>>();
            let ip_udp = match paths.first().map(|p| p.remote) {
                Some(SocketAddr::V6(_)) => 48,
                _ => 28,
            };
            index[usize::from(end.id().get())] = entries.len() as u16;
            let peer_workers = config.node(end.neighbour()).map_or(1, |n| n.cores().len());
            let peer_lanes = u8::try_from(peer_workers).unwrap_or(u8::MAX);
            entries.push(LinkEntry {
                id: end.id(),
                neighbour: end.neighbour(),
                max_datagram: usize::from(link.mtu()).saturating_sub(ip_udp),
                paths,
                key_file: link.key_file().map(PathBuf::from),
                peer_lanes,
                sub_lanes: sub_lanes(my_workers, peer_workers),
                replay: link
                    .key_file()
                    .map(|_| LinkWindows::new(peer_lanes, sub_lanes(peer_workers, my_workers))),
                active: AtomicU8::new(NO_PATH),
                one_way_delay_us: AtomicU32::new(0),
                peer_key_epoch: AtomicU16::new(NO_EPOCH),
            });
        }
        let traffic = (0..workers)
            .map(|_| entries.iter().map(|_| LinkTraffic::default()).collect())
            .collect();
        Links {
            entries,
            index,
            traffic,
        }
    }

    /// The link `id`, if this node has it.
    #[inline]
    pub fn get(&self, id: LinkId) -> Option<&LinkEntry> {
        let i = *self.index.get(usize::from(id.get()))?;
        self.entries.get(usize::from(i))
    }

    /// The link at `position` in [`Links::iter`] order.
    #[inline]
    pub fn at(&self, position: usize) -> Option<&LinkEntry> {
        self.entries.get(position)
    }

    /// Position of link `id` in [`Links::iter`] order.
    #[inline]
    pub fn position(&self, id: LinkId) -> Option<usize> {
        let i = *self.index.get(usize::from(id.get()))?;
        (usize::from(i) < self.entries.len()).then_some(usize::from(i))
    }

    /// Every link, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &LinkEntry> {
        self.entries.iter()
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the node has no links.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The traffic counters `worker` keeps for link `id`.
    #[inline]
    pub fn traffic(&self, worker: usize, id: LinkId) -> Option<&LinkTraffic> {
        self.traffic.get(worker)?.get(self.position(id)?)
    }

    /// The counters of the link at `position` summed over all workers: (packets in, bytes in,
    /// packets out, bytes out).
    pub fn traffic_total(&self, position: usize) -> [u64; 4] {
        let mut sum = [0u64; 4];
        for worker in &self.traffic {
            if let Some(t) = worker.get(position) {
                sum[0] += t.packets_in.load(Ordering::Relaxed);
                sum[1] += t.bytes_in.load(Ordering::Relaxed);
                sum[2] += t.packets_out.load(Ordering::Relaxed);
                sum[3] += t.bytes_out.load(Ordering::Relaxed);
            }
        }
        sum
    }
}

impl LinkTable for Links {
    #[inline]
    fn link(&self, id: LinkId) -> Option<LinkInfo> {
        let e = self.get(id)?;
        Some(LinkInfo {
            neighbour: e.neighbour,
            path_count: e.paths.len().min(usize::from(MAX_PATHS_PER_LINK)) as u8,
            one_way_delay_us: e.one_way_delay_us.load(Ordering::Relaxed),
        })
    }
}
