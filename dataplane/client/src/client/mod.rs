//! [`Client`]: one session with the local node, with a socket-like API.
//!
//! Calls block by default: `send` waits for credit, `recv` for a message, and requests
//! (`bind`, `open_flow`, `join`, ...) for their reply. In nonblocking mode
//! ([`Client::set_nonblocking`]) `send`, `send_batch` and `recv` return
//! [`ClientError::WouldBlock`] instead of waiting; requests still wait for their reply. The
//! `try_` calls never wait, whatever the mode.
//!
//! Buffers are allocated once, in [`Client::connect`]: the receive buffer, the send buffer and
//! the queue of delivered messages. Sending and receiving allocate nothing after that.

mod handshake;
mod io;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weft_shared::ids::{GroupId, NodeId, Port};
use weft_shared::session::{
    ClientMessage, DEFAULT_RECV_BUF_SIZE, Destination, FlowHandle, MAX_FRAME_SIZE, RecvBuf, Welcome,
};

use self::io::Until;
use crate::error::{ClientError, Disconnect, ProtocolError};
use crate::queue::{DeliverQueue, Delivered, ReceiveQueueLimits};
use crate::service::{Flow, Service};
use crate::state::{ClientStats, Reply, ReqKind, Session};

/// Settings for [`Client::connect_with`]; [`Default`] gives the values below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long to wait for the node's answer to `Hello` (default 5 s).
    pub handshake_timeout: Duration,
    /// How long a request (`bind`, `open_flow`, ...) waits for its reply (default 10 s).
    pub request_timeout: Duration,
    /// Size of the receive buffer (default 256 KiB; raised to the frame limit, 64 KiB).
    pub recv_buf_size: usize,
    /// Size of the send buffer, the most one batch write carries (default 256 KiB; raised to
    /// the frame limit).
    pub send_buf_size: usize,
    /// Bounds of the queue of messages that arrive while a call waits for something else.
    pub receive_queue: ReceiveQueueLimits,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            handshake_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            recv_buf_size: DEFAULT_RECV_BUF_SIZE,
            send_buf_size: DEFAULT_RECV_BUF_SIZE,
            receive_queue: ReceiveQueueLimits::default(),
        }
    }
}

/// A session with the local Weft node over its Unix socket.
///
/// Messages that arrive while a call waits for something else (a reply, a credit) are kept in
/// a bounded queue ([`ReceiveQueueLimits`], 4,096 messages and 4 MiB by default) and returned
/// by `recv` in order. When the queue is full the client **stops reading the socket**: the
/// node's backpressure applies and nothing is dropped, and a call that needs input meanwhile
/// fails with [`ClientError::ReceiveQueueFull`] until `recv` drains the queue.
///
/// Dropping the client says `Goodbye` (best effort); [`Client::close`] does it and reports
/// errors.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    welcome: Welcome,
    options: ClientOptions,
    rx: RecvBuf,
    tx: Box<[u8]>,
    /// Pending bytes are `tx[tx_start..tx_end]`.
    tx_start: usize,
    tx_end: usize,
    queue: DeliverQueue,
    /// The queue refused the `Deliver` at the front of `rx`; reading waits until it has room.
    queue_blocked: bool,
    session: Session,
    nonblocking: bool,
    ended: Option<Disconnect>,
}

impl Client {
    /// Connects to the node's session socket at `path` and opens a session named `name` (for
    /// the node's logs; at most 64 bytes), with default [`ClientOptions`].
    ///
    /// Fails with [`ClientError::NodeNotRunning`] (naming the path) if no node listens there,
    /// [`ClientError::VersionMismatch`] (with both version ranges) if the node speaks no
    /// version this client speaks, and [`ClientError::HandshakeTimeout`] if whatever listens
    /// does not answer.
    pub fn connect(path: impl AsRef<Path>, name: &str) -> Result<Client, ClientError> {
        Client::connect_with(path, name, ClientOptions::default())
    }

    /// [`Client::connect`] with explicit options.
    pub fn connect_with(
        path: impl AsRef<Path>,
        name: &str,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let path = path.as_ref().to_path_buf();
        let mut stream =
            UnixStream::connect(&path).map_err(|e| ClientError::connect(path.clone(), e))?;
        let mut rx = RecvBuf::new(options.recv_buf_size);
        let welcome =
            handshake::handshake(&mut stream, &path, name, options.handshake_timeout, &mut rx)?;
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        stream.set_nonblocking(true)?;
        Ok(Client {
            stream,
            path,
            welcome,
            options,
            rx,
            tx: vec![0; options.send_buf_size.max(MAX_FRAME_SIZE)].into_boxed_slice(),
            tx_start: 0,
            tx_end: 0,
            queue: DeliverQueue::new(options.receive_queue),
            queue_blocked: false,
            session: Session::new(usize::from(welcome.max_flows)),
            nonblocking: false,
            ended: None,
        })
    }

    /// The node this client is attached to.
    pub fn node(&self) -> NodeId {
        self.welcome.node
    }

    /// The node's `Welcome`: the protocol version and this session's limits.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The socket path this client connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the client has done so far.
    pub fn stats(&self) -> ClientStats {
        self.session.stats
    }

    /// Messages waiting in the receive queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Switches nonblocking mode: `send`, `send_batch` and `recv` then return
    /// [`ClientError::WouldBlock`] instead of waiting, and frames a full socket does not take
    /// stay buffered for the next call ([`Client::has_pending_output`]).
    pub fn set_nonblocking(&mut self, nonblocking: bool) {
        self.nonblocking = nonblocking;
    }

    /// Whether the client is in nonblocking mode.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking
    }

    /// Whether frames wait to be written (only in nonblocking mode, after a full socket); poll
    /// the socket for writability and call [`Client::flush`] or any send.
    pub fn has_pending_output(&self) -> bool {
        self.has_pending()
    }

    /// Writes every pending frame, waiting as needed (in either mode).
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.drive(Until::Flushed, None, true)
    }

    /// Writes pending frames and handles what the node sent (credits, replies; messages go to
    /// the queue), waiting up to `timeout` (forever if `None`) for something to arrive. For
    /// event loops in nonblocking mode.
    pub fn poll_io(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        match self.drive(Until::Progress, deadline, true) {
            Err(ClientError::TimedOut) => Ok(()),
            other => other,
        }
    }

    /// Sends `msg` and waits for its reply (in either mode).
    fn request(&mut self, msg: ClientMessage<'_>, kind: ReqKind) -> Result<Reply, ClientError> {
        self.check_open()?;
        if !self.session.may_request() {
            return Err(ClientError::TooManyAbandoned);
        }
        let id = self.session.next_id();
        while !self.encode(id, &msg)? {
            self.drive(Until::Flushed, None, true)?;
        }
        self.session.wait_for(id, kind);
        let deadline = Instant::now() + self.options.request_timeout;
        if let Err(e) = self.drive(Until::Reply, Some(deadline), true) {
            // The reply may still come; it is absorbed, and undone if it bound or opened.
            self.session.abandon();
            return Err(e);
        }
        match self.session.take_reply() {
            Some(Reply::Error(e)) => Err(e.into()),
            Some(reply) => Ok(reply),
            None => Err(ClientError::TimedOut),
        }
    }

    /// A reply of the wrong kind (already ruled out by the session): a protocol error.
    fn wrong_reply(request: &'static str) -> ClientError {
        ProtocolError::WrongReply {
            msg_type: 0,
            request,
        }
        .into()
    }

    /// Binds `port` on the node for this client, or any free port for `Port(0)`, and returns
    /// the port bound. [`ServerError::PortInUse`](crate::ServerError::PortInUse) if another
    /// client holds it.
    pub fn bind(&mut self, port: Port) -> Result<Port, ClientError> {
        match self.request(ClientMessage::Bind { port }, ReqKind::Bind)? {
            Reply::Bound(p) => Ok(p),
            _ => Err(Self::wrong_reply("Bind")),
        }
    }

    /// Releases a bound port; the node closes the flows that send from it.
    pub fn unbind(&mut self, port: Port) -> Result<(), ClientError> {
        self.request(ClientMessage::Unbind { port }, ReqKind::Plain("Unbind"))
            .map(drop)
    }

    /// Opens a flow from the bound `local_port` to `destination` (an [`Addr`](crate::Addr)
    /// or a [`Destination`]) with `service` ([`Service::default`]: best effort, link-state
    /// routing).
    pub fn open_flow(
        &mut self,
        local_port: Port,
        destination: impl Into<Destination>,
        service: Service,
    ) -> Result<Flow, ClientError> {
        let destination = destination.into();
        let req = service.open_flow(local_port, destination);
        match self.request(ClientMessage::OpenFlow(req), ReqKind::OpenFlow)? {
            Reply::FlowOpened { flow, credits } => {
                self.session.open_flow(flow, credits);
                Ok(Flow {
                    handle: flow,
                    local_port,
                    destination,
                    service,
                })
            }
            _ => Err(Self::wrong_reply("OpenFlow")),
        }
    }

    /// Closes a flow; the node drops what it still has queued for it.
    pub fn close_flow(&mut self, flow: Flow) -> Result<(), ClientError> {
        if !self.session.close_flow(flow.handle) {
            return Err(ClientError::UnknownFlow(flow.handle));
        }
        // Frames already encoded for the flow go out first, in order.
        self.request(
            ClientMessage::CloseFlow { flow: flow.handle },
            ReqKind::Plain("CloseFlow"),
        )
        .map(drop)
    }

    /// Joins a group: messages sent to it are delivered to this client.
    pub fn join(&mut self, group: GroupId) -> Result<(), ClientError> {
        self.request(ClientMessage::Join { group }, ReqKind::Plain("Join"))
            .map(drop)
    }

    /// Leaves a group.
    pub fn leave(&mut self, group: GroupId) -> Result<(), ClientError> {
        self.request(ClientMessage::Leave { group }, ReqKind::Plain("Leave"))
            .map(drop)
    }

    /// The credits `flow` has now (messages the node will accept without waiting), or `None`
    /// if it is not open.
    pub fn credits(&self, flow: &Flow) -> Option<u32> {
        self.session.credits(flow.handle)
    }

    /// Checks a send: the session is open, no earlier `Send` failed unreported, the flow is
    /// open and payloads are within the node's limit.
    fn check_send<P: AsRef<[u8]>>(
        &mut self,
        flow: FlowHandle,
        payloads: &[P],
    ) -> Result<(), ClientError> {
        self.check_open()?;
        if let Some(e) = self.session.take_send_error() {
            return Err(e.into());
        }
        if self.session.credits(flow).is_none() {
            return Err(ClientError::UnknownFlow(flow));
        }
        let max = usize::try_from(self.welcome.max_payload).unwrap_or(usize::MAX);
        for p in payloads {
            let len = p.as_ref().len();
            if len > max {
                return Err(ClientError::PayloadTooLarge { len, max });
            }
        }
        Ok(())
    }

    /// Sends one message on `flow`. Blocks while the flow has no credit, taking in credits and
    /// queueing messages meanwhile, and returns once the frame is written. In nonblocking mode
    /// it is [`Client::try_send`].
    ///
    /// An `Error` the node returned for an earlier send (rare: the library keeps within
    /// credits and limits) is returned by the next send call.
    pub fn send(&mut self, flow: &Flow, payload: &[u8]) -> Result<(), ClientError> {
        self.send_batch(flow, &[payload]).map(drop)
    }

    /// Sends one message without waiting: [`ClientError::WouldBlock`] if the flow has no
    /// credit (after taking in what the node sent) or the socket has no room; nothing is sent
    /// then.
    pub fn try_send(&mut self, flow: &Flow, payload: &[u8]) -> Result<(), ClientError> {
        self.try_send_batch(flow, &[payload]).map(drop)
    }

    /// Sends many messages on `flow`, in order, encoding them into as few writes as the send
    /// buffer and the flow's credits allow (one write per buffer-full). Blocks for credit like
    /// [`Client::send`] and returns the count sent: all of them, unless the receive queue
    /// filled up while waiting (then the count so far; the next call reports it). In
    /// nonblocking mode it is [`Client::try_send_batch`].
    pub fn send_batch<P: AsRef<[u8]>>(
        &mut self,
        flow: &Flow,
        payloads: &[P],
    ) -> Result<usize, ClientError> {
        let block = !self.nonblocking;
        self.batch(flow.handle, payloads, block)
    }

    /// Sends as many of `payloads` as credits and the socket take now, in order, and returns
    /// the count; [`ClientError::WouldBlock`] if that is none of them.
    pub fn try_send_batch<P: AsRef<[u8]>>(
        &mut self,
        flow: &Flow,
        payloads: &[P],
    ) -> Result<usize, ClientError> {
        self.batch(flow.handle, payloads, false)
    }

    fn batch<P: AsRef<[u8]>>(
        &mut self,
        flow: FlowHandle,
        payloads: &[P],
        block: bool,
    ) -> Result<usize, ClientError> {
        self.check_send(flow, payloads)?;
        let mut sent = 0;
        while let Some(rest) = payloads.get(sent..).filter(|r| !r.is_empty()) {
            let credits = self.session.credits(flow).unwrap_or(0);
            let wait = if credits == 0 {
                self.session.stats.credit_stalls += 1;
                Until::Credit(flow)
            } else {
                let n = self.encode_sends(flow, rest, credits)?;
                sent += n;
                if n > 0 {
                    continue;
                }
                Until::Flushed
            };
            match self.drive(wait, None, block) {
                Ok(()) => {}
                Err(ClientError::WouldBlock | ClientError::ReceiveQueueFull { .. }) if sent > 0 => {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if block {
            self.drive(Until::Flushed, None, true)?;
        } else {
            self.flush_nowait()?;
        }
        Ok(sent)
    }

    /// Receives the next message into `buf`, waiting for one; its metadata says how long it
    /// is and whether it was cut to fit `buf`. In nonblocking mode it returns
    /// [`ClientError::WouldBlock`] instead of waiting. After the node ends the session,
    /// messages already received are still returned, then [`ClientError::Disconnected`].
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Delivered, ClientError> {
        let block = !self.nonblocking;
        self.recv_inner(buf, None, block)?
            .ok_or(ClientError::WouldBlock)
    }

    /// Like [`Client::recv`], waiting at most `timeout`; `Ok(None)` if no message came.
    pub fn recv_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<Option<Delivered>, ClientError> {
        self.recv_inner(buf, Some(Instant::now() + timeout), true)
    }

    /// Returns a message if one is there now, without waiting.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<Delivered>, ClientError> {
        self.recv_inner(buf, None, false)
    }

    fn recv_inner(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
        block: bool,
    ) -> Result<Option<Delivered>, ClientError> {
        if let Some(d) = self.queue.pop(buf) {
            return Ok(Some(d));
        }
        loop {
            if self.ended.is_none() && self.has_pending() {
                self.flush_nowait()?;
            }
            if let io::Stop::Delivered(d) = self.handle_frames(Some(buf))? {
                return Ok(Some(d));
            }
            self.check_open()?;
            if self.fill_nowait()? {
                continue;
            }
            if !block || !self.wait(true, deadline)? {
                return Ok(None);
            }
        }
    }

    /// Waits up to `timeout` until the node has taken every message sent so far off its
    /// queues, that is until every flow has its initial credits back; `Ok(false)` if the time
    /// passed first. Call before [`Client::close`] so a `Goodbye` does not cut off messages
    /// still queued in the node (it drops them when the session ends).
    pub fn linger(&mut self, timeout: Duration) -> Result<bool, ClientError> {
        match self.drive(Until::Drained, Some(Instant::now() + timeout), true) {
            Ok(()) => Ok(true),
            Err(ClientError::TimedOut) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes what is pending and says `Goodbye`, waiting at most `timeout` for the socket.
    fn goodbye(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.check_open()?;
        let deadline = Instant::now() + timeout;
        let id = self.session.next_id();
        while !self.encode(id, &ClientMessage::Goodbye)? {
            self.drive(Until::Flushed, Some(deadline), true)?;
        }
        let flushed = self.drive(Until::Flushed, Some(deadline), true);
        self.ended = Some(Disconnect::Closed);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        flushed
    }

    /// Ends the session: writes what is pending, says `Goodbye` and closes the socket. The
    /// node releases this client's ports, flows and groups.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.goodbye(Duration::from_secs(5))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.ended.is_none() {
            let _ = self.goodbye(Duration::from_secs(1));
        }
    }
}

impl AsFd for Client {
    /// The session socket, to wait on in an event loop (nonblocking mode). Read and write
    /// only through the client.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl AsRawFd for Client {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}
