//! The heap's journal of a replacement in place: how a value of several
//! words is overwritten so that a process killed in the middle never
//! leaves it half written.
//!
//! A replacement ([`Mutator::set`](super::Mutator::set) and its kin) first
//! writes the new representation into the journal, in the heap's header,
//! then commits the journal by storing the place's offset, then writes the
//! place and clears the journal. A death before the commit leaves the old
//! value whole; a death after it leaves a committed journal, which
//! [`Heap::recover`](super::Heap::recover) writes to the place again (a
//! redo: the same bytes, whatever part of them had reached the place)
//! before it checks the heap. A representation that one aligned store
//! writes is written directly. One larger than [`JOURNAL_BYTES`] is first
//! written into a block of the heap (the modification's scratch room,
//! reused by its next large replacements), which the journal names instead
//! of holding the bytes itself ([`store_from`](Journal::store_from)): the
//! block is garbage once the modification ends, and a death leaves it
//! alive until `recover` has copied it again (no collection runs in
//! between).
//!
//! An exchange of two values ([`Mutator::swap`](super::Mutator::swap))
//! writes both new values into the journal, names both places, and
//! commits the same way: a death leaves both values as they were, or both
//! exchanged once recovered (never one value in two places); two values
//! that do not fit the journal together go through a block the same way
//! ([`swap_from`](Journal::swap_from)).

use std::cell::UnsafeCell;
use std::mem::{align_of, size_of};
use std::sync::atomic::{compiler_fence, AtomicU64, Ordering};

use crate::in_shared::in_shared;

/// The most bytes of a representation that the journal holds itself (an
/// exchange: half of it); a larger one goes through a block of the heap
/// that the journal names.
pub const JOURNAL_BYTES: usize = 1024;

in_shared! {
    /// A replacement in place under way, used only by the holder of the
    /// heap's exclusive lock (and by a recovery, which holds it too).
    pub(super) struct Journal {
        /// The place's offset in the pool; 0 when no replacement is under
        /// way (offset 0 is the pool's own header, never a value).
        pub(super) place: AtomicU64,
        /// The bytes of the representation.
        len: AtomicU64,
        /// An exchange's second place (offset in the pool), whose new
        /// value follows the first's in `bytes`; 0 for a replacement.
        second: AtomicU64,
        /// Where the new bytes are when they do not fit `bytes`: a block of
        /// the heap (offset in the pool); 0 when they are in `bytes`.
        pub(super) source: AtomicU64,
        /// The representation(s), as their bytes (padding included).
        bytes: UnsafeCell<[u64; JOURNAL_BYTES / 8]>,
    }
}

/// Whether one aligned store writes a `R` (so that a death cannot split
/// it): at most a word, naturally aligned.
const fn one_store<R>() -> bool {
    let s = size_of::<R>();
    s == 0 || (s <= 8 && s.is_power_of_two() && align_of::<R>() >= s)
}

impl Journal {
    /// An empty journal.
    pub(super) const fn new() -> Self {
        Journal {
            place: AtomicU64::new(0),
            len: AtomicU64::new(0),
            second: AtomicU64::new(0),
            source: AtomicU64::new(0),
            bytes: UnsafeCell::new([0; JOURNAL_BYTES / 8]),
        }
    }

    /// Overwrites the value at `dst` with `r`, through the journal when a
    /// death could split the write. A representation larger than
    /// [`JOURNAL_BYTES`] is written directly: callers give those to
    /// [`store_from`](Self::store_from).
    ///
    /// # Safety
    ///
    /// The caller holds the heap's exclusive lock (so nobody else uses the
    /// journal), `dst` is valid for writes of a `R` and lies `dst - base`
    /// bytes into the pool whose base address is `base`, and overwriting it
    /// moves nothing out (representations have no `Drop`).
    #[inline]
    pub(super) unsafe fn store<R>(&self, base: usize, dst: *mut R, r: R) {
        debug_assert!(size_of::<R>() <= JOURNAL_BYTES, "given to `store_from`");
        if one_store::<R>() || size_of::<R>() > JOURNAL_BYTES {
            // SAFETY: the caller's contract.
            unsafe { dst.write(r) };
            return;
        }
        let buf = self.bytes.get().cast::<u8>();
        // SAFETY: the journal's bytes are `JOURNAL_BYTES` long, at least
        // `size_of::<R>()` (checked above), and only this lock holder uses
        // them; the write is unaligned, as the buffer is aligned to 8 only.
        unsafe { buf.cast::<R>().write_unaligned(r) };
        // SAFETY: the buffer holds `size_of::<R>()` bytes of a `R` (written
        // above); `dst` is valid for as many (the caller's contract) and
        // does not overlap the journal, which lies in the heap's header.
        unsafe { self.commit_and_copy(base, buf, dst.cast(), None, size_of::<R>(), 0) };
    }

    /// Overwrites the value at `dst` with the one at `src`, a block of the
    /// heap that holds the new representation: the journal names the
    /// block.
    ///
    /// # Safety
    ///
    /// As for [`store`](Self::store); `src` is readable for a `R`, lies in
    /// the same pool, apart from `dst`; its bytes stay as they are until
    /// this call returns, and the block stays allocated until the
    /// modification ends (a block of the heap, which no collection frees
    /// before then, nor before `recover` redoes the journal).
    #[inline]
    pub(super) unsafe fn store_from<R>(&self, base: usize, dst: *mut R, src: *const R) {
        // SAFETY: the caller's contract.
        unsafe {
            self.commit_and_copy(
                base,
                src.cast(),
                dst.cast(),
                None,
                size_of::<R>(),
                (src.addr() - base) as u64,
            )
        };
    }

    /// Commits the replacement of the `n` bytes at `dst` with the ones at
    /// `src` (and, for an exchange, of the `n` bytes at `second` with the
    /// `n` that follow), copies them, and clears the journal. `source` is
    /// the offset of `src` in the pool when it is a block of the heap, 0
    /// for the journal's own bytes.
    ///
    /// # Safety
    ///
    /// The caller holds the heap's exclusive lock; `src` is readable for
    /// `n` bytes (`2 * n` with `second`), and `dst` (and `second`)
    /// writable for `n`, all apart from each other and in the pool whose
    /// base address is `base`.
    #[inline]
    unsafe fn commit_and_copy(
        &self,
        base: usize,
        src: *const u8,
        dst: *mut u8,
        second: Option<*mut u8>,
        n: usize,
        source: u64,
    ) {
        // The journal is whole before its commit, and the commit is
        // before the places change (a death is an interruption of this
        // thread: program order is what another process finds).
        compiler_fence(Ordering::SeqCst);
        self.len.store(n as u64, Ordering::Relaxed);
        self.second.store(
            second.map_or(0, |b| (b.addr() - base) as u64),
            Ordering::Relaxed,
        );
        self.source.store(source, Ordering::Relaxed);
        self.place
            .store((dst.addr() - base) as u64, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
        #[cfg(test)]
        if let Some(k) = died_after::take() {
            // A death after `k` bytes of the first place were written.
            // SAFETY: as below, for fewer bytes.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, k.min(n)) };
            return;
        }
        // SAFETY: the caller's contract.
        unsafe { self.copy_and_clear(src, dst, second, n) };
    }

    /// Copies the `n` bytes at `src` to `dst` (and the `n` after them to
    /// `second`), then clears the journal: the end of a replacement, or
    /// its redo.
    ///
    /// # Safety
    ///
    /// The caller holds the heap's exclusive lock; `src` is readable for
    /// `n` bytes (`2 * n` with `second`), and `dst` (and `second`)
    /// writable for `n`, all apart from each other.
    #[inline]
    unsafe fn copy_and_clear(
        &self,
        src: *const u8,
        dst: *mut u8,
        second: Option<*mut u8>,
        n: usize,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            std::ptr::copy_nonoverlapping(src, dst, n);
            if let Some(second) = second {
                std::ptr::copy_nonoverlapping(src.add(n), second, n);
            }
        }
        compiler_fence(Ordering::SeqCst);
        self.place.store(0, Ordering::Release);
    }

    /// Exchanges the values at `a` and `b`, through the journal when both
    /// new values fit in it (else directly: callers give those to
    /// [`swap_from`](Self::swap_from)).
    ///
    /// # Safety
    ///
    /// As for [`store`](Self::store), for both places, which must not
    /// overlap.
    #[inline]
    pub(super) unsafe fn swap<R>(&self, base: usize, a: *mut R, b: *mut R) {
        let n = size_of::<R>();
        if n == 0 || 2 * n > JOURNAL_BYTES {
            // SAFETY: the caller's contract.
            unsafe { std::ptr::swap_nonoverlapping(a, b, 1) };
            return;
        }
        let buf = self.bytes.get().cast::<u8>();
        // SAFETY: both places are valid for `n` bytes (the caller's
        // contract), and the journal's bytes for `2 * n` (checked above),
        // apart from them; untyped copies carry padding as it is. Then the
        // new values go to their places.
        unsafe {
            std::ptr::copy_nonoverlapping(b.cast::<u8>(), buf, n);
            std::ptr::copy_nonoverlapping(a.cast::<u8>(), buf.add(n), n);
            self.commit_and_copy(base, buf, a.cast(), Some(b.cast()), n, 0);
        }
    }

    /// Exchanges the values at `a` and `b` through `src`, a block of the
    /// heap holding two `R`s: copies of the values at `b` and at `a`, in
    /// that order (the new values): the journal names the block.
    ///
    /// # Safety
    ///
    /// As for [`swap`](Self::swap), and for `src` as for
    /// [`store_from`](Self::store_from) (readable for two `R`s).
    #[inline]
    pub(super) unsafe fn swap_from<R>(&self, base: usize, a: *mut R, b: *mut R, src: *const R) {
        // SAFETY: the caller's contract.
        unsafe {
            self.commit_and_copy(
                base,
                src.cast(),
                a.cast(),
                Some(b.cast()),
                size_of::<R>(),
                (src.addr() - base) as u64,
            )
        };
    }

    /// The replacement or exchange a death interrupted, if any.
    pub(super) fn pending(&self) -> Option<Pending> {
        let nonzero = |w: &AtomicU64| match w.load(Ordering::Acquire) {
            0 => None,
            v => Some(v as usize),
        };
        Some(Pending {
            place: nonzero(&self.place)?,
            len: self.len.load(Ordering::Acquire) as usize,
            second: nonzero(&self.second),
            source: nonzero(&self.source),
        })
    }

    /// Forgets a pending replacement without writing it.
    pub(super) fn forget(&self) {
        self.place.store(0, Ordering::Release);
    }

    /// Writes the interrupted replacement or exchange again, to `dst` (and
    /// `second`), whose offsets [`pending`](Self::pending) gave, from the
    /// block at `source` (whose offset it gave too) or from the journal's
    /// own bytes, and clears the journal.
    ///
    /// # Safety
    ///
    /// The caller holds the heap's exclusive lock; `dst` (and `second`) are
    /// valid for writes of the pending length, and `source` for reads of
    /// that length (twice it for an exchange), all apart from each other;
    /// without a `source`, that length is at most [`JOURNAL_BYTES`].
    pub(super) unsafe fn redo(
        &self,
        dst: *mut u8,
        len: usize,
        second: Option<*mut u8>,
        source: Option<*const u8>,
    ) {
        let n = len * (1 + usize::from(second.is_some()));
        debug_assert!(source.is_some() || n <= JOURNAL_BYTES);
        let src = source.unwrap_or(self.bytes.get().cast::<u8>().cast_const());
        // SAFETY: the caller's contract; the journal lies in the header,
        // apart from the places.
        unsafe { self.copy_and_clear(src, dst, second, len) };
    }
}

/// A replacement or exchange that a death interrupted (offsets in the
/// pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pending {
    /// The (first) place.
    pub(super) place: usize,
    /// The bytes of one value.
    pub(super) len: usize,
    /// An exchange's second place.
    pub(super) second: Option<usize>,
    /// The block holding the new bytes, when they are not in the journal.
    pub(super) source: Option<usize>,
}

/// Tests stop the next journalled store of this thread part way, as a
/// death would: the journal committed, `k` bytes of the place written.
#[cfg(test)]
pub(super) mod died_after {
    use std::cell::Cell;

    thread_local! {
        static AFTER: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// The next journalled store stops after `k` bytes of the place.
    pub(in super::super) fn set(k: usize) {
        AFTER.with(|a| a.set(Some(k)));
    }

    pub(super) fn take() -> Option<usize> {
        AFTER.with(Cell::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Three(u64, u64, u64);

    #[test]
    fn a_store_cut_short_is_redone() {
        let j = Box::new(Journal::new());
        let mut place = Box::new(Three(1, 2, 3));
        let dst: *mut Three = &mut *place;
        let base = dst.addr() - 4096;
        // A whole store leaves nothing pending.
        // SAFETY: `place` is valid for writes; the test holds the journal.
        unsafe { j.store(base, dst, Three(4, 5, 6)) };
        assert_eq!(*place, Three(4, 5, 6));
        assert_eq!(j.pending(), None);
        // Cut after 8 bytes: the place is half old, half new.
        died_after::set(8);
        // SAFETY: as above.
        unsafe { j.store(base, dst, Three(7, 8, 9)) };
        assert_eq!(*place, Three(7, 5, 6));
        let p = Pending {
            place: 4096,
            len: 24,
            second: None,
            source: None,
        };
        assert_eq!(j.pending(), Some(p));
        // SAFETY: the pending length is a `Three`'s.
        unsafe { j.redo(dst.cast(), 24, None, None) };
        assert_eq!(*place, Three(7, 8, 9));
        assert_eq!(j.pending(), None);
    }

    #[test]
    fn an_exchange_cut_short_is_redone() {
        let j = Box::new(Journal::new());
        let mut places = Box::new([Three(1, 2, 3), Three(4, 5, 6)]);
        let [a, b] = places.each_mut().map(std::ptr::from_mut);
        let base = a.addr() - 4096;
        // SAFETY: two distinct places, valid for writes.
        unsafe { j.swap(base, a, b) };
        assert_eq!(*places, [Three(4, 5, 6), Three(1, 2, 3)]);
        assert_eq!(j.pending(), None);
        died_after::set(8);
        // SAFETY: as above.
        unsafe { j.swap(base, a, b) };
        // Cut short: the first place half written, the second not at all.
        assert_eq!(*places, [Three(1, 5, 6), Three(1, 2, 3)]);
        let p = j.pending().unwrap();
        assert_eq!(
            (p.place, p.len, p.second, p.source),
            (4096, 24, Some(4096 + 24), None)
        );
        // SAFETY: the pending places and length.
        unsafe { j.redo(a.cast(), p.len, Some(b.cast()), None) };
        assert_eq!(*places, [Three(1, 2, 3), Three(4, 5, 6)]);
        assert_eq!(j.pending(), None);
    }

    #[test]
    fn stores_and_exchanges_through_a_block_are_redone_from_it() {
        let j = Box::new(Journal::new());
        let mut places = Box::new([Three(1, 2, 3), Three(4, 5, 6)]);
        let block = Box::new([Three(7, 8, 9), Three(10, 11, 12)]);
        let [a, b] = places.each_mut().map(std::ptr::from_mut);
        let src: *const Three = block.as_ptr();
        let base = a.addr().min(src.addr()) - 4096;
        let off = |p: usize| p - base;
        died_after::set(8);
        // SAFETY: `a` is valid for writes, `src` for reads, apart; the test
        // holds the journal and `block` outlives the redo.
        unsafe { j.store_from(base, a, src) };
        assert_eq!(places[0], Three(7, 2, 3));
        let p = j.pending().unwrap();
        assert_eq!((p.place, p.len, p.second), (off(a.addr()), 24, None));
        assert_eq!(p.source, Some(off(src.addr())));
        // SAFETY: the pending place, length and block.
        unsafe { j.redo(a.cast(), p.len, None, Some(src.cast())) };
        assert_eq!(places[0], Three(7, 8, 9));
        assert_eq!(j.pending(), None);
        // An exchange through the block: the new values, `b`'s then `a`'s.
        died_after::set(0);
        // SAFETY: as above, for two places and a block of two values.
        unsafe { j.swap_from(base, a, b, src) };
        assert_eq!(*places, [Three(7, 8, 9), Three(4, 5, 6)]);
        let p = j.pending().unwrap();
        assert_eq!(p.second, Some(off(b.addr())));
        // SAFETY: the pending places, length and block.
        unsafe { j.redo(a.cast(), p.len, Some(b.cast()), Some(src.cast())) };
        assert_eq!(*places, [Three(7, 8, 9), Three(10, 11, 12)]);
        // Whole, the same leaves nothing pending, and a later store through
        // the journal's own bytes names no block.
        // SAFETY: as above.
        unsafe { j.store_from(base, b, src) };
        assert_eq!(places[1], Three(7, 8, 9));
        died_after::set(0);
        // SAFETY: as in `a_store_cut_short_is_redone`.
        unsafe { j.store(base, a, Three(0, 0, 0)) };
        assert_eq!(j.pending().unwrap().source, None);
    }

    #[test]
    fn one_word_stores_go_direct() {
        assert!(one_store::<u64>());
        assert!(one_store::<u32>());
        assert!(one_store::<()>());
        assert!(!one_store::<[u32; 2]>());
        assert!(!one_store::<Three>());
        assert!(!one_store::<[u8; 3]>());
        let j = Journal::new();
        let mut w = 1u64;
        died_after::set(0);
        // SAFETY: `w` is valid for writes.
        unsafe { j.store(0, &mut w, 2u64) };
        // Not journalled: the stop was not used, and the store is whole.
        assert_eq!(w, 2);
        assert_eq!(died_after::take(), Some(0));
    }
}
