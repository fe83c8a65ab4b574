//! A heap's figures, from its header and its allocator's state.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::alloc::AllocStats;
use super::{HeapHeader, PIN_COUNT_MASK};

/// A heap's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in allocated blocks (values and their 8-byte headers): after a
    /// collection, exactly what is reachable.
    pub live_bytes: usize,
    /// Bytes free inside the heap's chunks.
    pub free_bytes: usize,
    /// Chunks taken from the pool.
    pub chunks: usize,
    /// Bytes in those chunks.
    pub chunk_bytes: usize,
    /// Bytes allocated since the last collection.
    pub allocated_since_gc: usize,
    /// Collections so far.
    pub gc_runs: u64,
    /// How long the last collection took.
    pub last_gc: Duration,
    /// Values pinned now: root pins (one per process and value) and part
    /// pins (one per guard). An inspection from outside counts root pins
    /// only.
    pub pinned: usize,
    /// How many times a process died holding the heap's lock while the
    /// heap stayed consistent.
    pub owner_deaths: u32,
}

impl HeapStats {
    /// The figures of the allocator's state `s` and header `h` of one heap.
    pub(super) fn new(s: &AllocStats, h: &HeapHeader) -> Self {
        let pinned = h
            .pins
            .iter()
            .filter(|p| p.v.load(Ordering::Relaxed) & PIN_COUNT_MASK != 0)
            .count();
        HeapStats {
            live_bytes: s.live_bytes,
            free_bytes: s.free_bytes,
            chunks: s.chunks,
            chunk_bytes: s.chunk_bytes,
            allocated_since_gc: s.allocated_since_gc,
            gc_runs: s.gc_runs,
            last_gc: Duration::from_nanos(s.last_gc_nanos),
            pinned,
            owner_deaths: h.owner_deaths.load(Ordering::Relaxed),
        }
    }
}
