//! The config hash: a stable 64-bit digest of what a config means, compared in hellos.
//!
//! It is SHA-256 over a canonical binary encoding of the typed [`Config`], not of the text, so
//! comments, whitespace, key order, the order of `[[node]]` and `[[link]]` blocks and spelled-out
//! defaults do not change it, while any change of a value does. The first 8 bytes of the digest,
//! big-endian, are the hash.
//!
//! Encoding: a domain tag, the schema version, then every field of the typed config in a fixed
//! order; integers big-endian at fixed width, strings and lists prefixed with their length as a
//! u32, addresses as a family byte, the IP octets and the port. Nodes and links are sorted by id
//! and a node's interfaces by ISP, as [`Config`] stores them. Changing this encoding changes
//! every hash, so it only changes together with [`SCHEMA_VERSION`].

use core::fmt;
use core::time::Duration;
use std::net::SocketAddr;

use sha2::{Digest, Sha256};

use super::types::{Auth, Interface, Link, Node, PathEnd};
use super::{Config, SCHEMA_VERSION};

/// A 64-bit digest of a config's meaning; shown as 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigHash(u64);

impl ConfigHash {
    /// A hash received from a peer (e.g. in a hello).
    pub const fn from_u64(raw: u64) -> Self {
        ConfigHash(raw)
    }

    /// The hash as carried on the wire.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Feeds typed values into the digest in the canonical encoding.
struct Encoder(Sha256);

impl Encoder {
    fn u8(&mut self, v: u8) {
        self.0.update([v]);
    }

    fn u16(&mut self, v: u16) {
        self.0.update(v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.update(v.to_be_bytes());
    }

    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.update(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn duration(&mut self, d: Duration) {
        self.0.update(
            u64::try_from(d.as_nanos())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
    }

    fn addr(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(a) => {
                self.u8(4);
                self.0.update(a.ip().octets());
            }
            SocketAddr::V6(a) => {
                self.u8(6);
                self.0.update(a.ip().octets());
            }
        }
        self.u16(addr.port());
    }

    fn interface(&mut self, i: &Interface) {
        self.str(i.isp.as_str());
        self.addr(i.addr);
    }

    fn node(&mut self, n: &Node) {
        self.u16(n.id.get());
        self.str(&n.name);
        self.len(n.cores.len());
        n.cores.iter().for_each(|&c| self.u16(c));
        self.bytes(n.session_socket.as_os_str().as_encoded_bytes());
        self.bytes(n.ctl_socket.as_os_str().as_encoded_bytes());
        self.str(&n.shm_name);
        self.len(n.interfaces.len());
        n.interfaces.iter().for_each(|i| self.interface(i));
    }

    fn path_end(&mut self, e: &PathEnd) {
        self.str(e.isp.as_str());
        self.len(e.interface);
        self.addr(e.addr);
    }

    fn link(&mut self, l: &Link) {
        self.u16(l.id.get());
        l.nodes.iter().for_each(|n| self.u16(n.get()));
        self.u32(l.cost_us);
        self.u16(l.mtu);
        self.len(l.paths.len());
        for p in &l.paths {
            self.u8(p.id.get());
            p.ends.iter().for_each(|e| self.path_end(e));
        }
    }
}

/// The hash of `config`'s meaning.
pub(super) fn hash(config: &Config) -> ConfigHash {
    let mut e = Encoder(Sha256::new());
    e.0.update(b"weft-config\0");
    e.u32(SCHEMA_VERSION);
    e.str(&config.overlay.name);
    e.u8(match config.overlay.auth {
        Auth::None => 0,
    });
    let t = &config.timers;
    e.duration(t.hello_interval);
    e.duration(t.path_dead_after);
    e.u32(t.path_up_after_hellos);
    e.duration(t.link_state_refresh);
    e.duration(t.link_state_max_age);
    e.duration(t.fib_publish_min_interval);
    e.len(config.nodes.len());
    config.nodes.iter().for_each(|n| e.node(n));
    e.len(config.links.len());
    config.links.iter().for_each(|l| e.link(l));
    // Which links are authenticated, by key file name, never by key: a rotation changes the
    // files, not the hash. Absent when no link has a key file, so older configs keep their hash.
    let keyed: Vec<(u16, &str)> = config
        .links
        .iter()
        .filter_map(|l| Some((l.id.get(), l.key_file_written()?)))
        .collect();
    if !keyed.is_empty() {
        e.0.update(b"key-files\0");
        e.len(keyed.len());
        for (id, file) in keyed {
            e.u16(id);
            e.str(file);
        }
    }
    // Nodes that send one record per datagram; absent when every node packs (the default), so
    // older configs keep their hash.
    let unpacked: Vec<u16> = config
        .nodes
        .iter()
        .filter(|n| !n.packing)
        .map(|n| n.id.get())
        .collect();
    if !unpacked.is_empty() {
        e.0.update(b"no-packing\0");
        e.len(unpacked.len());
        unpacked.iter().for_each(|&id| e.u16(id));
    }
    let polling: Vec<(u16, u32)> = config
        .nodes
        .iter()
        .filter(|n| n.busy_poll_us != 0)
        .map(|n| (n.id.get(), n.busy_poll_us))
        .collect();
    if !polling.is_empty() {
        e.0.update(b"busy-poll\0");
        e.len(polling.len());
        polling.iter().for_each(|&(id, us)| {
            e.u16(id);
            e.u32(us);
        });
    }
    let digest = e.0.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    ConfigHash(u64::from_be_bytes(first))
}
