//! The FIB in shared memory: the table layout and lookups ([`FibTable`], built with
//! [`FibBuilder`]) and its publication as generations ([`FibWriter`], [`FibReader`]).

pub mod publish;
pub mod table;

pub(crate) use publish::{FibControl, init_control};
pub use publish::{FibReader, FibView, FibWriter, PublishError, QUIESCENT, ReaderInfo};
pub use table::{
    ANYCAST_CAPACITY, AnycastRoute, FibBuilder, FibCounts, FibError, FibTable, Generation,
    LinkMask, MAX_PROBE, MULTICAST_CAPACITY, MULTICAST_MASKS, MulticastRoute, UNICAST_ENTRIES,
    UnicastRoute,
};
