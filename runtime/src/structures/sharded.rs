//! [`SShardedHashtbl`]: a hash table split into shards, each an
//! [`SHashtbl`] in a heap of its own, so that operations on different
//! shards never wait for each other.

use std::fmt;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::hashtbl::{hash_local, Found, FoundAll, FoundAllPinned, FoundPinned};
use super::{Result, SHashtbl, SHashtblDescr, SharedKey, StructureError, INITIAL_BUCKETS};
use crate::heap::Mutator;
use crate::pool::Pool;
use crate::value::Shared;

/// The most shards a table can have.
pub const MAX_SHARDS: usize = 1024;

/// A shared hash table split into shards: Netmulticore's "more heaps, more
/// lock capacity", built in.
///
/// Each shard is an [`SHashtbl`] with a heap, and so a lock, of its own; a
/// key's shard is fixed by its hash (the upper bits of [`KeyHasher`]'s
/// result; the shard's bucket comes from the lower ones). Processes that
/// work on keys of different shards never wait for each other and never
/// write to the same memory, and a shard grows (making its new buckets,
/// then moving its bindings a few at a time) while the others go on. Everything a key has, its bindings included, lives in
/// one shard, so every operation on one key is as atomic as on an
/// [`SHashtbl`].
///
/// What spans the whole table visits the shards one after the other, each
/// under its own lock: [`len`](Self::len), [`to_vec`](Self::to_vec) and
/// [`clear`](Self::clear) are not one atomic snapshot while other
/// processes change the table.
///
/// ```
/// let pool = mc::Pool::create(32 << 20)?;
/// let t = mc::SShardedHashtbl::create(&pool, 8)?;
/// for i in 0..100u32 {
///     t.add(&i, &format!("v{i}"))?;
/// }
/// assert_eq!(t.len()?, 100);
/// assert_eq!(t.find_copy(&42)?, Some("v42".to_string()));
/// assert_eq!(t.find(&7)?.map(|v| v.as_str().to_owned()), Some("v7".into()));
/// // Another process opens it by descriptor (a serde type).
/// let again = t.descr().open()?;
/// assert!(again.remove(&42)?);
/// assert_eq!(t.find_copy(&42)?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`KeyHasher`]: super::KeyHasher
pub struct SShardedHashtbl<K: SharedKey, V: Shared> {
    shards: Vec<SHashtbl<K, V>>,
}

/// A serde-able descriptor of an [`SShardedHashtbl`]: pass it to another
/// process and [open](SShardedHashtblDescr::open) it there.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SShardedHashtblDescr<K: SharedKey, V: Shared> {
    shards: Vec<SHashtblDescr<K, V>>,
}

impl<K: SharedKey, V: Shared> Clone for SShardedHashtblDescr<K, V> {
    fn clone(&self) -> Self {
        SShardedHashtblDescr {
            shards: self.shards.clone(),
        }
    }
}

impl<K: SharedKey, V: Shared> PartialEq for SShardedHashtblDescr<K, V> {
    fn eq(&self, o: &Self) -> bool {
        self.shards == o.shards
    }
}

impl<K: SharedKey, V: Shared> fmt::Debug for SShardedHashtblDescr<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SShardedHashtblDescr")
            .field("shards", &self.shards)
            .finish()
    }
}

impl<K: SharedKey, V: Shared> SShardedHashtblDescr<K, V> {
    /// Opens the table in this process (attaching its pool if needed).
    ///
    /// # Errors
    ///
    /// [`StructureError::Inconsistent`] for a descriptor without shards or
    /// with more than [`MAX_SHARDS`]; the errors of
    /// [`SHashtblDescr::open`] for each shard
    /// ([`HeapError::Destroyed`](crate::HeapError::Destroyed) once the
    /// table was destroyed).
    pub fn open(&self) -> Result<SShardedHashtbl<K, V>> {
        check_shards(self.shards.len())?;
        let shards = self
            .shards
            .iter()
            .map(SHashtblDescr::open)
            .collect::<Result<Vec<_>>>()?;
        Ok(SShardedHashtbl { shards })
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }
}

fn check_shards(n: usize) -> Result<()> {
    if n == 0 || n > MAX_SHARDS {
        return Err(StructureError::Inconsistent {
            what: "a sharded table has 1 to MAX_SHARDS (1024) shards",
        });
    }
    Ok(())
}

impl<K: SharedKey, V: Shared> Clone for SShardedHashtbl<K, V> {
    fn clone(&self) -> Self {
        SShardedHashtbl {
            shards: self.shards.clone(),
        }
    }
}

impl<K: SharedKey, V: Shared> fmt::Debug for SShardedHashtbl<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SShardedHashtbl")
            .field("pool", &self.pool().name())
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<K: SharedKey, V: Shared> SShardedHashtbl<K, V> {
    /// Creates an empty table of `shards` shards, each with
    /// [`INITIAL_BUCKETS`] buckets.
    ///
    /// # Errors
    ///
    /// As [`with_buckets`](Self::with_buckets).
    pub fn create(pool: &Pool, shards: usize) -> Result<Self> {
        Self::with_buckets(pool, shards, INITIAL_BUCKETS)
    }

    /// Creates an empty table of `shards` shards (1 to [`MAX_SHARDS`]) with
    /// `buckets` buckets each (at least 1).
    ///
    /// # Errors
    ///
    /// [`StructureError::Inconsistent`] for 0 shards or more than
    /// [`MAX_SHARDS`]; the errors of [`SHashtbl::with_buckets`] (the
    /// shards made are destroyed again).
    pub fn with_buckets(pool: &Pool, shards: usize, buckets: usize) -> Result<Self> {
        check_shards(shards)?;
        let mut made = Vec::with_capacity(shards);
        for _ in 0..shards {
            match SHashtbl::with_buckets(pool, &(), buckets) {
                Ok(t) => made.push(t),
                Err(e) => {
                    for t in made {
                        let _ = t.destroy();
                    }
                    return Err(e);
                }
            }
        }
        Ok(SShardedHashtbl { shards: made })
    }

    /// The shard that holds `k`'s bindings (an index into
    /// [`shards`](Self::shards)).
    pub fn shard_of(&self, k: &K) -> usize {
        // The upper half of the hash, scaled to the number of shards: the
        // lower half picks the bucket inside the shard, so the two choices
        // do not correlate.
        let high = hash_local(k) >> 32;
        ((high * self.shards.len() as u64) >> 32) as usize
    }

    fn shard(&self, k: &K) -> &SHashtbl<K, V> {
        &self.shards[self.shard_of(k)]
    }

    /// The shards, each an [`SHashtbl`] of its own (for their
    /// [heaps](SHashtbl::heap), [figures](SHashtbl::stats) and views).
    pub fn shards(&self) -> &[SHashtbl<K, V>] {
        &self.shards
    }

    /// A descriptor to pass to other processes.
    pub fn descr(&self) -> SShardedHashtblDescr<K, V> {
        SShardedHashtblDescr {
            shards: self.shards.iter().map(SHashtbl::descr).collect(),
        }
    }

    /// The pool the table lives in.
    pub fn pool(&self) -> &Pool {
        self.shards[0].pool()
    }

    /// Adds a binding of `k` to `v`, hiding earlier bindings of `k`
    /// ([`SHashtbl::add`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::add`].
    pub fn add(&self, k: &K, v: &V) -> Result<()> {
        self.shard(k).add(k, v)
    }

    /// Replaces the most recent binding of `k` with `v`, or adds one
    /// ([`SHashtbl::replace`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::replace`].
    pub fn replace(&self, k: &K, v: &V) -> Result<()> {
        self.shard(k).replace(k, v)
    }

    /// Removes the most recent binding of `k`; whether there was one
    /// ([`SHashtbl::remove`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::remove`].
    pub fn remove(&self, k: &K) -> Result<bool> {
        self.shard(k).remove(k)
    }

    /// Changes the value of the most recent binding of `k` in place, under
    /// its shard's exclusive lock ([`SHashtbl::modify_value`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::modify_value`].
    pub fn modify_value<R>(
        &self,
        k: &K,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut V::Repr>) -> R,
    ) -> Result<Option<R>> {
        self.shard(k).modify_value(k, f)
    }

    /// The most recent value bound to `k`, in place under its shard's
    /// shared lock ([`SHashtbl::find`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::find`].
    pub fn find(&self, k: &K) -> Result<Option<Found<'_, K, V>>> {
        self.shard(k).find(k)
    }

    /// The most recent value bound to `k`, pinned ([`SHashtbl::find_pinned`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::find_pinned`].
    pub fn find_pinned(&self, k: &K) -> Result<Option<FoundPinned<'_, V>>> {
        self.shard(k).find_pinned(k)
    }

    /// A copy of the most recent value bound to `k` ([`SHashtbl::find_copy`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::find_copy`].
    pub fn find_copy(&self, k: &K) -> Result<Option<V>> {
        self.shard(k).find_copy(k)
    }

    /// Every value bound to `k`, most recent first, in place
    /// ([`SHashtbl::find_all`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::find_all`].
    pub fn find_all(&self, k: &K) -> Result<FoundAll<'_, K, V>> {
        self.shard(k).find_all(k)
    }

    /// Every value bound to `k`, most recent first, pinned
    /// ([`SHashtbl::find_all_pinned`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::find_all_pinned`].
    pub fn find_all_pinned(&self, k: &K) -> Result<FoundAllPinned<'_, K, V>> {
        self.shard(k).find_all_pinned(k)
    }

    /// Copies of every value bound to `k`, most recent first
    /// ([`SHashtbl::find_all_copy`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::find_all_copy`].
    pub fn find_all_copy(&self, k: &K) -> Result<Vec<V>> {
        self.shard(k).find_all_copy(k)
    }

    /// Whether `k` is bound ([`SHashtbl::contains_key`]).
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::contains_key`].
    pub fn contains_key(&self, k: &K) -> Result<bool> {
        self.shard(k).contains_key(k)
    }

    /// The number of bindings: the sum over the shards, each read under
    /// its own lock.
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::len`].
    pub fn len(&self) -> Result<usize> {
        self.shards.iter().map(SHashtbl::len).sum()
    }

    /// Whether no shard holds a binding.
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::is_empty`].
    pub fn is_empty(&self) -> Result<bool> {
        for s in &self.shards {
            if !s.is_empty()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Copies of every binding, shard by shard.
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::to_vec`].
    pub fn to_vec(&self) -> Result<Vec<(K, V)>> {
        let mut all = Vec::new();
        for s in &self.shards {
            all.extend(s.to_vec()?);
        }
        Ok(all)
    }

    /// Removes every binding, shard by shard.
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::clear`]; the shards before the failing one are
    /// cleared.
    pub fn clear(&self) -> Result<()> {
        self.shards.iter().try_for_each(SHashtbl::clear)
    }

    /// Makes the table usable again after a process died in the middle of
    /// changing it: [`SHashtbl::recover`] of every shard. Returns why the
    /// first poisoned shard was poisoned (`None`: no shard was).
    ///
    /// # Errors
    ///
    /// The first error of [`SHashtbl::recover`]; every shard is still
    /// tried.
    pub fn recover(&self) -> Result<Option<crate::heap::Poison>> {
        let mut first = Ok(None);
        for shard in &self.shards {
            match (shard.recover(), &first) {
                (Err(e), Ok(_)) => first = Err(e),
                (Ok(Some(p)), Ok(None)) => first = Ok(Some(p)),
                _ => {}
            }
        }
        first
    }

    /// Runs a garbage collection of every shard's heap now.
    ///
    /// # Errors
    ///
    /// As [`SHashtbl::gc`].
    pub fn gc(&self) -> Result<()> {
        self.shards.iter().try_for_each(SHashtbl::gc)
    }

    /// Destroys the table: every shard's memory goes back to the pool, and
    /// every handle and descriptor of it then fails with
    /// [`HeapError::Destroyed`](crate::HeapError::Destroyed).
    ///
    /// # Errors
    ///
    /// The first error of [`SHashtbl::destroy`] (values pinned, a guard
    /// held by this thread, ...); every shard is still tried, and those
    /// that could not be destroyed stay usable through other handles.
    pub fn destroy(self) -> Result<()> {
        let mut first = Ok(());
        for s in self.shards {
            if let Err(e) = s.destroy() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool::create(64 << 20).expect("pool")
    }

    #[test]
    fn keys_spread_over_the_shards_and_stay_there() {
        let pool = pool();
        let t = SShardedHashtbl::<u64, u64>::with_buckets(&pool, 8, 7).unwrap();
        for i in 0..4000u64 {
            t.add(&i, &(i * 3)).unwrap();
        }
        assert_eq!(t.len().unwrap(), 4000);
        // Every shard has a fair share (an eighth is 500).
        for (i, s) in t.shards().iter().enumerate() {
            let n = s.len().unwrap();
            assert!((350..650).contains(&n), "shard {i}: {n} of 4000");
            // And only its own keys.
            for (k, _) in s.to_vec().unwrap() {
                assert_eq!(t.shard_of(&k), i);
            }
        }
        for i in (0..4000u64).step_by(37) {
            assert_eq!(t.find_copy(&i).unwrap(), Some(i * 3));
        }
        // Inside a shard, the buckets are used evenly too (the shard's
        // choice does not leave whole buckets empty).
        let s = &t.shards()[3];
        let view = s.read().unwrap();
        assert!(view.len() > 300);
        drop(view);
        let buckets = s.buckets().unwrap();
        let mut used = vec![0usize; buckets];
        for (k, _) in s.to_vec().unwrap() {
            let mut h = super::super::KeyHasher::new();
            k.hash_local(&mut h);
            used[super::super::hashtbl::index_of(std::hash::Hasher::finish(&h), buckets)] += 1;
        }
        // As random keys would: with `n` keys in `b` buckets, about
        // `b (1 - e^(-n/b))` buckets in use.
        let n = used.iter().sum::<usize>() as f64;
        let b = buckets as f64;
        let expected = b * (1.0 - (-n / b).exp());
        let in_use = used.iter().filter(|&&c| c > 0).count() as f64;
        assert!(
            in_use > 0.85 * expected,
            "{in_use} buckets in use, {expected:.0} expected: {used:?}"
        );
    }

    #[test]
    fn bindings_of_a_key_behave_as_in_one_table() {
        let pool = pool();
        let t = SShardedHashtbl::<String, u32>::create(&pool, 4).unwrap();
        let k = "k".to_string();
        t.add(&k, &1).unwrap();
        t.add(&k, &2).unwrap();
        assert_eq!(t.find_all_copy(&k).unwrap(), [2, 1]);
        assert_eq!(
            t.find_all(&k).unwrap().iter().copied().collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(t.find_pinned(&k).unwrap().map(|v| *v), Some(2));
        assert!(t.remove(&k).unwrap());
        assert_eq!(t.find(&k).unwrap().map(|v| *v), Some(1));
        t.replace(&k, &7).unwrap();
        assert_eq!(
            t.modify_value(&k, |_, mut v| {
                *v += 1;
                *v
            })
            .unwrap(),
            Some(8)
        );
        assert_eq!(t.find_all_pinned(&k).unwrap().iter().count(), 1);
        assert!(t.contains_key(&k).unwrap());
        assert_eq!(t.to_vec().unwrap(), [(k.clone(), 8)]);
        t.clear().unwrap();
        assert!(t.is_empty().unwrap());
        assert!(!t.remove(&k).unwrap());
        t.gc().unwrap();
    }

    #[test]
    fn descriptors_open_the_same_table_until_it_is_destroyed() {
        let pool = pool();
        let before = pool.stats().used;
        let t = SShardedHashtbl::<u32, String>::create(&pool, 3).unwrap();
        t.add(&5, &"five".into()).unwrap();
        let d = t.descr();
        assert_eq!(d.shards(), 3);
        let bytes = postcard::to_allocvec(&d).unwrap();
        let back: SShardedHashtblDescr<u32, String> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, d);
        let other = back.open().unwrap();
        assert_eq!(other.find_copy(&5).unwrap(), Some("five".into()));
        t.destroy().unwrap();
        assert!(matches!(
            d.open(),
            Err(StructureError::Heap(crate::HeapError::Destroyed))
        ));
        assert!(other.find_copy(&5).is_err());
        drop(other);
        crate::heap::scavenge(&pool);
        assert!(pool.stats().used <= before + 6 * crate::pool::PAGE_SIZE);
    }

    #[test]
    fn bad_shard_counts_are_errors() {
        let pool = pool();
        for n in [0, MAX_SHARDS + 1] {
            assert!(matches!(
                SShardedHashtbl::<u8, u8>::create(&pool, n),
                Err(StructureError::Inconsistent { .. })
            ));
        }
        let empty = SShardedHashtblDescr::<u8, u8> { shards: Vec::new() };
        assert!(matches!(
            empty.open(),
            Err(StructureError::Inconsistent { .. })
        ));
        // A pool too small for every shard: the shards made are given
        // back, so a smaller table fits afterwards.
        let small = Pool::create(2 << 20).unwrap();
        assert!(SShardedHashtbl::<u8, u8>::create(&small, 40).is_err());
        let t = SShardedHashtbl::<u8, u8>::create(&small, 4).unwrap();
        t.add(&1, &2).unwrap();
        assert_eq!(t.find_copy(&1).unwrap(), Some(2));
    }
}
