//! Mapping between the wire hello ([`HelloRepr`] plus the link header) and the fields the link
//! monitor works with ([`HelloFields`]).

use weft_shared::ids::Incarnation;
use weft_shared::wire::{HelloEcho, HelloRepr, LinkRepr};

use crate::link_monitor::{HelloFields, VersionRange};

/// The monitor's view of a hello received with link header `rx`, at the node whose
/// data-plane incarnation is `mine`. An echo of another incarnation of ours (times of another
/// clock) is left out, as if the peer had none.
pub fn hello_fields(rx: &LinkRepr, hello: &HelloRepr, mine: Incarnation) -> HelloFields {
    let echo = hello.echo.filter(|e| e.incarnation == mine);
    HelloFields {
        seq: hello.hello_seq,
        tx_time_ns: hello.tx_time_ns,
        echo_tx_time_ns: echo.map_or(0, |e| e.tx_time_ns),
        echo_held_us: echo.map_or(0, |e| e.delay_us),
        incarnation: rx.sender_incarnation,
        config_hash: hello.config_hash,
        versions: VersionRange {
            min: hello.version_min,
            max: hello.version_max,
        },
        rx_loss_ppm: None,
    }
}

/// The wire hello for `fields` as the monitor built it; `peer` is the peer's incarnation the
/// echo belongs to (the monitor's [`peer_incarnation`](crate::link_monitor::LinkMonitor::peer_incarnation)).
/// Without a peer incarnation or an echoed time, the hello carries no echo.
pub fn hello_repr(fields: &HelloFields, peer: Option<Incarnation>) -> HelloRepr {
    let echo = peer
        .filter(|p| p.0 != 0 && fields.echo_tx_time_ns != 0)
        .map(|incarnation| HelloEcho {
            tx_time_ns: fields.echo_tx_time_ns,
            delay_us: fields.echo_held_us,
            incarnation,
        });
    HelloRepr {
        version_min: fields.versions.min,
        version_max: fields.versions.max,
        hello_seq: fields.seq,
        tx_time_ns: fields.tx_time_ns,
        echo,
        config_hash: fields.config_hash,
        // The link sender fills in the newest key epoch it holds for the link.
        key_epoch: None,
    }
}
