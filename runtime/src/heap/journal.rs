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
//! writes, or one larger than [`JOURNAL_BYTES`], is written directly.
//!
//! An exchange of two values ([`Mutator::swap`](super::Mutator::swap))
//! writes both new values into the journal, names both places, and
//! commits the same way: a death leaves both values as they were, or both
//! exchanged once recovered (never one value in two places).

use std::cell::UnsafeCell;
use std::mem::{align_of, size_of};
use std::sync::atomic::{compiler_fence, AtomicU64, Ordering};

use crate::in_shared::in_shared;

/// The most bytes of a representation that a replacement in place writes
/// through the journal (an exchange: half of it).
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
        _pad: u64,
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
            _pad: 0,
            bytes: UnsafeCell::new([0; JOURNAL_BYTES / 8]),
        }
    }

    /// Overwrites the value at `dst` with `r`, through the journal when a
    /// death could split the write.
    ///
    /// # Safety
    ///
    /// The caller holds the heap's exclusive lock (so nobody else uses the
    /// journal), `dst` is valid for writes of a `R` and lies `dst - base`
    /// bytes into the pool whose base address is `base`, and overwriting it
    /// moves nothing out (representations have no `Drop`).
    #[inline]
    pub(super) unsafe fn store<R>(&self, base: usize, dst: *mut R, r: R) {
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
        // The journal is whole before its commit, and the commit is
        // before the place changes (a death is an interruption of this
        // thread: program order is what another process finds).
        compiler_fence(Ordering::SeqCst);
        self.len.store(size_of::<R>() as u64, Ordering::Relaxed);
        self.second.store(0, Ordering::Relaxed);
        self.place
            .store((dst.addr() - base) as u64, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
        #[cfg(test)]
        if let Some(k) = died_after::take() {
            // A death after `k` bytes of the place were written.
            // SAFETY: as below, for fewer bytes.
            unsafe { std::ptr::copy_nonoverlapping(buf, dst.cast::<u8>(), k.min(size_of::<R>())) };
            return;
        }
        // SAFETY: the buffer holds `size_of::<R>()` bytes of a `R` (written
        // above); `dst` is valid for as many (the caller's contract) and
        // does not overlap the journal, which lies in the heap's header.
        unsafe { std::ptr::copy_nonoverlapping(buf, dst.cast::<u8>(), size_of::<R>()) };
        compiler_fence(Ordering::SeqCst);
        self.place.store(0, Ordering::Release);
    }

    /// Exchanges the values at `a` and `b`, through the journal when both
    /// new values fit in it.
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
        // apart from them; untyped copies carry padding as it is.
        unsafe {
            std::ptr::copy_nonoverlapping(b.cast::<u8>(), buf, n);
            std::ptr::copy_nonoverlapping(a.cast::<u8>(), buf.add(n), n);
        }
        compiler_fence(Ordering::SeqCst);
        self.len.store(n as u64, Ordering::Relaxed);
        self.second
            .store((b.addr() - base) as u64, Ordering::Relaxed);
        self.place
            .store((a.addr() - base) as u64, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
        #[cfg(test)]
        if let Some(k) = died_after::take() {
            // A death after `k` bytes of the first place were written.
            // SAFETY: as below, for fewer bytes.
            unsafe { std::ptr::copy_nonoverlapping(buf, a.cast::<u8>(), k.min(n)) };
            return;
        }
        // SAFETY: as above: the new values go to their places.
        unsafe {
            std::ptr::copy_nonoverlapping(buf, a.cast::<u8>(), n);
            std::ptr::copy_nonoverlapping(buf.add(n), b.cast::<u8>(), n);
        }
        compiler_fence(Ordering::SeqCst);
        self.place.store(0, Ordering::Release);
    }

    /// The replacement or exchange a death interrupted, if any: the first
    /// place's offset in the pool, the length of a value, and the second
    /// place's offset for an exchange.
    pub(super) fn pending(&self) -> Option<(usize, usize, Option<usize>)> {
        match self.place.load(Ordering::Acquire) {
            0 => None,
            place => Some((
                place as usize,
                self.len.load(Ordering::Acquire) as usize,
                match self.second.load(Ordering::Acquire) {
                    0 => None,
                    second => Some(second as usize),
                },
            )),
        }
    }

    /// Forgets a pending replacement without writing it.
    pub(super) fn forget(&self) {
        self.place.store(0, Ordering::Release);
    }

    /// Writes the interrupted replacement or exchange again, to `dst` (and
    /// `second`), whose offsets [`pending`](Self::pending) gave, and
    /// clears the journal.
    ///
    /// # Safety
    ///
    /// The caller holds the heap's exclusive lock; `dst` (and `second`) are
    /// valid for writes of the pending length, and that length (twice it
    /// for an exchange) is at most [`JOURNAL_BYTES`].
    pub(super) unsafe fn redo(&self, dst: *mut u8, len: usize, second: Option<*mut u8>) {
        debug_assert!(len * (1 + usize::from(second.is_some())) <= JOURNAL_BYTES);
        let buf = self.bytes.get().cast::<u8>();
        // SAFETY: the caller's contract; the journal lies in the header,
        // apart from the places.
        unsafe {
            std::ptr::copy_nonoverlapping(buf, dst, len);
            if let Some(second) = second {
                std::ptr::copy_nonoverlapping(buf.add(len), second, len);
            }
        }
        compiler_fence(Ordering::SeqCst);
        self.place.store(0, Ordering::Release);
    }
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
        assert_eq!(j.pending(), Some((4096, 24, None)));
        // SAFETY: the pending length is a `Three`'s.
        unsafe { j.redo(dst.cast(), 24, None) };
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
        let (first, len, second) = j.pending().unwrap();
        assert_eq!((first, len, second), (4096, 24, Some(4096 + 24)));
        // SAFETY: the pending places and length.
        unsafe { j.redo(a.cast(), len, Some(b.cast())) };
        assert_eq!(*places, [Three(1, 2, 3), Three(4, 5, 6)]);
        assert_eq!(j.pending(), None);
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
