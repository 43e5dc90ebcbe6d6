//! Forwarding a child's stdout and stderr line by line, each line prefixed with the child's role.
//!
//! A child's stdout goes to the launcher's stdout and its stderr to the launcher's stderr, as
//! `[dataplane] <line>` or `[controld] <line>`. The pipes are non-blocking and read from the
//! supervisor's poll loop, so no thread is involved. Memory is bounded: a line longer than
//! [`MAX_LINE`] bytes is forwarded in pieces of that size.
//!
//! Writing to the launcher's own stdout or stderr blocks if whoever reads them stalls; a write
//! error (a closed pipe) is ignored, so the node keeps running without its log.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use weft_shared::ids::NodeId;

/// The longest line forwarded in one piece, in bytes.
pub(crate) const MAX_LINE: usize = 4096;

/// How much one `read_available` call reads at most, so that a chatty child cannot starve the
/// rest of the loop.
const READ_BUDGET: usize = 64 * 1024;

/// Which of the launcher's streams a pipe is forwarded to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    /// The launcher's stdout.
    Stdout,
    /// The launcher's stderr.
    Stderr,
}

/// Splits a byte stream into lines of at most `MAX_LINE` bytes (without the newline).
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `bytes`, calling `on_line` for each complete line.
    pub(crate) fn push(&mut self, mut bytes: &[u8], on_line: &mut dyn FnMut(&[u8])) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.buf.len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&window[..i]);
                    on_line(trim_cr(&self.buf));
                    self.buf.clear();
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.buf.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                    if self.buf.len() == MAX_LINE {
                        on_line(&self.buf);
                        self.buf.clear();
                    }
                }
            }
        }
    }

    /// Passes on an unterminated last line, if any.
    pub(crate) fn flush(&mut self, on_line: &mut dyn FnMut(&[u8])) {
        if !self.buf.is_empty() {
            on_line(trim_cr(&self.buf));
            self.buf.clear();
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One non-blocking pipe from a child, forwarded with a prefix.
#[derive(Debug)]
pub(crate) struct LinePipe {
    file: File,
    lines: LineSplitter,
    prefix: &'static str,
    to: Stream,
}

impl LinePipe {
    /// Wraps the read end `fd` of a child's pipe (made non-blocking here).
    pub(crate) fn new(fd: OwnedFd, prefix: &'static str, to: Stream) -> nix::Result<LinePipe> {
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(LinePipe {
            file: File::from(fd),
            lines: LineSplitter::default(),
            prefix,
            to,
        })
    }

    /// The pipe's fd, for `poll`.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Forwards what can be read now (up to a budget), calling `seen` with each line as well.
    /// Returns `false` once the pipe is closed (end of file or an error); the caller drops it.
    pub(crate) fn read_available(&mut self, seen: &mut dyn FnMut(&[u8])) -> bool {
        let mut chunk = [0u8; 4096];
        let mut total = 0;
        let (prefix, to) = (self.prefix, self.to);
        let mut on_line = |line: &[u8]| {
            seen(line);
            emit(prefix, to, line);
        };
        while total < READ_BUDGET {
            match self.file.read(&mut chunk) {
                Ok(0) => {
                    self.lines.flush(&mut on_line);
                    return false;
                }
                Ok(n) => {
                    total += n;
                    self.lines.push(&chunk[..n], &mut on_line);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.lines.flush(&mut on_line);
                    return false;
                }
            }
        }
        true
    }

    /// Forwards everything still buffered in the pipe and the last partial line (the child has
    /// exited; what it wrote before is readable now). Bounded by the read budget.
    pub(crate) fn drain(mut self, seen: &mut dyn FnMut(&[u8])) {
        if self.read_available(seen) {
            let (prefix, to) = (self.prefix, self.to);
            self.lines.flush(&mut |line: &[u8]| {
                seen(line);
                emit(prefix, to, line);
            });
        }
    }
}

/// Writes `[prefix] line` to the launcher's stream `to`.
fn emit(prefix: &str, to: Stream, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    // Errors are ignored: a launcher whose log reader went away keeps the node running.
    let _ = match to {
        Stream::Stdout => writeln!(io::stdout().lock(), "[{prefix}] {text}"),
        Stream::Stderr => writeln!(io::stderr().lock(), "[{prefix}] {text}"),
    };
}

/// Whether `line` is the data plane's start-up report for `node`: the words `node N up` in a
/// row (the data plane prints `weft-dataplane: node N up (incarnation ..., K workers)`).
pub(crate) fn is_up_line(line: &[u8], node: NodeId) -> bool {
    let text = String::from_utf8_lossy(line);
    let id = node.get().to_string();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(3)
        .any(|w| w[0] == "node" && w[1] == id && w[2] == "up")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |l| out.push(l.to_vec()));
        }
        s.flush(&mut |l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn lines_across_chunks_with_crlf_and_a_partial_tail() {
        let out = split(&[b"one\ntw", b"o\r\n\nthr", b"ee"]);
        assert_eq!(out, [&b"one"[..], b"two", b"", b"three"]);
    }

    #[test]
    fn long_lines_are_cut_at_max_line() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut input = long.clone();
        input.extend_from_slice(b"\nend\n");
        let out = split(&[&input[..100], &input[100..]]);
        let lens: Vec<usize> = out.iter().map(Vec::len).collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 10, 3]);
    }

    #[test]
    fn up_line_matches_only_this_node() {
        let n3 = NodeId::new(3).unwrap();
        let line = b"weft-dataplane: node 3 up (incarnation 0x1234abcd, 1 workers)";
        assert!(is_up_line(line, n3));
        assert!(is_up_line(b"node 3 up", n3));
        assert!(!is_up_line(line, NodeId::new(33).unwrap()));
        assert!(!is_up_line(
            b"weft-dataplane: node 3 stopping on signal 15",
            n3
        ));
        assert!(!is_up_line(b"node 33 up", n3));
    }
}
