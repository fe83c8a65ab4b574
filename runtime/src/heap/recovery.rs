//! What happens after a failure: a collector that the next holder redoes
//! when a process died in it, pages a killed process took and never linked,
//! the validating check of a heap written by others, and `recover`.
//!
//! A process can die (be killed) at any instruction while it holds a
//! heap's exclusive lock. What it was doing is recorded in the header
//! (`dirty`):
//!
//! - allocating or collecting (`DIRTY_ALLOC`): every value is whole; only
//!   the allocator's state (mark bits, free lists, counters, pages being
//!   linked) may be half updated. The next holder *repairs*: it checks the
//!   chunks, clears every mark, collects from scratch (which rebuilds the
//!   free lists and counters) and gives back pages of the heap that no
//!   chunk holds. The heap stays readable throughout.
//! - modifying (`DIRTY_DATA`): values may be half changed, so the heap is
//!   poisoned ([`Poison::Died`]) until [`Heap::recover`] has validated it.
//!
//! A panic inside a modification poisons the heap too ([`Poison::Panicked`]):
//! every value is whole, but the change may be half done.

use std::pin::Pin;
use std::sync::atomic::Ordering;

use super::alloc::{AllocState, Allocator, ChunkMemory, Corrupt, PoolSource};
use super::guards::{held, modifying, pinned, Exclusive, WriteLock};
use super::journal::JOURNAL_BYTES;
use super::Mutator;
use super::{
    Heap, HeapError, HeapHeader, HEAP_MAGIC, PIN_COUNT_BITS, PIN_COUNT_MASK, POISON_DIED,
    POISON_PANIC, TOMBSTONE,
};
use crate::in_shared::at;
use crate::pool::{Pool, PAGE_SIZE};
use crate::value::{Shared, Validator};

/// A structure's repair of its own data after a death
/// ([`Heap::recover_with`]).
pub(crate) type Repair<'a, T> =
    dyn FnMut(&Mutator<'_>, Pin<&mut <T as Shared>::Repr>) -> Result<(), HeapError> + 'a;

/// Why a heap is poisoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Poison {
    /// A modification panicked: every value is whole, but the change it
    /// made may be half done.
    Panicked,
    /// A process died in the middle of a modification (or the heap's
    /// memory was found damaged): values may be half written.
    Died,
}

impl<T: Shared> Heap<T> {
    /// Whether the heap is poisoned, and why (`None`: it is not).
    ///
    /// # Errors
    ///
    /// [`HeapError::Destroyed`] when the heap was destroyed.
    pub fn poisoned(&self) -> Result<Option<Poison>, HeapError> {
        let h = self.header();
        if h.magic.load(Ordering::Acquire) != HEAP_MAGIC || h.id != self.id {
            return Err(HeapError::Destroyed);
        }
        Ok(match h.poisoned.load(Ordering::Acquire) {
            0 => None,
            POISON_PANIC => Some(Poison::Panicked),
            _ => Some(Poison::Died),
        })
    }

    /// Makes a poisoned heap usable again, with its values as the failed
    /// modification left them (as `PoisonError::into_inner` does for a
    /// `std::sync::Mutex`), after checking that they are well formed.
    ///
    /// Under the exclusive lock: finishes a replacement in place that a
    /// death interrupted (from the heap's journal, see
    /// [`Mutator::set`](super::Mutator::set)), [validates](Heap::validate)
    /// the whole heap, then repairs the allocator's state (a full
    /// collection that also gives back pages a killed process left
    /// unlinked), and clears the poison. Returns why the heap was poisoned (`None` when it was
    /// not; then nothing is done).
    ///
    /// ```
    /// let pool = mc::Pool::create(16 << 20)?;
    /// let heap = mc::Heap::create(&pool, &vec![1u64, 2])?;
    /// let r = std::panic::catch_unwind(|| {
    ///     heap.modify(|m, v| {
    ///         m.push(v, &3u64).unwrap();
    ///         panic!("half-way");
    ///     })
    /// });
    /// assert!(r.is_err());
    /// assert!(matches!(heap.read(), Err(mc::HeapError::Poisoned)));
    /// assert_eq!(heap.recover()?, Some(mc::heap::Poison::Panicked));
    /// assert_eq!(heap.copy()?, vec![1, 2, 3]); // as the modification left it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`HeapError::Corrupt`] (the heap stays poisoned) when the values are
    /// not well formed: destroy the heap and rebuild it;
    /// [`HeapError::Destroyed`], [`HeapError::Reentrant`].
    pub fn recover(&self) -> Result<Option<Poison>, HeapError> {
        self.recover_with(false, None)
    }

    /// [`recover`](Self::recover), then (with `Some`) `repair` as a
    /// modification under the same exclusive lock, before the poison is
    /// cleared: what a structure built on the heap uses to restore its own
    /// invariants, so that no process sees the heap between the two (and a
    /// death during `repair` leaves it poisoned still). `repair` runs when
    /// the heap was poisoned or left for repair, and always with `always`.
    /// When it fails, the heap stays poisoned and its error is returned;
    /// while the root is pinned ([`Heap::pin`]) it does not run, and a
    /// poisoned heap stays so ([`HeapError::Pinned`]) until the pins are
    /// dropped.
    pub(crate) fn recover_with(
        &self,
        always: bool,
        repair: Option<&mut Repair<'_, T>>,
    ) -> Result<Option<Poison>, HeapError> {
        let h = self.header();
        if h.magic.load(Ordering::Acquire) != HEAP_MAGIC || h.id != self.id {
            return Err(HeapError::Destroyed);
        }
        if held(self.hdr) || modifying() {
            return Err(HeapError::Reentrant);
        }
        let mut lock = self.acquire_write(h, None, false)?;
        let was = self.poisoned()?;
        let damaged = was.is_some() || h.repair.load(Ordering::Acquire) != 0;
        if !damaged && !always {
            return Ok(None);
        }
        if damaged {
            self.redo_journal(h, was == Some(Poison::Died))?;
            self.validate_locked(h, lock.state())?;
            self.repair_locked(&mut lock);
            if h.poisoned.load(Ordering::Acquire) == POISON_DIED && was != Some(Poison::Died) {
                // The repair found damage the validation did not cover.
                return Err(HeapError::Corrupt("the chunk list"));
            }
        }
        let Some(repair) = repair else {
            // The heap's own repair alone (`recover`).
            h.poisoned.store(0, Ordering::Release);
            return Ok(was);
        };
        // A pinned root would be copied for the repair, which decides by the
        // addresses of the values it finds: it waits for the pins to go
        // (a dead process's pins went with the repair's collection).
        let root = h.root.load(Ordering::Acquire);
        if pinned(&h.pins_in_use, &h.pins, root - self.pool.base()) {
            return if damaged {
                Err(HeapError::Pinned(
                    h.pins_in_use.load(Ordering::Acquire) as usize
                ))
            } else {
                Ok(None)
            };
        }
        // SAFETY: the allocator's state is intact: it was repaired just now
        // (a repair that finds damage poisons the heap, checked above), or
        // nothing left it for repair. Its chunks are pages of this pool.
        let ex = unsafe { Exclusive::new(lock, &self.pool) };
        self.modify_locked(&ex, |m, t| repair(m, t))??;
        h.poisoned.store(0, Ordering::Release);
        Ok(was)
    }

    /// Writes again the replacement in place that a death interrupted (see
    /// [`journal`](super::journal)), with the exclusive lock held, when
    /// `died` (the heap was poisoned by a death, which is what leaves a
    /// journal pending); otherwise forgets a journal found pending.
    ///
    /// # Errors
    ///
    /// [`HeapError::Corrupt`] when the journal names a place (or a block of
    /// new bytes) outside the heap's chunks, or overlapping.
    fn redo_journal(&self, h: &HeapHeader, died: bool) -> Result<(), HeapError> {
        let Some(p) = h.journal.pending() else {
            return Ok(());
        };
        if !died {
            h.journal.forget();
            return Ok(());
        }
        let corrupt = HeapError::Corrupt("the journal of a replacement in place");
        let len = p.len;
        let in_heap = |offset: usize, n: usize| {
            self.pool
                .base()
                .checked_add(offset)
                .filter(|&addr| self.in_chunks(h, addr, n))
        };
        let places = len.saturating_mul(1 + usize::from(p.second.is_some()));
        let Some(first) = in_heap(p.place, len) else {
            return Err(corrupt);
        };
        let second = match p.second.map(|o| in_heap(o, len)) {
            None => None,
            Some(Some(addr)) if addr.abs_diff(first) >= len => Some(addr),
            Some(_) => return Err(corrupt),
        };
        // The new bytes: the journal's own, or a block of the heap apart
        // from the places (its `places` bytes against a place's `len`).
        let apart = |src: usize, place: usize| {
            src.saturating_add(places) <= place || place.saturating_add(len) <= src
        };
        let source = match p.source {
            None if places <= JOURNAL_BYTES => None,
            None => return Err(corrupt),
            Some(o) => match in_heap(o, places) {
                Some(src) if apart(src, first) && second.is_none_or(|b| apart(src, b)) => Some(src),
                _ => return Err(corrupt),
            },
        };
        // SAFETY: the caller holds the exclusive lock; the places' bytes and
        // the block's lie in committed pages of this heap's chunks (apart
        // from each other), which nobody else touches under the lock;
        // without a block, the lengths fit the journal (checked).
        unsafe {
            h.journal.redo(
                at::<u8>(first),
                len,
                second.map(at::<u8>),
                source.map(|a| at::<u8>(a).cast_const()),
            )
        };
        Ok(())
    }

    /// Checks that the heap is well formed, as a heap written by processes
    /// that are not trusted must be before it is read: the chunks lie in
    /// the heap's own pages and their blocks tile them, and every pointer
    /// of the root value and of every pinned value is the start of an
    /// allocated block of this heap, within it, aligned, never shared
    /// (no overlap, no cycle); tags, `bool`s, `char`s and UTF-8 are
    /// checked as for a camlbox message. Runs under the shared lock.
    ///
    /// What it checks is the heap as it is during the call: a process that
    /// ignores the heap's lock can still change it afterwards.
    ///
    /// # Errors
    ///
    /// [`HeapError::Corrupt`] naming what is damaged; the lock's errors
    /// ([`HeapError::Poisoned`] for a poisoned heap: use
    /// [`recover`](Heap::recover), which validates too).
    pub fn validate(&self) -> Result<(), HeapError> {
        let h = self.lock_shared(None)?;
        self.validate_locked(&h, h.state())
    }

    /// Whether `addr..addr+len` lies in committed memory of the pool whose
    /// pages all belong to this heap's chunks (its tag, not its header).
    pub(super) fn in_chunks(&self, h: &HeapHeader, addr: usize, len: usize) -> bool {
        in_chunks(&self.pool, h, addr, len)
    }

    /// The memory of the heap's chunks, for the walks that check its
    /// allocator's state.
    pub(super) fn chunk_memory<'a>(&'a self, h: &'a HeapHeader) -> InChunks<'a, T> {
        InChunks { heap: self, h }
    }

    /// The most chunks the heap's pages can hold (bounds a chunk walk).
    fn max_chunks(&self) -> usize {
        self.pool.mapped_size() / PAGE_SIZE + 1
    }

    /// The most part pin nodes the heap's pages can hold.
    pub(super) fn max_nodes(&self) -> usize {
        max_nodes(&self.pool)
    }

    /// The validation of [`validate`](Heap::validate), with a lock held
    /// (`state` is the heap's allocator's state, lent by the lock).
    pub(super) fn validate_locked(
        &self,
        h: &HeapHeader,
        state: &AllocState,
    ) -> Result<(), HeapError> {
        let mut blocks = Vec::new();
        state
            .walk(&self.chunk_memory(h), self.max_chunks(), |b, hdr| {
                let size = super::alloc::block_size(hdr);
                if super::alloc::is_allocated(hdr) && size > 8 {
                    blocks.push((b + 8, b + size));
                }
            })
            .map_err(|Corrupt(what)| HeapError::Corrupt(what))?;
        // Blocks are walked chunk by chunk; sort them by address.
        blocks.sort_unstable();
        let validator = || {
            // SAFETY: the blocks are the allocated blocks the walk found in
            // committed pages of the pool (`chunk_memory`), which stay
            // mapped while the heap, borrowed for this call, holds the
            // pool.
            unsafe { Validator::over_blocks(&blocks) }
        };
        // The blocks the root and the pinned values reach (a bit each):
        // part pins must list none of them.
        let mut reached = vec![0u64; blocks.len().div_ceil(64)];
        let root = h.root.load(Ordering::Acquire);
        let mut v = validator();
        v.value::<T>(root)
            .map_err(|_| HeapError::Corrupt("the root value"))?;
        v.add_reached(&mut reached);
        for p in &h.pins {
            let v = p.v.load(Ordering::Acquire);
            if v & PIN_COUNT_MASK == 0 {
                continue;
            }
            let addr = ((v >> PIN_COUNT_BITS) << 3) as usize;
            let addr = self
                .pool
                .base()
                .checked_add(addr)
                .ok_or(HeapError::Corrupt("a pinned value"))?;
            let mut v = validator();
            v.value::<T>(addr)
                .map_err(|_| HeapError::Corrupt("a pinned value"))?;
            v.add_reached(&mut reached);
        }
        super::part::validate_parts(h, &blocks, &mut reached)
    }

    /// Rebuilds the allocator's state after a holder died while it was in
    /// flux (the exclusive lock is held, the values are whole): checks the
    /// chunks, clears every mark, collects from scratch, and gives back
    /// the heap's pages that no chunk holds. A repair that is itself
    /// killed is redone by the next holder. Damage found on the way
    /// poisons the heap ([`Poison::Died`]).
    pub(super) fn repair_locked(&self, lock: &mut WriteLock<'_>) {
        let h = lock.header();
        h.dirty.store(super::DIRTY_ALLOC, Ordering::Release);
        let mem = self.chunk_memory(h);
        // A sweep killed between unlinking the current chunk and forgetting
        // it leaves `cur` on a chunk that is no longer the heap's.
        lock.state().forget_unlinked_cur(&mem, self.max_chunks());
        // The collector follows the values' pointers: check them first.
        if self.validate_locked(h, lock.state()).is_err() {
            h.poisoned.store(POISON_DIED, Ordering::Release);
            h.dirty.store(0, Ordering::Release);
            return;
        }
        // A holder killed while it changed a free list can leave it broken:
        // the sweep below lists the free blocks again.
        lock.state().forget_free_lists();
        {
            let src = PoolSource {
                pool: &self.pool,
                tag: h.tag,
                last_error: None,
            };
            // SAFETY: the exclusive lock is held, and borrowed exclusively
            // here, so this is the only allocator over the state; the walk
            // of `validate_locked` has just found every chunk in the heap's
            // own pages (which `src` hands out and takes back), whole, its
            // blocks tiling it, and `cur` among them, and the free lists are
            // empty: the state is intact.
            let mut alloc = unsafe { Allocator::new(lock.state(), src) };
            alloc.clear_marks();
            self.collect(h, &mut alloc);
        }
        // Pages of the heap that no chunk holds (taken by a killed process
        // before it linked them, or unlinked before it gave them back),
        // freed under the pool's lock.
        let chunks = match lock.state().walk(&mem, self.max_chunks(), |_, _| {}) {
            Ok(c) => c,
            Err(_) => {
                h.poisoned.store(POISON_DIED, Ordering::Release);
                h.dirty.store(0, Ordering::Release);
                return;
            }
        };
        let header = (self.hdr, self.hdr + h.header_bytes);
        self.pool.free_pages_of(h.tag, header, &|p| {
            chunks.iter().any(|&(c, s)| p >= c && p < c + s)
        });
        h.repair.store(0, Ordering::Release);
        h.dirty.store(0, Ordering::Release);
    }
}

/// Whether `addr..addr+len` lies in committed memory of `pool` whose pages
/// all belong to the chunks of the heap whose header is `h` (its tag, not
/// its header).
pub(super) fn in_chunks(pool: &Pool, h: &HeapHeader, addr: usize, len: usize) -> bool {
    if len == 0 || !pool.contains_committed(addr, len) {
        return false;
    }
    let first = addr & !(PAGE_SIZE - 1);
    let last = (addr + len - 1) & !(PAGE_SIZE - 1);
    let hdr = std::ptr::from_ref(h).addr();
    let header = hdr..hdr + h.header_bytes;
    (first..=last)
        .step_by(PAGE_SIZE)
        .all(|p| !header.contains(&p) && pool.page_owner(p) == h.tag)
}

/// The most part pin nodes a heap of `pool` can hold (bounds a walk of
/// their list; a node's block is at least 32 bytes).
pub(super) fn max_nodes(pool: &Pool) -> usize {
    pool.mapped_size() / 32 + 1
}

/// The memory of a heap's chunks: committed pages of its pool that the
/// pool's page owner table gives to the heap (not its header).
pub(super) struct InChunks<'a, T: Shared> {
    heap: &'a Heap<T>,
    h: &'a HeapHeader,
}

// SAFETY: `in_chunks` accepts only ranges of committed pages of the heap's
// pool, whose mapping stays as long as the pool handle the borrowed heap
// holds (a segment cut short by another process reads zeros there: the
// fault handler maps them).
unsafe impl<T: Shared> ChunkMemory for InChunks<'_, T> {
    fn owns(&self, addr: usize, len: usize) -> bool {
        self.heap.in_chunks(self.h, addr, len)
    }
}

/// Gives back the pages of heaps that can never be used: heaps whose
/// creator died before it published them, and pages a destroyed heap
/// still owns (its destroyer was killed half-way). Live heaps are left
/// alone (each repairs itself). Called when a pool runs short of pages;
/// returns the bytes given back. Everything is decided and freed under the
/// pool's lock, and a header counts only when its recorded tag is the one
/// the page owner table gives (a page just handed to a new heap may still
/// hold an old header).
pub(crate) fn scavenge(pool: &Pool) -> usize {
    pool.free_dead_owners(&|addr, tag| {
        if !pool.contains_committed(addr, std::mem::size_of::<HeapHeader>()) {
            return None;
        }
        // The page owner table says a heap header starts here, in committed
        // pool memory (a stale one, maybe: only plain and atomic fields are
        // read, and any bytes are valid for them).
        let h = super::unsafe_header(addr);
        if h.tag != tag {
            return None;
        }
        match h.magic.load(Ordering::Acquire) {
            TOMBSTONE => Some(true),
            HEAP_MAGIC => {
                let creator = h.creating.load(Ordering::Acquire);
                if creator == 0 || crate::segment::process_alive(creator, 0) {
                    None
                } else {
                    Some(false)
                }
            }
            _ => None,
        }
    })
}
