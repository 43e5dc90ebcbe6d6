//! Questions to the control plane over its ctl socket (`weft_shared::ctl`).

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use weft_shared::ctl::{self, CtlReply, CtlRequest, GroupsReply, NodeRow, RouteRow, StatusReply};

/// Sends `request` and returns the reply; an error reply or a failed exchange is an error whose
/// text says what happened (for example that the control plane is not running, naming the
/// socket).
pub fn ask(socket: &Path, request: CtlRequest, timeout: Duration) -> anyhow::Result<CtlReply> {
    match ctl::query(socket, request, timeout)? {
        CtlReply::Error { message } => bail!(
            "the control plane on {} refused 'show {}': {message}",
            socket.display(),
            request.name()
        ),
        reply => Ok(reply),
    }
}

/// The control plane's status.
pub fn status(socket: &Path, timeout: Duration) -> anyhow::Result<StatusReply> {
    match ask(socket, CtlRequest::Status, timeout)? {
        CtlReply::Status(status) => Ok(status),
        other => unexpected(socket, CtlRequest::Status, &other),
    }
}

/// The link-state database.
pub fn nodes(socket: &Path, timeout: Duration) -> anyhow::Result<Vec<NodeRow>> {
    match ask(socket, CtlRequest::Nodes, timeout)? {
        CtlReply::Nodes(nodes) => Ok(nodes),
        other => unexpected(socket, CtlRequest::Nodes, &other),
    }
}

/// The routing table.
pub fn routes(socket: &Path, timeout: Duration) -> anyhow::Result<Vec<RouteRow>> {
    match ask(socket, CtlRequest::Routes, timeout)? {
        CtlReply::Routes(routes) => Ok(routes),
        other => unexpected(socket, CtlRequest::Routes, &other),
    }
}

/// The group state: every known group, or only `group` with its trees from every source.
pub fn groups(socket: &Path, group: Option<u32>, timeout: Duration) -> anyhow::Result<GroupsReply> {
    let request = group.map_or(CtlRequest::Groups, CtlRequest::Group);
    match ask(socket, request, timeout)? {
        CtlReply::Groups(groups) => Ok(groups),
        other => unexpected(socket, request, &other),
    }
}

fn unexpected<T>(socket: &Path, request: CtlRequest, reply: &CtlReply) -> anyhow::Result<T> {
    let kind = match reply {
        CtlReply::Status(_) => "status",
        CtlReply::Nodes(_) => "nodes",
        CtlReply::Routes(_) => "routes",
        CtlReply::Groups(_) => "groups",
        CtlReply::Error { .. } => "error",
    };
    bail!(
        "the control plane on {} answered 'show {}' with a {kind} reply",
        socket.display(),
        request.name()
    )
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    use weft_shared::ctl::codec::{decode_request, encode_reply};

    use super::*;

    /// Answers one `groups` request on a fresh socket with `reply`; returns what was asked.
    fn ask_groups_of(
        test: &str,
        group: Option<u32>,
        reply: CtlReply,
    ) -> anyhow::Result<GroupsReply> {
        let dir = std::env::temp_dir().join(format!("weftctl-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            (&stream).write_all(&encode_reply(&reply).unwrap()).unwrap();
            decode_request(line.as_bytes()).unwrap()
        });
        let got = groups(&path, group, Duration::from_secs(5));
        let asked = server.join().unwrap();
        let expected = group.map_or(CtlRequest::Groups, CtlRequest::Group);
        assert_eq!(asked, expected);
        std::fs::remove_dir_all(dir).unwrap();
        got
    }

    #[test]
    fn groups_from_a_control_plane_old_or_new() {
        let reply = GroupsReply {
            node: 2,
            total: 0,
            ..GroupsReply::default()
        };
        let got = ask_groups_of("groups-new", Some(7), CtlReply::Groups(reply.clone())).unwrap();
        assert_eq!(got, reply);
        // A control plane from before `groups` answers with an error.
        let old = CtlReply::error("bad request: malformed message: unknown variant `groups`");
        let err = ask_groups_of("groups-old", None, old)
            .unwrap_err()
            .to_string();
        assert!(err.contains("refused 'show groups'"), "{err}");
        assert!(err.contains("unknown variant `groups`"), "{err}");
        let err = ask_groups_of("groups-odd", None, CtlReply::Routes(vec![]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("answered 'show groups' with a routes reply"),
            "{err}"
        );
    }
}
