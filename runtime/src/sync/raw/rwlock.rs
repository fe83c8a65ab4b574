//! The robust process-shared reader/writer lock.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use super::super::futex::{
    self, current_tid, thread_alive, HolderWait, SLICE, SPIN_LIMIT, TID_MASK, WAITERS,
};
use super::lock::sealed::CopyHold;
use super::{Acquired, Found, LockError};

/// A writer died; no writer has declared the data consistent since.
const INCONSISTENT: u32 = 1 << 30;
/// The writer field of a lock that is not recoverable (never a real TID).
const NOT_RECOVERABLE: u32 = TID_MASK;
/// Writer field or inconsistency: either keeps new readers out.
const NO_READERS: u32 = TID_MASK | INCONSISTENT;

/// How many threads can hold a [`RawRwLock`] shared at once; more readers
/// wait for a free slot.
pub const READER_SLOTS: usize = 64;

crate::in_shared::in_shared! {
    /// A robust reader/writer lock usable from any process that maps it.
    ///
    /// # Layout
    ///
    /// ```text
    /// state:   [WAITERS:1][INCONSISTENT:1][writer TID:30]  (futex for lockers)
    /// drain:   counter bumped by readers leaving while a writer waits (futex)
    /// readers: [TID; 64]                                  one slot per reader
    /// ```
    ///
    /// A reader claims a free slot (CAS 0 → its TID), then checks that no
    /// writer is recorded in `state`; a writer records its TID in `state`, then
    /// waits until every slot is empty. Both sides write first and read second
    /// with sequentially consistent operations, so at least one sees the other.
    /// There is no reader count: the slots are the only record, so a reader that
    /// dies at any point leaves exactly its slot behind, and a writer that has
    /// waited a 10 ms slice checks the TIDs in the busy slots and clears the
    /// slots of dead threads. A dead reader therefore delays writers by a few
    /// slices at most.
    ///
    /// **Writer preference**: a writer takes the `state` word before waiting for
    /// readers, and readers that find a writer there back out and wait, so a
    /// stream of readers cannot starve writers. Read locks are not recursive: a
    /// thread that holds a read lock and asks for another while a writer waits
    /// gets [`LockError::Deadlock`] instead of hanging.
    ///
    /// **A writer dies** (noticed by any waiter after a slice): the lock becomes
    /// free and *inconsistent*. Readers then get [`LockError::Poisoned`] (the
    /// data may be half-written and a reader cannot repair it); the next writer
    /// gets [`Acquired::OwnerDied`], repairs, calls
    /// [`mark_consistent`](Self::mark_consistent) and releases, after which
    /// readers proceed. A writer that releases without `mark_consistent` makes
    /// the lock not recoverable: every lock returns [`LockError::Poisoned`]
    /// until [`clear_poison`](Self::clear_poison). A dead reader never poisons
    /// (readers do not modify).
    ///
    /// Holds are per thread (TID): release a lock from the thread that took it.
    ///
    /// The checked unlocks ([`unlock_read_checked`](Self::unlock_read_checked),
    /// [`unlock_write_checked`](Self::unlock_write_checked)) are safe because a
    /// raw lock protects no data of its own; a type that guards data with one
    /// must keep it private.
    pub struct RawRwLock {
        state: AtomicU32,
        drain: AtomicU32,
        readers: [AtomicU32; READER_SLOTS],
    }
}

impl Default for RawRwLock {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RawRwLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.load(SeqCst);
        f.debug_struct("RawRwLock")
            .field("writer", &(s & TID_MASK))
            .field("inconsistent", &(s & INCONSISTENT != 0))
            .field("readers", &self.reader_count())
            .finish()
    }
}

/// Whether the state word `s` refuses readers: the lock is not recoverable,
/// or free with a dead writer's data unrepaired.
#[inline]
fn refuses_readers(s: u32) -> bool {
    let owner = s & TID_MASK;
    owner == NOT_RECOVERABLE || (owner == 0 && s & INCONSISTENT != 0)
}

/// What a future's read attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAttempt {
    /// It holds reader slot `.0`.
    In(usize),
    /// A writer holds the writer field: the state read was `s`.
    Writer { s: u32, owner: u32 },
    /// Every slot is busy.
    Full,
    /// A writer showed up while it claimed a slot: try again.
    Again,
}

/// How a reader's [`enter`](RawRwLock::enter) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// It holds a slot and no writer is recorded: it reads.
    In,
    /// A writer (or unrepaired data) showed up: its slot is released again.
    BackedOut,
    /// Every slot is busy.
    Full,
}

#[inline]
fn home(tid: u32) -> usize {
    (tid.wrapping_mul(0x9E37_79B9) >> 26) as usize % READER_SLOTS
}

impl RawRwLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        RawRwLock {
            state: AtomicU32::new(0),
            drain: AtomicU32::new(0),
            readers: [const { AtomicU32::new(0) }; READER_SLOTS],
        }
    }

    #[inline]
    fn claim_slot(&self, tid: u32) -> Option<usize> {
        let h = home(tid);
        (0..READER_SLOTS)
            .map(|k| (h + k) % READER_SLOTS)
            .find(|&i| {
                let r = &self.readers[i];
                r.load(SeqCst) == 0 && r.compare_exchange(0, tid, SeqCst, SeqCst).is_ok()
            })
    }

    /// Claims a reader slot for `tid`, then keeps it only if no writer (or
    /// unrepaired data) is recorded in the state.
    #[inline]
    fn enter(&self, tid: u32) -> Entry {
        let Some(i) = self.claim_slot(tid) else {
            return Entry::Full;
        };
        if self.state.load(SeqCst) & NO_READERS == 0 {
            return Entry::In;
        }
        self.release_slot(i);
        Entry::BackedOut
    }

    #[inline]
    fn find_own(&self, tid: u32) -> Option<usize> {
        let h = home(tid);
        (0..READER_SLOTS)
            .map(|k| (h + k) % READER_SLOTS)
            .find(|&i| self.readers[i].load(SeqCst) == tid)
    }

    #[inline]
    fn release_slot(&self, i: usize) {
        self.readers[i].store(0, SeqCst);
        if self.state.load(SeqCst) & TID_MASK != 0 {
            // A writer may be waiting for the readers to leave. (It is woken
            // even when it only spins: waking only a writer that announced
            // its sleep, tried twice, made two processes sharing a table
            // 11-12% slower. The system call keeps this reader away from
            // the lock's cache lines while the writer works; an explicit
            // pause instead helped that case and slowed a sharded table.)
            self.drain.fetch_add(1, SeqCst);
            futex::wake(&self.drain, u32::MAX);
        }
    }

    /// Clears the slots of readers that died; returns whether any was.
    fn reap_dead_readers(&self) -> bool {
        let mut reaped = false;
        for r in &self.readers {
            let v = r.load(SeqCst);
            if v != 0 && !thread_alive(v) && r.compare_exchange(v, 0, SeqCst, SeqCst).is_ok() {
                reaped = true;
            }
        }
        reaped
    }

    /// Frees the state word of a writer that died (recorded in `s`).
    fn writer_died(&self, s: u32) {
        if self
            .state
            .compare_exchange(s, INCONSISTENT, SeqCst, SeqCst)
            .is_ok()
            && s & WAITERS != 0
        {
            futex::wake(&self.state, u32::MAX);
        }
    }

    /// The number of threads holding the lock shared (a snapshot).
    pub fn reader_count(&self) -> usize {
        self.readers.iter().filter(|r| r.load(SeqCst) != 0).count()
    }

    /// Whether a writer holds (or is acquiring) the lock.
    pub fn is_write_locked(&self) -> bool {
        let w = self.state.load(SeqCst) & TID_MASK;
        w != 0 && w != NOT_RECOVERABLE
    }

    // ------------------------------------------------------------------
    // Readers

    /// Takes the lock shared, waiting at most `timeout` (`None`: as long as
    /// it takes, but never for a dead holder).
    ///
    /// Returns `Ok(Acquired::Clean)` (readers never see `OwnerDied`).
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] while a dead writer's data is unrepaired, or
    /// when the lock is not recoverable; [`LockError::Deadlock`] when this
    /// thread holds the lock exclusively, or shared while a writer waits;
    /// [`LockError::Timeout`] when `timeout` passes.
    #[inline]
    pub fn read(&self, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        let tid = current_tid();
        if self.state.load(SeqCst) & NO_READERS == 0 && self.enter(tid) == Entry::In {
            return Ok(Acquired::Clean);
        }
        self.read_slow(tid, timeout)
    }

    /// Takes the lock shared if that needs no waiting.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when a live writer holds or awaits it, or
    /// every reader slot is taken; [`LockError::Poisoned`] as for
    /// [`read`](Self::read); [`LockError::Deadlock`] when this thread holds it
    /// exclusively.
    pub fn try_read(&self) -> Result<Acquired, LockError> {
        let tid = current_tid();
        let mut reaped = false;
        loop {
            let (s, owner) = self.reader_look(tid)?;
            if owner != 0 {
                if thread_alive(owner) {
                    return Err(LockError::WouldBlock);
                }
                self.writer_died(s);
                continue;
            }
            match self.enter(tid) {
                Entry::In => return Ok(Acquired::Clean),
                Entry::BackedOut => {}
                Entry::Full if !reaped => {
                    self.reap_dead_readers();
                    reaped = true;
                }
                Entry::Full => return Err(LockError::WouldBlock),
            }
        }
    }

    /// Reads the state for reader `tid`: the word and its writer field.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when the state refuses readers;
    /// [`LockError::Deadlock`] when `tid` is the writer.
    #[inline]
    fn reader_look(&self, tid: u32) -> Result<(u32, u32), LockError> {
        let s = self.state.load(SeqCst);
        let owner = s & TID_MASK;
        if refuses_readers(s) {
            return Err(LockError::Poisoned);
        }
        if owner == tid {
            return Err(LockError::Deadlock);
        }
        Ok((s, owner))
    }

    #[cold]
    fn read_slow(&self, tid: u32, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        let mut wait = HolderWait::new(timeout);
        let mut checked_own = false;
        loop {
            let (s, owner) = self.reader_look(tid)?;
            if owner == 0 {
                match self.enter(tid) {
                    Entry::In => return Ok(Acquired::Clean),
                    Entry::BackedOut => continue,
                    Entry::Full => {}
                }
                // Every slot is busy: poll for a free one, reclaiming the
                // slots of dead readers now and then.
                let Some(slice) = futex::next_slice(wait.deadline()) else {
                    return Err(LockError::Timeout);
                };
                let seq = self.drain.load(SeqCst);
                wait.start_watch();
                futex::wait(&self.drain, seq, Some(slice.min(Duration::from_millis(1))));
                if wait.slice_passed() {
                    self.reap_dead_readers();
                    wait.restart_watch();
                }
                continue;
            }
            // A writer holds the lock or waits for readers to leave.
            if !checked_own {
                if self.find_own(tid).is_some() {
                    return Err(LockError::Deadlock);
                }
                checked_own = true;
            }
            // A dead writer's word is freed (inconsistent); the wait goes on.
            wait.round(&self.state, s, owner, SeqCst, |cur| {
                self.writer_died(cur);
                None::<()>
            })?;
        }
    }

    /// Releases a shared hold of the calling thread.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the calling thread has no shared hold.
    #[inline]
    pub fn unlock_read_checked(&self) -> Result<(), LockError> {
        match self.find_own(current_tid()) {
            Some(i) => {
                self.release_slot(i);
                Ok(())
            }
            None => Err(LockError::NotOwner),
        }
    }

    /// Releases a shared hold.
    ///
    /// # Safety
    ///
    /// The calling thread must hold the lock shared (if it does not, the
    /// call does nothing; see [`unlock_read_checked`](Self::unlock_read_checked)).
    #[inline]
    pub unsafe fn unlock_read(&self) {
        let r = self.unlock_read_checked();
        debug_assert_eq!(r, Ok(()), "unlock_read without a read hold");
    }

    // ------------------------------------------------------------------
    // Writers

    #[inline]
    fn no_readers(&self) -> bool {
        // Branch-free: 64 plain loads (SeqCst loads are plain moves on x86)
        // OR-ed together.
        self.readers.iter().fold(0, |acc, r| acc | r.load(SeqCst)) == 0
    }

    /// Takes the lock exclusively, waiting at most `timeout` (`None`: as
    /// long as it takes, but never for a dead holder).
    ///
    /// Returns [`Acquired::OwnerDied`] when the last writer died (or
    /// panicked) holding it.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when the lock is not recoverable;
    /// [`LockError::Deadlock`] when this thread holds it (exclusively or
    /// shared); [`LockError::Timeout`] when `timeout` passes.
    #[inline]
    pub fn write(&self, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        let tid = current_tid();
        if self.state.compare_exchange(0, tid, SeqCst, SeqCst).is_ok() {
            if self.no_readers() {
                return Ok(Acquired::Clean);
            }
            return self.drain_readers(tid, futex::deadline(timeout), Acquired::Clean);
        }
        self.write_slow(tid, timeout)
    }

    /// Takes the lock exclusively if that needs no waiting.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when a live thread holds it;
    /// [`LockError::Poisoned`] and [`LockError::Deadlock`] as for
    /// [`write`](Self::write).
    pub fn try_write(&self) -> Result<Acquired, LockError> {
        let tid = current_tid();
        let acq = loop {
            let (s, owner) = match self.attempt_write(tid, 0)? {
                Found::Taken(acq) => break acq,
                Found::Held { w, owner } => (w, owner),
            };
            if thread_alive(owner) {
                return Err(LockError::WouldBlock);
            }
            if self
                .state
                .compare_exchange(s, tid | INCONSISTENT | (s & WAITERS), SeqCst, SeqCst)
                .is_ok()
            {
                break Acquired::OwnerDied;
            }
        };
        if self.no_readers() || (self.reap_dead_readers() && self.no_readers()) {
            return Ok(acq);
        }
        let own = self.find_own(tid).is_some();
        self.back_out(acq);
        Err(if own {
            LockError::Deadlock
        } else {
            LockError::WouldBlock
        })
    }

    /// Reads the state until the writer field is free, then takes it for
    /// `tid` with the `extra` bits, or until another thread holds it.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when the lock is not recoverable;
    /// [`LockError::Deadlock`] when `tid` holds the writer field.
    #[inline]
    fn attempt_write(&self, tid: u32, extra: u32) -> Result<Found, LockError> {
        self.attempt_write_for(tid, extra, true)
    }

    /// [`attempt_write`](Self::attempt_write); a word held by `tid` is a
    /// deadlock when `own_is_deadlock` (a thread), held by someone else
    /// otherwise (another task under the process's holder id).
    #[inline]
    fn attempt_write_for(
        &self,
        tid: u32,
        extra: u32,
        own_is_deadlock: bool,
    ) -> Result<Found, LockError> {
        loop {
            let s = self.state.load(SeqCst);
            let owner = s & TID_MASK;
            if owner == NOT_RECOVERABLE {
                return Err(LockError::Poisoned);
            }
            if owner == tid && own_is_deadlock {
                return Err(LockError::Deadlock);
            }
            if owner == 0 {
                if self
                    .state
                    .compare_exchange(s, tid | s | extra, SeqCst, SeqCst)
                    .is_ok()
                {
                    return Ok(Found::Taken(if s & INCONSISTENT != 0 {
                        Acquired::OwnerDied
                    } else {
                        Acquired::Clean
                    }));
                }
                continue;
            }
            return Ok(Found::Held { w: s, owner });
        }
    }

    // ------------------------------------------------------------------
    // For futures, under the process's holder id (see `sync::asynch`): a
    // word held by that id is held by another task, not a deadlock.

    /// The state word (writers' futex).
    pub(crate) fn state_word(&self) -> &AtomicU32 {
        &self.state
    }

    /// The counter readers bump when they leave while a writer waits.
    pub(crate) fn drain_word(&self) -> &AtomicU32 {
        &self.drain
    }

    /// One attempt at the writer field for `tid`.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when the lock is not recoverable.
    pub(crate) fn attempt_write_as(&self, tid: u32) -> Result<Found, LockError> {
        self.attempt_write_for(tid, 0, false)
    }

    /// Sets the waiters bit on the state `s`; the state with it, or `None`
    /// when it changed meanwhile.
    pub(crate) fn state_with_waiters(&self, s: u32) -> Option<u32> {
        if s & WAITERS != 0 {
            return Some(s);
        }
        self.state
            .compare_exchange(s, s | WAITERS, SeqCst, SeqCst)
            .ok()
            .map(|_| s | WAITERS)
    }

    /// Takes the writer field of a dead writer recorded in `s` for `tid`.
    pub(crate) fn take_over_write_as(&self, s: u32, tid: u32) -> bool {
        self.state
            .compare_exchange(s, tid | INCONSISTENT | WAITERS, SeqCst, SeqCst)
            .is_ok()
    }

    /// Whether any reader holds a slot (a writer holding the writer field
    /// waits for none to be left).
    pub(crate) fn readers_busy(&self) -> bool {
        !self.no_readers()
    }

    /// Clears the slots of dead readers (a waiting writer does so after
    /// each slice).
    pub(crate) fn reap_dead(&self) {
        self.reap_dead_readers();
    }

    /// Gives the writer field back after an acquisition given up (a future
    /// dropped while readers drained).
    pub(crate) fn back_out_as(&self, acq: Acquired) {
        self.back_out(acq);
    }

    /// Releases the exclusive hold of `tid`.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when `tid` does not hold it.
    pub(crate) fn unlock_write_as(&self, tid: u32) -> Result<(), LockError> {
        let s = self.state.load(SeqCst);
        if s & TID_MASK != tid {
            return Err(LockError::NotOwner);
        }
        self.release_write(if s & INCONSISTENT != 0 {
            NOT_RECOVERABLE
        } else {
            0
        });
        Ok(())
    }

    /// Releases the exclusive hold of `tid`, leaving the data inconsistent.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when `tid` does not hold it.
    pub(crate) fn abandon_write_as(&self, tid: u32) -> Result<(), LockError> {
        if self.state.load(SeqCst) & TID_MASK != tid {
            return Err(LockError::NotOwner);
        }
        self.release_write(INCONSISTENT);
        Ok(())
    }

    /// Declares the data consistent, for the writer `tid`.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when `tid` does not hold it.
    pub(crate) fn mark_consistent_as(&self, tid: u32) -> Result<(), LockError> {
        let s = self.state.load(SeqCst);
        if s & TID_MASK != tid {
            return Err(LockError::NotOwner);
        }
        if s & INCONSISTENT != 0 {
            self.state.fetch_and(!INCONSISTENT, SeqCst);
        }
        Ok(())
    }

    /// One attempt to read for `tid`: the slot taken, or what to wait for.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] while a dead writer's data is unrepaired, or
    /// when the lock is not recoverable.
    pub(crate) fn attempt_read_as(&self, tid: u32) -> Result<ReadAttempt, LockError> {
        let s = self.state.load(SeqCst);
        if refuses_readers(s) {
            return Err(LockError::Poisoned);
        }
        let owner = s & TID_MASK;
        if owner != 0 {
            return Ok(ReadAttempt::Writer { s, owner });
        }
        let Some(i) = self.claim_slot(tid) else {
            return Ok(ReadAttempt::Full);
        };
        if self.state.load(SeqCst) & NO_READERS == 0 {
            return Ok(ReadAttempt::In(i));
        }
        self.release_slot(i);
        Ok(ReadAttempt::Again)
    }

    /// Releases reader slot `i` (taken by [`attempt_read_as`](Self::attempt_read_as)).
    pub(crate) fn release_read_slot(&self, i: usize) {
        self.release_slot(i);
    }

    /// Frees the writer field of the dead writer recorded in `s`.
    pub(crate) fn free_dead_writer(&self, s: u32) {
        self.writer_died(s);
    }

    #[cold]
    fn write_slow(&self, tid: u32, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        let mut wait = HolderWait::new(timeout);
        loop {
            let (s, owner) = match self.attempt_write(tid, wait.slept())? {
                Found::Taken(acq) => return self.drain_readers(tid, wait.deadline(), acq),
                Found::Held { w, owner } => (w, owner),
            };
            let deadline = wait.deadline();
            // A dead writer is found only after a sleep: other sleepers may
            // exist, so the waiters bit stays.
            let took_over = wait.round(&self.state, s, owner, SeqCst, |cur| {
                self.state
                    .compare_exchange(cur, tid | INCONSISTENT | WAITERS, SeqCst, SeqCst)
                    .is_ok()
                    .then(|| self.drain_readers(tid, deadline, Acquired::OwnerDied))
            })?;
            if let Some(r) = took_over {
                return r;
            }
        }
    }

    /// With the writer field held, waits until no reader is left.
    fn drain_readers(
        &self,
        tid: u32,
        deadline: Option<Instant>,
        acq: Acquired,
    ) -> Result<Acquired, LockError> {
        let mut spins = 0;
        // The clock is read once the writer goes to sleep.
        let mut since: Option<Instant> = None;
        loop {
            let seq = self.drain.load(SeqCst);
            let mut busy = false;
            for r in &self.readers {
                match r.load(SeqCst) {
                    0 => {}
                    v if v == tid => {
                        self.back_out(acq);
                        return Err(LockError::Deadlock);
                    }
                    _ => busy = true,
                }
            }
            if !busy {
                return Ok(acq);
            }
            if spins < SPIN_LIMIT {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let Some(slice) = futex::next_slice(deadline) else {
                self.back_out(acq);
                return Err(LockError::Timeout);
            };
            let start = *since.get_or_insert_with(Instant::now);
            futex::wait(&self.drain, seq, Some(slice));
            if start.elapsed() >= SLICE {
                self.reap_dead_readers();
                since = Some(Instant::now());
            }
        }
    }

    /// Gives the writer field back after a failed acquisition (the data was
    /// not touched, so an inconsistency found on taking it stays).
    fn back_out(&self, acq: Acquired) {
        self.release_write(if acq == Acquired::OwnerDied {
            INCONSISTENT
        } else {
            0
        });
    }

    #[inline]
    fn release_write(&self, new: u32) {
        let prev = self.state.swap(new, SeqCst);
        if prev & WAITERS != 0 {
            futex::wake(&self.state, u32::MAX);
        }
    }

    #[inline]
    fn check_writer(&self) -> Result<u32, LockError> {
        let s = self.state.load(SeqCst);
        if s & TID_MASK != current_tid() {
            return Err(LockError::NotOwner);
        }
        Ok(s)
    }

    /// Releases the exclusive hold of the calling thread. After
    /// [`Acquired::OwnerDied`] without [`mark_consistent`](Self::mark_consistent)
    /// the lock becomes not recoverable.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the calling thread does not hold it
    /// exclusively.
    #[inline]
    pub fn unlock_write_checked(&self) -> Result<(), LockError> {
        let s = self.check_writer()?;
        self.release_write(if s & INCONSISTENT != 0 {
            NOT_RECOVERABLE
        } else {
            0
        });
        Ok(())
    }

    /// Releases the exclusive hold.
    ///
    /// # Safety
    ///
    /// The calling thread must hold the lock exclusively (if it does not,
    /// the call does nothing; see
    /// [`unlock_write_checked`](Self::unlock_write_checked)).
    #[inline]
    pub unsafe fn unlock_write(&self) {
        let r = self.unlock_write_checked();
        debug_assert_eq!(r, Ok(()), "unlock_write without the write hold");
    }

    /// Declares the data consistent after [`Acquired::OwnerDied`].
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the calling thread does not hold it
    /// exclusively.
    pub fn mark_consistent(&self) -> Result<(), LockError> {
        let s = self.check_writer()?;
        if s & INCONSISTENT != 0 {
            self.state.fetch_and(!INCONSISTENT, SeqCst);
        }
        Ok(())
    }

    /// Releases the exclusive hold leaving the data marked inconsistent, as
    /// if the writer had died: readers get [`LockError::Poisoned`] and the
    /// next writer [`Acquired::OwnerDied`]. Used when a write is abandoned
    /// half-way (a panic).
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the calling thread does not hold it
    /// exclusively.
    pub fn abandon_write(&self) -> Result<(), LockError> {
        self.check_writer()?;
        self.release_write(INCONSISTENT);
        Ok(())
    }

    /// Releases the exclusive hold and makes the lock not recoverable.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the calling thread does not hold it
    /// exclusively.
    pub fn poison(&self) -> Result<(), LockError> {
        self.check_writer()?;
        self.release_write(NOT_RECOVERABLE);
        Ok(())
    }

    /// Holds the lock for reading even when it is poisoned, to copy the
    /// data out; release with [`release_copy`](Self::release_copy), which
    /// puts back the state found. A poisoned lock is held exclusively then.
    pub(crate) fn lock_for_copy(&self) -> Result<CopyHold, LockError> {
        let tid = current_tid();
        loop {
            match self.read(None) {
                Ok(_) => return Ok(CopyHold::Shared),
                Err(LockError::Poisoned) => {}
                Err(e) => return Err(e),
            }
            match self.write(None) {
                Ok(Acquired::Clean) => return Ok(CopyHold::Clean),
                Ok(Acquired::OwnerDied) => return Ok(CopyHold::Inconsistent),
                Err(LockError::Poisoned) => {}
                Err(e) => return Err(e),
            }
            if self.find_own(tid).is_some() {
                return Err(LockError::Deadlock);
            }
            let s = self.state.load(SeqCst);
            if s & TID_MASK == NOT_RECOVERABLE
                && self
                    .state
                    .compare_exchange(s, tid | INCONSISTENT | (s & WAITERS), SeqCst, SeqCst)
                    .is_ok()
            {
                // Without a deadline and without a read hold of our own,
                // draining cannot fail.
                let r = self.drain_readers(tid, None, Acquired::OwnerDied);
                debug_assert!(r.is_ok());
                return Ok(CopyHold::Poisoned);
            }
        }
    }

    /// Releases a hold from [`lock_for_copy`](Self::lock_for_copy).
    pub(crate) fn release_copy(&self, hold: CopyHold) {
        let r = match hold {
            CopyHold::Shared => self.unlock_read_checked(),
            CopyHold::Clean | CopyHold::Poisoned => self.unlock_write_checked(),
            CopyHold::Inconsistent => self.abandon_write(),
        };
        debug_assert_eq!(r, Ok(()));
    }

    /// Whether readers are refused: the lock is not recoverable, or a
    /// writer died and no writer repaired the data yet.
    pub fn is_poisoned(&self) -> bool {
        refuses_readers(self.state.load(SeqCst))
    }

    /// Makes a poisoned lock usable again (free and consistent), for
    /// whoever knows the data is fine. Returns whether it was poisoned.
    pub fn clear_poison(&self) -> bool {
        loop {
            let s = self.state.load(SeqCst);
            if !refuses_readers(s) {
                return false;
            }
            if self.state.compare_exchange(s, 0, SeqCst, SeqCst).is_ok() {
                futex::wake(&self.state, u32::MAX);
                return true;
            }
        }
    }
}

#[cfg(test)]
#[path = "rwlock_tests.rs"]
mod tests;
