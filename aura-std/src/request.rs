//! Requests in flight: what each one owns until its completion, and how it reports back.
//!
//! A callback is stored in its request slot ([`InlineFn`]): a closure of up to
//! [`INLINE_WORDS`] words (word-aligned) lives inline, a larger one is boxed first, so the
//! common small closure costs no allocation per operation.

use std::cell::Cell;
use std::ffi::CString;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};

use aura_core::IoVec;

use crate::buffer::Buffer;
use crate::error::{Error, Result};

/// What a plain callback's shim is called with: the CQE's result (bytes for data ops, a new fd
/// for openat, 0 for others, or `-errno`), made a `Result<usize>` inside the shim, right before
/// the closure runs. An `i64` travels in a register; a `Result` built by the caller would go
/// through memory, and its mixed-size stores stall the load that passes it on.
pub(crate) type PlainArgs = i64;
/// What an owned-buffer callback's shim is called with: the raw result and the buffer back.
pub(crate) type BufferArgs = (i64, Buffer);

/// A CQE result as the callbacks see it: `Ok(n)`, or the error its `-errno` stands for.
#[inline(always)]
pub(crate) fn to_result(res: i64) -> Result<usize> {
    if res < 0 {
        Err(Error::from_neg_errno(res as i32))
    } else {
        Ok(res as usize)
    }
}

/// A stored plain callback.
pub(crate) type PlainCallback = InlineFn<PlainArgs>;
/// A stored callback of the safe, owned-buffer style: gets the result and the buffer back.
pub(crate) type BufferCallback = InlineFn<BufferArgs>;

/// Words of inline callback storage: closures capturing up to 3 words (a slot index, an `Arc`
/// and a pointer, the C API's callback and slot, …) need no allocation.
pub(crate) const INLINE_WORDS: usize = 3;

/// The inline storage: word-sized and word-aligned `MaybeUninit`s, which may hold any bytes
/// (pointers included, with their provenance).
type Storage = [MaybeUninit<usize>; INLINE_WORDS];

/// A closure called once with `A`: what [`InlineFn`] stores.
pub(crate) trait CallOnce<A> {
    /// Calls the closure.
    fn call_once(self, args: A);
}

impl<F: FnOnce(Result<usize>)> CallOnce<PlainArgs> for F {
    #[inline]
    fn call_once(self, res: PlainArgs) {
        self(to_result(res))
    }
}

impl<F: FnOnce(Result<usize>, Buffer)> CallOnce<BufferArgs> for F {
    #[inline]
    fn call_once(self, (res, buffer): BufferArgs) {
        self(to_result(res), buffer)
    }
}

/// Whether an `F` fits the inline storage (size and alignment). Constant for each `F`.
const fn fits<F>() -> bool {
    size_of::<F>() <= size_of::<Storage>() && align_of::<F>() <= align_of::<Storage>()
}

/// A `Send` closure called at most once with `A`, stored without allocating when it fits in
/// [`INLINE_WORDS`] words, else boxed (the box itself then sits in the storage).
///
/// Invariant: `storage` holds a live value of the closure type `shim` was instantiated for
/// (written by [`InlineFn::new`]) until the closure is taken out, which happens exactly once:
/// by [`InlineFn::call`] (which consumes `self` and suppresses its `Drop`) or by `Drop`.
pub(crate) struct InlineFn<A> {
    storage: Storage,
    /// Takes the closure out of the storage and calls it (`Some(args)`) or drops it (`None`).
    shim: unsafe fn(*mut Storage, Option<A>),
    /// Called with `A`.
    _args: PhantomData<fn(A)>,
    /// `Send` (only `Send` closures are stored) but not `Sync` (the closure need not be).
    _not_sync: PhantomData<Cell<()>>,
}

/// Takes the `F` out of `storage` and calls it with `args`, or drops it.
///
/// # Safety
///
/// `storage` holds a live `F` written there (by [`InlineFn::new`]), properly aligned, that
/// nobody takes out again: after this call the storage is logically uninitialised.
unsafe fn shim<A, F: CallOnce<A>>(storage: *mut Storage, args: Option<A>) {
    // SAFETY: the caller guarantees a live, aligned `F` in the storage, taken out only here.
    let f = unsafe { storage.cast::<F>().read() };
    match args {
        Some(args) => f.call_once(args),
        None => drop(f),
    }
}

impl<A> InlineFn<A> {
    /// Stores `f`: inline when it fits, else in a box.
    #[inline]
    pub(crate) fn new<F: CallOnce<A> + Send + 'static>(f: F) -> Self {
        if fits::<F>() {
            Self::inline(f)
        } else {
            // A box is one pointer: it always fits.
            Self::inline(Box::new(BoxedFn(f)))
        }
    }

    /// Stores `f` inline. Only called with types that fit (`new` checks).
    #[inline]
    fn inline<F: CallOnce<A> + Send + 'static>(f: F) -> Self {
        assert!(fits::<F>(), "InlineFn::inline: the closure does not fit");
        let mut storage: Storage = [MaybeUninit::uninit(); INLINE_WORDS];
        // SAFETY: `F` fits the storage in size and alignment (asserted above; constant per
        // `F`, so the check folds away), and the storage is fresh: writing moves `f` in. From
        // here on `storage` holds a live `F`, the invariant `shim::<A, F>` relies on.
        unsafe { storage.as_mut_ptr().cast::<F>().write(f) };
        InlineFn {
            storage,
            shim: shim::<A, F>,
            _args: PhantomData,
            _not_sync: PhantomData,
        }
    }

    /// An `InlineFn` holding a closure that does nothing (its storage unwritten): where one
    /// built in place starts, see [`InlineFn::emplace`].
    #[inline(always)]
    pub(crate) fn noop() -> Self {
        Self::inline(Noop)
    }

    /// Puts `f` in the place of the no-op closure this holds, written straight into the storage
    /// where it stays (a closure built as a value and moved is stored on the stack first, then
    /// copied with loads wider than the stores that wrote it: a store-forwarding stall).
    ///
    /// # Safety
    ///
    /// `self` holds the closure of [`InlineFn::noop`] (nothing to drop: it is overwritten).
    #[inline(always)]
    pub(crate) unsafe fn emplace<F: CallOnce<A> + Send + 'static>(&mut self, f: F) {
        if fits::<F>() {
            // SAFETY: `F` fits the storage in size and alignment (checked; constant per `F`),
            // and the storage holds only the no-op (zero-sized, nothing to drop: the caller
            // guarantees it): writing moves `f` in, and the shim set next is the one made for
            // `F`, restoring the type's invariant.
            unsafe { self.storage.as_mut_ptr().cast::<F>().write(f) };
            self.shim = shim::<A, F>;
        } else {
            // A box is one pointer: it always fits.
            let b = Box::new(BoxedFn(f));
            // SAFETY: as above, for the box.
            unsafe { self.storage.as_mut_ptr().cast::<Box<BoxedFn<F>>>().write(b) };
            self.shim = shim::<A, Box<BoxedFn<F>>>;
        }
    }

    /// Calls the closure (consuming it).
    #[inline]
    pub(crate) fn call(self, args: A) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this.storage` holds the live closure `this.shim` was made for (the type's
        // invariant: nothing took it out yet, since taking consumes or drops `self`); it is
        // taken out exactly once, here, as `this` is never dropped.
        unsafe { (this.shim)(&mut this.storage, Some(args)) }
    }
}

impl<A> Drop for InlineFn<A> {
    fn drop(&mut self) {
        // SAFETY: as in `call`: the closure is still in the storage (`call` suppresses this
        // drop), and this is the one place that takes it out.
        unsafe { (self.shim)(&mut self.storage, None) }
    }
}

/// A closure too large for the inline storage, boxed (the box goes in the storage).
struct BoxedFn<F>(F);

/// A closure that does nothing, for any arguments: what [`InlineFn::noop`] holds.
struct Noop;

impl<A> CallOnce<A> for Noop {
    #[inline(always)]
    fn call_once(self, _args: A) {}
}

impl<A, F: CallOnce<A>> CallOnce<A> for Box<BoxedFn<F>> {
    #[inline]
    fn call_once(self, args: A) {
        self.0.call_once(args)
    }
}

/// Where a submission made inside [`record_handle`] stores its [`RequestHandle`]: under its
/// ring's lock, before its SQE can reach the kernel, so the handle is in place before the
/// request can complete. For bindings that hand out request objects of their own (the C API)
/// and must be able to cancel through them at any time.
#[derive(Debug)]
pub struct HandleSlot {
    /// The ring, or `u32::MAX` while no handle is recorded.
    ring: std::sync::atomic::AtomicU32,
    user_data: std::sync::atomic::AtomicU64,
}

impl HandleSlot {
    /// An empty slot.
    pub const fn new() -> HandleSlot {
        HandleSlot {
            ring: std::sync::atomic::AtomicU32::new(u32::MAX),
            user_data: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The recorded handle, if any. Both loads are `Acquire`, pairing with the engine's
    /// `Release` stores: whatever a load reads, the reader then sees everything written before
    /// that store (a caller can tell a later recording apart by a counter it bumps before each
    /// one, as the C API's request slots do).
    pub fn get(&self) -> Option<RequestHandle> {
        use std::sync::atomic::Ordering;
        let ring = self.ring.load(Ordering::Acquire);
        (ring != u32::MAX).then(|| RequestHandle {
            ring,
            user_data: self.user_data.load(Ordering::Acquire),
        })
    }

    /// Forgets the recorded handle.
    pub fn clear(&self) {
        self.ring
            .store(u32::MAX, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn set(&self, handle: RequestHandle) {
        use std::sync::atomic::Ordering;
        // Both `Release` (see `get`); the ring last, so a reader that sees it sees the user data.
        self.user_data.store(handle.user_data, Ordering::Release);
        self.ring.store(handle.ring, Ordering::Release);
    }
}

impl Default for HandleSlot {
    fn default() -> Self {
        HandleSlot::new()
    }
}

thread_local! {
    /// The [`HandleSlot`] of the [`record_handle`] call running on this thread, if any.
    static HANDLE_SINK: Cell<Option<std::ptr::NonNull<HandleSlot>>> = const { Cell::new(None) };
}

/// Runs `f`; the handle of each submission `f` makes on this thread is stored in `slot` (the
/// last one wins) before that submission's SQE can reach the kernel.
pub fn record_handle<R>(slot: &HandleSlot, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<std::ptr::NonNull<HandleSlot>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            HANDLE_SINK.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(HANDLE_SINK.with(|s| s.replace(Some(std::ptr::NonNull::from(slot)))));
    f()
}

/// Stores `handle` in the [`record_handle`] slot of this thread, if one is set.
#[inline]
pub(crate) fn record(handle: RequestHandle) {
    if let Some(p) = HANDLE_SINK.with(Cell::get) {
        // SAFETY: the pointer is set only while `record_handle` runs, which borrows the slot
        // for that whole time (and restores the previous value before returning or unwinding).
        unsafe { p.as_ref() }.set(handle);
    }
}

/// Identifies a submitted request, for [`crate::Engine::cancel`]. Stale handles are harmless:
/// the slot's generation no longer matches and cancel answers [`Error::InvalidArgument`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestHandle {
    pub(crate) ring: u32,
    pub(crate) user_data: u64,
}

impl RequestHandle {
    /// The ring the request went to.
    pub fn ring(&self) -> usize {
        self.ring as usize
    }
}

/// How a request reports its completion.
pub(crate) enum Completion {
    /// Nobody is told (internal cancel requests, fire-and-forget).
    Silent,
    /// A plain callback.
    Plain(PlainCallback),
    /// A callback that gets the request's owned buffer back.
    WithBuffer(BufferCallback),
}

/// Memory the kernel reads or writes for a request, owned by the request until its CQE.
#[derive(Default)]
pub(crate) enum Keep {
    /// Nothing (or memory the caller promised to keep alive, in the unsafe API).
    #[default]
    Nothing,
    /// A pool buffer (owned-buffer ops).
    Buffer(Buffer),
    /// An iovec array (the buffers it points at are the caller's).
    Iovecs(#[allow(dead_code)] Box<[IoVec]>), // held, never read: the kernel reads it until the CQE
    /// A NUL-terminated path.
    Path(#[allow(dead_code)] CString), // held, never read: the kernel reads it until the CQE
}

/// One request slot's contents.
pub(crate) struct Request {
    pub(crate) completion: Completion,
    pub(crate) keep: Keep,
    /// A data op: its bytes count toward throughput and its latency may be sampled.
    pub(crate) data: bool,
    /// Nanoseconds since the engine's epoch when the SQE went to the ring, 0 if not sampled.
    pub(crate) submit_ns: u64,
    /// An internal request (a cancel): not counted, no callback.
    pub(crate) internal: bool,
    /// Registered resources it uses (`FIXED_BUF` / `FIXED_FILE` bits of the shard module),
    /// counted in the engine's `FixedInFlight` until its completion.
    pub(crate) fixed: u8,
}

impl Request {
    pub(crate) fn new(completion: Completion, keep: Keep, data: bool) -> Self {
        Request {
            completion,
            keep,
            data,
            submit_ns: 0,
            internal: false,
            fixed: 0,
        }
    }

    /// A request reported through a plain callback.
    pub(crate) fn plain(
        callback: impl FnOnce(Result<usize>) + Send + 'static,
        keep: Keep,
        data: bool,
    ) -> Self {
        Self::new(Completion::Plain(InlineFn::new(callback)), keep, data)
    }
}

/// A finished request, ready for its callback (run with no lock held): its slot's contents and
/// the CQE's result.
pub(crate) struct Finished {
    pub(crate) req: Request,
    /// Widened from the CQE's `i32`: written and read as one 8-byte field, so moving a
    /// `Finished` never merges a 4-byte store with its padding into an 8-byte load (a
    /// store-forwarding stall on the reap path).
    pub(crate) res: i64,
}

impl Finished {
    /// Runs the callback. Returns `true` when there was one.
    pub(crate) fn run(self) -> bool {
        let Request {
            completion, keep, ..
        } = self.req;
        match completion {
            Completion::Silent => false,
            Completion::Plain(cb) => {
                cb.call(self.res);
                // Most plain requests keep nothing: skip the out-of-line drop call for them.
                if matches!(keep, Keep::Nothing) {
                    std::mem::forget(keep);
                }
                true
            }
            Completion::WithBuffer(cb) => match keep {
                Keep::Buffer(buf) => {
                    cb.call((self.res, buf));
                    true
                }
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts its drops.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_closure_emplaced_over_a_noop_is_called_or_dropped_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let calls = Arc::new(AtomicUsize::new(0));
        let token = Arc::new(());
        // Small (inline) and large (boxed) closures, called and dropped uncalled.
        for (big, call) in [(false, true), (false, false), (true, true), (true, false)] {
            let mut f = PlainCallback::noop();
            let (c, t) = (Arc::clone(&calls), Arc::clone(&token));
            let pad = [7u64; 8];
            // SAFETY: `f` was just made by `noop`.
            unsafe {
                if big {
                    f.emplace(move |r: Result<usize>| {
                        assert_eq!(r.ok(), Some(pad.len() - 5));
                        c.fetch_add(1, Ordering::SeqCst);
                        drop(t);
                    })
                } else {
                    f.emplace(move |r: Result<usize>| {
                        assert_eq!(r.ok(), Some(3));
                        c.fetch_add(1, Ordering::SeqCst);
                        drop(t);
                    })
                }
            }
            assert_eq!(Arc::strong_count(&token), 2);
            if call {
                f.call(3);
            } else {
                drop(f);
            }
            assert_eq!(Arc::strong_count(&token), 1, "captured once, released once");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A no-op left as it is: calling and dropping it do nothing.
        PlainCallback::noop().call(0);
        drop(BufferCallback::noop());
    }

    #[test]
    fn small_closures_are_inline_and_large_ones_boxed() {
        let small = [7u64; INLINE_WORDS];
        assert!(fits::<[u64; INLINE_WORDS]>());
        assert!(!fits::<[u64; INLINE_WORDS + 1]>());
        assert!(!fits::<u128>(), "alignment above a word does not fit");
        let got = Arc::new(AtomicUsize::new(0));
        let g = got.clone();
        let f = PlainCallback::new(move |r: Result<usize>| {
            g.fetch_add(
                r.unwrap() + small.iter().sum::<u64>() as usize,
                Ordering::SeqCst,
            );
        });
        f.call(1);
        assert_eq!(got.load(Ordering::SeqCst), 1 + 7 * INLINE_WORDS);

        let large = [3u64; 16];
        let g = got.clone();
        let f = PlainCallback::new(move |r: Result<usize>| {
            g.fetch_add(
                r.unwrap() + large.iter().sum::<u64>() as usize,
                Ordering::SeqCst,
            );
        });
        f.call(2);
        assert_eq!(got.load(Ordering::SeqCst), 1 + 7 * INLINE_WORDS + 2 + 48);
    }

    #[test]
    fn a_closure_is_dropped_once_called_or_not() {
        let drops = Arc::new(AtomicUsize::new(0));
        // Inline, called: dropped by the call.
        let t = Tracked(drops.clone());
        PlainCallback::new(move |_r: Result<usize>| drop(t)).call(0);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // Inline, never called: dropped with the InlineFn.
        let t = Tracked(drops.clone());
        drop(PlainCallback::new(move |_r: Result<usize>| drop(t)));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        // Boxed, never called.
        let t = Tracked(drops.clone());
        let pad = [0u64; 8];
        drop(PlainCallback::new(move |_r: Result<usize>| {
            let _ = (&t, pad);
        }));
        assert_eq!(drops.load(Ordering::SeqCst), 3);
        // A boxed `dyn FnOnce` (the vectored ops' callbacks) fits inline itself.
        let t = Tracked(drops.clone());
        let b: Box<dyn FnOnce(Result<usize>) + Send> = Box::new(move |_r| drop(t));
        PlainCallback::new(b).call(-125); // -ECANCELED
        assert_eq!(drops.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_panicking_closure_is_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let t = Tracked(drops.clone());
        let f = PlainCallback::new(move |_r: Result<usize>| {
            let _t = &t;
            panic!("callback panics");
        });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.call(0)));
        assert!(r.is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
