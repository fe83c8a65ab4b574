//! Guards and the bookkeeping behind them: the read and pin guards, the
//! exclusive lock of a modification, the pin table (and pins of the root,
//! [`Heap::pin`]), and which heaps each thread holds.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::alloc::{AllocState, Allocator, HeapAllocator, PoolSource};
use super::{
    deadline_after, Heap, HeapError, HeapHeader, DIRTY_ALLOC, DIRTY_DATA, N_PINS, PIN_COUNT_BITS,
    PIN_COUNT_MASK, POISON_PANIC,
};
use crate::in_shared::at;
use crate::in_shared::in_shared;
use crate::pool::Pool;
use crate::sync::futex::process_key;
use crate::sync::home::Home;
use crate::sync::raw::{Acquired, LockError};
use crate::value::Shared;

// What this thread holds, to refuse a lock that would deadlock. The record
// belongs to one process: a child of `fork` inherits the forking thread's
// thread-locals, but not its locks, so a record of another process counts
// as empty (and is cleared at the next `hold`).
thread_local! {
    /// Heaps (header addresses) whose lock this thread holds: the first
    /// [`HELD_FAST`] here, with no destructor to register, so that a
    /// lookup is a few loads.
    static HELD: Held = const {
        Held {
            key: Cell::new(0),
            fast: [const { Cell::new(0) }; HELD_FAST],
            more: Cell::new(0),
            modifying: Cell::new(false),
        }
    };
    /// The heaps held beyond the first [`HELD_FAST`].
    static HELD_MORE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// How many held heaps a thread records without allocating.
const HELD_FAST: usize = 4;

/// The heaps a thread holds (see [`HELD`]).
struct Held {
    /// The process the record belongs to (0: none yet).
    key: Cell<u64>,
    /// Header addresses, 0 for a free entry.
    fast: [Cell<usize>; HELD_FAST],
    /// How many entries [`HELD_MORE`] has.
    more: Cell<usize>,
    /// Whether the thread runs a modification.
    modifying: Cell<bool>,
}

impl Held {
    /// Whether `addr` is recorded (the record being this process's).
    #[inline]
    fn has(&self, addr: usize) -> bool {
        self.fast.iter().any(|a| a.get() == addr)
            || (self.more.get() != 0 && HELD_MORE.with(|m| m.borrow().contains(&addr)))
    }

    /// Makes the record this process's: one inherited through `fork` is
    /// cleared (nothing of it is held here).
    #[inline]
    fn own(&self, key: u64) {
        if self.key.get() != key {
            self.key.set(key);
            self.fast.iter().for_each(|a| a.set(0));
            if self.more.replace(0) != 0 {
                HELD_MORE.with(|m| m.borrow_mut().clear());
            }
            self.modifying.set(false);
        }
    }

    #[inline]
    fn add(&self, addr: usize) {
        match self.fast.iter().find(|a| a.get() == 0) {
            Some(free) => free.set(addr),
            None => {
                HELD_MORE.with(|m| m.borrow_mut().push(addr));
                self.more.set(self.more.get() + 1);
            }
        }
    }
}

/// `f` on this thread's record, or `default` once the thread's
/// thread-locals are gone (never for this one, which has no destructor).
/// (`try_with` is inlined into its callers, where `with` is called.)
#[inline(always)]
fn with_held<R>(default: R, f: impl FnOnce(&Held) -> R) -> R {
    HELD.try_with(f).unwrap_or(default)
}

#[inline]
pub(super) fn held(addr: usize) -> bool {
    let key = process_key();
    with_held(false, |h| h.key.get() == key && h.has(addr))
}

#[inline]
pub(super) fn hold(addr: usize) {
    let key = process_key();
    with_held((), |h| {
        h.own(key);
        h.add(addr);
    });
}

/// Records that this thread is about to take the lock of the heap at
/// `addr` ([`release`] undoes it), unless it holds that heap already or,
/// with `outside_modification`, runs a modification: then `false`, and
/// nothing is recorded. One look at the thread's record where
/// [`held`], [`modifying`] and [`hold`] would take three.
#[inline]
pub(super) fn enter(addr: usize, outside_modification: bool) -> bool {
    let key = process_key();
    with_held(false, |h| {
        h.own(key);
        if (outside_modification && h.modifying.get()) || h.has(addr) {
            return false;
        }
        h.add(addr);
        true
    })
}

/// Marks the start (`true`) or the end of a modification by this thread.
#[inline]
pub(super) fn set_modifying(on: bool) {
    let key = process_key();
    with_held((), |h| {
        h.own(key);
        h.modifying.set(on);
    });
}

#[inline]
pub(super) fn release(addr: usize) {
    let key = process_key();
    with_held((), |h| {
        if h.key.get() != key {
            return;
        }
        if let Some(a) = h.fast.iter().find(|a| a.get() == addr) {
            a.set(0);
        } else if h.more.get() != 0 {
            HELD_MORE.with(|m| {
                let mut m = m.borrow_mut();
                if let Some(i) = m.iter().rposition(|&a| a == addr) {
                    m.swap_remove(i);
                    h.more.set(h.more.get() - 1);
                }
            });
        }
    });
}

/// Whether this thread (of this process) is inside a modification.
#[inline]
pub(super) fn modifying() -> bool {
    let key = process_key();
    with_held(false, |h| h.key.get() == key && h.modifying.get())
}

/// A pin entry: the pinned value's offset in the pool (8-aligned, below
/// 2^44, so 41 bits) and a 20-bit count.
pub(super) fn pack(addr: usize, count: u64) -> u64 {
    ((addr as u64 >> 3) << PIN_COUNT_BITS) | count
}

#[inline]
pub(super) fn pinned(in_use: &AtomicU32, pins: &[PinSlot; N_PINS], addr: usize) -> bool {
    if in_use.load(Ordering::Acquire) == 0 {
        return false;
    }
    let key = addr as u64 >> 3;
    pins.iter().any(|p| {
        let v = p.v.load(Ordering::Acquire);
        v & PIN_COUNT_MASK != 0 && v >> PIN_COUNT_BITS == key
    })
}

in_shared! {
    /// One slot of the pin table: a pinned value and how many pins this
    /// process holds on it, plus the process, so that the pins of a process
    /// that died can be reclaimed.
    pub(super) struct PinSlot {
        pub(super) v: AtomicU64,
        pub(super) pid: AtomicU32,
        _pad: u32,
    }
}

impl PinSlot {
    pub(super) const fn new() -> Self {
        PinSlot {
            v: AtomicU64::new(0),
            pid: AtomicU32::new(0),
            _pad: 0,
        }
    }
}

/// Pins the value at pool offset `addr` for this process; returns the slot.
pub(super) fn pin_add(in_use: &AtomicU32, pins: &[PinSlot; N_PINS], addr: usize) -> Option<usize> {
    let key = addr as u64 >> 3;
    let me = crate::sync::futex::current_pid();
    // This process's slot for the value, if any (only this process changes
    // a slot whose pid is its own, apart from reclaiming after its death).
    for (i, p) in pins.iter().enumerate() {
        if p.pid.load(Ordering::Acquire) != me {
            continue;
        }
        let mut v = p.v.load(Ordering::Acquire);
        while v >> PIN_COUNT_BITS == key
            && v & PIN_COUNT_MASK != 0
            && v & PIN_COUNT_MASK < PIN_COUNT_MASK
        {
            match p
                .v
                .compare_exchange_weak(v, v + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(i),
                Err(cur) => v = cur,
            }
        }
    }
    // A free slot: count it, claim it by its pid, then publish the pin.
    // Counted before the claim, so that the count is never below the
    // claimed slots: a process killed in between leaves it one too high
    // (modifications then scan the table), never too low (a scan skipped
    // with a live pin).
    in_use.fetch_add(1, Ordering::AcqRel);
    for (i, p) in pins.iter().enumerate() {
        if p.pid
            .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            p.v.store(pack(addr, 1), Ordering::Release);
            return Some(i);
        }
    }
    in_use.fetch_sub(1, Ordering::AcqRel);
    None
}

pub(super) fn pin_remove(in_use: &AtomicU32, p: &PinSlot) {
    let mut v = p.v.load(Ordering::Acquire);
    loop {
        let last = v & PIN_COUNT_MASK <= 1;
        let next = if last { 0 } else { v - 1 };
        match p
            .v
            .compare_exchange_weak(v, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                if last && p.pid.swap(0, Ordering::AcqRel) != 0 {
                    in_use.fetch_sub(1, Ordering::AcqRel);
                }
                return;
            }
            Err(cur) => v = cur,
        }
    }
}

/// Frees the pin slots of processes that have ended. Called with the
/// heap's exclusive lock held (no pin is being added meanwhile).
pub(super) fn reclaim_dead_pins(in_use: &AtomicU32, pins: &[PinSlot; N_PINS]) {
    for p in pins {
        let pid = p.pid.load(Ordering::Acquire);
        if pid != 0 && !crate::segment::process_alive(pid, 0) {
            p.v.store(0, Ordering::Release);
            // Each slot's release (here or in `pin_remove`) counts once.
            if p.pid.swap(0, Ordering::AcqRel) != 0 {
                in_use.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// The heap's lock, held shared by this thread until dropped.
///
/// Invariant: the calling thread holds `h.lock` shared while the value
/// lives (only [`SharedHold::take`], which takes it, makes one).
pub(super) struct SharedHold<'a> {
    h: &'a HeapHeader,
    // Released by the thread that took it: `!Send`.
    _not_send: PhantomData<*const ()>,
}

impl<'a> SharedHold<'a> {
    /// Takes `h`'s lock shared, waiting at most `timeout`.
    #[inline]
    pub(super) fn take(h: &'a HeapHeader, timeout: Option<Duration>) -> Result<Self, LockError> {
        h.lock.read(timeout)?;
        Ok(SharedHold {
            h,
            _not_send: PhantomData,
        })
    }

    /// The allocator's state, which nobody following the heap's protocol
    /// changes while the lock is held shared.
    pub(super) fn state(&self) -> &AllocState {
        // SAFETY: the lock is held shared (type invariant), and the state
        // is changed only under the exclusive lock: no `&mut` to it exists
        // while this borrow lasts.
        unsafe { &*self.h.alloc.get() }
    }
}

impl Deref for SharedHold<'_> {
    type Target = HeapHeader;
    #[inline]
    fn deref(&self) -> &HeapHeader {
        self.h
    }
}

impl Drop for SharedHold<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the lock is held shared by this thread (type invariant).
        unsafe { self.h.lock.unlock_read() };
    }
}

/// The exclusive lock, held by this thread until dropped.
///
/// Invariant: the calling thread holds `h.lock` exclusively while the
/// value lives (only [`WriteLock::take`], which takes it, makes one; the
/// lock refuses a thread that holds it already, so there is one at most).
pub(super) struct WriteLock<'a> {
    addr: usize,
    h: &'a HeapHeader,
}

impl<'a> WriteLock<'a> {
    /// Takes `h`'s lock exclusively, waiting at most `timeout`, and records
    /// that this thread holds the heap at `addr` (unless `entered`: the
    /// caller recorded it with [`enter`] already).
    #[inline]
    pub(super) fn take(
        addr: usize,
        h: &'a HeapHeader,
        timeout: Option<Duration>,
        entered: bool,
    ) -> Result<(Self, Acquired), LockError> {
        let acquired = h.lock.write(timeout)?;
        if !entered {
            hold(addr);
        }
        Ok((WriteLock { addr, h }, acquired))
    }

    /// The header.
    pub(super) fn header(&self) -> &'a HeapHeader {
        self.h
    }

    /// The allocator's state (to read or change it).
    pub(super) fn state(&mut self) -> &mut AllocState {
        // SAFETY: the lock is held exclusively by this thread (type
        // invariant): nobody else touches the state, and the exclusive
        // borrow of `self` makes this the only reference to it.
        unsafe { &mut *self.h.alloc.get() }
    }
}

impl Drop for WriteLock<'_> {
    #[inline]
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A panic inside a modification leaves every value whole (each
            // change is a complete write), but the change may be half done:
            // readers learn of it, as with a poisoned `std::sync::Mutex`.
            match self.h.dirty.load(Ordering::Acquire) {
                DIRTY_DATA => {
                    let _ = self.h.poisoned.compare_exchange(
                        0,
                        POISON_PANIC,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
                DIRTY_ALLOC => self.h.repair.store(1, Ordering::Release),
                _ => {}
            }
        }
        self.h.dirty.store(0, Ordering::Release);
        // SAFETY: the lock is held exclusively by this thread (type
        // invariant).
        unsafe { self.h.lock.unlock_write() };
        // The thread's record after the lock, which others wait for.
        release(self.addr);
    }
}

/// The exclusive lock of a heap whose allocator's state is intact (no
/// repair pending): modifications, assignments and collections run under
/// one, and take the heap's [`Allocator`] from it.
///
/// Invariant: the state of the locked heap, with the chunks of `pool`
/// that bear the heap's tag, satisfies the invariant of [`Allocator`] but
/// for the allocator itself; only `allocator` makes one over it, at most
/// one at a time (`busy` is set while it lives).
pub(super) struct Exclusive<'a> {
    lock: WriteLock<'a>,
    pool: &'a Pool,
    busy: Cell<bool>,
}

impl<'a> Exclusive<'a> {
    /// # Safety
    ///
    /// `pool` must be the heap's pool, and the allocator's state of the
    /// heap `lock` holds must be intact, as [`Allocator::new`] asks (made by
    /// `AllocState::new` and changed since only by allocators, or checked
    /// by a repair).
    pub(super) unsafe fn new(lock: WriteLock<'a>, pool: &'a Pool) -> Self {
        Exclusive {
            lock,
            pool,
            busy: Cell::new(false),
        }
    }

    /// The heap's allocator, until it is dropped.
    ///
    /// # Panics
    ///
    /// When the allocator is lent already.
    #[inline]
    pub(super) fn allocator(&self) -> HeapAllocator<'_> {
        assert!(
            !self.busy.replace(true),
            "mc: the heap's allocator is in use"
        );
        let src = PoolSource {
            pool: self.pool,
            tag: self.lock.h.tag,
            last_error: None,
        };
        // SAFETY: the lock is held exclusively by this thread and the state
        // is intact, its chunks being the pages of `pool` with the heap's
        // tag (type invariants), which `src` hands out and takes back;
        // `busy` was clear, so no other allocator over the state is alive,
        // and it stays set until this one is dropped (wherever it is moved
        // to).
        unsafe { Allocator::lent(&mut *self.lock.h.alloc.get(), src, &self.busy) }
    }
}

impl Deref for Exclusive<'_> {
    type Target = HeapHeader;
    #[inline]
    fn deref(&self) -> &HeapHeader {
        self.lock.h
    }
}

pub(super) struct ModifyingFlag;

impl ModifyingFlag {
    /// Marks this thread as running a modification until the flag drops.
    #[inline]
    pub(super) fn set() -> Self {
        set_modifying(true);
        ModifyingFlag
    }
}

impl Drop for ModifyingFlag {
    #[inline]
    fn drop(&mut self) {
        set_modifying(false);
    }
}

/// A read guard: the root value, under the heap's shared lock.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
pub struct ReadGuard<'a, T: Shared> {
    pub(super) heap: &'a Heap<T>,
    pub(super) root: usize,
    /// The process that holds the lock: a copy made by `fork` is inert.
    pub(super) home: Home,
    /// The shared lock (taken out when the guard is dropped).
    pub(super) hold: Option<SharedHold<'a>>,
    // The lock is released by the thread that took it: `!Send`.
    pub(super) _t: PhantomData<(&'a T::Repr, *const ())>,
}

impl<T: Shared> ReadGuard<'_, T> {
    /// Whether the calling process took the guard (and not a copy made by
    /// `fork`), so that dereferencing does not panic.
    pub(crate) fn is_here(&self) -> bool {
        self.home.is_here()
    }
}

impl<T: Shared> Deref for ReadGuard<'_, T> {
    type Target = T::Repr;
    #[inline]
    fn deref(&self) -> &T::Repr {
        self.home.check("heap ReadGuard");
        // SAFETY: the shared lock is held: the root value is live and no
        // writer changes it while the guard exists.
        unsafe { &*at::<T::Repr>(self.root) }
    }
}

impl<T: Shared> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        let hold = self.hold.take();
        if !self.home.is_here() {
            // A copy made by `fork`: the lock belongs to the process that
            // took it.
            std::mem::forget(hold);
            return;
        }
        // The lock first, which writers wait for; then the thread's record.
        drop(hold);
        release(self.heap.hdr);
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

/// A pin guard: a value kept alive (and unchanged) without holding the
/// heap's lock. [`Heap::pin`] pins the root value; [`Heap::pin_part`] pins
/// a copy of one part of it.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
pub struct PinGuard<'a, T: Shared> {
    pub(super) h: &'a HeapHeader,
    /// The pinned value's address.
    pub(super) root: usize,
    pub(super) hold: PinHold,
    /// The pinning process: a copy of the guard in a forked child neither
    /// reads (the pin may be gone) nor drops the parent's pin.
    pub(super) home: Home,
    pub(super) _t: PhantomData<&'a T::Repr>,
}

/// What keeps a pinned value alive.
#[derive(Debug, Clone, Copy)]
pub(super) enum PinHold {
    /// A slot of the pin table (a pinned root value).
    Slot(usize),
    /// A part pin's node (see [`super::part`]).
    Part(usize),
}

impl<T: Shared> Deref for PinGuard<'_, T> {
    type Target = T::Repr;
    #[inline]
    fn deref(&self) -> &T::Repr {
        self.home.check("heap PinGuard");
        // SAFETY: the value is pinned: the collector keeps it, and
        // modifications never change a pinned value in place (a pinned
        // root is copied first; a part pin holds a copy that no value of
        // the heap points to), so it is live and unchanged while the guard
        // exists.
        unsafe { &*at::<T::Repr>(self.root) }
    }
}

impl<T: Shared> Drop for PinGuard<'_, T> {
    fn drop(&mut self) {
        if self.home.is_here() {
            match self.hold {
                PinHold::Slot(slot) => pin_remove(&self.h.pins_in_use, &self.h.pins[slot]),
                PinHold::Part(node) => super::part::release(node),
            }
        }
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

impl<T: Shared> Heap<T> {
    /// Pins the current root value: the guard reads it without holding the
    /// lock, writers go on (a modification then works on a fresh copy), and
    /// the collector keeps the pinned value until the guard is dropped.
    ///
    /// Pins are recorded with the pinning process: when a process dies
    /// holding pin guards, the next collection (or [`Heap::destroy`]) finds
    /// it gone and drops its pins.
    ///
    /// # Errors
    ///
    /// [`HeapError::PinWithLocks`] when the heap holds locks (pin them in
    /// place with [`pin_lock`](Heap::pin_lock), or pin lock-free parts with
    /// [`pin_part`](Heap::pin_part));
    /// [`HeapError::TooManyPins`] when every pin slot is taken; and the errors
    /// of [`read`](Heap::read).
    pub fn pin(&self) -> Result<PinGuard<'_, T>, HeapError> {
        self.pin_until(None)
    }

    /// Like [`pin`](Heap::pin), but gives up with [`HeapError::Timeout`]
    /// when the lock cannot be taken within `timeout`.
    ///
    /// # Errors
    ///
    /// As [`pin`](Heap::pin), and [`HeapError::Timeout`].
    pub fn pin_timeout(&self, timeout: Duration) -> Result<PinGuard<'_, T>, HeapError> {
        self.pin_until(deadline_after(timeout))
    }

    fn pin_until(&self, deadline: Option<Instant>) -> Result<PinGuard<'_, T>, HeapError> {
        let h = self.lock_shared(deadline)?;
        // Locks are copied in only under the exclusive lock: checked under
        // the shared lock, the answer holds until the pin is registered.
        if h.has_locks.load(Ordering::Acquire) != 0 {
            return Err(HeapError::PinWithLocks);
        }
        let root = h.root.load(Ordering::Acquire);
        let r = pin_add(&h.pins_in_use, &h.pins, root - self.pool.base());
        drop(h);
        let slot = r.ok_or(HeapError::TooManyPins)?;
        Ok(PinGuard {
            h: self.header(),
            root,
            hold: PinHold::Slot(slot),
            home: Home::here(),
            _t: PhantomData,
        })
    }
}
