//! Camlboxes: typed zero-copy mailboxes between processes.
//!
//! A [`Camlbox<T>`] is created by its single receiver with a fixed number of
//! slots and a fixed maximum message size. Any number of [`Sender<T>`]s, in
//! the same process family (from the box's [`CamlboxId`]) or in any process
//! of the same user (by name), copy values straight into free slots; the
//! receiver [`wait`](Camlbox::wait)s for them, reads them in place through a
//! [`Message`] guard, copies them out, and [`delete`](Camlbox::delete)s them.
//!
//! - Senders map the box wherever the kernel puts it: every pointer of a
//!   message is written as the *receiver* sees it (the receiver's base
//!   address is recorded in the box), so messages are read in place without
//!   any fix-up.
//! - Senders claim slots with a compare-and-swap on per-slot state words:
//!   no global lock, and concurrent senders start at different slots.
//! - A message is validated (every pointer inside the slot, tags, UTF-8, …)
//!   before it can be borrowed, whoever wrote it: a malformed message is an
//!   [`Err`], never a crash.
//! - A message too big for a slot is an error and the slot stays usable; a
//!   sender that dies while writing does not lose its slot (the receiver,
//!   and senders that find the box full, reclaim it).
//!
//! Validation checks a message as it is when [`Camlbox::get`] is called. A
//! process that ignores the slot protocol and rewrites a ready slot while
//! the receiver reads it is outside what validation can catch (as with any
//! shared memory writable by others): open boxes by name only to processes
//! you trust not to do that.
//!
//! ```no_run
//! #[mc::process]
//! fn greeter(id: mc::CamlboxId<String>) {
//!     let tx = id.sender().expect("open box");
//!     tx.send(&"Hello world".to_string()).expect("send");
//! }
//!
//! mc::run(|| {
//!     let (mut rx, id) = mc::Camlbox::<String>::create(1, 100).expect("box");
//!     let pid = greeter::start(id).expect("start");
//!     let slots = rx.wait();
//!     let text = rx.get_copy(slots[0]).expect("message");
//!     rx.delete(slots[0]);
//!     greeter::join(pid).expect("join");
//!     println!("Message: {text}");
//! })
//! .expect("run");
//! ```

mod layout;
#[cfg(test)]
mod tests;

use std::alloc::Layout;
use std::cell::Cell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::process::resources::{self, ResourceId, ResourceKind};
use crate::process::{worker, ProcessError};
use crate::segment::{self, SegmentError, SegmentHeader, SegmentKind};
use crate::sync::futex;
use crate::sync::home::Home;
use crate::value::{self, Allocate, CopyError, Invalid, Shared, Writer};
use layout::{Region, READY, WRITING};

/// How long `wait` and a blocked `send` spin before they sleep. A blocking
/// wake-up costs tens of microseconds on a small VM; a message that arrives
/// within this window is picked up without one.
const SPIN: Duration = Duration::from_micros(100);

/// Why a camlbox operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CamlboxError {
    /// The message does not fit in a slot; the slot was released.
    TooBig {
        /// The bytes the message needs (inline part, children, alignment).
        needed: usize,
        /// The bytes a slot holds.
        capacity: usize,
    },
    /// The message in the slot is malformed (written by a faulty or hostile
    /// process); the slot can still be deleted.
    Invalid(Invalid),
    /// `try_send` found no free slot.
    Full,
    /// The timeout passed.
    Timeout,
    /// The slot number is out of range or holds no ready message.
    NotReady(usize),
    /// The box stores another type.
    WrongType {
        /// The fingerprint of the requested type.
        expected: u64,
        /// The fingerprint recorded in the box.
        found: u64,
    },
    /// The geometry is invalid (zero slots, or too large).
    BadGeometry,
    /// The machine's shared memory (`/dev/shm`) has no room for the box.
    OutOfMemory {
        /// Bytes the box needs (all its slots and headers).
        requested: usize,
        /// Bytes still free in `/dev/shm`.
        available: usize,
    },
    /// The calling process is not the box's receiver (a receiver is tied to
    /// the process that created it; a forked copy cannot receive).
    NotReceiver,
    /// The message holds a lock that the sending thread holds: release it
    /// before sending.
    Locked,
    /// Another process cut the box's segment short: what lay past the cut
    /// is gone.
    Truncated {
        /// The segment's size now, in bytes (0 when unknown).
        size: u64,
        /// The size it must have.
        expected: u64,
    },
    /// The segment is not a camlbox of this version.
    Segment(SegmentError),
    /// The resource table refused.
    Process(ProcessError),
    /// A system call failed.
    Io(io::Error),
}

impl fmt::Display for CamlboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CamlboxError::TooBig { needed, capacity } => write!(
                f,
                "the message needs {needed} bytes but a slot holds {capacity}"
            ),
            CamlboxError::Invalid(e) => write!(f, "malformed message: {e}"),
            CamlboxError::Full => write!(f, "the camlbox is full"),
            CamlboxError::Timeout => write!(f, "timed out"),
            CamlboxError::NotReady(i) => write!(f, "slot {i} holds no ready message"),
            CamlboxError::WrongType { expected, found } => write!(
                f,
                "the camlbox stores another type (fingerprint {found:#x}, expected {expected:#x})"
            ),
            CamlboxError::BadGeometry => write!(f, "invalid number of slots or message size"),
            CamlboxError::OutOfMemory {
                requested,
                available,
            } => write!(
                f,
                "out of shared memory: the camlbox needs {requested} bytes, {available} are free \
                 in /dev/shm (use fewer or smaller slots, or free memory in /dev/shm)"
            ),
            CamlboxError::NotReceiver => write!(
                f,
                "this process is not the receiver of the camlbox (it was created in another \
                 process): create the box in the process that receives"
            ),
            CamlboxError::Locked => write!(
                f,
                "the message holds a lock that this thread holds: release it before sending"
            ),
            CamlboxError::Truncated { size, expected } => write!(
                f,
                "the camlbox's segment was cut short by another process ({size} bytes of \
                 {expected}): its messages are lost; create a new box"
            ),
            CamlboxError::Segment(e) => write!(f, "{e}"),
            CamlboxError::Process(e) => write!(f, "{e}"),
            CamlboxError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CamlboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CamlboxError::Invalid(e) => Some(e),
            CamlboxError::Process(e) => Some(e),
            CamlboxError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for CamlboxError {
    fn from(e: io::Error) -> Self {
        CamlboxError::Io(e)
    }
}

impl From<ProcessError> for CamlboxError {
    fn from(e: ProcessError) -> Self {
        CamlboxError::Process(e)
    }
}

/// The typed id of a camlbox: pass it to other processes of the family
/// (it is serde-able) and make senders with [`CamlboxId::sender`].
///
/// The id carries the message type, so it cannot make a sender of another
/// type; a process that opens the box by name with another type gets
/// [`CamlboxError::WrongType`].
///
/// ```
/// let (_rx, id) = mc::Camlbox::<(u32, String)>::create(2, 128).unwrap();
/// let wire = postcard::to_allocvec(&id).unwrap();
/// let back: mc::CamlboxId<(u32, String)> = postcard::from_bytes(&wire).unwrap();
/// assert_eq!(back.name(), id.name());
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct CamlboxId<T> {
    resource: Option<ResourceId>,
    name: String,
    #[serde(skip)]
    _type: PhantomData<fn(T) -> T>,
}

impl<T: Shared> crate::value::DescrParts for CamlboxId<T> {
    type Parts = (Option<u64>, String);
    fn to_parts(&self) -> Self::Parts {
        (self.resource.map(ResourceId::get), self.name.clone())
    }
    fn from_parts((resource, name): Self::Parts) -> Self {
        CamlboxId {
            resource: resource.map(ResourceId),
            name,
            _type: PhantomData,
        }
    }
}

crate::value::descr::shared_descr!(
    [T: Shared] CamlboxId<T>,
    crate::value::fingerprint_combine(&[
        crate::value::fingerprint_str("mc::CamlboxId"),
        T::FINGERPRINT
    ]),
    crate::value::fingerprint_combine(&[
        crate::value::fingerprint_str("mc::CamlboxId"),
        T::SHALLOW_FINGERPRINT
    ])
);

impl<T> PartialEq for CamlboxId<T> {
    fn eq(&self, o: &Self) -> bool {
        self.resource == o.resource && self.name == o.name
    }
}

impl<T> Eq for CamlboxId<T> {}

impl<T> Clone for CamlboxId<T> {
    fn clone(&self) -> Self {
        CamlboxId {
            resource: self.resource,
            name: self.name.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for CamlboxId<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CamlboxId")
            .field("resource", &self.resource)
            .field("name", &self.name)
            .finish()
    }
}

impl<T: Shared> CamlboxId<T> {
    /// The box's name (as given to [`Camlbox::create_named`], or the fresh
    /// name of an anonymous box), usable with [`Sender::open`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The box's id in the resource table, when it was created inside
    /// [`mc::run`](crate::run).
    pub fn resource(&self) -> Option<ResourceId> {
        self.resource
    }

    /// Opens a sender. Inside the process family this registers the caller
    /// as a user of the box in the resource table (so the segment stays
    /// until the caller ends); elsewhere it opens the box by name.
    pub fn sender(&self) -> Result<Sender<T>, CamlboxError> {
        if let (Some(id), true) = (self.resource, worker::in_worker()) {
            let info = resources::lookup(id)?;
            return Sender::open_segment(&info.name);
        }
        Sender::open(&self.name)
    }
}

fn segment_name(name: &str) -> String {
    format!(
        "{}{}.{name}",
        segment::NAME_PREFIX,
        SegmentKind::Camlbox.name()
    )
}

/// A mapping of a camlbox segment, unmapped on drop.
struct Mapping {
    region: Region,
    len: usize,
    /// Registration with the fault handler: a truncation of the segment by
    /// another process is then an error, not a `SIGBUS`.
    guard: Option<crate::os::fault::Guard>,
}

impl Mapping {
    fn new(region: Region, len: usize) -> Mapping {
        let guard = crate::os::fault::guard(region.base() as usize, len);
        Mapping { region, len, guard }
    }

    /// Whether another process cut the segment short under this mapping.
    fn truncated(&self) -> bool {
        self.guard.as_ref().is_some_and(|g| g.truncated())
    }
}

// SAFETY: the mapping is shared memory whose mutable parts are atomics or
// slot bytes owned (by the slot protocol) by one party at a time; the
// handle itself may move between and be used from several threads.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unregistered before the range is unmapped (and maybe reused).
        drop(self.guard.take());
        // SAFETY: unmaps the mapping this handle made; every borrow of its
        // memory is tied to a handle that holds this mapping.
        unsafe { libc::munmap(self.region.base().cast(), self.len) };
    }
}

fn map(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
    // SAFETY: maps `len` bytes of an object we hold open; the kernel picks
    // the address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

thread_local! {
    static WRITER: Cell<(u32, u64)> = const { Cell::new((0, 0)) };
}

/// The calling thread's id and start time (cached per thread; refreshed
/// after `fork`, when the id changes).
fn writer_identity() -> (u32, u64) {
    let tid = futex::current_tid();
    let (t, s) = WRITER.with(|w| w.get());
    if t == tid {
        return (t, s);
    }
    let start = segment::process_start_time(tid).unwrap_or(0);
    WRITER.with(|w| w.set((tid, start)));
    (tid, start)
}

/// The receiving end of a camlbox of `T` messages.
///
/// Made with [`Camlbox::create`] or [`Camlbox::create_named`]; there is one
/// receiver per box. Dropping it unmaps the box; the segment is deleted when
/// the last user of the box ends (inside [`mc::run`](crate::run)), or at
/// once (outside).
pub struct Camlbox<T: Shared> {
    map: Mapping,
    /// The process that created the box, the only one that may receive:
    /// a copy made by `fork` (every worker is a fork of the master) must
    /// not delete slots that the real receiver has borrowed.
    owner: Home,
    /// `!Sync`: one thread receives at a time, so that no thread validates
    /// a slot (reading it as bytes) while another writes a lock in it.
    _not_sync: PhantomData<Cell<()>>,
    resource: Option<ResourceId>,
    segment: String,
    /// Slots already returned by `wait` and not yet deleted.
    seen: Vec<bool>,
    _type: PhantomData<fn(T) -> T>,
}

impl<T: Shared> fmt::Debug for Camlbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Camlbox")
            .field("segment", &self.segment)
            .field("slots", &self.capacity())
            .field("msg_size", &self.msg_size())
            .finish()
    }
}

impl<T: Shared> Camlbox<T> {
    /// Creates an anonymous box with `slots` slots of `msg_size` bytes
    /// each, returning the receiver and the id to hand to senders.
    ///
    /// Inside [`mc::run`](crate::run) the box is registered in the resource
    /// table (the master deletes it at the latest when the run ends).
    ///
    /// ```
    /// let (rx, id) = mc::Camlbox::<Vec<u64>>::create(4, 256).unwrap();
    /// assert_eq!(rx.capacity(), 4);
    /// assert_eq!(rx.msg_size(), 256);
    /// # drop(id);
    /// ```
    pub fn create(
        slots: usize,
        msg_size: usize,
    ) -> Result<(Camlbox<T>, CamlboxId<T>), CamlboxError> {
        let full = segment::fresh_name(SegmentKind::Camlbox);
        let prefix = segment_name("");
        let short = full[prefix.len()..].to_string();
        Self::create_inner(short, full, slots, msg_size)
    }

    /// Creates a box named `name` (segment `mc.box.<name>`), which any
    /// process of the same user can open with [`Sender::open`]. Fails if
    /// the name is taken.
    ///
    /// ```
    /// let name = format!("doc-{}", std::process::id());
    /// let (mut rx, _id) = mc::Camlbox::<u64>::create_named(&name, 2, 64).unwrap();
    /// let tx = mc::camlbox::Sender::<u64>::open(&name).unwrap();
    /// tx.send(&7).unwrap();
    /// let slots = rx.wait();
    /// assert_eq!(rx.get_copy(slots[0]).unwrap(), 7);
    /// rx.delete(slots[0]);
    /// ```
    pub fn create_named(
        name: &str,
        slots: usize,
        msg_size: usize,
    ) -> Result<(Camlbox<T>, CamlboxId<T>), CamlboxError> {
        Self::create_inner(name.to_string(), segment_name(name), slots, msg_size)
    }

    fn create_inner(
        short: String,
        full: String,
        slots: usize,
        msg_size: usize,
    ) -> Result<(Camlbox<T>, CamlboxId<T>), CamlboxError> {
        if slots == 0 || slots > u32::MAX as usize / 2 || msg_size > u32::MAX as usize / 2 {
            return Err(CamlboxError::BadGeometry);
        }
        let total = layout::total_size(slots, msg_size).ok_or(CamlboxError::BadGeometry)?;
        let fd = segment::shm_create(&full)?;
        let made = (|| -> io::Result<Mapping> {
            // SAFETY: plain syscall on a valid descriptor.
            if unsafe { libc::ftruncate(fd.as_raw_fd(), total as libc::off_t) } != 0 {
                return Err(io::Error::last_os_error());
            }
            segment::reserve(&fd, 0, total as u64)?;
            let base = map(&fd, total)?;
            // SAFETY: a fresh, page-aligned, zero-filled mapping of `total`
            // bytes; nobody else can read it before the magic is written.
            let region = unsafe { Region::init(base, slots, msg_size) };
            region
                .header()
                .receiver_base
                .store(base as u64, Ordering::Relaxed);
            let header = SegmentHeader::new(SegmentKind::Camlbox, total as u64, T::FINGERPRINT);
            std::sync::atomic::fence(Ordering::SeqCst);
            // SAFETY: the first 64 bytes of the mapping hold the segment
            // header, which we own until the segment is published.
            unsafe { base.cast::<SegmentHeader>().write(header) };
            Ok(Mapping::new(region, total))
        })();
        let map = match made {
            Ok(m) => m,
            Err(e) => {
                let _ = segment::shm_unlink(&full);
                if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::ENOMEM)) {
                    return Err(CamlboxError::OutOfMemory {
                        requested: total,
                        available: segment::shm_free_bytes(),
                    });
                }
                return Err(e.into());
            }
        };
        let resource = if worker::in_worker() {
            match resources::manage(ResourceKind::Camlbox, full.clone()) {
                Ok(id) => Some(id),
                Err(e) => {
                    let _ = segment::shm_unlink(&full);
                    return Err(e.into());
                }
            }
        } else {
            None
        };
        let rx = Camlbox {
            map,
            owner: Home::here(),
            _not_sync: PhantomData,
            resource,
            segment: full,
            seen: vec![false; slots],
            _type: PhantomData,
        };
        let id = CamlboxId {
            resource,
            name: short,
            _type: PhantomData,
        };
        Ok((rx, id))
    }

    fn region(&self) -> &Region {
        &self.map.region
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.region().slots()
    }

    /// The bytes a message may take in a slot.
    pub fn msg_size(&self) -> usize {
        self.region().msg_size()
    }

    /// The number of messages ready in the box (returned by `wait` or not).
    pub fn messages(&self) -> usize {
        self.region().ready_count()
    }

    /// The shared memory segment's name.
    pub fn segment_name(&self) -> &str {
        &self.segment
    }

    /// Frees the slots of senders that died while writing; returns how
    /// many. `wait` does this by itself while it sleeps.
    pub fn reclaim_dead_writers(&self) -> usize {
        if !self.is_receiver() {
            return 0;
        }
        self.region().reclaim_dead_writers()
    }

    /// Whether another process cut the box's segment short (a fault was
    /// contained: the memory past the cut reads zeros in this process).
    /// `wait` then returns no slots and `get` fails with
    /// [`CamlboxError::Truncated`].
    pub fn is_truncated(&self) -> bool {
        self.map.truncated()
    }

    fn check_intact(&self) -> Result<(), CamlboxError> {
        if self.map.truncated() {
            return Err(CamlboxError::Truncated {
                size: segment_size(&self.segment),
                expected: self.map.len as u64,
            });
        }
        Ok(())
    }

    /// Whether the calling process is this box's receiver (the process
    /// that created it). In any other process (a forked copy) `wait`
    /// returns no slots, `get` fails with [`CamlboxError::NotReceiver`] and
    /// `delete` does nothing.
    pub fn is_receiver(&self) -> bool {
        self.owner.is_here()
    }

    fn collect(&mut self, out: &mut Vec<usize>) {
        let r = self.map.region;
        for (i, seen) in self.seen.iter_mut().enumerate() {
            if !*seen && r.slot(i).state.load(Ordering::Acquire) == READY {
                *seen = true;
                out.push(i);
            }
        }
    }

    /// Waits until messages arrive and returns the slots that became ready
    /// since the last call (spins briefly, then sleeps). Returns an empty
    /// list when a sender called [`Sender::wake`].
    ///
    /// Slots are listed in slot order, not in the order they were sent.
    ///
    /// ```
    /// let (mut rx, id) = mc::Camlbox::<u64>::create(4, 64).unwrap();
    /// let tx = id.sender().unwrap();
    /// tx.send(&1).unwrap();
    /// tx.send(&2).unwrap();
    /// let slots = rx.wait();
    /// let sum: u64 = slots.iter().map(|&s| rx.get_copy(s).unwrap()).sum();
    /// assert_eq!(sum, 3);
    /// for s in slots {
    ///     rx.delete(s);
    /// }
    /// tx.wake();
    /// assert!(rx.wait().is_empty());
    /// ```
    pub fn wait(&mut self) -> Vec<usize> {
        self.wait_until(None)
    }

    /// Like [`wait`](Camlbox::wait), but returns an empty list after
    /// `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Vec<usize> {
        self.wait_until(futex::deadline(Some(timeout)).or(Some(far_future())))
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> Vec<usize> {
        let mut out = Vec::new();
        if !self.is_receiver() || self.map.truncated() {
            return out;
        }
        let r = self.map.region;
        let h = r.header();
        let take_wake = || {
            let w = h.wake_requests.load(Ordering::Acquire);
            w != 0
                && h.wake_requests
                    .compare_exchange(w, w - 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
        };
        let spin_start = Instant::now();
        let mut spins = 0u32;
        loop {
            if take_wake() {
                return out;
            }
            self.collect(&mut out);
            if !out.is_empty() || self.map.truncated() {
                return out;
            }
            spins += 1;
            if spins % 64 == 0 {
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return out;
                }
                if now - spin_start >= SPIN {
                    break;
                }
                if spins % 1024 == 0 {
                    std::thread::yield_now();
                }
            }
            std::hint::spin_loop();
        }
        loop {
            let Some(slice) = futex::next_slice(deadline) else {
                return out;
            };
            // Announce the sleep, then rescan (see `Region::publish`).
            h.receiver_sleeping.store(1, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            let seq = h.notify.load(Ordering::SeqCst);
            if take_wake() {
                h.receiver_sleeping.store(0, Ordering::SeqCst);
                return out;
            }
            self.collect(&mut out);
            if !out.is_empty() {
                h.receiver_sleeping.store(0, Ordering::SeqCst);
                return out;
            }
            let woken = futex::wait(&h.notify, seq, Some(slice));
            h.receiver_sleeping.store(0, Ordering::SeqCst);
            if self.map.truncated() {
                return out;
            }
            if woken == futex::Wait::TimedOut {
                r.reclaim_dead_writers();
            }
        }
    }

    fn check_slot(&self, slot: usize) -> Result<(), CamlboxError> {
        if !self.is_receiver() {
            return Err(CamlboxError::NotReceiver);
        }
        self.check_intact()?;
        let r = self.region();
        if slot >= r.slots() || r.slot(slot).state.load(Ordering::Acquire) != READY {
            // Reading the state may have found the segment cut short.
            self.check_intact()?;
            return Err(CamlboxError::NotReady(slot));
        }
        Ok(())
    }

    /// Validates the message in `slot` and returns its root, as the
    /// receiver sees it.
    fn root(&self, slot: usize) -> Result<*const T::Repr, CamlboxError> {
        self.check_slot(slot)?;
        let r = self.region();
        let s = r.slot(slot);
        let used = (s.used.load(Ordering::Relaxed) as usize).min(r.msg_size());
        let root = s.root_offset.load(Ordering::Relaxed) as usize;
        // SAFETY: slot data is `msg_size` bytes inside the mapping, which
        // lives as long as `self`; a ready slot is written by nobody while
        // it is ready (slot protocol), so it does not change while borrowed.
        let data = unsafe { std::slice::from_raw_parts(r.data(slot), used) };
        value::validate_region::<T>(data, root).map_err(CamlboxError::Invalid)?;
        // A cut during validation: the bytes read may be zeros standing in
        // for lost ones.
        self.check_intact()?;
        // The root comes from the mapping's raw pointer, not from the byte
        // slice used for validation (locks in the message are written
        // through it).
        Ok(r.data(slot).wrapping_add(root).cast_const().cast())
    }

    /// Borrows the message in `slot` in place, after validating it.
    ///
    /// The returned guard borrows the receiver, so the slot cannot be
    /// deleted (nor the receiver wait) while the message is in use.
    /// Validation walks the message once (a few nanoseconds for a small
    /// message, about 1.5 µs for a vector of 100 strings); a malformed
    /// message is [`CamlboxError::Invalid`] and can still be deleted.
    ///
    /// ```
    /// let (mut rx, id) = mc::Camlbox::<Vec<String>>::create(1, 256).unwrap();
    /// id.sender().unwrap().send(&vec!["a".into(), "b".into()]).unwrap();
    /// let slot = rx.wait()[0];
    /// let m = rx.get(slot).unwrap();
    /// assert_eq!(m.len(), 2);
    /// assert_eq!(m.as_slice()[1].as_str(), "b");
    /// drop(m);
    /// rx.delete(slot);
    /// ```
    pub fn get(&self, slot: usize) -> Result<Message<'_, T>, CamlboxError> {
        let root = self.root(slot)?;
        // SAFETY: `root` points to a validated `T::Repr` inside the slot,
        // which stays mapped and unchanged while `self` is borrowed
        // (deleting takes `&mut self`).
        let repr = unsafe { &*root };
        Ok(Message {
            repr,
            slot,
            home: self.owner,
        })
    }

    /// Copies the message in `slot` out (after validating it).
    pub fn get_copy(&self, slot: usize) -> Result<T, CamlboxError> {
        let m = self.get(slot)?;
        Ok(T::from_repr(m.repr))
    }

    /// Frees `slot` (whether or not its message was valid); senders may
    /// reuse it at once. Does nothing when the slot holds no ready message.
    pub fn delete(&mut self, slot: usize) {
        if self.check_slot(slot).is_err() {
            return;
        }
        self.seen[slot] = false;
        self.region().free(slot);
    }
}

/// The size of a segment by name (0 when it cannot be opened).
fn segment_size(name: &str) -> u64 {
    segment::shm_open(name)
        .and_then(|fd| segment::object_size(&fd))
        .unwrap_or(0)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

impl<T: Shared> Drop for Camlbox<T> {
    fn drop(&mut self) {
        if !self.is_receiver() {
            // A forked copy: the box belongs to the receiver's process.
            return;
        }
        match self.resource {
            Some(id) if worker::in_worker() => {
                let _ = resources::release(id);
            }
            Some(_) => {}
            None => {
                let _ = segment::shm_unlink(&self.segment);
            }
        }
    }
}

/// A message borrowed in place from a camlbox slot; dereferences to the
/// shared representation of `T`.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took the guard (a
/// copy that `fork` made, through a static or a thread-local); such a copy
/// releases nothing when dropped.
///
/// ```
/// let (mut rx, id) = mc::Camlbox::<String>::create(1, 64).unwrap();
/// id.sender().unwrap().send(&"hi".to_string()).unwrap();
/// let slot = rx.wait()[0];
/// {
///     let m = rx.get(slot).unwrap();
///     assert_eq!(m.as_str(), "hi");
/// }
/// rx.delete(slot);
/// ```
pub struct Message<'a, T: Shared> {
    repr: &'a T::Repr,
    slot: usize,
    /// The receiving process: in a copy made by `fork` the slot may be
    /// deleted and rewritten at any time.
    home: Home,
}

impl<T: Shared> Message<'_, T> {
    /// The slot it is in.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Copies the message out.
    pub fn to_value(&self) -> T {
        T::from_repr(self)
    }
}

impl<T: Shared> Deref for Message<'_, T> {
    type Target = T::Repr;
    #[inline]
    fn deref(&self) -> &T::Repr {
        self.home.check("camlbox Message");
        self.repr
    }
}

/// The sending end of a camlbox of `T` messages. Senders can be cloned and
/// shared between threads; each maps the box at its own address.
///
/// ```
/// use std::time::Duration;
/// use mc::camlbox::CamlboxError;
///
/// let (mut rx, id) = mc::Camlbox::<Vec<u64>>::create(1, 64).unwrap();
/// let tx = id.sender().unwrap();
/// tx.send(&vec![1, 2, 3]).unwrap();
/// // The only slot is taken.
/// assert!(matches!(tx.try_send(&vec![4]), Err(CamlboxError::Full)));
/// assert!(matches!(
///     tx.send_timeout(&vec![4], Duration::from_millis(1)),
///     Err(CamlboxError::Timeout)
/// ));
/// // Too big for a slot: an error, and the slot is not lost.
/// let slot = rx.wait()[0];
/// rx.delete(slot);
/// assert!(matches!(tx.send(&vec![0; 100]), Err(CamlboxError::TooBig { .. })));
/// tx.try_send(&vec![4]).unwrap();
/// ```
pub struct Sender<T: Shared> {
    map: Arc<Mapping>,
    /// Where the next claim starts: after the slot last claimed.
    next: AtomicUsize,
    _type: PhantomData<fn(T) -> T>,
}

impl<T: Shared> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            map: self.map.clone(),
            next: AtomicUsize::new(self.next.load(Ordering::Relaxed).wrapping_add(7)),
            _type: PhantomData,
        }
    }
}

impl<T: Shared> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("slots", &self.map.region.slots())
            .field("msg_size", &self.map.region.msg_size())
            .finish()
    }
}

/// Bump-allocates inside one slot; target addresses are where the receiver
/// sees the slot.
struct SlotAlloc {
    local: NonNull<u8>,
    target: usize,
    len: usize,
    next: usize,
}

// SAFETY: allocations are disjoint, increasing ranges of the slot's data
// (owned by the writing sender while the slot is claimed), aligned as
// requested in the receiver's address space — and hence locally too (for
// alignments up to the page size), since both mappings are page-aligned and
// the data is at the same offset in each.
unsafe impl Allocate for SlotAlloc {
    fn allocate(&mut self, layout: Layout) -> Result<(NonNull<u8>, usize), CopyError> {
        let addr = self
            .target
            .checked_add(self.next)
            .and_then(|a| a.checked_next_multiple_of(layout.align()))
            .ok_or(CopyError::Overflow)?;
        let offset = addr - self.target;
        let end = offset
            .checked_add(layout.size())
            .ok_or(CopyError::Overflow)?;
        if end > self.len {
            return Err(CopyError::OutOfSpace {
                requested: layout.size(),
            });
        }
        // SAFETY: `offset <= end <= len`: inside (or one past) the slot.
        let local = unsafe { self.local.add(offset) };
        if (local.as_ptr() as usize) % layout.align() != 0 {
            // Alignments above the page size cannot be honoured in both
            // mappings.
            return Err(CopyError::Overflow);
        }
        self.next = end;
        Ok((local, addr))
    }
}

impl<T: Shared> Sender<T> {
    /// Opens the box named `name` (as given to [`Camlbox::create_named`],
    /// or [`CamlboxId::name`]); works from any process of the same user.
    /// Fails with [`CamlboxError::WrongType`] if the box stores another
    /// type.
    pub fn open(name: &str) -> Result<Sender<T>, CamlboxError> {
        Self::open_segment(&segment_name(name))
    }

    fn open_segment(full: &str) -> Result<Sender<T>, CamlboxError> {
        let fd = segment::shm_open(full)?;
        let header = segment::read_header(&fd).map_err(CamlboxError::Segment)?;
        if SegmentKind::from_u32(header.kind) != Some(SegmentKind::Camlbox) {
            return Err(CamlboxError::Segment(SegmentError::NotMc));
        }
        if header.fingerprint != T::FINGERPRINT {
            return Err(CamlboxError::WrongType {
                expected: T::FINGERPRINT,
                found: header.fingerprint,
            });
        }
        // SAFETY: plain fstat into a live local.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and pointer to a live local.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        let len = header.size as usize;
        if (st.st_size as u64) < header.size {
            return Err(CamlboxError::Truncated {
                size: st.st_size as u64,
                expected: header.size,
            });
        }
        let base = map(&fd, len)?;
        // SAFETY: a page-aligned mapping of `len` bytes that stays mapped
        // as long as the `Mapping` below; the geometry never changes after
        // creation.
        let region = match unsafe { Region::open(base, len) } {
            Some(r) => r,
            None => {
                // SAFETY: unmaps the mapping just made.
                unsafe { libc::munmap(base.cast(), len) };
                return Err(CamlboxError::Segment(SegmentError::NotMc));
            }
        };
        // Spread the senders' starting points over the slots.
        let start = (futex::current_tid() as usize).wrapping_mul(0x9e37_79b9) >> 8;
        Ok(Sender {
            map: Arc::new(Mapping::new(region, len)),
            next: AtomicUsize::new(start),
            _type: PhantomData,
        })
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.map.region.slots()
    }

    /// The bytes a message may take in a slot.
    pub fn msg_size(&self) -> usize {
        self.map.region.msg_size()
    }

    /// Interrupts the receiver's current (or next) `wait`, which returns an
    /// empty list.
    pub fn wake(&self) {
        self.map.region.wake_receiver();
    }

    /// Sends `value`, waiting while the box is full.
    ///
    /// Fails with [`CamlboxError::TooBig`] if the value does not fit in a
    /// slot (the slot is released at once).
    pub fn send(&self, value: &T) -> Result<(), CamlboxError> {
        let slot = self.claim(None)?;
        self.write(slot, value)
    }

    /// Sends `value`, waiting at most `timeout` for a free slot.
    pub fn send_timeout(&self, value: &T, timeout: Duration) -> Result<(), CamlboxError> {
        let deadline = futex::deadline(Some(timeout)).unwrap_or_else(far_future);
        let slot = self.claim(Some(deadline))?;
        self.write(slot, value)
    }

    /// Sends `value` if a slot is free, or fails with
    /// [`CamlboxError::Full`].
    pub fn try_send(&self, value: &T) -> Result<(), CamlboxError> {
        let r = &self.map.region;
        let (tid, _) = writer_identity();
        let slot = match self.claim_once(tid) {
            Some(s) => s,
            None => {
                if r.reclaim_dead_writers() == 0 {
                    return Err(CamlboxError::Full);
                }
                self.claim_once(tid).ok_or(CamlboxError::Full)?
            }
        };
        self.write(slot, value)
    }

    /// One claim attempt from this sender's starting point.
    fn claim_once(&self, tid: u32) -> Option<usize> {
        let r = &self.map.region;
        let slot = r.claim(tid, self.next.load(Ordering::Relaxed) % r.slots())?;
        self.next.store(slot + 1, Ordering::Relaxed);
        Some(slot)
    }

    fn claim(&self, deadline: Option<Instant>) -> Result<usize, CamlboxError> {
        self.check_intact()?;
        let r = &self.map.region;
        let (tid, _) = writer_identity();
        if let Some(s) = self.claim_once(tid) {
            return Ok(s);
        }
        let spin_start = Instant::now();
        let mut spins = 0u32;
        while spin_start.elapsed() < SPIN {
            for _ in 0..32 {
                std::hint::spin_loop();
            }
            spins += 1;
            if spins % 16 == 0 {
                std::thread::yield_now();
            }
            if let Some(s) = self.claim_once(tid) {
                return Ok(s);
            }
        }
        let h = r.header();
        loop {
            let Some(slice) = futex::next_slice(deadline) else {
                return Err(CamlboxError::Timeout);
            };
            // Count ourselves as waiting, then retry (see `Region::free`).
            h.free_waiters.fetch_add(1, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            let seq = h.free_seq.load(Ordering::SeqCst);
            if let Some(s) = self.claim_once(tid) {
                h.free_waiters.fetch_sub(1, Ordering::SeqCst);
                return Ok(s);
            }
            let woken = futex::wait(&h.free_seq, seq, Some(slice));
            h.free_waiters.fetch_sub(1, Ordering::SeqCst);
            if woken == futex::Wait::TimedOut {
                r.reclaim_dead_writers();
            }
            if let Some(s) = self.claim_once(tid) {
                return Ok(s);
            }
        }
    }

    /// [`CamlboxError::Truncated`] when another process cut the segment
    /// short under this sender's mapping.
    fn check_intact(&self) -> Result<(), CamlboxError> {
        if self.map.truncated() {
            return Err(CamlboxError::Truncated {
                size: 0,
                expected: self.map.len as u64,
            });
        }
        Ok(())
    }

    fn write(&self, slot: usize, value: &T) -> Result<(), CamlboxError> {
        self.check_intact()?;
        let r = &self.map.region;
        let (tid, start) = writer_identity();
        let s = r.slot(slot);
        debug_assert_eq!(
            s.state.load(Ordering::Relaxed),
            WRITING | (tid as u64) << 32
        );
        s.writer_start.store(start, Ordering::Release);
        let mine = WRITING | (tid as u64) << 32;
        // Any process that opened the box can overwrite the recorded base:
        // a nonsensical one makes the message unreadable, never a panic.
        let Some(target) = (r.header().receiver_base.load(Ordering::Relaxed) as usize)
            .checked_add(r.data_offset(slot))
            .filter(|t| t.checked_add(r.msg_size()).is_some())
        else {
            r.free_own(slot, mine);
            return Err(CamlboxError::BadGeometry);
        };
        // SAFETY: the slot's data is `msg_size` bytes inside our mapping.
        let local = unsafe { NonNull::new_unchecked(r.data(slot)) };
        let mut alloc = SlotAlloc {
            local,
            target,
            len: r.msg_size(),
            next: 0,
        };
        let result = (|| -> Result<usize, CopyError> {
            let (root, addr) = alloc.allocate(Layout::new::<T::Repr>())?;
            let repr = {
                // SAFETY: the representation is written into this slot
                // right below, and the allocator's target addresses are the
                // receiver's addresses of this slot.
                let mut w = unsafe { Writer::new(&mut alloc) };
                value.to_repr(&mut w)?
            };
            // SAFETY: `root` was allocated for one `T::Repr` in the slot,
            // which this sender owns while it is claimed.
            unsafe { root.cast::<T::Repr>().as_ptr().write(repr) };
            Ok(addr - target)
        })();
        match result {
            Ok(root_offset) => {
                r.publish(slot, mine, root_offset, alloc.next);
                // Written to zero pages standing in for a cut segment: the
                // message never reached the receiver.
                self.check_intact()
            }
            Err(CopyError::Locked) => {
                r.free_own(slot, mine);
                Err(CamlboxError::Locked)
            }
            Err(_) => {
                r.free_own(slot, mine);
                let needed = value::deep_size(value)
                    + std::mem::size_of::<T::Repr>()
                    + std::mem::align_of::<T::Repr>();
                Err(CamlboxError::TooBig {
                    needed,
                    capacity: r.msg_size(),
                })
            }
        }
    }
}

#[doc(hidden)]
pub mod __test_support {
    //! Hooks for the multi-process tests (not part of the API).

    use super::*;

    /// Claims a slot of `tx` for the calling thread and never writes it,
    /// as a sender killed right after claiming would.
    pub fn claim_and_abandon<T: Shared>(tx: &Sender<T>) -> Option<usize> {
        let r = &tx.map.region;
        let (tid, start) = writer_identity();
        let slot = tx.claim_once(tid)?;
        r.slot(slot).writer_start.store(start, Ordering::Release);
        Some(slot)
    }

    /// The state words of the slots (`0` free, `1 | tid << 32` writing,
    /// `2` ready).
    pub fn states<T: Shared>(rx: &Camlbox<T>) -> Vec<u64> {
        let r = rx.region();
        (0..r.slots())
            .map(|i| r.slot(i).state.load(Ordering::Acquire))
            .collect()
    }
}
