//! UDP sockets for the driver and the raw socket-address and control-message bytes it exchanges
//! with the kernel.
//!
//! [`bind_udp`] makes a worker's socket: `SO_REUSEPORT` so several workers can share one local
//! address, large socket buffers (bursts are otherwise dropped silently, see the measurements'
//! pitfall 7), non-blocking, and optionally `UDP_GRO`. The rest of this file encodes destination
//! addresses and the `UDP_SEGMENT` control message for sends, and decodes source addresses and the
//! `UDP_GRO` control message from received buffers, all by plain byte handling.
//! [`socket_drops`] reads how many datagrams the kernel dropped at a socket.

#![allow(
    unsafe_code,
    reason = "getsockopt(SO_MEMINFO), which nix does not wrap"
)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, setsockopt, socket, sockopt,
};

/// How [`bind_udp`] sets up a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    /// Set `SO_REUSEPORT` before binding, so each worker can bind its own socket to the same
    /// address and the kernel spreads flows over them.
    pub reuse_port: bool,
    /// Receive buffer in bytes: `SO_RCVBUFFORCE` (works as root, ignores `rmem_max`), falling
    /// back to `SO_RCVBUF` (capped by `net.core.rmem_max`). 0 leaves the default.
    pub recv_buffer: usize,
    /// Send buffer in bytes, `SO_SNDBUFFORCE` falling back to `SO_SNDBUF`. 0 leaves the default.
    pub send_buffer: usize,
    /// Enable `UDP_GRO`: the kernel may hand over several same-size datagrams of one flow as one
    /// super-packet, with the segment size in a control message. The driver's buffers must then
    /// hold a whole super-packet (see `DriverConfig::with_gro`).
    pub gro: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            reuse_port: true,
            recv_buffer: 8 << 20,
            send_buffer: 4 << 20,
            gro: false,
        }
    }
}

/// Creates a non-blocking, close-on-exec UDP socket bound to `addr` with `opts` applied.
///
/// Errors are those of `socket(2)`, `setsockopt(2)` and `bind(2)`; an `EPERM` from the FORCE
/// buffer options is not an error (the plain option is used instead).
pub fn bind_udp(addr: SocketAddr, opts: &SocketOptions) -> io::Result<UdpSocket> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    if opts.reuse_port {
        setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    if opts.recv_buffer > 0 {
        match setsockopt(&fd, sockopt::RcvBufForce, &opts.recv_buffer) {
            Err(Errno::EPERM) => setsockopt(&fd, sockopt::RcvBuf, &opts.recv_buffer)?,
            other => other?,
        }
    }
    if opts.send_buffer > 0 {
        match setsockopt(&fd, sockopt::SndBufForce, &opts.send_buffer) {
            Err(Errno::EPERM) => setsockopt(&fd, sockopt::SndBuf, &opts.send_buffer)?,
            other => other?,
        }
    }
    if opts.gro {
        setsockopt(&fd, sockopt::UdpGroSegment, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(UdpSocket::from(fd))
}

/// `SO_MEMINFO` from `<asm-generic/socket.h>` (the value on every architecture but SPARC and
/// PA-RISC); the libc crate does not export it.
const SO_MEMINFO: libc::c_int = 55;
/// Number of `u32` words `SO_MEMINFO` fills (`SK_MEMINFO_VARS` since Linux 4.18).
const SK_MEMINFO_VARS: usize = 9;

/// How many datagrams the kernel has dropped at `sock` since it was created: chiefly those that
/// arrived while its receive buffer was full, also checksum and filter drops (`SK_MEMINFO_DROPS`,
/// the `drops` column of `/proc/net/udp`). A GRO super-packet counts once per segment. The
/// kernel keeps it in 32 bits, so it wraps; compare readings with `wrapping_sub`.
///
/// One `getsockopt(2)`: call it now and then (the worker does every 100 ms), not per packet.
pub fn socket_drops(sock: &UdpSocket) -> io::Result<u32> {
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a live, writable array of `len` bytes and `len` is a valid in/out length;
    // the kernel writes at most `len` bytes and stores the length it wrote back into `len`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let drops = libc::SK_MEMINFO_DROPS as usize;
    if (len as usize) < (drops + 1) * size_of::<u32>() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_MEMINFO has no drop counter on this kernel (Linux 4.18 or newer has)",
        ));
    }
    Ok(info[drops])
}

/// Room for any socket address the driver handles (`sockaddr_in6` is 28 bytes), padded so the
/// control data that follows it in a receive buffer starts 8-byte aligned.
pub(crate) const NAME_LEN: u32 = 32;

/// `sizeof(struct cmsghdr)` on 64-bit Linux; `CMSG_DATA` starts right after it.
const CMSG_HDR: usize = 16;
const _: () = assert!(size_of::<libc::cmsghdr>() == CMSG_HDR);

/// `CMSG_SPACE(sizeof(int))`: room for the one `UDP_GRO` control message.
pub(crate) const GRO_CONTROL_LEN: u32 = (CMSG_HDR + 8) as u32;

/// A destination address in the form `sendmsg(2)` takes it. Written through its fields only,
/// never read by Rust: the kernel reads it through `msg_name`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    /// An all-zero address.
    pub(crate) fn zeroed() -> Self {
        RawAddr {
            v6: libc::sockaddr_in6 {
                sin6_family: 0,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
                sin6_scope_id: 0,
            },
        }
    }

    /// Stores `addr` and returns its length for `msg_namelen`.
    pub(crate) fn set(&mut self, addr: SocketAddr) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                self.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                self.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }
}

/// Decodes the `sockaddr_in`/`sockaddr_in6` bytes the kernel wrote as a datagram's source.
pub(crate) fn decode_addr(b: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flowinfo = u32::from_ne_bytes(b.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flowinfo,
                scope,
            )))
        }
        _ => None,
    }
}

/// Finds the `UDP_GRO` control message in received control data and returns the segment size
/// it carries. `None` when absent (the datagram was not coalesced) or malformed.
pub(crate) fn gro_segment_size(control: &[u8]) -> Option<u16> {
    let mut off = 0usize;
    while let Some(hdr) = control.get(off..off + CMSG_HDR) {
        let len = usize::from_ne_bytes(hdr[0..8].try_into().ok()?);
        let level = i32::from_ne_bytes(hdr[8..12].try_into().ok()?);
        let kind = i32::from_ne_bytes(hdr[12..16].try_into().ok()?);
        if len < CMSG_HDR || off.checked_add(len)? > control.len() {
            return None;
        }
        if level == libc::SOL_UDP && kind == libc::UDP_GRO {
            let data = control.get(off + CMSG_HDR..off + CMSG_HDR + 4)?;
            let size = i32::from_ne_bytes(data.try_into().ok()?);
            return u16::try_from(size).ok().filter(|&s| s > 0);
        }
        off += len.checked_add(7)? & !7;
    }
    None
}

/// `sizeof(struct io_uring_recvmsg_out)`: the header multishot RECVMSG writes at the start of
/// each provided buffer, followed by the name field, the control field and the payload.
pub(crate) const RECVMSG_OUT_LEN: usize = 16;

/// Where the parts of one multishot RECVMSG result lie in its buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecvOut {
    /// The source address bytes.
    pub(crate) name: Range<usize>,
    /// The control messages.
    pub(crate) control: Range<usize>,
    /// The payload as copied.
    pub(crate) payload: Range<usize>,
    /// The datagram was longer than the room left in the buffer (`MSG_TRUNC`).
    pub(crate) truncated: bool,
}

/// Parses the `io_uring_recvmsg_out` layout in `buf` (the CQE's `res` bytes of the buffer), for
/// a request whose msghdr had `name_len` and `control_len`. `None` if `buf` is too short.
pub(crate) fn parse_recvmsg_out(
    buf: &[u8],
    name_len: usize,
    control_len: usize,
) -> Option<RecvOut> {
    let word = |i: usize| -> Option<usize> {
        let b: [u8; 4] = buf.get(i * 4..i * 4 + 4)?.try_into().ok()?;
        Some(u32::from_ne_bytes(b) as usize)
    };
    let (namelen, controllen, payloadlen, flags) = (word(0)?, word(1)?, word(2)?, word(3)?);
    let control_start = RECVMSG_OUT_LEN + name_len;
    let payload_start = control_start + control_len;
    let room = buf.len().checked_sub(payload_start)?;
    let copied = payloadlen.min(room);
    Some(RecvOut {
        name: RECVMSG_OUT_LEN..RECVMSG_OUT_LEN + namelen.min(name_len),
        control: control_start..control_start + controllen.min(control_len),
        payload: payload_start..payload_start + copied,
        truncated: flags & (libc::MSG_TRUNC as usize) != 0 || copied < payloadlen,
    })
}

/// The msghdr a multishot RECVMSG takes: only the name and control lengths matter.
pub(crate) fn recv_msghdr(control_len: u32) -> libc::msghdr {
    libc::msghdr {
        msg_name: std::ptr::null_mut(),
        msg_namelen: NAME_LEN,
        msg_iov: std::ptr::null_mut(),
        msg_iovlen: 0,
        msg_control: std::ptr::null_mut(),
        msg_controllen: control_len as usize,
        msg_flags: 0,
    }
}

/// One `UDP_SEGMENT` control message (`CMSG_SPACE(sizeof(u16))` bytes), as `sendmsg(2)` takes it.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub(crate) struct GsoCmsg([u8; CMSG_HDR + 8]);

impl GsoCmsg {
    /// An empty message; filled by [`GsoCmsg::set`].
    pub(crate) const fn zeroed() -> Self {
        GsoCmsg([0; CMSG_HDR + 8])
    }

    /// Writes a `UDP_SEGMENT` message carrying `segment` bytes per datagram.
    pub(crate) fn set(&mut self, segment: u16) {
        // cmsg_len = CMSG_LEN(sizeof(u16)), i.e. without the trailing padding.
        self.0[0..8].copy_from_slice(&(CMSG_HDR + 2).to_ne_bytes());
        self.0[8..12].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
        self.0[12..16].copy_from_slice(&libc::UDP_SEGMENT.to_ne_bytes());
        self.0[16..18].copy_from_slice(&segment.to_ne_bytes());
    }

    /// The length for `msg_controllen`.
    pub(crate) const LEN: usize = CMSG_HDR + 8;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    /// The bytes of a `sockaddr_in`/`sockaddr_in6` as `<netinet/in.h>` lays them out.
    fn raw_bytes(addr: SocketAddr) -> Vec<u8> {
        let mut b = Vec::new();
        match addr {
            SocketAddr::V4(a) => {
                b.extend((libc::AF_INET as u16).to_ne_bytes());
                b.extend(a.port().to_be_bytes());
                b.extend(a.ip().octets());
                b.extend([0; 8]);
            }
            SocketAddr::V6(a) => {
                b.extend((libc::AF_INET6 as u16).to_ne_bytes());
                b.extend(a.port().to_be_bytes());
                b.extend(a.flowinfo().to_ne_bytes());
                b.extend(a.ip().octets());
                b.extend(a.scope_id().to_ne_bytes());
            }
        }
        assert_eq!(b.len(), if addr.is_ipv4() { 16 } else { 28 });
        b
    }

    #[test]
    fn decodes_kernel_style_addresses() {
        for a in [
            "127.0.0.1:9".parse::<SocketAddr>().unwrap(),
            "10.1.2.3:65535".parse().unwrap(),
            "[::1]:443".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 7, 0, 3)),
        ] {
            assert_eq!(decode_addr(&raw_bytes(a)), Some(a));
        }
        assert_eq!(decode_addr(&[]), None);
        assert_eq!(
            decode_addr(&raw_bytes("[::1]:1".parse().unwrap())[..20]),
            None
        );
        assert_eq!(decode_addr(&[0xff, 0xff, 0, 1, 0, 0, 0, 0]), None);
    }

    #[test]
    fn finds_gro_cmsg_and_rejects_garbage() {
        let mut c = vec![0u8; 48];
        // An unrelated message first (SOL_SOCKET/SO_TIMESTAMP-like, 4 data bytes), then UDP_GRO.
        c[0..8].copy_from_slice(&20usize.to_ne_bytes());
        c[8..12].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        c[12..16].copy_from_slice(&29i32.to_ne_bytes());
        c[24..32].copy_from_slice(&20usize.to_ne_bytes());
        c[32..36].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
        c[36..40].copy_from_slice(&libc::UDP_GRO.to_ne_bytes());
        c[40..44].copy_from_slice(&1200i32.to_ne_bytes());
        assert_eq!(gro_segment_size(&c), Some(1200));
        assert_eq!(gro_segment_size(&c[..30]), None, "truncated");
        c[0..8].copy_from_slice(&4usize.to_ne_bytes());
        assert_eq!(gro_segment_size(&c), None, "cmsg_len below header");
        c[0..8].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(gro_segment_size(&c), None, "overflowing cmsg_len");
        assert_eq!(gro_segment_size(&[]), None);
    }

    #[test]
    fn parses_recvmsg_out() {
        let mut b = vec![0u8; 16 + 32 + 24 + 10];
        b[0..4].copy_from_slice(&16u32.to_ne_bytes()); // namelen (sockaddr_in)
        b[4..8].copy_from_slice(&24u32.to_ne_bytes());
        b[8..12].copy_from_slice(&10u32.to_ne_bytes());
        let out = parse_recvmsg_out(&b, 32, 24).unwrap();
        assert_eq!(
            (out.name, out.control, out.payload),
            (16..32, 48..72, 72..82)
        );
        assert!(!out.truncated);
        // The datagram was 30 bytes but only 10 fit.
        b[8..12].copy_from_slice(&30u32.to_ne_bytes());
        assert!(parse_recvmsg_out(&b, 32, 24).unwrap().truncated);
        b[8..12].copy_from_slice(&10u32.to_ne_bytes());
        b[12..16].copy_from_slice(&(libc::MSG_TRUNC as u32).to_ne_bytes());
        assert!(parse_recvmsg_out(&b, 32, 24).unwrap().truncated);
        assert_eq!(parse_recvmsg_out(&b[..60], 32, 24), None);
        assert_eq!(parse_recvmsg_out(&b[..8], 32, 24), None);
    }

    #[test]
    fn socket_drops_reads_the_kernel_counter() {
        // A tiny receive buffer that nobody reads: the kernel keeps a few datagrams and drops
        // the rest.
        let opts = SocketOptions {
            recv_buffer: 1,
            send_buffer: 0,
            ..SocketOptions::default()
        };
        let rx = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        assert_eq!(socket_drops(&rx).unwrap(), 0);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        for _ in 0..200 {
            tx.send_to(&[0u8; 1000], to).unwrap();
        }
        let drops = socket_drops(&rx).unwrap();
        assert!(drops > 100, "{drops} drops");
        let mut buf = [0u8; 2000];
        let mut kept = 0;
        while rx.recv(&mut buf).is_ok() {
            kept += 1;
        }
        assert_eq!(
            kept + drops,
            200,
            "every datagram was either kept or counted"
        );
    }

    #[test]
    fn gso_cmsg_layout() {
        let mut m = GsoCmsg::zeroed();
        m.set(1400);
        assert_eq!(GsoCmsg::LEN, 24);
        assert_eq!(usize::from_ne_bytes(m.0[0..8].try_into().unwrap()), 18);
        assert_eq!(u16::from_ne_bytes([m.0[16], m.0[17]]), 1400);
    }
}
