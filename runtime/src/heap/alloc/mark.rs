//! The collector's marker: which blocks a collection reaches.

use super::{FREE, MARK};
use crate::in_shared::at;
use crate::value::Mark;

/// Marks heap blocks for the collector.
pub(crate) struct Marker<'a> {
    /// Whether an address lies in a chunk of this heap.
    owns: &'a dyn Fn(usize) -> bool,
    /// The page (address / [`PAGE_SIZE`](crate::pool::PAGE_SIZE), plus 1)
    /// that `owns` last accepted, 0 for none: blocks met one after the
    /// other mostly share a page, and a page of the heap stays the heap's
    /// while it is locked.
    page: usize,
}

impl<'a> Marker<'a> {
    /// A marker of the heap whose chunks `owns` tells. Its pages must stay
    /// the heap's while the marker lives (the heap's lock is held).
    pub(crate) fn new(owns: &'a dyn Fn(usize) -> bool) -> Self {
        Marker { owns, page: 0 }
    }

    /// Whether the header word at `b` lies in a chunk of the heap.
    #[inline]
    fn owns(&mut self, b: usize) -> bool {
        let page = b / crate::pool::PAGE_SIZE + 1;
        if page == self.page {
            return true;
        }
        let yes = (self.owns)(b);
        if yes {
            self.page = page;
        }
        yes
    }
}

// SAFETY: `mark` accepts only 8-aligned addresses whose block header lies
// in a chunk of this heap (the pool's page owner table says so, or said so
// for the same page during this collection, which holds the heap's lock so
// that no page leaves it; user data cannot change the table) and is an
// allocated (non-free) block, and sets the mark
// bit so that each block is accepted once per collection. Values in a heap
// only point to blocks of the same heap: the copier allocates every pointee
// in the heap it writes to, and the mutator refuses places of other heaps.
unsafe impl Mark for Marker<'_> {
    fn mark(&mut self, addr: usize) -> bool {
        if addr < 8 || !addr.is_multiple_of(8) || !self.owns(addr - 8) {
            return false;
        }
        let b = addr - 8;
        // SAFETY: `b` lies in a chunk of this heap (checked above) and, by
        // the heap invariant, is a block header, 8-aligned; the allocator
        // leaves block headers to the marker while a collection marks.
        unsafe {
            let h = at::<u64>(b).read();
            if h & (MARK | FREE) != 0 {
                return false;
            }
            at::<u64>(b).write(h | MARK);
        }
        true
    }
}
