//! The mutator: how a modification changes a heap.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::pin::Pin;
use std::sync::atomic::Ordering;

use super::alloc::{HeapAllocator, HeapWriter};
use super::error::heap_error;
use super::guards::Exclusive;
use super::{HeapError, HeapHeader, JOURNAL_BYTES};
use crate::in_shared::at;
use crate::pool::Pool;
use crate::value::{
    pod_reprs, CopyError, FreshArray, Shared, SharedOption, SharedString, SharedVec, Writer,
};

/// Changes a heap during [`Heap::modify`](super::Heap::modify): copies values in, swaps values,
/// grows vectors. Everything it returns borrows it, so nothing can outlive
/// the modification.
///
/// A method that would write over or move a lock that a process holds
/// pinned ([`Heap::pin_lock`](super::Heap::pin_lock)) fails with
/// [`HeapError::LockPinned`] and changes nothing.
pub struct Mutator<'h> {
    pool: &'h Pool,
    h: &'h Exclusive<'h>,
    /// The heap's allocator, lent for the modification. Borrowed by one
    /// mutator call at a time: calls do not nest (none runs code that can
    /// reach the mutator: copies in run `to_repr`, which sees a `Writer`
    /// only), and the mutator is `!Sync`.
    alloc: UnsafeCell<HeapAllocator<'h>>,
    /// Room (address, bytes) for the new bytes of a replacement or an
    /// exchange too large for the heap's journal, made at the first and
    /// reused by the next ones of the modification (each is done, its
    /// journal cleared, before the next writes here); garbage once the
    /// modification ends. (0, 0) before the first.
    scratch: Cell<(usize, usize)>,
    _not_sync: PhantomData<Cell<()>>,
}

/// The unit of [`Mutator`]'s scratch room: its alignment is the most a
/// representation gets there (one aligned more gets a block of its own).
#[repr(C, align(16))]
struct ScratchUnit([u8; 16]);

impl fmt::Debug for Mutator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutator")
            .field("pool", &self.pool.name())
            .field(
                "heap",
                &format_args!("{:#x}", std::ptr::from_ref::<HeapHeader>(self.h).addr()),
            )
            .finish()
    }
}

impl<'h> Mutator<'h> {
    /// The mutator of the heap `h` holds, in `pool`, with the heap's
    /// allocator until it is dropped.
    #[inline]
    pub(super) fn new(pool: &'h Pool, h: &'h Exclusive<'h>) -> Self {
        Mutator {
            pool,
            h,
            alloc: UnsafeCell::new(h.allocator()),
            scratch: Cell::new((0, 0)),
            _not_sync: PhantomData,
        }
    }

    #[inline]
    fn write<R>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<R, CopyError>,
    ) -> Result<R, HeapError> {
        // SAFETY: the only borrow of the allocator while it lasts: mutator
        // calls do not nest, and the mutator is `!Sync` (see `alloc`).
        let alloc = unsafe { &mut *self.alloc.get() };
        let mut w = HeapWriter { alloc };
        // SAFETY: every representation made with this writer is written
        // into this heap by the callers below.
        let mut wr = unsafe { Writer::new(&mut w) };
        let r = f(&mut wr);
        if wr.wrote_lock() {
            self.h.has_locks.store(1, Ordering::Release);
        }
        r.map_err(|e| heap_error(e, w.alloc.take_error()))
    }

    /// Checks that a place lies in this heap: local values (which safe
    /// code can build for pointer-free variants) and values of other heaps
    /// must never receive this heap's pointers, nor be swapped with its
    /// values, or the collector would free what they point to.
    fn check_place<R>(&self, place: &R) -> Result<(), HeapError> {
        let size = size_of::<R>();
        if size == 0 {
            return Ok(());
        }
        let addr = std::ptr::from_ref(place).addr();
        let tag = self.h.tag;
        if self.pool.page_owner(addr) == tag && self.pool.page_owner(addr + size - 1) == tag {
            Ok(())
        } else {
            Err(HeapError::ForeignPlace)
        }
    }

    /// Refuses to write over or move `len` bytes at `addr` when they hold
    /// a pinned lock ([`Heap::pin_lock`](super::Heap::pin_lock)).
    #[inline]
    fn check_unpinned(&self, addr: usize, len: usize) -> Result<(), HeapError> {
        if len == 0 || self.h.lock_pins.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        self.check_unpinned_slow(addr, len)
    }

    #[cold]
    fn check_unpinned_slow(&self, addr: usize, len: usize) -> Result<(), HeapError> {
        let h: &HeapHeader = self.h;
        let owns = |a: usize, n: usize| super::recovery::in_chunks(self.pool, h, a, n);
        let limit = super::recovery::max_nodes(self.pool);
        if super::lock_pin::lock_pinned(h, addr, len, &owns, limit) {
            Err(HeapError::LockPinned)
        } else {
            Ok(())
        }
    }

    /// [`check_unpinned`](Self::check_unpinned) for a place.
    fn check_place_unpinned<R>(&self, place: &R) -> Result<(), HeapError> {
        self.check_unpinned(std::ptr::from_ref(place).addr(), size_of::<R>())
    }

    /// Refuses to move the elements of `vec` (to another array) when one
    /// holds a pinned lock.
    fn check_elements_unpinned<R>(&self, vec: &SharedVec<R>) -> Result<(), HeapError> {
        let (ptr, len, _) = vec.raw_parts();
        self.check_unpinned(ptr, len.saturating_mul(size_of::<R>()))
    }

    /// Refuses to write `n` more elements past the end of `vec` (within its
    /// capacity) where a pinned lock lies (left there by a `truncate`).
    fn check_spare_unpinned<R>(&self, vec: &SharedVec<R>, n: usize) -> Result<(), HeapError> {
        let (ptr, len, _) = vec.raw_parts();
        let at = ptr.saturating_add(len.saturating_mul(size_of::<R>()));
        self.check_unpinned(at, n.saturating_mul(size_of::<R>()))
    }

    /// Replaces the value at `place` with a copy of `value`.
    ///
    /// A process killed in the middle leaves the old value whole, or the
    /// new one once [`Heap::recover`](super::Heap::recover) has run: a
    /// representation of several words is written through the heap's
    /// journal (one larger than [`JOURNAL_BYTES`](super::JOURNAL_BYTES) is
    /// first copied into a block of the heap, which the journal names: one
    /// block for all the modification's large replacements, garbage once
    /// it ends).
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `place` is not in this heap, and the
    /// errors of [`add`](Self::add).
    pub fn set<V: Shared>(&self, place: Pin<&mut V::Repr>, value: &V) -> Result<(), HeapError> {
        self.check_place(&*place)?;
        self.check_place_unpinned(&*place)?;
        let r = self.write(|w| value.to_repr(w))?;
        self.store(place, r)
    }

    /// Replaces the string at `place` with a copy of `s`.
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `place` is not in this heap;
    /// [`HeapError::OutOfMemory`], [`HeapError::TooLarge`] and
    /// [`HeapError::Pool`] as for [`add`](Self::add).
    pub fn set_str(&self, place: Pin<&mut SharedString>, s: &str) -> Result<(), HeapError> {
        self.check_place(&*place)?;
        self.check_place_unpinned(&*place)?;
        let r = self.write(|w| SharedString::write(s, w))?;
        self.store(place, r)
    }

    /// Replaces the value at `place` with a deep copy of a shared value
    /// (from this heap, another heap or a camlbox).
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `place` is not in this heap, and the
    /// errors of [`add`](Self::add) for `src`.
    pub fn set_from<V: Shared>(
        &self,
        place: Pin<&mut V::Repr>,
        src: &V::Repr,
    ) -> Result<(), HeapError> {
        self.check_place(&*place)?;
        self.check_place_unpinned(&*place)?;
        let r = self.write(|w| V::repr_to_repr(src, w))?;
        self.store(place, r)
    }

    /// Copies `value` into the heap, unlinked: link it with
    /// [`Mutator::swap`] before the modification ends, or it is garbage.
    ///
    /// # Errors
    ///
    /// [`HeapError::OutOfMemory`] when the pool has no room for the copy;
    /// [`HeapError::TooLarge`] when `value` is too large to copy;
    /// [`HeapError::Lock`] when `value` holds a lock that this thread holds;
    /// [`HeapError::Pool`] when the pool fails otherwise.
    #[allow(clippy::mut_from_ref)] // each call returns a fresh, distinct value
    #[inline]
    pub fn add<V: Shared>(&self, value: &V) -> Result<Pin<&mut V::Repr>, HeapError> {
        let addr = self.write(|w| {
            let r = value.to_repr(w)?;
            w.put(r)
        })?;
        // SAFETY: a fresh value in the heap, reachable only through this
        // reference, alive until the modification ends (no collection runs
        // before), and never moved.
        Ok(unsafe { Pin::new_unchecked(&mut *at::<V::Repr>(addr)) })
    }

    /// Exchanges two values of the heap.
    ///
    /// A process killed in the middle leaves both as they were, or both
    /// exchanged once [`Heap::recover`](super::Heap::recover) has run
    /// (through the heap's journal; two representations larger together
    /// than [`JOURNAL_BYTES`](super::JOURNAL_BYTES) are first copied into a
    /// block of the heap, which the journal names, as for
    /// [`set`](Self::set)).
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when either is not in this heap;
    /// [`HeapError::LockPinned`] when either holds a pinned lock;
    /// [`HeapError::OutOfMemory`] (and [`HeapError::Pool`]) when the heap
    /// has no room for the block of two large values (nothing is
    /// exchanged).
    pub fn swap<R>(&self, a: Pin<&mut R>, b: Pin<&mut R>) -> Result<(), HeapError> {
        self.check_place(&*a)?;
        self.check_place(&*b)?;
        self.check_place_unpinned(&*a)?;
        self.check_place_unpinned(&*b)?;
        let n = size_of::<R>();
        // SAFETY: the values stay in their places: they are exchanged in
        // place below (through copies of their bytes).
        let (a, b) = unsafe { (a.get_unchecked_mut(), b.get_unchecked_mut()) };
        if n > 0 && 2 * n > JOURNAL_BYTES {
            // The new values (the bytes of `b`'s, then of `a`'s) in the
            // scratch room.
            let src = at::<R>(self.scratch::<R>(2)?);
            // SAFETY: the room is writable for two `R`s, apart from the
            // places (fresh memory of the heap); untyped copies, which are
            // never used as values of their own (representations have no
            // `Drop`), only copied back.
            unsafe {
                std::ptr::copy_nonoverlapping(std::ptr::from_mut(b).cast::<u8>(), src.cast(), n);
                std::ptr::copy_nonoverlapping(
                    std::ptr::from_mut(a).cast::<u8>(),
                    src.cast::<u8>().add(n),
                    n,
                );
            }
            // SAFETY: both places are exclusively borrowed, hence distinct
            // (and not overlapping), and lie in this heap (checked), so
            // exchanging them moves no value out of it; the heap is locked
            // exclusively by this thread; the room holds the two new
            // values, apart from the places, allocated until the
            // modification ends (no collection runs before).
            unsafe { self.h.journal.swap_from(self.pool.base(), a, b, src) };
            return Ok(());
        }
        // SAFETY: as above, without a block.
        unsafe { self.h.journal.swap(self.pool.base(), a, b) };
        Ok(())
    }

    /// A fresh array holding `vec`'s elements but the one at `i`, in
    /// order, then the one at `i` last: the same values, moved bitwise (for
    /// [`replace_array`](Self::replace_array), which a caller follows with
    /// a [`truncate`](Self::truncate) by one). Until it replaces `vec`'s
    /// array nothing refers to it, and if it never does it is garbage.
    ///
    /// # Safety
    ///
    /// The array holds bitwise duplicates of `vec`'s values: it must only
    /// be given to [`replace_array`](Self::replace_array) of `vec` (with no
    /// change of `vec` in between), or dropped.
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `vec` is not in this heap;
    /// [`HeapError::OutOfMemory`] when the heap has no room for the array.
    pub(crate) unsafe fn array_without<R>(
        &self,
        vec: &SharedVec<R>,
        i: usize,
    ) -> Result<FreshArray<R>, HeapError> {
        self.check_place(vec)?;
        let (ptr, n, _) = vec.raw_parts();
        let mut a = self.write(|w| w.alloc_fresh::<R>(n))?;
        if i < n {
            let src = at::<R>(ptr);
            // SAFETY: `ptr` holds `n` initialised elements (the vector's
            // invariant), outside the fresh array; the copies go to the
            // fresh array, which fits `n` of them. The values are not
            // used as values of two places: the fresh array is unreachable
            // until `replace_array` makes it the vector's array and the old
            // one garbage (this function's contract; representations have
            // no `Drop`).
            unsafe {
                a.move_from(src, i);
                a.move_from(src.add(i + 1), n - i - 1);
                a.move_from(src.add(i), 1);
            }
        }
        Ok(a)
    }

    /// A vector of `vec`'s elements from `from` on (moved bitwise into a
    /// fresh array, as long as they are), to be stored in place of `vec`
    /// with the rest of its owner's value by one
    /// [`store_repr`](Self::store_repr).
    ///
    /// # Safety
    ///
    /// The vector holds bitwise duplicates of `vec`'s values: it must only
    /// be stored (with [`store_repr`](Self::store_repr)) in place of the
    /// value that holds `vec`, with no change of `vec` in between, or
    /// dropped.
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `vec` is not in this heap;
    /// [`HeapError::OutOfMemory`] when the heap has no room for the array.
    pub(crate) unsafe fn vec_from<R>(
        &self,
        vec: &SharedVec<R>,
        from: usize,
    ) -> Result<SharedVec<R>, HeapError> {
        self.check_place(vec)?;
        let (ptr, n, _) = vec.raw_parts();
        let from = from.min(n);
        let mut a = self.write(|w| w.alloc_fresh::<R>(n - from))?;
        // SAFETY: `ptr` holds `n` initialised elements (the vector's
        // invariant), outside the fresh array, which fits the `n - from`
        // moved; they become the values of one place only once the caller
        // stores the vector in place of `vec`'s owner (this function's
        // contract).
        unsafe {
            a.move_from(at::<R>(ptr).add(from), n - from);
            Ok(SharedVec::from_fresh(a))
        }
    }

    /// A vector of `vec`'s elements (moved bitwise) followed by `extra`
    /// copies of `fill`, in a fresh array, to be stored in place of `vec`
    /// with [`store_repr`](Self::store_repr): a vector grown with one
    /// replacement.
    ///
    /// # Safety
    ///
    /// As for [`vec_from`](Self::vec_from).
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `vec` is not in this heap;
    /// [`HeapError::TooLarge`] when the length overflows; the errors of
    /// [`add`](Self::add) for the array and the copies (the fresh array is
    /// garbage then, and `vec` unchanged).
    pub(crate) unsafe fn vec_grown<V: Shared>(
        &self,
        vec: &SharedVec<V::Repr>,
        extra: usize,
        fill: &V,
    ) -> Result<SharedVec<V::Repr>, HeapError> {
        self.check_place(vec)?;
        let (ptr, n, _) = vec.raw_parts();
        let total = n.checked_add(extra).ok_or(HeapError::TooLarge)?;
        let mut a = self.write(|w| w.alloc_fresh::<V::Repr>(total))?;
        // SAFETY: as in `vec_from`: `n` initialised elements, moved to the
        // fresh array, which fits them and the copies after them.
        unsafe { a.move_from(at::<V::Repr>(ptr), n) };
        for _ in 0..extra {
            let r = self.write(|w| fill.to_repr(w))?;
            a.push(r);
        }
        Ok(SharedVec::from_fresh(a))
    }

    /// Overwrites the value at `place` with the representation `r` as one
    /// replacement in place (through the heap's journal, so that a death
    /// leaves the old value or the new one): how a structure changes
    /// several fields of its value at once.
    ///
    /// # Safety
    ///
    /// `r` must be a valid representation whose arrays are blocks of this
    /// heap that no reachable value but the one at `place` refers to.
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `place` is not in this heap;
    /// [`HeapError::LockPinned`] when it holds a pinned lock;
    /// [`HeapError::OutOfMemory`] when a representation larger than the
    /// journal finds no room for its block (the place is left as it was).
    pub(crate) unsafe fn store_repr<R>(&self, place: Pin<&mut R>, r: R) -> Result<(), HeapError> {
        self.check_place(&*place)?;
        self.check_place_unpinned(&*place)?;
        self.store(place, r)
    }

    /// Makes `array` (from [`array_without`](Self::array_without) of
    /// `vec`) `vec`'s array; see [`SharedVec::install`] for the order of
    /// the writes.
    ///
    /// # Safety
    ///
    /// `array` must come from this mutator's heap and hold the values of
    /// `vec` ([`array_without`](Self::array_without) of `vec`, with no
    /// change of `vec` in between).
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `vec` is not in this heap;
    /// [`HeapError::LockPinned`] when its elements hold a pinned lock.
    pub(crate) unsafe fn replace_array<R>(
        &self,
        vec: Pin<&mut SharedVec<R>>,
        array: FreshArray<R>,
    ) -> Result<(), HeapError> {
        self.check_place(&*vec)?;
        self.check_elements_unpinned(&vec)?;
        if array.len() != vec.len() || array.capacity() != vec.len() {
            return Err(HeapError::Corrupt("an array that does not fit its vector"));
        }
        // SAFETY: the caller's contract: an array of this heap holding the
        // vector's values, which the old array stops holding.
        unsafe { vec.install(array) };
        Ok(())
    }

    /// Appends a copy of `value` to a vector of the heap (amortised O(1):
    /// the array is reallocated with twice the room when full).
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `vec` is not in this heap, and the
    /// errors of [`add`](Self::add).
    pub fn push<V: Shared>(
        &self,
        vec: Pin<&mut SharedVec<V::Repr>>,
        value: &V,
    ) -> Result<(), HeapError> {
        self.push_with(vec, |w| value.to_repr(w))
    }

    /// Appends the representation `make` writes to a vector of the heap,
    /// as [`push`](Self::push) does (a pair of values, say, written from
    /// two references).
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    #[inline]
    pub(crate) fn push_with<R>(
        &self,
        mut vec: Pin<&mut SharedVec<R>>,
        make: impl FnOnce(&mut Writer<'_>) -> Result<R, CopyError>,
    ) -> Result<(), HeapError> {
        self.check_place(&*vec)?;
        let r = self.write(make)?;
        // When full, the array moves to one with twice the room.
        self.reserve(vec.as_mut(), 1)?;
        self.check_spare_unpinned(&vec, 1)?;
        if vec.push_within_capacity(r).is_err() {
            unreachable!("mc: room was reserved");
        }
        Ok(())
    }

    /// The most bytes the heap's pool can grow to.
    pub(crate) fn pool_max_size(&self) -> usize {
        self.pool.stats().max_size
    }

    /// Appends a deep copy of a shared value (from this heap, another heap
    /// or a camlbox) to a vector of the heap, as [`push`](Self::push) does
    /// for a local value.
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `vec` is not in this heap, and the
    /// errors of [`add`](Self::add) for `src`.
    pub fn push_from<V: Shared>(
        &self,
        vec: Pin<&mut SharedVec<V::Repr>>,
        src: &V::Repr,
    ) -> Result<(), HeapError> {
        self.push_with(vec, |w| V::repr_to_repr(src, w))
    }

    /// Replaces the optional value at `place` with `Some` of a copy of
    /// `value` (without first building an `Option<V>` locally).
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `place` is not in this heap, and the
    /// errors of [`add`](Self::add).
    pub fn set_some<V: Shared>(
        &self,
        place: Pin<&mut SharedOption<V::Repr>>,
        value: &V,
    ) -> Result<(), HeapError> {
        self.check_place(&*place)?;
        self.check_place_unpinned(&*place)?;
        let r = self.write(|w| value.to_repr(w))?;
        self.put_some(place, r)
    }

    /// [`set_some`](Self::set_some) with a copy of `src`, a value of this
    /// heap, another heap or a camlbox.
    ///
    /// # Errors
    ///
    /// As [`set_some`](Self::set_some).
    pub(crate) fn set_some_from<V: Shared>(
        &self,
        place: Pin<&mut SharedOption<V::Repr>>,
        src: &V::Repr,
    ) -> Result<(), HeapError> {
        self.check_place(&*place)?;
        self.check_place_unpinned(&*place)?;
        let r = self.write(|w| V::repr_to_repr(src, w))?;
        self.put_some(place, r)
    }

    /// Makes the option at `place` `None` with one byte's write (its value
    /// becomes garbage).
    ///
    /// # Errors
    ///
    /// [`HeapError::ForeignPlace`] when `place` is not in this heap;
    /// [`HeapError::LockPinned`] when its value holds a pinned lock.
    pub(crate) fn set_none<R>(&self, place: Pin<&mut SharedOption<R>>) -> Result<(), HeapError> {
        self.check_place(&*place)?;
        self.check_place_unpinned(&*place)?;
        place.empty();
        Ok(())
    }

    /// Makes room in a vector of the heap for at least `additional` more
    /// elements without reallocation (the elements are moved bitwise into a
    /// fresh array when the current one is too small; the old array becomes
    /// garbage).
    ///
    /// # Errors
    ///
    /// [`HeapError::TooLarge`] when the capacity needed overflows;
    /// [`HeapError::OutOfMemory`] and [`HeapError::Pool`] as for
    /// [`add`](Self::add).
    pub fn reserve<R>(
        &self,
        vec: Pin<&mut SharedVec<R>>,
        additional: usize,
    ) -> Result<(), HeapError> {
        self.reserve_from(vec, additional, 4)
    }

    /// [`reserve`](Self::reserve), with a first array of at least `first`
    /// elements (where `reserve` makes room for 4): a vector that most
    /// often holds one or two elements (a chain of a hash table) starts
    /// with room for two, then doubles.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Self::reserve).
    #[inline]
    pub(crate) fn reserve_from<R>(
        &self,
        vec: Pin<&mut SharedVec<R>>,
        additional: usize,
        first: usize,
    ) -> Result<(), HeapError> {
        let (_, len, cap) = vec.raw_parts();
        let need = len.checked_add(additional).ok_or(HeapError::TooLarge)?;
        if need <= cap {
            return Ok(());
        }
        self.check_elements_unpinned(&vec)?;
        let new_cap = need.max(cap * 2).max(first);
        let array = self.write(|w| w.alloc_fresh::<R>(new_cap))?;
        vec.relocate(array);
        Ok(())
    }

    /// Appends copies of `values` to a vector of the heap, reallocating at
    /// most once; numbers and other plain-data types are copied with one
    /// `memcpy` into the vector's spare room.
    ///
    /// ```
    /// let pool = mc::Pool::create(16 << 20)?;
    /// let heap = mc::Heap::create(&pool, &Vec::<u8>::new())?;
    /// heap.modify(|m, v| m.extend_from_slice(v, b"bytes"))??;
    /// assert_eq!(heap.read()?.as_slice(), b"bytes");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The errors of [`reserve`](Self::reserve), then of [`add`](Self::add) for
    /// each value; the values copied before an error stay appended.
    pub fn extend_from_slice<V: Shared>(
        &self,
        mut vec: Pin<&mut SharedVec<V::Repr>>,
        values: &[V],
    ) -> Result<(), HeapError> {
        if values.is_empty() {
            return Ok(());
        }
        self.reserve(vec.as_mut(), values.len())?;
        self.check_spare_unpinned(&vec, values.len())?;
        if V::IS_POD {
            if !vec.extend_pod::<V>(pod_reprs(values)) {
                unreachable!("mc: room was reserved");
            }
            return Ok(());
        }
        for v in values {
            let r = self.write(|w| v.to_repr(w))?;
            if vec.as_mut().push_within_capacity(r).is_err() {
                unreachable!("mc: room was reserved");
            }
        }
        Ok(())
    }

    /// Removes the last element of a vector of the heap and returns a copy
    /// of it.
    pub fn pop<V: Shared>(&self, vec: Pin<&mut SharedVec<V::Repr>>) -> Option<V> {
        let len = vec.len();
        if len == 0 {
            return None;
        }
        let v = V::from_repr(&vec.as_slice()[len - 1]);
        let mut vec = vec;
        vec.as_mut().truncate(len - 1);
        self.shrink(vec);
        Some(v)
    }

    /// Shortens a vector of the heap to `len` elements. When fewer than a
    /// quarter of its room stays used, the elements move to a smaller
    /// array (the old one becomes garbage), so that the heap's memory stays
    /// proportional to what is reachable.
    pub fn truncate<R>(&self, vec: Pin<&mut SharedVec<R>>, len: usize) {
        if len < vec.len() {
            let mut vec = vec;
            vec.as_mut().truncate(len);
            self.shrink(vec);
        }
    }

    /// Moves the elements of a vector that uses less than a quarter of its
    /// room to an array twice their number (none when empty). Keeps the
    /// vector as it is when the heap cannot allocate.
    fn shrink<R>(&self, vec: Pin<&mut SharedVec<R>>) {
        let (_, len, cap) = vec.raw_parts();
        if cap <= 4 || len > cap / 4 {
            return;
        }
        if len == 0 {
            vec.forget_array();
            return;
        }
        if self.check_elements_unpinned(&vec).is_err() {
            // A pinned lock stays where it is.
            return;
        }
        let new_cap = (2 * len).max(4);
        let array: FreshArray<R> = match self.write(|w| w.alloc_fresh::<R>(new_cap)) {
            Ok(array) => array,
            Err(_) => return,
        };
        vec.relocate(array);
    }

    /// Overwrites the value at `place` with `r`, so that a death in the
    /// middle leaves the old value or, after [`Heap::recover`](super::Heap::recover),
    /// the new one (see [`journal`](super::journal)). A representation
    /// larger than the journal goes through the modification's scratch
    /// room ([`scratch`](Self::scratch)).
    ///
    /// # Errors
    ///
    /// [`HeapError::OutOfMemory`] (and the other errors of
    /// [`add`](Self::add)) when that block cannot be allocated: the place
    /// is left as it was.
    #[inline]
    fn store<R>(&self, place: Pin<&mut R>, r: R) -> Result<(), HeapError> {
        if size_of::<R>() > JOURNAL_BYTES {
            // The new value in the scratch room (fresh memory of the heap,
            // apart from the place, allocated until the modification ends).
            let src = at::<R>(self.scratch::<R>(1)?);
            // SAFETY: the room is writable for a `R` and aligned for it
            // (`scratch`); nothing else uses it while this store runs.
            unsafe { src.write(r) };
            // SAFETY: as below; and the room holds the new `R`, in this
            // heap, apart from the place, allocated until the modification
            // ends (no collection runs before).
            unsafe {
                self.h
                    .journal
                    .store_from(self.pool.base(), place.get_unchecked_mut(), src)
            };
            return Ok(());
        }
        // SAFETY: the mutator's heap is locked exclusively by this thread
        // (the `Exclusive` it borrows); the place is a value of the heap
        // (callers checked it), in the pool whose base is given, and
        // overwriting in place moves nothing out (representations have no
        // `Drop`); the old value becomes garbage for the collector.
        unsafe {
            self.h
                .journal
                .store(self.pool.base(), place.get_unchecked_mut(), r)
        };
        Ok(())
    }

    /// Room in the heap for `n` values of `R` (the new bytes of a store or
    /// an exchange too large for the journal): the modification's scratch
    /// room, made or grown (to twice what it was, at least) when it is too
    /// small; a block of its own for a `R` aligned to more than 16. Its
    /// address.
    ///
    /// # Errors
    ///
    /// [`HeapError::OutOfMemory`] (and the other errors of
    /// [`add`](Self::add)) when the heap has no room for it.
    fn scratch<R>(&self, n: usize) -> Result<usize, HeapError> {
        let bytes = size_of::<R>().checked_mul(n).ok_or(HeapError::TooLarge)?;
        if align_of::<R>() > align_of::<ScratchUnit>() {
            return Ok(self.write(|w| w.alloc_fresh::<R>(n))?.into_parts().0);
        }
        let (addr, have) = self.scratch.get();
        if addr != 0 && have >= bytes {
            return Ok(addr);
        }
        let units = bytes
            .max(have.saturating_mul(2))
            .div_ceil(size_of::<ScratchUnit>());
        let addr = self
            .write(|w| w.alloc_fresh::<ScratchUnit>(units))?
            .into_parts()
            .0;
        self.scratch.set((addr, units * size_of::<ScratchUnit>()));
        Ok(addr)
    }

    /// Makes the option at `place` `Some(r)`: an empty place is filled value
    /// first, tag last (a process killed in between leaves it empty); a full
    /// one is overwritten through the journal.
    ///
    /// # Errors
    ///
    /// As [`store`](Self::store).
    fn put_some<R>(&self, mut place: Pin<&mut SharedOption<R>>, r: R) -> Result<(), HeapError> {
        match place.as_mut().fill(r) {
            Ok(()) => Ok(()),
            Err(r) => self.store(place, SharedOption::Some(r)),
        }
    }

    /// The heap's allocator figures so far.
    pub fn live_bytes(&self) -> usize {
        // SAFETY: a shared borrow that ends here, while no mutator call
        // borrows the allocator (calls do not nest).
        unsafe { &*self.alloc.get() }.live_bytes
    }
}
