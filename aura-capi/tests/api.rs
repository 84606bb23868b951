//! The C API driven from Rust exactly as C calls it: results, errnos and callbacks.

use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_void};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

use aura::buffers::*;
use aura::config::*;
use aura::events::*;
use aura::io::*;
use aura::lifecycle::*;
use aura::request::*;
use aura::stats::*;
use aura::types::*;
use aura::Slot;

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

fn buf(p: *mut u8) -> AuraBuf {
    AuraBuf {
        kind: AURA_BUF_UNREGISTERED,
        u: AuraBufU { ptr: p.cast() },
    }
}

fn fixed(index: c_int, offset: usize) -> AuraBuf {
    AuraBuf {
        kind: AURA_BUF_REGISTERED,
        u: AuraBufU {
            fixed: AuraBufFixed { index, offset },
        },
    }
}

/// Records results: user data points at one of these.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    last: std::sync::atomic::AtomicIsize,
}

unsafe extern "C" fn record(_req: *mut Slot, result: isize, ud: *mut c_void) {
    // SAFETY: every test passes a live `Seen` as user data.
    let s = unsafe { &*(ud as *const Seen) };
    s.last.store(result, Ordering::SeqCst);
    s.calls.fetch_add(1, Ordering::SeqCst);
}

fn file_with(bytes: &[u8]) -> std::fs::File {
    // Unique per call: tests run in parallel threads of one process.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "aura-capi-api-{}-{n}-{}",
        std::process::id(),
        bytes.len()
    ));
    std::fs::write(&path, bytes).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

fn small_engine() -> *mut CEngine {
    let mut o = AuraOptions {
        struct_size: 0,
        queue_depth: 0,
        ring_count: 0,
        initial_in_flight: 0,
        min_in_flight: 0,
        max_p99_latency_ms: 0.0,
        buffer_alignment: 0,
        disable_adaptive: 0,
        enable_sqpoll: 0,
        sqpoll_idle_ms: 0,
        ring_select: 0,
        single_thread: 0,
        batch_threshold: 0,
        reserved: [0; 6],
    };
    // SAFETY: a whole aura_options_t.
    unsafe { aura_options_init(&mut o) };
    o.queue_depth = 32;
    o.ring_count = 2;
    // SAFETY: as above.
    let e = unsafe { aura_create_with_options(&o) };
    assert!(!e.is_null(), "create: errno {}", errno());
    e
}

#[test]
fn read_write_and_every_bad_argument() {
    let data: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
    let f = file_with(&data);
    let fd = f.as_raw_fd();
    let e = small_engine();
    let seen = Seen::default();
    let ud = std::ptr::from_ref(&seen).cast_mut().cast::<c_void>();
    let mut out = vec![0u8; 4096];
    // SAFETY: `out` and `seen` outlive the request (waited for below); the engine is live.
    unsafe {
        let r = aura_read(
            e,
            fd,
            buf(out.as_mut_ptr()),
            4096,
            4096,
            0,
            Some(record),
            ud,
        );
        assert!(!r.is_null());
        assert_eq!(aura_request_fd(r), fd);
        assert_eq!(aura_request_op_type(r), 0);
        assert_eq!(aura_request_user_data(r), ud);
        assert!(!aura_request_is_linked(r));
        while seen.calls.load(Ordering::SeqCst) == 0 {
            assert!(aura_wait(e, 1000) >= 0);
        }
        assert_eq!(seen.last.load(Ordering::SeqCst), 4096);
        assert_eq!(&out[..], &data[4096..]);
        // Finished: cancel says EALREADY, pending is false.
        assert_eq!(aura_cancel(e, r), -1);
        assert_eq!(errno(), aura::error::EALREADY);

        let p = out.as_mut_ptr();
        let bad: [(*mut CEngine, c_int, AuraBuf, usize, i64, u32); 8] = [
            (null_mut(), fd, buf(p), 1, 0, 0),
            (e, -1, buf(p), 1, 0, 0),
            (e, fd, buf(p), 0, 0, 0),
            (e, fd, buf(p), u32::MAX as usize + 1, 0, 0),
            (e, fd, buf(null_mut()), 1, 0, 0),
            (e, fd, buf(p), 1, -1, 0),
            (e, fd, buf(p), 1, 0, 0x10),
            (e, fd, AuraBuf { kind: 5, ..buf(p) }, 1, 0, 0),
        ];
        for (i, (en, f, b, l, o, fl)) in bad.into_iter().enumerate() {
            assert!(
                aura_read(en, f, b, l, o, fl, Some(record), ud).is_null(),
                "case {i}"
            );
            assert_eq!(errno(), aura::error::EINVAL, "case {i}");
        }
        // Registered buffer, none registered: ENOENT; AURA_FIXED_FILE, none: ENOENT.
        assert!(aura_read(e, fd, fixed(0, 0), 1, 0, 0, None, null_mut()).is_null());
        assert_eq!(errno(), aura::error::ENOENT);
        assert!(aura_read(e, 0, buf(p), 1, 0, AURA_FIXED_FILE, None, null_mut()).is_null());
        assert_eq!(errno(), aura::error::ENOENT);
        // iovcnt 0 and > IOV_MAX.
        let iov = [aura_std::IoVec { base: p, len: 16 }];
        assert!(aura_readv(e, fd, iov.as_ptr(), 0, 0, 0, None, null_mut()).is_null());
        assert_eq!(errno(), aura::error::EINVAL);
        assert!(aura_readv(e, fd, iov.as_ptr(), 1025, 0, 0, None, null_mut()).is_null());
        assert_eq!(errno(), aura::error::EINVAL);
        // Metadata ops refuse flags.
        assert!(aura_close(e, fd, 1, None, null_mut()).is_null());
        assert_eq!(errno(), aura::error::EINVAL);
        assert!(aura_fsync(e, fd, 2, 0, None, null_mut()).is_null());
        assert_eq!(errno(), aura::error::EINVAL);
        assert_eq!(aura_pending_count(e), 0);
        aura_destroy(e);
    }
}

unsafe extern "C" fn unregister_inside(_req: *mut Slot, result: isize, ud: *mut c_void) {
    assert!(result >= 0);
    let e = ud.cast::<CEngine>();
    // SAFETY: the engine is live while its callbacks run.
    unsafe {
        // Becomes the deferred form inside a callback.
        assert_eq!(aura_unregister(e, AURA_REG_BUFFERS), 0);
        assert!(aura_in_callback_context());
        assert_eq!(aura_wait(e, 0), -1);
        assert_eq!(errno(), aura::error::EDEADLK);
    }
}

#[test]
fn registered_buffers_double_registration_and_deferred_unregister() {
    let f = file_with(&[7u8; 8192]);
    let fd = f.as_raw_fd();
    let e = small_engine();
    // SAFETY: the engine is live; the pool buffer stays allocated while registered.
    unsafe {
        let mem = aura_buffer_alloc(e, 8192).cast::<u8>();
        assert!(!mem.is_null());
        let iov = [aura_std::IoVec {
            base: mem,
            len: 8192,
        }];
        assert_eq!(aura_register_buffers(e, iov.as_ptr(), 1), 0);
        assert_eq!(aura_register_buffers(e, iov.as_ptr(), 1), -1);
        assert_eq!(errno(), aura::error::EBUSY);
        // Beyond the registered buffer: EOVERFLOW; unknown index: ENOENT.
        assert!(aura_read(e, fd, fixed(0, 8000), 4096, 0, 0, None, null_mut()).is_null());
        assert_eq!(errno(), aura::error::EOVERFLOW);
        assert!(aura_read(e, fd, fixed(3, 0), 16, 0, 0, None, null_mut()).is_null());
        assert_eq!(errno(), aura::error::ENOENT);
        let r = aura_read(
            e,
            fd,
            fixed(0, 4096),
            4096,
            0,
            0,
            Some(unregister_inside),
            e.cast(),
        );
        assert!(!r.is_null(), "errno {}", errno());
        assert_eq!(aura_request_op_type(r), 7);
        assert!(aura_drain(e, 5000) >= 1);
        // The deferred unregister finished after the callback: fixed reads now find nothing.
        assert!(aura_read(e, fd, fixed(0, 0), 16, 0, 0, None, null_mut()).is_null());
        assert_eq!(errno(), aura::error::ENOENT);
        assert_eq!(*mem.add(4096), 7);
        assert_eq!(aura_unregister(e, AURA_REG_BUFFERS), -1);
        assert_eq!(errno(), aura::error::ENOENT);
        // Files: register, update, bad index, fixed-file read by index.
        let fds = [fd, -1];
        assert_eq!(aura_register_files(e, fds.as_ptr(), 2), 0);
        assert_eq!(aura_register_files(e, fds.as_ptr(), 2), -1);
        assert_eq!(errno(), aura::error::EBUSY);
        assert_eq!(aura_update_file(e, 5, fd), -1);
        assert_eq!(errno(), aura::error::EINVAL);
        assert_eq!(aura_update_file(e, 1, fd), 0);
        let seen = Seen::default();
        let ud = std::ptr::from_ref(&seen).cast_mut().cast::<c_void>();
        let r = aura_read(e, 1, buf(mem), 100, 0, AURA_FIXED_FILE, Some(record), ud);
        assert!(!r.is_null(), "errno {}", errno());
        assert!(aura_drain(e, 5000) >= 1);
        assert_eq!(seen.last.load(Ordering::SeqCst), 100);
        assert_eq!(aura_unregister(e, AURA_REG_FILES), 0);
        aura_buffer_free(e, mem.cast());
        aura_buffer_free(e, 0x1000 as *mut c_void); // unknown: left alone
        aura_buffer_free(e, null_mut());
        assert!(aura_buffer_alloc(e, 0).is_null());
        assert_eq!(errno(), aura::error::EINVAL);
        assert!(aura_buffer_alloc(e, (128 << 20) + 1).is_null());
        aura_destroy(e);
    }
}

#[test]
fn destroy_with_io_in_flight_runs_every_callback_first() {
    let f = file_with(&[1u8; 65536]);
    let e = small_engine();
    let seen = Seen::default();
    let ud = std::ptr::from_ref(&seen).cast_mut().cast::<c_void>();
    let mut bufs = vec![vec![0u8; 4096]; 16];
    // SAFETY: buffers and `seen` outlive the engine (destroy drains before returning).
    unsafe {
        for (i, b) in bufs.iter_mut().enumerate() {
            let r = aura_read(
                e,
                f.as_raw_fd(),
                buf(b.as_mut_ptr()),
                4096,
                (i * 4096) as i64,
                0,
                Some(record),
                ud,
            );
            assert!(!r.is_null());
        }
        aura_destroy(e);
    }
    assert_eq!(seen.calls.load(Ordering::SeqCst), 16);
    assert!(bufs.iter().all(|b| b.iter().all(|&x| x == 1)));
}

#[test]
fn stats_histogram_and_prometheus() {
    let e = small_engine();
    // SAFETY: the engine is live; every out-pointer is a whole local struct.
    unsafe {
        let mut s = AuraStats::default();
        assert_eq!(
            aura_get_stats(e, &mut s, std::mem::size_of::<AuraStats>()),
            0
        );
        assert_eq!(aura_get_stats(e, &mut s, 0), -1);
        assert_eq!(aura_get_stats(null(), &mut s, 72), -1);
        assert_eq!(aura_get_ring_count(e), 2);
        let mut r = AuraRingStats {
            ops_completed: 9,
            ..AuraRingStats::default()
        };
        assert_eq!(aura_get_ring_stats(e, 0, &mut r, 72), 0);
        assert_eq!(r.queue_depth, 32);
        r.ops_completed = 9;
        assert_eq!(aura_get_ring_stats(e, 2, &mut r, 72), -1);
        assert_eq!(r.ops_completed, 0, "zeroed on a bad index");
        let mut h = std::mem::zeroed::<AuraHistogram>();
        assert_eq!(aura_get_histogram(e, 1, &mut h, 1352), 0);
        assert_eq!(h.tier_count, 4);
        assert_eq!(h.max_tracked_us, 100_000);
        assert_eq!(aura_histogram_percentile(&h, 99.0), -1.0);
        let mut b = AuraBufferStats::default();
        assert_eq!(aura_get_buffer_stats(e, &mut b, 40), 0);
        assert!(b.shard_count >= 1);
        let need = aura_metrics_prometheus(e, null_mut(), 0);
        assert!(need < 0);
        assert_eq!(errno(), aura::error::ENOBUFS);
        let mut text = vec![0u8; (-need) as usize];
        let n = aura_metrics_prometheus(e, text.as_mut_ptr().cast(), text.len());
        assert_eq!(n, -need - 1);
        let s = std::str::from_utf8(&text[..n as usize]).unwrap();
        assert!(s.contains("aura_ring_queue_depth{ring=\"1\"} 32"), "{s}");
        assert_eq!(aura_set_min_in_flight(e, 0), -1);
        assert_eq!(aura_set_min_in_flight(e, 8), 0);
        assert_eq!(aura_set_batch_threshold(e, -2), -1);
        assert_eq!(aura_set_max_p99_latency(e, -1.0), -1);
        assert_eq!(aura_set_max_p99_latency(e, 2.5), 0);
        assert_eq!(aura_get_fatal_error(e), 0);
        assert_eq!(aura_get_fatal_error(null()), -1);
        assert!(!aura_in_callback_context());
        let name = std::ffi::CStr::from_ptr(aura_phase_name(6));
        assert_eq!(name.to_str().unwrap(), "PASSTHROUGH");
        let name = std::ffi::CStr::from_ptr(aura_phase_name(99));
        assert_eq!(name.to_str().unwrap(), "UNKNOWN");
        aura_destroy(e);
    }
}

#[test]
fn bad_options_are_einval() {
    let mut o = small_engine_options();
    o.struct_size = 0;
    // SAFETY: a whole aura_options_t.
    assert!(unsafe { aura_create_with_options(&o) }.is_null());
    assert_eq!(errno(), aura::error::EINVAL);
    o.struct_size = 88;
    o.reserved[2] = 1;
    // SAFETY: as above.
    assert!(unsafe { aura_create_with_options(&o) }.is_null());
    assert_eq!(errno(), aura::error::EINVAL);
}

fn small_engine_options() -> AuraOptions {
    // SAFETY: all-zero is a valid aura_options_t bit pattern; init fills it.
    let mut o: AuraOptions = unsafe { std::mem::zeroed() };
    // SAFETY: a whole aura_options_t.
    unsafe { aura_options_init(&mut o) };
    o
}
