//! Async acquisition of robust mutexes, and async condition waits: futures
//! that never block the executor's thread.
//!
//! A robust lock records its holder's thread id, and calls a holder dead
//! when that thread is gone. A task moves between threads, and threads of
//! an executor may end, so a future takes a lock under the process's holder
//! id instead: the id of the parker thread, which lives as long as the
//! process (see `parker::holder_tid`). The guard releases the lock under
//! that id from whatever thread drops it, and it may be sent between
//! threads. Two tasks of one process wait for each other like any two
//! lockers (the holder id being equal only means "another task"); a task
//! that asks again for a lock it holds waits for ever, as with any async
//! mutex.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::condvar::Condvar;
use super::futex::thread_alive;
use super::home::Home;
use super::lock::{InPlace, Lock, Owned, Placement};
use super::parker::{self, Registration};
use super::raw::{Acquired, Found, LockError, RawMutex, RawRwLock, ReadAttempt};

/// How long a holder keeps the word unchanged before its liveness is
/// checked.
const SLICE: Duration = Duration::from_millis(10);

/// The exclusive side of a raw lock, as futures use it (under the
/// process's holder id).
pub trait AsyncRaw: sealed::Sealed + Sized + 'static {
    /// `Ok(Ok(acquired))` when taken; `Ok(Err((word, holder)))` when held.
    #[doc(hidden)]
    fn attempt_as(&self, tid: u32) -> Result<Result<Acquired, (u32, u32)>, LockError>;
    #[doc(hidden)]
    fn word(&self) -> &AtomicU32;
    #[doc(hidden)]
    fn with_waiters(&self, w: u32) -> Option<u32>;
    #[doc(hidden)]
    fn take_over_as(&self, w: u32, tid: u32) -> bool;
    /// With the exclusive field taken: `None` when the lock is the
    /// caller's, or the word to wait on and its value (readers leaving).
    #[doc(hidden)]
    fn drained(&self) -> Option<(&AtomicU32, u32)>;
    #[doc(hidden)]
    fn reap(&self);
    #[doc(hidden)]
    fn back_out_as(&self, acq: Acquired);
    #[doc(hidden)]
    fn unlock_as(&self, tid: u32) -> Result<(), LockError>;
    #[doc(hidden)]
    fn abandon_as(&self, tid: u32) -> Result<(), LockError>;
    #[doc(hidden)]
    fn mark_consistent_as(&self, tid: u32) -> Result<(), LockError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::RawMutex {}
    impl Sealed for super::RawRwLock {}
}

/// [`Found`] in public types.
fn found(f: Found) -> Result<Acquired, (u32, u32)> {
    match f {
        Found::Taken(a) => Ok(a),
        Found::Held { w, owner } => Err((w, owner)),
    }
}

impl AsyncRaw for RawMutex {
    fn attempt_as(&self, tid: u32) -> Result<Result<Acquired, (u32, u32)>, LockError> {
        RawMutex::attempt_as(self, tid).map(found)
    }
    fn word(&self) -> &AtomicU32 {
        RawMutex::word(self)
    }
    fn with_waiters(&self, w: u32) -> Option<u32> {
        RawMutex::with_waiters(self, w)
    }
    fn take_over_as(&self, w: u32, tid: u32) -> bool {
        RawMutex::take_over_as(self, w, tid)
    }
    fn drained(&self) -> Option<(&AtomicU32, u32)> {
        None
    }
    fn reap(&self) {}
    fn back_out_as(&self, _: Acquired) {}
    fn unlock_as(&self, tid: u32) -> Result<(), LockError> {
        RawMutex::unlock_as(self, tid)
    }
    fn abandon_as(&self, tid: u32) -> Result<(), LockError> {
        RawMutex::abandon_as(self, tid)
    }
    fn mark_consistent_as(&self, tid: u32) -> Result<(), LockError> {
        RawMutex::mark_consistent_as(self, tid)
    }
}

impl AsyncRaw for RawRwLock {
    fn attempt_as(&self, tid: u32) -> Result<Result<Acquired, (u32, u32)>, LockError> {
        self.attempt_write_as(tid).map(found)
    }
    fn word(&self) -> &AtomicU32 {
        self.state_word()
    }
    fn with_waiters(&self, w: u32) -> Option<u32> {
        self.state_with_waiters(w)
    }
    fn take_over_as(&self, w: u32, tid: u32) -> bool {
        self.take_over_write_as(w, tid)
    }
    fn drained(&self) -> Option<(&AtomicU32, u32)> {
        let drain = self.drain_word();
        let seq = drain.load(Ordering::SeqCst);
        self.readers_busy().then_some((drain, seq))
    }
    fn reap(&self) {
        self.reap_dead();
    }
    fn back_out_as(&self, acq: Acquired) {
        RawRwLock::back_out_as(self, acq);
    }
    fn unlock_as(&self, tid: u32) -> Result<(), LockError> {
        self.unlock_write_as(tid)
    }
    fn abandon_as(&self, tid: u32) -> Result<(), LockError> {
        self.abandon_write_as(tid)
    }
    fn mark_consistent_as(&self, tid: u32) -> Result<(), LockError> {
        RawRwLock::mark_consistent_as(self, tid)
    }
}

impl<T: ?Sized, P: Placement> Lock<RawRwLock, T, P> {
    /// Takes the lock exclusively without blocking the thread: a future,
    /// ready with a guard once the writer field is this task's and every
    /// reader has left (as [`write`](Self::write) does, writers first).
    /// The guard may be held across `.await`s and sent between threads.
    /// Dropping the future before it is ready takes nothing (a writer field
    /// taken while readers drained is given back).
    pub fn write_async(&self) -> LockAsync<'_, RawRwLock, T, P> {
        LockAsync {
            lock: self,
            reg: None,
            seen: None,
            draining: None,
        }
    }

    /// Takes the lock shared without blocking the thread: a future, ready
    /// with a read guard (which may be held across `.await`s and sent
    /// between threads). Dropping the future before it is ready takes
    /// nothing.
    pub fn read_async(&self) -> ReadAsync<'_, T, P> {
        ReadAsync {
            lock: self,
            reg: None,
            seen: None,
        }
    }
}

impl<T: ?Sized, P: Placement> Lock<RawMutex, T, P> {
    /// Takes the lock without blocking the thread: a future, ready with a
    /// guard once the lock is this task's. The guard may be held across
    /// `.await`s and sent between threads. A holder that died (its process
    /// gone) is taken over, as by `lock`, with
    /// [`owner_died`](AsyncMutexGuard::owner_died). Dropping the future
    /// before it is ready takes nothing.
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()?;
    /// let m = std::sync::Arc::new(mc::sync::Mutex::new(0u64));
    /// rt.block_on(async {
    ///     let tasks: Vec<_> = (0..8)
    ///         .map(|_| {
    ///             let m = m.clone();
    ///             tokio::spawn(async move {
    ///                 for _ in 0..100 {
    ///                     let mut g = m.lock_async().await.unwrap();
    ///                     *g += 1;
    ///                     tokio::task::yield_now().await; // held across an await
    ///                 }
    ///             })
    ///         })
    ///         .collect();
    ///     for t in tasks {
    ///         t.await.unwrap();
    ///     }
    /// });
    /// assert_eq!(*m.lock()?, 800);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_async(&self) -> LockAsync<'_, RawMutex, T, P> {
        LockAsync {
            lock: self,
            reg: None,
            seen: None,
            draining: None,
        }
    }
}

/// The future of [`Mutex::lock_async`](super::Mutex::lock_async) and
/// [`RwLock::write_async`](super::RwLock::write_async).
#[must_use = "a future does nothing until it is awaited"]
pub struct LockAsync<'a, L: AsyncRaw, T: ?Sized, P: Placement> {
    lock: &'a Lock<L, T, P>,
    reg: Option<Registration>,
    /// The word last found held, and since when.
    seen: Option<(u32, Instant)>,
    /// The writer field is taken (how, and since when): readers drain.
    draining: Option<(Acquired, u32, Instant)>,
}

impl<L: AsyncRaw, T: ?Sized, P: Placement> fmt::Debug for LockAsync<'_, L, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockAsync").finish_non_exhaustive()
    }
}

impl<'a, L: AsyncRaw, T: ?Sized, P: Placement> Future for LockAsync<'a, L, T, P> {
    type Output = Result<AsyncGuard<'a, L, T, P>, LockError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.reg = None;
        let raw = &this.lock.raw;
        let lock = this.lock;
        let guard = |died: bool, tid: u32| AsyncGuard {
            lock,
            died,
            holder: tid,
            home: Home::here(),
        };
        let now = Instant::now();
        if this.draining.is_none() {
            let Some(tid) = parker::holder_tid() else {
                return Poll::Ready(Err(LockError::NoParker));
            };
            match raw.attempt_as(tid) {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(Ok(a)) => this.draining = Some((a, tid, now)),
                Ok(Err((w, owner))) => return this.wait_for_holder(cx, tid, w, owner, now),
            }
        }
        // The exclusive field is ours; readers drain (a reader/writer
        // lock), or nothing is left to wait for (a mutex).
        let Some((acq, tid, since)) = this.draining else {
            // Not reached: set above.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        let Some((word, seq)) = raw.drained() else {
            this.draining = None;
            return Poll::Ready(Ok(guard(acq.owner_died(), tid)));
        };
        if now.duration_since(since) >= SLICE {
            raw.reap();
            this.draining = Some((acq, tid, now));
        }
        this.reg = Some(parker::register_until(
            word,
            seq,
            cx.waker(),
            Some(now + SLICE),
        ));
        Poll::Pending
    }
}

impl<'a, L: AsyncRaw, T: ?Sized, P: Placement> LockAsync<'a, L, T, P> {
    /// Waits for the holder `owner` of the word `w` (taking the lock over
    /// when that holder has died).
    fn wait_for_holder(
        &mut self,
        cx: &mut Context<'_>,
        tid: u32,
        w: u32,
        owner: u32,
        now: Instant,
    ) -> Poll<Result<AsyncGuard<'a, L, T, P>, LockError>> {
        let raw = &self.lock.raw;
        match self.seen {
            // The same holder for a slice: is it alive?
            Some((seen, since)) if seen & !super::futex::WAITERS == w & !super::futex::WAITERS => {
                if now.duration_since(since) >= SLICE
                    && !thread_alive(owner)
                    && raw.take_over_as(w, tid)
                {
                    self.draining = Some((Acquired::OwnerDied, tid, now));
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            _ => self.seen = Some((w, now)),
        }
        let Some(expected) = raw.with_waiters(w) else {
            // The word changed: look again.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        self.reg = Some(parker::register_until(
            raw.word(),
            expected,
            cx.waker(),
            Some(now + SLICE),
        ));
        Poll::Pending
    }
}

impl<L: AsyncRaw, T: ?Sized, P: Placement> Drop for LockAsync<'_, L, T, P> {
    fn drop(&mut self) {
        self.reg = None;
        if let Some((acq, _, _)) = self.draining.take() {
            // Taken, never handed out: given back.
            self.lock.raw.back_out_as(acq);
        }
    }
}

/// Exclusive access to the data of a lock taken by
/// [`lock_async`](super::Mutex::lock_async) or
/// [`write_async`](super::RwLock::write_async); releases when dropped,
/// from any thread. A guard dropped while its thread panics leaves the
/// data marked inconsistent, as [`LockGuard`](super::LockGuard) does.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took it (a copy
/// made by `fork`), which releases nothing.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct AsyncGuard<'a, L: AsyncRaw, T: ?Sized, P: Placement> {
    lock: &'a Lock<L, T, P>,
    died: bool,
    /// The holder id the lock was taken under.
    holder: u32,
    home: Home,
}

// SAFETY: the guard gives `&mut T` to whichever thread has it, and releases
// under its recorded holder id from any thread: sending it sends access to
// `T` (as `std::sync::MutexGuard` would if it were `Send`).
unsafe impl<L: AsyncRaw, T: ?Sized + Send, P: Placement> Send for AsyncGuard<'_, L, T, P> {}
// SAFETY: sharing the guard only shares `&T`.
unsafe impl<L: AsyncRaw, T: ?Sized + Sync, P: Placement> Sync for AsyncGuard<'_, L, T, P> {}

impl<L: AsyncRaw, T: ?Sized, P: Placement> AsyncGuard<'_, L, T, P> {
    fn check(&self) {
        self.home.check("AsyncGuard");
    }

    fn data_mut(&mut self) -> &mut T {
        self.check();
        // SAFETY: the guard holds the lock exclusively, so no other thread
        // or process reaches the data, and the exclusive borrow of the
        // guard makes this the only reference to it.
        unsafe { &mut *self.lock.data.get() }
    }

    /// Whether the previous holder died (or panicked) holding the lock.
    pub fn owner_died(&self) -> bool {
        self.died
    }

    /// Declares the data consistent after [`owner_died`](Self::owner_died).
    pub fn mark_consistent(&mut self) {
        self.check();
        let r = self.lock.raw.mark_consistent_as(self.holder);
        debug_assert_eq!(r, Ok(()));
    }
}

impl<L: AsyncRaw, R> AsyncGuard<'_, L, R, InPlace> {
    /// The data, pinned for modification in place.
    pub fn as_pin(&mut self) -> Pin<&mut R> {
        let data = self.data_mut();
        // SAFETY: data in place lives in target memory and never moves.
        unsafe { Pin::new_unchecked(data) }
    }
}

impl<L: AsyncRaw, T: ?Sized, P: Placement> Deref for AsyncGuard<'_, L, T, P> {
    type Target = T;
    fn deref(&self) -> &T {
        self.check();
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &*self.lock.data.get() }
    }
}

impl<L: AsyncRaw, T: ?Sized> DerefMut for AsyncGuard<'_, L, T, Owned> {
    fn deref_mut(&mut self) -> &mut T {
        self.data_mut()
    }
}

impl<L: AsyncRaw, R: Unpin> DerefMut for AsyncGuard<'_, L, R, InPlace> {
    fn deref_mut(&mut self) -> &mut R {
        self.data_mut()
    }
}

impl<L: AsyncRaw, T: ?Sized, P: Placement> Drop for AsyncGuard<'_, L, T, P> {
    fn drop(&mut self) {
        if !self.home.is_here() {
            return;
        }
        let _ = if std::thread::panicking() {
            self.lock.raw.abandon_as(self.holder)
        } else {
            self.lock.raw.unlock_as(self.holder)
        };
    }
}

impl<L: AsyncRaw, T: ?Sized + fmt::Debug, P: Placement> fmt::Debug for AsyncGuard<'_, L, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The guard of [`Mutex::lock_async`](super::Mutex::lock_async).
pub type AsyncMutexGuard<'a, T, P> = AsyncGuard<'a, RawMutex, T, P>;
/// The guard of [`RwLock::write_async`](super::RwLock::write_async).
pub type AsyncWriteGuard<'a, T, P> = AsyncGuard<'a, RawRwLock, T, P>;

/// The future of [`RwLock::read_async`](super::RwLock::read_async).
#[must_use = "a future does nothing until it is awaited"]
pub struct ReadAsync<'a, T: ?Sized, P: Placement> {
    lock: &'a Lock<RawRwLock, T, P>,
    reg: Option<Registration>,
    /// The writer state last found, and since when.
    seen: Option<(u32, Instant)>,
}

impl<T: ?Sized, P: Placement> fmt::Debug for ReadAsync<'_, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadAsync").finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized, P: Placement> Future for ReadAsync<'a, T, P> {
    type Output = Result<AsyncReadGuard<'a, T, P>, LockError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.reg = None;
        let Some(tid) = parker::holder_tid() else {
            return Poll::Ready(Err(LockError::NoParker));
        };
        let raw = &this.lock.raw;
        let now = Instant::now();
        match raw.attempt_read_as(tid) {
            Err(e) => Poll::Ready(Err(e)),
            Ok(ReadAttempt::In(slot)) => Poll::Ready(Ok(AsyncReadGuard {
                lock: this.lock,
                slot,
                home: Home::here(),
            })),
            Ok(ReadAttempt::Again) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Ok(ReadAttempt::Full) => {
                // Every slot busy: look again after a while, reaping the
                // slots of dead readers.
                raw.reap_dead();
                let drain = raw.drain_word();
                let seq = drain.load(Ordering::SeqCst);
                this.reg = Some(parker::register_until(
                    drain,
                    seq,
                    cx.waker(),
                    Some(now + Duration::from_millis(1)),
                ));
                Poll::Pending
            }
            Ok(ReadAttempt::Writer { s, owner }) => {
                match this.seen {
                    Some((seen, since))
                        if seen & !super::futex::WAITERS == s & !super::futex::WAITERS =>
                    {
                        if now.duration_since(since) >= SLICE && !thread_alive(owner) {
                            raw.free_dead_writer(s);
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                    _ => this.seen = Some((s, now)),
                }
                let Some(expected) = raw.state_with_waiters(s) else {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                };
                this.reg = Some(parker::register_until(
                    raw.state_word(),
                    expected,
                    cx.waker(),
                    Some(now + SLICE),
                ));
                Poll::Pending
            }
        }
    }
}

/// Shared access to the data of a reader/writer lock taken by
/// [`read_async`](super::RwLock::read_async); releases its reader slot
/// when dropped, from any thread.
///
/// # Panics
///
/// Dereferencing panics in any process but the one that took it (a copy
/// made by `fork`), which releases nothing.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct AsyncReadGuard<'a, T: ?Sized, P: Placement> {
    lock: &'a Lock<RawRwLock, T, P>,
    slot: usize,
    home: Home,
}

// SAFETY: a read guard gives `&T` to whichever thread has it (readers on
// several threads share `&T`, hence `T: Sync`), and releases its slot by
// index from any thread.
unsafe impl<T: ?Sized + Sync, P: Placement> Send for AsyncReadGuard<'_, T, P> {}
// SAFETY: sharing the guard only shares `&T`.
unsafe impl<T: ?Sized + Sync, P: Placement> Sync for AsyncReadGuard<'_, T, P> {}

impl<T: ?Sized, P: Placement> Deref for AsyncReadGuard<'_, T, P> {
    type Target = T;
    fn deref(&self) -> &T {
        self.home.check("AsyncReadGuard");
        // SAFETY: the guard holds a reader slot, so no writer changes the
        // data while it lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, P: Placement> Drop for AsyncReadGuard<'_, T, P> {
    fn drop(&mut self) {
        if self.home.is_here() {
            self.lock.raw.release_read_slot(self.slot);
        }
    }
}

impl<T: ?Sized + fmt::Debug, P: Placement> fmt::Debug for AsyncReadGuard<'_, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A wait for a word to leave the value `seen`.
struct Changed<'a> {
    word: &'a AtomicU32,
    seen: u32,
    reg: Option<Registration>,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.reg = None;
        if this.word.load(Ordering::SeqCst) != this.seen {
            return Poll::Ready(());
        }
        this.reg = Some(parker::register(this.word, this.seen, cx.waker()));
        Poll::Pending
    }
}

/// Counts a waiter for as long as it lives (so that a dropped wait is not
/// counted for ever).
struct Counted<'a>(&'a AtomicU32);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Condvar {
    /// Waits without blocking the thread: releases `guard`'s mutex, waits
    /// for a notification, and takes the mutex again (a future). Wake-ups
    /// may be spurious: check the condition in a loop, as with
    /// [`wait`](Self::wait). Dropping the future while it waits leaves the
    /// mutex released.
    ///
    /// # Errors
    ///
    /// The errors of [`lock_async`](super::Mutex::lock_async) when the
    /// mutex is taken again.
    pub async fn wait_async<'a, T: ?Sized, P: Placement>(
        &self,
        guard: AsyncMutexGuard<'a, T, P>,
    ) -> Result<AsyncMutexGuard<'a, T, P>, LockError> {
        let lock = guard.lock;
        let (seq, waiters) = self.raw().words();
        let seen = seq.load(Ordering::SeqCst);
        waiters.fetch_add(1, Ordering::SeqCst);
        let counted = Counted(waiters);
        // Released under its holder id; a panic cannot happen here.
        drop(guard);
        Changed {
            word: seq,
            seen,
            reg: None,
        }
        .await;
        drop(counted);
        lock.lock_async().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{Mutex, RwLock};
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn readers_never_see_a_half_write() {
        let l = Arc::new(RwLock::new((0u64, 0u64)));
        let rt = rt();
        // A blocking reader thread beside the tasks.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (l, stop) = (l.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(Ordering::SeqCst) {
                    let g = l.read().unwrap();
                    assert_eq!(g.0, g.1);
                    reads += 1;
                }
                reads
            })
        };
        rt.block_on(async {
            let mut tasks = Vec::new();
            for w in 0..3u64 {
                let l = l.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..300u64 {
                        let mut g = l.write_async().await.unwrap();
                        g.0 = w * 1000 + i;
                        tokio::task::yield_now().await;
                        g.1 = w * 1000 + i;
                    }
                }));
            }
            for _ in 0..3 {
                let l = l.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..300 {
                        let g = l.read_async().await.unwrap();
                        let (a, b) = *g;
                        tokio::task::yield_now().await;
                        assert_eq!((a, b), *g, "changed under a read guard");
                        assert_eq!(a, b);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        stop.store(true, Ordering::SeqCst);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(l.raw().reader_count(), 0);
        assert!(!l.raw().is_write_locked());
    }

    #[test]
    fn futures_dropped_while_waiting_take_nothing() {
        let rt = rt();
        let m = Arc::new(Mutex::new(0u32));
        let l = Arc::new(RwLock::new(0u32));
        let (held, release) = (
            Arc::new(std::sync::Barrier::new(2)),
            Arc::new(std::sync::Barrier::new(2)),
        );
        let holder = {
            let (m, l, held, release) = (m.clone(), l.clone(), held.clone(), release.clone());
            std::thread::spawn(move || {
                let _g = m.lock().unwrap();
                let _r = l.read().unwrap();
                held.wait();
                release.wait();
            })
        };
        held.wait();
        rt.block_on(async {
            for _ in 0..20 {
                let t = Duration::from_millis(2);
                assert!(tokio::time::timeout(t, m.lock_async()).await.is_err());
                // Dropped while readers drain: the writer field goes back.
                assert!(tokio::time::timeout(t, l.write_async()).await.is_err());
                assert!(!l.raw().is_write_locked());
            }
        });
        release.wait();
        holder.join().unwrap();
        rt.block_on(async {
            *m.lock_async().await.unwrap() += 1;
            *l.write_async().await.unwrap() += 1;
        });
        assert_eq!((*m.lock().unwrap(), *l.read().unwrap()), (1, 1));
    }

    #[test]
    fn condvar_wakes_an_async_waiter() {
        let rt = rt();
        let state = Arc::new((Mutex::new(false), Condvar::new()));
        let s2 = state.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            *s2.0.lock().unwrap() = true;
            s2.1.notify_all();
        });
        let ok = rt.block_on(async {
            let mut g = state.0.lock_async().await.unwrap();
            while !*g {
                g = state.1.wait_async(g).await.unwrap();
            }
            *g
        });
        t.join().unwrap();
        assert!(ok);
    }
}
