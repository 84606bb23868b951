//! The wall between C and Rust: the panic boundary, errno, and pointer helpers.
//!
//! # Safety
//!
//! Invariants every export relies on:
//! - **No panic crosses the boundary.** Every `extern "C"` body runs inside `boundary!`, which
//!   catches a panic, logs it at `AURA_LOG_ERR` and returns the export's documented error value
//!   (with errno `EIO` where errno is part of the contract).
//! - **Pointers are checked before use.** A pointer argument is turned into a reference only by
//!   `opt_ref` / `opt_mut`, which map NULL to `None` (the caller then reports `EINVAL` or does
//!   nothing, as documented). A non-NULL pointer is trusted to be what the header says it is: that
//!   is the C caller's half of the contract, stated in each export's `# Safety` section.
//! - **One ownership kind per handle.** `aura_engine_t` is a `Box<CEngine>`: created by
//!   `aura_create*`, freed only by `aura_destroy` (Box::from_raw). `aura_request_t` is a slot of
//!   its engine's request table ([`crate::request::Slot`]): never allocated or freed per request,
//!   only recycled, and freed with the engine. Buffers from `aura_buffer_alloc` stay owned by the
//!   engine's buffer map ([`crate::buffers`]) and go back by pointer.

use std::os::raw::c_int;

/// Runs `$body` with panics caught: on a panic, logs it, sets errno to `EIO` and evaluates to
/// `$on_panic`. Every `extern "C"` function of this crate wraps its body in it.
macro_rules! boundary {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(payload) => {
                $crate::ffi::report_panic(payload);
                $on_panic
            }
        }
    };
}
pub(crate) use boundary;

/// Logs a caught panic and sets errno to `EIO`.
#[cold]
pub(crate) fn report_panic(payload: Box<dyn std::any::Any + Send>) {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    crate::log::log(
        crate::log::AURA_LOG_ERR,
        &format!("aura: internal error (panic) caught at the C API boundary: {what}"),
    );
    set_errno(crate::error::EIO);
    // The payload's destructor could panic again; forget it rather than risk unwinding here.
    std::mem::forget(payload);
}

extern "C" {
    /// glibc and musl: the address of the calling thread's errno.
    fn __errno_location() -> *mut c_int;
}

/// Sets the calling thread's errno.
#[inline]
pub(crate) fn set_errno(e: i32) {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno for the whole
    // life of the thread.
    unsafe { *__errno_location() = e };
}

/// Reads the calling thread's errno.
#[inline]
pub(crate) fn errno() -> i32 {
    // SAFETY: as in `set_errno`.
    unsafe { *__errno_location() }
}

/// Sets errno to `e` and returns -1 (the "int" error convention).
#[inline]
pub(crate) fn fail(e: i32) -> c_int {
    set_errno(e);
    -1
}

/// Sets errno to `e` and returns NULL (the "pointer" error convention).
#[inline]
pub(crate) fn fail_null<T>(e: i32) -> *mut T {
    set_errno(e);
    std::ptr::null_mut()
}

/// A shared reference from a C pointer; `None` for NULL.
///
/// # Safety
///
/// A non-NULL `p` points at a live, properly aligned `T` that nobody mutates (other than
/// through interior mutability) for the chosen lifetime.
#[inline]
pub(crate) unsafe fn opt_ref<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: the caller's contract above.
    unsafe { p.as_ref() }
}

/// A mutable reference from a C pointer; `None` for NULL.
///
/// # Safety
///
/// A non-NULL `p` points at a live, properly aligned, writable `T` that nothing else accesses
/// for the chosen lifetime.
#[inline]
pub(crate) unsafe fn opt_mut<'a, T>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: the caller's contract above.
    unsafe { p.as_mut() }
}

/// Copies the first `size` bytes (at most `size_of::<T>()`) of `value` to `out`: the
/// struct-size convention of the getters, so callers built against a smaller struct keep
/// working.
///
/// # Safety
///
/// `out` is valid for writes of `min(size, size_of::<T>())` bytes.
pub(crate) unsafe fn copy_prefix<T: Copy>(value: &T, out: *mut T, size: usize) {
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `value` is a whole `T` (readable for size_of::<T>() ≥ n bytes); `out` is writable
    // for n bytes (this fn's contract); a local and the caller's memory cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), out.cast::<u8>(), n) };
}

/// Zeroes the first `size` bytes (at most `size_of::<T>()`) of `out`.
///
/// # Safety
///
/// As for [`copy_prefix`].
pub(crate) unsafe fn zero_prefix<T>(out: *mut T, size: usize) {
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `out` is writable for n bytes (this fn's contract).
    unsafe { std::ptr::write_bytes(out.cast::<u8>(), 0, n) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_turns_a_panic_into_the_error_value_and_eio() {
        set_errno(0);
        let r: i32 = boundary!(-1, {
            if errno() == 0 {
                panic!("boom");
            }
            0
        });
        assert_eq!(r, -1);
        assert_eq!(errno(), crate::error::EIO);
        let ok: i32 = boundary!(-1, { 7 });
        assert_eq!(ok, 7);
    }

    #[test]
    fn errno_round_trips_per_thread() {
        set_errno(42);
        let other = std::thread::spawn(|| {
            set_errno(7);
            errno()
        })
        .join()
        .unwrap();
        assert_eq!(other, 7);
        assert_eq!(errno(), 42);
        assert_eq!(fail(22), -1);
        assert_eq!(errno(), 22);
        assert!(fail_null::<u8>(12).is_null());
        assert_eq!(errno(), 12);
    }

    #[test]
    fn prefixes_copy_and_zero_at_most_the_struct() {
        let v: [u32; 4] = [1, 2, 3, 4];
        let mut out: [u32; 5] = [9; 5];
        // SAFETY: `out` has room for 20 bytes; the copy is capped at 16.
        unsafe { copy_prefix(&v, out.as_mut_ptr().cast::<[u32; 4]>(), 100) };
        assert_eq!(out, [1, 2, 3, 4, 9]);
        // SAFETY: 8 bytes of `out` are writable.
        unsafe { zero_prefix(out.as_mut_ptr().cast::<[u32; 4]>(), 8) };
        assert_eq!(out, [0, 0, 3, 4, 9]);
        // SAFETY: NULL is mapped to None without a dereference.
        assert!(unsafe { opt_ref::<u32>(std::ptr::null()) }.is_none());
    }
}
