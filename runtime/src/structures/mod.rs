//! Shared data structures: [`SRef`], [`SArray`], [`SMatrix`], [`SBuffer`],
//! [`SQueue`] and [`SHashtbl`], Netmulticore's `Netmcore_ref`, `_array`,
//! `_matrix`, `_buffer`, `_queue` and `_hashtbl`; and two structures of
//! plain values (`bytemuck::Pod`) in pool memory, with no heap:
//! [`Ring`], a bounded queue, and [`PlainMap`], a map whose lookups take no
//! lock.
//!
//! Each of the first six lives in a garbage-collected [`Heap`] of a
//! [`Pool`]; all but [`SRef`] also carry a user **header** of any [`Shared`] type `H`
//! (`()` when unused), kept in a small heap of its own so that a process
//! can wait on a lock or condition variable of the header while others
//! change the data. A handle is opened in other processes from its typed,
//! serde-able **descriptor** (`descr()` → send → `open()`); a descriptor of
//! a [destroyed](SArray::destroy) structure gives
//! [`HeapError::Destroyed`] wrapped in [`StructureError::Heap`].
//!
//! # Access
//!
//! As for heaps, each read comes in three flavours (Netmulticore's `_ro`,
//! `_p`, `_c` suffixes):
//!
//! - **guard** (`get`, `read`, `find`, `peek`): a [`Ref`] or [`ReadGuard`](crate::ReadGuard)
//!   that holds the data heap's shared lock; the reference borrows the
//!   guard, so it cannot outlive it (Netmulticore's unsafe `_ro` made safe).
//!   Writers wait while the guard lives: keep it short.
//! - **pinned**: no lock is held while the guard lives, and writers go on.
//!   - One element (`get_pinned`, `find_pinned`, `peek_pinned`): a
//!     [part pin](crate::Heap::pin_part), a copy of the element made under
//!     the exclusive lock and kept by the collector until the guard is
//!     dropped. It costs what the element costs to copy, whatever the size
//!     of the structure.
//!   - The whole structure (`pin`, `find_all_pinned`): the heap never
//!     changes a pinned root in place, so the *next* modification first
//!     copies the whole structure: use these for long reads, not in loops.
//! - **copy** (`get_copy`, `find_copy`, `pop_copy`, ...): a local copy.
//!
//! Mutations copy values into the heap (a `&E` is copied in, never moved).
//!
//! # Concurrency
//!
//! Every operation takes the data heap's lock (shared for reads, exclusive
//! for changes), so each single operation is atomic and safe to call from
//! any number of processes at once. A **read-modify-write cycle** made of
//! several operations (read a counter, then set it; `find` then `replace`;
//! wait until a queue is non-empty, then pop) is not atomic: protect it
//! with an [`mc::sync::Mutex`](crate::sync::Mutex) in the header (and a
//! [`Condvar`](crate::sync::Condvar) to wait), as the `pipeline` example
//! does. Alternatively use the structures' `modify` methods, which run a
//! closure under the exclusive lock.
//!
//! Holding a guard of a structure and calling a changing operation of the
//! same structure in the same thread fails with [`HeapError::Reentrant`]
//! instead of deadlocking.
//!
//! # Netmulticore → mc
//!
//! | Netmulticore | mc |
//! |---|---|
//! | `Netmcore_ref.sref pool v` | [`SRef::new(&pool, &v)`](SRef::new) |
//! | `Netmcore_ref.assign sr v` | [`SRef::assign`] |
//! | `deref_ro sr` | [`SRef::read`] (a guard) |
//! | `deref_p sr f` | [`SRef::pin`] (a guard) |
//! | `deref_c sr` | [`SRef::copy`] |
//! | `Netmcore_heap.modify (heap sr) f` | [`SRef::modify`] |
//! | `descr_of_sref` / `sref_of_descr` | [`SRef::descr`] / [`SRefDescr::open`] |
//! | `Netmcore_array.create pool h a` | [`SArray::create(&pool, &h, &a)`](SArray::create) |
//! | `make pool n x h`, `init pool n f h` | [`SArray::make`], [`SArray::init`] |
//! | `grow sa n x` | [`SArray::grow`] |
//! | `set sa k x` | [`SArray::set`] |
//! | `get_ro` / `get_p` / `get_c` | [`SArray::get`] / [`SArray::get_pinned`] / [`SArray::get_copy`] |
//! | `length sa` | [`SArray::len`] |
//! | `header sa` | [`SArray::header`], [`SArray::modify_header`] |
//! | `deref sa` | [`SArray::read`] (the whole slice), [`SArray::to_vec`] |
//! | `heap sa` + `Netmcore_heap.modify` | [`SArray::modify`] |
//! | `Netmcore_matrix.create / make / init` | [`SMatrix::create`], [`SMatrix::make`], [`SMatrix::init`] |
//! | `Netmcore_matrix.dim` | [`SMatrix::dim`] |
//! | `Netmcore_matrix.get_ro / get_p / get_c / set` | [`SMatrix::get`] / [`SMatrix::get_pinned`] / [`SMatrix::get_copy`] / [`SMatrix::set`] |
//! | `Netmcore_buffer.create pool bsize h` | [`SBuffer::create`] |
//! | `add_string` / `add_sub_string` / `add_bytes` | [`SBuffer::push_bytes`] |
//! | `sub` / `blit_to_bytes` / `blit_to_string` | [`SBuffer::sub`] / [`SBuffer::blit`] |
//! | `access` | [`SBuffer::read`] ([`BufferView::chunks`]) |
//! | `length` / `start` / `delete_hd` / `clear` | [`SBuffer::len`] / [`SBuffer::start`] / [`SBuffer::delete_head`] / [`SBuffer::clear`] |
//! | `Netmcore_queue.create pool h` | [`SQueue::create`] |
//! | `push x q` | [`SQueue::push`], [`SQueue::extend`] (several at once) |
//! | `pop_p q f` / `pop_c q` | [`SQueue::pop_with`] / [`SQueue::pop_copy`], [`SQueue::pop_many`] |
//! | `top_p q f` / `top_c q` | [`SQueue::peek`] / [`SQueue::peek_copy`] |
//! | `length` / `is_empty` / `clear` | [`SQueue::len`] / [`SQueue::is_empty`] / [`SQueue::clear`] |
//! | `iter` / `fold` | [`SQueue::read`] ([`QueueView::iter`]), [`SQueue::to_vec`] |
//! | `Netmcore_hashtbl.create pool h` | [`SHashtbl::create`] |
//! | `add` / `replace` / `remove` | [`SHashtbl::add`] / [`SHashtbl::replace`] / [`SHashtbl::remove`] |
//! | `find_ro` / `find_p` / `find_c` | [`SHashtbl::find`] / [`SHashtbl::find_pinned`] / [`SHashtbl::find_copy`] |
//! | `find_all_ro` / `find_all_p` / `find_all_c` | [`SHashtbl::find_all`] / [`SHashtbl::find_all_pinned`] / [`SHashtbl::find_all_copy`] |
//! | `mem` / `length` / `clear` | [`SHashtbl::contains_key`] / [`SHashtbl::len`] / [`SHashtbl::clear`] |
//! | `iter` / `fold` | [`SHashtbl::read`] ([`TableView::iter`]), [`SHashtbl::to_vec`] |
//! | `header`, `descr_of_*`, `*_of_descr` | `header()` / `modify_header()`, `descr()`, `open()` |
//! | `heap` (every structure) | `heap()`: [`SRef::heap`], [`SArray::heap`], [`SMatrix::heap`], [`SBuffer::heap`], [`SQueue::heap`], [`SHashtbl::heap`] (the data heap) |
//! | `heap` + `Netmcore_heap.modify` | the structures' `modify` methods ([`SArray::modify`], [`SHashtbl::modify_value`], ...) |
//! | `Netmcore_heap.with_value_n` (and `_2` … `_5`) on a structure | [`Refs`] from [`SHashtbl::find_all`] / [`SHashtbl::find_all_pinned`]; [`SArray::read`] / [`SArray::pin`] for several elements (see [below](#several-values-at-once-with_value_n)) |
//! | `Netmcore_heap.add_immutable` | none: every addition copies (see [below](#no-add_immutable)) |
//! | `` `Recursive`` mutexes in headers | none: relocking is [`LockError::Deadlock`](crate::sync::LockError::Deadlock) (see [below](#no-reentrant-mutex)) |
//! | (pool memory freed by the GC) | `destroy()` gives all memory back at once |
//!
//! # Several values at once (`with_value_n`)
//!
//! Netmulticore's `with_value_n h find process` runs `find` under the
//! heap's lock and keeps the several values it returns pinned while
//! `process` runs. In mc a guard does both: [`SHashtbl::find_all`] returns
//! [`Refs`] to every binding of a key under the shared lock (writers wait),
//! [`SHashtbl::find_all_pinned`] returns them pinned (no lock held; writers
//! go on, the references keep seeing the values as they were). For arrays
//! and matrices, [`SArray::read`] / [`SArray::pin`] (and
//! [`SMatrix::read`]) already give every element of one state of the
//! structure; queues, buffers and tables have `read()` views. Whatever is
//! read through one guard is consistent: no writer runs in between.
//!
//! # No `add_immutable`
//!
//! Netmulticore's `add_immutable` adds a value without copying the parts
//! of it that are already in the heap, so that they are shared: it is only
//! correct when nobody mutates them afterwards. mc has no counterpart, for
//! two reasons:
//!
//! - a heap is a tree: every value has exactly one owner, which is what
//!   lets `modify` hand out `Pin<&mut>` to any part of a structure (and
//!   [`SHashtbl::modify_value`] change one binding in place). A part shared
//!   by two bindings would be changed through both, or be two `&mut` at
//!   once;
//! - the saving is not needed to keep values immutable: a value in a
//!   structure changes only through a [`Mutator`] under the exclusive
//!   lock, readers see one state through their guard, and pinned readers
//!   keep the old value (the next change copies). Every `add`, `set`,
//!   `push` and `replace` copies its argument in, so later changes of the
//!   local value are not seen. To copy a value that is already in shared
//!   memory (a camlbox message, an element of another structure) without a
//!   round trip through local memory, use [`Mutator::set_from`] in a
//!   `modify` method.
//!
//! # No reentrant mutex
//!
//! Netmulticore's mutexes come in a `` `Recursive`` kind (which, besides,
//! releases the lock to other processes at the first inner unlock). mc's
//! [`sync::Mutex`](crate::sync::Mutex) has one kind, error-checking: a
//! thread that locks a mutex it holds gets
//! [`LockError::Deadlock`](crate::sync::LockError::Deadlock) at once,
//! instead of hanging, and the structures answer a change made while a
//! guard of the same structure is held with [`HeapError::Reentrant`].
//! A reentrant kind would not fit:
//!
//! - a guard gives `&mut` access to the data, which two nested guards of
//!   one mutex cannot both give; a reentrant guard could give `&` only,
//!   and the interior mutability that would then be needed (`Cell`,
//!   `RefCell`) cannot live in shared memory;
//! - the inner locker cannot tell that the outer one is in the middle of a
//!   change, so reentrancy hides the very mistakes (a lock taken again
//!   down a call chain, locks taken in an inconsistent order) that
//!   `Deadlock` reports at once;
//! - a [`Condvar`](crate::sync::Condvar) wait releases the mutex once: a
//!   recursively held mutex stays locked and the waiter hangs.
//!
//! Pass the guard (or the `&mut` it gives) down to the code that needs the
//! data instead of locking again.

use std::fmt;
use std::ops::Deref;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::heap::{Heap, HeapDescr, HeapError, HeapOptions, Mutator};
use crate::pool::Pool;
use crate::value::{Shared, SharedVec};

mod array;
mod buffer;
mod hashtbl;
mod plain;
mod plain_map;
mod queue;
mod ring;
mod sharded;
mod sref;

pub use array::{SArray, SArrayDescr, SMatrix, SMatrixDescr};
pub use buffer::{BufferView, SBuffer, SBufferDescr, DEFAULT_BLOCK_SIZE};
pub use hashtbl::{KeyHasher, SHashtbl, SHashtblDescr, SharedKey, TableView, INITIAL_BUCKETS};
pub use plain_map::{PlainMap, PlainMapDescr, PlainMapError};
pub use queue::{QueueView, SQueue, SQueueDescr};
pub use ring::{Ring, RingDescr, RingError};
pub use sharded::{SShardedHashtbl, SShardedHashtblDescr, MAX_SHARDS};
pub use sref::{SRef, SRefDescr};

/// Why an operation on a shared structure failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StructureError {
    /// The heap operation failed (destroyed, poisoned, out of memory,
    /// reentrant use, ...).
    Heap(HeapError),
    /// An index past the end.
    OutOfBounds {
        /// The index asked for.
        index: usize,
        /// The number of elements.
        len: usize,
    },
    /// A range of a [`SBuffer`] outside its current contents.
    BadRange {
        /// The first position asked for.
        pos: usize,
        /// The number of bytes asked for.
        len: usize,
        /// The buffer's first position.
        start: usize,
        /// The buffer's end position (one past the last byte).
        end: usize,
    },
    /// The structure's data breaks the structure's invariants: it was
    /// changed through [`heap`](SQueue::heap) (or a descriptor's heap) in a
    /// way the structure never changes it, e.g. a table without buckets or
    /// a queue whose length exceeds its ring. The operation did nothing;
    /// restore the data (or [`clear`](SQueue::clear) the structure).
    Inconsistent {
        /// What is wrong.
        what: &'static str,
    },
    /// Matrix dimensions that do not fit the data.
    BadShape {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Elements given.
        elements: usize,
    },
}

impl fmt::Display for StructureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StructureError::Heap(e) => write!(f, "{e}"),
            StructureError::OutOfBounds { index, len } => {
                write!(f, "index {index} out of bounds (length {len})")
            }
            StructureError::BadRange {
                pos,
                len,
                start,
                end,
            } => write!(
                f,
                "bytes {pos}..{} are not in the buffer (it holds {start}..{end})",
                pos.saturating_add(*len)
            ),
            StructureError::Inconsistent { what } => {
                write!(f, "the structure's data is inconsistent: {what}")
            }
            StructureError::BadShape {
                rows,
                cols,
                elements,
            } => write!(
                f,
                "a {rows}×{cols} matrix needs {} elements, got {elements}",
                rows.saturating_mul(*cols)
            ),
        }
    }
}

impl std::error::Error for StructureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StructureError::Heap(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HeapError> for StructureError {
    fn from(e: HeapError) -> Self {
        StructureError::Heap(e)
    }
}

/// Results of structure operations.
pub type Result<T, E = StructureError> = std::result::Result<T, E>;

/// A reference into a structure, borrowed from a guard `G` (a
/// [`ReadGuard`](crate::ReadGuard), which holds the shared lock, or a
/// [`PinGuard`](crate::PinGuard), which pins the structure). Derefs to the
/// element.
pub struct Ref<G: Deref, R: ?Sized + 'static> {
    guard: G,
    loc: [usize; 2],
    get: for<'x> fn(&'x G::Target, [usize; 2]) -> &'x R,
}

impl<G: Deref, R: ?Sized + 'static> Ref<G, R> {
    fn new(guard: G, loc: [usize; 2], get: for<'x> fn(&'x G::Target, [usize; 2]) -> &'x R) -> Self {
        Ref { guard, loc, get }
    }
}

impl<G: Deref, R: ?Sized + 'static> Deref for Ref<G, R> {
    type Target = R;
    fn deref(&self) -> &R {
        (self.get)(&*self.guard, self.loc)
    }
}

impl<G: Deref, R: ?Sized + fmt::Debug + 'static> fmt::Debug for Ref<G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Several references into a structure, all borrowed from one guard `G`
/// (a [`ReadGuard`](crate::ReadGuard), which holds the shared lock, or a
/// [`PinGuard`](crate::PinGuard), which pins the structure): Netmulticore's
/// `with_value_n`, where `find` returns several values that stay pinned
/// while `process` runs. All of them are read from the same state of the
/// structure. Returned by [`SHashtbl::find_all`] and
/// [`SHashtbl::find_all_pinned`].
pub struct Refs<G: Deref, R: ?Sized + 'static> {
    guard: G,
    locs: Vec<[usize; 2]>,
    get: for<'x> fn(&'x G::Target, [usize; 2]) -> &'x R,
}

impl<G: Deref, R: ?Sized + 'static> Refs<G, R> {
    /// `locs` must all be valid for `get` on the guarded value: checked by
    /// the caller when the guard was taken (the guarded value does not
    /// change while the guard lives).
    fn new(
        guard: G,
        locs: Vec<[usize; 2]>,
        get: for<'x> fn(&'x G::Target, [usize; 2]) -> &'x R,
    ) -> Self {
        Refs { guard, locs, get }
    }

    /// The number of references.
    pub fn len(&self) -> usize {
        self.locs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.locs.is_empty()
    }

    /// The `i`-th reference, `None` past the end.
    pub fn get(&self, i: usize) -> Option<&R> {
        let l = *self.locs.get(i)?;
        Some((self.get)(&*self.guard, l))
    }

    /// The references, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &R> + '_ {
        let t = &*self.guard;
        self.locs.iter().map(move |&l| (self.get)(t, l))
    }
}

impl<G: Deref, R: ?Sized + fmt::Debug + 'static> fmt::Debug for Refs<G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The chunk size of header heaps (small: headers are small).
const HEADER_CHUNK: usize = 8 * 1024;

/// A structure's two heaps: the header and the data.
struct Parts<D: Shared, H: Shared> {
    header: Heap<H>,
    data: Heap<D>,
}

impl<D: Shared, H: Shared> Clone for Parts<D, H> {
    fn clone(&self) -> Self {
        Parts {
            header: self.header.clone(),
            data: self.data.clone(),
        }
    }
}

impl<D: Shared, H: Shared> Parts<D, H> {
    fn create(pool: &Pool, header: &H, data: &D, opts: HeapOptions) -> Result<Self> {
        let header = Heap::create_with(pool, header, HeapOptions::new().chunk_size(HEADER_CHUNK))?;
        match Heap::create_with(pool, data, opts) {
            Ok(data) => {
                data.refuse_lock_pins();
                Ok(Parts { header, data })
            }
            Err(e) => {
                let _ = header.destroy();
                Err(e.into())
            }
        }
    }

    fn descr(&self) -> PartsDescr<D, H> {
        PartsDescr {
            header: self.header.descr(),
            data: self.data.descr(),
        }
    }

    fn modify<R>(&self, f: impl FnOnce(&Mutator<'_>, Pin<&mut D::Repr>) -> R) -> Result<R> {
        Ok(self.data.modify(f)?)
    }

    fn modify_try<R>(
        &self,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut D::Repr>) -> Result<R>,
    ) -> Result<R> {
        self.data.modify(f)?
    }

    /// Destroys the data heap, then the header heap. When the data heap
    /// cannot be destroyed (pinned, reentrant use, ...) nothing is
    /// destroyed, so the structure stays whole. A data heap destroyed
    /// already (an earlier `destroy` whose header could not be destroyed)
    /// counts as done: the header is destroyed now.
    fn destroy(self) -> Result<()> {
        match self.data.destroy() {
            Ok(()) | Err(HeapError::Destroyed) => Ok(self.header.destroy()?),
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct PartsDescr<D: Shared, H: Shared> {
    header: HeapDescr<H>,
    data: HeapDescr<D>,
}

impl<D: Shared, H: Shared> Clone for PartsDescr<D, H> {
    fn clone(&self) -> Self {
        PartsDescr {
            header: self.header.clone(),
            data: self.data.clone(),
        }
    }
}

impl<D: Shared, H: Shared> PartialEq for PartsDescr<D, H> {
    fn eq(&self, o: &Self) -> bool {
        self.header == o.header && self.data == o.data
    }
}

impl<D: Shared, H: Shared> fmt::Debug for PartsDescr<D, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Descr")
            .field("pool", &self.data.pool_name())
            .field("header", &self.header)
            .field("data", &self.data)
            .finish()
    }
}

impl<D: Shared, H: Shared> crate::value::DescrParts for PartsDescr<D, H> {
    type Parts = (
        <HeapDescr<H> as crate::value::DescrParts>::Parts,
        <HeapDescr<D> as crate::value::DescrParts>::Parts,
    );
    fn to_parts(&self) -> Self::Parts {
        (self.header.to_parts(), self.data.to_parts())
    }
    fn from_parts((header, data): Self::Parts) -> Self {
        PartsDescr {
            header: HeapDescr::from_parts(header),
            data: HeapDescr::from_parts(data),
        }
    }
}

impl<D: Shared, H: Shared> PartsDescr<D, H> {
    fn open(&self) -> Result<Parts<D, H>> {
        Ok(Parts {
            header: self.header.open()?,
            data: self.data.open()?,
        })
    }
}

/// Generates a structure's descriptor type and the methods every
/// structure with a header has.
macro_rules! structure_common {
    (
        $handle:ident, $descr:ident, [$($p:ident: $b:path),*], $data:ty, $what:literal
    ) => {
        #[doc = concat!("A serde-able descriptor of ", $what, ": pass it to another process and [open](", stringify!($descr), "::open) it there.")]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(bound = "")]
        pub struct $descr<$($p: $b,)* H: $crate::Shared = ()> {
            inner: $crate::structures::PartsDescr<$data, H>,
        }

        impl<$($p: $b,)* H: $crate::Shared> Clone for $descr<$($p,)* H> {
            fn clone(&self) -> Self {
                $descr { inner: self.inner.clone() }
            }
        }

        impl<$($p: $b,)* H: $crate::Shared> $crate::value::DescrParts for $descr<$($p,)* H> {
            type Parts = (
                <$crate::HeapDescr<H> as $crate::value::DescrParts>::Parts,
                <$crate::HeapDescr<$data> as $crate::value::DescrParts>::Parts,
            );
            fn to_parts(&self) -> Self::Parts {
                $crate::value::DescrParts::to_parts(&self.inner)
            }
            fn from_parts(parts: Self::Parts) -> Self {
                $descr { inner: $crate::value::DescrParts::from_parts(parts) }
            }
        }

        $crate::value::descr::shared_descr!(
            [$($p: $b,)* H: $crate::Shared] $descr<$($p,)* H>,
            name = concat!("mc::", stringify!($descr)),
            args = [$data, H]
        );

        impl<$($p: $b,)* H: $crate::Shared> PartialEq for $descr<$($p,)* H> {
            fn eq(&self, o: &Self) -> bool {
                self.inner == o.inner
            }
        }

        impl<$($p: $b,)* H: $crate::Shared> std::fmt::Debug for $descr<$($p,)* H> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($descr)).field(&self.inner).finish()
            }
        }

        impl<$($p: $b,)* H: $crate::Shared> $descr<$($p,)* H> {
            /// Opens the structure in this process (attaching its pool if
            /// needed).
            ///
            /// # Errors
            ///
            /// [`StructureError::Heap`](crate::structures::StructureError::Heap)
            /// with the errors of [`HeapDescr::open`](crate::HeapDescr::open):
            /// [`HeapError::Destroyed`](crate::HeapError::Destroyed) once the
            /// structure was destroyed.
            pub fn open(&self) -> $crate::structures::Result<$handle<$($p,)* H>> {
                Ok($handle { parts: self.inner.open()? })
            }
        }

        impl<$($p: $b,)* H: $crate::Shared> Clone for $handle<$($p,)* H> {
            fn clone(&self) -> Self {
                $handle { parts: self.parts.clone() }
            }
        }

        impl<$($p: $b,)* H: $crate::Shared> std::fmt::Debug for $handle<$($p,)* H> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($handle))
                    .field("pool", &self.parts.data.pool().name())
                    .finish_non_exhaustive()
            }
        }

        impl<$($p: $b,)* H: $crate::Shared> $handle<$($p,)* H> {
            /// A descriptor to pass to other processes.
            pub fn descr(&self) -> $descr<$($p,)* H> {
                $descr { inner: self.parts.descr() }
            }

            /// The header, read in place under its heap's shared lock. The
            /// data can change meanwhile (it has its own lock), so a
            /// process may wait on a [`Condvar`](crate::sync::Condvar) of
            /// the header while others change the structure; header
            /// [modifications](Self::modify_header) wait until the guard
            /// is dropped.
            ///
            /// # Errors
            ///
            /// [`StructureError::Heap`](crate::structures::StructureError::Heap)
            /// with the errors of [`Heap::read`](crate::Heap::read).
            pub fn header(&self) -> $crate::structures::Result<$crate::ReadGuard<'_, H>> {
                Ok(self.parts.header.read()?)
            }

            /// A copy of the header.
            ///
            /// # Errors
            ///
            /// [`StructureError::Heap`](crate::structures::StructureError::Heap)
            /// with the errors of [`Heap::copy`](crate::Heap::copy).
            pub fn header_copy(&self) -> $crate::structures::Result<H> {
                Ok(self.parts.header.copy()?)
            }

            /// Changes the header under its heap's exclusive lock (locks in
            /// the header are used through [`header`](Self::header)
            /// instead).
            ///
            /// # Errors
            ///
            /// [`StructureError::Heap`](crate::structures::StructureError::Heap)
            /// with the errors of [`Heap::modify`](crate::Heap::modify).
            pub fn modify_header<R>(
                &self,
                f: impl FnOnce(&$crate::Mutator<'_>, std::pin::Pin<&mut H::Repr>) -> R,
            ) -> $crate::structures::Result<R> {
                Ok(self.parts.header.modify(f)?)
            }

            /// The heap holding the structure's data (Netmulticore's
            /// `heap`); the header lives in a heap of its own, reached
            /// through [`header`](Self::header) and
            /// [`modify_header`](Self::modify_header). Use it for what the
            /// structure does not wrap: [`Heap::stats`](crate::Heap::stats),
            /// waits with a timeout ([`Heap::read_timeout`](crate::Heap::read_timeout),
            /// ...), its [descriptor](crate::Heap::descr), and recovery after a
            /// crash ([`Heap::poisoned`](crate::Heap::poisoned),
            /// [`Heap::recover`](crate::Heap::recover),
            /// [`Heap::validate`](crate::Heap::validate)). After a death
            /// inside a change of an [`SHashtbl`](crate::SHashtbl) or an
            /// [`SQueue`](crate::SQueue), recover it through the
            /// structure's own `recover`, which also finishes the change.
            ///
            /// The heap's root is the structure's own representation.
            /// Changing it through [`Heap::modify`](crate::Heap::modify) or
            /// [`Heap::assign`](crate::Heap::assign) bypasses the structure:
            /// data that breaks its invariants makes later operations fail
            /// with [`StructureError::Inconsistent`](crate::structures::StructureError::Inconsistent)
            /// (or [`OutOfBounds`](crate::structures::StructureError::OutOfBounds)),
            /// never panic; prefer the structure's own `modify` methods.
            pub fn heap(&self) -> &$crate::Heap<$data> {
                &self.parts.data
            }

            /// The pool the structure lives in.
            pub fn pool(&self) -> &$crate::Pool {
                self.parts.data.pool()
            }

            /// Runs a garbage collection of the data heap now.
            ///
            /// # Errors
            ///
            /// [`StructureError::Heap`](crate::structures::StructureError::Heap)
            /// with the errors of [`Heap::gc`](crate::Heap::gc).
            pub fn gc(&self) -> $crate::structures::Result<()> {
                Ok(self.parts.data.gc()?)
            }

            /// The data heap's figures.
            ///
            /// # Errors
            ///
            /// [`StructureError::Heap`](crate::structures::StructureError::Heap)
            /// with the errors of [`Heap::stats`](crate::Heap::stats).
            pub fn stats(&self) -> $crate::structures::Result<$crate::HeapStats> {
                Ok(self.parts.data.stats()?)
            }

            /// Destroys the structure: its memory goes back to the pool, and
            /// every handle and descriptor of it then fails with
            /// [`HeapError::Destroyed`](crate::HeapError::Destroyed).
            ///
            /// # Errors
            ///
            /// [`StructureError::Heap`](crate::structures::StructureError::Heap)
            /// with the errors of [`Heap::destroy`](crate::Heap::destroy)
            /// (values pinned, a guard of it held by this thread, ...); the
            /// structure then stays whole and usable through its other handles
            /// and descriptors.
            pub fn destroy(self) -> $crate::structures::Result<()> {
                self.parts.destroy()
            }
        }
    };
}
pub(crate) use structure_common;

/// The element at `i` of a vector of a heap, or
/// [`StructureError::OutOfBounds`].
fn pin_at<R>(vec: Pin<&mut SharedVec<R>>, i: usize) -> Result<Pin<&mut R>> {
    let len = vec.len();
    vec.get_pin(i)
        .ok_or(StructureError::OutOfBounds { index: i, len })
}
