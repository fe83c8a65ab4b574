//! Garbage-collected heaps of shared values in a [`Pool`].
//!
//! A [`Heap<T>`] holds one root value of type `T` (copied in when the heap is
//! created) and everything the root points to. Any process that has the
//! pool mapped can open the heap from its [descriptor](HeapDescr) and:
//!
//! - [read](Heap::read) it in place under a shared lock
//!   (Netmulticore's `deref_ro`, made safe: references borrow the guard);
//! - [pin](Heap::pin) the current value, so that writers may go on while the
//!   guard keeps the pinned value alive and unchanged (`deref_p`), or
//!   [pin a part](Heap::pin_part) of it, at the cost of that part only, or
//!   [pin a lock](Heap::pin_lock) of it in place, to hold it while writers
//!   go on;
//! - [copy](Heap::copy) it out (`deref_c`);
//! - [modify](Heap::modify) it under the exclusive lock with a [`Mutator`]
//!   that copies new values in.
//!
//! The collector is a non-moving mark & sweep whose roots are the root
//! value, the pinned values and the copies that part pins hold. It never runs during a modification: it
//! runs when one ends (or on [`Heap::gc`]). So everything seen or added
//! during a modification stays alive until it ends, and the references a
//! modification hands out cannot escape it (they borrow its closure's
//! arguments). Netmulticore's crash — a value read, made unreachable,
//! collected inside `add`, then used — cannot be written.
//!
//! # When a process dies
//!
//! - inside a modification (or a collection): the heap is *poisoned*; every
//!   later access returns [`HeapError::Poisoned`], and [`Heap::destroy`]
//!   still works;
//! - holding a [`ReadGuard`]: writers are delayed by a few milliseconds at
//!   most (the lock clears the slots of dead readers);
//! - holding a [`PinGuard`]: its pins are reclaimed by the next collection
//!   (or [`Heap::destroy`]), which finds their process gone; a part pin's
//!   copy is freed then.
//!
//! ```
//! use std::pin::Pin;
//! let pool = mc::Pool::create(16 << 20)?;
//! let heap = mc::Heap::create(&pool, &(String::from("a"), 1u64))?;
//! heap.modify(|m, root| {
//!     let (s, n) = root.project();
//!     *n.get_mut() += 1;
//!     m.set_str(s, "b")
//! })??;
//! let r = heap.read()?;
//! assert_eq!((r.0.as_str(), r.1), ("b", 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod alloc;
mod descr;
mod error;
mod guards;
mod inspect;
mod journal;
mod lock_pin;
mod locking;
mod mutator;
mod part;
mod recovery;
mod stats;

pub use descr::HeapDescr;
use error::heap_error;
pub use error::HeapError;
use guards::{
    enter, held, modifying, pinned, reclaim_dead_pins, release, Exclusive, ModifyingFlag, PinSlot,
};
pub use guards::{PinGuard, ReadGuard};
pub use inspect::HeapReport;
pub(crate) use inspect::{header_size, inspect_header};
pub use journal::JOURNAL_BYTES;
pub use lock_pin::PinnableLock;
pub use mutator::Mutator;
#[cfg(test)]
pub(crate) use recovery::scavenge;
pub use recovery::Poison;
pub use stats::HeapStats;

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use self::alloc::{AllocState, Allocator, HeapAllocator, HeapWriter, Marker, PoolSource};
use crate::in_shared::at;
use crate::in_shared::in_shared;
use crate::pool::{Pool, PoolError, OWNER_HEADER, OWNER_MEM, OWNER_TAG, PAGE_SIZE};
use crate::sync::home::Home;
use crate::sync::raw::RawRwLock;
use crate::value::{CopyError, Shared, Tracer, Writer};

/// The default chunk size: heaps grow and shrink in chunks of this many
/// bytes taken from their pool.
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;

const HEAP_MAGIC: u64 = u64::from_le_bytes(*b"mc-heap\x06");
/// The magic of a destroyed heap's header page, which is never reused.
const TOMBSTONE: u64 = u64::from_le_bytes(*b"mc-dead\x01");
const N_PINS: usize = 128;

/// `HeapHeader::dirty`: a modification is under way (values may be half
/// changed).
const DIRTY_DATA: u32 = 1;
/// `HeapHeader::dirty`: the allocator or the collector is at work (values
/// are whole; only the allocator's own state is in flux).
const DIRTY_ALLOC: u32 = 2;
/// `HeapHeader::poisoned`: a modification panicked.
const POISON_PANIC: u32 = 1;
/// `HeapHeader::poisoned`: a process died in a modification, or the heap's
/// memory was found damaged.
const POISON_DIED: u32 = 2;
/// `HeapHeader::flags`: locks of the heap cannot be pinned in place (the
/// data heap of a structure, which moves its elements in steps).
const NO_LOCK_PINS: u32 = 1;
const PIN_COUNT_BITS: u32 = 20;
const PIN_COUNT_MASK: u64 = (1 << PIN_COUNT_BITS) - 1;

in_shared! {
    /// A heap's header, at the start of its first chunk.
    struct HeapHeader {
        magic: AtomicU64,
        id: u64,
        fingerprint: u64,
        lock: RawRwLock,
        /// What the holder of the exclusive lock is doing ([`DIRTY_DATA`],
        /// [`DIRTY_ALLOC`], or 0). Found set by the next locker after a holder
        /// died: `DIRTY_DATA` poisons the heap, `DIRTY_ALLOC` only asks for a
        /// repair.
        dirty: AtomicU32,
        /// 0, [`POISON_PANIC`] or [`POISON_DIED`].
        poisoned: AtomicU32,
        owner_deaths: AtomicU32,
        /// Set once a lock has been copied into the heap: pins are refused
        /// from then on (a modification copies a pinned root, and a copied lock
        /// is another lock).
        has_locks: AtomicU32,
        /// Set when a holder died with the allocator's state in flux: the next
        /// holder rebuilds it (marks, free lists, counters, lost pages) before
        /// it allocates.
        repair: AtomicU32,
        /// The creating process while the heap is created and not yet
        /// published (0 after): the pages of a heap whose creator died then
        /// are reclaimed when the pool runs short.
        creating: AtomicU32,
        root: AtomicUsize,
        /// The heap's tag: the owner of its pages in the pool's table.
        tag: u32,
        /// Pin slots in use (with a process): 0 lets a modification skip
        /// the scan of the pin table. Slots are claimed under the shared
        /// lock and modifications check under the exclusive one.
        pins_in_use: AtomicU32,
        header_bytes: usize,
        /// The first of the heap's part pins (see [`Heap::pin_part`]): a
        /// list of nodes in heap blocks, changed under the exclusive lock.
        parts: AtomicUsize,
        /// Lock pins in the list (see [`Heap::pin_lock`]), or more: 0 lets
        /// a modification skip the check that it overwrites no pinned lock.
        lock_pins: AtomicU32,
        /// [`NO_LOCK_PINS`], or 0.
        flags: AtomicU32,
        alloc: UnsafeCell<AllocState>,
        pins: [PinSlot; N_PINS],
        /// A replacement in place under way (see [`journal`]).
        journal: journal::Journal,
    }
}

// One page, exactly.
const _: () = assert!(std::mem::size_of::<HeapHeader>() == PAGE_SIZE);

// SAFETY: every field is an atomic, a lock or a plain value written once
// before the heap is published, except `alloc`, which is reached only
// through the lock's holders (`SharedHold` reads it under the shared lock,
// `WriteLock` and `Exclusive` change it under the exclusive one) or by the
// creator before anybody else knows the heap. Sharing `&HeapHeader`
// between threads therefore shares nothing unsynchronised.
unsafe impl Sync for HeapHeader {}

/// Options for creating a heap.
#[derive(Debug, Clone)]
pub struct HeapOptions {
    chunk_size: usize,
}

impl Default for HeapOptions {
    fn default() -> Self {
        HeapOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl HeapOptions {
    /// Default options (64 KiB chunks).
    pub fn new() -> Self {
        Self::default()
    }

    /// The size of the chunks the heap takes from its pool (rounded up to
    /// pages; at least 8 KiB).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(2 * PAGE_SIZE).next_multiple_of(PAGE_SIZE);
        self
    }
}

/// A handle on a heap whose root value has type `T`. Cheap to clone; the
/// heap lives in its pool until [destroyed](Heap::destroy), whatever
/// happens to handles.
pub struct Heap<T: Shared> {
    pool: Pool,
    hdr: usize,
    id: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T: Shared> Clone for Heap<T> {
    fn clone(&self) -> Self {
        Heap {
            pool: self.pool.clone(),
            hdr: self.hdr,
            id: self.id,
            _t: PhantomData,
        }
    }
}

impl<T: Shared> fmt::Debug for Heap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heap")
            .field("type", &std::any::type_name::<T>())
            .field("pool", &self.pool.name())
            .field("addr", &format_args!("{:#x}", self.hdr))
            .finish()
    }
}

// SAFETY: the handle holds addresses of shared memory whose every access is
// synchronised by the heap's lock and atomics; `T` itself is never stored
// in the handle.
unsafe impl<T: Shared> Send for Heap<T> {}
// SAFETY: as above; per-thread state (held locks) is thread-local.
unsafe impl<T: Shared> Sync for Heap<T> {}

fn random_id() -> u64 {
    crate::os::random_u64() | 1
}

impl<T: Shared> Heap<T> {
    /// Creates a heap in `pool` whose root is a copy of `value`.
    ///
    /// # Errors
    ///
    /// As [`create_with`](Heap::create_with).
    pub fn create(pool: &Pool, value: &T) -> Result<Heap<T>, HeapError> {
        Heap::create_with(pool, value, HeapOptions::default())
    }

    /// Creates a heap with options.
    ///
    /// # Errors
    ///
    /// [`HeapError::OutOfMemory`] when the pool has no room for the heap;
    /// [`HeapError::TooLarge`] when `value` is too large to copy;
    /// [`HeapError::Lock`] when `value` holds a lock that this thread holds;
    /// [`HeapError::Pool`] when the pool fails otherwise.
    pub fn create_with(pool: &Pool, value: &T, opts: HeapOptions) -> Result<Heap<T>, HeapError> {
        let header_bytes = size_of::<HeapHeader>().next_multiple_of(PAGE_SIZE);
        let tag = pool.new_tag();
        let addr = match pool.alloc_pages(header_bytes, tag | OWNER_HEADER) {
            Err(PoolError::OutOfMemory { .. }) if recovery::scavenge(pool) > 0 => {
                pool.alloc_pages(header_bytes, tag | OWNER_HEADER)?
            }
            r => r?,
        };
        let header = HeapHeader {
            magic: AtomicU64::new(HEAP_MAGIC),
            id: random_id(),
            fingerprint: T::FINGERPRINT,
            lock: RawRwLock::new(),
            dirty: AtomicU32::new(0),
            poisoned: AtomicU32::new(0),
            owner_deaths: AtomicU32::new(0),
            has_locks: AtomicU32::new(0),
            repair: AtomicU32::new(0),
            creating: AtomicU32::new(crate::sync::futex::current_pid()),
            root: AtomicUsize::new(0),
            tag,
            pins_in_use: AtomicU32::new(0),
            header_bytes,
            parts: AtomicUsize::new(0),
            lock_pins: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            alloc: UnsafeCell::new(AllocState::new(opts.chunk_size)),
            pins: [const { PinSlot::new() }; N_PINS],
            journal: journal::Journal::new(),
        };
        // SAFETY: `addr` is fresh, reserved pool memory of `header_bytes`
        // bytes, enough for the header.
        unsafe { at::<HeapHeader>(addr).write(header) };
        let heap = Heap {
            pool: pool.clone(),
            hdr: addr,
            id: unsafe_header(addr).id,
            _t: PhantomData,
        };
        let root = {
            let h = heap.header();
            let src = PoolSource {
                pool,
                tag,
                last_error: None,
            };
            // SAFETY: the state was just made by `AllocState::new` (no
            // chunks: intact) and takes its chunks from the heap's pool and
            // tag; nobody else knows the heap yet, so this allocator,
            // dropped before the heap is published, is its only user.
            let mut alloc = unsafe { Allocator::new(&mut *h.alloc.get(), src) };
            let r = write_boxed(&mut alloc, &h.has_locks, |w| value.to_repr(w));
            r.map_err(|e| heap_error(e, alloc.take_error()))
        };
        match root {
            Ok(root) => {
                heap.header().root.store(root, Ordering::Release);
                heap.header().creating.store(0, Ordering::Release);
                Ok(heap)
            }
            Err(e) => {
                // Never published: the header pages can go back too.
                heap.free_all_pages(false);
                Err(e)
            }
        }
    }

    /// Opens the heap of `descr` in `pool`.
    ///
    /// A heap of a pool this process does not [trust](Pool::is_trusted)
    /// (attached by name from an unrelated process) is
    /// [validated](Heap::validate) before it is returned.
    ///
    /// # Errors
    ///
    /// [`HeapError::NotAHeap`] when `descr` is of another pool or leads to no
    /// heap; [`HeapError::WrongType`] when the heap holds another type;
    /// [`HeapError::Destroyed`] when it was destroyed; for an untrusted pool,
    /// the errors of [`validate`](Heap::validate) except
    /// [`HeapError::Poisoned`].
    pub fn open(pool: &Pool, descr: &HeapDescr<T>) -> Result<Heap<T>, HeapError> {
        if descr.pool != pool.name() {
            return Err(HeapError::NotAHeap);
        }
        if descr.fingerprint != T::FINGERPRINT {
            return Err(HeapError::WrongType {
                expected: T::FINGERPRINT,
                found: descr.fingerprint,
            });
        }
        Heap::open_at(pool, descr.addr as usize, Some(descr.id))
    }

    fn open_at(pool: &Pool, addr: usize, id: Option<u64>) -> Result<Heap<T>, HeapError> {
        // Only the pool's page owner table, which user values cannot
        // write, says where heap headers are: a forged descriptor cannot
        // make arbitrary pool memory pass for a heap.
        let owner = pool.page_owner(addr);
        if !addr.is_multiple_of(PAGE_SIZE)
            || owner & OWNER_HEADER == 0
            || owner & OWNER_MEM != 0
            || !pool.contains_committed(addr, size_of::<HeapHeader>())
        {
            return Err(HeapError::NotAHeap);
        }
        let h = unsafe_header(addr);
        if h.tag != owner & OWNER_TAG {
            return Err(HeapError::NotAHeap);
        }
        if h.magic.load(Ordering::Acquire) != HEAP_MAGIC {
            return Err(if id.is_some() {
                HeapError::Destroyed
            } else {
                HeapError::NotAHeap
            });
        }
        if id.is_some_and(|id| id != h.id) {
            return Err(HeapError::Destroyed);
        }
        if h.fingerprint != T::FINGERPRINT {
            return Err(HeapError::WrongType {
                expected: T::FINGERPRINT,
                found: h.fingerprint,
            });
        }
        let heap = Heap {
            pool: pool.clone(),
            hdr: addr,
            id: h.id,
            _t: PhantomData,
        };
        if !pool.is_trusted() {
            // Any process of the same user can write an attached pool's
            // memory: check the heap before anything reads it in place. A
            // poisoned heap is returned unchecked: nothing reads it before
            // `recover`, which validates it.
            match heap.validate() {
                Ok(()) | Err(HeapError::Poisoned) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(heap)
    }

    /// Opens a heap like [`Heap::open`], and [validates](Heap::validate)
    /// it whatever the pool's trust: for heaps that processes outside the
    /// family may have written.
    ///
    /// # Errors
    ///
    /// As [`Heap::open`], and [`HeapError::Corrupt`].
    pub fn open_validated(pool: &Pool, descr: &HeapDescr<T>) -> Result<Heap<T>, HeapError> {
        let heap = Heap::open(pool, descr)?;
        if pool.is_trusted() {
            match heap.validate() {
                Ok(()) | Err(HeapError::Poisoned) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(heap)
    }

    /// Makes this heap the pool's root heap, which other processes find
    /// with [`Heap::open_root`] knowing only the pool.
    pub fn set_pool_root(&self) {
        self.pool.set_root_heap(self.hdr, T::FINGERPRINT);
    }

    /// Opens the pool's root heap (see [`Heap::set_pool_root`]).
    ///
    /// # Errors
    ///
    /// [`HeapError::NoRootHeap`] when the pool has none;
    /// [`HeapError::WrongType`] when it holds another type;
    /// [`HeapError::NotAHeap`] when it is not a well-formed heap; for an
    /// untrusted pool, the errors of [`validate`](Heap::validate) except
    /// [`HeapError::Poisoned`].
    pub fn open_root(pool: &Pool) -> Result<Heap<T>, HeapError> {
        let (addr, fp) = pool.root_heap();
        if addr == 0 {
            return Err(HeapError::NoRootHeap);
        }
        if fp != T::FINGERPRINT {
            return Err(HeapError::WrongType {
                expected: T::FINGERPRINT,
                found: fp,
            });
        }
        Heap::open_at(pool, addr, None)
    }

    /// A descriptor to pass to other processes.
    pub fn descr(&self) -> HeapDescr<T> {
        HeapDescr {
            pool: self.pool.name().to_owned(),
            addr: self.hdr as u64,
            id: self.id,
            fingerprint: T::FINGERPRINT,
            _t: PhantomData,
        }
    }

    /// The pool the heap lives in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    #[inline]
    fn header(&self) -> &HeapHeader {
        unsafe_header(self.hdr)
    }

    #[inline]
    fn check(&self) -> Result<&HeapHeader, HeapError> {
        self.pool.check_intact()?;
        let h = self.header();
        if h.magic.load(Ordering::Acquire) != HEAP_MAGIC || h.id != self.id {
            // Reading the header may itself have found the segment cut
            // short (the fault was contained and the header reads zeros).
            self.pool.check_size()?;
            return Err(HeapError::Destroyed);
        }
        if h.poisoned.load(Ordering::Acquire) != 0 {
            return Err(HeapError::Poisoned);
        }
        Ok(h)
    }

    /// Reads the root value in place under the heap's shared lock. Writers
    /// wait until the guard is dropped.
    ///
    /// # Errors
    ///
    /// [`HeapError::Reentrant`] when this thread holds a guard of the heap or
    /// is modifying it; [`HeapError::Destroyed`] when the heap was destroyed;
    /// [`HeapError::Poisoned`] while it is poisoned; [`HeapError::Pool`] when
    /// another process cut the pool short; [`HeapError::Lock`] when the heap's
    /// lock fails.
    pub fn read(&self) -> Result<ReadGuard<'_, T>, HeapError> {
        self.read_until(None)
    }

    /// Like [`read`](Heap::read), but gives up with [`HeapError::Timeout`]
    /// when the lock cannot be taken within `timeout`.
    ///
    /// # Errors
    ///
    /// As [`read`](Heap::read), and [`HeapError::Timeout`].
    pub fn read_timeout(&self, timeout: Duration) -> Result<ReadGuard<'_, T>, HeapError> {
        self.read_until(deadline_after(timeout))
    }

    fn read_until(&self, deadline: Option<Instant>) -> Result<ReadGuard<'_, T>, HeapError> {
        if !enter(self.hdr, false) {
            return Err(HeapError::Reentrant);
        }
        let h = match self.lock_shared_entered(deadline) {
            Ok(h) => h,
            Err(e) => {
                release(self.hdr);
                return Err(e);
            }
        };
        let root = h.root.load(Ordering::Acquire);
        Ok(ReadGuard {
            heap: self,
            root,
            home: Home::here(),
            hold: Some(h),
            _t: PhantomData,
        })
    }

    /// Copies the root value out.
    ///
    /// # Errors
    ///
    /// As [`read`](Heap::read).
    pub fn copy(&self) -> Result<T, HeapError> {
        let g = self.read()?;
        Ok(T::from_repr(&g))
    }

    /// Like [`copy`](Heap::copy), but gives up with [`HeapError::Timeout`]
    /// when the lock cannot be taken within `timeout`.
    ///
    /// # Errors
    ///
    /// As [`read`](Heap::read), and [`HeapError::Timeout`].
    pub fn copy_timeout(&self, timeout: Duration) -> Result<T, HeapError> {
        let g = self.read_timeout(timeout)?;
        Ok(T::from_repr(&g))
    }

    /// Modifies the heap: `f` gets a [`Mutator`] and the root value pinned
    /// for in-place changes, under the heap's exclusive lock. The collector
    /// may run when `f` returns.
    ///
    /// # Errors
    ///
    /// [`HeapError::Reentrant`] when called inside another modification or
    /// while this thread holds a guard of this heap; [`HeapError::Destroyed`],
    /// [`HeapError::Poisoned`], [`HeapError::Pool`] and [`HeapError::Lock`] as
    /// for [`read`](Heap::read); [`HeapError::OutOfMemory`] when the root is
    /// pinned and the pool has no room for the copy that `f` changes.
    pub fn modify<R>(
        &self,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut T::Repr>) -> R,
    ) -> Result<R, HeapError> {
        self.modify_until(None, f)
    }

    /// Like [`modify`](Heap::modify), but gives up with
    /// [`HeapError::Timeout`] (without calling `f`) when the lock cannot be
    /// taken within `timeout`.
    ///
    /// # Errors
    ///
    /// As [`modify`](Heap::modify), and [`HeapError::Timeout`].
    pub fn modify_timeout<R>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut T::Repr>) -> R,
    ) -> Result<R, HeapError> {
        self.modify_until(deadline_after(timeout), f)
    }

    fn modify_until<R>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut T::Repr>) -> R,
    ) -> Result<R, HeapError> {
        let h = self.lock_exclusive(deadline)?;
        self.modify_locked(&h, f)
    }

    /// Runs `f` as a modification under the exclusive lock `h` holds (the
    /// rest of [`modify`](Self::modify); the lock stays held).
    fn modify_locked<R>(
        &self,
        h: &Exclusive<'_>,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut T::Repr>) -> R,
    ) -> Result<R, HeapError> {
        h.dirty.store(DIRTY_DATA, Ordering::Release);
        // A pinned root is never changed in place: work on a copy.
        let mut root = h.root.load(Ordering::Acquire);
        if pinned(&h.pins_in_use, &h.pins, root - self.pool.base()) {
            // SAFETY: `root` is the heap's live root value.
            let old = unsafe { &*at::<T::Repr>(root) };
            let mut alloc = h.allocator();
            let copy = write_boxed(&mut alloc, &h.has_locks, |w| T::repr_to_repr(old, w));
            root = copy.map_err(|e| heap_error(e, alloc.take_error()))?;
            h.root.store(root, Ordering::Release);
        }
        let m = Mutator::new(&self.pool, h);
        // SAFETY: the root value lives in the heap, is not pinned by anyone
        // (checked above, and new pins wait for the lock), and this thread
        // has the only exclusive access (lock + no nested modification).
        let root_ref = unsafe { Pin::new_unchecked(&mut *at::<T::Repr>(root)) };
        let _flag = ModifyingFlag::set();
        let r = f(&m, root_ref);
        drop(m);
        drop(_flag);
        // The change is complete: from here on only the collector works.
        h.dirty.store(DIRTY_ALLOC, Ordering::Release);
        if h.allocator().gc_due() {
            self.collect(h, &mut h.allocator());
        }
        h.dirty.store(0, Ordering::Release);
        Ok(r)
    }

    /// Replaces the root value with a copy of `value`. Pinned readers keep
    /// the old one.
    ///
    /// # Errors
    ///
    /// [`HeapError::OutOfMemory`] when the pool has no room for the copy;
    /// [`HeapError::TooLarge`] when `value` is too large to copy;
    /// [`HeapError::Lock`] when `value` holds a lock that this thread holds;
    /// and the errors of [`gc`](Heap::gc).
    pub fn assign(&self, value: &T) -> Result<(), HeapError> {
        self.assign_until(None, value)
    }

    /// Like [`assign`](Heap::assign), but gives up with
    /// [`HeapError::Timeout`] when the lock cannot be taken within
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// As [`assign`](Heap::assign), and [`HeapError::Timeout`].
    pub fn assign_timeout(&self, value: &T, timeout: Duration) -> Result<(), HeapError> {
        self.assign_until(deadline_after(timeout), value)
    }

    fn assign_until(&self, deadline: Option<Instant>, value: &T) -> Result<(), HeapError> {
        let h = self.lock_exclusive(deadline)?;
        // The new value is copied into fresh blocks and published by one
        // store: the values seen by readers are whole throughout.
        h.dirty.store(DIRTY_ALLOC, Ordering::Release);
        let mut alloc = h.allocator();
        let root = write_boxed(&mut alloc, &h.has_locks, |w| value.to_repr(w))
            .map_err(|e| heap_error(e, alloc.take_error()))?;
        h.root.store(root, Ordering::Release);
        if alloc.gc_due() {
            self.collect(&h, &mut alloc);
        }
        drop(alloc);
        h.dirty.store(0, Ordering::Release);
        Ok(())
    }

    /// Runs a collection now.
    ///
    /// # Errors
    ///
    /// [`HeapError::Reentrant`], [`HeapError::Destroyed`],
    /// [`HeapError::Poisoned`], [`HeapError::Pool`] and [`HeapError::Lock`] as
    /// for [`modify`](Heap::modify).
    pub fn gc(&self) -> Result<(), HeapError> {
        self.gc_until(None)
    }

    /// Like [`gc`](Heap::gc), but gives up with [`HeapError::Timeout`] when
    /// the lock cannot be taken within `timeout`.
    ///
    /// # Errors
    ///
    /// As [`gc`](Heap::gc), and [`HeapError::Timeout`].
    pub fn gc_timeout(&self, timeout: Duration) -> Result<(), HeapError> {
        self.gc_until(deadline_after(timeout))
    }

    fn gc_until(&self, deadline: Option<Instant>) -> Result<(), HeapError> {
        let h = self.lock_exclusive(deadline)?;
        h.dirty.store(DIRTY_ALLOC, Ordering::Release);
        self.collect(&h, &mut h.allocator());
        h.dirty.store(0, Ordering::Release);
        Ok(())
    }

    /// Mark & sweep, with the heap's allocator (so under its exclusive
    /// lock).
    fn collect(&self, h: &HeapHeader, alloc: &mut HeapAllocator<'_>) {
        let start = Instant::now();
        let (pool, tag) = (&self.pool, h.tag);
        let owns = move |a: usize| pool.page_owner(a) == tag;
        let mut marker = Marker::new(&owns);
        // The addresses of pinned locks: their blocks stay, reached or not.
        let mut locks = Vec::new();
        {
            // SAFETY: the root and every pinned value are live `T::Repr`s of
            // this heap, whose pointers lead only into this heap.
            let mut t = unsafe { Tracer::new(&mut marker) };
            t.visit::<T>(h.root.load(Ordering::Acquire), 1);
            reclaim_dead_pins(&h.pins_in_use, &h.pins);
            for p in &h.pins {
                let v = p.v.load(Ordering::Acquire);
                if v & PIN_COUNT_MASK != 0 {
                    t.visit::<T>(self.pool.base() + ((v >> PIN_COUNT_BITS) << 3) as usize, 1);
                }
            }
            t.drain();
            // Last: part pins' blocks are marked without being traced.
            let owns = |a: usize, len: usize| self.in_chunks(h, a, len);
            if !part::mark_parts(h, &mut t, &owns, self.max_nodes(), &mut locks) {
                // Freeing anything now could free what a part pin holds:
                // the heap is damaged.
                h.poisoned.store(POISON_DIED, Ordering::Release);
                return;
            }
        }
        // SAFETY: marking is complete; unmarked blocks are unreachable but
        // for those of pinned locks, which are kept.
        unsafe { alloc.sweep(&locks) };
        alloc.set_last_gc_nanos(start.elapsed().as_nanos() as u64);
    }

    /// The heap's figures.
    ///
    /// # Errors
    ///
    /// As [`read`](Heap::read).
    pub fn stats(&self) -> Result<HeapStats, HeapError> {
        let h = self.lock_shared(None)?;
        let s = h.state().stats_in(&self.chunk_memory(&h));
        let mut stats = HeapStats::new(&s, &h);
        stats.pinned += part::count_parts(
            &h,
            &|a, len| self.in_chunks(&h, a, len),
            self.max_nodes(),
            false,
        );
        Ok(stats)
    }

    /// Destroys the heap: its memory goes back to the pool (all but the
    /// page of its header, which stays as a tombstone so that every handle
    /// and descriptor of the heap then gives [`HeapError::Destroyed`]).
    /// Works on a poisoned heap too.
    ///
    /// # Errors
    ///
    /// [`HeapError::Pinned`] while pin guards of the heap exist;
    /// [`HeapError::Destroyed`] when it was destroyed already;
    /// [`HeapError::Reentrant`] when this thread holds a guard of the heap or
    /// is inside a modification; [`HeapError::Lock`] when the heap's lock
    /// fails.
    pub fn destroy(self) -> Result<(), HeapError> {
        let h = self.header();
        if h.magic.load(Ordering::Acquire) != HEAP_MAGIC || h.id != self.id {
            return Err(HeapError::Destroyed);
        }
        if held(self.hdr) || modifying() {
            return Err(HeapError::Reentrant);
        }
        let _lock = self.acquire_write(h, None, false)?;
        reclaim_dead_pins(&h.pins_in_use, &h.pins);
        let pinned = h
            .pins
            .iter()
            .filter(|p| p.v.load(Ordering::Acquire) & PIN_COUNT_MASK != 0)
            .count()
            + part::count_parts(
                h,
                &|a, len| self.in_chunks(h, a, len),
                self.max_nodes(),
                true,
            );
        if pinned > 0 {
            return Err(HeapError::Pinned(pinned));
        }
        h.magic.store(TOMBSTONE, Ordering::Release);
        if self.pool.root_heap().0 == self.hdr {
            self.pool.set_root_heap(0, 0);
        }
        self.free_all_pages(true);
        Ok(())
    }

    /// Gives every page of the heap back to the pool: its chunks, and the
    /// pages a killed process took for it and never linked, found by the
    /// heap's tag in the pool's owner table (the chunk list is not
    /// followed: a destroyed heap may be a damaged one). With
    /// `keep_header`, the header pages stay (as a tombstone).
    fn free_all_pages(&self, keep_header: bool) {
        let h = self.header();
        let header = (self.hdr, self.hdr + h.header_bytes);
        let except = if keep_header { header } else { (0, 0) };
        self.pool.free_pages_of(h.tag, except, &|_| false);
    }
}

/// `now + timeout` (no deadline when that does not fit in an `Instant`).
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// What is left before `deadline`, for a lock wait: `None` waits without
/// end; a deadline that has passed still allows one attempt that does not
/// wait.
#[inline]
fn left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// The heap header at `addr`. Callers pass a page-aligned address in
/// committed memory of a mapped pool: a header this module created, or one
/// the pool's page owner table names and `contains_committed` accepts
/// (`open_at`, `scavenge`).
fn unsafe_header<'a>(addr: usize) -> &'a HeapHeader {
    // SAFETY: `addr` is page-aligned committed memory of a mapped pool (see
    // above), readable for as long as any handle of the pool exists (so
    // while a heap or pool handle that got the address lives); any bytes
    // are a valid `HeapHeader` (`InShared`: plain and atomic fields).
    unsafe { &*at::<HeapHeader>(addr) }
}

/// Copies the representation `f` makes into the heap, boxed; returns its
/// address.
fn write_boxed<R>(
    alloc: &mut HeapAllocator<'_>,
    locks: &AtomicU32,
    f: impl FnOnce(&mut Writer<'_>) -> Result<R, CopyError>,
) -> Result<usize, CopyError> {
    let mut w = HeapWriter { alloc };
    // SAFETY: the representation `f` makes is written into the heap at
    // once.
    let mut wr = unsafe { Writer::new(&mut w) };
    let r = f(&mut wr)?;
    let a = wr.put(r)?;
    if wr.wrote_lock() {
        locks.store(1, Ordering::Release);
    }
    Ok(a)
}

#[cfg(test)]
mod tests;
