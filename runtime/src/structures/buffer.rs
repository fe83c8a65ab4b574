//! `SBuffer`: a shared byte buffer with eternal positions (Netmulticore's
//! `Netmcore_buffer`).

use super::{remove_front, structure_common, Parts, Result, StructureError};
use crate::heap::{HeapOptions, ReadGuard};
use crate::pool::Pool;
use crate::value::{SVec, Shared, Tuple5};

/// The default size of a buffer's blocks: 64 KiB.
pub const DEFAULT_BLOCK_SIZE: usize = 64 * 1024;

/// `(blocks, offset of the first byte in blocks[0], start, len, block size)`.
type BufData = (Vec<Vec<u8>>, usize, usize, usize, usize);
type BufRepr = Tuple5<SVec<SVec<u8>>, usize, usize, usize, usize>;

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
        self.g.2 + self.g.3
    }

    /// The bytes `pos..pos + len` as a sequence of slices (one per block
    /// touched), in place (Netmulticore's `access`).
    pub fn chunks(&self, pos: usize, len: usize) -> Result<impl Iterator<Item = &[u8]> + '_> {
        chunks(&self.g, pos, len)
    }

    /// Copies the bytes from `pos` into `dst` (all of `dst`).
    pub fn blit(&self, pos: usize, dst: &mut [u8]) -> Result<()> {
        let mut off = 0;
        for c in chunks(&self.g, pos, dst.len())? {
            dst[off..off + c.len()].copy_from_slice(c);
            off += c.len();
        }
        Ok(())
    }
}

fn chunks(t: &BufRepr, pos: usize, len: usize) -> Result<impl Iterator<Item = &[u8]> + '_> {
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
    let mut off = t.1 + (pos - start);
    let mut left = len;
    let blocks = &t.0;
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
    pub fn create(pool: &Pool, header: &H) -> Result<Self> {
        Self::with_block_size(pool, header, DEFAULT_BLOCK_SIZE)
    }

    /// Creates an empty buffer with blocks of `block_size` bytes (at least
    /// 64).
    pub fn with_block_size(pool: &Pool, header: &H, block_size: usize) -> Result<Self> {
        let bs = block_size.max(64);
        let opts = HeapOptions::new().chunk_size((4 * bs).max(64 * 1024));
        Ok(SBuffer {
            parts: Parts::create(pool, header, &(Vec::new(), 0, 0, 0, bs), opts)?,
        })
    }

    /// Appends a copy of `bytes` (`add_bytes`, `add_string`,
    /// `add_sub_string`). Returns the position of the first byte added.
    pub fn push_bytes(&self, bytes: &[u8]) -> Result<usize> {
        self.parts.modify_try(|m, t| {
            let (mut blocks, _, start, len, bs) = t.project();
            let bs = *bs;
            let mut rest = bytes;
            while !rest.is_empty() {
                let nb = blocks.len();
                let room = if nb == 0 {
                    0
                } else {
                    bs - blocks[nb - 1].len()
                };
                if room == 0 {
                    m.push::<Vec<u8>>(blocks.as_mut(), &Vec::new())?;
                    let last = blocks.as_mut().get_pin(nb).expect("just pushed");
                    m.reserve(last, bs)?;
                    continue;
                }
                let k = room.min(rest.len());
                let last = blocks.as_mut().get_pin(nb - 1).expect("a block");
                m.extend_from_slice::<u8>(last, &rest[..k])?;
                rest = &rest[k..];
            }
            let pos = *start + *len;
            *len.get_mut() += bytes.len();
            Ok(pos)
        })
    }

    /// The position of the first byte (`start`): how many bytes were ever
    /// deleted from the head.
    pub fn start(&self) -> Result<usize> {
        Ok(self.parts.data.read()?.2)
    }

    /// The number of bytes (`length`).
    pub fn len(&self) -> Result<usize> {
        Ok(self.parts.data.read()?.3)
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A copy of the bytes `pos..pos + len` (`sub`).
    pub fn sub(&self, pos: usize, len: usize) -> Result<Vec<u8>> {
        let g = self.parts.data.read()?;
        let mut out = Vec::with_capacity(len);
        for c in chunks(&g, pos, len)? {
            out.extend_from_slice(c);
        }
        Ok(out)
    }

    /// Copies the bytes from `pos` into `dst`, filling all of it
    /// (`blit_to_bytes`).
    pub fn blit(&self, pos: usize, dst: &mut [u8]) -> Result<()> {
        BufferView {
            g: self.parts.data.read()?,
        }
        .blit(pos, dst)
    }

    /// The buffer in place, under the shared lock (`access`).
    pub fn read(&self) -> Result<BufferView<'_>> {
        Ok(BufferView {
            g: self.parts.data.read()?,
        })
    }

    /// Deletes `n` bytes from the head (`delete_hd`); fails with
    /// [`StructureError::BadRange`] when the buffer holds fewer.
    pub fn delete_head(&self, n: usize) -> Result<()> {
        self.parts.modify_try(|m, t| {
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
                    let b = blocks.as_mut().get_pin(0).expect("one block");
                    m.truncate(b, 0);
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
    pub fn clear(&self) -> Result<()> {
        self.parts.modify_try(|m, t| {
            let (mut blocks, head, mut start, mut len, _) = t.project();
            *start.as_mut().get_mut() += *len;
            *len.as_mut().get_mut() = 0;
            *head.get_mut() = 0;
            let nb = blocks.len();
            if nb > 0 {
                remove_front(m, blocks.as_mut(), nb - 1)?;
                let b = blocks.as_mut().get_pin(0).expect("one block");
                m.truncate(b, 0);
            }
            Ok(())
        })
    }
}
