//! Tests of the link monitor in virtual time: one endpoint with scripted peer hellos
//! (`scripted`), and a pair of monitors over a small seeded channel (`sim`, `pair`).

mod pair;
mod scripted;
mod sim;

use weft_shared::ids::{Incarnation, PathId};

use super::{LinkMonitorConfig, LocalIdentity, VersionRange};

/// The config hash both ends use unless a test says otherwise.
const HASH: u64 = 0xC0FF_EE00_1234_5678;

fn identity(incarnation: u32, config_hash: u64) -> LocalIdentity {
    LocalIdentity {
        incarnation: Incarnation(incarnation),
        config_hash,
        versions: VersionRange { min: 1, max: 2 },
    }
}

fn config(path_count: u8) -> LinkMonitorConfig {
    LinkMonitorConfig {
        path_count,
        phase_seed: 17,
        ..LinkMonitorConfig::default()
    }
}

fn path(i: u8) -> PathId {
    PathId::new(i).unwrap()
}
