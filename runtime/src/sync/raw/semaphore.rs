//! The process-shared counting semaphore.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use super::super::futex;

/// Re-reads of an empty semaphore before sleeping. Kept short: a waiter
/// that spins as long as a contended lock does (100 pauses, ~3 us here)
/// doubled the hand-off time between two processes on the 2-vCPU VM the
/// benchmarks ran on, while 10 cost nothing.
const SPIN: u32 = 10;
use super::LockError;

crate::in_shared::in_shared! {
    /// A counting semaphore usable from any process that maps it.
    ///
    /// `value` is the count and the futex word; `waiters` counts the threads
    /// that may be asleep, so that [`post`](Self::post) skips the
    /// `FUTEX_WAKE` when nobody waits.
    ///
    /// # When a process dies
    ///
    /// A semaphore counts, it does not own: units taken by a process that dies
    /// are **not** given back (nothing records who took them), and a unit it
    /// was about to post is lost. Use a [`RawMutex`](super::RawMutex) when
    /// ownership matters. A waiter that dies leaves `waiters` one too high
    /// (later posts make a needless `FUTEX_WAKE` syscall, nothing worse), and a
    /// waiter killed right after a post woke it cannot swallow that post: the
    /// unit stays in `value` until someone decrements it, and sleepers re-check
    /// `value` at least every 10 ms.
    ///
    /// ```
    /// use mc::sync::raw::{LockError, RawSemaphore};
    ///
    /// let s = RawSemaphore::new(1);
    /// assert_eq!(s.try_wait(), Ok(()));
    /// assert_eq!(s.try_wait(), Err(LockError::WouldBlock));
    /// s.post().unwrap();
    /// assert_eq!(s.value(), 1);
    /// ```
    pub struct RawSemaphore {
        value: AtomicU32,
        waiters: AtomicU32,
    }
}

impl Default for RawSemaphore {
    fn default() -> Self {
        Self::new(0)
    }
}

impl std::fmt::Debug for RawSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSemaphore")
            .field("value", &self.value())
            .finish()
    }
}

impl RawSemaphore {
    /// The largest count.
    pub const MAX: u32 = i32::MAX as u32;

    /// A semaphore with count `initial` (at most [`MAX`](Self::MAX)).
    pub const fn new(initial: u32) -> Self {
        assert!(initial <= Self::MAX, "semaphore count too large");
        RawSemaphore {
            value: AtomicU32::new(initial),
            waiters: AtomicU32::new(0),
        }
    }

    /// The current count (a snapshot).
    pub fn value(&self) -> u32 {
        self.value.load(SeqCst)
    }

    /// Adds one to the count and wakes one waiter.
    ///
    /// # Errors
    ///
    /// [`LockError::Overflow`] when the count is [`MAX`](Self::MAX).
    #[inline]
    pub fn post(&self) -> Result<(), LockError> {
        let mut v = self.value.load(SeqCst);
        loop {
            if v >= Self::MAX {
                return Err(LockError::Overflow);
            }
            match self.value.compare_exchange_weak(v, v + 1, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(cur) => v = cur,
            }
        }
        if self.waiters.load(SeqCst) != 0 {
            futex::wake(&self.value, 1);
        }
        Ok(())
    }

    /// Takes one unit if the count is positive.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when the count is 0.
    #[inline]
    pub fn try_wait(&self) -> Result<(), LockError> {
        let mut v = self.value.load(SeqCst);
        while v > 0 {
            match self.value.compare_exchange_weak(v, v - 1, SeqCst, SeqCst) {
                Ok(_) => return Ok(()),
                Err(cur) => v = cur,
            }
        }
        Err(LockError::WouldBlock)
    }

    /// Takes one unit, waiting as long as it takes.
    pub fn wait(&self) {
        // Without a deadline the wait cannot fail.
        let _ = self.wait_inner(None);
    }

    /// Takes one unit, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the timeout passes.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), LockError> {
        self.wait_inner(Some(timeout))
    }

    /// Takes one unit without blocking the thread: a future that is ready
    /// once it took one. While it waits, the process's parker thread sleeps
    /// on the count for it. Dropping it before it is ready takes nothing.
    ///
    /// ```
    /// let s = mc::sync::raw::RawSemaphore::new(0);
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// std::thread::scope(|t| {
    ///     t.spawn(|| {
    ///         std::thread::sleep(std::time::Duration::from_millis(10));
    ///         s.post().unwrap();
    ///     });
    ///     // The runtime's thread is free meanwhile for other tasks.
    ///     rt.block_on(s.wait_async());
    /// });
    /// assert_eq!(s.value(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_async(&self) -> SemaphoreWait<'_> {
        SemaphoreWait {
            sem: self,
            counted: false,
            reg: None,
        }
    }

    fn wait_inner(&self, timeout: Option<Duration>) -> Result<(), LockError> {
        if self.try_wait().is_ok() {
            return Ok(());
        }
        for _ in 0..SPIN {
            std::hint::spin_loop();
            if self.value.load(SeqCst) != 0 && self.try_wait().is_ok() {
                return Ok(());
            }
        }
        let deadline = futex::deadline(timeout);
        loop {
            if self.try_wait().is_ok() {
                return Ok(());
            }
            let Some(slice) = futex::next_slice(deadline) else {
                return Err(LockError::Timeout);
            };
            self.waiters.fetch_add(1, SeqCst);
            futex::wait(&self.value, 0, Some(slice));
            self.waiters.fetch_sub(1, SeqCst);
        }
    }
}

/// The future of [`RawSemaphore::wait_async`].
#[derive(Debug)]
#[must_use = "a future does nothing until it is awaited"]
pub struct SemaphoreWait<'a> {
    sem: &'a RawSemaphore,
    /// Whether this future counts in `waiters` (so that `post` wakes).
    counted: bool,
    reg: Option<crate::sync::parker::Registration>,
}

impl std::future::Future for SemaphoreWait<'_> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = &mut *self;
        this.reg = None;
        if this.sem.try_wait().is_ok() {
            this.uncount();
            return std::task::Poll::Ready(());
        }
        if !this.counted {
            // Counted before the last look, as a sleeper is: a `post`
            // after it sees the waiter and wakes the word.
            this.sem.waiters.fetch_add(1, SeqCst);
            this.counted = true;
        }
        if this.sem.try_wait().is_ok() {
            this.uncount();
            return std::task::Poll::Ready(());
        }
        this.reg = Some(crate::sync::parker::register(
            &this.sem.value,
            0,
            cx.waker(),
        ));
        std::task::Poll::Pending
    }
}

impl SemaphoreWait<'_> {
    fn uncount(&mut self) {
        if self.counted {
            self.sem.waiters.fetch_sub(1, SeqCst);
            self.counted = false;
        }
    }
}

impl Drop for SemaphoreWait<'_> {
    fn drop(&mut self) {
        self.reg = None;
        self.uncount();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn counts_and_times_out() {
        let s = RawSemaphore::new(2);
        s.wait();
        assert_eq!(s.wait_timeout(Duration::from_millis(1)), Ok(()));
        let t = Instant::now();
        assert_eq!(
            s.wait_timeout(Duration::from_millis(50)),
            Err(LockError::Timeout)
        );
        assert!(t.elapsed() >= Duration::from_millis(50) && t.elapsed() < Duration::from_secs(1));
        let full = RawSemaphore::new(RawSemaphore::MAX);
        assert_eq!(full.post(), Err(LockError::Overflow));
    }

    #[test]
    fn hands_over_between_threads() {
        let items = RawSemaphore::new(0);
        let room = RawSemaphore::new(4);
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..100_000 {
                    room.wait();
                    items.post().unwrap();
                }
            });
            for _ in 0..100_000 {
                items.wait();
                room.post().unwrap();
            }
        });
        assert_eq!(items.value(), 0);
        assert_eq!(room.value(), 4);
    }

    #[test]
    fn async_waits_take_units_and_dropped_ones_take_none() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let s: &'static RawSemaphore = Box::leak(Box::new(RawSemaphore::new(0)));
        // Futures given up while they wait take nothing.
        rt.block_on(async {
            for _ in 0..50 {
                let r = tokio::time::timeout(Duration::from_millis(1), s.wait_async()).await;
                assert!(r.is_err());
            }
        });
        assert_eq!(s.waiters.load(SeqCst), 0, "dropped waits stay counted");
        // 100 tasks wait; 100 posts from another thread wake them all.
        let done = rt.block_on(async {
            let tasks: Vec<_> = (0..100).map(|_| tokio::spawn(s.wait_async())).collect();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    std::thread::sleep(Duration::from_micros(200));
                    s.post().unwrap();
                }
            });
            let mut done = 0;
            for t in tasks {
                tokio::time::timeout(Duration::from_secs(30), t)
                    .await
                    .expect("a waiter was never woken")
                    .unwrap();
                done += 1;
            }
            done
        });
        assert_eq!(done, 100);
        assert_eq!(s.value(), 0);
        s.post().unwrap();
        assert_eq!(s.value(), 1, "the dropped waits took no unit");
    }
}
