//! aura's Engine: per-CPU io_uring rings whose queue depth tunes itself.
//!
//! ```no_run
//! # use aura_std as aura;
//! use aura::{Engine, Result};
//! # fn main() -> Result<()> {
//! # let fd = 0;
//! let engine = Engine::new()?;
//! let buf = engine.allocate_buffer(4096)?;
//! // SAFETY: `buf` outlives the read: we wait for its callback before dropping it.
//! unsafe {
//!     engine.read(fd, (&buf).into(), 4096, 0, |result| match result {
//!         Ok(n) => println!("Read {n} bytes"),
//!         Err(e) => eprintln!("Error: {e}"),
//!     })?;
//! }
//! engine.wait(-1)?;
//! # Ok(()) }
//! ```
//!
//! Users depend on it as `aura = { package = "aura-std", ... }`.

#[cfg(all(feature = "async", not(loom)))]
pub mod async_io;
pub mod buffer;
#[cfg(not(loom))]
mod engine;
pub mod error;
#[cfg(not(loom))]
mod options;
#[cfg(not(loom))]
pub mod prometheus;
#[cfg(not(loom))]
mod request;
#[cfg(not(loom))]
mod shard;

pub use aura_core::aimd::Phase;
pub use aura_core::IoVec;
pub use buffer::{Buffer, BufferPool, BufferRef, BufferStats};
#[cfg(not(loom))]
pub use engine::{
    in_callback, Batch, Chain, Engine, Rejected, RingStats, Stats, IOV_MAX, MAX_CHAIN,
};
pub use error::{Error, Result};
#[cfg(not(loom))]
pub use options::{Options, RingSelect, DEFAULT_ALIGNMENT, DEFAULT_QUEUE_DEPTH};
#[cfg(not(loom))]
pub use request::{record_handle, HandleSlot, RequestHandle};
