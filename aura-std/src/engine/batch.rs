//! Batched submission: several independent operations handed to one ring under one hold of its
//! lock, the way an io_uring user prepares several SQEs and submits them with one call.
//!
//! [`Engine::read`] and friends each lock a ring, take a request slot, push one SQE and unlock.
//! A [`Batch`] collects operations without any lock (validating each as it is added), then
//! [`Batch::submit`] picks one ring, locks it once and admits them all in order, through the same
//! in-flight gate as single submissions, pushes their SQEs through one SQ view and flushes at
//! most once. On rounds of 32 NOPs that takes the Engine from 0.73 to 0.82 × a bare ring loop
//! (`benches/engine_overhead.rs`).
//!
//! Every operation is written once, where it stays (field by field into the list, then moved
//! straight into its slab slot): values built on the stack and copied were reloaded with loads
//! wider than the stores that wrote them, which stalls store-to-load forwarding.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use aura_core::op;
use aura_core::Sqe;

use super::{lock, Claim, Engine, Rejected};
use crate::buffer::{Buffer, BufferRef};
use crate::error::{Error, Result};
use crate::request::{Completion, InlineFn, Keep, Request, RequestHandle};

/// One operation of a batch: its SQE and its request (whose `fixed` already holds the
/// registered resources it claimed).
type Op = (Sqe, Request);

thread_local! {
    /// The operation and handle lists of this thread's last batch, kept (empty) for their
    /// capacity: a batch per round then allocates nothing.
    static SPARE: Cell<(Vec<Op>, Vec<RequestHandle>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// `Batch::add_plain`, `Batch::owned` and `Batch::push` write these fields one by one: a new
/// `Request` field fails this pattern, so none is left unwritten.
const _ALL_FIELDS: fn(Request) = |r| {
    let Request {
        completion: _,
        keep: _,
        data: _,
        submit_ns: _,
        internal: _,
        fixed: _,
    } = r;
};

/// The longest lists kept for reuse (longer ones are freed with their batch).
const MAX_SPARE: usize = 1024;

/// Operations to submit together, to one ring, under one lock hold: see [`Engine::batch`].
///
/// Each added operation is validated at once (the same checks and errors as its single-call
/// form); nothing reaches the kernel before [`Batch::submit`]. Operations still in the batch
/// when it is dropped are discarded: their callbacks are dropped without being called, their
/// owned buffers go back to the pool.
///
/// ```no_run
/// # use aura_std as aura;
/// # fn main() -> aura::Result<()> {
/// let engine = aura::Engine::new()?;
/// let mut batch = engine.batch();
/// for _ in 0..32 {
///     batch.nop(|r| assert_eq!(r.ok(), Some(0)))?;
/// }
/// assert_eq!(batch.submit()?, 32);
/// engine.drain(-1)?;
/// # Ok(()) }
/// ```
pub struct Batch<'e> {
    engine: &'e Engine,
    ops: Vec<Op>,
    handles: Vec<RequestHandle>,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("ops", &self.ops.len())
            .field("submitted", &self.handles.len())
            .finish()
    }
}

impl Engine {
    /// Starts a batch: operations added to it are submitted together by [`Batch::submit`], to
    /// one ring (chosen as for a single submission) under one lock hold. Unlike a
    /// [`crate::Chain`] the operations are independent (no `IOSQE_IO_LINK`) and go through
    /// the ring's in-flight gate like any other.
    pub fn batch(&self) -> Batch<'_> {
        let (ops, handles) = SPARE.with(Cell::take);
        Batch {
            engine: self,
            ops,
            handles,
        }
    }
}

impl<'e> Batch<'e> {
    /// Operations added and not yet submitted.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation waits to be submitted.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The handles of the requests the last [`Batch::submit`] sent, in order (for
    /// [`Engine::cancel`]). Batched submissions are not seen by [`crate::record_handle`].
    pub fn handles(&self) -> &[RequestHandle] {
        &self.handles
    }

    /// Makes room for one more operation. Called before the operation is built, so that no
    /// call (the list's growth) sits between building it and storing it: the SQE and request
    /// are then written once, where they stay, instead of being built on the stack and copied.
    #[inline(always)]
    fn room(&mut self) {
        if self.ops.len() == self.ops.capacity() {
            self.ops.reserve(1);
        }
    }

    /// Adds a read (see [`Engine::read`]).
    ///
    /// # Safety
    ///
    /// As for [`Engine::read`]; the memory must also stay valid while the read waits in the
    /// batch (a discarded read never touches it).
    #[inline]
    pub unsafe fn read(
        &mut self,
        fd: i32,
        buf: BufferRef,
        len: usize,
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.rw(false, fd, buf, len, offset, callback) }
    }

    /// Adds a write (see [`Engine::write`]).
    ///
    /// # Safety
    ///
    /// As for [`Batch::read`].
    #[inline]
    pub unsafe fn write(
        &mut self,
        fd: i32,
        buf: BufferRef,
        len: usize,
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.rw(true, fd, buf, len, offset, callback) }
    }

    /// [`Batch::read`] or [`Batch::write`].
    ///
    /// # Safety
    ///
    /// As for [`Batch::read`].
    #[inline(always)]
    unsafe fn rw(
        &mut self,
        write: bool,
        fd: i32,
        buf: BufferRef,
        len: usize,
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        self.room();
        let (sqe, claim) = self.engine.rw_sqe(write, fd, buf, len, offset)?;
        Ok(self.add_plain(sqe, true, claim, callback))
    }

    /// Adds a safe read into an owned buffer (see [`Engine::read_owned`]); an invalid one comes
    /// back with its buffer.
    pub fn read_owned(
        &mut self,
        fd: i32,
        buf: Buffer,
        offset: u64,
        callback: impl FnOnce(Result<usize>, Buffer) + Send + 'static,
    ) -> Result<&mut Self, Rejected> {
        self.owned(false, fd, buf, offset, callback)
    }

    /// Adds a safe write from an owned buffer (see [`Engine::write_owned`]); an invalid one
    /// comes back with its buffer.
    pub fn write_owned(
        &mut self,
        fd: i32,
        buf: Buffer,
        offset: u64,
        callback: impl FnOnce(Result<usize>, Buffer) + Send + 'static,
    ) -> Result<&mut Self, Rejected> {
        self.owned(true, fd, buf, offset, callback)
    }

    fn owned(
        &mut self,
        write: bool,
        fd: i32,
        mut buf: Buffer,
        offset: u64,
        callback: impl FnOnce(Result<usize>, Buffer) + Send + 'static,
    ) -> Result<&mut Self, Rejected> {
        self.room();
        let (sqe, claim) = match self.engine.owned_sqe(write, fd, &mut buf, offset) {
            Ok(v) => v,
            Err(error) => return Err(Rejected { error, buffer: buf }),
        };
        let op = self.next_slot();
        // SAFETY: as in `add_plain`, with the owned-buffer completion.
        unsafe {
            std::ptr::addr_of_mut!((*op).0).write(sqe);
            let c = std::ptr::addr_of_mut!((*op).1.completion);
            c.write(Completion::WithBuffer(InlineFn::noop()));
            if let Completion::WithBuffer(f) = &mut *c {
                f.emplace(callback);
            }
            Ok(self.push(op, Keep::Buffer(buf), true, claim))
        }
    }

    /// Adds a no-op (see [`Engine::nop`]).
    #[inline]
    pub fn nop(
        &mut self,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        self.room();
        let claim = Claim::new(&self.engine.inner.fixed);
        Ok(self.add_plain(op::nop(), false, claim, callback))
    }

    /// The next element of the list, for [`Batch::push`]: room was made for it ([`Batch::room`]).
    #[inline(always)]
    fn next_slot(&mut self) -> *mut Op {
        assert!(
            self.ops.len() < self.ops.capacity(),
            "Batch::room precedes storing an operation"
        );
        self.ops.spare_capacity_mut()[0].as_mut_ptr()
    }

    /// Completes the element `op` (from [`Batch::next_slot`]) whose SQE and completion are
    /// written, and makes it part of the list.
    ///
    /// # Safety
    ///
    /// `op` is the element `next_slot` returned, with its SQE and its request's completion
    /// written, and nothing else of the list changed since.
    #[inline(always)]
    unsafe fn push(&mut self, op: *mut Op, keep: Keep, data: bool, claim: Claim<'e>) -> &mut Self {
        // SAFETY: `op` is the first spare element (the caller's contract), valid for writes;
        // `addr_of_mut!` projects to each field without a reference to the uninitialised
        // element. With the SQE and completion the caller wrote, every field is written once
        // (`_ALL_FIELDS` breaks the build when `Request` gains one), so the element is
        // initialised when `set_len` makes it part of the list. The request owns the claim from
        // here (released when it completes, or when the batch discards it).
        unsafe {
            let r = std::ptr::addr_of_mut!((*op).1);
            std::ptr::addr_of_mut!((*r).keep).write(keep);
            std::ptr::addr_of_mut!((*r).data).write(data);
            std::ptr::addr_of_mut!((*r).submit_ns).write(0);
            std::ptr::addr_of_mut!((*r).internal).write(false);
            std::ptr::addr_of_mut!((*r).fixed).write(claim.commit());
            let len = self.ops.len();
            self.ops.set_len(len + 1);
        }
        self
    }

    /// Stores an operation with a plain callback. Every field is written where it stays, the
    /// callback into a no-op completion stored first: built as one value and moved, the request
    /// was stored on the stack with narrow stores and copied with wider loads, which stalls
    /// store-to-load forwarding.
    #[inline(always)]
    fn add_plain(
        &mut self,
        sqe: Sqe,
        data: bool,
        claim: Claim<'e>,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> &mut Self {
        let op = self.next_slot();
        // SAFETY: `op` is the next element, valid for writes; the completion, once written, is
        // initialised and holds the no-op `emplace` requires; `push` writes the rest.
        unsafe {
            std::ptr::addr_of_mut!((*op).0).write(sqe);
            let c = std::ptr::addr_of_mut!((*op).1.completion);
            c.write(Completion::Plain(InlineFn::noop()));
            if let Completion::Plain(f) = &mut *c {
                f.emplace(callback);
            }
            self.push(op, Keep::Nothing, data, claim)
        }
    }

    /// Adds an fsync (see [`Engine::fsync`]).
    pub fn fsync(
        &mut self,
        fd: i32,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        self.room();
        let (target, claim) = self.engine.target(fd)?;
        Ok(self.add_plain(op::fsync(target), false, claim, callback))
    }

    /// Adds an fdatasync (see [`Engine::fdatasync`]).
    pub fn fdatasync(
        &mut self,
        fd: i32,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        self.room();
        let (target, claim) = self.engine.target(fd)?;
        Ok(self.add_plain(op::fdatasync(target), false, claim, callback))
    }

    /// Submits the batch's operations, in order, to one ring. Returns how many were submitted
    /// (their handles: [`Batch::handles`]); the batch is empty afterwards and can be reused.
    ///
    /// Requests over the ring's in-flight limit wait behind its gate, as single submissions do.
    /// When the ring has no free request slot left (or its SQ stays full), the operations from
    /// there on stay in the batch and the count says how far it got: poll or wait for
    /// completions, then submit again. It is [`Error::WouldBlock`] when not even the first one
    /// could go, [`Error::Shutdown`] once the engine is shutting down (nothing submitted).
    pub fn submit(&mut self) -> Result<usize> {
        self.handles.clear();
        if self.ops.is_empty() {
            return Ok(0);
        }
        let engine = self.engine;
        let inner = &engine.inner;
        if inner.shutting_down.load(Ordering::Acquire) {
            return Err(Error::Shutdown);
        }
        let ring = engine.select();
        let shard = &inner.shards[ring];
        let mut st = lock(&shard.state);
        let total = self.ops.len();
        self.handles.reserve(total);
        // The operations are moved out of the list in place, one at a time: the request straight
        // from its element into the slab, the SQE read where it is (a copy of the whole element
        // first would be reloaded at other offsets, stalling store-to-load forwarding). The list
        // is emptied first, so a panic in between leaks the rest instead of dropping any twice.
        let base = self.ops.as_mut_ptr();
        // SAFETY: shrinking the length never exposes uninitialised elements; the elements stay
        // in the allocation, owned by this loop until moved out or back (below).
        unsafe { self.ops.set_len(0) };
        let mut done = 0;
        // The first `direct` operations go to the ring (pushed after the loop, through one SQ
        // view), the rest wait behind the gate: the gate's decision for each, in order, as
        // `ShardState::admits_directly` would make it once the ones before were pushed.
        let mut direct = 0;
        while done < total {
            // SAFETY: `done < total`, the list's old length: the element is initialised and not
            // yet moved out.
            let elem = unsafe { base.add(done) };
            let goes_now = st.queue.is_empty() && st.in_flight + direct < st.limit;
            // SAFETY: as above; the request is moved out of the element here, and either ends
            // in the slab or is written back into the same element before the loop stops.
            let req = unsafe { std::ptr::read(std::ptr::addr_of!((*elem).1)) };
            let submit_ns = if goes_now { st.stamp(req.data) } else { 0 };
            // Inserted as it is, the stamp set in the slot afterwards (see `submit_inner`).
            let token = match st.slab.insert(req) {
                Ok(t) => t.user_data(),
                Err(back) => {
                    // SAFETY: the element's request was moved out above: this moves it back.
                    unsafe { std::ptr::write(std::ptr::addr_of_mut!((*elem).1), back) };
                    break;
                }
            };
            if submit_ns != 0 {
                if let Ok(req) = st.slab.get_mut(token) {
                    req.submit_ns = submit_ns;
                }
            }
            if goes_now {
                direct += 1;
            } else {
                // SAFETY: the element's SQE is initialised and `Copy`; nothing writes the
                // element while this reference lives.
                st.queue_admitted(token, unsafe { &(*elem).0 });
            }
            self.handles.push(RequestHandle {
                ring: ring as u32,
                user_data: token,
            });
            done += 1;
        }
        let handles = &self.handles;
        // SAFETY: elements `0..direct` (< `done`) still hold their SQEs (only the requests were
        // moved out), and nothing writes them while `push_direct` reads them.
        st.push_direct(
            (0..direct as usize).map(|i| (handles[i].user_data, unsafe { &(*base.add(i)).0 })),
        );
        shard.counters.add_pending(&mut st, done as u32);
        st.flush_if_due(&inner.sleepers);
        drop(st);
        // SAFETY: elements `done..total` are initialised (never moved out, or moved back); they
        // move to the front, in order, and become the list again (`copy` allows the overlap).
        unsafe {
            std::ptr::copy(base.add(done), base, total - done);
            self.ops.set_len(total - done);
        }
        // The loop stops early only when the ring has no free slot.
        if done == 0 {
            Err(Error::WouldBlock)
        } else {
            Ok(done)
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        // Discarded operations give back the registered resources they claimed; their
        // callbacks are dropped uncalled (and owned buffers go back to the pool).
        for (_, req) in self.ops.drain(..) {
            self.engine.inner.fixed.release(req.fixed);
        }
        let ops = std::mem::take(&mut self.ops);
        let mut handles = std::mem::take(&mut self.handles);
        handles.clear();
        if ops.capacity() <= MAX_SPARE && handles.capacity() <= MAX_SPARE {
            SPARE.with(|s| {
                let old = s.take();
                s.set(if old.0.capacity() >= ops.capacity() {
                    old
                } else {
                    (ops, handles)
                });
            });
        }
    }
}
