//! Raw process-shared locks: plain `#[repr(C)]` words in shared memory,
//! protecting no data of their own.
//!
//! Each type is a few `AtomicU32`s with a `const fn new()`, so it can be
//! placed anywhere in memory that several processes map (an anonymous
//! `MAP_SHARED` mapping inherited across `fork`, a segment, a heap value);
//! the processes may map it at different addresses. Waiting uses shared
//! futexes: spin briefly, then sleep in the kernel.
//!
//! # Robustness
//!
//! Lock words record the kernel thread id (TID) of their holders. A waiter
//! never sleeps longer than a 10 ms slice at a time; when a lock is still
//! held after a slice it checks whether the holder thread is still alive
//! (through `/proc/<tid>/stat`: gone, zombie or dead means dead) and, if not,
//! takes the lock over. A crashed holder — SIGKILL included — is therefore
//! noticed within a few slices, without the kernel's robust-futex list
//! (which glibc owns, one per thread).
//!
//! After a takeover the new holder learns [`Acquired::OwnerDied`]. It may
//! repair the data and call `mark_consistent`; if it releases the lock
//! without doing so the lock becomes *not recoverable*, and every later
//! acquisition returns [`LockError::Poisoned`] until someone calls
//! `clear_poison`. If the new holder dies too, the next one gets
//! `OwnerDied` again. These are the POSIX robust-mutex rules
//! (`EOWNERDEAD`, `pthread_mutex_consistent`, `ENOTRECOVERABLE`).
//!
//! Limits: ids are those of the PID namespace of the process that locks;
//! all processes sharing a lock must be in the same PID namespace and see
//! each other in `/proc` (no `hidepid` across users). Linux hands out ids
//! cyclically, so an id is reused only after the whole id space went round;
//! should a dead holder's id be reused before a waiter looks, the waiter
//! waits for the new thread to exit (a delay, never a double hold).

mod barrier;
mod condvar;
mod lock;
#[cfg(test)]
mod model;
#[cfg(test)]
mod model_rwlock;
#[cfg(test)]
mod model_search;
mod mutex;
mod rwlock;
mod semaphore;

pub use barrier::RawBarrier;
pub use condvar::{CondvarWait, RawCondvar};
pub(crate) use lock::sealed;
pub use lock::RawLock;
pub use mutex::RawMutex;
pub(crate) use rwlock::ReadAttempt;
pub use rwlock::{RawRwLock, READER_SLOTS};
pub use semaphore::{RawSemaphore, SemaphoreWait};

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The previous holder released it normally.
    Clean,
    /// The previous holder died (or panicked) while holding it: the
    /// protected data may be inconsistent. Repair it and call
    /// `mark_consistent` before releasing, or the lock becomes poisoned.
    OwnerDied,
}

impl Acquired {
    /// Whether the previous holder died while holding the lock.
    pub fn owner_died(self) -> bool {
        self == Acquired::OwnerDied
    }
}

/// What a locker's look at an exclusive lock word found.
pub(crate) enum Found {
    /// The word was free and is now the caller's.
    Taken(Acquired),
    /// Another thread, `owner`, holds it: the word read was `w`.
    Held { w: u32, owner: u32 },
}

/// Why a lock was not acquired (or released).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum LockError {
    /// The timeout passed.
    Timeout,
    /// A `try_` acquisition found the lock taken.
    WouldBlock,
    /// A holder died and nobody declared the data consistent: the lock is
    /// not recoverable until `clear_poison`. (For a reader of a
    /// [`RawRwLock`]: a writer died and no writer has repaired the data
    /// yet.)
    Poisoned,
    /// The calling thread already holds the lock: waiting would never end.
    Deadlock,
    /// The calling thread does not hold the lock it tried to release or
    /// use.
    NotOwner,
    /// A semaphore's count would exceed [`RawSemaphore::MAX`].
    Overflow,
    /// An async acquisition needs the process's parker thread, which could
    /// not be started (the system refused a new thread).
    NoParker,
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Timeout => write!(f, "timed out waiting for the lock"),
            LockError::WouldBlock => write!(f, "the lock is taken"),
            LockError::Poisoned => write!(
                f,
                "the lock is poisoned: a holder died (or panicked) and the data was never \
                 declared consistent; check the data, then call `clear_poison()` on the lock \
                 (or, as the locker told `OwnerDied`, `mark_consistent()` on its guard)"
            ),
            LockError::Deadlock => write!(f, "the calling thread already holds the lock"),
            LockError::NotOwner => write!(f, "the calling thread does not hold the lock"),
            LockError::Overflow => write!(f, "the semaphore count would overflow"),
            LockError::NoParker => write!(
                f,
                "an async lock needs mc's parker thread, which could not be started (too many \
                 threads?): use the blocking lock"
            ),
        }
    }
}

impl std::error::Error for LockError {}
