//! Event processing: poll fd, poll, wait, flush, run, stop, drain (aura.h section "Event
//! processing"). poll / wait / run / drain: one thread at a time per engine; never from a
//! callback (EDEADLK).

use std::os::raw::c_int;
use std::sync::atomic::Ordering;

use crate::error::{errno_of, is_fatal, EDEADLK, EINVAL};
use crate::ffi::{boundary, fail, opt_ref};
use crate::lifecycle::CEngine;
use crate::link::with_retries;
use crate::log::{log, AURA_LOG_ERR, AURA_LOG_WARN};

/// Latches a ring failure as the engine's fatal error (the first one wins).
pub(crate) fn latch(ce: &CEngine, e: &aura_std::Error) {
    if is_fatal(e) {
        let errno = errno_of(e);
        if ce
            .shared()
            .fatal
            .compare_exchange(0, errno, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            log(
                AURA_LOG_ERR,
                &format!("aura: ring failure latched as fatal (errno {errno}): {e}"),
            );
        }
    }
}

/// The engine of an event-processing call, or the errno: EINVAL for NULL, EDEADLK inside a
/// callback.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
unsafe fn event_engine<'a>(engine: *mut CEngine) -> Result<&'a CEngine, i32> {
    // SAFETY: this fn's contract.
    let Some(ce) = (unsafe { opt_ref(engine) }) else {
        return Err(EINVAL);
    };
    if aura_std::in_callback() {
        return Err(EDEADLK);
    }
    Ok(ce)
}

/// The count of a poll / wait / drain result, finishing deferred unregisters afterwards.
fn finish(ce: &CEngine, r: aura_std::Result<usize>) -> c_int {
    crate::buffers::finish_deferred(ce);
    match r {
        Ok(n) => n.min(c_int::MAX as usize) as c_int,
        Err(e) => {
            latch(ce, &e);
            fail(errno_of(&e))
        }
    }
}

/// Drains the engine and the linked requests held behind it (or waiting for room): until
/// nothing is pending, or `timeout_ms` (-1: no limit). Returns the completions processed.
pub(crate) fn drain_all(ce: &CEngine, timeout_ms: c_int) -> aura_std::Result<usize> {
    let shared = ce.shared();
    let deadline = (timeout_ms >= 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64));
    let mut total = 0;
    loop {
        crate::link::retry_held(shared);
        let left = match deadline {
            None => -1,
            Some(d) => d
                .saturating_duration_since(std::time::Instant::now())
                .as_millis()
                .min(c_int::MAX as u128) as c_int,
        };
        total += ce.engine().drain(left)?;
        // A held request waits behind a pending head (then the engine was not drained) or
        // for room (then the retry above submits it): either way, go round again.
        if shared.held.load(Ordering::SeqCst) == 0 {
            return Ok(total);
        }
        if left == 0 {
            return Err(aura_std::Error::TimedOut);
        }
    }
}

/// `int aura_get_poll_fd(const aura_engine_t *engine)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_get_poll_fd(engine: *const CEngine) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        match unsafe { opt_ref(engine) } {
            Some(ce) => ce.engine().poll_fd(),
            None => fail(EINVAL),
        }
    })
}

/// `int aura_poll(aura_engine_t *engine)`: callbacks run without blocking.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_poll(engine: *mut CEngine) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let ce = match unsafe { event_engine(engine) } {
            Ok(ce) => ce,
            Err(e) => return fail(e),
        };
        let r = with_retries(ce.shared(), || ce.engine().poll());
        let n = finish(ce, r);
        let fatal = ce.shared().fatal.load(Ordering::Acquire);
        if n == 0 && fatal != 0 {
            return fail(fatal);
        }
        n
    })
}

/// `int aura_wait(aura_engine_t *engine, int timeout_ms)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_wait(engine: *mut CEngine, timeout_ms: c_int) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let ce = match unsafe { event_engine(engine) } {
            Ok(ce) => ce,
            Err(e) => return fail(e),
        };
        let r = with_retries(ce.shared(), || ce.engine().wait(timeout_ms.max(-1)));
        finish(ce, r)
    })
}

/// `int aura_flush(aura_engine_t *engine)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_flush(engine: *mut CEngine) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail(EINVAL);
        };
        match ce.engine().flush() {
            Ok(()) => 0,
            Err(e) => {
                latch(ce, &e);
                fail(errno_of(&e))
            }
        }
    })
}

/// `int aura_drain(aura_engine_t *engine, int timeout_ms)`: 0 = one poll.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_drain(engine: *mut CEngine, timeout_ms: c_int) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let ce = match unsafe { event_engine(engine) } {
            Ok(ce) => ce,
            Err(e) => return fail(e),
        };
        let r = if timeout_ms == 0 {
            with_retries(ce.shared(), || ce.engine().poll())
        } else {
            drain_all(ce, timeout_ms.max(-1))
        };
        finish(ce, r)
    })
}

/// Sleeps until the engine's eventfd is readable, at most `ms` milliseconds.
fn sleep_on_poll_fd(ce: &CEngine, ms: c_int) {
    #[repr(C)]
    struct PollFd {
        fd: c_int,
        events: i16,
        revents: i16,
    }
    extern "C" {
        fn poll(fds: *mut PollFd, nfds: u64, timeout: c_int) -> c_int;
    }
    let mut p = PollFd {
        fd: ce.engine().poll_fd(),
        events: 1, // POLLIN
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call. The eventfd stays readable until
    // the next poll / wait drains it, which is what the caller does next.
    let _ = unsafe { poll(&mut p, 1, ms) };
}

/// `void aura_run(aura_engine_t *engine)`: process completions until `aura_stop`, then drain
/// (up to 10 s). NULL or inside a callback: returns at once (logged).
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_run(engine: *mut CEngine) {
    boundary!((), {
        // SAFETY: this fn's contract.
        let ce = match unsafe { event_engine(engine) } {
            Ok(ce) => ce,
            Err(e) => {
                if e == EDEADLK {
                    log(AURA_LOG_WARN, "aura_run called from a callback: ignored");
                }
                return;
            }
        };
        let shared = ce.shared();
        while !shared.stop.swap(false, Ordering::AcqRel) {
            let r = with_retries(shared, || ce.engine().wait(100));
            crate::buffers::finish_deferred(ce);
            match r {
                Ok(0) if ce.engine().pending_count() == 0 => sleep_on_poll_fd(ce, 10),
                Ok(_) | Err(aura_std::Error::TimedOut) => {}
                Err(e) => {
                    latch(ce, &e);
                    log(AURA_LOG_ERR, &format!("aura_run: {e}"));
                    break;
                }
            }
        }
        let r = drain_all(ce, 10_000);
        crate::buffers::finish_deferred(ce);
        if let Err(e) = r {
            log(AURA_LOG_WARN, &format!("aura_run: final drain: {e}"));
        }
    })
}

/// `void aura_stop(aura_engine_t *engine)`: makes `aura_run` return. Any thread, callbacks
/// included; NULL does nothing.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_stop(engine: *mut CEngine) {
    boundary!((), {
        // SAFETY: this fn's contract.
        if let Some(ce) = unsafe { opt_ref(engine) } {
            ce.shared().stop.store(true, Ordering::Release);
            // Wakes a sleeping run loop (through the eventfd).
            ce.engine().stop();
        }
    })
}
