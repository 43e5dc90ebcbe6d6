//! The node's port table: which client holds each port. Ports are exclusive per node.

use std::ops::RangeInclusive;

use weft_shared::ids::Port;

/// Marks a free port in the table.
const FREE: u16 = u16::MAX;

/// Why a port could not be bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BindError {
    /// Another client holds the port.
    InUse(Port),
    /// `Bind { port: 0 }` found no free port in the ephemeral range.
    NoFreePort,
}

/// Port → holding client slot, for all 65,536 ports (128 KiB, allocated once).
#[derive(Debug)]
pub(crate) struct PortTable {
    owner: Box<[u16]>,
    ephemeral: RangeInclusive<u16>,
    /// Where the next ephemeral search starts, so freed ports are not handed out again at once.
    cursor: u16,
}

impl PortTable {
    /// An empty table; `Bind { port: 0 }` picks from `ephemeral`, which must not contain 0.
    pub(crate) fn new(ephemeral: RangeInclusive<u16>) -> Self {
        PortTable {
            owner: vec![FREE; 1 << 16].into_boxed_slice(),
            cursor: *ephemeral.start(),
            ephemeral,
        }
    }

    /// The client slot holding `port`, if any.
    pub(crate) fn owner(&self, port: Port) -> Option<usize> {
        match self.owner.get(usize::from(port.0)) {
            Some(&FREE) | None => None,
            Some(&slot) => Some(usize::from(slot)),
        }
    }

    /// Binds `port` to `slot` (below 65,535), or picks a free ephemeral port when `port` is 0.
    /// Binding a port the slot already holds succeeds again.
    pub(crate) fn bind(&mut self, port: Port, slot: usize) -> Result<Port, BindError> {
        let Some(slot16) = u16::try_from(slot).ok().filter(|&s| s != FREE) else {
            return Err(BindError::InUse(port));
        };
        let port = if port.0 == 0 {
            self.pick_ephemeral()?
        } else {
            port
        };
        match self.owner.get_mut(usize::from(port.0)) {
            Some(o) if *o == FREE || *o == slot16 => {
                *o = slot16;
                Ok(port)
            }
            _ => Err(BindError::InUse(port)),
        }
    }

    /// Releases `port` if `slot` holds it; returns whether it did.
    pub(crate) fn release(&mut self, port: Port, slot: usize) -> bool {
        match self.owner.get_mut(usize::from(port.0)) {
            Some(o) if *o != FREE && usize::from(*o) == slot => {
                *o = FREE;
                true
            }
            _ => false,
        }
    }

    /// The next free port of the ephemeral range after the cursor, wrapping once around it.
    fn pick_ephemeral(&mut self) -> Result<Port, BindError> {
        let (start, end) = (*self.ephemeral.start(), *self.ephemeral.end());
        let span = u32::from(end - start) + 1;
        let mut p = self.cursor.clamp(start, end);
        for _ in 0..span {
            let next = if p == end { start } else { p + 1 };
            if self.owner.get(usize::from(p)) == Some(&FREE) {
                self.cursor = next;
                return Ok(Port(p));
            }
            p = next;
        }
        Err(BindError::NoFreePort)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_exclusive_and_released_only_by_their_holder() {
        let mut t = PortTable::new(100..=102);
        assert_eq!(t.bind(Port(7), 3), Ok(Port(7)));
        assert_eq!(t.bind(Port(7), 3), Ok(Port(7)), "re-bind by the holder");
        assert_eq!(t.bind(Port(7), 4), Err(BindError::InUse(Port(7))));
        assert_eq!(t.owner(Port(7)), Some(3));
        assert!(!t.release(Port(7), 4));
        assert!(t.release(Port(7), 3));
        assert_eq!(t.owner(Port(7)), None);
        assert_eq!(t.bind(Port(7), 4), Ok(Port(7)));
        assert_eq!(t.bind(Port(65_535), 0), Ok(Port(65_535)));
    }

    #[test]
    fn ephemeral_ports_rotate_skip_used_ones_and_run_out() {
        let mut t = PortTable::new(100..=102);
        assert_eq!(t.bind(Port(101), 9), Ok(Port(101)));
        assert_eq!(t.bind(Port(0), 1), Ok(Port(100)));
        assert_eq!(t.bind(Port(0), 1), Ok(Port(102)), "101 is taken");
        assert_eq!(t.bind(Port(0), 1), Err(BindError::NoFreePort));
        assert!(t.release(Port(100), 1));
        assert_eq!(t.bind(Port(0), 2), Ok(Port(100)));
        // The cursor moves on: a freed port is handed out after the others.
        let mut t = PortTable::new(65_534..=65_535);
        assert_eq!(t.bind(Port(0), 1), Ok(Port(65_534)));
        assert!(t.release(Port(65_534), 1));
        assert_eq!(t.bind(Port(0), 1), Ok(Port(65_535)));
        assert_eq!(t.bind(Port(0), 1), Ok(Port(65_534)));
    }
}
