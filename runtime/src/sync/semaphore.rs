//! [`Semaphore`]: a process-shared counting semaphore.

use std::time::Duration;

use super::raw::{LockError, RawSemaphore};

/// A process-shared counting semaphore, on a [`RawSemaphore`].
///
/// A semaphore counts, it does not own: units taken by a process that dies
/// are not given back. Copying one into a heap keeps its count (and nobody
/// waits on the copy).
///
/// ```
/// use mc::sync::Semaphore;
///
/// let s = Semaphore::new(1);
/// s.wait();
/// assert!(s.try_wait().is_err());
/// s.post()?;
/// assert_eq!(s.value(), 1);
/// # Ok::<(), mc::sync::LockError>(())
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct Semaphore {
    raw: RawSemaphore,
}

impl Semaphore {
    /// A semaphore with count `initial` (at most [`RawSemaphore::MAX`]).
    pub const fn new(initial: u32) -> Self {
        Semaphore {
            raw: RawSemaphore::new(initial),
        }
    }

    /// Adds one to the count, waking one waiter.
    ///
    /// # Errors
    ///
    /// [`LockError::Overflow`] when the count is [`RawSemaphore::MAX`].
    pub fn post(&self) -> Result<(), LockError> {
        self.raw.post()
    }

    /// Takes one unit, waiting as long as it takes.
    pub fn wait(&self) {
        self.raw.wait()
    }

    /// Takes one unit, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the timeout passes.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), LockError> {
        self.raw.wait_timeout(timeout)
    }

    /// Takes one unit without blocking the thread: a future, ready once it
    /// took one ([`RawSemaphore::wait_async`]). Dropping it before it is
    /// ready takes nothing.
    pub fn wait_async(&self) -> super::raw::SemaphoreWait<'_> {
        self.raw.wait_async()
    }

    /// Takes one unit if there is one.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when the count is 0.
    pub fn try_wait(&self) -> Result<(), LockError> {
        self.raw.try_wait()
    }

    /// The current count (a snapshot).
    pub fn value(&self) -> u32 {
        self.raw.value()
    }

    /// The counter words.
    pub fn raw(&self) -> &RawSemaphore {
        &self.raw
    }
}
