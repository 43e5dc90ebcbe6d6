//! Start-up and shutdown of the data-plane process: config, io_uring probe, shared memory,
//! eventfds, workers, the attach socket, signals.
//!
//! The main thread does no packet work. After start-up it waits on a signalfd (SIGINT, SIGTERM)
//! and on the attach socket, and watches that the workers are alive; on a signal, or when a
//! worker fails, it stops the workers (a flag plus each worker's doorbell), joins them, and
//! removes the shared-memory name and the sockets it created.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context, anyhow, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use weft_shared::config::Config;
use weft_shared::ids::{Incarnation, NodeId};
use weft_shared::shm::{
    EventFd, RingConsumer, RingId, RingProducer, ShmLayout, ShmRegion, StatsWriter, fdpass,
};
use weft_shared::wire::{DATA_OVERHEAD, TAG_LEN};

use crate::handoff::Handoff;
use crate::links::{Links, RemoteOverride};
use crate::session_glue::SessionGlue;
use crate::sockets::NodeSockets;
use crate::worker::{self, RoleSetup, WorkerSetup, ZeroSetup};
use crate::{clock, uring};

/// Where the shared-memory region lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShmChoice {
    /// `/dev/shm/<name>`: the node's `shm_name`, or this one.
    Named(Option<String>),
    /// An anonymous sealed memfd, reachable only through the attach socket.
    Memfd,
}

/// What the command line says.
#[derive(Clone, Debug)]
pub struct Options {
    /// The overlay config file.
    pub config: PathBuf,
    /// This node's id.
    pub node: u16,
    /// Where the region lives.
    pub shm: ShmChoice,
    /// The data-plane incarnation, or `None` to pick one from the clock and the pid.
    pub incarnation: Option<u32>,
    /// Paths whose remote address is replaced (relays, link emulators).
    pub remotes: Vec<RemoteOverride>,
    /// Receive with `UDP_GRO` (the default; `--no-gro` turns it off). On a kernel that refuses
    /// the option the workers receive without it and a warning says so.
    pub gro: bool,
}

/// The attach socket's path for a node whose session socket is `session`.
pub fn attach_path(session: &std::path::Path) -> PathBuf {
    let mut s = session.as_os_str().to_owned();
    s.push(".attach");
    PathBuf::from(s)
}

/// Runs the data plane until SIGINT or SIGTERM.
pub fn run(opts: Options) -> anyhow::Result<()> {
    let config = Config::load(&opts.config).map_err(|e| anyhow!("{e}"))?;
    let me = NodeId::new(opts.node).ok_or_else(|| anyhow!("--id {}: not a node id", opts.node))?;
    let node = config
        .node(me)
        .ok_or_else(|| anyhow!("node {me} is not in {}", opts.config.display()))?
        .clone();
    for r in &opts.remotes {
        let ok = config
            .link(r.link)
            .is_some_and(|l| l.side_of(me).is_some() && l.path(r.path).is_some());
        if !ok {
            bail!(
                "--remote {}:{}: node {me} has no such link and path",
                r.link,
                r.path
            );
        }
    }
    let features = uring::probe().context("io_uring is not usable on this kernel")?;
    let gro = opts.gro && features.udp_gro;
    if opts.gro && !features.udp_gro {
        eprintln!(
            "weft-dataplane: this kernel refuses UDP_GRO (Linux 5.0 or newer has it); receiving \
             one datagram per buffer"
        );
    }

    // Signals go to the signalfd only; workers inherit the mask.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block().context("blocking SIGINT/SIGTERM")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("creating the signalfd")?;

    let incarnation = Incarnation(opts.incarnation.unwrap_or_else(pick_incarnation));
    if incarnation.0 == 0 {
        bail!("--incarnation must not be 0");
    }
    let config_hash = config.hash().get();
    let layout = ShmLayout::default();
    let (region, shm_name) = match &opts.shm {
        ShmChoice::Named(name) => {
            let name = name.clone().unwrap_or_else(|| node.shm_name().to_owned());
            let region = ShmRegion::create_named(&name, &layout, config_hash)
                .with_context(|| format!("creating shared memory /dev/shm/{name}"))?;
            (region, Some(name))
        }
        ShmChoice::Memfd => (
            ShmRegion::create_memfd(&layout, config_hash).context("creating the memfd region")?,
            None,
        ),
    };
    let region = Arc::new(region);
    region.set_dataplane_incarnation(incarnation);
    let mut cleanup = Cleanup {
        shm_name,
        files: Vec::new(),
    };

    let punt_wake = Arc::new(EventFd::new().context("punt eventfd")?);
    let inject_wake = Arc::new(EventFd::new().context("inject eventfd")?);
    let workers = node.cores().len().max(1);
    let doorbells = (0..workers)
        .map(|_| EventFd::new().map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .context("doorbell eventfds")?;
    let handoff = Handoff::new(workers, doorbells[0].clone()).context("handoff rings")?;
    let links = Arc::new(Links::new(&config, me, &opts.remotes, workers));
    // A missing or malformed key file stops start-up here, with its name and line.
    let keyed = crate::keys::load_all(&links)?.len();
    if keyed > 0 {
        eprintln!(
            "weft-dataplane: {keyed} authenticated link(s), AES-GCM from {}",
            weft_proto::auth::AEAD_BACKEND
        );
    }
    let interfaces: Vec<SocketAddr> = node.interfaces().iter().map(|i| i.addr()).collect();
    // Every socket, in the order the steering program relies on, before any worker runs.
    let NodeSockets { data, control } = NodeSockets::bind(&interfaces, workers, gro)?;
    let mut control = Some(control);
    let stop = Arc::new(AtomicBool::new(false));
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();

    let session_path = node.session_socket().to_owned();
    // The largest client payload one packet carries on every link (1,396 B on 1500-MTU paths,
    // 1,380 B when some link is authenticated and its packets carry the tag).
    let tag = if keyed > 0 { 0 } else { TAG_LEN };
    let max_payload = links
        .iter()
        .map(|l| l.max_datagram)
        .min()
        .unwrap_or(1472)
        .saturating_sub(DATA_OVERHEAD - tag) as u32;
    let mut handles: Vec<JoinHandle<anyhow::Result<()>>> = Vec::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    for ((index, doorbell), sockets) in doorbells.iter().enumerate().zip(data) {
        let core = node.cores().get(index).and_then(|c| {
            let found = core_ids.iter().find(|id| id.id == usize::from(*c)).copied();
            if found.is_none() {
                eprintln!(
                    "weft-dataplane: core {c} is not available; worker {index} is not pinned"
                );
            }
            found
        });
        let role = if index == 0 {
            let session_path = session_path.clone();
            RoleSetup::Zero(Box::new(ZeroSetup {
                control: control.take().unwrap_or_default(),
                handoff: handoff.consumers().context("handoff consumers")?,
                to_lanes: handoff
                    .to_workers(&doorbells)
                    .context("handoff to workers")?,
                punt: RingProducer::attach(region.clone(), RingId::Punt(0)).context("punt ring")?,
                punt_wake: punt_wake.clone(),
                inject: RingConsumer::attach(region.clone(), RingId::Inject(0))
                    .context("inject ring")?,
                inject_wake: inject_wake.clone(),
                stats: StatsWriter::attach(region.clone()).context("link statistics")?,
                timers: *config.timers(),
                config_hash,
                session: Box::new(move || {
                    SessionGlue::bind(&session_path, me, incarnation, max_payload)
                }),
            }))
        } else {
            RoleSetup::Other(
                handoff.producer(index).context("handoff producer")?,
                handoff.from_zero(index).context("handoff from worker 0")?,
            )
        };
        let setup = WorkerSetup {
            index,
            core,
            node: me,
            incarnation,
            sockets,
            links: links.clone(),
            region: region.clone(),
            features,
            gro,
            packing: node.packing(),
            busy_poll: node.busy_poll(),
            stop: stop.clone(),
            doorbell: doorbell.clone(),
            role,
        };
        let ready = ready_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("weft-worker-{index}"))
            .spawn(move || worker::run(setup, ready))
            .context("spawning a worker thread")?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failure = Some(e);
                break;
            }
            Err(_) => {
                failure = Some(anyhow!("a worker exited during start-up"));
                break;
            }
        }
    }
    if failure.is_none() {
        // Ours to remove only once worker 0 bound it (it refuses a live node's socket).
        cleanup.files.push(session_path.clone());
    }
    let result = match failure {
        Some(e) => Err(e),
        None => serve(
            &signals,
            &attach_path(&session_path),
            &mut cleanup,
            &region,
            &punt_wake,
            &inject_wake,
            &handles,
            me,
            incarnation,
        ),
    };
    stop.store(true, Ordering::Relaxed);
    for d in &doorbells {
        let _ = d.notify();
    }
    let mut worker_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => worker_error = worker_error.or(Some(e)),
            Err(_) => worker_error = worker_error.or(Some(anyhow!("a worker panicked"))),
        }
    }
    drop(cleanup);
    result.and(worker_error.map_or(Ok(()), Err))
}

/// Waits for a signal, serving the attach socket meanwhile.
#[allow(
    clippy::too_many_arguments,
    reason = "the main thread's state, passed once"
)]
fn serve(
    signals: &SignalFd,
    attach: &std::path::Path,
    cleanup: &mut Cleanup,
    region: &ShmRegion,
    punt_wake: &EventFd,
    inject_wake: &EventFd,
    workers: &[JoinHandle<anyhow::Result<()>>],
    me: NodeId,
    incarnation: Incarnation,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(attach);
    let listener = UnixListener::bind(attach)
        .with_context(|| format!("binding the attach socket {}", attach.display()))?;
    cleanup.files.push(attach.to_owned());
    listener.set_nonblocking(true).context("attach socket")?;
    eprintln!(
        "weft-dataplane: node {me} up (incarnation {:#010x}, {} workers)",
        incarnation.0,
        workers.len()
    );
    loop {
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        if let Ok(Some(sig)) = signals.read_signal() {
            eprintln!(
                "weft-dataplane: node {me} stopping on signal {}",
                sig.ssi_signo
            );
            return Ok(());
        }
        if workers.iter().any(JoinHandle::is_finished) {
            bail!("a worker stopped");
        }
        while let Ok((stream, _)) = listener.accept() {
            let _ = stream.set_nonblocking(false);
            let fds = [region.fd(), punt_wake.as_fd(), inject_wake.as_fd()];
            if let Err(e) = fdpass::send_fds(&stream, &fds) {
                eprintln!("weft-dataplane: attach: {e}");
            }
        }
    }
}

/// A data-plane incarnation from the clock and the pid: different across restarts, never 0.
fn pick_incarnation() -> u32 {
    let t = clock::now().as_nanos();
    let x = (t as u32) ^ ((t >> 32) as u32) ^ std::process::id().rotate_left(16);
    x.max(1)
}

/// Removes what the process created when it ends, however it ends.
struct Cleanup {
    shm_name: Option<String>,
    files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(name) = &self.shm_name {
            let _ = ShmRegion::unlink_named(name);
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}
