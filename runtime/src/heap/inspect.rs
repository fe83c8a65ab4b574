//! What an inspector (`mcctl`) sees of a heap: figures read from a copy
//! of its header, without locking.

use std::mem::size_of;
use std::sync::atomic::Ordering;

use super::alloc::AllocState;
use super::{HeapHeader, HeapStats, HEAP_MAGIC};
use crate::in_shared::read_copy;
use crate::pool::OWNER_HEADER;

/// What an inspector sees of a heap, read without locking (figures may be
/// a moment old).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapReport {
    /// The heap's address (its descriptor's address).
    pub addr: usize,
    /// The fingerprint of the root type.
    pub fingerprint: u64,
    /// Whether a process died in the middle of modifying it.
    pub poisoned: bool,
    /// The heap's figures.
    pub stats: HeapStats,
}

/// The size of a heap header (what [`inspect_header`] reads).
pub(crate) fn header_size() -> usize {
    size_of::<HeapHeader>()
}

/// Reads a heap header from a copy of its bytes (`addr` is where the heap
/// lives in its pool). `None` when the bytes are not a heap header.
pub(crate) fn inspect_header(
    addr: usize,
    bytes: &[u8],
    owner_of: &dyn Fn(usize) -> u32,
    read: &dyn Fn(usize, usize) -> Option<Vec<u8>>,
) -> Option<HeapReport> {
    let mut h: HeapHeader = read_copy(bytes)?;
    if h.magic.load(Ordering::Relaxed) != HEAP_MAGIC {
        return None;
    }
    if owner_of(addr) != h.tag | OWNER_HEADER {
        return None;
    }
    // Follow the current chunk's address only into this heap's pages, and
    // only through `read` (copies).
    let tag = h.tag;
    let s = h.alloc.get_mut().stats_with(|cur| {
        if owner_of(cur) != tag {
            return None;
        }
        AllocState::chunk_size_top(&read(cur, AllocState::CHUNK_HEADER_SIZE)?)
    });
    Some(HeapReport {
        addr,
        fingerprint: h.fingerprint,
        poisoned: h.poisoned.load(Ordering::Relaxed) != 0,
        stats: HeapStats::new(&s, &h),
    })
}
