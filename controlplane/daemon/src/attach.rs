//! Reaching a running data plane: its attach socket hands over the shared-memory region and
//! the punt and inject eventfds (`docs/dataplane.md`, "The attach socket").

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use weft_shared::config::Config;
use weft_shared::ids::NodeId;
use weft_shared::shm::{EventFd, ShmError, ShmRegion, fdpass};

/// What a control plane holds of its data plane.
pub struct Attachment {
    /// The data plane's shared memory.
    pub region: Arc<ShmRegion>,
    /// Written by the data plane when the punt ring gets packets while we sleep.
    pub punt_wake: EventFd,
    /// Written by us when the inject ring gets packets while the data plane sleeps.
    pub inject_wake: EventFd,
}

/// The attach socket of `node`: `<session_socket>.attach`.
pub fn attach_socket_path(config: &Config, node: NodeId) -> anyhow::Result<PathBuf> {
    let n = config
        .node(node)
        .with_context(|| format!("node {node} is not in the config"))?;
    let mut p = n.session_socket().as_os_str().to_owned();
    p.push(".attach");
    Ok(PathBuf::from(p))
}

/// Connects to the attach socket at `path` (retrying until `timeout` while the data plane
/// starts), receives the fds and maps the region. A named region is opened by `shm_name`
/// (its fd is a /dev/shm file, which cannot be sealed); a memfd region is used as handed over.
/// The region must carry `config`'s hash.
pub fn attach(
    path: &Path,
    shm_name: &str,
    config: &Config,
    timeout: Duration,
) -> anyhow::Result<Attachment> {
    let start = std::time::Instant::now();
    let stream = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < timeout => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "connecting to the data plane's attach socket {} (is weft-dataplane running?)",
                        path.display()
                    )
                });
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .context("attach socket timeout")?;
    let mut fds = fdpass::recv_fds(&stream)
        .with_context(|| format!("receiving fds from {}", path.display()))?;
    if fds.len() != 3 {
        bail!(
            "the attach socket {} sent {} fds, expected 3 (region, punt, inject)",
            path.display(),
            fds.len()
        );
    }
    let (Some(inject), Some(punt), Some(region_fd)) = (fds.pop(), fds.pop(), fds.pop()) else {
        bail!("the attach socket sent too few fds");
    };
    let region = match ShmRegion::from_fd(region_fd) {
        Ok(r) => r,
        Err(ShmError::NotSealed) => ShmRegion::open_named(shm_name)
            .with_context(|| format!("opening the data plane's shared memory '{shm_name}'"))?,
        Err(e) => return Err(e).context("mapping the data plane's shared memory"),
    };
    region
        .check_config_hash(config.hash().get())
        .context("the data plane runs another config")?;
    Ok(Attachment {
        region: Arc::new(region),
        punt_wake: EventFd::from_fd(punt),
        inject_wake: EventFd::from_fd(inject),
    })
}
