//! Loom models of the two `SeqCst` pairings behind the C API's linked requests
//! (`aura-capi/src/link.rs`, `aura-capi/src/request.rs`).
//!
//! The C API's slots live in `aura-capi` (a cdylib/staticlib built on std atomics), so, as for
//! the shard model, these model the protocol with the same orderings instead of running its
//! code:
//!
//! Each side is a store (an RMW), a `fence(SeqCst)`, then a load of what the other side
//! stores — the fence-based Dekker pattern, which loom models exactly (it treats `SeqCst`
//! *accesses* as `AcqRel`, so the code uses fences rather than relying on them).
//!
//! 1. **Attaching a link vs the head's completion.** `aura_request_set_linked` stores the link
//!    pointer (CAS null → link) and then loads the slot's `done` flag; if the request is already
//!    done it tries to take the pointer back (CAS link → null). The completion stores `done`
//!    and then loads the pointer, swapping it out when it is there (`Slot::attach_link` /
//!    `Slot::take_link`).
//!    Checked in every interleaving: the link ends up taken by exactly one side — set_linked
//!    reports success exactly when the completion took it — and is never left in the slot.
//! 2. **Cancelling a held request vs its release.** `aura_cancel` sets the cancel flag (RMW) and
//!    then loads the state: while `SUB` is held, it leaves the rest to the release; otherwise it
//!    reads the published handle and cancels it. The release (`link::Held::release`) loads the
//!    flag first (cancelled: never submitted); else it writes the handle, clears `SUB` (RMW) and
//!    loads the flag again, cancelling the handle itself if it is set. Checked: a cancel is
//!    never lost (the request is cancelled before submission, or its handle is cancelled by one
//!    side or both), and the handle is read only after it was written (a loom `UnsafeCell`
//!    reports the race otherwise).
//!
//! Only built with `--cfg loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p aura-tests --test loom_link --target-dir target/loom
//! ```
//!
//! Both models are small (two threads, a handful of atomics) and are explored exhaustively in
//! well under a second. Sanity check of their power: removing either side's fence makes loom
//! find an interleaving that loses the link or the cancel.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

const SUB: u32 = 1;
const COMP: u32 = 2;
const F_CANCEL: u8 = 16;

/// A link "pointer": 0 = none.
const LINK: usize = 1;

struct Slot {
    state: AtomicU32,
    done: AtomicBool,
    link: AtomicUsize,
    flags: AtomicU8,
    handle: UnsafeCell<Option<u64>>,
}

impl Slot {
    fn new(state: u32) -> Slot {
        Slot {
            state: AtomicU32::new(state),
            done: AtomicBool::new(false),
            link: AtomicUsize::new(0),
            flags: AtomicU8::new(0),
            handle: UnsafeCell::new(None),
        }
    }

    /// `Slot::attach_link`.
    fn attach_link(&self) -> bool {
        if self.link.compare_exchange(0, LINK, SeqCst, SeqCst).is_err() {
            return false;
        }
        fence(SeqCst);
        if !self.done.load(SeqCst) {
            return true;
        }
        self.link.compare_exchange(LINK, 0, SeqCst, SeqCst).is_err()
    }

    /// `Completion::complete` up to `Slot::take_link`.
    fn complete_take_link(&self) -> bool {
        self.done.store(true, SeqCst);
        fence(SeqCst);
        if self.link.load(SeqCst) == 0 {
            return false;
        }
        self.link.swap(0, SeqCst) != 0
    }
}

#[test]
fn set_linked_vs_completion_never_loses_the_link() {
    loom::model(|| {
        let slot = Arc::new(Slot::new(COMP));
        let s2 = Arc::clone(&slot);
        let completer = thread::spawn(move || s2.complete_take_link());
        let attached = slot.attach_link();
        let taken = completer.join().unwrap();
        assert_eq!(
            attached, taken,
            "set_linked's answer must match who owns the link"
        );
        assert_eq!(slot.link.load(SeqCst), 0, "a link left in a finished slot");
    });
}

#[test]
fn cancel_vs_held_release_never_loses_the_cancel() {
    loom::model(|| {
        // A held request: SUB kept by the held submission, COMP by the request itself.
        let slot = Arc::new(Slot::new(SUB | COMP));
        let engine_cancels = Arc::new(AtomicU32::new(0));
        let never_submitted = Arc::new(AtomicBool::new(false));

        let (s2, ec2, ns2) = (
            Arc::clone(&slot),
            Arc::clone(&engine_cancels),
            Arc::clone(&never_submitted),
        );
        let releaser = thread::spawn(move || {
            if s2.flags.load(SeqCst) & F_CANCEL != 0 {
                ns2.store(true, SeqCst);
                s2.state.fetch_sub(SUB, SeqCst);
                return;
            }
            // Submitted: publish the handle, give up SUB, look for a cancel that came meanwhile.
            s2.handle.with_mut(|h| unsafe { *h = Some(7) });
            s2.state.fetch_sub(SUB, SeqCst);
            fence(SeqCst);
            if s2.flags.load(SeqCst) & F_CANCEL != 0 {
                ec2.fetch_add(1, SeqCst);
            }
        });

        // aura_cancel on the held request.
        slot.flags.fetch_or(F_CANCEL, SeqCst);
        fence(SeqCst);
        let s = slot.state.load(SeqCst);
        if s & SUB == 0 {
            // SUB gone: the handle, if the request was submitted, was published before
            // (Release/Acquire through `state`); none means it was completed unsubmitted.
            if slot.handle.with(|h| unsafe { *h }).is_some() {
                engine_cancels.fetch_add(1, SeqCst);
            }
        }
        releaser.join().unwrap();
        assert!(
            never_submitted.load(SeqCst) || engine_cancels.load(SeqCst) >= 1,
            "a cancel of a held request was lost"
        );
    });
}
