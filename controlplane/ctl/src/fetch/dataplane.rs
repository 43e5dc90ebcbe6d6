//! Reading a running data plane's shared memory (`docs/shm.md`): link and path statistics, the
//! current FIB generation, per-worker counters.
//!
//! weftctl only reads, with one exception the FIB protocol requires: to read a FIB buffer it
//! registers as a FIB reader in a free worker slot (the highest one not used by the node's
//! configured workers), enters the current generation, copies what it shows, and quiesces and
//! releases the slot at once. While it reads, the control plane can still publish one more
//! generation (into the other buffer), so weftctl never holds the FIB writer back.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use nix::time::{ClockId, clock_gettime};
use weft_shared::config::{Config, Node};
use weft_shared::shm::{
    CounterTotals, FibReader, LinkState, LinkStats, MAX_WORKERS, RelStatsReader, ShmError,
    ShmRegion, StatsError, StatsReader, fdpass,
};

use crate::report::{
    AuthRow, Counters, CountersReport, DataplaneInfo, FibReport, FibRoute, LinkRow, LinksReport,
    Liveness, PathRow, ReliableLinkRow, ReliableReport, State, WorkerRow,
};

/// A running data plane's shared memory, attached read-mostly.
pub struct DataPlane {
    region: Arc<ShmRegion>,
    info: DataplaneInfo,
}

/// Where a node's data plane hands out its region: `<session_socket>.attach`.
pub fn attach_socket(node: &Node) -> PathBuf {
    let mut path = node.session_socket().as_os_str().to_owned();
    path.push(".attach");
    PathBuf::from(path)
}

impl DataPlane {
    /// Attaches to the data plane of `node`: the named region `/dev/shm/<shm_name>` if a live
    /// data plane writes it, otherwise the region handed out on the attach socket (a memfd).
    /// Fails with a sentence naming both places when no data plane is running, and when the
    /// region was made for another config.
    pub fn open(config: &Config, node: &Node, timeout: Duration) -> anyhow::Result<DataPlane> {
        let id = node.id();
        let name = node.shm_name();
        let named = format!("/dev/shm/{name}");
        let attach = attach_socket(node);
        // Why the named region is not usable, for the final error if the attach socket fails too.
        let named_problem = match ShmRegion::open_named(name) {
            Ok(region) => {
                let region = Arc::new(region);
                match StatsReader::new(region.clone()).writer_pid() {
                    Some(pid) => return DataPlane::new(config, region, pid, named),
                    None => format!(
                        "{named} is left over from pid {}, which is gone",
                        region.header().creator_pid
                    ),
                }
            }
            Err(ShmError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                format!("there is no {named}")
            }
            Err(e) => {
                return Err(anyhow!(e)
                    .context(format!("open node {id}'s data-plane shared memory {named}")));
            }
        };
        match via_attach_socket(&attach, timeout) {
            Ok(region) => {
                let region = Arc::new(region);
                let pid = StatsReader::new(region.clone())
                    .writer_pid()
                    .unwrap_or(region.header().creator_pid);
                DataPlane::new(config, region, pid, attach.display().to_string())
            }
            Err(AttachError::NotListening(e)) => bail!(
                "the data plane of node {id} is not running: {named_problem}, and nothing \
                 listens on {} ({e})",
                attach.display()
            ),
            Err(AttachError::Other(e)) => Err(e),
        }
    }

    fn new(
        config: &Config,
        region: Arc<ShmRegion>,
        pid: u32,
        source: String,
    ) -> anyhow::Result<DataPlane> {
        region
            .check_config_hash(config.hash().get())
            .with_context(|| {
                format!("the data plane behind {source} runs another config than this file")
            })?;
        let info = DataplaneInfo {
            pid,
            incarnation: region.dataplane_incarnation().0,
            region: source,
        };
        Ok(DataPlane { region, info })
    }

    /// Where this data plane was found.
    pub fn info(&self) -> &DataplaneInfo {
        &self.info
    }

    /// Every configured link of `node` and each of its paths.
    pub fn links(&self, config: &Config, node: &Node) -> LinksReport {
        let reader = StatsReader::new(self.region.clone());
        let now = monotonic_ns();
        let links = config
            .links_of(node.id())
            .map(|end| {
                let link = reader.link(end.id());
                let paths = end
                    .paths()
                    .map(|p| PathRow {
                        path: p.id.get(),
                        local: format!("{} {}", p.local.isp.as_str(), p.local.addr),
                        remote: format!("{} {}", p.remote.isp.as_str(), p.remote.addr),
                        liveness: liveness(&reader.path(end.id(), p.id), now),
                    })
                    .collect();
                let stats = link.unwrap_or_default();
                LinkRow {
                    link: end.id().get(),
                    neighbour: end.neighbour().get(),
                    neighbour_name: node_name(config, end.neighbour().get()),
                    active_path: stats.active_path.map(|p| p.get()),
                    liveness: liveness(&link, now),
                    bytes_in: stats.bytes_in,
                    bytes_out: stats.bytes_out,
                    packets_in: stats.packets_in,
                    packets_out: stats.packets_out,
                    auth: stats.auth.map(|a| AuthRow {
                        send_epoch: a.send_epoch,
                        newest_epoch: a.newest_epoch,
                        peer_epoch: a.peer_epoch,
                    }),
                    paths,
                }
            })
            .collect();
        LinksReport {
            node: node.id().get(),
            name: node.name().to_owned(),
            dataplane: self.info.clone(),
            links,
        }
    }

    /// The reliable service's per-link and per-flow figures.
    pub fn reliable(&self, config: &Config, node: &Node) -> ReliableReport {
        let reader = RelStatsReader::new(&self.region);
        let workers = node.cores().len().max(1);
        let links = config
            .links_of(node.id())
            .map(|end| ReliableLinkRow {
                link: end.id().get(),
                neighbour: end.neighbour().get(),
                values: reader.link(end.id(), workers),
            })
            .collect();
        ReliableReport {
            node: node.id().get(),
            name: node.name().to_owned(),
            dataplane: self.info.clone(),
            links,
            flows: reader.flows(),
        }
    }

    /// The FIB generation the data plane forwards with now.
    pub fn fib(&self, config: &Config, node: &Node) -> anyhow::Result<FibReport> {
        let mut reader = self.register_fib_reader(node)?;
        let view = reader.enter();
        let generation = view.generation().0;
        let counts = view.counts();
        let verify_error = view.verify().err().map(|e| e.to_string());
        let unicast = view
            .unicast_routes()
            .map(|(dst, route)| FibRoute {
                destination: dst.get(),
                name: node_name(config, dst.get()),
                link: route.next_hop.get(),
                next_hop_node: config.neighbour(route.next_hop, node.id()).map(|n| n.get()),
                metric_us: route.metric_us,
            })
            .collect();
        reader.quiesce();
        drop(reader);
        Ok(FibReport {
            node: node.id().get(),
            name: node.name().to_owned(),
            dataplane: self.info.clone(),
            generation,
            unicast_count: counts.unicast,
            multicast_count: counts.multicast,
            anycast_count: counts.anycast,
            verified: verify_error.is_none(),
            verify_error,
            unicast,
        })
    }

    /// Claims the highest free FIB reader slot above the node's workers.
    fn register_fib_reader(&self, node: &Node) -> anyhow::Result<FibReader> {
        let workers = node.cores().len();
        for slot in (workers..MAX_WORKERS).rev() {
            match FibReader::register(self.region.clone(), slot) {
                Ok(reader) => return Ok(reader),
                Err(ShmError::RoleBusy { .. }) => continue,
                Err(e) => return Err(anyhow!(e).context("register as a FIB reader")),
            }
        }
        bail!(
            "every FIB reader slot from {workers} to {} is taken: too many weftctl running?",
            MAX_WORKERS - 1
        )
    }

    /// Each configured worker's counters and the sum over all of them.
    pub fn counters(&self, node: &Node) -> CountersReport {
        let workers = node
            .cores()
            .iter()
            .enumerate()
            .map(|(worker, &core)| WorkerRow {
                worker,
                core,
                counters: Counters(
                    CounterTotals::read_worker(&self.region, worker)
                        .named()
                        .collect(),
                ),
            })
            .collect();
        CountersReport {
            node: node.id().get(),
            name: node.name().to_owned(),
            dataplane: self.info.clone(),
            workers,
            total: Counters(CounterTotals::sum(&self.region).named().collect()),
        }
    }
}

enum AttachError {
    /// No socket file, or nobody accepts on it.
    NotListening(io::Error),
    /// Something answered but no usable region came of it.
    Other(anyhow::Error),
}

/// Receives the region fd from the data plane's attach socket.
fn via_attach_socket(path: &Path, timeout: Duration) -> Result<ShmRegion, AttachError> {
    let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => AttachError::NotListening(e),
        _ => AttachError::Other(anyhow!(e).context(format!("connect to {}", path.display()))),
    })?;
    let other = |e: anyhow::Error| {
        AttachError::Other(e.context(format!("attach through {}", path.display())))
    };
    stream
        .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(|e| other(e.into()))?;
    let mut fds = fdpass::recv_fds(&stream).map_err(|e| other(e.into()))?;
    if fds.is_empty() {
        return Err(other(anyhow!("the data plane sent no file descriptors")));
    }
    // The region is first; the punt and inject eventfds after it are closed when dropped.
    let region = fds.swap_remove(0);
    ShmRegion::from_fd(region).map_err(|e| other(e.into()))
}

/// The liveness fields of a stats record (or of a record that stayed busy).
fn liveness(record: &Result<LinkStats, StatsError>, now_ns: u64) -> Liveness {
    let Ok(s) = record else {
        return Liveness {
            state: State::Busy,
            rtt_us: 0,
            loss_ppm: 0,
            hellos_sent: 0,
            hellos_received: 0,
            changed_ms_ago: None,
        };
    };
    let changed = s.last_change.as_nanos();
    Liveness {
        state: match s.state {
            LinkState::Up => State::Up,
            LinkState::Down => State::Down,
            LinkState::Unknown => State::Unknown,
        },
        rtt_us: s.rtt_us,
        loss_ppm: s.loss_ppm,
        hellos_sent: s.hellos_sent,
        hellos_received: s.hellos_received,
        changed_ms_ago: (changed != 0).then(|| now_ns.saturating_sub(changed) / 1_000_000),
    }
}

/// The data plane's clock: `CLOCK_MONOTONIC` in nanoseconds (0 if it cannot be read).
fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
        let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(nanos)
    })
}

/// The configured name of node `id`, or an empty string.
pub fn node_name(config: &Config, id: u16) -> String {
    weft_shared::ids::NodeId::new(id)
        .and_then(|n| config.node(n))
        .map(|n| n.name().to_owned())
        .unwrap_or_default()
}
