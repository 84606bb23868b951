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

pub mod buffer;
mod engine;
pub mod error;
mod options;
mod request;
mod shard;

pub use aura_core::aimd::Phase;
pub use aura_core::IoVec;
pub use buffer::{Buffer, BufferPool, BufferRef, BufferStats};
pub use engine::{in_callback, Engine, RingStats, Stats, IOV_MAX};
pub use error::{Error, Result};
pub use options::{Options, RingSelect, DEFAULT_ALIGNMENT, DEFAULT_QUEUE_DEPTH};
pub use request::RequestHandle;
