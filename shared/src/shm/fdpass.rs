//! Handing the region's memfd and the rings' eventfds to another process: over a Unix socket with
//! `SCM_RIGHTS` ([`send_fds`], [`recv_fds`]), or by inheritance across `exec`
//! ([`set_inheritable`] clears close-on-exec). Received fds are owned and close-on-exec.

#![allow(
    unsafe_code,
    reason = "sendmsg/recvmsg with SCM_RIGHTS control messages"
)]

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Most fds one message carries.
pub const MAX_FDS: usize = 8;

/// Control buffer for MAX_FDS fds, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

const FDS_BYTES: u32 = (MAX_FDS * size_of::<RawFd>()) as u32;
// SAFETY: CMSG_SPACE is pure arithmetic on its argument.
const CMSG_SPACE_MAX: usize = unsafe { libc::CMSG_SPACE(FDS_BYTES) } as usize;
const _: () = assert!(CMSG_SPACE_MAX <= 64);

/// Sends `fds` (1..=[`MAX_FDS`]) with a one-byte message over `socket`.
pub fn send_fds(socket: &UnixStream, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "send 1..=8 fds",
        ));
    }
    let data_len = (fds.len() * size_of::<RawFd>()) as u32;
    let mut payload = [b'W'];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cmsg = CmsgBuf([0; 64]);
    // SAFETY: msghdr is a plain C struct for which all-zero bytes are a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is arithmetic.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(data_len) } as _;
    // SAFETY: msg_control points at a zeroed, aligned buffer of msg_controllen <= 64 bytes, so
    // the first header and its data (CMSG_LEN(data_len) bytes) lie inside it.
    unsafe {
        let hdr = libc::CMSG_FIRSTHDR(&msg);
        if hdr.is_null() {
            return Err(io::Error::other("no room for a control message"));
        }
        (*hdr).cmsg_level = libc::SOL_SOCKET;
        (*hdr).cmsg_type = libc::SCM_RIGHTS;
        (*hdr).cmsg_len = libc::CMSG_LEN(data_len) as _;
        let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
        for (i, fd) in fds.iter().enumerate() {
            data.add(i).write_unaligned(fd.as_raw_fd());
        }
    }
    // SAFETY: msg and everything it points to live until sendmsg returns.
    let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one message sent by [`send_fds`] and returns its fds (close-on-exec).
pub fn recv_fds(socket: &UnixStream) -> io::Result<Vec<OwnedFd>> {
    let mut payload = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cmsg = CmsgBuf([0; 64]);
    // SAFETY: as in send_fds.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_SPACE_MAX as _;
    // SAFETY: msg points at live buffers of the stated sizes; the kernel writes at most those.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control with well-formed headers within msg_controllen;
    // CMSG_FIRSTHDR/NXTHDR stay inside it. Each SCM_RIGHTS fd was just installed in this process
    // for us, so wrapping it in OwnedFd makes us its only owner.
    unsafe {
        let mut hdr = libc::CMSG_FIRSTHDR(&msg);
        while !hdr.is_null() {
            if (*hdr).cmsg_level == libc::SOL_SOCKET && (*hdr).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*hdr).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
                for i in 0..bytes / size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            hdr = libc::CMSG_NXTHDR(&msg, hdr);
        }
    }
    if n == 0 && fds.is_empty() {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("control message truncated: fds lost"));
    }
    Ok(fds)
}

/// Sets or clears close-on-exec on `fd`, so a child started with `exec` inherits it (or not).
pub fn set_inheritable(fd: BorrowedFd<'_>, inheritable: bool) -> io::Result<()> {
    // SAFETY: fcntl F_GETFD/F_SETFD on a valid borrowed fd, integer arguments only.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFD);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if inheritable {
            flags & !libc::FD_CLOEXEC
        } else {
            flags | libc::FD_CLOEXEC
        };
        if libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::shm::{EventFd, ShmLayout, ShmRegion};

    #[test]
    fn region_and_eventfd_cross_a_socket() {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let layout = ShmLayout {
            punt_rings: 1,
            inject_rings: 1,
            ring_slots: 2,
        };
        let region = ShmRegion::create_memfd(&layout, 3).expect("region");
        let event = EventFd::new().expect("eventfd");
        send_fds(&a, &[region.fd(), event.as_fd()]).expect("send");
        let mut fds = recv_fds(&b).expect("recv").into_iter();
        let (Some(shm), Some(ev), None) = (fds.next(), fds.next(), fds.next()) else {
            unreachable!("expected exactly two fds");
        };
        let other = ShmRegion::from_fd(shm).expect("attach received memfd");
        assert_eq!(other.header(), region.header());
        EventFd::from_fd(ev).notify().expect("notify");
        assert_eq!(event.drain().expect("drain"), 1);
        assert!(send_fds(&a, &[]).is_err());
        drop(a);
        assert!(recv_fds(&b).is_err(), "eof");
    }

    #[test]
    fn inheritable_toggles_close_on_exec() {
        let event = EventFd::new().expect("eventfd");
        let cloexec = |fd: BorrowedFd<'_>| {
            // SAFETY: F_GETFD on a valid fd.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
        };
        assert!(cloexec(event.as_fd()));
        set_inheritable(event.as_fd(), true).expect("clear");
        assert!(!cloexec(event.as_fd()));
        set_inheritable(event.as_fd(), false).expect("set");
        assert!(cloexec(event.as_fd()));
    }
}
