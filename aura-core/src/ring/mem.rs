//! `RingMem`: the shared-memory layout of one ring, backed by the kernel's mmap or by a heap
//! buffer that a simulated kernel drives.
//!
//! # Safety
//!
//! This module and its siblings `sq.rs` / `cq.rs` are the only code that dereferences ring
//! memory. The invariants they rely on:
//! - every pointer in [`SqRaw`] / [`CqRaw`] was computed from the kernel's offsets (or the heap
//!   layout) and stays valid while the owning [`RingMem`] is alive: the mappings (or the heap
//!   allocation) are released only in `RingMem`'s drop;
//! - head/tail/flags words are only ever accessed through `AtomicU32`, which has the layout of the
//!   kernel's `u32` (the kernel uses `READ_ONCE` / `smp_load_acquire` / `smp_store_release`);
//! - an SQE slot is written by the application only while it sits between the kernel's head and
//!   the application's unpublished tail, and a CQE slot is read only while it sits between the
//!   application's head and the kernel's published tail; the Acquire/Release pairs on the indexes
//!   (documented at each access) make those accesses race-free.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::sync::{AtomicU32, Cell, Ordering};
use crate::sys::abi::{Cqe, Sqe};

/// Pointers into the submission ring.
#[derive(Copy, Clone, Debug)]
pub(crate) struct SqRaw {
    /// Kernel-owned consumer index.
    pub(crate) head: *const AtomicU32,
    /// Application-owned producer index.
    pub(crate) tail: *const AtomicU32,
    /// `IORING_SQ_*` flags, kernel-written.
    pub(crate) flags: *const AtomicU32,
    /// SQEs the kernel dropped as invalid.
    pub(crate) dropped: *const AtomicU32,
    /// The indirection array, or null with `IORING_SETUP_NO_SQARRAY`.
    pub(crate) array: *const Cell<u32>,
    /// The SQE array.
    pub(crate) sqes: *const Cell<Sqe>,
    pub(crate) mask: u32,
    pub(crate) entries: u32,
}

/// Pointers into the completion ring.
#[derive(Copy, Clone, Debug)]
pub(crate) struct CqRaw {
    /// Application-owned consumer index.
    pub(crate) head: *const AtomicU32,
    /// Kernel-owned producer index.
    pub(crate) tail: *const AtomicU32,
    /// `IORING_CQ_*` flags, application-written.
    pub(crate) flags: *const AtomicU32,
    /// CQEs lost because even the overflow list could not take them.
    pub(crate) overflow: *const AtomicU32,
    /// The CQE array.
    pub(crate) cqes: *const Cell<Cqe>,
    pub(crate) mask: u32,
    pub(crate) entries: u32,
}

impl SqRaw {
    /// The atomic word at `p`.
    #[inline(always)]
    pub(crate) fn word(&self, p: *const AtomicU32) -> &AtomicU32 {
        // SAFETY: `p` is one of this struct's index/flag pointers, valid while the RingMem that
        // produced `self` is alive (module invariant); `&self` is borrowed from that RingMem.
        unsafe { &*p }
    }

    /// Writes `sqe` into slot `idx & mask`. (With an SQ array, slot `i` of the array always holds
    /// `i`: it is set once at setup, so pushing never touches it.)
    ///
    /// # Safety
    ///
    /// The slot must be free: between the kernel's head and the application's unpublished tail.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, idx: u32, sqe: &Sqe) {
        let slot = (idx & self.mask) as usize;
        // SAFETY: `slot < entries`, so the pointer is inside the SQE array; the caller guarantees
        // the kernel is not reading this slot (it lies beyond the published tail).
        unsafe { (*self.sqes.add(slot)).with_mut(|p| p.write(*sqe)) };
    }

    /// Writes `sqe` into slot `idx`, with `user_data` in place of its own: the entry is copied
    /// from where it was built and the one field stored after, in the slot (setting it on a copy
    /// first would store 8 bytes inside a value about to be reloaded 16 at a time).
    ///
    /// # Safety
    ///
    /// As for [`SqRaw::write`].
    #[inline(always)]
    pub(crate) unsafe fn write_with_user_data(&self, idx: u32, sqe: &Sqe, user_data: u64) {
        let slot = (idx & self.mask) as usize;
        // SAFETY: as in `write`: the slot is inside the array and not read by the kernel; the
        // field pointer is derived from the slot's own pointer, which was just initialised.
        unsafe {
            (*self.sqes.add(slot)).with_mut(|p| {
                p.write(*sqe);
                core::ptr::addr_of_mut!((*p).user_data).write(user_data);
            })
        };
    }
}

impl CqRaw {
    /// The atomic word at `p`.
    #[inline(always)]
    pub(crate) fn word(&self, p: *const AtomicU32) -> &AtomicU32 {
        // SAFETY: `p` is one of this struct's index/flag pointers, valid while the RingMem that
        // produced `self` is alive (module invariant).
        unsafe { &*p }
    }

    /// Reads the CQE in slot `idx & mask`.
    ///
    /// # Safety
    ///
    /// The slot must be published: between the application's head and the kernel's tail as read
    /// with Acquire.
    #[inline(always)]
    pub(crate) unsafe fn read(&self, idx: u32) -> Cqe {
        let slot = (idx & self.mask) as usize;
        // SAFETY: `slot < entries`; the caller guarantees the kernel published this slot and will
        // not overwrite it before the head moves past it.
        unsafe { (*self.cqes.add(slot)).with(|p| p.read()) }
    }
}

/// The memory of one ring: index words, flags and entry arrays, shared with a kernel.
#[derive(Debug)]
pub struct RingMem {
    pub(crate) sq: SqRaw,
    pub(crate) cq: CqRaw,
    backing: Backing,
}

// SAFETY: RingMem owns its mappings / heap allocation; the raw pointers only point into them, and
// every access goes through atomics or the slot ownership protocol described in the module docs,
// which does not depend on which thread performs it.
unsafe impl Send for RingMem {}
// SAFETY: shared access only reads the pointer values; mutation of ring memory happens through
// `Sq`/`Cq` views that require `&mut Ring`, or through atomics.
unsafe impl Sync for RingMem {}

#[derive(Debug)]
enum Backing {
    #[cfg(not(loom))]
    Mmap(Mappings),
    Heap(#[allow(dead_code)] Arc<HeapRing>),
}

// SAFETY: HeapRing is shared between the application side (RingMem) and the simulated kernel
// (KernelSide), exactly like the kernel's mapping: index and flag words are atomics, and each
// entry cell is accessed by one side at a time under the head/tail protocol (module docs).
unsafe impl Sync for HeapRing {}
// SAFETY: as above; HeapRing owns plain data and no thread-bound state.
unsafe impl Send for HeapRing {}

/// Heap memory laid out like a ring, for the simulated kernel.
#[derive(Debug)]
pub(crate) struct HeapRing {
    sq_head: AtomicU32,
    sq_tail: AtomicU32,
    sq_flags: AtomicU32,
    sq_dropped: AtomicU32,
    cq_head: AtomicU32,
    cq_tail: AtomicU32,
    cq_flags: AtomicU32,
    cq_overflow: AtomicU32,
    array: Box<[Cell<u32>]>,
    sqes: Box<[Cell<Sqe>]>,
    cqes: Box<[Cell<Cqe>]>,
}

impl RingMem {
    /// Heap ring memory with `sq_entries` / `cq_entries` slots (each a power of two), plus the
    /// kernel's view of the same memory for a simulated kernel.
    pub(crate) fn heap(sq_entries: u32, cq_entries: u32, sq_array: bool) -> (RingMem, KernelSide) {
        debug_assert!(sq_entries.is_power_of_two() && cq_entries.is_power_of_two());
        let cells =
            |n: u32| -> Vec<Cell<Sqe>> { (0..n).map(|_| Cell::new(Sqe::default())).collect() };
        let heap = Arc::new(HeapRing {
            sq_head: AtomicU32::new(0),
            sq_tail: AtomicU32::new(0),
            sq_flags: AtomicU32::new(0),
            sq_dropped: AtomicU32::new(0),
            cq_head: AtomicU32::new(0),
            cq_tail: AtomicU32::new(0),
            cq_flags: AtomicU32::new(0),
            cq_overflow: AtomicU32::new(0),
            array: (0..if sq_array { sq_entries } else { 0 })
                .map(Cell::new)
                .collect(),
            sqes: cells(sq_entries).into_boxed_slice(),
            cqes: (0..cq_entries).map(|_| Cell::new(Cqe::default())).collect(),
        });
        let sq = SqRaw {
            head: &heap.sq_head,
            tail: &heap.sq_tail,
            flags: &heap.sq_flags,
            dropped: &heap.sq_dropped,
            array: if sq_array {
                heap.array.as_ptr()
            } else {
                core::ptr::null()
            },
            sqes: heap.sqes.as_ptr(),
            mask: sq_entries - 1,
            entries: sq_entries,
        };
        let cq = CqRaw {
            head: &heap.cq_head,
            tail: &heap.cq_tail,
            flags: &heap.cq_flags,
            overflow: &heap.cq_overflow,
            cqes: heap.cqes.as_ptr(),
            mask: cq_entries - 1,
            entries: cq_entries,
        };
        let kernel = KernelSide {
            sq,
            cq,
            _keep: heap.clone(),
        };
        (
            RingMem {
                sq,
                cq,
                backing: Backing::Heap(heap),
            },
            kernel,
        )
    }

    /// Whether this memory is the kernel's mapping (as opposed to a simulated kernel's heap).
    pub fn is_mapped(&self) -> bool {
        !matches!(self.backing, Backing::Heap(_))
    }

    /// Whether the SQ and CQ rings share one mapping (`IORING_FEAT_SINGLE_MMAP`).
    pub fn single_mapping(&self) -> bool {
        match &self.backing {
            #[cfg(not(loom))]
            Backing::Mmap(m) => m.cq.is_none(),
            Backing::Heap(_) => true,
        }
    }
}

#[cfg(not(loom))]
pub(crate) use mapped::{map, Mappings};

#[cfg(not(loom))]
mod mapped {
    use super::{Backing, CqRaw, RingMem, SqRaw};
    use crate::sync::Cell;
    use crate::sys::{self, abi};
    use core::mem::size_of;
    use core::ptr::NonNull;
    use rustix::fd::BorrowedFd;

    /// One mmap'd region, unmapped on drop with the length it was mapped with.
    #[derive(Debug)]
    pub(crate) struct Region {
        ptr: NonNull<u8>,
        len: usize,
    }

    impl Region {
        fn new(fd: BorrowedFd<'_>, len: usize, off: u32) -> Result<Region, crate::Errno> {
            Ok(Region {
                ptr: sys::mmap_ring(fd, len, u64::from(off))?,
                len,
            })
        }

        /// A typed pointer `off` bytes into the region.
        fn at<T>(&self, off: u32) -> *const T {
            debug_assert!(off as usize + size_of::<T>() <= self.len);
            // SAFETY: `off` comes from the kernel's offsets for this region, which lie inside the
            // `len` bytes we mapped (len was computed from those same offsets).
            unsafe { self.ptr.as_ptr().add(off as usize).cast::<T>() }
        }
    }

    impl Drop for Region {
        fn drop(&mut self) {
            // SAFETY: ptr/len are exactly one mmap_ring result, unmapped once, here; RingMem is
            // being dropped, so no view can still dereference it.
            let _ = unsafe { sys::munmap(self.ptr, self.len) };
        }
    }

    /// The kernel mappings of one ring.
    #[derive(Debug)]
    pub(crate) struct Mappings {
        _sq: Region,
        /// `None` when the CQ ring shares the SQ ring's mapping.
        pub(crate) cq: Option<Region>,
        _sqes: Region,
    }

    /// Maps a ring the kernel just set up, sizing every region from the kernel's offsets.
    ///
    /// With `single` (`IORING_FEAT_SINGLE_MMAP` and not forced apart), SQ and CQ rings share one
    /// mapping of the larger size; otherwise each is mapped at its own offset.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        p: &abi::RawParams,
        single: bool,
    ) -> Result<RingMem, crate::Errno> {
        let no_sqarray = p.flags & abi::IORING_SETUP_NO_SQARRAY != 0;
        let o = &p.sq_off;
        let mut sq_len = if no_sqarray {
            // Without the array, the SQ ring ends with its last control word.
            let last = o.head.max(o.tail).max(o.ring_mask).max(o.ring_entries);
            last.max(o.flags).max(o.dropped) as usize + size_of::<u32>()
        } else {
            p.sq_off.array as usize + p.sq_entries as usize * size_of::<u32>()
        };
        let mut cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * size_of::<abi::Cqe>();
        if single {
            sq_len = sq_len.max(cq_len);
            cq_len = sq_len;
        }
        let sq_region = Region::new(fd, sq_len, abi::IORING_OFF_SQ_RING)?;
        let cq_region = if single {
            None
        } else {
            Some(Region::new(fd, cq_len, abi::IORING_OFF_CQ_RING)?)
        };
        let sqes_len = p.sq_entries as usize * size_of::<abi::Sqe>();
        let sqes_region = Region::new(fd, sqes_len, abi::IORING_OFF_SQES)?;
        let cq_base = cq_region.as_ref().unwrap_or(&sq_region);
        let read = |r: &Region, off: u32| -> u32 {
            // SAFETY: `off` is the kernel's offset of ring_mask / ring_entries inside a live
            // mapping; the kernel set these words before io_uring_setup returned and never
            // changes them.
            unsafe { r.at::<u32>(off).read_volatile() }
        };
        let sq = SqRaw {
            head: sq_region.at(p.sq_off.head),
            tail: sq_region.at(p.sq_off.tail),
            flags: sq_region.at(p.sq_off.flags),
            dropped: sq_region.at(p.sq_off.dropped),
            array: if no_sqarray {
                core::ptr::null()
            } else {
                sq_region.at::<Cell<u32>>(p.sq_off.array)
            },
            sqes: sqes_region.at(0),
            mask: read(&sq_region, p.sq_off.ring_mask),
            entries: read(&sq_region, p.sq_off.ring_entries),
        };
        let cq = CqRaw {
            head: cq_base.at(p.cq_off.head),
            tail: cq_base.at(p.cq_off.tail),
            flags: cq_base.at(p.cq_off.flags),
            overflow: cq_base.at(p.cq_off.overflow),
            cqes: cq_base.at(p.cq_off.cqes),
            mask: read(cq_base, p.cq_off.ring_mask),
            entries: read(cq_base, p.cq_off.ring_entries),
        };
        if !sq.array.is_null() {
            // Point each array slot at the SQE of the same index once; `SqRaw::write` keeps it so.
            for i in 0..sq.entries {
                // SAFETY: `i < sq_entries`, inside the array the kernel sized; no SQE is published
                // yet, so the kernel is not reading the array.
                unsafe { (*sq.array.add(i as usize)).with_mut(|a| a.write(i)) };
            }
        }
        let mappings = Mappings {
            _sq: sq_region,
            cq: cq_region,
            _sqes: sqes_region,
        };
        Ok(RingMem {
            sq,
            cq,
            backing: Backing::Mmap(mappings),
        })
    }
}

/// The kernel's side of heap ring memory: what a simulated kernel uses to consume SQEs and post
/// CQEs, with the kernel's orderings.
#[derive(Debug)]
pub(crate) struct KernelSide {
    sq: SqRaw,
    cq: CqRaw,
    _keep: Arc<HeapRing>,
}

// SAFETY: the raw pointers point into the Arc'd heap ring this struct keeps alive; all shared
// words are atomics and slot access follows the head/tail ownership protocol.
unsafe impl Send for KernelSide {}

impl KernelSide {
    /// SQEs published by the application and not yet consumed.
    pub(crate) fn sq_pending(&self) -> u32 {
        // Acquire pairs with the application's Release store of the tail in `Sq::sync`: the SQEs
        // below the tail are fully written before we read them.
        let tail = self.sq.word(self.sq.tail).load(Ordering::Acquire);
        // Relaxed: the kernel is the only writer of the SQ head.
        let head = self.sq.word(self.sq.head).load(Ordering::Relaxed);
        tail.wrapping_sub(head)
    }

    /// Consumes the next published SQE. An out-of-range SQ-array index is dropped (counted in
    /// `dropped`) the way the kernel does, and `Err(())` is returned for it.
    pub(crate) fn pop_sqe(&self) -> Option<Result<Sqe, ()>> {
        if self.sq_pending() == 0 {
            return None;
        }
        let head = self.sq.word(self.sq.head).load(Ordering::Relaxed);
        let mut slot = head & self.sq.mask;
        if !self.sq.array.is_null() {
            // SAFETY: slot < entries; the Acquire in sq_pending ordered the application's write of
            // this array slot before this read.
            slot = unsafe { (*self.sq.array.add(slot as usize)).with(|p| p.read()) };
        }
        let out = if slot >= self.sq.entries {
            self.sq
                .word(self.sq.dropped)
                .fetch_add(1, Ordering::Relaxed);
            Err(())
        } else {
            // SAFETY: as above, for the SQE slot itself.
            Ok(unsafe { (*self.sq.sqes.add(slot as usize)).with(|p| p.read()) })
        };
        // Release pairs with the application's Acquire load of the head in `Sq`: our read of the
        // slot happens before the application may overwrite it.
        self.sq
            .word(self.sq.head)
            .store(head.wrapping_add(1), Ordering::Release);
        Some(out)
    }

    /// Free CQ slots.
    pub(crate) fn cq_space(&self) -> u32 {
        // Acquire pairs with the application's Release store of the head in `Cq::sync`: the
        // application finished reading the slots it released.
        let head = self.cq.word(self.cq.head).load(Ordering::Acquire);
        // Relaxed: the kernel is the only writer of the CQ tail.
        let tail = self.cq.word(self.cq.tail).load(Ordering::Relaxed);
        self.cq.entries - tail.wrapping_sub(head)
    }

    /// Posts a CQE; `false` when the CQ is full.
    pub(crate) fn push_cqe(&self, cqe: Cqe) -> bool {
        if self.cq_space() == 0 {
            return false;
        }
        let tail = self.cq.word(self.cq.tail).load(Ordering::Relaxed);
        let slot = (tail & self.cq.mask) as usize;
        // SAFETY: slot < entries, and cq_space() > 0 means the application released it.
        unsafe { (*self.cq.cqes.add(slot)).with_mut(|p| p.write(cqe)) };
        // Release pairs with the application's Acquire load of the tail in `Cq`: the CQE is
        // written before it becomes visible.
        self.cq
            .word(self.cq.tail)
            .store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Sets or clears `IORING_SQ_*` bits.
    pub(crate) fn set_sq_flags(&self, bits: u32, on: bool) {
        let w = self.sq.word(self.sq.flags);
        // Release: a reader that sees the flag (e.g. CQ_OVERFLOW) also sees the state behind it.
        if on {
            w.fetch_or(bits, Ordering::Release);
        } else {
            w.fetch_and(!bits, Ordering::Release);
        }
    }

    /// Counts CQEs lost for good.
    pub(crate) fn add_overflow(&self, n: u32) {
        self.cq
            .word(self.cq.overflow)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// The SQ ring size.
    pub(crate) fn sq_entries(&self) -> u32 {
        self.sq.entries
    }

    /// The CQ ring size.
    pub(crate) fn cq_entries(&self) -> u32 {
        self.cq.entries
    }
}
