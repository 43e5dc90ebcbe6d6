//! weft-client: the client library for talking to a Weft node over its session socket, and the
//! `weft-send` / `weft-recv` tools built on it.
//!
//! An application reaches the overlay through its local node: it connects to the node's Unix
//! socket ([`Client::connect`]), binds a port ([`Client::bind`]), opens flows to other clients
//! or groups ([`Client::open_flow`]) and sends and receives messages. The protocol underneath is
//! the session protocol of `weft_shared::session` (specified in `docs/session.md`).
//!
//! # The model, in short
//!
//! - **Addresses.** A client is `NODE:PORT` ([`Addr`]). Groups are addresses of their own;
//!   [`Client::join`] subscribes to one.
//! - **Flows.** Messages go out on a flow, which fixes the destination and the [`Service`]
//!   (link protocol and routing; the default is best effort over link-state routing).
//! - **Credits.** The node grants each flow credits, counted in messages. [`Client::send`]
//!   blocks while its flow has none, taking in credits and messages meanwhile;
//!   [`Client::try_send`] returns [`ClientError::WouldBlock`] instead. Credits are per flow, so
//!   a flow that is out of credit never stalls the client's other flows.
//! - **Batching.** [`Client::send_batch`] encodes many messages into one write. It is how to
//!   send fast: a write per message costs a system call per message on both ends.
//! - **Receiving.** [`Client::recv`] copies the next message into the caller's buffer and
//!   returns its [`Delivered`] metadata; [`Client::recv_timeout`] bounds the wait. Messages that
//!   arrive while another call waits are kept in a bounded queue; when it is full the client
//!   stops reading, so the node's backpressure applies and nothing is lost silently.
//! - **Errors.** Every call returns [`ClientError`]; the node's refusals are [`ServerError`]s.
//! - **No allocation on the message path.** Buffers are allocated in `connect`; sending and
//!   receiving reuse them.
//!
//! # Example
//!
//! Send a message to port 7 on node 2 and wait for one back (`examples/ping.rs` is a complete
//! ping with a responder):
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use weft_client::{Addr, Client, ClientError, Service};
//! use weft_shared::ids::Port;
//!
//! fn main() -> Result<(), ClientError> {
//!     let mut client = Client::connect("/run/weft/node.sock", "example")?;
//!     let port = client.bind(Port(0))?; // any free port
//!     let to: Addr = "2:7".parse().expect("a valid address");
//!     let flow = client.open_flow(port, to, Service::default())?;
//!     client.send(&flow, b"hello")?;
//!
//!     let mut buf = [0u8; 2048];
//!     match client.recv_timeout(&mut buf, Duration::from_secs(1))? {
//!         Some(d) => println!("{} bytes from {}", d.len, d.from),
//!         None => println!("no answer"),
//!     }
//!     client.close()
//! }
//! ```
//!
//! # Modules
//!
//! The client itself is [`Client`]; [`probe`] and [`report`] are the tools' payload header and
//! receive statistics, public so other tools (and tests) can use them. [`gateway`] carries
//! an application's UDP datagrams across the overlay (`weft gateway`).

mod client;
mod error;
pub mod gateway;
pub mod probe;
mod queue;
pub mod report;
mod service;
mod state;

pub use client::{Client, ClientOptions};
pub use error::{ClientError, Disconnect, ProtocolError, ServerError};
pub use queue::{Delivered, ReceiveQueueLimits};
pub use service::{Addr, AddrParseError, DEFAULT_STRIKES, Flow, Service};
pub use state::ClientStats;
