//! A client's bounded output buffer: a byte ring of whole frames waiting for the socket.
//!
//! Frames are encoded straight into the ring when they fit before its end; a frame that would
//! wrap is encoded into a scratch buffer and copied in two parts. Flushing writes the contiguous
//! front and advances. Nothing allocates after [`OutBuf::new`].

use weft_shared::session::{Encode, EncodeError, FRAME_HEADER_LEN, encode_frame};

/// Why a frame was not appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// Not enough free space (counting the space the caller wants kept free).
    Full,
    /// The message itself cannot be encoded (a payload or text over its limit).
    Encode(EncodeError),
}

/// A byte ring of encoded frames.
#[derive(Debug)]
pub(crate) struct OutBuf {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl OutBuf {
    /// An empty ring of `capacity` bytes (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        OutBuf {
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free.
    pub(crate) fn free(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Appends `msg` as one frame, but only if at least `keep_free` bytes stay free after it.
    /// `scratch` (at least one frame long) is used when the frame would wrap around the end.
    /// Returns the frame's size.
    pub(crate) fn push<M: Encode + ?Sized>(
        &mut self,
        request_id: u32,
        msg: &M,
        keep_free: usize,
        scratch: &mut [u8],
    ) -> Result<usize, PushError> {
        let size = FRAME_HEADER_LEN + msg.body_len();
        if size.saturating_add(keep_free) > self.free() {
            return Err(PushError::Full);
        }
        if self.len == 0 {
            self.head = 0;
        }
        let cap = self.buf.len();
        let (tail, contiguous) = if self.head + self.len < cap {
            let tail = self.head + self.len;
            (tail, cap - tail)
        } else {
            let tail = self.head + self.len - cap;
            (tail, self.head - tail)
        };
        let written = if size <= contiguous {
            let dst = self.buf.get_mut(tail..).unwrap_or_default();
            encode_frame(request_id, msg, dst).map_err(PushError::Encode)?
        } else {
            // Only when the free space is split between the end and the start of the ring.
            let n = encode_frame(request_id, msg, scratch).map_err(PushError::Encode)?;
            let src = scratch.get(..n).unwrap_or_default();
            let (first, second) = src.split_at(contiguous.min(n));
            if let Some(dst) = self.buf.get_mut(tail..tail + first.len()) {
                dst.copy_from_slice(first);
            }
            if let Some(dst) = self.buf.get_mut(..second.len()) {
                dst.copy_from_slice(second);
            }
            n
        };
        self.len += written;
        Ok(written)
    }

    /// The oldest waiting bytes that are contiguous in memory (empty when nothing waits).
    pub(crate) fn front(&self) -> &[u8] {
        let end = (self.head + self.len).min(self.buf.len());
        self.buf.get(self.head..end).unwrap_or_default()
    }

    /// Forgets the first `n` waiting bytes (after they were written), clamped to what waits.
    pub(crate) fn advance(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.buf.len();
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Forgets everything waiting.
    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use weft_shared::session::{FlowHandle, FrameReader, ServerMessage};

    use super::*;

    /// Drains the ring `chunk` bytes at a time, as short socket writes would.
    fn drain(out: &mut OutBuf, chunk: usize) -> Vec<u8> {
        let mut v = Vec::new();
        while !out.is_empty() {
            let front = out.front();
            let n = front.len().min(chunk);
            v.extend_from_slice(&front[..n]);
            out.advance(n);
        }
        v
    }

    fn credit(n: u32) -> ServerMessage<'static> {
        ServerMessage::Credit {
            flow: FlowHandle(n),
            credits: n,
        }
    }

    #[test]
    fn frames_survive_wrapping_in_order() {
        // 20-byte Credit frames in a 50-byte ring: every third frame wraps.
        let mut out = OutBuf::new(50);
        let mut scratch = [0u8; 64];
        let mut got = Vec::new();
        for n in 0..100u32 {
            assert_eq!(out.push(0, &credit(n), 0, &mut scratch), Ok(20));
            assert_eq!(out.push(0, &credit(n + 1000), 0, &mut scratch), Ok(20));
            assert_eq!(out.free(), 10);
            assert_eq!(
                out.push(0, &credit(0), 0, &mut scratch),
                Err(PushError::Full)
            );
            // Write 7 bytes at a time for one frame's worth, then drain the rest.
            let first = out.front().len().min(7);
            got.extend_from_slice(&out.front()[..first]);
            out.advance(first);
            got.extend(drain(&mut out, 13));
        }
        let frames: Vec<_> = FrameReader::new(&got)
            .map(|f| ServerMessage::decode(&f.unwrap()).unwrap())
            .collect();
        assert_eq!(frames.len(), 200);
        for (i, pair) in frames.chunks(2).enumerate() {
            let i = u32::try_from(i).unwrap();
            assert_eq!(pair, [credit(i), credit(i + 1000)]);
        }
    }

    #[test]
    fn keep_free_is_respected_and_encode_errors_are_reported() {
        let mut out = OutBuf::new(100);
        let mut scratch = [0u8; 64];
        assert_eq!(
            out.push(0, &credit(1), 81, &mut scratch),
            Err(PushError::Full)
        );
        assert_eq!(out.push(0, &credit(1), 80, &mut scratch), Ok(20));
        assert_eq!(out.len(), 20);
        let text = "x".repeat(300);
        let bad = ServerMessage::Error(weft_shared::session::ErrorMsg {
            code: weft_shared::session::ErrorCode::Internal,
            detail: 0,
            text: &text,
        });
        let mut big = OutBuf::new(1000);
        assert!(matches!(
            big.push(0, &bad, 0, &mut scratch),
            Err(PushError::Encode(_))
        ));
        assert!(big.is_empty());
        out.clear();
        assert!(out.is_empty() && out.front().is_empty());
    }
}
