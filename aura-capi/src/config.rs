//! Runtime configuration and engine health: the setters, the latched fatal error and the
//! callback-context query (aura.h section "Runtime configuration").

use std::os::raw::c_int;
use std::sync::atomic::Ordering;

use crate::error::{errno_of, EINVAL};
use crate::ffi::{boundary, fail, opt_ref};
use crate::lifecycle::CEngine;

/// Applies a setter, mapping its error.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
unsafe fn set(
    engine: *mut CEngine,
    f: impl FnOnce(&aura_std::Engine) -> aura_std::Result<()>,
) -> c_int {
    // SAFETY: this fn's contract.
    let Some(ce) = (unsafe { opt_ref(engine) }) else {
        return fail(EINVAL);
    };
    match f(ce.engine()) {
        Ok(()) => 0,
        Err(e) => fail(errno_of(&e)),
    }
}

/// `int aura_set_max_p99_latency(aura_engine_t *engine, double max_p99_ms)`: 0 = derived.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_set_max_p99_latency(engine: *mut CEngine, max_p99_ms: f64) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        unsafe { set(engine, |e| e.set_max_p99_latency_ms(max_p99_ms)) }
    })
}

/// `int aura_set_min_in_flight(aura_engine_t *engine, int min_in_flight)`: 1..queue depth.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_set_min_in_flight(
    engine: *mut CEngine,
    min_in_flight: c_int,
) -> c_int {
    boundary!(-1, {
        if min_in_flight < 1 {
            return fail(EINVAL);
        }
        // SAFETY: this fn's contract.
        unsafe { set(engine, |e| e.set_min_in_flight(min_in_flight as u32)) }
    })
}

/// `int aura_set_batch_threshold(aura_engine_t *engine, int threshold)`: -1 tuned, 0 never,
/// > 0 fixed.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_set_batch_threshold(engine: *mut CEngine, threshold: c_int) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        unsafe { set(engine, |e| e.set_batch_threshold(threshold)) }
    })
}

/// `int aura_get_fatal_error(const aura_engine_t *engine)`: 0, the latched errno, or -1 for
/// NULL.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_get_fatal_error(engine: *const CEngine) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        match unsafe { opt_ref(engine) } {
            Some(ce) => ce.shared().fatal.load(Ordering::Acquire),
            None => fail(EINVAL),
        }
    })
}

/// `bool aura_in_callback_context(void)`.
#[no_mangle]
pub extern "C" fn aura_in_callback_context() -> bool {
    boundary!(false, { aura_std::in_callback() })
}
