//! The resource table: the master's record of the named objects a run uses
//! (pools, shared memory blocks, temp files, named semaphores, fork and
//! join points; camlboxes), and who uses each.
//!
//! Every process of a run can register an object ([`manage`]), look one up
//! by id ([`lookup`], which makes the caller a user) and release it
//! ([`release`]). The creator counts as a user. When the last user is gone
//! the object is deleted (`shm_unlink`, `unlink`, `sem_unlink`). A worker
//! that ends releases everything it used; when the master ends, everything
//! left is deleted. A started process inherits (becomes a user of) the
//! resources its starter uses, unless [`StartOptions`](super::StartOptions)
//! say otherwise.
//!
//! Handles ([`TempFile`], [`ShmBlock`], [`NamedSemaphore`]) belong to the
//! process that opened them; to share an object, send its [`ResourceId`]
//! (a `serde` type) and open it on the other side:
//!
//! ```no_run
//! use mc::resources::{self, ShmBlock};
//! use std::sync::atomic::Ordering;
//!
//! #[mc::process]
//! fn reader(id: mc::resources::ResourceId) -> u8 {
//!     let block = ShmBlock::open(id).expect("open");
//!     block.bytes()[0].load(Ordering::Relaxed)
//! }
//!
//! let report = mc::run(|| {
//!     let block = resources::create_shm_block(4096).expect("create");
//!     block.bytes()[0].store(42, Ordering::Relaxed);
//!     let pid = reader::start(block.id()).expect("start");
//!     reader::join(pid).expect("join")
//! })
//! .expect("run");
//! assert_eq!(report.returned(), Some(42));
//! ```

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

use super::control::{Reply, Request};
use super::{run, unexpected, worker, ProcessError};
use crate::os::mapping::Mapping;
use crate::os::sem::{self, NamedSem};
use crate::os::shm;
use crate::segment::{self, SegmentHeader, SegmentKind};

/// The id of a resource in the master's table. Unique within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceId(pub(crate) u64);

impl ResourceId {
    /// The number of this id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a resource is, which says how it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ResourceKind {
    /// A memory pool: a shared memory segment (`shm_unlink`).
    Pool,
    /// A plain shared memory block (`shm_unlink`).
    ShmBlock,
    /// A camlbox segment (`shm_unlink`).
    Camlbox,
    /// A file (`unlink`); the name is its path.
    TempFile,
    /// A named POSIX semaphore (`sem_unlink`); the name starts with `/`.
    Semaphore,
    /// A fork point (nothing to delete).
    ForkPoint,
    /// A join point (nothing to delete).
    JoinPoint,
}

/// A resource as the table records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    /// Its id.
    pub id: ResourceId,
    /// Its kind.
    pub kind: ResourceKind,
    /// Its name: a shared memory object's name (without `/`), a path, or a
    /// semaphore name.
    pub name: String,
}

fn resource_reply(r: Reply) -> Result<ResourceInfo, ProcessError> {
    match r {
        Reply::Resource(info) => Ok(info),
        Reply::Err(e) => Err(e.into_error()),
        r => Err(unexpected(r)),
    }
}

/// Hands an existing object to the resource table; the caller becomes its
/// first user. It is deleted when its last user releases it or ends, and
/// at the end of the run at the latest.
///
/// # Errors
///
/// [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn manage(kind: ResourceKind, name: impl Into<String>) -> Result<ResourceId, ProcessError> {
    let r = worker::request(&Request::Manage {
        kind,
        name: name.into(),
    })?;
    Ok(resource_reply(r)?.id)
}

/// Looks a resource up; the caller becomes one of its users (release it
/// with [`release`] when done, or it stays until the caller ends).
///
/// # Errors
///
/// [`ProcessError::NoSuchResource`] when no resource has that id;
/// [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn lookup(id: ResourceId) -> Result<ResourceInfo, ProcessError> {
    resource_reply(worker::request(&Request::Lookup { id: id.0 })?)
}

/// The caller no longer uses the resource; when it was the last user, the
/// object is deleted.
///
/// # Errors
///
/// [`ProcessError::NoSuchResource`] when no resource has that id (never
/// registered, or already deleted); [`ProcessError::NotInWorker`] outside the
/// processes of a [`run`](crate::run); [`ProcessError::MasterGone`] or
/// [`ProcessError::Io`] when the master cannot be reached.
pub fn release(id: ResourceId) -> Result<(), ProcessError> {
    match worker::request(&Request::Release { id: id.0 })? {
        Reply::Ok => Ok(()),
        Reply::Err(e) => Err(e.into_error()),
        r => Err(unexpected(r)),
    }
}

fn lookup_kind(id: ResourceId, expected: ResourceKind) -> Result<ResourceInfo, ProcessError> {
    let info = lookup(id)?;
    if info.kind != expected {
        let _ = release(id);
        return Err(ProcessError::WrongKind {
            id,
            found: info.kind,
            expected,
        });
    }
    Ok(info)
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh name `mc.<what>.<master pid>.<master start>.<pid>.<n>.<random>`
/// for objects whose names carry no header: [`cleanup`](super::cleanup)
/// finds those of dead masters by the name.
fn tagged_name(what: &str) -> String {
    let (mpid, mstart) = run::master_tag();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r = crate::os::random_u64();
    format!(
        "mc.{what}.{mpid}.{mstart}.{}.{n}.{r:016x}",
        std::process::id()
    )
}

/// Whether a tagged name belongs to a master that is no longer running.
fn tag_is_stale(name: &str, what: &str) -> bool {
    let Some(rest) = name.strip_prefix(&format!("mc.{what}.")) else {
        return false;
    };
    let mut f = rest.split('.');
    let (Some(Ok(pid)), Some(Ok(start))) = (
        f.next().map(str::parse::<u32>),
        f.next().map(str::parse::<u64>),
    ) else {
        return false;
    };
    !segment::process_alive(pid, start)
}

/// Removes temp files and named semaphores created through this module by
/// masters that are no longer running.
pub(crate) fn remove_stale_objects() -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if tag_is_stale(&name, "tmp") && std::fs::remove_file(e.path()).is_ok() {
                removed.push(e.path().display().to_string());
            }
        }
    }
    for e in std::fs::read_dir(segment::SHM_DIR)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(sem) = name.strip_prefix("sem.") {
            if tag_is_stale(sem, "sem") && sem::unlink(&format!("/{sem}")).is_ok() {
                removed.push(name);
            }
        }
    }
    Ok(removed)
}

/// Creates a pool of at most `max_size` bytes and registers it: the master
/// deletes its segment when the last process using it is gone (or when the
/// run ends). Processes started afterwards inherit the mapping; any other
/// process of the run opens it with [`open_pool`].
///
/// ```no_run
/// #[mc::process]
/// fn reader(d: mc::HeapDescr<u64>) -> u64 {
///     d.open().expect("open").copy().expect("copy")
/// }
///
/// mc::run(|| {
///     let (pool, _id) = mc::resources::create_pool(1 << 20).expect("pool");
///     let heap = mc::Heap::create(&pool, &42u64).expect("heap");
///     let pid = reader::start(heap.descr()).expect("start");
///     assert_eq!(reader::join(pid).expect("join"), 42);
/// })
/// .expect("run");
/// ```
///
/// # Errors
///
/// [`ProcessError::Pool`] when the pool cannot be created (see
/// [`Pool::create`](crate::Pool::create)); [`ProcessError::NotInWorker`]
/// outside the processes of a [`run`](crate::run); [`ProcessError::MasterGone`]
/// or [`ProcessError::Io`] when the master cannot be reached.
pub fn create_pool(max_size: usize) -> Result<(crate::Pool, ResourceId), ProcessError> {
    if !worker::in_worker() {
        return Err(ProcessError::NotInWorker);
    }
    let pool = crate::Pool::create(max_size).map_err(ProcessError::Pool)?;
    // The table deletes the segment; the creating handle must not.
    pool.persist();
    let id = manage(ResourceKind::Pool, pool.name())?;
    Ok((pool, id))
}

/// Opens a pool of the resource table (see [`create_pool`]), mapping it at
/// its address if this process has not mapped it yet; the caller becomes a
/// user.
///
/// # Errors
///
/// [`ProcessError::NoSuchResource`] when no resource has that id;
/// [`ProcessError::WrongKind`] when it is not a pool; [`ProcessError::Pool`]
/// when the pool cannot be attached (see
/// [`Pool::attach_segment`](crate::Pool::attach_segment));
/// [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn open_pool(id: ResourceId) -> Result<crate::Pool, ProcessError> {
    let info = lookup(id)?;
    if info.kind != ResourceKind::Pool {
        return Err(ProcessError::WrongKind {
            id,
            found: info.kind,
            expected: ResourceKind::Pool,
        });
    }
    crate::Pool::attach_segment(&info.name).map_err(ProcessError::Pool)
}

/// A temporary file in the resource table (deleted when its last user is
/// gone).
#[derive(Debug, Clone)]
pub struct TempFile {
    id: ResourceId,
    path: PathBuf,
}

/// Creates an empty temporary file (mode 0600, in [`std::env::temp_dir`])
/// and registers it; the caller is its first user.
///
/// ```no_run
/// mc::run(|| {
///     let f = mc::resources::create_temp_file().expect("temp file");
///     std::fs::write(f.path(), b"hello").expect("write");
/// })
/// .expect("run");
/// ```
///
/// # Errors
///
/// [`ProcessError::Io`] when the file cannot be created;
/// [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn create_temp_file() -> Result<TempFile, ProcessError> {
    use std::os::unix::fs::OpenOptionsExt;
    if !worker::in_worker() {
        return Err(ProcessError::NotInWorker);
    }
    let path = std::env::temp_dir().join(tagged_name("tmp"));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    match manage(ResourceKind::TempFile, path.to_string_lossy().into_owned()) {
        Ok(id) => Ok(TempFile { id, path }),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

impl TempFile {
    /// Looks up a temp file by id (the caller becomes a user).
    ///
    /// # Errors
    ///
    /// [`ProcessError::NoSuchResource`] when no resource has that id;
    /// [`ProcessError::WrongKind`] when it is not a temp file;
    /// [`ProcessError::NotInWorker`] outside the processes of a
    /// [`run`](crate::run); [`ProcessError::MasterGone`] or
    /// [`ProcessError::Io`] when the master cannot be reached.
    pub fn open(id: ResourceId) -> Result<TempFile, ProcessError> {
        let info = lookup_kind(id, ResourceKind::TempFile)?;
        Ok(TempFile {
            id,
            path: PathBuf::from(info.name),
        })
    }

    /// Its id.
    pub fn id(&self) -> ResourceId {
        self.id
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Releases it (see [`release`]).
    ///
    /// # Errors
    ///
    /// As [`release`].
    pub fn release(self) -> Result<(), ProcessError> {
        release(self.id)
    }
}

/// A plain POSIX shared memory block (a segment of kind
/// [`SegmentKind::Block`]), mapped in this process. Its bytes are seen
/// through atomics, which makes sharing them with other processes sound.
pub struct ShmBlock {
    id: ResourceId,
    name: String,
    map: Mapping,
    len: usize,
}

impl fmt::Debug for ShmBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmBlock")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("len", &self.len)
            .finish()
    }
}

const HEADER: usize = std::mem::size_of::<SegmentHeader>();

/// Creates a shared memory block of `size` usable bytes (after a
/// [`SegmentHeader`]; memory reserved up front, so touching it never raises
/// `SIGBUS`) and registers it; the caller is its first user.
///
/// # Errors
///
/// [`ProcessError::Io`] when the block cannot be created, reserved or mapped;
/// [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn create_shm_block(size: usize) -> Result<ShmBlock, ProcessError> {
    if !worker::in_worker() {
        return Err(ProcessError::NotInWorker);
    }
    let name = segment::fresh_name(SegmentKind::Block);
    let fd = segment::shm_create(&name)?;
    let total = (HEADER + size) as u64;
    let made = (|| -> io::Result<ShmBlock> {
        shm::set_len(&fd, total)?;
        segment::reserve(&fd, 0, total)?;
        let header = SegmentHeader::new(SegmentKind::Block, total, 0);
        shm::write_at(&fd, header.as_bytes(), 0)?;
        map_block(ResourceId(0), name.clone(), &fd, total as usize)
    })();
    let mut block = match made {
        Ok(b) => b,
        Err(e) => {
            let _ = segment::shm_unlink(&name);
            return Err(e.into());
        }
    };
    match manage(ResourceKind::ShmBlock, name.clone()) {
        Ok(id) => {
            block.id = id;
            Ok(block)
        }
        Err(e) => {
            let _ = segment::shm_unlink(&name);
            Err(e)
        }
    }
}

fn map_block(id: ResourceId, name: String, fd: &OwnedFd, total: usize) -> io::Result<ShmBlock> {
    if total < HEADER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "block too small",
        ));
    }
    Ok(ShmBlock {
        id,
        name,
        map: Mapping::shared(fd, total, false)?,
        len: total - HEADER,
    })
}

impl ShmBlock {
    /// Looks up a block by id and maps it (the caller becomes a user).
    ///
    /// # Errors
    ///
    /// [`ProcessError::NoSuchResource`] when no resource has that id;
    /// [`ProcessError::WrongKind`] when it is not a block; [`ProcessError::Io`]
    /// when the block cannot be opened or mapped, or is not an mc segment;
    /// [`ProcessError::NotInWorker`] outside the processes of a
    /// [`run`](crate::run); [`ProcessError::MasterGone`] or
    /// [`ProcessError::Io`] when the master cannot be reached.
    pub fn open(id: ResourceId) -> Result<ShmBlock, ProcessError> {
        let info = lookup_kind(id, ResourceKind::ShmBlock)?;
        let fd = segment::shm_open(&info.name)?;
        let header = segment::read_header(&fd)
            .map_err(|e| ProcessError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        Ok(map_block(id, info.name, &fd, header.size as usize)?)
    }

    /// Its id.
    pub fn id(&self) -> ResourceId {
        self.id
    }

    /// The shared memory object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of usable bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block has no usable bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The usable bytes, as atomics.
    pub fn bytes(&self) -> &[AtomicU8] {
        // SAFETY: the mapping is live while `self` is, is `len` bytes long
        // after the header, and `AtomicU8` has the size and alignment of
        // `u8`; other processes touch it only through atomics or raw
        // pointers.
        unsafe {
            std::slice::from_raw_parts(
                self.map.ptr().as_ptr().add(HEADER).cast::<AtomicU8>(),
                self.len,
            )
        }
    }

    /// A pointer to the first usable byte (for shared structures built on
    /// the block; accesses must be synchronised between processes).
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: `HEADER` bytes into a mapping at least that long.
        unsafe { self.map.ptr().as_ptr().add(HEADER) }
    }

    /// Releases it (see [`release`]) and unmaps it.
    ///
    /// # Errors
    ///
    /// As [`release`].
    pub fn release(self) -> Result<(), ProcessError> {
        release(self.id)
    }
}

/// A named POSIX semaphore (`sem_open`), opened in this process.
pub struct NamedSemaphore {
    id: ResourceId,
    name: String,
    sem: NamedSem,
}

impl fmt::Debug for NamedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedSemaphore")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

/// Creates a named semaphore with value `initial` and registers it; the
/// caller is its first user.
///
/// ```no_run
/// mc::run(|| {
///     let s = mc::resources::create_semaphore(1).expect("semaphore");
///     s.wait().expect("wait");
///     s.post().expect("post");
/// })
/// .expect("run");
/// ```
///
/// # Errors
///
/// [`ProcessError::Io`] when `sem_open` fails; [`ProcessError::NotInWorker`]
/// outside the processes of a [`run`](crate::run); [`ProcessError::MasterGone`]
/// or [`ProcessError::Io`] when the master cannot be reached.
pub fn create_semaphore(initial: u32) -> Result<NamedSemaphore, ProcessError> {
    if !worker::in_worker() {
        return Err(ProcessError::NotInWorker);
    }
    let name = format!("/{}", tagged_name("sem"));
    let sem = NamedSem::create(&name, initial)?;
    match manage(ResourceKind::Semaphore, name.clone()) {
        Ok(id) => Ok(NamedSemaphore { id, name, sem }),
        Err(e) => {
            let _ = sem::unlink(&name);
            Err(e)
        }
    }
}

impl NamedSemaphore {
    /// Looks up a semaphore by id and opens it (the caller becomes a user).
    ///
    /// # Errors
    ///
    /// [`ProcessError::NoSuchResource`] when no resource has that id;
    /// [`ProcessError::WrongKind`] when it is not a semaphore;
    /// [`ProcessError::Io`] when `sem_open` fails;
    /// [`ProcessError::NotInWorker`] outside the processes of a
    /// [`run`](crate::run); [`ProcessError::MasterGone`] or
    /// [`ProcessError::Io`] when the master cannot be reached.
    pub fn open(id: ResourceId) -> Result<NamedSemaphore, ProcessError> {
        let info = lookup_kind(id, ResourceKind::Semaphore)?;
        let sem = NamedSem::open(&info.name)?;
        Ok(NamedSemaphore {
            id,
            name: info.name,
            sem,
        })
    }

    /// Its id.
    pub fn id(&self) -> ResourceId {
        self.id
    }

    /// Its name (starting with `/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Increments the value.
    ///
    /// # Errors
    ///
    /// The [`io::Error`] of `sem_post` (`EOVERFLOW` at the largest value).
    pub fn post(&self) -> io::Result<()> {
        self.sem.post()
    }

    /// Waits until the value is positive, then decrements it.
    ///
    /// # Errors
    ///
    /// The [`io::Error`] of `sem_wait` (interruptions are retried).
    pub fn wait(&self) -> io::Result<()> {
        self.sem.wait()
    }

    /// Decrements the value if it is positive; `false` otherwise.
    ///
    /// # Errors
    ///
    /// The [`io::Error`] of `sem_trywait`, except `EAGAIN` (`Ok(false)`).
    pub fn try_wait(&self) -> io::Result<bool> {
        self.sem.try_wait()
    }

    /// The current value.
    ///
    /// # Errors
    ///
    /// The [`io::Error`] of `sem_getvalue`.
    pub fn value(&self) -> io::Result<i32> {
        self.sem.value()
    }

    /// Releases it (see [`release`]) and closes it.
    ///
    /// # Errors
    ///
    /// As [`release`].
    pub fn release(self) -> Result<(), ProcessError> {
        release(self.id)
    }
}
