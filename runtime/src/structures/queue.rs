//! `SQueue`: a shared FIFO queue (Netmulticore's `Netmcore_queue`).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{compiler_fence, Ordering};

use super::{pin_at, structure_common, Parts, Ref, Result, StructureError};
use crate::heap::{HeapOptions, Mutator, PinGuard, Poison, ReadGuard};
use crate::pool::Pool;
use crate::value::{Shared, SharedOption, SharedVec, Tuple4};

/// `(slots, index of the front, number of elements, size of the ring)`.
/// The ring is the first `size` slots; the slots outside the elements
/// (and past the ring) are empty, but for those a change in flight has
/// filled or not emptied yet, which [`SQueue::recover`] empties.
///
/// Every change takes effect with one word's write, so that a death
/// leaves either state: a push fills a slot outside the elements, then
/// counts it; a pop empties the front slot, then moves the front, then
/// counts it; a growth fills new slots with copies of the wrapped
/// elements, then makes the ring larger, then empties the old places.
type QData<E> = (Vec<Option<E>>, usize, usize, usize);
type QRepr<E> = Tuple4<SharedVec<SharedOption<<E as Shared>::Repr>>, usize, usize, usize>;

type Front<'a, E> = Ref<ReadGuard<'a, QData<E>>, <E as Shared>::Repr>;

/// A shared FIFO queue of `E` with a header `H`: a ring buffer of slots
/// that doubles when full, so `push` and `pop` are amortised O(1) and
/// [`len`](SQueue::len) is O(1). A popped slot is emptied at once, so its
/// value becomes garbage.
///
/// ```
/// let pool = mc::Pool::create(16 << 20)?;
/// let q = mc::SQueue::create(&pool, &())?;
/// q.push(&"a".to_string())?;
/// q.push(&"b".to_string())?;
/// assert_eq!(q.peek()?.as_deref().map(|s| s.as_str()), Some("a"));
/// assert_eq!(q.pop_copy()?, Some("a".to_string()));
/// assert_eq!(q.pop_with(|s| s.len())?, Some(1));
/// assert!(q.is_empty()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SQueue<E: Shared, H: Shared = ()> {
    parts: Parts<QData<E>, H>,
}

structure_common!(SQueue, SQueueDescr, [E: Shared], QData<E>, "an [`SQueue`]");

/// The front element, which [`SQueue::peek`] found occupied in the same
/// (guarded, hence unchanged) queue.
fn front<E: Shared>(t: &QRepr<E>, _: [usize; 2]) -> &E::Repr {
    slot::<E>(t, 0).expect("checked when the guard was taken")
}

/// The element `i` places behind the front, `None` past the end or for an
/// empty slot (which only [`SQueue::heap`] can make). The queue must be
/// [`check`]ed.
fn slot<E: Shared>(t: &QRepr<E>, i: usize) -> Option<&E::Repr> {
    if i >= t.2 {
        return None;
    }
    // `check`: head < cap and i < len <= cap, so no overflow.
    let cap = t.3;
    t.0[(t.1 + i) % cap].as_ref()
}

const EMPTY_SLOT: StructureError = StructureError::Inconsistent {
    what: "an empty slot among the queue's elements",
};

/// Checks what the ring's arithmetic relies on: the front is a slot of the
/// ring (or 0 for an empty ring) and the length fits in the ring. Only
/// [`SQueue::heap`] can break it.
fn check<E: Shared>(t: &QRepr<E>) -> Result<()> {
    let cap = t.3;
    if cap > t.0.len() || t.2 > cap || (t.1 >= cap && !(cap == 0 && t.1 == 0)) {
        return Err(StructureError::Inconsistent {
            what: "a queue whose front or length does not fit its ring",
        });
    }
    Ok(())
}

/// A queue read in place under its shared lock ([`SQueue::read`]).
pub struct QueueView<'a, E: Shared> {
    g: ReadGuard<'a, QData<E>>,
}

impl<E: Shared> fmt::Debug for QueueView<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("QueueView");
        // A copy made by `fork` does not read.
        if self.g.is_here() {
            d.field("len", &self.len());
        }
        d.finish_non_exhaustive()
    }
}

impl<E: Shared> QueueView<'_, E> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.g.2
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.g.2 == 0
    }

    /// The elements, front first.
    pub fn iter(&self) -> impl Iterator<Item = &E::Repr> + '_ {
        (0..self.g.2).filter_map(move |i| slot::<E>(&self.g, i))
    }
}

impl<E: Shared, H: Shared> SQueue<E, H> {
    /// Creates an empty queue (`Netmcore_queue.create`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::create`](crate::Heap::create).
    pub fn create(pool: &Pool, header: &H) -> Result<Self> {
        Ok(SQueue {
            parts: Parts::create(pool, header, &(Vec::new(), 0, 0, 0), HeapOptions::new())?,
        })
    }

    /// Appends a copy of `value` at the back (`push`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify) and
    /// [`Mutator::push`](crate::Mutator::push).
    /// [`StructureError::Inconsistent`] for a queue whose ring was broken
    /// through [`heap`](Self::heap).
    pub fn push(&self, value: &E) -> Result<()> {
        self.parts.modify_try(|m, t| push::<E>(m, t, value))
    }

    /// Removes the front element and returns a copy of it (`pop_c`);
    /// `None` when the queue is empty.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify);
    /// [`StructureError::Inconsistent`] as for [`pop_with`](Self::pop_with).
    pub fn pop_copy(&self) -> Result<Option<E>> {
        self.pop_with(E::from_repr)
    }

    /// Removes the front element and runs `f` on it in place, under the
    /// exclusive lock (`pop_p`); `None` when the queue is empty.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    /// [`StructureError::Inconsistent`] for a queue whose ring was broken
    /// through [`heap`](Self::heap).
    pub fn pop_with<R>(&self, f: impl FnOnce(&E::Repr) -> R) -> Result<Option<R>> {
        self.parts.modify_try(|m, t| {
            check::<E>(&t)?;
            if t.2 == 0 {
                return Ok(None);
            }
            let r = f(slot::<E>(&t, 0).ok_or(EMPTY_SLOT)?);
            take_front::<E>(m, t, 1)?;
            Ok(Some(r))
        })
    }

    /// Removes up to `max` elements from the front in one modification and
    /// returns copies of them, front first (cheaper than `max` calls of
    /// [`pop_copy`](Self::pop_copy) when several processes share the queue).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    /// [`StructureError::Inconsistent`] for a queue whose ring was broken
    /// through [`heap`](Self::heap).
    pub fn pop_many(&self, max: usize) -> Result<Vec<E>> {
        self.parts.modify_try(|m, t| {
            check::<E>(&t)?;
            let k = max.min(t.2);
            let out = (0..k)
                .map(|i| slot::<E>(&t, i).map(E::from_repr).ok_or(EMPTY_SLOT))
                .collect::<Result<Vec<E>>>()?;
            take_front::<E>(m, t, k)?;
            Ok(out)
        })
    }

    /// The front element in place, under the shared lock (`top_ro`);
    /// `None` when the queue is empty.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    /// [`StructureError::Inconsistent`] for a queue whose ring was broken
    /// through [`heap`](Self::heap).
    pub fn peek(&self) -> Result<Option<Front<'_, E>>> {
        let g = self.parts.data.read()?;
        check::<E>(&g)?;
        if g.2 == 0 {
            return Ok(None);
        }
        slot::<E>(&g, 0).ok_or(EMPTY_SLOT)?;
        Ok(Some(Ref::new(g, [0, 0], front::<E>)))
    }

    /// The front element, pinned (`top_p`; see
    /// [`SArray::get_pinned`](crate::SArray::get_pinned) for the cost).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::pin_part`](crate::Heap::pin_part).
    /// [`StructureError::Inconsistent`] for a queue whose ring was broken
    /// through [`heap`](Self::heap).
    pub fn peek_pinned(&self) -> Result<Option<PinGuard<'_, E>>> {
        let pinned = self.parts.data.try_pin_part(|g| {
            check::<E>(g).map_err(Some)?;
            if g.2 == 0 {
                return Err(None);
            }
            slot::<E>(g, 0).ok_or(Some(EMPTY_SLOT))?;
            Ok(front::<E>(g, [0, 0]))
        })?;
        match pinned {
            Ok(p) => Ok(Some(p)),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }

    /// A copy of the front element (`top_c`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    /// [`StructureError::Inconsistent`] for a queue whose ring was broken
    /// through [`heap`](Self::heap).
    pub fn peek_copy(&self) -> Result<Option<E>> {
        let g = self.parts.data.read()?;
        check::<E>(&g)?;
        if g.2 == 0 {
            return Ok(None);
        }
        Ok(Some(E::from_repr(slot::<E>(&g, 0).ok_or(EMPTY_SLOT)?)))
    }

    /// The number of elements (`length`), in O(1).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn len(&self) -> Result<usize> {
        let g = self.parts.data.read()?;
        check::<E>(&g)?;
        Ok(g.2)
    }

    /// Whether the queue is empty (`is_empty`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The queue in place under the shared lock, to iterate over
    /// (`iter`, `fold`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    /// [`StructureError::Inconsistent`] for a queue whose ring was broken
    /// through [`heap`](Self::heap).
    pub fn read(&self) -> Result<QueueView<'_, E>> {
        let g = self.parts.data.read()?;
        check::<E>(&g)?;
        Ok(QueueView { g })
    }

    /// A copy of the elements, front first.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn to_vec(&self) -> Result<Vec<E>> {
        let v = self.read()?;
        Ok(v.iter().map(E::from_repr).collect())
    }

    /// Removes every element (`clear`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    pub fn clear(&self) -> Result<()> {
        self.parts.modify_try(|m, t| {
            let (slots, mut head, mut len, mut cap) = t.project();
            // No element, then the front at 0, then no ring (each step a
            // valid queue), then the slots let go of (their values become
            // garbage).
            *len.as_mut().get_mut() = 0;
            compiler_fence(Ordering::SeqCst);
            *head.as_mut().get_mut() = 0;
            compiler_fence(Ordering::SeqCst);
            *cap.as_mut().get_mut() = 0;
            compiler_fence(Ordering::SeqCst);
            m.truncate(slots, 0);
            Ok(())
        })
    }

    /// Pushes every value of `values` in one modification: all of them,
    /// or (on error) none.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push); no value is pushed then.
    pub fn extend<'v>(&self, values: impl IntoIterator<Item = &'v E>) -> Result<()> {
        let values: Vec<&E> = values.into_iter().collect();
        self.parts.modify_try(|m, mut t| {
            check::<E>(&t)?;
            let n = t.2;
            let want = n
                .checked_add(values.len())
                .ok_or(StructureError::Heap(crate::HeapError::TooLarge))?;
            while t.3 < want {
                grow::<E>(m, t.as_mut())?;
            }
            // The values go to the slots after the elements, and count
            // all at once: a death before that leaves none of them.
            let (mut slots, head, len, cap) = t.project();
            let (h, cap) = (*head, *cap);
            for (i, v) in values.iter().enumerate() {
                let place = pin_at(slots.as_mut(), (h + n + i) % cap)?;
                if let Err(e) = m.set_some::<E>(place, v) {
                    // Empty the slots filled so far (their values become
                    // garbage); the count never moved.
                    for j in 0..i {
                        if let Some(place) = slots.as_mut().get_pin((h + n + j) % cap) {
                            let _ = m.set_none(place);
                        }
                    }
                    return Err(e.into());
                }
            }
            compiler_fence(Ordering::SeqCst);
            *len.get_mut() = want;
            Ok(())
        })
    }

    /// Makes the queue usable again after a process died in the middle of
    /// changing it, with every element pushed (and not popped) before the
    /// death still there, in order: a push, a pop or a batch in flight has
    /// taken effect whole or not at all. Returns why the queue's heaps were
    /// poisoned (`None`: they were not).
    ///
    /// A death inside a change poisons the queue: every operation then
    /// fails with [`HeapError::Poisoned`](crate::HeapError::Poisoned) until
    /// this is called. It [recovers](crate::Heap::recover) the heaps
    /// (which checks that their values are well formed) and, under the
    /// same lock, empties the slots the change in flight left filled
    /// outside the elements.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors
    /// of [`Heap::recover`](crate::Heap::recover) (a heap whose values are
    /// damaged stays poisoned: destroy the queue and build it again) and of
    /// [`Heap::modify`](crate::Heap::modify).
    pub fn recover(&self) -> Result<Option<Poison>> {
        // Under the lock that recovers the heap, before its poison is
        // cleared, and every time (it finds nothing to do in a whole
        // queue).
        let data = self.parts.data.recover_with(
            true,
            Some(&mut |m, t| {
                empty_outside::<E>(m, t);
                Ok(())
            }),
        )?;
        let header = self.parts.header.recover()?;
        Ok(data.or(header))
    }
}

/// Removes `k` elements from the front: their slots are emptied (their
/// values become garbage), then the front moves, then the count goes
/// down. A death in between leaves empty slots at the front or just past
/// the end, which [`empty_outside`] takes out of the elements.
fn take_front<E: Shared>(m: &Mutator<'_>, t: Pin<&mut QRepr<E>>, k: usize) -> Result<()> {
    let (mut slots, mut head, mut len, cap) = t.project();
    let cap = *cap;
    for i in 0..k {
        m.set_none(pin_at(slots.as_mut(), (*head + i) % cap)?)?;
    }
    compiler_fence(Ordering::SeqCst);
    let left = *len - k;
    *head.as_mut().get_mut() = if left == 0 { 0 } else { (*head + k) % cap };
    compiler_fence(Ordering::SeqCst);
    *len.as_mut().get_mut() = left;
    Ok(())
}

/// After a death: empty slots at the front or past the end of the
/// elements are no elements (a pop in flight), and the slots outside the
/// elements are emptied (a push, a batch or a growth in flight).
fn empty_outside<E: Shared>(m: &Mutator<'_>, t: Pin<&mut QRepr<E>>) {
    let (slots, mut head, mut len, mut cap) = t.project();
    // A ring larger than the slots, or elements outside it: a clear cut
    // short (it empties the elements first, then the ring).
    if *cap > slots.len() {
        *cap.as_mut().get_mut() = 0;
    }
    if *len > *cap || (*head >= *cap && *head != 0) {
        *len.as_mut().get_mut() = 0;
        *head.as_mut().get_mut() = 0;
    }
    let cap = *cap;
    let empty = |slots: &SharedVec<SharedOption<E::Repr>>, i: usize| {
        slots
            .get(i % cap.max(1))
            .is_none_or(|s| s.as_ref().is_none())
    };
    while *len > 0 && empty(&slots, *head) {
        *head.as_mut().get_mut() = (*head + 1) % cap;
        *len.as_mut().get_mut() -= 1;
    }
    while *len > 0 && empty(&slots, *head + *len - 1) {
        *len.as_mut().get_mut() -= 1;
    }
    if *len == 0 {
        *head.as_mut().get_mut() = 0;
    }
    let (h, n) = (*head, *len);
    let inside = |i: usize| i < cap && (i + cap - h) % cap < n;
    for (i, place) in slots.iter_pin().enumerate() {
        if !inside(i) && place.as_ref().is_some() {
            let _ = m.set_none(place);
        }
    }
}

/// Doubles the ring (to at least 4 slots). New empty slots are added past
/// the ring, the wrapped elements (slots `0..front`) are copied behind the
/// ring's old end, the ring's size takes its new value (one write), and
/// the old places are emptied. On error the ring is as it was.
fn grow<E: Shared>(m: &Mutator<'_>, t: Pin<&mut QRepr<E>>) -> Result<()> {
    let (mut slots, head, _, mut cap) = t.project();
    let (h, old) = (*head, *cap);
    let new = old
        .checked_mul(2)
        .map_or(Err(crate::HeapError::TooLarge), |n| Ok(n.max(4)))?;
    if slots.len() < new {
        let more = new - slots.len();
        m.reserve(slots.as_mut(), more)?;
        while slots.len() < new {
            m.push::<Option<E>>(slots.as_mut(), &None)?;
        }
    }
    {
        let mut pins: Vec<_> = slots.as_mut().iter_pin().collect();
        let (lo, hi) = pins.split_at_mut(old);
        for i in 0..h {
            let Some(value) = SharedOption::as_ref(&lo[i]) else {
                continue;
            };
            if let Err(e) = m.set_some_from::<E>(hi[i].as_mut(), value) {
                // Take the copies back: the ring never changed.
                for place in hi.iter_mut().take(i) {
                    let _ = m.set_none(place.as_mut());
                }
                return Err(e.into());
            }
        }
    }
    compiler_fence(Ordering::SeqCst);
    *cap.as_mut().get_mut() = new;
    compiler_fence(Ordering::SeqCst);
    for i in 0..h {
        m.set_none(pin_at(slots.as_mut(), i)?)?;
    }
    Ok(())
}

fn push<E: Shared>(m: &Mutator<'_>, mut t: Pin<&mut QRepr<E>>, value: &E) -> Result<()> {
    check::<E>(&t)?;
    if t.2 == t.3 {
        grow::<E>(m, t.as_mut())?;
    }
    let (mut slots, head, mut len, cap) = t.project();
    let i = (*head + *len) % *cap;
    m.set_some::<E>(pin_at(slots.as_mut(), i)?, value)?;
    compiler_fence(Ordering::SeqCst);
    *len.as_mut().get_mut() += 1;
    Ok(())
}
