//! [`RwLock`], which owns its data, and [`SharedRwLock`], its shared
//! representation: both are a [`Lock`] on a [`RawRwLock`]; with
//! [`LockReadGuard`], their shared guard.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::time::Duration;

use super::home::Home;
use super::lock::{InPlace, Lock, LockGuard, NotSend, Owned, Placement};
use super::raw::{LockError, RawRwLock};

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
pub type RwLock<T> = Lock<RawRwLock, T, Owned>;

/// The shared representation of [`RwLock<T>`]: robust reader/writer lock
/// words followed by the data, inside a heap (or another shared region).
///
/// Read guards deref to the data; write guards also pin it for modification
/// ([`SharedRwLockWriteGuard::as_pin`]) and deref mutably when it is `Unpin`. See
/// [`SharedMutex`](super::SharedMutex) for `Send`/`Sync` and for how the collector
/// and the copier treat the lock.
pub type SharedRwLock<R> = Lock<RawRwLock, R, InPlace>;

/// Exclusive access to the data of an [`RwLock`]; unlocks when dropped (see
/// [`LockGuard`]).
pub type RwLockWriteGuard<'a, T> = LockGuard<'a, RawRwLock, T, Owned>;

/// Exclusive access to the data of a [`SharedRwLock`]; unlocks when dropped
/// (see [`LockGuard`]). Derefs mutably when the data is `Unpin`; otherwise
/// modify it through [`as_pin`](LockGuard::as_pin).
pub type SharedRwLockWriteGuard<'a, R> = LockGuard<'a, RawRwLock, R, InPlace>;

/// Shared access to the data of an [`RwLock`]; unlocks when dropped.
pub type RwLockReadGuard<'a, T> = LockReadGuard<'a, T, Owned>;

/// Shared access to the data of a [`SharedRwLock`]; unlocks when dropped.
pub type SharedRwLockReadGuard<'a, R> = LockReadGuard<'a, R, InPlace>;

impl<T: ?Sized, P: Placement> Lock<RawRwLock, T, P> {
    fn read_guard(&self) -> LockReadGuard<'_, T, P> {
        LockReadGuard {
            lock: self,
            home: Home::here(),
            _not_send: PhantomData,
        }
    }

    /// Takes the lock shared, waiting as long as a live writer holds it.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when a writer died and no writer has
    /// repaired the data yet; [`LockError::Deadlock`] when the calling
    /// thread holds the lock exclusively, or shared while a writer waits.
    pub fn read(&self) -> Result<LockReadGuard<'_, T, P>, LockError> {
        self.raw.read(None).map(|_| self.read_guard())
    }

    /// Takes the lock shared, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the timeout passes, and the errors of
    /// [`read`](Self::read).
    pub fn read_timeout(&self, timeout: Duration) -> Result<LockReadGuard<'_, T, P>, LockError> {
        self.raw.read(Some(timeout)).map(|_| self.read_guard())
    }

    /// Takes the lock shared if that needs no waiting.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when a live writer holds or awaits it, and
    /// the errors of [`read`](Self::read).
    pub fn try_read(&self) -> Result<LockReadGuard<'_, T, P>, LockError> {
        self.raw.try_read().map(|_| self.read_guard())
    }

    /// Takes the lock exclusively, waiting as long as live threads hold it.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when the lock is not recoverable;
    /// [`LockError::Deadlock`] when the calling thread holds it.
    pub fn write(&self) -> Result<LockGuard<'_, RawRwLock, T, P>, LockError> {
        self.raw.write(None).map(|a| self.guard(a))
    }

    /// Takes the lock exclusively, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the timeout passes, and the errors of
    /// [`write`](Self::write).
    pub fn write_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_, RawRwLock, T, P>, LockError> {
        self.raw.write(Some(timeout)).map(|a| self.guard(a))
    }

    /// Takes the lock exclusively if that needs no waiting.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when live threads hold it, and the errors
    /// of [`write`](Self::write).
    pub fn try_write(&self) -> Result<LockGuard<'_, RawRwLock, T, P>, LockError> {
        self.raw.try_write().map(|a| self.guard(a))
    }
}

impl<T: ?Sized + fmt::Debug, P: Placement> fmt::Debug for Lock<RawRwLock, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Self::fmt_held(f, self.try_read())
    }
}

/// Shared access to the data of a reader/writer [`Lock`]; unlocks when
/// dropped. The aliases [`RwLockReadGuard`] and [`SharedRwLockReadGuard`] name
/// it.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct LockReadGuard<'a, T: ?Sized, P: Placement> {
    lock: &'a Lock<RawRwLock, T, P>,
    /// The process that holds the lock: a copy made by `fork` is inert.
    home: Home,
    _not_send: NotSend,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync, P: Placement> Sync for LockReadGuard<'_, T, P> {}

impl<T: ?Sized, P: Placement> Deref for LockReadGuard<'_, T, P> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.home
            .check(["RwLockReadGuard", "SharedRwLockReadGuard"][P::INDEX]);
        // SAFETY: the guard holds the lock shared: nobody writes.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, P: Placement> Drop for LockReadGuard<'_, T, P> {
    fn drop(&mut self) {
        if !self.home.is_here() {
            return;
        }
        let _ = self.lock.raw.unlock_read_checked();
    }
}

impl<T: ?Sized + fmt::Debug, P: Placement> fmt::Debug for LockReadGuard<'_, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
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
        let s = SharedRwLock::from_data(1i64);
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
