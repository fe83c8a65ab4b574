//! Read-only views of pool segments, for `mcctl`.

use super::*;

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
    pub heaps: Vec<crate::heap::HeapReport>,
}

/// Inspects a pool without taking any of its locks or changing anything:
/// maps it read-only (at its recorded address, so that the heaps' internal
/// addresses can be followed), and reports its figures and its heaps'.
/// Figures read while other processes work may be a moment old.
pub fn inspect(seg_name: &str) -> Result<PoolReport, PoolError> {
    let c = std::ffi::CString::new(format!("/{seg_name}"))
        .map_err(|_| PoolError::BadName(seg_name.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(if e.kind() == io::ErrorKind::NotFound {
            PoolError::NotFound(seg_name.to_owned())
        } else {
            PoolError::Io("shm_open", e)
        });
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let seg = segment::read_header(&fd).map_err(|e| PoolError::NotAPool(seg_name.to_owned(), e))?;
    if seg.kind != SegmentKind::Pool as u32 {
        return Err(PoolError::NotAPool(
            seg_name.to_owned(),
            SegmentError::NotMc,
        ));
    }
    let mut raw = [0u8; std::mem::size_of::<PoolHeader>()];
    // SAFETY: reading into a live local buffer of its own size.
    let n = unsafe { libc::pread(fd.as_raw_fd(), raw.as_mut_ptr().cast(), raw.len(), 0) };
    if n != raw.len() as isize {
        return Err(PoolError::NotAPool(
            seg_name.to_owned(),
            SegmentError::NotMc,
        ));
    }
    let base = u64::from_ne_bytes(raw[64..72].try_into().expect("8 bytes")) as usize;
    let total = u64::from_ne_bytes(raw[72..80].try_into().expect("8 bytes")) as usize;
    if total as u64 != seg.size || base % PAGE_SIZE != 0 || base == 0 {
        return Err(PoolError::NotAPool(
            seg_name.to_owned(),
            SegmentError::NotMc,
        ));
    }
    // SAFETY: a read-only shared mapping that replaces nothing.
    let p = unsafe {
        libc::mmap(
            base as *mut libc::c_void,
            total,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED || p as usize != base {
        if p != libc::MAP_FAILED {
            // SAFETY: unmapping what this call mapped.
            unsafe { libc::munmap(p, total) };
        }
        return Err(PoolError::AddressInUse {
            name: seg_name.to_owned(),
            addr: base,
            size: total,
        });
    }
    struct Unmap(usize, usize);
    impl Drop for Unmap {
        fn drop(&mut self) {
            // SAFETY: unmapping the inspector's own mapping; nothing
            // borrowed from it outlives this function.
            unsafe { libc::munmap(self.0 as *mut libc::c_void, self.1) };
        }
    }
    let _unmap = Unmap(base, total);
    // SAFETY: the header lies at the start of the mapping (checked size).
    let h = unsafe { &*(base as *const PoolHeader) };
    let committed = (h.committed.load(Ordering::Acquire) as usize).min(total);
    let n_pages = h.n_pages as usize;
    let data = base + h.data_offset as usize;
    if h.bitmap_offset as usize + n_pages.div_ceil(64) * 8 > committed
        || h.data_offset as usize > total
    {
        return Err(PoolError::NotAPool(
            seg_name.to_owned(),
            SegmentError::NotMc,
        ));
    }
    let used = h.used_pages.load(Ordering::Relaxed) as usize * PAGE_SIZE;
    let max = n_pages * PAGE_SIZE;
    let heap_size = crate::heap::header_size();
    let layout = Layout::new(n_pages);
    if layout.owners_offset != h.owners_offset as usize
        || layout.owners_offset + n_pages * 4 > committed
    {
        return Err(PoolError::NotAPool(
            seg_name.to_owned(),
            SegmentError::NotMc,
        ));
    }
    // SAFETY: the owner table lies inside the committed header area
    // (checked just above).
    let owners = unsafe {
        std::slice::from_raw_parts((base + layout.owners_offset) as *const AtomicU32, n_pages)
    };
    let owner_of = |a: usize| -> u32 {
        if a < data {
            return 0;
        }
        owners
            .get((a - data) / PAGE_SIZE)
            .map_or(0, |o| o.load(Ordering::Relaxed))
    };
    let mut heaps = Vec::new();
    for (page, owner) in owners.iter().enumerate() {
        if owner.load(Ordering::Relaxed) & OWNER_HEADER == 0 {
            continue;
        }
        let addr = data + page * PAGE_SIZE;
        if addr + heap_size > base + committed {
            break;
        }
        // SAFETY: an allocated page inside the committed range, read-only.
        let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, heap_size) };
        if let Some(r) = crate::heap::inspect_header(addr, bytes, &owner_of) {
            heaps.push(r);
        }
    }
    let root = h.root_heap.load(Ordering::Acquire) as usize;
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
