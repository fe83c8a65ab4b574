//! `Ring`: a bounded queue of plain values between processes, in a block
//! of pool memory.
//!
//! The block holds a header of five cache lines (geometry; the producers'
//! lock and count; the consumers' lock and count; the consumers' and the
//! producers' wake-up words) and then `capacity` slots. A slot is a
//! sequence word and the value's bytes, as in Vyukov's bounded queue: the
//! slot of ticket `t` is free for a producer when its sequence is `t`,
//! holds a value for a consumer when it is `t + 1`, and is free again, for
//! ticket `t + capacity`, when the consumer has set it so. A producer and a
//! consumer therefore meet only on the slots they hand over; each side's
//! count and lock stay in its own cache line.
//!
//! Producers take turns under one robust lock, consumers under another, so
//! each count is only written by its lock's holder. A consumer that is
//! about to sleep counts itself as a sleeper and then takes the producers'
//! lock once before it looks again: a producer checks for sleepers while
//! it holds that lock, so either the producer sees the sleeper (and wakes
//! it) or the sleeper sees the value (and does not sleep), and the hot path
//! needs no fence of its own. The same holds the other way round. A process that dies
//! holding a lock leaves it to the next one (`OwnerDied`), which first
//! brings the count up to what the dead holder published: a sequence is
//! stored before the count, and a value is whole before its sequence says
//! so, so a death at any point loses at most the value it was moving (a
//! push or pop that never returned).

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::in_shared::{at, in_shared};
use crate::pool::{Pool, PoolError, PoolMem, PoolMemDescr};
use crate::sync::futex;
use crate::sync::home::Home;
use crate::sync::raw::{LockError, RawMutex};

use super::plain::{fingerprint, lock_repairing, read_value, words_of, write_value, Held};

const MAGIC: u64 = u64::from_le_bytes(*b"mc-ring1");

/// How long a blocked push or pop polls before it sleeps.
const SPIN: Duration = Duration::from_micros(50);

in_shared! {
    /// The front of a ring's block: five cache lines, each written by one
    /// side only.
    struct RingHeader {
        // Written once, at creation (`magic` last).
        magic: AtomicU64,
        capacity: AtomicU64,
        slot_words: AtomicU64,
        fingerprint: AtomicU64,
        _pad0: [AtomicU64; 4],
        // The producers': the next ticket to fill, its slot (the ticket
        // modulo the capacity, kept so that no operation divides), and
        // their lock.
        tail: AtomicU64,
        tail_slot: AtomicU64,
        producers: RawMutex,
        _pad1: [AtomicU32; 11],
        // The consumers': the next ticket to take, its slot, and their lock.
        head: AtomicU64,
        head_slot: AtomicU64,
        consumers: RawMutex,
        _pad2: [AtomicU32; 11],
        // Consumers waiting for a value: written only when one sleeps or
        // is woken, so that a producer's check stays a read of a line
        // nobody writes.
        not_empty: AtomicU32,
        empty_waiters: AtomicU32,
        _pad3: [AtomicU32; 14],
        // Producers waiting for room.
        not_full: AtomicU32,
        full_waiters: AtomicU32,
        _pad4: [AtomicU32; 14],
    }
}

const HEADER: usize = std::mem::size_of::<RingHeader>();
const _: () = assert!(HEADER == 320);

/// Why a ring operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RingError {
    /// The pool failed: no room for the ring, or (opening) the ring is
    /// gone.
    Pool(PoolError),
    /// A capacity below 2, or one whose slots do not fit in memory.
    BadCapacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// [`Ring::try_push`]: no free slot.
    Full,
    /// No slot (push) or value (pop) came in time.
    Timeout,
    /// The ring's lock failed (poisoned by hand).
    Lock(LockError),
    /// The ring holds values of another type.
    WrongType {
        /// The fingerprint of the type asked for.
        expected: u64,
        /// The ring's.
        found: u64,
    },
    /// The memory the descriptor names is not a ring (or is not whole).
    NotARing,
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::Pool(e) => write!(f, "ring: {e}"),
            RingError::BadCapacity { capacity } => write!(
                f,
                "ring: a capacity of {capacity} values (give at least 2, and a ring that fits \
                 in the pool)"
            ),
            RingError::Full => write!(f, "ring: full (every slot holds a value)"),
            RingError::Timeout => write!(f, "ring: timed out"),
            RingError::Lock(e) => write!(f, "ring: {e}"),
            RingError::WrongType { expected, found } => write!(
                f,
                "ring: it holds another type (fingerprint {found:#x}, expected {expected:#x}); \
                 open it with the type it was created with"
            ),
            RingError::NotARing => write!(f, "ring: the memory named is not a whole ring"),
        }
    }
}

impl std::error::Error for RingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RingError::Pool(e) => Some(e),
            RingError::Lock(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PoolError> for RingError {
    fn from(e: PoolError) -> Self {
        RingError::Pool(e)
    }
}

/// The words of a slot of `T`: the sequence, then the value's bytes.
fn slot_words<T>() -> usize {
    1 + words_of::<T>()
}

/// A bounded queue of plain values (`T: bytemuck::Pod`: numbers, arrays
/// of them, `#[derive(Pod)]` structs) that any number of processes push to
/// and pop from: a ring of `capacity` slots in pool memory.
///
/// A push or pop that finds the ring neither full nor empty takes its
/// side's lock (a compare-and-swap on a line only its side writes), copies
/// the value into or out of its slot, and moves the slot's sequence on:
/// producers and consumers share only the slots they hand over. `push`
/// waits while the ring is full and `pop` while it is empty, first polling
/// briefly, then asleep on a futex that the other side wakes only when
/// someone sleeps. [`push_slice`](Ring::push_slice) and
/// [`pop_into`](Ring::pop_into) move many values under one lock.
///
/// Other processes open the ring by [descriptor](Ring::descr); the block
/// goes back to the pool with the last handle. A handle copied into a child
/// by `fork` is inert there: using it panics, as
/// [`PoolMem::bytes`](crate::PoolMem::bytes) does; the child opens the ring
/// by descriptor instead.
///
/// A process that dies in the middle of a push or pop loses what that call
/// was moving (one value, or the batch of a
/// [`pop_into`](Ring::pop_into)), and the ring goes on: the next process
/// that takes the dead one's lock counts what it published or took. A
/// side's lock is held only while values are copied, and every operation
/// waits for it (the `_timeout` forms no longer than their timeout).
///
/// ```
/// let pool = mc::Pool::create(1 << 20)?;
/// let ring = mc::Ring::<u64>::create(&pool, 4)?;
/// ring.push(1)?;
/// ring.push_slice(&[2, 3, 4])?;
/// assert!(matches!(ring.try_push(5), Err(mc::RingError::Full)));
/// assert_eq!(ring.pop()?, 1);
/// // Another process opens it by descriptor (a serde type).
/// let other = ring.descr().open()?;
/// let mut out = Vec::new();
/// other.pop_into(&mut out, 10)?;
/// assert_eq!(out, [2, 3, 4]);
/// assert_eq!(ring.try_pop()?, None);
/// # Ok::<(), mc::RingError>(())
/// ```
pub struct Ring<T: Pod + Send> {
    /// Keeps the block (its reference in the pool).
    mem: PoolMem,
    /// The block's first byte (the header), the number of 64-bit words of
    /// the slots that follow the header, and the
    /// process that holds `mem`'s reference.
    base: usize,
    words: usize,
    home: Home,
    capacity: u64,
    slot_words: usize,
    _type: PhantomData<fn(T) -> T>,
}

impl<T: Pod + Send> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("type", &std::any::type_name::<T>())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// A serde-able reference to a [`Ring`], to open it in another process.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct RingDescr<T: Pod + Send> {
    mem: PoolMemDescr,
    #[serde(skip)]
    _type: PhantomData<fn(T) -> T>,
}

impl<T: Pod + Send> Clone for RingDescr<T> {
    fn clone(&self) -> Self {
        RingDescr {
            mem: self.mem.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: Pod + Send> fmt::Debug for RingDescr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingDescr")
            .field("type", &std::any::type_name::<T>())
            .field("mem", &self.mem)
            .finish()
    }
}

impl<T: Pod + Send> RingDescr<T> {
    /// Opens the ring: a new handle on it, in this process.
    ///
    /// # Errors
    ///
    /// [`RingError::Pool`] when the ring is gone (its last handle was
    /// dropped) or the pool cannot be opened; [`RingError::WrongType`] when
    /// it holds another type; [`RingError::NotARing`] when the memory is
    /// not a ring.
    pub fn open(&self) -> Result<Ring<T>, RingError> {
        Ring::from_mem(self.mem.open()?)
    }
}

impl<T: Pod + Send> Ring<T> {
    /// Creates an empty ring of `capacity` values in `pool`.
    ///
    /// # Errors
    ///
    /// [`RingError::BadCapacity`] when `capacity` is below 2 or too large;
    /// [`RingError::Pool`] when the pool has no room for it.
    pub fn create(pool: &Pool, capacity: usize) -> Result<Ring<T>, RingError> {
        let bad = RingError::BadCapacity { capacity };
        if capacity < 2 {
            return Err(bad);
        }
        let words = slot_words::<T>();
        let len = capacity
            .checked_mul(words)
            .and_then(|w| w.checked_mul(8))
            .and_then(|b| b.checked_add(HEADER))
            .ok_or(bad)?;
        let mem = pool.alloc_mem(len)?;
        let h = header_of(&mem).ok_or(RingError::NotARing)?;
        h.capacity.store(capacity as u64, Ordering::Relaxed);
        h.slot_words.store(words as u64, Ordering::Relaxed);
        h.fingerprint.store(fingerprint::<T>(), Ordering::Relaxed);
        let slots = &mem.words()[HEADER / 8..];
        // (Slot `i`'s sequence word is word `i * words` of the slots.)
        for i in 0..capacity {
            slots[i * words].store(i as u64, Ordering::Relaxed);
        }
        h.magic.store(MAGIC, Ordering::Release);
        Ring::from_mem(mem)
    }

    /// Checks the ring in `mem` and makes a handle of it.
    fn from_mem(mem: PoolMem) -> Result<Ring<T>, RingError> {
        let h = header_of(&mem).ok_or(RingError::NotARing)?;
        if h.magic.load(Ordering::Acquire) != MAGIC {
            return Err(RingError::NotARing);
        }
        let found = h.fingerprint.load(Ordering::Relaxed);
        if found != fingerprint::<T>() {
            return Err(RingError::WrongType {
                expected: fingerprint::<T>(),
                found,
            });
        }
        let capacity = h.capacity.load(Ordering::Relaxed);
        let words = slot_words::<T>();
        let fits = usize::try_from(capacity)
            .ok()
            .and_then(|c| c.checked_mul(words))
            .and_then(|w| w.checked_mul(8))
            .and_then(|b| b.checked_add(HEADER))
            .is_some_and(|need| need <= mem.len());
        if capacity < 2 || h.slot_words.load(Ordering::Relaxed) != words as u64 || !fits {
            return Err(RingError::NotARing);
        }
        let (base, home) = mem.raw_parts();
        Ok(Ring {
            words: (mem.len() - HEADER) / 8,
            mem,
            base,
            home,
            capacity,
            slot_words: words,
            _type: PhantomData,
        })
    }

    /// The ring's descriptor, to open it in another process.
    pub fn descr(&self) -> RingDescr<T> {
        RingDescr {
            mem: self.mem.descr(),
            _type: PhantomData,
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The number of values in the ring (a moment's view when others push
    /// and pop).
    pub fn len(&self) -> usize {
        let h = self.header();
        let head = h.head.load(Ordering::Acquire);
        let tail = h.tail.load(Ordering::Acquire);
        tail.saturating_sub(head).min(self.capacity) as usize
    }

    /// Whether the ring holds no value (a moment's view).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The header and the block's words.
    ///
    /// # Panics
    ///
    /// In a copy of the handle that `fork` made (as [`PoolMem::bytes`]):
    /// open the ring by descriptor there.
    #[inline]
    fn parts(&self) -> (&RingHeader, &[AtomicU64]) {
        self.home.check("Ring");
        // SAFETY: `mem`, which this handle holds, keeps the block's pages
        // for the ring while this process holds its reference (checked
        // above), and they stay mapped while the pool lives. The header
        // was found whole and aligned when the handle was made
        // (`header_of`), and every field of it is an atomic or a raw lock;
        // the `words` words of the slots follow it inside the block (also
        // checked then), 64-byte aligned, and do not overlap it. Atomics
        // accept every bit pattern and other processes' writes.
        unsafe {
            (
                &*at::<RingHeader>(self.base),
                std::slice::from_raw_parts(at::<AtomicU64>(self.base + HEADER), self.words),
            )
        }
    }

    fn header(&self) -> &RingHeader {
        self.parts().0
    }

    /// The sequence word and the value words of ticket `t`'s slot.
    fn slot(&self, t: u64) -> (&AtomicU64, &[AtomicU64]) {
        slot_at(self.parts().1, self.slot_words, t % self.capacity)
    }

    /// Takes one side's lock. A holder that died leaves the count behind
    /// what it published: `repair` brings it up first.
    fn lock<'a>(
        &self,
        m: &'a RawMutex,
        deadline: Option<Instant>,
        repair: impl FnOnce(),
    ) -> Result<Held<'a>, RingError> {
        lock_repairing(m, deadline, repair).map_err(|e| match e {
            LockError::Timeout => RingError::Timeout,
            e => RingError::Lock(e),
        })
    }

    fn lock_producers<'a>(
        &'a self,
        h: &'a RingHeader,
        deadline: Option<Instant>,
    ) -> Result<Held<'a>, RingError> {
        self.lock(&h.producers, deadline, || {
            // Past every slot a dead producer published without counting:
            // still full (`t + 1`), or already emptied by a consumer, which
            // does not wait for producers (`t + capacity`). A slot not
            // published holds `t` (or, a lap behind, `t + 1 - capacity`).
            let mut t = h.tail.load(Ordering::Relaxed);
            for _ in 0..self.capacity {
                let seq = self.slot(t).0.load(Ordering::Acquire);
                if seq != t + 1 && seq != t + self.capacity {
                    break;
                }
                t += 1;
            }
            h.tail_slot.store(t % self.capacity, Ordering::Relaxed);
            h.tail.store(t, Ordering::Release);
        })
    }

    fn lock_consumers<'a>(
        &'a self,
        h: &'a RingHeader,
        deadline: Option<Instant>,
    ) -> Result<Held<'a>, RingError> {
        self.lock(&h.consumers, deadline, || {
            // Past every slot a dead consumer emptied without counting:
            // still free (`t + capacity`), or already filled again by a
            // producer, which does not wait for consumers
            // (`t + capacity + 1`). A slot not emptied holds `t + 1` (or
            // `t`, not published yet).
            let mut t = h.head.load(Ordering::Relaxed);
            for _ in 0..self.capacity {
                let seq = self.slot(t).0.load(Ordering::Acquire);
                if seq != t + self.capacity && seq != t + self.capacity + 1 {
                    break;
                }
                t += 1;
            }
            h.head_slot.store(t % self.capacity, Ordering::Relaxed);
            h.head.store(t, Ordering::Release);
        })
    }

    /// Pushes what fits of `values` now, in order; the number pushed.
    fn push_some(&self, values: &[T], deadline: Option<Instant>) -> Result<usize, RingError> {
        let (h, words) = self.parts();
        let held = self.lock_producers(h, deadline)?;
        let t0 = h.tail.load(Ordering::Relaxed);
        let mut t = t0;
        let mut i = h.tail_slot.load(Ordering::Relaxed) % self.capacity;
        for v in values {
            let (seq, value) = slot_at(words, self.slot_words, i);
            if seq.load(Ordering::Acquire) != t {
                break;
            }
            write_value(value, v);
            seq.store(t + 1, Ordering::Release);
            t += 1;
            i = if i + 1 == self.capacity { 0 } else { i + 1 };
        }
        let wake = t != t0 && take_sleepers(&h.empty_waiters);
        if t != t0 {
            h.tail_slot.store(i, Ordering::Relaxed);
            h.tail.store(t, Ordering::Release);
        }
        drop(held);
        if wake {
            h.not_empty.fetch_add(1, Ordering::SeqCst);
            futex::wake(&h.not_empty, u32::MAX);
        }
        Ok((t - t0) as usize)
    }

    /// Pops up to `max` values, oldest first, into `out`; the number
    /// popped.
    fn pop_some(
        &self,
        max: usize,
        deadline: Option<Instant>,
        mut out: impl FnMut(T),
    ) -> Result<usize, RingError> {
        let (h, words) = self.parts();
        let held = self.lock_consumers(h, deadline)?;
        let t0 = h.head.load(Ordering::Relaxed);
        let mut t = t0;
        let mut i = h.head_slot.load(Ordering::Relaxed) % self.capacity;
        while ((t - t0) as usize) < max {
            let (seq, value) = slot_at(words, self.slot_words, i);
            if seq.load(Ordering::Acquire) != t + 1 {
                break;
            }
            out(read_value(value));
            seq.store(t + self.capacity, Ordering::Release);
            t += 1;
            i = if i + 1 == self.capacity { 0 } else { i + 1 };
        }
        let wake = t != t0 && take_sleepers(&h.full_waiters);
        if t != t0 {
            h.head_slot.store(i, Ordering::Relaxed);
            h.head.store(t, Ordering::Release);
        }
        drop(held);
        if wake {
            h.not_full.fetch_add(1, Ordering::SeqCst);
            futex::wake(&h.not_full, u32::MAX);
        }
        Ok((t - t0) as usize)
    }

    /// Waits for the other side: polls for [`SPIN`], then sleeps on `word`
    /// (a slice at most), counted in `waiters`, unless `ready` (checked
    /// under the other side's lock, after counting) says there is no need.
    /// `false` when the deadline passed.
    fn wait(
        &self,
        word: &AtomicU32,
        waiters: &AtomicU32,
        deadline: Option<Instant>,
        spin_start: Instant,
        ready: impl Fn() -> Result<bool, RingError>,
    ) -> Result<bool, RingError> {
        if spin_start.elapsed() < SPIN {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            std::thread::yield_now();
            return Ok(deadline.is_none_or(|d| Instant::now() < d));
        }
        let Some(slice) = futex::next_slice(deadline) else {
            return Ok(false);
        };
        // Counted until a waker takes the count (it wakes every sleeper),
        // never uncounted by the sleeper itself: so no sleeper can take
        // another's count, and one that dies or times out leaves a count
        // that only costs the next waker one spare wake.
        let _ = waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_add(1));
        let seen = word.load(Ordering::SeqCst);
        let r = ready();
        if let Ok(false) = r {
            futex::wait(word, seen, Some(slice));
        }
        r.map(|_| true)
    }

    /// Whether a slot is free, seen under the consumers' lock (after
    /// counting as a sleeper: a consumer that frees one later sees the
    /// count).
    fn room(&self, deadline: Option<Instant>) -> Result<bool, RingError> {
        let h = self.header();
        let held = self.lock_consumers(h, deadline)?;
        // (A consumer may have emptied a slot whose producer has not
        // counted it yet: then `head` is past `tail`.)
        let room = h
            .tail
            .load(Ordering::Acquire)
            .saturating_sub(h.head.load(Ordering::Relaxed))
            < self.capacity;
        drop(held);
        Ok(room)
    }

    /// Whether a value is ready, seen under the producers' lock.
    fn ready(&self, deadline: Option<Instant>) -> Result<bool, RingError> {
        let h = self.header();
        let held = self.lock_producers(h, deadline)?;
        let ready = h.tail.load(Ordering::Relaxed) > h.head.load(Ordering::Acquire);
        drop(held);
        Ok(ready)
    }

    fn push_until(&self, values: &[T], deadline: Option<Instant>) -> Result<(), RingError> {
        let mut rest = values;
        // The clock is read only once the ring is found full.
        let mut spin_start = None;
        loop {
            let n = self.push_some(rest, deadline)?;
            rest = &rest[n..];
            if rest.is_empty() {
                return Ok(());
            }
            if n > 0 || spin_start.is_none() {
                spin_start = Some(Instant::now());
            }
            let h = self.header();
            let since = spin_start.unwrap_or_else(Instant::now);
            if !self.wait(&h.not_full, &h.full_waiters, deadline, since, || {
                self.room(deadline)
            })? {
                return Err(RingError::Timeout);
            }
        }
    }

    /// Pops one value if there is one; the lock waited for until
    /// `deadline`.
    fn pop_one(&self, deadline: Option<Instant>) -> Result<Option<T>, RingError> {
        let mut got = None;
        self.pop_some(1, deadline, |v| got = Some(v))?;
        Ok(got)
    }

    fn pop_until(&self, deadline: Option<Instant>) -> Result<T, RingError> {
        if let Some(v) = self.pop_one(deadline)? {
            return Ok(v);
        }
        let h = self.header();
        let spin_start = Instant::now();
        loop {
            if !self.wait(&h.not_empty, &h.empty_waiters, deadline, spin_start, || {
                self.ready(deadline)
            })? {
                return Err(RingError::Timeout);
            }
            if let Some(v) = self.pop_one(deadline)? {
                return Ok(v);
            }
        }
    }

    /// Pushes `value`, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`RingError::Lock`] when the producers' lock was poisoned by hand.
    pub fn push(&self, value: T) -> Result<(), RingError> {
        self.push_until(std::slice::from_ref(&value), None)
    }

    /// Pushes `value`, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    ///
    /// [`RingError::Timeout`] when no slot came free in time, and the
    /// errors of [`push`](Self::push).
    pub fn push_timeout(&self, value: T, timeout: Duration) -> Result<(), RingError> {
        self.push_until(std::slice::from_ref(&value), futex::deadline(Some(timeout)))
    }

    /// Pushes `value` if a slot is free.
    ///
    /// # Errors
    ///
    /// [`RingError::Full`] when none is, and the errors of
    /// [`push`](Self::push).
    pub fn try_push(&self, value: T) -> Result<(), RingError> {
        match self.push_some(std::slice::from_ref(&value), None)? {
            0 => Err(RingError::Full),
            _ => Ok(()),
        }
    }

    /// Pushes every value of `values` in order (other producers' values may
    /// come in between when the ring fills up), waiting for room as
    /// needed; as many as fit go in under one lock.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub fn push_slice(&self, values: &[T]) -> Result<(), RingError> {
        self.push_until(values, None)
    }

    /// Pops the oldest value, waiting while the ring is empty.
    ///
    /// # Errors
    ///
    /// [`RingError::Lock`] when the consumers' lock was poisoned by hand.
    pub fn pop(&self) -> Result<T, RingError> {
        self.pop_until(None)
    }

    /// Pops the oldest value, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`RingError::Timeout`] when no value came in time, and the errors
    /// of [`pop`](Self::pop).
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, RingError> {
        self.pop_until(futex::deadline(Some(timeout)))
    }

    /// Pops the oldest value if there is one.
    ///
    /// # Errors
    ///
    /// As [`pop`](Self::pop).
    pub fn try_pop(&self) -> Result<Option<T>, RingError> {
        self.pop_one(None)
    }

    /// Appends up to `max` of the oldest values to `out` under one lock,
    /// without waiting; the number popped (0 when the ring is empty).
    ///
    /// # Errors
    ///
    /// As [`pop`](Self::pop).
    pub fn pop_into(&self, out: &mut Vec<T>, max: usize) -> Result<usize, RingError> {
        self.pop_some(max, None, |v| out.push(v))
    }
}

/// Whether a side's sleepers need waking; takes their count, since every
/// one of them is woken. (A process killed while it slept, or a sleeper
/// that timed out, leaves a count that the next wake takes.) Called under
/// the other side's lock, the one sleepers take before they look again.
#[inline]
fn take_sleepers(count: &AtomicU32) -> bool {
    count.load(Ordering::Relaxed) > 0 && count.swap(0, Ordering::Relaxed) > 0
}

/// The sequence word and the value words of slot `i` (below the capacity)
/// in the words of a ring's slots.
#[inline]
fn slot_at(words: &[AtomicU64], slot_words: usize, i: u64) -> (&AtomicU64, &[AtomicU64]) {
    let start = i as usize * slot_words;
    let s = &words[start..start + slot_words];
    (&s[0], &s[1..])
}

/// The header of the ring in `mem`, when the block can hold one.
fn header_of(mem: &PoolMem) -> Option<&RingHeader> {
    // SAFETY: every field of `RingHeader` is an atomic or a raw lock (made
    // of one).
    unsafe { mem.field::<RingHeader>(0) }
}

#[cfg(test)]
mod tests;
