//! The mapping itself: creating a region (sealed memfd or named file under `/dev/shm`), attaching
//! to one with header validation, typed access to sections, and unmapping on drop.
//!
//! Who creates it: the launcher (or a standalone data plane) calls [`ShmRegion::create_memfd`] and
//! hands the fd to the other process, which calls [`ShmRegion::from_fd`]. A memfd disappears with
//! its last fd and mapping, so a crash leaves nothing to clean up. Named regions
//! ([`ShmRegion::create_named`], [`ShmRegion::open_named`]) exist for tests and debugging; a stale
//! one left by a crashed run is reclaimed when it is created again.

#![allow(
    unsafe_code,
    reason = "mmap/munmap, memfd and seals, typed pointers into the mapping"
)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use zerocopy::{FromBytes, IntoBytes};

use super::layout::{HEADER_AREA, SHM_MAGIC, Section, ShmHeader, ShmLayout, validate_header};
use super::owner;
use super::ring::RingId;
use crate::ids::Incarnation;

/// Why a region could not be created, opened or used.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// The call that failed.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A region name is empty, too long, or uses characters other than `[A-Za-z0-9._-]`.
    #[error("invalid shared-memory name {name:?}: use 1..=200 of [A-Za-z0-9._-], not leading '.'")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// Layout parameters are out of range.
    #[error("invalid shared-memory layout: {reason}")]
    InvalidLayout {
        /// Which parameter and its range.
        reason: &'static str,
    },
    /// The file is smaller than a header.
    #[error("shared-memory region is {size} B, smaller than its {needed} B header")]
    TooSmall {
        /// Size of the file.
        size: u64,
        /// Bytes needed.
        needed: u64,
    },
    /// The region does not start with [`SHM_MAGIC`]: not a Weft region (or not initialised).
    #[error("not a Weft shared-memory region (magic {found:#018x})")]
    BadMagic {
        /// The first 8 bytes found.
        found: u64,
    },
    /// The region was laid out by a build with another layout version.
    #[error("shared-memory layout version {found}, this build speaks {expected}")]
    VersionMismatch {
        /// Version in the header.
        found: u32,
        /// This build's [`super::LAYOUT_VERSION`].
        expected: u32,
    },
    /// The header size differs from this build's header.
    #[error("shared-memory header is {found} B, this build expects {expected} B")]
    HeaderSizeMismatch {
        /// Header size recorded in the header.
        found: u32,
        /// This build's header size.
        expected: u64,
    },
    /// The header's total size differs from the file size.
    #[error("shared-memory header says {header} B but the file is {file} B")]
    SizeMismatch {
        /// Total size recorded in the header.
        header: u64,
        /// Actual file size.
        file: u64,
    },
    /// A fixed layout parameter differs from this build's.
    #[error("shared-memory layout differs from this build in {field}")]
    LayoutMismatch {
        /// The header field that differs.
        field: &'static str,
    },
    /// A section's offset or size differs from what this build computes for the header.
    #[error("shared-memory section {section} is not where this build expects it")]
    SectionMismatch {
        /// The section's name.
        section: &'static str,
    },
    /// The region was created for another config.
    #[error("shared-memory region has config hash {found:#018x}, expected {expected:#018x}")]
    ConfigMismatch {
        /// Hash recorded in the header.
        found: u64,
        /// Hash of this process's config.
        expected: u64,
    },
    /// A memfd handed over without the shrink seal: the peer could truncate it under us.
    #[error("shared-memory fd is not sealed against shrinking")]
    NotSealed,
    /// A named region exists and its creator is still alive.
    #[error("shared-memory region is in use by live process {pid}")]
    InUse {
        /// The creator's pid.
        pid: u32,
    },
    /// A single-holder role is held by a live process or thread.
    #[error("{role} is held by live process {pid} (thread {tid})")]
    RoleBusy {
        /// The role ("fib writer", "fib reader slot", "ring producer", ...).
        role: &'static str,
        /// Holder's pid.
        pid: u32,
        /// Holder's thread id, 0 for a process-wide role.
        tid: u32,
    },
    /// A worker index outside 0..[`super::MAX_WORKERS`].
    #[error("worker {worker} out of range (max {max})")]
    BadWorker {
        /// The index given.
        worker: usize,
        /// [`super::MAX_WORKERS`].
        max: usize,
    },
    /// A ring index beyond the rings this region has.
    #[error("{ring:?} does not exist: the region has {count} such rings")]
    BadRing {
        /// The ring asked for.
        ring: RingId,
        /// Number of rings of that kind.
        count: u32,
    },
}

fn os_err(op: &'static str) -> ShmError {
    ShmError::Io {
        op,
        source: io::Error::last_os_error(),
    }
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> ShmError {
    move |source| ShmError::Io { op, source }
}

/// A live `mmap` of the whole region; unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize) -> Result<Mapping, ShmError> {
        // SAFETY: a fresh shared mapping at an address the kernel picks; nothing aliases it yet.
        // MAP_POPULATE prefaults the pages so workers do not fault on their first lookups.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(os_err("mmap"));
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(ShmError::Io {
            op: "mmap",
            source: io::Error::other("null mapping"),
        })?;
        Ok(Mapping { base, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; every reference into the mapping
        // borrows the ShmRegion that owns this Mapping, so none outlives it.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// One node's shared-memory region, mapped read-write. Cheap to share between threads behind an
/// `Arc`; the handles ([`super::FibReader`], [`super::FibWriter`], rings, stats) hold one.
pub struct ShmRegion {
    map: Mapping,
    header: ShmHeader,
    fd: OwnedFd,
    name: Option<String>,
}

// SAFETY: the mapping is process-wide memory with no thread affinity. Everything other processes
// or threads may change concurrently is accessed through atomics or under the FIB and ring
// protocols (docs/shm.md), which the handles enforce with &mut receivers and owner claims.
unsafe impl Send for ShmRegion {}
// SAFETY: as above; &ShmRegion only hands out atomics and protocol-guarded pointers.
unsafe impl Sync for ShmRegion {}

impl std::fmt::Debug for ShmRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmRegion")
            .field("name", &self.name)
            .field("len", &self.map.len)
            .field("header", &self.header)
            .finish()
    }
}

impl ShmRegion {
    /// Creates an anonymous region: a memfd of `layout`'s size, sealed against shrinking and
    /// growing, mapped, with the header and initial state written. Hand [`ShmRegion::fd`] to the
    /// other process. The fd is close-on-exec; clear that for inheritance
    /// ([`super::fdpass::set_inheritable`]) or pass it with [`super::fdpass::send_fds`].
    pub fn create_memfd(layout: &ShmLayout, config_hash: u64) -> Result<Self, ShmError> {
        layout.check()?;
        // SAFETY: the name is a NUL-terminated literal; memfd_create returns a new fd or -1.
        let raw = unsafe {
            libc::memfd_create(
                c"weft-shm".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(os_err("memfd_create"));
        }
        // SAFETY: memfd_create just returned this fd and nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let file = File::from(fd);
        file.set_len(layout.total_size())
            .map_err(io_err("ftruncate"))?;
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on an fd we own, with an integer argument.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(os_err("fcntl(F_ADD_SEALS)"));
        }
        Self::init(file.into(), layout, config_hash, None)
    }

    /// Attaches to a region handed over as an fd (inherited or received with
    /// [`super::fdpass::recv_fds`]). The fd must be a memfd sealed against shrinking.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ShmError> {
        // SAFETY: fcntl(F_GET_SEALS) on a valid fd only reads its seals.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
            return Err(ShmError::NotSealed);
        }
        Self::attach(fd, None)
    }

    /// Creates the named region `/dev/shm/<name>` (tests and debugging). If the name exists it is
    /// reclaimed (unlinked and recreated) unless its creator, another process, is still alive.
    pub fn create_named(
        name: &str,
        layout: &ShmLayout,
        config_hash: u64,
    ) -> Result<Self, ShmError> {
        layout.check()?;
        let path = named_path(name)?;
        reclaim_stale(&path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err("create /dev/shm file"))?;
        file.set_len(layout.total_size())
            .map_err(io_err("ftruncate"))?;
        Self::init(file.into(), layout, config_hash, Some(name.to_owned()))
    }

    /// Opens the named region `/dev/shm/<name>` and validates its header.
    pub fn open_named(name: &str) -> Result<Self, ShmError> {
        let path = named_path(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("open /dev/shm file"))?;
        Self::attach(file.into(), Some(name.to_owned()))
    }

    /// Removes the name `/dev/shm/<name>`; mappings stay valid. Returns whether it existed.
    pub fn unlink_named(name: &str) -> Result<bool, ShmError> {
        match std::fs::remove_file(named_path(name)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ShmError::Io {
                op: "unlink /dev/shm file",
                source: e,
            }),
        }
    }

    fn init(
        fd: OwnedFd,
        layout: &ShmLayout,
        config_hash: u64,
        name: Option<String>,
    ) -> Result<Self, ShmError> {
        let header = layout.header(config_hash, std::process::id());
        let len = usize::try_from(header.total_size).map_err(|_| ShmError::InvalidLayout {
            reason: "region larger than memory",
        })?;
        let map = Mapping::new(fd.as_fd(), len)?;
        let region = ShmRegion {
            map,
            header,
            fd,
            name,
        };
        // Write the header with magic 0 first and the magic last, so an opener racing with us
        // (named regions only) sees BadMagic rather than a half-written header.
        let mut staged = header;
        staged.magic = 0;
        let bytes = staged.as_bytes();
        // SAFETY: the header area is inside the mapping (HEADER_AREA <= len) and nobody else
        // has the memfd yet; for a named region a racing opener only reads, and reads the
        // magic first.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), region.map.base.as_ptr(), bytes.len());
        }
        super::fib::init_control(&region);
        super::ring::init_rings(&region);
        region.magic_cell().store(SHM_MAGIC, Ordering::Release);
        Ok(region)
    }

    fn attach(fd: OwnedFd, name: Option<String>) -> Result<Self, ShmError> {
        let file = File::from(fd);
        let size = file.metadata().map_err(io_err("fstat"))?.len();
        if size < HEADER_AREA {
            return Err(ShmError::TooSmall {
                size,
                needed: HEADER_AREA,
            });
        }
        let len = usize::try_from(size).map_err(|_| ShmError::TooSmall {
            size,
            needed: HEADER_AREA,
        })?;
        let fd = OwnedFd::from(file);
        let map = Mapping::new(fd.as_fd(), len)?;
        // Read the header as u32 words with atomic loads: the incarnation field may be written
        // concurrently, and everything else was written before the magic (Acquire on word 0).
        let mut words = [0u32; size_of::<ShmHeader>() / 4];
        for (i, word) in words.iter_mut().enumerate() {
            // SAFETY: i * 4 < 184 <= HEADER_AREA <= len, and the base is page-aligned.
            let cell = unsafe { &*map.base.as_ptr().add(i * 4).cast::<AtomicU32>() };
            *word = cell.load(Ordering::Acquire);
        }
        let header = validate_header(words.as_bytes(), size)?;
        Ok(ShmRegion {
            map,
            header,
            fd,
            name,
        })
    }

    /// The fd of the region, to hand to the other process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The name under `/dev/shm` for named regions.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The validated header, with the data-plane incarnation as it is now (the one field that
    /// changes after creation).
    pub fn header(&self) -> ShmHeader {
        ShmHeader {
            dataplane_incarnation: self.dataplane_incarnation().0,
            ..self.header
        }
    }

    /// The layout parameters of this region.
    pub fn layout(&self) -> ShmLayout {
        ShmLayout::of(&self.header)
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Always false: a region has at least its header page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Fails with [`ShmError::ConfigMismatch`] unless the region was created for `expected`.
    pub fn check_config_hash(&self, expected: u64) -> Result<(), ShmError> {
        if self.header.config_hash == expected {
            Ok(())
        } else {
            Err(ShmError::ConfigMismatch {
                found: self.header.config_hash,
                expected,
            })
        }
    }

    /// The incarnation of the data plane currently attached (0 before one has set it).
    pub fn dataplane_incarnation(&self) -> Incarnation {
        Incarnation(self.incarnation_cell().load(Ordering::Acquire))
    }

    /// Records the incarnation of the data plane that (re)started on this region.
    pub fn set_dataplane_incarnation(&self, incarnation: Incarnation) {
        self.incarnation_cell()
            .store(incarnation.0, Ordering::Release);
    }

    fn magic_cell(&self) -> &AtomicU64 {
        // SAFETY: offset 0 is 8-aligned (page-aligned base) and inside the header area.
        unsafe { &*self.map.base.as_ptr().cast::<AtomicU64>() }
    }

    fn incarnation_cell(&self) -> &AtomicU32 {
        let offset = offset_of!(ShmHeader, dataplane_incarnation);
        // SAFETY: the field is 4-aligned inside the header area; it is only accessed atomically.
        unsafe { &*self.map.base.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// A pointer `offset` bytes into `section`, checked to leave room for a `T` and to be aligned
    /// for it. The layout is validated at attach time, so a failed check is a bug in this module.
    pub(crate) fn section_ptr<T>(&self, section: Section, offset: u64) -> NonNull<T> {
        let desc = self.header.sections[section.index()];
        assert!(
            offset + size_of::<T>() as u64 <= desc.size,
            "{section:?} overflow"
        );
        assert!(
            desc.offset + desc.size <= self.map.len as u64,
            "{section:?} outside map"
        );
        let at = (desc.offset + offset) as usize;
        // SAFETY: at + size_of::<T>() <= len, checked above.
        let ptr = unsafe { self.map.base.add(at) }.cast::<T>();
        assert!(ptr.as_ptr().is_aligned(), "{section:?} misaligned");
        ptr
    }

    /// A shared reference to a `T` in `section`.
    ///
    /// # Safety
    ///
    /// `T` must be the type laid out at that place, and every part of it that another thread or
    /// process may write while the reference lives must be an atomic (`T: FromBytes` already
    /// guarantees that any bytes, including zeroed memory, are a valid `T`).
    pub(crate) unsafe fn section_ref<T: FromBytes>(&self, section: Section, offset: u64) -> &T {
        // SAFETY: in bounds and aligned (section_ptr), valid for any bytes (T: FromBytes), and
        // the caller promises non-atomic parts are not written concurrently.
        unsafe { self.section_ptr::<T>(section, offset).as_ref() }
    }
}

/// `/dev/shm/<name>` after checking the name.
fn named_path(name: &str) -> Result<PathBuf, ShmError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 200 || name.starts_with('.') || !name.chars().all(ok_char) {
        return Err(ShmError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(PathBuf::from("/dev/shm").join(name))
}

/// Unlinks `path` if it exists and no other live process created it.
fn reclaim_stale(path: &std::path::Path) -> Result<(), ShmError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ShmError::Io {
                op: "open stale /dev/shm file",
                source: e,
            });
        }
    };
    let mut bytes = [0u8; size_of::<ShmHeader>()];
    if file.read_exact(&mut bytes).is_ok() {
        if let Ok(header) = ShmHeader::read_from_bytes(&bytes) {
            let pid = header.creator_pid;
            let live = pid != std::process::id() && owner::is_alive(u64::from(pid) << 32);
            if header.magic == SHM_MAGIC && live {
                return Err(ShmError::InUse { pid });
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ShmError::Io {
            op: "unlink stale /dev/shm file",
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::layout::PAGE_SIZE;

    fn unique(tag: &str) -> String {
        format!("weft-unit-{}-{tag}", std::process::id())
    }

    #[test]
    fn memfd_round_trip_through_a_second_mapping() {
        let region = ShmRegion::create_memfd(&ShmLayout::default(), 99).expect("create");
        region.set_dataplane_incarnation(Incarnation(5));
        let dup = region.fd().try_clone_to_owned().expect("dup");
        let other = ShmRegion::from_fd(dup).expect("attach");
        assert_eq!(other.header(), region.header());
        assert_eq!(other.dataplane_incarnation(), Incarnation(5));
        assert_eq!(other.header().creator_pid, std::process::id());
        other.check_config_hash(99).expect("same config");
        assert!(matches!(
            other.check_config_hash(1),
            Err(ShmError::ConfigMismatch {
                found: 99,
                expected: 1
            })
        ));
        assert_eq!(other.len() as u64, ShmLayout::default().total_size());
    }

    #[test]
    fn unsealed_fd_is_refused() {
        let path = std::env::temp_dir().join(unique("unsealed"));
        let file = File::create(&path).expect("temp file");
        file.set_len(1 << 20).expect("size");
        let _ = std::fs::remove_file(&path);
        assert!(matches!(
            ShmRegion::from_fd(file.into()),
            Err(ShmError::NotSealed)
        ));
    }

    #[test]
    fn named_regions_validate_and_reclaim_stale_files() {
        let name = unique("named");
        // A stale file with garbage is reclaimed.
        std::fs::write(format!("/dev/shm/{name}"), b"garbage").expect("write stale");
        let layout = ShmLayout {
            punt_rings: 2,
            inject_rings: 1,
            ring_slots: 64,
        };
        let region = ShmRegion::create_named(&name, &layout, 1).expect("create over stale");
        let opened = ShmRegion::open_named(&name).expect("open");
        assert_eq!(opened.layout(), layout);
        drop(opened);
        // Corrupt the magic through the first mapping: opening now fails with BadMagic.
        region.magic_cell().store(0x1234, Ordering::Release);
        assert!(matches!(
            ShmRegion::open_named(&name),
            Err(ShmError::BadMagic { found: 0x1234 })
        ));
        // A region whose creator is another live process is not reclaimed.
        let mut header = region.header();
        header.creator_pid = 1;
        // SAFETY: test-only write of the creator pid; nothing else uses this region.
        unsafe {
            std::ptr::copy_nonoverlapping(
                header.as_bytes().as_ptr(),
                region.map.base.as_ptr(),
                size_of::<ShmHeader>(),
            );
        }
        assert!(matches!(
            ShmRegion::create_named(&name, &layout, 1),
            Err(ShmError::InUse { pid: 1 })
        ));
        assert!(ShmRegion::unlink_named(&name).expect("unlink"));
        assert!(!ShmRegion::unlink_named(&name).expect("unlink twice"));
    }

    #[test]
    fn truncated_named_file_is_refused() {
        let name = unique("short");
        let region = ShmRegion::create_named(&name, &ShmLayout::default(), 1).expect("create");
        let file = OpenOptions::new()
            .write(true)
            .open(format!("/dev/shm/{name}"))
            .expect("open");
        drop(region);
        file.set_len(ShmLayout::default().total_size() - PAGE_SIZE)
            .expect("shrink");
        let result = ShmRegion::open_named(&name);
        ShmRegion::unlink_named(&name).expect("unlink");
        assert!(
            matches!(result, Err(ShmError::SizeMismatch { .. })),
            "{result:?}"
        );
        assert!(matches!(
            ShmRegion::open_named("no/slash"),
            Err(ShmError::InvalidName { .. })
        ));
    }
}
