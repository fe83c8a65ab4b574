//! The robust, error-checking process-shared mutex.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::super::futex::{self, current_tid, thread_alive, HolderWait, TID_MASK, WAITERS};
use super::lock::sealed::CopyHold;
use super::{Acquired, Found, LockError};

/// The holder took the lock over from a dead one and has not declared the
/// data consistent (also set, with no holder, after a holder panicked).
const INCONSISTENT: u32 = 1 << 30;
/// The owner field of a lock that is not recoverable (never a real TID).
const NOT_RECOVERABLE: u32 = TID_MASK;

crate::in_shared::in_shared! {
    /// A robust mutual-exclusion lock word usable from any process that maps
    /// it.
    ///
    /// # Lock word
    ///
    /// ```text
    ///  31        30             29 .. 0
    /// [WAITERS][INCONSISTENT][owner TID, 0 = free, 2^30-1 = not recoverable]
    /// ```
    ///
    /// Uncontended `lock` is one compare-and-swap (0 → TID); `unlock` is one
    /// load and one swap, plus a `FUTEX_WAKE` only when the waiters bit was
    /// set. A contended locker spins briefly, sets the waiters bit and sleeps on
    /// the shared futex in 10 ms slices; after each slice that ends with the
    /// same holder it checks whether that thread is alive and takes a dead
    /// holder's lock over with a CAS, returning [`Acquired::OwnerDied`].
    ///
    /// `unlock` is safe because a raw mutex protects no data of its own. A type
    /// that guards data with one (like [`Mutex`](crate::sync::Mutex)) must keep
    /// it private: safe code holding `&RawMutex` could release a lock a guard
    /// relies on.
    ///
    /// Errors are checked: locking a mutex the calling thread holds returns
    /// [`LockError::Deadlock`], unlocking one it does not hold returns
    /// [`LockError::NotOwner`]. Ownership is per thread (TID), so a lock must
    /// be released by the thread that took it.
    ///
    /// ```
    /// use mc::sync::raw::{Acquired, LockError, RawMutex};
    ///
    /// static M: RawMutex = RawMutex::new();
    /// assert_eq!(M.lock(), Ok(Acquired::Clean));
    /// assert_eq!(M.lock(), Err(LockError::Deadlock));
    /// assert_eq!(M.unlock(), Ok(()));
    /// assert_eq!(M.unlock(), Err(LockError::NotOwner));
    /// ```
    pub struct RawMutex {
        word: AtomicU32,
    }
}

impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.word.load(Ordering::Relaxed);
        f.debug_struct("RawMutex")
            .field("owner", &(w & TID_MASK))
            .field("inconsistent", &(w & INCONSISTENT != 0))
            .field("waiters", &(w & WAITERS != 0))
            .finish()
    }
}

impl RawMutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        RawMutex {
            word: AtomicU32::new(0),
        }
    }

    /// Takes the lock, waiting as long as it takes (but never for a dead
    /// holder).
    ///
    /// Returns [`Acquired::OwnerDied`] when the previous holder died or
    /// panicked holding it.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when the lock is not recoverable;
    /// [`LockError::Deadlock`] when this thread holds it.
    #[inline]
    pub fn lock(&self) -> Result<Acquired, LockError> {
        self.lock_within(None)
    }

    /// [`lock`](Self::lock), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the timeout passes, and the errors of
    /// [`lock`](Self::lock).
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Acquired, LockError> {
        self.lock_within(Some(timeout))
    }

    /// [`lock`](Self::lock), giving up after `timeout` if there is one.
    #[inline]
    pub(super) fn lock_within(&self, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        let tid = current_tid();
        if self
            .word
            .compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(Acquired::Clean);
        }
        self.lock_slow(tid, timeout)
    }

    /// Takes the lock if that needs no waiting. A taken lock costs a
    /// liveness check of its holder (a read of `/proc`).
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when a live thread holds it, and the errors of
    /// [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<Acquired, LockError> {
        let tid = current_tid();
        loop {
            let (w, owner) = match self.attempt(tid, 0)? {
                Found::Taken(a) => return Ok(a),
                Found::Held { w, owner } => (w, owner),
            };
            if thread_alive(owner) {
                return Err(LockError::WouldBlock);
            }
            if self.take_over(w, tid) {
                return Ok(Acquired::OwnerDied);
            }
        }
    }

    /// Reads the word until it is free, then takes it for `tid` with the
    /// `extra` bits, or until another thread holds it.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when the lock is not recoverable;
    /// [`LockError::Deadlock`] when `tid` holds it.
    #[inline]
    fn attempt(&self, tid: u32, extra: u32) -> Result<Found, LockError> {
        self.attempt_for(tid, extra, true)
    }

    /// [`attempt`](Self::attempt); a word held by `tid` is a deadlock when
    /// `own_is_deadlock` (a thread), held by someone else otherwise
    /// (another task under the process's holder id).
    #[inline]
    fn attempt_for(&self, tid: u32, extra: u32, own_is_deadlock: bool) -> Result<Found, LockError> {
        loop {
            let w = self.word.load(Ordering::Relaxed);
            let owner = w & TID_MASK;
            if owner == 0 {
                if let Some(a) = self.acquire_free(w, tid, extra) {
                    return Ok(Found::Taken(a));
                }
                continue;
            }
            if owner == NOT_RECOVERABLE {
                return Err(LockError::Poisoned);
            }
            if owner == tid && own_is_deadlock {
                return Err(LockError::Deadlock);
            }
            return Ok(Found::Held { w, owner });
        }
    }

    /// Acquires a free word `w` (owner 0), keeping its flags.
    #[inline]
    fn acquire_free(&self, w: u32, tid: u32, extra: u32) -> Option<Acquired> {
        let new = tid | (w & (WAITERS | INCONSISTENT)) | extra;
        self.word
            .compare_exchange(w, new, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(if w & INCONSISTENT != 0 {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        })
    }

    /// Replaces the dead holder recorded in `w` by `tid`.
    fn take_over(&self, w: u32, tid: u32) -> bool {
        let new = tid | INCONSISTENT | (w & WAITERS);
        self.word
            .compare_exchange(w, new, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[cold]
    fn lock_slow(&self, tid: u32, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        let mut wait = HolderWait::new(timeout);
        loop {
            let (w, owner) = match self.attempt(tid, wait.slept())? {
                Found::Taken(a) => return Ok(a),
                Found::Held { w, owner } => (w, owner),
            };
            // A dead holder is found only after a sleep: other sleepers may
            // exist, so the waiters bit stays.
            let took_over = wait.round(&self.word, w, owner, Ordering::Relaxed, |cur| {
                self.take_over(cur, tid | WAITERS)
                    .then_some(Acquired::OwnerDied)
            })?;
            if let Some(a) = took_over {
                return Ok(a);
            }
        }
    }

    /// The lock word (for a future's wait on it).
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// One attempt for the holder id `tid` of a future (see
    /// `parker::holder_tid`): takes a free word; a word held by `tid`
    /// itself is held by another task of this process, not a deadlock.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when the lock is not recoverable.
    pub(crate) fn attempt_as(&self, tid: u32) -> Result<Found, LockError> {
        self.attempt_for(tid, 0, false)
    }

    /// Sets the waiters bit on the word `w` (so that the holder's release
    /// wakes the word); the word with it, or `None` when the word changed
    /// meanwhile.
    pub(crate) fn with_waiters(&self, w: u32) -> Option<u32> {
        if w & WAITERS != 0 {
            return Some(w);
        }
        self.word
            .compare_exchange(w, w | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|_| w | WAITERS)
    }

    /// Takes the lock of the dead holder recorded in `w` for `tid`
    /// (keeping the waiters bit: others may wait).
    pub(crate) fn take_over_as(&self, w: u32, tid: u32) -> bool {
        self.take_over(w, tid | WAITERS)
    }

    /// [`unlock`](Self::unlock) for the holder id `tid`, from any thread.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when `tid` does not hold the lock.
    pub(crate) fn unlock_as(&self, tid: u32) -> Result<(), LockError> {
        let w = self.word.load(Ordering::Relaxed);
        if w & TID_MASK != tid {
            return Err(LockError::NotOwner);
        }
        self.release(if w & INCONSISTENT != 0 {
            NOT_RECOVERABLE
        } else {
            0
        });
        Ok(())
    }

    /// [`abandon`](Self::abandon) for the holder id `tid`.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when `tid` does not hold the lock.
    pub(crate) fn abandon_as(&self, tid: u32) -> Result<(), LockError> {
        if self.word.load(Ordering::Relaxed) & TID_MASK != tid {
            return Err(LockError::NotOwner);
        }
        self.release(INCONSISTENT);
        Ok(())
    }

    /// [`mark_consistent`](Self::mark_consistent) for the holder id `tid`.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when `tid` does not hold the lock.
    pub(crate) fn mark_consistent_as(&self, tid: u32) -> Result<(), LockError> {
        let w = self.word.load(Ordering::Relaxed);
        if w & TID_MASK != tid {
            return Err(LockError::NotOwner);
        }
        if w & INCONSISTENT != 0 {
            self.word.fetch_and(!INCONSISTENT, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Releases the lock.
    ///
    /// If this thread took the lock over from a dead holder
    /// ([`Acquired::OwnerDied`]) and did not call
    /// [`mark_consistent`](Self::mark_consistent), the lock becomes not
    /// recoverable: every later lock returns [`LockError::Poisoned`].
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when this thread does not hold the lock.
    #[inline]
    pub fn unlock(&self) -> Result<(), LockError> {
        let w = self.check_owner()?;
        let new = if w & INCONSISTENT != 0 {
            NOT_RECOVERABLE
        } else {
            0
        };
        self.release(new);
        Ok(())
    }

    /// The word, when the calling thread holds the lock.
    #[inline]
    fn check_owner(&self) -> Result<u32, LockError> {
        let w = self.word.load(Ordering::Relaxed);
        if w & TID_MASK != current_tid() {
            return Err(LockError::NotOwner);
        }
        Ok(w)
    }

    #[inline]
    fn release(&self, new: u32) {
        let prev = self.word.swap(new, Ordering::Release);
        if prev & WAITERS != 0 {
            // Everybody must learn about a poisoned (or inconsistent) lock;
            // a clean release hands over to one waiter.
            futex::wake(&self.word, if new == 0 { 1 } else { u32::MAX });
        }
    }

    /// Releases the lock and marks the data inconsistent: the next locker
    /// gets [`Acquired::OwnerDied`], as if this thread had died. Used when a
    /// critical section is abandoned half-way (a panic).
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when this thread does not hold the lock.
    pub fn abandon(&self) -> Result<(), LockError> {
        self.check_owner()?;
        self.release(INCONSISTENT);
        Ok(())
    }

    /// Releases the lock and makes it not recoverable at once.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when this thread does not hold the lock.
    pub fn poison(&self) -> Result<(), LockError> {
        self.check_owner()?;
        self.release(NOT_RECOVERABLE);
        Ok(())
    }

    /// Declares the protected data consistent again after
    /// [`Acquired::OwnerDied`]; a no-op when the lock was acquired cleanly.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when this thread does not hold the lock.
    pub fn mark_consistent(&self) -> Result<(), LockError> {
        let w = self.check_owner()?;
        if w & INCONSISTENT != 0 {
            self.word.fetch_and(!INCONSISTENT, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Takes the lock even when it is not recoverable, to copy the data
    /// out; release with [`release_copy`](Self::release_copy), which puts
    /// back the state found.
    pub(crate) fn lock_for_copy(&self) -> Result<CopyHold, LockError> {
        loop {
            match self.lock() {
                Ok(Acquired::Clean) => return Ok(CopyHold::Clean),
                Ok(Acquired::OwnerDied) => return Ok(CopyHold::Inconsistent),
                Err(LockError::Poisoned) => {
                    let w = self.word.load(Ordering::Relaxed);
                    let held = current_tid() | INCONSISTENT | (w & WAITERS);
                    if w & TID_MASK == NOT_RECOVERABLE
                        && self
                            .word
                            .compare_exchange(w, held, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                    {
                        return Ok(CopyHold::Poisoned);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Releases a hold from [`lock_for_copy`](Self::lock_for_copy).
    pub(crate) fn release_copy(&self, hold: CopyHold) {
        let r = match hold {
            CopyHold::Clean | CopyHold::Poisoned | CopyHold::Shared => self.unlock(),
            CopyHold::Inconsistent => self.abandon(),
        };
        debug_assert_eq!(r, Ok(()));
    }

    /// Whether the lock is not recoverable (see [`unlock`](Self::unlock)).
    pub fn is_poisoned(&self) -> bool {
        self.word.load(Ordering::Relaxed) & TID_MASK == NOT_RECOVERABLE
    }

    /// Makes a poisoned lock usable again (free and consistent): the repair
    /// of last resort, for whoever knows the data is fine. Also clears the
    /// "inconsistent" mark of a free lock whose last holder panicked.
    /// Returns whether there was anything to clear.
    pub fn clear_poison(&self) -> bool {
        loop {
            let w = self.word.load(Ordering::Relaxed);
            let owner = w & TID_MASK;
            let stale = owner == NOT_RECOVERABLE || (owner == 0 && w & INCONSISTENT != 0);
            if !stale {
                return false;
            }
            if self
                .word
                .compare_exchange(w, 0, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                futex::wake(&self.word, u32::MAX);
                return true;
            }
        }
    }

    /// Whether some thread holds the lock.
    pub fn is_locked(&self) -> bool {
        let owner = self.word.load(Ordering::Relaxed) & TID_MASK;
        owner != 0 && owner != NOT_RECOVERABLE
    }

    /// Whether the calling thread holds the lock.
    pub fn is_held_by_current_thread(&self) -> bool {
        self.word.load(Ordering::Relaxed) & TID_MASK == current_tid()
    }

    /// The TID of the holder, if any (diagnostics).
    pub fn owner(&self) -> Option<u32> {
        let owner = self.word.load(Ordering::Relaxed) & TID_MASK;
        (owner != 0 && owner != NOT_RECOVERABLE).then_some(owner)
    }

    /// Releases the lock whoever holds it, leaving it free and consistent.
    ///
    /// # Safety
    ///
    /// No thread may be relying on holding the lock: the caller must know
    /// the holder is gone or will never touch the protected data again.
    pub unsafe fn force_unlock(&self) {
        let prev = self.word.swap(0, Ordering::Release);
        if prev & WAITERS != 0 {
            futex::wake(&self.word, u32::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn errorcheck() {
        let m = RawMutex::new();
        assert_eq!(m.unlock(), Err(LockError::NotOwner));
        assert_eq!(m.lock(), Ok(Acquired::Clean));
        assert!(m.is_held_by_current_thread());
        assert_eq!(m.lock(), Err(LockError::Deadlock));
        assert_eq!(m.try_lock(), Err(LockError::Deadlock));
        assert_eq!(
            m.lock_timeout(Duration::from_millis(1)),
            Err(LockError::Deadlock)
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(m.unlock(), Err(LockError::NotOwner));
                assert_eq!(m.try_lock(), Err(LockError::WouldBlock));
            });
        });
        assert_eq!(m.unlock(), Ok(()));
        assert!(!m.is_locked());
    }

    #[test]
    fn counts_exactly_with_four_threads() {
        struct Shared {
            m: RawMutex,
            n: std::cell::UnsafeCell<u64>,
        }
        // SAFETY: `n` is only accessed under `m`.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared {
            m: RawMutex::new(),
            n: 0.into(),
        });
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        assert_eq!(s.m.lock(), Ok(Acquired::Clean));
                        // SAFETY: the lock is held.
                        unsafe { *s.n.get() += 1 };
                        s.m.unlock().unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // All threads joined: `s` is the last handle.
        let s = Arc::into_inner(s).unwrap();
        assert_eq!(s.n.into_inner(), 400_000);
    }

    #[test]
    fn timeout_is_honoured() {
        let m = RawMutex::new();
        m.lock().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let t = Instant::now();
                assert_eq!(
                    m.lock_timeout(Duration::from_millis(50)),
                    Err(LockError::Timeout)
                );
                let e = t.elapsed();
                assert!(
                    e >= Duration::from_millis(50) && e < Duration::from_secs(1),
                    "{e:?}"
                );
            });
        });
        m.unlock().unwrap();
    }

    #[test]
    fn dead_thread_holder_is_taken_over() {
        let m = RawMutex::new();
        // A thread that exits holding the lock: for the lock, it died.
        std::thread::scope(|s| {
            s.spawn(|| m.lock().unwrap());
        });
        let t = Instant::now();
        assert_eq!(m.lock(), Ok(Acquired::OwnerDied));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        // Unlocking without mark_consistent poisons.
        m.unlock().unwrap();
        assert!(m.is_poisoned());
        assert_eq!(m.lock(), Err(LockError::Poisoned));
        assert_eq!(m.try_lock(), Err(LockError::Poisoned));
        assert!(m.clear_poison());
        assert_eq!(m.lock(), Ok(Acquired::Clean));
        m.unlock().unwrap();

        // With mark_consistent the lock goes on cleanly.
        std::thread::scope(|s| {
            s.spawn(|| m.lock().unwrap());
        });
        assert_eq!(m.lock(), Ok(Acquired::OwnerDied));
        m.mark_consistent().unwrap();
        m.unlock().unwrap();
        assert_eq!(m.lock(), Ok(Acquired::Clean));
        m.unlock().unwrap();

        // A taker that dies before deciding hands OwnerDied on.
        std::thread::scope(|s| {
            s.spawn(|| m.lock().unwrap());
        });
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(m.lock(), Ok(Acquired::OwnerDied)));
        });
        assert_eq!(m.lock(), Ok(Acquired::OwnerDied));
        m.mark_consistent().unwrap();
        m.unlock().unwrap();
    }

    #[test]
    fn abandon_and_poison() {
        let m = RawMutex::new();
        m.lock().unwrap();
        m.abandon().unwrap();
        assert!(!m.is_poisoned());
        assert_eq!(m.lock(), Ok(Acquired::OwnerDied));
        m.poison().unwrap();
        assert_eq!(m.lock(), Err(LockError::Poisoned));
        assert_eq!(m.lock_for_copy(), Ok(CopyHold::Poisoned));
        m.release_copy(CopyHold::Poisoned);
        assert!(m.is_poisoned());
        assert!(m.clear_poison());
        assert!(!m.clear_poison());
        assert_eq!(m.lock(), Ok(Acquired::Clean));
        // SAFETY: this thread holds it and forgets about it.
        unsafe { m.force_unlock() };
        assert!(!m.is_locked());
    }

    #[test]
    fn waiters_are_woken_on_poison() {
        let m = RawMutex::new();
        std::thread::scope(|s| {
            s.spawn(|| m.lock().unwrap());
        });
        assert_eq!(m.lock(), Ok(Acquired::OwnerDied));
        std::thread::scope(|s| {
            let h = s.spawn(|| m.lock_timeout(Duration::from_secs(5)));
            std::thread::sleep(Duration::from_millis(30));
            m.unlock().unwrap();
            assert_eq!(h.join().unwrap(), Err(LockError::Poisoned));
        });
    }
}
