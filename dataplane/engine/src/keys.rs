//! Link key files on a worker: loaded at start-up, reloaded when they change, installed in the
//! worker's `AuthTable` (docs/config.md "Key files", docs/dataplane.md "Authentication").
//!
//! Every worker watches the key files of the node's authenticated links itself: once a second
//! it compares each file's modification time and length with what it loaded, and reloads a file
//! that changed. So each worker's keys are its own (no sharing, no lock), and a rotation reaches
//! every worker within about a second. Only the replay windows are shared: each link's one
//! `LinkWindows` (in `Links`), which every worker's table uses. A file that no longer parses (or cannot be read) keeps
//! the keys loaded before, with one line on stderr per change of the file; a later good version
//! is taken as usual.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use weft_proto::auth::{AuthTable, LinkWindows};
use weft_shared::config::LinkKeys;
use weft_shared::ids::{LinkId, NodeId};
use weft_shared::time::Instant;

use crate::links::Links;

/// How often a worker looks at its key files.
pub const KEY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a version of a file without reading it.
type Stamp = Option<(SystemTime, u64)>;

/// One watched key file.
#[derive(Debug)]
struct Watched {
    link: LinkId,
    peer: NodeId,
    windows: LinkWindows,
    path: PathBuf,
    stamp: Stamp,
}

/// The key files of one worker's authenticated links.
#[derive(Debug)]
pub struct KeyWatch {
    worker: usize,
    files: Vec<Watched>,
    due: Instant,
}

fn stamp(path: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Loads every key file of `links`: the start-up check, whose error stops the data plane.
pub fn load_all(links: &Links) -> anyhow::Result<Vec<(LinkId, LinkKeys)>> {
    links
        .iter()
        .filter_map(|l| Some((l.id, l.key_file.as_ref()?)))
        .map(|(id, path)| {
            LinkKeys::load(path)
                .map(|k| (id, k))
                .map_err(|e| anyhow!("link {id}: {e}"))
        })
        .collect()
}

impl KeyWatch {
    /// Loads the key files of `links` into `auth`; an unusable file is an error.
    pub fn new(
        worker: usize,
        links: &Links,
        auth: &mut AuthTable,
        now: Instant,
    ) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        for l in links.iter() {
            let (Some(path), Some(windows)) = (&l.key_file, &l.replay) else {
                continue;
            };
            let stamp = stamp(path);
            let keys = LinkKeys::load(path).map_err(|e| anyhow!("link {}: {e}", l.id))?;
            auth.set_keys(l.id, l.neighbour, windows, &keys);
            files.push(Watched {
                link: l.id,
                peer: l.neighbour,
                windows: windows.clone(),
                path: path.clone(),
                stamp,
            });
        }
        Ok(KeyWatch {
            worker,
            files,
            due: now.saturating_add(KEY_CHECK_INTERVAL),
        })
    }

    /// Whether the node has any authenticated link.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Once every [`KEY_CHECK_INTERVAL`]: reloads the files that changed, and takes the peers'
    /// announced epochs from `links` (worker 0 also notes them as hellos arrive).
    pub fn poll(&mut self, now: Instant, links: &Links, auth: &mut AuthTable) {
        if self.files.is_empty() {
            return;
        }
        for f in &self.files {
            if let Some(l) = links.get(f.link) {
                auth.note_peer_epoch(f.link, l.peer_key_epoch());
            }
        }
        if now < self.due {
            return;
        }
        self.due = now.saturating_add(KEY_CHECK_INTERVAL);
        for f in &mut self.files {
            let current = stamp(&f.path);
            if current == f.stamp {
                continue;
            }
            f.stamp = current;
            match LinkKeys::load(&f.path) {
                Ok(keys) => {
                    auth.set_keys(f.link, f.peer, &f.windows, &keys);
                    if let Some(l) = links.get(f.link) {
                        auth.note_peer_epoch(f.link, l.peer_key_epoch());
                    }
                    if self.worker == 0 {
                        eprintln!(
                            "weft-dataplane: link {}: keys reloaded from {}: epochs {:?}, \
                             sending with {:?}",
                            f.link,
                            f.path.display(),
                            auth.epochs(f.link),
                            auth.send_epoch(f.link)
                        );
                    }
                }
                Err(e) => eprintln!(
                    "weft-dataplane: worker {}: link {}: keeping the keys loaded before: {e}",
                    self.worker, f.link
                ),
            }
        }
    }
}
