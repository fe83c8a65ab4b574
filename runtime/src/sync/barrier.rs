//! [`Barrier`]: a process-shared barrier.

use std::time::Duration;

use super::raw::{LockError, RawBarrier};

/// A reusable process-shared barrier for a fixed number of participants,
/// on a [`RawBarrier`] (see there for what happens when a participant
/// dies: use [`wait_timeout`](Barrier::wait_timeout) to bound the wait).
///
/// ```
/// use mc::sync::Barrier;
///
/// let b = Barrier::new(2);
/// std::thread::scope(|s| {
///     let other = s.spawn(|| b.wait());
///     let me = b.wait();
///     assert_ne!(me, other.join().unwrap()); // exactly one leader
/// });
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct Barrier {
    raw: RawBarrier,
}

impl Barrier {
    /// A barrier for `n` participants (1 ..= [`RawBarrier::MAX`]).
    pub const fn new(n: u32) -> Self {
        Barrier {
            raw: RawBarrier::new(n),
        }
    }

    /// Waits for all participants; `true` in exactly one of them.
    pub fn wait(&self) -> bool {
        self.raw.wait()
    }

    /// Waits for all participants at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the timeout passes; the arrival is withdrawn
    /// then.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, LockError> {
        self.raw.wait_timeout(timeout)
    }

    /// The number of participants.
    pub fn participants(&self) -> u32 {
        self.raw.participants()
    }

    /// The barrier word.
    pub fn raw(&self) -> &RawBarrier {
        &self.raw
    }
}
