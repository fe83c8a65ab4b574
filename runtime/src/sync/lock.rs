//! [`Lock`]: one robust lock that owns its data, generic over the raw lock
//! ([`RawMutex`](super::raw::RawMutex) or [`RawRwLock`](super::raw::RawRwLock))
//! and over where the data lives ([`Owned`] or [`InPlace`]), with
//! [`LockGuard`], its exclusive guard.
//!
//! The public names are aliases of these: [`Mutex`](super::Mutex),
//! [`SharedMutex`](super::SharedMutex), [`RwLock`](super::RwLock),
//! [`SharedRwLock`](super::SharedRwLock) and their guards.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;

use super::home::Home;
use super::raw::{Acquired, LockError, RawLock};

/// Makes guards `!Send`: a lock is released by the thread that took it.
pub(super) type NotSend = PhantomData<*const ()>;

/// Where the data of a [`Lock`] lives; sealed.
pub trait Placement: placement::Sealed + 'static {
    /// 0 for [`Owned`], 1 for [`InPlace`] (indexes names for messages).
    #[doc(hidden)]
    const INDEX: usize;
}

/// The data is an ordinary value: the lock can be made, moved and consumed
/// like `std`'s ([`Mutex`](super::Mutex), [`RwLock`](super::RwLock)).
#[derive(Debug)]
pub enum Owned {}

/// The data is a shared representation that lives in a heap (or another
/// shared region) and never moves: it is reached in place, pinned for
/// modification ([`SharedMutex`](super::SharedMutex), [`SharedRwLock`](super::SharedRwLock)).
///
/// `!Unpin` (so is every lock in place): a lock that a process may hold
/// pinned ([`Heap::pin_lock`](crate::Heap::pin_lock)) is never moved or
/// replaced through a `Pin<&mut _>`.
#[derive(Debug)]
pub struct InPlace {
    _pin: std::marker::PhantomPinned,
    _never: std::convert::Infallible,
}

impl Placement for Owned {
    const INDEX: usize = 0;
}

impl Placement for InPlace {
    const INDEX: usize = 1;
}

mod placement {
    pub trait Sealed {}
    impl Sealed for super::Owned {}
    impl Sealed for super::InPlace {}
}

/// A robust, process-shared lock word `L` next to the data `T`
/// (`#[repr(C)]`), whose data lives as `P` says.
///
/// Use it through its aliases: [`Mutex`](super::Mutex) and
/// [`RwLock`](super::RwLock) own their data; [`SharedMutex`](super::SharedMutex) and
/// [`SharedRwLock`](super::SharedRwLock) are their shared representations inside
/// heaps. The locking methods of each raw lock are on the aliases' pages.
#[repr(C)]
pub struct Lock<L, T: ?Sized, P> {
    pub(super) raw: L,
    place: PhantomData<P>,
    pub(super) data: UnsafeCell<T>,
}

// SAFETY: a mutex gives access to `T` to one thread at a time, so it may be
// shared when `T` may be sent (as `std::sync::Mutex`). Sending the lock
// sends `T` (the auto trait through `UnsafeCell<T>`).
unsafe impl<T: ?Sized + Send, P> Sync for Lock<super::raw::RawMutex, T, P> {}
// SAFETY: readers of a reader/writer lock share `&T` between threads
// (`T: Sync`), a writer gets `&mut T` on any thread (`T: Send`), as
// `std::sync::RwLock`.
unsafe impl<T: ?Sized + Send + Sync, P> Sync for Lock<super::raw::RawRwLock, T, P> {}

impl<L: RawLock, T> Lock<L, T, Owned> {
    /// An unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        Lock {
            raw: L::INIT,
            place: PhantomData,
            data: UnsafeCell::new(value),
        }
    }

    /// The data, consuming the lock (whatever its lock state).
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<L: RawLock, T: Default> Default for Lock<L, T, Owned> {
    fn default() -> Self {
        Lock::new(T::default())
    }
}

impl<L: RawLock, T> From<T> for Lock<L, T, Owned> {
    fn from(value: T) -> Self {
        Lock::new(value)
    }
}

impl<L: RawLock, T: ?Sized> Lock<L, T, Owned> {
    /// The data, through exclusive access to the lock (no locking).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<L: RawLock, R> Lock<L, R, InPlace> {
    /// A fresh, unlocked lock around a representation (only meaningful once
    /// written to its target memory).
    pub(crate) fn from_data(data: R) -> Self {
        Lock {
            raw: L::INIT,
            place: PhantomData,
            data: UnsafeCell::new(data),
        }
    }

    /// Where the data of the (possibly invalid) lock at `this` lies.
    pub(crate) fn data_addr(this: *const Self) -> *const R {
        // `UnsafeCell<R>` is laid out as `R`.
        this.wrapping_byte_add(std::mem::offset_of!(Self, data))
            .cast::<R>()
    }
}

impl<L: RawLock, T: ?Sized, P: Placement> Lock<L, T, P> {
    /// Whether the lock is poisoned: lockers (and, for a reader/writer
    /// lock, readers) get [`LockError::Poisoned`](super::LockError::Poisoned).
    pub fn is_poisoned(&self) -> bool {
        self.raw.is_poisoned()
    }

    /// Makes a poisoned lock usable again, declaring the data consistent.
    /// Returns whether it was poisoned (or marked inconsistent).
    pub fn clear_poison(&self) -> bool {
        self.raw.clear_poison()
    }

    /// The lock word. Not public: safe code could unlock it under a guard.
    pub(crate) fn raw(&self) -> &L {
        &self.raw
    }

    /// The data without locking (for copying, the GC and the validator).
    pub(crate) fn data_ptr(&self) -> *mut T {
        self.data.get()
    }

    /// The name of this lock type, for messages.
    pub(super) fn name() -> &'static str {
        L::NAMES.lock[P::INDEX]
    }

    /// An exclusive guard for a hold acquired as `acquired`.
    pub(super) fn guard(&self, acquired: Acquired) -> LockGuard<'_, L, T, P> {
        LockGuard {
            lock: self,
            died: acquired.owner_died(),
            home: Home::here(),
            _not_send: PhantomData,
        }
    }

    /// Formats the lock as its name with the data seen through `held` (a
    /// guard taken without waiting), or the error that kept it from being
    /// taken.
    pub(super) fn fmt_held<G: Deref<Target = T>>(
        f: &mut fmt::Formatter<'_>,
        held: Result<G, LockError>,
    ) -> fmt::Result
    where
        T: fmt::Debug,
    {
        let mut d = f.debug_struct(Self::name());
        match held {
            Ok(g) => d.field("data", &&*g),
            Err(e) => d.field("data", &format_args!("<{e:?}>")),
        };
        d.finish()
    }
}

/// Exclusive access to the data of a locked [`Lock`]; releases when dropped.
///
/// The aliases [`MutexGuard`](super::MutexGuard),
/// [`SharedMutexGuard`](super::SharedMutexGuard),
/// [`RwLockWriteGuard`](super::RwLockWriteGuard) and
/// [`SharedRwLockWriteGuard`](super::SharedRwLockWriteGuard) name it. `!Send`: the
/// lock belongs to the thread that took it. A guard dropped while its thread
/// panics leaves the data marked inconsistent: the next locker sees
/// [`owner_died`](LockGuard::owner_died).
///
/// Owned data derefs mutably; data in place derefs mutably when it is
/// `Unpin` and is otherwise modified through [`as_pin`](LockGuard::as_pin).
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct LockGuard<'a, L: RawLock, T: ?Sized, P: Placement> {
    lock: &'a Lock<L, T, P>,
    died: bool,
    /// The process that holds the lock: a copy made by `fork` is inert.
    home: Home,
    _not_send: NotSend,
}

// SAFETY: sharing the guard only shares `&T`.
unsafe impl<L: RawLock, T: ?Sized + Sync, P: Placement> Sync for LockGuard<'_, L, T, P> {}

impl<L: RawLock, T: ?Sized, P: Placement> LockGuard<'_, L, T, P> {
    #[inline]
    fn check(&self) {
        self.home.check(L::NAMES.guard[P::INDEX]);
    }

    /// The data, exclusively (after the process check). For data in place
    /// that is not `Unpin`, only `as_pin` calls it, and pins the result at
    /// once.
    #[inline]
    fn data_mut(&mut self) -> &mut T {
        self.check();
        // SAFETY: the guard holds the lock exclusively, so no other thread
        // or process reaches the data, and the exclusive borrow of the
        // guard makes this the only reference to it.
        unsafe { &mut *self.lock.data.get() }
    }

    /// Whether the previous holder died (or panicked) holding the lock: the
    /// data may be inconsistent.
    pub fn owner_died(&self) -> bool {
        self.died
    }

    /// Declares the data consistent after [`owner_died`](Self::owner_died)
    /// (no-op otherwise). Without it, releasing the lock poisons it.
    pub fn mark_consistent(&mut self) {
        self.check();
        let r = self.lock.raw.mark_consistent();
        debug_assert_eq!(r, Ok(()));
    }

    /// Releases the lock and makes it not recoverable (the data is beyond
    /// repair): every later locker gets
    /// [`LockError::Poisoned`](super::LockError::Poisoned).
    pub fn poison(self) {
        self.check();
        let r = self.lock.raw.poison();
        debug_assert_eq!(r, Ok(()));
        std::mem::forget(self);
    }

    /// The lock word, for a condition variable's wait.
    pub(super) fn raw_lock(&self) -> &L {
        self.check();
        &self.lock.raw
    }

    /// Records how the lock was taken again after a condition variable's
    /// wait.
    pub(super) fn set_owner_died(&mut self, died: bool) {
        self.died = died;
    }
}

impl<L: RawLock, R> LockGuard<'_, L, R, InPlace> {
    /// The data, pinned for modification in place.
    pub fn as_pin(&mut self) -> Pin<&mut R> {
        let data = self.data_mut();
        // SAFETY: the data lives inside a lock in place, which only exists
        // in target memory (it has no public constructor) and never moves
        // from there.
        unsafe { Pin::new_unchecked(data) }
    }
}

impl<L: RawLock, T: ?Sized, P: Placement> Deref for LockGuard<'_, L, T, P> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.check();
        // SAFETY: the guard holds the lock exclusively: no other access
        // exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<L: RawLock, T: ?Sized> DerefMut for LockGuard<'_, L, T, Owned> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.data_mut()
    }
}

impl<L: RawLock, R: Unpin> DerefMut for LockGuard<'_, L, R, InPlace> {
    #[inline]
    fn deref_mut(&mut self) -> &mut R {
        // `R: Unpin` may be moved.
        self.data_mut()
    }
}

impl<L: RawLock, T: ?Sized, P: Placement> Drop for LockGuard<'_, L, T, P> {
    fn drop(&mut self) {
        if !self.home.is_here() {
            // A copy made by `fork`: the lock belongs to the process that
            // took it.
            return;
        }
        let _ = if std::thread::panicking() {
            self.lock.raw.abandon_exclusive()
        } else {
            self.lock.raw.unlock_exclusive()
        };
    }
}

impl<L: RawLock, T: ?Sized + fmt::Debug, P: Placement> fmt::Debug for LockGuard<'_, L, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
