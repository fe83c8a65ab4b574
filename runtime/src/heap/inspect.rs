//! What an inspector (`mcctl`) sees of a heap: figures read from a copy
//! of its header, without locking.

use std::mem::size_of;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::alloc::AllocState;
use super::{HeapHeader, HeapStats, HEAP_MAGIC, PIN_COUNT_MASK};
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
    let h: HeapHeader = read_copy(bytes)?;
    if h.magic.load(Ordering::Relaxed) != HEAP_MAGIC {
        return None;
    }
    if owner_of(addr) != h.tag | OWNER_HEADER {
        return None;
    }
    // Follow the current chunk's address only into this heap's pages, and
    // only through `read` (copies).
    let s = h.alloc.into_inner().stats_with(|cur| {
        if owner_of(cur) != h.tag {
            return None;
        }
        AllocState::chunk_size_top(&read(cur, AllocState::CHUNK_HEADER_SIZE)?)
    });
    let pinned = h
        .pins
        .iter()
        .filter(|p| p.v.load(Ordering::Relaxed) & PIN_COUNT_MASK != 0)
        .count();
    Some(HeapReport {
        addr,
        fingerprint: h.fingerprint,
        poisoned: h.poisoned.load(Ordering::Relaxed) != 0,
        stats: HeapStats {
            live_bytes: s.live_bytes,
            free_bytes: s.free_bytes,
            chunks: s.chunks,
            chunk_bytes: s.chunk_bytes,
            allocated_since_gc: s.allocated_since_gc,
            gc_runs: s.gc_runs,
            last_gc: Duration::from_nanos(s.last_gc_nanos),
            pinned,
            owner_deaths: h.owner_deaths.load(Ordering::Relaxed),
        },
    })
}
