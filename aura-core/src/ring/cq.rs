//! `Cq<'a>`: the application's view of the completion queue.
//!
//! The view caches the kernel's tail (read with Acquire) and keeps the application's head
//! locally; slots it has consumed are handed back to the kernel at [`Cq::sync`] (also run on
//! drop), which publishes the head with Release. On rings that can post CQEs of their own (the
//! internal timeout of a timed wait without `IORING_FEAT_EXT_ARG`, and simulated rings), CQEs
//! carrying the reserved `user_data` ([`crate::slab::RESERVED_USER_DATA`], `u64::MAX`) are
//! skipped; other rings leave out that check, so it costs nothing in the reap loop. Never use
//! `u64::MAX` as your own `user_data`.

use super::mem::CqRaw;
use crate::slab::RESERVED_USER_DATA;
use crate::sync::Ordering;
use crate::sys::abi::{self, Cqe};

/// A borrowed view of the completion queue; an iterator over ready CQEs.
#[derive(Debug)]
pub struct Cq<'a> {
    raw: &'a CqRaw,
    /// Local head: entries below it have been consumed; published at `sync`.
    head: u32,
    /// Cached kernel tail.
    tail: u32,
    /// Whether reserved CQEs can appear (else `next` skips the check).
    skip_reserved: bool,
}

impl<'a> Cq<'a> {
    pub(crate) fn new(raw: &'a CqRaw) -> Self {
        Self::with_filter(raw, true)
    }

    pub(crate) fn with_filter(raw: &'a CqRaw, skip_reserved: bool) -> Self {
        // Relaxed: the application is the only writer of the CQ head.
        let head = raw.word(raw.head).load(Ordering::Relaxed);
        // Acquire pairs with the kernel's smp_store_release of the CQ tail after it wrote the CQEs
        // below it.
        let tail = raw.word(raw.tail).load(Ordering::Acquire);
        Cq {
            raw,
            head,
            tail,
            skip_reserved,
        }
    }

    /// Returns consumed slots to the kernel and looks for new completions.
    #[inline]
    pub fn sync(&mut self) {
        // Release pairs with the kernel's smp_load_acquire of the CQ head before it writes a CQE
        // into a slot: our reads of the consumed slots happen-before it overwrites them.
        self.raw
            .word(self.raw.head)
            .store(self.head, Ordering::Release);
        // Acquire: as in `new`.
        self.tail = self.raw.word(self.raw.tail).load(Ordering::Acquire);
    }

    /// CQEs ready to be read (as of the cached tail), reserved ones included.
    pub fn len(&self) -> u32 {
        self.tail.wrapping_sub(self.head)
    }

    /// Whether no CQE is ready (as of the cached tail).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue's size.
    pub fn capacity(&self) -> u32 {
        self.raw.entries
    }

    /// CQEs the kernel could not deliver at all (overflow with no memory left for its list).
    pub fn overflow(&self) -> u32 {
        // Relaxed: a statistic with no data behind it.
        self.raw.word(self.raw.overflow).load(Ordering::Relaxed)
    }

    /// Stops (or resumes) eventfd notifications for this ring (`IORING_CQ_EVENTFD_DISABLED`).
    pub fn set_eventfd_enabled(&mut self, enabled: bool) {
        let w = self.raw.word(self.raw.flags);
        // Relaxed: the kernel reads this flag with READ_ONCE as a hint; no data depends on it.
        if enabled {
            w.fetch_and(!abi::IORING_CQ_EVENTFD_DISABLED, Ordering::Relaxed);
        } else {
            w.fetch_or(abi::IORING_CQ_EVENTFD_DISABLED, Ordering::Relaxed);
        }
    }

    /// Counts the ready CQEs without consuming any: those that are not the ring's own, the
    /// ring's own, and the ring's own that report an expired timer (`-ETIME`).
    pub(crate) fn peek_counts(&self) -> PeekCounts {
        let mut counts = PeekCounts::default();
        let mut i = self.head;
        while i != self.tail {
            // SAFETY: `i` lies between our head and the tail read with Acquire.
            let cqe = unsafe { self.raw.read(i) };
            if !self.skip_reserved || cqe.user_data != RESERVED_USER_DATA {
                counts.user += 1;
            } else {
                counts.internal += 1;
                if cqe.res == -crate::Errno::TIME.raw_os_error() {
                    counts.expired += 1;
                }
            }
            i = i.wrapping_add(1);
        }
        counts
    }
}

/// What [`Cq::peek_counts`] found.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeekCounts {
    /// CQEs of the application's requests.
    pub(crate) user: u32,
    /// CQEs of the ring's internal requests (reserved `user_data`).
    pub(crate) internal: u32,
    /// Internal CQEs of expired timers.
    pub(crate) expired: u32,
}

impl Iterator for Cq<'_> {
    type Item = Cqe;

    #[inline]
    fn next(&mut self) -> Option<Cqe> {
        loop {
            if self.head == self.tail {
                return None;
            }
            // SAFETY: head != tail, and the tail was read with Acquire, so this slot is published
            // and the kernel will not overwrite it before we publish a head past it.
            let cqe = unsafe { self.raw.read(self.head) };
            self.head = self.head.wrapping_add(1);
            if !self.skip_reserved || cqe.user_data != RESERVED_USER_DATA {
                return Some(cqe);
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len() as usize;
        (if self.skip_reserved { 0 } else { n }, Some(n))
    }
}

impl Drop for Cq<'_> {
    fn drop(&mut self) {
        self.sync();
    }
}
