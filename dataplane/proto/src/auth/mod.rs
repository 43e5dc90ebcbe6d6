//! Per-link authentication (docs/wire.md "Authentication"): AES-GCM sealing and opening in
//! place, the replay windows, and which key epoch to send with.
//!
//! One [`AuthTable`] per worker holds, for every authenticated link of the node:
//! - the keys by epoch (at most four, told apart on the wire by the epoch modulo 4 in the link
//!   header's flags), each as two derived direction keys (`cipher`): this node's to seal, the
//!   peer's to open;
//! - one [`ReplayWindow`] per (peer lane, class), where the class is link-critical and control
//!   packets (always handled by worker 0) or data. Every packet number of a lane belongs to
//!   exactly one class, so two windows per lane catch every replay, and a hello handled ahead
//!   of the data of its turn does not push that data out of the window. The windows of a link
//!   ([`LinkWindows`]) are one object shared by every worker's table, so a replay steered to
//!   another worker than the original is caught too;
//! - the newest epoch the peer said it holds (in its hellos, [`AuthTable::note_peer_epoch`]),
//!   from which the send epoch follows ([`send_epoch`]).
//!
//! # Call order
//!
//! Receive ([`AuthTable::open`]): after the link header parsed and the link is known:
//! pre-check the window, open in place, then update the window. Send ([`AuthTable::seal`]):
//! after `PacketWriter::finish` zeroed the tag space, on a packet whose header
//! [`AuthTable::send_epoch`] chose. Key changes ([`AuthTable::set_keys`]) keep the windows.
//! Nothing here allocates after `set_keys`, reads a clock or locks.

mod cipher;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests;
mod window;

use weft_shared::DropReason;
use weft_shared::config::{LinkKeys, MAX_KEY_EPOCHS};
use weft_shared::ids::{LinkId, MAX_LINKS, NodeId};
use weft_shared::wire::lane::lane_slot;
use weft_shared::wire::{
    KEY_EPOCH_SLOTS, LINK_HEADER_LEN, LinkRepr, NONCE_LEN, PriorityClass, TAG_LEN,
};

use cipher::Cipher;
pub use window::{REPLAY_WINDOW, ReplayWindow};

use std::sync::Arc;

/// The AES-GCM implementation this build seals and opens with (`aws-lc` feature or not).
pub const AEAD_BACKEND: &str = if cfg!(feature = "aws-lc") {
    "aws-lc-rs"
} else {
    "the aes-gcm crate"
};

/// The two direction keys of one epoch.
#[derive(Clone, Debug)]
struct EpochCiphers {
    epoch: u8,
    /// This node → peer.
    seal: Cipher,
    /// Peer → this node.
    open: Cipher,
}

/// One authenticated link.
#[derive(Clone, Debug)]
struct LinkAuth {
    peer: NodeId,
    /// Indexed by epoch modulo [`KEY_EPOCH_SLOTS`].
    slots: [Option<EpochCiphers>; KEY_EPOCH_SLOTS as usize],
    /// The epochs held, oldest first.
    epochs: Epochs,
    /// The newest epoch the peer announced, once a hello said so.
    peer_newest: Option<u8>,
    /// The epoch packets are sealed with now.
    send: u8,
    /// The link's windows, shared with the other workers' tables.
    windows: LinkWindows,
}

/// The epochs a link holds, ascending: a fixed list, no allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Epochs {
    len: usize,
    items: [u8; MAX_KEY_EPOCHS],
}

impl Epochs {
    fn push(&mut self, e: u8) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = e;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[u8] {
        self.items.get(..self.len).unwrap_or(&[])
    }
}

/// The epoch to seal with: the newest epoch this node holds that is not newer than the newest
/// the peer holds. Before the peer has announced anything, or if every epoch this node holds is
/// newer than the peer's newest (the peer lags a rotation), the oldest this node holds. `held`
/// is ascending; `None` if it is empty.
pub fn send_epoch(held: &[u8], peer_newest: Option<u8>) -> Option<u8> {
    let oldest = *held.first()?;
    Some(match peer_newest {
        None => oldest,
        Some(p) => held
            .iter()
            .rev()
            .copied()
            .find(|&e| e <= p)
            .unwrap_or(oldest),
    })
}

/// The replay windows of one authenticated link, `[2 * slot + class]` (class 0 = link-critical
/// and control, 1 = data; `slot` the lane's [`lane_slot`] among the peer's workers and
/// sub-lanes), for a peer with some number of lanes. Cloning shares them: the node makes one
/// per keyed link and hands a clone to every worker's [`AuthTable::set_keys`].
#[derive(Clone, Debug)]
pub struct LinkWindows {
    windows: Arc<[ReplayWindow]>,
    peer_workers: usize,
    subs: u8,
}

impl LinkWindows {
    /// Empty windows for a peer whose data plane runs `peer_workers` workers, each sending on
    /// `subs` sub-lanes on this link (`weft_shared::wire::lane::sub_lanes`); 0 is taken as 1.
    pub fn new(peer_workers: u8, subs: u8) -> Self {
        let peer_workers = usize::from(peer_workers.max(1));
        let subs = subs.max(1);
        let n = 2 * peer_workers * usize::from(subs);
        LinkWindows {
            windows: (0..n).map(|_| ReplayWindow::new()).collect(),
            peer_workers,
            subs,
        }
    }

    /// How many lanes the windows cover (the peer's workers times their sub-lanes).
    pub fn lanes(&self) -> usize {
        self.windows.len() / 2
    }

    /// Whether `self` and `other` are the same windows (clones of one another).
    pub fn same(&self, other: &LinkWindows) -> bool {
        Arc::ptr_eq(&self.windows, &other.windows)
    }

    /// The window of `lane`'s packets of `class` (0 critical and control, 1 data).
    fn get(&self, lane: u8, class: usize) -> Option<&ReplayWindow> {
        let slot = lane_slot(lane, self.peer_workers, self.subs)?;
        self.windows.get(2 * slot + class)
    }
}

/// The authentication state of one worker; see the module doc.
#[derive(Clone, Debug)]
pub struct AuthTable {
    node: NodeId,
    /// By link id ([`MAX_LINKS`] entries, allocated once).
    links: Box<[Option<Box<LinkAuth>>]>,
}

impl AuthTable {
    /// The table of node `node`, with no authenticated link.
    pub fn new(node: NodeId) -> Self {
        let mut links = Vec::with_capacity(usize::from(MAX_LINKS));
        links.resize_with(usize::from(MAX_LINKS), || None);
        AuthTable {
            node,
            links: links.into_boxed_slice(),
        }
    }

    /// Makes `link` (to `peer`) authenticated with `keys` and the replay windows `windows`
    /// (shared with the node's other workers), or replaces its keys. When the link already has
    /// windows for the same peer and as many lanes, they and what the peer announced are kept.
    pub fn set_keys(&mut self, link: LinkId, peer: NodeId, windows: &LinkWindows, keys: &LinkKeys) {
        let mut slots: [Option<EpochCiphers>; KEY_EPOCH_SLOTS as usize] = Default::default();
        let mut epochs = Epochs::default();
        for k in keys.keys() {
            let slot = usize::from(k.epoch % KEY_EPOCH_SLOTS);
            if let Some(s) = slots.get_mut(slot) {
                *s = Some(EpochCiphers {
                    epoch: k.epoch,
                    seal: Cipher::derive(&k.key, link, self.node, k.epoch),
                    open: Cipher::derive(&k.key, link, peer, k.epoch),
                });
                epochs.push(k.epoch);
            }
        }
        let Some(entry) = self.links.get_mut(usize::from(link.get())) else {
            return;
        };
        let (windows, peer_newest) = match entry.take() {
            Some(old) if old.peer == peer && old.windows.lanes() == windows.lanes() => {
                (old.windows, old.peer_newest)
            }
            _ => (windows.clone(), None),
        };
        let send = send_epoch(epochs.as_slice(), peer_newest).unwrap_or(0);
        *entry = Some(Box::new(LinkAuth {
            peer,
            slots,
            epochs,
            peer_newest,
            send,
            windows,
        }));
    }

    /// Makes `link` unauthenticated again.
    pub fn remove(&mut self, link: LinkId) {
        if let Some(e) = self.links.get_mut(usize::from(link.get())) {
            *e = None;
        }
    }

    fn get(&self, link: LinkId) -> Option<&LinkAuth> {
        self.links.get(usize::from(link.get()))?.as_deref()
    }

    /// Whether `link` is authenticated.
    pub fn is_keyed(&self, link: LinkId) -> bool {
        self.get(link).is_some()
    }

    /// The epochs `link` holds, oldest first (empty if it has no keys).
    pub fn epochs(&self, link: LinkId) -> &[u8] {
        self.get(link).map_or(&[], |l| l.epochs.as_slice())
    }

    /// The newest epoch this node holds for `link`: what its hellos announce.
    pub fn newest_epoch(&self, link: LinkId) -> Option<u8> {
        self.epochs(link).last().copied()
    }

    /// The newest epoch the peer announced on `link`.
    pub fn peer_epoch(&self, link: LinkId) -> Option<u8> {
        self.get(link)?.peer_newest
    }

    /// The epoch this node seals `link`'s packets with now, if the link is authenticated.
    pub fn send_epoch(&self, link: LinkId) -> Option<u8> {
        self.get(link).map(|l| l.send)
    }

    /// The peer announced (in an authenticated hello) that the newest epoch it holds for `link`
    /// is `epoch`; the send epoch follows.
    pub fn note_peer_epoch(&mut self, link: LinkId, epoch: Option<u8>) {
        let Some(Some(l)) = self.links.get_mut(usize::from(link.get())) else {
            return;
        };
        if l.peer_newest != epoch {
            l.peer_newest = epoch;
            l.send = send_epoch(l.epochs.as_slice(), epoch).unwrap_or(l.send);
        }
    }

    /// Seals a finished packet in place: the body is encrypted with the header as AAD, and the
    /// tag written into the last [`TAG_LEN`] bytes. The header must name this node's
    /// authenticated link and carry AUTH and the epoch bits of [`AuthTable::send_epoch`].
    pub fn seal(&self, packet: &mut [u8]) -> Result<(), DropReason> {
        let (rx, _) = LinkRepr::parse(packet)?;
        let link = self
            .get(rx.link)
            .ok_or(DropReason::Unsupported("sealing on a link without keys"))?;
        let ciphers = link
            .slots
            .get(usize::from(rx.key_epoch))
            .and_then(Option::as_ref)
            .filter(|_| rx.auth)
            .ok_or(DropReason::BadField {
                field: "link.key_epoch",
                value: rx.key_epoch.into(),
            })?;
        let (aad, body, tag) = split(packet)?;
        let t = ciphers.seal.seal(&rx.nonce(), aad, body)?;
        tag.copy_from_slice(&t);
        Ok(())
    }

    /// Checks and opens a received packet whose link header `rx` parsed and whose link is one
    /// of this node's: returns where the plaintext records end (the tag's offset), or the drop.
    ///
    /// - A link without keys accepts only plaintext: an AUTH packet is
    ///   `Unsupported("auth on a link without keys")`.
    /// - A link with keys accepts only AUTH packets: a plaintext one is [`DropReason::BadTag`]
    ///   (its tag is missing), like one whose epoch has no key or whose tag does not verify.
    /// - A lane the peer does not have is `BadField("link.lane")`; a number the window has
    ///   seen, or one too old, is [`DropReason::Replayed`].
    pub fn open(&mut self, rx: &LinkRepr, datagram: &mut [u8]) -> Result<usize, DropReason> {
        let Some(Some(link)) = self.links.get_mut(usize::from(rx.link.get())) else {
            return if rx.auth {
                Err(DropReason::Unsupported("auth on a link without keys"))
            } else {
                Ok(datagram.len())
            };
        };
        if !rx.auth {
            return Err(DropReason::BadTag);
        }
        let class = usize::from(rx.packet_type.class() == PriorityClass::Data);
        let window = link
            .windows
            .get(rx.lane, class)
            .ok_or(DropReason::BadField {
                field: "link.lane",
                value: rx.lane.into(),
            })?;
        let incarnation = rx.sender_incarnation.0;
        window.check(incarnation, rx.packet_number)?;
        let ciphers = link
            .slots
            .get(usize::from(rx.key_epoch))
            .and_then(Option::as_ref)
            .ok_or(DropReason::BadTag)?;
        let nonce: [u8; NONCE_LEN] = rx.nonce();
        let (aad, body, tag) = split(datagram)?;
        let tag: [u8; TAG_LEN] = *tag_array(tag)?;
        ciphers.open.open(&nonce, aad, body, &tag)?;
        window.accept(incarnation, rx.packet_number)?;
        Ok(datagram.len() - TAG_LEN)
    }

    /// The epoch of the key in wire slot `slot` of `link` (for tests and displays).
    pub fn slot_epoch(&self, link: LinkId, slot: u8) -> Option<u8> {
        self.get(link)?
            .slots
            .get(usize::from(slot))?
            .as_ref()
            .map(|c| c.epoch)
    }
}

/// A packet's header (the AAD), body and tag.
type Sections<'a> = (&'a [u8], &'a mut [u8], &'a mut [u8]);

/// Splits a packet into the header (AAD), the body and the tag; the body holds at least one
/// byte.
fn split(packet: &mut [u8]) -> Result<Sections<'_>, DropReason> {
    let len = packet.len();
    if len < LINK_HEADER_LEN + 1 + TAG_LEN {
        return Err(DropReason::Truncated {
            needed: LINK_HEADER_LEN + 1 + TAG_LEN,
            got: len,
        });
    }
    let (aad, rest) = packet.split_at_mut(LINK_HEADER_LEN);
    let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    Ok((aad, body, tag))
}

fn tag_array(tag: &mut [u8]) -> Result<&[u8; TAG_LEN], DropReason> {
    <&[u8; TAG_LEN]>::try_from(&*tag).map_err(|_| DropReason::Truncated {
        needed: TAG_LEN,
        got: tag.len(),
    })
}
