//! `SBuffer`: a shared byte buffer with eternal positions (Netmulticore's
//! `Netmcore_buffer`).

use std::fmt;
use std::pin::Pin;

use super::{pin_at, remove_front, structure_common, Parts, Result, StructureError};
use crate::heap::{HeapError, HeapOptions, Mutator, ReadGuard};
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
        self.parts.modify_try(|m, t| {
            check(&t)?;
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
        self.parts.modify_try(|m, t| {
            check(&t)?;
            let (mut blocks, mut head, mut start, mut len, bs) = t.project();
            let bs = *bs;
            if n > *len {
                return Err(StructureError::BadRange {
                    pos: *start,
                    len: n,
                    start: *start,
                    end: *start + *len,
                });
            }
            *start.as_mut().get_mut() += n;
            *len.as_mut().get_mut() -= n;
            *head.as_mut().get_mut() += n;
            let nb = blocks.len();
            if *len == 0 {
                // Empty: keep the last block (with its room) for reuse.
                if nb > 0 {
                    remove_front(m, blocks.as_mut(), nb - 1)?;
                    m.truncate(pin_at(blocks.as_mut(), 0)?, 0);
                }
                *head.get_mut() = 0;
            } else {
                let drop = *head / bs;
                if drop > 0 {
                    remove_front(m, blocks, drop)?;
                    *head.get_mut() -= drop * bs;
                }
            }
            Ok(())
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
        self.parts.modify_try(|m, t| {
            check(&t)?;
            let (mut blocks, head, mut start, mut len, _) = t.project();
            *start.as_mut().get_mut() += *len;
            *len.as_mut().get_mut() = 0;
            *head.get_mut() = 0;
            let nb = blocks.len();
            if nb > 0 {
                remove_front(m, blocks.as_mut(), nb - 1)?;
                m.truncate(pin_at(blocks.as_mut(), 0)?, 0);
            }
            Ok(())
        })
    }
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
