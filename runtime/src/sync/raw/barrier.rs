//! The process-shared barrier.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use super::super::futex::{self, SPIN_LIMIT};
use super::LockError;

const COUNT: u32 = 0xFFFF;
const GENERATION: u32 = 1 << 16;

crate::in_shared::in_shared! {
    /// A reusable barrier for `n` threads (of any processes).
    ///
    /// One word: `[generation:16][arrived:16]`, also the futex. The thread that
    /// completes a generation resets the count, advances the generation and
    /// wakes everybody; the others sleep until the generation changes.
    ///
    /// # When a process dies
    ///
    /// A barrier cannot know who is supposed to arrive: if a participant dies
    /// before arriving, the others wait for it. Use
    /// [`wait_timeout`](Self::wait_timeout) to bound that; a waiter that times
    /// out withdraws its arrival (unless the generation completed meanwhile, in
    /// which case the wait succeeds), so the barrier stays usable. A
    /// participant that dies after arriving counts as arrived.
    ///
    /// ```
    /// use mc::sync::raw::RawBarrier;
    ///
    /// let b = RawBarrier::new(2);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| b.wait());
    ///     b.wait();
    /// });
    /// ```
    pub struct RawBarrier {
        word: AtomicU32,
        n: u32,
    }
}

impl std::fmt::Debug for RawBarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.word.load(SeqCst);
        f.debug_struct("RawBarrier")
            .field("n", &self.n)
            .field("arrived", &(w & COUNT))
            .finish()
    }
}

impl RawBarrier {
    /// The largest number of participants.
    pub const MAX: u32 = COUNT;

    /// A barrier for `n` participants (1 ..= [`MAX`](Self::MAX)).
    pub const fn new(n: u32) -> Self {
        assert!(n >= 1 && n <= COUNT, "barrier size out of range");
        RawBarrier {
            word: AtomicU32::new(0),
            n,
        }
    }

    /// The number of participants.
    pub fn participants(&self) -> u32 {
        self.n
    }

    /// Waits until `n` participants have arrived. Returns `true` in exactly
    /// one of them (the last to arrive).
    pub fn wait(&self) -> bool {
        match self.wait_inner(None) {
            Ok(leader) => leader,
            Err(_) => unreachable!("a wait without a deadline cannot time out"),
        }
    }

    /// [`wait`](Self::wait), at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the timeout passes; the arrival is withdrawn
    /// then.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, LockError> {
        self.wait_inner(Some(timeout))
    }

    fn wait_inner(&self, timeout: Option<Duration>) -> Result<bool, LockError> {
        // `n` lives in shared memory: never trust it beyond the range.
        let n = self.n.clamp(1, COUNT);
        let prev = self.word.fetch_add(1, SeqCst);
        let gen = prev & !COUNT;
        if (prev & COUNT) + 1 >= n {
            // Last: open the next generation. Nobody else changes the word
            // now (withdrawals refuse a full count).
            self.word.store(gen.wrapping_add(GENERATION), SeqCst);
            futex::wake(&self.word, u32::MAX);
            return Ok(true);
        }
        for _ in 0..SPIN_LIMIT {
            std::hint::spin_loop();
            if self.word.load(SeqCst) & !COUNT != gen {
                return Ok(false);
            }
        }
        let deadline = futex::deadline(timeout);
        loop {
            let w = self.word.load(SeqCst);
            if w & !COUNT != gen {
                return Ok(false);
            }
            let Some(slice) = futex::next_slice(deadline) else {
                // Withdraw, unless the generation is completing.
                if w & COUNT < n && self.word.compare_exchange(w, w - 1, SeqCst, SeqCst).is_ok() {
                    return Err(LockError::Timeout);
                }
                continue;
            };
            futex::wait(&self.word, w, Some(slice));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    #[test]
    fn rounds_and_leaders() {
        let b = RawBarrier::new(3);
        let leaders = AtomicU64::new(0);
        let phase = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for round in 0..1000 {
                        assert!(phase.load(SeqCst) >= round);
                        if b.wait() {
                            leaders.fetch_add(1, SeqCst);
                            phase.fetch_add(1, SeqCst);
                        }
                        b.wait();
                    }
                });
            }
        });
        assert_eq!(leaders.load(SeqCst), 1000);
    }

    #[test]
    fn timeout_withdraws() {
        let b = RawBarrier::new(2);
        let t = Instant::now();
        assert_eq!(
            b.wait_timeout(Duration::from_millis(50)),
            Err(LockError::Timeout)
        );
        assert!(t.elapsed() >= Duration::from_millis(50) && t.elapsed() < Duration::from_secs(1));
        // Still usable for two.
        std::thread::scope(|s| {
            let h = s.spawn(|| b.wait_timeout(Duration::from_secs(5)));
            let me = b.wait_timeout(Duration::from_secs(5)).unwrap();
            assert_ne!(me, h.join().unwrap().unwrap());
        });
        assert!(RawBarrier::new(1).wait());
    }
}
