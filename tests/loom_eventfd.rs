//! Loom model of the Engine's lazily registered completion eventfd (`Inner::ensure_eventfd`,
//! `Engine::block` / `sleep`, `Engine::poll_fd`).
//!
//! The Engine registers its eventfd on the rings only when a thread first sleeps for completions
//! or asks for `poll_fd`: until then no batch of completions pays for the kernel's signal. The
//! risk is a lost wakeup: a completion posted while the eventfd was not registered signals
//! nothing, so the sleeper must see it in the ring instead. This models the protocol, not the
//! Engine's code (which uses std's `Mutex` and real rings). One ring, three threads:
//!
//! - the kernel posts two completions, one at a time: it stores the CQ tail (Release), then
//!   looks whether an eventfd is registered and signals it if so. Between the two the real
//!   kernel has a full barrier on these rings (`io_cqring_wake` → `wq_has_sleeper`'s
//!   `smp_mb`), modelled as a `SeqCst` fence;
//! - the sleeper (`Engine::wait`): one pass reaps whatever the CQ shows (under the shard lock);
//!   with nothing there it blocks: `ensure_eventfd` (register under the shard lock if the flag
//!   says not yet, the registration being a syscall, so a full barrier; then the flag's Release
//!   store), clear the eventfd, look at the CQ once more under the lock, and only if it is
//!   empty wait on the eventfd (a loom `Condvar`: no timeout, so a lost wakeup is a deadlock);
//! - a `poll_fd` caller runs `ensure_eventfd` concurrently: the ring must be registered once.
//!
//! Checked in every interleaving: the sleeper reaps both completions (never blocks forever), the
//! ring is registered exactly once, and once either thread's `ensure_eventfd` returned, the ring
//! is registered.
//!
//! Sanity check of the model's power: dropping the kernel's fence, or the sleeper's second look
//! at the CQ after registering, makes loom report the deadlock.
//!
//! Only built with `--cfg loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p aura-tests --test loom_eventfd --target-dir target/loom
//! ```
#![cfg(loom)]

use loom::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use aura_tests::loom_event::Event;

/// Completions the kernel posts.
const CQES: u32 = 2;

/// The ring as far as this protocol goes.
struct Ring {
    /// The CQ tail: the kernel's index of posted completions.
    tail: AtomicU32,
    /// The kernel's view of the eventfd registration (`ctx->io_ev_fd`).
    kernel_registered: AtomicBool,
    /// Registrations made (must end at exactly 1).
    registrations: AtomicU32,
}

/// The shard lock's contents: the application's CQ head and its registration flag.
struct ShardState {
    head: u32,
    eventfd_registered: bool,
}

struct Engine {
    ring: Ring,
    shard: Mutex<ShardState>,
    /// `Inner::eventfd_on`.
    eventfd_on: AtomicBool,
    eventfd: Event,
}

impl Engine {
    /// `Inner::ensure_eventfd`.
    fn ensure_eventfd(&self) {
        if self.eventfd_on.load(Ordering::Acquire) {
            return;
        }
        let mut st = self.shard.lock().unwrap();
        if !st.eventfd_registered {
            // `io_uring_register(REGISTER_EVENTFD)`: a syscall, so a full barrier around the
            // kernel's publication of the eventfd.
            fence(Ordering::SeqCst);
            self.ring.kernel_registered.store(true, Ordering::Relaxed);
            self.ring.registrations.fetch_add(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            st.eventfd_registered = true;
        }
        drop(st);
        self.eventfd_on.store(true, Ordering::Release);
    }

    /// Takes every completion the CQ shows (under the shard lock). Returns how many.
    fn reap(&self) -> u32 {
        let mut st = self.shard.lock().unwrap();
        let tail = self.ring.tail.load(Ordering::Acquire);
        let n = tail - st.head;
        st.head = tail;
        n
    }

    /// `Engine::sleep`: register if needed, clear the eventfd, look again, then sleep.
    fn block(&self) {
        self.ensure_eventfd();
        self.eventfd.clear();
        {
            let st = self.shard.lock().unwrap();
            if self.ring.tail.load(Ordering::Acquire) != st.head {
                return;
            }
        }
        self.eventfd.wait(false);
    }
}

#[test]
fn a_lazily_registered_eventfd_loses_no_wakeup() {
    loom::model(|| {
        let engine = Arc::new(Engine {
            ring: Ring {
                tail: AtomicU32::new(0),
                kernel_registered: AtomicBool::new(false),
                registrations: AtomicU32::new(0),
            },
            shard: Mutex::new(ShardState {
                head: 0,
                eventfd_registered: false,
            }),
            eventfd_on: AtomicBool::new(false),
            eventfd: Event::default(),
        });

        let kernel = {
            let e = Arc::clone(&engine);
            thread::spawn(move || {
                for _ in 0..CQES {
                    e.ring.tail.fetch_add(1, Ordering::Release);
                    // The kernel's full barrier between posting and looking for an eventfd.
                    fence(Ordering::SeqCst);
                    if e.ring.kernel_registered.load(Ordering::Relaxed) {
                        e.eventfd.signal();
                    }
                }
            })
        };
        let poll_fd = {
            let e = Arc::clone(&engine);
            thread::spawn(move || {
                e.ensure_eventfd();
                assert!(e.ring.kernel_registered.load(Ordering::Relaxed));
            })
        };

        // The sleeper: `wait` until both completions were reaped.
        let mut reaped = 0;
        while reaped < CQES {
            let n = engine.reap();
            if n == 0 {
                engine.block();
            }
            reaped += n;
        }

        kernel.join().unwrap();
        poll_fd.join().unwrap();
        assert_eq!(engine.ring.registrations.load(Ordering::Relaxed), 1);
    });
}
