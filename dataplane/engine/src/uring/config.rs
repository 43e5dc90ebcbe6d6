//! The driver's configuration, set-up errors and counters.

use std::io;

use super::bufring::MAX_ENTRIES;
use super::socket::{GRO_CONTROL_LEN, NAME_LEN, RECVMSG_OUT_LEN};
use super::token::GENERATION_MASK;
use super::tx::{MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD, TxStats};

/// Sizes and switches for a [`super::UdpDriver`]. `Default` suits 1500-byte paths without GRO;
/// [`DriverConfig::with_gro`] suits sockets bound with `SocketOptions::gro`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// Submission queue entries (rounded up to a power of two by the kernel).
    pub sq_entries: u32,
    /// Completion queue entries; multishot receives post one per datagram, so keep this well
    /// above the receive buffer count.
    pub cq_entries: u32,
    /// Receive buffers in the provided-buffer ring: a power of two, at most 32,768. 64 to 256
    /// measured best; 4096 was about 5 % slower (cache misses).
    pub buf_entries: u32,
    /// Payload bytes each receive buffer holds; longer datagrams are truncated, counted and
    /// dropped. With GRO this must hold a whole super-packet (up to 65,507 bytes).
    pub buf_payload: u32,
    /// Reserve room for the `UDP_GRO` control message and report segment sizes. Set it when the
    /// sockets were bound with GRO.
    pub gro: bool,
    /// Tx buffers in the pool: the most packets queued or in flight at once.
    pub tx_slots: u32,
    /// Bytes per tx buffer: the largest packet that can be queued.
    pub tx_buf_size: u32,
    /// Coalesce runs of equal-size packets with `UDP_SEGMENT` when the probe found GSO.
    pub gso: bool,
    /// Most datagrams per GSO send (at most 64).
    pub max_gso_segments: u16,
    /// Most fds watched at once with [`super::UdpDriver::watch`].
    pub max_watches: u32,
    /// A second receive-buffer ring for the last sockets; `None`: all share one ring of
    /// `buf_entries` buffers.
    pub separate_ring: Option<SeparateRing>,
}

/// A second provided-buffer ring for the sockets from [`SeparateRing::first_socket`] on. Sockets
/// that share a ring compete for its buffers: a flood on one can leave none for the others until
/// the caller gives buffers back, and their datagrams wait in the kernel (or are dropped when its
/// queue is full). A socket with a ring of its own always finds buffers once the caller has given
/// its previous ones back. The `gro` switch holds for both rings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeparateRing {
    /// Index (in the order given to [`super::UdpDriver::new`]) of the first socket that receives
    /// into this ring; it and every later socket do. At least 1 and below the socket count.
    pub first_socket: usize,
    /// Receive buffers in the ring: a power of two, at most 32,768.
    pub buf_entries: u32,
    /// Payload bytes each of its buffers holds (see [`DriverConfig::buf_payload`]).
    pub buf_payload: u32,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            sq_entries: 256,
            cq_entries: 4096,
            buf_entries: 256,
            buf_payload: 2048,
            gro: false,
            tx_slots: 256,
            tx_buf_size: 2048,
            gso: true,
            max_gso_segments: MAX_GSO_SEGMENTS,
            max_watches: 16,
            separate_ring: None,
        }
    }
}

impl DriverConfig {
    /// 64 receive buffers that each hold a whole GRO super-packet (65,507 bytes of payload).
    pub fn with_gro() -> Self {
        Self {
            buf_entries: 64,
            buf_payload: MAX_UDP_PAYLOAD as u32,
            gro: true,
            ..Self::default()
        }
    }

    /// Bytes of receive buffer before the payload: recvmsg_out header, name, control.
    pub(super) fn rx_header_len(&self) -> u32 {
        RECVMSG_OUT_LEN as u32 + NAME_LEN + if self.gro { GRO_CONTROL_LEN } else { 0 }
    }

    /// Checks the sizes and returns the stride (bytes per receive buffer) of the main ring and
    /// of the separate ring, if any.
    pub(super) fn validate(&self, sockets: usize) -> Result<(u32, Option<u32>), DriverError> {
        let bad = |what| Err(DriverError::Config(what));
        if sockets == 0 || sockets > usize::from(u16::MAX) {
            return bad("between 1 and 65535 sockets are needed");
        }
        let stride = self.ring_stride(self.buf_entries, self.buf_payload)?;
        let separate = match &self.separate_ring {
            None => None,
            Some(r) if r.first_socket == 0 || r.first_socket >= sockets => {
                return bad("separate_ring.first_socket must be at least 1 and below the sockets");
            }
            Some(r) => Some(self.ring_stride(r.buf_entries, r.buf_payload)?),
        };
        if self.tx_slots == 0 || self.tx_slots >= u32::MAX / 2 {
            return bad("tx_slots must be at least 1");
        }
        if self.tx_buf_size == 0 || self.tx_buf_size as usize > MAX_UDP_PAYLOAD {
            return bad("tx_buf_size must be between 1 and 65507");
        }
        if self.sq_entries == 0 || self.cq_entries < self.sq_entries {
            return bad("sq_entries must be at least 1 and cq_entries at least sq_entries");
        }
        if self.max_watches > GENERATION_MASK {
            return bad("max_watches is too large");
        }
        Ok((stride, separate))
    }

    /// Checks one ring's sizes and returns its stride.
    fn ring_stride(&self, entries: u32, payload: u32) -> Result<u32, DriverError> {
        if !entries.is_power_of_two() || entries > MAX_ENTRIES {
            return Err(DriverError::Config(
                "buf_entries must be a power of two of at most 32768",
            ));
        }
        if payload == 0 || payload as usize > MAX_UDP_PAYLOAD {
            return Err(DriverError::Config(
                "buf_payload must be between 1 and 65507",
            ));
        }
        // Buffers start on 64-byte boundaries so each datagram starts on its own cache line.
        Ok((self.rx_header_len() + payload).next_multiple_of(64))
    }
}

/// Setting up a driver failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The configuration is inconsistent; the message names the field.
    #[error("invalid driver config: {0}")]
    Config(&'static str),
    /// `io_uring_setup` failed (see [`super::probe`] for what to change).
    #[error("io_uring setup failed: {0}")]
    Setup(#[source] io::Error),
    /// Registering the sockets as fixed files failed (check `ulimit -n`).
    #[error("registering the sockets with io_uring failed: {0}")]
    RegisterFiles(#[source] io::Error),
    /// Registering the provided-buffer ring failed.
    #[error("registering the buffer ring failed: {0}")]
    RegisterBufRing(#[source] io::Error),
    /// Mapping the buffer memory failed.
    #[error("allocating driver buffers failed: {0}")]
    Memory(#[source] io::Error),
    /// Every watch slot is taken ([`DriverConfig::max_watches`]).
    #[error("all {0} watch slots are in use")]
    WatchesFull(u32),
}

/// Receive counters.
///
/// `rearms` also counts re-arms after an empty datagram: the kernel ends a multishot RECVMSG
/// when a receive returns 0 bytes (it reads that as end of stream), even on UDP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Datagrams handed to the caller (a GRO super-packet counts once).
    pub datagrams: u64,
    /// Payload bytes handed to the caller.
    pub bytes: u64,
    /// Datagrams that carried a GRO segment size.
    pub gro_datagrams: u64,
    /// Datagrams dropped because they did not fit a buffer.
    pub truncated: u64,
    /// Multishot receives that ended because the buffer ring was empty.
    pub enobufs: u64,
    /// Multishot receives armed again after ending.
    pub rearms: u64,
    /// Receive completions with another error.
    pub errors: u64,
    /// The errno of the last such error, 0 if none.
    pub last_errno: i32,
    /// Completions that made no sense (unknown buffer, short header, unknown address family).
    pub malformed: u64,
}

/// All of a driver's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// The receive side.
    pub rx: RxStats,
    /// The transmit side.
    pub tx: TxStats,
    /// `io_uring_enter` calls made by `run_once` and `submit`.
    pub enters: u64,
    /// Extra submits forced by a full submission queue.
    pub sq_full_submits: u64,
    /// Completions the kernel had to hold back because the completion queue was full.
    pub cq_overflow: u32,
    /// Multishot polls armed again after ending.
    pub watch_rearms: u64,
    /// Completions whose `user_data` named nothing this driver knows.
    pub unknown_completions: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let c = DriverConfig::default();
        assert_eq!(c.validate(1).unwrap().0 % 64, 0);
        assert_eq!(c.validate(1).unwrap().1, None);
        let split = |first_socket, buf_entries| DriverConfig {
            separate_ring: Some(SeparateRing {
                first_socket,
                buf_entries,
                buf_payload: 2048,
            }),
            ..c.clone()
        };
        assert!(split(1, 16).validate(2).unwrap().1.is_some());
        assert!(
            split(0, 16).validate(2).is_err(),
            "no socket in the main ring"
        );
        assert!(
            split(2, 16).validate(2).is_err(),
            "no socket in the separate ring"
        );
        assert!(split(1, 12).validate(2).is_err(), "not a power of two");
        assert!(c.validate(0).is_err());
        assert!(
            DriverConfig {
                buf_entries: 100,
                ..c.clone()
            }
            .validate(1)
            .is_err()
        );
        assert!(
            DriverConfig {
                buf_payload: 70_000,
                ..c.clone()
            }
            .validate(1)
            .is_err()
        );
        assert!(
            DriverConfig {
                cq_entries: 8,
                ..c.clone()
            }
            .validate(1)
            .is_err()
        );
        let g = DriverConfig::with_gro();
        // recvmsg_out (16) + name (32) + GRO cmsg (24) + a whole 65,507-byte super-packet.
        assert_eq!(g.rx_header_len(), 72);
        assert!(g.validate(1).unwrap().0 >= 72 + 65_507);
    }
}
