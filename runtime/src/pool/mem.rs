//! Raw memory in a pool ([`PoolMem`]): the counterpart of Netmulticore's
//! `Netmcore_mempool.alloc_mem`, `free_mem` and `size_mem`.
//!
//! A block is whole pages of the pool, with a small header in front of the
//! bytes it hands out. The header counts the handles on the block in every
//! process (and the references kept on purpose); the pages go back to the
//! pool when the count reaches 0.
//!
//! The pool's page owner table, which no value can write, marks every page
//! of a block with [`OWNER_MEM`] and the block's tag, and its first page
//! with [`OWNER_HEADER`] too. Heap tags never carry `OWNER_MEM`: a block
//! descriptor, forged or stale, opens only the first page of a live block
//! (never a heap's pages, and never the middle of a block, where the bytes
//! are the user's), and no heap ever takes, opens or frees a block's page.
//! A stale descriptor whose tag has come round again names at worst
//! another live block: raw bytes, counted like any handle.
//!
//! Opening a block by descriptor checks the owner table and takes a
//! reference under the pool's lock, and pages are freed only under that
//! lock: a block that was freed (its count at 0) cannot be opened again,
//! and its pages cannot be handed to anyone else while a handle exists. The
//! bytes are atomics, since other processes read and write them at the same
//! time.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

use super::{Pool, PoolDescr, PoolError, OWNER_HEADER, OWNER_MEM, PAGE_SIZE};
use crate::in_shared::{at, in_shared};
use crate::sync::home::Home;

/// The bytes in front of a block's memory (a cache line).
const MEM_HEADER: usize = 64;

const MEM_MAGIC: u64 = u64::from_le_bytes(*b"mc-mem\x00\x01");

in_shared! {
    /// The header of a block.
    struct MemHeader {
        /// [`MEM_MAGIC`] while the block is alive, stored last.
        magic: AtomicU64,
        /// The block's owner entry in the pool's page table (with
        /// [`OWNER_MEM`], without [`OWNER_HEADER`]).
        tag: AtomicU32,
        /// Handles and kept references on the block, in every process.
        refs: AtomicU32,
        /// The references kept on purpose ([`PoolMem::keep`]).
        kept: AtomicU32,
        _pad: u32,
        /// The usable bytes.
        len: AtomicU64,
    }
}

/// Raw memory in a pool, shared by every process that opens it by
/// descriptor; given back to the pool when the last handle is dropped,
/// unless a reference was [kept](PoolMem::keep).
///
/// Its bytes are atomics ([`bytes`](PoolMem::bytes),
/// [`words`](PoolMem::words)): other processes read and write them at the
/// same time, and every access is bounds-checked by the slice. For typed
/// values with pointers, use a [`Heap`](crate::Heap).
///
/// A process that dies holding a handle (killed, or ended by
/// `std::process::exit`) leaves its reference behind: the block then stays
/// in the pool until the pool is removed. A handle copied into a child by
/// `fork` holds no reference: there it is inert (dropping it does
/// nothing, and reading it panics), and the child opens the block by
/// descriptor instead.
///
/// ```
/// use std::sync::atomic::Ordering;
///
/// let pool = mc::Pool::create(1 << 20)?;
/// let mem = pool.alloc_mem(1000)?;
/// assert_eq!(mem.len(), 1000);
/// mem.bytes()[999].store(7, Ordering::Relaxed);
/// // Another process opens it by descriptor (a serde type).
/// let other = mem.descr().open()?;
/// assert_eq!(other.bytes()[999].load(Ordering::Relaxed), 7);
/// drop((mem, other)); // the last handle gives the pages back
/// # Ok::<(), mc::PoolError>(())
/// ```
pub struct PoolMem {
    pool: Pool,
    /// The block's first byte (its header).
    addr: usize,
    tag: u32,
    len: usize,
    /// The process that holds the reference: a copy made by `fork` neither
    /// reads the bytes (the block may be gone) nor drops the reference.
    home: Home,
    /// Cleared by [`PoolMem::keep`]: the reference outlives the handle.
    release_on_drop: bool,
}

/// A serde-able reference to a [`PoolMem`] block, to open it in another
/// process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolMemDescr {
    pool: PoolDescr,
    addr: usize,
    tag: u32,
}

impl crate::value::DescrParts for PoolMemDescr {
    type Parts = (String, u64, u32);
    fn to_parts(&self) -> Self::Parts {
        (
            crate::value::DescrParts::to_parts(&self.pool),
            self.addr as u64,
            self.tag,
        )
    }
    fn from_parts((pool, addr, tag): Self::Parts) -> Self {
        PoolMemDescr {
            pool: crate::value::DescrParts::from_parts(pool),
            // An address that does not fit names no block: opening says so.
            addr: usize::try_from(addr).unwrap_or(usize::MAX),
            tag,
        }
    }
}

crate::value::descr::shared_descr!(
    [] PoolMemDescr,
    crate::value::fingerprint_str("mc::PoolMemDescr"),
    crate::value::fingerprint_str("mc::PoolMemDescr")
);

impl Pool {
    /// Allocates a block of `len` bytes (at least 1) of raw shared memory,
    /// zeroed. The counterpart of Netmulticore's `alloc_mem`.
    ///
    /// # Errors
    ///
    /// [`PoolError::BadSize`] when `len` is 0 or too large;
    /// [`PoolError::OutOfMemory`] when the pool has no room for it;
    /// [`PoolError::Lock`] when the pool's lock fails.
    pub fn alloc_mem(&self, len: usize) -> Result<PoolMem, PoolError> {
        let total = len
            .checked_add(MEM_HEADER)
            .filter(|_| len > 0)
            .and_then(|t| t.checked_next_multiple_of(PAGE_SIZE))
            .ok_or(PoolError::BadSize {
                size: len,
                reason: "a block holds 1 byte or more, and less than the address space",
            })?;
        let tag = self.new_tag() | OWNER_MEM;
        let addr = self.alloc_pages(total, tag | OWNER_HEADER)?;
        // SAFETY: `total` bytes of free pages just given to this block: no
        // handle of a block or heap reaches them (their last owner's count
        // reached 0, or its heap was destroyed, before they were freed), so
        // the plain zeroing races with nobody. An opener by descriptor reads
        // the header only through atomics, and takes the block only after
        // seeing the magic, which is stored last.
        unsafe { std::ptr::write_bytes(at::<u8>(addr), 0, total) };
        let h = header(addr);
        h.tag.store(tag, Ordering::Relaxed);
        h.len.store(len as u64, Ordering::Relaxed);
        h.refs.store(1, Ordering::Relaxed);
        header(addr).magic.store(MEM_MAGIC, Ordering::Release);
        Ok(PoolMem {
            pool: self.clone(),
            addr,
            tag,
            len,
            home: Home::here(),
            release_on_drop: true,
        })
    }
}

/// The header of the block at `addr`.
fn header<'a>(addr: usize) -> &'a MemHeader {
    // SAFETY: callers pass the page-aligned address of committed pool
    // memory (a block's first page, or a page the owner table names as one)
    // that stays mapped while the pool lives, and they hold a handle of the
    // pool; the header's fields are atomics (valid for any bytes, shared
    // between processes) apart from `_pad`, which nobody reads.
    unsafe { &*at::<MemHeader>(addr) }
}

impl PoolMem {
    /// The usable bytes: what was asked for. Netmulticore's `size_mem`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block holds no bytes (never: a block holds at least 1).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pool the block lives in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The block's bytes.
    ///
    /// # Panics
    ///
    /// In any process but the one that allocated or opened this handle (a
    /// copy that `fork` made): open the block by descriptor there.
    pub fn bytes(&self) -> &[AtomicU8] {
        self.home.check("PoolMem");
        // SAFETY: the block's `len` bytes follow its header, in pages this
        // block owns while a reference (this handle's) exists; they stay
        // mapped while the pool lives; atomics accept every bit pattern and
        // may be shared with other processes.
        unsafe { std::slice::from_raw_parts(at::<AtomicU8>(self.addr + MEM_HEADER), self.len) }
    }

    /// The block's bytes as 64-bit words (the first `len / 8`; the block
    /// starts 64-byte aligned).
    ///
    /// # Panics
    ///
    /// As [`bytes`](PoolMem::bytes).
    pub fn words(&self) -> &[AtomicU64] {
        self.home.check("PoolMem");
        // SAFETY: as in `bytes`, for `len / 8` words that start 64-byte
        // aligned (a page plus the 64-byte header).
        unsafe { std::slice::from_raw_parts(at::<AtomicU64>(self.addr + MEM_HEADER), self.len / 8) }
    }

    /// The `T` at byte `offset` of the block's bytes; `None` when it does
    /// not fit in the block or is not aligned.
    ///
    /// # Safety
    ///
    /// Every field of `T` must be an atomic (or made of atomics, as the raw
    /// locks are): other processes write the block at the same time.
    ///
    /// # Panics
    ///
    /// As [`bytes`](PoolMem::bytes).
    pub(crate) unsafe fn field<T: crate::in_shared::InShared>(&self, offset: usize) -> Option<&T> {
        self.home.check("PoolMem");
        let end = offset.checked_add(std::mem::size_of::<T>())?;
        let addr = self.addr + MEM_HEADER + offset;
        if end > self.len || !addr.is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        // SAFETY: inside the block's `len` bytes (checked), which stay
        // mapped and owned by the block while this handle's reference
        // exists; aligned (checked); `T: InShared` accepts every bit
        // pattern, and the caller vouches that its fields are atomics, so
        // a shared reference may coexist with other processes' writes.
        Some(unsafe { &*at::<T>(addr) })
    }

    /// The address of the block's first usable byte (64-byte aligned), and
    /// whether the calling process holds this handle's reference (not a
    /// copy made by `fork`): for a structure that keeps the address and
    /// checks the process itself.
    pub(crate) fn raw_parts(&self) -> (usize, Home) {
        (self.addr + MEM_HEADER, self.home)
    }

    /// The block's descriptor, to open it in another process.
    pub fn descr(&self) -> PoolMemDescr {
        PoolMemDescr {
            pool: self.pool.descr(),
            addr: self.addr,
            tag: self.tag,
        }
    }

    /// Keeps the block after this handle is gone: its reference stays, so
    /// the memory is not given back when the last handle is dropped, until
    /// [`PoolMemDescr::release`] gives the kept reference back.
    pub fn keep(mut self) -> PoolMemDescr {
        if self.home.is_here() {
            header(self.addr).kept.fetch_add(1, Ordering::AcqRel);
            self.release_on_drop = false;
        }
        self.descr()
    }
}

impl Drop for PoolMem {
    fn drop(&mut self) {
        if self.release_on_drop && self.home.is_here() {
            unref(&self.pool, self.addr);
        }
    }
}

/// Drops one reference on the block at `addr`; gives its pages back when
/// it was the last.
fn unref(pool: &Pool, addr: usize) {
    let h = header(addr);
    if h.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
        let len = h.len.load(Ordering::Relaxed) as usize;
        // At 0 nobody can open the block again (opening takes a reference
        // only from a count above 0, under the pool's lock), and pages are
        // freed under that lock.
        h.magic.store(0, Ordering::Release);
        let total = (len + MEM_HEADER).next_multiple_of(PAGE_SIZE);
        pool.free_pages(addr, total);
    }
}

impl fmt::Debug for PoolMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolMem")
            .field("pool", &self.pool.name())
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("len", &self.len)
            .finish()
    }
}

impl PoolMemDescr {
    /// Opens the block: a new handle on it, in this process.
    ///
    /// # Errors
    ///
    /// [`PoolError::NoSuchMem`] when the block was given back to the pool
    /// (or the descriptor names none); the errors of
    /// [`PoolDescr::open`](super::PoolDescr::open).
    pub fn open(&self) -> Result<PoolMem, PoolError> {
        let pool = self.pool.open()?;
        let len = self.take_ref(&pool)?;
        Ok(PoolMem {
            pool,
            addr: self.addr,
            tag: self.tag,
            len,
            home: Home::here(),
            release_on_drop: true,
        })
    }

    /// Gives back a reference kept with [`PoolMem::keep`]: the block goes
    /// back to the pool when no handle and no other kept reference is left.
    /// Netmulticore's `free_mem`.
    ///
    /// # Errors
    ///
    /// [`PoolError::NoSuchMem`] when the block has no kept reference left
    /// (it was never kept, or every kept reference was given back) or is
    /// gone; the errors of [`PoolDescr::open`](super::PoolDescr::open).
    pub fn release(&self) -> Result<(), PoolError> {
        let pool = self.pool.open()?;
        // A handle of our own for the check, dropped at the end: the kept
        // reference is given back while the block is known to be alive.
        let len = self.take_ref(&pool)?;
        let h = header(self.addr);
        let released = h
            .kept
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |k| k.checked_sub(1))
            .is_ok();
        if released {
            unref(&pool, self.addr);
        }
        drop(PoolMem {
            pool,
            addr: self.addr,
            tag: self.tag,
            len,
            home: Home::here(),
            release_on_drop: true,
        });
        if released {
            Ok(())
        } else {
            Err(PoolError::NoSuchMem { addr: self.addr })
        }
    }

    /// Takes a reference on the block, under the pool's lock, if the block
    /// is alive; returns its length.
    fn take_ref(&self, pool: &Pool) -> Result<usize, PoolError> {
        let addr = self.addr;
        let gone = || PoolError::NoSuchMem { addr };
        if !self.addr.is_multiple_of(PAGE_SIZE)
            || self.tag & (OWNER_MEM | OWNER_HEADER) != OWNER_MEM
            || !pool.contains_committed(self.addr, MEM_HEADER)
        {
            return Err(gone());
        }
        let _lock = pool.lock()?;
        // Under the lock no page changes hands: the owner table says
        // whether the block starts here and which pages are its own.
        if pool.page_owner(self.addr) != self.tag | OWNER_HEADER {
            return Err(gone());
        }
        let h = header(self.addr);
        // The magic first: it is stored after the other fields.
        if h.magic.load(Ordering::Acquire) != MEM_MAGIC || h.tag.load(Ordering::Relaxed) != self.tag
        {
            return Err(gone());
        }
        let len = usize::try_from(h.len.load(Ordering::Relaxed)).map_err(|_| gone())?;
        let total = len
            .checked_add(MEM_HEADER)
            .and_then(|t| t.checked_next_multiple_of(PAGE_SIZE))
            .ok_or_else(gone)?;
        // Every page the length covers is the block's, in committed memory
        // (a damaged header cannot reach past the block).
        let owned = pool.contains_committed(self.addr, total)
            && (PAGE_SIZE..total)
                .step_by(PAGE_SIZE)
                .all(|off| pool.page_owner(self.addr + off) == self.tag);
        if len == 0 || !owned {
            return Err(gone());
        }
        h.refs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                (r > 0).then(|| r + 1)
            })
            .map_err(|_| gone())?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool::create(8 << 20).expect("pool")
    }

    #[test]
    fn blocks_are_zeroed_shared_and_given_back() {
        let pool = pool();
        let before = pool.stats().used;
        let mem = pool.alloc_mem(5000).unwrap();
        assert_eq!((mem.len(), mem.words().len()), (5000, 625));
        assert!(mem.bytes().iter().all(|b| b.load(Ordering::Relaxed) == 0));
        mem.words()[3].store(42, Ordering::Relaxed);
        mem.bytes()[4999].store(9, Ordering::Relaxed);
        let other = mem.descr().open().unwrap();
        assert_eq!(other.words()[3].load(Ordering::Relaxed), 42);
        assert_eq!(other.bytes()[4999].load(Ordering::Relaxed), 9);
        assert_eq!(pool.stats().used, before + 2 * PAGE_SIZE);
        let d = mem.descr();
        drop(mem);
        assert_eq!(
            pool.stats().used,
            before + 2 * PAGE_SIZE,
            "a handle is left"
        );
        drop(other);
        assert_eq!(pool.stats().used, before, "the last handle gives it back");
        assert!(matches!(d.open(), Err(PoolError::NoSuchMem { .. })));
        // Reused pages come back zeroed.
        let again = pool.alloc_mem(5000).unwrap();
        assert!(again.bytes().iter().all(|b| b.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn kept_blocks_outlive_their_handles_until_released() {
        let pool = pool();
        let before = pool.stats().used;
        let mem = pool.alloc_mem(10).unwrap();
        mem.bytes()[0].store(5, Ordering::Relaxed);
        let d = mem.keep();
        assert_eq!(pool.stats().used, before + PAGE_SIZE);
        let h = d.open().unwrap();
        assert_eq!(h.bytes()[0].load(Ordering::Relaxed), 5);
        drop(h);
        d.release().unwrap();
        assert_eq!(pool.stats().used, before);
        assert!(matches!(d.release(), Err(PoolError::NoSuchMem { .. })));
        assert!(matches!(d.open(), Err(PoolError::NoSuchMem { .. })));
        // Releasing a block that was never kept leaves its handles alone.
        let live = pool.alloc_mem(10).unwrap();
        assert!(matches!(
            live.descr().release(),
            Err(PoolError::NoSuchMem { .. })
        ));
        live.bytes()[9].store(1, Ordering::Relaxed);
        assert_eq!(pool.stats().used, before + PAGE_SIZE);
    }

    #[test]
    fn bad_sizes_and_forged_descriptors_are_errors() {
        let pool = pool();
        assert!(matches!(pool.alloc_mem(0), Err(PoolError::BadSize { .. })));
        assert!(matches!(
            pool.alloc_mem(usize::MAX),
            Err(PoolError::BadSize { .. })
        ));
        assert!(matches!(
            pool.alloc_mem(64 << 20),
            Err(PoolError::OutOfMemory { .. })
        ));
        let mem = pool.alloc_mem(100).unwrap();
        let mut d = mem.descr();
        d.tag ^= 1;
        assert!(matches!(d.open(), Err(PoolError::NoSuchMem { .. })));
        let mut d = mem.descr();
        d.addr += 8;
        assert!(matches!(d.open(), Err(PoolError::NoSuchMem { .. })));
        // A heap's pages are not a block.
        let heap = crate::Heap::create(&pool, &1u64).unwrap();
        let mut d = mem.descr();
        let (_, heap_addr, _, _) = crate::value::DescrParts::to_parts(&heap.descr());
        d.addr = heap_addr as usize & !(PAGE_SIZE - 1);
        assert!(matches!(d.open(), Err(PoolError::NoSuchMem { .. })));
    }

    #[test]
    fn descriptors_open_only_the_first_page_of_a_live_block() {
        let pool = pool();
        // Three pages; the user's bytes at the start of the second page
        // mimic a block header with the block's own tag.
        let mem = pool.alloc_mem(3 * PAGE_SIZE - MEM_HEADER).unwrap();
        let second = PAGE_SIZE - MEM_HEADER;
        let fake = [MEM_MAGIC, u64::from(mem.tag) | (5 << 32), 0, u64::MAX >> 1];
        for (i, v) in fake.iter().enumerate() {
            for (j, b) in v.to_le_bytes().iter().enumerate() {
                mem.bytes()[second + 8 * i + j].store(*b, Ordering::Relaxed);
            }
        }
        let mut d = mem.descr();
        d.addr += PAGE_SIZE;
        assert!(matches!(d.open(), Err(PoolError::NoSuchMem { .. })));
        // A tag without the block bit, or with the header bit.
        for tag in [mem.tag & !OWNER_MEM, mem.tag | OWNER_HEADER] {
            let mut d = mem.descr();
            d.tag = tag;
            assert!(matches!(d.open(), Err(PoolError::NoSuchMem { .. })));
        }
        // A heap's header page under its own tag, with or without the bit.
        let heap = crate::Heap::create(&pool, &7u64).unwrap();
        let (_, heap_addr, _, _) = crate::value::DescrParts::to_parts(&heap.descr());
        let heap_page = heap_addr as usize & !(PAGE_SIZE - 1);
        let heap_tag = pool.page_owner(heap_page) & !OWNER_HEADER;
        assert_eq!(
            heap_tag & OWNER_MEM,
            0,
            "heap tags never carry the block bit"
        );
        for tag in [heap_tag, heap_tag | OWNER_MEM] {
            let d = PoolMemDescr {
                pool: pool.descr(),
                addr: heap_page,
                tag,
            };
            assert!(matches!(d.open(), Err(PoolError::NoSuchMem { .. })));
        }
        // A block's first page is not a heap either.
        let (pool_name, _, id, fingerprint) = crate::value::DescrParts::to_parts(&heap.descr());
        let forged: crate::HeapDescr<u64> =
            crate::value::DescrParts::from_parts((pool_name, mem.addr as u64, id, fingerprint));
        assert!(matches!(
            crate::Heap::open(&pool, &forged),
            Err(crate::HeapError::NotAHeap)
        ));
        // The collector's scavenger leaves live blocks alone.
        crate::heap::scavenge(&pool);
        assert!(mem.descr().open().is_ok());
        assert_eq!(heap.copy().unwrap(), 7);
    }

    #[test]
    fn tags_that_come_round_again_never_carry_the_block_bit() {
        let pool = pool();
        pool.header()
            .next_tag
            .store(OWNER_MEM - 1, Ordering::Relaxed);
        let a = pool.alloc_mem(8).unwrap();
        let b = pool.alloc_mem(8).unwrap();
        let heap = crate::Heap::create(&pool, &1u8).unwrap();
        assert_eq!(a.tag, (OWNER_MEM - 1) | OWNER_MEM);
        assert_ne!(b.tag & !OWNER_MEM, 0, "tag 0 is skipped");
        assert!(a.descr().open().is_ok() && b.descr().open().is_ok());
        assert_eq!(heap.copy().unwrap(), 1);
    }

    #[test]
    fn a_forked_copy_neither_reads_nor_drops() {
        let pool = pool();
        let before = pool.stats().used;
        let mem = pool.alloc_mem(10).unwrap();
        let copy = PoolMem {
            pool: pool.clone(),
            addr: mem.addr,
            tag: mem.tag,
            len: mem.len,
            home: Home::elsewhere(),
            release_on_drop: true,
        };
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| copy.bytes().len()));
        assert!(read.is_err());
        drop(copy);
        assert_eq!(
            pool.stats().used,
            before + PAGE_SIZE,
            "the copy released nothing"
        );
        drop(mem);
        assert_eq!(pool.stats().used, before);
    }
}
