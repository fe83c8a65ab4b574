//! What the structures of plain values in pool memory ([`Ring`](super::Ring),
//! [`PlainMap`](super::PlainMap)) share: a type's fingerprint, a value as
//! 64-bit atomic words, and a robust lock whose next holder repairs what a
//! dead holder left.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytemuck::Pod;

use crate::sync::raw::{Acquired, LockError, RawMutex};

/// A fingerprint of `T`: its name, size and alignment.
pub(crate) fn fingerprint<T>() -> u64 {
    let fnv = |h: u64, b: u8| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    let h = std::any::type_name::<T>()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, fnv);
    let h = std::mem::size_of::<T>()
        .to_le_bytes()
        .into_iter()
        .fold(h, fnv);
    std::mem::align_of::<T>()
        .to_le_bytes()
        .into_iter()
        .fold(h, fnv)
}

/// The number of 64-bit words a `T` takes.
pub(crate) const fn words_of<T>() -> usize {
    std::mem::size_of::<T>().div_ceil(8)
}

/// Word `i` of `v`'s bytes (below `words_of::<T>()`), the last one padded
/// with zeros.
#[inline(always)]
pub(crate) fn word_of<T: Pod>(v: &T, i: usize) -> u64 {
    let bytes = bytemuck::bytes_of(v);
    let start = 8 * i;
    let end = (start + 8).min(bytes.len());
    let mut b = [0u8; 8];
    b[..end - start].copy_from_slice(&bytes[start..end]);
    u64::from_ne_bytes(b)
}

/// The words of `v`'s bytes, in order ([`word_of`] each).
#[inline]
pub(crate) fn value_words<T: Pod>(v: &T) -> impl Iterator<Item = u64> + '_ {
    (0..words_of::<T>()).map(move |i| word_of(v, i))
}

/// Copies `v` into `words` (`words_of::<T>()` of them).
#[inline]
pub(crate) fn write_value<T: Pod>(words: &[AtomicU64], v: &T) {
    for (w, x) in words.iter().zip(value_words(v)) {
        w.store(x, Ordering::Relaxed);
    }
}

/// The value in `words` (`words_of::<T>()` of them). Any bytes make a
/// `T` (it is `Pod`); a reader that races with a writer checks a sequence
/// afterwards.
#[inline]
pub(crate) fn read_value<T: Pod>(words: &[AtomicU64]) -> T {
    let mut v = T::zeroed();
    for (w, chunk) in words
        .iter()
        .zip(bytemuck::bytes_of_mut(&mut v).chunks_mut(8))
    {
        let b = w.load(Ordering::Relaxed).to_ne_bytes();
        let n = chunk.len();
        chunk.copy_from_slice(&b[..n]);
    }
    v
}

/// Holds a structure's lock; released on drop.
pub(crate) struct Held<'a>(&'a RawMutex);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // This thread took it, and nothing in between can release it. A
        // panic while it was held leaves it to the next holder's repair.
        let _ = if std::thread::panicking() {
            self.0.abandon()
        } else {
            self.0.unlock()
        };
    }
}

/// Takes `m` (waiting until `deadline` if there is one). When its holder
/// died, `repair` first puts right what it left half done.
pub(crate) fn lock_repairing(
    m: &RawMutex,
    deadline: Option<Instant>,
    repair: impl FnOnce(),
) -> Result<Held<'_>, LockError> {
    let got = match deadline {
        None => m.lock(),
        Some(d) => m.lock_timeout(d.saturating_duration_since(Instant::now())),
    }?;
    let held = Held(m);
    if got == Acquired::OwnerDied {
        repair();
        m.mark_consistent()?;
    }
    Ok(held)
}
