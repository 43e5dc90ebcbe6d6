//! Helpers shared by the `real_dataplane_*` tests: an overlay of real `weft-dataplane`
//! processes on unique loopback addresses, FIB publishing through each node's named shared
//! memory, a minimal session client, and a UDP relay that can cut a path.
//!
//! Every test gets its own addresses (`127.A.B.n`, with A and B derived from the pid and the
//! test name; ISP "a" is third octet B, ISP "b" is B + 1), its own shm names and its own
//! temporary directory for sockets and logs. The [`Overlay`] guard kills the processes and
//! removes the directory when dropped; the log of each node is printed if the test failed.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

pub(crate) mod client;
pub(crate) mod relay;

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_shared::ids::{LinkId, NodeId, PathId};
use weft_shared::shm::fib::UnicastRoute;
use weft_shared::shm::{
    Counter, CounterTotals, EventFd, FibWriter, LinkState, PublishError, ShmRegion, StatsReader,
    fdpass,
};

/// One node of a test overlay.
#[derive(Clone, Debug)]
pub(crate) struct NodeSpec {
    /// Node id.
    pub(crate) id: u16,
    /// Cores (one worker each).
    pub(crate) cores: Vec<u16>,
}

/// One link of a test overlay: `(id, a, b)`, on-net paths a-a (path 0) and b-b (path 1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkSpec {
    /// Link id.
    pub(crate) id: u16,
    /// First node.
    pub(crate) a: u16,
    /// Second node.
    pub(crate) b: u16,
}

/// What to start.
#[derive(Clone, Debug, Default)]
pub(crate) struct Spec {
    /// The nodes.
    pub(crate) nodes: Vec<NodeSpec>,
    /// The links.
    pub(crate) links: Vec<LinkSpec>,
    /// Extra command-line arguments per node id.
    pub(crate) extra_args: Vec<(u16, Vec<String>)>,
    /// `key_file` per link id (relative to the test directory).
    pub(crate) key_files: Vec<(u16, String)>,
    /// Files written into the test directory before the nodes start: (relative path, text).
    pub(crate) files: Vec<(String, String)>,
    /// Extra `[[node]]` lines per node id (TOML, e.g. `busy_poll_us = 500`).
    pub(crate) node_lines: Vec<(u16, String)>,
}

impl Spec {
    /// Nodes 1..=n with one worker each (cores alternating 0, 1) and the given links.
    pub(crate) fn simple(n: u16, links: &[(u16, u16, u16)]) -> Spec {
        Spec {
            nodes: (1..=n)
                .map(|id| NodeSpec {
                    id,
                    cores: vec![(id - 1) % 2],
                })
                .collect(),
            links: links
                .iter()
                .map(|&(id, a, b)| LinkSpec { id, a, b })
                .collect(),
            extra_args: Vec::new(),
            key_files: Vec::new(),
            files: Vec::new(),
            node_lines: Vec::new(),
        }
    }
}

/// The unique address block of one test.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Addrs {
    a: u8,
    b: u8,
}

impl Addrs {
    /// The block of test `name` in this process.
    pub(crate) fn new(name: &str) -> Addrs {
        let mut h = DefaultHasher::new();
        (std::process::id(), name).hash(&mut h);
        let x = h.finish();
        Addrs {
            a: 1 + (x % 250) as u8,
            // Third octets b, b + 1 (ISPs) and b + 2 (relays).
            b: 1 + ((x >> 16) % 80) as u8 * 3,
        }
    }

    /// Node `n`'s interface on ISP `isp` (0 = "a", 1 = "b").
    pub(crate) fn node(&self, n: u16, isp: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(127, self.a, self.b + isp, n as u8), 7000 + n))
    }

    /// An address for relays and test sockets: `127.A.(B+2).k`, port 0.
    pub(crate) fn spare(&self, k: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(127, self.a, self.b + 2, k), 0))
    }
}

/// A running overlay; kills its processes on drop.
pub(crate) struct Overlay {
    /// Test name.
    pub(crate) name: String,
    /// Address block.
    pub(crate) addrs: Addrs,
    /// Temporary directory.
    pub(crate) dir: PathBuf,
    /// The config file.
    pub(crate) config: PathBuf,
    spec: Spec,
    children: Vec<(u16, Child)>,
    regions: Vec<(u16, Arc<ShmRegion>)>,
    writers: Vec<(u16, FibWriter)>,
}

impl Overlay {
    /// Writes the config and starts every node; returns once all are up.
    pub(crate) fn start(name: &str, spec: Spec) -> Overlay {
        let addrs = Addrs::new(name);
        let dir = std::env::temp_dir().join(format!("weft-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("overlay.toml");
        std::fs::write(&config, config_text(name, &addrs, &dir, &spec)).unwrap();
        for (file, text) in &spec.files {
            let path = dir.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(path, text).unwrap();
        }
        let mut overlay = Overlay {
            name: name.to_owned(),
            addrs,
            dir,
            config,
            spec: spec.clone(),
            children: Vec::new(),
            regions: Vec::new(),
            writers: Vec::new(),
        };
        for n in &spec.nodes {
            overlay.spawn(n.id);
        }
        for n in &spec.nodes {
            overlay.wait_up(n.id);
        }
        overlay
    }

    fn spawn(&mut self, id: u16) {
        let log = std::fs::File::create(self.dir.join(format!("node{id}.log"))).unwrap();
        let extra = self
            .spec
            .extra_args
            .iter()
            .filter(|(n, _)| *n == id)
            .flat_map(|(_, a)| a.clone())
            .collect::<Vec<_>>();
        let child = Command::new(env!("CARGO_BIN_EXE_weft-dataplane"))
            .arg("--config")
            .arg(&self.config)
            .arg("--id")
            .arg(id.to_string())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((id, child));
    }

    /// The process id of node `id`'s data plane, if it runs.
    pub(crate) fn pid(&self, id: u16) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, c)| c.id())
    }

    /// Node `id`'s session socket.
    pub(crate) fn session_socket(&self, id: u16) -> PathBuf {
        self.dir.join(format!("n{id}.sock"))
    }

    /// Node `id`'s shm name.
    pub(crate) fn shm_name(&self, id: u16) -> String {
        format!("weft-test-{}-{}-n{id}", std::process::id(), self.name)
    }

    fn wait_up(&mut self, id: u16) {
        let attach = self.dir.join(format!("n{id}.sock.attach"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !attach.exists() {
            if let Some((_, c)) = self.children.iter_mut().find(|(n, _)| *n == id) {
                if let Some(status) = c.try_wait().unwrap() {
                    panic!("node {id} exited at start-up ({status}):\n{}", self.log(id));
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not come up:\n{}",
                self.log(id)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let region = Arc::new(ShmRegion::open_named(&self.shm_name(id)).unwrap());
        self.regions.push((id, region));
    }

    /// Node `id`'s log so far.
    pub(crate) fn log(&self, id: u16) -> String {
        std::fs::read_to_string(self.dir.join(format!("node{id}.log"))).unwrap_or_default()
    }

    /// Node `id`'s shared memory.
    pub(crate) fn region(&self, id: u16) -> Arc<ShmRegion> {
        self.regions
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, r)| r.clone())
            .unwrap()
    }

    /// Publishes a FIB on node `id`: `routes` are (destination, next-hop link).
    pub(crate) fn publish_fib(&mut self, id: u16, routes: &[(u16, u16)]) {
        if !self.writers.iter().any(|(n, _)| *n == id) {
            let w = FibWriter::attach(self.region(id), Duration::from_secs(1)).unwrap();
            self.writers.push((id, w));
        }
        let writer = &mut self.writers.iter_mut().find(|(n, _)| *n == id).unwrap().1;
        let start = Instant::now();
        loop {
            let now = weft_shared::time::Instant::from_nanos(start.elapsed().as_nanos() as u64);
            let result = writer.try_publish(now, |fib| {
                for &(dst, link) in routes {
                    fib.set_unicast(
                        NodeId::new(dst).unwrap(),
                        UnicastRoute {
                            next_hop: LinkId::new(link).unwrap(),
                            metric_us: 1000,
                        },
                    );
                }
                Ok(())
            });
            match result {
                Ok(_) => return,
                Err(PublishError::ReadersBusy { .. }) => {
                    std::thread::sleep(Duration::from_micros(50))
                }
                Err(e) => panic!("publishing node {id}'s fib: {e}"),
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "fib publish stuck"
            );
        }
    }

    /// Waits until link `link` is up as node `id` sees it (its active path is `path`, if given).
    pub(crate) fn wait_link_up(&self, id: u16, link: u16, path: Option<u8>) {
        let reader = StatsReader::new(self.region(id));
        let link_id = LinkId::new(link).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(s) = reader.link(link_id) {
                let path_ok = path.is_none_or(|p| s.active_path == PathId::new(p));
                if s.state == LinkState::Up && path_ok {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "link {link} not up on node {id}: {:?}\n{}",
                reader.link(link_id),
                self.log(id)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Node `id`'s counters summed over its workers.
    pub(crate) fn counters(&self, id: u16) -> CounterTotals {
        CounterTotals::sum(&self.region(id))
    }

    /// Node `id`'s counters as text, for failure messages.
    pub(crate) fn counters_text(&self, id: u16) -> String {
        let mut s = String::new();
        for (name, v) in self.counters(id).named() {
            if v != 0 {
                let _ = write!(s, "{name}={v} ");
            }
        }
        s
    }

    /// A counter of node `id`.
    pub(crate) fn counter(&self, id: u16, c: Counter) -> u64 {
        self.counters(id).get(c)
    }

    /// Stops node `id` with SIGTERM and returns its exit status code.
    pub(crate) fn stop(&mut self, id: u16) -> Option<i32> {
        let i = self.children.iter().position(|(n, _)| *n == id)?;
        let (_, mut child) = self.children.remove(i);
        self.regions.retain(|(n, _)| *n != id);
        self.writers.retain(|(n, _)| *n != id);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let ids: Vec<u16> = self.children.iter().map(|(n, _)| *n).collect();
        if std::thread::panicking() {
            for id in &ids {
                eprintln!("--- node {id} log ---\n{}", self.log(*id));
            }
        }
        for id in ids {
            self.stop(id);
        }
        for n in &self.spec.nodes {
            let _ = ShmRegion::unlink_named(&self.shm_name(n.id));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Attaches to node `node` like a control plane: the three fds of the attach socket, as the
/// region (opened by name), the punt eventfd and the inject eventfd.
pub(crate) fn attach(o: &Overlay, node: u16) -> (ShmRegion, EventFd, EventFd) {
    let path = o.dir.join(format!("n{node}.sock.attach"));
    let stream = UnixStream::connect(path).unwrap();
    let mut fds = fdpass::recv_fds(&stream).unwrap();
    assert_eq!(fds.len(), 3, "region, punt eventfd, inject eventfd");
    let inject = EventFd::from_fd(fds.pop().unwrap());
    let punt = EventFd::from_fd(fds.pop().unwrap());
    // A named region's fd is a /dev/shm file (not a sealed memfd): open it by name instead.
    let _region_fd = fds.pop().unwrap();
    let region = ShmRegion::open_named(&o.shm_name(node)).unwrap();
    (region, punt, inject)
}

/// The TOML config of `spec`.
fn config_text(name: &str, addrs: &Addrs, dir: &Path, spec: &Spec) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "schema = 1\n[overlay]\nname = \"{name}\"");
    let _ = writeln!(
        s,
        "[timers]\nhello_interval_ms = 10\npath_dead_after_ms = 100\npath_up_after_hellos = 3"
    );
    for n in &spec.nodes {
        let cores = n
            .cores
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "[[node]]\nid = {id}\nname = \"n{id}\"\ncores = [{cores}]\n\
             session_socket = \"{dir}/n{id}.sock\"\nctl_socket = \"{dir}/n{id}.ctl\"\n\
             shm_name = \"weft-test-{pid}-{name}-n{id}\"",
            id = n.id,
            dir = dir.display(),
            pid = std::process::id(),
        );
        for (_, line) in spec.node_lines.iter().filter(|(id, _)| *id == n.id) {
            let _ = writeln!(s, "{line}");
        }
        for (isp, label) in ["a", "b"].iter().enumerate() {
            let _ = writeln!(
                s,
                "[[node.interface]]\nisp = \"{label}\"\naddr = \"{}\"",
                addrs.node(n.id, isp as u8)
            );
        }
    }
    for l in &spec.links {
        let _ = writeln!(
            s,
            "[[link]]\nid = {}\nnodes = [{}, {}]\ncost = 1000",
            l.id, l.a, l.b
        );
        if let Some((_, file)) = spec.key_files.iter().find(|(id, _)| *id == l.id) {
            let _ = writeln!(s, "key_file = \"{file}\"");
        }
    }
    s
}
