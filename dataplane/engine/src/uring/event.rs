//! What the driver hands to the `run_once` callback: datagrams and readiness events.

use std::cell::Cell;
use std::net::SocketAddr;

/// One event handed to the `run_once` callback.
#[derive(Debug)]
pub enum Event<'a> {
    /// A datagram (or GRO super-packet) arrived.
    Datagram(Datagram<'a>),
    /// A watched fd became readable; `events` is the `poll(2)` revents mask.
    Readable {
        /// The token given to [`super::UdpDriver::watch`].
        token: u64,
        /// The revents mask.
        events: u32,
    },
    /// A watch failed (for example the fd was closed) and was removed.
    WatchEnded {
        /// The token given to [`super::UdpDriver::watch`].
        token: u64,
        /// The errno the poll ended with.
        errno: i32,
    },
}

/// A received datagram, valid during the callback. Its buffer goes back to the ring when the
/// callback returns, unless [`Datagram::hold`] was called.
#[derive(Debug)]
pub struct Datagram<'a> {
    socket: usize,
    source: SocketAddr,
    payload: &'a [u8],
    segment_size: Option<u16>,
    ring: u16,
    bid: u16,
    hold: &'a Cell<bool>,
}

impl<'a> Datagram<'a> {
    /// Built by the driver for each received buffer.
    pub(super) fn new(
        socket: usize,
        source: SocketAddr,
        payload: &'a [u8],
        segment_size: Option<u16>,
        (ring, bid): (u16, u16),
        hold: &'a Cell<bool>,
    ) -> Self {
        Self {
            socket,
            source,
            payload,
            segment_size,
            ring,
            bid,
            hold,
        }
    }

    /// Index of the socket it arrived on, in the order given to [`super::UdpDriver::new`].
    pub fn socket(&self) -> usize {
        self.socket
    }

    /// Its source address.
    pub fn source(&self) -> SocketAddr {
        self.source
    }

    /// Its payload; with GRO, several datagrams back to back (see [`Datagram::segments`]).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// With GRO: the size of each coalesced datagram (the last may be shorter). `None` when the
    /// payload is a single datagram.
    pub fn segment_size(&self) -> Option<u16> {
        self.segment_size
    }

    /// The original datagrams: the payload split at the segment size, or the payload alone.
    pub fn segments(&self) -> Segments<'a> {
        Segments::new(self.payload, self.segment_size)
    }

    /// Keeps the buffer after the callback returns. Give it back with [`super::UdpDriver::release`];
    /// until then it is not available for receiving.
    pub fn hold(&self) -> BufId {
        self.hold.set(true);
        BufId {
            ring: self.ring,
            bid: self.bid,
        }
    }
}

/// Iterator over the datagrams of a (possibly GRO-coalesced) payload.
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    rest: Option<&'a [u8]>,
    size: usize,
}

impl<'a> Segments<'a> {
    /// The datagrams of `payload` received with GRO segment size `segment_size` (as from
    /// [`Datagram::segment_size`]); for a payload kept with [`Datagram::hold`] and read back with
    /// [`super::UdpDriver::held_payload`].
    pub fn new(payload: &'a [u8], segment_size: Option<u16>) -> Self {
        Self {
            rest: Some(payload),
            size: segment_size.map_or(0, usize::from),
        }
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        if self.size == 0 || rest.len() <= self.size {
            self.rest = None;
            return Some(rest);
        }
        let (seg, tail) = rest.split_at(self.size);
        self.rest = Some(tail);
        Some(seg)
    }
}

/// A receive buffer the caller kept with [`Datagram::hold`]. Not `Clone`: each hold is released
/// once, with [`super::UdpDriver::release`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a held buffer must be given back with UdpDriver::release"]
pub struct BufId {
    /// The buffer ring (0 = main, 1 = separate).
    pub(super) ring: u16,
    /// The buffer within it.
    pub(super) bid: u16,
}

/// Names a watch made by [`super::UdpDriver::watch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchId(pub(super) u32);

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn segments_split_gro_payloads() {
        let hold = Cell::new(false);
        let data: Vec<u8> = (0..25).collect();
        let d = |seg| Datagram {
            socket: 0,
            source: SocketAddr::from(([127, 0, 0, 1], 1)),
            payload: &data,
            segment_size: seg,
            ring: 0,
            bid: 0,
            hold: &hold,
        };
        let lens: Vec<usize> = d(Some(10)).segments().map(<[u8]>::len).collect();
        assert_eq!(lens, [10, 10, 5]);
        assert_eq!(
            d(Some(10))
                .segments()
                .flatten()
                .copied()
                .collect::<Vec<_>>(),
            data
        );
        assert_eq!(d(None).segments().count(), 1);
        let empty = Datagram {
            payload: &[],
            ..d(None)
        };
        assert_eq!(empty.segments().collect::<Vec<_>>(), [&[] as &[u8]]);
    }
}
