//! Session socket tests: the listener helper on a temp dir, and a real client and server thread
//! exchanging a batch of Send frames written in one call.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread;

use weft_shared::ids::{NodeId, Port};
use weft_shared::session::{
    ClientMessage, DEFAULT_SOCKET_MODE, DeliveryMode, Destination, ErrorMsg, FlowHandle,
    FrameWriter, Hello, LinkProtocol, MAX_FRAMES_PER_BATCH, MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION, OpenFlow, RecvBuf, RoutingMode, ServerMessage, SocketError, Strikes,
    Welcome, bind_listener, negotiate_version,
};

/// A fresh, empty directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-session-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn mode_of(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn stale_socket_is_reclaimed() {
    let dir = temp_dir("stale");
    let path = dir.join("node.sock");
    drop(UnixListener::bind(&path).unwrap()); // a dead node's leftover
    assert!(path.exists());
    assert_eq!(
        UnixStream::connect(&path).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );

    let listener = bind_listener(&path, DEFAULT_SOCKET_MODE).unwrap();
    let _client = UnixStream::connect(&path).unwrap();
    listener.accept().unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn live_socket_is_refused() {
    let dir = temp_dir("live");
    let path = dir.join("node.sock");
    let first = bind_listener(&path, DEFAULT_SOCKET_MODE).unwrap();
    let err = bind_listener(&path, DEFAULT_SOCKET_MODE).unwrap_err();
    assert!(
        matches!(err, SocketError::AnotherNodeRunning { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("another node is running on {}", path.display())
    );
    // The first node keeps its socket.
    let _client = UnixStream::connect(&path).unwrap();
    first.accept().unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_socket_is_refused_and_kept() {
    let dir = temp_dir("notsock");
    let path = dir.join("node.sock");
    fs::write(&path, b"precious").unwrap();
    let err = bind_listener(&path, DEFAULT_SOCKET_MODE).unwrap_err();
    assert!(matches!(err, SocketError::NotASocket { .. }), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), b"precious");

    let sub = dir.join("a-directory");
    fs::create_dir(&sub).unwrap();
    let err = bind_listener(&sub, DEFAULT_SOCKET_MODE).unwrap_err();
    assert!(matches!(err, SocketError::NotASocket { .. }), "{err:?}");
    assert!(sub.is_dir());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn permissions_and_parent_directory() {
    let dir = temp_dir("perms");
    let path = dir.join("run/weft/node.sock");
    let _l = bind_listener(&path, DEFAULT_SOCKET_MODE).unwrap();
    assert_eq!(mode_of(&path), 0o660);
    assert!(dir.join("run/weft").is_dir());

    let private = dir.join("private.sock");
    let _p = bind_listener(&private, 0o600).unwrap();
    assert_eq!(mode_of(&private), 0o600);
    fs::remove_dir_all(&dir).unwrap();
}

const SENDS: u32 = 1000;

/// What the server saw: Send frames (request id, flow, payload) and the most frames one read gave.
struct ServerLog {
    sends: Vec<(u32, FlowHandle, Vec<u8>)>,
    max_frames_per_read: usize,
    reads: usize,
}

/// A minimal server: handshake, Bind, OpenFlow, then Sends until Goodbye.
fn serve(listener: UnixListener) -> ServerLog {
    let (mut stream, _) = listener.accept().unwrap();
    let mut rb = RecvBuf::new(0);
    let mut out = vec![0u8; 4096];
    let mut log = ServerLog {
        sends: Vec::new(),
        max_frames_per_read: 0,
        reads: 0,
    };
    let mut welcomed = false;
    loop {
        let n = rb.read_from(&mut stream).unwrap();
        assert!(n > 0, "client closed before Goodbye");
        log.reads += 1;
        let mut frames_this_read = 0;
        // Handle at most MAX_FRAMES_PER_BATCH frames per turn, as the real server will.
        loop {
            let mut w = FrameWriter::new(&mut out);
            let mut reader = rb.frames();
            let mut done = false;
            let mut handled = 0;
            for f in reader.by_ref().take(MAX_FRAMES_PER_BATCH) {
                let f = f.unwrap();
                handled += 1;
                let msg = ClientMessage::decode(&f).unwrap();
                match msg {
                    ClientMessage::Hello(h) => {
                        let v = negotiate_version(
                            (h.min_version, h.max_version),
                            (MIN_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION),
                        );
                        let Some(version) = v else {
                            let e = ErrorMsg::unsupported_version(
                                MIN_PROTOCOL_VERSION,
                                MAX_PROTOCOL_VERSION,
                            );
                            w.push(f.request_id, &ServerMessage::Error(e)).unwrap();
                            done = true;
                            break;
                        };
                        let welcome = Welcome {
                            version,
                            node: NodeId::new(5).unwrap(),
                            max_payload: 65_000,
                            default_credits: SENDS,
                            max_flows: 4,
                            max_ports: 4,
                            max_groups: 4,
                        };
                        w.push(f.request_id, &ServerMessage::Welcome(welcome))
                            .unwrap();
                        welcomed = true;
                    }
                    _ if !welcomed => panic!("message before handshake"),
                    ClientMessage::Bind { port } => {
                        w.push(f.request_id, &ServerMessage::Bound { port })
                            .unwrap();
                    }
                    ClientMessage::OpenFlow(_) => {
                        let opened = ServerMessage::FlowOpened {
                            flow: FlowHandle(42),
                            credits: SENDS,
                        };
                        w.push(f.request_id, &opened).unwrap();
                    }
                    ClientMessage::Send { flow, payload } => {
                        log.sends.push((f.request_id, flow, payload.to_vec()));
                    }
                    ClientMessage::Goodbye => {
                        w.push(0, &ServerMessage::Goodbye).unwrap();
                        done = true;
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            let used = reader.consumed();
            rb.consume(used);
            frames_this_read += handled;
            if !w.is_empty() {
                stream.write_all(w.as_bytes()).unwrap();
            }
            if done {
                log.max_frames_per_read = log.max_frames_per_read.max(frames_this_read);
                return log;
            }
            if handled < MAX_FRAMES_PER_BATCH {
                break; // the buffer holds no more complete frames
            }
        }
        log.max_frames_per_read = log.max_frames_per_read.max(frames_this_read);
    }
}

/// Reads until one server message arrives; returns its request id, the message (only the kinds
/// this test expects) and the flow handle if it is a `FlowOpened`.
fn read_reply(
    stream: &mut UnixStream,
    rb: &mut RecvBuf,
) -> (u32, ServerMessage<'static>, Option<FlowHandle>) {
    loop {
        let mut reader = rb.frames();
        if let Some(f) = reader.next() {
            let f = f.unwrap();
            let msg = ServerMessage::decode(&f).unwrap();
            let flow = match msg {
                ServerMessage::FlowOpened { flow, .. } => Some(flow),
                _ => None,
            };
            // Keep only what the test needs past the buffer's borrow.
            let owned = match msg {
                ServerMessage::Welcome(w) => ServerMessage::Welcome(w),
                ServerMessage::Bound { port } => ServerMessage::Bound { port },
                ServerMessage::FlowOpened { flow, credits } => {
                    ServerMessage::FlowOpened { flow, credits }
                }
                ServerMessage::Goodbye => ServerMessage::Goodbye,
                other => panic!("unexpected {other:?}"),
            };
            let (id, used) = (f.request_id, reader.consumed());
            rb.consume(used);
            return (id, owned, flow);
        }
        assert!(rb.read_from(stream).unwrap() > 0, "server closed");
    }
}

#[test]
fn client_batch_of_sends_in_one_write_is_decoded_in_full() {
    let dir = temp_dir("batch");
    let path = dir.join("node.sock");
    let listener = bind_listener(&path, DEFAULT_SOCKET_MODE).unwrap();
    let server = thread::spawn(move || serve(listener));

    let mut stream = UnixStream::connect(&path).unwrap();
    let mut rb = RecvBuf::new(0);
    let mut out = vec![0u8; 64 * 1024];

    // Handshake.
    let mut w = FrameWriter::new(&mut out);
    w.push(
        1,
        &ClientMessage::Hello(Hello {
            min_version: 1,
            max_version: 1,
            name: "batch-test",
        }),
    )
    .unwrap();
    stream.write_all(w.as_bytes()).unwrap();
    let (id, msg, _) = read_reply(&mut stream, &mut rb);
    assert_eq!(id, 1);
    assert!(
        matches!(msg, ServerMessage::Welcome(Welcome { version: 1, .. })),
        "{msg:?}"
    );

    // Bind and OpenFlow pipelined in one write.
    let mut w = FrameWriter::new(&mut out);
    w.push(2, &ClientMessage::Bind { port: Port(0) }).unwrap();
    let open = OpenFlow {
        local_port: Port(9),
        destination: Destination::Node {
            node: NodeId::new(2).unwrap(),
            port: Port(9),
        },
        protocol: LinkProtocol::BestEffort,
        routing: RoutingMode::LinkState,
        priority: 0,
        deadline_us: 0,
        strikes: Strikes { n: 0, m: 0 },
        delivery: DeliveryMode::InOrderAsap,
        pack_delay_us: 0,
    };
    w.push(3, &ClientMessage::OpenFlow(open)).unwrap();
    stream.write_all(w.as_bytes()).unwrap();
    assert_eq!(read_reply(&mut stream, &mut rb).0, 2);
    let (id, msg, flow) = read_reply(&mut stream, &mut rb);
    assert_eq!(id, 3);
    let flow = flow.unwrap();
    let ServerMessage::FlowOpened { credits, .. } = msg else {
        panic!("{msg:?}")
    };

    // SENDS Send frames, within the flow's credits, encoded into one buffer and written at once.
    let mut batch = vec![0u8; 64 * 1024];
    let mut w = FrameWriter::new(&mut batch);
    let mut credits = credits;
    for i in 0..SENDS {
        assert!(credits > 0, "ran out of credits");
        credits -= 1;
        let payload = format!("message {i:04}");
        w.push(
            1000 + i,
            &ClientMessage::Send {
                flow,
                payload: payload.as_bytes(),
            },
        )
        .unwrap();
    }
    w.push(5000, &ClientMessage::Goodbye).unwrap();
    assert_eq!(w.frames(), usize::try_from(SENDS).unwrap() + 1);
    stream.write_all(w.as_bytes()).unwrap();
    let (_, bye, _) = read_reply(&mut stream, &mut rb);
    assert_eq!(bye, ServerMessage::Goodbye);

    let log = server.join().unwrap();
    assert_eq!(log.sends.len(), usize::try_from(SENDS).unwrap());
    for (i, (id, f, payload)) in (0u32..).zip(&log.sends) {
        assert_eq!((*id, *f), (1000 + i, flow));
        assert_eq!(payload, format!("message {i:04}").as_bytes());
    }
    // Batching really happened: one read carried many frames.
    assert!(
        log.max_frames_per_read > MAX_FRAMES_PER_BATCH,
        "max {} per read",
        log.max_frames_per_read
    );
    println!(
        "server: {} reads, up to {} frames per read",
        log.reads, log.max_frames_per_read
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stream_close_mid_frame_leaves_a_partial_frame() {
    // A client dies halfway through a frame: the server sees EOF with bytes buffered, which it
    // treats as a closed connection (the partial frame is never returned as a frame).
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let mut buf = [0u8; 64];
    let mut w = FrameWriter::new(&mut buf);
    w.push(1, &ClientMessage::Bind { port: Port(1) }).unwrap();
    a.write_all(&w.as_bytes()[..7]).unwrap();
    drop(a);
    let mut rb = RecvBuf::new(0);
    while rb.read_from(&mut b).unwrap() > 0 {}
    assert_eq!(rb.data().len(), 7);
    assert!(rb.frames().next().is_none());
    let mut rest = Vec::new();
    assert_eq!(b.read_to_end(&mut rest).unwrap(), 0);
}
