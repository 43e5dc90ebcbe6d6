//! Tests of the reliable machines: each machine with scripted time, then a sender–receiver pair
//! and a source–sink pair over lossy, reordering channels (property tests).

mod e2e;
mod link;
mod pair;

use core::time::Duration;

use weft_shared::time::Instant;

use super::{RelParams, RelReceiver, RelReceiverLimits, RelSender, RelSenderLimits};

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

/// A sender and receiver for a 10 ms link (20 ms round trip) with a small window.
fn link_pair(window: u32) -> (RelSender, RelReceiver) {
    let params = RelParams {
        congestion_control: true,
        ..RelParams::for_link(Duration::from_millis(20))
    };
    let tx = RelSender::new(
        params,
        RelSenderLimits {
            window,
            record_len: 16,
        },
    );
    let rx = RelReceiver::new(
        params,
        RelReceiverLimits {
            window: window.max(64),
            pending: 256,
        },
    );
    (tx, rx)
}
