//! The control line protocol of `weft-linkem`: one command per line, words separated by spaces.
//!
//! ```text
//! cut     [PATH|all] [a-to-b|b-to-a|both]
//! restore [PATH|all] [a-to-b|b-to-a|both]
//! set     PATH|all   [a-to-b|b-to-a|both] KEY=VALUE ...
//! stats
//! quit
//! ```
//!
//! The path defaults to `all` and the direction to `both`. The same commands (except `stats`)
//! are the actions of a timeline. Every reply is one line of JSON (see `docs/linkem.md`).

use crate::linkem::params::{ParamError, ParamSpec};
use crate::linkmodel::LinkParams;

/// The longest command line accepted, newline included.
pub const MAX_LINE: usize = 4096;

/// One or both directions of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dirs {
    /// From the A side to the B side only.
    AToB,
    /// From the B side to the A side only.
    BToA,
    /// Both directions.
    Both,
}

impl Dirs {
    /// The direction word, if `word` is one (`a-to-b`, `b-to-a`, `both`; `_` for `-` too).
    pub fn from_word(word: &str) -> Option<Dirs> {
        match word {
            "a-to-b" | "a_to_b" => Some(Dirs::AToB),
            "b-to-a" | "b_to_a" => Some(Dirs::BToA),
            "both" => Some(Dirs::Both),
            _ => None,
        }
    }

    /// Whether direction index `dir` (0 = A to B, 1 = B to A) is included.
    pub fn includes(self, dir: usize) -> bool {
        match self {
            Dirs::AToB => dir == 0,
            Dirs::BToA => dir == 1,
            Dirs::Both => dir < 2,
        }
    }
}

/// Which paths and directions a command applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The path's name; `None` for every path.
    pub path: Option<String>,
    /// The directions.
    pub dirs: Dirs,
}

/// A parsed control command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Take the target down: datagrams offered are dropped (`down_drops`).
    Cut(Target),
    /// Bring the target back up.
    Restore(Target),
    /// Change the target's settings (those given; the rest stay).
    Set(Target, ParamSpec),
    /// Counters and settings of every path, as JSON.
    Stats,
    /// Print the final counters and exit.
    Quit,
}

/// A command line that does not parse.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// The line is empty.
    #[error("empty command (expected cut, restore, set, stats or quit)")]
    Empty,
    /// The first word is not a command.
    #[error("unknown command `{0}` (expected cut, restore, set, stats or quit)")]
    Unknown(String),
    /// A word that does not belong.
    #[error("{cmd}: unexpected `{word}`")]
    Unexpected {
        /// The command.
        cmd: &'static str,
        /// The word.
        word: String,
    },
    /// `set` without settings.
    #[error("set: no KEY=VALUE settings given")]
    NoSettings,
    /// A bad setting.
    #[error("set: {0}")]
    Param(#[from] ParamError),
}

impl Command {
    /// Parses one line (a trailing `\r` or `\n` is ignored).
    pub fn parse(line: &str) -> Result<Command, CommandError> {
        let mut words = line.split_whitespace();
        let verb = words.next().ok_or(CommandError::Empty)?;
        let rest: Vec<&str> = words.collect();
        match verb {
            "cut" => Ok(Command::Cut(target("cut", &rest)?)),
            "restore" => Ok(Command::Restore(target("restore", &rest)?)),
            "set" => {
                let split = rest
                    .iter()
                    .position(|w| w.contains('='))
                    .unwrap_or(rest.len());
                let (head, settings) = rest.split_at(split);
                let t = target("set", head)?;
                if settings.is_empty() {
                    return Err(CommandError::NoSettings);
                }
                let spec = ParamSpec::parse_settings(&settings.join(" "))?;
                // Every check that does not depend on the current settings happens here, so a
                // timeline is refused at load time rather than when its entry comes due.
                spec.apply(LinkParams::default())?;
                Ok(Command::Set(t, spec))
            }
            "stats" | "quit" => {
                if let Some(w) = rest.first() {
                    let cmd = if verb == "stats" { "stats" } else { "quit" };
                    return Err(CommandError::Unexpected {
                        cmd,
                        word: (*w).to_owned(),
                    });
                }
                Ok(if verb == "stats" {
                    Command::Stats
                } else {
                    Command::Quit
                })
            }
            other => Err(CommandError::Unknown(other.to_owned())),
        }
    }

    /// The target, for commands that have one.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Command::Cut(t) | Command::Restore(t) | Command::Set(t, _) => Some(t),
            Command::Stats | Command::Quit => None,
        }
    }
}

/// `[PATH|all] [DIR]`.
fn target(cmd: &'static str, words: &[&str]) -> Result<Target, CommandError> {
    let mut t = Target {
        path: None,
        dirs: Dirs::Both,
    };
    let mut rest = words;
    if let Some((first, tail)) = rest.split_first() {
        if Dirs::from_word(first).is_none() {
            t.path = (*first != "all").then(|| (*first).to_owned());
            rest = tail;
        }
    }
    if let Some((first, tail)) = rest.split_first() {
        t.dirs = Dirs::from_word(first).ok_or_else(|| CommandError::Unexpected {
            cmd,
            word: (*first).to_owned(),
        })?;
        rest = tail;
    }
    if let Some(w) = rest.first() {
        return Err(CommandError::Unexpected {
            cmd,
            word: (*w).to_owned(),
        });
    }
    Ok(t)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    fn t(path: Option<&str>, dirs: Dirs) -> Target {
        Target {
            path: path.map(str::to_owned),
            dirs,
        }
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            Command::parse("cut\n").unwrap(),
            Command::Cut(t(None, Dirs::Both))
        );
        assert_eq!(
            Command::parse("cut l0p0").unwrap(),
            Command::Cut(t(Some("l0p0"), Dirs::Both))
        );
        assert_eq!(
            Command::parse("restore all b-to-a").unwrap(),
            Command::Restore(t(None, Dirs::BToA))
        );
        assert_eq!(
            Command::parse("cut a_to_b").unwrap(),
            Command::Cut(t(None, Dirs::AToB))
        );
        let Command::Set(target, spec) =
            Command::parse("set p1 a-to-b latency_ms=3 loss=0.1").unwrap()
        else {
            panic!("not a set");
        };
        assert_eq!(target, t(Some("p1"), Dirs::AToB));
        assert_eq!(spec.latency_ms, Some(3.0));
        assert_eq!(spec.loss, Some(0.1));
        assert_eq!(Command::parse(" stats ").unwrap(), Command::Stats);
        assert_eq!(Command::parse("quit").unwrap(), Command::Quit);
    }

    #[test]
    fn bad_commands_say_why() {
        assert_eq!(Command::parse("  "), Err(CommandError::Empty));
        assert!(matches!(
            Command::parse("cutt"),
            Err(CommandError::Unknown(_))
        ));
        assert!(matches!(
            Command::parse("cut p0 sideways"),
            Err(CommandError::Unexpected { .. })
        ));
        assert!(matches!(
            Command::parse("cut p0 both extra"),
            Err(CommandError::Unexpected { .. })
        ));
        assert_eq!(Command::parse("set p0"), Err(CommandError::NoSettings));
        assert!(matches!(
            Command::parse("set p0 loss=2"),
            Err(CommandError::Param(_))
        ));
        assert!(matches!(
            Command::parse("set p0 lose=2"),
            Err(CommandError::Param(_))
        ));
        assert!(matches!(
            Command::parse("stats now"),
            Err(CommandError::Unexpected { .. })
        ));
    }
}
