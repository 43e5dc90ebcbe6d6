//! Questions to the control plane over its ctl socket (`weft_shared::ctl`).

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use weft_shared::ctl::{self, CtlReply, CtlRequest, NodeRow, RouteRow, StatusReply};

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

fn unexpected<T>(socket: &Path, request: CtlRequest, reply: &CtlReply) -> anyhow::Result<T> {
    let kind = match reply {
        CtlReply::Status(_) => "status",
        CtlReply::Nodes(_) => "nodes",
        CtlReply::Routes(_) => "routes",
        CtlReply::Error { .. } => "error",
    };
    bail!(
        "the control plane on {} answered 'show {}' with a {kind} reply",
        socket.display(),
        request.name()
    )
}
