//! The provided-buffer ring: receive buffers the kernel picks from for multishot RECVMSG.
//!
//! Layout (`io_uring_register_buf_ring(3)`): a page-aligned array of `entries` 16-byte
//! `io_uring_buf` descriptors whose first `resv` field doubles as the ring tail, plus one region
//! holding `entries` buffers of `stride` bytes. The kernel consumes descriptors from its head;
//! we give buffers back by writing a descriptor at our tail and publishing the tail with a
//! release store. A buffer is in exactly one of three states (see [`BufState`]); the driver moves
//! it `Kernel → Lent` when a CQE names it, then `Lent → Kernel` after the caller's callback or
//! `Lent → Held → Kernel` when the caller keeps it for a while.

#![allow(
    unsafe_code,
    reason = "the buffer ring is memory shared with the kernel"
)]

use std::io;
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicU16, Ordering};

use super::mem::Region;

/// The buffer group id of the driver's main buffer ring (and the probe's); a separate ring
/// (`DriverConfig::separate_ring`) is group `BGID + 1`.
pub(crate) const BGID: u16 = 0;

/// The largest ring the kernel accepts.
pub(crate) const MAX_ENTRIES: u32 = 32_768;

/// `struct io_uring_buf` from `<linux/io_uring.h>`.
#[repr(C)]
struct RawBuf {
    addr: u64,
    len: u32,
    bid: u16,
    /// In entry 0 this is the ring tail, written by us and read by the kernel.
    resv: u16,
}

const _: () = assert!(size_of::<RawBuf>() == 16);

/// Where one buffer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BufState {
    /// Published in the ring; the kernel may write into it at any time.
    Kernel,
    /// Named by a CQE and being handed to the caller's callback.
    Lent,
    /// Kept by the caller after its callback; `off..off + len` is the payload.
    Held { off: u32, len: u32 },
}

/// A provided-buffer ring and its buffers.
pub(crate) struct BufRing {
    ring: Region,
    bufs: Region,
    entries: u16,
    stride: u32,
    /// Our copy of the tail; the kernel reads the published copy in entry 0.
    tail: u16,
    state: Box<[BufState]>,
    in_kernel: u32,
    held: u32,
}

impl BufRing {
    /// Allocates a ring of `entries` buffers of `stride` bytes and publishes all of them.
    /// `entries` must be a power of two in `1..=32768`.
    pub(crate) fn new(entries: u32, stride: u32) -> io::Result<Self> {
        if !entries.is_power_of_two() || entries > MAX_ENTRIES || stride == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring entries must be a power of two <= 32768 and buffers non-empty",
            ));
        }
        let n = entries as usize;
        let ring = Region::new(n * size_of::<RawBuf>())?;
        let bufs = Region::new(n * stride as usize)?;
        let mut this = Self {
            ring,
            bufs,
            // 32768 is the largest value and fits; the ring index math below wraps in u16.
            entries: u16::try_from(entries).map_err(|_| io::ErrorKind::InvalidInput)?,
            stride,
            tail: 0,
            state: vec![BufState::Kernel; n].into_boxed_slice(),
            in_kernel: 0,
            held: 0,
        };
        for bid in 0..this.entries {
            this.push(bid);
        }
        this.publish();
        Ok(this)
    }

    /// The ring's address, for `register_buf_ring_with_flags`.
    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring.as_ptr() as u64
    }

    /// The number of buffers (and ring entries).
    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }

    /// Buffers the kernel can currently pick from.
    pub(crate) fn in_kernel(&self) -> u32 {
        self.in_kernel
    }

    /// Buffers kept by the caller.
    pub(crate) fn held(&self) -> u32 {
        self.held
    }

    /// Marks `bid` as handed out by the kernel. Returns false (and changes nothing) if the id is
    /// out of range or the buffer was not in the kernel's hands, which would be a kernel or
    /// driver bug; the caller counts it.
    pub(crate) fn take(&mut self, bid: u16) -> bool {
        match self.state.get_mut(usize::from(bid)) {
            Some(s @ BufState::Kernel) => {
                *s = BufState::Lent;
                self.in_kernel -= 1;
                true
            }
            _ => false,
        }
    }

    /// The first `len` bytes (at most the stride) of a lent or held buffer.
    pub(crate) fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let state = self.state.get(usize::from(bid)).copied();
        if matches!(state, None | Some(BufState::Kernel)) {
            return &[];
        }
        let len = len.min(self.stride as usize);
        let off = usize::from(bid) * self.stride as usize;
        debug_assert!(off + len <= self.bufs.len());
        // SAFETY: `bid` is in range, so `off + len` lies inside `bufs`. The buffer is not in the
        // ring (state Lent or Held), so the kernel does not write it until `recycle` publishes
        // it again, which needs `&mut self` and so ends this borrow first.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().add(off), len) }
    }

    /// Moves a lent buffer to `Held`, remembering where its payload is.
    pub(crate) fn hold(&mut self, bid: u16, off: u32, len: u32) {
        if let Some(s @ BufState::Lent) = self.state.get_mut(usize::from(bid)) {
            *s = BufState::Held { off, len };
            self.held += 1;
        }
    }

    /// The payload of a held buffer, or `None` if `bid` is not held.
    pub(crate) fn held_payload(&self, bid: u16) -> Option<&[u8]> {
        match self.state.get(usize::from(bid)).copied() {
            Some(BufState::Held { off, len }) => {
                let all = self.bytes(bid, off as usize + len as usize);
                all.get(off as usize..)
            }
            _ => None,
        }
    }

    /// Gives a lent or held buffer back to the kernel. Returns false if it was neither (a
    /// double release), in which case nothing changes.
    pub(crate) fn recycle(&mut self, bid: u16) -> bool {
        match self.state.get(usize::from(bid)).copied() {
            Some(BufState::Lent) => {}
            Some(BufState::Held { .. }) => self.held -= 1,
            _ => return false,
        }
        self.push(bid);
        self.publish();
        true
    }

    /// Writes a descriptor for `bid` at our tail (not yet visible to the kernel).
    fn push(&mut self, bid: u16) {
        let idx = usize::from(self.tail & (self.entries - 1));
        let base = self.ring.as_ptr().cast::<RawBuf>();
        let addr = self.bufs.as_ptr() as u64 + u64::from(bid) * u64::from(self.stride);
        // SAFETY: `idx < entries`, so the descriptor lies inside `ring`. At most `entries - 1`
        // buffers are in the kernel's hands here (this one is not), so the kernel's window
        // `[head, tail)` does not include slot `idx` and it does not read it concurrently. Only
        // the `addr`, `len` and `bid` fields are written: in entry 0 `resv` is the published tail,
        // which the kernel may be reading, so no reference covers the whole descriptor.
        unsafe {
            let e = base.add(idx);
            addr_of_mut!((*e).addr).write(addr);
            addr_of_mut!((*e).len).write(self.stride);
            addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        self.in_kernel += 1;
        self.state[usize::from(bid)] = BufState::Kernel;
    }

    /// Publishes our tail: descriptors written by `push` become visible to the kernel.
    fn publish(&self) {
        let base = self.ring.as_ptr().cast::<RawBuf>();
        // SAFETY: entry 0 exists (entries >= 1); its `resv` field is a 2-byte-aligned u16 that
        // the kernel only reads (with an acquire load) and we only write through this atomic.
        let tail = unsafe { AtomicU16::from_ptr(addr_of_mut!((*base).resv)) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing")
            .field("entries", &self.entries)
            .field("stride", &self.stride)
            .field("in_kernel", &self.in_kernel)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_sizes() {
        assert!(BufRing::new(3, 64).is_err());
        assert!(BufRing::new(0, 64).is_err());
        assert!(BufRing::new(65_536, 64).is_err());
        assert!(BufRing::new(4, 0).is_err());
    }

    #[test]
    fn state_machine_never_leaks_or_double_frees() {
        let mut r = BufRing::new(4, 64).unwrap();
        assert_eq!(r.in_kernel(), 4);
        assert!(r.take(2));
        assert!(!r.take(2), "a buffer cannot be taken twice");
        assert!(!r.take(9), "out of range");
        assert_eq!(r.in_kernel(), 3);
        r.hold(2, 8, 10);
        assert_eq!(r.held(), 1);
        assert_eq!(r.held_payload(2).map(<[u8]>::len), Some(10));
        assert_eq!(r.held_payload(1), None);
        assert!(r.recycle(2));
        assert!(!r.recycle(2), "double release is refused");
        assert_eq!((r.in_kernel(), r.held()), (4, 0));
        // The tail wrapped past the 4 initial descriptors and the new one sits in slot 0.
        assert_eq!(r.tail, 5);
    }
}
