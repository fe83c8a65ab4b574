//! The sending end of a camlbox.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::{Region, WRITING};
use super::{far_future, map, segment_name, writer_identity, CamlboxError, Mapping, SPIN};
use crate::segment::{self, SegmentError, SegmentKind};
use crate::sync::futex;
use crate::value::{write_root_first, CopyError, Shared, TargetAlloc};

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
    pub(super) map: Arc<Mapping>,
    /// Where the next claim starts: after the slot last claimed.
    pub(super) next: AtomicUsize,
    pub(super) _type: PhantomData<fn(T) -> T>,
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

impl<T: Shared> Sender<T> {
    /// Opens the box named `name` (as given to [`Camlbox::create_named`](super::Camlbox::create_named),
    /// or [`CamlboxDescr::name`](super::CamlboxDescr::name)); works from any process of the same user.
    ///
    /// # Errors
    ///
    /// [`CamlboxError::WrongType`] when the box stores another type;
    /// [`CamlboxError::Segment`] when the segment is not a camlbox of this
    /// version; [`CamlboxError::Truncated`] when another process cut it short;
    /// [`CamlboxError::Io`] when it cannot be opened (no such box) or mapped.
    pub fn open(name: &str) -> Result<Sender<T>, CamlboxError> {
        Self::open_segment(&segment_name(name))
    }

    pub(super) fn open_segment(full: &str) -> Result<Sender<T>, CamlboxError> {
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
        let size = segment::object_size(&fd)?;
        let len = header.size as usize;
        if size < header.size {
            return Err(CamlboxError::Truncated {
                size,
                expected: header.size,
            });
        }
        let m = map(&fd, len)?;
        // SAFETY: a page-aligned mapping of `len` bytes that stays mapped
        // as long as the `Mapping` below; the geometry never changes after
        // creation.
        let Some(region) = (unsafe { Region::open(m.ptr(), len) }) else {
            // The mapping just made goes with `m`.
            return Err(CamlboxError::Segment(SegmentError::NotMc));
        };
        // Start where the receiver looks next (as of its last sleep), so
        // that it takes this sender's messages in the order they are sent.
        let start = region.header().recv_cursor.load(Ordering::Relaxed) as usize;
        Ok(Sender {
            map: Arc::new(Mapping::new(region, m, fd)),
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
    /// # Errors
    ///
    /// [`CamlboxError::TooBig`] when the value does not fit in a slot (the slot
    /// is released at once); [`CamlboxError::Locked`] when the value holds a
    /// lock that this thread holds; [`CamlboxError::Truncated`] when another
    /// process cut the box short; [`CamlboxError::BadGeometry`] when the box's
    /// header was overwritten with a nonsensical address.
    pub fn send(&self, value: &T) -> Result<(), CamlboxError> {
        let id = writer_identity();
        let slot = self.claim(id.0, None)?;
        self.write(slot, id, value)
    }

    /// Sends `value`, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    ///
    /// [`CamlboxError::Timeout`] when no slot is free in time, and the errors
    /// of [`send`](Self::send).
    pub fn send_timeout(&self, value: &T, timeout: Duration) -> Result<(), CamlboxError> {
        let id = writer_identity();
        let slot = self.claim(id.0, Some(timeout))?;
        self.write(slot, id, value)
    }

    /// Sends `value` if a slot is free.
    ///
    /// # Errors
    ///
    /// [`CamlboxError::Full`] when no slot is free, and the errors of
    /// [`send`](Self::send).
    pub fn try_send(&self, value: &T) -> Result<(), CamlboxError> {
        let r = &self.map.region;
        self.check_intact()?;
        let id = writer_identity();
        let tid = id.0;
        let slot = match self.claim_once(tid) {
            Some(s) => s,
            None => {
                if r.reclaim_dead_writers() == 0 {
                    if self.map.cut_short() {
                        return Err(self.map.truncated_error());
                    }
                    return Err(CamlboxError::Full);
                }
                self.claim_once(tid).ok_or(CamlboxError::Full)?
            }
        };
        self.write(slot, id, value)
    }

    /// One claim attempt from this sender's starting point.
    pub(super) fn claim_once(&self, tid: u32) -> Option<usize> {
        let r = &self.map.region;
        // `claim` starts over at 0 past the last slot.
        let slot = r.claim(tid, self.next.load(Ordering::Relaxed))?;
        self.next.store(slot + 1, Ordering::Relaxed);
        Some(slot)
    }

    /// Claims a slot for the thread `tid`, waiting at most `timeout`
    /// (`None`: without end; the clock is read only when no slot is free).
    fn claim(&self, tid: u32, timeout: Option<Duration>) -> Result<usize, CamlboxError> {
        // A segment found cut short takes no message: one that went to the
        // slots before the cut would arrive although the send failed.
        self.check_intact()?;
        let r = &self.map.region;
        if let Some(s) = self.claim_once(tid) {
            return Ok(s);
        }
        let deadline = timeout.map(|t| futex::deadline(Some(t)).unwrap_or_else(far_future));
        // Spin on the slots' states (a pause between looks, not a long
        // back-off: a slot freed now is taken now), reading the clock and
        // yielding now and then.
        // Each look scans every slot: the clock is read every 64 slots
        // looked at, so that a large box keeps the timeout too.
        let every = (64 / r.slots()).max(1) as u32;
        let spin_start = Instant::now();
        let mut spins = 0u32;
        loop {
            std::hint::spin_loop();
            if let Some(s) = self.claim_once(tid) {
                return Ok(s);
            }
            spins += 1;
            if spins.is_multiple_of(every) {
                if spin_start.elapsed() >= SPIN || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if spins.is_multiple_of(16 * every) {
                    std::thread::yield_now();
                }
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
                if self.map.cut_short() {
                    return Err(self.map.truncated_error());
                }
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
            return Err(self.map.truncated_error());
        }
        Ok(())
    }

    /// Writes `value` into `slot`, claimed by the calling thread, whose
    /// [`writer_identity`] is `(tid, start)`, and publishes it.
    fn write(&self, slot: usize, (tid, start): (u32, u64), value: &T) -> Result<(), CamlboxError> {
        let r = &self.map.region;
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
        // The slot's data: `msg_size` bytes inside our mapping, read by the
        // receiver at `target` (both mappings are page-aligned and the data
        // is at the same offset in each, so alignments up to a page agree;
        // the allocator checks).
        // SAFETY: the slot's data is `msg_size` bytes of our mapping, which
        // this sender owns (writes, and nobody else touches it) while the
        // slot is claimed, for as long as `alloc` lives.
        let mut alloc = unsafe { TargetAlloc::new(r.data(slot), target, r.msg_size()) };
        let result = write_root_first(&mut alloc, value).map(|addr| addr - target);
        match result {
            Ok(root_offset) => {
                r.publish(slot, mine, root_offset, alloc.used());
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
                let needed = super::Camlbox::<T>::message_size(value);
                Err(CamlboxError::TooBig {
                    needed,
                    capacity: r.msg_size(),
                })
            }
        }
    }
}
