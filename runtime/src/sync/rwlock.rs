//! [`RwLock`], which owns its data, and [`SRwLock`], its shared
//! representation.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::time::Duration;

use super::home::Home;
use super::raw::{Acquired, LockError, RawRwLock};

type NotSend = PhantomData<*const ()>;

/// A robust, process-shared reader/writer lock that owns its data, like
/// [`std::sync::RwLock`], on a [`RawRwLock`].
///
/// Any number of threads (of any processes; up to
/// [`READER_SLOTS`](super::raw::READER_SLOTS) at once) read, or one writes.
/// Writers are preferred: a waiting writer stops new readers. A reader that
/// dies does not block writers (its slot is reclaimed). When a writer dies
/// (or panics) holding the lock, readers get [`LockError::Poisoned`] until
/// the next writer, whose guard reports
/// [`owner_died`](RwLockWriteGuard::owner_died), repairs the data and calls
/// [`mark_consistent`](RwLockWriteGuard::mark_consistent); a write guard
/// dropped without it makes the lock not recoverable
/// ([`clear_poison`](RwLock::clear_poison) repairs).
///
/// Read locks are not recursive: a thread that reads twice while a writer
/// waits gets [`LockError::Deadlock`].
///
/// ```
/// use mc::sync::RwLock;
///
/// let l = RwLock::new(vec![1, 2]);
/// assert_eq!(l.read()?.len(), 2);
/// l.write()?.push(3);
/// assert_eq!(*l.read()?, [1, 2, 3]);
/// # Ok::<(), mc::sync::LockError>(())
/// ```
#[repr(C)]
pub struct RwLock<T: ?Sized> {
    raw: RawRwLock,
    data: UnsafeCell<T>,
}

// SAFETY: as `std::sync::RwLock`: sending the lock sends `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: readers share `&T` between threads (`T: Sync`), a writer gets
// `&mut T` on any thread (`T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        RwLock {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// The data, consuming the lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized> RwLock<T> {
    fn read_guard(&self) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard {
            lock: self,
            home: Home::here(),
            _not_send: PhantomData,
        }
    }

    fn write_guard(&self, a: Acquired) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard {
            lock: self,
            died: a.owner_died(),
            home: Home::here(),
            _not_send: PhantomData,
        }
    }

    /// Takes the lock shared, waiting as long as a live writer holds it.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, T>, LockError> {
        self.raw.read(None).map(|_| self.read_guard())
    }

    /// Takes the lock shared, waiting at most `timeout`.
    pub fn read_timeout(&self, timeout: Duration) -> Result<RwLockReadGuard<'_, T>, LockError> {
        self.raw.read(Some(timeout)).map(|_| self.read_guard())
    }

    /// Takes the lock shared if that needs no waiting.
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, LockError> {
        self.raw.try_read().map(|_| self.read_guard())
    }

    /// Takes the lock exclusively, waiting as long as live threads hold it.
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, T>, LockError> {
        self.raw.write(None).map(|a| self.write_guard(a))
    }

    /// Takes the lock exclusively, waiting at most `timeout`.
    pub fn write_timeout(&self, timeout: Duration) -> Result<RwLockWriteGuard<'_, T>, LockError> {
        self.raw.write(Some(timeout)).map(|a| self.write_guard(a))
    }

    /// Takes the lock exclusively if that needs no waiting.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, LockError> {
        self.raw.try_write().map(|a| self.write_guard(a))
    }

    /// Whether readers are refused (see [`RawRwLock::is_poisoned`]).
    pub fn is_poisoned(&self) -> bool {
        self.raw.is_poisoned()
    }

    /// Makes a poisoned lock usable again, declaring the data consistent.
    pub fn clear_poison(&self) -> bool {
        self.raw.clear_poison()
    }

    /// The data, through exclusive access to the lock (no locking).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The lock words. Not public: safe code could unlock them under a
    /// guard.
    pub(crate) fn raw(&self) -> &RawRwLock {
        &self.raw
    }

    pub(crate) fn data_ptr(&self) -> *mut T {
        self.data.get()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(e) => d.field("data", &format_args!("<{e}>")),
        };
        d.finish()
    }
}

/// Shared access to the data of an [`RwLock`]; unlocks when dropped.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    /// The process that holds the lock: a copy made by `fork` is inert.
    home: Home,
    _not_send: NotSend,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.home.check("RwLockReadGuard");
        // SAFETY: the guard holds the lock shared: nobody writes.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        if !self.home.is_here() {
            return;
        }
        let _ = self.lock.raw.unlock_read_checked();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to the data of an [`RwLock`]; unlocks when dropped.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    died: bool,
    /// The process that holds the lock: a copy made by `fork` is inert.
    home: Home,
    _not_send: NotSend,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T: ?Sized> RwLockWriteGuard<'_, T> {
    /// Whether the previous writer died (or panicked) holding the lock.
    pub fn owner_died(&self) -> bool {
        self.died
    }

    /// Declares the data consistent after [`owner_died`](Self::owner_died).
    pub fn mark_consistent(&mut self) {
        self.home.check("RwLockWriteGuard");
        let r = self.lock.raw.mark_consistent();
        debug_assert_eq!(r, Ok(()));
    }

    /// Releases the lock and makes it not recoverable.
    pub fn poison(self) {
        self.home.check("RwLockWriteGuard");
        let r = self.lock.raw.poison();
        debug_assert_eq!(r, Ok(()));
        std::mem::forget(self);
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.home.check("RwLockWriteGuard");
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.home.check("RwLockWriteGuard");
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        if !self.home.is_here() {
            return;
        }
        let _ = if std::thread::panicking() {
            self.lock.raw.abandon_write()
        } else {
            self.lock.raw.unlock_write_checked()
        };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

// ---------------------------------------------------------------------------

/// The shared representation of [`RwLock<T>`]: robust reader/writer lock
/// words followed by the data, inside a heap (or another shared region).
///
/// Read guards deref to the data; write guards also pin it for modification
/// ([`SRwLockWriteGuard::as_pin`]) and deref mutably when it is `Unpin`. See
/// [`SMutex`](super::SMutex) for `Send`/`Sync` and for how the collector
/// and the copier treat the lock.
#[repr(C)]
pub struct SRwLock<R> {
    raw: RawRwLock,
    data: UnsafeCell<R>,
}

// SAFETY: as `RwLock`: readers share `&R`, one writer gets `&mut R`.
unsafe impl<R: Send + Sync> Sync for SRwLock<R> {}

impl<R> SRwLock<R> {
    /// A fresh, unlocked lock around a representation.
    pub(crate) fn from_data(data: R) -> Self {
        SRwLock {
            raw: RawRwLock::new(),
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

    fn read_guard(&self) -> SRwLockReadGuard<'_, R> {
        SRwLockReadGuard {
            lock: self,
            home: Home::here(),
            _not_send: PhantomData,
        }
    }

    fn write_guard(&self, a: Acquired) -> SRwLockWriteGuard<'_, R> {
        SRwLockWriteGuard {
            lock: self,
            died: a.owner_died(),
            home: Home::here(),
            _not_send: PhantomData,
        }
    }

    /// Takes the lock shared (see [`RwLock::read`]).
    pub fn read(&self) -> Result<SRwLockReadGuard<'_, R>, LockError> {
        self.raw.read(None).map(|_| self.read_guard())
    }

    /// Takes the lock shared, waiting at most `timeout`.
    pub fn read_timeout(&self, timeout: Duration) -> Result<SRwLockReadGuard<'_, R>, LockError> {
        self.raw.read(Some(timeout)).map(|_| self.read_guard())
    }

    /// Takes the lock shared if that needs no waiting.
    pub fn try_read(&self) -> Result<SRwLockReadGuard<'_, R>, LockError> {
        self.raw.try_read().map(|_| self.read_guard())
    }

    /// Takes the lock exclusively (see [`RwLock::write`]).
    pub fn write(&self) -> Result<SRwLockWriteGuard<'_, R>, LockError> {
        self.raw.write(None).map(|a| self.write_guard(a))
    }

    /// Takes the lock exclusively, waiting at most `timeout`.
    pub fn write_timeout(&self, timeout: Duration) -> Result<SRwLockWriteGuard<'_, R>, LockError> {
        self.raw.write(Some(timeout)).map(|a| self.write_guard(a))
    }

    /// Takes the lock exclusively if that needs no waiting.
    pub fn try_write(&self) -> Result<SRwLockWriteGuard<'_, R>, LockError> {
        self.raw.try_write().map(|a| self.write_guard(a))
    }

    /// Whether readers are refused.
    pub fn is_poisoned(&self) -> bool {
        self.raw.is_poisoned()
    }

    /// Makes a poisoned lock usable again, declaring the data consistent.
    pub fn clear_poison(&self) -> bool {
        self.raw.clear_poison()
    }

    /// The lock words. Not public: safe code could unlock them under a
    /// guard.
    pub(crate) fn raw(&self) -> &RawRwLock {
        &self.raw
    }
}

impl<R: fmt::Debug> fmt::Debug for SRwLock<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SRwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(e) => d.field("data", &format_args!("<{e}>")),
        };
        d.finish()
    }
}

/// Shared access to the data of an [`SRwLock`].
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct SRwLockReadGuard<'a, R> {
    lock: &'a SRwLock<R>,
    /// The process that holds the lock: a copy made by `fork` is inert.
    home: Home,
    _not_send: NotSend,
}

// SAFETY: sharing the guard shares `&R`.
unsafe impl<R: Sync> Sync for SRwLockReadGuard<'_, R> {}

impl<R> Deref for SRwLockReadGuard<'_, R> {
    type Target = R;
    #[inline]
    fn deref(&self) -> &R {
        self.home.check("SRwLockReadGuard");
        // SAFETY: the guard holds the lock shared: nobody writes.
        unsafe { &*self.lock.data.get() }
    }
}

impl<R> Drop for SRwLockReadGuard<'_, R> {
    fn drop(&mut self) {
        if !self.home.is_here() {
            return;
        }
        let _ = self.lock.raw.unlock_read_checked();
    }
}

/// Exclusive access to the data of an [`SRwLock`].
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct SRwLockWriteGuard<'a, R> {
    lock: &'a SRwLock<R>,
    died: bool,
    /// The process that holds the lock: a copy made by `fork` is inert.
    home: Home,
    _not_send: NotSend,
}

// SAFETY: sharing the guard shares `&R`.
unsafe impl<R: Sync> Sync for SRwLockWriteGuard<'_, R> {}

impl<R> SRwLockWriteGuard<'_, R> {
    /// The data, pinned for modification in place.
    pub fn as_pin(&mut self) -> Pin<&mut R> {
        self.home.check("SRwLockWriteGuard");
        // SAFETY: the guard holds the lock exclusively; the data lives inside
        // the `SRwLock`, which only exists in target memory and never moves.
        unsafe { Pin::new_unchecked(&mut *self.lock.data.get()) }
    }

    /// Whether the previous writer died (or panicked) holding the lock.
    pub fn owner_died(&self) -> bool {
        self.died
    }

    /// Declares the data consistent after [`owner_died`](Self::owner_died).
    pub fn mark_consistent(&mut self) {
        self.home.check("SRwLockWriteGuard");
        let r = self.lock.raw.mark_consistent();
        debug_assert_eq!(r, Ok(()));
    }

    /// Releases the lock and makes it not recoverable.
    pub fn poison(self) {
        self.home.check("SRwLockWriteGuard");
        let r = self.lock.raw.poison();
        debug_assert_eq!(r, Ok(()));
        std::mem::forget(self);
    }
}

impl<R> Deref for SRwLockWriteGuard<'_, R> {
    type Target = R;
    #[inline]
    fn deref(&self) -> &R {
        self.home.check("SRwLockWriteGuard");
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &*self.lock.data.get() }
    }
}

impl<R: Unpin> DerefMut for SRwLockWriteGuard<'_, R> {
    #[inline]
    fn deref_mut(&mut self) -> &mut R {
        self.home.check("SRwLockWriteGuard");
        // SAFETY: the guard holds the lock exclusively; `R: Unpin`.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<R> Drop for SRwLockWriteGuard<'_, R> {
    fn drop(&mut self) {
        if !self.home.is_here() {
            return;
        }
        let _ = if std::thread::panicking() {
            self.lock.raw.abandon_write()
        } else {
            self.lock.raw.unlock_write_checked()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_panic_poisons_readers_until_repaired() {
        let l = RwLock::new(1u32);
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                let mut g = l.write().unwrap();
                *g = 2;
                panic!("half-way");
            })
            .join()
        });
        assert!(r.is_err());
        assert_eq!(l.read().err(), Some(LockError::Poisoned));
        assert!(l.is_poisoned());
        {
            let mut g = l.write().unwrap();
            assert!(g.owner_died());
            *g = 3;
            g.mark_consistent();
        }
        assert_eq!(*l.read().unwrap(), 3);
        assert_eq!(l.read_timeout(Duration::from_millis(1)).map(|g| *g), Ok(3));
        let g = l.try_write().unwrap();
        assert!(!g.owner_died());
        assert_eq!(l.try_read().err(), Some(LockError::Deadlock));
        drop(g);
        assert_eq!(format!("{l:?}"), "RwLock { data: 3 }");
    }

    #[test]
    fn srwlock_pins() {
        let s = SRwLock::from_data(1i64);
        *s.write().unwrap() += 1;
        *s.write_timeout(Duration::from_secs(1)).unwrap().as_pin() += 1;
        assert_eq!(*s.read().unwrap(), 3);
        let a = s.read().unwrap();
        std::thread::scope(|sc| {
            sc.spawn(|| assert_eq!(*s.try_read().unwrap(), 3));
        });
        assert_eq!(s.try_write().err(), Some(LockError::Deadlock));
        drop(a);
    }
}
