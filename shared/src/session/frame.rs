//! Session framing: a u32 big-endian length, an 8-byte header, a body. Many frames per read and
//! per write.
//!
//! [`FrameReader`] splits a byte buffer into complete frames and reports how many bytes it
//! consumed, leaving a partial frame at the end for the next read. [`FrameWriter`] appends
//! frames to a caller-supplied buffer until it is full. [`RecvBuf`] is the compacting receive
//! buffer both ends of a connection keep. None of them allocate per message.
//!
//! ```text
//!  0               4       5       6               8                       12
//!  +---------------+-------+-------+---------------+-----------------------+--------....
//!  | len (u32 BE)  | type  | flags | reserved (0)  | request id (u32 BE)   | body
//!  +---------------+-------+-------+---------------+-----------------------+--------....
//!  len = 8 + body length; the whole frame is 4 + len bytes.
//! ```

use std::io::{self, Read};
use std::iter::FusedIterator;

use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::error::{EncodeError, FrameError};
use super::{FRAME_HEADER_LEN, MAX_FRAME_SIZE, MIN_FRAME_LEN};

/// The fixed 12-byte start of every frame, as laid out on the wire.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct FrameHeader {
    /// Bytes after this field: the 8 header bytes below plus the body.
    pub len: U32,
    /// The message type ([`MsgType`](super::MsgType)); the high bit is set on server messages.
    pub msg_type: u8,
    /// Per-frame flags; none are defined in version 1, so this must be 0.
    pub flags: u8,
    /// Must be 0 in version 1.
    pub reserved: U16,
    /// Chosen by the client on requests and echoed by replies; 0 on unsolicited server messages.
    pub request_id: U32,
}

const _: () = assert!(size_of::<FrameHeader>() == FRAME_HEADER_LEN);

/// One complete frame, borrowed from the receive buffer. Message decoding checks `flags` and
/// `reserved`; framing does not, so a frame with bad bits still keeps the stream in sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message type byte.
    pub msg_type: u8,
    /// The flags byte.
    pub flags: u8,
    /// The reserved field.
    pub reserved: u16,
    /// The request id.
    pub request_id: u32,
    /// The body: the frame after its 12-byte header.
    pub body: &'a [u8],
}

/// Parses the frame at the start of `buf`: `Ok(None)` if `buf` holds only part of it, else the
/// frame and its size. An impossible length is reported as soon as the 4 length bytes are in,
/// without waiting for the rest.
fn parse_frame(buf: &[u8], max_frame: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(len_bytes) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*len_bytes);
    if len < MIN_FRAME_LEN {
        return Err(FrameError::TooShort { len });
    }
    let size = 4 + u64::from(len);
    if size > max_frame as u64 {
        return Err(FrameError::TooLarge {
            size,
            max: u32::try_from(max_frame).unwrap_or(u32::MAX),
        });
    }
    // size <= max_frame, so it fits a usize.
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let Some(bytes) = buf.get(..size) else {
        return Ok(None);
    };
    let Ok((header, body)) = FrameHeader::ref_from_prefix(bytes) else {
        // Unreachable: size >= 4 + MIN_FRAME_LEN = FRAME_HEADER_LEN.
        return Ok(None);
    };
    let frame = Frame {
        msg_type: header.msg_type,
        flags: header.flags,
        reserved: header.reserved.get(),
        request_id: header.request_id.get(),
        body,
    };
    Ok(Some((frame, size)))
}

/// Splits a byte buffer into complete frames.
///
/// Iterate to get frames in order; [`consumed`](Self::consumed) then says how many bytes the
/// returned frames took, which the caller drops from its buffer. A partial frame at the end ends
/// the iteration and stays unconsumed. A [`FrameError`] is returned once, after which the
/// iteration ends: the caller must close the connection. To bound work per turn, take at most
/// [`MAX_FRAMES_PER_BATCH`](super::MAX_FRAMES_PER_BATCH) frames (`reader.by_ref().take(n)`).
#[derive(Clone, Debug)]
pub struct FrameReader<'a> {
    buf: &'a [u8],
    consumed: usize,
    max_frame: usize,
    failed: bool,
}

impl<'a> FrameReader<'a> {
    /// A reader over `buf`, accepting frames up to [`MAX_FRAME_SIZE`].
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_max_frame(buf, MAX_FRAME_SIZE)
    }

    /// A reader over `buf` accepting frames up to `max_frame` bytes (length field included).
    pub fn with_max_frame(buf: &'a [u8], max_frame: usize) -> Self {
        FrameReader {
            buf,
            consumed: 0,
            max_frame,
            failed: false,
        }
    }

    /// Bytes taken by the frames returned so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// The bytes not yet returned as frames (a partial frame, or frames not yet iterated).
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.consumed..).unwrap_or_default()
    }

    /// Whether a framing error was returned; the connection must then be closed.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

impl<'a> Iterator for FrameReader<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match parse_frame(self.remaining(), self.max_frame) {
            Ok(Some((frame, size))) => {
                self.consumed += size;
                Some(Ok(frame))
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for FrameReader<'_> {}

/// A message that can be written as a frame body. Implemented by
/// [`ClientMessage`](super::ClientMessage) and [`ServerMessage`](super::ServerMessage).
pub trait Encode {
    /// The message type byte.
    fn msg_type(&self) -> u8;
    /// The body's length in bytes.
    fn body_len(&self) -> usize;
    /// Checks the message against the protocol's limits (payload and text lengths, ranges).
    fn check(&self) -> Result<(), EncodeError>;
    /// Writes the body into `body`, which is exactly [`body_len`](Self::body_len) bytes.
    fn write_body(&self, body: &mut [u8]) -> Result<(), EncodeError>;
}

/// Encodes `msg` as one frame with `request_id` at the start of `out`, returning the frame's
/// size. On error the contents of `out` are unspecified but nothing is claimed as written.
pub fn encode_frame<M: Encode + ?Sized>(
    request_id: u32,
    msg: &M,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    msg.check()?;
    let size = FRAME_HEADER_LEN + msg.body_len();
    if size > MAX_FRAME_SIZE {
        // Limits checked above keep every message far below this; kept as a backstop.
        return Err(EncodeError::PayloadTooLarge {
            len: size,
            max: MAX_FRAME_SIZE,
        });
    }
    let Some(frame) = out.get_mut(..size) else {
        return Err(EncodeError::BufferFull {
            needed: size,
            available: out.len(),
        });
    };
    let (head, body) = frame.split_at_mut(FRAME_HEADER_LEN);
    let header = FrameHeader {
        len: U32::new(u32::try_from(size - 4).unwrap_or(u32::MAX)),
        msg_type: msg.msg_type(),
        flags: 0,
        reserved: U16::new(0),
        request_id: U32::new(request_id),
    };
    head.copy_from_slice(header.as_bytes());
    msg.write_body(body)?;
    Ok(size)
}

/// Appends frames to a caller-supplied buffer until it is full; the caller then writes
/// [`as_bytes`](Self::as_bytes) to the socket in one call and [`clear`](Self::clear)s it.
#[derive(Debug)]
pub struct FrameWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    frames: usize,
}

impl<'a> FrameWriter<'a> {
    /// An empty writer over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        FrameWriter {
            buf,
            len: 0,
            frames: 0,
        }
    }

    /// Appends one frame, returning its size. [`EncodeError::BufferFull`] means no room is left
    /// for this frame; the frames already written are untouched.
    pub fn push<M: Encode + ?Sized>(
        &mut self,
        request_id: u32,
        msg: &M,
    ) -> Result<usize, EncodeError> {
        let spare = self.buf.get_mut(self.len..).unwrap_or_default();
        let size = encode_frame(request_id, msg, spare)?;
        self.len += size;
        self.frames += 1;
        Ok(size)
    }

    /// The frames written so far, ready to send.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Bytes still free.
    pub fn spare_capacity(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Forgets every frame (after they were sent).
    pub fn clear(&mut self) {
        self.len = 0;
        self.frames = 0;
    }
}

/// A receive buffer for one connection: read into [`spare_mut`](Self::spare_mut), mark the bytes
/// with [`commit`](Self::commit), take frames from [`frames`](Self::frames), drop them with
/// [`consume`](Self::consume). A partial frame is moved to the front when space runs out, so a
/// buffer of at least [`MAX_FRAME_SIZE`] always has room for the rest of any legal frame.
///
/// The storage is allocated once, when the connection is set up.
#[derive(Debug)]
pub struct RecvBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl RecvBuf {
    /// A buffer of `capacity` bytes, raised to [`MAX_FRAME_SIZE`] if smaller.
    pub fn new(capacity: usize) -> Self {
        RecvBuf {
            buf: vec![0; capacity.max(MAX_FRAME_SIZE)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The free space after the buffered bytes, compacting first if the buffered bytes do not
    /// start at the front. Empty only if the buffer holds `capacity` unconsumed bytes.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// Marks `n` bytes written into [`spare_mut`](Self::spare_mut) as received (clamped to the
    /// free space).
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Reads once from `r` into the free space; `Ok(0)` means end of stream. A buffer with no
    /// free space is an error rather than `Ok(0)`, so it is never mistaken for end of stream:
    /// the caller must take and consume frames first (it holds at least one complete frame
    /// whenever the capacity is at least [`MAX_FRAME_SIZE`]).
    pub fn read_from<R: Read + ?Sized>(&mut self, r: &mut R) -> io::Result<usize> {
        let spare = self.spare_mut();
        if spare.is_empty() {
            return Err(io::Error::other(
                "receive buffer full: consume frames before reading",
            ));
        }
        let n = r.read(spare)?;
        self.commit(n);
        Ok(n)
    }

    /// Whether the buffer has no free space left (see [`read_from`](Self::read_from)).
    pub fn is_full(&self) -> bool {
        self.end - self.start == self.buf.len()
    }

    /// The received, unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// A reader over the received bytes; pass its [`consumed`](FrameReader::consumed) count to
    /// [`consume`](Self::consume) when done with the frames.
    pub fn frames(&self) -> FrameReader<'_> {
        FrameReader::new(self.data())
    }

    /// Drops `n` bytes from the front of the received bytes (clamped to what is buffered).
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    /// A frame with the given type, request id and body.
    fn frame(msg_type: u8, request_id: u32, body: &[u8]) -> Vec<u8> {
        let len = u32::try_from(8 + body.len()).unwrap();
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(&[msg_type, 0, 0, 0]);
        v.extend_from_slice(&request_id.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn reader_returns_whole_frames_and_leaves_the_partial_one() {
        let mut bytes = frame(1, 7, b"abc");
        bytes.extend(frame(2, 8, b""));
        let whole = bytes.len();
        bytes.extend(&frame(3, 9, b"xyz")[..5]);
        let mut r = FrameReader::new(&bytes);
        let a = r.next().unwrap().unwrap();
        assert_eq!((a.msg_type, a.request_id, a.body), (1, 7, &b"abc"[..]));
        let b = r.next().unwrap().unwrap();
        assert_eq!((b.msg_type, b.request_id, b.body), (2, 8, &b""[..]));
        assert!(r.next().is_none());
        assert!(r.next().is_none(), "fused");
        assert_eq!(r.consumed(), whole);
        assert_eq!(r.remaining().len(), 5);
        assert!(!r.failed());
    }

    #[test]
    fn bad_lengths_fail_once_and_stop() {
        let bytes = [0, 0, 0, 7, 1, 0, 0, 0, 0, 0, 0, 0];
        let mut r = FrameReader::new(&bytes);
        assert_eq!(r.next(), Some(Err(FrameError::TooShort { len: 7 })));
        assert_eq!(r.next(), None);
        assert!(r.failed());
        assert_eq!(r.consumed(), 0);

        // Oversize is reported from the 4 length bytes alone.
        let mut r = FrameReader::new(&[0xff, 0xff, 0xff, 0xff]);
        let max = u32::try_from(MAX_FRAME_SIZE).unwrap();
        assert_eq!(
            r.next(),
            Some(Err(FrameError::TooLarge {
                size: 4 + 0xffff_ffff,
                max
            }))
        );

        // The limit itself is accepted, one byte more is not.
        let limit = u32::try_from(MAX_FRAME_SIZE - 4).unwrap();
        assert_eq!(FrameReader::new(&limit.to_be_bytes()).next(), None);
        let over = (limit + 1).to_be_bytes();
        assert!(matches!(
            FrameReader::new(&over).next(),
            Some(Err(FrameError::TooLarge { .. }))
        ));
        let small = (9u32).to_be_bytes();
        assert!(matches!(
            FrameReader::with_max_frame(&small, 12).next(),
            Some(Err(FrameError::TooLarge { size: 13, max: 12 }))
        ));
    }

    #[test]
    fn recv_buf_compacts_and_keeps_partial_frames() {
        let one = frame(5, 1, &[0xaa; 100]);
        let mut rb = RecvBuf::new(0);
        assert_eq!(rb.spare_mut().len(), MAX_FRAME_SIZE);
        // Fill with whole frames plus half of one more, then consume the whole ones.
        let mut stream = Vec::new();
        while stream.len() + one.len() <= MAX_FRAME_SIZE - one.len() / 2 {
            stream.extend(&one);
        }
        stream.extend(&one[..one.len() / 2]);
        let mut src = &stream[..];
        while !src.is_empty() {
            let n = rb.read_from(&mut src).unwrap();
            assert!(n > 0);
        }
        let mut r = rb.frames();
        let count = r.by_ref().filter(|f| f.is_ok()).count();
        let used = r.consumed();
        assert_eq!(used, count * one.len());
        rb.consume(used);
        assert_eq!(rb.data(), &one[..one.len() / 2]);
        // The rest of the frame arrives after compaction.
        let spare = rb.spare_mut();
        spare[..one.len() - one.len() / 2].copy_from_slice(&one[one.len() / 2..]);
        rb.commit(one.len() - one.len() / 2);
        let f = rb.frames().next().unwrap().unwrap();
        assert_eq!(f.body, &[0xaa; 100][..]);
        rb.consume(one.len());
        assert!(rb.data().is_empty());
    }

    #[test]
    fn full_buffer_is_an_error_not_end_of_stream() {
        let mut rb = RecvBuf::new(0);
        let cap = rb.spare_mut().len();
        rb.commit(cap);
        assert!(rb.is_full());
        let mut src: &[u8] = b"more";
        assert!(rb.read_from(&mut src).is_err());
        assert_eq!(src, b"more", "nothing was read");
        rb.consume(1);
        assert!(!rb.is_full());
        assert_eq!(rb.read_from(&mut src).unwrap(), 1);
    }
}
