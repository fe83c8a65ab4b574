//! `SHashtbl`: a shared hash table with multiple bindings per key
//! (Netmulticore's `Netmcore_hashtbl`).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{compiler_fence, Ordering};

mod key;
mod repair;
mod steps;

use steps::{clear, remove_binding, replace_value};

pub(super) use key::hash_local;
use key::hash_repr;
pub use key::{KeyHasher, SharedKey};

use super::{pin_at, structure_common, Parts, Ref, Refs, Result, StructureError};
use crate::heap::{HeapError, HeapOptions, Mutator, PinGuard, ReadGuard};
use crate::pool::Pool;
use crate::value::{Shared, SharedVec, Tuple2, Tuple4, Tuple5};

/// The number of buckets of a new table (as Netmulticore's).
pub const INITIAL_BUCKETS: usize = 391;

/// Two lists of buckets (each a chain of bindings, key and value side by
/// side, oldest first), the number of bindings between them, `moved`, and
/// the [`Journal`] of a removal. One list holds the table's buckets; while the
/// table grows, the other holds the buckets it grows from. Bit [`FLIPPED`]
/// of `moved` says which list is the new one (clear: the first); the rest
/// says how many old buckets have moved to the new ones, or [`GROWING`]
/// or [`CLEARING`] while a growth starts or a clear runs. A growth makes
/// the new list in the place of the old one (which has moved) and flips
/// the bit, with one write: the lists never swap places.
type TData<K, V> = (Segments<K, V>, usize, Segments<K, V>, usize, Journal);
/// A removal in flight: its chain (numbered as [`chain`] numbers them)
/// plus 1, 0 for none; the chain's length before it; the index removed;
/// and the step the chain's copies down reached (bindings without
/// pointers) or its array's address before (with pointers; see
/// [`remove_binding`]). Written before the chain changes, so that
/// [`SHashtbl::recover`] can finish a removal cut short by a death.
type Journal = (usize, usize, usize, usize);
/// Buckets in segments of [`SEGMENT`] (the last one shorter), each made
/// when a binding first goes into it, and the number of buckets.
type Segments<K, V> = (Vec<Vec<Chain<K, V>>>, usize);
/// A bucket's bindings: one array, so that a lookup finds the value next
/// to its key.
type Chain<K, V> = Vec<(K, V)>;
type Binding<K, V> = Tuple2<<K as Shared>::Repr, <V as Shared>::Repr>;
type Bucket<K, V> = SharedVec<Binding<K, V>>;
type SegmentsRepr<K, V> = Tuple2<SharedVec<SharedVec<Bucket<K, V>>>, usize>;
type TRepr<K, V> = Tuple5<
    SegmentsRepr<K, V>,
    usize,
    SegmentsRepr<K, V>,
    usize,
    Tuple4<usize, usize, usize, usize>,
>;

/// The bit of `moved` that says the second list holds the new buckets.
const FLIPPED: usize = 1 << (usize::BITS - 1);
/// `moved` (without [`FLIPPED`]) while a growth makes the new buckets in
/// the old list's place: the old buckets are ignored (lookups use the
/// current ones) until the flip, which also sets `moved` to 0. A death in
/// between leaves it for [`SHashtbl::recover`], which undoes the growth.
const GROWING: usize = FLIPPED - 1;
/// `moved` (without [`FLIPPED`]) while [`SHashtbl::clear`] empties the
/// buckets: a death in between leaves it for [`SHashtbl::recover`], which
/// finishes the clear.
const CLEARING: usize = FLIPPED - 2;

/// How many old buckets have moved (or [`GROWING`], [`CLEARING`]).
#[inline]
fn moved_of<K: Shared, V: Shared>(t: &TRepr<K, V>) -> usize {
    t.3 & !FLIPPED
}

/// Sets how many old buckets have moved, keeping which list is new.
#[inline]
fn set_moved(mut moved: Pin<&mut usize>, to: usize) {
    let flipped = *moved & FLIPPED;
    *moved.as_mut().get_mut() = flipped | (to & !FLIPPED);
}

/// The new buckets and the old ones.
#[inline]
fn lists<K: Shared, V: Shared>(t: &TRepr<K, V>) -> (&SegmentsRepr<K, V>, &SegmentsRepr<K, V>) {
    if t.3 & FLIPPED == 0 {
        (&t.0, &t.2)
    } else {
        (&t.2, &t.0)
    }
}

/// The parts of a table to modify: the new buckets, the number of
/// bindings, the old buckets, `moved` and the journal.
type PartsMut<'a, K, V> = (
    Pin<&'a mut SegmentsRepr<K, V>>,
    Pin<&'a mut usize>,
    Pin<&'a mut SegmentsRepr<K, V>>,
    Pin<&'a mut usize>,
    Pin<&'a mut Tuple4<usize, usize, usize, usize>>,
);

/// [`lists`], to modify, with the other parts.
#[inline]
fn parts_mut<K: Shared, V: Shared>(t: Pin<&mut TRepr<K, V>>) -> PartsMut<'_, K, V> {
    let flipped = t.3 & FLIPPED != 0;
    let (a, size, b, moved, journal) = t.project();
    if flipped {
        (b, size, a, moved, journal)
    } else {
        (a, size, b, moved, journal)
    }
}

/// Buckets per segment (a power of two): growing makes the list of
/// segments, not the buckets, so it costs a 256th of the buckets.
const SEGMENT_BITS: u32 = 8;
const SEGMENT: usize = 1 << SEGMENT_BITS;

/// The old buckets that each modification moves while the table grows.
/// Growing to `2n + 1` buckets starts after `2n` bindings and the next
/// growth comes `2n + 1` bindings later, by which time the `n` old buckets
/// have long moved.
const MOVE_STEP: usize = 2;

pub(super) type Found<'a, K, V> = Ref<ReadGuard<'a, TData<K, V>>, <V as Shared>::Repr>;
pub(super) type FoundPinned<'a, V> = PinGuard<'a, V>;
pub(super) type FoundAll<'a, K, V> = Refs<ReadGuard<'a, TData<K, V>>, <V as Shared>::Repr>;
pub(super) type FoundAllPinned<'a, K, V> = Refs<PinGuard<'a, TData<K, V>>, <V as Shared>::Repr>;

/// A shared hash table from `K` to `V` with a header `H`.
///
/// As in Netmulticore (and OCaml's `Hashtbl`), a key can have several
/// bindings: [`add`](SHashtbl::add) keeps the earlier ones (visible to
/// [`find_all`](SHashtbl::find_all), most recent first),
/// [`find`](SHashtbl::find)
/// sees the most recent, [`remove`](SHashtbl::remove) removes the most
/// recent (uncovering the previous one), and
/// [`replace`](SHashtbl::replace) changes the most recent (or adds one).
///
/// The table is an array of buckets (391 at first, `2n + 1` when there are
/// more than two bindings per bucket), each a chain of bindings (an array
/// of key and value pairs);
/// keys are hashed with the deterministic [`KeyHasher`] through
/// [`SharedKey`], so every process finds them. Growing does not rehash the
/// whole table at once: it makes an empty list of the new buckets (made
/// 256 at a time, when a binding first goes into them), and every later
/// modification moves the bindings of two old buckets, so no single
/// operation pays for the table's size.
///
/// ```
/// let pool = mc::Pool::create(16 << 20)?;
/// let t = mc::SHashtbl::create(&pool, &())?;
/// t.add(&"k".to_string(), &1u32)?;
/// t.add(&"k".to_string(), &2)?;
/// assert_eq!(t.find_copy(&"k".to_string())?, Some(2));
/// assert_eq!(t.find_all_copy(&"k".to_string())?, [2, 1]);
/// assert_eq!(t.find_all(&"k".to_string())?.iter().copied().collect::<Vec<_>>(), [2, 1]);
/// t.remove(&"k".to_string())?;
/// assert_eq!(t.find(&"k".to_string())?.map(|v| *v), Some(1));
/// t.replace(&"k".to_string(), &7)?;
/// assert_eq!(t.len()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SHashtbl<K: SharedKey, V: Shared, H: Shared = ()> {
    parts: Parts<TData<K, V>, H>,
}

structure_common!(SHashtbl, SHashtblDescr, [K: SharedKey, V: Shared], TData<K, V>, "an [`SHashtbl`]");

/// The value at `l`, which [`locate`] or [`locate_all`] found in the same
/// (guarded, hence unchanged) table.
fn value_at<K: Shared, V: Shared>(t: &TRepr<K, V>, l: [usize; 2]) -> &V::Repr {
    &chain::<K, V>(t, l[0]).expect("mc: a binding located in the same guarded table")[l[1]].1
}

/// Bucket `b` of `s`; `None` for one not made yet (empty).
#[inline]
fn bucket<K: Shared, V: Shared>(s: &SegmentsRepr<K, V>, b: usize) -> Option<&Bucket<K, V>> {
    s.0.get(b >> SEGMENT_BITS)?.get(b & (SEGMENT - 1))
}

/// Bucket `b` of `s`, to modify: its segment is made first if it is not
/// (or was left short by an allocation that failed).
fn bucket_pin<'a, K: Shared, V: Shared>(
    m: &Mutator<'_>,
    s: Pin<&'a mut SegmentsRepr<K, V>>,
    b: usize,
) -> Result<Pin<&'a mut Bucket<K, V>>> {
    let (segments, n) = s.project();
    let n = *n;
    if b >= n {
        return Err(StructureError::OutOfBounds { index: b, len: n });
    }
    let mut seg = pin_at(segments, b >> SEGMENT_BITS)?;
    let first = b & !(SEGMENT - 1);
    let want = SEGMENT.min(n - first);
    if seg.len() < want {
        let more = want - seg.len();
        m.reserve(seg.as_mut(), more)?;
        while seg.len() < want {
            m.push::<Chain<K, V>>(seg.as_mut(), &Vec::new())?;
        }
    }
    pin_at(seg, b & (SEGMENT - 1))
}

/// An empty list of `n` buckets, in the heap (its segments not made).
fn make_segments<'m, K: Shared, V: Shared>(
    m: &'m Mutator<'_>,
    n: usize,
) -> Result<Pin<&'m mut SegmentsRepr<K, V>>> {
    let segments: Vec<Vec<Chain<K, V>>> = (0..n.div_ceil(SEGMENT)).map(|_| Vec::new()).collect();
    Ok(m.add(&(segments, n))?)
}

/// Bucket `b` of the table: a new bucket below the number of buckets, an
/// old one (of a table that grows) above; `None` for an empty one.
#[inline]
fn chain<K: Shared, V: Shared>(t: &TRepr<K, V>, b: usize) -> Option<&Bucket<K, V>> {
    let (new, old) = lists::<K, V>(t);
    let n = new.1;
    if b < n {
        bucket::<K, V>(new, b)
    } else {
        bucket::<K, V>(old, b - n)
    }
}

/// The bucket where the bindings of a key with hash `h` are, numbered as
/// [`chain`] numbers them: `n` new buckets, `old` old ones of which the
/// first `moved` have moved.
#[inline]
fn home_in(n: usize, old: usize, moved: usize, h: u64) -> usize {
    if old > 0 {
        let o = index_of(h, old);
        if o >= moved {
            return n + o;
        }
    }
    index_of(h, n)
}

/// The bucket among `n` of a key with hash `h`: the hash's lower half,
/// scaled to `n` with a multiplication where a remainder would take a
/// division. (A sharded table picks the shard from the upper half, so the
/// two choices do not correlate.)
#[inline]
pub(super) fn index_of(h: u64, n: usize) -> usize {
    ((u128::from(h.rotate_left(32)) * n as u128) >> 64) as usize
}

/// The bucket of `k` (as [`home_in`] numbers them), or
/// [`StructureError::Inconsistent`] for a table without buckets (only
/// [`SHashtbl::heap`] can make one).
fn bucket_of<K: SharedKey, V: Shared>(t: &TRepr<K, V>, k: &K) -> Result<usize> {
    whole::<K, V>(t)?;
    let (new, old) = lists::<K, V>(t);
    let n = new.1;
    if n == 0 {
        return Err(StructureError::Inconsistent {
            what: "a table without buckets",
        });
    }
    Ok(home_in(n, old.1, moved_of::<K, V>(t), hash_local(k)))
}

/// [`StructureError::Inconsistent`] for a table whose last change was cut
/// short by a death (a removal or a growth in flight) and not repaired
/// since: [`SHashtbl::recover`] finishes it.
fn whole<K: Shared, V: Shared>(t: &TRepr<K, V>) -> Result<()> {
    if moved_of::<K, V>(t) >= CLEARING || t.4 .0 != 0 {
        return Err(StructureError::Inconsistent {
            what: "a change cut short by the death of a process (call `SHashtbl::recover`)",
        });
    }
    Ok(())
}

/// Where the most recent binding of `k` is: `(bucket, index in chain)`.
fn locate<K: SharedKey, V: Shared>(t: &TRepr<K, V>, k: &K) -> Result<(usize, Option<usize>)> {
    let b = bucket_of::<K, V>(t, k)?;
    let Some(c) = chain::<K, V>(t, b) else {
        return Ok((b, None));
    };
    Ok((b, c.iter().rposition(|r| k.eq_repr(&r.0))))
}

/// Where every binding of `k` is, most recent first.
fn locate_all<K: SharedKey, V: Shared>(t: &TRepr<K, V>, k: &K) -> Result<Vec<[usize; 2]>> {
    let b = bucket_of::<K, V>(t, k)?;
    let Some(c) = chain::<K, V>(t, b) else {
        return Ok(Vec::new());
    };
    Ok(c.iter()
        .enumerate()
        .rev()
        .filter(|(_, r)| k.eq_repr(&r.0))
        .map(|(i, _)| [b, i])
        .collect())
}

/// A table read in place under its shared lock ([`SHashtbl::read`]).
pub struct TableView<'a, K: SharedKey, V: Shared> {
    g: ReadGuard<'a, TData<K, V>>,
}

impl<K: SharedKey, V: Shared> fmt::Debug for TableView<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TableView");
        // A copy made by `fork` does not read.
        if self.g.is_here() {
            d.field("len", &self.len());
        }
        d.finish_non_exhaustive()
    }
}

impl<K: SharedKey, V: Shared> TableView<'_, K, V> {
    /// The number of bindings.
    pub fn len(&self) -> usize {
        self.g.1
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.g.1 == 0
    }

    /// Every binding, bucket by bucket (within a key, oldest first).
    pub fn iter(&self) -> impl Iterator<Item = (&K::Repr, &V::Repr)> + '_ {
        // The old buckets of a growing table hold the bindings not moved
        // yet (the moved ones are empty).
        let (new, old) = lists::<K, V>(&self.g);
        new.0
            .iter()
            .chain(old.0.iter())
            .flat_map(|segment| segment.iter())
            .flat_map(|b| b.iter().map(|r| (&r.0, &r.1)))
    }

    /// The most recent value bound to `k`.
    pub fn get(&self, k: &K) -> Option<&V::Repr> {
        let (b, i) = locate::<K, V>(&self.g, k).ok()?;
        i.map(|i| value_at::<K, V>(&self.g, [b, i]))
    }

    /// Every value bound to `k`, most recent first (`find_all_ro`).
    pub fn get_all(&self, k: &K) -> impl Iterator<Item = &V::Repr> + '_ {
        let locs = locate_all::<K, V>(&self.g, k).unwrap_or_default();
        locs.into_iter().map(move |l| value_at::<K, V>(&self.g, l))
    }
}

impl<K: SharedKey, V: Shared, H: Shared> SHashtbl<K, V, H> {
    /// Creates an empty table with [`INITIAL_BUCKETS`] buckets
    /// (`Netmcore_hashtbl.create`).
    ///
    /// # Errors
    ///
    /// As [`with_buckets`](Self::with_buckets).
    pub fn create(pool: &Pool, header: &H) -> Result<Self> {
        Self::with_buckets(pool, header, INITIAL_BUCKETS)
    }

    /// Creates an empty table with `n` buckets (at least 1).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with
    /// [`HeapError::OutOfMemory`] when the buckets cannot fit in the pool, and
    /// with the errors of [`Heap::create`](crate::Heap::create); the heaps made
    /// are destroyed again.
    pub fn with_buckets(pool: &Pool, header: &H, n: usize) -> Result<Self> {
        let n = n.max(1);
        let max_size = pool.stats().max_size;
        if n > max_size / size_of::<Bucket<K, V>>() {
            return Err(HeapError::OutOfMemory {
                requested: n.saturating_mul(size_of::<Bucket<K, V>>()),
                available: pool.stats().free,
            }
            .into());
        }
        // The buckets' segments are made when bindings first go into them.
        let segments: Vec<Vec<Chain<K, V>>> =
            (0..n.div_ceil(SEGMENT)).map(|_| Vec::new()).collect();
        let parts = Parts::create(
            pool,
            header,
            &((segments, n), 0, (Vec::new(), 0), 0, (0, 0, 0, 0)),
            HeapOptions::new(),
        )?;
        Ok(SHashtbl { parts })
    }

    /// Adds a binding of `k` to `v`, hiding (not removing) earlier bindings
    /// of `k` (`add`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify) and
    /// [`Mutator::push`](crate::Mutator::push); the table is then left as it
    /// was.
    /// [`StructureError::Inconsistent`](super::StructureError::Inconsistent)
    /// for a table left without buckets through [`heap`](Self::heap).
    pub fn add(&self, k: &K, v: &V) -> Result<()> {
        self.parts.modify_try(|m, t| add::<K, V>(m, t, k, v))
    }

    /// Replaces the most recent binding of `k` with `v`, or adds one
    /// (`replace`).
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add).
    pub fn replace(&self, k: &K, v: &V) -> Result<()> {
        self.parts.modify_try(|m, mut t| {
            whole::<K, V>(&t)?;
            move_some::<K, V>(m, t.as_mut());
            let (b, i) = locate::<K, V>(&t, k)?;
            match i {
                Some(i) => replace_value::<K, V>(m, chain_pin::<K, V>(m, t, b)?, i, v),
                None => add::<K, V>(m, t, k, v),
            }
        })
    }

    /// Removes the most recent binding of `k`, uncovering the previous one
    /// (`remove`). Returns whether there was one.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    /// [`StructureError::Inconsistent`](super::StructureError::Inconsistent)
    /// for a table left without buckets through [`heap`](Self::heap).
    pub fn remove(&self, k: &K) -> Result<bool> {
        self.parts.modify_try(|m, mut t| {
            whole::<K, V>(&t)?;
            move_some::<K, V>(m, t.as_mut());
            let (b, i) = locate::<K, V>(&t, k)?;
            let Some(i) = i else { return Ok(false) };
            remove_binding::<K, V>(m, t, b, i)?;
            Ok(true)
        })
    }

    /// Changes the value of the most recent binding of `k` in place, under
    /// the exclusive lock: an atomic read-modify-write. `None` when `k` is
    /// not bound.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    /// [`StructureError::Inconsistent`](super::StructureError::Inconsistent)
    /// for a table left without buckets through [`heap`](Self::heap).
    pub fn modify_value<R>(
        &self,
        k: &K,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut V::Repr>) -> R,
    ) -> Result<Option<R>> {
        self.parts.modify_try(|m, t| {
            let (b, i) = locate::<K, V>(&t, k)?;
            let Some(i) = i else { return Ok(None) };
            let (_, value) = pin_at(chain_pin::<K, V>(m, t, b)?, i)?.project();
            Ok(Some(f(m, value)))
        })
    }

    /// The most recent value bound to `k`, in place under the shared lock
    /// (`find_ro`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    /// [`StructureError::Inconsistent`](super::StructureError::Inconsistent)
    /// for a table left without buckets through [`heap`](Self::heap).
    pub fn find(&self, k: &K) -> Result<Option<Found<'_, K, V>>> {
        let g = self.parts.data.read()?;
        let (b, i) = locate::<K, V>(&g, k)?;
        Ok(i.map(|i| Ref::new(g, [b, i], value_at::<K, V>)))
    }

    /// The most recent value bound to `k`, pinned (`find_p`; see
    /// [`SArray::get_pinned`](crate::SArray::get_pinned) for the cost).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::pin_part`](crate::Heap::pin_part).
    /// [`StructureError::Inconsistent`](super::StructureError::Inconsistent)
    /// for a table left without buckets through [`heap`](Self::heap).
    pub fn find_pinned(&self, k: &K) -> Result<Option<FoundPinned<'_, V>>> {
        let pinned = self.parts.data.try_pin_part(|g| {
            let (b, i) = locate::<K, V>(g, k).map_err(Some)?;
            Ok(value_at::<K, V>(g, [b, i.ok_or(None)?]))
        })?;
        match pinned {
            Ok(p) => Ok(Some(p)),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }

    /// A copy of the most recent value bound to `k` (`find_c`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    /// [`StructureError::Inconsistent`](super::StructureError::Inconsistent)
    /// for a table left without buckets through [`heap`](Self::heap).
    pub fn find_copy(&self, k: &K) -> Result<Option<V>> {
        let g = self.parts.data.read()?;
        let (b, i) = locate::<K, V>(&g, k)?;
        Ok(i.map(|i| V::from_repr(value_at::<K, V>(&g, [b, i]))))
    }

    /// Every value bound to `k`, most recent first, in place under the
    /// shared lock (`find_all_ro`): the bindings that [`add`](Self::add)
    /// hid, [`find`](Self::find)'s first. Empty when `k` is not bound; one
    /// value when `k` was only ever [`replace`](Self::replace)d (which
    /// changes the most recent binding instead of adding one).
    ///
    /// ```
    /// let pool = mc::Pool::create(16 << 20)?;
    /// let t = mc::SHashtbl::create(&pool, &())?;
    /// for v in ["a", "b", "c"] {
    ///     t.add(&1u32, &v.to_string())?;
    /// }
    /// let all = t.find_all(&1)?;
    /// assert_eq!(all.len(), 3);
    /// assert_eq!(all.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["c", "b", "a"]);
    /// drop(all); // (another access while the guard lives is `Reentrant`)
    /// assert!(t.find_all(&2)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read);
    /// [`StructureError::Inconsistent`] for a table left without buckets
    /// through [`heap`](Self::heap).
    pub fn find_all(&self, k: &K) -> Result<FoundAll<'_, K, V>> {
        let g = self.parts.data.read()?;
        let locs = locate_all::<K, V>(&g, k)?;
        Ok(Refs::new(g, locs, value_at::<K, V>))
    }

    /// Every value bound to `k`, most recent first, pinned (`find_all_p`,
    /// Netmulticore's `with_value_n`): no lock is held, writers go on, and
    /// the references keep seeing the bindings as they were (see
    /// [`SArray::get_pinned`](crate::SArray::get_pinned) for the cost).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::pin`](crate::Heap::pin);
    /// [`StructureError::Inconsistent`] as for [`find_all`](Self::find_all).
    pub fn find_all_pinned(&self, k: &K) -> Result<FoundAllPinned<'_, K, V>> {
        let g = self.parts.data.pin()?;
        let locs = locate_all::<K, V>(&g, k)?;
        Ok(Refs::new(g, locs, value_at::<K, V>))
    }

    /// Copies of every value bound to `k`, most recent first
    /// (`find_all_c`).
    ///
    /// # Errors
    ///
    /// As [`find_all`](Self::find_all).
    pub fn find_all_copy(&self, k: &K) -> Result<Vec<V>> {
        Ok(self.find_all(k)?.iter().map(V::from_repr).collect())
    }

    /// Whether `k` is bound (`mem`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    /// [`StructureError::Inconsistent`](super::StructureError::Inconsistent)
    /// for a table left without buckets through [`heap`](Self::heap).
    pub fn contains_key(&self, k: &K) -> Result<bool> {
        let g = self.parts.data.read()?;
        Ok(locate::<K, V>(&g, k)?.1.is_some())
    }

    /// The number of bindings (`length`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn len(&self) -> Result<usize> {
        let g = self.parts.data.read()?;
        whole::<K, V>(&g)?;
        Ok(g.1)
    }

    /// Whether the table is empty.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The number of buckets.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn buckets(&self) -> Result<usize> {
        Ok(lists::<K, V>(&*self.parts.data.read()?).0 .1)
    }

    /// The table in place under the shared lock, to iterate over (`iter`,
    /// `fold`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn read(&self) -> Result<TableView<'_, K, V>> {
        let g = self.parts.data.read()?;
        whole::<K, V>(&g)?;
        Ok(TableView { g })
    }

    /// Copies of every binding (within a key, oldest first).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn to_vec(&self) -> Result<Vec<(K, V)>> {
        let v = self.read()?;
        Ok(v.iter()
            .map(|(k, v)| (K::from_repr(k), V::from_repr(v)))
            .collect())
    }

    /// Removes every binding (`clear`); the number of buckets stays (a
    /// table that was growing has grown).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`](super::StructureError::Heap) with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    pub fn clear(&self) -> Result<()> {
        self.parts.modify(|m, t| clear::<K, V>(m, t))
    }
}

/// Bucket `b` of the table (as [`chain`] numbers them), to modify.
fn chain_pin<'a, K: Shared, V: Shared>(
    m: &Mutator<'_>,
    t: Pin<&'a mut TRepr<K, V>>,
    b: usize,
) -> Result<Pin<&'a mut Bucket<K, V>>> {
    let (buckets, _, old, ..) = parts_mut::<K, V>(t);
    match b.checked_sub(buckets.1) {
        None => bucket_pin::<K, V>(m, buckets, b),
        Some(o) => bucket_pin::<K, V>(m, old, o),
    }
}

/// Adds a binding. Either the binding is added (and counted) or, on
/// error, the table is left as it was (bindings that moved between
/// buckets stay moved).
fn add<K: SharedKey, V: Shared>(
    m: &Mutator<'_>,
    mut t: Pin<&mut TRepr<K, V>>,
    k: &K,
    v: &V,
) -> Result<()> {
    whole::<K, V>(&t)?;
    let n = lists::<K, V>(&t).0 .1;
    if n == 0 {
        return Err(StructureError::Inconsistent {
            what: "a table without buckets",
        });
    }
    move_some::<K, V>(m, t.as_mut());
    // Grow before adding, once there are more than two bindings per
    // bucket. A table that cannot grow (the pool is full, or the last
    // growth has not moved all its bindings yet) stays valid, only fuller:
    // the binding is added all the same, and growing is tried again after
    // `n` more bindings.
    let size_now = t.1;
    // (Checked: the counts are data that `SHashtbl::heap` can change.)
    let due = n
        .checked_mul(2)
        .and_then(|two_n| size_now.checked_sub(two_n))
        .is_some_and(|over| over.is_multiple_of(n));
    if due && moved_of::<K, V>(&t) >= lists::<K, V>(&t).1 .1 {
        if let Some(next) = n.checked_mul(2).and_then(|x| x.checked_add(1)) {
            let _ = grow::<K, V>(m, t.as_mut(), next);
        }
    }
    let b = bucket_of::<K, V>(&t, k)?;
    let mut chain = chain_pin::<K, V>(m, t.as_mut(), b)?;
    // Most chains hold one or two bindings: their arrays start with room
    // for two.
    m.reserve_from(chain.as_mut(), 1, 2)?;
    m.push_with(chain, |w| Ok(Tuple2(k.to_repr(w)?, v.to_repr(w)?)))?;
    let (_, size, ..) = t.project();
    let size = size.get_mut();
    *size = size.saturating_add(1);
    Ok(())
}

/// Starts growing to `n` buckets: new, empty buckets take the place of the
/// current ones, which become the old buckets that [`move_some`] empties.
/// On error the table is unchanged.
fn grow<K: SharedKey, V: Shared>(
    m: &Mutator<'_>,
    t: Pin<&mut TRepr<K, V>>,
    n: usize,
) -> Result<()> {
    // No more buckets than the pool could hold (the list is built locally
    // first).
    let max = m.pool_max_size() / size_of::<Bucket<K, V>>();
    if n > max {
        return Err(HeapError::OutOfMemory {
            requested: n.saturating_mul(size_of::<Bucket<K, V>>()),
            available: m.pool_max_size(),
        }
        .into());
    }
    let mut new = make_segments::<K, V>(m, n)?;
    let (_, _, mut old, mut moved, _) = parts_mut::<K, V>(t);
    // The old list (all moved) is ignored while it becomes the new one,
    // one field at a time; then one write flips which list is new and
    // counts no old bucket moved (see `GROWING`).
    set_moved(moved.as_mut(), GROWING);
    compiler_fence(Ordering::SeqCst);
    {
        let (mut segments, mut count) = old.as_mut().project();
        let (new_segments, new_count) = new.as_mut().project();
        *count.as_mut().get_mut() = 0;
        compiler_fence(Ordering::SeqCst);
        // SAFETY: `new_segments` is in this heap (made just now) and nothing
        // reachable refers to it; it lets go of its array.
        unsafe { segments.as_mut().take_array(new_segments) };
        compiler_fence(Ordering::SeqCst);
        *count.get_mut() = *new_count;
    }
    compiler_fence(Ordering::SeqCst);
    let flipped = (*moved & FLIPPED) ^ FLIPPED;
    *moved.get_mut() = flipped;
    Ok(())
}

/// Moves the bindings of up to [`MOVE_STEP`] old buckets of a growing
/// table to the new buckets (order within a key kept); nothing when the
/// table is not growing.
#[inline]
fn move_some<K: SharedKey, V: Shared>(m: &Mutator<'_>, t: Pin<&mut TRepr<K, V>>) {
    if lists::<K, V>(&t).1 .1 != 0 {
        move_buckets::<K, V>(m, t);
    }
}

/// [`move_some`] for a growing table. A bucket moves whole or not at all:
/// when the pool has no room for its bindings, the copies made are taken
/// back and the bucket stays where it is, to be moved by a later
/// modification.
#[inline(never)]
fn move_buckets<K: SharedKey, V: Shared>(m: &Mutator<'_>, t: Pin<&mut TRepr<K, V>>) {
    let (mut buckets, _, mut old, mut moved, _) = parts_mut::<K, V>(t);
    let n = buckets.1;
    for _ in 0..MOVE_STEP {
        let o = *moved & !FLIPPED;
        if o >= old.1 || n == 0 {
            return;
        }
        // The bindings copied so far: each went to the end of its new
        // bucket's chain. (A bucket whose segment was never made is empty.)
        let mut copied = 0;
        let mut failed = false;
        if let Some(from) = bucket::<K, V>(&old, o) {
            for r in from.iter() {
                let b = index_of(hash_repr::<K>(&r.0), n);
                let pushed = bucket_pin::<K, V>(m, buckets.as_mut(), b).and_then(|mut target| {
                    m.reserve_from(target.as_mut(), 1, 2)?;
                    Ok(m.push_from::<(K, V)>(target, r)?)
                });
                if pushed.is_err() {
                    failed = true;
                    break;
                }
                copied += 1;
            }
            if failed {
                // Taken back last first, so that each is the last of its
                // chain.
                for r in from[..copied].iter().rev() {
                    let b = index_of(hash_repr::<K>(&r.0), n);
                    if let Ok(target) = bucket_pin::<K, V>(m, buckets.as_mut(), b) {
                        let len = target.len();
                        m.truncate(target, len.saturating_sub(1));
                    }
                }
                return;
            }
        }
        // The order of what follows is what a repair after a death relies
        // on: the copies, then the old bucket emptied, then counted as
        // moved, then (the last one) the old list let go of.
        compiler_fence(Ordering::SeqCst);
        if copied > 0 {
            // In place: the bucket exists (bindings were read from it), so
            // nothing is allocated here.
            let (segments, _) = old.as_mut().project();
            if let Ok(from) =
                pin_at(segments, o >> SEGMENT_BITS).and_then(|s| pin_at(s, o & (SEGMENT - 1)))
            {
                m.truncate(from, 0);
            }
        }
        compiler_fence(Ordering::SeqCst);
        set_moved(moved.as_mut(), o + 1);
        compiler_fence(Ordering::SeqCst);
        if o + 1 == old.1 {
            // All moved: the old buckets become garbage (their list lets
            // go of its array, one field at a time).
            let (segments, count) = old.as_mut().project();
            m.truncate(segments, 0);
            compiler_fence(Ordering::SeqCst);
            *count.get_mut() = 0;
            compiler_fence(Ordering::SeqCst);
            set_moved(moved.as_mut(), 0);
            return;
        }
    }
}

#[cfg(test)]
mod tests;
