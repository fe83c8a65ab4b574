//! Named shared-memory segments: the header every mc segment starts with,
//! owner liveness, and finding and removing segments left by dead owners.
//!
//! Every segment mc creates is a POSIX shared memory object named
//! `mc.<kind>.<rest>` (visible as `/dev/shm/mc.<kind>.<rest>`), created mode
//! 0600, and begins with a [`SegmentHeader`].

use std::fmt;
use std::io;

use crate::os::shm;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The magic bytes at the start of every mc segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"mc-seg\0\x01";

/// The format version of mc segments; a segment of another version is
/// refused.
pub const FORMAT_VERSION: u32 = 2;

/// The prefix of mc segment names.
pub const NAME_PREFIX: &str = "mc.";

/// The directory where POSIX shared memory objects are visible.
pub const SHM_DIR: &str = shm::SHM_DIR;

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SegmentKind {
    /// A memory pool (heaps live in pools).
    Pool = 1,
    /// A camlbox.
    Camlbox = 2,
    /// A plain shared memory block.
    Block = 3,
}

impl SegmentKind {
    /// The kind stored in a header, if known.
    pub fn from_u32(k: u32) -> Option<SegmentKind> {
        match k {
            1 => Some(SegmentKind::Pool),
            2 => Some(SegmentKind::Camlbox),
            3 => Some(SegmentKind::Block),
            _ => None,
        }
    }

    /// The short name used in segment names (`mc.<name>.…`).
    pub fn name(self) -> &'static str {
        match self {
            SegmentKind::Pool => "pool",
            SegmentKind::Camlbox => "box",
            SegmentKind::Block => "shm",
        }
    }
}

/// The first 64 bytes of every mc segment. Plain integers (`Pod`): any 64
/// bytes are a value, which [`SegmentHeader::check`] then judges.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SegmentHeader {
    /// [`SEGMENT_MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// A [`SegmentKind`].
    pub kind: u32,
    /// The pid of the process that created the segment (for a family of
    /// processes started by `mc::run`, the master's).
    pub owner_pid: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// The owner's start time (clock ticks since boot), so that a reused pid
    /// is not mistaken for the owner.
    pub owner_start: u64,
    /// The segment's total size in bytes.
    pub size: u64,
    /// Fingerprint of the type stored (0 when the segment is untyped).
    pub fingerprint: u64,
    /// Reserved, zero.
    pub reserved2: [u64; 2],
}

const _: () = assert!(std::mem::size_of::<SegmentHeader>() == 64);

impl SegmentHeader {
    /// The header's bytes, as written at the start of a segment.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }

    /// A header for a new segment owned by the calling process's owner
    /// (the master of a run, for its workers).
    pub(crate) fn new(kind: SegmentKind, size: u64, fingerprint: u64) -> SegmentHeader {
        let (pid, start) = owner();
        SegmentHeader {
            magic: SEGMENT_MAGIC,
            version: FORMAT_VERSION,
            kind: kind as u32,
            owner_pid: pid,
            reserved: 0,
            owner_start: start,
            size,
            fingerprint,
            reserved2: [0; 2],
        }
    }

    /// Checks magic and version.
    ///
    /// # Errors
    ///
    /// [`SegmentError::NotMc`] when the magic or the kind is wrong;
    /// [`SegmentError::Version`] when the format version differs.
    pub fn check(&self) -> Result<SegmentKind, SegmentError> {
        if self.magic != SEGMENT_MAGIC {
            return Err(SegmentError::NotMc);
        }
        if self.version != FORMAT_VERSION {
            return Err(SegmentError::Version {
                found: self.version,
                expected: FORMAT_VERSION,
            });
        }
        SegmentKind::from_u32(self.kind).ok_or(SegmentError::NotMc)
    }

    /// Whether the owner process is still running.
    pub fn owner_alive(&self) -> bool {
        process_alive(self.owner_pid, self.owner_start)
    }
}

/// Why a segment could not be used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum SegmentError {
    /// The object is not an mc segment (wrong magic or too small).
    NotMc,
    /// The segment has another format version.
    Version {
        /// The version in the segment.
        found: u32,
        /// The version this library writes.
        expected: u32,
    },
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentError::NotMc => write!(f, "not an mc segment (bad magic or too small)"),
            SegmentError::Version { found, expected } => write!(
                f,
                "segment format version {found}, but this build of mc reads version {expected}; \
                 recreate it with this version"
            ),
        }
    }
}

impl std::error::Error for SegmentError {}

static OWNER: AtomicU64 = AtomicU64::new(0);
static OWNER_START: AtomicU64 = AtomicU64::new(0);

/// Makes `pid` (with its start time) the owner recorded in segments this
/// process creates from now on. The master calls it so that segments made
/// by workers are owned by the master, whose death is what makes them
/// stale.
pub fn set_owner(pid: u32) {
    let start = process_start_time(pid).unwrap_or(0);
    OWNER_START.store(start, Ordering::Relaxed);
    OWNER.store(pid as u64, Ordering::Relaxed);
}

fn owner() -> (u32, u64) {
    let pid = OWNER.load(Ordering::Relaxed) as u32;
    if pid != 0 {
        return (pid, OWNER_START.load(Ordering::Relaxed));
    }
    let me = std::process::id();
    (me, process_start_time(me).unwrap_or(0))
}

/// The start time of `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), if the process exists.
pub fn process_start_time(pid: u32) -> Option<u64> {
    shm::process_start_time(pid)
}

/// Whether process `pid` runs and started at `start` (0: any start time).
/// A zombie counts as dead.
pub fn process_alive(pid: u32, start: u64) -> bool {
    shm::process_alive(pid, start)
}

/// Creates a new shared memory object, mode 0600; fails if it exists.
pub fn shm_create(name: &str) -> io::Result<OwnedFd> {
    shm::create(name)
}

/// Opens an existing shared memory object for reading and writing.
pub fn shm_open(name: &str) -> io::Result<OwnedFd> {
    shm::open(name, true)
}

/// Removes a shared memory object by name.
pub fn shm_unlink(name: &str) -> io::Result<()> {
    shm::unlink(name)
}

/// Reserves backing memory for `len` bytes at `offset`, so that touching
/// them never raises SIGBUS; fails with `ENOSPC` when memory is short.
pub fn reserve(fd: &OwnedFd, offset: u64, len: u64) -> io::Result<()> {
    shm::reserve(fd, offset, len)
}

/// The size of an open object, in bytes.
pub fn object_size(fd: &OwnedFd) -> io::Result<u64> {
    shm::size(fd)
}

/// Whether a segment belongs to the calling process's family: its owner
/// (recorded at creation) is this process's segment owner, that is the
/// caller of the same `mc::run`, or this very process.
pub fn same_family(header: &SegmentHeader) -> bool {
    let (pid, start) = owner();
    header.owner_pid == pid
        && (header.owner_start == start || header.owner_start == 0 || start == 0)
}

/// The bytes free for shared memory segments (in [`SHM_DIR`]); 0 when
/// unknown.
pub fn shm_free_bytes() -> usize {
    shm::free_bytes()
}

/// Reads the segment header of an open object (without mapping it).
pub fn read_header(fd: &OwnedFd) -> Result<SegmentHeader, SegmentError> {
    let mut buf = [0u8; 64];
    if !matches!(shm::read_at(fd, &mut buf, 0), Ok(true)) {
        return Err(SegmentError::NotMc);
    }
    let h: SegmentHeader = bytemuck::pod_read_unaligned(&buf);
    h.check()?;
    Ok(h)
}

/// A segment found in the shared memory directory.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// The object's name (without the leading `/`).
    pub name: String,
    /// The path under `/dev/shm`.
    pub path: PathBuf,
    /// The header, if the object is a readable mc segment.
    pub header: Option<SegmentHeader>,
    /// The object's size on disk (bytes of memory it holds).
    pub allocated: u64,
}

impl SegmentInfo {
    /// The segment's kind, if it has a valid header.
    pub fn kind(&self) -> Option<SegmentKind> {
        self.header.and_then(|h| SegmentKind::from_u32(h.kind))
    }

    /// Whether the owner is dead (or the header unreadable).
    pub fn is_stale(&self) -> bool {
        self.header.is_none_or(|h| !h.owner_alive())
    }
}

/// Lists the mc segments on this machine that this user can open.
///
/// # Errors
///
/// The [`io::Error`] of reading the directory `/dev/shm`.
pub fn list_segments() -> io::Result<Vec<SegmentInfo>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(NAME_PREFIX) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let header = shm_open(&name).ok().and_then(|fd| read_header(&fd).ok());
        out.push(SegmentInfo {
            path: entry.path(),
            name,
            header,
            allocated: meta.blocks() * 512,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes every mc segment whose owner is no longer running; returns the
/// names removed. Segments of other users are skipped.
///
/// # Errors
///
/// As [`list_segments`].
pub fn remove_stale() -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for s in list_segments()? {
        if s.header.is_some() && s.is_stale() && shm_unlink(&s.name).is_ok() {
            removed.push(s.name);
        }
    }
    Ok(removed)
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh segment name `mc.<kind>.<pid>.<n>.<random>`.
pub fn fresh_name(kind: SegmentKind) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{NAME_PREFIX}{}.{}.{n}.{:016x}",
        kind.name(),
        std::process::id(),
        crate::os::random_u64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness() {
        let me = std::process::id();
        let start = process_start_time(me).unwrap();
        assert!(process_alive(me, start));
        assert!(process_alive(me, 0));
        assert!(!process_alive(me, start + 1));
        assert!(!process_alive(0, 0));
    }

    #[test]
    fn names_are_fresh() {
        let a = fresh_name(SegmentKind::Pool);
        let b = fresh_name(SegmentKind::Pool);
        assert_ne!(a, b);
        assert!(a.starts_with("mc.pool."));
    }
}
