//! `SBuffer`: a shared byte buffer with eternal positions (Netmulticore's
//! `Netmcore_buffer`).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{compiler_fence, Ordering};

use super::{pin_at, structure_common, Parts, Result, StructureError};
use crate::heap::{HeapError, HeapOptions, Mutator, Poison, ReadGuard};
use crate::pool::Pool;
use crate::value::{Shared, SharedVec, Tuple5};

/// The default size of a buffer's blocks: 64 KiB.
pub const DEFAULT_BLOCK_SIZE: usize = 64 * 1024;

/// `(blocks, offset of the first byte in blocks[0], start, len, block size)`.
type BufData = (Vec<Vec<u8>>, usize, usize, usize, usize);
type BufRepr = Tuple5<SharedVec<SharedVec<u8>>, usize, usize, usize, usize>;

/// A shared byte buffer with a header `H`. Bytes are appended at the end
/// and deleted from the head; every byte keeps its **eternal position**:
/// the first byte ever appended is at 0, and deleting from the head moves
/// [`start`](SBuffer::start) forward without renumbering the rest.
///
/// The bytes are kept in blocks of a fixed size (64 KiB by default), each
/// allocated once with its full capacity: appends `memcpy` into the last
/// block and never move earlier bytes; deleting from the head drops whole
/// blocks; a buffer emptied by deletion reuses its last block.
///
/// ```
/// let pool = mc::Pool::create(16 << 20)?;
/// let b = mc::SBuffer::create(&pool, &())?;
/// b.push_bytes(b"hello, world")?;
/// b.delete_head(7)?;
/// assert_eq!((b.start()?, b.len()?), (7, 5));
/// assert_eq!(b.sub(7, 5)?, b"world");
/// let mut two = [0u8; 2];
/// b.blit(10, &mut two)?;
/// assert_eq!(&two, b"ld");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SBuffer<H: Shared = ()> {
    parts: Parts<BufData, H>,
}

structure_common!(SBuffer, SBufferDescr, [], BufData, "an [`SBuffer`]");

/// A buffer read in place under its shared lock ([`SBuffer::read`]).
pub struct BufferView<'a> {
    g: ReadGuard<'a, BufData>,
}

impl fmt::Debug for BufferView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("BufferView");
        // A copy made by `fork` does not read.
        if self.g.is_here() {
            d.field("start", &self.start()).field("len", &self.len());
        }
        d.finish_non_exhaustive()
    }
}

impl BufferView<'_> {
    /// The position of the first byte.
    pub fn start(&self) -> usize {
        self.g.2
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.g.3
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.g.3 == 0
    }

    /// One past the position of the last byte.
    pub fn end(&self) -> usize {
        self.g.2.saturating_add(self.g.3)
    }

    /// The bytes `pos..pos + len` as a sequence of slices (one per block
    /// touched), in place (Netmulticore's `access`).
    ///
    /// # Errors
    ///
    /// [`StructureError::BadRange`] when `pos..pos + len` is not in the buffer.
    /// [`StructureError::Inconsistent`] for a buffer whose blocks were
    /// broken through [`SBuffer::heap`].
    pub fn chunks(&self, pos: usize, len: usize) -> Result<impl Iterator<Item = &[u8]> + '_> {
        chunks(&self.g, pos, len)
    }

    /// Copies the bytes from `pos` into `dst` (all of `dst`).
    ///
    /// # Errors
    ///
    /// [`StructureError::BadRange`] when `pos..pos + dst.len()` is not in the
    /// buffer.
    /// [`StructureError::Inconsistent`] for a buffer whose blocks were
    /// broken through [`SBuffer::heap`].
    pub fn blit(&self, pos: usize, dst: &mut [u8]) -> Result<()> {
        let mut off = 0;
        for c in chunks(&self.g, pos, dst.len())? {
            dst[off..off + c.len()].copy_from_slice(c);
            off += c.len();
        }
        Ok(())
    }
}

/// Checks what the buffer's arithmetic relies on: blocks of some bytes,
/// and positions that do not overflow. Only [`SBuffer::heap`] can break it.
fn check(t: &BufRepr) -> Result<()> {
    if t.4 == 0 || t.2.checked_add(t.3).is_none() || t.1.checked_add(t.3).is_none() {
        return Err(StructureError::Inconsistent {
            what: "a buffer whose block size or positions do not fit",
        });
    }
    Ok(())
}

fn chunks(t: &BufRepr, pos: usize, len: usize) -> Result<impl Iterator<Item = &[u8]> + '_> {
    check(t)?;
    let (start, n, bs) = (t.2, t.3, t.4);
    let end = pos.checked_add(len);
    if pos < start || end.is_none_or(|e| e > start + n) {
        return Err(StructureError::BadRange {
            pos,
            len,
            start,
            end: start + n,
        });
    }
    let first = t.1 + (pos - start);
    let blocks = &t.0;
    // Every block touched holds the bytes asked for (checked first, so the
    // iterator below cannot index out of bounds).
    let (mut off, mut left) = (first, len);
    while left > 0 {
        let (b, i) = (off / bs, off % bs);
        let k = (bs - i).min(left);
        if blocks.get(b).is_none_or(|blk| blk.len() < i + k) {
            return Err(StructureError::Inconsistent {
                what: "a buffer whose blocks miss some of its bytes",
            });
        }
        off += k;
        left -= k;
    }
    let (mut off, mut left) = (first, len);
    Ok(std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let (b, i) = (off / bs, off % bs);
        let k = (bs - i).min(left);
        let s = &blocks[b][i..i + k];
        off += k;
        left -= k;
        Some(s)
    }))
}

impl<H: Shared> SBuffer<H> {
    /// Creates an empty buffer with blocks of [`DEFAULT_BLOCK_SIZE`]
    /// (`Netmcore_buffer.create`).
    ///
    /// # Errors
    ///
    /// As [`with_block_size`](Self::with_block_size).
    pub fn create(pool: &Pool, header: &H) -> Result<Self> {
        Self::with_block_size(pool, header, DEFAULT_BLOCK_SIZE)
    }

    /// Creates an empty buffer with blocks of `block_size` bytes (at least
    /// 64).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with [`HeapError::OutOfMemory`] when a block
    /// would not fit in the pool, and with the errors of
    /// [`Heap::create`](crate::Heap::create).
    pub fn with_block_size(pool: &Pool, header: &H, block_size: usize) -> Result<Self> {
        let bs = block_size.max(64);
        let stats = pool.stats();
        if bs > stats.max_size {
            return Err(HeapError::OutOfMemory {
                requested: bs,
                available: stats.free,
            }
            .into());
        }
        let chunk = bs.saturating_mul(4).min(stats.max_size).max(64 * 1024);
        let opts = HeapOptions::new().chunk_size(chunk);
        Ok(SBuffer {
            parts: Parts::create(pool, header, &(Vec::new(), 0, 0, 0, bs), opts)?,
        })
    }

    /// Appends a copy of `bytes` (`add_bytes`, `add_string`,
    /// `add_sub_string`). Returns the position of the first byte added.
    /// All the blocks needed are allocated before any byte is copied: when
    /// the pool is full, the buffer is left as it was.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::modify`](crate::Heap::modify), with [`HeapError::OutOfMemory`]
    /// when the pool has no room for the blocks (the buffer is left as it was),
    /// or with [`HeapError::TooLarge`] when the length overflows.
    /// [`StructureError::Inconsistent`] for a buffer whose blocks or
    /// positions were broken through [`heap`](Self::heap).
    pub fn push_bytes(&self, bytes: &[u8]) -> Result<usize> {
        self.parts.modify_try(|m, mut t| {
            check(&t)?;
            heal(m, t.as_mut())?;
            let (mut blocks, _, start, mut len, bs) = t.project();
            let bs = *bs;
            let pos = *start + *len;
            let new_len = len.checked_add(bytes.len()).ok_or(HeapError::TooLarge)?;
            let nb = blocks.len();
            let room = blocks.last().map_or(0, |b| bs.saturating_sub(b.len()));
            let need = bytes.len().saturating_sub(room).div_ceil(bs);
            if room > 0 && !bytes.is_empty() {
                // The last block may have been copied without its spare
                // room (a modification of a pinned buffer copies it).
                m.reserve(pin_at(blocks.as_mut(), nb - 1)?, room.min(bytes.len()))?;
            }
            if need > 0 {
                if let Err(e) = add_blocks(m, blocks.as_mut(), need, bs) {
                    // Drop the blocks added so far (garbage now).
                    m.truncate(blocks, nb);
                    return Err(e.into());
                }
            }
            // Copy: every block written to has its full room already, so
            // nothing is allocated (and nothing can fail) from here on.
            let mut rest = bytes;
            let mut b = nb.saturating_sub(1);
            while !rest.is_empty() {
                let mut block = pin_at(blocks.as_mut(), b)?;
                let k = bs.saturating_sub(block.len()).min(rest.len());
                if k > 0 {
                    m.extend_from_slice::<u8>(block.as_mut(), &rest[..k])?;
                    rest = &rest[k..];
                }
                b += 1;
            }
            // The bytes are in their blocks before they count.
            compiler_fence(Ordering::SeqCst);
            *len.as_mut().get_mut() = new_len;
            Ok(pos)
        })
    }

    /// The position of the first byte (`start`): how many bytes were ever
    /// deleted from the head.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn start(&self) -> Result<usize> {
        Ok(self.parts.data.read()?.2)
    }

    /// The number of bytes (`length`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn len(&self) -> Result<usize> {
        Ok(self.parts.data.read()?.3)
    }

    /// Whether the buffer is empty.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A copy of the bytes `pos..pos + len` (`sub`).
    ///
    /// # Errors
    ///
    /// [`StructureError::BadRange`] when `pos..pos + len` is not in the buffer;
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    /// [`StructureError::Inconsistent`] for a buffer whose blocks or
    /// positions were broken through [`heap`](Self::heap).
    pub fn sub(&self, pos: usize, len: usize) -> Result<Vec<u8>> {
        let g = self.parts.data.read()?;
        // The range is checked before the copy is allocated.
        let chunks = chunks(&g, pos, len)?;
        let mut out = Vec::with_capacity(len);
        for c in chunks {
            out.extend_from_slice(c);
        }
        Ok(out)
    }

    /// Copies the bytes from `pos` into `dst`, filling all of it
    /// (`blit_to_bytes`).
    ///
    /// # Errors
    ///
    /// [`StructureError::BadRange`] when `pos..pos + dst.len()` is not in the
    /// buffer; [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    /// [`StructureError::Inconsistent`] for a buffer whose blocks or
    /// positions were broken through [`heap`](Self::heap).
    pub fn blit(&self, pos: usize, dst: &mut [u8]) -> Result<()> {
        BufferView {
            g: self.parts.data.read()?,
        }
        .blit(pos, dst)
    }

    /// The buffer in place, under the shared lock (`access`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    /// [`StructureError::Inconsistent`] for a buffer whose blocks or
    /// positions were broken through [`heap`](Self::heap).
    pub fn read(&self) -> Result<BufferView<'_>> {
        let g = self.parts.data.read()?;
        check(&g)?;
        Ok(BufferView { g })
    }

    /// Deletes `n` bytes from the head (`delete_hd`).
    ///
    /// # Errors
    ///
    /// [`StructureError::BadRange`] when the buffer holds fewer than `n` bytes;
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    /// [`StructureError::Inconsistent`] for a buffer whose blocks or
    /// positions were broken through [`heap`](Self::heap).
    pub fn delete_head(&self, n: usize) -> Result<()> {
        self.parts.modify_try(|m, mut t| {
            check(&t)?;
            heal(m, t.as_mut())?;
            if n > t.3 {
                return Err(StructureError::BadRange {
                    pos: t.2,
                    len: n,
                    start: t.2,
                    end: t.2 + t.3,
                });
            }
            take_head(m, t, n)
        })
    }

    /// Deletes every byte (`clear`); [`start`](Self::start) moves to the
    /// end.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    /// [`StructureError::Inconsistent`] for a buffer whose blocks or
    /// positions were broken through [`heap`](Self::heap).
    pub fn clear(&self) -> Result<()> {
        // (No heal first: emptying needs none, and it makes a buffer whose
        // bytes went missing whole again.)
        self.parts.modify_try(|m, t| {
            check(&t)?;
            let n = t.3;
            take_head(m, t, n)
        })
    }

    /// Makes the buffer usable again after a process died in the middle of
    /// a change: every byte appended before the death is there, at its
    /// position, and the change in flight is there whole or not at all.
    /// Returns why the buffer's heaps were poisoned (`None` when they were
    /// not).
    ///
    /// A death inside a change poisons the buffer: every operation then
    /// fails with [`HeapError::Poisoned`] until this is called. It
    /// [recovers](crate::Heap::recover) the heaps (which checks that their
    /// values are well formed) and, under the same lock, cuts off the bytes
    /// and blocks that an append in flight left past the end (every change
    /// also does so first, so a buffer whose heap alone was recovered is
    /// whole again at its next change), and empties the blocks that hold
    /// only deleted bytes, which a deletion in a full pool was emptying.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::recover`](crate::Heap::recover) (a heap whose values are
    /// damaged stays poisoned: destroy the buffer and build it again) and of
    /// [`Heap::modify`](crate::Heap::modify).
    pub fn recover(&self) -> Result<Option<Poison>> {
        let data = self.parts.data.recover_with(
            true,
            Some(&mut |m, mut t| match heal(m, t.as_mut()).and_then(|()| {
                let to = t.1 / t.4;
                empty_dead_blocks(m, t.project().0, 0, to)
            }) {
                Err(StructureError::Heap(e)) => Err(e),
                Err(_) => Err(HeapError::Corrupt("the buffer's blocks")),
                Ok(()) => Ok(()),
            }),
        )?;
        let header = self.parts.header.recover()?;
        Ok(data.or(header))
    }
}

/// Cuts off what an append cut short by a death left past the buffer's end
/// (the append counts its bytes last): bytes past the end in the last
/// block, and blocks past it. An empty buffer keeps one block, emptied.
///
/// The blocks from the one holding the first byte (`head / bs`) to the
/// last are full but the last; those before it hold only deleted bytes,
/// full or emptied (see [`take_head`]).
///
/// # Errors
///
/// [`StructureError::Inconsistent`] when bytes before the end are missing
/// (a buffer broken through [`heap`](SBuffer::heap)).
fn heal(m: &Mutator<'_>, t: Pin<&mut BufRepr>) -> Result<()> {
    let (mut blocks, head, _, len, bs) = t.project();
    let (bs, first, end) = (*bs, *head / *bs, *head + *len);
    let nb = blocks.len();
    let keep = if end == 0 {
        nb.min(1)
    } else {
        end.div_ceil(bs)
    };
    let broken = StructureError::Inconsistent {
        what: "a buffer whose blocks do not hold its bytes",
    };
    if keep > nb || (first..keep.saturating_sub(1)).any(|b| blocks[b].len() != bs) {
        return Err(broken);
    }
    if nb > keep {
        m.truncate(blocks.as_mut(), keep);
    }
    if keep > 0 {
        let want = end - (keep - 1) * bs;
        let last = pin_at(blocks.as_mut(), keep - 1)?;
        if last.len() < want {
            return Err(broken);
        }
        if last.len() > want {
            m.truncate(last, want);
        }
    }
    Ok(())
}

/// Deletes the first `n <= len` bytes: the blocks that hold only deleted
/// bytes go (an emptied buffer keeps its last block for reuse), and the
/// blocks, the offset of the first byte, the start and the length change
/// in one replacement of the buffer's value (through the heap's journal),
/// so that a death leaves the old buffer or the new one.
///
/// The shorter list of blocks is a new array. When the heap has no room
/// for it (a full pool), the blocks stay, the offset of the first byte
/// moves past them, and their bytes go instead (each block emptied in
/// steps a death leaves valid; the last keeps its bytes, so that appends
/// go on after them): memory comes back all the same, and a later
/// deletion drops the emptied blocks.
fn take_head(m: &Mutator<'_>, mut t: Pin<&mut BufRepr>, n: usize) -> Result<()> {
    let (blocks, head, start, len, bs) = (&t.0, t.1, t.2, t.3, t.4);
    let t_head = head;
    let (start, len) = (start + n, len - n);
    let nb = blocks.len();
    let (drop, new_head) = if len == 0 {
        (nb.saturating_sub(1), 0)
    } else {
        ((head + n) / bs, (head + n) % bs)
    };
    // SAFETY: a bitwise duplicate of `blocks`, which the store below
    // overwrites with it (representations have no `Drop`).
    let same = || unsafe { std::ptr::read(blocks) };
    let (kept, head, dropped) = if drop == 0 {
        (same(), new_head, true)
    } else {
        // SAFETY: a new vector holding `blocks`' values from `drop` on,
        // moved, which replaces `blocks` in the store below with no change
        // in between (the blocks before `drop` become garbage).
        match unsafe { m.vec_from(blocks, drop) } {
            Ok(v) => (v, new_head, true),
            Err(HeapError::OutOfMemory { .. }) => (same(), head + n, false),
            Err(e) => return Err(e.into()),
        }
    };
    // SAFETY: the value stored is the buffer's with `kept` for its blocks
    // (arrays of this heap that only the buffer refers to) and plain
    // numbers.
    unsafe { m.store_repr(t.as_mut(), Tuple5(kept, head, start, len, bs))? };
    let blocks = t.project().0;
    if dropped {
        if len == 0 && !blocks.is_empty() {
            // The block kept for reuse: its bytes go now (a death before
            // this leaves them past the end, where the next change cuts
            // them off).
            m.truncate(pin_at(blocks, 0)?, 0);
        }
    } else {
        // The blocks before the old first byte's were emptied already, but
        // for the one before it (which was the last block when a deletion
        // of everything ended at its end).
        empty_dead_blocks(m, blocks, t_head.saturating_sub(1) / bs, head / bs)?;
    }
    Ok(())
}

/// Empties blocks `from..to` but the last one (blocks that hold only
/// deleted bytes, see [`take_head`]; [`SBuffer::recover`] empties all of
/// them, which a death may have left full).
fn empty_dead_blocks(
    m: &Mutator<'_>,
    mut blocks: Pin<&mut SharedVec<SharedVec<u8>>>,
    from: usize,
    to: usize,
) -> Result<()> {
    for b in from..to.min(blocks.len().saturating_sub(1)) {
        let block = pin_at(blocks.as_mut(), b)?;
        if !block.is_empty() {
            m.truncate(block, 0);
        }
    }
    Ok(())
}

/// Appends `k` empty blocks, each with room for `bs` bytes. On error, some
/// may have been added: the caller truncates them away.
fn add_blocks(
    m: &Mutator<'_>,
    mut blocks: Pin<&mut SharedVec<SharedVec<u8>>>,
    k: usize,
    bs: usize,
) -> Result<(), HeapError> {
    m.reserve(blocks.as_mut(), k)?;
    for _ in 0..k {
        let nb = blocks.len();
        m.push::<Vec<u8>>(blocks.as_mut(), &Vec::new())?;
        let last = blocks.as_mut().get_pin(nb).ok_or(HeapError::TooLarge)?;
        m.reserve(last, bs)?;
    }
    Ok(())
}
