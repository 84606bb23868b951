//! `Sq<'a>`: the application's view of the submission queue.
//!
//! The view caches the kernel's head and keeps the application's tail locally; entries pushed
//! become visible to the kernel only at [`Sq::sync`] (also run on drop), which publishes the tail
//! with Release.

use super::mem::SqRaw;
use crate::sync::{fence, Ordering};
use crate::sys::abi::{self, Sqe};

/// The submission queue has no room for the entries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct QueueFull;

impl core::fmt::Display for QueueFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the submission queue is full")
    }
}

/// A borrowed view of the submission queue. Dropping it publishes what was pushed.
#[derive(Debug)]
pub struct Sq<'a> {
    raw: &'a SqRaw,
    /// Cached kernel head (the kernel's consumer index).
    head: u32,
    /// Local tail: entries below it are written; published at `sync`.
    tail: u32,
}

impl<'a> Sq<'a> {
    pub(crate) fn new(raw: &'a SqRaw) -> Self {
        // Relaxed: the application is the only writer of the SQ tail.
        let tail = raw.word(raw.tail).load(Ordering::Relaxed);
        // Acquire pairs with the kernel's smp_store_release of the SQ head after it consumed the
        // entries below it, so the slots we then overwrite are no longer being read.
        let head = raw.word(raw.head).load(Ordering::Acquire);
        Sq { raw, head, tail }
    }

    /// Pushes one entry. A full queue hands the entry back.
    ///
    /// # Safety
    ///
    /// Every pointer the entry carries (buffers, iovecs, paths, statx or timespec structs) must
    /// stay valid, and must not be accessed in a way that conflicts with the kernel's access, until
    /// the entry's CQE is reaped (or, for linked entries cancelled by a failure, their -ECANCELED
    /// CQE). File descriptors must be open when the kernel consumes the entry. Dropping the ring
    /// does not end the kernel's access to that memory: cancel and reap first.
    #[inline]
    pub unsafe fn push(&mut self, sqe: &Sqe) -> Result<(), Sqe> {
        if self.is_full() {
            self.reload_head();
            if self.is_full() {
                return Err(*sqe);
            }
        }
        // SAFETY: the slot at `tail` lies between the kernel's head and our unpublished tail (the
        // queue is not full), so the kernel is not reading it.
        unsafe { self.raw.write(self.tail, sqe) };
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }

    /// Pushes one entry with `user_data` in place of the entry's own (the same as pushing
    /// `sqe.user_data(user_data)`, without building that copy first). A full queue hands the
    /// entry back unchanged.
    ///
    /// # Safety
    ///
    /// As for [`Sq::push`].
    #[inline]
    pub unsafe fn push_with_user_data(&mut self, sqe: &Sqe, user_data: u64) -> Result<(), Sqe> {
        if self.is_full() {
            self.reload_head();
            if self.is_full() {
                return Err(*sqe);
            }
        }
        // SAFETY: as in `push`: the slot at `tail` is not being read by the kernel.
        unsafe { self.raw.write_with_user_data(self.tail, sqe, user_data) };
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }

    /// Pushes several entries, all or none.
    ///
    /// # Safety
    ///
    /// As for [`Sq::push`], for every entry.
    pub unsafe fn push_all(&mut self, sqes: &[Sqe]) -> Result<(), QueueFull> {
        if (self.capacity() - self.len()) < sqes.len() as u32 {
            self.reload_head();
            if (self.capacity() - self.len()) < sqes.len() as u32 {
                return Err(QueueFull);
            }
        }
        for sqe in sqes {
            // SAFETY: space for all entries was checked above; the caller's contract covers each.
            unsafe { self.raw.write(self.tail, sqe) };
            self.tail = self.tail.wrapping_add(1);
        }
        Ok(())
    }

    fn reload_head(&mut self) {
        // Acquire pairs with the kernel's Release store of the SQ head (see `new`).
        self.head = self.raw.word(self.raw.head).load(Ordering::Acquire);
    }

    /// Publishes pushed entries to the kernel and refreshes the cached head.
    #[inline]
    pub fn sync(&mut self) {
        // Release pairs with the kernel's smp_load_acquire of the SQ tail (io_sqring_entries):
        // the SQE contents written in `push` happen-before the kernel reads them.
        self.raw
            .word(self.raw.tail)
            .store(self.tail, Ordering::Release);
        self.reload_head();
    }

    /// Entries pushed (published or not) that the kernel has not consumed yet.
    pub fn len(&self) -> u32 {
        self.tail.wrapping_sub(self.head)
    }

    /// Whether no entry waits for the kernel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is full (as of the cached head).
    pub fn is_full(&self) -> bool {
        self.len() == self.raw.entries
    }

    /// The queue's size.
    pub fn capacity(&self) -> u32 {
        self.raw.entries
    }

    /// SQEs the kernel dropped as invalid since setup.
    pub fn dropped(&self) -> u32 {
        // Relaxed: a statistic with no data behind it.
        self.raw.word(self.raw.dropped).load(Ordering::Relaxed)
    }

    /// Whether the SQPOLL thread sleeps and needs `IORING_ENTER_SQ_WAKEUP`.
    ///
    /// Issues a SeqCst fence first: our tail store and this flag load are a store→load pair that
    /// Acquire/Release cannot order, and the kernel pairs the fence with its `smp_mb()` after
    /// setting NEED_WAKEUP (liburing `sq_ring_needs_enter`, axboe/liburing#541). Without it the
    /// thread can go to sleep unseen and the entries just published are never consumed.
    pub fn need_wakeup(&self) -> bool {
        fence(Ordering::SeqCst);
        self.raw.word(self.raw.flags).load(Ordering::Relaxed) & abi::IORING_SQ_NEED_WAKEUP != 0
    }

    /// Whether the kernel holds completions on its overflow list (the CQ was full): only an enter
    /// with GETEVENTS moves them into the CQ.
    pub fn cq_overflow(&self) -> bool {
        // Relaxed: a hint that makes us enter the kernel; the CQEs themselves are ordered by the
        // CQ tail's Acquire.
        self.raw.word(self.raw.flags).load(Ordering::Relaxed) & abi::IORING_SQ_CQ_OVERFLOW != 0
    }

    /// Whether task work is pending (`IORING_SETUP_TASKRUN_FLAG`): completions will only appear
    /// after an enter with GETEVENTS.
    pub fn taskrun(&self) -> bool {
        // Relaxed: as for `cq_overflow`.
        self.raw.word(self.raw.flags).load(Ordering::Relaxed) & abi::IORING_SQ_TASKRUN != 0
    }
}

impl Drop for Sq<'_> {
    fn drop(&mut self) {
        self.sync();
    }
}
