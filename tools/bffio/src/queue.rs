//! A bounded multi-producer queue of `u64` completions (Vyukov's array queue), drained by one
//! consumer: the worker that owns it.
//!
//! Completion callbacks run on whichever thread waits on the Engine, so a worker's completions
//! may be pushed from another worker's thread. Each cell carries a sequence number: a producer
//! claims a position with a CAS on the tail and publishes its value with a Release store of the
//! cell's sequence; the consumer's Acquire load of that sequence sees the value. No locks, no
//! allocation after construction.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

struct Cell {
    seq: AtomicUsize,
    val: AtomicU64,
}

/// The queue. Capacity is a power of two at least the requested size.
pub(crate) struct CompletionQueue {
    cells: Box<[Cell]>,
    mask: usize,
    tail: AtomicUsize,
    head: AtomicUsize,
}

impl CompletionQueue {
    /// A queue for at least `n` values.
    pub(crate) fn new(n: usize) -> Self {
        let cap = n.max(2).next_power_of_two();
        let cells = (0..cap)
            .map(|i| Cell {
                seq: AtomicUsize::new(i),
                val: AtomicU64::new(0),
            })
            .collect();
        CompletionQueue {
            cells,
            mask: cap - 1,
            tail: AtomicUsize::new(0),
            head: AtomicUsize::new(0),
        }
    }

    /// Appends `v`; `false` when full (never, when the capacity covers every value in flight).
    pub(crate) fn push(&self, v: u64) -> bool {
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let cell = &self.cells[pos & self.mask];
            let seq = cell.seq.load(Ordering::Acquire);
            let dif = seq as isize - pos as isize;
            if dif == 0 {
                match self.tail.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        cell.val.store(v, Ordering::Relaxed);
                        // Publishes the value to the consumer's Acquire load of `seq`.
                        cell.seq.store(pos + 1, Ordering::Release);
                        return true;
                    }
                    Err(p) => pos = p,
                }
            } else if dif < 0 {
                return false;
            } else {
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Whether a value is ready for [`CompletionQueue::pop`] (consumer side).
    pub(crate) fn has_items(&self) -> bool {
        let pos = self.head.load(Ordering::Relaxed);
        self.cells[pos & self.mask].seq.load(Ordering::Acquire) == pos + 1
    }

    /// Takes the oldest value. Only the owning worker calls this (one consumer).
    pub(crate) fn pop(&self) -> Option<u64> {
        let pos = self.head.load(Ordering::Relaxed);
        let cell = &self.cells[pos & self.mask];
        let seq = cell.seq.load(Ordering::Acquire);
        if seq != pos + 1 {
            return None;
        }
        let v = cell.val.load(Ordering::Relaxed);
        // Hands the cell back to producers one lap later.
        cell.seq.store(pos + self.mask + 1, Ordering::Release);
        self.head.store(pos + 1, Ordering::Relaxed);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_and_full() {
        let q = CompletionQueue::new(3);
        assert!(q.push(1) && q.push(2) && q.push(3) && q.push(4));
        assert!(!q.push(5));
        assert_eq!(q.pop(), Some(1));
        assert!(q.push(5));
        assert_eq!(
            (q.pop(), q.pop(), q.pop(), q.pop()),
            (Some(2), Some(3), Some(4), Some(5))
        );
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn many_producers_one_consumer() {
        let q = Arc::new(CompletionQueue::new(64));
        let producers: Vec<_> = (0..4u64)
            .map(|t| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        while !q.push(t << 32 | i) {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u64; 4];
        let mut got = 0;
        while got < 40_000 {
            match q.pop() {
                Some(v) => {
                    let (t, i) = ((v >> 32) as usize, v & 0xFFFF_FFFF);
                    assert_eq!(i, next[t], "per-producer order");
                    next[t] += 1;
                    got += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(q.pop(), None);
    }
}
