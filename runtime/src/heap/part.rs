//! Part pins: a copy of one part of the root value, kept by the collector
//! for as long as its guard lives.
//!
//! A pin of the whole root ([`Heap::pin`]) costs nothing when it is taken,
//! but the next modification copies the whole root, because it may not
//! change a pinned value in place. A part pin copies only the part, at
//! once, into blocks of the heap that no value points to: writers never
//! reach them, and the root is never copied on their account. Its cost is
//! that of the part, whatever the size of the root.
//!
//! The heap keeps a list of *nodes*, one per part pin, starting at
//! [`HeapHeader::parts`]. A node is a heap block holding the link to the
//! next node, the pinning process, and the addresses of the blocks of the
//! copy. The collector marks the nodes of live pins and the blocks they
//! list, without tracing them (a copy's pointers lead only to its own
//! blocks, all listed), so it needs no knowledge of the part's type. Nodes
//! of released pins and of processes that have ended are unlinked, and
//! swept with their blocks. Nodes are added and unlinked under the heap's
//! exclusive lock; a guard releases its pin without the lock, by clearing
//! its node's process.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::alloc::{HeapAllocator, HeapWriter, PoolSource};
use super::error::heap_error;
use super::guards::PinHold;
use super::{deadline_after, Heap, HeapError, HeapHeader, PinGuard, DIRTY_ALLOC};
use crate::in_shared::{at, in_shared};
use crate::sync::home::Home;
use crate::value::{Allocate, CopyError, Shared, Tracer, Writer};

in_shared! {
    /// The start of a part pin's node; the addresses of the copy's blocks
    /// (`blocks` of them) follow it in the node's block. A lock pin's node
    /// (see [`Heap::pin_lock`]) lists no blocks and records the lock.
    pub(super) struct PartNode {
        /// The next node, or 0.
        pub(super) next: AtomicUsize,
        /// The pinning process; 0 once the guard is dropped.
        pub(super) owner: AtomicU32,
        /// The size of the pinned lock (0: a copy).
        pub(super) lock_len: u32,
        /// The address of the pinned lock (0: a copy).
        pub(super) lock: usize,
        /// How many block addresses follow.
        pub(super) blocks: usize,
    }
}

pub(super) const NODE: usize = std::mem::size_of::<PartNode>();

/// The node at `addr`: a node of a heap's list (or one being made), in a
/// live block of the heap.
pub(super) fn node<'a>(addr: usize) -> &'a PartNode {
    // SAFETY: callers pass the address of a heap block of at least `NODE`
    // bytes that the list links (or that `pin_part` allocated), in a pool
    // that stays mapped while the heap's handle lives; any bytes are a
    // valid `PartNode` (`InShared`).
    unsafe { &*at::<PartNode>(addr) }
}

/// The addresses of the copy's blocks listed in `n`'s node at `addr`.
fn listed(addr: usize, n: &PartNode) -> &[usize] {
    // SAFETY: the node's block holds `blocks` addresses after the node
    // (written by `pin_part` before it linked the node; a heap that may
    // have been written by others is validated first, which checks the
    // block's size), 8-aligned, and plain integers.
    unsafe { std::slice::from_raw_parts(at::<usize>(addr + NODE), n.blocks) }
}

/// Releases the part pin of the node at `addr` (the guard's drop).
pub(super) fn release(addr: usize) {
    // After this store the node and the copy may be swept at any time:
    // the guard never reads them again.
    node(addr).owner.store(0, Ordering::Release);
}

/// Records the blocks a copy allocates, for its node.
struct Recording<'w, 'a> {
    inner: HeapWriter<'w, 'a, PoolSource<'a>>,
    blocks: Vec<usize>,
}

// SAFETY: every allocation is the inner writer's, returned unchanged.
unsafe impl Allocate for Recording<'_, '_> {
    fn allocate(&mut self, layout: Layout) -> Result<(NonNull<u8>, usize), CopyError> {
        let r = self.inner.allocate(layout)?;
        self.blocks.push(r.1);
        Ok(r)
    }
}

/// Copies `src` into fresh blocks of the heap; returns the copy's address,
/// the blocks, and whether the copy holds a lock.
fn copy_part<V: Shared>(
    alloc: &mut HeapAllocator<'_>,
    src: &V::Repr,
) -> Result<(usize, Vec<usize>, bool), CopyError> {
    let mut rec = Recording {
        inner: HeapWriter { alloc },
        blocks: Vec::new(),
    };
    let (addr, locks) = {
        // SAFETY: the representation made with `w` is written into the
        // heap at once, by `put`.
        let mut w = unsafe { Writer::new(&mut rec) };
        let r = V::repr_to_repr(src, &mut w)?;
        let addr = w.put(r)?;
        (addr, w.wrote_lock())
    };
    Ok((addr, rec.blocks, locks))
}

/// Counts the processes found alive during one collection (each process
/// is looked up once).
struct Alive {
    me: u32,
    seen: Vec<(u32, bool)>,
}

impl Alive {
    fn is_alive(&mut self, pid: u32) -> bool {
        if pid == self.me {
            return true;
        }
        if let Some(&(_, a)) = self.seen.iter().find(|(p, _)| *p == pid) {
            return a;
        }
        let a = crate::segment::process_alive(pid, 0);
        self.seen.push((pid, a));
        a
    }
}

/// The collector's part: marks the nodes of live part pins and their
/// blocks, and unlinks the others (which the sweep then frees). Called with
/// the exclusive lock held, after everything the root and the pins reach
/// is marked. `owns(addr, len)` says whether a range lies in the heap's
/// chunks; at most `limit` nodes are walked. Returns `false` when the list
/// is damaged (a node outside the heap, or more nodes than the heap can
/// hold): nothing must be swept then.
pub(super) fn mark_parts(
    h: &HeapHeader,
    t: &mut Tracer<'_>,
    owns: &dyn Fn(usize, usize) -> bool,
    limit: usize,
    locks: &mut Vec<usize>,
) -> bool {
    let mut alive = Alive {
        me: crate::sync::futex::current_pid(),
        seen: Vec::new(),
    };
    let mut link: &AtomicUsize = &h.parts;
    let mut at_node = link.load(Ordering::Acquire);
    for _ in 0..limit {
        if at_node == 0 {
            break;
        }
        let Some(n) = checked_node(at_node, owns, limit) else {
            return false;
        };
        let next = n.next.load(Ordering::Acquire);
        let owner = n.owner.load(Ordering::Acquire);
        if owner != 0 && alive.is_alive(owner) {
            t.visit_leaf(at_node);
            for &b in listed(at_node, n) {
                t.visit_leaf(b);
            }
            if n.lock != 0 {
                locks.push(n.lock);
            }
            link = &n.next;
        } else {
            link.store(next, Ordering::Release);
        }
        at_node = next;
    }
    locks.sort_unstable();
    // Counted afresh: a pin taken by a process killed half way may have
    // left the count one too high.
    h.lock_pins.store(
        u32::try_from(locks.len()).unwrap_or(u32::MAX),
        Ordering::Release,
    );
    at_node == 0
}

/// The node at `addr` if it lies in the heap's chunks whole (with the
/// addresses it lists, at most `limit` of them).
pub(super) fn checked_node<'a>(
    addr: usize,
    owns: &dyn Fn(usize, usize) -> bool,
    limit: usize,
) -> Option<&'a PartNode> {
    if !addr.is_multiple_of(8) || !owns(addr, NODE) {
        return None;
    }
    let n = node(addr);
    let len = (n.blocks <= limit).then(|| NODE + 8 * n.blocks)?;
    owns(addr, len).then_some(n)
}

/// How many part pins are held, walking at most `limit` nodes, each
/// checked with `owns` as in [`mark_parts`] (the walk stops at a damaged
/// node). With `alive`, pins of processes that have ended are not counted
/// (else every pin not yet released is).
pub(super) fn count_parts(
    h: &HeapHeader,
    owns: &dyn Fn(usize, usize) -> bool,
    limit: usize,
    alive: bool,
) -> usize {
    let mut check = Alive {
        me: crate::sync::futex::current_pid(),
        seen: Vec::new(),
    };
    let mut count = 0;
    let mut at_node = h.parts.load(Ordering::Acquire);
    for _ in 0..limit {
        if at_node == 0 {
            break;
        }
        let Some(n) = checked_node(at_node, owns, limit) else {
            break;
        };
        let owner = n.owner.load(Ordering::Acquire);
        if owner != 0 && (!alive || check.is_alive(owner)) {
            count += 1;
        }
        at_node = n.next.load(Ordering::Acquire);
    }
    count
}

/// Checks the list of part pins of a heap whose allocated blocks are
/// `blocks` (value start, end), sorted, of which the root and the pinned
/// values reach those marked in `reached` (a bit per block): every node and
/// every block a node lists is an allocated block that nothing else
/// reaches or lists (so that the collector, which marks them without
/// tracing them, never stops short of what the root reaches), each node is
/// large enough for the addresses it lists, and the list ends within as
/// many nodes as there are blocks.
pub(super) fn validate_parts(
    h: &HeapHeader,
    blocks: &[(usize, usize)],
    reached: &mut [u64],
) -> Result<(), HeapError> {
    let bad = || HeapError::Corrupt("the list of part pins");
    // Claims the block that starts at `a` for the list: its bounds.
    let mut claim = |a: usize| {
        let i = blocks.binary_search_by_key(&a, |&(s, _)| s).ok()?;
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        if reached[w] & bit != 0 {
            return None;
        }
        reached[w] |= bit;
        Some(blocks[i])
    };
    let mut at_node = h.parts.load(Ordering::Acquire);
    for _ in 0..=blocks.len() {
        if at_node == 0 {
            return Ok(());
        }
        let (start, end) = claim(at_node).ok_or_else(bad)?;
        // The node's own fields are in the block: read them.
        if end - start < NODE {
            return Err(bad());
        }
        let n = node(start);
        let room = (end - start - NODE) / 8;
        if n.blocks > room {
            return Err(bad());
        }
        for &b in listed(start, n) {
            claim(b).ok_or_else(bad)?;
        }
        at_node = n.next.load(Ordering::Acquire);
    }
    Err(bad())
}

impl<T: Shared> Heap<T> {
    /// Pins a part of the root value: `part` picks it, and the guard reads
    /// a copy of it made now, which writers never change and the collector
    /// keeps until the guard is dropped.
    ///
    /// This is the pin to take of a small part of a large value. A pin of
    /// the root ([`pin`](Heap::pin)) costs nothing when taken, but makes
    /// the next modification copy the whole root; a part pin copies the
    /// part only, under the heap's exclusive lock, and modifications go on
    /// in place. Part pins have no fixed limit: each takes a block of the
    /// heap.
    ///
    /// ```
    /// let pool = mc::Pool::create(16 << 20)?;
    /// let heap = mc::Heap::create(&pool, &vec![String::from("a"); 1000])?;
    /// let p = heap.pin_part::<String>(|v| &v[7])?;
    /// heap.modify(|m, v| m.set_str(v.get_pin(7).unwrap(), "b"))??;
    /// heap.gc()?;
    /// assert_eq!(p.as_str(), "a");
    /// assert_eq!(heap.copy()?[7], "b");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// When a process dies holding part pins, the next collection finds it
    /// gone and frees them.
    ///
    /// # Errors
    ///
    /// [`HeapError::PinWithLocks`] when the part holds a lock (a copy of a
    /// lock is another lock); [`HeapError::OutOfMemory`] when the pool has
    /// no room for the copy; and the errors of [`modify`](Heap::modify).
    pub fn pin_part<V: Shared>(
        &self,
        part: impl for<'r> FnOnce(&'r T::Repr) -> &'r V::Repr,
    ) -> Result<PinGuard<'_, V>, HeapError> {
        self.pin_part_until(None, |r| Ok::<_, std::convert::Infallible>(part(r)))?
            .map_err(|e| match e {})
    }

    /// Like [`pin_part`](Heap::pin_part), but gives up with
    /// [`HeapError::Timeout`] (without calling `part`) when the lock cannot
    /// be taken within `timeout`.
    ///
    /// # Errors
    ///
    /// As [`pin_part`](Heap::pin_part), and [`HeapError::Timeout`].
    pub fn pin_part_timeout<V: Shared>(
        &self,
        timeout: Duration,
        part: impl for<'r> FnOnce(&'r T::Repr) -> &'r V::Repr,
    ) -> Result<PinGuard<'_, V>, HeapError> {
        self.pin_part_until(deadline_after(timeout), |r| {
            Ok::<_, std::convert::Infallible>(part(r))
        })?
        .map_err(|e| match e {})
    }

    /// [`pin_part`](Heap::pin_part) with a `part` that may find nothing to
    /// pin: its error is returned (the inner one) and nothing is pinned.
    pub(crate) fn try_pin_part<V: Shared, X>(
        &self,
        part: impl for<'r> FnOnce(&'r T::Repr) -> Result<&'r V::Repr, X>,
    ) -> Result<Result<PinGuard<'_, V>, X>, HeapError> {
        self.pin_part_until(None, part)
    }

    fn pin_part_until<V: Shared, X>(
        &self,
        deadline: Option<Instant>,
        part: impl for<'r> FnOnce(&'r T::Repr) -> Result<&'r V::Repr, X>,
    ) -> Result<Result<PinGuard<'_, V>, X>, HeapError> {
        // Allowed inside a modification of another heap, like a read.
        let h = self.lock_exclusive_nested(deadline)?;
        let root = h.root.load(Ordering::Acquire);
        // SAFETY: the exclusive lock is held: the root value is live and
        // nobody changes it while `part` and the copy read it.
        let src = match part(unsafe { &*at::<T::Repr>(root) }) {
            Ok(src) => src,
            Err(e) => return Ok(Err(e)),
        };
        // Values stay whole from here on; only the allocator is at work.
        h.dirty.store(DIRTY_ALLOC, Ordering::Release);
        let mut alloc = h.allocator();
        let made = copy_and_link::<V>(&h, &mut alloc, src);
        // A failed copy leaves blocks that nothing reaches: a collection
        // that is due frees them now.
        if alloc.gc_due() {
            self.collect(&h, &mut alloc);
        }
        drop(alloc);
        h.dirty.store(0, Ordering::Release);
        let (value, at_node) = made?;
        Ok(Ok(PinGuard {
            h: self.header(),
            root: value,
            hold: PinHold::Part(at_node),
            home: Home::here(),
            _t: PhantomData,
        }))
    }
}

/// Copies `src` into the heap and links a node for the copy; returns the
/// copy's address and the node's.
fn copy_and_link<V: Shared>(
    h: &HeapHeader,
    alloc: &mut HeapAllocator<'_>,
    src: &V::Repr,
) -> Result<(usize, usize), HeapError> {
    let (value, blocks) = match copy_part::<V>(alloc, src) {
        Ok((_, _, true)) => return Err(HeapError::PinWithLocks),
        Ok((value, blocks, false)) => (value, blocks),
        Err(e) => return Err(heap_error(e, alloc.take_error())),
    };
    let size = blocks
        .len()
        .checked_mul(8)
        .and_then(|b| b.checked_add(NODE))
        .ok_or(HeapError::TooLarge)?;
    let at_node = Layout::from_size_align(size, 8)
        .map_err(|_| CopyError::Overflow)
        .and_then(|l| alloc.alloc(l))
        .map_err(|e| heap_error(e, alloc.take_error()))?;
    // SAFETY: `at_node` is a fresh block of `size` bytes, 8-aligned,
    // that nobody else knows yet.
    unsafe {
        at::<PartNode>(at_node).write(PartNode {
            next: AtomicUsize::new(h.parts.load(Ordering::Acquire)),
            owner: AtomicU32::new(crate::sync::futex::current_pid()),
            lock_len: 0,
            lock: 0,
            blocks: blocks.len(),
        });
        std::ptr::copy_nonoverlapping(blocks.as_ptr(), at::<usize>(at_node + NODE), blocks.len());
    }
    // Linked last: a process killed before this leaves blocks that nothing
    // reaches, which the next collection frees.
    h.parts.store(at_node, Ordering::Release);
    Ok((value, at_node))
}

#[cfg(test)]
#[path = "part_tests.rs"]
mod tests;
