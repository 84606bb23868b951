//! aura's Engine: per-CPU io_uring rings whose queue depth tunes itself.
//!
//! Not built yet: this crate re-exports [`aura_core`] until the Engine lands. See the README for what
//! works today.

pub use aura_core as core;
