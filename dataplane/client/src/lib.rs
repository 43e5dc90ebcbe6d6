//! weft-client: the client library for talking to a Weft node over its session socket.
//!
//! Built by the data-plane issue on the session protocol in `weft_shared::session`.
