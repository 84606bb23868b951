//! Request slots for an io_uring ring, keyed by a generation-checked 64-bit `user_data`.
//!
//! Every in-flight request owns one slot of a [`Slab`]. Inserting a request yields a [`Token`]
//! whose [`Token::user_data`] goes into the SQE; the kernel hands the same 64 bits back in the
//! CQE, and [`Slab::remove`] (or [`Slab::get`] / [`Slab::get_mut`]) turns them back into the
//! request. The token packs the slot index (low 32 bits) with the slot's *generation* (high
//! 32 bits), and a slot's generation changes every time it is freed, so a late, duplicated or
//! garbage `user_data` is reported as [`Stale`] instead of being dispatched to whichever request
//! owns the slot now.
//!
//! # Guarantees
//!
//! - Insert and remove are O(1): freed slots form an intrusive LIFO free list threaded through the
//!   vacant entries, and never-used slots are handed out in index order.
//! - The capacity is fixed at construction and is at most `u32::MAX - 1` slots, so the slot index
//!   `u32::MAX` never exists and no token ever packs to [`RESERVED_USER_DATA`].
//! - Generations start at 1 and step by one each time a slot is freed, wrapping from `u32::MAX`
//!   back to 1 (0 is skipped), so `user_data` 0 never names a live request. A reused slot
//!   therefore always carries a generation different from every token issued for that slot during
//!   its last `2^32 - 2` reuses; only a token held across `2^32 - 1` reuses of one slot could
//!   alias a newer request.

use alloc::vec::Vec;
use core::fmt;
use core::iter::FusedIterator;
use core::mem;

/// user_data values the slab never produces; the ring reserves them for its own internal SQEs
/// (timeouts).
///
/// It packs to slot index `u32::MAX`, which no slab has (see [`Slab::with_capacity`]).
pub const RESERVED_USER_DATA: u64 = u64::MAX;

/// The largest capacity a slab accepts: slot indices stay below `u32::MAX - 1`, so index
/// `u32::MAX` (the free-list terminator, and the index half of [`RESERVED_USER_DATA`]) never
/// exists.
const MAX_CAPACITY: u32 = u32::MAX - 1;

/// How many slots [`Slab::with_capacity`] reserves memory for up front (64 Ki: more than any
/// ring's CQ holds in flight).
pub const PREALLOCATED_SLOTS: u32 = 1 << 16;

/// Free-list terminator: "no next free slot".
const NIL: u32 = u32::MAX;

/// The generation a slot has when it is first used.
const FIRST_GENERATION: u32 = 1;

// Slot indices are `u32`s used as `Vec` indices; every target aura runs on has a `usize` at least
// that wide, so the `as usize` conversions below are lossless.
const _: () = assert!(usize::BITS >= u32::BITS);

/// The generation a slot gets when it is freed: one more, wrapping from `u32::MAX` to 1.
const fn next_generation(generation: u32) -> u32 {
    match generation.wrapping_add(1) {
        0 => FIRST_GENERATION,
        g => g,
    }
}

/// The packed identity of one slab slot at one generation; its [`user_data`](Token::user_data)
/// goes into an SQE.
///
/// Bit layout: the low 32 bits are the slot index, the high 32 bits the slot's generation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Token(u64);

impl Token {
    /// The token for slot `index` at `generation`.
    const fn new(index: u32, generation: u32) -> Token {
        Token(((generation as u64) << 32) | index as u64)
    }

    /// The 64-bit value to put in the SQE's `user_data`.
    pub const fn user_data(self) -> u64 {
        self.0
    }

    /// Reinterprets a CQE's `user_data` as a token. Any value is accepted; whether it names a
    /// live slot is for the slab to decide.
    pub const fn from_user_data(u: u64) -> Token {
        Token(u)
    }

    /// The slot index (the low 32 bits).
    pub const fn index(self) -> u32 {
        self.0 as u32
    }

    /// The slot's generation when the token was issued (the high 32 bits).
    pub const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// Why a `user_data` did not match a live slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stale {
    /// The index half names a slot at or beyond the slab's capacity: garbage.
    OutOfRange,
    /// The slot is free (its request already completed, or it was never used).
    Vacant,
    /// The slot is in use, but by a newer request than the one the `user_data` was issued for.
    WrongGeneration {
        /// The generation of the slot's current occupant.
        expected: u32,
        /// The generation the `user_data` carried.
        found: u32,
    },
    /// The value is [`RESERVED_USER_DATA`], which belongs to the ring's internal SQEs.
    Reserved,
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Stale::OutOfRange => f.write_str("user_data names a slot beyond the slab's capacity"),
            Stale::Vacant => f.write_str("user_data names a free slot"),
            Stale::WrongGeneration { expected, found } => write!(
                f,
                "user_data carries generation {found}, but the slot is at generation {expected}"
            ),
            Stale::Reserved => f.write_str("user_data is reserved for the ring's internal SQEs"),
        }
    }
}

/// One slot.
enum Entry<T> {
    /// Owned by an in-flight request issued at `generation`.
    Occupied {
        /// The generation the occupant's token carries.
        generation: u32,
        /// The request's state.
        value: T,
    },
    /// Free; the next insert into this slot uses `generation`.
    Vacant {
        /// The generation the next occupant will get.
        generation: u32,
        /// The next slot on the free list, or [`NIL`].
        next_free: u32,
    },
}

/// A fixed-capacity table of request slots, addressed by generation-checked `user_data`.
///
/// See the [module documentation](self) for the guarantees.
pub struct Slab<T> {
    /// Slots `0..entries.len()` have been used at least once; the rest up to `cap` never have.
    entries: Vec<Entry<T>>,
    /// Head of the intrusive free list of vacant entries, or [`NIL`].
    free_head: u32,
    /// Number of occupied entries.
    len: u32,
    /// Fixed capacity, at most [`MAX_CAPACITY`].
    cap: u32,
}

impl<T> Slab<T> {
    /// An empty slab with room for `cap` requests; the capacity never changes afterwards.
    ///
    /// `cap` is clamped to `u32::MAX - 1`, so the slot index `u32::MAX` never exists and no token
    /// packs to [`RESERVED_USER_DATA`]. A capacity of 0 is allowed (the slab is always full).
    ///
    /// Never panics: memory for up to [`PREALLOCATED_SLOTS`] slots is reserved up front when the
    /// allocator can provide it, so a ring-sized slab never reallocates; slots beyond that (or all
    /// of them, if the reservation fails) are allocated as they are first used (inserts are then
    /// amortised O(1)).
    pub fn with_capacity(cap: u32) -> Self {
        let cap = if cap > MAX_CAPACITY {
            MAX_CAPACITY
        } else {
            cap
        };
        let mut entries = Vec::new();
        // Best effort: failure only means the slots are allocated lazily by `insert`.
        let _ = entries.try_reserve_exact(cap.min(PREALLOCATED_SLOTS) as usize);
        Slab {
            entries,
            free_head: NIL,
            len: 0,
            cap,
        }
    }

    /// The fixed number of slots.
    pub fn capacity(&self) -> u32 {
        self.cap
    }

    /// The number of live (occupied) slots.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether no slot is occupied.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every slot is occupied, so [`insert`](Slab::insert) would fail.
    pub fn is_full(&self) -> bool {
        self.len == self.cap
    }

    /// Stores `value` in a free slot and returns its token, or hands `value` back if the slab is
    /// full.
    ///
    /// The most recently freed slot is reused first; its generation differs from the token that
    /// last named it.
    #[inline(always)]
    pub fn insert(&mut self, value: T) -> Result<Token, T> {
        let index = self.free_head;
        if index != NIL {
            let slot = &mut self.entries[index as usize];
            let Entry::Vacant {
                generation,
                next_free,
            } = *slot
            else {
                unreachable!("slab free list points at an occupied slot");
            };
            self.free_head = next_free;
            *slot = Entry::Occupied { generation, value };
            self.len += 1;
            return Ok(Token::new(index, generation));
        }
        self.insert_fresh(value)
    }

    /// [`Slab::insert`] into a slot never used before (the free list is empty): each slot once.
    #[cold]
    #[inline(never)]
    fn insert_fresh(&mut self, value: T) -> Result<Token, T> {
        if self.entries.len() < self.cap as usize {
            // Lossless: `entries.len() < cap <= MAX_CAPACITY`.
            let index = self.entries.len() as u32;
            self.entries.push(Entry::Occupied {
                generation: FIRST_GENERATION,
                value,
            });
            self.len += 1;
            return Ok(Token::new(index, FIRST_GENERATION));
        }
        Err(value)
    }

    /// The slot index `user_data` names, if it names a live slot at the right generation.
    fn locate(&self, user_data: u64) -> Result<usize, Stale> {
        if user_data == RESERVED_USER_DATA {
            return Err(Stale::Reserved);
        }
        let token = Token::from_user_data(user_data);
        if token.index() >= self.cap {
            return Err(Stale::OutOfRange);
        }
        let index = token.index() as usize;
        match self.entries.get(index) {
            // Beyond `entries.len()` but within capacity: never used yet.
            None | Some(Entry::Vacant { .. }) => Err(Stale::Vacant),
            Some(&Entry::Occupied { generation, .. }) if generation == token.generation() => {
                Ok(index)
            }
            Some(&Entry::Occupied { generation, .. }) => Err(Stale::WrongGeneration {
                expected: generation,
                found: token.generation(),
            }),
        }
    }

    /// The request `user_data` names, if it is still live.
    pub fn get(&self, user_data: u64) -> Result<&T, Stale> {
        let index = self.locate(user_data)?;
        match &self.entries[index] {
            Entry::Occupied { value, .. } => Ok(value),
            Entry::Vacant { .. } => Err(Stale::Vacant),
        }
    }

    /// The request `user_data` names, mutably, if it is still live.
    pub fn get_mut(&mut self, user_data: u64) -> Result<&mut T, Stale> {
        let index = self.locate(user_data)?;
        match &mut self.entries[index] {
            Entry::Occupied { value, .. } => Ok(value),
            Entry::Vacant { .. } => Err(Stale::Vacant),
        }
    }

    /// Frees the slot `user_data` names and returns its request, if it is still live.
    ///
    /// The slot's generation is bumped, so removing (or looking up) the same `user_data` again
    /// fails with [`Stale::Vacant`], or [`Stale::WrongGeneration`] once the slot is reused.
    pub fn remove(&mut self, user_data: u64) -> Result<T, Stale> {
        let index = self.locate(user_data)?;
        self.take(index).ok_or(Stale::Vacant)
    }

    /// Like [`Slab::remove`], but moves the request straight into `dst` (initialising it) and
    /// returns a reference to it there.
    ///
    /// One bitwise copy from the slot to `dst`, with no temporary in between: `remove` returns
    /// the value through a `Result`, and a large `T` then travels through stack copies whose
    /// mixed-size stores and loads defeat store-to-load forwarding on the reap path.
    pub fn remove_into<'d>(
        &mut self,
        user_data: u64,
        dst: &'d mut core::mem::MaybeUninit<T>,
    ) -> Result<&'d mut T, Stale> {
        let index = self.locate(user_data)?;
        let free_head = self.free_head;
        let slot = &mut self.entries[index];
        let Entry::Occupied { generation, value } = slot else {
            return Err(Stale::Vacant);
        };
        let vacant = Entry::Vacant {
            generation: next_generation(*generation),
            next_free: free_head,
        };
        // SAFETY: `value` is a live `T` in an occupied slot; it is copied bitwise into `dst`
        // (a distinct place: `dst` is an exclusive borrow, `slot` one of `self`), and right
        // after, the slot is overwritten with `vacant` by `ptr::write`, which does not drop
        // the old contents: the `T` now lives only in `dst`, so it is neither dropped twice nor
        // lost. Nothing between the copy and the write can panic.
        unsafe {
            core::ptr::copy_nonoverlapping(value as *const T, dst.as_mut_ptr(), 1);
            core::ptr::write(slot as *mut Entry<T>, vacant);
        }
        // Lossless: `index < entries.len() <= cap <= MAX_CAPACITY`.
        self.free_head = index as u32;
        self.len -= 1;
        // SAFETY: initialised by the copy above.
        Ok(unsafe { dst.assume_init_mut() })
    }

    /// Frees slot `index` if it is occupied: bumps its generation, pushes it on the free list and
    /// returns its value.
    fn take(&mut self, index: usize) -> Option<T> {
        let slot = &mut self.entries[index];
        let Entry::Occupied { generation, .. } = *slot else {
            return None;
        };
        let vacant = Entry::Vacant {
            generation: next_generation(generation),
            next_free: self.free_head,
        };
        let Entry::Occupied { value, .. } = mem::replace(slot, vacant) else {
            unreachable!("slot was checked to be occupied");
        };
        // Lossless: `index < entries.len() <= cap <= MAX_CAPACITY`.
        self.free_head = index as u32;
        self.len -= 1;
        Some(value)
    }

    /// The live requests and their tokens, in slot-index order.
    pub fn iter(&self) -> impl Iterator<Item = (Token, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| match entry {
                // Lossless: `index < entries.len() <= MAX_CAPACITY`.
                Entry::Occupied { generation, value } => {
                    Some((Token::new(index as u32, *generation), value))
                }
                Entry::Vacant { .. } => None,
            })
    }

    /// Removes every live request, yielding each with the token it was issued under, in
    /// slot-index order.
    ///
    /// Each slot is freed (and its generation bumped) as it is yielded; dropping the iterator
    /// early frees the rest, so afterwards the slab is empty and every old token is stale. (If the
    /// iterator is leaked instead, the slab is left consistent with the not-yet-yielded requests
    /// still in it.)
    pub fn drain(&mut self) -> impl Iterator<Item = (Token, T)> + '_ {
        Drain {
            slab: self,
            next: 0,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// The live entries, printed as a `user_data => value` map.
        struct Live<'a, T>(&'a Slab<T>);
        impl<T: fmt::Debug> fmt::Debug for Live<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(t, v)| (t.user_data(), v)))
                    .finish()
            }
        }
        f.debug_struct("Slab")
            .field("capacity", &self.cap)
            .field("len", &self.len)
            .field("live", &Live(self))
            .finish()
    }
}

/// The iterator [`Slab::drain`] returns.
struct Drain<'a, T> {
    /// The slab being emptied.
    slab: &'a mut Slab<T>,
    /// The first slot index not yet visited; every slot below it is vacant.
    next: usize,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = (Token, T);

    fn next(&mut self) -> Option<Self::Item> {
        while self.slab.len > 0 && self.next < self.slab.entries.len() {
            let index = self.next;
            self.next += 1;
            let generation = match self.slab.entries[index] {
                Entry::Occupied { generation, .. } => generation,
                Entry::Vacant { .. } => continue,
            };
            if let Some(value) = self.slab.take(index) {
                // Lossless: `index < entries.len() <= MAX_CAPACITY`.
                return Some((Token::new(index as u32, generation), value));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Every live slot is at or beyond `next`, and each is yielded exactly once.
        let live = self.slab.len as usize;
        (live, Some(live))
    }
}

impl<T> ExactSizeIterator for Drain<'_, T> {}

impl<T> FusedIterator for Drain<'_, T> {}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        self.for_each(drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::format;
    use std::string::ToString;
    use std::vec::Vec;

    /// A tiny deterministic xorshift64* generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn token_packing() {
        let t = Token::new(7, 9);
        assert_eq!(t.index(), 7);
        assert_eq!(t.generation(), 9);
        assert_eq!(t.user_data(), (9 << 32) | 7);
        assert_eq!(Token::from_user_data(t.user_data()), t);
        let r = Token::from_user_data(RESERVED_USER_DATA);
        assert_eq!((r.index(), r.generation()), (u32::MAX, u32::MAX));
    }

    #[test]
    fn next_generation_wraps_past_zero() {
        assert_eq!(next_generation(1), 2);
        assert_eq!(next_generation(u32::MAX - 1), u32::MAX);
        assert_eq!(next_generation(u32::MAX), 1);
    }

    #[test]
    fn insert_until_full_hands_value_back() {
        let mut s = Slab::with_capacity(3);
        assert!(s.is_empty());
        assert_eq!(s.capacity(), 3);
        let a = s.insert("a").unwrap();
        let b = s.insert("b").unwrap();
        let c = s.insert("c").unwrap();
        assert!(s.is_full());
        assert_eq!(s.len(), 3);
        assert_eq!(s.insert("d"), Err("d"));
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(a.user_data()), Ok(&"a"));
        assert_eq!(s.get(b.user_data()), Ok(&"b"));
        assert_eq!(s.get(c.user_data()), Ok(&"c"));
        assert_eq!(s.remove(b.user_data()), Ok("b"));
        assert!(!s.is_full());
        let d = s.insert("d").unwrap();
        assert_eq!(d.index(), b.index());
        assert_eq!(s.insert("e"), Err("e"));
    }

    #[test]
    fn remove_into_moves_the_value_once_and_frees_the_slot() {
        use alloc::rc::Rc;
        use core::mem::MaybeUninit;
        // An `Rc` counts its owners: a lost or duplicated value shows in the count.
        let v = Rc::new(5u32);
        let mut s = Slab::with_capacity(2);
        let t = s.insert(Rc::clone(&v)).unwrap();
        let mut dst = MaybeUninit::uninit();
        let got = s.remove_into(t.user_data(), &mut dst).unwrap();
        assert_eq!(**got, 5);
        assert_eq!(Rc::strong_count(&v), 2);
        assert!(s.is_empty());
        // The slot is free and its old token stale, for both removals.
        let mut other = MaybeUninit::uninit();
        assert_eq!(
            s.remove_into(t.user_data(), &mut other).map(|r| **r),
            Err(Stale::Vacant)
        );
        assert_eq!(s.remove(t.user_data()), Err(Stale::Vacant));
        let u = s.insert(Rc::clone(&v)).unwrap();
        assert_eq!(u.index(), t.index());
        assert!(matches!(
            s.remove_into(t.user_data(), &mut other),
            Err(Stale::WrongGeneration { .. })
        ));
        assert_eq!(
            s.remove_into(RESERVED_USER_DATA, &mut other).err(),
            Some(Stale::Reserved)
        );
        assert_eq!(s.remove_into(7, &mut other).err(), Some(Stale::OutOfRange));
        // SAFETY: `dst` was initialised by the successful `remove_into`, and is read once.
        drop(unsafe { dst.assume_init() });
        assert_eq!(Rc::strong_count(&v), 2);
        drop(s);
        assert_eq!(Rc::strong_count(&v), 1);
    }

    #[test]
    fn zero_capacity_is_always_full() {
        let mut s = Slab::with_capacity(0);
        assert!(s.is_full());
        assert!(s.is_empty());
        assert_eq!(s.insert(1u8), Err(1));
        assert_eq!(s.get(0), Err(Stale::OutOfRange));
        assert_eq!(s.remove(0), Err(Stale::OutOfRange));
        assert_eq!(s.get(RESERVED_USER_DATA), Err(Stale::Reserved));
        assert_eq!(s.drain().count(), 0);
    }

    #[test]
    fn huge_capacity_is_clamped_and_lazy() {
        let mut s = Slab::<u8>::with_capacity(u32::MAX);
        assert_eq!(s.capacity(), u32::MAX - 1);
        let t = s.insert(5).unwrap();
        assert_eq!(
            s.get((u64::from(u32::MAX - 2) << 32) | 9),
            Err(Stale::Vacant)
        );
        assert_eq!(s.get(u64::from(u32::MAX - 1)), Err(Stale::OutOfRange));
        assert_eq!(s.get(u64::from(u32::MAX)), Err(Stale::OutOfRange));
        assert_eq!(s.get(RESERVED_USER_DATA), Err(Stale::Reserved));
        assert_eq!(s.remove(t.user_data()), Ok(5));
    }

    #[test]
    fn remove_then_stale_remove_fails() {
        let mut s = Slab::with_capacity(4);
        let t = s.insert(10u32).unwrap();
        assert_eq!(t.generation(), 1);
        assert_eq!(s.remove(t.user_data()), Ok(10));
        assert_eq!(s.len(), 0);
        assert_eq!(s.remove(t.user_data()), Err(Stale::Vacant));
        assert_eq!(s.get(t.user_data()), Err(Stale::Vacant));
        assert_eq!(s.get_mut(t.user_data()), Err(Stale::Vacant));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn reused_slot_rejects_old_token() {
        let mut s = Slab::with_capacity(2);
        let old = s.insert(1u32).unwrap();
        assert_eq!(s.remove(old.user_data()), Ok(1));
        let new = s.insert(2).unwrap();
        assert_eq!(new.index(), old.index());
        assert_eq!(new.generation(), old.generation() + 1);
        let err = Stale::WrongGeneration {
            expected: new.generation(),
            found: old.generation(),
        };
        assert_eq!(s.get(old.user_data()), Err(err));
        assert_eq!(s.get_mut(old.user_data()), Err(err));
        assert_eq!(s.remove(old.user_data()), Err(err));
        assert_eq!(s.get(new.user_data()), Ok(&2));
        *s.get_mut(new.user_data()).unwrap() = 3;
        assert_eq!(s.remove(new.user_data()), Ok(3));
        // Both earlier tokens now name a vacant slot at generation 3.
        assert_eq!(s.remove(old.user_data()), Err(Stale::Vacant));
        assert_eq!(s.remove(new.user_data()), Err(Stale::Vacant));
        let third = s.insert(4).unwrap();
        assert_eq!(third.generation(), 3);
        assert_eq!(
            s.remove(new.user_data()),
            Err(Stale::WrongGeneration {
                expected: 3,
                found: 2
            })
        );
    }

    #[test]
    fn garbage_user_data_never_returns_a_value() {
        let mut s = Slab::with_capacity(8);
        let live: Vec<Token> = (0..8u32).map(|i| s.insert(i).unwrap()).collect();
        let live_set: HashSet<u64> = live.iter().map(|t| t.user_data()).collect();
        assert_eq!(s.get(u64::MAX), Err(Stale::Reserved));
        assert_eq!(s.remove(u64::MAX), Err(Stale::Reserved));
        // Generation 0 is never issued, so user_data 0 is always stale.
        assert_eq!(
            s.get(0),
            Err(Stale::WrongGeneration {
                expected: 1,
                found: 0
            })
        );
        assert_eq!(s.get(8), Err(Stale::OutOfRange));
        assert_eq!(s.get((1 << 32) | 8), Err(Stale::OutOfRange));
        assert_eq!(s.get_mut(u64::from(u32::MAX)), Err(Stale::OutOfRange));
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let rounds = if cfg!(miri) { 200 } else { 10_000 };
        for _ in 0..rounds {
            let u = rng.next();
            if live_set.contains(&u) {
                continue;
            }
            assert!(s.get(u).is_err(), "{u:#x}");
            assert!(s.get_mut(u).is_err(), "{u:#x}");
            assert!(s.remove(u).is_err(), "{u:#x}");
        }
        assert_eq!(s.len(), 8);
        for (i, t) in live.iter().enumerate() {
            assert_eq!(s.get(t.user_data()), Ok(&(i as u32)));
        }
    }

    #[test]
    fn drain_empties_and_stales_tokens() {
        let mut s = Slab::with_capacity(6);
        let tokens: Vec<Token> = (0..6u32).map(|i| s.insert(i).unwrap()).collect();
        s.remove(tokens[2].user_data()).unwrap();
        let drained: Vec<(Token, u32)> = s.drain().collect();
        let expected: Vec<(Token, u32)> = tokens
            .iter()
            .copied()
            .zip(0..)
            .filter(|&(_, v)| v != 2)
            .collect();
        assert_eq!(drained, expected);
        assert!(s.is_empty());
        assert_eq!(s.iter().count(), 0);
        for t in &tokens {
            assert_eq!(s.get(t.user_data()), Err(Stale::Vacant));
        }
        let reused: Vec<Token> = (0..6u32).map(|i| s.insert(i).unwrap()).collect();
        assert!(s.is_full());
        for t in &tokens {
            assert!(s.remove(t.user_data()).is_err());
            assert!(!reused.contains(t));
        }
    }

    #[test]
    fn dropping_drain_early_still_empties() {
        let mut s = Slab::with_capacity(4);
        let tokens: Vec<Token> = (0..4)
            .map(|i| s.insert(std::boxed::Box::new(i)).unwrap())
            .collect();
        let mut d = s.drain();
        assert_eq!(d.size_hint(), (4, Some(4)));
        assert_eq!(d.next().map(|(t, v)| (t, *v)), Some((tokens[0], 0)));
        drop(d);
        assert!(s.is_empty());
        for t in &tokens {
            assert_eq!(s.get(t.user_data()), Err(Stale::Vacant));
        }
    }

    #[test]
    fn iter_yields_live_entries() {
        let mut s = Slab::with_capacity(5);
        let tokens: Vec<Token> = (0..5u32).map(|i| s.insert(i * 10).unwrap()).collect();
        s.remove(tokens[1].user_data()).unwrap();
        s.remove(tokens[3].user_data()).unwrap();
        let seen: Vec<(Token, u32)> = s.iter().map(|(t, &v)| (t, v)).collect();
        assert_eq!(seen, [(tokens[0], 0), (tokens[2], 20), (tokens[4], 40)]);
        let dbg = format!("{s:?}");
        assert!(
            dbg.contains("capacity: 5") && dbg.contains("len: 3"),
            "{dbg}"
        );
    }

    #[test]
    fn stale_display() {
        assert!(Stale::OutOfRange.to_string().contains("capacity"));
        assert!(Stale::Vacant.to_string().contains("free"));
        let s = Stale::WrongGeneration {
            expected: 4,
            found: 3,
        }
        .to_string();
        assert!(s.contains('4') && s.contains('3'), "{s}");
        assert!(Stale::Reserved.to_string().contains("reserved"));
    }

    /// Checks a failed lookup against what the slab's state says it must be.
    fn check_stale(err: Stale, u: u64, cap: u32) {
        let t = Token::from_user_data(u);
        match err {
            Stale::Reserved => assert_eq!(u, RESERVED_USER_DATA),
            Stale::OutOfRange => assert!(u != RESERVED_USER_DATA && t.index() >= cap),
            Stale::Vacant => assert!(t.index() < cap),
            Stale::WrongGeneration { expected, found } => {
                assert!(t.index() < cap);
                assert_eq!(found, t.generation());
                assert_ne!(expected, found);
                assert_ne!(expected, 0);
            }
        }
    }

    #[test]
    fn randomized_against_hashmap_model() {
        const CAP: u32 = 16;
        let ops = if cfg!(miri) { 2_000 } else { 100_000 };
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut slab = Slab::with_capacity(CAP);
        let mut model: HashMap<u64, u32> = HashMap::new();
        // Every token ever issued (live or stale), to replay stale ones.
        let mut issued: Vec<u64> = Vec::new();
        let mut counter = 0u32;

        // Picks a user_data to probe: usually a live or previously issued one, sometimes garbage.
        let pick = |rng: &mut Rng, model: &HashMap<u64, u32>, issued: &[u64]| -> u64 {
            match rng.below(10) {
                0..=4 if !model.is_empty() => {
                    let n = rng.below(model.len() as u64) as usize;
                    *model.keys().nth(n).unwrap()
                }
                0..=7 if !issued.is_empty() => issued[rng.below(issued.len() as u64) as usize],
                8 => match rng.below(4) {
                    0 => RESERVED_USER_DATA,
                    1 => 0,
                    2 => u64::from(CAP) + rng.below(1 << 20),
                    _ => rng.below(u64::from(CAP)),
                },
                _ => rng.next(),
            }
        };

        for _ in 0..ops {
            match rng.below(100) {
                // insert
                0..=39 => {
                    counter += 1;
                    match slab.insert(counter) {
                        Ok(t) => {
                            assert!(model.len() < CAP as usize);
                            let u = t.user_data();
                            assert_ne!(u, RESERVED_USER_DATA);
                            assert_ne!(t.generation(), 0);
                            assert!(t.index() < CAP);
                            assert!(model.insert(u, counter).is_none(), "token reissued live");
                            issued.push(u);
                        }
                        Err(v) => {
                            assert_eq!(v, counter);
                            assert_eq!(model.len(), CAP as usize);
                        }
                    }
                }
                // remove
                40..=74 => {
                    let u = pick(&mut rng, &model, &issued);
                    match (slab.remove(u), model.remove(&u)) {
                        (Ok(v), Some(m)) => assert_eq!(v, m),
                        (Err(e), None) => check_stale(e, u, CAP),
                        (got, want) => panic!("remove({u:#x}): slab {got:?}, model {want:?}"),
                    }
                }
                // get
                75..=89 => {
                    let u = pick(&mut rng, &model, &issued);
                    match (slab.get(u), model.get(&u)) {
                        (Ok(v), Some(m)) => assert_eq!(v, m),
                        (Err(e), None) => check_stale(e, u, CAP),
                        (got, want) => panic!("get({u:#x}): slab {got:?}, model {want:?}"),
                    }
                }
                // get_mut
                90..=97 => {
                    let u = pick(&mut rng, &model, &issued);
                    match (slab.get_mut(u), model.get_mut(&u)) {
                        (Ok(v), Some(m)) => {
                            assert_eq!(v, m);
                            counter += 1;
                            *v = counter;
                            *m = counter;
                        }
                        (Err(e), None) => check_stale(e, u, CAP),
                        (got, want) => panic!("get_mut({u:#x}): slab {got:?}, model {want:?}"),
                    }
                }
                // iter, occasionally drain
                _ => {
                    let mut seen: Vec<(u64, u32)> =
                        slab.iter().map(|(t, &v)| (t.user_data(), v)).collect();
                    let mut want: Vec<(u64, u32)> = model.iter().map(|(&k, &v)| (k, v)).collect();
                    seen.sort_unstable();
                    want.sort_unstable();
                    assert_eq!(seen, want);
                    if rng.below(4) == 0 {
                        let mut drained: Vec<(u64, u32)> =
                            slab.drain().map(|(t, v)| (t.user_data(), v)).collect();
                        drained.sort_unstable();
                        assert_eq!(drained, want);
                        model.clear();
                    }
                }
            }
            assert_eq!(slab.len() as usize, model.len());
            assert_eq!(slab.is_empty(), model.is_empty());
            assert_eq!(slab.is_full(), model.len() == CAP as usize);
            if issued.len() > 4096 {
                issued.drain(..2048);
            }
        }
        // Every token ever issued and not live must be rejected at the end.
        for &u in &issued {
            match (slab.get(u), model.get(&u)) {
                (Ok(v), Some(m)) => assert_eq!(v, m),
                (Err(e), None) => check_stale(e, u, CAP),
                (got, want) => panic!("final get({u:#x}): slab {got:?}, model {want:?}"),
            }
        }
    }
}
