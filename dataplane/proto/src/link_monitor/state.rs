//! The path liveness state machine: an enum whose transitions are declared in one table
//! (STYLE.md §6), so the code can only move a path along an edge listed here.
//!
//! ```text
//!  Unknown ───Proven───► Up ───Silent───► Down
//!     │                  │ ▲                │
//!     │                  │ └────Proven──────┤
//!     │ Mismatched       │ Mismatched       │ Mismatched
//!     └─────────────► Mismatch ◄────────────┘
//!                        │ Matched
//!                        └────────► Down
//! ```

/// The liveness of one path of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathState {
    /// No proof yet that the path works: the state at start.
    Unknown,
    /// The peer's hellos arrive; the path may carry traffic.
    Up,
    /// The path was up and fell silent (or left `Mismatch`); it needs a fresh proof to come back.
    Down,
    /// The peer's config hash or wire versions differ from ours. The path stays down, whatever the
    /// hellos' timing, until a matching hello arrives.
    Mismatch,
}

impl PathState {
    /// Every state, in the order of the transition table's rows.
    pub const ALL: [PathState; 4] = [
        PathState::Unknown,
        PathState::Up,
        PathState::Down,
        PathState::Mismatch,
    ];

    /// Whether the path may carry traffic.
    pub const fn is_up(self) -> bool {
        matches!(self, PathState::Up)
    }

    /// The state reached from `self` on `input`, or `None` if the table has no such edge (the
    /// input changes nothing in this state).
    pub(super) fn on_input(self, input: PathInput) -> Option<PathState> {
        TRANSITIONS
            .iter()
            .find(|(from, on, _)| *from == self && *on == input)
            .map(|(_, _, to)| *to)
    }
}

/// What can move a path from one state to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum PathInput {
    /// The peer's last `up_after_hellos` hellos, all newer than the path's last fall, arrived.
    Proven,
    /// The dead timer fired: no hello for `hello_interval + dead_after`.
    Silent,
    /// A hello's config hash or versions do not match ours.
    Mismatched,
    /// A matching hello arrived.
    Matched,
}

impl PathInput {
    /// Every input, in the order of the transition table's columns.
    #[cfg(test)]
    pub(super) const ALL: [PathInput; 4] = [
        PathInput::Proven,
        PathInput::Silent,
        PathInput::Mismatched,
        PathInput::Matched,
    ];
}

/// The declared edges: (from, on, to). Anything not listed leaves the state unchanged.
const TRANSITIONS: [(PathState, PathInput, PathState); 7] = [
    (PathState::Unknown, PathInput::Proven, PathState::Up),
    (PathState::Down, PathInput::Proven, PathState::Up),
    (PathState::Up, PathInput::Silent, PathState::Down),
    (
        PathState::Unknown,
        PathInput::Mismatched,
        PathState::Mismatch,
    ),
    (PathState::Up, PathInput::Mismatched, PathState::Mismatch),
    (PathState::Down, PathInput::Mismatched, PathState::Mismatch),
    // Leaving a mismatch still needs a fresh proof, as after any fall.
    (PathState::Mismatch, PathInput::Matched, PathState::Down),
];

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// The whole table as text: a row per state, a column per input, `-` where nothing happens.
    fn render() -> String {
        let mut out = format!("{:<10}", "");
        for input in PathInput::ALL {
            let _ = write!(out, "{:<12}", format!("{input:?}"));
        }
        out = out.trim_end().to_owned();
        for state in PathState::ALL {
            let mut row = format!("\n{:<10}", format!("{state:?}"));
            for input in PathInput::ALL {
                let cell = state
                    .on_input(input)
                    .map_or("-".to_owned(), |s| format!("{s:?}"));
                let _ = write!(row, "{cell:<12}");
            }
            out.push_str(row.trim_end());
        }
        out
    }

    #[test]
    fn transition_table_snapshot() {
        let expected = [
            "          Proven      Silent      Mismatched  Matched",
            "Unknown   Up          -           Mismatch    -",
            "Up        -           Down        Mismatch    -",
            "Down      Up          -           Mismatch    -",
            "Mismatch  -           -           -           Down",
        ]
        .join("\n");
        let got = render();
        assert_eq!(got, expected, "transition table changed:\n{got}");
    }

    #[test]
    fn edges_are_unique() {
        for (i, a) in TRANSITIONS.iter().enumerate() {
            for b in &TRANSITIONS[i + 1..] {
                assert!(!(a.0 == b.0 && a.1 == b.1), "duplicate edge {a:?} / {b:?}");
            }
        }
    }
}
