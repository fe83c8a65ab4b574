//! How the locks wait: slices of sleep on shared futexes, spin limits and
//! deadlines, over the futex call and the thread ids of [`crate::os`].

use std::time::{Duration, Instant};

pub(crate) use crate::os::futex::{wait, wake, Wait};
pub(crate) use crate::os::ids::{current_pid, current_tid, process_key, thread_alive, TID_MASK};

/// How long a waiter sleeps before it re-examines the lock (and checks
/// whether the holder is still alive). Bounds how late a crashed holder is
/// noticed and how late a wake-up swallowed by a dying waiter is replaced.
pub(crate) const SLICE: Duration = Duration::from_millis(10);

/// How many times a locker re-reads a taken lock before it sleeps.
pub(crate) const SPIN_LIMIT: u32 = 100;

/// The time left before `deadline`, capped at [`SLICE`]; `None` once the
/// deadline has passed.
pub(crate) fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                None
            } else {
                Some((d - now).min(SLICE))
            }
        }
    }
}

/// `now + timeout`, or no deadline when the sum does not fit.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}
