//! Who holds a single-writer role in the region, and whether that holder is still alive.
//!
//! A role (the FIB writer, a FIB reader slot, a ring endpoint, the stats writer) is claimed by
//! writing an owner word into the region: `pid << 32 | tid`, where `tid` is 0 for roles held by a
//! whole process. A claim succeeds when the word is 0 or names a process (or thread) that no longer
//! exists, so a restarted process takes its role back without any cleanup after a crash.
//!
//! Liveness is `kill(pid, 0)` (or `tgkill(pid, tid, 0)` for a thread): only `ESRCH` means gone. A
//! zombie still answers `kill`, so `/proc/<pid>/stat` is also read and state `Z`/`X` counts as
//! dead. Pids can be reused; a reused pid only makes a dead holder look alive, which is the safe
//! direction (the role stays held, the writer keeps reporting it).

#![allow(
    unsafe_code,
    reason = "libc calls for the thread id and liveness checks"
)]

use std::sync::atomic::{AtomicU64, Ordering};

/// An owner word: `pid << 32 | tid` (tid 0 for a process-wide role); 0 means free.
pub(crate) type OwnerWord = u64;

/// The owner word of the calling process (process-wide roles).
pub(crate) fn current_process() -> OwnerWord {
    u64::from(std::process::id()) << 32
}

/// The owner word of the calling thread (per-thread roles such as FIB reader slots).
pub(crate) fn current_thread() -> OwnerWord {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    current_process() | (tid as u64 & 0xFFFF_FFFF)
}

/// Splits an owner word into (pid, tid).
pub(crate) fn split(owner: OwnerWord) -> (u32, u32) {
    ((owner >> 32) as u32, owner as u32)
}

/// Whether the process (or thread) named by `owner` still exists. A free word (0) is not alive.
pub(crate) fn is_alive(owner: OwnerWord) -> bool {
    let (pid, tid) = split(owner);
    let (Ok(pid), Ok(tid)) = (libc::pid_t::try_from(pid), libc::pid_t::try_from(tid)) else {
        return false;
    };
    if pid <= 0 || tid < 0 {
        return false;
    }
    let rc = if tid == 0 {
        // SAFETY: kill with signal 0 only checks that the process exists; it sends nothing.
        unsafe { libc::kill(pid, 0) }
    } else {
        // SAFETY: tgkill with signal 0 only checks that the thread exists in that thread group.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, 0) as libc::c_int }
    };
    if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    // EPERM (another user's process) or success: it exists, unless it is a zombie.
    let stat = if tid == 0 {
        format!("/proc/{pid}/stat")
    } else {
        format!("/proc/{pid}/task/{tid}/stat")
    };
    match std::fs::read_to_string(stat) {
        Ok(text) => !matches!(proc_state(&text), Some('Z' | 'X' | 'x')),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        // No /proc (or unreadable): trust kill's answer.
        Err(_) => true,
    }
}

/// The state letter of a `/proc/<pid>/stat` line: the first field after the last `)`.
fn proc_state(stat: &str) -> Option<char> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// Claims the role held in `cell` for `me`: succeeds if the cell is free or its holder is dead.
/// On failure returns the live holder's owner word (which may be `me` itself).
pub(crate) fn claim(cell: &AtomicU64, me: OwnerWord) -> Result<(), OwnerWord> {
    // A few rounds cover a race with another claimer; after that the other claimer won.
    let mut current = cell.load(Ordering::Acquire);
    for _ in 0..4 {
        if current != 0 && (current == me || is_alive(current)) {
            return Err(current);
        }
        match cell.compare_exchange(current, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(now) => current = now,
        }
    }
    Err(current)
}

/// Releases the role if `me` still holds it (a reclaimer may already have taken it).
pub(crate) fn release(cell: &AtomicU64, me: OwnerWord) {
    let _ = cell.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The pid of a process that has exited and been reaped.
    pub(crate) fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait for true");
        pid
    }

    #[test]
    fn self_is_alive_and_reaped_child_is_dead() {
        assert!(is_alive(current_process()));
        assert!(is_alive(current_thread()));
        assert!(!is_alive(0));
        assert!(!is_alive(u64::from(dead_pid()) << 32));
    }

    #[test]
    fn zombie_counts_as_dead() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let owner = u64::from(child.id()) << 32;
        // Not reaped yet: kill(pid, 0) succeeds, /proc says Z once it has exited.
        let mut dead = false;
        for _ in 0..2000 {
            if !is_alive(owner) {
                dead = true;
                break;
            }
            std::thread::yield_now();
        }
        child.wait().expect("reap true");
        assert!(dead, "an exited, unreaped child must not count as alive");
    }

    #[test]
    fn claims_take_free_and_dead_roles_only() {
        let cell = AtomicU64::new(0);
        let me = current_process();
        assert_eq!(claim(&cell, me), Ok(()));
        assert_eq!(claim(&cell, me), Err(me), "a live holder keeps its role");
        release(&cell, me);
        assert_eq!(cell.load(Ordering::Relaxed), 0);
        cell.store(u64::from(dead_pid()) << 32, Ordering::Relaxed);
        assert_eq!(
            claim(&cell, me),
            Ok(()),
            "a dead holder's role is reclaimed"
        );
        let alive_other = 1u64 << 32; // init is always alive (EPERM or success)
        cell.store(alive_other, Ordering::Relaxed);
        assert_eq!(claim(&cell, me), Err(alive_other));
    }

    #[test]
    fn proc_state_parses_names_with_parentheses() {
        assert_eq!(proc_state("12 (a) b) Z 1 2"), Some('Z'));
        assert_eq!(proc_state("12 (x) S 1"), Some('S'));
        assert_eq!(proc_state("garbage"), None);
    }
}
