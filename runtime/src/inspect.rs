//! Read-only views of mc's shared memory segments, for `mcctl` and for
//! programs that watch their own: the segments in `/dev/shm` with their
//! owners ([`list_segments`]), the removal of those whose owner died
//! ([`remove_stale`]), and a pool's figures and its heaps'
//! ([`inspect_pool`]), read from copies of the segment.

use std::io;

use crate::heap::HeapReport;
use crate::os::shm;
use crate::pool::{PoolError, PoolStats, OWNER_HEADER, OWNER_MEM, PAGE_SIZE};
use crate::segment;
pub use crate::segment::{
    list_segments, remove_stale, SegmentError, SegmentHeader, SegmentInfo, SegmentKind,
    FORMAT_VERSION, NAME_PREFIX, SEGMENT_MAGIC,
};

/// What an inspector sees of a pool and its heaps.
#[derive(Debug, Clone)]
pub struct PoolReport {
    /// The segment name.
    pub name: String,
    /// The segment header (owner, size).
    pub header: SegmentHeader,
    /// The address the pool is mapped at in its processes.
    pub base: usize,
    /// The pool's figures.
    pub stats: PoolStats,
    /// The root heap's address, if any.
    pub root_heap: Option<usize>,
    /// Every heap found in the pool.
    pub heaps: Vec<HeapReport>,
}

/// Inspects a pool without taking any of its locks or changing anything:
/// reads copies of its header, page owner table and heap headers with
/// `pread` (never through a mapping, so a segment cut short by another
/// process is an error or a short report, never `SIGBUS`), and reports its
/// figures and its heaps'. Figures read while other processes work may be
/// a moment old.
///
/// # Errors
///
/// [`PoolError::BadName`] when `seg_name` holds `/` or NUL;
/// [`PoolError::NotFound`] when no segment has that name;
/// [`PoolError::NotAPool`] when the segment is not a well-formed pool;
/// [`PoolError::Truncated`] when it is shorter than its pool; [`PoolError::Io`]
/// when opening it or reading its size fails.
pub fn inspect_pool(seg_name: &str) -> Result<PoolReport, PoolError> {
    if seg_name.contains('\0') || seg_name.contains('/') {
        return Err(PoolError::BadName(seg_name.to_owned()));
    }
    let fd = shm::open(seg_name, false).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            PoolError::NotFound(seg_name.to_owned())
        } else {
            PoolError::Io("shm_open", e)
        }
    })?;
    let seg = segment::read_header(&fd).map_err(|e| PoolError::NotAPool(seg_name.to_owned(), e))?;
    if seg.kind != SegmentKind::Pool as u32 {
        return Err(PoolError::NotAPool(
            seg_name.to_owned(),
            SegmentError::NotMc,
        ));
    }
    let not_a_pool = || PoolError::NotAPool(seg_name.to_owned(), SegmentError::NotMc);
    let h = crate::pool::read_header(&fd).ok_or_else(not_a_pool)?;
    let (base, layout) = crate::pool::checked_layout(&h, &seg).ok_or_else(not_a_pool)?;
    let total = layout.total;
    let size = segment::object_size(&fd).map_err(|e| PoolError::Io("fstat", e))?;
    if size < total as u64 {
        return Err(PoolError::Truncated {
            name: seg_name.to_owned(),
            size,
            expected: total as u64,
        });
    }
    // Everything is read with `pread` into local copies, never through a
    // mapping: a segment cut short meanwhile gives short reads, not SIGBUS,
    // and the pool's address range need not be free in this process.
    let read = |addr: usize, len: usize| -> Option<Vec<u8>> {
        let offset = addr.checked_sub(base)?;
        if offset.checked_add(len)? > total {
            return None;
        }
        let mut buf = vec![0u8; len];
        matches!(shm::read_at(&fd, &mut buf, offset as u64), Ok(true)).then_some(buf)
    };
    let committed = (h.committed.into_inner() as usize).min(total);
    let used_pages = h.used_pages.into_inner() as usize;
    let root = h.root_heap.into_inner() as usize;
    let n_pages = layout.n_pages;
    let owner_bytes = read(base + layout.owners_offset, n_pages * 4).ok_or_else(not_a_pool)?;
    let owners: Vec<u32> = bytemuck::pod_collect_to_vec(&owner_bytes);
    let data = base + layout.data_offset;
    let owner_of = |a: usize| -> u32 {
        if a < data {
            return 0;
        }
        owners.get((a - data) / PAGE_SIZE).copied().unwrap_or(0)
    };
    let heap_size = crate::heap::header_size();
    let mut heaps = Vec::new();
    for (page, &owner) in owners.iter().enumerate() {
        if owner & OWNER_HEADER == 0 || owner & OWNER_MEM != 0 {
            continue;
        }
        let addr = data + page * PAGE_SIZE;
        if addr + heap_size > base + committed {
            break;
        }
        let Some(bytes) = read(addr, heap_size) else {
            continue;
        };
        if let Some(r) = crate::heap::inspect_header(addr, &bytes, &owner_of, &read) {
            heaps.push(r);
        }
    }
    let max = n_pages * PAGE_SIZE;
    let used = (used_pages * PAGE_SIZE).min(max);
    Ok(PoolReport {
        name: seg_name.to_owned(),
        header: seg,
        base,
        stats: PoolStats {
            max_size: max,
            used,
            free: max - used,
            committed,
        },
        root_heap: (root != 0).then_some(root),
        heaps,
    })
}
