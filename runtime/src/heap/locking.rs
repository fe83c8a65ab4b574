//! Taking a heap's lock: exclusively (recovering from a holder that died)
//! or shared, with the thread's record of the heaps it holds.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::guards::{enter, held, release, Exclusive, SharedHold, WriteLock};
use super::{left, Heap, HeapError, HeapHeader, DIRTY_ALLOC, DIRTY_DATA, HEAP_MAGIC, POISON_DIED};
use crate::sync::raw::{Acquired, LockError};
use crate::value::Shared;

impl<T: Shared> Heap<T> {
    /// Takes the heap's lock exclusively, recovering from a holder that
    /// died: if it died in the middle of a modification (`DIRTY_DATA`), the
    /// heap is poisoned; if it died while the allocator or the collector
    /// was at work (`DIRTY_ALLOC`), the values are whole and only the
    /// allocator's state needs rebuilding, which is done now when `repair`
    /// (and the heap is not poisoned). Otherwise the death is only counted.
    pub(super) fn acquire_write<'a>(
        &self,
        h: &'a HeapHeader,
        deadline: Option<Instant>,
        repair: bool,
    ) -> Result<WriteLock<'a>, HeapError> {
        self.acquire_write_entered(h, deadline, repair, false)
    }

    /// [`acquire_write`](Self::acquire_write); with `entered`, the caller
    /// has recorded the hold already ([`enter`]), and the lock returned
    /// releases it.
    pub(super) fn acquire_write_entered<'a>(
        &self,
        h: &'a HeapHeader,
        deadline: Option<Instant>,
        repair: bool,
        entered: bool,
    ) -> Result<WriteLock<'a>, HeapError> {
        let mut taken = None;
        for _ in 0..3 {
            match WriteLock::take(self.hdr, h, left(deadline), entered) {
                Ok((lock, Acquired::Clean)) => {
                    taken = Some(lock);
                    break;
                }
                Ok((lock, Acquired::OwnerDied)) => {
                    // What the dead holder was doing is cleared only once
                    // its consequence is recorded: a taker that dies here
                    // too leaves the same judgement to the next one.
                    match h.dirty.load(Ordering::Acquire) {
                        DIRTY_DATA => {
                            h.poisoned.store(POISON_DIED, Ordering::Release);
                            h.repair.store(1, Ordering::Release);
                        }
                        DIRTY_ALLOC => {
                            h.repair.store(1, Ordering::Release);
                            h.owner_deaths.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            h.owner_deaths.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    h.dirty.store(0, Ordering::Release);
                    // The heap's own flags say what state it is in; the
                    // lock itself is fine again.
                    let _ = h.lock.mark_consistent();
                    taken = Some(lock);
                    break;
                }
                Err(LockError::Poisoned) => {
                    // Only a writer that dies (readers are then refused)
                    // or an unlock without `mark_consistent` (never done
                    // here) poisons the lock; take it over.
                    h.lock.clear_poison();
                }
                Err(LockError::Timeout) => return Err(HeapError::Timeout),
                Err(e) => return Err(HeapError::Lock(e)),
            }
        }
        let Some(mut lock) = taken else {
            return Err(HeapError::Lock(LockError::Poisoned));
        };
        if repair
            && h.repair.load(Ordering::Acquire) != 0
            && h.poisoned.load(Ordering::Acquire) == 0
            && h.magic.load(Ordering::Acquire) == HEAP_MAGIC
        {
            self.repair_locked(&mut lock);
        }
        Ok(lock)
    }

    pub(super) fn lock_shared(
        &self,
        deadline: Option<Instant>,
    ) -> Result<SharedHold<'_>, HeapError> {
        if held(self.hdr) {
            return Err(HeapError::Reentrant);
        }
        self.lock_shared_entered(deadline)
    }

    /// [`lock_shared`](Self::lock_shared) once the caller has checked that
    /// this thread does not hold the heap.
    pub(super) fn lock_shared_entered(
        &self,
        deadline: Option<Instant>,
    ) -> Result<SharedHold<'_>, HeapError> {
        // The heap's state is checked once the lock is held (a destroyed
        // heap's header keeps a working lock: its page is a tombstone).
        let h = self.header();
        let mut tries = 0;
        let hold = loop {
            match SharedHold::take(h, left(deadline)) {
                Ok(hold) => break hold,
                Err(LockError::Poisoned) if tries < 3 => {
                    // A writer died: take the lock once to judge the heap
                    // (a repair is left to the next writer: readers need
                    // whole values, not the allocator's state).
                    tries += 1;
                    drop(self.acquire_write(h, deadline, false)?);
                }
                Err(LockError::Timeout) => return Err(HeapError::Timeout),
                Err(e) => return Err(HeapError::Lock(e)),
            }
        };
        // (An error releases the lock with `hold`.)
        self.check()?;
        Ok(hold)
    }

    pub(super) fn lock_exclusive(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Exclusive<'_>, HeapError> {
        self.lock_exclusive_in(deadline, true)
    }

    /// [`lock_exclusive`](Self::lock_exclusive), also inside a modification
    /// of another heap (for work that is no modification, as a read is
    /// not).
    pub(super) fn lock_exclusive_nested(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Exclusive<'_>, HeapError> {
        self.lock_exclusive_in(deadline, false)
    }

    pub(super) fn lock_exclusive_in(
        &self,
        deadline: Option<Instant>,
        outside_modification: bool,
    ) -> Result<Exclusive<'_>, HeapError> {
        // Checked before the lock too: the lock may repair the allocator's
        // state, which must not happen over a pool known to be cut short.
        let h = self.check()?;
        if !enter(self.hdr, outside_modification) {
            return Err(HeapError::Reentrant);
        }
        let lock = match self.acquire_write_entered(h, deadline, true, true) {
            Ok(lock) => lock,
            Err(e) => {
                release(self.hdr);
                return Err(e);
            }
        };
        // (An error releases the lock with `lock`.)
        self.check()?;
        // SAFETY: a holder that died or panicked with the allocator's state
        // in flux left `repair` set (or the heap poisoned), and
        // `acquire_write` has repaired it (a repair that finds damage
        // poisons the heap instead); `check` found the heap not poisoned:
        // the state is intact. Its chunks are pages of this heap's pool.
        Ok(unsafe { Exclusive::new(lock, &self.pool) })
    }
}
