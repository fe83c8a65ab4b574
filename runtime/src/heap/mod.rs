//! Garbage-collected heaps of shared values in a [`Pool`].
//!
//! A [`Heap<T>`] holds one root value of type `T` (copied in when the heap is
//! created) and everything the root points to. Any process that has the
//! pool mapped can open the heap from its [descriptor](HeapDescr) and:
//!
//! - [read](Heap::read) it in place under a shared lock
//!   (Netmulticore's `deref_ro`, made safe: references borrow the guard);
//! - [pin](Heap::pin) the current value, so that writers may go on while the
//!   guard keeps the pinned value alive and unchanged (`deref_p`);
//! - [copy](Heap::copy) it out (`deref_c`);
//! - [modify](Heap::modify) it under the exclusive lock with a [`Mutator`]
//!   that copies new values in.
//!
//! The collector is a non-moving mark & sweep whose roots are the root
//! value and the pinned values. It never runs during a modification: it
//! runs when one ends (or on [`Heap::gc`]). So everything seen or added
//! during a modification stays alive until it ends, and the references a
//! modification hands out cannot escape it (they borrow its closure's
//! arguments). Netmulticore's crash — a value read, made unreachable,
//! collected inside `add`, then used — cannot be written.
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

use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::alloc::{AllocState, HeapWriter, Marker, PoolSource};
use crate::pool::{Pool, PoolError, PAGE_SIZE};
use crate::sync::raw::{Acquired, LockError, RawRwLock};
use crate::value::{CopyError, SOption, SString, SVec, Shared, Tracer, Writer};

/// The default chunk size: heaps grow and shrink in chunks of this many
/// bytes taken from their pool.
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;

const HEAP_MAGIC: u64 = u64::from_le_bytes(*b"mc-heap\x01");
const N_PINS: usize = 128;
const PIN_COUNT_BITS: u32 = 20;
const PIN_COUNT_MASK: u64 = (1 << PIN_COUNT_BITS) - 1;

/// A heap's header, at the start of its first chunk.
#[repr(C)]
struct HeapHeader {
    magic: AtomicU64,
    id: u64,
    fingerprint: u64,
    lock: RawRwLock,
    /// Set while a modification or collection is under way; found set by
    /// the next locker after a holder died, it poisons the heap.
    dirty: AtomicU32,
    poisoned: AtomicU32,
    owner_deaths: AtomicU32,
    root: AtomicUsize,
    home_pages: usize,
    alloc: UnsafeCell<AllocState>,
    pins: [AtomicU64; N_PINS],
}

/// Why a heap operation failed.
#[derive(Debug)]
pub enum HeapError {
    /// The pool has no room left for the heap to grow.
    OutOfMemory {
        /// Bytes requested from the pool.
        requested: usize,
        /// Bytes free in the pool.
        available: usize,
    },
    /// A value too large to be copied.
    TooLarge,
    /// A pool operation failed.
    Pool(PoolError),
    /// This thread already holds this heap (a guard is alive) or is inside
    /// a modification; waiting would deadlock.
    Reentrant,
    /// A process died in the middle of modifying the heap; its contents may
    /// be inconsistent, so every access is refused until it is
    /// [destroyed](Heap::destroy).
    Poisoned,
    /// The heap holds another type.
    WrongType {
        /// The fingerprint of the type asked for.
        expected: u64,
        /// The fingerprint recorded in the heap.
        found: u64,
    },
    /// The descriptor does not lead to a heap (bad address, or another
    /// pool).
    NotAHeap,
    /// The heap was destroyed.
    Destroyed,
    /// The pool has no root heap.
    NoRootHeap,
    /// Too many distinct values are pinned at once.
    TooManyPins,
    /// The heap's lock failed.
    Lock(LockError),
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::OutOfMemory {
                requested,
                available,
            } => write!(
                f,
                "out of pool memory: the heap needs {requested} more bytes, the pool has \
                 {available} free (make the pool larger)"
            ),
            HeapError::TooLarge => write!(f, "the value is too large to be copied"),
            HeapError::Pool(e) => write!(f, "{e}"),
            HeapError::Reentrant => write!(
                f,
                "this thread already holds this heap (a guard is alive) or is inside a \
                 modification: drop the guard or finish the modification first"
            ),
            HeapError::Poisoned => write!(
                f,
                "the heap is poisoned: a process died while modifying it; destroy it and \
                 rebuild it from a copy"
            ),
            HeapError::WrongType { expected, found } => write!(
                f,
                "the heap holds another type (fingerprint {found:#018x}, expected \
                 {expected:#018x}): open it with the type it was created with"
            ),
            HeapError::NotAHeap => write!(f, "the descriptor does not lead to a heap of this pool"),
            HeapError::Destroyed => write!(f, "the heap was destroyed"),
            HeapError::NoRootHeap => write!(f, "the pool has no root heap"),
            HeapError::TooManyPins => {
                write!(
                    f,
                    "too many values pinned at once ({N_PINS}): drop some pin guards"
                )
            }
            HeapError::Lock(e) => write!(f, "heap lock: {e}"),
        }
    }
}

impl std::error::Error for HeapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HeapError::Pool(e) => Some(e),
            HeapError::Lock(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PoolError> for HeapError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::OutOfMemory {
                requested,
                available,
            } => HeapError::OutOfMemory {
                requested,
                available,
            },
            e => HeapError::Pool(e),
        }
    }
}

/// A heap's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in allocated blocks (values and their 8-byte headers): after a
    /// collection, exactly what is reachable.
    pub live_bytes: usize,
    /// Bytes free inside the heap's chunks.
    pub free_bytes: usize,
    /// Chunks taken from the pool.
    pub chunks: usize,
    /// Bytes in those chunks.
    pub chunk_bytes: usize,
    /// Bytes allocated since the last collection.
    pub allocated_since_gc: usize,
    /// Collections so far.
    pub gc_runs: u64,
    /// How long the last collection took.
    pub last_gc: Duration,
    /// Values pinned now.
    pub pinned: usize,
    /// How many times a process died holding the heap's lock while the
    /// heap stayed consistent.
    pub owner_deaths: u32,
}

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

thread_local! {
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    static MODIFYING: Cell<bool> = const { Cell::new(false) };
}

fn held(addr: usize) -> bool {
    HELD.with(|h| h.borrow().contains(&addr))
}

fn hold(addr: usize) {
    HELD.with(|h| h.borrow_mut().push(addr));
}

fn release(addr: usize) {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        if let Some(i) = h.iter().rposition(|&a| a == addr) {
            h.swap_remove(i);
        }
    });
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

/// A serde-able reference to a heap, to pass to other processes, which
/// [open](HeapDescr::open) it. A descriptor carries its type: opening it as
/// a heap of another type does not compile.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct HeapDescr<T: Shared> {
    pool: String,
    addr: u64,
    id: u64,
    fingerprint: u64,
    #[serde(skip)]
    _t: PhantomData<fn() -> T>,
}

impl<T: Shared> Clone for HeapDescr<T> {
    fn clone(&self) -> Self {
        HeapDescr {
            pool: self.pool.clone(),
            addr: self.addr,
            id: self.id,
            fingerprint: self.fingerprint,
            _t: PhantomData,
        }
    }
}

impl<T: Shared> fmt::Debug for HeapDescr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapDescr")
            .field("pool", &self.pool)
            .field("addr", &format_args!("{:#x}", self.addr))
            .finish()
    }
}

impl<T: Shared> PartialEq for HeapDescr<T> {
    fn eq(&self, o: &Self) -> bool {
        self.pool == o.pool && self.addr == o.addr && self.id == o.id
    }
}

impl<T: Shared> HeapDescr<T> {
    /// Opens the heap, attaching its pool if this process has not mapped
    /// it yet.
    pub fn open(&self) -> Result<Heap<T>, HeapError> {
        let pool = Pool::attach_segment(&self.pool)?;
        Heap::open(&pool, self)
    }

    /// The name of the pool the heap lives in.
    pub fn pool_name(&self) -> &str {
        &self.pool
    }
}

fn random_id() -> u64 {
    let mut r = 0u64;
    // SAFETY: writes at most 8 bytes into a live local.
    unsafe { libc::getrandom((&mut r as *mut u64).cast(), 8, 0) };
    r | 1
}

impl<T: Shared> Heap<T> {
    /// Creates a heap in `pool` whose root is a copy of `value`.
    pub fn create(pool: &Pool, value: &T) -> Result<Heap<T>, HeapError> {
        Heap::create_with(pool, value, HeapOptions::default())
    }

    /// Creates a heap with options.
    pub fn create_with(pool: &Pool, value: &T, opts: HeapOptions) -> Result<Heap<T>, HeapError> {
        let hdr_size = size_of::<HeapHeader>().next_multiple_of(64);
        let home = opts
            .chunk_size
            .max((hdr_size + 4096).next_multiple_of(PAGE_SIZE));
        let addr = pool.alloc_pages(home)?;
        let header = HeapHeader {
            magic: AtomicU64::new(HEAP_MAGIC),
            id: random_id(),
            fingerprint: T::FINGERPRINT,
            lock: RawRwLock::new(),
            dirty: AtomicU32::new(0),
            poisoned: AtomicU32::new(0),
            owner_deaths: AtomicU32::new(0),
            root: AtomicUsize::new(0),
            home_pages: home,
            alloc: UnsafeCell::new(AllocState::new(opts.chunk_size)),
            pins: [const { AtomicU64::new(0) }; N_PINS],
        };
        // SAFETY: `addr` is fresh, reserved pool memory of `home` bytes, more
        // than the header; the home chunk follows the header inside it.
        unsafe {
            (addr as *mut HeapHeader).write(header);
            (*(*(addr as *const HeapHeader)).alloc.get())
                .adopt_home(addr + hdr_size, home - hdr_size);
        }
        let heap = Heap {
            pool: pool.clone(),
            hdr: addr,
            id: (unsafe_header(addr)).id,
            _t: PhantomData,
        };
        let root = {
            let h = heap.header();
            // SAFETY: nobody else knows the heap yet: exclusive access.
            let state = unsafe { &mut *h.alloc.get() };
            let mut src = PoolSource {
                pool,
                last_error: None,
            };
            let r = write_boxed(value, state, &mut src);
            r.map_err(|e| heap_error(e, src.last_error))
        };
        match root {
            Ok(root) => {
                heap.header().root.store(root, Ordering::Release);
                Ok(heap)
            }
            Err(e) => {
                heap.free_everything();
                Err(e)
            }
        }
    }

    /// Opens the heap of `descr` in `pool`.
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
        if addr % 64 != 0 || !pool.contains_committed(addr, size_of::<HeapHeader>()) {
            return Err(HeapError::NotAHeap);
        }
        let h = unsafe_header(addr);
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
        Ok(Heap {
            pool: pool.clone(),
            hdr: addr,
            id: h.id,
            _t: PhantomData,
        })
    }

    /// Makes this heap the pool's root heap, which other processes find
    /// with [`Heap::open_root`] knowing only the pool.
    pub fn set_pool_root(&self) {
        self.pool.set_root_heap(self.hdr, T::FINGERPRINT);
    }

    /// Opens the pool's root heap (see [`Heap::set_pool_root`]); fails with
    /// [`HeapError::WrongType`] when it holds another type.
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

    fn header(&self) -> &HeapHeader {
        unsafe_header(self.hdr)
    }

    fn check(&self) -> Result<&HeapHeader, HeapError> {
        let h = self.header();
        if h.magic.load(Ordering::Acquire) != HEAP_MAGIC || h.id != self.id {
            return Err(HeapError::Destroyed);
        }
        if h.poisoned.load(Ordering::Acquire) != 0 {
            return Err(HeapError::Poisoned);
        }
        Ok(h)
    }

    fn lock_shared(&self) -> Result<&HeapHeader, HeapError> {
        let h = self.check()?;
        if held(self.hdr) {
            return Err(HeapError::Reentrant);
        }
        match h.lock.read(None) {
            Ok(_) => {}
            Err(e) => return Err(HeapError::Lock(e)),
        }
        if let Err(e) = self.check() {
            // SAFETY: taken just above.
            unsafe { h.lock.unlock_read() };
            return Err(e);
        }
        Ok(h)
    }

    fn lock_exclusive(&self) -> Result<&HeapHeader, HeapError> {
        let h = self.check()?;
        if held(self.hdr) || MODIFYING.with(Cell::get) {
            return Err(HeapError::Reentrant);
        }
        let acquired = h.lock.write(None).map_err(HeapError::Lock)?;
        if acquired == Acquired::OwnerDied {
            if h.dirty.load(Ordering::Acquire) != 0 {
                h.poisoned.store(1, Ordering::Release);
            } else {
                h.owner_deaths.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Err(e) = self.check() {
            // SAFETY: taken just above.
            unsafe { h.lock.unlock_write() };
            return Err(e);
        }
        Ok(h)
    }

    /// Reads the root value in place under the heap's shared lock. Writers
    /// wait until the guard is dropped.
    pub fn read(&self) -> Result<ReadGuard<'_, T>, HeapError> {
        let h = self.lock_shared()?;
        hold(self.hdr);
        let root = h.root.load(Ordering::Acquire);
        Ok(ReadGuard {
            heap: self,
            root,
            _t: PhantomData,
        })
    }

    /// Pins the current root value: the guard reads it without holding the
    /// lock, writers go on (a modification then works on a fresh copy), and
    /// the collector keeps the pinned value until the guard is dropped.
    pub fn pin(&self) -> Result<PinGuard<'_, T>, HeapError> {
        let h = self.lock_shared()?;
        let root = h.root.load(Ordering::Acquire);
        let r = pin_add(&h.pins, root);
        // SAFETY: taken in `lock_shared`.
        unsafe { h.lock.unlock_read() };
        let slot = r.ok_or(HeapError::TooManyPins)?;
        Ok(PinGuard {
            heap: self,
            root,
            slot,
            _t: PhantomData,
        })
    }

    /// Copies the root value out.
    pub fn copy(&self) -> Result<T, HeapError> {
        let g = self.read()?;
        Ok(T::from_repr(&g))
    }

    /// Modifies the heap: `f` gets a [`Mutator`] and the root value pinned
    /// for in-place changes, under the heap's exclusive lock. The collector
    /// may run when `f` returns.
    ///
    /// Fails with [`HeapError::Reentrant`] when called inside another
    /// modification or while this thread holds a guard of this heap.
    pub fn modify<R>(
        &self,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut T::Repr>) -> R,
    ) -> Result<R, HeapError> {
        let h = self.lock_exclusive()?;
        let _lock = WriteLock::new(self.hdr, h);
        h.dirty.store(1, Ordering::Release);
        let mut src = PoolSource {
            pool: &self.pool,
            last_error: None,
        };
        // A pinned root is never changed in place: work on a copy.
        let mut root = h.root.load(Ordering::Acquire);
        if pinned(&h.pins, root) {
            // SAFETY: exclusive lock held: nobody else touches the allocator.
            let state = unsafe { &mut *h.alloc.get() };
            // SAFETY: `root` is the heap's live root value.
            let old = unsafe { &*(root as *const T::Repr) };
            let copy = write_boxed_repr::<T>(old, state, &mut src);
            root = copy.map_err(|e| heap_error(e, src.last_error.take()))?;
            h.root.store(root, Ordering::Release);
        }
        let m = Mutator {
            pool: &self.pool,
            h,
            _not_sync: PhantomData,
        };
        // SAFETY: the root value lives in the heap, is not pinned by anyone
        // (checked above, and new pins wait for the lock), and this thread
        // has the only exclusive access (lock + no nested modification).
        let root_ref = unsafe { Pin::new_unchecked(&mut *(root as *mut T::Repr)) };
        MODIFYING.with(|m| m.set(true));
        let _flag = ModifyingFlag;
        let r = f(&m, root_ref);
        drop(_flag);
        // SAFETY: exclusive lock held; no modification under way.
        if unsafe { &*h.alloc.get() }.gc_due() {
            self.collect(h);
        }
        h.dirty.store(0, Ordering::Release);
        Ok(r)
    }

    /// Replaces the root value with a copy of `value`. Pinned readers keep
    /// the old one.
    pub fn assign(&self, value: &T) -> Result<(), HeapError> {
        let h = self.lock_exclusive()?;
        let _lock = WriteLock::new(self.hdr, h);
        h.dirty.store(1, Ordering::Release);
        let mut src = PoolSource {
            pool: &self.pool,
            last_error: None,
        };
        // SAFETY: exclusive lock held.
        let state = unsafe { &mut *h.alloc.get() };
        let root = write_boxed(value, state, &mut src)
            .map_err(|e| heap_error(e, src.last_error.take()))?;
        h.root.store(root, Ordering::Release);
        if state.gc_due() {
            self.collect(h);
        }
        h.dirty.store(0, Ordering::Release);
        Ok(())
    }

    /// Runs a collection now.
    pub fn gc(&self) -> Result<(), HeapError> {
        let h = self.lock_exclusive()?;
        let _lock = WriteLock::new(self.hdr, h);
        h.dirty.store(1, Ordering::Release);
        self.collect(h);
        h.dirty.store(0, Ordering::Release);
        Ok(())
    }

    /// Mark & sweep. The exclusive lock must be held.
    fn collect(&self, h: &HeapHeader) {
        let start = Instant::now();
        let mut marker = Marker {
            lo: self.pool.base(),
            hi: self.pool.base() + self.pool.mapped_size(),
        };
        {
            // SAFETY: the root and every pinned value are live `T::Repr`s of
            // this heap, whose pointers lead only into this heap.
            let mut t = unsafe { Tracer::new(&mut marker) };
            t.visit::<T>(h.root.load(Ordering::Acquire), 1);
            for p in &h.pins {
                let v = p.load(Ordering::Acquire);
                if v & PIN_COUNT_MASK != 0 {
                    t.visit::<T>(((v >> PIN_COUNT_BITS) << 3) as usize, 1);
                }
            }
            t.drain();
        }
        // SAFETY: exclusive lock held; everything reachable was marked.
        let state = unsafe { &mut *h.alloc.get() };
        let mut src = PoolSource {
            pool: &self.pool,
            last_error: None,
        };
        // SAFETY: marking is complete; unmarked blocks are unreachable.
        unsafe { state.sweep(&mut src) };
        state.last_gc_nanos = start.elapsed().as_nanos() as u64;
    }

    /// The heap's figures.
    pub fn stats(&self) -> Result<HeapStats, HeapError> {
        let h = self.lock_shared()?;
        // SAFETY: shared lock held: no writer changes the allocator.
        let s = unsafe { &*h.alloc.get() }.stats();
        let pinned = h
            .pins
            .iter()
            .filter(|p| p.load(Ordering::Relaxed) & PIN_COUNT_MASK != 0)
            .count();
        let owner_deaths = h.owner_deaths.load(Ordering::Relaxed);
        // SAFETY: taken in `lock_shared`.
        unsafe { h.lock.unlock_read() };
        Ok(HeapStats {
            live_bytes: s.live_bytes,
            free_bytes: s.free_bytes,
            chunks: s.chunks,
            chunk_bytes: s.chunk_bytes,
            allocated_since_gc: s.allocated_since_gc,
            gc_runs: s.gc_runs,
            last_gc: Duration::from_nanos(s.last_gc_nanos),
            pinned,
            owner_deaths,
        })
    }

    /// Destroys the heap: its memory goes back to the pool. Every handle
    /// and descriptor of it then gives [`HeapError::Destroyed`]. Works on
    /// a poisoned heap too.
    pub fn destroy(self) -> Result<(), HeapError> {
        let h = self.header();
        if h.magic.load(Ordering::Acquire) != HEAP_MAGIC || h.id != self.id {
            return Err(HeapError::Destroyed);
        }
        if held(self.hdr) || MODIFYING.with(Cell::get) {
            return Err(HeapError::Reentrant);
        }
        h.lock.write(None).map_err(HeapError::Lock)?;
        h.magic.store(0, Ordering::Release);
        // SAFETY: taken just above; the magic is cleared, so nobody enters.
        unsafe { h.lock.unlock_write() };
        self.free_everything();
        Ok(())
    }

    fn free_everything(&self) {
        let h = self.header();
        if self.pool.root_heap().0 == self.hdr {
            self.pool.set_root_heap(0, 0);
        }
        let mut src = PoolSource {
            pool: &self.pool,
            last_error: None,
        };
        // SAFETY: the heap is unreachable (magic cleared or never published).
        unsafe { (*h.alloc.get()).release_all(&mut src) };
        h.magic.store(0, Ordering::Release);
        self.pool.free_pages(self.hdr, h.home_pages);
    }
}

fn unsafe_header<'a>(addr: usize) -> &'a HeapHeader {
    // SAFETY: callers pass the address of a heap header inside a mapped
    // pool (created by this module or checked by `open_at`); pools stay
    // mapped as long as any handle exists.
    unsafe { &*(addr as *const HeapHeader) }
}

fn heap_error(e: CopyError, pool: Option<PoolError>) -> HeapError {
    match (e, pool) {
        (_, Some(p)) => p.into(),
        (CopyError::OutOfSpace { requested }, None) => HeapError::OutOfMemory {
            requested,
            available: 0,
        },
        (CopyError::Overflow, None) => HeapError::TooLarge,
    }
}

fn write_boxed<T: Shared>(
    value: &T,
    state: &mut AllocState,
    src: &mut PoolSource<'_>,
) -> Result<usize, CopyError> {
    let mut w = HeapWriter { state, src };
    // SAFETY: the representation is written into the heap at once.
    let mut wr = unsafe { Writer::new(&mut w) };
    let r = value.to_repr(&mut wr)?;
    let (p, a) = wr.alloc_array::<T::Repr>(1)?;
    // SAFETY: fresh heap memory for one value.
    unsafe { p.as_ptr().write(r) };
    Ok(a)
}

fn write_boxed_repr<T: Shared>(
    value: &T::Repr,
    state: &mut AllocState,
    src: &mut PoolSource<'_>,
) -> Result<usize, CopyError> {
    let mut w = HeapWriter { state, src };
    // SAFETY: the representation is written into the heap at once.
    let mut wr = unsafe { Writer::new(&mut w) };
    let r = T::repr_to_repr(value, &mut wr)?;
    let (p, a) = wr.alloc_array::<T::Repr>(1)?;
    // SAFETY: fresh heap memory for one value.
    unsafe { p.as_ptr().write(r) };
    Ok(a)
}

fn pack(addr: usize, count: u64) -> u64 {
    ((addr as u64 >> 3) << PIN_COUNT_BITS) | count
}

fn pinned(pins: &[AtomicU64; N_PINS], addr: usize) -> bool {
    pins.iter().any(|p| {
        let v = p.load(Ordering::Acquire);
        v & PIN_COUNT_MASK != 0 && v >> PIN_COUNT_BITS == (addr as u64 >> 3)
    })
}

fn pin_add(pins: &[AtomicU64; N_PINS], addr: usize) -> Option<usize> {
    let key = addr as u64 >> 3;
    loop {
        let mut retry = false;
        for (i, p) in pins.iter().enumerate() {
            let v = p.load(Ordering::Acquire);
            if v >> PIN_COUNT_BITS == key
                && v & PIN_COUNT_MASK != 0
                && v & PIN_COUNT_MASK < PIN_COUNT_MASK
            {
                if p.compare_exchange(v, v + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Some(i);
                }
                retry = true;
            }
        }
        for (i, p) in pins.iter().enumerate() {
            if p.compare_exchange(0, pack(addr, 1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Some(i);
            }
        }
        if !retry {
            return None;
        }
    }
}

fn pin_remove(p: &AtomicU64) {
    let mut v = p.load(Ordering::Acquire);
    loop {
        let next = if v & PIN_COUNT_MASK <= 1 { 0 } else { v - 1 };
        match p.compare_exchange_weak(v, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(cur) => v = cur,
        }
    }
}

/// The exclusive lock, held by this thread until dropped.
struct WriteLock<'a> {
    addr: usize,
    h: &'a HeapHeader,
}

impl<'a> WriteLock<'a> {
    fn new(addr: usize, h: &'a HeapHeader) -> Self {
        hold(addr);
        WriteLock { addr, h }
    }
}

impl Drop for WriteLock<'_> {
    fn drop(&mut self) {
        // A panic inside the modification leaves every value whole (each
        // change is a complete write), so the heap stays consistent.
        self.h.dirty.store(0, Ordering::Release);
        release(self.addr);
        // SAFETY: the exclusive lock was taken by `lock_exclusive`.
        unsafe { self.h.lock.unlock_write() };
    }
}

struct ModifyingFlag;

impl Drop for ModifyingFlag {
    fn drop(&mut self) {
        MODIFYING.with(|m| m.set(false));
    }
}

/// A read guard: the root value, under the heap's shared lock.
pub struct ReadGuard<'a, T: Shared> {
    heap: &'a Heap<T>,
    root: usize,
    // The lock is released by the thread that took it: `!Send`.
    _t: PhantomData<(&'a T::Repr, *const ())>,
}

impl<T: Shared> Deref for ReadGuard<'_, T> {
    type Target = T::Repr;
    fn deref(&self) -> &T::Repr {
        // SAFETY: the shared lock is held: the root value is live and no
        // writer changes it while the guard exists.
        unsafe { &*(self.root as *const T::Repr) }
    }
}

impl<T: Shared> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        release(self.heap.hdr);
        // SAFETY: the shared lock was taken by `read`.
        unsafe { self.heap.header().lock.unlock_read() };
    }
}

impl<T: Shared> fmt::Debug for ReadGuard<'_, T>
where
    T::Repr: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A pin guard: a root value kept alive (and unchanged) without holding
/// the heap's lock.
pub struct PinGuard<'a, T: Shared> {
    heap: &'a Heap<T>,
    root: usize,
    slot: usize,
    _t: PhantomData<&'a T::Repr>,
}

impl<T: Shared> Deref for PinGuard<'_, T> {
    type Target = T::Repr;
    fn deref(&self) -> &T::Repr {
        // SAFETY: the value is pinned: the collector keeps it, and
        // modifications never change a pinned value in place (they copy it
        // first), so it is live and unchanged while the guard exists.
        unsafe { &*(self.root as *const T::Repr) }
    }
}

impl<T: Shared> Drop for PinGuard<'_, T> {
    fn drop(&mut self) {
        pin_remove(&self.heap.header().pins[self.slot]);
    }
}

impl<T: Shared> fmt::Debug for PinGuard<'_, T>
where
    T::Repr: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Changes a heap during [`Heap::modify`]: copies values in, swaps values,
/// grows vectors. Everything it returns borrows it, so nothing can outlive
/// the modification.
pub struct Mutator<'h> {
    pool: &'h Pool,
    h: &'h HeapHeader,
    _not_sync: PhantomData<Cell<()>>,
}

impl<'h> Mutator<'h> {
    fn write<R>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<R, CopyError>,
    ) -> Result<R, HeapError> {
        // SAFETY: the exclusive lock is held for the mutator's life and no
        // other mutator call is running (calls do not nest).
        let state = unsafe { &mut *self.h.alloc.get() };
        let mut src = PoolSource {
            pool: self.pool,
            last_error: None,
        };
        let mut w = HeapWriter {
            state,
            src: &mut src,
        };
        // SAFETY: every representation made with this writer is written
        // into this heap by the callers below.
        let mut wr = unsafe { Writer::new(&mut w) };
        let r = f(&mut wr);
        r.map_err(|e| heap_error(e, src.last_error.take()))
    }

    /// Replaces the value at `place` with a copy of `value`.
    pub fn set<V: Shared>(&self, place: Pin<&mut V::Repr>, value: &V) -> Result<(), HeapError> {
        let r = self.write(|w| value.to_repr(w))?;
        set_pinned(place, r);
        Ok(())
    }

    /// Replaces the string at `place` with a copy of `s`.
    pub fn set_str(&self, place: Pin<&mut SString>, s: &str) -> Result<(), HeapError> {
        let r = self.write(|w| SString::write(s, w))?;
        set_pinned(place, r);
        Ok(())
    }

    /// Replaces the value at `place` with a deep copy of a shared value
    /// (from this heap, another heap or a camlbox).
    pub fn set_from<V: Shared>(
        &self,
        place: Pin<&mut V::Repr>,
        src: &V::Repr,
    ) -> Result<(), HeapError> {
        let r = self.write(|w| V::repr_to_repr(src, w))?;
        set_pinned(place, r);
        Ok(())
    }

    /// Copies `value` into the heap, unlinked: link it with
    /// [`Mutator::swap`] before the modification ends, or it is garbage.
    #[allow(clippy::mut_from_ref)] // each call returns a fresh, distinct value
    pub fn add<V: Shared>(&self, value: &V) -> Result<Pin<&mut V::Repr>, HeapError> {
        let addr = self.write(|w| {
            let r = value.to_repr(w)?;
            let (p, a) = w.alloc_array::<V::Repr>(1)?;
            // SAFETY: fresh heap memory for one value.
            unsafe { p.as_ptr().write(r) };
            Ok(a)
        })?;
        // SAFETY: a fresh value in the heap, reachable only through this
        // reference, alive until the modification ends (no collection runs
        // before), and never moved.
        Ok(unsafe { Pin::new_unchecked(&mut *(addr as *mut V::Repr)) })
    }

    /// Exchanges two values of the heap.
    pub fn swap<R>(&self, a: Pin<&mut R>, b: Pin<&mut R>) {
        // SAFETY: both places are exclusively borrowed, distinct, and in
        // this heap (only one modification runs per thread and pinned
        // pointer-carrying representations cannot cross threads); swapping
        // moves no value out of the heap.
        unsafe { std::ptr::swap(a.get_unchecked_mut(), b.get_unchecked_mut()) }
    }

    /// Appends a copy of `value` to a vector of the heap (amortised O(1):
    /// the array is reallocated with twice the room when full).
    pub fn push<V: Shared>(
        &self,
        vec: Pin<&mut SVec<V::Repr>>,
        value: &V,
    ) -> Result<(), HeapError> {
        let (ptr, len, cap) = vec.raw_parts();
        let r = self.write(|w| value.to_repr(w))?;
        if len < cap {
            // SAFETY: the array has room at `len`; writing there does not
            // touch initialised elements.
            unsafe {
                (ptr as *mut V::Repr).add(len).write(r);
                vec.set_len(len + 1);
            }
            return Ok(());
        }
        let new_cap = (cap * 2).max(4);
        let (p, addr) = self.write(|w| w.alloc_array::<V::Repr>(new_cap))?;
        // SAFETY: moves the `len` elements bitwise into the fresh array
        // (the old array becomes garbage; nothing else refers to its
        // elements: the vector is exclusively borrowed), then writes the new
        // element and publishes the new array.
        unsafe {
            if len > 0 {
                std::ptr::copy_nonoverlapping(ptr as *const V::Repr, p.as_ptr(), len);
            }
            p.as_ptr().add(len).write(r);
            let place = vec.get_unchecked_mut();
            std::ptr::write(place, SVec::from_raw_parts(addr, len + 1, new_cap));
        }
        Ok(())
    }

    /// Replaces the optional value at `place` with `Some` of a copy of
    /// `value` (without first building an `Option<V>` locally).
    pub fn set_some<V: Shared>(
        &self,
        place: Pin<&mut SOption<V::Repr>>,
        value: &V,
    ) -> Result<(), HeapError> {
        let r = self.write(|w| value.to_repr(w))?;
        set_pinned(place, SOption::Some(r));
        Ok(())
    }

    /// Makes room in a vector of the heap for at least `additional` more
    /// elements without reallocation (the elements are moved bitwise into a
    /// fresh array when the current one is too small; the old array becomes
    /// garbage).
    pub fn reserve<R>(&self, vec: Pin<&mut SVec<R>>, additional: usize) -> Result<(), HeapError> {
        let (ptr, len, cap) = vec.raw_parts();
        let need = len.checked_add(additional).ok_or(HeapError::TooLarge)?;
        if need <= cap {
            return Ok(());
        }
        let new_cap = need.max(cap * 2).max(4);
        let (p, addr) = self.write(|w| w.alloc_array::<R>(new_cap))?;
        // SAFETY: moves the `len` elements bitwise into the fresh array (the
        // vector is exclusively borrowed, so nothing else refers to them),
        // then publishes the new array.
        unsafe {
            if len > 0 {
                std::ptr::copy_nonoverlapping(ptr as *const R, p.as_ptr(), len);
            }
            std::ptr::write(
                vec.get_unchecked_mut(),
                SVec::from_raw_parts(addr, len, new_cap),
            );
        }
        Ok(())
    }

    /// Appends copies of `values` to a vector of the heap, reallocating at
    /// most once; numbers and other plain-data types are copied with one
    /// `memcpy` into the vector's spare room.
    ///
    /// ```
    /// let pool = mc::Pool::create(16 << 20)?;
    /// let heap = mc::Heap::create(&pool, &Vec::<u8>::new())?;
    /// heap.modify(|m, v| m.extend_from_slice(v, b"bytes"))??;
    /// assert_eq!(heap.read()?.as_slice(), b"bytes");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend_from_slice<V: Shared>(
        &self,
        mut vec: Pin<&mut SVec<V::Repr>>,
        values: &[V],
    ) -> Result<(), HeapError> {
        if values.is_empty() {
            return Ok(());
        }
        self.reserve(vec.as_mut(), values.len())?;
        let (ptr, len, _) = vec.raw_parts();
        let dst = ptr as *mut V::Repr;
        if V::IS_POD {
            // SAFETY: room for `values.len()` more elements was reserved;
            // for plain-data types `Repr` is `V` and a byte copy is a copy.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    values.as_ptr() as *const V::Repr,
                    dst.add(len),
                    values.len(),
                );
                vec.set_len(len + values.len());
            }
            return Ok(());
        }
        for (i, v) in values.iter().enumerate() {
            let r = self.write(|w| v.to_repr(w))?;
            // SAFETY: room was reserved; slot `len + i` is uninitialised
            // and the length grows only over initialised slots.
            unsafe {
                dst.add(len + i).write(r);
                vec.as_mut().set_len(len + i + 1);
            }
        }
        Ok(())
    }

    /// Removes the last element of a vector of the heap and returns a copy
    /// of it.
    pub fn pop<V: Shared>(&self, vec: Pin<&mut SVec<V::Repr>>) -> Option<V> {
        let len = vec.len();
        if len == 0 {
            return None;
        }
        let v = V::from_repr(&vec.as_slice()[len - 1]);
        // SAFETY: shrinking keeps the remaining elements initialised.
        unsafe { vec.set_len(len - 1) };
        Some(v)
    }

    /// Shortens a vector of the heap to `len` elements.
    pub fn truncate<R>(&self, vec: Pin<&mut SVec<R>>, len: usize) {
        if len < vec.len() {
            // SAFETY: shrinking keeps the remaining elements initialised.
            unsafe { vec.set_len(len) };
        }
    }

    /// Keeps `value` alive until the modification ends — which every value
    /// seen during a modification is anyway, since the collector does not
    /// run inside one. Kept for Netmulticore's `pin`.
    pub fn pin<'a, R>(&self, value: &'a R) -> &'a R {
        value
    }

    /// The heap's allocator figures so far.
    pub fn live_bytes(&self) -> usize {
        // SAFETY: exclusive lock held; read only.
        unsafe { &*self.h.alloc.get() }.live_bytes
    }
}

fn set_pinned<R>(place: Pin<&mut R>, r: R) {
    // SAFETY: overwriting in place moves nothing out (representations have
    // no `Drop`); the old value becomes garbage for the collector.
    unsafe { std::ptr::write(place.get_unchecked_mut(), r) }
}

#[cfg(test)]
mod tests;
