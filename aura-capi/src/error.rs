//! The one errno mapping: every `aura_std::Error` a C caller can see becomes an errno here.
//!
//! Errors whose errno depends on *which* argument is bad (ENOENT for an unregistered fixed
//! buffer, EOVERFLOW for a slice beyond it, EBUSY for a double registration) are decided by the
//! C layer's own checks before the engine is called, so this mapping never guesses from text.

use aura_std::Error;

/// Operation not permitted.
pub const EPERM: i32 = 1;
/// No such file or directory (here: nothing registered).
pub const ENOENT: i32 = 2;
/// Interrupted system call.
pub const EINTR: i32 = 4;
/// I/O error (also: an internal error caught at the boundary).
pub const EIO: i32 = 5;
/// Bad file descriptor.
pub const EBADF: i32 = 9;
/// Try again (no request slot free: poll and retry).
pub const EAGAIN: i32 = 11;
/// Out of memory.
pub const ENOMEM: i32 = 12;
/// Busy (registration exists or is being removed).
pub const EBUSY: i32 = 16;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// Would deadlock (event processing called from a callback).
pub const EDEADLK: i32 = 35;
/// Function not implemented.
pub const ENOSYS: i32 = 38;
/// Not supported.
pub const ENOTSUP: i32 = 95;
/// Value too large (a fixed-buffer slice beyond its buffer).
pub const EOVERFLOW: i32 = 75;
/// No buffer space (the Prometheus output does not fit).
pub const ENOBUFS: i32 = 105;
/// The engine is shutting down.
pub const ESHUTDOWN: i32 = 108;
/// Timed out.
pub const ETIMEDOUT: i32 = 110;
/// Already in progress (cancel of a request that already completed).
pub const EALREADY: i32 = 114;
/// Cancelled.
pub const ECANCELED: i32 = 125;

/// The errno of an engine error, as the C API reports it.
///
/// `WouldBlock` (no request slot, or the gate refused a non-blocking submit) is `EAGAIN`;
/// `MemlockLimit` is `ENOMEM` (what the kernel itself answers); `Unsupported` is `ENOTSUP`.
pub fn errno_of(e: &Error) -> i32 {
    match e {
        Error::Io(io) => io.raw_os_error().filter(|&n| n > 0).unwrap_or(EIO),
        Error::InvalidArgument(_) => EINVAL,
        Error::Shutdown => ESHUTDOWN,
        Error::WouldBlock => EAGAIN,
        Error::Cancelled => ECANCELED,
        Error::TimedOut => ETIMEDOUT,
        Error::MemlockLimit => ENOMEM,
        Error::Unsupported(_) => ENOTSUP,
        // Future variants: the engine's own errno.
        other => match other.errno() {
            n if n > 0 => n,
            _ => EIO,
        },
    }
}

/// The `ssize_t` a completion callback gets: the value, or minus the errno.
#[inline]
pub fn callback_result(r: aura_std::Result<usize>) -> isize {
    match r {
        Ok(n) => n as isize,
        Err(e) => -(errno_of(&e) as isize),
    }
}

/// Whether a failure of poll / wait / flush leaves the rings unusable (so it is latched as the
/// engine's fatal error): any system error except the transient ones.
pub fn is_fatal(e: &Error) -> bool {
    match e {
        Error::Io(io) => !matches!(
            io.raw_os_error(),
            Some(EAGAIN | EBUSY | EINTR | ETIMEDOUT) | None
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn every_variant_maps_to_its_errno() {
        assert_eq!(errno_of(&Error::InvalidArgument("x".into())), EINVAL);
        assert_eq!(errno_of(&Error::Shutdown), ESHUTDOWN);
        assert_eq!(errno_of(&Error::WouldBlock), EAGAIN);
        assert_eq!(errno_of(&Error::Cancelled), ECANCELED);
        assert_eq!(errno_of(&Error::TimedOut), ETIMEDOUT);
        assert_eq!(errno_of(&Error::MemlockLimit), ENOMEM);
        assert_eq!(errno_of(&Error::Unsupported("x".into())), ENOTSUP);
        assert_eq!(
            errno_of(&Error::Io(io::Error::from_raw_os_error(EBADF))),
            EBADF
        );
        // An io::Error without an OS code still gives a real errno.
        assert_eq!(errno_of(&Error::Io(io::Error::other("custom"))), EIO);
    }

    #[test]
    fn the_constants_are_the_linux_values() {
        // Round-trip through std's own table of Linux errnos.
        for (n, kind) in [
            (ENOENT, io::ErrorKind::NotFound),
            (EINVAL, io::ErrorKind::InvalidInput),
            (ETIMEDOUT, io::ErrorKind::TimedOut),
            (EPERM, io::ErrorKind::PermissionDenied),
            (ENOMEM, io::ErrorKind::OutOfMemory),
            (EAGAIN, io::ErrorKind::WouldBlock),
            (EINTR, io::ErrorKind::Interrupted),
            (EDEADLK, io::ErrorKind::Deadlock),
            (ENOSYS, io::ErrorKind::Unsupported),
        ] {
            assert_eq!(io::Error::from_raw_os_error(n).kind(), kind, "errno {n}");
        }
    }

    #[test]
    fn callback_results_are_bytes_or_minus_errno() {
        assert_eq!(callback_result(Ok(4096)), 4096);
        assert_eq!(
            callback_result(Err(Error::Cancelled)),
            -(ECANCELED as isize)
        );
        assert_eq!(
            callback_result(Err(Error::Io(io::Error::from_raw_os_error(EBADF)))),
            -(EBADF as isize)
        );
    }

    #[test]
    fn only_hard_system_errors_are_fatal() {
        assert!(is_fatal(&Error::Io(io::Error::from_raw_os_error(EBADF))));
        assert!(!is_fatal(&Error::Io(io::Error::from_raw_os_error(EAGAIN))));
        assert!(!is_fatal(&Error::Io(io::Error::from_raw_os_error(EINTR))));
        assert!(!is_fatal(&Error::TimedOut));
        assert!(!is_fatal(&Error::InvalidArgument("x".into())));
    }
}
