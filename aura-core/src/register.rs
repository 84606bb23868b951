//! Registration: fixed buffers, fixed files (and updates), an eventfd, and the opcode probe.
//!
//! Mirrors io_uring_register(2). Buffer registration pins memory and is charged to
//! `RLIMIT_MEMLOCK`; when the kernel refuses for that reason the error is
//! [`Error::MemlockLimit`], which names the limit.

use core::ffi::c_void;

use crate::error::{Errno, Error, Result};
use crate::ring::Ring;
use crate::sim::SimKernel;
use crate::sys::abi::{FilesUpdate, IoVec, ProbeHeader, ProbeOp, IO_URING_OP_SUPPORTED};
use crate::sys::{self, RegisterOp};

/// Which opcodes the kernel supports, decoded as plain integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    last_op: u8,
    supported: [bool; 256],
}

impl Probe {
    /// Decodes the kernel's reply: a header and `ops_len` entries. Never trusts `ops_len` beyond
    /// the buffer, and never maps an opcode number to a Rust enum (unknown opcodes are fine).
    pub fn decode(header: &ProbeHeader, ops: &[ProbeOp]) -> Probe {
        let mut supported = [false; 256];
        for op in ops.iter().take(header.ops_len as usize) {
            if u32::from(op.flags) & IO_URING_OP_SUPPORTED != 0 {
                supported[op.op as usize] = true;
            }
        }
        Probe {
            last_op: header.last_op,
            supported,
        }
    }

    /// Whether opcode `op` is supported.
    pub fn supports(&self, op: u8) -> bool {
        self.supported[op as usize]
    }

    /// The highest opcode the kernel knows (it may exceed what aura's bindings name).
    pub fn last_op(&self) -> u8 {
        self.last_op
    }
}

#[cfg(not(loom))]
impl Ring {
    fn fd_or_unsupported(&self) -> Result<rustix::fd::BorrowedFd<'_>> {
        self.as_fd()
            .ok_or(Error::Unsupported("registration on a simulated ring"))
    }

    /// `IORING_REGISTER_PROBE`: which opcodes this kernel supports. A simulated ring reports the
    /// simulation's set.
    pub fn probe(&self) -> Result<Probe> {
        let Some(fd) = self.as_fd() else {
            let mut supported = [false; 256];
            for (op, s) in supported.iter_mut().enumerate() {
                *s = SimKernel::supports(op as u8);
            }
            return Ok(Probe {
                last_op: crate::sys::abi::opcode::LAST_KNOWN,
                supported,
            });
        };
        #[repr(C)]
        struct Buf {
            header: ProbeHeader,
            ops: [ProbeOp; 256],
        }
        let mut buf = Buf {
            header: ProbeHeader::default(),
            ops: [ProbeOp::default(); 256],
        };
        // SAFETY: `buf` is a zeroed io_uring_probe with room for 256 ops, as nr_args says; the
        // kernel writes only inside it.
        unsafe {
            sys::register(
                fd,
                RegisterOp::RegisterProbe,
                (&raw mut buf).cast::<c_void>(),
                256,
            )?
        };
        Ok(Probe::decode(&buf.header, &buf.ops))
    }

    /// `IORING_REGISTER_BUFFERS`: registers `bufs` for `read_fixed` / `write_fixed` (index = position).
    ///
    /// # Safety
    ///
    /// Every iovec must describe memory that stays valid (and is not freed or unmapped) until the
    /// buffers are unregistered or the ring is dropped.
    pub unsafe fn register_buffers(&self, bufs: &[IoVec]) -> Result<()> {
        let fd = self.fd_or_unsupported()?;
        let n =
            u32::try_from(bufs.len()).map_err(|_| Error::InvalidArgument("too many buffers"))?;
        // SAFETY: `bufs` is a valid iovec array of `n` entries; the caller keeps the memory they
        // describe alive while registered (this fn's contract).
        match unsafe { sys::register(fd, RegisterOp::RegisterBuffers, bufs.as_ptr().cast(), n) } {
            Ok(_) => Ok(()),
            Err(Errno::NOMEM) => Err(Error::MemlockLimit),
            Err(e) => Err(Error::Os(e)),
        }
    }

    /// `IORING_UNREGISTER_BUFFERS`.
    pub fn unregister_buffers(&self) -> Result<()> {
        let fd = self.fd_or_unsupported()?;
        // SAFETY: this opcode takes no argument.
        unsafe { sys::register(fd, RegisterOp::UnregisterBuffers, core::ptr::null(), 0)? };
        Ok(())
    }

    /// `IORING_REGISTER_FILES`: a fixed-file table (index = position; `-1` leaves a slot empty).
    pub fn register_files(&self, fds: &[i32]) -> Result<()> {
        let fd = self.fd_or_unsupported()?;
        let n = u32::try_from(fds.len()).map_err(|_| Error::InvalidArgument("too many files"))?;
        // SAFETY: `fds` is a valid array of `n` i32 the kernel only reads during the call.
        unsafe { sys::register(fd, RegisterOp::RegisterFiles, fds.as_ptr().cast(), n)? };
        Ok(())
    }

    /// `IORING_REGISTER_FILES_UPDATE`: replaces table slots from `offset` on (`-1` empties a
    /// slot). Returns how many slots were updated.
    pub fn register_files_update(&self, offset: u32, fds: &[i32]) -> Result<u32> {
        let fd = self.fd_or_unsupported()?;
        let n = u32::try_from(fds.len()).map_err(|_| Error::InvalidArgument("too many files"))?;
        let up = FilesUpdate {
            offset,
            resv: 0,
            fds: fds.as_ptr() as u64,
        };
        // SAFETY: `up` points at `n` valid i32 for the duration of the call.
        Ok(unsafe {
            sys::register(
                fd,
                RegisterOp::RegisterFilesUpdate,
                (&raw const up).cast(),
                n,
            )?
        })
    }

    /// `IORING_UNREGISTER_FILES`.
    pub fn unregister_files(&self) -> Result<()> {
        let fd = self.fd_or_unsupported()?;
        // SAFETY: this opcode takes no argument.
        unsafe { sys::register(fd, RegisterOp::UnregisterFiles, core::ptr::null(), 0)? };
        Ok(())
    }

    /// `IORING_REGISTER_EVENTFD` (or `_ASYNC` with `async_only`: only completions that did not
    /// finish inline signal it): the kernel signals `eventfd` when CQEs are posted.
    pub fn register_eventfd(&self, eventfd: i32, async_only: bool) -> Result<()> {
        let fd = self.fd_or_unsupported()?;
        let op = if async_only {
            RegisterOp::RegisterEventfdAsync
        } else {
            RegisterOp::RegisterEventfd
        };
        // SAFETY: the argument is one valid i32 read during the call.
        unsafe { sys::register(fd, op, (&raw const eventfd).cast(), 1)? };
        Ok(())
    }

    /// `IORING_REGISTER_ENABLE_RINGS`: enables a ring set up with [`crate::Params::disabled`];
    /// with `SINGLE_ISSUER` the calling thread becomes the ring's issuer. `EBADFD` if the ring is
    /// not disabled.
    pub fn enable(&self) -> Result<()> {
        let fd = self.fd_or_unsupported()?;
        // SAFETY: this opcode takes no argument.
        unsafe { sys::register(fd, RegisterOp::EnableRings, core::ptr::null(), 0)? };
        Ok(())
    }

    /// `IORING_UNREGISTER_EVENTFD`.
    pub fn unregister_eventfd(&self) -> Result<()> {
        let fd = self.fd_or_unsupported()?;
        // SAFETY: this opcode takes no argument.
        unsafe { sys::register(fd, RegisterOp::UnregisterEventfd, core::ptr::null(), 0)? };
        Ok(())
    }
}
