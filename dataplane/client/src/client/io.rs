//! The client's I/O loop: writing pending frames, reading and handling what the node sends,
//! and waiting (with `poll`) for either, until a condition holds.
//!
//! The socket is always nonblocking; blocking calls wait in [`Client::drive`] with `poll`, for
//! input and, while frames are pending, for output. Waiting on both means a client blocked on a
//! full socket still takes in credits and messages, so it and the node never wait on each other.
//! Input is handled in order: a `Deliver` goes to the caller's buffer (in `recv`) or to the
//! bounded queue; when the queue refuses one, reading stops and the message stays in the
//! receive buffer, so nothing behind it is seen until the application drains the queue.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send};
use weft_shared::session::{ClientMessage, EncodeError, FlowHandle, ServerMessage, encode_frame};

use super::Client;
use crate::error::{ClientError, Disconnect, ProtocolError};
use crate::queue::{Delivered, deliver_into};

/// What [`Client::handle_frames`] stopped at.
#[derive(Clone, Copy, Debug)]
pub(super) enum Stop {
    /// No complete frame is left.
    Empty,
    /// A message was copied into the caller's buffer.
    Delivered(Delivered),
    /// The queue refused a message; it stays at the front of the receive buffer.
    QueueFull,
}

/// What [`Client::drive`] waits for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Until {
    /// The reply to the request being waited for.
    Reply,
    /// A credit on this flow.
    Credit(FlowHandle),
    /// Every pending frame written.
    Flushed,
    /// Every pending frame written and every flow's initial credits back.
    Drained,
    /// Any progress: one pass of writing and reading, then one wait.
    Progress,
}

impl Until {
    /// Whether the condition needs input from the node (and so fails when the queue is full).
    fn needs_input(self) -> bool {
        !matches!(self, Until::Flushed)
    }
}

impl Client {
    /// Whether frames wait to be written.
    pub(super) fn has_pending(&self) -> bool {
        self.tx_start < self.tx_end
    }

    /// Ends the session for a fatal error and returns it; other errors pass through.
    pub(super) fn fail(&mut self, e: ClientError) -> ClientError {
        let reason = match &e {
            ClientError::Disconnected(r) => Some(*r),
            ClientError::Protocol(_) | ClientError::Io(_) | ClientError::Server(_) => {
                Some(Disconnect::AfterError)
            }
            _ => None,
        };
        if self.ended.is_none() {
            self.ended = reason;
        }
        e
    }

    /// Fails if the session has ended.
    pub(super) fn check_open(&self) -> Result<(), ClientError> {
        match self.ended {
            Some(reason) => Err(ClientError::Disconnected(reason)),
            None => Ok(()),
        }
    }

    /// Moves pending bytes to the front of the send buffer, making room at its end.
    fn compact(&mut self) {
        if self.tx_start > 0 {
            self.tx.copy_within(self.tx_start..self.tx_end, 0);
            self.tx_end -= self.tx_start;
            self.tx_start = 0;
        }
    }

    /// Appends one frame to the send buffer; `Ok(false)` if there is no room for it now.
    pub(super) fn encode(&mut self, id: u32, msg: &ClientMessage<'_>) -> Result<bool, ClientError> {
        self.compact();
        let spare = self.tx.get_mut(self.tx_end..).unwrap_or_default();
        match encode_frame(id, msg, spare) {
            Ok(n) => {
                self.tx_end += n;
                Ok(true)
            }
            Err(EncodeError::BufferFull { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends `Send` frames for as many of `payloads` as `max` and the buffer's room allow,
    /// returning how many. Lengths were checked by the caller.
    pub(super) fn encode_sends<P: AsRef<[u8]>>(
        &mut self,
        flow: FlowHandle,
        payloads: &[P],
        max: u32,
    ) -> Result<usize, ClientError> {
        self.compact();
        let mut n = 0;
        for p in payloads
            .iter()
            .take(usize::try_from(max).unwrap_or(usize::MAX))
        {
            let id = self.session.next_id();
            let msg = ClientMessage::Send {
                flow,
                payload: p.as_ref(),
            };
            let spare = self.tx.get_mut(self.tx_end..).unwrap_or_default();
            match encode_frame(id, &msg, spare) {
                Ok(size) => self.tx_end += size,
                Err(EncodeError::BufferFull { .. }) => break,
                Err(e) => return Err(e.into()),
            }
            n += 1;
        }
        self.session
            .spend(flow, u32::try_from(n).unwrap_or(u32::MAX));
        self.session.stats.sends += n as u64;
        Ok(n)
    }

    /// Encodes the requests that undo abandoned ones, as room allows.
    fn encode_cleanup(&mut self) -> Result<(), ClientError> {
        while let Some(msg) = self.session.cleanup().pop() {
            let id = self.session.next_id();
            if !self.encode(id, &msg)? {
                self.session.cleanup().push(msg);
                break;
            }
            self.session.absorb(id);
        }
        Ok(())
    }

    /// Writes pending frames without waiting; `Ok(true)` if none are left.
    pub(super) fn flush_nowait(&mut self) -> Result<bool, ClientError> {
        self.check_open()?;
        while self.tx_start < self.tx_end {
            let pending = self.tx.get(self.tx_start..self.tx_end).unwrap_or_default();
            // MSG_NOSIGNAL: a node that went away is an error here, not a SIGPIPE.
            match send(self.stream.as_raw_fd(), pending, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => {
                    self.session.stats.writes += 1;
                    self.tx_start += n;
                }
                Err(Errno::EAGAIN) => return Ok(false),
                Err(Errno::EINTR) => {}
                Err(Errno::EPIPE | Errno::ECONNRESET) => {
                    return Err(self.fail(ClientError::Disconnected(Disconnect::EndOfStream)));
                }
                Err(e) => return Err(self.fail(io::Error::from(e).into())),
            }
        }
        self.tx_start = 0;
        self.tx_end = 0;
        Ok(true)
    }

    /// Reads once without waiting; `Ok(true)` if bytes came.
    pub(super) fn fill_nowait(&mut self) -> Result<bool, ClientError> {
        self.check_open()?;
        if self.queue_blocked || self.rx.is_full() {
            return Ok(false);
        }
        match self.rx.read_from(&mut self.stream) {
            Ok(0) => Err(self.fail(ClientError::Disconnected(Disconnect::EndOfStream))),
            Ok(_) => {
                self.session.stats.reads += 1;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                Err(self.fail(ClientError::Disconnected(Disconnect::EndOfStream)))
            }
            Err(e) => Err(self.fail(e.into())),
        }
    }

    /// Waits until the socket is readable (if `read`) or writable (if frames are pending), or
    /// until `deadline`; `Ok(false)` if the deadline passed first.
    pub(super) fn wait(
        &mut self,
        read: bool,
        deadline: Option<Instant>,
    ) -> Result<bool, ClientError> {
        let mut events = PollFlags::empty();
        if read {
            events |= PollFlags::POLLIN;
        }
        if self.has_pending() {
            events |= PollFlags::POLLOUT;
        }
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                // Round up, so a wait never ends just before its deadline and spins.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(self.stream.as_fd(), events)];
        match poll(&mut fds, timeout) {
            Ok(0) => Ok(deadline.is_none_or(|d| Instant::now() < d)),
            Ok(_) | Err(Errno::EINTR) => Ok(true),
            Err(e) => Err(self.fail(io::Error::from(e).into())),
        }
    }

    /// Handles the complete frames in the receive buffer, in order. With `user`, stops after
    /// copying the first `Deliver` into it; otherwise `Deliver`s go to the queue, stopping at
    /// one it refuses.
    pub(super) fn handle_frames(
        &mut self,
        mut user: Option<&mut [u8]>,
    ) -> Result<Stop, ClientError> {
        let mut reader = self.rx.frames();
        let mut consumed = 0;
        let mut stop = Stop::Empty;
        let mut error = None;
        while let Some(item) = reader.next() {
            let msg = match item {
                Ok(frame) => match ServerMessage::decode(&frame) {
                    Ok(msg) => (frame.request_id, msg),
                    Err(e) => {
                        error = Some(ProtocolError::from(e).into());
                        break;
                    }
                },
                Err(e) => {
                    error = Some(ProtocolError::from(e).into());
                    break;
                }
            };
            match self.session.handle(msg.0, msg.1) {
                Ok(None) => {}
                Ok(Some(d)) => {
                    if let Some(buf) = user.take() {
                        stop = Stop::Delivered(deliver_into(&d, buf));
                    } else if self.queue.push(&d) {
                        self.session.stats.queued += 1;
                    } else {
                        // Leave it unconsumed: reading stops until the queue has room.
                        stop = Stop::QueueFull;
                        break;
                    }
                    self.session.stats.delivers += 1;
                }
                Err(e) => error = Some(e),
            }
            consumed = reader.consumed();
            if error.is_some() || matches!(stop, Stop::Delivered(_)) {
                break;
            }
        }
        self.rx.consume(consumed);
        self.queue_blocked = matches!(stop, Stop::QueueFull);
        if let Some(e) = error {
            return Err(self.fail(e));
        }
        if self.ended.is_none() {
            self.encode_cleanup()?;
        }
        Ok(stop)
    }

    /// Whether `until` holds.
    fn satisfied(&mut self, until: Until) -> Result<bool, ClientError> {
        Ok(match until {
            Until::Reply => self.session.has_reply(),
            Until::Credit(flow) => match self.session.credits(flow) {
                Some(c) => c > 0,
                None => return Err(ClientError::UnknownFlow(flow)),
            },
            Until::Flushed => !self.has_pending(),
            Until::Drained => !self.has_pending() && self.session.drained(),
            Until::Progress => false,
        })
    }

    /// Writes, reads and handles frames until `until` holds. Without `block`, makes one pass
    /// and returns [`ClientError::WouldBlock`] if it does not hold then; with it, waits up to
    /// `deadline` ([`ClientError::TimedOut`]). [`ClientError::ReceiveQueueFull`] if it needs
    /// input but the queue is full.
    pub(super) fn drive(
        &mut self,
        until: Until,
        deadline: Option<Instant>,
        block: bool,
    ) -> Result<(), ClientError> {
        let mut waited = false;
        loop {
            self.flush_nowait()?;
            self.handle_frames(None)?;
            if self.satisfied(until)? {
                return Ok(());
            }
            if self.fill_nowait()? {
                continue;
            }
            if matches!(until, Until::Progress) && waited {
                return Ok(());
            }
            let can_read = !self.queue_blocked;
            if !can_read && until.needs_input() {
                self.session.stats.queue_full += 1;
                return Err(ClientError::ReceiveQueueFull {
                    messages: self.queue.len(),
                    bytes: self.queue.bytes(),
                });
            }
            if !block {
                return Err(ClientError::WouldBlock);
            }
            if !self.wait(can_read, deadline)? {
                return Err(ClientError::TimedOut);
            }
            waited = true;
        }
    }
}
