//! The packet trace: one record per packet sent on a link, lost by a link, arrived at a node,
//! delivered to a flow or dropped by a node, in the order the simulation made them.
//!
//! Two runs of one scenario with one seed give the same trace, record for record; the
//! determinism tests compare whole traces ([`TraceMode::Full`]) or their running hash
//! ([`TraceMode::Hash`], the default, cheap enough for long runs).

use serde::Serialize;

/// How much of the trace is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum TraceMode {
    /// Nothing (the hash stays 0).
    Off,
    /// A running hash of every record.
    #[default]
    Hash,
    /// The hash and every record.
    Full,
}

/// What happened to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TraceKind {
    /// Handed to a link (`node` sent it on `link`, `path`).
    Sent,
    /// The link's loss model lost it.
    LostOnLink,
    /// The link's queue was full.
    QueueDrop,
    /// The link or path was cut.
    CutDrop,
    /// It reached `node`.
    Arrived,
    /// It reached a failed node and was dropped.
    NodeDown,
    /// `node` delivered it to its flow (`value` is the sequence number).
    Delivered,
    /// `node` dropped it: the pipeline refused it (`value` is the drop reason's index), or
    /// there was no route or up path, or the node misbehaved (values 100 and up).
    Dropped,
}

/// One trace record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TraceRecord {
    /// Virtual time in nanoseconds.
    pub at_ns: u64,
    /// What happened.
    pub kind: TraceKind,
    /// The node involved (0 for events of a link alone).
    pub node: u16,
    /// The link involved (`u16::MAX` if none).
    pub link: u16,
    /// The path involved (`u8::MAX` if none).
    pub path: u8,
    /// A digest of the packet's bytes, a sequence number or a drop code (see [`TraceKind`]).
    pub value: u64,
}

/// The trace so far.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    mode: TraceMode,
    hash: u64,
    count: u64,
    records: Vec<TraceRecord>,
}

impl Trace {
    /// An empty trace kept as `mode` says.
    pub fn new(mode: TraceMode) -> Trace {
        Trace {
            mode,
            ..Trace::default()
        }
    }

    /// Adds a record.
    #[inline]
    pub fn record(&mut self, r: TraceRecord) {
        if self.mode == TraceMode::Off {
            return;
        }
        self.count += 1;
        let packed = u64::from(r.node) | u64::from(r.link) << 16 | u64::from(r.path) << 32;
        let packed = packed | (r.kind as u64) << 40;
        self.hash = mix(mix(mix(self.hash ^ r.at_ns) ^ packed) ^ r.value);
        if self.mode == TraceMode::Full {
            self.records.push(r);
        }
    }

    /// The running hash of every record so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Records so far (also counted when only hashed).
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records, with [`TraceMode::Full`].
    pub fn records(&self) -> &[TraceRecord] {
        &self.records
    }
}

/// A digest of a packet's bytes: a multiply-rotate hash of 8-byte words (FxHash's step) in two
/// independent lanes, then the SplitMix64 finaliser. Not cryptographic; it only has to differ
/// when the bytes differ, and be cheap (it runs on every packet).
#[inline]
pub fn digest(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    let (mut a, mut b) = (bytes.len() as u64, 0x9e37_79b9_7f4a_7c15u64);
    let mut pairs = bytes.chunks_exact(16);
    for p in &mut pairs {
        a = (a.rotate_left(5) ^ word(&p[..8])).wrapping_mul(K);
        b = (b.rotate_left(5) ^ word(&p[8..])).wrapping_mul(K);
    }
    for c in pairs.remainder().chunks(8) {
        a = (a.rotate_left(5) ^ word(c)).wrapping_mul(K);
    }
    mix(a ^ b.rotate_left(32))
}

/// The SplitMix64 finaliser.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
