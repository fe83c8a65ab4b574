//! Page allocation in a pool: the bitmap of used pages and the page owner
//! table, changed together under the pool's lock.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::{Pool, PoolError, COMMIT_STEP, OWNER_HEADER, OWNER_MEM, OWNER_TAG, PAGE_SIZE};
use crate::segment;
use crate::sync::raw::RawRwLock;

/// The two tables of a pool's header area, each an array of one atomic
/// type, whose place the pool's layout fixes.
trait Table: Sized {
    /// The table's offset in the mapping and its number of entries.
    fn place(l: &super::Layout) -> (usize, usize);
}

/// The bitmap of used pages: one bit a page.
impl Table for AtomicU64 {
    fn place(l: &super::Layout) -> (usize, usize) {
        (l.bitmap_offset, l.n_pages.div_ceil(64))
    }
}

/// The owner table: one entry a page.
impl Table for AtomicU32 {
    fn place(l: &super::Layout) -> (usize, usize) {
        (l.owners_offset, l.n_pages)
    }
}

impl Pool {
    fn table<A: Table>(&self) -> &[A] {
        let (offset, len) = A::place(&self.inner.layout);
        // SAFETY: the table lies inside the reserved header area, aligned,
        // with `len` entries (the layout was computed or checked when the
        // pool was created or attached), and stays mapped while `self`
        // lives; atomics accept every bit pattern and may be shared with
        // other processes.
        unsafe {
            std::slice::from_raw_parts(self.inner.map.ptr().as_ptr().add(offset).cast::<A>(), len)
        }
    }

    fn bitmap(&self) -> &[AtomicU64] {
        self.table()
    }

    #[inline]
    fn owners(&self) -> &[AtomicU32] {
        self.table()
    }

    /// The owner entry of the page holding `addr` (0 when free or outside
    /// the data area).
    #[inline]
    pub(crate) fn page_owner(&self, addr: usize) -> u32 {
        let start = self.inner.base + self.inner.layout.data_offset;
        if addr < start {
            return 0;
        }
        self.owners()
            .get((addr - start) / PAGE_SIZE)
            .map_or(0, |o| o.load(Ordering::Acquire))
    }

    /// A fresh tag for a heap or a block of this pool (never 0, and never
    /// with [`OWNER_MEM`] or [`OWNER_HEADER`]: the caller adds them).
    pub(crate) fn new_tag(&self) -> u32 {
        loop {
            let t = self.header().next_tag.fetch_add(1, Ordering::Relaxed) & OWNER_TAG & !OWNER_MEM;
            if t != 0 {
                return t;
            }
        }
    }

    /// Takes the pool's lock, until the returned hold is dropped. When its
    /// last holder died inside, the bitmap and the owner table may
    /// disagree on a few pages (the holder was between the two): they are
    /// made to agree again first.
    pub(super) fn lock(&self) -> Result<PoolLock<'_>, PoolError> {
        let h = self.header();
        let acquired = h.lock.write(None).map_err(PoolError::Lock)?;
        if acquired.owner_died() {
            self.repair_page_table();
            let _ = h.lock.mark_consistent();
        }
        Ok(PoolLock {
            lock: &h.lock,
            _not_send: PhantomData,
        })
    }

    /// Makes the bitmap and the owner table agree, after a process died
    /// changing them (the pool lock is held): a used page without an owner
    /// was never handed out, and an owner on a free page was never
    /// cleared. Recounts the used pages.
    fn repair_page_table(&self) {
        let h = self.header();
        let bits = self.bitmap();
        let owners = self.owners();
        let mut used = 0u64;
        for (i, o) in owners.iter().enumerate() {
            let mask = 1u64 << (i % 64);
            let bit = bits[i / 64].load(Ordering::Relaxed) & mask != 0;
            let owned = o.load(Ordering::Relaxed) != 0;
            match (bit, owned) {
                (true, false) => {
                    bits[i / 64].fetch_and(!mask, Ordering::Relaxed);
                }
                (false, true) => o.store(0, Ordering::Release),
                (true, true) => used += 1,
                (false, false) => {}
            }
        }
        h.used_pages.store(used, Ordering::Relaxed);
        h.hint.store(0, Ordering::Relaxed);
    }

    /// Allocates `size` bytes (rounded up to pages) of reserved memory for
    /// the owner `owner` (a heap tag, possibly with [`OWNER_HEADER`] for the
    /// first page); returns its address.
    ///
    /// The owner is recorded with the pages, under the pool's lock: pages
    /// that a killed process took and never linked to its heap carry the
    /// heap's tag, and the heap gives them back (when it repairs itself or
    /// is destroyed).
    ///
    /// [`OWNER_HEADER`]: super::OWNER_HEADER
    pub(crate) fn alloc_pages(&self, size: usize, owner: u32) -> Result<usize, PoolError> {
        let n = size.div_ceil(PAGE_SIZE).max(1);
        let h = self.header();
        let lock = self.lock()?;
        let r = find_run(
            self.bitmap(),
            self.inner.layout.n_pages,
            n,
            h.hint.load(Ordering::Relaxed) as usize,
        );
        if let Some(first) = r {
            let owners = self.owners();
            for (i, o) in owners[first..first + n].iter().enumerate() {
                let v = if i == 0 { owner } else { owner & OWNER_TAG };
                o.store(v, Ordering::Release);
            }
            let taken = set_run(self.bitmap(), first, n, true);
            h.used_pages.fetch_add(taken as u64, Ordering::Relaxed);
            h.hint.store((first + n) as u64, Ordering::Relaxed);
        }
        drop(lock);
        let Some(first) = r else {
            return Err(PoolError::OutOfMemory {
                requested: n * PAGE_SIZE,
                available: self.stats().free,
            });
        };
        let offset = self.inner.layout.data_offset + first * PAGE_SIZE;
        let end = offset + n * PAGE_SIZE;
        if let Err(e) = self.commit(end as u64) {
            self.free_pages(self.inner.base + offset, n * PAGE_SIZE);
            return Err(e);
        }
        Ok(self.inner.base + offset)
    }

    /// Frees, under one hold of the pool's lock, every page whose owner's
    /// tag is `tag`, outside `except` (an address range), for which
    /// `keep(page address)` is false; returns the bytes freed. Owners are
    /// read under the lock, so a page that changed hands meanwhile is never
    /// freed for its old owner.
    pub(crate) fn free_pages_of(
        &self,
        tag: u32,
        except: (usize, usize),
        keep: &dyn Fn(usize) -> bool,
    ) -> usize {
        let Ok(_lock) = self.lock() else {
            return 0;
        };
        self.free_matching(&|addr, owner| {
            owner & OWNER_TAG == tag && !(addr >= except.0 && addr < except.1) && !keep(addr)
        })
    }

    /// Frees, under one hold of the pool's lock, the pages of owners that
    /// `dead` declares dead. `dead(header page address, tag)` is asked
    /// about every heap header page, under the lock (so that no page
    /// changes hands while it looks); it answers `None` for a live owner,
    /// `Some(true)` to free all but the header page (left as a tombstone),
    /// `Some(false)` to free every page. Returns the bytes freed.
    pub(crate) fn free_dead_owners(&self, dead: &dyn Fn(usize, u32) -> Option<bool>) -> usize {
        let Ok(_lock) = self.lock() else {
            return 0;
        };
        let start = self.inner.base + self.inner.layout.data_offset;
        // Tag → the tombstone page to keep (0: none).
        let mut verdicts: Vec<(u32, usize)> = Vec::new();
        for (i, o) in self.owners().iter().enumerate() {
            let v = o.load(Ordering::Acquire);
            // Blocks of raw memory are freed by their reference count only.
            if v & OWNER_HEADER == 0 || v & OWNER_MEM != 0 {
                continue;
            }
            let addr = start + i * PAGE_SIZE;
            if let Some(keep_header) = dead(addr, v & OWNER_TAG) {
                verdicts.push((v & OWNER_TAG, if keep_header { addr } else { 0 }));
            }
        }
        if verdicts.is_empty() {
            return 0;
        }
        self.free_matching(&|addr, owner| {
            verdicts
                .iter()
                .any(|&(t, kept)| owner & OWNER_TAG == t && addr != kept)
        })
    }

    /// Frees every used page for which `matches(page address, owner)`;
    /// the pool's lock must be held. Returns the bytes freed.
    fn free_matching(&self, matches: &dyn Fn(usize, u32) -> bool) -> usize {
        let h = self.header();
        let start = self.inner.base + self.inner.layout.data_offset;
        let bits = self.bitmap();
        let mut freed = 0usize;
        for (i, o) in self.owners().iter().enumerate() {
            let v = o.load(Ordering::Acquire);
            if v == 0 || !matches(start + i * PAGE_SIZE, v) {
                continue;
            }
            freed += set_run(bits, i, 1, false);
            o.store(0, Ordering::Release);
            if (i as u64) < h.hint.load(Ordering::Relaxed) {
                h.hint.store(i as u64, Ordering::Relaxed);
            }
        }
        h.used_pages.fetch_sub(freed as u64, Ordering::Relaxed);
        freed * PAGE_SIZE
    }

    fn commit(&self, end: u64) -> Result<(), PoolError> {
        let h = self.header();
        let committed = h.committed.load(Ordering::Acquire);
        if end <= committed {
            return Ok(());
        }
        // Growing a segment that another process cut short would silently
        // bring back zeros where data was: refuse.
        let size = segment::object_size(&self.inner.fd).map_err(|e| PoolError::Io("fstat", e))?;
        if size < self.inner.total as u64 || self.is_truncated() {
            return Err(self.truncated_error());
        }
        let target = end
            .next_multiple_of(COMMIT_STEP)
            .min(self.inner.total as u64)
            .max(end);
        let from = committed;
        match segment::reserve(&self.inner.fd, from, target - from) {
            Ok(()) => {}
            Err(_) if target > end => {
                // The rounded-up range does not fit: try exactly what is needed.
                segment::reserve(&self.inner.fd, from, end - from)
                    .map_err(|e| self.commit_error(e, end - from))?;
                h.committed.fetch_max(end, Ordering::AcqRel);
                return Ok(());
            }
            Err(e) => return Err(self.commit_error(e, target - from)),
        }
        h.committed.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    fn commit_error(&self, e: io::Error, len: u64) -> PoolError {
        if super::is_out_of_memory(&e) {
            PoolError::OutOfMemory {
                requested: len as usize,
                available: self.stats().free,
            }
        } else {
            PoolError::Io("fallocate", e)
        }
    }

    /// Returns pages to the pool (their owner entries and bits, together,
    /// under the pool's lock).
    pub(crate) fn free_pages(&self, addr: usize, size: usize) {
        let n = size.div_ceil(PAGE_SIZE).max(1);
        let h = self.header();
        let first = (addr - self.inner.base - self.inner.layout.data_offset) / PAGE_SIZE;
        // A failed lock leaks the pages rather than risking the bitmap.
        if let Ok(_lock) = self.lock() {
            // Counted by the bits that were set: after a repair (a process
            // died freeing these very pages) some may be free already.
            let freed = set_run(self.bitmap(), first, n, false);
            for o in &self.owners()[first..first + n] {
                o.store(0, Ordering::Release);
            }
            h.used_pages.fetch_sub(freed as u64, Ordering::Relaxed);
            if (first as u64) < h.hint.load(Ordering::Relaxed) {
                h.hint.store(first as u64, Ordering::Relaxed);
            }
        }
    }
}

/// The pool's lock, held exclusively by this thread until dropped.
///
/// Invariant: the calling thread holds `lock` exclusively while the value
/// lives (only [`Pool::lock`], which takes it, makes one).
pub(super) struct PoolLock<'a> {
    lock: &'a RawRwLock,
    // Released by the thread that took it: `!Send`.
    _not_send: PhantomData<*const ()>,
}

impl Drop for PoolLock<'_> {
    fn drop(&mut self) {
        // SAFETY: the lock is held exclusively by this thread (type
        // invariant).
        unsafe { self.lock.unlock_write() };
    }
}

fn find_run(bits: &[AtomicU64], total: usize, n: usize, hint: usize) -> Option<usize> {
    if n > total {
        return None;
    }
    let hint = if hint + n > total { 0 } else { hint };
    let search = |from: usize, to: usize| -> Option<usize> {
        let mut i = from;
        let mut run = 0;
        let mut start = from;
        while i < to {
            let w = bits[i / 64].load(Ordering::Relaxed);
            if i.is_multiple_of(64) && w == u64::MAX {
                run = 0;
                i += 64;
                start = i;
                continue;
            }
            if i.is_multiple_of(64) && w == 0 && run + 64 <= n {
                run += 64;
                i += 64;
                if run == n {
                    return Some(start);
                }
                continue;
            }
            if w & (1 << (i % 64)) == 0 {
                run += 1;
                if run == n {
                    return Some(start);
                }
            } else {
                run = 0;
                start = i + 1;
            }
            i += 1;
        }
        None
    };
    search(hint, total).or_else(|| search(0, (hint + n).min(total)))
}

/// Sets or clears the bits of pages `first..first + n`; returns how many
/// changed.
fn set_run(bits: &[AtomicU64], first: usize, n: usize, value: bool) -> usize {
    let mut changed = 0;
    for i in first..first + n {
        let mask = 1u64 << (i % 64);
        let old = if value {
            bits[i / 64].fetch_or(mask, Ordering::Relaxed)
        } else {
            bits[i / 64].fetch_and(!mask, Ordering::Relaxed)
        };
        changed += usize::from((old & mask != 0) != value);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(n: usize) -> Vec<AtomicU64> {
        (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn runs() {
        let b = bitmap(200);
        assert_eq!(find_run(&b, 200, 10, 0), Some(0));
        set_run(&b, 0, 10, true);
        assert_eq!(find_run(&b, 200, 10, 0), Some(10));
        set_run(&b, 10, 100, true);
        assert_eq!(find_run(&b, 200, 90, 0), Some(110));
        assert_eq!(find_run(&b, 200, 91, 0), None);
        set_run(&b, 0, 5, false);
        assert_eq!(find_run(&b, 200, 5, 150), Some(150));
        assert_eq!(find_run(&b, 200, 5, 195), Some(195));
        assert_eq!(find_run(&b, 200, 5, 197), Some(0));
        set_run(&b, 110, 90, true);
        assert_eq!(find_run(&b, 200, 6, 0), None);
    }
}
