//! Where a heap's allocator gets its chunks (a pool), and how the copier
//! allocates in a heap through it.

use std::alloc::Layout;
use std::ptr::NonNull;

use super::{Allocator, ChunkSource};
use crate::in_shared::at;
use crate::value::{Allocate, CopyError};

// SAFETY: the chunks are the borrowed source's, which upholds the contract.
unsafe impl<S: ChunkSource + ?Sized> ChunkSource for &mut S {
    fn get(&mut self, size: usize) -> Result<usize, CopyError> {
        (**self).get(size)
    }
    fn put(&mut self, addr: usize, size: usize) {
        (**self).put(addr, size);
    }
}

/// A [`ChunkSource`] over a pool.
pub(crate) struct PoolSource<'a> {
    pub(crate) pool: &'a crate::pool::Pool,
    /// The heap's tag, recorded as the pages' owner.
    pub(crate) tag: u32,
    pub(crate) last_error: Option<crate::pool::PoolError>,
}

// SAFETY: `alloc_pages` hands out committed pages of the pool's mapping
// (page-aligned, so 8-aligned) that its bitmap records as used by this heap
// alone until `free_pages` gives them back; the mapping lives as long as the
// pool handle, which the heap holds.
unsafe impl ChunkSource for PoolSource<'_> {
    fn get(&mut self, size: usize) -> Result<usize, CopyError> {
        let mut r = self.pool.alloc_pages(size, self.tag);
        if matches!(r, Err(crate::pool::PoolError::OutOfMemory { .. }))
            && crate::heap::recovery::scavenge(self.pool) > 0
        {
            // Pages of heaps that can never be used came back: try again.
            r = self.pool.alloc_pages(size, self.tag);
        }
        r.map_err(|e| {
            let requested = size;
            self.last_error = Some(e);
            CopyError::OutOfSpace { requested }
        })
    }
    fn put(&mut self, addr: usize, size: usize) {
        self.pool.free_pages(addr, size);
    }
}

/// Allocates copied values in a heap.
pub(crate) struct HeapWriter<'a, 'b, S: ChunkSource> {
    pub(crate) alloc: &'a mut Allocator<'b, S>,
}

// SAFETY: every allocation is a fresh block of the heap, aligned as
// requested, live until the next collection (which never runs while a
// writer exists: writers exist only inside modifications); the heap is
// mapped at the same address in every process, so the target address is the
// local one.
unsafe impl<S: ChunkSource> Allocate for HeapWriter<'_, '_, S> {
    #[inline]
    fn allocate(&mut self, layout: Layout) -> Result<(NonNull<u8>, usize), CopyError> {
        let a = self.alloc.alloc(layout)?;
        // SAFETY: `alloc` never returns 0.
        Ok((unsafe { NonNull::new_unchecked(at::<u8>(a)) }, a))
    }
}
