//! aura-std's one error type.

use std::fmt;
use std::io;

/// What can go wrong in the Engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call or an I/O operation failed with this errno.
    Io(io::Error),
    /// An argument is out of range; the text names it (and usually the accepted range).
    InvalidArgument(String),
    /// The engine is shutting down: no new submissions.
    Shutdown,
    /// The ring is at its in-flight limit and the caller asked not to wait (`EAGAIN`).
    WouldBlock,
    /// The operation was cancelled (`ECANCELED`), or a linked predecessor failed.
    Cancelled,
    /// A wait or drain reached its deadline (`ETIMEDOUT`).
    TimedOut,
    /// The kernel refused to pin memory because of `RLIMIT_MEMLOCK`.
    MemlockLimit,
    /// The kernel lacks a feature this needs; the text names it.
    Unsupported(String),
    /// The resource is busy (`EBUSY`): already registered, or an unregister is draining the
    /// requests that use it; the text names it.
    Busy(String),
}

impl Error {
    /// The errno this error corresponds to (what the C API reports).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io(e) => e.raw_os_error().unwrap_or(libc_eio()),
            Error::InvalidArgument(_) => 22,
            Error::Shutdown => 108,
            Error::WouldBlock => 11,
            Error::Cancelled => 125,
            Error::TimedOut => 110,
            Error::MemlockLimit => 12,
            Error::Unsupported(_) => 95,
            Error::Busy(_) => 16,
        }
    }

    /// An error from a negated errno (a CQE's `res < 0`): ECANCELED becomes [`Error::Cancelled`],
    /// ETIMEDOUT [`Error::TimedOut`], everything else [`Error::Io`].
    pub fn from_neg_errno(res: i32) -> Error {
        match -res {
            125 => Error::Cancelled,
            110 => Error::TimedOut,
            e => Error::Io(io::Error::from_raw_os_error(e)),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Error {
        Error::InvalidArgument(what.into())
    }
}

const fn libc_eio() -> i32 {
    5
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Shutdown => f.write_str("the engine is shutting down"),
            Error::WouldBlock => f.write_str("the ring is at its in-flight limit; poll and retry"),
            Error::Cancelled => f.write_str("operation cancelled"),
            Error::TimedOut => f.write_str("timed out"),
            Error::MemlockLimit => f.write_str(
                "the kernel refused to pin memory: RLIMIT_MEMLOCK is too low \
                 (raise it with `ulimit -l` or LimitMEMLOCK=, or register less memory)",
            ),
            Error::Unsupported(what) => write!(f, "not supported by this kernel: {what}"),
            Error::Busy(what) => write!(f, "busy: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<aura_core::Error> for Error {
    fn from(e: aura_core::Error) -> Self {
        match e {
            aura_core::Error::Os(errno) => {
                Error::Io(io::Error::from_raw_os_error(errno.raw_os_error()))
            }
            aura_core::Error::MemlockLimit => Error::MemlockLimit,
            aura_core::Error::Unsupported(what) => Error::Unsupported(what.to_string()),
            aura_core::Error::InvalidArgument(what) => Error::InvalidArgument(what.to_string()),
            other => Error::Io(io::Error::from_raw_os_error(other.errno().raw_os_error())),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            other => io::Error::from_raw_os_error(other.errno()),
        }
    }
}

/// aura-std's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
