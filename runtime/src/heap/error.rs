//! Why heap operations fail.

use std::fmt;

use super::N_PINS;
use crate::pool::PoolError;
use crate::sync::raw::LockError;
use crate::value::CopyError;

/// Why a heap operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HeapError {
    /// The pool has no room left for the heap to grow.
    OutOfMemory {
        /// Bytes requested from the pool.
        requested: usize,
        /// Bytes free in the pool.
        available: usize,
    },
    /// A value too large to be copied.
    TooLarge,
    /// A pool operation failed.
    Pool(PoolError),
    /// This thread already holds this heap (a guard is alive) or is inside
    /// a modification; waiting would deadlock.
    Reentrant,
    /// A modification panicked, or a process died in the middle of one
    /// ([`Heap::poisoned`](super::Heap::poisoned) says which): every
    /// access is refused until [`Heap::recover`](super::Heap::recover)
    /// has checked the heap, or it is [destroyed](super::Heap::destroy).
    Poisoned,
    /// The heap's memory is not well formed (written by a process that did
    /// not follow the heap's protocol, or damaged): this part of it.
    Corrupt(&'static str),
    /// The heap holds another type.
    WrongType {
        /// The fingerprint of the type asked for.
        expected: u64,
        /// The fingerprint recorded in the heap.
        found: u64,
    },
    /// The descriptor does not lead to a heap (bad address, or another
    /// pool).
    NotAHeap,
    /// The heap was destroyed.
    Destroyed,
    /// The pool has no root heap.
    NoRootHeap,
    /// Too many distinct values are pinned at once.
    TooManyPins,
    /// The value to pin holds locks (`mc::sync` types): a root pin is
    /// refused on a heap that holds locks (a modification works on a copy
    /// of a pinned root), a part pin on a part that holds one (the pin
    /// holds a copy), and a copied lock would be another lock. Read under a
    /// guard instead.
    PinWithLocks,
    /// The heap cannot be destroyed, nor a structure's heap repaired after
    /// a death, while values of it are pinned (this many pinned values).
    Pinned(usize),
    /// A mutator was handed a place that is not in its heap (a local value,
    /// or a value of another heap); or [`Heap::pin_lock`](super::Heap::pin_lock)
    /// was given a lock outside the heap.
    ForeignPlace,
    /// A modification would overwrite or move a lock that a process holds
    /// pinned ([`Heap::pin_lock`](super::Heap::pin_lock)).
    LockPinned,
    /// A lock to pin in place protects data with pointers, which the
    /// collector would not keep for the pin.
    LockWithPointers,
    /// A lock to pin in place is in the data of a structure (`SArray`,
    /// `SHashtbl`, ...), whose operations move elements.
    LockInStructure,
    /// The heap's lock failed.
    Lock(LockError),
    /// The timeout passed before the heap's lock could be taken (another
    /// process holds it: a long modification, or a stopped process).
    Timeout,
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::OutOfMemory {
                requested,
                available,
            } => write!(
                f,
                "out of pool memory: the heap needs {requested} more bytes, the pool has \
                 {available} free (make the pool larger)"
            ),
            HeapError::TooLarge => write!(f, "the value is too large to be copied"),
            HeapError::Pool(e) => write!(f, "{e}"),
            HeapError::Reentrant => write!(
                f,
                "this thread already holds this heap (a guard is alive) or is inside a \
                 modification: drop the guard or finish the modification first"
            ),
            HeapError::Poisoned => write!(
                f,
                "the heap is poisoned: a modification panicked or its process died half-way; \
                 call Heap::recover() to check the heap and use it as it was left, or destroy \
                 it and rebuild it from a copy"
            ),
            HeapError::Corrupt(what) => write!(
                f,
                "the heap's memory is damaged ({what} is not well formed): destroy the heap \
                 and rebuild it from a copy"
            ),
            HeapError::WrongType { expected, found } => write!(
                f,
                "the heap holds another type (fingerprint {found:#018x}, expected \
                 {expected:#018x}): open it with the type it was created with"
            ),
            HeapError::NotAHeap => write!(f, "the descriptor does not lead to a heap of this pool"),
            HeapError::Destroyed => write!(f, "the heap was destroyed"),
            HeapError::NoRootHeap => write!(
                f,
                "the pool has no root heap: the creator must call Heap::set_pool_root first"
            ),
            HeapError::TooManyPins => {
                write!(
                    f,
                    "too many values pinned at once ({N_PINS}): drop some pin guards"
                )
            }
            HeapError::Pinned(n) => write!(
                f,
                "{n} values of the heap are pinned: drop the pin guards first (a heap is \
                 neither destroyed nor, for a structure, repaired while pinned)"
            ),
            HeapError::PinWithLocks => write!(
                f,
                "a value that holds locks cannot be pinned (a pin would hold a copy, and a \
                 copied lock is another lock): use read() and lock through the guard, or pin \
                 a part without locks (pin_part)"
            ),
            HeapError::ForeignPlace => write!(
                f,
                "the place given to the mutator is not in the heap being modified: values of \
                 other heaps and local values are copied in with `set`/`set_from`, not written to"
            ),
            HeapError::LockPinned => write!(
                f,
                "the change would overwrite or move a lock that a process holds pinned \
                 (Heap::pin_lock): change the value once the pin is dropped"
            ),
            HeapError::LockWithPointers => write!(
                f,
                "a lock pinned in place must protect data without pointers (no strings, \
                 vectors or boxes), which the collector would not keep for the pin: keep such \
                 data beside the lock, or lock through read()"
            ),
            HeapError::LockInStructure => write!(
                f,
                "locks inside a structure's data cannot be pinned in place (its operations move \
                 elements): keep the lock in the structure's header, an SRef or a heap of its own"
            ),
            HeapError::Lock(e) => write!(f, "heap lock: {e}"),
            HeapError::Timeout => write!(
                f,
                "timed out waiting for the heap's lock: another process holds it (a long \
                 modification, a guard kept alive, or a stopped process); retry later"
            ),
        }
    }
}

impl std::error::Error for HeapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HeapError::Pool(e) => Some(e),
            HeapError::Lock(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PoolError> for HeapError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::OutOfMemory {
                requested,
                available,
            } => HeapError::OutOfMemory {
                requested,
                available,
            },
            e => HeapError::Pool(e),
        }
    }
}

#[cold]
pub(super) fn heap_error(e: CopyError, pool: Option<PoolError>) -> HeapError {
    match (e, pool) {
        (_, Some(p)) => p.into(),
        (CopyError::OutOfSpace { requested }, None) => HeapError::OutOfMemory {
            requested,
            available: 0,
        },
        (CopyError::Overflow, None) => HeapError::TooLarge,
        (CopyError::Locked, None) => HeapError::Lock(LockError::Deadlock),
    }
}
