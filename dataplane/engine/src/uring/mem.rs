//! Page-aligned anonymous memory regions that the kernel reads or writes behind our back.
//!
//! The buffer ring, its buffers and the transmit pool live in `mmap`ed regions rather than in
//! `Vec`s: the kernel writes received datagrams into them while the driver holds only raw
//! pointers, so no Rust reference ever covers memory the kernel may be touching. Regions are
//! populated at creation (`MAP_POPULATE`) so the hot path takes no page faults.

#![allow(
    unsafe_code,
    reason = "mmap/munmap of memory shared with the kernel by io_uring"
)]

use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

/// An anonymous, private, read-write mapping, unmapped on drop.
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

impl Region {
    /// Maps `len` zeroed bytes (rounded up by the kernel to whole pages).
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        let Some(nz) = NonZeroUsize::new(len) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty memory region",
            ));
        };
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing aliases no
        // existing Rust object; the returned pointer is valid for `len` bytes until `munmap`.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE,
            )
        }
        .map_err(io::Error::from)?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The start of the region. Valid for `len()` bytes while `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The region's length in bytes as requested.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in `new`, and it is unmapped once.
        // The driver cancels all requests and unregisters the buffer ring before its regions
        // drop, so the kernel no longer uses this memory.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
