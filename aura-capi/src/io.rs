//! Submissions: data I/O (read, write, readv, writev, fsync) and metadata operations (openat,
//! close, statx, fallocate, ftruncate, sync_file_range) — aura.h sections "Data I/O" and
//! "Metadata operations". Each returns a request handle, or NULL with errno set.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::atomic::Ordering;
use std::sync::RwLockReadGuard;

use aura_std::{BufferRef, Engine, IoVec, RequestHandle, IOV_MAX};

use crate::error::{errno_of, EAGAIN, EBADF, EBUSY, EINVAL, ENOENT, EOVERFLOW, ESHUTDOWN};
use crate::ffi::{boundary, fail_null, opt_ref};
use crate::lifecycle::{CEngine, Registry, Shared};
use crate::link::{self, Link, Next};
use crate::request::{Completion, Slot, Submitting, F_FIXED_BUF, F_FIXED_FILE, WANT_ANY};
use crate::types::{AuraBuf, AuraCallback, AURA_BUF_REGISTERED, AURA_BUF_UNREGISTERED};

/// `AURA_FIXED_FILE`.
pub const AURA_FIXED_FILE: c_uint = 1;

/// `aura_op_type_t` values.
pub(crate) mod op {
    pub const READ: u8 = 0;
    pub const WRITE: u8 = 1;
    pub const READV: u8 = 2;
    pub const WRITEV: u8 = 3;
    pub const FSYNC: u8 = 4;
    pub const FDATASYNC: u8 = 5;
    pub const READ_FIXED: u8 = 7;
    pub const WRITE_FIXED: u8 = 8;
    pub const OPENAT: u8 = 9;
    pub const CLOSE: u8 = 10;
    pub const STATX: u8 = 11;
    pub const FALLOCATE: u8 = 12;
    pub const FTRUNCATE: u8 = 13;
    pub const SYNC_FILE_RANGE: u8 = 14;
}

/// Submits one request: takes a slot, calls `f` with the engine and the completion to attach,
/// and publishes the handle. Callers release the registry lock first (the engine itself refuses
/// registered-resource submissions once an unregister started).
///
/// `want` is the result that counts as success when the request heads a link (the bytes asked
/// for), or `WANT_ANY`. `f` owns what it needs (`'static`): when the calling thread linked its
/// previous request (`aura_request_set_linked`), `f` runs later, on the thread completing it.
#[inline]
#[allow(clippy::too_many_arguments)]
fn submit<F>(
    ce: &CEngine,
    fd: c_int,
    op: u8,
    flags: u8,
    want: u64,
    callback: AuraCallback,
    user_data: *mut c_void,
    f: F,
) -> *mut Slot
where
    F: FnMut(&Engine, Completion) -> aura_std::Result<RequestHandle> + Send + 'static,
{
    let shared: &Shared = ce.shared();
    if shared.destroying.load(Ordering::Relaxed) {
        return fail_null(ESHUTDOWN);
    }
    let fatal = shared.fatal.load(Ordering::Relaxed);
    if fatal != 0 {
        return fail_null(fatal);
    }
    let Some(sub) = Submitting::begin(shared, fd, op, flags, want, user_data) else {
        return fail_null(EAGAIN);
    };
    if shared.thread_local_mode {
        if let Some(link) = link::take_open(shared) {
            return submit_linked(ce, &link, sub, callback, Box::new(f));
        }
    }
    let mut f = f;
    let completion = sub.completion(callback);
    match aura_std::record_handle(sub.slot().handle_slot(), || f(ce.engine(), completion)) {
        Ok(_) => sub.publish(),
        Err(e) => {
            drop(sub);
            fail_null(errno_of(&e))
        }
    }
}

/// [`submit`] of the successor of a linked request: held until the head completes, submitted
/// now if the head already succeeded, completed with `-ECANCELED` if it failed.
#[cold]
fn submit_linked(
    ce: &CEngine,
    link: &Link,
    mut sub: Submitting<'_>,
    callback: AuraCallback,
    f: link::Submit,
) -> *mut Slot {
    // Held, it keeps SUB until it is submitted; taken before the link can see it.
    sub.take_sub();
    let record = sub.slot().handle_slot();
    let result = match link.successor(ce.engine(), ce.shared(), sub.slot(), callback, f) {
        Next::Held => return sub.hold(),
        Next::SubmitNow(mut f) => {
            let c = sub.completion(callback);
            aura_std::record_handle(record, || f(ce.engine(), c))
        }
        // Through the ring, so the callback runs in poll / wait like any other.
        Next::Cancel => {
            let c = sub.completion(callback);
            aura_std::record_handle(record, || {
                ce.engine()
                    .nop(move |_| c.complete(Err(aura_std::Error::Cancelled)))
            })
        }
    };
    match result {
        Ok(_) => sub.publish(),
        Err(e) => {
            drop(sub);
            fail_null(errno_of(&e))
        }
    }
}

/// A pointer the kernel writes through, moved into a submission (which may run on another
/// thread when it is held behind a link).
#[derive(Clone, Copy)]
struct OutPtr(*mut u8);

// SAFETY: the pointee is the C caller's, who keeps it valid until the callback (the API
// contract of the call that gave it); aura only passes the address on to the kernel.
unsafe impl Send for OutPtr {}

/// Resolves the fd of a submission: with `AURA_FIXED_FILE`, `fd` is an index into the
/// registered files, looked up under `reg` (which the caller keeps locked while submitting).
fn resolve_fd(
    fd: c_int,
    flags: c_uint,
    reg: &Option<RwLockReadGuard<'_, Registry>>,
) -> Result<c_int, i32> {
    if flags & !AURA_FIXED_FILE != 0 || fd < 0 {
        return Err(EINVAL);
    }
    let Some(reg) = reg else { return Ok(fd) };
    if flags & AURA_FIXED_FILE == 0 {
        return Ok(fd);
    }
    if reg.files.is_empty() {
        return Err(ENOENT);
    }
    if reg.files_draining {
        return Err(EBUSY);
    }
    match reg.files.get(fd as usize) {
        Some(&real) if real >= 0 => Ok(real),
        Some(_) => Err(EBADF),
        None => Err(EINVAL),
    }
}

/// The registry read guard a submission needs: only when it names a registered file or buffer.
fn registry_for(shared: &Shared, fixed: bool) -> Option<RwLockReadGuard<'_, Registry>> {
    fixed.then(|| shared.registry())
}

/// read / write.
#[allow(clippy::too_many_arguments)]
fn rw(
    engine: *mut CEngine,
    write: bool,
    fd: c_int,
    buf: AuraBuf,
    len: usize,
    offset: i64,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    // SAFETY: `engine` is NULL or a live engine (the export's contract).
    let Some(ce) = (unsafe { opt_ref(engine) }) else {
        return fail_null(EINVAL);
    };
    if len == 0 || len > u32::MAX as usize || offset < 0 {
        return fail_null(EINVAL);
    }
    let registered = buf.kind == AURA_BUF_REGISTERED;
    let reg = registry_for(ce.shared(), registered || flags & AURA_FIXED_FILE != 0);
    let real_fd = match resolve_fd(fd, flags, &reg) {
        Ok(f) => f,
        Err(e) => return fail_null(e),
    };
    let mut slot_flags = if flags & AURA_FIXED_FILE != 0 {
        F_FIXED_FILE
    } else {
        0
    };
    let (bref, op) = match buf.kind {
        AURA_BUF_UNREGISTERED => {
            // SAFETY: an unregistered descriptor's active member is `ptr` (aura_buf()).
            let ptr = unsafe { buf.u.ptr };
            if ptr.is_null() {
                return fail_null(EINVAL);
            }
            // SAFETY: the C caller promises `len` bytes at `ptr` stay valid (and unshared for a
            // read) until the callback — aura_read's documented contract.
            let b = unsafe { BufferRef::from_ptr(ptr.cast::<u8>(), len) };
            (b, if write { op::WRITE } else { op::READ })
        }
        AURA_BUF_REGISTERED => {
            // SAFETY: a registered descriptor's active member is `fixed` (aura_buf_fixed()).
            let fixed = unsafe { buf.u.fixed };
            // Registered buffers always take the registry lock (above).
            let Some(reg) = &reg else {
                return fail_null(EINVAL);
            };
            if fixed.index < 0 {
                return fail_null(EINVAL);
            }
            if reg.buffers.is_empty() {
                return fail_null(ENOENT);
            }
            if reg.buffers_draining {
                return fail_null(EBUSY);
            }
            let Some(&size) = reg.buffers.get(fixed.index as usize) else {
                return fail_null(ENOENT);
            };
            if fixed.offset.checked_add(len).is_none_or(|end| end > size) {
                return fail_null(EOVERFLOW);
            }
            slot_flags |= F_FIXED_BUF;
            // The index is below the registered count, at most 65535.
            let b = BufferRef::fixed(fixed.index as u16, fixed.offset);
            (
                b,
                if write {
                    op::WRITE_FIXED
                } else {
                    op::READ_FIXED
                },
            )
        }
        _ => return fail_null(EINVAL),
    };
    drop(reg);
    submit(
        ce,
        fd,
        op,
        slot_flags,
        len as u64,
        callback,
        user_data,
        move |e, c| {
            let cb = move |r| c.complete(r);
            if write {
                // SAFETY: as for `from_ptr` above: the caller keeps the memory until the callback.
                unsafe { e.write(real_fd, bref, len, offset as u64, cb) }
            } else {
                // SAFETY: as above.
                unsafe { e.read(real_fd, bref, len, offset as u64, cb) }
            }
        },
    )
}

/// readv / writev.
#[allow(clippy::too_many_arguments)]
fn vectored(
    engine: *mut CEngine,
    write: bool,
    fd: c_int,
    iov: *const IoVec,
    iovcnt: c_int,
    offset: i64,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    // SAFETY: `engine` is NULL or a live engine (the export's contract).
    let Some(ce) = (unsafe { opt_ref(engine) }) else {
        return fail_null(EINVAL);
    };
    if iov.is_null() || iovcnt < 1 || iovcnt as usize > IOV_MAX || offset < 0 {
        return fail_null(EINVAL);
    }
    // SAFETY: the caller passes `iovcnt` readable `struct iovec`s (layout-identical to IoVec,
    // asserted in types.rs). They are copied here (the array need not outlive this call, and
    // the submission may run later, behind a link).
    let iovs: Vec<IoVec> = unsafe { std::slice::from_raw_parts(iov, iovcnt as usize) }.to_vec();
    let want = iovs
        .iter()
        .try_fold(0u64, |sum, v| sum.checked_add(v.len as u64))
        .unwrap_or(WANT_ANY);
    let reg = registry_for(ce.shared(), flags & AURA_FIXED_FILE != 0);
    let real_fd = match resolve_fd(fd, flags, &reg) {
        Ok(f) => f,
        Err(e) => return fail_null(e),
    };
    let slot_flags = if reg.is_some() { F_FIXED_FILE } else { 0 };
    let op = if write { op::WRITEV } else { op::READV };
    drop(reg);
    submit(
        ce,
        fd,
        op,
        slot_flags,
        want,
        callback,
        user_data,
        move |e, c| {
            let cb = move |r| c.complete(r);
            if write {
                // SAFETY: the buffers the iovecs describe stay valid until the callback
                // (aura_writev's documented contract).
                unsafe { e.writev(real_fd, &iovs, offset as u64, cb) }
            } else {
                // SAFETY: as above (aura_readv).
                unsafe { e.readv(real_fd, &iovs, offset as u64, cb) }
            }
        },
    )
}

/// Submission with a (possibly registered) fd and no memory: fsync, fallocate, ftruncate,
/// sync_file_range.
fn fd_op(
    engine: *mut CEngine,
    fd: c_int,
    flags: c_uint,
    op: u8,
    callback: AuraCallback,
    user_data: *mut c_void,
    mut f: impl FnMut(&Engine, c_int, Completion) -> aura_std::Result<RequestHandle> + Send + 'static,
) -> *mut Slot {
    // SAFETY: `engine` is NULL or a live engine (the export's contract).
    let Some(ce) = (unsafe { opt_ref(engine) }) else {
        return fail_null(EINVAL);
    };
    let reg = registry_for(ce.shared(), flags & AURA_FIXED_FILE != 0);
    let real_fd = match resolve_fd(fd, flags, &reg) {
        Ok(f) => f,
        Err(e) => return fail_null(e),
    };
    let slot_flags = if reg.is_some() { F_FIXED_FILE } else { 0 };
    drop(reg);
    submit(
        ce,
        fd,
        op,
        slot_flags,
        WANT_ANY,
        callback,
        user_data,
        move |e, c| f(e, real_fd, c),
    )
}

/// A path argument: NUL-terminated and (the engine's requirement) UTF-8.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string.
unsafe fn path_arg<'a>(path: *const c_char) -> Result<&'a str, i32> {
    if path.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: NUL-terminated (this fn's contract).
    unsafe { CStr::from_ptr(path) }.to_str().map_err(|_| EINVAL)
}

/// `aura_request_t *aura_read(engine, fd, buf, len, offset, flags, callback, user_data)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; an unregistered `buf` points at `len` bytes that stay
/// valid and untouched until the callback returns; `callback` is NULL or a function of the
/// `aura_callback_t` signature.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aura_read(
    engine: *mut CEngine,
    fd: c_int,
    buf: AuraBuf,
    len: usize,
    offset: i64,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        rw(
            engine, false, fd, buf, len, offset, flags, callback, user_data,
        )
    })
}

/// `aura_request_t *aura_write(engine, fd, buf, len, offset, flags, callback, user_data)`.
///
/// # Safety
///
/// As for [`aura_read`]; the buffer is only read.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aura_write(
    engine: *mut CEngine,
    fd: c_int,
    buf: AuraBuf,
    len: usize,
    offset: i64,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        rw(
            engine, true, fd, buf, len, offset, flags, callback, user_data,
        )
    })
}

/// `aura_request_t *aura_readv(engine, fd, iov, iovcnt, offset, flags, callback, user_data)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `iov` is NULL or points at `iovcnt` `struct iovec`s
/// whose buffers stay valid until the callback returns; `callback` as for [`aura_read`].
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aura_readv(
    engine: *mut CEngine,
    fd: c_int,
    iov: *const IoVec,
    iovcnt: c_int,
    offset: i64,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        vectored(
            engine, false, fd, iov, iovcnt, offset, flags, callback, user_data,
        )
    })
}

/// `aura_request_t *aura_writev(engine, fd, iov, iovcnt, offset, flags, callback, user_data)`.
///
/// # Safety
///
/// As for [`aura_readv`].
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aura_writev(
    engine: *mut CEngine,
    fd: c_int,
    iov: *const IoVec,
    iovcnt: c_int,
    offset: i64,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        vectored(
            engine, true, fd, iov, iovcnt, offset, flags, callback, user_data,
        )
    })
}

/// `aura_request_t *aura_fsync(engine, fd, fsync_flags, flags, callback, user_data)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `callback` as for [`aura_read`].
#[no_mangle]
pub unsafe extern "C" fn aura_fsync(
    engine: *mut CEngine,
    fd: c_int,
    fsync_flags: c_uint,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        let data_only = match fsync_flags {
            0 => false,
            1 => true,
            _ => return fail_null(EINVAL),
        };
        let op = if data_only { op::FDATASYNC } else { op::FSYNC };
        fd_op(
            engine,
            fd,
            flags,
            op,
            callback,
            user_data,
            move |e, fd, c| {
                let cb = move |r| c.complete(r);
                if data_only {
                    e.fdatasync(fd, cb)
                } else {
                    e.fsync(fd, cb)
                }
            },
        )
    })
}

/// `aura_request_t *aura_openat(engine, dirfd, path, open_flags, mode, flags, callback,
/// user_data)`: the result is the new fd. The path is copied.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `path` is NULL or NUL-terminated; `callback` as for
/// [`aura_read`].
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aura_openat(
    engine: *mut CEngine,
    dirfd: c_int,
    path: *const c_char,
    open_flags: c_int,
    mode: u32,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail_null(EINVAL);
        };
        if flags != 0 {
            return fail_null(EINVAL);
        }
        // SAFETY: this fn's contract.
        let path = match unsafe { path_arg(path) } {
            Ok(p) => p,
            Err(e) => return fail_null(e),
        };
        let path = path.to_owned();
        submit(
            ce,
            dirfd,
            op::OPENAT,
            0,
            WANT_ANY,
            callback,
            user_data,
            move |e, c| {
                e.openat(dirfd, &path, open_flags as u32, mode, move |r| {
                    c.complete(r)
                })
            },
        )
    })
}

/// `aura_request_t *aura_close(engine, fd, flags, callback, user_data)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `callback` as for [`aura_read`].
#[no_mangle]
pub unsafe extern "C" fn aura_close(
    engine: *mut CEngine,
    fd: c_int,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail_null(EINVAL);
        };
        if flags != 0 || fd < 0 {
            return fail_null(EINVAL);
        }
        submit(
            ce,
            fd,
            op::CLOSE,
            0,
            WANT_ANY,
            callback,
            user_data,
            move |e, c| e.close(fd, move |r| c.complete(r)),
        )
    })
}

/// `aura_request_t *aura_statx(engine, dirfd, path, at_flags, mask, out, flags, callback,
/// user_data)`. The path is copied; `out` is written by the kernel.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `path` is NULL or NUL-terminated; `out` is NULL or a
/// writable `struct statx` that stays valid until the callback returns; `callback` as for
/// [`aura_read`].
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aura_statx(
    engine: *mut CEngine,
    dirfd: c_int,
    path: *const c_char,
    at_flags: c_int,
    mask: c_uint,
    out: *mut c_void,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail_null(EINVAL);
        };
        if flags != 0 || out.is_null() {
            return fail_null(EINVAL);
        }
        // SAFETY: this fn's contract.
        let path = match unsafe { path_arg(path) } {
            Ok(p) => p,
            Err(e) => return fail_null(e),
        };
        let path = path.to_owned();
        let out = OutPtr(out.cast::<u8>());
        submit(
            ce,
            dirfd,
            op::STATX,
            0,
            WANT_ANY,
            callback,
            user_data,
            move |e, c| {
                let out = out;
                // SAFETY: `out` is a writable struct statx kept valid until the callback (this fn's
                // contract).
                unsafe {
                    e.statx(dirfd, &path, at_flags as u32, mask, out.0, move |r| {
                        c.complete(r)
                    })
                }
            },
        )
    })
}

/// `aura_request_t *aura_fallocate(engine, fd, mode, offset, len, flags, callback, user_data)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `callback` as for [`aura_read`].
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aura_fallocate(
    engine: *mut CEngine,
    fd: c_int,
    mode: c_int,
    offset: i64,
    len: i64,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        if offset < 0 || len <= 0 || mode < 0 {
            return fail_null(EINVAL);
        }
        fd_op(
            engine,
            fd,
            flags,
            op::FALLOCATE,
            callback,
            user_data,
            move |e, fd, c| {
                e.fallocate(fd, mode as u32, offset as u64, len as u64, move |r| {
                    c.complete(r)
                })
            },
        )
    })
}

/// `aura_request_t *aura_ftruncate(engine, fd, length, flags, callback, user_data)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `callback` as for [`aura_read`].
#[no_mangle]
pub unsafe extern "C" fn aura_ftruncate(
    engine: *mut CEngine,
    fd: c_int,
    length: i64,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        if length < 0 {
            return fail_null(EINVAL);
        }
        fd_op(
            engine,
            fd,
            flags,
            op::FTRUNCATE,
            callback,
            user_data,
            move |e, fd, c| e.ftruncate(fd, length as u64, move |r| c.complete(r)),
        )
    })
}

/// `aura_request_t *aura_sync_file_range(engine, fd, offset, nbytes, range_flags, flags,
/// callback, user_data)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `callback` as for [`aura_read`].
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aura_sync_file_range(
    engine: *mut CEngine,
    fd: c_int,
    offset: i64,
    nbytes: i64,
    range_flags: c_uint,
    flags: c_uint,
    callback: AuraCallback,
    user_data: *mut c_void,
) -> *mut Slot {
    boundary!(std::ptr::null_mut(), {
        if offset < 0 || !(0..=i64::from(u32::MAX)).contains(&nbytes) || range_flags & !7 != 0 {
            return fail_null(EINVAL);
        }
        fd_op(
            engine,
            fd,
            flags,
            op::SYNC_FILE_RANGE,
            callback,
            user_data,
            move |e, fd, c| {
                e.sync_file_range(fd, offset as u64, nbytes as u32, range_flags, move |r| {
                    c.complete(r)
                })
            },
        )
    })
}
