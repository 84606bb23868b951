//! aura-core: a hand-rolled io_uring ring over raw syscalls, with no libc and no std.
//!
//! - [`Ring`] sets up a ring (features probed, fallbacks built in), and hands out [`Sq`] / [`Cq`]
//!   views that follow the kernel's head/tail protocol;
//! - [`op`] builds every supported SQE; [`register`] registers buffers, files, an eventfd, and
//!   probes opcodes;
//! - [`slab`] packs a slot index and a generation into `user_data`, so a stale CQE is detected;
//! - [`sim`] is a simulated kernel over heap memory, so the same ring code runs under unit tests,
//!   loom, Miri and fuzzers.
//!
//! Only [`sys`] issues syscalls, and only `ring/` dereferences ring memory.
#![no_std]
#![deny(clippy::float_arithmetic)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod aimd;
pub mod error;
pub mod fixed;
#[doc(hidden)]
pub mod fuzzing;
pub mod histogram;
pub mod op;
#[cfg(not(loom))]
pub mod register;
pub mod ring;
pub mod sim;
pub mod slab;
mod sync;
pub mod sys;
#[cfg(test)]
mod tests;

pub use error::{Errno, Error, Result};
pub use ring::{Cq, Features, Params, Ring, SetupFlags, Sq};
pub use sim::{SimConfig, SimKernel};
pub use sys::abi::{Cqe, IoVec, Sqe, Timespec};
