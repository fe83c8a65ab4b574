//! Heap descriptors: serde-able, shared-able references to a heap.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use super::{Heap, HeapError};
use crate::pool::Pool;
use crate::value::Shared;

impl<T: Shared> crate::value::DescrParts for HeapDescr<T> {
    type Parts = (String, u64, u64, u64);
    fn to_parts(&self) -> Self::Parts {
        (self.pool.clone(), self.addr, self.id, self.fingerprint)
    }
    fn from_parts((pool, addr, id, fingerprint): Self::Parts) -> Self {
        HeapDescr {
            pool,
            addr,
            id,
            fingerprint,
            _t: PhantomData,
        }
    }
}

crate::value::descr::shared_descr!([T: Shared] HeapDescr<T>, name = "mc::HeapDescr", args = [T]);

/// A serde-able reference to a heap, to pass to other processes, which
/// [open](HeapDescr::open) it. A descriptor carries its type: opening it as
/// a heap of another type does not compile.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct HeapDescr<T: Shared> {
    pub(super) pool: String,
    pub(super) addr: u64,
    pub(super) id: u64,
    pub(super) fingerprint: u64,
    #[serde(skip)]
    pub(super) _t: PhantomData<fn() -> T>,
}

impl<T: Shared> Clone for HeapDescr<T> {
    fn clone(&self) -> Self {
        HeapDescr {
            pool: self.pool.clone(),
            addr: self.addr,
            id: self.id,
            fingerprint: self.fingerprint,
            _t: PhantomData,
        }
    }
}

impl<T: Shared> fmt::Debug for HeapDescr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapDescr")
            .field("pool", &self.pool)
            .field("addr", &format_args!("{:#x}", self.addr))
            .finish()
    }
}

impl<T: Shared> PartialEq for HeapDescr<T> {
    fn eq(&self, o: &Self) -> bool {
        self.pool == o.pool && self.addr == o.addr && self.id == o.id
    }
}

impl<T: Shared> HeapDescr<T> {
    /// Opens the heap, attaching its pool if this process has not mapped
    /// it yet.
    ///
    /// # Errors
    ///
    /// [`HeapError::Pool`] when the pool cannot be attached (see
    /// [`Pool::attach_segment`]), and the errors of [`Heap::open`].
    pub fn open(&self) -> Result<Heap<T>, HeapError> {
        let pool = Pool::attach_segment(&self.pool)?;
        Heap::open(&pool, self)
    }

    /// The name of the pool the heap lives in.
    pub fn pool_name(&self) -> &str {
        &self.pool
    }
}
