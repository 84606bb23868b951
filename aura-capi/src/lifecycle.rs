//! `aura_engine_t` and its lifecycle: options, create, destroy (aura.h section "Lifecycle").

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::os::raw::c_int;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use aura_std::{Buffer, Engine, Options, RingSelect};

use crate::error::{errno_of, EINVAL};
use crate::ffi::{boundary, fail_null, opt_mut};
use crate::log::{log, AURA_LOG_ERR};
use crate::request::SlotTable;
use crate::types::AuraOptions;

/// What the C layer knows about registrations (a mirror of the engine's tables, for the errnos
/// the C API promises and for `AURA_FIXED_FILE` index lookups).
#[derive(Default)]
pub(crate) struct Registry {
    /// Lengths of the registered buffers (empty: none registered).
    pub(crate) buffers: Vec<usize>,
    /// The registered fds by index (empty: none registered).
    pub(crate) files: Vec<c_int>,
    /// Buffers are being unregistered: registered-buffer submissions fail with EBUSY.
    pub(crate) buffers_draining: bool,
    /// Files are being unregistered: `AURA_FIXED_FILE` submissions fail with EBUSY.
    pub(crate) files_draining: bool,
}

/// Deferred-unregister bit: buffers.
pub(crate) const DEFER_BUFFERS: u8 = 1;
/// Deferred-unregister bit: files.
pub(crate) const DEFER_FILES: u8 = 2;

/// The engine state requests point at. Boxed separately from [`CEngine`] so that callbacks run
/// while the engine itself is being dropped (its drain) still find it intact.
pub(crate) struct Shared {
    /// The request table (C handles).
    pub(crate) slots: SlotTable,
    /// The latched fatal errno (0 = none).
    pub(crate) fatal: AtomicI32,
    /// Registration mirror; writers also hold `reg_serial`.
    pub(crate) registry: RwLock<Registry>,
    /// Serialises registration calls.
    pub(crate) reg_serial: Mutex<()>,
    /// Unregisters asked for and not finished (DEFER_* bits).
    pub(crate) deferred: AtomicU8,
    /// Buffers handed out by `aura_buffer_alloc`, by address.
    pub(crate) buffers: Mutex<HashMap<usize, Buffer>>,
    /// The engine uses THREAD_LOCAL ring selection.
    pub(crate) thread_local_mode: bool,
    /// `aura_destroy` started: submissions fail with ESHUTDOWN.
    pub(crate) destroying: AtomicBool,
    /// `aura_stop` was called (consumed by `aura_run`).
    pub(crate) stop: AtomicBool,
    /// Unique among the engines of this process (links left open by a thread name it).
    pub(crate) serial: u64,
    /// Requests held behind a linked head or waiting in `retry` (counted as pending).
    pub(crate) held: AtomicUsize,
    /// Held requests the engine refused for lack of room (`EAGAIN`), submitted again by the next
    /// poll / wait / drain.
    pub(crate) retry: Mutex<Vec<crate::link::Held>>,
    /// `retry.len()`, readable without the lock.
    pub(crate) retry_len: AtomicUsize,
}

/// The next engine serial.
static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `aura_engine_t`: owned by its creator through a `Box`, freed by `aura_destroy` only.
pub struct CEngine {
    engine: ManuallyDrop<Engine>,
    shared: NonNull<Shared>,
}

// SAFETY: `Engine` is Send + Sync; `Shared` holds only Sync data (atomics, locks, a table whose
// slots are Sync) and is owned by this value.
unsafe impl Send for CEngine {}
// SAFETY: as above.
unsafe impl Sync for CEngine {}

impl CEngine {
    /// Wraps an engine.
    pub(crate) fn new(engine: Engine, thread_local_mode: bool) -> CEngine {
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let shared = Box::new(Shared {
            slots: SlotTable::new(serial),
            fatal: AtomicI32::new(0),
            registry: RwLock::new(Registry::default()),
            reg_serial: Mutex::new(()),
            deferred: AtomicU8::new(0),
            buffers: Mutex::new(HashMap::new()),
            thread_local_mode,
            destroying: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            serial,
            held: AtomicUsize::new(0),
            retry: Mutex::new(Vec::new()),
            retry_len: AtomicUsize::new(0),
        });
        CEngine {
            engine: ManuallyDrop::new(engine),
            shared: NonNull::from(Box::leak(shared)),
        }
    }

    /// The Rust engine.
    #[inline]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The state shared with requests.
    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        // SAFETY: `shared` was leaked from a Box in `new` and is freed only in `drop`, after the
        // engine (and with it every request) is gone.
        unsafe { self.shared.as_ref() }
    }
}

impl Drop for CEngine {
    fn drop(&mut self) {
        self.shared().destroying.store(true, Ordering::Release);
        // SAFETY: dropped exactly once, here; `engine` is not used afterwards. Dropping it
        // drains every request (callbacks run and reach `shared`, still alive).
        unsafe { ManuallyDrop::drop(&mut self.engine) };
        // Threads' caches of free slots stop giving slots back to this table from here on.
        crate::request::table_gone(self.shared().serial);
        // SAFETY: leaked from a Box in `new`; no request refers to it any more.
        drop(unsafe { Box::from_raw(self.shared.as_ptr()) });
    }
}

/// Registry lock helpers that survive poisoning (the data stays consistent: every writer
/// updates it in one assignment after the engine call succeeded).
impl Shared {
    pub(crate) fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The defaults `aura_options_init` writes.
pub(crate) fn default_options() -> AuraOptions {
    AuraOptions {
        struct_size: std::mem::size_of::<AuraOptions>(),
        queue_depth: 1024,
        ring_count: 0,
        initial_in_flight: 0,
        min_in_flight: 4,
        max_p99_latency_ms: 0.0,
        buffer_alignment: aura_std::DEFAULT_ALIGNMENT,
        disable_adaptive: 0,
        enable_sqpoll: 0,
        sqpoll_idle_ms: 1000,
        ring_select: 0,
        single_thread: 0,
        batch_threshold: -1,
        reserved: [0; 6],
    }
}

/// Reads a caller's `aura_options_t` of `struct_size` bytes: fields past it keep their
/// defaults. `Err(EINVAL)` for a struct_size below the size field or above this struct.
///
/// # Safety
///
/// `p` points at a readable `size_t`, and at `struct_size` readable bytes once that says so.
pub(crate) unsafe fn read_options(p: *const AuraOptions) -> Result<AuraOptions, &'static str> {
    // SAFETY: the first field is readable (this fn's contract).
    let size = unsafe { std::ptr::read_unaligned(p.cast::<usize>()) };
    if size < std::mem::size_of::<usize>() || size > std::mem::size_of::<AuraOptions>() {
        return Err("struct_size: 0, too small, or larger than this library's aura_options_t");
    }
    let mut o = default_options();
    // SAFETY: `size` bytes are readable at `p` (contract) and writable in `o` (checked above).
    unsafe {
        std::ptr::copy_nonoverlapping(
            p.cast::<u8>(),
            std::ptr::from_mut(&mut o).cast::<u8>(),
            size,
        )
    };
    Ok(o)
}

/// Validates C options and turns them into engine options; the error names the bad field.
pub(crate) fn to_engine_options(o: &AuraOptions) -> Result<Options, &'static str> {
    if o.reserved.iter().any(|&r| r != 0) {
        return Err("_reserved: must be zero");
    }
    let qd = match o.queue_depth {
        0 => 1024,
        q @ 4..=32768 => q as u32,
        _ => return Err("queue_depth: 0 or 4..32768"),
    };
    if !(0..=1024).contains(&o.ring_count) {
        return Err("ring_count: 0..1024");
    }
    let min = match o.min_in_flight {
        0 => 4.min(qd),
        m if m >= 1 && m as u32 <= qd => m as u32,
        _ => return Err("min_in_flight: 1..queue_depth"),
    };
    let adaptive = o.disable_adaptive == 0;
    let initial = match o.initial_in_flight {
        // Adaptive: max(4, qd/4), within [min, qd]. Fixed: the queue depth.
        0 if adaptive => (qd / 4).max(4).min(qd).max(min),
        0 => qd,
        i if i >= min as i32 && i as u32 <= qd => i as u32,
        _ => return Err("initial_in_flight: min_in_flight..queue_depth"),
    };
    if !o.max_p99_latency_ms.is_finite() || o.max_p99_latency_ms < 0.0 {
        return Err("max_p99_latency_ms: finite and >= 0");
    }
    let align = match o.buffer_alignment {
        0 => aura_std::DEFAULT_ALIGNMENT,
        a if a.is_power_of_two() && (8..=1 << 30).contains(&a) => a,
        _ => return Err("buffer_alignment: a power of two, 8..1 GiB"),
    };
    let idle = match o.sqpoll_idle_ms {
        0 => 1000,
        i if i > 0 => i as u32,
        _ => return Err("sqpoll_idle_ms: >= 0"),
    };
    let select = match o.ring_select {
        0 => RingSelect::Adaptive,
        1 => RingSelect::CpuLocal,
        2 => RingSelect::RoundRobin,
        3 => RingSelect::ThreadLocal,
        _ => return Err("ring_select: 0..3"),
    };
    if o.batch_threshold < -1 {
        return Err("batch_threshold: -1, 0 or > 0");
    }
    Ok(Options::new()
        .queue_depth(qd)
        .ring_count(o.ring_count as u32)
        .min_in_flight(min)
        .initial_in_flight(initial)
        .max_p99_latency_ms(o.max_p99_latency_ms)
        .buffer_alignment(align)
        .disable_adaptive(!adaptive)
        .sqpoll(o.enable_sqpoll != 0, idle)
        .ring_select(select)
        .single_thread(o.single_thread != 0)
        .batch_threshold(o.batch_threshold))
}

/// Builds a C engine from engine options.
pub(crate) fn create(
    options: Options,
    thread_local: bool,
) -> Result<Box<CEngine>, aura_std::Error> {
    let engine = Engine::with_options(options)?;
    Ok(Box::new(CEngine::new(engine, thread_local)))
}

/// The ring selection of engine options (their fields are private: find the builder call
/// that leaves them unchanged).
#[cfg(test)]
fn options_ring_select(o: &Options) -> RingSelect {
    for mode in [
        RingSelect::ThreadLocal,
        RingSelect::RoundRobin,
        RingSelect::CpuLocal,
    ] {
        if *o == o.clone().ring_select(mode) {
            return mode;
        }
    }
    RingSelect::Adaptive
}

/// `void aura_options_init(aura_options_t *options)`: the defaults; NULL does nothing.
///
/// # Safety
///
/// `options` is NULL or points at a writable `aura_options_t` (88 bytes).
#[no_mangle]
pub unsafe extern "C" fn aura_options_init(options: *mut AuraOptions) {
    boundary!((), {
        // SAFETY: this fn's contract.
        if let Some(o) = unsafe { opt_mut(options) } {
            *o = default_options();
        }
    })
}

/// `aura_engine_t *aura_create(void)`.
///
/// # Safety
///
/// Always safe to call; the returned engine must be freed with `aura_destroy` only.
#[no_mangle]
pub unsafe extern "C" fn aura_create() -> *mut CEngine {
    boundary!(std::ptr::null_mut(), {
        let o = default_options();
        match to_engine_options(&o).map_err(|_| EINVAL) {
            Ok(opts) => match create(opts, false) {
                Ok(ce) => Box::into_raw(ce),
                Err(e) => fail_null(errno_of(&e)),
            },
            Err(e) => fail_null(e),
        }
    })
}

/// `aura_engine_t *aura_create_with_options(const aura_options_t *options)`; NULL = defaults.
///
/// # Safety
///
/// `options` is NULL or points at an `aura_options_t` whose `struct_size` bytes are readable.
#[no_mangle]
pub unsafe extern "C" fn aura_create_with_options(options: *const AuraOptions) -> *mut CEngine {
    boundary!(std::ptr::null_mut(), {
        let o = if options.is_null() {
            default_options()
        } else {
            // SAFETY: this fn's contract.
            match unsafe { read_options(options) } {
                Ok(o) => o,
                Err(why) => {
                    crate::log::log(crate::log::AURA_LOG_DEBUG, why);
                    return fail_null(EINVAL);
                }
            }
        };
        let opts = match to_engine_options(&o) {
            Ok(opts) => opts,
            Err(why) => {
                crate::log::log(crate::log::AURA_LOG_DEBUG, why);
                return fail_null(EINVAL);
            }
        };
        match create(opts, o.ring_select == 3) {
            Ok(ce) => Box::into_raw(ce),
            Err(e) => fail_null(errno_of(&e)),
        }
    })
}

/// `void aura_destroy(aura_engine_t *engine)`: drains, unregisters, frees. NULL does nothing;
/// refused (logged) from a callback.
///
/// # Safety
///
/// `engine` is NULL or an engine from `aura_create*` not destroyed yet, that no other thread
/// uses any more.
#[no_mangle]
pub unsafe extern "C" fn aura_destroy(engine: *mut CEngine) {
    boundary!((), {
        if engine.is_null() {
            return;
        }
        if aura_std::in_callback() {
            log(
                AURA_LOG_ERR,
                "aura_destroy called from a completion callback: refused",
            );
            return;
        }
        // SAFETY: this fn's contract: a live engine from aura_create*, owned by the caller.
        let ce = unsafe { Box::from_raw(engine) };
        let shared = ce.shared();
        shared.destroying.store(true, Ordering::Release);
        // Drain (callbacks run here; they may still cancel or release registrations; held
        // linked requests are submitted as their heads complete).
        let _ = crate::events::drain_all(&ce, 10_000);
        // Nothing may outlive the engine: held requests still waiting for room are completed
        // with -ECANCELED.
        crate::link::cancel_retries(shared);
        // Registrations go with the rings. Dropping drains again (cancelling what is left after 10 s) before freeing anything.
        drop(ce);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_spec() {
        let o = default_options();
        assert_eq!(o.struct_size, 88);
        assert_eq!(o.queue_depth, 1024);
        assert_eq!(o.min_in_flight, 4);
        assert_eq!(o.batch_threshold, -1);
        assert_eq!(o.sqpoll_idle_ms, 1000);
        let e = to_engine_options(&o).unwrap();
        assert_eq!(e.effective_queue_depth(), 1024);
        assert_eq!(options_ring_select(&e), RingSelect::Adaptive);
    }

    #[test]
    fn every_bad_field_is_refused() {
        let cases: Vec<fn(&mut AuraOptions)> = vec![
            |o| o.queue_depth = 3,
            |o| o.queue_depth = 32769,
            |o| o.queue_depth = -1,
            |o| o.ring_count = -1,
            |o| o.ring_count = 1025,
            |o| o.min_in_flight = -1,
            |o| o.min_in_flight = 2000,
            |o| o.initial_in_flight = 2,
            |o| o.initial_in_flight = 1025,
            |o| o.max_p99_latency_ms = -1.0,
            |o| o.max_p99_latency_ms = f64::NAN,
            |o| o.buffer_alignment = 3,
            |o| o.buffer_alignment = 4,
            |o| o.sqpoll_idle_ms = -5,
            |o| o.ring_select = 4,
            |o| o.ring_select = -1,
            |o| o.batch_threshold = -2,
            |o| o.reserved[5] = 1,
        ];
        for (i, f) in cases.iter().enumerate() {
            let mut o = default_options();
            f(&mut o);
            assert!(to_engine_options(&o).is_err(), "case {i} accepted: {o:?}");
        }
    }

    #[test]
    fn zero_means_default_and_modes_map() {
        let mut o = default_options();
        o.queue_depth = 0;
        o.min_in_flight = 0;
        o.buffer_alignment = 0;
        o.sqpoll_idle_ms = 0;
        o.ring_select = 3;
        let e = to_engine_options(&o).unwrap();
        assert_eq!(e.effective_queue_depth(), 1024);
        assert_eq!(options_ring_select(&e), RingSelect::ThreadLocal);
        o.ring_select = 2;
        assert_eq!(
            options_ring_select(&to_engine_options(&o).unwrap()),
            RingSelect::RoundRobin
        );
    }

    #[test]
    fn struct_size_is_checked_and_a_prefix_is_read() {
        let mut o = default_options();
        o.queue_depth = 64;
        o.struct_size = 0;
        // SAFETY: `o` is a whole aura_options_t.
        assert!(unsafe { read_options(&o) }.is_err());
        o.struct_size = 89;
        // SAFETY: as above; refused before reading past the size field.
        assert!(unsafe { read_options(&o) }.is_err());
        // A caller built against a 16-byte prefix: later fields take the defaults.
        o.struct_size = 16;
        o.min_in_flight = 999;
        // SAFETY: 16 bytes of `o` are readable.
        let r = unsafe { read_options(&o) }.unwrap();
        assert_eq!(r.queue_depth, 64);
        assert_eq!(r.min_in_flight, 4);
    }
}
