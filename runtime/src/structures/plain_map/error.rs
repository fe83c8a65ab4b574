//! Why a `PlainMap` operation failed.

use std::fmt;

use crate::pool::PoolError;
use crate::sync::raw::LockError;

/// Why a map operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PlainMapError {
    /// The pool failed: no room for the map, or (opening) the map is gone.
    Pool(PoolError),
    /// A capacity of 0, or one whose groups do not fit in memory.
    BadCapacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// An insertion of a new key into a map that holds its capacity of
    /// keys. Nothing changed.
    Full {
        /// The map's capacity.
        capacity: usize,
    },
    /// The writers' lock failed: poisoned by hand, or taken again by the
    /// thread that holds it (a writing call inside
    /// [`update`](super::PlainMap::update)'s closure).
    Lock(LockError),
    /// The map holds keys or values of other types.
    WrongType {
        /// The fingerprint of the types asked for.
        expected: u64,
        /// The map's.
        found: u64,
    },
    /// The memory the descriptor names is not a map (or is not whole).
    NotAMap,
}

impl fmt::Display for PlainMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlainMapError::Pool(e) => write!(f, "plain map: {e}"),
            PlainMapError::BadCapacity { capacity } => write!(
                f,
                "plain map: a capacity of {capacity} keys (give at least 1, and a map that \
                 fits in the pool)"
            ),
            PlainMapError::Full { capacity } => write!(
                f,
                "plain map: full (it holds its capacity of {capacity} keys); remove keys, or \
                 create a map with a larger capacity"
            ),
            PlainMapError::Lock(e) => write!(f, "plain map: {e}"),
            PlainMapError::WrongType { expected, found } => write!(
                f,
                "plain map: it holds other types (fingerprint {found:#x}, expected \
                 {expected:#x}); open it with the key and value types it was created with"
            ),
            PlainMapError::NotAMap => write!(f, "plain map: the memory named is not a whole map"),
        }
    }
}

impl std::error::Error for PlainMapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlainMapError::Pool(e) => Some(e),
            PlainMapError::Lock(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PoolError> for PlainMapError {
    fn from(e: PoolError) -> Self {
        PlainMapError::Pool(e)
    }
}
