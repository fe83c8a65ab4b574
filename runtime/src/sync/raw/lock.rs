//! [`RawLock`]: the exclusive side of a robust raw lock, which the typed
//! locks ([`Lock`](crate::sync::Lock)) and their guards are generic over.

use std::time::Duration;

use super::{Acquired, LockError, RawMutex, RawRwLock};

/// The exclusive side of a robust raw lock: what a typed
/// [`Lock`](crate::sync::Lock) and its [`LockGuard`](crate::sync::LockGuard)
/// need. [`RawMutex`] implements it, and so does [`RawRwLock`] (its write
/// side); the trait is sealed.
///
/// The methods follow the rules of the [module](super): the thread that
/// locks is the one that releases, a dead holder's successor learns
/// [`Acquired::OwnerDied`], and releasing after that without
/// [`mark_consistent`](RawLock::mark_consistent) poisons the lock.
pub trait RawLock: sealed::Sealed + Send + Sync + 'static {
    /// An unlocked lock, for `const` construction of typed locks.
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self;

    /// Takes the lock exclusively, waiting at most `timeout` (`None`: as
    /// long as a live thread holds it).
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`], [`LockError::Deadlock`] (the calling thread
    /// holds the lock) or [`LockError::Timeout`].
    fn lock_exclusive(&self, timeout: Option<Duration>) -> Result<Acquired, LockError>;

    /// Takes the lock exclusively if no live thread holds it.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when it is taken, and the errors of
    /// [`lock_exclusive`](RawLock::lock_exclusive).
    fn try_lock_exclusive(&self) -> Result<Acquired, LockError>;

    /// Releases the exclusive hold of the calling thread.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the calling thread does not hold it.
    fn unlock_exclusive(&self) -> Result<(), LockError>;

    /// Releases the exclusive hold, leaving the data marked inconsistent as
    /// if the holder had died (a critical section abandoned by a panic).
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the calling thread does not hold it.
    fn abandon_exclusive(&self) -> Result<(), LockError>;

    /// Declares the data consistent after [`Acquired::OwnerDied`].
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the calling thread does not hold it
    /// exclusively.
    fn mark_consistent(&self) -> Result<(), LockError>;

    /// Releases the exclusive hold and makes the lock not recoverable.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the calling thread does not hold it
    /// exclusively.
    fn poison(&self) -> Result<(), LockError>;

    /// Whether the lock refuses lockers with [`LockError::Poisoned`].
    fn is_poisoned(&self) -> bool;

    /// Makes a poisoned lock usable again; returns whether it was poisoned
    /// (or marked inconsistent).
    fn clear_poison(&self) -> bool;

    /// Names for messages: the owning lock, its shared representation, and
    /// the exclusive guards of both.
    #[doc(hidden)]
    const NAMES: sealed::Names;

    /// Holds the lock even when it is poisoned, to copy the data out.
    #[doc(hidden)]
    fn lock_for_copy(&self, token: sealed::Token) -> Result<sealed::CopyHold, LockError>;

    /// Releases a hold from `lock_for_copy`, putting back the state found.
    #[doc(hidden)]
    fn release_copy(&self, hold: sealed::CopyHold, token: sealed::Token);
}

pub(crate) mod sealed {
    /// Proof of being inside this crate.
    #[derive(Debug, Clone, Copy)]
    pub struct Token(pub(crate) ());

    pub trait Sealed {}
    impl Sealed for super::RawMutex {}
    impl Sealed for super::RawRwLock {}

    /// Names of a lock kind, indexed by placement (owned, in place).
    #[derive(Debug, Clone, Copy)]
    pub struct Names {
        pub(crate) lock: [&'static str; 2],
        pub(crate) guard: [&'static str; 2],
    }

    /// What a hold for copying found.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CopyHold {
        /// Held shared (a reader/writer lock).
        Shared,
        /// Held exclusively, consistent.
        Clean,
        /// Held exclusively after a holder died, still to be repaired.
        Inconsistent,
        /// Held exclusively, not recoverable.
        Poisoned,
    }
}

impl RawLock for RawMutex {
    const INIT: Self = RawMutex::new();
    const NAMES: sealed::Names = sealed::Names {
        lock: ["Mutex", "SharedMutex"],
        guard: ["MutexGuard", "SharedMutexGuard"],
    };

    #[inline]
    fn lock_exclusive(&self, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        self.lock_within(timeout)
    }

    fn try_lock_exclusive(&self) -> Result<Acquired, LockError> {
        self.try_lock()
    }

    #[inline]
    fn unlock_exclusive(&self) -> Result<(), LockError> {
        self.unlock()
    }

    fn abandon_exclusive(&self) -> Result<(), LockError> {
        self.abandon()
    }

    fn mark_consistent(&self) -> Result<(), LockError> {
        RawMutex::mark_consistent(self)
    }

    fn poison(&self) -> Result<(), LockError> {
        RawMutex::poison(self)
    }

    fn is_poisoned(&self) -> bool {
        RawMutex::is_poisoned(self)
    }

    fn clear_poison(&self) -> bool {
        RawMutex::clear_poison(self)
    }

    fn lock_for_copy(&self, _: sealed::Token) -> Result<sealed::CopyHold, LockError> {
        RawMutex::lock_for_copy(self)
    }

    fn release_copy(&self, hold: sealed::CopyHold, _: sealed::Token) {
        RawMutex::release_copy(self, hold)
    }
}

impl RawLock for RawRwLock {
    const INIT: Self = RawRwLock::new();
    const NAMES: sealed::Names = sealed::Names {
        lock: ["RwLock", "SharedRwLock"],
        guard: ["RwLockWriteGuard", "SharedRwLockWriteGuard"],
    };

    #[inline]
    fn lock_exclusive(&self, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        self.write(timeout)
    }

    fn try_lock_exclusive(&self) -> Result<Acquired, LockError> {
        self.try_write()
    }

    #[inline]
    fn unlock_exclusive(&self) -> Result<(), LockError> {
        self.unlock_write_checked()
    }

    fn abandon_exclusive(&self) -> Result<(), LockError> {
        self.abandon_write()
    }

    fn mark_consistent(&self) -> Result<(), LockError> {
        RawRwLock::mark_consistent(self)
    }

    fn poison(&self) -> Result<(), LockError> {
        RawRwLock::poison(self)
    }

    fn is_poisoned(&self) -> bool {
        RawRwLock::is_poisoned(self)
    }

    fn clear_poison(&self) -> bool {
        RawRwLock::clear_poison(self)
    }

    fn lock_for_copy(&self, _: sealed::Token) -> Result<sealed::CopyHold, LockError> {
        RawRwLock::lock_for_copy(self)
    }

    fn release_copy(&self, hold: sealed::CopyHold, _: sealed::Token) {
        RawRwLock::release_copy(self, hold)
    }
}
