//! `aura_request_t`: the per-engine request table, cancel, and request introspection
//! (aura.h section "Cancel and request introspection").
//!
//! # The request table
//!
//! A C request handle is a [`Slot`] of its engine's table: slots are allocated in chunks of
//! `CHUNK` that live as long as the engine, and recycled through a lock-free free list, so a
//! submission costs no allocation of its own and a stale handle still points at a `Slot` (whose
//! answers are then about whatever the slot holds now, never undefined behaviour in Rust).
//!
//! A slot's `state` holds who still needs it:
//! - `COMP`: the request, until its callback has returned (the handle stays valid while the
//!   callback runs); "pending" is `COMP` without the slot's `done` flag, which the completion
//!   sets (a plain store, no read-modify-write) just before the callback;
//! - `SUB`: only for the successor of a linked request (the `link` module): its submitter,
//!   until it was finally submitted (or completed without being submitted). It is taken before
//!   the request is submitted, so a completion that finds the state at exactly `COMP` is the
//!   slot's only user and frees it with a plain store, no read-modify-write.
//!
//! The engine records a request's handle in the slot (`aura_std::record_handle`, atomics)
//! under the ring's lock before the request can complete, so an ordinary submission needs no
//! hold of its own. The slot returns to the free list when the state drops to 0, by whoever
//! clears the last bit.
//!
//! Each use of a slot has a generation (`gen`, bumped by the submitter, the slot's only writer
//! then, after it cleared the old handle). `aura_cancel` reads the handle between two reads of
//! the generation, as a seqlock reader does, and answers `EALREADY` when they differ: the request
//! it was asked about completed and the slot was reused meanwhile, and the handle it read may
//! be the new request's, which it must not cancel. (Modelled in `tests/loom_capi_slot.rs`.)

use std::os::raw::{c_int, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering,
};
use std::sync::{Arc, Mutex};

use aura_std::RequestHandle;

use crate::error::{errno_of, EAGAIN, EALREADY, EINVAL};
use crate::ffi::{boundary, fail, opt_ref};
use crate::lifecycle::{CEngine, Shared};
use crate::link::Link;
use crate::types::AuraCallback;

/// The submitter still holds the slot.
pub(crate) const SUB: u32 = 1;
/// The completion (or the callback it runs) still needs the slot.
pub(crate) const COMP: u32 = 2;

/// Slot flag: the request uses a registered buffer.
pub(crate) const F_FIXED_BUF: u8 = 1;
/// Slot flag: the request names a registered file by index (`AURA_FIXED_FILE`).
pub(crate) const F_FIXED_FILE: u8 = 2;
/// Slot flag: `aura_request_set_linked` was applied.
pub(crate) const F_LINKED: u8 = 4;
/// Slot flag: the request was held behind a linked head (see the `link` module).
pub(crate) const F_HELD: u8 = 8;
/// Slot flag: a held request was cancelled before it was submitted.
pub(crate) const F_CANCEL: u8 = 16;

/// `want` of a request whose success is any `res >= 0`.
pub(crate) const WANT_ANY: u64 = u64::MAX;

/// Slots per chunk.
pub(crate) const CHUNK: usize = 256;
/// Chunks per engine: at most `CHUNK * MAX_CHUNKS` (1 Mi) requests in flight per engine.
pub(crate) const MAX_CHUNKS: usize = 4096;

/// One C request handle (`aura_request_t`). Every field is atomic; the [module docs](self)
/// say who may write what when.
pub struct Slot {
    state: AtomicU32,
    /// Free-list link: index + 1 of the next free slot, 0 = end.
    next: AtomicU32,
    fd: AtomicI32,
    op: AtomicU8,
    flags: AtomicU8,
    user_data: AtomicPtr<c_void>,
    /// The request completed: its callback runs or ran (it is no longer pending).
    done: AtomicBool,
    /// The result that counts as success for a link (bytes asked for), or [`WANT_ANY`].
    want: AtomicU64,
    /// The link to this request's successor (`Arc::into_raw`), or null; set by
    /// `aura_request_set_linked`, taken by the completion.
    link: AtomicPtr<Link>,
    /// The engine state this slot belongs to; set when the chunk is created, never changed.
    owner: *const Shared,
    /// This slot's index in its table.
    index: u32,
    /// The engine's handle, recorded under the ring's lock before the request can complete.
    handle: aura_std::HandleSlot,
    /// The slot's use: bumped (`Release`) by each submission after it cleared `handle`.
    gen: AtomicU32,
}

// SAFETY: every field is atomic or immutable after creation (`owner`, `index`).
unsafe impl Sync for Slot {}
// SAFETY: as for Sync; `owner` is only dereferenced while the engine is alive.
unsafe impl Send for Slot {}

impl Slot {
    fn new(owner: *const Shared, index: u32) -> Slot {
        Slot {
            state: AtomicU32::new(0),
            next: AtomicU32::new(0),
            fd: AtomicI32::new(-1),
            op: AtomicU8::new(0),
            flags: AtomicU8::new(0),
            user_data: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicBool::new(false),
            want: AtomicU64::new(WANT_ANY),
            link: AtomicPtr::new(std::ptr::null_mut()),
            owner,
            index,
            handle: aura_std::HandleSlot::new(),
            gen: AtomicU32::new(0),
        }
    }

    /// Whether the request has not completed yet.
    pub(crate) fn pending(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMP != 0 && !self.done.load(Ordering::Acquire)
    }

    /// The slot's flags.
    pub(crate) fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    /// The slot's flags, as one side of a `SeqCst` pairing (held requests and cancel).
    pub(crate) fn flags_seqcst(&self) -> u8 {
        self.flags.load(Ordering::SeqCst)
    }

    /// Adds a flag (`SeqCst`: the cancel flag pairs with the held request's release).
    pub(crate) fn set_flag(&self, flag: u8) {
        self.flags.fetch_or(flag, Ordering::SeqCst);
    }

    /// The link stored on this slot (only compared, never dereferenced).
    pub(crate) fn link_ptr(&self) -> *const Link {
        self.link.load(Ordering::SeqCst)
    }

    /// Stores the link to this request's successor. `false` when the slot already has one or
    /// the request completed first. The caller saw the request pending (`COMP` held).
    ///
    /// A store, `fence(SeqCst)`, then a load on both sides (the Dekker pattern, with
    /// [`Slot::take_link`] after the completion sets `done`; modelled in
    /// `tests/loom_link.rs`): either this load sees `done` still clear, and the completion's
    /// later link load sees the link, or it sees `done` and takes the link back — unless the
    /// completion already took it, which then resolves it.
    pub(crate) fn attach_link(&self, link: Arc<Link>) -> bool {
        let p = Arc::into_raw(link).cast_mut();
        let null = std::ptr::null_mut();
        if self
            .link
            .compare_exchange(null, p, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            // SAFETY: `p` came from Arc::into_raw above and was not stored.
            drop(unsafe { Arc::from_raw(p) });
            return false;
        }
        fence(Ordering::SeqCst);
        if !self.done.load(Ordering::SeqCst) {
            return true;
        }
        if self
            .link
            .compare_exchange(p, null, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            // SAFETY: taken back out of the slot: the only reference the slot held.
            drop(unsafe { Arc::from_raw(p) });
            return false;
        }
        true
    }

    /// Takes the link stored on this slot (after `done` was set; see [`Slot::attach_link`]). Only THREAD_LOCAL engines link, so only they call it: the fence
    /// costs the other engines nothing.
    fn take_link(&self) -> Option<Arc<Link>> {
        fence(Ordering::SeqCst);
        if self.link.load(Ordering::SeqCst).is_null() {
            return None;
        }
        let p = self.link.swap(std::ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: a non-null link pointer came from Arc::into_raw in `attach_link`, and the
        // swap hands its reference to exactly one taker.
        (!p.is_null()).then(|| unsafe { Arc::from_raw(p) })
    }

    /// Whether `result` counts as success for a link: no error, and for reads and writes all
    /// the bytes asked for (a short transfer breaks an `IOSQE_IO_LINK` chain too).
    fn succeeded(&self, result: &aura_std::Result<usize>) -> bool {
        match result {
            Ok(n) => {
                let want = self.want.load(Ordering::Relaxed);
                want == WANT_ANY || *n as u64 == want
            }
            Err(_) => false,
        }
    }

    /// Where the engine records this request's handle ([`aura_std::record_handle`]).
    pub(crate) fn handle_slot(&self) -> &aura_std::HandleSlot {
        &self.handle
    }

    /// Gives up a held request's `SUB` once it was submitted (its handle recorded); `SeqCst`,
    /// pairing with `aura_cancel`'s flag store then state load.
    pub(crate) fn publish_held(&self) {
        // SAFETY: a slot's owner is its engine state, alive while any of its requests is.
        let shared = unsafe { &*self.owner };
        shared.slots.release_seqcst(self, SUB);
    }
}

/// A chunk of slots, as allocated.
type Chunk = Box<[Slot]>;

/// Free slots a thread keeps for one engine, so that a thread that completes requests and
/// submits new ones (an event loop) takes and gives back slots with no atomic operation. Slots
/// beyond `LOCAL_MAX` go back to the table's free list in batches of `LOCAL_SPILL`, with one
/// CAS each; a thread that moves to another engine, or exits, gives back all it holds — to a
/// table still alive only ([`LIVE`]).
struct LocalFree {
    /// The engine (serial) the cached slots belong to; 0 = none.
    serial: u64,
    /// Its table: dereferenced only while `serial` is in [`LIVE`], under its lock.
    table: *const SlotTable,
    idx: Vec<u32>,
}

/// Most free slots a thread keeps.
const LOCAL_MAX: usize = 64;
/// Slots given back at once when the cache overflows.
const LOCAL_SPILL: usize = 32;

/// The serials of the engines whose tables are alive. A thread gives cached slots back to a
/// table only while holding this lock and seeing its serial here; an engine removes its serial
/// (under the lock) before its table is freed.
static LIVE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<u64>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The engine `serial` frees its table: no thread may give slots back to it any more.
pub(crate) fn table_gone(serial: u64) {
    live().retain(|&s| s != serial);
}

impl LocalFree {
    /// Gives every cached slot back to its table if that is still alive, else forgets them
    /// (they went with the table).
    fn flush(&mut self) {
        if !self.idx.is_empty() {
            let live = live();
            if live.contains(&self.serial) {
                // SAFETY: the serial is live under the lock: the table is not freed before its
                // engine removes the serial, which waits for this lock.
                unsafe { &*self.table }.push_chain(&self.idx);
            }
            self.idx.clear();
        }
    }
}

impl Drop for LocalFree {
    fn drop(&mut self) {
        self.flush();
    }
}

thread_local! {
    static LOCAL: std::cell::RefCell<LocalFree> = const {
        std::cell::RefCell::new(LocalFree {
            serial: 0,
            table: std::ptr::null(),
            idx: Vec::new(),
        })
    };
}

/// The request table of one engine.
pub(crate) struct SlotTable {
    /// The engine's serial (its threads' caches of free slots name it).
    serial: u64,
    chunks: Box<[AtomicPtr<Slot>]>,
    nchunks: AtomicU32,
    /// Free-list head: tag (high 32 bits, bumped by every change, against ABA) and index + 1
    /// (low 32 bits, 0 = empty).
    head: AtomicU64,
    grow: Mutex<()>,
}

impl SlotTable {
    pub(crate) fn new(serial: u64) -> SlotTable {
        live().push(serial);
        SlotTable {
            serial,
            chunks: (0..MAX_CHUNKS)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            nchunks: AtomicU32::new(0),
            head: AtomicU64::new(0),
            grow: Mutex::new(()),
        }
    }

    fn slot(&self, index: u32) -> &Slot {
        let chunk = self.chunks[index as usize / CHUNK].load(Ordering::Acquire);
        debug_assert!(!chunk.is_null());
        // SAFETY: an index reaches the free list only after its chunk pointer was stored
        // (Release in `grow`, Acquire above); chunks live as long as the table, and the offset
        // is below CHUNK.
        unsafe { &*chunk.add(index as usize % CHUNK) }
    }

    /// Takes a free slot, creating a chunk when none is free. `None` when the table is full.
    fn pop(&self, owner: *const Shared) -> Option<&Slot> {
        let cached = LOCAL
            .try_with(|l| {
                let mut l = l.try_borrow_mut().ok()?;
                if l.serial == self.serial {
                    l.idx.pop()
                } else {
                    None
                }
            })
            .ok()
            .flatten();
        if let Some(i) = cached {
            // Freed by this thread (its last hold released with AcqRel), so everything done to
            // it before is visible here.
            return Some(self.slot(i));
        }
        loop {
            let head = self.head.load(Ordering::Acquire);
            let first = head as u32;
            if first == 0 {
                if !self.grow(owner) {
                    return None;
                }
                continue;
            }
            let slot = self.slot(first - 1);
            let next = slot.next.load(Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | u64::from(next);
            if self
                .head
                .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(slot);
            }
        }
    }

    /// Returns a slot whose state is 0 to the free list.
    fn push(&self, slot: &Slot) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            slot.next.store(head as u32, Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | u64::from(slot.index + 1);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Adds a chunk (if the free list is still empty). `false` when the table is full.
    #[cold]
    fn grow(&self, owner: *const Shared) -> bool {
        let _g = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        if self.head.load(Ordering::Acquire) as u32 != 0 {
            return true;
        }
        let n = self.nchunks.load(Ordering::Relaxed) as usize;
        if n == MAX_CHUNKS {
            return false;
        }
        let base = (n * CHUNK) as u32;
        let chunk: Chunk = (0..CHUNK as u32)
            .map(|i| Slot::new(owner, base + i))
            .collect();
        let ptr = Box::into_raw(chunk).cast::<Slot>();
        self.chunks[n].store(ptr, Ordering::Release);
        self.nchunks.store(n as u32 + 1, Ordering::Release);
        for i in (0..CHUNK as u32).rev() {
            self.push(self.slot(base + i));
        }
        true
    }

    /// Gives back slots whose state is 0, linked into one chain: one CAS for all of them.
    fn push_chain(&self, idx: &[u32]) {
        let (Some(&first), Some(&last)) = (idx.first(), idx.last()) else {
            return;
        };
        for w in idx.windows(2) {
            self.slot(w[0]).next.store(w[1] + 1, Ordering::Relaxed);
        }
        let last = self.slot(last);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            last.next.store(head as u32, Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | u64::from(first + 1);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Frees a slot whose state reached 0: into this thread's cache when it can, else onto
    /// the free list.
    fn free(&self, slot: &Slot) {
        let cached = LOCAL
            .try_with(|l| {
                let Ok(mut l) = l.try_borrow_mut() else {
                    return false;
                };
                if l.serial != self.serial {
                    l.flush();
                    l.serial = self.serial;
                    l.table = self;
                }
                l.idx.push(slot.index);
                if l.idx.len() > LOCAL_MAX {
                    let from = l.idx.len() - LOCAL_SPILL;
                    self.push_chain(&l.idx[from..]);
                    l.idx.truncate(from);
                }
                true
            })
            .unwrap_or(false);
        if !cached {
            self.push(slot);
        }
    }

    /// Clears `bits` of the slot's state; frees the slot when nothing holds it any more.
    pub(crate) fn release(&self, slot: &Slot, bits: u32) {
        if slot.state.fetch_sub(bits, Ordering::AcqRel) == bits {
            self.free(slot);
        }
    }

    /// Clears the completion's `COMP`. A state of exactly `COMP` means nobody else holds the slot
    /// or ever will this use (`SUB` is only taken before a request is submitted): a plain store
    /// frees it, no read-modify-write (modelled in `tests/loom_capi_slot.rs`). Else `SUB` is
    /// held or being given up: the one that clears the last bit frees it.
    pub(crate) fn release_comp(&self, slot: &Slot) {
        if slot.state.load(Ordering::Acquire) == COMP {
            slot.state.store(0, Ordering::Release);
            self.free(slot);
        } else {
            self.release(slot, COMP);
        }
    }

    /// [`SlotTable::release`] as one side of a `SeqCst` pairing.
    pub(crate) fn release_seqcst(&self, slot: &Slot, bits: u32) {
        if slot.state.fetch_sub(bits, Ordering::SeqCst) == bits {
            self.free(slot);
        }
    }
}

impl Drop for SlotTable {
    fn drop(&mut self) {
        for c in self.chunks.iter() {
            let p = c.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: `p` came from Box::into_raw of a CHUNK-long boxed slice in `grow` and
                // is freed once, here; the engine has drained, so no request refers to it.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, CHUNK)) });
            }
        }
    }
}

/// What a request's engine callback owns: the slot and the C callback. Dropped without
/// running (a submission that failed), it still gives its part of the slot back.
pub(crate) struct Completion {
    slot: NonNull<Slot>,
    callback: AuraCallback,
    /// A held request's submission attempt: dropped unrun (the engine refused it), it leaves
    /// the slot as it was, for the caller to retry or complete.
    held: bool,
}

// SAFETY: the slot is in a table that outlives every request of its engine (the engine drains
// before the table is freed); the C callback and its user data are the C caller's, who by the
// API contract accepts that callbacks run on whichever thread polls.
unsafe impl Send for Completion {}

impl Completion {
    /// The completion of a held request's submission attempt (see `held`).
    pub(crate) fn for_held(slot: &Slot, callback: AuraCallback) -> Completion {
        Completion {
            slot: NonNull::from(slot),
            callback,
            held: true,
        }
    }

    /// The completion of a request whose slot holds `COMP` and nothing else claims it (a held
    /// request completed without reaching the engine).
    pub(crate) fn unsubmitted(slot: &Slot, callback: AuraCallback) -> Completion {
        Completion {
            slot: NonNull::from(slot),
            callback,
            held: false,
        }
    }

    fn slot(&self) -> &Slot {
        // SAFETY: see `Send`: the slot outlives the request.
        unsafe { self.slot.as_ref() }
    }

    fn shared(&self) -> &Shared {
        // SAFETY: `owner` is the engine state that owns the table holding this slot, alive while
        // any of its requests is.
        unsafe { &*self.slot().owner }
    }

    /// Runs the C callback with the request's result, then gives the slot back.
    pub(crate) fn complete(self, result: aura_std::Result<usize>) {
        let this = std::mem::ManuallyDrop::new(self);
        let slot = this.slot();
        // No longer pending (the fence that pairs with `Slot::attach_link` is in
        // `take_link`); `COMP` keeps the slot until the callback returned.
        slot.done.store(true, Ordering::Release);
        finish(this.shared(), slot, this.callback, result);
    }
}

/// The end of a request whose `COMP` the caller holds (`done` set): hands its link on (a successor is
/// submitted before this callback, cancelled after it), runs the C callback, frees the slot.
pub(crate) fn finish(
    shared: &Shared,
    slot: &Slot,
    callback: AuraCallback,
    result: aura_std::Result<usize>,
) {
    let link = if shared.thread_local_mode {
        slot.take_link()
    } else {
        None
    };
    let ok = slot.succeeded(&result);
    if ok {
        if let Some(l) = &link {
            l.resolve(true);
        }
    }
    if let Some(cb) = callback {
        let ud = slot.user_data.load(Ordering::Relaxed);
        let req = std::ptr::from_ref(slot).cast_mut();
        // SAFETY: a C function pointer given at submission with this signature; `req` stays
        // valid until it returns (COMP is held), `ud` is the caller's own pointer.
        unsafe { cb(req, crate::error::callback_result(result), ud) };
    }
    if !ok {
        if let Some(l) = &link {
            l.resolve(false);
        }
    }
    shared.slots.release_comp(slot);
}

impl Drop for Completion {
    fn drop(&mut self) {
        if self.held {
            // A held request's attempt the engine refused: the holder still owns the slot.
            return;
        }
        // The request never ran (its submission failed): no callback, give the part back. A
        // link cannot have been set on it (its handle was never returned), but a stale handle
        // could have: resolve it as failed so nothing waits on it.
        let slot = self.slot();
        if self.shared().thread_local_mode {
            if let Some(l) = slot.take_link() {
                l.resolve(false);
            }
        }
        self.shared().slots.release(slot, COMP);
    }
}

/// A slot being submitted. An ordinary submission holds nothing of its own: the engine records
/// the request's handle under the ring's lock before the request can complete
/// ([`aura_std::record_handle`]), and the completion owns `COMP`. The successor of a linked
/// request holds `SUB` ([`Submitting::take_sub`]) until [`Submitting::publish`] or drop.
pub(crate) struct Submitting<'a> {
    table: &'a SlotTable,
    slot: &'a Slot,
    sub: bool,
}

impl<'a> Submitting<'a> {
    /// Takes a slot of `shared`'s table for a new request; `None` when the table is full.
    pub(crate) fn begin(
        shared: &'a Shared,
        fd: c_int,
        op: u8,
        flags: u8,
        want: u64,
        user_data: *mut c_void,
    ) -> Option<Submitting<'a>> {
        let slot = shared.slots.pop(shared)?;
        slot.want.store(want, Ordering::Relaxed);
        slot.done.store(false, Ordering::Relaxed);
        slot.handle.clear();
        // The slot's only writer now: a load and a store. `Release`, after the clear: a
        // cancel that reads this generation (`Acquire`) reads this use's handle or a later one
        // (see `current_handle`).
        let gen = slot.gen.load(Ordering::Relaxed).wrapping_add(1);
        slot.gen.store(gen, Ordering::Release);
        slot.fd.store(fd, Ordering::Relaxed);
        slot.op.store(op, Ordering::Relaxed);
        slot.flags.store(flags, Ordering::Relaxed);
        slot.user_data.store(user_data, Ordering::Relaxed);
        // The slot is ours alone until the request is submitted; the engine's locks order
        // these stores before the completion thread sees the request.
        slot.state.store(COMP, Ordering::Release);
        Some(Submitting {
            table: &shared.slots,
            slot,
            sub: false,
        })
    }

    /// The slot being submitted.
    pub(crate) fn slot(&self) -> &'a Slot {
        self.slot
    }

    /// Takes `SUB` (the successor of a linked request, which may be held).
    pub(crate) fn take_sub(&mut self) {
        if !self.sub {
            self.slot.state.fetch_add(SUB, Ordering::SeqCst);
            self.sub = true;
        }
    }

    /// Keeps `SUB` for a held request (see the `link` module), which gives it up when it is
    /// finally submitted. Returns the C handle.
    pub(crate) fn hold(self) -> *mut Slot {
        let ptr = std::ptr::from_ref(self.slot).cast_mut();
        std::mem::forget(self);
        ptr
    }

    /// The completion to hand to the engine with the request.
    pub(crate) fn completion(&self, callback: AuraCallback) -> Completion {
        Completion {
            slot: NonNull::from(self.slot),
            callback,
            held: false,
        }
    }

    /// The request was submitted (its handle recorded): releases `SUB` if held. Returns the C
    /// handle.
    pub(crate) fn publish(self) -> *mut Slot {
        std::ptr::from_ref(self.slot).cast_mut()
    }
}

impl Drop for Submitting<'_> {
    fn drop(&mut self) {
        if self.sub {
            self.table.release_seqcst(self.slot, SUB);
        }
    }
}

/// Reads the engine handle of a pending request, or the errno why not.
///
/// A seqlock read (modelled in `tests/loom_capi_slot.rs`): the generation (`Acquire`, pairing
/// with the submitter's `Release` store after it cleared the old handle), the state, the handle
/// (`Acquire` loads, pairing with the engine's `Release` stores), the generation again. The
/// handle read can only come from this use or a later one, and a later one's handle is written
/// after its generation: if the two generations agree, the handle is this request's.
fn current_handle(slot: &Slot) -> Result<RequestHandle, i32> {
    let gen = slot.gen.load(Ordering::Acquire);
    let s = slot.state.load(Ordering::Acquire);
    if s & COMP == 0 || s & SUB != 0 || slot.done.load(Ordering::Acquire) {
        // Completed (or a stale handle whose slot is being reused).
        return Err(EALREADY);
    }
    let handle = slot.handle.get();
    if slot.gen.load(Ordering::Acquire) != gen {
        // Completed, and the slot was reused: the handle may be the new request's.
        return Err(EALREADY);
    }
    handle.ok_or(EALREADY)
}

/// `int aura_cancel(aura_engine_t *engine, aura_request_t *req)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `req` is NULL or a handle returned by a submission on any
/// engine that is still alive.
#[no_mangle]
pub unsafe extern "C" fn aura_cancel(engine: *mut CEngine, req: *mut Slot) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let (Some(ce), Some(slot)) = (unsafe { opt_ref(engine) }, unsafe { opt_ref(req) }) else {
            return fail(EINVAL);
        };
        let shared = ce.shared();
        if !std::ptr::eq(slot.owner, shared) {
            return fail(EINVAL);
        }
        if slot.flags() & F_HELD != 0 {
            // Held behind a linked head: flag it, fence, then read the state (`link::Held::
            // release` does the opposite; modelled in tests/loom_link.rs). While it is still held, the
            // release completes it with -ECANCELED instead of submitting it.
            slot.set_flag(F_CANCEL);
            fence(Ordering::SeqCst);
            let s = slot.state.load(Ordering::SeqCst);
            if s & (SUB | COMP) == SUB | COMP {
                return 0;
            }
        }
        let handle = match current_handle(slot) {
            Ok(h) => h,
            Err(e) => return fail(e),
        };
        match ce.engine().cancel(handle) {
            Ok(()) => 0,
            // The engine no longer knows it: it completed meanwhile.
            Err(aura_std::Error::InvalidArgument(_)) => fail(EALREADY),
            Err(aura_std::Error::WouldBlock) => fail(EAGAIN),
            Err(e) => fail(errno_of(&e)),
        }
    })
}

/// `bool aura_request_pending(const aura_request_t *req)`.
///
/// # Safety
///
/// `req` is NULL or a handle from a submission on a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_request_pending(req: *const Slot) -> bool {
    boundary!(false, {
        // SAFETY: this fn's contract.
        unsafe { opt_ref(req) }.is_some_and(Slot::pending)
    })
}

/// `int aura_request_fd(const aura_request_t *req)`.
///
/// # Safety
///
/// As for [`aura_request_pending`].
#[no_mangle]
pub unsafe extern "C" fn aura_request_fd(req: *const Slot) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        match unsafe { opt_ref(req) } {
            Some(s) => s.fd.load(Ordering::Relaxed),
            None => fail(EINVAL),
        }
    })
}

/// `void *aura_request_user_data(const aura_request_t *req)`.
///
/// # Safety
///
/// As for [`aura_request_pending`].
#[no_mangle]
pub unsafe extern "C" fn aura_request_user_data(req: *const Slot) -> *mut c_void {
    boundary!(std::ptr::null_mut(), {
        // SAFETY: this fn's contract.
        unsafe { opt_ref(req) }.map_or(std::ptr::null_mut(), |s| {
            s.user_data.load(Ordering::Relaxed)
        })
    })
}

/// `aura_op_type_t aura_request_op_type(const aura_request_t *req)`: -1 for NULL.
///
/// # Safety
///
/// As for [`aura_request_pending`].
#[no_mangle]
pub unsafe extern "C" fn aura_request_op_type(req: *const Slot) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        unsafe { opt_ref(req) }.map_or(-1, |s| c_int::from(s.op.load(Ordering::Relaxed)))
    })
}

/// `bool aura_request_is_linked(const aura_request_t *req)`.
///
/// # Safety
///
/// As for [`aura_request_pending`].
#[no_mangle]
pub unsafe extern "C" fn aura_request_is_linked(req: *const Slot) -> bool {
    boundary!(false, {
        // SAFETY: this fn's contract.
        unsafe { opt_ref(req) }.is_some_and(|s| s.flags() & F_LINKED != 0)
    })
}

/// `int aura_request_set_linked(aura_request_t *req)`: the calling thread's next submission on
/// this engine runs only after `req` succeeded, and completes with `-ECANCELED` if `req` fails
/// (see the `link` module for how). THREAD_LOCAL mode only, as in the original: EINVAL otherwise,
/// and for a request that already completed or already has a successor.
///
/// # Safety
///
/// As for [`aura_request_pending`].
#[no_mangle]
pub unsafe extern "C" fn aura_request_set_linked(req: *mut Slot) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(slot) = (unsafe { opt_ref(req) }) else {
            return fail(EINVAL);
        };
        // SAFETY: a slot's owner is its live engine's state (this fn's contract).
        let shared = unsafe { &*slot.owner };
        if !shared.thread_local_mode || !slot.pending() {
            return fail(EINVAL);
        }
        match crate::link::open(shared, slot) {
            Ok(()) => 0,
            Err(e) => fail(e),
        }
    })
}
