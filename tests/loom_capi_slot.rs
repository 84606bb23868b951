//! Loom models of the C API's request slots (`aura-capi/src/request.rs`): how `aura_cancel`
//! reads a request's engine handle without holding the slot, and how a completion frees its
//! slot without a read-modify-write.
//!
//! As for the other C API models, the slots live in `aura-capi` (built on std atomics), so
//! these model the protocol with the same orderings instead of running its code:
//!
//! 1. **Cancel's seqlock read vs completion and reuse.** A slot's use `k` is: the submitter
//!    clears the handle, stores generation `k` (`Release`), sets the state to `COMP`; the
//!    engine records the handle (`user_data` then `ring`, both `Release`); the completion sets
//!    `done`, stores state 0 and frees the slot, which the next submission reuses (use
//!    `k + 1`). `aura_cancel` loads the generation (`Acquire`), checks the state and `done`,
//!    loads the handle (`ring` then `user_data`, `Acquire`), and loads the generation again;
//!    it uses the handle only when both generations agree. Checked in every interleaving: a
//!    handle it uses is exactly the one recorded for the generation it read — never the next
//!    request's (which it must not cancel), never a mix of two recordings.
//! 2. **A completion's plain-store free vs a held request's `SUB` release.** The successor of
//!    a linked request holds `SUB` until it is submitted; its completion may run on another
//!    thread while the holder gives `SUB` up (`fetch_sub`). The completion loads the state:
//!    exactly `COMP` means it is alone and a plain store frees the slot; else it clears `COMP`
//!    with `fetch_sub`. Checked: the slot is freed exactly once, with the state at 0.
//!
//! Only built with `--cfg loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p aura-tests --test loom_capi_slot --target-dir target/loom
//! ```
//!
//! Sanity check of model 1's power: dropping the second generation load, or making the
//! handle's `user_data` store and load `Relaxed`, makes loom find a cancel that uses the wrong
//! handle. (The generation's own `Release` store is backed up by the state's: a reader that
//! sees the new use's `COMP` sees its cleared handle too.)
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const SUB: u32 = 1;
const COMP: u32 = 2;
/// `ring` of a slot with no handle recorded.
const NONE: u32 = u32::MAX;

struct Slot {
    state: AtomicU32,
    done: AtomicBool,
    gen: AtomicU32,
    ring: AtomicU32,
    user_data: AtomicU64,
    frees: AtomicUsize,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: AtomicU32::new(0),
            done: AtomicBool::new(false),
            gen: AtomicU32::new(0),
            ring: AtomicU32::new(NONE),
            user_data: AtomicU64::new(0),
            frees: AtomicUsize::new(0),
        }
    }

    /// The handle the engine records for use `k` (distinct ring and user data per use, so a
    /// mix of two recordings is visible).
    fn handle_of(k: u32) -> (u32, u64) {
        (10 + k, 100 + u64::from(k))
    }

    /// `Submitting::begin` then the engine's `HandleSlot::set` (under the ring lock).
    fn submit(&self) {
        self.ring.store(NONE, Ordering::Relaxed);
        let k = self.gen.load(Ordering::Relaxed) + 1;
        self.gen.store(k, Ordering::Release);
        self.done.store(false, Ordering::Relaxed);
        self.state.store(COMP, Ordering::Release);
        let (ring, ud) = Slot::handle_of(k);
        self.user_data.store(ud, Ordering::Release);
        self.ring.store(ring, Ordering::Release);
    }

    /// The completion: `done`, then `SlotTable::release_comp`.
    fn complete(&self) {
        self.done.store(true, Ordering::Release);
        if self.state.load(Ordering::Acquire) == COMP {
            self.state.store(0, Ordering::Release);
            self.frees.fetch_add(1, Ordering::Relaxed);
        } else if self.state.fetch_sub(COMP, Ordering::AcqRel) == COMP {
            self.frees.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `current_handle`: the handle and the generation it belongs to, or `None` (EALREADY).
    fn current_handle(&self) -> Option<(u32, (u32, u64))> {
        let gen = self.gen.load(Ordering::Acquire);
        let s = self.state.load(Ordering::Acquire);
        if s & COMP == 0 || s & SUB != 0 || self.done.load(Ordering::Acquire) {
            return None;
        }
        let ring = self.ring.load(Ordering::Acquire);
        let handle = (ring != NONE).then(|| (ring, self.user_data.load(Ordering::Acquire)));
        if self.gen.load(Ordering::Acquire) != gen {
            return None;
        }
        handle.map(|h| (gen, h))
    }
}

#[test]
fn cancel_reads_only_its_own_generations_handle() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        // Use 1 is live when the cancel starts.
        slot.submit();
        let owner = {
            let slot = slot.clone();
            thread::spawn(move || {
                // Use 1 completes, the slot is reused by use 2, which completes too.
                slot.complete();
                slot.submit();
                slot.complete();
            })
        };
        if let Some((gen, handle)) = slot.current_handle() {
            assert_eq!(
                handle,
                Slot::handle_of(gen),
                "cancel read generation {gen} but a handle of another recording"
            );
        }
        owner.join().unwrap();
        assert_eq!(slot.frees.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn completion_frees_exactly_once_beside_a_sub_release() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        slot.state.store(COMP | SUB, Ordering::Relaxed);
        let holder = {
            let slot = slot.clone();
            thread::spawn(move || {
                // `Slot::publish_held`: the held request was submitted; give SUB up.
                if slot.state.fetch_sub(SUB, Ordering::SeqCst) == SUB {
                    slot.frees.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        slot.complete();
        holder.join().unwrap();
        assert_eq!(slot.frees.load(Ordering::Relaxed), 1, "freed exactly once");
        assert_eq!(slot.state.load(Ordering::Relaxed), 0);
    });
}
