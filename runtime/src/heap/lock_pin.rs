//! Lock pins: a lock of the heap held without the heap's lock.
//!
//! A lock (`mc::sync::Mutex`, `RwLock`, `Semaphore`, `Condvar`, `Barrier`)
//! copied into a heap is reached through a read guard, which keeps the
//! heap's shared lock: writers wait while the lock is held. A lock pin
//! ([`Heap::pin_lock`]) keeps the lock where it is instead, for as long as
//! its guard lives, while writers go on around it: Netmulticore's
//! `deref_p (fun r -> Netmcore_mutex.lock r.m)`.
//!
//! What keeps this sound:
//! - the pin's node (in the list of part pins) records the lock's address;
//!   the collector keeps the block that holds it, reached or not;
//! - a modification never overwrites or moves a pinned lock: the mutator
//!   refuses to write over it ([`HeapError::LockPinned`]) and to move the
//!   array that holds it;
//! - everything in a lock synchronises itself, and the data of a pinned
//!   lock holds no pointers (the collector, which keeps only the lock's
//!   block, would not keep what they lead to).

use std::alloc::Layout;
use std::marker::PhantomData;
use std::mem::size_of;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::error::heap_error;
use super::guards::PinHold;
use super::part::{checked_node, node, PartNode, NODE};
use super::{deadline_after, Heap, HeapError, HeapHeader, PinGuard, DIRTY_ALLOC, NO_LOCK_PINS};
use crate::in_shared::at;
use crate::sync::home::Home;
use crate::sync::raw::RawLock;
use crate::sync::{Barrier, Condvar, Lock, Owned, Semaphore};
use crate::value::Shared;

mod sealed {
    pub trait Sealed {}
}

/// The values [`Heap::pin_lock`] pins in place: the locks of
/// [`mc::sync`](crate::sync), whose every access synchronises itself.
pub trait PinnableLock: Shared + sealed::Sealed {}

impl<L: RawLock, T: Shared> sealed::Sealed for Lock<L, T, Owned> {}
impl<L: RawLock, T: Shared> PinnableLock for Lock<L, T, Owned> {}
impl sealed::Sealed for Semaphore {}
impl PinnableLock for Semaphore {}
impl sealed::Sealed for Condvar {}
impl PinnableLock for Condvar {}
impl sealed::Sealed for Barrier {}
impl PinnableLock for Barrier {}

/// Whether a lock pin of the heap `h` covers a byte of `addr..addr + len`
/// (nodes checked with `owns`, at most `limit` walked; a damaged list
/// counts as covering everything). Called under the exclusive lock.
pub(super) fn lock_pinned(
    h: &HeapHeader,
    addr: usize,
    len: usize,
    owns: &dyn Fn(usize, usize) -> bool,
    limit: usize,
) -> bool {
    let end = addr.saturating_add(len);
    let mut at_node = h.parts.load(Ordering::Acquire);
    for _ in 0..limit {
        if at_node == 0 {
            return false;
        }
        let Some(n) = checked_node(at_node, owns, limit) else {
            return true;
        };
        // A released pin (owner 0) no longer holds its lock; a dead
        // process's pin counts until a collection finds it dead.
        if n.lock != 0
            && n.owner.load(Ordering::Acquire) != 0
            && n.lock < end
            && addr < n.lock.saturating_add(n.lock_len as usize)
        {
            return true;
        }
        at_node = n.next.load(Ordering::Acquire);
    }
    true
}

impl<T: Shared> Heap<T> {
    /// Refuses lock pins from now on: for the data heap of a structure,
    /// whose operations move elements in several steps (a pinned lock
    /// would stop one half way).
    pub(crate) fn refuse_lock_pins(&self) {
        self.header().flags.fetch_or(NO_LOCK_PINS, Ordering::AcqRel);
    }

    /// Pins a lock of the root value in place: `lock` picks it, and the
    /// guard derefs to it without holding the heap's lock, so that the
    /// lock can be held (and waited on) while other processes modify the
    /// heap. The collector keeps the lock's memory until the guard is
    /// dropped, even when the root stops reaching it (a value assigned
    /// over it); modifications that would overwrite or move the lock fail
    /// with [`HeapError::LockPinned`] meanwhile.
    ///
    /// This is Netmulticore's `deref_p (fun r -> Netmcore_mutex.lock r.m)`:
    /// a mutex beside the fields it protects, held across modifications.
    ///
    /// ```
    /// use mc::sync::Mutex;
    ///
    /// #[derive(mc::Shared, Debug)]
    /// struct Counter {
    ///     m: Mutex<()>,
    ///     n: u64,
    /// }
    ///
    /// let pool = mc::Pool::create(16 << 20)?;
    /// let heap = mc::Heap::create(&pool, &Counter { m: Mutex::new(()), n: 0 })?;
    /// let m = heap.pin_lock::<Mutex<()>>(|c| &c.m)?;
    /// {
    ///     let _held = m.lock()?;
    ///     // A read-modify-write made of two heap operations, atomic for
    ///     // everyone who takes `m` first.
    ///     let n = heap.read()?.n;
    ///     heap.modify(|_, c| *c.project().n.get_mut() = n + 1)?;
    /// }
    /// assert_eq!(heap.read()?.n, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Mind the order of the two locks: a process that holds the pinned
    /// lock and waits for the heap (a modification) must not meet one that
    /// holds the heap (a read guard, a copy of the value, which takes the
    /// lock to copy its data) and waits for the pinned lock.
    ///
    /// # Errors
    ///
    /// [`HeapError::LockWithPointers`] when the lock's data holds pointers
    /// (strings, vectors, boxes); [`HeapError::LockInStructure`] in the data
    /// heap of a structure; [`HeapError::ForeignPlace`] when `lock`
    /// returns a lock outside the heap; [`HeapError::OutOfMemory`] when the
    /// pool has no room for the pin's node; and the errors of
    /// [`modify`](Heap::modify).
    pub fn pin_lock<V: PinnableLock>(
        &self,
        lock: impl for<'r> FnOnce(&'r T::Repr) -> &'r V::Repr,
    ) -> Result<PinGuard<'_, V>, HeapError> {
        self.pin_lock_until(None, lock)
    }

    /// Like [`pin_lock`](Heap::pin_lock), but gives up with
    /// [`HeapError::Timeout`] when the heap's lock cannot be taken within
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// As [`pin_lock`](Heap::pin_lock), and [`HeapError::Timeout`].
    pub fn pin_lock_timeout<V: PinnableLock>(
        &self,
        timeout: Duration,
        lock: impl for<'r> FnOnce(&'r T::Repr) -> &'r V::Repr,
    ) -> Result<PinGuard<'_, V>, HeapError> {
        self.pin_lock_until(deadline_after(timeout), lock)
    }

    fn pin_lock_until<V: PinnableLock>(
        &self,
        deadline: Option<Instant>,
        lock: impl for<'r> FnOnce(&'r T::Repr) -> &'r V::Repr,
    ) -> Result<PinGuard<'_, V>, HeapError> {
        if V::HAS_POINTERS {
            return Err(HeapError::LockWithPointers);
        }
        let h = self.lock_exclusive_nested(deadline)?;
        if h.flags.load(Ordering::Acquire) & NO_LOCK_PINS != 0 {
            return Err(HeapError::LockInStructure);
        }
        let root = h.root.load(Ordering::Acquire);
        // SAFETY: the exclusive lock is held: the root value is live.
        let l = lock(unsafe { &*at::<T::Repr>(root) });
        let addr = std::ptr::from_ref(l).addr();
        let len = size_of::<V::Repr>().max(1);
        if !self.in_chunks(&h, addr, len) {
            return Err(HeapError::ForeignPlace);
        }
        let len = u32::try_from(len).map_err(|_| HeapError::TooLarge)?;
        h.dirty.store(DIRTY_ALLOC, Ordering::Release);
        let mut alloc = h.allocator();
        let made = alloc
            .alloc(Layout::new::<PartNode>())
            .map_err(|e| heap_error(e, alloc.take_error()));
        let at_node = match made {
            Ok(a) => a,
            Err(e) => {
                drop(alloc);
                h.dirty.store(0, Ordering::Release);
                return Err(e);
            }
        };
        // Counted before the pin is linked: a process killed in between
        // leaves the count too high (modifications then check for
        // nothing), never too low.
        h.lock_pins.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `at_node` is a fresh block of `NODE` bytes, 8-aligned,
        // that nobody else knows yet.
        unsafe {
            at::<PartNode>(at_node).write(PartNode {
                next: AtomicUsize::new(h.parts.load(Ordering::Acquire)),
                owner: AtomicU32::new(crate::sync::futex::current_pid()),
                lock_len: len,
                lock: addr,
                blocks: 0,
            });
        }
        debug_assert_eq!(size_of::<PartNode>(), NODE);
        h.parts.store(at_node, Ordering::Release);
        debug_assert_eq!(node(at_node).lock, addr);
        if alloc.gc_due() {
            self.collect(&h, &mut alloc);
        }
        drop(alloc);
        h.dirty.store(0, Ordering::Release);
        Ok(PinGuard {
            h: self.header(),
            root: addr,
            hold: PinHold::Part(at_node),
            home: Home::here(),
            _t: PhantomData,
        })
    }
}

#[cfg(test)]
#[path = "lock_pin_tests.rs"]
mod tests;
