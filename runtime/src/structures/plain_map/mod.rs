//! `PlainMap`: a hash map of plain keys and values between processes, in a
//! block of pool memory, whose lookups take no lock.
//!
//! The block holds a header of two cache lines (geometry; the writers' lock,
//! the length and the journal's place), the journal's words (a value being
//! replaced), the groups' header and tag words (two words a group, one
//! dense array), and then the groups' slots (8 a group, each the key's
//! words and the value's words). A key's home group comes from its hash; a
//! key that finds its home full goes to the next group with room (linear
//! probing by groups), and every group it passes counts it in its
//! *overflow*: a lookup stops at the first group that does not hold its key
//! and counts no overflow. Keys never move between groups, so a removal
//! only clears its slot and counts the overflow down again: no tombstones.
//!
//! A group's tag word has a byte a slot: `0x80` and 7 bits of the key's
//! hash when the slot holds a key, 0 when it is free; a lookup compares
//! only the keys whose tag matches (usually one). A group's header word
//! packs its overflow count, a `WRITING` bit and a version.
//!
//! Writers take turns under one robust lock; readers take no lock at all.
//! A reader loads the header (acquire), then the tags (acquire), reads the
//! keys of the matching slots and the value it is after, and loads the
//! header again after an acquire fence: the same word means that what it
//! read is whole (a sequence lock, every word of it an atomic, as in
//! [`Ring`](super::Ring)). A writer
//! - fills a free slot, whose tag is 0 so that no reader looks at it, and
//!   then stores the tag with release: a reader that sees the tag sees the
//!   key and value;
//! - removes a key by clearing its tag and then moving the version on, so
//!   that a reader that saw the old tag fails its check if the slot is
//!   written again (the writer fences before it writes a slot);
//! - replaces a value in place between a `WRITING` store (then a release
//!   fence) and the next version.
//!
//! An insertion counts the overflow of the groups it passes before it
//! stores the tag, and a removal clears the tag before it counts them
//! down: a key is found by every reader from the moment its tag is stored
//! to the moment it is cleared.
//!
//! A writer that dies holding the lock leaves it to the next one
//! (`OwnerDied`), which puts right what it left:
//! - a replacement in place is redone from the journal (the new value is
//!   written there first), so a value is never torn;
//! - the overflow counts and the length are counted again from the tags,
//!   and every group's version moves on;
//! - a half-filled slot whose tag was never stored was never seen.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::in_shared::at;
use crate::pool::{Pool, PoolMem, PoolMemDescr};
use crate::sync::home::Home;

use super::plain::{
    fingerprint, lock_repairing, read_value, value_words, word_of, words_of, write_value, Held,
};

mod error;
mod layout;

pub use error::PlainMapError;
use layout::*;

/// A hash map of plain keys and values (`bytemuck::Pod`: numbers, arrays of
/// them, `#[derive(Pod)]` structs) that any number of processes read and
/// write: fixed-size groups of slots in a block of pool memory.
///
/// Lookups ([`get`](PlainMap::get), [`contains_key`](PlainMap::contains_key))
/// take no lock: they read the key's group and check its version word
/// afterwards, so readers never wait for each other and never write a
/// shared cache line. Changes ([`insert`](PlainMap::insert),
/// [`remove`](PlainMap::remove), [`update`](PlainMap::update),
/// [`retain`](PlainMap::retain), [`clear`](PlainMap::clear)) take turns under one robust lock, held for
/// the change only. Two keys are equal when their bytes are (for floats,
/// their bits). The map holds at most the capacity given at creation:
/// inserting a new key beyond it is [`PlainMapError::Full`].
///
/// Other processes open the map by [descriptor](PlainMap::descr); the
/// block goes back to the pool with the last handle. A handle copied into a
/// child by `fork` is inert there: using it panics, as
/// [`PoolMem::bytes`](crate::PoolMem::bytes) does; the child opens the map
/// by descriptor instead.
///
/// A process that dies in the middle of a change leaves the map whole: the
/// next writer finishes a value it was replacing (from a journal), and
/// counts the overflow and the length again. The change itself may or may
/// not have happened; every change that returned stays.
///
/// ```
/// let pool = mc::Pool::create(1 << 20)?;
/// let map = mc::PlainMap::<u64, [f64; 2]>::create(&pool, 1000)?;
/// assert_eq!(map.insert(7, [1.0, 2.0])?, None);
/// assert_eq!(map.insert(7, [3.0, 4.0])?, Some([1.0, 2.0]));
/// // Read-modify-write under the writers' lock: a counter.
/// let hits = mc::PlainMap::<u32, u64>::create(&pool, 10)?;
/// for _ in 0..3 {
///     hits.update(&1, |n| Some(n.unwrap_or(0) + 1))?;
/// }
/// assert_eq!(hits.get(&1)?, Some(3));
/// // Another process opens it by descriptor (a serde type).
/// let other = map.descr().open()?;
/// assert_eq!(other.get(&7)?, Some([3.0, 4.0]));
/// assert_eq!(other.remove(&7)?, Some([3.0, 4.0]));
/// assert!(map.is_empty());
/// # Ok::<(), mc::PlainMapError>(())
/// ```
pub struct PlainMap<K: Pod + Send, V: Pod + Send> {
    /// Keeps the block (its reference in the pool).
    mem: PoolMem,
    /// The block's first byte (the header), and the process that holds
    /// `mem`'s reference.
    base: usize,
    home: Home,
    capacity: u64,
    geometry: Geometry,
    _type: Types<K, V>,
}

impl<K: Pod + Send, V: Pod + Send> fmt::Debug for PlainMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainMap")
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// A serde-able reference to a [`PlainMap`], to open it in another process.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct PlainMapDescr<K: Pod + Send, V: Pod + Send> {
    mem: PoolMemDescr,
    #[serde(skip)]
    _type: Types<K, V>,
}

impl<K: Pod + Send, V: Pod + Send> Clone for PlainMapDescr<K, V> {
    fn clone(&self) -> Self {
        PlainMapDescr {
            mem: self.mem.clone(),
            _type: PhantomData,
        }
    }
}

impl<K: Pod + Send, V: Pod + Send> fmt::Debug for PlainMapDescr<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainMapDescr")
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .field("mem", &self.mem)
            .finish()
    }
}

impl<K: Pod + Send, V: Pod + Send> PlainMapDescr<K, V> {
    /// Opens the map: a new handle on it, in this process.
    ///
    /// # Errors
    ///
    /// [`PlainMapError::Pool`] when the map is gone (its last handle was
    /// dropped) or the pool cannot be opened; [`PlainMapError::WrongType`]
    /// when it holds other types; [`PlainMapError::NotAMap`] when the
    /// memory is not a map.
    pub fn open(&self) -> Result<PlainMap<K, V>, PlainMapError> {
        PlainMap::from_mem(self.mem.open()?)
    }
}

impl<K: Pod + Send, V: Pod + Send> PlainMap<K, V> {
    /// The words of a key, of a value, and of a slot (a key and its value).
    const KEY_WORDS: usize = words_of::<K>();
    const VALUE_WORDS: usize = words_of::<V>();
    const ENTRY_WORDS: usize = if Self::KEY_WORDS + Self::VALUE_WORDS == 0 {
        1
    } else {
        Self::KEY_WORDS + Self::VALUE_WORDS
    };
    /// The words of a group: its header, its tags and its slots.
    const GROUP_WORDS: usize = 2 + SLOTS * Self::ENTRY_WORDS;

    /// Creates an empty map for `capacity` keys in `pool`.
    ///
    /// A map of `u64 → u64` takes about 24 bytes a key of its capacity
    /// (groups of 8 slots, filled to three quarters at most).
    ///
    /// # Errors
    ///
    /// [`PlainMapError::BadCapacity`] when `capacity` is 0 or too large;
    /// [`PlainMapError::Pool`] when the pool has no room for it.
    pub fn create(pool: &Pool, capacity: usize) -> Result<PlainMap<K, V>, PlainMapError> {
        let g = Geometry::of::<K, V>(capacity).ok_or(PlainMapError::BadCapacity { capacity })?;
        let mem = pool.alloc_mem(g.bytes)?;
        let h = header_of(&mem).ok_or(PlainMapError::NotAMap)?;
        // The block comes zeroed: every group empty (no tags), no journal.
        h.capacity.store(capacity as u64, Ordering::Relaxed);
        h.groups.store(g.groups, Ordering::Relaxed);
        h.group_words
            .store(Self::GROUP_WORDS as u64, Ordering::Relaxed);
        h.slots.store(SLOTS as u64, Ordering::Relaxed);
        h.key_words.store(Self::KEY_WORDS as u64, Ordering::Relaxed);
        h.value_words
            .store(Self::VALUE_WORDS as u64, Ordering::Relaxed);
        h.fingerprint
            .store(fingerprint::<(K, V)>(), Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        PlainMap::from_mem(mem)
    }

    /// Checks the map in `mem` and makes a handle of it.
    fn from_mem(mem: PoolMem) -> Result<PlainMap<K, V>, PlainMapError> {
        let h = header_of(&mem).ok_or(PlainMapError::NotAMap)?;
        if h.magic.load(Ordering::Acquire) != MAGIC {
            return Err(PlainMapError::NotAMap);
        }
        let found = h.fingerprint.load(Ordering::Relaxed);
        if found != fingerprint::<(K, V)>() {
            return Err(PlainMapError::WrongType {
                expected: fingerprint::<(K, V)>(),
                found,
            });
        }
        let capacity = h.capacity.load(Ordering::Relaxed);
        let g = usize::try_from(capacity)
            .ok()
            .and_then(Geometry::of::<K, V>)
            .ok_or(PlainMapError::NotAMap)?;
        let stored = (
            h.groups.load(Ordering::Relaxed),
            h.group_words.load(Ordering::Relaxed),
            h.slots.load(Ordering::Relaxed),
            h.key_words.load(Ordering::Relaxed),
            h.value_words.load(Ordering::Relaxed),
        );
        let want = (
            g.groups,
            Self::GROUP_WORDS as u64,
            SLOTS as u64,
            Self::KEY_WORDS as u64,
            Self::VALUE_WORDS as u64,
        );
        if stored != want || g.bytes > mem.len() {
            return Err(PlainMapError::NotAMap);
        }
        let (base, home) = mem.raw_parts();
        Ok(PlainMap {
            mem,
            base,
            home,
            capacity,
            geometry: g,
            _type: PhantomData,
        })
    }

    /// The map's descriptor, to open it in another process.
    pub fn descr(&self) -> PlainMapDescr<K, V> {
        PlainMapDescr {
            mem: self.mem.descr(),
            _type: PhantomData,
        }
    }

    /// The most keys the map holds.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The number of keys (a moment's view when others write).
    pub fn len(&self) -> usize {
        // (Never more than the capacity, whatever the word holds: other
        // processes can write the block.)
        self.parts()
            .0
            .len
            .load(Ordering::Acquire)
            .min(self.capacity) as usize
    }

    /// Whether the map holds no key (a moment's view).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The header, the journal's words and the groups' words.
    ///
    /// # Panics
    ///
    /// In a copy of the handle that `fork` made (as [`PoolMem::bytes`]):
    /// open the map by descriptor there.
    #[inline]
    fn parts(&self) -> Parts<'_> {
        self.home.check("PlainMap");
        let g = &self.geometry;
        let words = g.journal_words + g.groups as usize * Self::GROUP_WORDS;
        // SAFETY: `mem`, which this handle holds, keeps the block's pages
        // for the map while this process holds its reference (checked
        // above), and they stay mapped while the pool lives. The block
        // holds the header and then `words` words (checked against its
        // length when the handle was made, `from_mem`); it starts 64-byte
        // aligned. Every field of the header is an atomic or a raw lock, and
        // the words are atomics, which accept every bit pattern and other
        // processes' writes.
        let (h, all) = unsafe {
            (
                &*at::<MapHeader>(self.base),
                std::slice::from_raw_parts(at::<AtomicU64>(self.base + HEADER), words),
            )
        };
        let (journal, groups) = all.split_at(g.journal_words);
        (h, journal, groups)
    }

    /// Group `g`: its header and tag words (with every group's, at the
    /// front: a lookup reads them from a small, dense array) and its slots.
    #[inline]
    fn group<'a>(&self, groups: &'a [AtomicU64], g: u64) -> Group<'a> {
        let (meta, slots) = groups.split_at(2 * self.geometry.groups as usize);
        let g = g as usize;
        let start = g * SLOTS * Self::ENTRY_WORDS;
        Group {
            meta: &meta[2 * g..2 * g + 2],
            slots: &slots[start..start + SLOTS * Self::ENTRY_WORDS],
        }
    }

    /// The key's words and the value's words of slot `s` of a group.
    #[inline]
    fn entry<'a>(&self, group: Group<'a>, s: usize) -> (&'a [AtomicU64], &'a [AtomicU64]) {
        let start = s * Self::ENTRY_WORDS;
        let e = &group.slots[start..start + Self::KEY_WORDS + Self::VALUE_WORDS];
        e.split_at(Self::KEY_WORDS)
    }

    /// The home group of a key of hash `hash`.
    #[inline]
    fn home_of(&self, hash: u64) -> u64 {
        ((u128::from(hash) * u128::from(self.geometry.groups)) >> 64) as u64
    }

    #[inline]
    fn next(&self, g: u64) -> u64 {
        if g + 1 == self.geometry.groups {
            0
        } else {
            g + 1
        }
    }

    /// What a lookup of `key` needs.
    #[inline]
    fn probe(&self, key: &K) -> Probe<K> {
        let hash = hash_words((0..Self::KEY_WORDS).map(|i| word_of(key, i)));
        Probe {
            key: *key,
            home: self.home_of(hash),
            tag: 0x80 | (hash & 0x7f) as u8,
        }
    }

    /// The home group of the key in `words`.
    #[inline]
    fn home_of_words(&self, words: &[AtomicU64]) -> u64 {
        self.home_of(hash_words(words.iter().map(|w| w.load(Ordering::Relaxed))))
    }

    /// The slot of `group` that holds the key of `p`, looking at the slots
    /// whose tag is `p`'s in `tags`.
    #[inline]
    fn find_in(&self, group: Group<'_>, tags: u64, p: &Probe<K>) -> Option<usize> {
        let mut c = candidates(tags, p.tag);
        while c != 0 {
            let s = slot_of(c);
            c &= c - 1;
            let k = self.entry(group, s).0;
            if (0..Self::KEY_WORDS).all(|i| k[i].load(Ordering::Relaxed) == word_of(&p.key, i)) {
                return Some(s);
            }
        }
        None
    }

    /// The value of `key`, if the map holds it. Takes no lock.
    ///
    /// A lookup that meets a value being replaced waits for it (a few
    /// nanoseconds); one whose writer died waits for the writers' lock,
    /// whose next holder repairs the map.
    ///
    /// # Errors
    ///
    /// [`PlainMapError::Lock`] when the writers' lock had to be taken (its
    /// holder died in the middle of a change) and failed.
    pub fn get(&self, key: &K) -> Result<Option<V>, PlainMapError> {
        let (_, _, groups) = self.parts();
        let p = self.probe(key);
        let mut g = p.home;
        let mut spins = 0;
        for _ in 0..self.geometry.groups {
            let group = self.group(groups, g);
            let (found, h) = loop {
                let h = group.meta[0].load(Ordering::Acquire);
                if h & WRITING != 0 {
                    self.wait_for_writer(&mut spins)?;
                    continue;
                }
                // A tag set means its slot's words are whole (the tag is
                // stored after them, with release).
                let tags = group.meta[1].load(Ordering::Acquire);
                let found = self
                    .find_in(group, tags, &p)
                    .map(|s| read_value::<V>(self.entry(group, s).1));
                fence(Ordering::Acquire);
                if group.meta[0].load(Ordering::Relaxed) == h {
                    break (found, h);
                }
            };
            if found.is_some() || overflow(h) == 0 {
                return Ok(found);
            }
            g = self.next(g);
        }
        Ok(None)
    }

    /// Whether the map holds `key`. Takes no lock.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn contains_key(&self, key: &K) -> Result<bool, PlainMapError> {
        Ok(self.get(key)?.is_some())
    }

    /// A reader found a value being replaced: looks again, then yields,
    /// and at last waits for the writers' lock (so that a dead writer's
    /// replacement is finished by the repair).
    #[cold]
    fn wait_for_writer(&self, spins: &mut u32) -> Result<(), PlainMapError> {
        *spins += 1;
        if *spins < READ_SPINS / 2 {
            std::hint::spin_loop();
        } else if *spins < READ_SPINS {
            std::thread::yield_now();
        } else {
            *spins = 0;
            drop(self.lock_writer()?);
        }
        Ok(())
    }

    /// Takes the writers' lock, repairing what a dead writer left.
    fn lock_writer(&self) -> Result<Held<'_>, PlainMapError> {
        let (h, _, _) = self.parts();
        lock_repairing(&h.writer, None, || self.repair()).map_err(PlainMapError::Lock)
    }

    /// Where the key of `p` is, or where it would go; under the writers'
    /// lock.
    #[inline(always)]
    fn place(&self, groups: &[AtomicU64], p: &Probe<K>) -> Place {
        let mut free = None;
        let mut g = p.home;
        let mut searching = true;
        for _ in 0..self.geometry.groups {
            let group = self.group(groups, g);
            let tags = group.meta[1].load(Ordering::Relaxed);
            if searching {
                if let Some(s) = self.find_in(group, tags, p) {
                    return Place::Found(g, s);
                }
                searching = overflow(group.meta[0].load(Ordering::Relaxed)) != 0;
            }
            let empty = !tags & TAG_BIT;
            if free.is_none() && empty != 0 {
                free = Some((g, slot_of(empty)));
            }
            if !searching && free.is_some() {
                break;
            }
            g = self.next(g);
        }
        Place::Missing(free)
    }

    /// Stores a header word of a group; `Release`, so that what was
    /// written before it is seen with it.
    #[inline]
    fn publish(group: Group<'_>, h: u64) {
        group.meta[0].store(h, Ordering::Release);
    }

    /// Moves the overflow count of the groups from `from` up to (not
    /// including) `to` by one, up or down.
    #[inline]
    fn count_overflow(&self, groups: &[AtomicU64], from: u64, to: u64, up: bool) {
        let mut g = from;
        while g != to {
            let group = self.group(groups, g);
            let h = group.meta[0].load(Ordering::Relaxed);
            let n = overflow(h);
            // A count at its maximum sticks there: the true count is not
            // known any more, and a count too high only lengthens lookups.
            if n != OVERFLOW_MAX {
                let n = if up { n + 1 } else { n.saturating_sub(1) };
                Self::publish(group, next_version(with_overflow(h, n)));
            }
            g = self.next(g);
        }
    }

    /// Adds the key of `p` with `value` in slot `s` of group `g`, found
    /// free on the key's probe; under the writers' lock.
    #[inline]
    fn add_at(&self, parts: Parts<'_>, g: u64, s: usize, p: &Probe<K>, key: &K, value: &V) {
        let (h, _, groups) = parts;
        // Passed groups count the key before it can be found.
        self.count_overflow(groups, p.home, g, true);
        let group = self.group(groups, g);
        // The slot's tag is 0: a reader reads these words only with a tag
        // of an earlier key, and the removal of that key moved the
        // group's version on (the fence orders that store before these).
        fence(Ordering::Release);
        let (k, v) = self.entry(group, s);
        write_value(k, key);
        write_value(v, value);
        // The key is found from here on.
        let tags = group.meta[1].load(Ordering::Relaxed);
        group.meta[1].store(tags | (u64::from(p.tag) << (8 * s)), Ordering::Release);
        let n = h.len.load(Ordering::Relaxed);
        h.len.store(n + 1, Ordering::Release);
    }

    /// Removes the key in slot `s` of group `g`; under the writers' lock.
    #[inline]
    fn remove_at(&self, parts: Parts<'_>, g: u64, s: usize) {
        let (h, _, groups) = parts;
        let group = self.group(groups, g);
        let home = self.home_of_words(self.entry(group, s).0);
        // Gone for every reader from here on; the version moves on before
        // the slot is written again.
        let tags = group.meta[1].load(Ordering::Relaxed);
        group.meta[1].store(tags & !(0xff << (8 * s)), Ordering::Release);
        let before = group.meta[0].load(Ordering::Relaxed);
        Self::publish(group, next_version(before));
        // The groups it passed count it no more.
        self.count_overflow(groups, home, g, false);
        let n = h.len.load(Ordering::Relaxed);
        h.len.store(n.saturating_sub(1), Ordering::Release);
    }

    /// Replaces the value in slot `s` of group `g` with `words` (a value's
    /// words), as a sequence lock's writer: readers of the group wait from
    /// the `WRITING` store to the next version.
    #[inline]
    fn write_in_place(&self, group: Group<'_>, s: usize, words: impl Iterator<Item = u64>) {
        let before = group.meta[0].load(Ordering::Relaxed);
        group.meta[0].store(before | WRITING, Ordering::Relaxed);
        fence(Ordering::Release);
        for (w, x) in self.entry(group, s).1.iter().zip(words) {
            w.store(x, Ordering::Relaxed);
        }
        Self::publish(group, next_version(before));
    }

    /// Replaces the value in slot `s` of group `g` by `value`, through the
    /// journal; under the writers' lock.
    #[inline]
    fn replace_at(&self, parts: Parts<'_>, g: u64, s: usize, value: &V) {
        let (h, journal, groups) = parts;
        write_value(journal, value);
        h.journal.store(journal_code(g, s), Ordering::Release);
        self.write_in_place(self.group(groups, g), s, value_words(value));
        h.journal.store(0, Ordering::Release);
    }

    /// Maps `key` to `value`; the value it had, if any.
    ///
    /// # Errors
    ///
    /// [`PlainMapError::Full`] when `key` is new and the map holds its
    /// capacity of keys (nothing changed); [`PlainMapError::Lock`] when the
    /// writers' lock failed.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, PlainMapError> {
        let mut old = None;
        self.change(&key, |v| {
            old = v;
            Some(value)
        })?;
        Ok(old)
    }

    /// Removes `key`; the value it had, if any.
    ///
    /// # Errors
    ///
    /// [`PlainMapError::Lock`] when the writers' lock failed.
    pub fn remove(&self, key: &K) -> Result<Option<V>, PlainMapError> {
        let mut old = None;
        self.change(key, |v| {
            old = v;
            None
        })?;
        Ok(old)
    }

    /// Reads, changes and writes `key`'s value under the writers' lock:
    /// `f` gets the value (`None` when the map does not hold the key) and
    /// returns the new one (`None` removes the key). Returns what `f`
    /// returned. Other writers wait while `f` runs, so keep it short.
    /// Inside `f`, [`get`](Self::get), [`contains_key`](Self::contains_key)
    /// and [`len`](Self::len) work; every other call of the map takes the
    /// writers' lock, which this thread holds
    /// ([`LockError::Deadlock`](crate::sync::LockError::Deadlock)).
    ///
    /// # Errors
    ///
    /// [`PlainMapError::Full`] when `f` gives a new key a value and the map
    /// holds its capacity of keys (nothing changed);
    /// [`PlainMapError::Lock`] when the writers' lock failed.
    pub fn update(
        &self,
        key: &K,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<Option<V>, PlainMapError> {
        let mut new = None;
        self.change(key, |v| {
            new = f(v);
            new
        })?;
        Ok(new)
    }

    /// The change of `key` that `f` decides from its value: `None` removes
    /// it, `Some(v)` maps it to `v`.
    #[inline(always)]
    fn change(&self, key: &K, f: impl FnOnce(Option<V>) -> Option<V>) -> Result<(), PlainMapError> {
        let p = self.probe(key);
        // The key's home group is read before the lock, so that its cache
        // misses come while another writer may hold the lock, not while
        // this one does.
        let (_, _, groups) = self.parts();
        let home = self.group(groups, p.home);
        std::hint::black_box(self.find_in(home, home.meta[1].load(Ordering::Relaxed), &p));
        let held = self.lock_writer()?;
        let parts = self.parts();
        let (h, _, groups) = parts;
        match self.place(groups, &p) {
            Place::Found(g, s) => {
                let old = read_value::<V>(self.entry(self.group(groups, g), s).1);
                let new = f(Some(old));
                // `f` may have forked: a copy of this call in a child holds
                // no lock, and must not write.
                self.home.check("PlainMap");
                match new {
                    Some(v) => self.replace_at(parts, g, s, &v),
                    None => self.remove_at(parts, g, s),
                }
            }
            Place::Missing(free) => {
                let new = f(None);
                self.home.check("PlainMap");
                if let Some(v) = new {
                    match free {
                        Some((g, s)) if h.len.load(Ordering::Relaxed) < self.capacity => {
                            self.add_at(parts, g, s, &p, key, &v)
                        }
                        _ => {
                            return Err(PlainMapError::Full {
                                capacity: self.capacity(),
                            })
                        }
                    }
                }
            }
        }
        drop(held);
        Ok(())
    }

    /// Removes every key. Readers meanwhile see each key go at its own
    /// moment, not all at once.
    ///
    /// # Errors
    ///
    /// [`PlainMapError::Lock`] when the writers' lock failed.
    pub fn clear(&self) -> Result<(), PlainMapError> {
        let held = self.lock_writer()?;
        let (h, _, groups) = self.parts();
        // Every tag first, then every count: a writer that dies in the
        // first pass leaves counts that still reach the keys not cleared
        // yet (a key a reader saw go stays gone after the repair), and one
        // that dies in the second leaves no key.
        self.clear_tags(groups, 0..self.geometry.groups);
        self.clear_counts(groups, 0..self.geometry.groups);
        h.len.store(0, Ordering::Release);
        drop(held);
        Ok(())
    }

    /// Clears the tags of `range`'s groups: their keys are gone.
    fn clear_tags(&self, groups: &[AtomicU64], range: std::ops::Range<u64>) {
        for g in range {
            let group = self.group(groups, g);
            if group.meta[1].load(Ordering::Relaxed) != 0 {
                group.meta[1].store(0, Ordering::Release);
                let before = group.meta[0].load(Ordering::Relaxed);
                Self::publish(group, next_version(before));
            }
        }
    }

    /// Sets the overflow counts of `range`'s groups to 0 (after
    /// [`clear_tags`](Self::clear_tags) of every group).
    fn clear_counts(&self, groups: &[AtomicU64], range: std::ops::Range<u64>) {
        for g in range {
            let group = self.group(groups, g);
            let before = group.meta[0].load(Ordering::Relaxed);
            if overflow(before) != 0 {
                Self::publish(group, next_version(with_overflow(before, 0)));
            }
        }
    }

    /// Removes every key for which `f` returns `false`, under the writers'
    /// lock; the number removed. Readers meanwhile see each key go at its
    /// own moment. Inside `f`, the map's calls work as inside
    /// [`update`](Self::update)'s closure.
    ///
    /// # Errors
    ///
    /// [`PlainMapError::Lock`] when the writers' lock failed.
    pub fn retain(&self, mut f: impl FnMut(&K, &V) -> bool) -> Result<usize, PlainMapError> {
        let held = self.lock_writer()?;
        let parts = self.parts();
        let mut removed = 0;
        for g in 0..self.geometry.groups {
            let group = self.group(parts.2, g);
            let mut occupied = group.meta[1].load(Ordering::Relaxed) & TAG_BIT;
            while occupied != 0 {
                let s = slot_of(occupied);
                occupied &= occupied - 1;
                let (k, v) = self.entry(group, s);
                let keep = f(&read_value::<K>(k), &read_value::<V>(v));
                // (As in `change`: `f` may have forked.)
                self.home.check("PlainMap");
                if !keep {
                    self.remove_at(parts, g, s);
                    removed += 1;
                }
            }
        }
        drop(held);
        Ok(removed)
    }

    /// Every key and its value, as they were at one moment (under the
    /// writers' lock), in no particular order.
    ///
    /// # Errors
    ///
    /// [`PlainMapError::Lock`] when the writers' lock failed.
    pub fn entries(&self) -> Result<Vec<(K, V)>, PlainMapError> {
        let held = self.lock_writer()?;
        let (_, _, groups) = self.parts();
        let mut out = Vec::with_capacity(self.len());
        for g in 0..self.geometry.groups {
            let group = self.group(groups, g);
            let mut occupied = group.meta[1].load(Ordering::Relaxed) & TAG_BIT;
            while occupied != 0 {
                let s = slot_of(occupied);
                occupied &= occupied - 1;
                let (k, v) = self.entry(group, s);
                out.push((read_value::<K>(k), read_value::<V>(v)));
            }
        }
        drop(held);
        Ok(out)
    }

    /// Puts right what a writer that died holding the lock left: finishes
    /// a replacement from the journal, and counts every group's overflow
    /// and the length again from the keys. Under the writers' lock.
    #[cold]
    #[inline(never)]
    fn repair(&self) {
        let (h, journal, groups) = self.parts();
        let at = h.journal.load(Ordering::Acquire);
        if at != 0 {
            let (g, s) = journal_slot(at);
            if g < self.geometry.groups && s < SLOTS {
                let words: Vec<u64> = journal[..Self::VALUE_WORDS]
                    .iter()
                    .map(|w| w.load(Ordering::Relaxed))
                    .collect();
                self.write_in_place(self.group(groups, g), s, words.into_iter());
            }
            h.journal.store(0, Ordering::Release);
        }
        let n = self.geometry.groups as usize;
        let mut counts = vec![0u64; n];
        let mut len = 0;
        for g in 0..self.geometry.groups {
            let group = self.group(groups, g);
            let mut occupied = group.meta[1].load(Ordering::Relaxed) & TAG_BIT;
            while occupied != 0 {
                let s = slot_of(occupied);
                occupied &= occupied - 1;
                len += 1;
                let mut x = self.home_of_words(self.entry(group, s).0);
                while x != g {
                    counts[x as usize] += 1;
                    x = self.next(x);
                }
            }
        }
        for g in 0..self.geometry.groups {
            let group = self.group(groups, g);
            let before = group.meta[0].load(Ordering::Relaxed);
            let want = counts[g as usize].min(OVERFLOW_MAX);
            // Every version moves on (a dead removal may have cleared a
            // tag without it, and its slot is written again next), and a
            // stray `WRITING` goes (a replacement that died after it, with
            // its journal's word still to come, left its value untouched).
            Self::publish(group, next_version(with_overflow(before, want)));
        }
        h.len.store(len, Ordering::Release);
    }
}

/// The header of the map in `mem`, when the block can hold one.
fn header_of(mem: &PoolMem) -> Option<&MapHeader> {
    // SAFETY: every field of `MapHeader` is an atomic or a raw lock (made
    // of one).
    unsafe { mem.field::<MapHeader>(0) }
}

#[cfg(test)]
mod tests;
