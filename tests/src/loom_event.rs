//! A counter with a blocking wait, for the loom models: stands in for an eventfd (the Engine's
//! completion eventfd) or for the SQ doorbell (`io_uring_enter`). Every wait blocks (no
//! spinning), so a lost wakeup shows up as a loom deadlock.

use loom::sync::{Condvar, Mutex};

/// See the [module documentation](self).
#[derive(Default)]
pub struct Event {
    count: Mutex<u64>,
    cond: Condvar,
}

impl Event {
    /// `eventfd_write(1)`.
    pub fn signal(&self) {
        *self.count.lock().unwrap() += 1;
        self.cond.notify_all();
    }

    /// A non-blocking `eventfd_read`: resets the count.
    pub fn clear(&self) {
        *self.count.lock().unwrap() = 0;
    }

    /// Blocks while the count is 0 (`poll` for readability), then resets it when `take`.
    pub fn wait(&self, take: bool) {
        let mut n = self.count.lock().unwrap();
        while *n == 0 {
            n = self.cond.wait(n).unwrap();
        }
        if take {
            *n = 0;
        }
    }
}
