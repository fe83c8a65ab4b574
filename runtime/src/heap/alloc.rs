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
use std::ptr::NonNull;
use std::sync::atomic::{compiler_fence, Ordering};

use crate::in_shared::at;
use crate::in_shared::in_shared;
use crate::value::{Allocate, CopyError, Mark};

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
pub(crate) trait ChunkSource {
    /// Memory for a chunk of `size` bytes (a multiple of the page size),
    /// 8-aligned, zeroed or not.
    fn get(&mut self, size: usize) -> Result<usize, CopyError>;
    /// Gives a chunk back.
    fn put(&mut self, addr: usize, size: usize);
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

#[inline]
fn hdr(block: usize) -> *mut u64 {
    at::<u64>(block)
}

/// # Safety
///
/// `block` must be a formatted block of a live chunk.
#[inline]
unsafe fn read_hdr(block: usize) -> u64 {
    // SAFETY: per the contract.
    unsafe { *hdr(block) }
}

/// # Safety
///
/// `block..block+8` must be memory of a live chunk.
#[inline]
unsafe fn write_hdr(block: usize, v: u64) {
    // SAFETY: per the contract.
    unsafe { *hdr(block) = v }
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

    /// # Safety
    ///
    /// The memory must be valid, 8-aligned, owned by this heap for as long
    /// as it is linked, and at least `CHUNK_HDR + 16` bytes.
    unsafe fn link_chunk(&mut self, addr: usize, size: usize) {
        let c = at::<ChunkHeader>(addr);
        // SAFETY: the chunk's first bytes are ours (contract).
        unsafe {
            c.write(ChunkHeader {
                magic: CHUNK_MAGIC,
                next: self.chunks,
                size,
                top: addr + CHUNK_HDR,
            })
        };
        self.chunks = addr;
        self.n_chunks += 1;
        self.chunk_bytes += size;
    }

    pub(crate) fn stats(&self) -> AllocStats {
        self.stats_with(|cur| {
            // SAFETY: `cur` is a live chunk of this heap (the caller holds
            // a lock of the heap).
            let c = unsafe { &*at::<ChunkHeader>(cur) };
            Some((c.size, c.top))
        })
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

    /// The bytes of a chunk header.
    pub(crate) const CHUNK_HEADER_SIZE: usize = CHUNK_HDR;

    /// The size and top recorded in a copy of a chunk header's bytes.
    pub(crate) fn chunk_size_top(bytes: &[u8]) -> Option<(usize, usize)> {
        let c: ChunkHeader = bytemuck::pod_read_unaligned(bytes.get(..CHUNK_HDR)?);
        (c.magic == CHUNK_MAGIC).then_some((c.size, c.top))
    }

    /// Allocates a value of `layout`; returns its address.
    pub(crate) fn alloc(
        &mut self,
        layout: Layout,
        src: &mut dyn ChunkSource,
    ) -> Result<usize, CopyError> {
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
        let block = self.alloc_block(need, src)?;
        let mut start = block;
        if slack > 0 {
            let pad = (align - ((block + 8) % align)) % align;
            if pad > 0 {
                // SAFETY: `block` is a fresh block of `need > pad` bytes; the
                // pad becomes its own free block (a filler when 8 bytes).
                // The second header is written first: a process killed in
                // between leaves `block` one whole block, never a header
                // that points at unwritten bytes.
                unsafe {
                    write_hdr(block + pad, (need - pad) as u64);
                    compiler_fence(Ordering::Release);
                    write_hdr(block, pad as u64 | FREE);
                }
                self.live_bytes -= pad;
                self.free_bytes += pad;
                start = block + pad;
            }
        }
        Ok(start + 8)
    }

    fn alloc_block(&mut self, need: usize, src: &mut dyn ChunkSource) -> Result<usize, CopyError> {
        // Exact-size free list.
        if need <= SMALL_MAX {
            let head = self.small[need / 8];
            if head != 0 {
                // SAFETY: list entries are free blocks of `need` bytes in live
                // chunks; their first payload word links the list.
                unsafe {
                    self.small[need / 8] = *at::<usize>(head + 8);
                    write_hdr(head, need as u64);
                }
                self.took(need);
                return Ok(head);
            }
        }
        // Bump in the current chunk.
        if self.cur != 0 {
            // SAFETY: `cur` is a live chunk of this heap.
            let c = unsafe { &mut *at::<ChunkHeader>(self.cur) };
            if c.top + need <= self.cur + c.size {
                let b = c.top;
                // SAFETY: `b..b+need` is unformatted room of the chunk. The
                // header is written before `top` covers it, so that blocks
                // up to `top` are always formatted (what a collector that
                // takes over after a kill walks).
                unsafe { write_hdr(b, need as u64) };
                compiler_fence(Ordering::Release);
                c.top += need;
                self.live_bytes += need;
                self.allocated_since_gc += need;
                return Ok(b);
            }
        }
        // First fit on the large list (and on larger small lists).
        if let Some(b) = self.take_fit(need) {
            return Ok(b);
        }
        // A new chunk.
        let size = if need + CHUNK_HDR > self.chunk_size {
            (need + CHUNK_HDR).next_multiple_of(crate::pool::PAGE_SIZE)
        } else {
            self.chunk_size
        };
        let addr = src.get(size)?;
        self.retire_cur();
        // SAFETY: the source hands out fresh memory of `size` bytes.
        unsafe { self.link_chunk(addr, size) };
        self.cur = addr;
        self.alloc_block(need, src)
    }

    fn took(&mut self, need: usize) {
        self.free_bytes -= need;
        self.live_bytes += need;
        self.allocated_since_gc += need;
    }

    /// Turns the rest of the current bump chunk into a free block.
    fn retire_cur(&mut self) {
        if self.cur == 0 {
            return;
        }
        // SAFETY: `cur` is a live chunk of this heap.
        let c = unsafe { &mut *at::<ChunkHeader>(self.cur) };
        let room = self.cur + c.size - c.top;
        if room >= 8 {
            let b = c.top;
            // SAFETY: `b..b+room` is unformatted room of the chunk; its
            // header is written before `top` covers it (see `alloc_block`).
            unsafe { write_hdr(b, room as u64 | FREE) };
            compiler_fence(Ordering::Release);
            c.top += room;
            // SAFETY: now a formatted block of the chunk that nothing uses.
            unsafe { self.push_free(b, room) };
        }
        self.cur = 0;
    }

    /// # Safety
    ///
    /// `b..b+size` must be a block of a live chunk that nothing uses.
    unsafe fn push_free(&mut self, b: usize, size: usize) {
        // SAFETY: per the contract.
        unsafe {
            write_hdr(b, size as u64 | FREE);
            if size >= 16 {
                let list = if size <= SMALL_MAX {
                    self.small_bits |= 1 << (size / 8);
                    &mut self.small[size / 8]
                } else {
                    &mut self.large
                };
                *at::<usize>(b + 8) = *list;
                *list = b;
            }
        }
        self.free_bytes += size;
    }

    fn take_fit(&mut self, need: usize) -> Option<usize> {
        // Larger small classes first (cheap), then the large list.
        let mut found = None;
        let first = need / 8 + 2;
        let mut bits = if first < N_SMALL {
            self.small_bits & (u128::MAX << first)
        } else {
            0
        };
        while bits != 0 {
            let class = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let head = self.small[class];
            if head != 0 {
                // SAFETY: a list entry, as in `alloc_block`.
                self.small[class] = unsafe { *at::<usize>(head + 8) };
                found = Some((head, class * 8));
                break;
            }
            self.small_bits &= !(1 << class);
        }
        if found.is_none() {
            let mut prev: *mut usize = &mut self.large;
            // SAFETY: walks the large list, whose entries are free blocks in
            // live chunks with a link in their first payload word.
            unsafe {
                while *prev != 0 {
                    let b = *prev;
                    let size = (read_hdr(b) & !FLAGS) as usize;
                    if size >= need && (size == need || size >= need + 16) {
                        *prev = *at::<usize>(b + 8);
                        found = Some((b, size));
                        break;
                    }
                    prev = at::<usize>(b + 8);
                }
            }
        }
        let (b, size) = found?;
        self.free_bytes -= size;
        if size > need {
            // SAFETY: the tail of a free block we own.
            unsafe { self.push_free(b + need, size - need) };
        }
        // SAFETY: `b` is now an allocated block of `need` bytes.
        unsafe { write_hdr(b, need as u64) };
        self.live_bytes += need;
        self.allocated_since_gc += need;
        Some(b)
    }

    /// Sweeps after marking: unmarked blocks become free, adjacent free
    /// blocks merge, empty chunks go back to the source; free lists are
    /// rebuilt.
    ///
    /// # Safety
    ///
    /// Every live value must have been marked since the last sweep, and no
    /// reference into unmarked blocks may be used afterwards.
    pub(crate) unsafe fn sweep(&mut self, src: &mut dyn ChunkSource) {
        self.small = [0; N_SMALL];
        self.small_bits = 0;
        self.large = 0;
        self.free_bytes = 0;
        self.live_bytes = 0;
        // Counted afresh: a sweep that takes over from a killed one finds
        // the counters half-updated.
        self.n_chunks = 0;
        self.chunk_bytes = 0;
        let mut prev_link: *mut usize = &mut self.chunks;
        // SAFETY: walks the chunk list; each chunk's blocks are formatted
        // up to `top` (the contract of this allocator).
        unsafe {
            while *prev_link != 0 {
                let chunk = *prev_link;
                let c = &mut *at::<ChunkHeader>(chunk);
                let next = c.next;
                let start = chunk + CHUNK_HDR;
                let mut b = start;
                let mut run = 0usize; // start of the current free run (0: none)
                let mut any_live = false;
                let mut runs: Vec<(usize, usize)> = Vec::new();
                while b < c.top {
                    let h = read_hdr(b);
                    let size = (h & !FLAGS) as usize;
                    debug_assert!(
                        size >= 8 && b + size <= c.top,
                        "corrupt heap block at {b:#x}"
                    );
                    if size < 8 || b + size > c.top {
                        break;
                    }
                    if h & MARK != 0 && h & FREE == 0 {
                        write_hdr(b, h & !MARK);
                        self.live_bytes += size;
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
                    runs.push((run, c.top - run));
                }
                if !any_live {
                    // Empty: forget it as the bump chunk, unlink it, give it
                    // back (in this order, so that a kill in between never
                    // leaves `cur` on a chunk that is not in the list).
                    if self.cur == chunk {
                        self.cur = 0;
                    }
                    compiler_fence(Ordering::Release);
                    *prev_link = next;
                    let size = c.size;
                    c.magic = 0;
                    src.put(chunk, size);
                    continue;
                }
                for (i, &(r, len)) in runs.iter().enumerate() {
                    if i + 1 == runs.len() && r + len == c.top && chunk == self.cur {
                        // The run under the bump area extends the bump area.
                        c.top = r;
                    } else {
                        self.push_free(r, len);
                    }
                }
                self.n_chunks += 1;
                self.chunk_bytes += c.size;
                prev_link = &mut c.next;
            }
        }
        self.allocated_since_gc = 0;
        self.live_after_gc = self.live_bytes;
        self.gc_runs += 1;
    }

    /// Checks the chunk list and the blocks of every chunk, as a collector
    /// that takes over after a killed process, or a validator of memory
    /// that others could write, must before it trusts them: every chunk
    /// lies in memory `owns` accepts (whole), has the chunk magic, a sane
    /// size and `top`, and its blocks tile `start..top` exactly; the list
    /// has no cycle (at most `max_chunks` chunks). Calls `block` with the
    /// address and header of every block, in order.
    ///
    /// Reads only memory `owns` accepted (`owns(addr, len)`).
    pub(crate) fn walk(
        &self,
        owns: &dyn Fn(usize, usize) -> bool,
        max_chunks: usize,
        mut block: impl FnMut(usize, u64),
    ) -> Result<Vec<(usize, usize)>, Corrupt> {
        let mut chunks = Vec::new();
        let mut chunk = self.chunks;
        while chunk != 0 {
            if chunks.len() >= max_chunks {
                return Err(Corrupt("the chunk list does not end"));
            }
            if !chunk.is_multiple_of(8) || !owns(chunk, CHUNK_HDR) {
                return Err(Corrupt("a chunk lies outside the heap's pages"));
            }
            // SAFETY: `owns` accepted the chunk header's bytes: mapped,
            // backed memory of this heap.
            let c = unsafe { &*at::<ChunkHeader>(chunk) };
            let size = c.size;
            if c.magic != CHUNK_MAGIC
                || size < CHUNK_HDR + 16
                || size % 8 != 0
                || !owns(chunk, size)
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
                // SAFETY: `b` lies in `start..top`, inside the chunk that
                // `owns` accepted.
                let h = unsafe { read_hdr(b) };
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
    /// forgetting it could leave), walking only memory `owns` accepts.
    pub(crate) fn forget_unlinked_cur(
        &mut self,
        owns: &dyn Fn(usize, usize) -> bool,
        max_chunks: usize,
    ) {
        if self.cur == 0 {
            return;
        }
        let mut chunk = self.chunks;
        for _ in 0..max_chunks {
            if chunk == 0 || !chunk.is_multiple_of(8) || !owns(chunk, CHUNK_HDR) {
                break;
            }
            if chunk == self.cur {
                return;
            }
            // SAFETY: `owns` accepted the chunk header's bytes.
            chunk = unsafe { (*at::<ChunkHeader>(chunk)).next };
        }
        self.cur = 0;
    }

    /// Clears the mark bit of every block (what a killed collection may
    /// have left), so that a new collection marks from scratch.
    ///
    /// # Safety
    ///
    /// The heap's structure must be intact ([`AllocState::walk`] passed)
    /// and nobody else may use the heap meanwhile.
    pub(crate) unsafe fn clear_marks(&mut self) {
        let mut chunk = self.chunks;
        while chunk != 0 {
            // SAFETY: walks the intact chunk list (contract).
            let c = unsafe { &*at::<ChunkHeader>(chunk) };
            let mut b = chunk + CHUNK_HDR;
            while b < c.top {
                // SAFETY: a formatted block of the chunk (contract).
                unsafe {
                    let h = read_hdr(b);
                    if h & MARK != 0 {
                        write_hdr(b, h & !MARK);
                    }
                    b += (h & !FLAGS) as usize;
                }
            }
            chunk = c.next;
        }
    }

    /// Whether a collection is due: at least as much allocated since the
    /// last one as was live after it (and a few chunks' worth).
    pub(crate) fn gc_due(&self) -> bool {
        self.allocated_since_gc >= self.live_after_gc.max(4 * self.chunk_size)
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

/// Marks heap blocks for the collector.
pub(crate) struct Marker<'a> {
    /// Whether an address lies in a chunk of this heap.
    pub(crate) owns: &'a dyn Fn(usize) -> bool,
}

// SAFETY: `mark` accepts only 8-aligned addresses whose block header lies
// in a chunk of this heap (the pool's page owner table says so; user data
// cannot change it) and is an allocated (non-free) block, and sets the mark
// bit so that each block is accepted once per collection. Values in a heap
// only point to blocks of the same heap: the copier allocates every pointee
// in the heap it writes to, and the mutator refuses places of other heaps.
unsafe impl Mark for Marker<'_> {
    fn mark(&mut self, addr: usize) -> bool {
        if addr < 8 || !addr.is_multiple_of(8) || !(self.owns)(addr - 8) {
            return false;
        }
        let b = addr - 8;
        // SAFETY: `b` lies in a chunk of this heap (checked above) and, by
        // the heap invariant, is a block header.
        unsafe {
            let h = read_hdr(b);
            if h & (MARK | FREE) != 0 {
                return false;
            }
            write_hdr(b, h | MARK);
        }
        true
    }
}

/// A [`ChunkSource`] over a pool.
pub(crate) struct PoolSource<'a> {
    pub(crate) pool: &'a crate::pool::Pool,
    /// The heap's tag, recorded as the pages' owner.
    pub(crate) tag: u32,
    pub(crate) last_error: Option<crate::pool::PoolError>,
}

impl ChunkSource for PoolSource<'_> {
    fn get(&mut self, size: usize) -> Result<usize, CopyError> {
        let mut r = self.pool.alloc_pages(size, self.tag);
        if matches!(r, Err(crate::pool::PoolError::OutOfMemory { .. }))
            && super::recovery::scavenge(self.pool) > 0
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
pub(crate) struct HeapWriter<'a> {
    pub(crate) state: &'a mut AllocState,
    pub(crate) src: &'a mut dyn ChunkSource,
}

// SAFETY: every allocation is a fresh block of the heap, aligned as
// requested, live until the next collection (which never runs while a
// writer exists: writers exist only inside modifications); the heap is
// mapped at the same address in every process, so the target address is the
// local one.
unsafe impl Allocate for HeapWriter<'_> {
    fn allocate(&mut self, layout: Layout) -> Result<(NonNull<u8>, usize), CopyError> {
        let a = self.state.alloc(layout, self.src)?;
        // SAFETY: `alloc` never returns 0.
        Ok((unsafe { NonNull::new_unchecked(at::<u8>(a)) }, a))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::value::{Shared, Tracer, Writer};

    /// Chunks carved from one big local buffer; counts what is out.
    pub(crate) struct VecSource {
        buf: Vec<u64>,
        next: usize,
        free: Vec<(usize, usize)>,
        pub(crate) out: usize,
        limit: usize,
    }

    impl VecSource {
        pub(crate) fn new(bytes: usize) -> Self {
            VecSource {
                buf: vec![0; bytes / 8],
                next: 0,
                free: Vec::new(),
                out: 0,
                limit: bytes,
            }
        }
        pub(crate) fn range(&self) -> (usize, usize) {
            let lo = self.buf.as_ptr().addr();
            (lo, lo + self.buf.len() * 8)
        }
    }

    impl ChunkSource for VecSource {
        fn get(&mut self, size: usize) -> Result<usize, CopyError> {
            if let Some(i) = self.free.iter().position(|&(_, s)| s == size) {
                self.out += size;
                return Ok(self.free.swap_remove(i).0);
            }
            if self.next + size > self.limit {
                return Err(CopyError::OutOfSpace { requested: size });
            }
            let a = self.buf.as_ptr().expose_provenance() + self.next;
            self.next += size;
            self.out += size;
            Ok(a)
        }
        fn put(&mut self, addr: usize, size: usize) {
            self.out -= size;
            self.free.push((addr, size));
        }
    }

    /// A heap over local memory: allocator + root slot.
    pub(crate) struct TestHeap {
        pub(crate) src: VecSource,
        pub(crate) st: AllocState,
    }

    impl TestHeap {
        pub(crate) fn new(bytes: usize, chunk: usize) -> Self {
            TestHeap {
                src: VecSource::new(bytes),
                st: AllocState::new(chunk),
            }
        }

        pub(crate) fn put<T: Shared>(&mut self, v: &T) -> Result<usize, CopyError> {
            let mut w = HeapWriter {
                state: &mut self.st,
                src: &mut self.src,
            };
            // SAFETY: the representation is written into the heap at once.
            let mut wr = unsafe { Writer::new(&mut w) };
            let r = v.to_repr(&mut wr)?;
            let (p, a) = wr.alloc_array::<T::Repr>(1)?;
            // SAFETY: fresh memory for one value.
            unsafe { p.as_ptr().write(r) };
            Ok(a)
        }

        pub(crate) fn gc<T: Shared>(&mut self, roots: &[usize]) {
            let (lo, hi) = self.src.range();
            let owns = move |a: usize| a >= lo && a < hi;
            let mut m = Marker { owns: &owns };
            // SAFETY: the roots are live values of `T` in this heap.
            let mut t = unsafe { Tracer::new(&mut m) };
            for &r in roots {
                t.visit::<T>(r, 1);
            }
            t.drain();
            // SAFETY: everything reachable from the roots was marked.
            unsafe { self.st.sweep(&mut self.src) };
        }

        pub(crate) fn get<T: Shared>(&self, addr: usize) -> T {
            // SAFETY: `addr` is a live value of `T` in this heap.
            T::from_repr(unsafe { &*at::<T::Repr>(addr) })
        }
    }

    #[test]
    fn alloc_reuses_after_gc() {
        let mut h = TestHeap::new(4 << 20, 64 * 1024);
        let keep = h.put(&vec!["keep".to_string(); 10]).unwrap();
        for i in 0..10_000 {
            h.put(&format!("garbage {i}")).unwrap();
        }
        let before = h.st.stats();
        assert!(before.chunks > 1);
        h.gc::<Vec<String>>(&[keep]);
        let after = h.st.stats();
        assert_eq!(h.get::<Vec<String>>(keep), vec!["keep".to_string(); 10]);
        assert!(after.chunks < before.chunks, "{after:?} vs {before:?}");
        assert!(after.live_bytes < 1024, "{after:?}");
        // Space is reused: another round of garbage does not grow the heap much.
        for i in 0..10_000 {
            h.put(&format!("garbage {i}")).unwrap();
        }
        h.gc::<Vec<String>>(&[keep]);
        assert_eq!(h.get::<Vec<String>>(keep), vec!["keep".to_string(); 10]);
        assert!(
            h.src.out <= 2 * 64 * 1024,
            "{} bytes of chunks out",
            h.src.out
        );
    }

    #[test]
    fn over_aligned_values() {
        let mut h = TestHeap::new(1 << 20, 64 * 1024);
        let mut addrs = Vec::new();
        for i in 0..100u128 {
            let a = h.put(&Box::new(i)).unwrap();
            addrs.push(a);
            let _ = h.put(&(i as u8)).unwrap();
        }
        for (i, &a) in addrs.iter().enumerate() {
            assert_eq!(*h.get::<Box<u128>>(a), i as u128);
        }
        h.gc::<Box<u128>>(&addrs);
        for (i, &a) in addrs.iter().enumerate() {
            assert_eq!(*h.get::<Box<u128>>(a), i as u128);
        }
    }

    #[test]
    fn big_values_get_their_own_chunk() {
        let mut h = TestHeap::new(8 << 20, 64 * 1024);
        let big = vec![7u8; 1 << 20];
        let a = h.put(&big).unwrap();
        assert_eq!(h.get::<Vec<u8>>(a), big);
        h.gc::<Vec<u8>>(&[]);
        assert_eq!(h.src.out, 0, "the big chunk went back");
    }

    #[test]
    fn a_current_chunk_outside_the_list_is_forgotten() {
        let mut h = TestHeap::new(1 << 20, 64 * 1024);
        let keep = h.put(&vec![1u64; 10]).unwrap();
        let (lo, hi) = h.src.range();
        let owns = move |a: usize, len: usize| a >= lo && a + len <= hi;
        assert!(h.st.walk(&owns, 100, |_, _| {}).is_ok());
        // What a kill between unlinking the current chunk and forgetting
        // it could leave: `cur` on memory that is not a chunk of the list.
        let stray = h.src.get(64 * 1024).unwrap();
        let linked = h.st.cur;
        h.st.cur = stray;
        assert!(h.st.walk(&owns, 100, |_, _| {}).is_err());
        h.st.forget_unlinked_cur(&owns, 100);
        assert_eq!(h.st.cur, 0);
        assert!(h.st.walk(&owns, 100, |_, _| {}).is_ok());
        // A linked current chunk stays.
        h.st.cur = linked;
        h.st.forget_unlinked_cur(&owns, 100);
        assert_eq!(h.st.cur, linked);
        assert_eq!(h.get::<Vec<u64>>(keep), vec![1; 10]);
    }

    #[test]
    fn out_of_space_is_an_error() {
        let mut h = TestHeap::new(256 * 1024, 64 * 1024);
        let err = h.put(&vec![0u8; 1 << 20]).unwrap_err();
        assert!(matches!(err, CopyError::OutOfSpace { .. }));
    }
}
