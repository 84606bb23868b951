//! Requests in flight: what each one owns until its completion, and how it reports back.

use std::ffi::CString;

use aura_core::IoVec;

use crate::buffer::Buffer;
use crate::error::{Error, Result};

/// A plain completion callback: bytes (data ops), a new fd (openat), 0 (others), or the error.
pub type Callback = Box<dyn FnOnce(Result<usize>) + Send + 'static>;

/// A completion callback of the safe, owned-buffer style: the result and the buffer back.
pub type BufferCallback = Box<dyn FnOnce(Result<usize>, Buffer) + Send + 'static>;

/// Identifies a submitted request, for [`crate::Engine::cancel`]. Stale handles are harmless:
/// the slot's generation no longer matches and cancel answers [`Error::InvalidArgument`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestHandle {
    pub(crate) ring: u32,
    pub(crate) user_data: u64,
}

impl RequestHandle {
    /// The ring the request went to.
    pub fn ring(&self) -> usize {
        self.ring as usize
    }
}

/// How a request reports its completion.
pub(crate) enum Completion {
    /// Nobody is told (internal cancel requests, fire-and-forget).
    Silent,
    /// A plain callback.
    Plain(Callback),
    /// A callback that gets the request's owned buffer back.
    WithBuffer(BufferCallback),
}

/// Memory the kernel reads or writes for a request, owned by the request until its CQE.
#[derive(Default)]
pub(crate) enum Keep {
    /// Nothing (or memory the caller promised to keep alive, in the unsafe API).
    #[default]
    Nothing,
    /// A pool buffer (owned-buffer ops).
    Buffer(Buffer),
    /// An iovec array (the buffers it points at are the caller's).
    Iovecs(#[allow(dead_code)] Box<[IoVec]>), // held, never read: the kernel reads it until the CQE
    /// A NUL-terminated path.
    Path(#[allow(dead_code)] CString), // held, never read: the kernel reads it until the CQE
}

/// One request slot's contents.
pub(crate) struct Request {
    pub(crate) completion: Completion,
    pub(crate) keep: Keep,
    /// A data op: its bytes count toward throughput and its latency may be sampled.
    pub(crate) data: bool,
    /// Nanoseconds since the engine's epoch when the SQE went to the ring, 0 if not sampled.
    pub(crate) submit_ns: u64,
    /// An internal request (a cancel): not counted, no callback.
    pub(crate) internal: bool,
    /// Registered resources it uses (`FIXED_BUF` / `FIXED_FILE` bits of the shard module),
    /// counted in the engine's `FixedInFlight` until its completion.
    pub(crate) fixed: u8,
}

impl Request {
    pub(crate) fn new(completion: Completion, keep: Keep, data: bool) -> Self {
        Request {
            completion,
            keep,
            data,
            submit_ns: 0,
            internal: false,
            fixed: 0,
        }
    }

    /// A request reported through a plain callback.
    pub(crate) fn plain(
        callback: impl FnOnce(Result<usize>) + Send + 'static,
        keep: Keep,
        data: bool,
    ) -> Self {
        Self::new(Completion::Plain(Box::new(callback)), keep, data)
    }
}

/// A finished request, ready for its callback (run with no lock held).
pub(crate) struct Finished {
    pub(crate) completion: Completion,
    pub(crate) keep: Keep,
    pub(crate) res: i32,
}

impl Finished {
    /// Runs the callback. Returns `true` when there was one.
    pub(crate) fn run(self) -> bool {
        let result = if self.res < 0 {
            Err(Error::from_neg_errno(self.res))
        } else {
            Ok(self.res as usize)
        };
        match self.completion {
            Completion::Silent => false,
            Completion::Plain(cb) => {
                cb(result);
                true
            }
            Completion::WithBuffer(cb) => match self.keep {
                Keep::Buffer(buf) => {
                    cb(result, buf);
                    true
                }
                _ => false,
            },
        }
    }
}
