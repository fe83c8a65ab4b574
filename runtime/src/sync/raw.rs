//! Raw process-shared locks: plain words in shared memory, no data.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::futex;

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The previous holder released it normally.
    Clean,
    /// The previous holder died while holding it: the protected data may be
    /// inconsistent.
    OwnerDied,
}

/// Why a lock was not acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// The timeout passed.
    Timeout,
    /// A `try_` acquisition found the lock taken.
    WouldBlock,
    /// A holder died and nobody declared the data consistent.
    Poisoned,
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Timeout => write!(f, "timed out waiting for the lock"),
            LockError::WouldBlock => write!(f, "the lock is taken"),
            LockError::Poisoned => write!(f, "the lock is poisoned: a holder died"),
        }
    }
}

impl std::error::Error for LockError {}

const WRITER: u32 = 1 << 31;

/// A reader/writer lock word usable from any process that maps it.
#[repr(C)]
pub struct RawRwLock {
    state: AtomicU32,
    waiters: AtomicU32,
}

impl Default for RawRwLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawRwLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        RawRwLock { state: AtomicU32::new(0), waiters: AtomicU32::new(0) }
    }

    fn wait(&self, seen: u32, deadline: Option<Instant>) -> Result<(), LockError> {
        let timeout = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(LockError::Timeout);
                }
                Some(d - now)
            }
            None => None,
        };
        self.waiters.fetch_add(1, Ordering::SeqCst);
        futex::wait(&self.state, seen, timeout);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    /// Takes the lock shared.
    pub fn read(&self, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut spins = 0;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & WRITER == 0 {
                if self.state.compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    return Ok(Acquired::Clean);
                }
                continue;
            }
            if spins < 100 {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            self.wait(s, deadline)?;
        }
    }

    /// Takes the lock exclusively.
    pub fn write(&self, timeout: Option<Duration>) -> Result<Acquired, LockError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut spins = 0;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s == 0 {
                if self.state.compare_exchange_weak(0, WRITER, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    return Ok(Acquired::Clean);
                }
                continue;
            }
            if spins < 100 {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            self.wait(s, deadline)?;
        }
    }

    /// Releases a shared hold.
    ///
    /// # Safety
    ///
    /// The caller must hold the lock shared.
    pub unsafe fn unlock_read(&self) {
        let prev = self.state.fetch_sub(1, Ordering::SeqCst);
        if prev == 1 && self.waiters.load(Ordering::SeqCst) > 0 {
            futex::wake(&self.state, u32::MAX);
        }
    }

    /// Releases the exclusive hold.
    ///
    /// # Safety
    ///
    /// The caller must hold the lock exclusively.
    pub unsafe fn unlock_write(&self) {
        self.state.swap(0, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            futex::wake(&self.state, u32::MAX);
        }
    }
}
