//! aura-core's error type: small, `Copy`, no allocation.

use core::fmt;

pub use rustix::io::Errno;

/// What can go wrong in aura-core.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A syscall failed with this errno.
    Os(Errno),
    /// The kernel refused to pin memory because of `RLIMIT_MEMLOCK` (registered buffers, or rings
    /// on kernels before 5.12). Raise the limit (`ulimit -l`, or `LimitMEMLOCK=` in systemd) or
    /// register less memory.
    MemlockLimit,
    /// The kernel does not offer a feature this call needs; the text names it.
    Unsupported(&'static str),
    /// An argument is out of range; the text names it.
    InvalidArgument(&'static str),
}

impl Error {
    /// The errno closest to this error, for C callers and `std::io::Error` conversion.
    pub fn errno(self) -> Errno {
        match self {
            Error::Os(e) => e,
            Error::MemlockLimit => Errno::NOMEM,
            Error::Unsupported(_) => Errno::OPNOTSUPP,
            Error::InvalidArgument(_) => Errno::INVAL,
        }
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Self {
        Error::Os(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os(e) => write!(f, "{e}"),
            Error::MemlockLimit => f.write_str(
                "the kernel refused to pin memory: RLIMIT_MEMLOCK is too low \
                 (raise it with `ulimit -l` or LimitMEMLOCK=, or register less memory)",
            ),
            Error::Unsupported(what) => write!(f, "not supported by this kernel: {what}"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
        }
    }
}

impl core::error::Error for Error {}

/// aura-core's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;
