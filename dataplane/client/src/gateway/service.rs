//! The gateway's `--service` text: `best-effort`, `reliable` or
//! `realtime[:DEADLINE_MS[:N:M]]`, to a [`Service`] and back.
//!
//! The gateway passes the service through to the node unchanged: a node that does not run it
//! refuses the flow (`Unsupported`), and the gateway reports that as its error.

use core::fmt;
use std::time::Duration;

use weft_shared::ids::{GroupId, Port};
use weft_shared::session::{Destination, LinkProtocol};

use crate::service::Service;

/// The deadline of `realtime` without one: 200 ms, a live-video budget across a continent.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(200);

/// The largest deadline, in milliseconds (the session protocol carries microseconds in 32 bits).
pub const MAX_DEADLINE_MS: u64 = u32::MAX as u64 / 1000;

/// Why a service text did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad service {input:?}: {why}; expected best-effort, reliable or \
     realtime[:DEADLINE_MS[:N:M]] (e.g. realtime:200:3:2)"
)]
pub struct ServiceParseError {
    /// The text that did not parse.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

/// Parses a service text into a [`Service`] (link-state routing).
///
/// ```
/// use weft_client::gateway::parse_service;
/// use weft_shared::session::LinkProtocol;
///
/// assert_eq!(parse_service("best-effort")?.protocol(), LinkProtocol::BestEffort);
/// assert_eq!(parse_service("realtime:150")?.deadline_us(), 150_000);
/// assert!(parse_service("realtime:0").is_err());
/// # Ok::<(), weft_client::gateway::ServiceParseError>(())
/// ```
pub fn parse_service(text: &str) -> Result<Service, ServiceParseError> {
    let err = |why: &str| ServiceParseError {
        input: text.to_owned(),
        why: why.to_owned(),
    };
    let mut parts = text.split(':');
    let name = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    match name {
        "best-effort" | "reliable" if !rest.is_empty() => {
            Err(err(&format!("{name} takes no parameters")))
        }
        "best-effort" => Ok(Service::best_effort()),
        "reliable" => Ok(Service::reliable()),
        "realtime" => {
            let deadline_ms = match rest.first() {
                None => u64::try_from(DEFAULT_DEADLINE.as_millis()).unwrap_or(200),
                Some(d) => d
                    .parse::<u64>()
                    .ok()
                    .filter(|d| (1..=MAX_DEADLINE_MS).contains(d))
                    .ok_or_else(|| {
                        err(&format!(
                            "the deadline {d:?} is not a whole number of milliseconds in \
                             1..={MAX_DEADLINE_MS}"
                        ))
                    })?,
            };
            let service = Service::realtime(Duration::from_millis(deadline_ms));
            match rest.get(1..) {
                None | Some([]) => Ok(service),
                Some([n, m]) => {
                    let strike = |s: &str, what: &str| {
                        s.parse::<u8>().map_err(|_| {
                            err(&format!("{what} {s:?} is not a whole number in 0..=255"))
                        })
                    };
                    Ok(service.strikes(strike(n, "N")?, strike(m, "M")?))
                }
                Some(_) => Err(err("realtime takes a deadline, then N and M together")),
            }
        }
        _ => Err(err(&format!("unknown service {name:?}"))),
    }
}

/// A service as the text [`parse_service`] reads (`realtime:200:3:2` with every parameter),
/// or the link protocol's name for services it does not read (intrusion-tolerant ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceText(pub Service);

impl fmt::Display for ServiceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match s.protocol() {
            LinkProtocol::BestEffort => f.write_str("best-effort"),
            LinkProtocol::Reliable => f.write_str("reliable"),
            LinkProtocol::Realtime => {
                // The strikes are only visible in the request the service builds.
                let unused = Destination::Multicast {
                    group: GroupId(1),
                    port: Port(0),
                };
                let strikes = s.open_flow(Port(0), unused).strikes;
                // Deadlines set in whole microseconds elsewhere print rounded up.
                let ms = s.deadline_us().div_ceil(1000);
                write!(f, "realtime:{ms}:{}:{}", strikes.n, strikes.m)
            }
            other => write!(f, "{other:?}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use weft_shared::session::Strikes;

    use super::*;
    use crate::service::{Addr, DEFAULT_STRIKES};

    fn strikes(s: Service) -> Strikes {
        let dest = Destination::from("1:1".parse::<Addr>().unwrap());
        s.open_flow(Port(1), dest).strikes
    }

    #[test]
    fn services_parse_and_print() {
        let be = parse_service("best-effort").unwrap();
        assert_eq!(be, Service::best_effort());
        assert_eq!(ServiceText(be).to_string(), "best-effort");
        let rel = parse_service("reliable").unwrap();
        assert_eq!(rel.protocol(), LinkProtocol::Reliable);
        assert_eq!(ServiceText(rel).to_string(), "reliable");

        let rt = parse_service("realtime").unwrap();
        assert_eq!(rt.protocol(), LinkProtocol::Realtime);
        assert_eq!(rt.deadline_us(), 200_000);
        assert_eq!(strikes(rt), DEFAULT_STRIKES);
        assert_eq!(ServiceText(rt).to_string(), "realtime:200:3:2");

        let rt = parse_service("realtime:150:4:1").unwrap();
        assert_eq!(rt.deadline_us(), 150_000);
        assert_eq!(strikes(rt), Strikes { n: 4, m: 1 });
        assert_eq!(ServiceText(rt).to_string(), "realtime:150:4:1");
        assert_eq!(parse_service("realtime:150:4:1").unwrap(), rt, "round trip");
    }

    #[test]
    fn bad_services_say_why() {
        for (bad, why) in [
            ("", "unknown service"),
            ("besteffort", "unknown service"),
            ("best-effort:5", "takes no parameters"),
            ("reliable:1", "takes no parameters"),
            ("realtime:", "deadline"),
            ("realtime:0", "deadline"),
            ("realtime:-5", "deadline"),
            ("realtime:99999999", "deadline"),
            ("realtime:200:3", "N and M together"),
            ("realtime:200:3:2:1", "N and M together"),
            ("realtime:200:x:2", "N \"x\""),
            ("realtime:200:3:256", "M \"256\""),
        ] {
            let e = parse_service(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains("expected best-effort"), "{e}");
        }
    }
}
