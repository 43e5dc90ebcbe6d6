//! The raw socket calls the kernel-UDP baseline needs and std does not offer: `UDP_GRO`,
//! `UDP_SEGMENT` sends from an iovec array, `recvmmsg`/`sendmmsg` batches, and the process's
//! CPU time. Each wraps one libc call; errors come back as `io::Error`.

#![allow(
    unsafe_code,
    reason = "recvmsg/sendmsg with control messages, recvmmsg/sendmmsg and setsockopt have no safe wrapper that carries UDP_GRO and UDP_SEGMENT"
)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

/// Largest number of datagrams one `recvmmsg`/`sendmmsg` or one GSO send carries here (the
/// kernel's own GSO limit is 64 segments).
pub const MAX_BATCH: usize = 64;

/// The largest UDP payload over IPv4 (and the size of a GRO receive buffer).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Space for one `cmsghdr` with a 4-byte (int) or 2-byte (u16) value, 8-byte aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgSpace([u8; 32]);

fn sockaddr_in(addr: SocketAddr) -> io::Result<libc::sockaddr_in> {
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the baseline speaks IPv4 only",
        ));
    };
    Ok(to_sockaddr_in(v4))
}

fn to_sockaddr_in(v4: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value to fill in.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = v4.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
    sa
}

fn check(rc: libc::c_int) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

fn set_int_opt(
    sock: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the fd is open for the socket's lifetime; the value pointer and length describe
    // a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(rc).map(|_| ())
}

/// Turns on `UDP_GRO`: the kernel may hand over a run of one sender's datagrams as one buffer.
pub fn enable_gro(sock: &UdpSocket) -> io::Result<()> {
    set_int_opt(sock, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Sets `SO_RCVBUF` and `SO_SNDBUF` (the kernel doubles and caps them).
pub fn set_buffers(sock: &UdpSocket, bytes: usize) -> io::Result<()> {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set_int_opt(sock, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)?;
    set_int_opt(sock, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes)
}

/// Receives one buffer into `buf` with its `UDP_GRO` segment size: `(length, segment size)`,
/// the segment size equal to the length when the kernel did not coalesce.
pub fn recv_gro(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, usize)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = CmsgSpace([0; 32]);
    // SAFETY: msghdr is plain old data; zero is "no name, no control".
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.0.len();
    // SAFETY: msg points at one live iovec over `buf` and at `cmsg`, both outliving the call.
    let n = check(unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) } as libc::c_int)?;
    let mut segment = n;
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of well-formed cmsgs;
    // CMSG_FIRSTHDR/NXTHDR stay inside it and CMSG_DATA of a UDP_GRO cmsg holds an int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                if v > 0 {
                    segment = v as usize;
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, segment))
}

/// Receives up to `slots.len()` datagrams (at least one, waiting for it up to the socket's
/// read timeout) into `slots`; their lengths go to `lens`. Returns how many arrived.
pub fn recv_batch(
    sock: &UdpSocket,
    slots: &mut [[u8; 2048]],
    lens: &mut [usize],
) -> io::Result<usize> {
    let count = slots.len().min(lens.len()).min(MAX_BATCH);
    // SAFETY: iovec and mmsghdr are plain old data; zero is empty.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
    for i in 0..count {
        iovs[i] = libc::iovec {
            iov_base: slots[i].as_mut_ptr().cast(),
            iov_len: slots[i].len(),
        };
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `count` headers each point at one iovec over a live slot; all outlive
    // the call.
    let n = check(unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    })?;
    for i in 0..n {
        lens[i] = msgs[i].msg_len as usize;
    }
    Ok(n)
}

/// Sends `segments` to `to` as one `UDP_SEGMENT` (GSO) send of `segment` bytes per datagram
/// (the last may be shorter); the kernel splits it. A single segment goes as a plain send.
pub fn send_gso(
    sock: &UdpSocket,
    to: SocketAddr,
    segments: &[&[u8]],
    segment: usize,
) -> io::Result<usize> {
    let sa = sockaddr_in(to)?;
    let count = segments.len().min(MAX_BATCH);
    // SAFETY: iovec is plain old data; zero is empty.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
    for (iov, s) in iovs.iter_mut().zip(&segments[..count]) {
        iov.iov_base = s.as_ptr() as *mut libc::c_void;
        iov.iov_len = s.len();
    }
    send_iov(sock, &sa, &iovs[..count], (count > 1).then_some(segment))
}

/// Sends `buf` as one `UDP_SEGMENT` send of `segment`-byte datagrams (or plain if `segment`
/// covers it all).
pub fn send_split(
    sock: &UdpSocket,
    to: SocketAddr,
    buf: &[u8],
    segment: usize,
) -> io::Result<usize> {
    let sa = sockaddr_in(to)?;
    let iov = [libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    }];
    send_iov(sock, &sa, &iov, (segment < buf.len()).then_some(segment))
}

fn send_iov(
    sock: &UdpSocket,
    sa: &libc::sockaddr_in,
    iovs: &[libc::iovec],
    segment: Option<usize>,
) -> io::Result<usize> {
    let mut cmsg = CmsgSpace([0; 32]);
    // SAFETY: msghdr is plain old data; zero is "no name, no control".
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (sa as *const libc::sockaddr_in as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = iovs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iovs.len();
    if let Some(segment) = segment {
        let size = u16::try_from(segment).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "GSO segment over 65,535 B")
        })?;
        // SAFETY: CMSG_SPACE of a u16 is 16 bytes, inside the 32-byte aligned buffer.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        msg.msg_control = cmsg.0.as_mut_ptr().cast();
        // SAFETY: msg_control points at msg_controllen bytes, so CMSG_FIRSTHDR is non-null and
        // its CMSG_DATA has room for the u16.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
        }
    }
    // SAFETY: msg points at the live address, iovecs over live buffers and the cmsg buffer.
    check(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) } as libc::c_int)
}

/// Sends each of `datagrams` to `to` in one `sendmmsg`; returns how many the kernel took.
pub fn send_batch(sock: &UdpSocket, to: SocketAddr, datagrams: &[&[u8]]) -> io::Result<usize> {
    let mut sa = sockaddr_in(to)?;
    let count = datagrams.len().min(MAX_BATCH);
    // SAFETY: iovec and mmsghdr are plain old data; zero is empty.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
    for i in 0..count {
        iovs[i] = libc::iovec {
            iov_base: datagrams[i].as_ptr() as *mut libc::c_void,
            iov_len: datagrams[i].len(),
        };
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = (&mut sa as *mut libc::sockaddr_in).cast();
        msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    }
    // SAFETY: the first `count` headers point at the live address and iovecs over live buffers.
    check(unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            0,
        )
    })
}

/// This process's CPU time so far (user + system), in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: rusage is plain old data; getrusage fills it and cannot fail for RUSAGE_SELF.
    let mut ru: libc::rusage = unsafe { zeroed() };
    // SAFETY: ru is a live rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        (tx, rx)
    }

    #[test]
    fn a_gso_send_arrives_as_segments_and_gro_can_take_them_whole() {
        let (tx, rx) = pair();
        let to = rx.local_addr().unwrap();
        let a = [1u8; 1000];
        let b = [2u8; 1000];
        let c = [3u8; 300];
        assert_eq!(send_gso(&tx, to, &[&a, &b, &c], 1000).unwrap(), 2300);
        let mut slots = vec![[0u8; 2048]; 4];
        let mut lens = [0usize; 4];
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = recv_batch(&rx, &mut slots, &mut lens).unwrap();
            got.extend((0..n).map(|i| (lens[i], slots[i][0])));
        }
        assert_eq!(got, vec![(1000, 1), (1000, 2), (300, 3)]);

        enable_gro(&rx).unwrap();
        send_split(&tx, to, &[7u8; 3000], 1000).unwrap();
        let mut buf = vec![0u8; MAX_UDP_PAYLOAD];
        let mut total = 0;
        while total < 3000 {
            let (n, segment) = recv_gro(&rx, &mut buf).unwrap();
            assert_eq!(segment.min(n), if n >= 1000 { 1000 } else { n });
            total += n;
        }
        assert_eq!(total, 3000);
    }

    #[test]
    fn a_batch_send_delivers_every_datagram_and_cpu_time_counts_up() {
        let (tx, rx) = pair();
        let to = rx.local_addr().unwrap();
        let d: Vec<[u8; 64]> = (0..10u8).map(|i| [i; 64]).collect();
        let refs: Vec<&[u8]> = d.iter().map(|x| &x[..]).collect();
        assert_eq!(send_batch(&tx, to, &refs).unwrap(), 10);
        let mut slots = vec![[0u8; 2048]; 16];
        let mut lens = [0usize; 16];
        let mut seen = 0;
        while seen < 10 {
            let n = recv_batch(&rx, &mut slots, &mut lens).unwrap();
            for i in 0..n {
                assert_eq!((lens[i], slots[i][0]), (64, seen as u8));
                seen += 1;
            }
        }
        assert!(cpu_seconds() > 0.0);
        assert!(send_batch(&tx, "[::1]:9".parse().unwrap(), &refs).is_err());
    }
}
