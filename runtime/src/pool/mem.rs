//! Raw memory in a pool ([`PoolMem`]): the counterpart of Netmulticore's
//! `Netmcore_mempool.alloc_mem`, `free_mem` and `size_mem`.
//!
//! A block is whole pages of the pool, with a small header in front of the
//! bytes it hands out. The header counts the handles on the block in every
//! process (and the references kept on purpose); the pages go back to the
//! pool when the count reaches 0. The pages carry a tag of their own in the
//! pool's page table, which no heap ever has, so no heap takes them.
//!
//! Opening a block by descriptor checks the tag and takes a reference under
//! the pool's lock, and pages are freed only under that lock: a block that
//! was freed (its count at 0) cannot be opened again, and its pages cannot
//! be handed to anyone else while a handle exists. The bytes are atomics,
//! since other processes read and write them at the same time.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

use super::{Pool, PoolDescr, PoolError, PAGE_SIZE};
use crate::in_shared::{at, in_shared};
use crate::sync::home::Home;

/// The bytes in front of a block's memory (a cache line).
const MEM_HEADER: usize = 64;

const MEM_MAGIC: u64 = u64::from_le_bytes(*b"mc-mem\x00\x01");

in_shared! {
    /// The header of a block.
    struct MemHeader {
        magic: AtomicU64,
        /// The block's tag in the pool's page table.
        tag: u32,
        /// Handles and kept references on the block, in every process.
        refs: AtomicU32,
        /// The references kept on purpose ([`PoolMem::keep`]).
        kept: AtomicU32,
        _pad: u32,
        /// The usable bytes.
        len: u64,
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
        let tag = self.new_tag();
        let addr = self.alloc_pages(total, tag)?;
        // SAFETY: `total` bytes of fresh pages that this block owns (their
        // tag is new) and nobody else knows yet: zeroed, then the header is
        // written, all before any descriptor exists. Openers read the plain
        // fields only after seeing the magic, which is stored last.
        unsafe {
            std::ptr::write_bytes(at::<u8>(addr), 0, total);
            at::<MemHeader>(addr).write(MemHeader {
                magic: AtomicU64::new(0),
                tag,
                refs: AtomicU32::new(1),
                kept: AtomicU32::new(0),
                _pad: 0,
                len: len as u64,
            });
        }
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
    // SAFETY: callers pass the address of a block's first page, which stays
    // mapped as long as its pool (and the handle on it) lives; the header
    // is made of atomics and of plain fields written once before the block
    // is shared.
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
        let len = h.len as usize;
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
        let gone = PoolError::NoSuchMem { addr: self.addr };
        if !self.addr.is_multiple_of(PAGE_SIZE) || !pool.contains_committed(self.addr, MEM_HEADER) {
            return Err(gone);
        }
        let _lock = pool.lock()?;
        // Under the lock no page changes hands: the tag says whether the
        // pages are this block's.
        if pool.page_owner(self.addr) != self.tag {
            return Err(gone);
        }
        let h = header(self.addr);
        // The magic first: it is stored after the plain fields.
        if h.magic.load(Ordering::Acquire) != MEM_MAGIC || h.tag != self.tag {
            return Err(gone);
        }
        h.refs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                (r > 0).then(|| r + 1)
            })
            .map_err(|_| gone)?;
        Ok(h.len as usize)
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
