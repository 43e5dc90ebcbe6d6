//! A small eventfd wrapper for ring wakeups: the producer writes it only when
//! [`super::Notify::NeedsWakeup`] says the consumer sleeps; the consumer blocks on it (in its
//! poll loop or io_uring, or with [`EventFd::wait`]). Created non-blocking and close-on-exec.

#![allow(unsafe_code, reason = "eventfd, read, write and poll through libc")]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// An eventfd counter used as a wakeup signal.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new eventfd (counter 0, `EFD_NONBLOCK | EFD_CLOEXEC`).
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers and returns a new fd or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: eventfd just returned this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(EventFd { fd })
    }

    /// Wraps an eventfd received from another process (it should be non-blocking).
    pub fn from_fd(fd: OwnedFd) -> EventFd {
        EventFd { fd }
    }

    /// Gives the fd back.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Adds 1 to the counter, waking a sleeper. A saturated counter already wakes it.
    pub fn notify(&self) -> io::Result<()> {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live local buffer to an fd we own.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        if n == 8 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(())
        } else {
            Err(err)
        }
    }

    /// Reads and resets the counter without blocking; 0 if it was not signalled.
    pub fn drain(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live local buffer from an fd we own.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n == 8 {
            return Ok(u64::from_ne_bytes(buf));
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(0)
        } else {
            Err(err)
        }
    }

    /// Blocks until signalled or `timeout` passes (`None`: no timeout), then drains. Returns
    /// whether it was signalled.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let ms = timeout.map_or(-1, |t| {
            libc::c_int::try_from(t.as_millis()).unwrap_or(i32::MAX)
        });
        loop {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd on the stack; poll writes only its revents.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if rc == 0 {
                return Ok(false);
            }
            return Ok(self.drain()? > 0);
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_wait_and_drain() {
        let e = EventFd::new().expect("eventfd");
        assert_eq!(e.drain().expect("drain"), 0);
        assert!(!e.wait(Some(Duration::from_millis(1))).expect("wait"));
        e.notify().expect("notify");
        e.notify().expect("notify");
        assert!(e.wait(Some(Duration::from_millis(1))).expect("wait"));
        assert_eq!(e.drain().expect("drain"), 0, "wait drained both");
        let dup = EventFd::from_fd(e.as_fd().try_clone_to_owned().expect("dup"));
        dup.notify().expect("notify through a dup");
        assert_eq!(e.drain().expect("drain"), 1);
    }
}
