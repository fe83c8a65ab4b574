//! [`Mutex`], which owns its data, and [`SMutex`], its shared representation.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::time::Duration;

use super::home::Home;
use super::raw::{Acquired, LockError, RawMutex};

/// Makes guards `!Send`: a lock is released by the thread that took it.
type NotSend = PhantomData<*const ()>;

const GUARD: &str = "MutexGuard";
const SGUARD: &str = "SMutexGuard";

/// A robust, process-shared mutual-exclusion lock that owns its data, like
/// [`std::sync::Mutex`].
///
/// The lock is a [`RawMutex`] word next to the data (`#[repr(C)]`), so a
/// `Mutex<T>` works wherever several processes map the same memory: place
/// one in a `MAP_SHARED` mapping before `fork`, or make it a field of a
/// shared value (copying a `Mutex` into a heap makes a fresh, unlocked
/// [`SMutex`]). For cross-process use `T` must not hold process-local
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
#[repr(C)]
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex gives access to `T` to one thread at a time, so it may
// be sent and shared when `T` may be sent (as `std::sync::Mutex`).
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Mutex {
            raw: RawMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// The data, consuming the mutex (whatever its lock state).
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized> Mutex<T> {
    fn guard(&self, acquired: Acquired) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            died: acquired.owner_died(),
            home: Home::here(),
            _not_send: PhantomData,
        }
    }

    /// Takes the lock, waiting as long as a live thread holds it.
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, LockError> {
        self.raw.lock().map(|a| self.guard(a))
    }

    /// Takes the lock if no live thread holds it
    /// ([`LockError::WouldBlock`] otherwise).
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, LockError> {
        self.raw.try_lock().map(|a| self.guard(a))
    }

    /// Takes the lock, waiting at most `timeout` ([`LockError::Timeout`]).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_, T>, LockError> {
        self.raw.lock_timeout(timeout).map(|a| self.guard(a))
    }

    /// Whether the lock is poisoned: lockers get [`LockError::Poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.raw.is_poisoned()
    }

    /// Makes a poisoned lock usable again, declaring the data consistent.
    /// Returns whether it was poisoned (or marked inconsistent).
    pub fn clear_poison(&self) -> bool {
        self.raw.clear_poison()
    }

    /// The data, through exclusive access to the mutex (no locking).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The lock word. Not public: safe code could unlock it under a guard.
    pub(crate) fn raw(&self) -> &RawMutex {
        &self.raw
    }

    pub(crate) fn data_ptr(&self) -> *mut T {
        self.data.get()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(e) => d.field("data", &format_args!("<{e}>")),
        };
        d.finish()
    }
}

/// Access to the data of a locked [`Mutex`]; unlocks when dropped.
///
/// `!Send`: the lock belongs to the thread that took it.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    died: bool,
    /// The process that holds the lock: a copy made by `fork` is inert.
    home: Home,
    _not_send: NotSend,
}

// SAFETY: sharing the guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T: ?Sized> MutexGuard<'_, T> {
    /// Whether the previous holder died (or panicked) holding the lock: the
    /// data may be inconsistent.
    pub fn owner_died(&self) -> bool {
        self.died
    }

    /// Declares the data consistent after [`owner_died`](Self::owner_died)
    /// (no-op otherwise). Without it, releasing the lock poisons it.
    pub fn mark_consistent(&mut self) {
        self.home.check(GUARD);
        let r = self.mutex.raw.mark_consistent();
        debug_assert_eq!(r, Ok(()));
    }

    /// Releases the lock and makes it not recoverable (the data is beyond
    /// repair): every later lock returns [`LockError::Poisoned`].
    pub fn poison(self) {
        self.home.check(GUARD);
        let r = self.mutex.raw.poison();
        debug_assert_eq!(r, Ok(()));
        std::mem::forget(self);
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.home.check(GUARD);
        // SAFETY: the guard holds the lock: no other access exists.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.home.check(GUARD);
        // SAFETY: the guard holds the lock: no other access exists.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if !self.home.is_here() {
            // A copy made by `fork`: the lock belongs to the process that
            // took it.
            return;
        }
        let _ = if std::thread::panicking() {
            self.mutex.raw.abandon()
        } else {
            self.mutex.raw.unlock()
        };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

// ---------------------------------------------------------------------------

/// The shared representation of [`Mutex<T>`]: a robust lock word followed by
/// the data, inside a heap (or another shared region).
///
/// Lock it through a shared reference (e.g. from a heap read guard):
/// [`SMutex::lock`] gives a guard that derefs to the data and pins it for
/// modification ([`SMutexGuard::as_pin`]); it also derefs mutably when the
/// data is `Unpin` (numbers, plain structs):
///
/// ```
/// use mc::sync::{LockError, SMutex};
///
/// // `counter` is a field of a value read in place from a heap.
/// fn bump(counter: &SMutex<u64>) -> Result<u64, LockError> {
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
/// `SMutex<R>` is `Sync` when `R: Send`: threads of one process may share it
/// like any mutex. Pointer-carrying representations are neither `Send` nor
/// `Sync`, and so is an `SMutex` holding one: such data is reached only
/// through the guards of the heap that holds it.
///
/// The garbage collector traces the data without taking this lock (it runs
/// while the heap is held exclusively, when no guard of any `SMutex` in it
/// can exist); copying a value out ([`Shared::from_repr`](crate::Shared::from_repr))
/// takes it.
#[repr(C)]
pub struct SMutex<R> {
    raw: RawMutex,
    data: UnsafeCell<R>,
}

// SAFETY: one thread at a time gets access to `R`, which may be sent.
unsafe impl<R: Send> Sync for SMutex<R> {}

impl<R> SMutex<R> {
    /// A fresh, unlocked lock around a representation (only meaningful once
    /// written to its target memory).
    pub(crate) fn from_data(data: R) -> Self {
        SMutex {
            raw: RawMutex::new(),
            data: UnsafeCell::new(data),
        }
    }

    /// The data without locking (for the GC and the validator).
    pub(crate) fn data_ptr(&self) -> *mut R {
        self.data.get()
    }

    /// Where the data of the (possibly invalid) lock at `this` lies.
    pub(crate) fn data_addr(this: *const Self) -> *const R {
        // SAFETY: only computes a field address inside the same allocation.
        unsafe { std::ptr::addr_of!((*this).data).cast() }
    }

    fn guard(&self, acquired: Acquired) -> SMutexGuard<'_, R> {
        SMutexGuard {
            mutex: self,
            died: acquired.owner_died(),
            home: Home::here(),
            _not_send: PhantomData,
        }
    }

    /// Takes the lock, waiting as long as a live thread holds it (see
    /// [`Mutex::lock`]).
    pub fn lock(&self) -> Result<SMutexGuard<'_, R>, LockError> {
        self.raw.lock().map(|a| self.guard(a))
    }

    /// Takes the lock if no live thread holds it.
    pub fn try_lock(&self) -> Result<SMutexGuard<'_, R>, LockError> {
        self.raw.try_lock().map(|a| self.guard(a))
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<SMutexGuard<'_, R>, LockError> {
        self.raw.lock_timeout(timeout).map(|a| self.guard(a))
    }

    /// Whether the lock is poisoned.
    pub fn is_poisoned(&self) -> bool {
        self.raw.is_poisoned()
    }

    /// Makes a poisoned lock usable again, declaring the data consistent.
    pub fn clear_poison(&self) -> bool {
        self.raw.clear_poison()
    }

    /// The lock word. Not public: safe code could unlock it under a guard.
    pub(crate) fn raw(&self) -> &RawMutex {
        &self.raw
    }
}

impl<R: fmt::Debug> fmt::Debug for SMutex<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SMutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(e) => d.field("data", &format_args!("<{e}>")),
        };
        d.finish()
    }
}

/// Access to the data of a locked [`SMutex`]; unlocks when dropped.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct SMutexGuard<'a, R> {
    mutex: &'a SMutex<R>,
    died: bool,
    /// The process that holds the lock: a copy made by `fork` is inert.
    home: Home,
    _not_send: NotSend,
}

// SAFETY: sharing the guard only shares `&R`.
unsafe impl<R: Sync> Sync for SMutexGuard<'_, R> {}

impl<R> SMutexGuard<'_, R> {
    /// The data, pinned for modification in place.
    pub fn as_pin(&mut self) -> Pin<&mut R> {
        self.home.check(SGUARD);
        // SAFETY: the guard holds the lock, so this is the only access; the
        // data lives inside the `SMutex`, which only exists in target memory
        // (it has no public constructor) and is never moved from there.
        unsafe { Pin::new_unchecked(&mut *self.mutex.data.get()) }
    }

    /// Whether the previous holder died (or panicked) holding the lock.
    pub fn owner_died(&self) -> bool {
        self.died
    }

    /// Declares the data consistent after [`owner_died`](Self::owner_died).
    pub fn mark_consistent(&mut self) {
        self.home.check(SGUARD);
        let r = self.mutex.raw.mark_consistent();
        debug_assert_eq!(r, Ok(()));
    }

    /// Releases the lock and makes it not recoverable.
    pub fn poison(self) {
        self.home.check(SGUARD);
        let r = self.mutex.raw.poison();
        debug_assert_eq!(r, Ok(()));
        std::mem::forget(self);
    }
}

impl<R> Deref for SMutexGuard<'_, R> {
    type Target = R;
    #[inline]
    fn deref(&self) -> &R {
        self.home.check(SGUARD);
        // SAFETY: the guard holds the lock: no other access exists.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<R: Unpin> DerefMut for SMutexGuard<'_, R> {
    #[inline]
    fn deref_mut(&mut self) -> &mut R {
        self.home.check(SGUARD);
        // SAFETY: the guard holds the lock; `R: Unpin` may be moved.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<R> Drop for SMutexGuard<'_, R> {
    fn drop(&mut self) {
        if !self.home.is_here() {
            return;
        }
        let _ = if std::thread::panicking() {
            self.mutex.raw.abandon()
        } else {
            self.mutex.raw.unlock()
        };
    }
}

impl<R: fmt::Debug> fmt::Debug for SMutexGuard<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Guards that a [`Condvar`](super::Condvar) can wait with:
/// [`MutexGuard`] and [`SMutexGuard`] (sealed).
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
    /// Proof of being inside this crate.
    pub struct Token(pub(crate) ());
    pub trait Sealed {}
    impl<T: ?Sized> Sealed for super::MutexGuard<'_, T> {}
    impl<R> Sealed for super::SMutexGuard<'_, R> {}
}

impl<T: ?Sized> CondvarGuard for MutexGuard<'_, T> {
    fn raw_mutex(&self, _: sealed::Token) -> &RawMutex {
        self.home.check(GUARD);
        &self.mutex.raw
    }
    fn set_owner_died(&mut self, died: bool, _: sealed::Token) {
        self.died = died;
    }
}

impl<R> CondvarGuard for SMutexGuard<'_, R> {
    fn raw_mutex(&self, _: sealed::Token) -> &RawMutex {
        self.home.check(SGUARD);
        &self.mutex.raw
    }
    fn set_owner_died(&mut self, died: bool, _: sealed::Token) {
        self.died = died;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
        assert_eq!(
            format!("{m:?}"),
            "Mutex { data: <the lock is poisoned: a holder died> }"
        );
    }

    #[test]
    fn smutex_pins_and_derefs() {
        let s = SMutex::from_data(7u64);
        {
            let mut g = s.lock().unwrap();
            *g += 1;
            *g.as_pin() += 1;
        }
        assert_eq!(*s.lock().unwrap(), 9);
        assert_eq!(format!("{s:?}"), "SMutex { data: 9 }");
    }
}
