//! `nostd-cat FILE`: copies `FILE` to stdout through aura-core's io_uring ring, as a
//! `#![no_std]`, `#![no_main]`, statically linked x86_64 Linux binary with no libc at all.
//!
//! It proves that aura-core needs nothing beyond `core` + `alloc` and raw syscalls: the file is
//! opened (`IORING_OP_OPENAT`), read (`IORING_OP_READ`), copied to fd 1 (`IORING_OP_WRITE`, short
//! writes resumed) and closed (`IORING_OP_CLOSE`) by the kernel through the ring, driven only by
//! aura-core's `Ring` / `Sq` / `Cq`.
//!
//! Everything a libc or `std` would otherwise provide is here, and small:
//! - `_start` ([`global_asm!`]) hands the initial stack pointer to [`entry`];
//! - [`exit`] (`exit_group`) and [`stderr`] (`writev` to fd 2, so diagnostics work even when no
//!   ring can be set up) are inline-asm syscalls;
//! - a bump allocator over a static arena serves aura-core's few small allocations;
//! - `memcpy` / `memmove` / `memset` / `memcmp` / `bcmp`, which the compiler emits calls to, are
//!   single string instructions in inline asm, so they cannot be compiled back into calls to
//!   themselves;
//! - the panic handler exits with status 101.
//!
//! Exit status: 0 on success, 1 on a usage error or any failure (open, read, write, close, ring
//! setup), with a message on stderr.
#![no_std]
#![no_main]

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("nostd-cat is written for x86_64 Linux (its _start and syscalls are x86_64 asm)");

use core::alloc::{GlobalAlloc, Layout};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use aura_core::{op, Params, Ring};

/// Standard output.
const STDOUT: i32 = 1;
/// Standard error.
const STDERR: i32 = 2;
/// `O_RDONLY`.
const O_RDONLY: u32 = 0;
/// `EINTR`: retried.
const EINTR: i32 = 4;
/// `EAGAIN`: retried (a non-blocking stdout that is momentarily full).
const EAGAIN: i32 = 11;
/// `EIO`: reported when a write makes no progress.
const EIO: i32 = 5;
/// SQ entries: requests are issued one at a time, so a tiny ring is enough.
const RING_ENTRIES: u32 = 2;
/// Bytes moved per read.
const BUF_LEN: usize = 64 * 1024;
/// Bytes of the allocator's arena.
const HEAP_LEN: usize = 64 * 1024;

// The process entry point. The kernel starts us with `rsp` pointing at `argc`, followed by the
// `argv` pointers, a NULL, `envp` and the auxiliary vector. Clear the frame pointer (end of the
// stack-trace chain), pass that initial `rsp` as the first argument, align the stack to 16 bytes
// as the SysV ABI requires at a call, and never come back.
global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    ".size _start, . - _start",
    entry = sym entry,
);

/// The Rust entry point, called once by `_start`.
///
/// # Safety
///
/// `sp` is the initial stack pointer the kernel handed to `_start`: it points at `argc`, followed
/// by `argc` valid, NUL-terminated `argv` pointers.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: `sp` points at argc (this fn's contract).
    let argc = unsafe { sp.read() };
    if argc < 2 {
        stderr(&[b"usage: nostd-cat FILE\n"]);
        exit(1);
    }
    // SAFETY: argv[1] exists (argc >= 2) and sits right after argc and argv[0]; the kernel's
    // strings live, unmoved, for the whole process.
    let path = unsafe { sp.add(2).cast::<*const u8>().read() };
    exit(run(path))
}

/// Copies the file at `path` (NUL-terminated, valid for the whole process) to stdout; returns the
/// exit status.
fn run(path: *const u8) -> i32 {
    let mut ring = match Ring::new(RING_ENTRIES, &Params::new()) {
        Ok(ring) => ring,
        Err(e) => return fail(b"io_uring setup", None, e.errno().raw_os_error()),
    };
    // SAFETY: the path is argv[1], which lives for the whole process.
    let fd = match unsafe { call(&mut ring, &op::openat(op::AT_FDCWD, path, O_RDONLY, 0)) } {
        Ok(fd) if fd >= 0 => fd,
        Ok(neg) => return fail(b"open", Some(path), -neg),
        Err(errno) => return fail(b"io_uring_enter", None, errno),
    };
    let status = copy(&mut ring, fd, path);
    // SAFETY: CLOSE carries no pointer.
    match unsafe { call(&mut ring, &op::close(fd)) } {
        Ok(0) => status,
        Ok(neg) => fail(b"close", Some(path), -neg),
        Err(errno) => fail(b"io_uring_enter", None, errno),
    }
}

/// The loop: read a buffer from `fd` until end of file (a read of 0 bytes: sizes are never
/// trusted, so procfs files that report size 0 copy fully), writing each chunk out whole.
fn copy(ring: &mut Ring, fd: i32, path: *const u8) -> i32 {
    let buf = BUF.0.get().cast::<u8>();
    loop {
        // The file's own position advances with each read (`CURRENT_POSITION`), so files that
        // cannot seek (FIFOs, character devices) work as well as regular ones.
        let read = op::read(fd, buf, BUF_LEN as u32, op::CURRENT_POSITION);
        // SAFETY: `buf` is the static buffer, only ever accessed through the ring, and only by
        // this one request until its CQE is reaped inside `call`.
        let n = match unsafe { call(ring, &read) } {
            Ok(0) => return 0,
            Ok(n) if n > 0 => n as usize,
            Ok(neg) if neg == -EINTR || neg == -EAGAIN => continue,
            Ok(neg) => return fail(b"read", Some(path), -neg),
            Err(errno) => return fail(b"io_uring_enter", None, errno),
        };
        let mut done = 0;
        while done < n {
            // `CURRENT_POSITION`: stdout may be a pipe (no offsets), or a file opened at some
            // position or with O_APPEND; either way, write where the descriptor points.
            let write = op::write(
                STDOUT,
                buf.wrapping_add(done),
                (n - done) as u32,
                op::CURRENT_POSITION,
            );
            // SAFETY: as for the read; the first `n` bytes of `buf` were filled by the kernel.
            match unsafe { call(ring, &write) } {
                Ok(w) if w > 0 => done += w as usize,
                Ok(neg) if neg == -EINTR || neg == -EAGAIN => {}
                Ok(0) => return fail(b"write", None, EIO),
                Ok(neg) => return fail(b"write", None, -neg),
                Err(errno) => return fail(b"io_uring_enter", None, errno),
            }
        }
    }
}

/// Issues one request and waits for its completion: `Ok(res)` is the CQE's result (`< 0`: a
/// negated errno), `Err(errno)` means the ring itself failed (the process then exits at once).
///
/// # Safety
///
/// Every pointer `sqe` carries stays valid, and is not otherwise accessed, for the duration of the
/// call (the CQE is reaped before this returns `Ok`; on `Err` the caller only reports and exits).
unsafe fn call(ring: &mut Ring, sqe: &aura_core::Sqe) -> Result<i32, i32> {
    // SAFETY: forwarded to the caller (this fn's contract); the CQE is reaped below before any of
    // the memory is released.
    if unsafe { ring.sq().push(sqe) }.is_err() {
        // Unreachable with one request in flight at a time, but never drop an SQE silently.
        return Err(EAGAIN);
    }
    loop {
        if let Err(e) = ring.submit_and_wait(1) {
            return Err(e.errno().raw_os_error());
        }
        if let Some(cqe) = ring.cq().next() {
            return Ok(cqe.res);
        }
    }
}

/// Reports `nostd-cat: WHAT [PATH]: REASON (errno N)` on stderr; returns exit status 1.
fn fail(what: &[u8], path: Option<*const u8>, errno: i32) -> i32 {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut v = errno.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let path: &[u8] = match path {
        // SAFETY: every path passed here is argv[1]: NUL-terminated and alive for the process.
        Some(p) => unsafe { core::slice::from_raw_parts(p, strlen(p)) },
        None => b"",
    };
    let sep: &[u8] = if path.is_empty() { b"" } else { b" " };
    stderr(&[
        b"nostd-cat: ",
        what,
        sep,
        path,
        b": ",
        strerror(errno),
        b" (errno ",
        &digits[at..],
        b")\n",
    ]);
    1
}

/// A short description of the errnos this program is likely to meet.
fn strerror(errno: i32) -> &'static [u8] {
    match errno {
        1 => b"Operation not permitted",
        2 => b"No such file or directory",
        9 => b"Bad file descriptor",
        12 => b"Cannot allocate memory",
        13 => b"Permission denied",
        21 => b"Is a directory",
        22 => b"Invalid argument",
        28 => b"No space left on device",
        32 => b"Broken pipe",
        38 => b"Function not implemented",
        _ => b"error",
    }
}

/// The length of a NUL-terminated string, with `repne scasb` (a plain loop could be recognized
/// as `strlen`, which nothing here defines).
///
/// # Safety
///
/// `s` points at a readable, NUL-terminated string.
unsafe fn strlen(s: *const u8) -> usize {
    let left: usize;
    // SAFETY: scans forward from `s` up to and including its NUL (this fn's contract); reads
    // memory only, and the direction flag is clear on entry to asm (Rust ABI).
    unsafe {
        asm!(
            "repne scasb",
            inout("rdi") s => _,
            inout("rcx") usize::MAX => left,
            in("al") 0u8,
            options(nostack, readonly),
        );
    }
    // rcx started at -1 and dropped once per byte scanned, the NUL included.
    !left - 1
}

/// Writes the concatenation of `parts` to stderr with one raw `writev(2)` (best effort: a short
/// or failed write of a diagnostic is ignored). Not through the ring, so it also reports a ring
/// that cannot be set up.
fn stderr(parts: &[&[u8]]) {
    /// `struct iovec`.
    #[repr(C)]
    struct Iov {
        base: *const u8,
        len: usize,
    }
    let mut iov = [const {
        Iov {
            base: core::ptr::null(),
            len: 0,
        }
    }; 9];
    let n = parts.len().min(iov.len());
    for (slot, part) in iov.iter_mut().zip(parts) {
        *slot = Iov {
            base: part.as_ptr(),
            len: part.len(),
        };
    }
    // SAFETY: writev(2) (syscall 20) only reads the `n` iovecs and the slices they describe, all
    // borrowed for this call; `syscall` clobbers rcx and r11 only.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") 20usize => _,
            in("rdi") STDERR,
            in("rsi") iov.as_ptr(),
            in("rdx") n,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
}

/// `exit_group(code)`: ends the process.
fn exit(code: i32) -> ! {
    // SAFETY: exit_group (syscall 231) takes one integer and never returns.
    unsafe {
        asm!("syscall", in("rax") 231usize, in("rdi") code, options(noreturn, nostack));
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // No formatting of the panic message: `core::fmt` would dwarf the rest of the binary.
    stderr(&[b"nostd-cat: panicked\n"]);
    exit(101)
}

/// The unwinding personality routine, never called: everything here is built with
/// `panic = "abort"`, but the prebuilt `alloc` / `core` rlibs were compiled with unwinding and
/// still name it from their unwind tables. Release builds (LTO) drop those references; without
/// LTO (the dev profile) the link needs this definition.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// The read buffer, in .bss. Only ever touched through the ring, one request at a time.
struct Buffer(UnsafeCell<[u8; BUF_LEN]>);

// SAFETY: the program is single-threaded, and the buffer is only accessed by the kernel on behalf
// of one request at a time (see `copy`).
unsafe impl Sync for Buffer {}

/// See [`Buffer`].
static BUF: Buffer = Buffer(UnsafeCell::new([0; BUF_LEN]));

/// A bump allocator over a static arena: aura-core allocates a few small, ring-lifetime objects
/// (a boxed timespec, the ring's bookkeeping), so memory is never given back.
#[repr(C, align(16))]
struct Bump {
    arena: UnsafeCell<[u8; HEAP_LEN]>,
    /// Offset of the first free byte of `arena`.
    next: AtomicUsize,
}

// SAFETY: `next` is advanced with compare-exchange, so every allocation gets a disjoint range of
// the arena; the arena itself is only reached through the pointers handed out.
unsafe impl Sync for Bump {}

// SAFETY: `alloc` returns null or a range of `layout.size()` bytes aligned to `layout.align()`,
// inside the arena and disjoint from every other live allocation (ranges are never reused).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.arena.get().cast::<u8>();
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            // Align the address, not the offset, so alignments above the arena's own also hold.
            let addr = base as usize + next;
            let start = (addr + layout.align() - 1) & !(layout.align() - 1);
            let start = start - base as usize;
            let end = match start.checked_add(layout.size()) {
                Some(end) if end <= HEAP_LEN => end,
                _ => return core::ptr::null_mut(),
            };
            match self
                .next
                .compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // SAFETY: `start <= end <= HEAP_LEN`, so the pointer stays inside the arena.
                Ok(_) => return unsafe { base.add(start) },
                Err(now) => next = now,
            }
        }
    }

    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[global_allocator]
static HEAP: Bump = Bump {
    arena: UnsafeCell::new([0; HEAP_LEN]),
    next: AtomicUsize::new(0),
};

/// `memcpy`: copies `n` bytes forward with `rep movsb`.
///
/// # Safety
///
/// `src` is readable and `dst` writable for `n` bytes, and the two do not overlap.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the ranges are valid (this fn's contract); the direction flag is clear on entry to
    // asm (Rust ABI), so the copy runs forward.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    dst
}

/// `memmove`: copies `n` bytes between possibly overlapping ranges.
///
/// # Safety
///
/// `src` is readable and `dst` writable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // `dst` starts before `src` or past its end: a forward copy never reads a byte it already
        // overwrote.
        // SAFETY: the ranges are valid (this fn's contract); forward order is safe (above).
        unsafe {
            asm!(
                "rep movsb",
                inout("rcx") n => _,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                options(nostack, preserves_flags),
            );
        }
    } else {
        // `dst` starts inside `src` (so n > 0): copy backward, from the last byte down, with the
        // direction flag set for the copy only.
        // SAFETY: the ranges are valid (this fn's contract), the start pointers are their last
        // bytes, and `cld` restores the clear direction flag the Rust ABI requires.
        unsafe {
            asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rcx") n => _,
                inout("rdi") dst.add(n - 1) => _,
                inout("rsi") src.add(n - 1) => _,
                options(nostack),
            );
        }
    }
    dst
}

/// `memset`: fills `n` bytes with the low byte of `c`, with `rep stosb`.
///
/// # Safety
///
/// `dst` is writable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the range is valid (this fn's contract); the direction flag is clear on entry to asm.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dst
}

/// `memcmp`: compares `n` bytes as unsigned bytes, with `repe cmpsb`.
///
/// # Safety
///
/// `a` and `b` are readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    let (pa, pb): (*const u8, *const u8);
    let equal: u8;
    // SAFETY: the ranges are valid (this fn's contract); the scan stops at the first difference
    // or after `n` bytes, and the direction flag is clear on entry to asm.
    unsafe {
        asm!(
            "repe cmpsb",
            "sete {equal}",
            equal = out(reg_byte) equal,
            inout("rcx") n => _,
            inout("rsi") a => pa,
            inout("rdi") b => pb,
            options(nostack, readonly),
        );
    }
    if equal != 0 {
        return 0;
    }
    // SAFETY: `cmpsb` advanced both pointers one past the differing byte, which lies in range.
    unsafe { i32::from(pa.sub(1).read()) - i32::from(pb.sub(1).read()) }
}

/// `bcmp`: zero when `n` bytes are equal, non-zero otherwise.
///
/// # Safety
///
/// `a` and `b` are readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}
