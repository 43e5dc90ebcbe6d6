//! The ctl server with real Unix sockets in a per-test directory: answers, misbehaving clients,
//! limits, idle timeouts, and the socket file's life cycle.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use weft_controld::ctl_server::{CtlServer, IDLE_TIMEOUT, MAX_CONNECTIONS};
use weft_shared::ctl::codec::{decode_reply, encode_request};
use weft_shared::ctl::{CtlReply, CtlRequest, NodeRow, StatusReply, query};

/// A per-test directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("weft-ctlsrv-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("node.ctl")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn status() -> StatusReply {
    StatusReply {
        node: 3,
        name: "copenhagen".into(),
        fib_generation: 12,
        ..StatusReply::default()
    }
}

/// The answers of a test control plane.
fn answer(request: &CtlRequest) -> CtlReply {
    match request {
        CtlRequest::Status => CtlReply::Status(status()),
        CtlRequest::Nodes => CtlReply::Nodes(vec![NodeRow {
            node: 1,
            name: "a".into(),
            ..NodeRow::default()
        }]),
        CtlRequest::Routes => CtlReply::Routes(Vec::new()),
        CtlRequest::Groups | CtlRequest::Group(_) => CtlReply::error("no group state"),
    }
}

/// Whether the server's fd is readable within `timeout`.
fn readable(server: &CtlServer, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(server.as_fd(), PollFlags::POLLIN)];
    let ms = u16::try_from(timeout.as_millis()).unwrap();
    poll(&mut fds, PollTimeout::from(ms)).unwrap() > 0
}

/// Runs the server's loop (sleeping in poll on its fd) until `done`, for at most 10 s.
fn serve_until(server: &mut CtlServer, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out serving");
        readable(server, Duration::from_millis(20));
        server.poll(Instant::now(), answer);
    }
}

/// Reads one reply line from a raw client stream.
fn read_reply(stream: &UnixStream) -> CtlReply {
    let mut line = Vec::new();
    BufReader::new(stream).read_until(b'\n', &mut line).unwrap();
    decode_reply(&line).unwrap()
}

#[test]
fn answers_a_request_and_wakes_through_its_fd() {
    let dir = TempDir::new("answer");
    let mut server = CtlServer::bind(&dir.socket()).unwrap();
    assert!(
        !readable(&server, Duration::ZERO),
        "idle server must not wake"
    );
    assert_eq!(server.poll_timeout(), None);

    // The blocking client against the server.
    let path = dir.socket();
    let client = thread::spawn(move || query(&path, CtlRequest::Status, Duration::from_secs(5)));
    serve_until(&mut server, || client.is_finished());
    assert_eq!(client.join().unwrap().unwrap(), CtlReply::Status(status()));

    // A raw client: connecting and writing make the fd readable, and once the answer is out
    // and the connection closed it is quiet again (no busy loop for the daemon).
    let mut raw = UnixStream::connect(dir.socket()).unwrap();
    assert!(readable(&server, Duration::from_secs(2)));
    server.poll(Instant::now(), answer);
    assert_eq!(server.connections(), 1);
    assert!(server.poll_timeout().is_some());
    raw.write_all(&encode_request(CtlRequest::Nodes).unwrap())
        .unwrap();
    assert!(readable(&server, Duration::from_secs(2)));
    server.poll(Instant::now(), answer);
    assert_eq!(read_reply(&raw), answer(&CtlRequest::Nodes));
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "one reply, then the server closes");
    assert_eq!(server.connections(), 0);
    assert!(!readable(&server, Duration::from_millis(50)));
    let stats = server.stats();
    assert_eq!(
        (stats.accepted, stats.answered, stats.bad_requests),
        (2, 2, 0)
    );
}

#[test]
fn a_silent_client_does_not_block_others_and_is_dropped_when_idle() {
    let dir = TempDir::new("silent");
    let mut server = CtlServer::bind(&dir.socket()).unwrap();
    let silent = UnixStream::connect(dir.socket()).unwrap();
    let start = Instant::now();
    server.poll(start, answer);
    assert_eq!(server.connections(), 1);

    let path = dir.socket();
    let client = thread::spawn(move || query(&path, CtlRequest::Routes, Duration::from_secs(5)));
    serve_until(&mut server, || client.is_finished());
    assert_eq!(client.join().unwrap().unwrap(), CtlReply::Routes(vec![]));
    assert_eq!(
        server.connections(),
        1,
        "the silent client is still connected"
    );
    let timeout = server.poll_timeout().unwrap();
    assert!(timeout <= start + IDLE_TIMEOUT);

    // Past the idle timeout (time is the caller's), it is closed.
    server.poll(start + IDLE_TIMEOUT + Duration::from_millis(1), answer);
    assert_eq!(server.connections(), 0);
    assert_eq!(server.stats().timed_out, 1);
    silent
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        (&silent).read(&mut byte).unwrap(),
        0,
        "closed by the server"
    );
}

#[test]
fn garbage_and_oversize_requests_get_an_error_reply() {
    let dir = TempDir::new("garbage");
    let mut server = CtlServer::bind(&dir.socket()).unwrap();
    let cases: [(&[u8], &str); 4] = [
        (b"hello\n", "bad request: malformed message"),
        (b"{\"v\":1,\"show\":\"bananas\"}\n", "unknown variant"),
        (b"{\"v\":7,\"show\":\"nodes\"}\n", "ctl protocol version 7"),
        (&[b'x'; 5000], "longer than 4096 bytes"),
    ];
    for (request, expected) in cases {
        let mut raw = UnixStream::connect(dir.socket()).unwrap();
        raw.write_all(request).unwrap();
        serve_until(&mut server, || reply_waiting(&raw));
        match read_reply(&raw) {
            CtlReply::Error { message } => assert!(message.contains(expected), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(server.stats().bad_requests, 4);

    // A request without its newline, then end of input, is still answered.
    let mut raw = UnixStream::connect(dir.socket()).unwrap();
    raw.write_all(b"{\"v\":1,\"show\":\"status\"}").unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    serve_until(&mut server, || reply_waiting(&raw));
    assert_eq!(read_reply(&raw), CtlReply::Status(status()));
}

/// Whether `raw` has something to read (the server's reply, or end of input).
fn reply_waiting(raw: &UnixStream) -> bool {
    let mut fds = [PollFd::new(raw.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).unwrap() > 0
}

#[test]
fn partial_requests_and_partial_writes_are_kept() {
    let dir = TempDir::new("partial");
    let mut server = CtlServer::bind(&dir.socket()).unwrap();
    let line = encode_request(CtlRequest::Nodes).unwrap();
    let mut raw = UnixStream::connect(dir.socket()).unwrap();
    raw.write_all(&line[..5]).unwrap();
    assert!(readable(&server, Duration::from_secs(2)));
    server.poll(Instant::now(), answer);
    assert!(!reply_waiting(&raw), "answered half a request");
    assert_eq!(server.connections(), 1);
    raw.write_all(&line[5..]).unwrap();
    serve_until(&mut server, || reply_waiting(&raw));
    assert_eq!(read_reply(&raw), answer(&CtlRequest::Nodes));

    // A reply far larger than the socket buffer goes out over many polls.
    let big = || {
        CtlReply::Nodes(
            (1..=1023)
                .map(|n| NodeRow {
                    node: n,
                    name: format!("node-{n}-{}", "x".repeat(1000)),
                    ..NodeRow::default()
                })
                .collect(),
        )
    };
    let path = dir.socket();
    let client = thread::spawn(move || query(&path, CtlRequest::Nodes, Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_finished() {
        assert!(Instant::now() < deadline);
        readable(&server, Duration::from_millis(20));
        server.poll(Instant::now(), |_| big());
    }
    assert_eq!(client.join().unwrap().unwrap(), big());
}

#[test]
fn connections_beyond_the_limit_are_closed() {
    let dir = TempDir::new("limit");
    let mut server = CtlServer::bind(&dir.socket()).unwrap();
    let clients: Vec<UnixStream> = (0..MAX_CONNECTIONS + 4)
        .map(|_| UnixStream::connect(dir.socket()).unwrap())
        .collect();
    server.poll(Instant::now(), answer);
    assert_eq!(server.connections(), MAX_CONNECTIONS);
    assert_eq!(server.stats().refused, 4);
    // The refused ones see end of input at once; the accepted ones are still served.
    for c in &clients[MAX_CONNECTIONS..] {
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!((&*c).read(&mut [0u8; 8]).unwrap(), 0);
    }
    let mut first = &clients[0];
    first
        .write_all(&encode_request(CtlRequest::Status).unwrap())
        .unwrap();
    serve_until(&mut server, || reply_waiting(first));
    assert_eq!(read_reply(first), CtlReply::Status(status()));
    assert_eq!(server.connections(), MAX_CONNECTIONS - 1);
}

#[test]
fn socket_file_life_cycle() {
    let dir = TempDir::new("lifecycle");
    // A missing parent directory is created.
    let nested = dir.0.join("run/weft/node.ctl");
    drop(CtlServer::bind(&nested).unwrap());
    assert!(!nested.exists(), "drop removes the socket file");

    // A stale socket (its server is gone) is reclaimed.
    let path = dir.socket();
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = CtlServer::bind(&path).unwrap();

    // A live server is not replaced.
    let err = CtlServer::bind(&path).err().unwrap();
    let text = format!("{err:#}");
    assert!(
        text.contains("another") && text.contains("node.ctl"),
        "{text}"
    );
    drop(server);
    assert!(!path.exists());

    // A file that is not a socket is left alone.
    std::fs::write(&path, b"precious").unwrap();
    let err = CtlServer::bind(&path).err().unwrap();
    assert!(format!("{err:#}").contains("not a socket"), "{err:#}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();

    // Drop leaves alone a socket file someone else put there meanwhile.
    let server = CtlServer::bind(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    drop(server);
    assert!(path.exists(), "not ours, not removed");
    drop(other);
}
