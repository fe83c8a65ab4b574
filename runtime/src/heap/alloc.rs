//! The heap allocator and the mark & sweep collector, written over plain
//! memory handed out by a [`ChunkSource`] so that they can be tested inside
//! one process (and under Miri) without shared memory.
//!
//! # Layout
//!
//! A heap is a list of *chunks*. A chunk starts with a [`ChunkHeader`] and is
//! followed by *blocks*, each starting with an 8-byte header word: the
//! block's size in bytes (a multiple of 8, header included) with flag bits
//! in the low three bits ([`MARK`], [`FREE`]). A value's address is its
//! block's address + 8. Blocks are formatted up to the chunk's `top`; the
//! space above `top` is the bump area (used in the current chunk only).
//!
//! Free blocks of up to [`SMALL_MAX`] bytes sit on exact-size free lists,
//! larger ones on one first-fit list; the first word after a free block's
//! header links to the next free block.
//!
//! The collector never moves values. It runs only when the heap's write
//! lock is held and no modification is under way, so every value seen or
//! added during a modification stays alive until the modification ends.

use std::alloc::Layout;
use std::cell::Cell;
use std::sync::atomic::{compiler_fence, Ordering};

use crate::in_shared::at;
use crate::in_shared::in_shared;
use crate::value::CopyError;

/// Header flag: the block was reached by the current collection.
pub(crate) const MARK: u64 = 1;
/// Header flag: the block is free.
pub(crate) const FREE: u64 = 2;
const FLAGS: u64 = 7;

/// Free blocks up to this size (header included) have exact-size lists.
pub(crate) const SMALL_MAX: usize = 512;
const N_SMALL: usize = SMALL_MAX / 8 + 1;

const CHUNK_MAGIC: u64 = u64::from_le_bytes(*b"mc-chnk\x01");

/// Where a heap gets its chunks from (a pool, or plain memory in tests).
///
/// # Safety
///
/// `get` must return the address of `size` bytes (a multiple of the page
/// size) of 8-aligned memory that nothing else uses, readable and writable
/// until it is given back with `put` (zeroed or not) for as long as a
/// heap's state links it (a pool's pages stay mapped while any handle of
/// the pool exists, and a heap holds one). The allocator writes chunk and
/// block headers there on the strength of this.
pub(crate) unsafe trait ChunkSource {
    /// Memory for a chunk of `size` bytes (a multiple of the page size),
    /// 8-aligned, zeroed or not.
    fn get(&mut self, size: usize) -> Result<usize, CopyError>;
    /// Gives a chunk back.
    fn put(&mut self, addr: usize, size: usize);
}

/// Says where a heap's chunks may lie, for the walks that check the
/// allocator's state instead of trusting it ([`AllocState::walk`]).
///
/// # Safety
///
/// `owns(addr, len)` may answer `true` only when `addr..addr + len` is
/// mapped, readable memory that stays so while the value is borrowed.
pub(crate) unsafe trait ChunkMemory {
    /// Whether `addr..addr + len` lies in memory the heap's chunks may use.
    fn owns(&self, addr: usize, len: usize) -> bool;
}

/// The start of every chunk.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ChunkHeader {
    magic: u64,
    next: usize,
    size: usize,
    top: usize,
}

const CHUNK_HDR: usize = std::mem::size_of::<ChunkHeader>();
const _: () = assert!(std::mem::size_of::<AllocState>() == 640);

in_shared! {
    /// The allocator's state; lives in the heap header in shared memory and is
    /// only touched with the heap's write lock held.
    ///
    /// Any bytes make an `AllocState` (it is read from copies of untrusted
    /// memory too), so its own methods never follow its addresses without
    /// checking them ([`walk`](Self::walk)); the allocator proper, which
    /// trusts them, is an [`Allocator`] over it.
    pub(crate) struct AllocState {
        /// First chunk (0: none).
        chunks: usize,
        /// The current bump chunk (0: none).
        cur: usize,
        chunk_size: usize,
        n_chunks: usize,
        chunk_bytes: usize,
        /// Bytes in allocated blocks (headers included).
        pub(crate) live_bytes: usize,
        /// Bytes in free blocks (on lists or not).
        pub(crate) free_bytes: usize,
        pub(crate) allocated_since_gc: usize,
        pub(crate) live_after_gc: usize,
        pub(crate) gc_runs: u64,
        pub(crate) last_gc_nanos: u64,
        small: [usize; N_SMALL],
        /// Bit `c` is clear when `small[c]` is empty (set: maybe not empty),
        /// so that finding a larger class with free blocks is one bit scan.
        small_bits: u128,
        large: usize,
        _pad: u64,
    }
}

/// The allocator's figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AllocStats {
    pub(crate) live_bytes: usize,
    pub(crate) free_bytes: usize,
    pub(crate) chunks: usize,
    pub(crate) chunk_bytes: usize,
    pub(crate) allocated_since_gc: usize,
    pub(crate) gc_runs: u64,
    pub(crate) last_gc_nanos: u64,
}

/// A copy of the header of the chunk at `addr`, if `mem` says the header
/// lies in the heap's memory (`None` otherwise, or when misaligned).
fn owned_chunk_header(mem: &dyn ChunkMemory, addr: usize) -> Option<ChunkHeader> {
    if !addr.is_multiple_of(8) || !mem.owns(addr, CHUNK_HDR) {
        return None;
    }
    // SAFETY: `mem` accepted the header's bytes: mapped and readable (the
    // `ChunkMemory` contract), 8-aligned (checked); any bytes are a valid
    // `ChunkHeader` (plain data), and it is read as a copy.
    Some(unsafe { at::<ChunkHeader>(addr).read() })
}

impl AllocState {
    /// A state with no chunks, which will take chunks of `chunk_size` bytes.
    pub(crate) fn new(chunk_size: usize) -> Self {
        AllocState {
            chunks: 0,
            cur: 0,
            chunk_size,
            n_chunks: 0,
            chunk_bytes: 0,
            live_bytes: 0,
            free_bytes: 0,
            allocated_since_gc: 0,
            live_after_gc: 0,
            gc_runs: 0,
            last_gc_nanos: 0,
            small: [0; N_SMALL],
            small_bits: 0,
            large: 0,
            _pad: 0,
        }
    }

    /// The figures, with the current chunk's size and top read by `chunk`
    /// (an inspector reads copies of untrusted memory; `None` when it
    /// cannot).
    pub(crate) fn stats_with(&self, chunk: impl Fn(usize) -> Option<(usize, usize)>) -> AllocStats {
        let bump = if self.cur != 0 {
            chunk(self.cur).map_or(0, |(size, top)| {
                (self.cur.saturating_add(size)).saturating_sub(top)
            })
        } else {
            0
        };
        AllocStats {
            live_bytes: self.live_bytes,
            free_bytes: self.free_bytes.saturating_add(bump),
            chunks: self.n_chunks,
            chunk_bytes: self.chunk_bytes,
            allocated_since_gc: self.allocated_since_gc,
            gc_runs: self.gc_runs,
            last_gc_nanos: self.last_gc_nanos,
        }
    }

    /// The figures, with the current chunk's header read only where `mem`
    /// says the heap's memory is (a chunk it does not accept counts no bump
    /// area).
    pub(crate) fn stats_in(&self, mem: &dyn ChunkMemory) -> AllocStats {
        self.stats_with(|cur| owned_chunk_header(mem, cur).map(|c| (c.size, c.top)))
    }

    /// The bytes of a chunk header.
    pub(crate) const CHUNK_HEADER_SIZE: usize = CHUNK_HDR;

    /// The size and top recorded in a copy of a chunk header's bytes.
    pub(crate) fn chunk_size_top(bytes: &[u8]) -> Option<(usize, usize)> {
        let c: ChunkHeader = bytemuck::pod_read_unaligned(bytes.get(..CHUNK_HDR)?);
        (c.magic == CHUNK_MAGIC).then_some((c.size, c.top))
    }

    /// Checks the chunk list and the blocks of every chunk, as a collector
    /// that takes over after a killed process, or a validator of memory
    /// that others could write, must before it trusts them: every chunk
    /// lies in memory `mem` accepts (whole), has the chunk magic, a sane
    /// size and `top`, and its blocks tile `start..top` exactly; the list
    /// has no cycle (at most `max_chunks` chunks). Calls `block` with the
    /// address and header of every block, in order.
    ///
    /// Reads only memory `mem` accepted.
    pub(crate) fn walk(
        &self,
        mem: &dyn ChunkMemory,
        max_chunks: usize,
        mut block: impl FnMut(usize, u64),
    ) -> Result<Vec<(usize, usize)>, Corrupt> {
        let mut chunks = Vec::new();
        let mut chunk = self.chunks;
        while chunk != 0 {
            if chunks.len() >= max_chunks {
                return Err(Corrupt("the chunk list does not end"));
            }
            let Some(c) = owned_chunk_header(mem, chunk) else {
                return Err(Corrupt("a chunk lies outside the heap's pages"));
            };
            let size = c.size;
            if c.magic != CHUNK_MAGIC
                || size < CHUNK_HDR + 16
                || size % 8 != 0
                || !mem.owns(chunk, size)
            {
                return Err(Corrupt("a chunk header is damaged"));
            }
            let start = chunk + CHUNK_HDR;
            let top = c.top;
            if top < start || top > chunk + size || top % 8 != 0 {
                return Err(Corrupt("a chunk's top is outside the chunk"));
            }
            let mut b = start;
            while b < top {
                // SAFETY: `b` is 8-aligned and lies in `start..top`, inside
                // the chunk whose bytes `mem` accepted (mapped and readable:
                // the `ChunkMemory` contract); any bytes are a valid `u64`.
                let h = unsafe { at::<u64>(b).read() };
                let bsize = (h & !FLAGS) as usize;
                if bsize < 8 || bsize > top - b {
                    return Err(Corrupt("a block header is damaged"));
                }
                block(b, h);
                b += bsize;
            }
            chunks.push((chunk, size));
            chunk = c.next;
        }
        if self.cur != 0 && !chunks.iter().any(|&(c, _)| c == self.cur) {
            return Err(Corrupt("the current chunk is not in the list"));
        }
        Ok(chunks)
    }

    /// Forgets the current (bump) chunk when it is not in the chunk list
    /// (what a process killed by an older build between unlinking it and
    /// forgetting it could leave), walking only memory `mem` accepts.
    pub(crate) fn forget_unlinked_cur(&mut self, mem: &dyn ChunkMemory, max_chunks: usize) {
        if self.cur == 0 {
            return;
        }
        let mut chunk = self.chunks;
        for _ in 0..max_chunks {
            if chunk == 0 {
                break;
            }
            let Some(c) = owned_chunk_header(mem, chunk) else {
                break;
            };
            if chunk == self.cur {
                return;
            }
            chunk = c.next;
        }
        self.cur = 0;
    }

    /// Whether a collection is due: at least as much allocated since the
    /// last one as was live after it (and a few chunks' worth).
    #[inline]
    pub(crate) fn gc_due(&self) -> bool {
        self.allocated_since_gc >= self.live_after_gc.max(4 * self.chunk_size)
    }

    /// Empties the free lists (their blocks stay free, unlisted, until the
    /// next sweep lists them again): what a repair does before it trusts
    /// the chunks, since a holder killed while it changed a list can leave
    /// that list broken.
    pub(crate) fn forget_free_lists(&mut self) {
        self.small = [0; N_SMALL];
        self.small_bits = 0;
        self.large = 0;
    }
}

/// The allocator at work: an [`AllocState`] whose addresses are trusted,
/// over the chunks it describes, with the [`ChunkSource`] they come from.
///
/// # Invariant
///
/// While an `Allocator` exists, its state is *intact* and the allocator is
/// the only one to use the structure of its chunks:
///
/// - `chunks` starts a list, linked through the chunk headers' `next`, of
///   *live chunks*: memory that `src` gave and that was not given back
///   (8-aligned, readable and writable, of the `size` its header records),
///   starting with a [`ChunkHeader`] whose `top` lies between the chunk's
///   first block (just past the header) and its end; `cur` is 0 or one of
///   them;
/// - in each, the blocks from the first one up to `top` tile that range:
///   each starts with a header word giving its size (a multiple of 8, at
///   least 8, header included) and flags;
/// - each entry of a free list is a free block of at least 16 bytes of a
///   live chunk (of exactly `8 * c` bytes on `small[c]`, of more than
///   [`SMALL_MAX`] on `large`) whose first payload word links the next entry
///   (0 ends the list);
/// - nobody else reads or writes the chunk headers, the block headers or
///   the free blocks meanwhile, except the collector's [`Marker`], which
///   only tests and sets the mark bit of allocated blocks' headers.
///   (Allocated blocks' payloads are their values' business.)
///
/// [`Allocator::new`] and [`Allocator::lent`] are the only ways to make one,
/// and are `unsafe`: their callers vouch for the invariant (the source
/// cannot be changed afterwards). Every method keeps it. The private
/// accessors below (`chunk`, `chunk_mut`, `word`, `set_word`) are safe on
/// the strength of it, for addresses that the state itself leads to, as
/// each of them spells out.
pub(crate) struct Allocator<'a, S: ChunkSource> {
    st: &'a mut AllocState,
    src: S,
    /// Cleared when the allocator is dropped: the flag of the lender that
    /// lent it ([`Allocator::lent`]).
    lent: Option<&'a Cell<bool>>,
}

/// A heap's allocator, over its pool.
pub(crate) type HeapAllocator<'a> = Allocator<'a, PoolSource<'a>>;

impl<S: ChunkSource> Drop for Allocator<'_, S> {
    #[inline]
    fn drop(&mut self) {
        if let Some(busy) = self.lent {
            busy.set(false);
        }
    }
}

impl<S: ChunkSource> std::ops::Deref for Allocator<'_, S> {
    type Target = AllocState;
    #[inline]
    fn deref(&self) -> &AllocState {
        self.st
    }
}

impl<'a, S: ChunkSource> Allocator<'a, S> {
    /// The allocator over `st`, whose chunks come from `src`.
    ///
    /// # Safety
    ///
    /// `st`, `src` and the chunks must satisfy the invariant of
    /// [`Allocator`] for `'a`: `src` is where the state's chunks came from
    /// (the heap's pool and tag), the state is intact (made by
    /// [`AllocState::new`] and changed since only by `Allocator`s, or checked
    /// by [`AllocState::walk`] with its free lists emptied), and nothing else
    /// uses the chunks' structure (for a heap: its exclusive lock is held,
    /// and no other `Allocator` over the state is alive).
    #[inline]
    pub(crate) unsafe fn new(st: &'a mut AllocState, src: S) -> Self {
        Allocator {
            st,
            src,
            lent: None,
        }
    }

    /// The allocator over `st` and `src`, which clears `busy` when it is
    /// dropped (so that a lender that sets `busy` lends one at a time).
    ///
    /// # Safety
    ///
    /// As for [`Allocator::new`].
    #[inline]
    pub(crate) unsafe fn lent(st: &'a mut AllocState, src: S, busy: &'a Cell<bool>) -> Self {
        Allocator {
            st,
            src,
            lent: Some(busy),
        }
    }
}

impl HeapAllocator<'_> {
    /// Why the pool last refused a chunk, if it did (taken out).
    pub(crate) fn take_error(&mut self) -> Option<crate::pool::PoolError> {
        self.src.last_error.take()
    }
}

impl<S: ChunkSource> Allocator<'_, S> {
    /// The header of chunk `c`.
    ///
    /// `c` must be a chunk this allocator holds. Every caller passes `cur`
    /// (non-zero), an entry of the chunk list, or the chunk `sweep` has just
    /// unlinked and not yet given back: live chunks by the type invariant.
    #[inline]
    fn chunk_mut(&mut self, c: usize) -> &mut ChunkHeader {
        // SAFETY: `c` is a live chunk (see above): 8-aligned memory that
        // starts with a `ChunkHeader`, which nobody else uses while the
        // allocator exists (type invariant); the reference borrows the
        // allocator exclusively.
        unsafe { &mut *at::<ChunkHeader>(c) }
    }

    /// A copy of the header of chunk `c`: `c` as for [`Self::chunk_mut`].
    #[inline]
    fn chunk(&mut self, c: usize) -> ChunkHeader {
        *self.chunk_mut(c)
    }

    /// The word at `a`, one of the allocator's own words in its chunks:
    /// a block header, or the link word of a free block.
    ///
    /// `a` must be an 8-aligned word of a live chunk, between its first
    /// block and its end, that no value uses. Through [`Self::hdr`],
    /// callers pass: list entries (free blocks of live chunks, by the
    /// invariant); blocks met walking a live chunk's tiling from its first
    /// block up to `top`; a chunk's `top` below its end; and words inside a
    /// block they have just taken (`alloc`'s pad, `take_fit`'s tail).
    /// Through [`Self::link`], `a` is the first payload word of a free block
    /// of at least 16 bytes: a list entry, or a block `push_free` lists.
    #[inline]
    fn word(&self, a: usize) -> u64 {
        // SAFETY: `a` is an aligned word of a live chunk (see above): block
        // headers and free blocks are touched only by this allocator while
        // it exists (type invariant; the marker, which sets mark bits, never
        // runs at the same time as one of its methods).
        unsafe { at::<u64>(a).read() }
    }

    /// Writes the word at `a`: `a` as for [`Self::word`] (the same callers'
    /// reasons).
    #[inline]
    fn set_word(&mut self, a: usize, v: u64) {
        // SAFETY: as in `word`; the allocator is borrowed exclusively.
        unsafe { at::<u64>(a).write(v) }
    }

    /// The header word of the block at `b`.
    #[inline]
    fn hdr(&self, b: usize) -> u64 {
        self.word(b)
    }

    /// Writes the header word of the block at `b`.
    #[inline]
    fn set_hdr(&mut self, b: usize, h: u64) {
        self.set_word(b, h);
    }

    /// The link word (first payload word) of the free block at `b`.
    #[inline]
    fn link(&self, b: usize) -> usize {
        self.word(b + 8) as usize
    }

    /// Writes the link word of the free block at `b`.
    #[inline]
    fn set_link(&mut self, b: usize, next: usize) {
        self.set_word(b + 8, next as u64);
    }

    /// The figures (the current chunk's bump area counts as free).
    #[cfg(test)]
    pub(crate) fn stats(&mut self) -> AllocStats {
        let bump = match self.st.cur {
            0 => None,
            cur => Some(self.chunk(cur)),
        };
        self.st.stats_with(|_| bump.map(|c| (c.size, c.top)))
    }

    /// Allocates a value of `layout`; returns its address.
    ///
    /// The common case, a small block aligned to 8 from an exact-size free
    /// list or the current chunk's bump area, is inlined; the rest is
    /// [`alloc_slow`](Self::alloc_slow).
    #[inline]
    pub(crate) fn alloc(&mut self, layout: Layout) -> Result<usize, CopyError> {
        if layout.align() <= 8 && layout.size() <= SMALL_MAX - 8 {
            // (No overflow: the size is at most `SMALL_MAX - 8`.)
            let need = (layout.size().next_multiple_of(8) + 8).max(16);
            let head = self.st.small[need / 8];
            if head != 0 {
                // As in `alloc_block`: a list entry of `need` bytes.
                self.st.small[need / 8] = self.link(head);
                self.set_hdr(head, need as u64);
                self.took(need);
                return Ok(head + 8);
            }
            let cur = self.st.cur;
            if cur != 0 {
                let c = self.chunk_mut(cur);
                let (b, end) = (c.top, cur + c.size);
                if b + need <= end {
                    // As in `alloc_block`: the header before `top`.
                    self.set_hdr(b, need as u64);
                    compiler_fence(Ordering::Release);
                    self.chunk_mut(cur).top = b + need;
                    self.st.live_bytes += need;
                    self.st.allocated_since_gc += need;
                    return Ok(b + 8);
                }
            }
        }
        self.alloc_slow(layout)
    }

    /// [`alloc`](Self::alloc) for every case: alignment above 8, large
    /// blocks, first fit and new chunks.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self, layout: Layout) -> Result<usize, CopyError> {
        let align = layout.align().max(8);
        let body = layout
            .size()
            .checked_next_multiple_of(8)
            .ok_or(CopyError::Overflow)?;
        let slack = align - 8;
        let need = body
            .checked_add(8 + slack)
            .ok_or(CopyError::Overflow)?
            .max(16);
        let block = self.alloc_block(need)?;
        let mut start = block;
        if slack > 0 {
            let pad = (align - ((block + 8) % align)) % align;
            if pad > 0 {
                // `block` is a fresh block of `need > pad` bytes; the pad
                // becomes its own free block (a filler when 8 bytes). The
                // second header is written first: a process killed in
                // between leaves `block` one whole block, never a header
                // that points at unwritten bytes.
                self.set_hdr(block + pad, (need - pad) as u64);
                compiler_fence(Ordering::Release);
                self.set_hdr(block, pad as u64 | FREE);
                self.st.live_bytes -= pad;
                self.st.free_bytes += pad;
                start = block + pad;
            }
        }
        Ok(start + 8)
    }

    fn alloc_block(&mut self, need: usize) -> Result<usize, CopyError> {
        // Exact-size free list.
        if need <= SMALL_MAX {
            let head = self.st.small[need / 8];
            if head != 0 {
                // A list entry: a free block of `need` bytes whose first
                // payload word links the list.
                self.st.small[need / 8] = self.link(head);
                self.set_hdr(head, need as u64);
                self.took(need);
                return Ok(head);
            }
        }
        // Bump in the current chunk.
        let cur = self.st.cur;
        if cur != 0 {
            let c = self.chunk(cur);
            if c.top + need <= cur + c.size {
                let b = c.top;
                // `b..b+need` is unformatted room of the chunk. The header
                // is written before `top` covers it, so that blocks up to
                // `top` are always formatted (what a collector that takes
                // over after a kill walks).
                self.set_hdr(b, need as u64);
                compiler_fence(Ordering::Release);
                self.chunk_mut(cur).top = b + need;
                self.st.live_bytes += need;
                self.st.allocated_since_gc += need;
                return Ok(b);
            }
        }
        // First fit on the large list (and on larger small lists).
        if let Some(b) = self.take_fit(need) {
            return Ok(b);
        }
        // A new chunk.
        let size = if need + CHUNK_HDR > self.st.chunk_size {
            (need + CHUNK_HDR).next_multiple_of(crate::pool::PAGE_SIZE)
        } else {
            self.st.chunk_size
        };
        let addr = self.src.get(size)?;
        self.retire_cur();
        self.link_chunk(addr, size);
        self.st.cur = addr;
        self.alloc_block(need)
    }

    /// Links a chunk that `get` of the allocator's [`ChunkSource`] just returned
    /// (`addr`, `size`): its first bytes become the chunk's header.
    fn link_chunk(&mut self, addr: usize, size: usize) {
        // SAFETY: `addr` is fresh memory of `size` bytes from the
        // allocator's chunk source (its only caller, `alloc_block`, passes
        // what `get` returned), 8-aligned and unused (the `ChunkSource` contract), and
        // a page or more, so it holds the header and 16 bytes of blocks.
        unsafe {
            at::<ChunkHeader>(addr).write(ChunkHeader {
                magic: CHUNK_MAGIC,
                next: self.st.chunks,
                size,
                top: addr + CHUNK_HDR,
            })
        };
        self.st.chunks = addr;
        self.st.n_chunks += 1;
        self.st.chunk_bytes += size;
    }

    fn took(&mut self, need: usize) {
        self.st.free_bytes -= need;
        self.st.live_bytes += need;
        self.st.allocated_since_gc += need;
    }

    /// Turns the rest of the current bump chunk into a free block.
    fn retire_cur(&mut self) {
        let cur = self.st.cur;
        if cur == 0 {
            return;
        }
        let c = self.chunk(cur);
        let room = cur + c.size - c.top;
        if room >= 8 {
            let b = c.top;
            // `b..b+room` is unformatted room of the chunk; its header is
            // written before `top` covers it (see `alloc_block`).
            self.set_hdr(b, room as u64 | FREE);
            compiler_fence(Ordering::Release);
            self.chunk_mut(cur).top = b + room;
            // Now a formatted block of the chunk that nothing uses.
            self.push_free(b, room);
        }
        self.st.cur = 0;
    }

    /// Makes `b..b+size` a free block and lists it (blocks under 16 bytes
    /// are fillers, on no list). `b` must be a block of a live chunk that
    /// nothing uses: the callers pass the retired bump area, the tail of a
    /// block `take_fit` took, and the runs of unmarked blocks `sweep` found.
    fn push_free(&mut self, b: usize, size: usize) {
        self.set_hdr(b, size as u64 | FREE);
        if size >= 16 {
            let head = if size <= SMALL_MAX {
                self.st.small_bits |= 1 << (size / 8);
                self.st.small[size / 8]
            } else {
                self.st.large
            };
            self.set_link(b, head);
            if size <= SMALL_MAX {
                self.st.small[size / 8] = b;
            } else {
                self.st.large = b;
            }
        }
        self.st.free_bytes += size;
    }

    fn take_fit(&mut self, need: usize) -> Option<usize> {
        // Larger small classes first (cheap), then the large list.
        let mut found = None;
        let first = need / 8 + 2;
        let mut bits = if first < N_SMALL {
            self.st.small_bits & (u128::MAX << first)
        } else {
            0
        };
        while bits != 0 {
            let class = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let head = self.st.small[class];
            if head != 0 {
                self.st.small[class] = self.link(head);
                found = Some((head, class * 8));
                break;
            }
            self.st.small_bits &= !(1 << class);
        }
        if found.is_none() {
            // The block whose link leads to `b` (0: the list's head).
            let mut prev = 0;
            let mut b = self.st.large;
            while b != 0 {
                let size = (self.hdr(b) & !FLAGS) as usize;
                let next = self.link(b);
                if size >= need && (size == need || size >= need + 16) {
                    if prev == 0 {
                        self.st.large = next;
                    } else {
                        self.set_link(prev, next);
                    }
                    found = Some((b, size));
                    break;
                }
                prev = b;
                b = next;
            }
        }
        let (b, size) = found?;
        self.st.free_bytes -= size;
        if size > need {
            // The tail of the free block just taken.
            self.push_free(b + need, size - need);
        }
        // `b` is now an allocated block of `need` bytes.
        self.set_hdr(b, need as u64);
        self.st.live_bytes += need;
        self.st.allocated_since_gc += need;
        Some(b)
    }

    /// Sets the `next` link of chunk `prev` (0: the head of the list).
    fn set_next(&mut self, prev: usize, next: usize) {
        if prev == 0 {
            self.st.chunks = next;
        } else {
            self.chunk_mut(prev).next = next;
        }
    }

    /// Sweeps after marking: unmarked blocks become free, adjacent free
    /// blocks merge, empty chunks go back to the source; free lists are
    /// rebuilt. Allocated blocks that contain one of the addresses in
    /// `keep` (sorted) stay, marked or not.
    ///
    /// # Safety
    ///
    /// Every live value must have been marked since the last sweep (or lie
    /// in a block that holds an address of `keep`), and no reference into
    /// other unmarked blocks may be used afterwards.
    pub(crate) unsafe fn sweep(&mut self, keep: &[usize]) {
        self.st.forget_free_lists();
        self.st.free_bytes = 0;
        self.st.live_bytes = 0;
        // Counted afresh: a sweep that takes over from a killed one finds
        // the counters half-updated.
        self.st.n_chunks = 0;
        self.st.chunk_bytes = 0;
        // The chunk whose `next` leads on (0: the head of the list).
        let mut prev = 0;
        loop {
            let chunk = if prev == 0 {
                self.st.chunks
            } else {
                self.chunk(prev).next
            };
            if chunk == 0 {
                break;
            }
            let c = self.chunk(chunk);
            let (next, top) = (c.next, c.top);
            let start = chunk + CHUNK_HDR;
            let mut b = start;
            let mut run = 0usize; // start of the current free run (0: none)
            let mut any_live = false;
            let mut runs: Vec<(usize, usize)> = Vec::new();
            while b < top {
                let h = self.hdr(b);
                let size = (h & !FLAGS) as usize;
                debug_assert!(size >= 8 && b + size <= top, "corrupt heap block at {b:#x}");
                if size < 8 || b + size > top {
                    break;
                }
                let kept = |b: usize| {
                    let i = keep.partition_point(|&a| a < b + 8);
                    keep.get(i).is_some_and(|&a| a < b + size)
                };
                if h & FREE == 0 && (h & MARK != 0 || (!keep.is_empty() && kept(b))) {
                    self.set_hdr(b, h & !MARK);
                    self.st.live_bytes += size;
                    any_live = true;
                    if run != 0 {
                        runs.push((run, b - run));
                        run = 0;
                    }
                } else if run == 0 {
                    run = b;
                }
                b += size;
            }
            if run != 0 {
                runs.push((run, top - run));
            }
            if !any_live {
                // Empty: forget it as the bump chunk, unlink it, give it
                // back (in this order, so that a kill in between never
                // leaves `cur` on a chunk that is not in the list).
                if self.st.cur == chunk {
                    self.st.cur = 0;
                }
                compiler_fence(Ordering::Release);
                self.set_next(prev, next);
                let size = c.size;
                self.chunk_mut(chunk).magic = 0;
                self.src.put(chunk, size);
                continue;
            }
            for (i, &(r, len)) in runs.iter().enumerate() {
                if i + 1 == runs.len() && r + len == top && chunk == self.st.cur {
                    // The run under the bump area extends the bump area.
                    self.chunk_mut(chunk).top = r;
                } else {
                    self.push_free(r, len);
                }
            }
            self.st.n_chunks += 1;
            self.st.chunk_bytes += c.size;
            prev = chunk;
        }
        self.st.allocated_since_gc = 0;
        self.st.live_after_gc = self.st.live_bytes;
        self.st.gc_runs += 1;
    }

    /// Clears the mark bit of every block (what a killed collection may
    /// have left), so that a new collection marks from scratch.
    pub(crate) fn clear_marks(&mut self) {
        let mut chunk = self.st.chunks;
        while chunk != 0 {
            let c = self.chunk(chunk);
            let mut b = chunk + CHUNK_HDR;
            while b < c.top {
                let h = self.hdr(b);
                if h & MARK != 0 {
                    self.set_hdr(b, h & !MARK);
                }
                b += (h & !FLAGS) as usize;
            }
            chunk = c.next;
        }
    }

    /// Records how long the last collection took.
    pub(crate) fn set_last_gc_nanos(&mut self, nanos: u64) {
        self.st.last_gc_nanos = nanos;
    }
}

/// The heap's memory does not have the allocator's structure (written by
/// a process that did not follow the heap's protocol, or torn by a fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) &'static str);

/// Whether a block header says allocated (not free).
pub(crate) fn is_allocated(h: u64) -> bool {
    h & FREE == 0
}

/// The size of a block, header included.
pub(crate) fn block_size(h: u64) -> usize {
    (h & !FLAGS) as usize
}

mod mark;
mod source;

pub(crate) use mark::Marker;
pub(crate) use source::{HeapWriter, PoolSource};

#[cfg(test)]
mod tests;
