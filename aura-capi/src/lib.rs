//! aura's C ABI: `libaura.a` / `libaura.so` with the AuraIO 0.6 C API (`include/aura.h`).
//!
//! Every `extern "C"` function is `unsafe` (it trusts the C caller's pointers), runs inside one
//! panic boundary ([`ffi`]), null-checks every pointer, and reports errors the C way: NULL or -1
//! with errno set ([`error`] holds the one mapping). One module per section of aura.h:
//!
//! | aura.h section | module |
//! |---|---|
//! | Types | [`types`] |
//! | Lifecycle | [`lifecycle`] |
//! | Data I/O, metadata operations | [`io`] |
//! | Cancel and request introspection | [`request`] |
//! | Event processing | [`events`] |
//! | Buffers and registration | [`buffers`] |
//! | Statistics and diagnostics | [`stats`] |
//! | Runtime configuration | [`config`] |
//! | Logging and version | [`log`] |
//!
//! From Rust (tests, benches, fuzzing) the functions are called exactly as C calls them.

pub mod buffers;
pub mod config;
pub mod error;
pub mod events;
pub mod ffi;
#[doc(hidden)]
pub mod fuzzing;
pub mod io;
pub mod lifecycle;
mod link;
pub mod log;
pub mod request;
pub mod stats;
pub mod types;

pub use lifecycle::CEngine;
pub use request::Slot;
