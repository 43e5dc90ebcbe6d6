//! Typed identifiers for the things Weft addresses: nodes, links, paths, ports, groups, flows.
//!
//! Each is a newtype so a link id can never be passed where a node id is expected (STYLE.md §5).
//! Constructors that take untrusted values check their range and return `None`; wire and config
//! parsers turn that into a drop reason or a config error.

use core::fmt;

use serde::{Deserialize, Serialize};

/// Largest node id a config may use. Node ids are 1..=MAX_NODE_ID; 0 is never a node.
pub const MAX_NODE_ID: u16 = 1023;
/// Number of link ids: a link id is 0..MAX_LINKS, one bit each in a source-routing bitmask.
pub const MAX_LINKS: u16 = 512;
/// Number of paths (interface pairs) a link may have.
pub const MAX_PATHS_PER_LINK: u8 = 8;

/// An overlay node, 1..=[`MAX_NODE_ID`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(u16);

impl NodeId {
    /// The node id `raw`, or `None` if it is 0 or above [`MAX_NODE_ID`].
    pub const fn new(raw: u16) -> Option<Self> {
        if raw == 0 || raw > MAX_NODE_ID {
            None
        } else {
            Some(NodeId(raw))
        }
    }

    /// The id as carried on the wire and in tables.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The id as a dense table index (0-based).
    pub const fn index(self) -> usize {
        self.0 as usize - 1
    }
}

/// An overlay link between two neighbour nodes, 0..[`MAX_LINKS`]; stable across config edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkId(u16);

impl LinkId {
    /// The link id `raw`, or `None` if it is [`MAX_LINKS`] or above.
    pub const fn new(raw: u16) -> Option<Self> {
        if raw >= MAX_LINKS {
            None
        } else {
            Some(LinkId(raw))
        }
    }

    /// The id as carried on the wire (also its bit index in a link bitmask).
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// One path (interface pair, i.e. ISP pair) of a link, 0..[`MAX_PATHS_PER_LINK`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PathId(u8);

impl PathId {
    /// The path id `raw`, or `None` if it is [`MAX_PATHS_PER_LINK`] or above.
    pub const fn new(raw: u8) -> Option<Self> {
        if raw >= MAX_PATHS_PER_LINK {
            None
        } else {
            Some(PathId(raw))
        }
    }

    /// The id as carried on the wire.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// A client's virtual port on its node (like a UDP port on a host).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Port(pub u16);

/// A multicast or anycast group address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u32);

/// A flow, chosen by the source node; unique per (source node, source incarnation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FlowId(pub u32);

/// A node's incarnation: changes every time the node's data plane starts, so peers can tell a
/// restarted node (whose sequence numbers start over) from a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Incarnation(pub u32);

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_inner!(NodeId, LinkId, PathId, Port, GroupId, FlowId, Incarnation);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        assert_eq!(NodeId::new(0), None);
        assert_eq!(NodeId::new(1).map(NodeId::index), Some(0));
        assert_eq!(NodeId::new(MAX_NODE_ID + 1), None);
        assert!(LinkId::new(MAX_LINKS - 1).is_some());
        assert_eq!(LinkId::new(MAX_LINKS), None);
        assert_eq!(PathId::new(MAX_PATHS_PER_LINK), None);
    }
}
