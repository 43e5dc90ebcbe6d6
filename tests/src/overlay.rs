//! A real overlay for whole-system tests: one `weft-dataplane` and one `weft-controld` process
//! per node (or one `weft node` launcher per node), on loopback addresses unique to the test,
//! each node homed on two "ISPs".
//!
//! Addresses: node n of a test is `127.A.B.n` on ISP "a" and `127.A.(B+1).n` on ISP "b", port
//! 7000 + n, with A and B derived from the pid and the test name. Each test gets its own temp
//! directory (config, sockets, logs) and shm names. [`Overlay`] is the guard: dropping it kills
//! every process it started and removes the directory; if the test is failing, the logs are
//! printed first.
//!
//! [`Overlay::start_emulated`] puts some link paths through one `weft-linkem` relay (latency,
//! loss, rate, cuts; `docs/linkem.md`): the relay listens on `127.A.B.254`, port 9000 + 2k (A
//! side) and 9001 + 2k (B side) for the k-th emulated path, and each data plane is started with
//! `--remote LINK:PATH=<its side of the relay>`. The test changes those paths at run time with
//! [`Overlay::cut_path`], [`Overlay::restore_path`] and [`Overlay::set_path`].

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::linkem::process::LinkemProcess;

/// A link of a test overlay: id, its two nodes, its configured cost in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct LinkSpec {
    /// Link id.
    pub id: u16,
    /// One end.
    pub a: u16,
    /// The other end.
    pub b: u16,
    /// Base cost (µs).
    pub cost_us: u32,
}

/// How each node's processes are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// `weft-dataplane` and `weft-controld` started by the test (it can kill either).
    Separate,
    /// One `weft node` launcher per node.
    Launcher,
}

/// Which process of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `weft-dataplane`.
    Dataplane,
    /// `weft-controld`.
    Controld,
    /// `weft node`.
    Launcher,
}

impl Role {
    fn bin(self) -> &'static str {
        match self {
            Role::Dataplane => "weft-dataplane",
            Role::Controld => "weft-controld",
            Role::Launcher => "weft",
        }
    }
}

/// The directory holding the workspace's binaries (`target/<profile>`), built on first use.
pub fn bin_dir() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        // The test binaries of this crate do not make cargo build the other crates' binaries;
        // build them (a no-op when `cargo nextest run --workspace` already did).
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--bins"])
            .args([
                "-p",
                "weft-dataplane",
                "-p",
                "weft-controld",
                "-p",
                "weft-client",
            ])
            .args(["-p", "weftctl", "-p", "weft", "-p", "weft-tests"])
            .current_dir(workspace_root())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "building the binaries failed"
        );
    });
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The unique loopback block of one test.
#[derive(Clone, Copy, Debug)]
pub struct Addrs {
    a: u8,
    b: u8,
}

impl Addrs {
    /// The block of test `name` in this process.
    pub fn new(name: &str) -> Addrs {
        let mut h = DefaultHasher::new();
        (std::process::id(), name).hash(&mut h);
        let x = h.finish();
        Addrs {
            a: 1 + (x % 250) as u8,
            b: 1 + ((x >> 16) % 120) as u8 * 2,
        }
    }

    /// Node `n`'s interface on ISP `isp` (0 = "a", 1 = "b").
    pub fn node(&self, n: u16, isp: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(127, self.a, self.b + isp, n as u8), 7000 + n))
    }

    /// Side `side` (0 = A, 1 = B) of the `k`-th emulated path's relay: `127.A.B.254`, port
    /// 9000 + 2k + side.
    pub fn relay(&self, k: u16, side: u8) -> SocketAddr {
        let port = 9000 + 2 * k + u16::from(side);
        SocketAddr::from((Ipv4Addr::new(127, self.a, self.b, 254), port))
    }

    /// Any address of the block: `127.A.(B + isp).host:port`, for tests with plain sockets.
    pub fn host(&self, isp: u8, host: u8, port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(127, self.a, self.b + isp, host), port))
    }
}

/// A link path of a test overlay that runs through `weft-linkem`.
#[derive(Clone, Debug)]
pub struct EmulatedPath {
    /// The link id.
    pub link: u16,
    /// The path id (0: ISP "a" on both ends, 1: ISP "b").
    pub path: u8,
    /// Settings of both directions at start, as `set` takes them (`"latency_ms=20 loss=0.01"`;
    /// empty: a plain relay).
    pub settings: String,
}

impl EmulatedPath {
    /// Path `path` of link `link` with `settings`.
    pub fn new(link: u16, path: u8, settings: &str) -> EmulatedPath {
        EmulatedPath {
            link,
            path,
            settings: settings.to_owned(),
        }
    }
}

/// The relay's name for path `path` of link `link`: `l<link>p<path>`.
pub fn emulated_path_name(link: u16, path: u8) -> String {
    format!("l{link}p{path}")
}

/// A running overlay: the guard of everything it started.
pub struct Overlay {
    /// Test name.
    pub name: String,
    /// Temporary directory (config, sockets, logs).
    pub dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    nodes: Vec<u16>,
    links: Vec<LinkSpec>,
    start: Start,
    procs: Vec<(u16, Role, Child)>,
    bins: PathBuf,
    dataplane_args: Vec<(u16, Vec<String>)>,
    linkem: Option<LinkemProcess>,
}

impl Overlay {
    /// Writes the config of `nodes` nodes (1..=nodes) and `links` and starts every node;
    /// returns once every data plane is up and every control plane attached.
    pub fn start(name: &str, nodes: u16, links: &[LinkSpec], start: Start) -> Overlay {
        Overlay::start_with(name, nodes, links, start, &[])
    }

    /// Like [`Overlay::start`] in [`Start::Separate`] mode, with the `emulated` paths running
    /// through one `weft-linkem` relay (started first, with each path's settings applied
    /// before any node starts). Link ends: the link's `a` is the relay's A side.
    pub fn start_emulated(
        name: &str,
        nodes: u16,
        links: &[LinkSpec],
        emulated: &[EmulatedPath],
    ) -> Overlay {
        Overlay::start_with(name, nodes, links, Start::Separate, emulated)
    }

    fn start_with(
        name: &str,
        nodes: u16,
        links: &[LinkSpec],
        start: Start,
        emulated: &[EmulatedPath],
    ) -> Overlay {
        let addrs = Addrs::new(name);
        let dir = std::env::temp_dir().join(format!("weft-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let config = dir.join("overlay.toml");
        let text = config_text(name, &addrs, &dir, nodes, links);
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let mut overlay = Overlay {
            name: name.to_owned(),
            dir,
            config,
            nodes: (1..=nodes).collect(),
            links: links.to_vec(),
            start,
            procs: Vec::new(),
            bins: bin_dir(),
            dataplane_args: Vec::new(),
            linkem: None,
        };
        if !emulated.is_empty() {
            overlay.start_linkem(&addrs, links, emulated);
        }
        for n in 1..=nodes {
            overlay.start_node(n);
        }
        overlay
    }

    /// Starts the relay of the `emulated` paths and records each data plane's `--remote`.
    fn start_linkem(&mut self, addrs: &Addrs, links: &[LinkSpec], emulated: &[EmulatedPath]) {
        let mut toml = String::from("seed = 1\n");
        for (k, e) in emulated.iter().enumerate() {
            let link = links
                .iter()
                .find(|l| l.id == e.link)
                .unwrap_or_else(|| panic!("emulated path on link {}: no such link", e.link));
            assert!(e.path < 2, "emulated path {}: nodes have two ISPs", e.path);
            let name = emulated_path_name(e.link, e.path);
            assert!(
                emulated[..k]
                    .iter()
                    .all(|o| (o.link, o.path) != (e.link, e.path)),
                "{name} is emulated twice"
            );
            let (a_side, b_side) = (addrs.relay(k as u16, 0), addrs.relay(k as u16, 1));
            // Path p of a test link pairs ISP p of both nodes (the config's default paths).
            let _ = writeln!(
                toml,
                "[[path]]\nname = \"{name}\"\na_side = \"{a_side}\"\nb_side = \"{b_side}\"\n\
                 to_a = \"{}\"\nto_b = \"{}\"",
                addrs.node(link.a, e.path),
                addrs.node(link.b, e.path)
            );
            let remote = |side: SocketAddr| format!("{}:{}={side}", e.link, e.path);
            self.add_dataplane_args(link.a, &["--remote".to_owned(), remote(a_side)]);
            self.add_dataplane_args(link.b, &["--remote".to_owned(), remote(b_side)]);
        }
        let file = self.dir.join("linkem.toml");
        std::fs::write(&file, toml).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let linkem = LinkemProcess::start(
            &self.bin("weft-linkem"),
            &["--config".to_owned(), file.display().to_string()],
            &self.dir.join("linkem.ctl"),
            &self.dir.join("linkem.log"),
        );
        for e in emulated.iter().filter(|e| !e.settings.trim().is_empty()) {
            let name = emulated_path_name(e.link, e.path);
            linkem.must(&format!("set {name} both {}", e.settings));
        }
        self.linkem = Some(linkem);
    }

    fn add_dataplane_args(&mut self, node: u16, args: &[String]) {
        match self.dataplane_args.iter_mut().find(|(n, _)| *n == node) {
            Some((_, v)) => v.extend_from_slice(args),
            None => self.dataplane_args.push((node, args.to_vec())),
        }
    }

    /// The overlay's `weft-linkem` relay (panics if it has none).
    pub fn linkem(&self) -> &LinkemProcess {
        self.linkem
            .as_ref()
            .unwrap_or_else(|| panic!("this overlay has no emulated path"))
    }

    /// Cuts both directions of emulated path `path` of link `link`.
    pub fn cut_path(&self, link: u16, path: u8) {
        self.linkem()
            .must(&format!("cut {}", emulated_path_name(link, path)));
    }

    /// Restores both directions of emulated path `path` of link `link`.
    pub fn restore_path(&self, link: u16, path: u8) {
        self.linkem()
            .must(&format!("restore {}", emulated_path_name(link, path)));
    }

    /// Changes both directions of emulated path `path` of link `link` (`"latency_ms=5"`).
    pub fn set_path(&self, link: u16, path: u8, settings: &str) {
        let name = emulated_path_name(link, path);
        self.linkem().must(&format!("set {name} both {settings}"));
    }

    /// Starts node `id` (after a kill, or at first) and waits until it is up.
    pub fn start_node(&mut self, id: u16) {
        match self.start {
            Start::Separate => {
                self.spawn(id, Role::Dataplane);
                self.wait_for(id, Role::Dataplane, &self.attach_socket(id));
                self.start_controld(id);
            }
            Start::Launcher => {
                self.spawn(id, Role::Launcher);
                let ctl = self.ctl_socket(id);
                self.wait_for(id, Role::Launcher, &ctl);
            }
        }
    }

    /// Starts node `id`'s control plane (separate mode) and waits for its ctl socket.
    pub fn start_controld(&mut self, id: u16) {
        self.spawn(id, Role::Controld);
        let ctl = self.ctl_socket(id);
        self.wait_for(id, Role::Controld, &ctl);
    }

    /// SIGKILLs every process of node `id`.
    pub fn kill_node(&mut self, id: u16) {
        for role in [Role::Launcher, Role::Controld, Role::Dataplane] {
            self.kill(id, role, Signal::SIGKILL);
        }
        // A killed data plane leaves its socket files behind; the next start reclaims them.
    }

    /// Sends `signal` to node `id`'s `role` process and reaps it (SIGKILL after 5 s).
    /// Returns its exit code, if it exited normally.
    pub fn kill(&mut self, id: u16, role: Role, signal: Signal) -> Option<i32> {
        let i = self
            .procs
            .iter()
            .position(|(n, r, _)| *n == id && *r == role)?;
        let (_, _, mut child) = self.procs.remove(i);
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The pid of node `id`'s `role` process, if the test started it and it runs.
    pub fn pid(&self, id: u16, role: Role) -> Option<u32> {
        self.procs
            .iter()
            .find(|(n, r, _)| *n == id && *r == role)
            .map(|(_, _, c)| c.id())
    }

    /// Node `id`'s session socket.
    pub fn session_socket(&self, id: u16) -> PathBuf {
        self.dir.join(format!("n{id}.sock"))
    }

    /// Node `id`'s attach socket.
    pub fn attach_socket(&self, id: u16) -> PathBuf {
        self.dir.join(format!("n{id}.sock.attach"))
    }

    /// Node `id`'s ctl socket.
    pub fn ctl_socket(&self, id: u16) -> PathBuf {
        self.dir.join(format!("n{id}.ctl"))
    }

    /// Node `id`'s shm name.
    pub fn shm_name(&self, id: u16) -> String {
        format!("weft-test-{}-{}-n{id}", std::process::id(), self.name)
    }

    /// Path of a workspace binary.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bins.join(name)
    }

    /// Runs `weftctl --config <overlay> --id <id> ARGS` and returns (exit code, stdout, stderr).
    pub fn weftctl(&self, id: u16, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(self.bin("weftctl"))
            .arg("--config")
            .arg(&self.config)
            .arg("--id")
            .arg(id.to_string())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running weftctl: {e}"));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `weftctl --json ARGS` on node `id`, parsed; panics with stderr on failure.
    pub fn weftctl_json(&self, id: u16, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.weftctl(id, &all);
        assert_eq!(code, 0, "weftctl {args:?} on node {id} failed: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("weftctl {args:?}: {e}: {out}"))
    }

    /// Waits until every node's data plane forwards with a FIB that reaches every other node.
    pub fn wait_converged(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for &id in &self.nodes {
            loop {
                let (code, out, _) = self.weftctl(id, &["--json", "show", "fib"]);
                let entries = serde_json::from_str::<serde_json::Value>(&out)
                    .ok()
                    .and_then(|v| v["unicast_count"].as_u64());
                if code == 0 && entries == Some(self.nodes.len() as u64 - 1) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {id}'s FIB does not reach every node: {out}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Waits until every node's control plane routes on every link at its base cost: both
    /// ends advertise it up, with no measured loss and a latency under the base cost. Then
    /// trees computed from the config alone are the ones the overlay uses. While 24
    /// processes start on two cores a hello can be late or lost, which raises a link's cost
    /// for a damping hold or two, and the trees switch back when it settles; a test that
    /// counts copies per tree edge must not stream across that switch.
    pub fn wait_base_costs(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for &id in &self.nodes {
            loop {
                let (code, out, _) = self.weftctl(id, &["--json", "show", "nodes"]);
                let adverts = serde_json::from_str::<serde_json::Value>(&out)
                    .ok()
                    .and_then(|v| v["nodes"].as_array().cloned())
                    .unwrap_or_default();
                let off: Vec<String> = self
                    .links
                    .iter()
                    .filter(|spec| {
                        let ends = [spec.a, spec.b];
                        let reports: Vec<&serde_json::Value> = adverts
                            .iter()
                            .filter(|n| ends.iter().any(|e| n["node"].as_u64() == Some(*e as u64)))
                            .flat_map(|n| n["links"].as_array().into_iter().flatten())
                            .filter(|l| l["link"].as_u64() == Some(spec.id as u64))
                            .collect();
                        reports.len() != 2
                            || reports.iter().any(|l| {
                                l["up"].as_bool() != Some(true)
                                    || l["cost_us"].as_u64() != Some(spec.cost_us.into())
                            })
                    })
                    .map(|spec| format!("link {}", spec.id))
                    .collect();
                if code == 0 && off.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {id} does not route at base cost on {off:?}: {out}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Node `id`'s logs so far (every role).
    pub fn log(&self, id: u16) -> String {
        let mut s = String::new();
        for role in [Role::Launcher, Role::Dataplane, Role::Controld] {
            let path = self.log_path(id, role);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let _ = writeln!(s, "--- node {id} {} ---\n{text}", role.bin());
            }
        }
        s
    }

    fn log_path(&self, id: u16, role: Role) -> PathBuf {
        self.dir.join(format!("n{id}-{}.log", role.bin()))
    }

    fn spawn(&mut self, id: u16, role: Role) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id, role))
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("log file: {e}"));
        let mut cmd = Command::new(self.bin(role.bin()));
        if role == Role::Launcher {
            cmd.arg("node");
        }
        if role == Role::Dataplane {
            if let Some((_, args)) = self.dataplane_args.iter().find(|(n, _)| *n == id) {
                cmd.args(args);
            }
        }
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--id")
            .arg(id.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", role.bin()));
        self.procs.push((id, role, child));
    }

    fn wait_for(&mut self, id: u16, role: Role, socket: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A socket file may be left over from a killed run: wait until it answers.
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return;
            }
            if let Some((_, _, c)) = self
                .procs
                .iter_mut()
                .find(|(n, r, _)| *n == id && *r == role)
            {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "node {id} {} exited at start-up ({status}):\n{}",
                        role.bin(),
                        self.log(id)
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} {} did not come up:\n{}",
                role.bin(),
                self.log(id)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for id in &self.nodes {
                eprintln!("{}", self.log(*id));
            }
            if let Some(l) = &self.linkem {
                eprintln!("--- weft-linkem ---\n{}", l.log());
            }
        }
        for id in self.nodes.clone() {
            for role in [Role::Launcher, Role::Controld, Role::Dataplane] {
                self.kill(id, role, Signal::SIGTERM);
            }
        }
        // After the nodes, so none of them sees its paths cut first.
        drop(self.linkem.take());
        for id in &self.nodes {
            let _ = std::fs::remove_file(format!("/dev/shm/{}", self.shm_name(*id)));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The TOML config of a test overlay.
fn config_text(name: &str, addrs: &Addrs, dir: &Path, nodes: u16, links: &[LinkSpec]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "schema = 1\n[overlay]\nname = \"{name}\"");
    let _ = writeln!(
        s,
        "[timers]\nhello_interval_ms = 10\npath_dead_after_ms = 100\npath_up_after_hellos = 3"
    );
    for id in 1..=nodes {
        let _ = writeln!(
            s,
            "[[node]]\nid = {id}\nname = \"n{id}\"\ncores = [{core}]\n\
             session_socket = \"{dir}/n{id}.sock\"\nctl_socket = \"{dir}/n{id}.ctl\"\n\
             shm_name = \"weft-test-{pid}-{name}-n{id}\"",
            core = (id - 1) % 2,
            dir = dir.display(),
            pid = std::process::id(),
        );
        for (isp, label) in ["a", "b"].iter().enumerate() {
            let _ = writeln!(
                s,
                "[[node.interface]]\nisp = \"{label}\"\naddr = \"{}\"",
                addrs.node(id, isp as u8)
            );
        }
    }
    for l in links {
        let _ = writeln!(
            s,
            "[[link]]\nid = {}\nnodes = [{}, {}]\ncost = {}",
            l.id, l.a, l.b, l.cost_us
        );
    }
    s
}
