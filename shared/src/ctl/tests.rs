//! Tests of the ctl codec and the blocking client (the client against in-process servers).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use super::codec::{
    CodecError, decode_reply, decode_request, encode_reply, encode_request, find_line, json_len,
};
use super::*;

fn status() -> StatusReply {
    StatusReply {
        node: 1,
        name: "amsterdam".into(),
        incarnation: 0xdead_beef,
        uptime_ms: 12_345,
        fib_generation: 7,
        fib_publishes: 6,
        updates_received: 100,
        updates_sent: 90,
        retransmissions: 3,
        spf_runs: 5,
        last_spf_us: 42,
    }
}

fn nodes() -> Vec<NodeRow> {
    vec![NodeRow {
        node: 2,
        name: "berlin \"b\"\nline".into(),
        reachable: true,
        incarnation: 9,
        seq: 77,
        age_ms: 1500,
        links: vec![AdvertisedLink {
            link: 0,
            neighbour: 1,
            up: true,
            latency_us: 250,
            loss_ppm: 10,
            cost_us: 260,
        }],
    }]
}

fn routes() -> Vec<RouteRow> {
    vec![
        RouteRow {
            destination: 4,
            name: "dublin".into(),
            next_hop_node: Some(2),
            link: Some(0),
            metric_us: 10_000,
            path: vec![1, 2, 4],
        },
        RouteRow {
            destination: 5,
            name: "edinburgh".into(),
            next_hop_node: None,
            link: None,
            metric_us: u64::MAX,
            path: vec![],
        },
    ]
}

fn groups() -> GroupsReply {
    GroupsReply {
        node: 1,
        name: "amsterdam".into(),
        asked_group: None,
        group_count: 2,
        fib_multicast: 5,
        fib_anycast: 2,
        adverts: GroupAdvertStats {
            originated: 3,
            accepted: 10,
            ignored: 1,
            refused: 0,
            sent: 20,
            retransmissions: 2,
            acks_received: 18,
            full_exchanges: 1,
            superseded: 0,
            aged_out: 0,
        },
        local: vec![LocalGroupRow {
            group: 7,
            members: 2,
        }],
        local_total: 1,
        groups: vec![
            GroupRow {
                group: 7,
                members: vec![1, 4],
                anycast: Some(AnycastChoice {
                    target: 1,
                    next_hop_node: None,
                    link: None,
                    metric_us: 0,
                }),
                tree: vec![
                    TreeEdgeRow {
                        from: 1,
                        to: 2,
                        link: 0,
                    },
                    TreeEdgeRow {
                        from: 2,
                        to: 4,
                        link: 3,
                    },
                ],
                trees: vec![],
            },
            GroupRow {
                group: 9,
                members: vec![5],
                anycast: None,
                tree: vec![],
                trees: vec![SourceTree {
                    source: 2,
                    edges: vec![],
                }],
            },
        ],
        total: 2,
        truncated: false,
        names: vec![NodeName {
            node: 1,
            name: "amsterdam".into(),
        }],
    }
}

#[test]
fn requests_round_trip_and_look_as_documented() {
    for (request, text) in [
        (CtlRequest::Status, "{\"v\":1,\"show\":\"status\"}\n"),
        (CtlRequest::Nodes, "{\"v\":1,\"show\":\"nodes\"}\n"),
        (CtlRequest::Routes, "{\"v\":1,\"show\":\"routes\"}\n"),
        (CtlRequest::Groups, "{\"v\":1,\"show\":\"groups\"}\n"),
    ] {
        let line = encode_request(request).unwrap();
        assert_eq!(String::from_utf8(line.clone()).unwrap(), text);
        assert_eq!(decode_request(&line).unwrap(), request);
        assert_eq!(request.name(), &text[15..text.len() - 3]);
    }
    // One group: the same kind with a "group" key.
    let line = encode_request(CtlRequest::Group(7)).unwrap();
    assert_eq!(
        String::from_utf8(line.clone()).unwrap(),
        "{\"v\":1,\"show\":\"groups\",\"group\":7}\n"
    );
    assert_eq!(decode_request(&line).unwrap(), CtlRequest::Group(7));
    assert_eq!(CtlRequest::Group(7).name(), "groups");
    assert_eq!(
        decode_request(b"{\"v\":1,\"group\":4294967295,\"show\":\"groups\"}").unwrap(),
        CtlRequest::Group(u32::MAX)
    );
    assert_eq!(
        decode_request(b"{\"v\":1,\"show\":\"groups\",\"group\":null}").unwrap(),
        CtlRequest::Groups
    );
    // Without the newline, with CRLF, and with extra keys (ignored for forward compatibility).
    assert_eq!(
        decode_request(b"{\"show\":\"nodes\",\"v\":1}").unwrap(),
        CtlRequest::Nodes
    );
    assert_eq!(
        decode_request(b"{\"v\":1,\"show\":\"routes\"}\r\n").unwrap(),
        CtlRequest::Routes
    );
    assert_eq!(
        decode_request(b"{\"v\":1,\"show\":\"status\",\"extra\":[1]}").unwrap(),
        CtlRequest::Status
    );
}

#[test]
fn replies_round_trip_and_look_as_documented() {
    let replies = [
        CtlReply::Status(status()),
        CtlReply::Nodes(nodes()),
        CtlReply::Nodes(vec![]),
        CtlReply::Routes(routes()),
        CtlReply::Groups(groups()),
        CtlReply::Groups(GroupsReply::default()),
        CtlReply::error("no link-state database yet"),
    ];
    for reply in replies {
        let line = encode_reply(&reply).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(decode_reply(&line).unwrap(), reply);
    }
    let text = String::from_utf8(encode_reply(&CtlReply::error("x")).unwrap()).unwrap();
    assert_eq!(text, "{\"v\":1,\"error\":{\"message\":\"x\"}}\n");
    let text = String::from_utf8(encode_reply(&CtlReply::Routes(routes())).unwrap()).unwrap();
    assert!(
        text.starts_with("{\"v\":1,\"routes\":[{\"destination\":4,\"name\":\"dublin\",\"next_hop_node\":2,\"link\":0,"),
        "{text}"
    );
    assert!(text.contains("\"next_hop_node\":null"), "{text}");
    // The field names weftctl's `--json` and its users rely on.
    let text = String::from_utf8(encode_reply(&CtlReply::Groups(groups())).unwrap()).unwrap();
    assert!(
        text.starts_with("{\"v\":1,\"groups\":{\"node\":1,\"name\":\"amsterdam\","),
        "{text}"
    );
    for part in [
        "\"local\":[{\"group\":7,\"members\":2}]",
        "\"groups\":[{\"group\":7,\"members\":[1,4],\"anycast\":{\"target\":1,",
        "\"tree\":[{\"from\":1,\"to\":2,\"link\":0},{\"from\":2,\"to\":4,\"link\":3}]",
        "\"anycast\":null",
        "\"trees\":[{\"source\":2,\"edges\":[]}]",
        "\"total\":2,\"truncated\":false",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    // `trees` may be left out by a sender (it is empty unless one group was asked for).
    let without_trees = text.replace(",\"trees\":[]", "");
    assert_ne!(without_trees, text);
    assert_eq!(
        decode_reply(without_trees.as_bytes()).unwrap(),
        CtlReply::Groups(groups())
    );
    // json_len counts what encode_reply writes.
    let reply = CtlReply::Groups(groups());
    let line = encode_reply(&reply).unwrap();
    let GroupsReply { groups: rows, .. } = groups();
    assert_eq!(json_len(&rows), serde_json::to_vec(&rows).unwrap().len());
    assert!(json_len(&reply) < line.len());
}

#[test]
fn unknown_requests_and_misplaced_parameters_are_rejected() {
    for bad in [
        &b"{\"v\":1,\"show\":\"group\"}"[..],
        b"{\"v\":1,\"show\":\"Groups\"}",
        b"{\"v\":1,\"show\":\"multicast\"}",
        b"{\"v\":1,\"show\":\"groups\",\"group\":-1}",
        b"{\"v\":1,\"show\":\"groups\",\"group\":4294967296}",
        b"{\"v\":1,\"show\":\"groups\",\"group\":\"7\"}",
        b"{\"v\":1,\"show\":\"groups\",\"group\":7.5}",
        // "group" is a parameter of "groups" only.
        b"{\"v\":1,\"show\":\"routes\",\"group\":7}",
        b"{\"v\":1,\"show\":\"status\",\"group\":0}",
    ] {
        assert!(
            matches!(decode_request(bad), Err(CodecError::Malformed(_))),
            "{:?} -> {:?}",
            String::from_utf8_lossy(bad),
            decode_request(bad)
        );
    }
    let err = decode_request(b"{\"v\":1,\"show\":\"nodes\",\"group\":7}").unwrap_err();
    assert!(
        err.to_string().contains("\"group\" goes only with"),
        "{err}"
    );
    // A groups reply of another shape is refused, not half read.
    for bad in [
        &b"{\"v\":1,\"groups\":[]}"[..],
        b"{\"v\":1,\"groups\":{\"node\":1}}",
    ] {
        assert!(
            matches!(decode_reply(bad), Err(CodecError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn query_sends_groups_and_reads_an_error_from_an_older_server() {
    // A control plane that predates `groups` answers with an error reply; the client returns
    // it as the server's answer.
    let (path, dir) = socket_path("groups-old");
    let server = serve_one(UnixListener::bind(&path).unwrap(), |stream| {
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        assert_eq!(line, "{\"v\":1,\"show\":\"groups\",\"group\":3}\n");
        let old = "{\"v\":1,\"error\":{\"message\":\"bad request: malformed message: unknown variant `groups`\"}}\n";
        (&stream).write_all(old.as_bytes()).unwrap();
    });
    let reply = query(&path, CtlRequest::Group(3), Duration::from_secs(5)).unwrap();
    assert!(
        matches!(&reply, CtlReply::Error { message } if message.contains("unknown variant `groups`")),
        "{reply:?}"
    );
    server.join().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn garbage_and_wrong_versions_are_rejected() {
    for bad in [
        &b""[..],
        b"\n",
        b"hello\n",
        b"{\"v\":1}",
        b"{\"show\":\"nodes\"}",
        b"{\"v\":1,\"show\":\"everything\"}",
        b"{\"v\":\"1\",\"show\":\"nodes\"}",
        b"{\"v\":1,\"show\":\"nodes\"",
        b"[1,2,3]",
        b"\xff\xfe{\"v\":1,\"show\":\"nodes\"}",
        b"{\"v\":1,\"show\":\"nodes\"}{\"v\":1,\"show\":\"nodes\"}",
    ] {
        assert!(
            matches!(decode_request(bad), Err(CodecError::Malformed(_))),
            "{:?} -> {:?}",
            String::from_utf8_lossy(bad),
            decode_request(bad)
        );
    }
    assert_eq!(
        decode_request(b"{\"v\":2,\"show\":\"nodes\"}"),
        Err(CodecError::Version {
            found: 2,
            expected: 1
        })
    );
    assert_eq!(
        decode_reply(b"{\"v\":0,\"error\":{\"message\":\"x\"}}"),
        Err(CodecError::Version {
            found: 0,
            expected: 1
        })
    );
    for bad in [
        &b"{\"v\":1}"[..],
        b"{\"v\":1,\"nodes\":{}}",
        b"{\"v\":1,\"status\":{\"node\":1}}",
        b"{\"v\":1,\"sideways\":[]}",
    ] {
        assert!(
            matches!(decode_reply(bad), Err(CodecError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn oversize_lines_are_rejected() {
    let mut long = b"{\"v\":1,\"show\":\"nodes\",\"pad\":\"".to_vec();
    long.resize(MAX_REQUEST_LINE, b'x');
    long.extend_from_slice(b"\"}\n");
    assert_eq!(
        decode_request(&long),
        Err(CodecError::TooLong {
            max: MAX_REQUEST_LINE
        })
    );
    let huge = CtlReply::error("x".repeat(MAX_REPLY_LINE));
    assert_eq!(
        encode_reply(&huge),
        Err(CodecError::TooLong {
            max: MAX_REPLY_LINE
        })
    );
}

#[test]
fn find_line_bounds() {
    assert_eq!(find_line(b"", 0, 8), Ok(None));
    assert_eq!(find_line(b"abc", 0, 8), Ok(None));
    assert_eq!(find_line(b"abc\ndef", 0, 8), Ok(Some(4)));
    assert_eq!(find_line(b"abc\ndef", 2, 8), Ok(Some(4)));
    assert_eq!(find_line(b"abc\ndef\n", 4, 8), Ok(Some(8)));
    // Exactly at the bound (newline included) is fine; one more is not.
    assert_eq!(find_line(b"1234567\n", 0, 8), Ok(Some(8)));
    assert_eq!(
        find_line(b"12345678\n", 0, 8),
        Err(CodecError::TooLong { max: 8 })
    );
    assert_eq!(find_line(b"1234567", 0, 8), Ok(None));
    assert_eq!(
        find_line(b"12345678", 0, 8),
        Err(CodecError::TooLong { max: 8 })
    );
    // `from` past the end is clamped, not a panic.
    assert_eq!(find_line(b"ab", 9, 8), Ok(None));
}

/// A socket path in a fresh per-test directory.
fn socket_path(test: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("weft-ctl-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (dir.join("node.ctl"), dir)
}

/// Serves one connection on `listener` with `serve`, in a thread.
fn serve_one(
    listener: UnixListener,
    serve: impl FnOnce(std::os::unix::net::UnixStream) + Send + 'static,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        serve(stream);
    })
}

#[test]
fn query_gets_an_answer() {
    let (path, dir) = socket_path("answer");
    let server = serve_one(UnixListener::bind(&path).unwrap(), |stream| {
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        assert_eq!(decode_request(line.as_bytes()).unwrap(), CtlRequest::Nodes);
        (&stream)
            .write_all(&encode_reply(&CtlReply::Nodes(nodes())).unwrap())
            .unwrap();
    });
    let reply = query(&path, CtlRequest::Nodes, Duration::from_secs(5)).unwrap();
    assert_eq!(reply, CtlReply::Nodes(nodes()));
    server.join().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn query_reports_not_running() {
    let (path, dir) = socket_path("not-running");
    // No socket file at all.
    let err = query(&path, CtlRequest::Status, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, CtlError::NotRunning { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("not running"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    // A socket file left behind by a dead server (ECONNREFUSED).
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let err = query(&path, CtlRequest::Status, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, CtlError::NotRunning { .. }), "{err:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn query_times_out_on_a_silent_server() {
    let (path, dir) = socket_path("silent");
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let server = serve_one(UnixListener::bind(&path).unwrap(), move |stream| {
        // Hold the connection open without answering until the client gave up.
        let _ = done_rx.recv();
        drop(stream);
    });
    let err = query(&path, CtlRequest::Routes, Duration::from_millis(100)).unwrap_err();
    assert!(matches!(err, CtlError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer"), "{err}");
    done_tx.send(()).unwrap();
    server.join().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A misbehaving server, for [`query_rejects_bad_replies`].
#[derive(Clone, Copy, Debug)]
enum BadServer {
    Garbage,
    Version,
    Endless,
    Closed,
}

impl BadServer {
    fn serve(self, stream: &mut std::os::unix::net::UnixStream) {
        match self {
            BadServer::Garbage => stream.write_all(b"200 OK\n").unwrap(),
            BadServer::Version => stream.write_all(b"{\"v\":9,\"nodes\":[]}\n").unwrap(),
            BadServer::Endless => {
                let chunk = vec![b'x'; 64 * 1024];
                // The client stops reading at the bound and closes; the write then fails.
                while stream.write_all(&chunk).is_ok() {}
            }
            BadServer::Closed => stream.write_all(b"{\"v\":1,").unwrap(),
        }
    }
}

#[test]
fn query_rejects_bad_replies() {
    for bad in [
        BadServer::Garbage,
        BadServer::Version,
        BadServer::Endless,
        BadServer::Closed,
    ] {
        let (path, dir) = socket_path(&format!("bad-{bad:?}"));
        let server = serve_one(UnixListener::bind(&path).unwrap(), move |mut stream| {
            let mut line = [0u8; 64];
            let _ = stream.read(&mut line).unwrap();
            bad.serve(&mut stream);
        });
        let err = query(&path, CtlRequest::Nodes, Duration::from_secs(5)).unwrap_err();
        let ok = match (bad, &err) {
            (BadServer::Garbage, CtlError::BadReply { source, .. }) => {
                matches!(source, CodecError::Malformed(_))
            }
            (BadServer::Version, CtlError::BadReply { source, .. }) => {
                matches!(source, CodecError::Version { found: 9, .. })
            }
            (BadServer::Endless, CtlError::BadReply { source, .. }) => {
                *source
                    == CodecError::TooLong {
                        max: MAX_REPLY_LINE,
                    }
            }
            (BadServer::Closed, CtlError::Closed { .. }) => true,
            _ => false,
        };
        assert!(ok, "{bad:?}: {err:?}");
        server.join().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
