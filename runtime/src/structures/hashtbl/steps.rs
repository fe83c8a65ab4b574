//! The table's changes that take several writes, each in an order that a
//! death can cut short anywhere and [`SHashtbl::recover`](super::SHashtbl::recover) can finish:
//! clearing, replacing a value of several words, removing a binding.

use std::pin::Pin;
use std::sync::atomic::{compiler_fence, Ordering};

use super::{bucket_pin, chain, parts_mut, pin_at, set_moved, Bucket, Result, TRepr, CLEARING};
use crate::heap::Mutator;
use crate::value::{FreshArray, Shared, SharedVec};

/// Empties the table ([`SHashtbl::clear`](super::SHashtbl::clear)): `moved` says [`CLEARING`]
/// until it is done, so that [`SHashtbl::recover`](super::SHashtbl::recover) finishes a clear cut
/// short.
pub(super) fn clear<K: Shared, V: Shared>(m: &Mutator<'_>, t: Pin<&mut TRepr<K, V>>) {
    let (buckets, size, old, mut moved, journal) = parts_mut::<K, V>(t);
    set_moved(moved.as_mut(), CLEARING);
    compiler_fence(Ordering::SeqCst);
    // Every segment unmade (its buckets garbage, made again empty when
    // bindings go there).
    let (segments, _) = buckets.project();
    for segment in segments.iter_pin() {
        m.truncate(segment, 0);
    }
    let (segments, count) = old.project();
    m.truncate(segments, 0);
    *count.get_mut() = 0;
    *size.get_mut() = 0;
    // (A removal cut short has nothing left to finish.)
    let (jb, ..) = journal.project();
    *jb.get_mut() = 0;
    compiler_fence(Ordering::SeqCst);
    set_moved(moved, 0);
}

/// Replaces the value of binding `i` of a chain so that a death leaves
/// the old value or the new one whole: in place, through the heap's
/// journal ([`Mutator::set`]).
pub(super) fn replace_value<K: Shared, V: Shared>(
    m: &Mutator<'_>,
    chain: Pin<&mut Bucket<K, V>>,
    i: usize,
    v: &V,
) -> Result<()> {
    let (_, value) = pin_at(chain, i)?.project();
    Ok(m.set(value, v)?)
}

/// Removes binding `i` of chain `b` (numbered as [`chain`] numbers them)
/// so that a death at any point leaves what [`SHashtbl::recover`](super::SHashtbl::recover)
/// finishes. The [`Journal`](super::Journal) records the removal before the chain
/// changes; then the chain loses binding `i`:
///
/// - bindings without pointers in place ([`shift_out`]): the later
///   ones are copied down one by one, the journal recording each step,
///   and the last is cut off;
/// - bindings with pointers through a fresh array holding the same
///   bindings, binding `i` last (made before the journal, so that running
///   out of room changes nothing), which takes the old one's place
///   ([`Mutator::replace_array`]) and is cut by one. No value is ever in
///   two reachable places, so a heap left at any step passes validation.
///
/// The count goes down and the journal is cleared last.
pub(super) fn remove_binding<K: Shared, V: Shared>(
    m: &Mutator<'_>,
    t: Pin<&mut TRepr<K, V>>,
    b: usize,
    i: usize,
) -> Result<()> {
    let len = chain::<K, V>(&t, b).map_or(0, |c| c.len());
    if i >= len {
        return Ok(());
    }
    let (buckets, size, old, _, journal) = parts_mut::<K, V>(t);
    let chain = match b.checked_sub(buckets.1) {
        None => bucket_pin::<K, V>(m, buckets, b)?,
        Some(o) => bucket_pin::<K, V>(m, old, o)?,
    };
    let mut chain = chain;
    let new = copy_if_pointers::<(K, V)>(m, &chain, i)?;
    let (mut jb, jlen, ji, mut at) = journal.project();
    *jlen.get_mut() = len;
    *ji.get_mut() = i;
    // The address of the array replaced, or the step reached.
    *at.as_mut().get_mut() = new.as_ref().map_or(i, |_| chain.raw_parts().0);
    compiler_fence(Ordering::SeqCst);
    *jb.as_mut().get_mut() = b + 1;
    compiler_fence(Ordering::SeqCst);
    match new {
        // SAFETY: `array_without` of `chain` in this modification's heap,
        // and `chain` has not changed since.
        Some(array) => unsafe { m.replace_array(chain.as_mut(), array)? },
        None => shift_out::<(K, V)>(chain.as_mut(), len, at),
    }
    m.truncate(chain, len - 1);
    let size = size.get_mut();
    *size = size.saturating_sub(1);
    compiler_fence(Ordering::SeqCst);
    *jb.get_mut() = 0;
    Ok(())
}

/// For an array with pointers, the fresh array [`remove_binding`] puts in
/// its place ([`Mutator::array_without`]); `None` for one without.
pub(super) fn copy_if_pointers<V: Shared>(
    m: &Mutator<'_>,
    vec: &SharedVec<V::Repr>,
    i: usize,
) -> Result<Option<FreshArray<V::Repr>>> {
    if !V::HAS_POINTERS {
        return Ok(None);
    }
    // SAFETY: `remove_binding` gives the array to `replace_array` of `vec`
    // (with no change of `vec` in between) or drops it.
    Ok(Some(unsafe { m.array_without(vec, i)? }))
}

/// Copies the elements after `*step` of an array without pointers (of
/// `len` elements) one place down, from `*step` on, recording each step
/// done in `step`. Going on from a recorded step after a death is right
/// whether that step's copy was done or not: it copies the same element
/// to the same place.
pub(super) fn shift_out<V: Shared>(
    mut vec: Pin<&mut SharedVec<V::Repr>>,
    len: usize,
    mut step: Pin<&mut usize>,
) {
    if vec.len() != len {
        return;
    }
    for j in *step..len.saturating_sub(1) {
        vec.as_mut().copy_down::<V>(j);
        compiler_fence(Ordering::SeqCst);
        *step.as_mut().get_mut() = j + 1;
        compiler_fence(Ordering::SeqCst);
    }
}
