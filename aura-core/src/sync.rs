//! One facade for the atomics and interior-mutability cells the ring shares with the kernel.
//!
//! Normal builds re-export `core`'s atomics and a `#[repr(transparent)]` cell, so both are
//! layout-identical to the plain `u32` / entry types the kernel maps. Under `cfg(loom)` they are
//! loom's, so the loom models can explore every interleaving of the application and a simulated
//! kernel thread over heap ring memory (the mmap backend is compiled out then).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, Ordering};

/// A cell for ring entries (SQEs, CQEs, SQ array slots), with loom's `with` / `with_mut` API.
#[cfg(loom)]
#[allow(clippy::unsafe_removed_from_name)] // same name and API as the non-loom cell below
pub(crate) use loom::cell::UnsafeCell as Cell;

/// A cell for ring entries (SQEs, CQEs, SQ array slots), with loom's `with` / `with_mut` API.
///
/// `#[repr(transparent)]` over `core::cell::UnsafeCell<T>`, so an array of `Cell<T>` has the layout
/// of an array of `T` and may be laid over the kernel's mapping.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct Cell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> Cell<T> {
    /// A cell holding `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a read pointer to the contents.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a write pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
