//! `SRef`: a shared mutable reference (Netmulticore's `Netmcore_ref`).

use std::fmt;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::Result;
use crate::heap::{Heap, HeapDescr, Mutator, PinGuard, ReadGuard};
use crate::pool::Pool;
use crate::value::Shared;

/// A shared reference: one value of type `T` in its own heap, which every
/// process of the family can read and replace.
///
/// ```
/// let pool = mc::Pool::create(16 << 20)?;
/// let r = mc::SRef::new(&pool, &String::from("one"))?;
/// assert_eq!(r.read()?.as_str(), "one");
/// r.assign(&"two".to_string())?;
/// let other = r.descr().open()?; // in another process, typically
/// assert_eq!(other.copy()?, "two");
/// r.destroy()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SRef<T: Shared> {
    heap: Heap<T>,
}

impl<T: Shared> Clone for SRef<T> {
    fn clone(&self) -> Self {
        SRef {
            heap: self.heap.clone(),
        }
    }
}

impl<T: Shared> fmt::Debug for SRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SRef").field(&self.heap).finish()
    }
}

/// A serde-able descriptor of an [`SRef`]: pass it to another process and
/// [open](SRefDescr::open) it there.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SRefDescr<T: Shared> {
    heap: HeapDescr<T>,
}

impl<T: Shared> Clone for SRefDescr<T> {
    fn clone(&self) -> Self {
        SRefDescr {
            heap: self.heap.clone(),
        }
    }
}

impl<T: Shared> PartialEq for SRefDescr<T> {
    fn eq(&self, o: &Self) -> bool {
        self.heap == o.heap
    }
}

impl<T: Shared> fmt::Debug for SRefDescr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SRefDescr").field(&self.heap).finish()
    }
}

impl<T: Shared> crate::value::DescrParts for SRefDescr<T> {
    type Parts = <HeapDescr<T> as crate::value::DescrParts>::Parts;
    fn to_parts(&self) -> Self::Parts {
        crate::value::DescrParts::to_parts(&self.heap)
    }
    fn from_parts(parts: Self::Parts) -> Self {
        SRefDescr {
            heap: crate::value::DescrParts::from_parts(parts),
        }
    }
}

crate::value::descr::shared_descr!([T: Shared] SRefDescr<T>, name = "mc::SRefDescr", args = [T]);

impl<T: Shared> SRefDescr<T> {
    /// Opens the reference in this process.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`HeapDescr::open`](crate::HeapDescr::open):
    /// [`HeapError::Destroyed`](crate::HeapError::Destroyed) once it was
    /// destroyed.
    pub fn open(&self) -> Result<SRef<T>> {
        Ok(SRef {
            heap: self.heap.open()?,
        })
    }
}

impl<T: Shared> SRef<T> {
    /// Creates a reference in `pool` holding a copy of `value`
    /// (`Netmcore_ref.sref`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::create`](crate::Heap::create).
    pub fn new(pool: &Pool, value: &T) -> Result<SRef<T>> {
        Ok(SRef {
            heap: Heap::create(pool, value)?,
        })
    }

    /// Replaces the value with a copy of `value` (`assign`). Pinned readers
    /// keep seeing the old value.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::assign`](crate::Heap::assign).
    pub fn assign(&self, value: &T) -> Result<()> {
        Ok(self.heap.assign(value)?)
    }

    /// Reads the value in place under the shared lock (`deref_ro`, made
    /// safe: the reference borrows the guard).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn read(&self) -> Result<ReadGuard<'_, T>> {
        Ok(self.heap.read()?)
    }

    /// Pins the current value (`deref_p`): no lock is held, writers go on
    /// with a new value, the guard keeps seeing this one.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::pin`](crate::Heap::pin).
    pub fn pin(&self) -> Result<PinGuard<'_, T>> {
        Ok(self.heap.pin()?)
    }

    /// A local copy of the value (`deref_c`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::copy`](crate::Heap::copy).
    pub fn copy(&self) -> Result<T> {
        Ok(self.heap.copy()?)
    }

    /// Changes the value in place under the exclusive lock
    /// (`Netmcore_heap.modify`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    pub fn modify<R>(&self, f: impl FnOnce(&Mutator<'_>, Pin<&mut T::Repr>) -> R) -> Result<R> {
        Ok(self.heap.modify(f)?)
    }

    /// A descriptor to pass to other processes.
    pub fn descr(&self) -> SRefDescr<T> {
        SRefDescr {
            heap: self.heap.descr(),
        }
    }

    /// The heap holding the value.
    pub fn heap(&self) -> &Heap<T> {
        &self.heap
    }

    /// Destroys the reference; its memory goes back to the pool.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::destroy`](crate::Heap::destroy).
    pub fn destroy(self) -> Result<()> {
        Ok(self.heap.destroy()?)
    }
}
