//! [`Mutex`], which owns its data, and [`SharedMutex`], its shared representation:
//! both are a [`Lock`] on a [`RawMutex`].

use std::fmt;
use std::time::Duration;

use super::lock::{InPlace, Lock, LockGuard, Owned, Placement};
use super::raw::{LockError, RawMutex};

/// A robust, process-shared mutual-exclusion lock that owns its data, like
/// [`std::sync::Mutex`].
///
/// The lock is a [`RawMutex`] word next to the data (`#[repr(C)]`), so a
/// `Mutex<T>` works wherever several processes map the same memory: place
/// one in a `MAP_SHARED` mapping before `fork`, or make it a field of a
/// shared value (copying a `Mutex` into a heap makes a fresh, unlocked
/// [`SharedMutex`]). For cross-process use `T` must not hold process-local
/// pointers (numbers, arrays, `#[repr(C)]` plain structs); in heaps, the
/// [`Shared`](crate::Shared) machinery takes care of that.
///
/// [`lock`](Mutex::lock) returns a guard, or an error:
/// [`LockError::Poisoned`] (a holder died and the data was never declared
/// consistent) or [`LockError::Deadlock`] (this thread holds the lock
/// already). When the previous holder died (a killed process) or panicked
/// while holding the lock, the guard reports it:
/// [`owner_died`](MutexGuard::owner_died) is `true`. Repair the data and call
/// [`mark_consistent`](MutexGuard::mark_consistent); a guard dropped without
/// it leaves the lock poisoned. A guard dropped while its thread panics
/// leaves the data marked inconsistent: the next locker sees `owner_died`.
///
/// ```
/// use mc::sync::Mutex;
///
/// let m = Mutex::new(0u64);
/// {
///     let mut g = m.lock()?;
///     if g.owner_died() {
///         // The previous holder died half-way: repair, then say so.
///         *g = 0;
///         g.mark_consistent();
///     }
///     *g += 1;
/// }
/// assert_eq!(*m.lock()?, 1);
/// # Ok::<(), mc::sync::LockError>(())
/// ```
///
/// The lock word is not reachable from safe code (its safe `unlock` could
/// otherwise release the lock under a live guard):
///
/// ```compile_fail
/// let m = mc::sync::Mutex::new(0u64);
/// let _g = m.lock().unwrap();
/// m.raw().unlock().unwrap();
/// ```
pub type Mutex<T> = Lock<RawMutex, T, Owned>;

/// The shared representation of [`Mutex<T>`]: a robust lock word followed by
/// the data, inside a heap (or another shared region).
///
/// Lock it through a shared reference (e.g. from a heap read guard):
/// [`SharedMutex::lock`] gives a guard that derefs to the data and pins it for
/// modification ([`SharedMutexGuard::as_pin`]); it also derefs mutably when the
/// data is `Unpin` (numbers, plain structs):
///
/// ```
/// use mc::sync::{LockError, SharedMutex};
///
/// // `counter` is a field of a value read in place from a heap.
/// fn bump(counter: &SharedMutex<u64>) -> Result<u64, LockError> {
///     let mut g = counter.lock()?;
///     g.mark_consistent(); // a counter is consistent even after a crash
///     *g += 1;
///     Ok(*g)
/// }
/// ```
///
/// Data that carries pointers into the heap is `!Unpin`: it can be modified
/// in place through `Pin<&mut R>` projections, never moved out.
///
/// `SharedMutex<R>` is `Sync` when `R: Send`: threads of one process may share it
/// like any mutex. Pointer-carrying representations are neither `Send` nor
/// `Sync`, and so is a `SharedMutex` holding one: such data is reached only
/// through the guards of the heap that holds it.
///
/// The garbage collector traces the data without taking this lock (it runs
/// while the heap is held exclusively, when no guard of any `SharedMutex` in it
/// can exist); copying a value out ([`Shared::from_repr`](crate::Shared::from_repr))
/// takes it.
pub type SharedMutex<R> = Lock<RawMutex, R, InPlace>;

/// Access to the data of a locked [`Mutex`]; unlocks when dropped (see
/// [`LockGuard`]).
pub type MutexGuard<'a, T> = LockGuard<'a, RawMutex, T, Owned>;

/// Access to the data of a locked [`SharedMutex`]; unlocks when dropped (see
/// [`LockGuard`]). Derefs mutably when the data is `Unpin`; otherwise
/// modify it through [`as_pin`](LockGuard::as_pin).
pub type SharedMutexGuard<'a, R> = LockGuard<'a, RawMutex, R, InPlace>;

impl<T: ?Sized, P: Placement> Lock<RawMutex, T, P> {
    /// Takes the lock, waiting as long as a live thread holds it.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when a holder died and nobody declared the
    /// data consistent; [`LockError::Deadlock`] when the calling thread
    /// holds the lock.
    pub fn lock(&self) -> Result<LockGuard<'_, RawMutex, T, P>, LockError> {
        self.raw.lock().map(|a| self.guard(a))
    }

    /// Takes the lock if no live thread holds it.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when a live thread holds it, and the
    /// errors of [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<LockGuard<'_, RawMutex, T, P>, LockError> {
        self.raw.try_lock().map(|a| self.guard(a))
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the timeout passes, and the errors of
    /// [`lock`](Self::lock).
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_, RawMutex, T, P>, LockError> {
        self.raw.lock_timeout(timeout).map(|a| self.guard(a))
    }
}

impl<T: ?Sized + fmt::Debug, P: Placement> fmt::Debug for Lock<RawMutex, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Self::fmt_held(f, self.try_lock())
    }
}

/// Guards that a [`Condvar`](super::Condvar) can wait with:
/// [`MutexGuard`] and [`SharedMutexGuard`] (sealed).
pub trait CondvarGuard: sealed::Sealed {
    /// The guard's lock word. The token, which only this crate can make,
    /// keeps safe code from reaching the word (and unlocking it under the
    /// guard).
    #[doc(hidden)]
    fn raw_mutex(&self, token: sealed::Token) -> &RawMutex;
    /// Records how the lock was re-acquired after a wait.
    #[doc(hidden)]
    fn set_owner_died(&mut self, died: bool, token: sealed::Token);
}

pub(crate) mod sealed {
    pub use crate::sync::raw::sealed::Token;
    pub trait Sealed {}
    impl<T: ?Sized, P: super::Placement> Sealed for super::LockGuard<'_, super::RawMutex, T, P> {}
}

impl<T: ?Sized, P: Placement> CondvarGuard for LockGuard<'_, RawMutex, T, P> {
    fn raw_mutex(&self, _: sealed::Token) -> &RawMutex {
        self.raw_lock()
    }
    fn set_owner_died(&mut self, died: bool, _: sealed::Token) {
        LockGuard::set_owner_died(self, died);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Locks `m` and poisons it again.
    fn poison_again(m: &Mutex<u32>) {
        m.lock().unwrap().poison();
    }

    #[test]
    fn counts_exactly_with_four_threads() {
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        *m.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock().unwrap(), 400_000);
    }

    #[test]
    fn panic_marks_inconsistent_and_ignoring_it_poisons() {
        let m = Mutex::new(vec![1, 2, 3]);
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                let mut g = m.lock().unwrap();
                g.push(4);
                panic!("half-way");
            })
            .join()
        });
        assert!(r.is_err());
        {
            let g = m.lock().unwrap();
            assert!(g.owner_died());
            assert_eq!(*g, [1, 2, 3, 4]);
            // dropped without mark_consistent
        }
        assert!(m.is_poisoned());
        assert_eq!(m.lock().err(), Some(LockError::Poisoned));
        assert!(m.clear_poison());
        let mut g = m.lock().unwrap();
        assert!(!g.owner_died());
        g.pop();
        drop(g);
        assert_eq!(m.lock_timeout(Duration::from_millis(1)).unwrap().len(), 3);
    }

    #[test]
    fn repair_after_a_dead_holder() {
        let m = Mutex::new(5u32);
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(m.lock().unwrap()));
        });
        let mut g = m.lock().unwrap();
        assert!(g.owner_died());
        *g = 0;
        g.mark_consistent();
        drop(g);
        let g = m.lock().unwrap();
        assert!(!g.owner_died());
        assert_eq!(m.try_lock().err(), Some(LockError::Deadlock));
        g.poison();
        assert_eq!(m.lock().err(), Some(LockError::Poisoned));
        // The message says what to do.
        let text = LockError::Poisoned.to_string();
        assert!(text.contains("clear_poison()") && text.contains("mark_consistent()"));
        assert!(m.clear_poison());
        assert_eq!(*m.lock().unwrap(), 0);
        poison_again(&m);
        assert_eq!(format!("{m:?}"), "Mutex { data: <Poisoned> }");
    }

    #[test]
    fn smutex_pins_and_derefs() {
        let s = SharedMutex::from_data(7u64);
        {
            let mut g = s.lock().unwrap();
            *g += 1;
            *g.as_pin() += 1;
        }
        assert_eq!(*s.lock().unwrap(), 9);
        assert_eq!(format!("{s:?}"), "SharedMutex { data: 9 }");
    }
}
