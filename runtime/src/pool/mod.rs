//! Shared memory pools: segments mapped at the same address in every
//! process, managed as pages, growing on demand inside a reserved range.
//!
//! A pool reserves its maximum size of address space when it is created and
//! records the address in its header. Forked children inherit the mapping;
//! any other process (a worker started before the pool existed, or an
//! unrelated program) [attaches](Pool::attach) by name and maps the segment
//! at the recorded address, or gets [`PoolError::AddressInUse`].
//!
//! Memory is reserved with `fallocate` before it is handed out, so running
//! out of memory is [`PoolError::OutOfMemory`], never SIGBUS.
//!
//! ```
//! let pool = mc::Pool::create(16 << 20)?; // up to 16 MiB
//! let heap = mc::Heap::create(&pool, &vec![1u32, 2, 3])?;
//! assert_eq!(heap.copy()?, vec![1, 2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Serialize};

use crate::in_shared::{in_shared, read_copy};
use crate::os::mapping::{FixedError, Mapping};
use crate::os::shm;
use crate::segment::{self, SegmentError, SegmentHeader, SegmentKind};
use crate::sync::raw::{LockError, RawRwLock};

mod mem;
mod pages;

pub use mem::{PoolMem, PoolMemDescr};

/// The page size pools are managed in.
pub const PAGE_SIZE: usize = crate::os::PAGE_SIZE;

/// The smallest maximum size a pool accepts.
pub const MIN_POOL_SIZE: usize = 64 * 1024;

const COMMIT_STEP: u64 = 1 << 20;

in_shared! {
    /// The pool's own header, after the segment header. The geometry
    /// (`base` to `data_offset`) never changes after creation; the rest is
    /// shared state.
    pub(crate) struct PoolHeader {
        pub(crate) seg: SegmentHeader,
        pub(crate) base: u64,
        pub(crate) total_size: u64,
        pub(crate) n_pages: u64,
        pub(crate) bitmap_offset: u64,
        pub(crate) owners_offset: u64,
        pub(crate) data_offset: u64,
        pub(crate) committed: AtomicU64,
        pub(crate) used_pages: AtomicU64,
        pub(crate) hint: AtomicU64,
        pub(crate) root_heap: AtomicU64,
        pub(crate) root_fingerprint: AtomicU64,
        pub(crate) next_tag: AtomicU32,
        pub(crate) lock: RawRwLock,
        _pad: u32,
    }
}

/// Where the parts of a pool segment lie; a function of the page count
/// only, so that attaching processes can check the recorded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) n_pages: usize,
    pub(crate) bitmap_offset: usize,
    pub(crate) owners_offset: usize,
    pub(crate) data_offset: usize,
    pub(crate) total: usize,
}

impl Layout {
    pub(crate) fn new(n_pages: usize) -> Layout {
        let bitmap_offset = std::mem::size_of::<PoolHeader>().next_multiple_of(64);
        let owners_offset = (bitmap_offset + n_pages.div_ceil(64) * 8).next_multiple_of(64);
        let data_offset = (owners_offset + n_pages * 4).next_multiple_of(PAGE_SIZE);
        Layout {
            n_pages,
            bitmap_offset,
            owners_offset,
            data_offset,
            total: data_offset + n_pages * PAGE_SIZE,
        }
    }
}

/// Page owner entries: the owner's tag (a heap's, or a block of raw memory's
/// with [`OWNER_MEM`]), with [`OWNER_HEADER`] set on the owner's first page.
pub(crate) const OWNER_HEADER: u32 = 1 << 31;
/// The tag part of a page owner entry.
pub(crate) const OWNER_TAG: u32 = !OWNER_HEADER;
/// Page owner entries: set on every page of a block of raw memory
/// ([`PoolMem`]). Heap tags never have it, so no heap takes, opens or
/// frees such a page, and no block descriptor opens a heap's.
pub(crate) const OWNER_MEM: u32 = 1 << 30;

/// Why a pool operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError {
    /// The pool (or the machine's shared memory) has no room for the
    /// request.
    OutOfMemory {
        /// Bytes requested.
        requested: usize,
        /// Bytes still free in the pool (the machine may have less).
        available: usize,
    },
    /// The requested maximum size is too small or too large.
    BadSize {
        /// The size given.
        size: usize,
        /// What is accepted.
        reason: &'static str,
    },
    /// A segment with that name exists already.
    Exists(String),
    /// No segment with that name exists.
    NotFound(String),
    /// The segment is not a pool, or not an mc segment at all.
    NotAPool(String, SegmentError),
    /// The pool's recorded address range is already used in this process.
    AddressInUse {
        /// The pool's name.
        name: String,
        /// The recorded address.
        addr: usize,
        /// The range's size.
        size: usize,
    },
    /// The process that owns the pool has ended: it is stale.
    OwnerDead {
        /// The pool's name.
        name: String,
        /// The owner's pid.
        pid: u32,
    },
    /// A pool name must be 1 to 200 characters, without `/` or NUL.
    BadName(String),
    /// The pool's lock failed (a holder died).
    Lock(LockError),
    /// Another process cut the segment short (truncated its shared
    /// memory object): the memory past the cut is gone.
    Truncated {
        /// The segment's name.
        name: String,
        /// Its size now, in bytes.
        size: u64,
        /// The size it must have.
        expected: u64,
    },
    /// No such block of raw memory ([`PoolMem`]): it was given back to the
    /// pool, or the descriptor names none.
    NoSuchMem {
        /// The address the descriptor names.
        addr: usize,
    },
    /// A system call failed.
    Io(&'static str, io::Error),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::OutOfMemory {
                requested,
                available,
            } => write!(
                f,
                "out of pool memory: {requested} bytes requested, {available} free in the pool \
                 (create the pool larger, or free memory in /dev/shm)"
            ),
            PoolError::BadSize { size, reason } => write!(f, "bad pool size {size}: {reason}"),
            PoolError::Exists(n) => {
                write!(
                    f,
                    "a segment named {n:?} exists already (remove it or pick another name)"
                )
            }
            PoolError::NotFound(n) => write!(f, "no pool named {n:?}"),
            PoolError::NotAPool(n, e) => write!(
                f,
                "{n:?} is not an mc pool: {e} (remove it or pick another name)"
            ),
            PoolError::AddressInUse { name, addr, size } => write!(
                f,
                "cannot attach pool {name:?}: its address range {addr:#x}+{size:#x} is already \
                 in use in this process (attach earlier, before other large mappings)"
            ),
            PoolError::OwnerDead { name, pid } => write!(
                f,
                "pool {name:?} belongs to process {pid}, which has ended; remove it with \
                 mc::segment::remove_stale() or `mcctl clean`"
            ),
            PoolError::BadName(n) => {
                write!(
                    f,
                    "bad pool name {n:?}: use 1 to 200 characters, without '/' or NUL"
                )
            }
            PoolError::Lock(e) => write!(f, "pool lock: {e}"),
            PoolError::Truncated {
                name,
                size,
                expected,
            } => write!(
                f,
                "pool {name:?} was cut short by another process ({size} bytes of {expected}): \
                 what lay past the cut is lost; remove the segment (Pool::remove, `mcctl \
                 clean`) and create the pool anew"
            ),
            PoolError::NoSuchMem { addr } => write!(
                f,
                "no block of pool memory at {addr:#x}: it was given back to the pool (its last \
                 handle was dropped, or its kept reference released), or never existed"
            ),
            PoolError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Io(_, e) => Some(e),
            PoolError::NotAPool(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Options for creating a pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    max_size: usize,
    name: Option<String>,
}

impl PoolOptions {
    /// A pool of at most `max_size` bytes (rounded up to whole pages).
    pub fn new(max_size: usize) -> Self {
        PoolOptions {
            max_size,
            name: None,
        }
    }

    /// Gives the pool a name, so that unrelated processes can
    /// [attach](Pool::attach) to it. The segment is `mc.pool.<name>`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Creates the pool.
    ///
    /// # Errors
    ///
    /// [`PoolError::BadSize`] when the size is below 64 KiB or above 16 TiB;
    /// [`PoolError::BadName`] when the name is empty, longer than 200 bytes or
    /// holds `/` or NUL; [`PoolError::Exists`] when a segment has the name
    /// already; [`PoolError::OutOfMemory`] when the machine's shared memory has
    /// no room for the pool's header; [`PoolError::Io`] when a system call
    /// fails.
    pub fn create(self) -> Result<Pool, PoolError> {
        Pool::create_with(self)
    }
}

pub(crate) struct PoolInner {
    name: String,
    fd: OwnedFd,
    base: usize,
    total: usize,
    layout: Layout,
    creator: Option<u32>,
    keep: std::sync::atomic::AtomicBool,
    /// Whether the pool was created by this process family (see
    /// [`Pool::is_trusted`]).
    trusted: bool,
    /// The mapping's registration with the fault handler (`None` when no
    /// slot was free): a truncation by another process is then an error,
    /// not a `SIGBUS`.
    guard: Option<crate::os::fault::Guard>,
    /// The mapping (unmapped when the last handle goes, after `guard`).
    map: Mapping,
}

// SAFETY: the mapping is shared memory accessed only through atomics and
// locks in it; the handle's own fields are immutable.
unsafe impl Send for PoolInner {}
// SAFETY: as above.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Unregistered before the range is unmapped (by `map`'s drop, which
        // runs after this: nothing borrows the memory any more, as every
        // borrower holds an `Arc` to this inner).
        drop(self.guard.take());
        if self.creator == Some(std::process::id()) && !self.keep.load(Ordering::Relaxed) {
            let _ = segment::shm_unlink(&self.name);
        }
    }
}

static REGISTRY: Mutex<Vec<Weak<PoolInner>>> = Mutex::new(Vec::new());

/// A shared memory pool mapped in this process. Cheap to clone (all clones
/// share one mapping); the mapping goes when the last clone is dropped.
///
/// The process that creates a pool owns its name: when its last handle is
/// dropped the segment is unlinked (processes that have it mapped keep
/// using it). [`Pool::persist`] keeps the segment after the creator ends.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.name)
            .field("base", &format_args!("{:#x}", self.inner.base))
            .field("size", &self.inner.total)
            .finish()
    }
}

/// A pool's name, to pass to other processes (serde).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PoolDescr {
    /// The segment name.
    pub name: String,
}

impl crate::value::DescrParts for PoolDescr {
    type Parts = String;
    fn to_parts(&self) -> String {
        self.name.clone()
    }
    fn from_parts(name: String) -> Self {
        PoolDescr { name }
    }
}

crate::value::descr::shared_descr!(
    [] PoolDescr,
    crate::value::fingerprint_str("mc::PoolDescr"),
    crate::value::fingerprint_str("mc::PoolDescr")
);

impl PoolDescr {
    /// The pool, from this process's mappings or attached now.
    ///
    /// # Errors
    ///
    /// As [`Pool::attach_segment`].
    pub fn open(&self) -> Result<Pool, PoolError> {
        Pool::attach_segment(&self.name)
    }
}

/// A pool's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// The maximum size of the data area, in bytes.
    pub max_size: usize,
    /// Bytes handed out (heap chunks).
    pub used: usize,
    /// Bytes free for allocation.
    pub free: usize,
    /// Bytes of memory reserved so far (header and data).
    pub committed: usize,
}

/// Whether an error says that memory (of the machine's shared memory) ran
/// out.
fn is_out_of_memory(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(nix::errno::Errno::from_raw),
        Some(nix::errno::Errno::ENOSPC | nix::errno::Errno::ENOMEM)
    )
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> PoolError {
    move |e| PoolError::Io(what, e)
}

impl Pool {
    /// Creates an anonymous pool of at most `max_size` bytes. Forked
    /// children inherit it; other processes can attach by
    /// [`name`](Pool::name).
    ///
    /// # Errors
    ///
    /// As [`PoolOptions::create`].
    pub fn create(max_size: usize) -> Result<Pool, PoolError> {
        PoolOptions::new(max_size).create()
    }

    /// Creates a named pool (segment `mc.pool.<name>`).
    ///
    /// # Errors
    ///
    /// As [`PoolOptions::create`].
    pub fn create_named(name: &str, max_size: usize) -> Result<Pool, PoolError> {
        PoolOptions::new(max_size).name(name).create()
    }

    fn create_with(o: PoolOptions) -> Result<Pool, PoolError> {
        if o.max_size < MIN_POOL_SIZE {
            return Err(PoolError::BadSize {
                size: o.max_size,
                reason: "at least 64 KiB",
            });
        }
        if o.max_size > (1usize << 44) {
            return Err(PoolError::BadSize {
                size: o.max_size,
                reason: "at most 16 TiB",
            });
        }
        let n_pages = o.max_size.div_ceil(PAGE_SIZE);
        let layout = Layout::new(n_pages);
        let (bitmap_offset, owners_offset, data_offset, total) = (
            layout.bitmap_offset,
            layout.owners_offset,
            layout.data_offset,
            layout.total,
        );
        let name = match &o.name {
            Some(n) => {
                if n.is_empty() || n.contains('/') || n.contains('\0') || n.len() > 200 {
                    return Err(PoolError::BadName(n.clone()));
                }
                format!("{}pool.{n}", segment::NAME_PREFIX)
            }
            None => segment::fresh_name(SegmentKind::Pool),
        };
        let fd = segment::shm_create(&name).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                PoolError::Exists(name.clone())
            } else {
                PoolError::Io("shm_open", e)
            }
        })?;
        let cleanup = |e: PoolError| {
            let _ = segment::shm_unlink(&name);
            e
        };
        shm::set_len(&fd, total as u64).map_err(|e| cleanup(PoolError::Io("ftruncate", e)))?;
        segment::reserve(&fd, 0, data_offset as u64).map_err(|e| {
            cleanup(if is_out_of_memory(&e) {
                PoolError::OutOfMemory {
                    requested: data_offset,
                    available: 0,
                }
            } else {
                PoolError::Io("fallocate", e)
            })
        })?;
        let map =
            Mapping::shared(&fd, total, true).map_err(|e| cleanup(PoolError::Io("mmap", e)))?;
        let base = map.addr();
        let header = PoolHeader {
            seg: SegmentHeader::new(SegmentKind::Pool, total as u64, 0),
            base: base as u64,
            total_size: total as u64,
            n_pages: n_pages as u64,
            bitmap_offset: bitmap_offset as u64,
            owners_offset: owners_offset as u64,
            data_offset: data_offset as u64,
            committed: AtomicU64::new(data_offset as u64),
            used_pages: AtomicU64::new(0),
            hint: AtomicU64::new(0),
            root_heap: AtomicU64::new(0),
            root_fingerprint: AtomicU64::new(0),
            next_tag: AtomicU32::new(1),
            lock: RawRwLock::new(),
            _pad: 0,
        };
        // SAFETY: the first `data_offset` bytes are mapped and reserved;
        // the header fits in them (bitmap_offset >= size_of header), and the
        // mapping is page-aligned. The bitmap is zero (fresh object).
        unsafe { map.ptr().cast::<PoolHeader>().write(header) };
        let inner = Arc::new(PoolInner {
            name,
            fd,
            base,
            total,
            layout,
            creator: Some(std::process::id()),
            keep: std::sync::atomic::AtomicBool::new(false),
            trusted: true,
            guard: crate::os::fault::guard(base, total),
            map,
        });
        register(&inner);
        Ok(Pool { inner })
    }

    /// Attaches to the pool created (by any process of this user) with
    /// [`Pool::create_named`] under `name`.
    ///
    /// # Errors
    ///
    /// As [`Pool::attach_segment`].
    pub fn attach(name: &str) -> Result<Pool, PoolError> {
        Pool::attach_segment(&format!("{}pool.{name}", segment::NAME_PREFIX))
    }

    /// Attaches to a pool by its full segment name ([`Pool::name`]).
    /// Returns the existing mapping when this process has one.
    ///
    /// # Errors
    ///
    /// [`PoolError::NotFound`] when no segment has that name;
    /// [`PoolError::NotAPool`] when it is not a well-formed pool;
    /// [`PoolError::OwnerDead`] when its owner has ended;
    /// [`PoolError::Truncated`] when it is shorter than its pool;
    /// [`PoolError::AddressInUse`] when its address range is taken in this
    /// process; [`PoolError::Io`] when a system call fails.
    pub fn attach_segment(seg_name: &str) -> Result<Pool, PoolError> {
        if let Some(inner) = lookup(seg_name) {
            return Ok(Pool { inner });
        }
        let fd = segment::shm_open(seg_name).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                PoolError::NotFound(seg_name.to_owned())
            } else {
                PoolError::Io("shm_open", e)
            }
        })?;
        let seg =
            segment::read_header(&fd).map_err(|e| PoolError::NotAPool(seg_name.to_owned(), e))?;
        if seg.kind != SegmentKind::Pool as u32 {
            return Err(PoolError::NotAPool(
                seg_name.to_owned(),
                SegmentError::NotMc,
            ));
        }
        if !seg.owner_alive() {
            return Err(PoolError::OwnerDead {
                name: seg_name.to_owned(),
                pid: seg.owner_pid,
            });
        }
        let (base, layout) = read_header(&fd)
            .and_then(|h| checked_layout(&h, &seg))
            .ok_or_else(|| PoolError::NotAPool(seg_name.to_owned(), SegmentError::NotMc))?;
        let total = layout.total;
        let size = segment::object_size(&fd).map_err(io_err("fstat"))?;
        if size < total as u64 {
            return Err(PoolError::Truncated {
                name: seg_name.to_owned(),
                size,
                expected: total as u64,
            });
        }
        let map = match Mapping::fixed(&fd, base, total, true) {
            Ok(m) => m,
            Err(FixedError::InUse) => {
                return Err(PoolError::AddressInUse {
                    name: seg_name.to_owned(),
                    addr: base,
                    size: total,
                })
            }
            Err(FixedError::Io(e)) => return Err(PoolError::Io("mmap", e)),
        };
        let inner = Arc::new(PoolInner {
            name: seg_name.to_owned(),
            fd,
            base,
            total,
            layout,
            creator: None,
            keep: std::sync::atomic::AtomicBool::new(true),
            trusted: segment::same_family(&seg),
            guard: crate::os::fault::guard(base, total),
            map,
        });
        register(&inner);
        Ok(Pool { inner })
    }

    /// Removes the pool's name: no process can attach any more; processes
    /// that have it mapped keep working until they drop it.
    ///
    /// # Errors
    ///
    /// [`PoolError::Io`] when `shm_unlink` fails (the name is gone already,
    /// say).
    pub fn unlink(&self) -> Result<(), PoolError> {
        segment::shm_unlink(&self.inner.name).map_err(io_err("shm_unlink"))
    }

    /// Removes a pool segment by its full name (see [`Pool::name`]).
    ///
    /// # Errors
    ///
    /// [`PoolError::NotFound`] when no segment has that name; [`PoolError::Io`]
    /// when `shm_unlink` fails otherwise.
    pub fn remove(seg_name: &str) -> Result<(), PoolError> {
        segment::shm_unlink(seg_name).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                PoolError::NotFound(seg_name.to_owned())
            } else {
                PoolError::Io("shm_unlink", e)
            }
        })
    }

    /// Keeps the segment after its creator's handles are dropped (it is then
    /// removed by [`Pool::unlink`], [`Pool::remove`], or as stale once its
    /// owner process has ended).
    pub fn persist(&self) {
        self.inner.keep.store(true, Ordering::Relaxed);
    }

    /// Whether this process trusts the pool's contents: it created the
    /// pool, inherited it through `fork`, or attached a pool whose segment
    /// belongs to the same process family (the same `mc::run`, or the same
    /// process). A pool attached by name from an unrelated process is not
    /// trusted: heaps opened in it are [validated](crate::Heap::validate)
    /// first, since any process of the same user can write its memory.
    pub fn is_trusted(&self) -> bool {
        self.inner.trusted
    }

    /// Whether another process cut the segment short since it was mapped
    /// (a fault past the cut was contained; the memory there reads zeros
    /// in this process).
    #[inline]
    pub fn is_truncated(&self) -> bool {
        self.inner.guard.as_ref().is_some_and(|g| g.truncated())
    }

    /// [`PoolError::Truncated`] when the pool [is truncated](Pool::is_truncated).
    #[inline]
    pub(crate) fn check_intact(&self) -> Result<(), PoolError> {
        if self.is_truncated() {
            return Err(self.truncated_error());
        }
        Ok(())
    }

    /// Like [`check_intact`](Pool::check_intact), and also asks the
    /// kernel for the segment's size (a cut inside a page reads zeros
    /// without faulting): a system call, for slow paths.
    pub(crate) fn check_size(&self) -> Result<(), PoolError> {
        self.check_intact()?;
        match segment::object_size(&self.inner.fd) {
            Ok(size) if size < self.inner.total as u64 => Err(self.truncated_error()),
            _ => Ok(()),
        }
    }

    pub(crate) fn truncated_error(&self) -> PoolError {
        PoolError::Truncated {
            name: self.inner.name.clone(),
            size: segment::object_size(&self.inner.fd).unwrap_or(0),
            expected: self.inner.total as u64,
        }
    }

    /// The segment name (`mc.pool.…`), which [`Pool::attach_segment`] takes.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A serde-able descriptor naming this pool.
    pub fn descr(&self) -> PoolDescr {
        PoolDescr {
            name: self.inner.name.clone(),
        }
    }

    fn header(&self) -> &PoolHeader {
        // SAFETY: the header lies at the start of the live mapping.
        unsafe { self.inner.map.ptr().cast::<PoolHeader>().as_ref() }
    }

    /// The address the pool is mapped at (the same in every process).
    #[inline]
    pub fn base(&self) -> usize {
        self.inner.base
    }

    /// Whether `addr..addr+len` lies inside this pool's data area.
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        let start = self.inner.base + self.inner.layout.data_offset;
        addr >= start
            && addr
                .checked_add(len)
                .is_some_and(|e| e <= self.inner.base + self.inner.total)
    }

    /// Whether `addr..addr+len` lies inside memory of this pool that is
    /// backed (safe to read without risking SIGBUS).
    pub fn contains_committed(&self, addr: usize, len: usize) -> bool {
        let committed = self.header().committed.load(Ordering::Acquire) as usize;
        self.contains(addr, len) && addr + len <= self.inner.base + committed
    }

    /// The size of the pool's whole mapping (header included).
    pub fn mapped_size(&self) -> usize {
        self.inner.total
    }

    /// The pool's figures.
    pub fn stats(&self) -> PoolStats {
        let h = self.header();
        let used = h.used_pages.load(Ordering::Relaxed) as usize * PAGE_SIZE;
        let max = self.inner.layout.n_pages * PAGE_SIZE;
        PoolStats {
            max_size: max,
            used,
            free: max.saturating_sub(used),
            committed: h.committed.load(Ordering::Relaxed) as usize,
        }
    }

    pub(crate) fn root_heap(&self) -> (usize, u64) {
        let h = self.header();
        (
            h.root_heap.load(Ordering::Acquire) as usize,
            h.root_fingerprint.load(Ordering::Acquire),
        )
    }

    pub(crate) fn set_root_heap(&self, addr: usize, fingerprint: u64) {
        let h = self.header();
        h.root_fingerprint.store(fingerprint, Ordering::Release);
        h.root_heap.store(addr as u64, Ordering::Release);
    }
}

/// A copy of the pool header of the segment open as `fd`, read with
/// `pread` (no mapping); `None` when the segment is too short.
pub(crate) fn read_header(fd: &OwnedFd) -> Option<PoolHeader> {
    let mut raw = [0u8; std::mem::size_of::<PoolHeader>()];
    matches!(shm::read_at(fd, &mut raw, 0), Ok(true))
        .then(|| read_copy(&raw))
        .flatten()
}

/// Reads the base address and layout recorded in (a copy of) a pool
/// header and checks them against the segment header and against each
/// other.
pub(crate) fn checked_layout(h: &PoolHeader, seg: &SegmentHeader) -> Option<(usize, Layout)> {
    let n_pages = usize::try_from(h.n_pages)
        .ok()
        .filter(|&n| n > 0 && n <= 1 << 32)?;
    let base = usize::try_from(h.base).ok()?;
    let l = Layout::new(n_pages);
    let ok = h.total_size == seg.size
        && l.total as u64 == h.total_size
        && l.bitmap_offset as u64 == h.bitmap_offset
        && l.owners_offset as u64 == h.owners_offset
        && l.data_offset as u64 == h.data_offset
        && base % PAGE_SIZE == 0
        && base != 0;
    ok.then_some((base, l))
}

fn register(inner: &Arc<PoolInner>) {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.retain(|w| w.strong_count() > 0);
    reg.push(Arc::downgrade(inner));
}

/// The inode of an open descriptor (to tell a re-created segment of the
/// same name from the one mapped).
fn inode(fd: &OwnedFd) -> Option<u64> {
    shm::inode(fd).ok()
}

/// A pool this process has mapped under `name`, unless another segment has
/// taken the name since (removed and created again).
fn lookup(name: &str) -> Option<Arc<PoolInner>> {
    use std::os::unix::fs::MetadataExt;
    let found = {
        let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        reg.iter()
            .filter_map(Weak::upgrade)
            .find(|p| p.name == name)
    }?;
    match std::fs::metadata(format!("{}/{name}", segment::SHM_DIR)) {
        // Another segment has the name now: the mapping is stale.
        Ok(current) if Some(current.ino()) != inode(&found.fd) => None,
        // The same segment, or the name was removed (the mapping still
        // works for this process).
        _ => Some(found),
    }
}

/// Finds a run of `n` clear bits, searching from `hint` and wrapping.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_alloc_free() {
        let pool = Pool::create(1 << 20).unwrap();
        let a = pool.alloc_pages(64 * 1024, 5).unwrap();
        assert_eq!(pool.page_owner(a), 5);
        assert_eq!(pool.page_owner(a + 64 * 1024 - 1), 5);
        assert!(pool.contains(a, 64 * 1024));
        assert_eq!(pool.stats().used, 64 * 1024);
        // SAFETY: the pages were just allocated and reserved.
        unsafe { std::ptr::write_bytes(crate::in_shared::at::<u8>(a), 7, 64 * 1024) };
        let err = pool.alloc_pages(2 << 20, 5).unwrap_err();
        assert!(matches!(err, PoolError::OutOfMemory { .. }), "{err}");
        pool.free_pages(a, 64 * 1024);
        assert_eq!(pool.stats().used, 0);
        assert_eq!(pool.page_owner(a), 0);
        let name = pool.name().to_owned();
        assert!(std::path::Path::new(&format!("/dev/shm/{name}")).exists());
        drop(pool);
        assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    }

    #[test]
    fn bad_sizes_and_names() {
        assert!(matches!(Pool::create(100), Err(PoolError::BadSize { .. })));
        assert!(Pool::create_named("a/b", 1 << 20).is_err());
        assert!(matches!(
            Pool::attach("no-such-pool-here"),
            Err(PoolError::NotFound(_))
        ));
    }
}
