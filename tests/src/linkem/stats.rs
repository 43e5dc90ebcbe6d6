//! Counters of one relayed direction, and the JSON the `stats` command and the exit report
//! print.
//!
//! Every datagram that arrives is counted once as `offered` and, eventually, once in exactly
//! one of the other counters, so at any time
//! `offered = delivered + lost + queue_drops + down_drops + held_drops + send_errors + in_flight`.

use serde_json::{Value, json};

use crate::linkem::params::params_json;
use crate::linkmodel::LinkParams;

/// Counters of one direction of one path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirCounters {
    /// Datagrams that arrived on the entry socket.
    pub offered: u64,
    /// Datagrams sent on at their delivery time.
    pub delivered: u64,
    /// Lost by the loss model.
    pub lost: u64,
    /// Dropped because the rate limit's queue was full.
    pub queue_drops: u64,
    /// Dropped because the direction was cut.
    pub down_drops: u64,
    /// Dropped because `max_held` datagrams were already waiting.
    pub held_drops: u64,
    /// Due, but the kernel refused to send them.
    pub send_errors: u64,
    /// Bytes of UDP payload delivered.
    pub delivered_bytes: u64,
    /// Datagrams sent more than 1 ms after their delivery time (the relay fell behind).
    pub late_1ms: u64,
    /// The most any datagram was sent after its delivery time, in microseconds.
    pub max_late_us: u64,
}

/// The JSON of one direction: its state, counters, datagrams in flight and settings.
pub fn dir_json(up: bool, c: &DirCounters, in_flight: usize, params: &LinkParams) -> Value {
    json!({
        "up": up,
        "offered": c.offered,
        "delivered": c.delivered,
        "lost": c.lost,
        "queue_drops": c.queue_drops,
        "down_drops": c.down_drops,
        "held_drops": c.held_drops,
        "send_errors": c.send_errors,
        "in_flight": in_flight,
        "delivered_bytes": c.delivered_bytes,
        "late_1ms": c.late_1ms,
        "max_late_us": c.max_late_us,
        "params": params_json(params),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_in_the_json() {
        let c = DirCounters {
            offered: 10,
            delivered: 4,
            lost: 1,
            queue_drops: 1,
            down_drops: 1,
            held_drops: 1,
            send_errors: 1,
            delivered_bytes: 400,
            late_1ms: 0,
            max_late_us: 0,
        };
        let v = dir_json(true, &c, 1, &LinkParams::default());
        let sum: u64 = [
            "delivered",
            "lost",
            "queue_drops",
            "down_drops",
            "held_drops",
            "send_errors",
            "in_flight",
        ]
        .iter()
        .map(|k| v[*k].as_u64().unwrap_or(u64::MAX / 8))
        .sum();
        assert_eq!(sum, v["offered"].as_u64().unwrap_or(0));
        assert_eq!(v["up"], true);
        assert_eq!(v["params"]["loss"]["model"], "none");
    }
}
