//! An aligned buffer pool for O_DIRECT-friendly I/O, and [`BufferRef`], the `Copy` handle the
//! unsafe operation API takes.
//!
//! # Size classes
//!
//! A request of `n` bytes (`1 ..= 128 MiB`) is served from one of 16 power-of-two size classes,
//! 4 KiB (class 0) to 128 MiB (class 15): class `max(0, ceil(log2(n)) - 12)`. Every buffer of a
//! pool is aligned to the pool's alignment ([`DEFAULT_ALIGNMENT`], 4096, unless chosen otherwise),
//! and its [`capacity`](Buffer::capacity) is its class size.
//!
//! # Caching tiers
//!
//! 1. **Thread cache** (per thread, per pool): per class up to 32 buffers and 4 MiB (so 32 of
//!    4–128 KiB, 16 of 256 KiB, …, 1 of 4 MiB, none above: at most 28 MiB per thread and pool)
//!    in a `thread_local!`, no lock and no atomic read-modify-write beyond the stats counters. A
//!    miss refills up to 16 (at most half the class's cap) from the thread's shard; a free into a
//!    full class first flushes that many of its oldest buffers to the shard.
//! 2. **Shards** (per pool): `clamp(next_pow2(cpus / 4), 2, 256)` mutex-protected free lists,
//!    each holding per class at most 256 buffers and 16 MiB (none above 16 MiB: at most 159 MiB
//!    per shard); beyond that buffers go back to the allocator. Threads are spread over the
//!    shards round-robin (a global thread counter).
//! 3. **The allocator**: `std::alloc::alloc_zeroed` with `Layout::from_size_align(class_size,
//!    alignment)`. A buffer fresh from the allocator is zeroed, so [`Buffer::as_slice`] never
//!    exposes uninitialised memory; a reused buffer keeps whatever bytes its last user left (they
//!    are initialised, and reuse costs no zeroing).
//!
//! A buffer freed on another thread than the one that allocated it goes to the freeing thread's
//! cache. The free path does not allocate once the thread has touched the pool: every free list
//! is reserved to its maximum length up front, so pushes never reallocate. (A thread's first contact with a pool creates its cache
//! entry, which allocates once.)
//!
//! # Pool lifetime and thread caches
//!
//! [`BufferPool`] is an `Arc` handle; every [`Buffer`] holds a clone of that `Arc`, so a pool
//! lives until its last handle *and* its last outstanding buffer are gone. Thread caches hold
//! only a [`Weak`] reference (plus the pool's id and alignment), so a cache never keeps a pool
//! alive. When the pool dies, its shards and the dropping thread's cache are freed at once; the
//! caches of *other* threads still own some buffers of the dead pool. Those are owned by exactly
//! one cache entry (never shared, so no double free) and are freed, with the alignment the entry
//! recorded, as soon as that thread exits, calls [`BufferPool::trim`] on any pool, or first
//! touches another pool (each of these sweeps the thread's dead entries). Entries are looked up by
//! a global, monotonically increasing pool id, never by address, so a new pool never sees a dead
//! pool's buffers. On thread exit the `thread_local!` destructor hands live pools' buffers back to
//! their shards.
//!
//! # Safety
//!
//! This module's `unsafe` code relies on these invariants:
//!
//! 1. **Provenance.** Every pointer held by a free list (a thread-cache entry or a shard) of
//!    class `c`, or by a [`Buffer`] of class `c`, was returned by `alloc_zeroed` with the layout
//!    `(4096 << c, alignment)` of the pool the list or buffer belongs to, and has not been freed.
//!    A thread-cache entry records that alignment itself, so it can free its buffers after its
//!    pool is gone.
//! 2. **Exclusive ownership.** Each such pointer is held in exactly one place at a time: one free
//!    list slot or one `Buffer`. Moving a pointer between places removes it from the source first
//!    (under the shard's mutex, or in thread-local state no other thread can reach), so no
//!    pointer is handed out twice or freed twice.
//! 3. **Initialised.** All `4096 << c` bytes behind such a pointer are initialised: they are
//!    zeroed when allocated, and afterwards written only through `&mut [u8]` views.
//! 4. **Length.** A `Buffer`'s `len` is at most its capacity `4096 << class`.

use std::alloc::{self, Layout};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::slice;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use crate::error::{Error, Result};

use self::cache::{LocalCache, RawBuf, Shard};

/// Loom-only access to the free-list hand-off ([`Shard`] and [`LocalCache`]), for the model in
/// `tests/loom_buffer.rs`. Not part of the public API.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    pub use super::cache::{LocalCache, RawBuf, Shard};
}

/// The default buffer alignment: 4096, the page size and logical block size of every Linux
/// platform aura targets (std has no page-size API; pass another alignment to
/// [`BufferPool::new`] for 16 KiB / 64 KiB pages or huge pages).
pub const DEFAULT_ALIGNMENT: usize = 4096;

/// The largest buffer a pool hands out: 128 MiB (size class 15).
pub const MAX_BUFFER_SIZE: usize = 128 << 20;

/// The number of size classes: 4 KiB, 8 KiB, ..., 128 MiB.
pub const SIZE_CLASSES: usize = 16;

/// log2 of the smallest class size (4 KiB).
const MIN_CLASS_SHIFT: u32 = 12;
/// The smallest accepted alignment.
const MIN_ALIGNMENT: usize = 8;
/// The largest accepted alignment (1 GiB).
const MAX_ALIGNMENT: usize = 1 << 30;
/// Buffers per class a thread cache holds at most.
const THREAD_CACHE_MAX: usize = 32;
/// Bytes per class a thread cache holds at most: classes above 128 KiB keep fewer than
/// [`THREAD_CACHE_MAX`] buffers, classes above 4 MiB none.
const THREAD_CACHE_CLASS_BYTES: usize = 4 << 20;
/// Buffers moved per refill from / flush to a shard (at most).
const BATCH: usize = 16;
/// Buffers per class a shard holds at most.
const SHARD_CLASS_MAX: usize = 256;
/// Bytes per class a shard holds at most: classes above 64 KiB keep fewer than
/// [`SHARD_CLASS_MAX`] buffers, classes above 16 MiB none (they go back to the allocator).
const SHARD_CLASS_BYTES: usize = 16 << 20;

/// Per class, how many buffers of it fit `bytes` (at most `max`).
fn caps_by_bytes(bytes: usize, max: usize) -> [usize; SIZE_CLASSES] {
    std::array::from_fn(|class| (bytes / class_size(class)).min(max))
}
/// Bounds of the shard count.
const MIN_SHARDS: usize = 2;
const MAX_SHARDS: usize = 256;

/// The size in bytes of class `class`.
const fn class_size(class: usize) -> usize {
    1 << (class as u32 + MIN_CLASS_SHIFT)
}

/// The size class serving a request of `size` bytes, or `InvalidArgument` naming `size`.
fn size_class(size: usize) -> Result<usize> {
    if size == 0 || size > MAX_BUFFER_SIZE {
        return Err(Error::invalid(format!(
            "size must be between 1 and {MAX_BUFFER_SIZE} bytes (128 MiB), got {size}"
        )));
    }
    // ceil(log2(size)) for size >= 2 is the bit length of size - 1.
    let ceil_log2 = usize::BITS - (size - 1).leading_zeros();
    Ok(ceil_log2.saturating_sub(MIN_CLASS_SHIFT) as usize)
}

/// The number of shards for `cpus` CPUs: `clamp(next_pow2(cpus / 4), 2, 256)`.
fn shard_count(cpus: usize) -> usize {
    (cpus / 4)
        .max(1)
        .next_power_of_two()
        .clamp(MIN_SHARDS, MAX_SHARDS)
}

/// The free lists: a thread-local cache front and a shared, mutex-protected shard behind it.
///
/// Kept free of `thread_local!` and of the allocator so the loom model can drive the real
/// hand-off code with stand-in pointers.
mod cache {
    use std::ptr::NonNull;
    use std::sync::PoisonError;

    #[cfg(loom)]
    use loom::sync::{Mutex, MutexGuard};
    #[cfg(not(loom))]
    use std::sync::{Mutex, MutexGuard};

    use super::SIZE_CLASSES;

    /// A cached buffer's address. Only moved around and compared here, never dereferenced.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RawBuf(pub NonNull<u8>);

    // SAFETY: a `RawBuf` is an address the free lists move between threads; this module never
    // dereferences it. Whoever turns it back into memory access (the pool, a `Buffer`) owns the
    // allocation exclusively (module invariant 2), so sending the address is sending that
    // ownership, which is sound for plain bytes.
    unsafe impl Send for RawBuf {}

    /// One class-indexed set of free lists.
    type Lists = [Vec<RawBuf>; SIZE_CLASSES];

    /// Free lists of `caps[class]` entries each, reserved up front.
    fn reserved_lists(caps: &[usize; SIZE_CLASSES]) -> Lists {
        std::array::from_fn(|class| Vec::with_capacity(caps[class]))
    }

    /// A shard: one mutex-protected free list per class, class `c` holding at most `caps[c]`
    /// buffers.
    #[derive(Debug)]
    pub struct Shard {
        lists: Mutex<Lists>,
        caps: [usize; SIZE_CLASSES],
    }

    impl Shard {
        /// An empty shard holding at most `cap` buffers per class (reserved now).
        #[cfg(any(test, loom))]
        pub fn new(cap: usize) -> Shard {
            Self::with_caps([cap; SIZE_CLASSES])
        }

        /// An empty shard holding at most `caps[c]` buffers of class `c` (reserved now).
        pub fn with_caps(caps: [usize; SIZE_CLASSES]) -> Shard {
            Shard {
                lists: Mutex::new(reserved_lists(&caps)),
                caps,
            }
        }

        fn lock(&self) -> MutexGuard<'_, Lists> {
            // No critical section below can panic half-way (pushes stay within the reserved
            // capacity), so a poisoned lock still guards consistent lists.
            self.lists.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// Moves up to `count` buffers from the front (the oldest end) of `from` into class
        /// `class`, as many as fit under the cap. Returns how many moved; the caller frees the
        /// ones that did not fit.
        pub fn push_batch(&self, class: usize, from: &mut Vec<RawBuf>, count: usize) -> usize {
            let count = count.min(from.len());
            let mut lists = self.lock();
            let list = &mut lists[class];
            let n = count.min(self.caps[class] - list.len());
            list.extend(from.drain(..n));
            n
        }

        /// Moves up to `max` buffers of class `class` (the most recently pushed first) onto the
        /// end of `into`, never beyond `into`'s spare capacity (so `into` never reallocates).
        /// Returns how many moved.
        pub fn pop_batch(&self, class: usize, into: &mut Vec<RawBuf>, max: usize) -> usize {
            let max = max.min(into.capacity() - into.len());
            let mut lists = self.lock();
            let list = &mut lists[class];
            let n = max.min(list.len());
            let start = list.len() - n;
            into.extend(list.drain(start..));
            n
        }

        /// Adds one buffer to class `class`, or hands it back if the class is full.
        pub fn push_one(&self, class: usize, buf: RawBuf) -> Result<(), RawBuf> {
            let mut lists = self.lock();
            let list = &mut lists[class];
            if list.len() < self.caps[class] {
                list.push(buf);
                Ok(())
            } else {
                Err(buf)
            }
        }

        /// Takes one buffer of class `class`, if any.
        pub fn pop_one(&self, class: usize) -> Option<RawBuf> {
            self.lock()[class].pop()
        }

        /// Empties every class, handing each buffer with its class to `free`.
        pub fn drain_all(&self, mut free: impl FnMut(usize, RawBuf)) {
            let mut lists = self.lock();
            for (class, list) in lists.iter_mut().enumerate() {
                list.drain(..).for_each(|buf| free(class, buf));
            }
        }

        /// Empties every class through exclusive access (no locking), handing each buffer with
        /// its class to `free`.
        pub fn drain_all_mut(&mut self, mut free: impl FnMut(usize, RawBuf)) {
            let lists = self.lists.get_mut().unwrap_or_else(PoisonError::into_inner);
            for (class, list) in lists.iter_mut().enumerate() {
                list.drain(..).for_each(|buf| free(class, buf));
            }
        }
    }

    /// A thread's cache for one pool: per class a LIFO stack of at most `max[class]` buffers,
    /// refilled from and flushed to a [`Shard`] `batch[class]` buffers at a time. A class with
    /// room for none goes straight to the shard.
    #[derive(Debug)]
    pub struct LocalCache {
        lists: Lists,
        max: [usize; SIZE_CLASSES],
        batch: [usize; SIZE_CLASSES],
    }

    impl LocalCache {
        /// An empty cache of at most `max` buffers per class (reserved now), moving `batch`
        /// buffers per refill / flush.
        ///
        /// # Panics
        ///
        /// If `batch` is 0 or larger than `max`.
        #[cfg(any(test, loom))]
        pub fn new(max: usize, batch: usize) -> LocalCache {
            assert!(0 < batch && batch <= max, "batch must be in 1..=max");
            LocalCache {
                lists: reserved_lists(&[max; SIZE_CLASSES]),
                max: [max; SIZE_CLASSES],
                batch: [batch; SIZE_CLASSES],
            }
        }

        /// An empty cache of at most `max[c]` buffers of class `c` (reserved now; 0 = none
        /// cached), moving half of that (1 ..= `batch`) per refill / flush.
        pub fn with_caps(max: [usize; SIZE_CLASSES], batch: usize) -> LocalCache {
            LocalCache {
                lists: reserved_lists(&max),
                max,
                batch: std::array::from_fn(|c| (max[c] / 2).clamp(1, batch.max(1))),
            }
        }

        /// Takes a buffer of class `class`: the most recently cached one, else (after refilling
        /// up to `batch` buffers from `shard`) one from the shard. `None` if both are empty.
        pub fn take(&mut self, class: usize, shard: &Shard) -> Option<RawBuf> {
            if self.max[class] == 0 {
                return shard.pop_one(class);
            }
            let list = &mut self.lists[class];
            if let Some(buf) = list.pop() {
                return Some(buf);
            }
            shard.pop_batch(class, list, self.batch[class]);
            list.pop()
        }

        /// Caches `buf` as a class-`class` buffer. If the class is full, first moves its `batch`
        /// oldest buffers to `shard`, handing those the shard has no room for to `free`. Never
        /// reallocates.
        pub fn put(
            &mut self,
            class: usize,
            buf: RawBuf,
            shard: &Shard,
            mut free: impl FnMut(usize, RawBuf),
        ) {
            if self.max[class] == 0 {
                if let Err(b) = shard.push_one(class, buf) {
                    free(class, b);
                }
                return;
            }
            let list = &mut self.lists[class];
            if list.len() >= self.max[class] {
                let n = self.batch[class].min(list.len());
                let moved = shard.push_batch(class, list, n);
                list.drain(..n - moved).for_each(|b| free(class, b));
            }
            list.push(buf);
        }

        /// Moves every cached buffer to `shard`, handing those the shard has no room for to
        /// `free` (on thread exit).
        pub fn flush_all(&mut self, shard: &Shard, mut free: impl FnMut(usize, RawBuf)) {
            for (class, list) in self.lists.iter_mut().enumerate() {
                shard.push_batch(class, list, list.len());
                list.drain(..).for_each(|b| free(class, b));
            }
        }

        /// Empties the cache, handing every buffer with its class to `free`.
        pub fn drain_all(&mut self, mut free: impl FnMut(usize, RawBuf)) {
            for (class, list) in self.lists.iter_mut().enumerate() {
                list.drain(..).for_each(|b| free(class, b));
            }
        }

        /// The number of cached buffers of class `class`.
        #[cfg(any(test, loom))]
        pub fn len(&self, class: usize) -> usize {
            self.lists[class].len()
        }
    }
}

/// Source of pool ids: global and monotonically increasing, so a thread cache entry of a dropped
/// pool is never mistaken for a later pool's.
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(0);
/// Source of thread indices, for the round-robin shard choice.
static NEXT_THREAD_INDEX: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's index (`usize::MAX` until first asked). No destructor, so always readable.
    static THREAD_INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    /// This thread's caches, one entry per pool it touched.
    static CACHES: RefCell<ThreadCaches> = const { RefCell::new(ThreadCaches { entries: Vec::new() }) };
}

/// This thread's round-robin index.
fn thread_index() -> usize {
    THREAD_INDEX
        .try_with(|index| {
            let mut i = index.get();
            if i == usize::MAX {
                i = NEXT_THREAD_INDEX.fetch_add(1, Relaxed) & (usize::MAX >> 1);
                index.set(i);
            }
            i
        })
        .unwrap_or(0)
}

/// One thread's cache for one pool.
struct CacheEntry {
    /// The pool's id (the lookup key).
    id: u64,
    /// The pool, without keeping it alive.
    pool: Weak<PoolInner>,
    /// The pool's alignment, to free the buffers after the pool is gone (invariant 1).
    alignment: usize,
    /// This thread's shard in that pool.
    shard: usize,
    /// The buffers.
    cache: LocalCache,
}

impl CacheEntry {
    /// Frees every buffer in this entry straight to the allocator (its pool is gone or trimming).
    fn free_all_dead(&mut self) {
        let alignment = self.alignment;
        self.cache.drain_all(|class, buf| {
            // SAFETY: the entry owns `buf` exclusively and it was allocated with
            // `(class_size(class), alignment)` (invariants 1 and 2); it was just removed from
            // the entry, so nothing else frees or uses it.
            unsafe { free_raw(buf, class, alignment) }
        });
    }
}

/// A thread's caches, flushed to their pools' shards when the thread exits.
struct ThreadCaches {
    entries: Vec<CacheEntry>,
}

impl ThreadCaches {
    /// Frees the buffers of entries whose pool is gone, and removes those entries.
    fn sweep_dead(&mut self) {
        self.entries.retain_mut(|entry| {
            if entry.pool.strong_count() == 0 {
                entry.free_all_dead();
                false
            } else {
                true
            }
        });
    }

    /// This thread's entry for `pool`, created (after sweeping dead entries) if missing.
    fn entry(&mut self, pool: &Arc<PoolInner>) -> &mut CacheEntry {
        let index = match self.entries.iter().position(|e| e.id == pool.id) {
            Some(i) => i,
            None => {
                self.sweep_dead();
                self.entries.push(CacheEntry {
                    id: pool.id,
                    pool: Arc::downgrade(pool),
                    alignment: pool.alignment,
                    shard: thread_index() & (pool.shards.len() - 1),
                    cache: LocalCache::with_caps(
                        caps_by_bytes(THREAD_CACHE_CLASS_BYTES, THREAD_CACHE_MAX),
                        BATCH,
                    ),
                });
                self.entries.len() - 1
            }
        };
        &mut self.entries[index]
    }
}

impl Drop for ThreadCaches {
    fn drop(&mut self) {
        for entry in &mut self.entries {
            match entry.pool.upgrade() {
                Some(pool) => {
                    let slot = &pool.shards[entry.shard];
                    entry.cache.flush_all(&slot.shard, |class, buf| {
                        // SAFETY: `buf` came out of this pool's cache entry (invariants 1, 2).
                        unsafe { pool.free_to_os(buf, class, slot) }
                    });
                    // Dropping `pool` may drop the pool; its `Drop` finds `CACHES` being destroyed
                    // and skips it.
                }
                None => entry.free_all_dead(),
            }
        }
    }
}

/// Runs `f` on this thread's cache entry for `pool`; `None` if the thread's caches are gone
/// (thread exit) or busy (re-entrance), when the caller falls back to the shard.
fn with_cache<R>(pool: &Arc<PoolInner>, f: impl FnOnce(&mut CacheEntry) -> R) -> Option<R> {
    CACHES
        .try_with(|caches| {
            let mut caches = caches.try_borrow_mut().ok()?;
            Some(f(caches.entry(pool)))
        })
        .ok()
        .flatten()
}

/// Frees a buffer to the allocator.
///
/// # Safety
///
/// `buf` was allocated by `alloc_zeroed` with `(class_size(class), alignment)`, is owned by the
/// caller and is not used afterwards.
unsafe fn free_raw(buf: RawBuf, class: usize, alignment: usize) {
    // SAFETY: the caller guarantees this layout was valid when `buf` was allocated with it.
    let layout = unsafe { Layout::from_size_align_unchecked(class_size(class), alignment) };
    // SAFETY: the caller guarantees `buf` came from the global allocator with `layout` and is
    // freed exactly once.
    unsafe { alloc::dealloc(buf.0.as_ptr(), layout) }
}

/// Usage counters of one shard (threads update their own shard's; the stats sum all shards).
/// Signed: a buffer can be counted in on one shard and out on another.
#[derive(Default)]
struct Counters {
    allocated_bytes: AtomicIsize,
    allocated_buffers: AtomicIsize,
    in_use_bytes: AtomicIsize,
    in_use_buffers: AtomicIsize,
}

/// A shard and its counters, on their own cache lines.
#[repr(align(128))]
struct ShardSlot {
    counters: Counters,
    shard: Shard,
}

/// The shared state of a pool.
struct PoolInner {
    id: u64,
    alignment: usize,
    /// `shard_count(cpus)` slots (a power of two).
    shards: Box<[ShardSlot]>,
}

impl PoolInner {
    /// The slot threads without a cache entry use (thread exit, re-entrance).
    fn fallback_slot(&self) -> usize {
        thread_index() & (self.shards.len() - 1)
    }

    /// A fresh, zeroed buffer of class `class` from the allocator, counted in `slot`.
    fn alloc_from_os(&self, class: usize, slot: &ShardSlot) -> Result<RawBuf> {
        // Validated for all classes in `BufferPool::new`.
        let layout = Layout::from_size_align(class_size(class), self.alignment)
            .map_err(|_| Error::invalid("buffer_alignment"))?;
        // SAFETY: `layout` has a non-zero size (at least 4096).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::Io(io::Error::from_raw_os_error(12)))?;
        slot.counters
            .allocated_bytes
            .fetch_add(class_size(class) as isize, Relaxed);
        slot.counters.allocated_buffers.fetch_add(1, Relaxed);
        Ok(RawBuf(ptr))
    }

    /// Frees a buffer of this pool to the allocator, counted out in `slot`.
    ///
    /// # Safety
    ///
    /// `buf` is a class-`class` buffer of this pool (invariant 1), owned by the caller and not
    /// used afterwards.
    unsafe fn free_to_os(&self, buf: RawBuf, class: usize, slot: &ShardSlot) {
        // SAFETY: forwarded from this function's contract.
        unsafe { free_raw(buf, class, self.alignment) };
        slot.counters
            .allocated_bytes
            .fetch_sub(class_size(class) as isize, Relaxed);
        slot.counters.allocated_buffers.fetch_sub(1, Relaxed);
    }

    /// Hands a class-`class` buffer out: cache, shard, then allocator.
    fn take(self: &Arc<Self>, class: usize) -> Result<RawBuf> {
        let (cached, slot) = match with_cache(self, |e| {
            (e.cache.take(class, &self.shards[e.shard].shard), e.shard)
        }) {
            Some(hit) => hit,
            None => {
                let slot = self.fallback_slot();
                (self.shards[slot].shard.pop_one(class), slot)
            }
        };
        let slot = &self.shards[slot];
        let buf = match cached {
            Some(buf) => buf,
            None => self.alloc_from_os(class, slot)?,
        };
        slot.counters
            .in_use_bytes
            .fetch_add(class_size(class) as isize, Relaxed);
        slot.counters.in_use_buffers.fetch_add(1, Relaxed);
        Ok(buf)
    }

    /// Takes a class-`class` buffer back: into this thread's cache, else the shard, else the
    /// allocator.
    ///
    /// # Safety
    ///
    /// `buf` is a class-`class` buffer of this pool, handed out by [`PoolInner::take`], owned by
    /// the caller and not used afterwards.
    unsafe fn give_back(self: &Arc<Self>, buf: RawBuf, class: usize) {
        let slot = with_cache(self, |e| {
            let slot = &self.shards[e.shard];
            e.cache.put(class, buf, &slot.shard, |class, b| {
                // SAFETY: `b` is a buffer of this pool leaving this pool's cache entry
                // (invariants 1, 2).
                unsafe { self.free_to_os(b, class, slot) }
            });
            e.shard
        })
        .unwrap_or_else(|| {
            let index = self.fallback_slot();
            let slot = &self.shards[index];
            if let Err(buf) = slot.shard.push_one(class, buf) {
                // SAFETY: the shard is full; `buf` is still the caller's, handed over to us.
                unsafe { self.free_to_os(buf, class, slot) }
            }
            index
        });
        let counters = &self.shards[slot].counters;
        counters
            .in_use_bytes
            .fetch_sub(class_size(class) as isize, Relaxed);
        counters.in_use_buffers.fetch_sub(1, Relaxed);
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let alignment = self.alignment;
        for slot in self.shards.iter_mut() {
            slot.shard.drain_all_mut(|class, buf| {
                // SAFETY: the last reference to the pool is going away; `buf` was owned by its
                // shard (invariants 1, 2) and is freed exactly once here.
                unsafe { free_raw(buf, class, alignment) }
            });
        }
        // This thread's cache entry for the pool is dead now (strong count 0): free it too.
        // Other threads' entries are freed by their own sweeps (see the module docs).
        let _ = CACHES.try_with(|caches| {
            if let Ok(mut caches) = caches.try_borrow_mut() {
                caches.sweep_dead();
            }
        });
    }
}

/// An aligned buffer pool. Cheap to clone (an `Arc`); `Send + Sync`.
///
/// See the [module docs](self) for the size classes, the caching tiers and the lifetime rules.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

impl BufferPool {
    /// A pool whose buffers are aligned to `alignment` bytes, a power of two in `8 ..= 1 GiB`
    /// (else [`Error::InvalidArgument`] naming `buffer_alignment`).
    pub fn new(alignment: usize) -> Result<BufferPool> {
        if !alignment.is_power_of_two() || !(MIN_ALIGNMENT..=MAX_ALIGNMENT).contains(&alignment) {
            return Err(Error::invalid(format!(
                "buffer_alignment must be a power of two between {MIN_ALIGNMENT} and \
                 {MAX_ALIGNMENT} (1 GiB), got {alignment}"
            )));
        }
        if Layout::from_size_align(MAX_BUFFER_SIZE, alignment).is_err() {
            return Err(Error::invalid(format!(
                "buffer_alignment {alignment} is too large for this platform"
            )));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = (0..shard_count(cpus))
            .map(|_| ShardSlot {
                counters: Counters::default(),
                shard: Shard::with_caps(caps_by_bytes(SHARD_CLASS_BYTES, SHARD_CLASS_MAX)),
            })
            .collect();
        Ok(BufferPool {
            inner: Arc::new(PoolInner {
                id: NEXT_POOL_ID.fetch_add(1, Relaxed),
                alignment,
                shards,
            }),
        })
    }

    /// A pool with [`DEFAULT_ALIGNMENT`] (4096).
    pub fn with_default_alignment() -> BufferPool {
        match BufferPool::new(DEFAULT_ALIGNMENT) {
            Ok(pool) => pool,
            Err(e) => unreachable!("the default alignment is valid: {e}"),
        }
    }

    /// A buffer of `size` bytes (`1 ..= 128 MiB`, else [`Error::InvalidArgument`] naming
    /// `size`), aligned to [`alignment`](Self::alignment), with a capacity of its size class.
    ///
    /// Its contents are initialised but unspecified: zeroes if fresh from the allocator, a
    /// previous user's bytes if reused. Fails with [`Error::Io`] (`ENOMEM`) if the allocator is
    /// out of memory.
    pub fn alloc(&self, size: usize) -> Result<Buffer> {
        let class = size_class(size)?;
        let raw = self.inner.take(class)?;
        Ok(Buffer {
            ptr: raw.0,
            len: size,
            class: class as u8,
            pool: Arc::clone(&self.inner),
        })
    }

    /// The alignment of every buffer of this pool.
    pub fn alignment(&self) -> usize {
        self.inner.alignment
    }

    /// A snapshot of the pool's counters. Exact while no other thread allocates or frees from
    /// the pool; a snapshot taken concurrently may be momentarily off (each counter is summed
    /// over the shards with relaxed loads).
    pub fn stats(&self) -> BufferStats {
        let mut sums = [0isize; 4];
        for slot in self.inner.shards.iter() {
            let c = &slot.counters;
            for (sum, counter) in sums.iter_mut().zip([
                &c.allocated_bytes,
                &c.allocated_buffers,
                &c.in_use_bytes,
                &c.in_use_buffers,
            ]) {
                *sum = sum.wrapping_add(counter.load(Relaxed));
            }
        }
        let [allocated_bytes, allocated_buffers, in_use_bytes, in_use_buffers] =
            sums.map(|s| s.max(0) as usize);
        BufferStats {
            total_allocated_bytes: allocated_bytes,
            total_buffers: allocated_buffers,
            in_use_buffers,
            in_use_bytes,
            shard_count: self.inner.shards.len(),
        }
    }

    /// Releases every cached buffer of the pool's shards and of the calling thread's cache to
    /// the allocator (other threads' caches are left alone). Also frees the calling thread's
    /// cached buffers of pools that were dropped.
    pub fn trim(&self) {
        let inner = &self.inner;
        let own = with_cache(inner, |e| {
            let slot = &inner.shards[e.shard];
            e.cache.drain_all(|class, buf| {
                // SAFETY: `buf` left this pool's cache entry (invariants 1, 2).
                unsafe { inner.free_to_os(buf, class, slot) }
            });
        });
        if own.is_some() {
            let _ = CACHES.try_with(|caches| {
                if let Ok(mut caches) = caches.try_borrow_mut() {
                    caches.sweep_dead();
                }
            });
        }
        for slot in inner.shards.iter() {
            slot.shard.drain_all(|class, buf| {
                // SAFETY: `buf` left this pool's shard (invariants 1, 2).
                unsafe { inner.free_to_os(buf, class, slot) }
            });
        }
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool::with_default_alignment()
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("id", &self.inner.id)
            .field("alignment", &self.inner.alignment)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

/// A snapshot of a pool's counters ([`BufferPool::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Bytes currently allocated from the allocator (class sizes), cached or handed out.
    pub total_allocated_bytes: usize,
    /// Buffers currently allocated from the allocator, cached or handed out.
    pub total_buffers: usize,
    /// Buffers handed out and not yet dropped.
    pub in_use_buffers: usize,
    /// Bytes (class sizes, i.e. capacities) of the buffers handed out and not yet dropped.
    pub in_use_bytes: usize,
    /// The pool's number of shards.
    pub shard_count: usize,
}

/// One aligned buffer from a [`BufferPool`]; dropping it returns it to the pool.
///
/// Derefs to `[u8]` of [`len`](Self::len) bytes; the allocation is
/// [`capacity`](Self::capacity) bytes (the size class). It keeps its pool alive.
pub struct Buffer {
    ptr: NonNull<u8>,
    len: usize,
    class: u8,
    pool: Arc<PoolInner>,
}

// SAFETY: a `Buffer` owns its allocation exclusively (invariant 2), like a `Box<[u8]>`: moving it
// to another thread moves that ownership, and the pool state it returns the allocation to is
// `Send + Sync` (an `Arc` of atomics, mutexes and immutable data).
unsafe impl Send for Buffer {}
// SAFETY: `&Buffer` only allows reads of the bytes (`as_slice`, `as_ptr`), like `&Box<[u8]>`;
// writes need `&mut Buffer`.
unsafe impl Sync for Buffer {}

impl Buffer {
    /// The buffer's length: the requested size, or what [`set_len`](Self::set_len) set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether [`len`](Self::len) is 0 (only after `set_len(0)`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The allocation's size: the size class, at least [`len`](Self::len).
    pub fn capacity(&self) -> usize {
        class_size(usize::from(self.class))
    }

    /// Sets the length to `len` (e.g. to what a read returned). Every byte up to the capacity is
    /// initialised, so growing is allowed and exposes old (or zero) bytes.
    ///
    /// # Panics
    ///
    /// If `len` exceeds [`capacity`](Self::capacity).
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity(),
            "set_len({len}) beyond the buffer's capacity {}",
            self.capacity()
        );
        self.len = len;
    }

    /// A pointer to the first byte (aligned to the pool's alignment), valid for reads of
    /// [`capacity`](Self::capacity) bytes while the buffer lives.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// A pointer to the first byte, valid for reads and writes of
    /// [`capacity`](Self::capacity) bytes while the buffer lives.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The first [`len`](Self::len) bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `capacity` bytes and owned by `self` (invariants 1, 2), all
        // initialised (invariant 3); `len <= capacity` (invariant 4); `&self` excludes writers.
        unsafe { slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The first [`len`](Self::len) bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only access.
        unsafe { slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` is a class-`class` buffer of `pool` handed out by `take` (invariant 1),
        // owned by this `Buffer` (invariant 2), which never uses it again.
        unsafe {
            self.pool
                .give_back(RawBuf(self.ptr), usize::from(self.class))
        }
        // `self.pool` is dropped after this body, with no thread-cache borrow held, so a pool
        // dropped here can sweep this thread's cache.
    }
}

impl Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsMut<[u8]> for Buffer {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Where an operation reads or writes: a raw pointer and length, or a slice of a registered
/// (fixed) buffer. `Copy`, without a lifetime: this is what the unsafe operation API takes, and
/// keeping the memory valid until the operation completes is that API's contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferRef {
    repr: Repr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repr {
    Ptr { ptr: *mut u8, len: usize },
    Fixed { index: u16, offset: usize },
}

// SAFETY: a `BufferRef` is an address and a length (or an index and an offset); it never
// dereferences anything. The memory is only accessed by an operation submitted through the
// unsafe operation API, whose contract makes the submitter guarantee the memory's validity and
// exclusivity for the operation's duration, on whichever thread completes it.
unsafe impl Send for BufferRef {}
// SAFETY: as for `Send`: shared `&BufferRef` only reads the address and length.
unsafe impl Sync for BufferRef {}

impl BufferRef {
    /// A reference to `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// When an operation using it is submitted, `ptr` must be valid for `len` bytes of the
    /// operation's access (reads for a write, writes for a read) until the operation completes,
    /// and nothing else may access the bytes in a conflicting way meanwhile.
    pub unsafe fn from_ptr(ptr: *mut u8, len: usize) -> BufferRef {
        BufferRef {
            repr: Repr::Ptr { ptr, len },
        }
    }

    /// A reference to `slice`, for operations that only read it (writes to a file or socket).
    ///
    /// # Safety
    ///
    /// The slice must stay valid and unmodified until every operation using the reference
    /// completes, and the reference must not be used for an operation that writes memory.
    pub unsafe fn from_slice(slice: &[u8]) -> BufferRef {
        BufferRef {
            repr: Repr::Ptr {
                ptr: slice.as_ptr().cast_mut(),
                len: slice.len(),
            },
        }
    }

    /// A reference to `slice`, for operations that write it (reads from a file or socket).
    ///
    /// # Safety
    ///
    /// The slice must stay valid, and must not be accessed other than by the operation, until
    /// every operation using the reference completes.
    pub unsafe fn from_mut_slice(slice: &mut [u8]) -> BufferRef {
        BufferRef {
            repr: Repr::Ptr {
                ptr: slice.as_mut_ptr(),
                len: slice.len(),
            },
        }
    }

    /// A reference into registered buffer `index`, starting `offset` bytes into it. The length
    /// is the operation's length argument.
    pub fn fixed(index: u16, offset: usize) -> BufferRef {
        BufferRef {
            repr: Repr::Fixed { index, offset },
        }
    }

    /// The address (null for a registered buffer reference).
    pub fn ptr(&self) -> *mut u8 {
        match self.repr {
            Repr::Ptr { ptr, .. } => ptr,
            Repr::Fixed { .. } => std::ptr::null_mut(),
        }
    }

    /// The length in bytes (0 for a registered buffer reference: the operation carries it).
    pub fn len(&self) -> usize {
        match self.repr {
            Repr::Ptr { len, .. } => len,
            Repr::Fixed { .. } => 0,
        }
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The registered buffer's index and the offset into it, for a [`fixed`](Self::fixed)
    /// reference.
    pub fn fixed_index(&self) -> Option<(u16, usize)> {
        match self.repr {
            Repr::Fixed { index, offset } => Some((index, offset)),
            Repr::Ptr { .. } => None,
        }
    }

    /// Whether this references a registered buffer.
    pub fn is_fixed(&self) -> bool {
        matches!(self.repr, Repr::Fixed { .. })
    }
}

/// The buffer's first [`len`](Buffer::len) bytes (for operations that read it, e.g. writes to a
/// file).
impl From<&Buffer> for BufferRef {
    fn from(buf: &Buffer) -> BufferRef {
        BufferRef {
            repr: Repr::Ptr {
                ptr: buf.ptr.as_ptr(),
                len: buf.len,
            },
        }
    }
}

/// The buffer's first [`len`](Buffer::len) bytes (for operations that write it, e.g. reads from
/// a file).
impl From<&mut Buffer> for BufferRef {
    fn from(buf: &mut Buffer) -> BufferRef {
        BufferRef::from(&*buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::mpsc;
    use std::thread;

    /// How many pools this thread has cache entries for.
    fn thread_cache_entries() -> usize {
        CACHES.with(|c| c.borrow().entries.len())
    }

    fn invalid_text(e: Error) -> String {
        match e {
            Error::InvalidArgument(what) => what,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn sizes_map_to_classes() {
        assert_eq!(size_class(1).unwrap(), 0);
        assert_eq!(size_class(4095).unwrap(), 0);
        assert_eq!(size_class(4096).unwrap(), 0);
        assert_eq!(size_class(4097).unwrap(), 1);
        assert_eq!(size_class(8192).unwrap(), 1);
        assert_eq!(size_class(8193).unwrap(), 2);
        assert_eq!(size_class(1 << 20).unwrap(), 8);
        assert_eq!(size_class(MAX_BUFFER_SIZE - 1).unwrap(), 15);
        assert_eq!(size_class(MAX_BUFFER_SIZE).unwrap(), 15);
        for bad in [0, MAX_BUFFER_SIZE + 1, usize::MAX] {
            let text = invalid_text(size_class(bad).unwrap_err());
            assert!(
                text.contains("size") && text.contains("134217728"),
                "{text}"
            );
        }
        assert_eq!(class_size(15), MAX_BUFFER_SIZE);

        let pool = BufferPool::with_default_alignment();
        let b = pool.alloc(1).unwrap();
        assert_eq!((b.len(), b.capacity()), (1, 4096));
        let b = pool.alloc(4097).unwrap();
        assert_eq!((b.len(), b.capacity()), (4097, 8192));
        assert!(pool.alloc(0).is_err());
        assert!(pool.alloc(MAX_BUFFER_SIZE + 1).is_err());
        if !cfg!(miri) {
            let b = pool.alloc(MAX_BUFFER_SIZE).unwrap();
            assert_eq!((b.len(), b.capacity()), (MAX_BUFFER_SIZE, MAX_BUFFER_SIZE));
        }
    }

    #[test]
    fn shard_counts() {
        assert_eq!(shard_count(1), 2);
        assert_eq!(shard_count(8), 2);
        assert_eq!(shard_count(12), 4);
        assert_eq!(shard_count(64), 16);
        assert_eq!(shard_count(100), 32);
        assert_eq!(shard_count(4096), 256);
        let s = BufferPool::with_default_alignment().stats();
        assert!(s.shard_count.is_power_of_two() && (2..=256).contains(&s.shard_count));
    }

    #[test]
    fn alignment_is_validated() {
        for bad in [0, 1, 2, 4, 3, 4097, 3 << 20, 1 << 31, usize::MAX] {
            let text = invalid_text(BufferPool::new(bad).unwrap_err());
            assert!(text.contains("buffer_alignment"), "{text}");
        }
        for good in [8, 4096, 2 << 20, 1 << 30] {
            assert_eq!(BufferPool::new(good).unwrap().alignment(), good);
        }
        assert_eq!(BufferPool::default().alignment(), DEFAULT_ALIGNMENT);
    }

    #[test]
    fn pointers_are_aligned() {
        let max_class = if cfg!(miri) { 3 } else { 10 };
        for alignment in [4096, 2 << 20] {
            let pool = BufferPool::new(alignment).unwrap();
            let mut held = Vec::new();
            for class in 0..=max_class {
                for size in [class_size(class) / 2 + 1, class_size(class)] {
                    let b = pool.alloc(size).unwrap();
                    assert_eq!(b.as_ptr() as usize % alignment, 0, "{size} @ {alignment}");
                    assert_eq!(b.capacity(), class_size(class));
                    held.push(b);
                }
            }
            // Reused buffers are aligned too.
            drop(held);
            for class in 0..=max_class {
                let b = pool.alloc(class_size(class)).unwrap();
                assert_eq!(b.as_ptr() as usize % alignment, 0);
            }
        }
    }

    #[test]
    fn reuse_hits_the_thread_cache() {
        let pool = BufferPool::with_default_alignment();
        let b = pool.alloc(5000).unwrap();
        let p = b.as_ptr();
        drop(b);
        let b = pool.alloc(8192).unwrap();
        assert_eq!(b.as_ptr(), p);
        let s = pool.stats();
        assert_eq!((s.total_buffers, s.total_allocated_bytes), (1, 8192));
        assert_eq!((s.in_use_buffers, s.in_use_bytes), (1, 8192));
        // Another class does not reuse it.
        let c = pool.alloc(4096).unwrap();
        assert_ne!(c.as_ptr(), p);
    }

    #[test]
    fn fresh_buffers_are_zeroed_and_writable_over_their_capacity() {
        let pool = BufferPool::with_default_alignment();
        let mut b = pool.alloc(10_000).unwrap();
        assert_eq!(b.len(), 10_000);
        assert!(b.iter().all(|&x| x == 0));
        let cap = b.capacity();
        b.set_len(cap);
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        assert!(b.iter().enumerate().all(|(i, &x)| x == i as u8));
        b.set_len(10);
        assert_eq!(b.as_slice(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        b.set_len(0);
        assert!(b.is_empty());
        // Reuse keeps the old (initialised) bytes.
        drop(b);
        let b = pool.alloc(16_384).unwrap();
        assert_eq!(b[5], 5);
    }

    #[test]
    #[should_panic(expected = "beyond the buffer's capacity")]
    fn set_len_beyond_capacity_panics() {
        let pool = BufferPool::with_default_alignment();
        let mut b = pool.alloc(100).unwrap();
        b.set_len(4097);
    }

    #[test]
    fn cross_thread_free_goes_to_the_freeing_threads_cache() {
        let pool = BufferPool::with_default_alignment();
        let b = pool.alloc(4096).unwrap();
        let p = b.as_ptr() as usize;
        let pool2 = pool.clone();
        thread::spawn(move || {
            drop(b);
            // The freeing thread's cache got it.
            let again = pool2.alloc(100).unwrap();
            assert_eq!(again.as_ptr() as usize, p);
        })
        .join()
        .unwrap();
        let s = pool.stats();
        assert_eq!((s.in_use_buffers, s.in_use_bytes), (0, 0));
        // The exited thread flushed it to its shard: still allocated, and trim frees it.
        assert_eq!(s.total_buffers, 1);
        pool.trim();
        assert_eq!(pool.stats().total_buffers, 0);
    }

    #[test]
    fn stats_return_to_zero_in_use() {
        let pool = BufferPool::with_default_alignment();
        let bufs: Vec<_> = [1, 4096, 5000, 70_000, 1 << 20]
            .into_iter()
            .map(|n| pool.alloc(n).unwrap())
            .collect();
        let s = pool.stats();
        let bytes = 4096 + 4096 + 8192 + 131_072 + (1 << 20);
        assert_eq!((s.in_use_buffers, s.in_use_bytes), (5, bytes));
        assert_eq!((s.total_buffers, s.total_allocated_bytes), (5, bytes));
        drop(bufs);
        let s = pool.stats();
        assert_eq!((s.in_use_buffers, s.in_use_bytes), (0, 0));
        assert_eq!((s.total_buffers, s.total_allocated_bytes), (5, bytes));
    }

    #[test]
    fn trim_frees_the_caches() {
        let pool = BufferPool::with_default_alignment();
        let n = 40; // over THREAD_CACHE_MAX: some are flushed to the shard
        let bufs: Vec<_> = (0..n).map(|_| pool.alloc(4096).unwrap()).collect();
        drop(bufs);
        let s = pool.stats();
        assert_eq!((s.total_buffers, s.total_allocated_bytes), (n, n * 4096));
        pool.trim();
        let s = pool.stats();
        assert_eq!(
            (s.total_buffers, s.total_allocated_bytes, s.in_use_buffers),
            (0, 0, 0)
        );
        // The pool still works after a trim.
        let b = pool.alloc(1).unwrap();
        assert_eq!(pool.stats().total_buffers, 1);
        drop(b);
    }

    #[test]
    fn large_classes_are_capped_by_bytes() {
        let pool = BufferPool::with_default_alignment();
        // 8 MiB: none in the thread cache (4 MiB per class), 2 in the shard (16 MiB per class).
        let bufs: Vec<_> = (0..6).map(|_| pool.alloc(8 << 20).unwrap()).collect();
        assert_eq!(pool.stats().total_allocated_bytes, 6 * (8 << 20));
        drop(bufs);
        let s = pool.stats();
        assert_eq!((s.total_buffers, s.total_allocated_bytes), (2, 16 << 20));
        // A cached one is reused.
        let b = pool.alloc(8 << 20).unwrap();
        assert_eq!(pool.stats().total_buffers, 2);
        drop(b);
        // 128 MiB: never cached anywhere.
        let big = pool.alloc(MAX_BUFFER_SIZE).unwrap();
        drop(big);
        assert_eq!(pool.stats().total_allocated_bytes, 16 << 20);
        // 1 MiB: 4 per thread cache, the rest of 40 to the shard up to 16 (16 MiB), then freed.
        let bufs: Vec<_> = (0..40).map(|_| pool.alloc(1 << 20).unwrap()).collect();
        drop(bufs);
        let s = pool.stats();
        assert!(
            s.total_allocated_bytes <= (16 << 20) + (4 << 20) + (16 << 20),
            "{s:?}"
        );
        assert_eq!(
            caps_by_bytes(THREAD_CACHE_CLASS_BYTES, THREAD_CACHE_MAX),
            [32, 32, 32, 32, 32, 32, 16, 8, 4, 2, 1, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            caps_by_bytes(SHARD_CLASS_BYTES, SHARD_CLASS_MAX),
            [256, 256, 256, 256, 256, 128, 64, 32, 16, 8, 4, 2, 1, 0, 0, 0]
        );
    }

    #[test]
    fn shard_overflow_goes_back_to_the_allocator() {
        let pool = BufferPool::with_default_alignment();
        let n = SHARD_CLASS_MAX + 2 * THREAD_CACHE_MAX;
        let n = if cfg!(miri) { n.min(400) } else { n };
        let bufs: Vec<_> = (0..n).map(|_| pool.alloc(4096).unwrap()).collect();
        drop(bufs);
        // At most the thread cache and one shard's class keep buffers.
        let s = pool.stats();
        assert!(
            s.total_buffers <= THREAD_CACHE_MAX + SHARD_CLASS_MAX,
            "{s:?}"
        );
        assert_eq!(s.total_allocated_bytes, s.total_buffers * 4096);
        assert_eq!(s.in_use_buffers, 0);
    }

    #[test]
    fn pools_do_not_share_buffers() {
        let a = BufferPool::with_default_alignment();
        let b = BufferPool::with_default_alignment();
        let x = a.alloc(4096).unwrap();
        let px = x.as_ptr();
        drop(x);
        let y = b.alloc(4096).unwrap();
        assert_ne!(y.as_ptr(), px);
        assert_eq!(a.stats().in_use_buffers, 0);
        assert_eq!(b.stats().in_use_buffers, 1);
        assert_eq!(a.alloc(4096).unwrap().as_ptr(), px);
    }

    #[test]
    fn dropping_the_pool_while_buffers_are_out_is_safe() {
        let pool = BufferPool::new(8192).unwrap();
        let cached = pool.alloc(100).unwrap();
        let mut out: Vec<_> = (0..3).map(|i| pool.alloc(4096 << i).unwrap()).collect();
        drop(cached);
        drop(pool);
        for b in &mut out {
            let cap = b.capacity();
            b.set_len(cap);
            b.fill(0xab);
        }
        // The last buffer goes away on another thread: the pool dies there.
        let last = out.pop().unwrap();
        drop(out);
        thread::spawn(move || {
            assert!(last.iter().all(|&x| x == 0xab));
            drop(last);
            assert_eq!(
                thread_cache_entries(),
                0,
                "the dying pool swept this thread's entry"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_dead_pools_cache_entries_are_swept() {
        let pool = BufferPool::with_default_alignment();
        let (to_worker, worker_rx) = mpsc::channel::<()>();
        let (to_main, main_rx) = mpsc::channel::<()>();
        let p = pool.clone();
        let worker = thread::spawn(move || {
            drop(p.alloc(4096).unwrap()); // cached in this thread
            drop(p);
            to_main.send(()).unwrap();
            worker_rx.recv().unwrap(); // the pool is dead now
            assert_eq!(thread_cache_entries(), 1);
            // Touching another pool sweeps the dead entry (and frees its buffer).
            let other = BufferPool::with_default_alignment();
            drop(other.alloc(1).unwrap());
            assert_eq!(thread_cache_entries(), 1);
            drop(other);
            assert_eq!(thread_cache_entries(), 0);
        });
        main_rx.recv().unwrap();
        drop(pool);
        to_worker.send(()).unwrap();
        worker.join().unwrap();
    }

    #[test]
    fn stress_four_threads_random_sizes() {
        let pool = BufferPool::with_default_alignment();
        let iters = if cfg!(miri) { 150 } else { 20_000 };
        let max_size = if cfg!(miri) { 20_000 } else { 1 << 20 };
        let (tx, rx) = mpsc::channel::<Buffer>();
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = pool.clone();
                let tx = tx.clone();
                thread::spawn(move || {
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
                    let mut next = || {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng
                    };
                    let mut live: Vec<Buffer> = Vec::new();
                    for i in 0..iters {
                        let size = 1 + (next() as usize % max_size);
                        let mut b = pool.alloc(size).unwrap();
                        assert_eq!(b.as_ptr() as usize % 4096, 0);
                        assert!(
                            b.capacity() >= size
                                && (b.capacity() == 4096 || b.capacity() < 2 * size)
                        );
                        let tag = (t as u8) << 4 | (i as u8 & 0xf);
                        b[0] = tag;
                        b[size - 1] = tag;
                        live.push(b);
                        if live.len() > 8 || next() % 3 == 0 {
                            let b = live.swap_remove(next() as usize % live.len());
                            let tag = b[0];
                            assert_eq!(b[b.len() - 1], tag, "buffer shared between owners");
                            if next() % 5 == 0 {
                                // Cross-thread free.
                                tx.send(b).unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        // Explicit joins (not `thread::scope`): `join` returns after the thread-local destructors
        // flushed the workers' caches.
        let mut freed = 0usize;
        for b in rx {
            drop(b);
            freed += 1;
        }
        for h in handles {
            h.join().unwrap();
        }
        assert!(freed > 0);
        let s = pool.stats();
        assert_eq!((s.in_use_buffers, s.in_use_bytes), (0, 0), "{s:?}");
        assert!(s.total_buffers > 0 && s.total_allocated_bytes >= s.total_buffers * 4096);
        pool.trim();
        let s = pool.stats();
        assert_eq!((s.total_buffers, s.total_allocated_bytes), (0, 0), "{s:?}");
    }

    #[test]
    fn no_buffer_is_handed_out_twice() {
        let pool = BufferPool::with_default_alignment();
        let n = if cfg!(miri) { 80 } else { 600 };
        let mut seen = HashSet::new();
        let bufs: Vec<_> = (0..n).map(|_| pool.alloc(4096).unwrap()).collect();
        for b in &bufs {
            assert!(seen.insert(b.as_ptr() as usize));
        }
        drop(bufs);
        seen.clear();
        let bufs: Vec<_> = (0..n).map(|_| pool.alloc(4096).unwrap()).collect();
        for b in &bufs {
            assert!(seen.insert(b.as_ptr() as usize));
        }
    }

    #[test]
    fn local_cache_and_shard_hand_off() {
        let shard = Shard::new(3);
        let mut a = LocalCache::new(4, 2);
        let mut b = LocalCache::new(4, 2);
        let mut store = [0u8; 8];
        let bufs: Vec<RawBuf> = store.iter_mut().map(|x| RawBuf(NonNull::from(x))).collect();
        let mut freed = Vec::new();
        for &buf in &bufs[..5] {
            a.put(0, buf, &shard, |_, x| freed.push(x));
        }
        // The fifth put flushed the two oldest to the shard.
        assert_eq!((a.len(0), freed.len()), (3, 0));
        assert_eq!(b.take(0, &shard), Some(bufs[1]));
        assert_eq!(b.len(0), 1);
        // b's refill took both (batch 2): b holds bufs[0], the shard is empty.
        assert_eq!(shard.pop_one(0), None);
        assert_eq!(shard.push_one(0, bufs[5]), Ok(()));
        // Room for 2 of a's 3: the last one goes to `free`.
        a.flush_all(&shard, |_, x| freed.push(x));
        assert_eq!(freed, [bufs[4]]);
        assert_eq!(shard.push_one(0, bufs[6]), Err(bufs[6]));
        let mut all = Vec::new();
        shard.drain_all(|_, x| all.push(x));
        b.drain_all(|_, x| all.push(x));
        all.extend(freed);
        all.push(bufs[1]);
        all.sort_by_key(|x| x.0.as_ptr() as usize);
        assert_eq!(all, bufs[..6]);
    }

    #[test]
    fn buffer_refs() {
        let pool = BufferPool::with_default_alignment();
        let mut b = pool.alloc(300).unwrap();
        let r = BufferRef::from(&b);
        assert_eq!((r.ptr().cast_const(), r.len()), (b.as_ptr(), 300));
        assert!(!r.is_fixed() && r.fixed_index().is_none());
        assert_eq!(BufferRef::from(&mut b), r);
        let f = BufferRef::fixed(7, 4096);
        assert!(f.is_fixed() && f.ptr().is_null() && f.is_empty());
        assert_eq!(f.fixed_index(), Some((7, 4096)));
        let mut v = [1u8; 10];
        // SAFETY: the references are only inspected, never used for I/O.
        let (s, m, p) = unsafe {
            (
                BufferRef::from_slice(&v[..4]),
                BufferRef::from_mut_slice(&mut v[2..]),
                BufferRef::from_ptr(std::ptr::null_mut(), 5),
            )
        };
        assert_eq!((s.len(), m.len(), p.len()), (4, 8, 5));
        fn send_sync<T: Send + Sync>() {}
        send_sync::<BufferRef>();
        send_sync::<Buffer>();
        send_sync::<BufferPool>();
    }
}
