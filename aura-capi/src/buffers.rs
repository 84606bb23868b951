//! Buffers and registration: pool buffers by pointer, registered buffers and files, immediate
//! and deferred unregistering (aura.h section "Buffers and registration").

use std::os::raw::{c_int, c_uint, c_void};
use std::sync::atomic::Ordering;

use aura_std::IoVec;

use crate::error::{errno_of, EBUSY, EINVAL, ENOENT};
use crate::ffi::{boundary, fail, fail_null, opt_ref};
use crate::lifecycle::{CEngine, DEFER_BUFFERS, DEFER_FILES};
use crate::log::{log, AURA_LOG_WARN};

/// The largest `aura_buffer_alloc` size: 128 MiB.
pub const MAX_ALLOC: usize = 128 << 20;
/// `AURA_REG_BUFFERS`.
pub const AURA_REG_BUFFERS: c_int = 0;
/// `AURA_REG_FILES`.
pub const AURA_REG_FILES: c_int = 1;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `void *aura_buffer_alloc(aura_engine_t *engine, size_t size)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_buffer_alloc(engine: *mut CEngine, size: usize) -> *mut c_void {
    boundary!(std::ptr::null_mut(), {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail_null(EINVAL);
        };
        if size == 0 || size > MAX_ALLOC {
            return fail_null(EINVAL);
        }
        match ce.engine().allocate_buffer(size) {
            Ok(mut b) => {
                let p = b.as_mut_ptr();
                lock(&ce.shared().buffers).insert(p as usize, b);
                p.cast::<c_void>()
            }
            Err(e) => fail_null(errno_of(&e)),
        }
    })
}

/// `void aura_buffer_free(aura_engine_t *engine, void *buf)`: back to the pool. NULL engine or
/// buffer: nothing. A pointer this engine did not hand out is left alone and logged.
///
/// # Safety
///
/// `engine` is NULL or a live engine; no operation still uses `buf`.
#[no_mangle]
pub unsafe extern "C" fn aura_buffer_free(engine: *mut CEngine, buf: *mut c_void) {
    boundary!((), {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return;
        };
        if buf.is_null() {
            return;
        }
        let b = lock(&ce.shared().buffers).remove(&(buf as usize));
        match b {
            // Dropped outside the map's lock: back to the pool.
            Some(b) => drop(b),
            None => log(
                AURA_LOG_WARN,
                &format!("aura_buffer_free: {buf:p} was not allocated by this engine; left alone"),
            ),
        }
    })
}

/// `int aura_register_buffers(aura_engine_t *engine, const struct iovec *iovs, unsigned count)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `iovs` is NULL or points at `count` iovecs whose memory
/// stays valid until unregistered or the engine is destroyed.
#[no_mangle]
pub unsafe extern "C" fn aura_register_buffers(
    engine: *mut CEngine,
    iovs: *const IoVec,
    count: c_uint,
) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail(EINVAL);
        };
        if iovs.is_null() || count == 0 || count > u32::from(u16::MAX) {
            return fail(EINVAL);
        }
        // SAFETY: `count` readable iovecs (this fn's contract).
        let iov = unsafe { std::slice::from_raw_parts(iovs, count as usize) };
        if iov.iter().any(|v| v.base.is_null() || v.len == 0) {
            return fail(EINVAL);
        }
        finish_deferred(ce);
        let shared = ce.shared();
        let _serial = lock(&shared.reg_serial);
        {
            let reg = shared.registry();
            if !reg.buffers.is_empty() || reg.buffers_draining {
                return fail(EBUSY);
            }
        }
        // SAFETY: the memory stays valid while registered (this fn's contract).
        match unsafe { ce.engine().register_buffers(iov) } {
            Ok(()) => {
                shared.registry_mut().buffers = iov.iter().map(|v| v.len).collect();
                0
            }
            Err(e) => fail(errno_of(&e)),
        }
    })
}

/// `int aura_register_files(aura_engine_t *engine, const int *fds, unsigned count)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `fds` is NULL or points at `count` ints.
#[no_mangle]
pub unsafe extern "C" fn aura_register_files(
    engine: *mut CEngine,
    fds: *const c_int,
    count: c_uint,
) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail(EINVAL);
        };
        if fds.is_null() || count == 0 || count > 1 << 20 {
            return fail(EINVAL);
        }
        // SAFETY: `count` readable ints (this fn's contract).
        let fds = unsafe { std::slice::from_raw_parts(fds, count as usize) };
        if fds.iter().any(|&fd| fd < -1) {
            return fail(EINVAL);
        }
        finish_deferred(ce);
        let shared = ce.shared();
        let _serial = lock(&shared.reg_serial);
        {
            let reg = shared.registry();
            if !reg.files.is_empty() || reg.files_draining {
                return fail(EBUSY);
            }
        }
        match ce.engine().register_files(fds) {
            Ok(()) => {
                shared.registry_mut().files = fds.to_vec();
                0
            }
            Err(e) => fail(errno_of(&e)),
        }
    })
}

/// `int aura_update_file(aura_engine_t *engine, int index, int fd)`: fd -1 clears the slot.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_update_file(engine: *mut CEngine, index: c_int, fd: c_int) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail(EINVAL);
        };
        if fd < -1 || index < 0 {
            return fail(EINVAL);
        }
        finish_deferred(ce);
        let shared = ce.shared();
        let _serial = lock(&shared.reg_serial);
        {
            let reg = shared.registry();
            if reg.files.is_empty() {
                return fail(ENOENT);
            }
            if reg.files_draining {
                return fail(EBUSY);
            }
            if index as usize >= reg.files.len() {
                return fail(EINVAL);
            }
        }
        match ce.engine().update_file(index as usize, fd) {
            Ok(()) => {
                shared.registry_mut().files[index as usize] = fd;
                0
            }
            Err(e) => fail(errno_of(&e)),
        }
    })
}

/// The registered count of `which` in the mirror, and whether it is draining.
fn mirror_state(ce: &CEngine, which: u8) -> (bool, bool) {
    let reg = ce.shared().registry();
    if which == DEFER_BUFFERS {
        (!reg.buffers.is_empty(), reg.buffers_draining)
    } else {
        (!reg.files.is_empty(), reg.files_draining)
    }
}

fn set_draining(ce: &CEngine, which: u8, on: bool) {
    let mut reg = ce.shared().registry_mut();
    if which == DEFER_BUFFERS {
        reg.buffers_draining = on;
    } else {
        reg.files_draining = on;
    }
}

/// The engine finished unregistering `which`: clear the mirror.
fn forget(ce: &CEngine, which: u8) {
    let mut reg = ce.shared().registry_mut();
    if which == DEFER_BUFFERS {
        reg.buffers.clear();
        reg.buffers_draining = false;
    } else {
        reg.files.clear();
        reg.files_draining = false;
    }
    ce.shared().deferred.fetch_and(!which, Ordering::AcqRel);
}

/// Asks the engine for a deferred unregister of `which` (it never runs callbacks). Also the
/// probe of [`finish_deferred`]: with an unregister already draining the engine answers
/// `Busy`, and once it finished, "none registered".
fn engine_request_unregister(ce: &CEngine, which: u8) -> aura_std::Result<()> {
    if which == DEFER_BUFFERS {
        ce.engine().request_unregister_buffers()
    } else {
        ce.engine().request_unregister_files()
    }
}

/// Brings the mirror up to date with deferred unregisters the engine finished (it finishes them
/// in its poll passes). Called after every poll / wait / drain / run pass and before every
/// registration call.
pub(crate) fn finish_deferred(ce: &CEngine) {
    let shared = ce.shared();
    if shared.deferred.load(Ordering::Acquire) == 0 {
        return;
    }
    let _serial = lock(&shared.reg_serial);
    for which in [DEFER_BUFFERS, DEFER_FILES] {
        if shared.deferred.load(Ordering::Acquire) & which == 0 {
            continue;
        }
        match engine_request_unregister(ce, which) {
            // Still draining.
            Err(aura_std::Error::Busy(_)) => {}
            // Nothing registered any more: finished.
            Err(aura_std::Error::InvalidArgument(_)) => forget(ce, which),
            // Ok: it had finished and this started a new unregister of the same registration
            // (cannot happen: registering is refused while the mirror says draining); anything
            // else: leave it to the next pass.
            Ok(()) | Err(_) => {}
        }
    }
}

fn reg_kind(t: c_int) -> Option<u8> {
    match t {
        AURA_REG_BUFFERS => Some(DEFER_BUFFERS),
        AURA_REG_FILES => Some(DEFER_FILES),
        _ => None,
    }
}

/// Starts a deferred unregister (the engine finishes it now if nothing uses the registration).
fn request_unregister(ce: &CEngine, which: u8) -> c_int {
    finish_deferred(ce);
    let shared = ce.shared();
    let _serial = lock(&shared.reg_serial);
    match mirror_state(ce, which) {
        (false, _) => return fail(ENOENT),
        (true, true) => return fail(EBUSY),
        (true, false) => {}
    }
    set_draining(ce, which, true);
    shared.deferred.fetch_or(which, Ordering::AcqRel);
    match engine_request_unregister(ce, which) {
        Ok(()) => {
            drop(_serial);
            finish_deferred(ce);
            0
        }
        Err(e) => {
            shared.deferred.fetch_and(!which, Ordering::AcqRel);
            set_draining(ce, which, false);
            fail(errno_of(&e))
        }
    }
}

/// `int aura_unregister(aura_engine_t *engine, aura_reg_type_t type)`: waits (≤ 10 s) for the
/// requests using the registration; from a callback, the deferred form.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_unregister(engine: *mut CEngine, kind: c_int) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail(EINVAL);
        };
        let Some(which) = reg_kind(kind) else {
            return fail(EINVAL);
        };
        if aura_std::in_callback() {
            return request_unregister(ce, which);
        }
        finish_deferred(ce);
        let shared = ce.shared();
        {
            let _serial = lock(&shared.reg_serial);
            match mirror_state(ce, which) {
                (false, _) => return fail(ENOENT),
                (true, true) => return fail(EBUSY),
                (true, false) => set_draining(ce, which, true),
            }
        }
        // No lock of ours is held while the engine waits: it runs callbacks meanwhile, and they
        // may call registration functions (which see the draining flag).
        let r = if which == DEFER_BUFFERS {
            ce.engine().unregister_buffers()
        } else {
            ce.engine().unregister_files()
        };
        let _serial = lock(&shared.reg_serial);
        match r {
            Ok(()) => {
                forget(ce, which);
                0
            }
            Err(e) => {
                set_draining(ce, which, false);
                fail(errno_of(&e))
            }
        }
    })
}

/// `int aura_request_unregister(aura_engine_t *engine, aura_reg_type_t type)`: done now if
/// nothing uses the registration, else after a later poll / wait / drain.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_request_unregister(engine: *mut CEngine, kind: c_int) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail(EINVAL);
        };
        match reg_kind(kind) {
            Some(which) => request_unregister(ce, which),
            None => fail(EINVAL),
        }
    })
}
