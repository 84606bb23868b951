//! Fuzz entry point: arbitrary sequences of C API calls with arbitrary arguments on a live
//! engine over a temporary file (`fuzz/fuzz_targets/capi_bad_input.rs`, replayed on stable by
//! `aura-capi/tests/fuzz_replay.rs`).
//!
//! The arguments are hostile where the C contract lets them be (NULL, negative, zero, huge,
//! unknown flags, bad indexes, struct sizes, reserved fields, double registration, calls from
//! callbacks) and honest where it does not (memory passed to the kernel is the harness's own and
//! at least as long as the length the library could accept). Every call must return its
//! documented error, nothing may crash or hang, and every accepted request must get exactly one
//! callback.

use std::cell::Cell;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_void};
use std::ptr::{null, null_mut};

use aura_std::IoVec;

use crate::buffers::*;
use crate::config::*;
use crate::events::*;
use crate::ffi::errno;
use crate::io::*;
use crate::lifecycle::*;
use crate::log::aura_set_log_handler;
use crate::log::{aura_version, aura_version_int};
use crate::request::*;
use crate::stats::*;
use crate::types::*;

/// Bytes of the harness's I/O arena (the most a read or write may touch).
const ARENA: usize = 64 * 1024;
/// Calls per input, and submissions per input (callbacks included).
const MAX_STEPS: usize = 200;
const MAX_SUBMITS: u32 = 400;

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.u8() as usize % xs.len()]
    }
    /// An int from a menu of edge cases, or a small value.
    fn int(&mut self) -> c_int {
        match self.u8() % 8 {
            0 => 0,
            1 => -1,
            2 => c_int::MAX,
            3 => c_int::MIN,
            4 => 1,
            _ => (self.u32() % 64) as c_int,
        }
    }
}

/// What the harness owns; callbacks reach it through their user data (one thread only).
struct Harness {
    engine: Cell<*mut CEngine>,
    arena: *mut u8,
    fd: c_int,
    submitted: Cell<u32>,
    completed: Cell<u32>,
    actions: Vec<u8>,
    next_action: Cell<usize>,
    opened: std::cell::RefCell<Vec<c_int>>,
}

impl Harness {
    fn action(&self) -> u8 {
        let i = self.next_action.get();
        self.next_action.set(i + 1);
        self.actions.get(i).copied().unwrap_or(0)
    }

    /// Counts an accepted request that will call back.
    fn count(&self, r: *mut Slot, cb: AuraCallback) -> *mut Slot {
        if !r.is_null() && cb.is_some() {
            self.submitted.set(self.submitted.get() + 1);
        }
        r
    }
}

/// The callback every fuzzed request uses: counts, then does what the next action byte says.
unsafe extern "C" fn on_done(req: *mut Slot, result: isize, ud: *mut c_void) {
    // SAFETY: every fuzzed request's user data is the live harness.
    let h = unsafe { &*(ud as *const Harness) };
    h.completed.set(h.completed.get() + 1);
    let e = h.engine.get();
    // SAFETY: inside a callback `req` is valid and the engine is alive; every call below is
    // allowed in callbacks (or refused with an error).
    unsafe {
        assert!(aura_in_callback_context());
        assert!(
            !aura_request_pending(req),
            "pending inside its own callback"
        );
        assert_eq!(aura_request_user_data(req), ud);
        if aura_request_op_type(req) == 9 && result >= 0 {
            h.opened.borrow_mut().push(result as c_int);
        }
        match h.action() % 10 {
            1 => {
                let r = aura_cancel(e, req);
                assert!(r == -1 && errno() == crate::error::EALREADY);
            }
            2 if h.submitted.get() < MAX_SUBMITS => {
                let b = AuraBuf {
                    kind: AURA_BUF_UNREGISTERED,
                    u: AuraBufU {
                        ptr: h.arena.cast(),
                    },
                };
                h.count(
                    aura_read(e, h.fd, b, 512, 0, 0, Some(on_done), ud),
                    Some(on_done),
                );
            }
            3 => {
                let _ = aura_request_unregister(e, c_int::from(h.action() % 3));
            }
            4 => {
                let _ = aura_unregister(e, c_int::from(h.action() % 3));
            }
            5 => {
                assert_eq!(aura_wait(e, 0), -1);
                assert_eq!(errno(), crate::error::EDEADLK);
                assert_eq!(aura_poll(e), -1);
                assert_eq!(aura_drain(e, 0), -1);
            }
            6 => aura_destroy(e), // refused inside a callback
            7 => aura_stop(e),
            8 => {
                let p = aura_buffer_alloc(e, 100);
                aura_buffer_free(e, p);
            }
            _ => {
                let _ = aura_request_fd(req);
                let _ = aura_request_is_linked(req);
            }
        }
    }
}

fn temp_file() -> std::fs::File {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("aura-capi-fuzz-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temp file");
    let _ = std::fs::remove_file(&path);
    f.set_len(ARENA as u64).expect("temp file size");
    f
}

/// Runs one fuzz input: an engine (options from the input), up to `MAX_STEPS` calls, then
/// the engine is destroyed and every accepted request must have had its callback exactly once.
pub fn bad_input_sequence(data: &[u8]) {
    let mut inp = Input { data, pos: 0 };
    let file = temp_file();
    let extra_fd = file.try_clone().expect("dup");
    let mut arena = vec![0u8; ARENA];
    let mut iovs = [IoVec {
        base: null_mut(),
        len: 0,
    }; 4];
    for (i, v) in iovs.iter_mut().enumerate() {
        // SAFETY: four 16 KiB quarters of the arena.
        v.base = unsafe { arena.as_mut_ptr().add(i * ARENA / 4) };
        v.len = ARENA / 4;
    }
    let mut statx_out = [0u64; 32];
    let path = CString::new("/proc/self/status").expect("path");
    let actions: Vec<u8> = data.iter().rev().copied().collect();
    let h = Box::new(Harness {
        engine: Cell::new(null_mut()),
        arena: arena.as_mut_ptr(),
        fd: file.as_raw_fd(),
        submitted: Cell::new(0),
        completed: Cell::new(0),
        actions,
        next_action: Cell::new(0),
        opened: std::cell::RefCell::new(Vec::new()),
    });
    let ud = std::ptr::from_ref::<Harness>(&h)
        .cast_mut()
        .cast::<c_void>();

    // The engine: options with fuzzed fields, kept small so an input runs fast.
    let mut o = default_options();
    if inp.u8() % 2 == 1 {
        o.struct_size = inp.pick(&[0usize, 4, 8, 16, 60, 87, 88, 89, usize::MAX]);
        o.queue_depth = inp.pick(&[0, 3, 4, 16, 64, 32769, -1]);
        o.ring_count = inp.pick(&[1, 2, -1, 1025]);
        o.initial_in_flight = inp.pick(&[0, 1, 4, 16, 100_000]);
        o.min_in_flight = inp.pick(&[0, 1, 4, -3, 70_000]);
        o.max_p99_latency_ms = inp.pick(&[0.0, 1.5, -1.0, f64::NAN, f64::INFINITY]);
        o.buffer_alignment = inp.pick(&[0usize, 3, 8, 4096, 1 << 31]);
        o.disable_adaptive = inp.u8() % 2;
        o.ring_select = inp.pick(&[0, 1, 2, 3, 4, -1]);
        o.single_thread = inp.u8() % 2;
        o.batch_threshold = inp.pick(&[-1, 0, 1, 8, -2]);
        o.reserved[inp.u8() as usize % 6] = u32::from(inp.u8() % 2);
    } else {
        o.queue_depth = 64;
        o.ring_count = 2;
    }
    // SAFETY: `o` is a whole 88-byte aura_options_t; an invalid struct_size is refused before
    // anything past the size field is read.
    let e = unsafe { aura_create_with_options(&o) };
    let e = if e.is_null() {
        assert_eq!(errno(), crate::error::EINVAL, "create failed: {o:?}");
        let mut small = default_options();
        small.queue_depth = 64;
        small.ring_count = 1;
        // SAFETY: as above.
        unsafe { aura_create_with_options(&small) }
    } else {
        e
    };
    assert!(!e.is_null(), "engine creation failed: errno {}", errno());
    h.engine.set(e);

    let mut handles: Vec<*mut Slot> = Vec::new();
    let mut buffers: Vec<*mut c_void> = Vec::new();
    let fds = [h.fd, -1, c_int::MAX, 100_000, -100];
    for _ in 0..MAX_STEPS {
        if inp.done() || h.submitted.get() >= MAX_SUBMITS {
            break;
        }
        let target = if inp.u8() % 16 == 0 { null_mut() } else { e };
        let fd = inp.pick(&fds);
        let flags = inp.pick(&[0u32, 0, 1, 2, 0x8000_0000]);
        let cb = if inp.u8() % 8 == 0 {
            None
        } else {
            Some(on_done as unsafe extern "C" fn(*mut Slot, isize, *mut c_void))
        };
        let len = inp.pick(&[
            0usize,
            1,
            512,
            4096,
            ARENA,
            u32::MAX as usize + 1,
            usize::MAX,
        ]);
        let off = inp.pick(&[0i64, 4096, -1, i64::MAX, 1 << 20]);
        // SAFETY: every pointer handed over is NULL, the harness's own memory (alive until after
        // aura_destroy) or a live handle; lengths above the arena are ones the library must
        // refuse (0, > UINT_MAX) — checked below via the handle being NULL.
        unsafe {
            match inp.u8() % 24 {
                0 | 1 => {
                    let kind = inp.pick(&[AURA_BUF_UNREGISTERED, AURA_BUF_REGISTERED, 7]);
                    let u = if kind == AURA_BUF_REGISTERED {
                        AuraBufU {
                            fixed: AuraBufFixed {
                                index: inp.int(),
                                offset: inp.pick(&[0usize, 100, ARENA / 4, usize::MAX]),
                            },
                        }
                    } else {
                        AuraBufU {
                            ptr: if inp.u8() % 8 == 0 {
                                null_mut()
                            } else {
                                h.arena.cast()
                            },
                        }
                    };
                    let b = AuraBuf { kind, u };
                    let write = inp.u8() % 2 == 1;
                    let r = if write {
                        aura_write(target, fd, b, len, off, flags, cb, ud)
                    } else {
                        aura_read(target, fd, b, len, off, flags, cb, ud)
                    };
                    if !r.is_null() {
                        assert!((1..=ARENA).contains(&len), "accepted len {len}");
                        handles.push(h.count(r, cb));
                    }
                }
                2 => {
                    let cnt = inp.pick(&[0, 1, 4, -1, 1024, 1025]);
                    let p = if cnt > 4 || inp.u8() % 8 == 0 {
                        null()
                    } else {
                        iovs.as_ptr()
                    };
                    let write = inp.u8() % 2 == 1;
                    let r = if write {
                        aura_writev(target, fd, p, cnt, off, flags, cb, ud)
                    } else {
                        aura_readv(target, fd, p, cnt, off, flags, cb, ud)
                    };
                    if !r.is_null() {
                        assert!((1..=4).contains(&cnt));
                        handles.push(h.count(r, cb));
                    }
                }
                3 => {
                    let ff = inp.pick(&[0u32, 1, 2]);
                    handles.push(h.count(aura_fsync(target, fd, ff, flags, cb, ud), cb));
                }
                4 => {
                    let p = if inp.u8() % 4 == 0 {
                        null()
                    } else {
                        path.as_ptr()
                    };
                    handles.push(h.count(aura_openat(target, -100, p, 0, 0, flags, cb, ud), cb));
                }
                5 => {
                    // Close only what the harness owns: a dup of the file, or invalid fds.
                    let cfd = inp.pick(&[extra_fd.as_raw_fd(), -1, c_int::MAX]);
                    // The dup stays open for the file's lifetime unless this succeeds, which
                    // closes a descriptor the harness then never uses again.
                    if cfd == extra_fd.as_raw_fd() {
                        continue;
                    }
                    handles.push(h.count(aura_close(target, cfd, flags, cb, ud), cb));
                }
                6 => {
                    let out = if inp.u8() % 4 == 0 {
                        null_mut()
                    } else {
                        statx_out.as_mut_ptr().cast::<c_void>()
                    };
                    let p = if inp.u8() % 4 == 0 {
                        null()
                    } else {
                        path.as_ptr()
                    };
                    handles.push(h.count(
                        aura_statx(target, -100, p, 0, 0xfff, out, flags, cb, ud),
                        cb,
                    ));
                }
                7 => {
                    let l = inp.pick(&[0i64, -1, 4096, 65536]);
                    handles.push(h.count(
                        aura_fallocate(target, fd, inp.int(), off.min(65536), l, flags, cb, ud),
                        cb,
                    ));
                }
                8 => {
                    let l = inp.pick(&[-1i64, 0, ARENA as i64]);
                    handles.push(h.count(aura_ftruncate(target, fd, l, flags, cb, ud), cb));
                }
                9 => {
                    let n = inp.pick(&[0i64, -1, 4096, u32::MAX as i64 + 1]);
                    let rf = inp.pick(&[0u32, 2, 7, 8]);
                    handles.push(h.count(
                        aura_sync_file_range(target, fd, off, n, rf, flags, cb, ud),
                        cb,
                    ));
                }
                10 => {
                    let req = if handles.is_empty() || inp.u8() % 8 == 0 {
                        null_mut()
                    } else {
                        handles[inp.u8() as usize % handles.len()]
                    };
                    let _ = aura_cancel(target, req);
                    let _ = aura_request_pending(req);
                    let _ = aura_request_fd(req);
                    let _ = aura_request_op_type(req);
                    let _ = aura_request_set_linked(req);
                }
                11 => {
                    let _ = aura_poll(target);
                }
                12 => {
                    let _ = aura_wait(target, inp.pick(&[0, 1, 5]));
                }
                13 => {
                    let _ = aura_drain(target, inp.pick(&[0, 1, 20]));
                    let _ = aura_flush(target);
                }
                14 => {
                    let size = inp.pick(&[0usize, 1, 4096, (128 << 20) + 1, usize::MAX]);
                    let p = aura_buffer_alloc(target, size);
                    if !p.is_null() {
                        buffers.push(p);
                    }
                }
                15 => {
                    let p = match inp.u8() % 3 {
                        0 => null_mut(),
                        1 => h.arena.cast(), // not the pool's: left alone
                        _ => buffers.pop().unwrap_or(null_mut()),
                    };
                    aura_buffer_free(target, p);
                }
                16 => {
                    let n = inp.pick(&[0u32, 1, 4, 70_000]);
                    let p = if n > 4 || inp.u8() % 8 == 0 {
                        null()
                    } else {
                        iovs.as_ptr()
                    };
                    let _ = aura_register_buffers(target, p, n);
                }
                17 => {
                    let table = [h.fd, -1, extra_fd.as_raw_fd()];
                    let n = inp.pick(&[0u32, 1, 3]);
                    let _ = aura_register_files(target, table.as_ptr(), n);
                    let _ = aura_update_file(target, inp.int(), inp.pick(&[h.fd, -1, -2]));
                }
                18 => {
                    let kind = inp.pick(&[0, 1, 2, -1]);
                    let _ = if inp.u8() % 2 == 0 {
                        aura_unregister(target, kind)
                    } else {
                        aura_request_unregister(target, kind)
                    };
                }
                19 => {
                    let size = inp.pick(&[0usize, 1, 8, 40, 72, 1352, 4096]);
                    let mut big = vec![0u8; 4096];
                    let ring = inp.int();
                    let _ = aura_get_stats(target, big.as_mut_ptr().cast(), size);
                    let _ = aura_get_ring_stats(target, ring, big.as_mut_ptr().cast(), size);
                    let _ = aura_get_histogram(target, ring, big.as_mut_ptr().cast(), size);
                    let _ = aura_get_buffer_stats(target, big.as_mut_ptr().cast(), size);
                    let pct = f64::from(inp.int()) / 3.0;
                    let _ = aura_histogram_percentile(big.as_ptr().cast(), pct);
                    let _ = aura_histogram_bucket_upper_bound_us(big.as_ptr().cast(), ring);
                    let _ = aura_phase_name(ring);
                    let _ = aura_pending_count(target);
                    let _ = aura_get_ring_count(target);
                    let _ = aura_get_fatal_error(target);
                    let _ = aura_get_poll_fd(target);
                }
                20 => {
                    let _ = aura_set_max_p99_latency(target, f64::from(inp.int()) / 7.0);
                    let _ = aura_set_min_in_flight(target, inp.int());
                    let _ = aura_set_batch_threshold(target, inp.int());
                }
                21 => {
                    let size = inp.pick(&[0usize, 1, 100, 64 * 1024]);
                    let mut out = vec![0u8; size];
                    let p = if size == 0 && inp.u8() % 2 == 0 {
                        null_mut()
                    } else {
                        out.as_mut_ptr().cast()
                    };
                    let r = aura_metrics_prometheus(target, p, size);
                    if r >= 0 {
                        assert!((r as usize) < size && out[r as usize] == 0);
                    }
                }
                22 => {
                    aura_set_log_handler(None, null_mut());
                    let _ = (aura_version(), aura_version_int());
                }
                _ => {
                    // Must fail before touching anything: NULL engine everywhere.
                    assert!(aura_read(
                        null_mut(),
                        h.fd,
                        AuraBuf {
                            kind: 0,
                            u: AuraBufU {
                                ptr: h.arena.cast()
                            }
                        },
                        1,
                        0,
                        0,
                        None,
                        null_mut()
                    )
                    .is_null());
                    aura_destroy(null_mut());
                    aura_stop(null_mut());
                    aura_run(null_mut());
                }
            }
        }
        if !target.is_null() {
            // Stale handles beyond the last 64 are dropped (their slots may be reused).
            if handles.len() > 64 {
                handles.drain(..32);
            }
        }
    }
    handles.retain(|p| !p.is_null());

    // SAFETY: the engine is alive; destroy drains every request (callbacks run) before
    // freeing anything, and nothing uses the engine afterwards.
    unsafe {
        for p in buffers {
            aura_buffer_free(e, p);
        }
        aura_destroy(e);
    }
    assert_eq!(
        h.submitted.get(),
        h.completed.get(),
        "every accepted request completes exactly once"
    );
    for fd in h.opened.borrow().iter() {
        // SAFETY: fds the engine's openat returned to this harness; closed once.
        drop(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(*fd) });
    }
    drop(h);
    drop(arena);
}
