//! Process-shared, robust synchronisation on futexes.
//!
//! Two layers:
//!
//! - [`raw`]: lock words with no data ([`RawMutex`](raw::RawMutex),
//!   [`RawRwLock`](raw::RawRwLock), [`RawSemaphore`](raw::RawSemaphore),
//!   [`RawCondvar`](raw::RawCondvar), [`RawBarrier`](raw::RawBarrier)),
//!   `#[repr(C)]`, `const`-constructible,
//!   placeable anywhere in shared memory;
//! - typed locks that own their data, as in `std`: [`Mutex`], [`RwLock`],
//!   [`Semaphore`], [`Condvar`], [`Barrier`]. They work on any memory several processes
//!   map (a `Mutex<u64>` in a `MAP_SHARED` mapping made before `fork`), and
//!   implement [`Shared`](crate::Shared), so they can be fields of values in
//!   shared heaps, where they are represented by [`SharedMutex`] and [`SharedRwLock`]
//!   (copying a lock in makes a fresh, unlocked one).
//!
//! All futex operations are shared (never `FUTEX_PRIVATE_FLAG`): processes
//! meet on the physical page. Lockers spin briefly, then sleep.
//!
//! # Crashed holders
//!
//! Locks record the thread ids of their holders, and waiters check now and
//! then (every 10 ms of waiting) whether the holder is alive. When a holder
//! dies — a SIGKILLed process included — the next locker gets the lock with
//! an *owner died* report ([`MutexGuard::owner_died`]) instead of hanging,
//! typically 10–20 ms after the death. It repairs the data and calls
//! [`mark_consistent`](MutexGuard::mark_consistent); releasing the lock
//! without doing so poisons it ([`LockError::Poisoned`] for everyone, until
//! [`Mutex::clear_poison`]). A guard dropped during a panic counts as a
//! death. A dead reader of an [`RwLock`] never blocks writers; a dead waiter
//! of a [`Condvar`] never swallows a notification; a [`Semaphore`] counts
//! and does not own, so units taken by a dead process are not returned.
//!
//! ```
//! use mc::sync::{LockError, Mutex};
//!
//! fn bump(counter: &Mutex<u64>) -> Result<u64, LockError> {
//!     let mut g = counter.lock()?;
//!     if g.owner_died() {
//!         // A holder died in the middle; a counter is always consistent.
//!         g.mark_consistent();
//!     }
//!     *g += 1;
//!     Ok(*g)
//! }
//!
//! static COUNTER: Mutex<u64> = Mutex::new(0);
//! assert_eq!(bump(&COUNTER), Ok(1));
//! ```

mod asynch;
mod barrier;
mod condvar;
pub(crate) mod futex;
pub(crate) mod home;
mod lock;
mod mutex;
pub(crate) mod parker;
pub mod raw;
mod rwlock;
mod semaphore;
mod shared;

pub use asynch::{
    AsyncGuard, AsyncMutexGuard, AsyncRaw, AsyncReadGuard, AsyncWriteGuard, LockAsync, ReadAsync,
};
pub use barrier::Barrier;
pub use condvar::{Condvar, WaitTimeoutResult};
pub use lock::{InPlace, Lock, LockGuard, Owned, Placement};
pub use mutex::{CondvarGuard, Mutex, MutexGuard, SharedMutex, SharedMutexGuard};
pub use raw::{Acquired, LockError};
pub use rwlock::{
    LockReadGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, SharedRwLock, SharedRwLockReadGuard,
    SharedRwLockWriteGuard,
};
pub use semaphore::Semaphore;
pub use shared::Placed;
