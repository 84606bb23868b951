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
//!   cancels the rest of its chain);
//! - a held request the engine has no room for when its head completes (`EAGAIN`: the request
//!   table or the ring is full) is submitted again by the next poll / wait / drain; held
//!   requests count as pending, and drain and destroy wait for them.
//!
//! The cost is one completion round trip between the links (the kernel would start the next
//! SQE itself). The Rust API's `Engine::chain` submits a chain with real `IOSQE_IO_LINK`s.
//!
//! # Who holds what
//!
//! A [`Link`] joins a head to its successor. It is shared (`Arc`) by the head's slot (stored by
//! `set_linked`, taken by the head's completion) and by the thread that may still submit the
//! successor (a thread-local). A held successor ([`Held`]) keeps its slot's `SUB` bit until it
//! is finally submitted (its handle then recorded by the engine, as in the ordinary path) or
//! completed without being submitted.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Mutex};

use aura_std::{Engine, Error, RequestHandle};

use crate::lifecycle::Shared;
use crate::request::{Completion, Slot, F_CANCEL, F_HELD, F_LINKED, SUB};
use crate::types::AuraCallback;

/// A submission waiting for an engine: what the C call would have done at once. It may be
/// attempted again when the engine had no room (`EAGAIN`).
pub(crate) type Submit =
    Box<dyn FnMut(&Engine, Completion) -> aura_std::Result<RequestHandle> + Send>;

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

/// A successor held until its head completes (or, refused for lack of room, until the next
/// poll / wait / drain). Its slot keeps `SUB` and `COMP` meanwhile, and it is counted in
/// `Shared::held`.
pub(crate) struct Held {
    engine: Engine,
    slot: NonNull<Slot>,
    shared: NonNull<Shared>,
    callback: AuraCallback,
    submit: Submit,
}

// SAFETY: `slot` and `shared` point into the engine state, which outlives every request of the
// engine (a held request is one: the engine drains its head, which resolves it, and destroy
// completes whatever still waits for room, before the state is freed); the submission is Send.
unsafe impl Send for Held {}

thread_local! {
    /// The link this thread opened with `set_linked` and has not given a successor yet, with
    /// the serial of the engine it belongs to.
    static OPEN: RefCell<Option<(u64, Arc<Link>)>> = const { RefCell::new(None) };
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    SubmitNow(Submit),
    /// The head already failed: complete it with `-ECANCELED` (through the ring, so the
    /// callback runs in poll / wait like any other).
    Cancel,
}

impl Link {
    /// Gives the link its successor, whose slot holds `SUB` and `COMP`; while it is held it
    /// keeps both.
    pub(crate) fn successor(
        &self,
        engine: &Engine,
        shared: &Shared,
        slot: &Slot,
        callback: AuraCallback,
        submit: Submit,
    ) -> Next {
        let mut st = lock(&self.state);
        match std::mem::replace(&mut *st, State::Closed) {
            State::Open => {
                slot.set_flag(F_HELD);
                shared.held.fetch_add(1, Ordering::SeqCst);
                *st = State::Waiting(Held {
                    engine: engine.clone(),
                    slot: NonNull::from(slot),
                    shared: NonNull::from(shared),
                    callback,
                    submit,
                });
                Next::Held
            }
            State::Resolved(true) => Next::SubmitNow(submit),
            State::Resolved(false) => Next::Cancel,
            // A link is taken from the thread-local once, so it has one successor at most.
            other @ (State::Waiting(_) | State::Closed) => {
                *st = other;
                debug_assert!(false, "a link got two successors");
                Next::SubmitNow(submit)
            }
        }
    }

    /// The head finished: hands the successor on (submitted when `ok`, cancelled otherwise).
    /// Runs on the thread completing the head, in callback context.
    pub(crate) fn resolve(&self, ok: bool) {
        let held = {
            let mut st = lock(&self.state);
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
            if ok {
                h.attempt();
            } else {
                h.complete(Err(Error::Cancelled));
            }
        }
    }
}

impl Held {
    /// The slot and the engine state, not tied to a borrow of `self` (they outlive it).
    fn parts<'a>(&self) -> (&'a Slot, &'a Shared) {
        // SAFETY: see `Send for Held`: the slot and the state outlive the request, and with it
        // this value.
        unsafe { (self.slot.as_ref(), self.shared.as_ref()) }
    }

    /// Completes the held request without submitting it: gives up `SUB` (`COMP` keeps the
    /// slot) and finishes it like a completion with `result`.
    fn complete(self, result: aura_std::Result<usize>) {
        let (slot, shared) = self.parts();
        let callback = self.callback;
        shared.held.fetch_sub(1, Ordering::SeqCst);
        shared.slots.release(slot, SUB);
        Completion::unsubmitted(slot, callback).complete(result);
    }

    /// Submits the held request (or completes it with `-ECANCELED` if it was cancelled),
    /// publishing its handle and giving up `SUB`. Refused for lack of room, it waits in the
    /// engine's retry list.
    fn attempt(mut self) {
        let (slot, shared) = self.parts();
        // An early look: a cancel that came before needs no submission. The check that counts
        // is the one after `SUB` is given back, below.
        if slot.flags_seqcst() & F_CANCEL != 0 {
            self.complete(Err(Error::Cancelled));
            return;
        }
        let attempt = Completion::for_held(slot, self.callback);
        let (submit, engine) = (&mut self.submit, &self.engine);
        match aura_std::record_handle(slot.handle_slot(), || submit(engine, attempt)) {
            Ok(handle) => {
                shared.held.fetch_sub(1, Ordering::SeqCst);
                slot.publish_held();
                // `SUB` gone, fence, then read the flag; `aura_cancel` sets the flag, fences,
                // then reads the state (the Dekker pattern, modelled in tests/loom_link.rs):
                // either it sees `SUB` gone and cancels the handle itself, or this load sees
                // its flag. Both may cancel; the second finds nothing. (The slot may be reused
                // by now; a stray cancel of a finished handle finds nothing either.)
                fence(Ordering::SeqCst);
                if slot.flags_seqcst() & F_CANCEL != 0 {
                    let _ = self.engine.cancel(handle);
                }
            }
            // No room (the request table or the ring is full): the next poll / wait / drain
            // tries again, after completions made room.
            Err(Error::WouldBlock) => {
                let mut q = lock(&shared.retry);
                q.push(self);
                shared.retry_len.store(q.len(), Ordering::Release);
            }
            // The engine refused it for good (shut down, registration draining, ...): its
            // callback gets the error.
            Err(e) => self.complete(Err(e)),
        }
    }
}

/// Submits again the held requests the engine had no room for. Called by poll / wait / drain
/// (outside callbacks, which may run here for requests that fail for good).
pub(crate) fn retry_held(shared: &Shared) {
    if shared.retry_len.load(Ordering::Acquire) == 0 {
        return;
    }
    for h in take_retries(shared) {
        h.attempt();
    }
}

/// Completes with `-ECANCELED` every held request still waiting for room (engine destroy).
pub(crate) fn cancel_retries(shared: &Shared) {
    for h in take_retries(shared) {
        h.complete(Err(Error::Cancelled));
    }
}

/// Empties the retry list.
fn take_retries(shared: &Shared) -> Vec<Held> {
    let mut q = lock(&shared.retry);
    shared.retry_len.store(0, Ordering::Release);
    std::mem::take(&mut *q)
}

/// Runs an engine call that processes completions, submitting the held requests that waited
/// for room before it and those its completions made room for after it.
pub(crate) fn with_retries<R>(shared: &Shared, f: impl FnOnce() -> R) -> R {
    retry_held(shared);
    let r = f();
    retry_held(shared);
    r
}
