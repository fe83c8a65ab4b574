//! Camlboxes: typed zero-copy mailboxes between processes.
//!
//! A [`Camlbox<T>`] is created by its single receiver with a fixed number of
//! slots and a fixed maximum message size. Any number of [`Sender<T>`]s, in
//! the same process family (from the box's [`CamlboxDescr`]) or in any process
//! of the same user (by name), copy values straight into free slots; the
//! receiver [`wait`](Camlbox::wait)s for them, reads them in place through a
//! [`Message`] guard, copies them out, and [`delete`](Camlbox::delete)s them;
//! or takes them one at a time with [`recv`](Camlbox::recv) (wait, copy
//! out, delete in one call) or [`recv_with`](Camlbox::recv_with) (read in
//! place).
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
//! fn greeter(id: mc::CamlboxDescr<String>) {
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

mod asynch;
mod error;
mod layout;
mod recv;
mod sender;

pub use error::CamlboxError;
pub use sender::Sender;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::processes::resources::{self, ResourceId, ResourceKind};
use crate::processes::worker;
use crate::segment::{self, SegmentHeader, SegmentKind};
use crate::sync::futex;
use crate::sync::home::Home;
use crate::value::{self, Shared};
pub use asynch::WaitAsync;
use layout::{Region, READY};

/// How long `wait` and a blocked `send` spin before they sleep. A blocking
/// wake-up costs tens of microseconds on a small VM; a message that arrives
/// within this window is picked up without one.
const SPIN: Duration = Duration::from_micros(100);

/// The typed id of a camlbox: pass it to other processes of the family
/// (it is serde-able) and make senders with [`CamlboxDescr::sender`].
///
/// The id carries the message type, so it cannot make a sender of another
/// type; a process that opens the box by name with another type gets
/// [`CamlboxError::WrongType`].
///
/// ```
/// let (_rx, id) = mc::Camlbox::<(u32, String)>::create(2, 128).unwrap();
/// let wire = postcard::to_allocvec(&id).unwrap();
/// let back: mc::CamlboxDescr<(u32, String)> = postcard::from_bytes(&wire).unwrap();
/// assert_eq!(back.name(), id.name());
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct CamlboxDescr<T> {
    resource: Option<ResourceId>,
    name: String,
    #[serde(skip)]
    _type: PhantomData<fn(T) -> T>,
}

impl<T: Shared> crate::value::DescrParts for CamlboxDescr<T> {
    type Parts = (Option<u64>, String);
    fn to_parts(&self) -> Self::Parts {
        (self.resource.map(ResourceId::get), self.name.clone())
    }
    fn from_parts((resource, name): Self::Parts) -> Self {
        CamlboxDescr {
            resource: resource.map(ResourceId),
            name,
            _type: PhantomData,
        }
    }
}

crate::value::descr::shared_descr!([T: Shared] CamlboxDescr<T>, name = "mc::CamlboxDescr", args = [T]);

impl<T> PartialEq for CamlboxDescr<T> {
    fn eq(&self, o: &Self) -> bool {
        self.resource == o.resource && self.name == o.name
    }
}

impl<T> Eq for CamlboxDescr<T> {}

impl<T> Clone for CamlboxDescr<T> {
    fn clone(&self) -> Self {
        CamlboxDescr {
            resource: self.resource,
            name: self.name.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for CamlboxDescr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CamlboxDescr")
            .field("resource", &self.resource)
            .field("name", &self.name)
            .finish()
    }
}

impl<T: Shared> CamlboxDescr<T> {
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
    ///
    /// # Errors
    ///
    /// [`CamlboxError::Process`] when the resource table no longer has the box,
    /// and the errors of [`Sender::open`].
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
    /// The segment, to check its size on slow paths.
    fd: OwnedFd,
    /// Registration with the fault handler: a truncation of the segment by
    /// another process is then an error, not a `SIGBUS`. (Fields drop in
    /// order: the range is unregistered before it is unmapped.)
    guard: Option<crate::os::fault::Guard>,
    /// The mapping itself, unmapped last; every borrow of its memory holds
    /// this handle.
    _map: crate::os::mapping::Mapping,
}

impl Mapping {
    fn new(region: Region, map: crate::os::mapping::Mapping, fd: OwnedFd) -> Mapping {
        let len = map.len();
        let guard = crate::os::fault::guard(map.addr(), len);
        Mapping {
            region,
            len,
            fd,
            guard,
            _map: map,
        }
    }

    /// Whether a fault found the segment cut short under this mapping (a
    /// load: cheap enough for every operation).
    #[inline]
    fn truncated(&self) -> bool {
        self.guard.as_ref().is_some_and(|g| g.truncated())
    }

    /// Whether the segment is cut short, also when no access has faulted
    /// yet (a cut inside a page reads zeros without faulting): a system
    /// call, for the slow paths (nothing ready, nothing free).
    fn cut_short(&self) -> bool {
        self.truncated() || segment::object_size(&self.fd).is_ok_and(|size| size < self.len as u64)
    }

    /// The error for a segment cut short.
    fn truncated_error(&self) -> CamlboxError {
        CamlboxError::Truncated {
            size: segment::object_size(&self.fd).unwrap_or(0),
            expected: self.len as u64,
        }
    }
}

// SAFETY: the region is shared memory whose mutable parts are atomics or
// slot bytes owned (by the slot protocol) by one party at a time; the
// handle itself may move between and be used from several threads.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

/// Maps `len` bytes of a box's segment where the kernel chooses.
fn map(fd: &OwnedFd, len: usize) -> io::Result<crate::os::mapping::Mapping> {
    crate::os::mapping::Mapping::shared(fd, len, false)
}

thread_local! {
    static WRITER: Cell<(u32, u64)> = const { Cell::new((0, 0)) };
}

/// The calling thread's id and start time (cached per thread; refreshed
/// after `fork`, when the id changes).
#[inline]
fn writer_identity() -> (u32, u64) {
    let tid = futex::current_tid();
    // (`try_with`, inlined, where `with` is a call; a thread-local
    // without destructor is there for the thread's whole life.)
    let (t, s) = WRITER.try_with(Cell::get).unwrap_or((0, 0));
    if t == tid {
        return (t, s);
    }
    let start = segment::process_start_time(tid).unwrap_or(0);
    let _ = WRITER.try_with(|w| w.set((tid, start)));
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
    /// Where the next scan for ready slots starts: just past the last slot
    /// found ready (senders claim slots in ring order, so for one sender
    /// this is the next message).
    cursor: usize,
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
    /// The slot size (`msg_size`) that a message `value` needs: its inline
    /// part, everything it points to, and room for alignment. Size a box
    /// with the largest message it will carry.
    ///
    /// ```
    /// let biggest = vec![7u64; 1000];
    /// let size = mc::Camlbox::<Vec<u64>>::message_size(&biggest);
    /// assert!(size >= 8000);
    /// let (mut rx, id) = mc::Camlbox::<Vec<u64>>::create(4, size).unwrap();
    /// id.sender().unwrap().send(&biggest).unwrap();
    /// let slot = rx.wait()[0];
    /// assert_eq!(rx.get(slot).unwrap().len(), 1000);
    /// ```
    pub fn message_size(value: &T) -> usize {
        crate::value::deep_size(value)
            + std::mem::size_of::<T::Repr>()
            + std::mem::align_of::<T::Repr>()
    }

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
    ///
    /// # Errors
    ///
    /// [`CamlboxError::BadGeometry`] when `slots` is 0 or the box would be too
    /// large; [`CamlboxError::OutOfMemory`] when `/dev/shm` has no room for it;
    /// [`CamlboxError::Process`] when the resource table refuses it (inside
    /// [`mc::run`](crate::run)); [`CamlboxError::Io`] when a system call fails.
    pub fn create(
        slots: usize,
        msg_size: usize,
    ) -> Result<(Camlbox<T>, CamlboxDescr<T>), CamlboxError> {
        let full = segment::fresh_name(SegmentKind::Camlbox);
        let prefix = segment_name("");
        let short = full[prefix.len()..].to_string();
        Self::create_inner(short, full, slots, msg_size)
    }

    /// Creates a box named `name` (segment `mc.box.<name>`), which any
    /// process of the same user can open with [`Sender::open`].
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
    ///
    /// # Errors
    ///
    /// [`CamlboxError::Io`] when the name is taken, and the errors of
    /// [`create`](Self::create).
    pub fn create_named(
        name: &str,
        slots: usize,
        msg_size: usize,
    ) -> Result<(Camlbox<T>, CamlboxDescr<T>), CamlboxError> {
        Self::create_inner(name.to_string(), segment_name(name), slots, msg_size)
    }

    fn create_inner(
        short: String,
        full: String,
        slots: usize,
        msg_size: usize,
    ) -> Result<(Camlbox<T>, CamlboxDescr<T>), CamlboxError> {
        if slots == 0 || slots > u32::MAX as usize / 2 || msg_size > u32::MAX as usize / 2 {
            return Err(CamlboxError::BadGeometry);
        }
        let total = layout::total_size(slots, msg_size).ok_or(CamlboxError::BadGeometry)?;
        let fd = segment::shm_create(&full)?;
        let made = (|| -> io::Result<Mapping> {
            crate::os::shm::set_len(&fd, total as u64)?;
            segment::reserve(&fd, 0, total as u64)?;
            let m = map(&fd, total)?;
            let base = m.ptr().as_ptr();
            // SAFETY: a fresh, page-aligned, zero-filled mapping of `total`
            // bytes; nobody else can read it before the magic is written.
            let region = unsafe { Region::init(m.ptr(), slots, msg_size) };
            region
                .header()
                .receiver_base
                .store(base as u64, Ordering::Relaxed);
            let header = SegmentHeader::new(SegmentKind::Camlbox, total as u64, T::FINGERPRINT);
            std::sync::atomic::fence(Ordering::SeqCst);
            // SAFETY: the first 64 bytes of the mapping hold the segment
            // header, which we own until the segment is published.
            unsafe { base.cast::<SegmentHeader>().write(header) };
            Ok(Mapping::new(region, m, fd.try_clone()?))
        })();
        let map = match made {
            Ok(m) => m,
            Err(e) => {
                let _ = segment::shm_unlink(&full);
                if matches!(
                    e.raw_os_error().map(nix::errno::Errno::from_raw),
                    Some(nix::errno::Errno::ENOSPC | nix::errno::Errno::ENOMEM)
                ) {
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
            cursor: 0,
            _type: PhantomData,
        };
        let id = CamlboxDescr {
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
            return Err(self.map.truncated_error());
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

    /// Takes one pending [`Sender::wake`] request, if there is one.
    fn take_wake(&self) -> bool {
        let h = self.map.region.header();
        let w = h.wake_requests.load(Ordering::Acquire);
        w != 0
            && h.wake_requests
                .compare_exchange(w, w - 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// What a wait returns without waiting: `true` when the wait is over
    /// (ready slots in `out`, a wake request, or a box that is not this
    /// process's or was cut short).
    fn ready_now(&mut self, out: &mut Vec<usize>) -> bool {
        if !self.is_receiver() || self.map.truncated() || self.take_wake() {
            return true;
        }
        self.collect(out);
        !out.is_empty() || self.map.truncated()
    }

    fn collect(&mut self, out: &mut Vec<usize>) {
        let r = self.map.region;
        let n = self.seen.len();
        let mut i = self.cursor;
        for k in 0..n {
            if !self.seen[i] && r.slot(i).state.load(Ordering::Acquire) == READY {
                self.seen[i] = true;
                if out.capacity() == 0 {
                    // One allocation, for as many slots as could be ready.
                    out.reserve_exact(n - k);
                }
                out.push(i);
                self.cursor = if i + 1 == n { 0 } else { i + 1 };
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
    }

    /// Waits until messages arrive and returns the slots that became ready
    /// since the last call (spins briefly, then sleeps). Returns an empty
    /// list when a sender called [`Sender::wake`].
    ///
    /// Slots are listed in ring order from where the last wait (or
    /// [`recv`](Camlbox::recv)) found one; messages are not ordered (see
    /// [`recv`](Camlbox::recv)).
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
        self.wait_for(None)
    }

    /// Like [`wait`](Camlbox::wait), but returns an empty list after
    /// `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Vec<usize> {
        self.wait_for(Some(timeout))
    }

    /// Waits at most `timeout` (`None`: without end). What is ready
    /// already is returned without reading the clock.
    fn wait_for(&mut self, timeout: Option<Duration>) -> Vec<usize> {
        let mut out = Vec::new();
        if self.ready_now(&mut out) {
            return out;
        }
        // Whatever ended the wait, `out` holds what is ready (maybe nothing).
        let _ = self.block_on(timeout, |rx| {
            rx.collect(&mut out);
            (!out.is_empty()).then_some(())
        });
        out
    }

    /// Spins, then sleeps, until `probe` finds something (it is called
    /// again after every change the receiver is told of), a sender calls
    /// [`Sender::wake`], `timeout` passes (counted from the first reading
    /// of the clock, a few dozen looks in: a message that comes at once is
    /// taken without reading it), or the segment is found cut
    /// short. The caller is the receiver.
    fn block_on<X>(
        &mut self,
        timeout: Option<Duration>,
        mut probe: impl FnMut(&mut Self) -> Option<X>,
    ) -> Result<X, Stop> {
        let r = self.map.region;
        let h = r.header();
        // Read at the first check of the clock: after 64 slots looked at
        // (a probe scans every slot when nothing is ready).
        let every = (64 / self.seen.len().max(1)).max(1) as u32;
        let mut spin_start = None;
        let mut deadline = None;
        let mut spins = 0u32;
        loop {
            if self.take_wake() {
                return Err(Stop::Woken);
            }
            if let Some(x) = probe(self) {
                return Ok(x);
            }
            if self.map.truncated() {
                return Err(Stop::Cut);
            }
            spins += 1;
            if spins.is_multiple_of(every) {
                let now = Instant::now();
                let start = *spin_start.get_or_insert_with(|| {
                    deadline = timeout.map(|t| now.checked_add(t).unwrap_or_else(far_future));
                    now
                });
                if deadline.is_some_and(|d| now >= d) {
                    return Err(Stop::TimedOut);
                }
                if now - start >= SPIN {
                    break;
                }
                if spins.is_multiple_of(16 * every) {
                    std::thread::yield_now();
                }
            }
            std::hint::spin_loop();
        }
        loop {
            let Some(slice) = futex::next_slice(deadline) else {
                return Err(Stop::TimedOut);
            };
            // Announce the sleep, then rescan (see `Region::publish`).
            h.recv_cursor.store(self.cursor as u32, Ordering::Relaxed);
            h.receiver_sleeping.store(1, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            let seq = h.notify.load(Ordering::SeqCst);
            if self.take_wake() {
                h.receiver_sleeping.store(0, Ordering::SeqCst);
                return Err(Stop::Woken);
            }
            if let Some(x) = probe(self) {
                h.receiver_sleeping.store(0, Ordering::SeqCst);
                return Ok(x);
            }
            let woken = futex::wait(&h.notify, seq, Some(slice));
            h.receiver_sleeping.store(0, Ordering::SeqCst);
            if self.map.truncated() {
                return Err(Stop::Cut);
            }
            if woken == futex::Wait::TimedOut {
                if self.map.cut_short() {
                    return Err(Stop::Cut);
                }
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
            // Reading the state may have found the segment cut short (by a
            // fault, or zeros past the end inside the last page).
            if self.map.cut_short() {
                return Err(self.map.truncated_error());
            }
            return Err(CamlboxError::NotReady(slot));
        }
        Ok(())
    }

    /// Validates the message in `slot` and returns its root, as the
    /// receiver sees it.
    fn root(&self, slot: usize) -> Result<*const T::Repr, CamlboxError> {
        self.check_slot(slot)?;
        self.validated_root(slot)
    }

    /// [`root`](Self::root) for a slot known to be ready, in the receiver.
    fn validated_root(&self, slot: usize) -> Result<*const T::Repr, CamlboxError> {
        let r = self.region();
        let s = r.slot(slot);
        let used = (s.used.load(Ordering::Relaxed) as usize).min(r.msg_size());
        let root = s.root_offset.load(Ordering::Relaxed) as usize;
        // SAFETY: slot data is `msg_size` bytes inside the mapping, which
        // lives as long as `self`; a ready slot is written by nobody while
        // it is ready (slot protocol), so it does not change while borrowed.
        let data = unsafe { std::slice::from_raw_parts(r.data(slot).as_ptr(), used) };
        value::validate_region::<T>(data, root).map_err(CamlboxError::Invalid)?;
        // A cut during validation: the bytes read may be zeros standing in
        // for lost ones.
        self.check_intact()?;
        // The root comes from the mapping's raw pointer, not from the byte
        // slice used for validation (locks in the message are written
        // through it).
        Ok(r.data(slot).as_ptr().wrapping_add(root).cast_const().cast())
    }

    /// Borrows the message in `slot` in place, after validating it.
    ///
    /// The returned guard borrows the receiver, so the slot cannot be
    /// deleted (nor the receiver wait) while the message is in use.
    /// Validation walks the message once (a few nanoseconds for a small
    /// message, about 1.5 µs for a vector of 100 strings).
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
    ///
    /// # Errors
    ///
    /// [`CamlboxError::Invalid`] when the message is malformed (it can still be
    /// deleted); [`CamlboxError::NotReady`] when `slot` is out of range or
    /// holds no ready message; [`CamlboxError::NotReceiver`] outside the
    /// receiver's process; [`CamlboxError::Truncated`] when another process cut
    /// the box short.
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
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
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

/// Why [`Camlbox::block_on`] stopped without finding anything.
enum Stop {
    /// A sender called [`Sender::wake`].
    Woken,
    /// The deadline passed.
    TimedOut,
    /// The segment was found cut short.
    Cut,
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

// Reads no message bytes: a copy made by `fork` must not read the slot.
impl<T: Shared> fmt::Debug for Message<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("type", &std::any::type_name::<T>())
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
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
