//! Finishing a change of a table that a process's death cut short:
//! [`SHashtbl::recover`].
//!
//! Each change of a table is a series of writes, and a process killed in
//! the middle leaves the heap poisoned, its values whole but the table
//! part way through the change. What each change leaves, and what the
//! repair makes of it:
//!
//! - an addition: the binding without its count (counted);
//! - a removal: the [`Journal`](super::Journal) says which chain, its
//!   length and the index removed, and the step its copies down reached
//!   (no pointers) or the address its array had before (pointers): the
//!   copies go on, an old array still in place is replaced, and the chain
//!   is cut by one;
//! - the start of a growth, before the flip of the lists ([`GROWING`]):
//!   undone (the old list, all moved, is ignored again);
//! - the move of an old bucket to the new ones: copies of its bindings at
//!   the ends of new chains, while the old bucket still holds them (cut
//!   off, to be moved again), or an old bucket emptied but not yet counted
//!   as moved (counted).
//!
//! - a clear: finished.
//!
//! The number of bindings is counted again last. Each step finds nothing
//! to do in a whole table, so the repair runs on every `recover`.

use std::pin::Pin;

use super::{
    bucket, bucket_pin, clear, hash_repr, index_of, moved_of, parts_mut, set_moved,
    steps::shift_out, SHashtbl, SegmentsRepr, TRepr, CLEARING, GROWING,
};
use crate::heap::{HeapError, Mutator, Poison};
use crate::structures::{Result, StructureError};
use crate::value::Shared;
use crate::value::SharedVec;

use super::SharedKey;

impl<K: SharedKey, V: Shared, H: Shared> SHashtbl<K, V, H> {
    /// Makes a table usable again after a process died in the middle of
    /// changing it, with every binding added before the death still
    /// there: the change in flight is finished or undone (an addition is
    /// there whole or not at all; a removal is finished; a growth goes
    /// on). Returns why the table's heaps were poisoned (`None`: they
    /// were not; the repair is done all the same, for a table whose heap
    /// alone was recovered through [`heap`](Self::heap)).
    ///
    /// A death inside a change poisons the table: every operation then
    /// fails with [`HeapError::Poisoned`](crate::HeapError::Poisoned) until
    /// this is called. It [recovers](crate::Heap::recover) the heaps (which
    /// checks that their values are well formed) and, under the same
    /// exclusive lock, before the poison is cleared, repairs the table, in
    /// time proportional to the table.
    ///
    /// ```
    /// let pool = mc::Pool::create(16 << 20)?;
    /// let t = mc::SHashtbl::<u64, u64>::create(&pool, &())?;
    /// t.add(&1, &10)?;
    /// assert_eq!(t.recover()?, None); // nothing to do
    /// assert_eq!(t.find_copy(&1)?, Some(10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors
    /// of [`Heap::recover`](crate::Heap::recover) (a heap whose values are
    /// damaged stays poisoned: destroy the table and build it again) and of
    /// [`Heap::modify`](crate::Heap::modify), and with
    /// [`HeapError::OutOfMemory`](crate::HeapError::OutOfMemory) when a
    /// removal cut short has no room for the one array it needs: the table
    /// then stays poisoned; make room in the pool and call this again.
    pub fn recover(&self) -> Result<Option<Poison>> {
        // The repair runs under the lock that recovers the heap, before its
        // poison is cleared, and every time (it finds nothing to do in a
        // whole table): a table whose heap alone was recovered is repaired
        // too.
        let data = self.parts.data.recover_with(
            true,
            Some(&mut |m, t| {
                repair::<K, V>(m, t).map_err(|e| match e {
                    StructureError::Heap(e) => e,
                    _ => HeapError::Corrupt("the table's buckets"),
                })
            }),
        )?;
        let header = self.parts.header.recover()?;
        Ok(data.or(header))
    }
}

/// Finishes or undoes the change a death cut short (see the module
/// documentation).
pub(super) fn repair<K: SharedKey, V: Shared>(
    m: &Mutator<'_>,
    mut t: Pin<&mut TRepr<K, V>>,
) -> Result<()> {
    finish_growth::<K, V>(m, t.as_mut());
    finish_removal::<K, V>(m, t.as_mut())?;
    finish_move::<K, V>(m, t.as_mut());
    recount::<K, V>(t);
    Ok(())
}

/// A growth's start cut short, before the flip: the old list (all moved)
/// may be part way to the new one, and is ignored again (counted as all
/// moved); the next addition grows the table again. A clear cut short is
/// finished.
fn finish_growth<K: Shared, V: Shared>(m: &Mutator<'_>, t: Pin<&mut TRepr<K, V>>) {
    match moved_of::<K, V>(&t) {
        CLEARING => clear::<K, V>(m, t),
        GROWING => {
            let (_, _, old, moved, _) = parts_mut::<K, V>(t);
            let all = old.1;
            set_moved(moved, all);
        }
        _ => {}
    }
}

/// A removal cut short is finished where its journal says it was (the
/// journal stays when there is no room to finish it).
fn finish_removal<K: Shared, V: Shared>(m: &Mutator<'_>, t: Pin<&mut TRepr<K, V>>) -> Result<()> {
    let (buckets, _, old, _, journal) = parts_mut::<K, V>(t);
    let (mut jb, jlen, ji, at) = journal.project();
    if *jb == 0 {
        return Ok(());
    }
    let (b, len, i) = (*jb - 1, *jlen, *ji);
    let chain = match b.checked_sub(buckets.1) {
        None => bucket_pin::<K, V>(m, buckets, b),
        Some(o) => bucket_pin::<K, V>(m, old, o),
    };
    if let Ok(chain) = chain {
        finish_array::<(K, V)>(m, chain, len, i, at)?;
    }
    *jb.as_mut().get_mut() = 0;
    Ok(())
}

/// The chain of a removal cut short. Without pointers: the copies down
/// go on from the step recorded (`at`), and the last element is cut off.
/// With pointers: the old array still in place (at address `at`, with its
/// `len` elements) is replaced by a copy without element `i`; a replaced
/// one not cut yet is cut.
fn finish_array<V: Shared>(
    m: &Mutator<'_>,
    mut vec: Pin<&mut SharedVec<V::Repr>>,
    len: usize,
    i: usize,
    mut at: Pin<&mut usize>,
) -> Result<()> {
    let (ptr, n, _) = vec.raw_parts();
    if n != len || len == 0 {
        // Cut already (or not the chain the journal saw: left alone).
        return Ok(());
    }
    if !V::HAS_POINTERS {
        if *at < i {
            *at.as_mut().get_mut() = i;
        }
        shift_out::<V>(vec.as_mut(), len, at);
    } else if ptr == *at {
        // SAFETY: the array goes to `replace_array` of `vec` at once.
        let array = unsafe { m.array_without(&vec, i)? };
        // SAFETY: `array_without` of `vec` just now, in this heap.
        unsafe { m.replace_array(vec.as_mut(), array)? };
    }
    m.truncate(vec, len - 1);
    Ok(())
}

/// The move of old bucket `moved` cut short: copies of its bindings at
/// the ends of new chains are cut off while it holds them (it is moved
/// again by the next change); an emptied bucket counts as moved.
fn finish_move<K: SharedKey, V: Shared>(m: &Mutator<'_>, t: Pin<&mut TRepr<K, V>>) {
    let o = moved_of::<K, V>(&t);
    let (mut buckets, _, old, moved, _) = parts_mut::<K, V>(t);
    let (n, old_n) = (buckets.1, old.1);
    if old_n == 0 || o >= old_n || n == 0 {
        return;
    }
    let from = bucket::<K, V>(&old, o);
    let Some(from) = from.filter(|c| !c.is_empty()) else {
        set_moved(moved, o + 1);
        return;
    };
    // Keys of old bucket `o` live nowhere else until it has moved: in a
    // new chain they are copies, at its end (nothing was added since).
    let mut targets: Vec<usize> = from
        .iter()
        .map(|r| index_of(hash_repr::<K>(&r.0), n))
        .collect();
    targets.sort_unstable();
    targets.dedup();
    let from_o = |r: &super::Binding<K, V>| index_of(hash_repr::<K>(&r.0), old_n) == o;
    for b in targets {
        let Ok(chain) = bucket_pin::<K, V>(m, buckets.as_mut(), b) else {
            continue;
        };
        let mut keep = chain.len();
        while keep > 0 && chain.get(keep - 1).is_some_and(from_o) {
            keep -= 1;
        }
        m.truncate(chain, keep);
    }
}

/// The number of bindings, counted again.
fn recount<K: Shared, V: Shared>(t: Pin<&mut TRepr<K, V>>) {
    let count = |list: &SegmentsRepr<K, V>| -> usize {
        list.0.iter().flat_map(|s| s.iter()).map(|c| c.len()).sum()
    };
    let total = count(&t.0) + count(&t.2);
    let (_, size, ..) = t.project();
    *size.get_mut() = total;
}
