//! `aura_request_set_linked`: ordered chains of C requests.
//!
//! The C API links after the fact: a program submits a request, then calls
//! `aura_request_set_linked(req)`, and the *next submission of the same thread* runs only after
//! `req` succeeded. By then `req`'s SQE may already be in the kernel (another thread's flush, or
//! the batch threshold, can submit it at any moment), so setting `IOSQE_IO_LINK` on it is not
//! reliable. aura keeps the same semantics in user space instead:
//!
//! - the successor is held (its request handle is returned at once and is pending) until the
//!   head's completion is reaped, and is then submitted, before the head's callback runs;
//! - a head that fails (`res < 0`, or a read/write that moved fewer bytes than asked — the
//!   kernel's rule for `IOSQE_IO_LINK`) completes every later link of the chain with
//!   `-ECANCELED`, after the head's own callback;
//! - cancelling a held request completes it with `-ECANCELED` without submitting it (and so
//!   cancels the rest of its chain).
//!
//! The cost is one completion round trip between the links (the kernel would start the next
//! SQE itself). The Rust API's `Engine::chain` submits a chain with real `IOSQE_IO_LINK`s.
//!
//! # Who holds what
//!
//! A [`Link`] joins a head to its successor. It is shared (`Arc`) by the head's slot (stored by
//! `set_linked`, taken by the head's completion) and by the thread that may still submit the
//! successor (a thread-local). A held successor ([`Held`]) keeps its slot's `SUB` bit: the
//! handle is written only when it is finally submitted, as in the ordinary path.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::fence;
use std::sync::{Arc, Mutex};

use aura_std::{Engine, Error, RequestHandle};

use crate::lifecycle::Shared;
use crate::request::{Completion, Slot, COMP, F_CANCEL, F_HELD, F_LINKED, RUN, SUB};
use crate::types::AuraCallback;

/// A submission waiting for an engine: what the C call would have done at once.
pub(crate) type Submit =
    Box<dyn FnOnce(&Engine, Completion) -> aura_std::Result<RequestHandle> + Send>;

/// Where a link stands.
enum State {
    /// The head is pending and no successor was submitted yet.
    Open,
    /// The successor waits for the head.
    Waiting(Held),
    /// The head finished (successfully or not) before a successor came.
    Resolved(bool),
    /// The successor was handed on.
    Closed,
}

/// One link of a chain: a head and (once submitted) its successor.
pub(crate) struct Link {
    state: Mutex<State>,
}

/// A successor held until its head completes.
pub(crate) struct Held {
    engine: Engine,
    slot: NonNull<Slot>,
    shared: NonNull<Shared>,
    callback: AuraCallback,
    completion: Completion,
    submit: Submit,
}

// SAFETY: `slot` and `shared` point into the engine state, which outlives every request of the
// engine (a held request is one: the engine drains its head, which resolves it, before the
// state is freed); the completion and submission are Send themselves.
unsafe impl Send for Held {}

thread_local! {
    /// The link this thread opened with `set_linked` and has not given a successor yet, with
    /// the serial of the engine it belongs to.
    static OPEN: RefCell<Option<(u64, Arc<Link>)>> = const { RefCell::new(None) };
}

fn lock(link: &Link) -> std::sync::MutexGuard<'_, State> {
    link.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// `aura_request_set_linked(head)` for the calling thread: returns 0 or an errno.
pub(crate) fn open(shared: &Shared, head: &Slot) -> Result<(), i32> {
    use crate::error::EINVAL;
    let already = OPEN.with(|o| {
        o.borrow()
            .as_ref()
            .is_some_and(|(s, l)| *s == shared.serial && std::ptr::eq(head.link_ptr(), &**l))
    });
    if already {
        // set_linked twice on the same head: the flag is already set.
        return Ok(());
    }
    let link = Arc::new(Link {
        state: Mutex::new(State::Open),
    });
    if !head.attach_link(Arc::clone(&link)) {
        // Pending but already linked to an earlier successor, or completed.
        return Err(EINVAL);
    }
    head.set_flag(F_LINKED);
    OPEN.with(|o| *o.borrow_mut() = Some((shared.serial, link)));
    Ok(())
}

/// Takes the link the calling thread left open on this engine, if any.
#[inline]
pub(crate) fn take_open(shared: &Shared) -> Option<Arc<Link>> {
    OPEN.with(|o| {
        let mut o = o.borrow_mut();
        match &*o {
            Some((serial, _)) if *serial == shared.serial => o.take().map(|(_, l)| l),
            _ => None,
        }
    })
}

/// What a successor submission must do now.
pub(crate) enum Next {
    /// Held behind the head: return the handle, submit nothing.
    Held,
    /// The head already succeeded: submit it now.
    SubmitNow(Submit, Completion),
    /// The head already failed: complete it with `-ECANCELED` (through the ring, so the
    /// callback runs in poll / wait like any other).
    Cancel(Completion),
}

impl Link {
    /// Gives the link its successor. The slot keeps `SUB` while it is held.
    pub(crate) fn successor(
        &self,
        engine: &Engine,
        shared: &Shared,
        slot: &Slot,
        callback: AuraCallback,
        completion: Completion,
        submit: Submit,
    ) -> Next {
        let mut st = lock(self);
        match std::mem::replace(&mut *st, State::Closed) {
            State::Open => {
                slot.set_flag(F_HELD);
                *st = State::Waiting(Held {
                    engine: engine.clone(),
                    slot: NonNull::from(slot),
                    shared: NonNull::from(shared),
                    callback,
                    completion,
                    submit,
                });
                Next::Held
            }
            State::Resolved(true) => Next::SubmitNow(submit, completion),
            State::Resolved(false) => Next::Cancel(completion),
            // A link is taken from the thread-local once, so it has one successor at most.
            other @ (State::Waiting(_) | State::Closed) => {
                *st = other;
                debug_assert!(false, "a link got two successors");
                Next::SubmitNow(submit, completion)
            }
        }
    }

    /// The head finished: hands the successor on (submitted when `ok`, cancelled otherwise).
    /// Runs on the thread completing the head, in callback context.
    pub(crate) fn resolve(&self, ok: bool) {
        let held = {
            let mut st = lock(self);
            match std::mem::replace(&mut *st, State::Closed) {
                State::Open => {
                    *st = State::Resolved(ok);
                    None
                }
                State::Waiting(h) => Some(h),
                other => {
                    *st = other;
                    None
                }
            }
        };
        if let Some(h) = held {
            h.release(ok);
        }
    }
}

impl Held {
    /// Submits the held request (or completes it with `-ECANCELED` when its head failed or it
    /// was cancelled), publishing its handle and giving up `SUB`.
    fn release(self, ok: bool) {
        let Held {
            engine,
            slot,
            shared,
            callback,
            completion,
            submit,
        } = self;
        // SAFETY: see `Send for Held`: the slot and the state outlive the request.
        let (slot, shared) = unsafe { (slot.as_ref(), shared.as_ref()) };
        // An early look: a cancel that came before needs no submission. The check that counts
        // is the one after `SUB` is given back, below.
        if !ok || slot.flags_seqcst() & F_CANCEL != 0 {
            // Never submitted: give up SUB (COMP keeps the slot) and complete in place.
            shared.slots.release(slot, SUB);
            completion.complete(Err(Error::Cancelled));
            return;
        }
        match submit(&engine, completion) {
            Ok(handle) => {
                slot.publish_held(handle);
                // `SUB` gone, fence, then read the flag; `aura_cancel` sets the flag, fences,
                // then reads the state (the Dekker pattern, modelled in tests/loom_link.rs):
                // either it sees `SUB` gone and cancels the handle itself, or this load sees
                // its flag. Both may cancel; the second finds nothing.
                fence(std::sync::atomic::Ordering::SeqCst);
                if slot.flags_seqcst() & F_CANCEL != 0 {
                    let _ = engine.cancel(handle);
                }
            }
            // The engine dropped the completion (COMP given back) without a callback.
            Err(e) => finish_held(shared, slot, callback, Err(e)),
        }
    }
}

/// Runs the callback of a held request that will never reach the kernel, in place of its
/// completion: turns the slot's `SUB` into `RUN` and finishes like a completion.
fn finish_held(
    shared: &Shared,
    slot: &Slot,
    callback: AuraCallback,
    result: aura_std::Result<usize>,
) {
    // COMP is already gone (the completion was dropped); the slot is held by SUB alone.
    debug_assert_eq!(slot.state_now() & (COMP | SUB), SUB);
    slot.add_state(RUN);
    shared.slots.release(slot, SUB);
    crate::request::finish(shared, slot, callback, result);
}
