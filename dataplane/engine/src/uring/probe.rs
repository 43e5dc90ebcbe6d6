//! Start-up probe: is io_uring usable here, and which of the features the driver uses exist?
//!
//! [`probe`] does not trust version numbers: it sets a ring up with the flags the driver wants,
//! asks the kernel for its opcode table, registers a file and a provided-buffer ring, and then
//! really runs a multishot RECVMSG and a multishot POLL_ADD on loopback, and a GSO send. What is
//! required and missing comes back as a [`ProbeError`] that says what to change; what is optional
//! is reported in [`Features`].

#![allow(
    unsafe_code,
    reason = "pushes SQEs and registers a buffer ring for the probe"
)]

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{IoUring, Probe, cqueue, opcode};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg, setsockopt, sockopt};

use super::bufring::{BGID, BufRing};
use super::socket::{GRO_CONTROL_LEN, recv_msghdr};

/// What this kernel offers beyond the driver's requirements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// The value of `kernel.io_uring_disabled` (0 when the sysctl does not exist).
    pub io_uring_disabled_sysctl: u8,
    /// Rings can be set up with `IORING_SETUP_SINGLE_ISSUER` (Linux 6.0).
    pub single_issuer: bool,
    /// Rings can be set up with `IORING_SETUP_DEFER_TASKRUN` (Linux 6.1): completions are
    /// processed only when the worker waits, which cut ENOBUFS episodes to zero in measurements.
    pub defer_taskrun: bool,
    /// `IORING_OP_READ` is supported.
    pub read_op: bool,
    /// `IORING_OP_TIMEOUT` is supported (the driver waits with `EXT_ARG` timeouts instead).
    pub timeout_op: bool,
    /// The `UDP_GRO` socket option is accepted (receive offload, Linux 5.0).
    pub udp_gro: bool,
    /// A `sendmsg` with a `UDP_SEGMENT` control message succeeded on loopback (send offload,
    /// Linux 4.18). A real device may still refuse it with `EIO`; the driver then falls back.
    pub udp_gso: bool,
}

/// A feature the driver needs is missing. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// `kernel.io_uring_disabled` is 2, so io_uring is off for every process.
    #[error(
        "io_uring is disabled by kernel.io_uring_disabled=2; run `sysctl -w kernel.io_uring_disabled=0`"
    )]
    Disabled,
    /// `io_uring_setup` returned `EPERM`: the sysctl is 1 and this user is not in
    /// `kernel.io_uring_group`, or a seccomp filter (for example a container's default profile)
    /// blocks io_uring.
    #[error(
        "io_uring_setup is not permitted (kernel.io_uring_disabled={sysctl}); set it to 0, add this \
         user to the group in kernel.io_uring_group, or allow io_uring_* in the seccomp profile"
    )]
    PermissionDenied {
        /// The sysctl's value when the probe ran.
        sysctl: u8,
    },
    /// `io_uring_setup` returned `ENOSYS`: the kernel is built without io_uring.
    #[error(
        "this kernel has no io_uring (ENOSYS); use Linux 6.1 or newer built with CONFIG_IO_URING=y"
    )]
    NotSupported,
    /// `io_uring_setup` failed for another reason (for example `ENOMEM` under a low
    /// `RLIMIT_MEMLOCK` on kernels before 5.12).
    #[error("io_uring_setup failed: {0}; check `ulimit -l` and the kernel log")]
    Setup(#[source] io::Error),
    /// The kernel lacks `IORING_FEAT_EXT_ARG` (Linux 5.11), needed for timed waits.
    #[error("io_uring lacks IORING_FEAT_EXT_ARG (timed waits); use Linux 6.1 or newer")]
    NoExtArg,
    /// A required opcode is missing from the kernel's opcode table.
    #[error("io_uring opcode {name} is not supported; use Linux 6.1 or newer")]
    MissingOpcode {
        /// The opcode's name.
        name: &'static str,
    },
    /// `IORING_REGISTER_FILES` failed.
    #[error("registering files with io_uring failed: {0}; check `ulimit -n`")]
    RegisterFiles(#[source] io::Error),
    /// Provided-buffer rings (`IORING_REGISTER_PBUF_RING`, Linux 5.19) are unavailable.
    #[error("provided buffer rings are unavailable: {0}; use Linux 6.1 or newer")]
    NoBufRing(#[source] io::Error),
    /// A multishot RECVMSG on a loopback UDP socket did not deliver (Linux 6.0).
    #[error("multishot RECVMSG does not work here ({detail}); use Linux 6.1 or newer")]
    NoMultishotRecv {
        /// What went wrong.
        detail: String,
    },
    /// A multishot POLL_ADD on an eventfd did not fire (Linux 5.13).
    #[error("multishot POLL_ADD does not work here ({detail}); use Linux 6.1 or newer")]
    NoMultishotPoll {
        /// What went wrong.
        detail: String,
    },
    /// Creating the loopback sockets or the eventfd the probe uses failed.
    #[error("could not create the probe's loopback sockets or eventfd: {0}")]
    Io(#[source] io::Error),
}

/// Sets up a ring with `entries` SQEs and `cq_entries` CQEs, with SINGLE_ISSUER and
/// DEFER_TASKRUN when asked.
pub(crate) fn build_ring(
    entries: u32,
    cq_entries: u32,
    single_issuer: bool,
    defer_taskrun: bool,
) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_cqsize(cq_entries);
    if single_issuer {
        b.setup_single_issuer();
    }
    if single_issuer && defer_taskrun {
        b.setup_defer_taskrun();
    }
    b.build(entries)
}

/// Probes io_uring and UDP offloads on this machine. Takes a few milliseconds; call it once at
/// start-up and pass the result to [`super::UdpDriver::new`].
pub fn probe() -> Result<Features, ProbeError> {
    let sysctl = fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(0);
    if sysctl >= 2 {
        return Err(ProbeError::Disabled);
    }

    // Everything the kernel may touch is created before the ring, so the ring drops first.
    let bufs = BufRing::new(4, 256).map_err(ProbeError::Io)?;
    let msg = recv_msghdr(GRO_CONTROL_LEN);
    let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(ProbeError::Io)?;
    let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(ProbeError::Io)?;
    let efd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
        .map_err(|e| ProbeError::Io(e.into()))?;

    let mut single_issuer = true;
    let mut defer_taskrun = true;
    let mut ring = loop {
        match build_ring(8, 16, single_issuer, defer_taskrun) {
            Ok(r) => break r,
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOSYS) => return Err(ProbeError::NotSupported),
                Some(libc::EPERM) => return Err(ProbeError::PermissionDenied { sysctl }),
                Some(libc::EINVAL) if defer_taskrun => defer_taskrun = false,
                Some(libc::EINVAL) if single_issuer => single_issuer = false,
                _ => return Err(ProbeError::Setup(e)),
            },
        }
    };
    if !ring.params().is_feature_ext_arg() {
        return Err(ProbeError::NoExtArg);
    }
    let mut ops = Probe::new();
    ring.submitter()
        .register_probe(&mut ops)
        .map_err(ProbeError::Setup)?;
    for (code, name) in [
        (opcode::RecvMsg::CODE, "RECVMSG"),
        (opcode::SendMsg::CODE, "SENDMSG"),
        (opcode::PollAdd::CODE, "POLL_ADD"),
    ] {
        if !ops.is_supported(code) {
            return Err(ProbeError::MissingOpcode { name });
        }
    }

    ring.submitter()
        .register_files(&[rx.as_raw_fd()])
        .map_err(ProbeError::RegisterFiles)?;
    // SAFETY: `bufs` describes a live, page-aligned ring of 4 entries that outlives `ring` (it
    // was declared first), and it is unregistered below before either drops.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(bufs.ring_addr(), 4, BGID, 0)
    }
    .map_err(ProbeError::NoBufRing)?;

    let rx_addr = rx.local_addr().map_err(ProbeError::Io)?;
    for d in [&b"probe-1"[..], b"probe-2"] {
        tx.send_to(d, rx_addr).map_err(ProbeError::Io)?;
    }
    efd.write(1).map_err(|e| ProbeError::Io(e.into()))?;
    let recv = opcode::RecvMsgMulti::new(Fixed(0), &msg, BGID)
        .build()
        .user_data(1);
    let poll = opcode::PollAdd::new(Fd(efd.as_raw_fd()), libc::POLLIN as u32)
        .multi(true)
        .build()
        .user_data(2);
    // SAFETY: the msghdr, the buffer ring and the eventfd outlive `ring`, and all requests are
    // cancelled before this function returns.
    unsafe {
        let mut sq = ring.submission();
        sq.push(&recv)
            .map_err(|_| ProbeError::Setup(io::ErrorKind::OutOfMemory.into()))?;
        sq.push(&poll)
            .map_err(|_| ProbeError::Setup(io::ErrorKind::OutOfMemory.into()))?;
    }

    let (mut got, mut recv_more, mut poll_res, mut recv_err) = (0, true, None, None);
    let deadline = Instant::now() + Duration::from_secs(2);
    while (got < 2 || poll_res.is_none()) && recv_err.is_none() && Instant::now() < deadline {
        let ts = Timespec::from(Duration::from_millis(50));
        match ring
            .submitter()
            .submit_with_args(1, &SubmitArgs::new().timespec(&ts))
        {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => return Err(ProbeError::Setup(e)),
        }
        for cqe in ring.completion() {
            match cqe.user_data() {
                1 if cqe.result() > 0 && cqueue::buffer_select(cqe.flags()).is_some() => {
                    got += 1;
                    recv_more &= cqueue::more(cqe.flags());
                }
                1 => recv_err = Some(cqe.result()),
                2 => poll_res = Some((cqe.result(), cqueue::more(cqe.flags()))),
                _ => {}
            }
        }
    }
    let _ = ring
        .submitter()
        .register_sync_cancel(None, CancelBuilder::any());
    let _ = ring.submitter().unregister_buf_ring(BGID);
    drop(ring);

    if let Some(res) = recv_err {
        let err = io::Error::from_raw_os_error(-res);
        let detail = format!("completion {err} after {got} datagrams");
        return Err(ProbeError::NoMultishotRecv { detail });
    }
    if got < 2 || !recv_more {
        let detail = format!("{got} of 2 datagrams, still armed: {recv_more}");
        return Err(ProbeError::NoMultishotRecv { detail });
    }
    match poll_res {
        Some((res, true)) if res > 0 => {}
        other => {
            return Err(ProbeError::NoMultishotPoll {
                detail: format!("completion {other:?}"),
            });
        }
    }

    let udp_gro = setsockopt(&rx, sockopt::UdpGroSegment, &true).is_ok();
    let udp_gso = gso_send_works(&tx, rx_addr);
    Ok(Features {
        io_uring_disabled_sysctl: sysctl,
        single_issuer,
        defer_taskrun,
        read_op: ops.is_supported(opcode::Read::CODE),
        timeout_op: ops.is_supported(opcode::Timeout::CODE),
        udp_gro,
        udp_gso,
    })
}

/// Sends two 4-byte datagrams as one GSO send.
fn gso_send_works(tx: &UdpSocket, to: SocketAddr) -> bool {
    let seg: u16 = 4;
    let payload = [0u8; 8];
    let iov = [io::IoSlice::new(&payload)];
    let cmsg = [ControlMessage::UdpGsoSegments(&seg)];
    let dst = SockaddrStorage::from(to);
    matches!(
        sendmsg(tx.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&dst)),
        Ok(8)
    )
}
