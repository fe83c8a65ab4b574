//! The layout of a `PlainMap`'s block: the header, the group words and
//! their bits, the journal's word, and what a writer finds of a key.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64};

use bytemuck::Pod;

use crate::in_shared::in_shared;
use crate::sync::raw::RawMutex;

use super::PlainMap;
use crate::structures::KeyHasher;

pub(super) const MAGIC: u64 = u64::from_le_bytes(*b"mc-pmap1");

/// A group's header word: its overflow count, the keys stored past this
/// group whose probe passed it (bits 0..16; it sticks at its maximum, which
/// only makes lookups go on), ...
pub(super) const OVERFLOW_MAX: u64 = 0xffff;
/// ... a bit set while a value of the group is replaced in place, ...
pub(super) const WRITING: u64 = 1 << 16;
/// ... and its version (bits 17..64, wrapping).
pub(super) const VERSION: u64 = 1 << 17;

/// A group's tag word: a byte a slot, `0x80` and 7 bits of the key's hash
/// when it holds a key, 0 when it is free.
pub(super) const TAG_BIT: u64 = 0x8080_8080_8080_8080;
pub(super) const BYTE_ONES: u64 = 0x0101_0101_0101_0101;

/// The slots of a group (the bytes of its tag word).
pub(super) const SLOTS: usize = 8;

/// How many times a reader looks again at a group whose value is being
/// replaced before it waits for the writers' lock (which repairs what a
/// dead writer left).
pub(super) const READ_SPINS: u32 = 200;

in_shared! {
    /// The front of a map's block: its geometry, then the writers' line.
    pub(super) struct MapHeader {
        // Written once, at creation (`magic` last).
        pub(super) magic: AtomicU64,
        pub(super) capacity: AtomicU64,
        pub(super) groups: AtomicU64,
        pub(super) group_words: AtomicU64,
        pub(super) slots: AtomicU64,
        pub(super) key_words: AtomicU64,
        pub(super) value_words: AtomicU64,
        pub(super) fingerprint: AtomicU64,
        // The writers': their lock, the number of keys, and the slot whose
        // value is being replaced from the journal (`journal_code`; 0 when
        // none).
        pub(super) writer: RawMutex,
        _pad0: AtomicU32,
        pub(super) len: AtomicU64,
        pub(super) journal: AtomicU64,
        _pad1: [AtomicU64; 5],
    }
}

pub(super) const HEADER: usize = std::mem::size_of::<MapHeader>();
const _: () = assert!(HEADER == 128);

/// The shape of a map of `K → V` that holds `capacity` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    pub(super) groups: u64,
    /// The journal's words: a value's, rounded up to a cache line.
    pub(super) journal_words: usize,
    /// The whole block.
    pub(super) bytes: usize,
}

impl Geometry {
    pub(super) fn of<K: Pod + Send, V: Pod + Send>(capacity: usize) -> Option<Geometry> {
        let slots = SLOTS;
        // At most three keys in four slots: probes stay short.
        let groups = capacity.checked_mul(4)?.div_ceil(3 * slots).max(1);
        let journal_words = PlainMap::<K, V>::VALUE_WORDS.next_multiple_of(8);
        let bytes = groups
            .checked_mul(PlainMap::<K, V>::GROUP_WORDS)?
            .checked_add(journal_words)?
            .checked_mul(8)?
            .checked_add(HEADER)?;
        (1..1 << 48).contains(&capacity).then_some(Geometry {
            groups: groups as u64,
            journal_words,
            bytes,
        })
    }
}

/// The hash of a key's words: the same in every process.
#[inline]
pub(super) fn hash_words(words: impl Iterator<Item = u64>) -> u64 {
    use std::hash::Hasher;
    let mut h = KeyHasher::new();
    for w in words {
        h.write_u64(w);
    }
    h.finish()
}

/// The journal's word for slot `s` of group `g` (never 0).
#[inline]
pub(super) fn journal_code(g: u64, s: usize) -> u64 {
    g * (SLOTS as u64 + 1) + s as u64 + 1
}

/// The group and slot of a nonzero journal word.
pub(super) fn journal_slot(code: u64) -> (u64, usize) {
    let c = code - 1;
    (c / (SLOTS as u64 + 1), (c % (SLOTS as u64 + 1)) as usize)
}

/// A group's overflow count.
#[inline]
pub(super) fn overflow(h: u64) -> u64 {
    h & OVERFLOW_MAX
}

/// `h` with its version moved on and `WRITING` cleared.
#[inline]
pub(super) fn next_version(h: u64) -> u64 {
    (h & !WRITING).wrapping_add(VERSION)
}

/// `h` with its overflow count set to `n` (at most the maximum).
#[inline]
pub(super) fn with_overflow(h: u64, n: u64) -> u64 {
    (h & !OVERFLOW_MAX) | n.min(OVERFLOW_MAX)
}

/// The slots of a tag word that may hold a key of tag `tag`: a bit 7 of
/// each such byte (and, rarely, of a byte above one: every candidate's key
/// is compared).
#[inline]
pub(super) fn candidates(tags: u64, tag: u8) -> u64 {
    let x = tags ^ (BYTE_ONES * u64::from(tag));
    x.wrapping_sub(BYTE_ONES) & !x & TAG_BIT
}

/// The slot of a bit of [`candidates`] or of the occupied slots.
#[inline]
pub(super) fn slot_of(bits: u64) -> usize {
    (bits.trailing_zeros() / 8) as usize
}

/// A group's words: its header and tag words, and its slots.
#[derive(Clone, Copy)]
pub(super) struct Group<'a> {
    pub(super) meta: &'a [AtomicU64],
    pub(super) slots: &'a [AtomicU64],
}

/// A key about to be looked for: the key, its home group and its tag.
pub(super) struct Probe<K> {
    pub(super) key: K,
    pub(super) home: u64,
    pub(super) tag: u8,
}

/// The key and value types of a handle or descriptor (neither held).
pub(super) type Types<K, V> = PhantomData<fn(K, V) -> (K, V)>;

/// A map's header, its journal's words and its groups' words.
pub(super) type Parts<'a> = (&'a MapHeader, &'a [AtomicU64], &'a [AtomicU64]);

/// Where a writer found a key, or where it would go.
pub(super) enum Place {
    /// Group and slot of the key.
    Found(u64, usize),
    /// Not there: the first group on its probe with a free slot, and that
    /// slot (`None` when no group has one).
    Missing(Option<(u64, usize)>),
}
