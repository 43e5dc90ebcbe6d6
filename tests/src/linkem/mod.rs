//! `weft-linkem`: a userspace UDP link emulator between real processes.
//!
//! The kernel here has no netem, so loss and delay between real Weft nodes come from a relay
//! placed on a link path: each relayed path has an A-side and a B-side UDP socket, and each
//! direction runs through its own [`LinkModel`](crate::linkmodel::LinkModel), the same sans-IO
//! model the simulator uses, fed with the monotonic clock. Nodes are pointed at the relay
//! with `weft-dataplane --remote LINK:PATH=ADDR`. See `docs/linkem.md` for the command line,
//! the TOML file, the control protocol and the JSON counters.
//!
//! - [`params`]: settings as written (`latency_ms`, `loss`, `burst`, ...) → `LinkParams`;
//! - [`config`]: the relay's paths, seed, control socket and timeline (TOML or built in code);
//! - [`command`]: the control line protocol (`cut`, `restore`, `set`, `stats`, `quit`);
//! - [`relay`]: the single-threaded event loop (epoll + an absolute timerfd);
//! - [`control`]: the control socket's server side and [`control::request`], its client;
//! - [`stats`]: per-direction counters and their JSON;
//! - [`process`]: a relay process started by a test, with a guard.
//!
//! Running one in code:
//!
//! ```no_run
//! use weft_tests::linkem::config::{PathSpec, RelayConfig};
//! use weft_tests::linkem::params::ParamSpec;
//! use weft_tests::linkem::relay::Relay;
//!
//! let spec = PathSpec {
//!     addrs: [
//!         Some("127.0.0.1:9000".parse()?),
//!         Some("127.0.0.1:9001".parse()?),
//!         Some("127.0.0.1:7001".parse()?),
//!         Some("127.0.0.1:7002".parse()?),
//!     ],
//!     both: ParamSpec::parse_settings("latency_ms=20 loss=0.01")?,
//!     ..PathSpec::default()
//! };
//! let config = RelayConfig::build("example", Some(1), None, None, &ParamSpec::default(), &[spec])?;
//! let mut relay = Relay::bind(config, true)?;
//! relay.run()?; // until SIGINT or SIGTERM
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod command;
pub mod config;
pub mod control;
pub mod params;
pub mod process;
pub mod relay;
pub mod stats;
