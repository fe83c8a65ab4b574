//! [`Condvar`]: a process-shared condition variable.

use std::ops::DerefMut;
use std::time::{Duration, Instant};

use super::mutex::sealed::Token;
use super::mutex::CondvarGuard;
use super::raw::{LockError, RawCondvar};

/// Whether a timed wait ended by timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait ended because the timeout passed.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A process-shared condition variable, used with a
/// [`MutexGuard`](super::MutexGuard) or a [`SharedMutexGuard`](super::SharedMutexGuard).
///
/// Built on [`RawCondvar`]: a sequence-number futex with no per-waiter state
/// in shared memory; a waiter that dies can delay a notification by at most
/// 10 ms, never lose it. Spurious wake-ups happen: wait in a loop, or use
/// [`wait_while`](Condvar::wait_while).
///
/// The waits consume the guard and give it back with the mutex locked again;
/// on error ([`LockError::Poisoned`]: the mutex became not recoverable while
/// waiting) the mutex is not held. If the mutex's holder died meanwhile the
/// returned guard reports [`owner_died`](super::MutexGuard::owner_died).
///
/// ```
/// use mc::sync::{Condvar, Mutex};
///
/// let ready = Mutex::new(false);
/// let cv = Condvar::new();
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         *ready.lock().unwrap() = true;
///         cv.notify_one();
///     });
///     let g = cv.wait_while(ready.lock().unwrap(), |r| !*r).unwrap();
///     assert!(*g);
/// });
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct Condvar {
    raw: RawCondvar,
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Self {
        Condvar {
            raw: RawCondvar::new(),
        }
    }

    fn wait_inner<G: CondvarGuard>(
        &self,
        mut guard: G,
        timeout: Option<Duration>,
    ) -> Result<(G, bool), LockError> {
        match self.raw.wait(guard.raw_mutex(Token(())), timeout) {
            Ok(w) => {
                guard.set_owner_died(w.acquired.owner_died(), Token(()));
                Ok((guard, w.timed_out))
            }
            Err(e) => {
                // The mutex is not held any more: the guard must not unlock.
                std::mem::forget(guard);
                Err(e)
            }
        }
    }

    /// Releases the guard's mutex, waits for a notification, locks again.
    ///
    /// # Errors
    ///
    /// [`LockError::Poisoned`] when the mutex became not recoverable meanwhile
    /// (the guard is consumed and the mutex not held then);
    /// [`LockError::NotOwner`] when the calling thread does not hold the
    /// guard's mutex (a guard copied by `fork`).
    pub fn wait<G: CondvarGuard>(&self, guard: G) -> Result<G, LockError> {
        self.wait_inner(guard, None).map(|(g, _)| g)
    }

    /// [`wait`](Self::wait), at most `timeout`; a timeout is no error
    /// (see [`WaitTimeoutResult`]).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_timeout<G: CondvarGuard>(
        &self,
        guard: G,
        timeout: Duration,
    ) -> Result<(G, WaitTimeoutResult), LockError> {
        self.wait_inner(guard, Some(timeout))
            .map(|(g, t)| (g, WaitTimeoutResult(t)))
    }

    /// Waits as long as `condition` holds for the data.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_while<G, F>(&self, mut guard: G, mut condition: F) -> Result<G, LockError>
    where
        G: CondvarGuard + DerefMut,
        F: FnMut(&mut G::Target) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Waits as long as `condition` holds for the data, at most `timeout`
    /// in all. The result tells whether the timeout passed (with the
    /// condition still true).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_timeout_while<G, F>(
        &self,
        mut guard: G,
        timeout: Duration,
        mut condition: F,
    ) -> Result<(G, WaitTimeoutResult), LockError>
    where
        G: CondvarGuard + DerefMut,
        F: FnMut(&mut G::Target) -> bool,
    {
        let deadline = Instant::now().checked_add(timeout);
        while condition(&mut *guard) {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = self.wait_inner(guard, Some(left))?.0;
        }
        Ok((guard, WaitTimeoutResult(false)))
    }

    /// Wakes one waiter (in any process).
    pub fn notify_one(&self) {
        self.raw.notify_one()
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.raw.notify_all()
    }

    /// The condition words.
    pub fn raw(&self) -> &RawCondvar {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Mutex;
    use std::collections::VecDeque;

    #[test]
    fn producer_consumer_100k() {
        const N: u64 = 100_000;
        let q = Mutex::new(VecDeque::new());
        let not_empty = Condvar::new();
        let not_full = Condvar::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..N {
                    let mut g = not_full
                        .wait_while(q.lock().unwrap(), |q| q.len() >= 8)
                        .unwrap();
                    g.push_back(i);
                    drop(g);
                    not_empty.notify_one();
                }
            });
            for i in 0..N {
                let mut g = not_empty
                    .wait_while(q.lock().unwrap(), |q| q.is_empty())
                    .unwrap();
                assert_eq!(g.pop_front(), Some(i));
                drop(g);
                not_full.notify_one();
            }
        });
    }

    #[test]
    fn timeouts() {
        let m = Mutex::new(0);
        let c = Condvar::new();
        let t = Instant::now();
        let (g, r) = c
            .wait_timeout(m.lock().unwrap(), Duration::from_millis(50))
            .unwrap();
        assert!(r.timed_out());
        assert!(t.elapsed() >= Duration::from_millis(50) && t.elapsed() < Duration::from_secs(1));
        let t = Instant::now();
        let (g, r) = c
            .wait_timeout_while(g, Duration::from_millis(50), |v| *v == 0)
            .unwrap();
        assert!(r.timed_out());
        assert!(t.elapsed() >= Duration::from_millis(50) && t.elapsed() < Duration::from_secs(1));
        drop(g);
        c.notify_all();
    }
}
