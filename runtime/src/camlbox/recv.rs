//! Receiving one message at a time: wait, read, delete, in one call.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::layout::READY;
use super::{Camlbox, CamlboxError, Stop};
use crate::value::Shared;

/// How many slots past a ready one the receiver prefetches: with a full
/// box they hold the next messages, which the sender wrote.
#[cfg(target_arch = "x86_64")]
const PREFETCH: usize = 2;

/// Deletes the slot it holds when dropped (also when the reader panics).
struct Taken<'a, T: Shared> {
    rx: &'a mut Camlbox<T>,
    slot: usize,
}

impl<T: Shared> Drop for Taken<'_, T> {
    fn drop(&mut self) {
        // The slot is ready and this receiver's (`take_ready` found it so,
        // and only the receiver frees a ready slot); a segment cut short is
        // not written to.
        if !self.rx.map.truncated() {
            self.rx.seen[self.slot] = false;
            self.rx.region().free(self.slot);
        }
    }
}

impl<T: Shared> Camlbox<T> {
    /// Waits for a message, copies it out and deletes it: the receiving
    /// loop of a box in one call, without allocating.
    ///
    /// A camlbox does not order its messages (senders write into whichever
    /// slot is free, as in Netmulticore): the receiver takes them in ring
    /// order from where it found the last one, which for one sender is
    /// mostly, but not always, the order they were sent in. Slots that
    /// [`wait`](Camlbox::wait) returned and that are not yet deleted are
    /// left to their reader.
    ///
    /// ```
    /// let (mut rx, id) = mc::Camlbox::<String>::create(4, 64)?;
    /// let tx = id.sender()?;
    /// tx.send(&"one".to_string())?;
    /// tx.send(&"two".to_string())?;
    /// assert_eq!(rx.recv()?, "one");
    /// assert_eq!(rx.recv_with(|s| s.len())?, 3);
    /// assert!(matches!(
    ///     rx.recv_timeout(std::time::Duration::ZERO),
    ///     Err(mc::CamlboxError::Timeout)
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`CamlboxError::Invalid`] when the message is malformed (it is
    /// deleted: the next call goes on with the next one);
    /// [`CamlboxError::Woken`] when a sender called
    /// [`Sender::wake`](super::Sender::wake); [`CamlboxError::NotReceiver`]
    /// outside the receiver's process; [`CamlboxError::Truncated`] when
    /// another process cut the box short.
    pub fn recv(&mut self) -> Result<T, CamlboxError> {
        self.recv_within(None, T::from_repr)
    }

    /// Like [`recv`](Camlbox::recv), but gives up with
    /// [`CamlboxError::Timeout`] after `timeout` (`Duration::ZERO` only
    /// takes a message that is ready).
    ///
    /// # Errors
    ///
    /// As [`recv`](Camlbox::recv), and [`CamlboxError::Timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, CamlboxError> {
        self.recv_within(Some(timeout), T::from_repr)
    }

    /// Waits for a message and lends it in place to `read`, then deletes
    /// it (also when `read` panics); returns what `read` returns.
    ///
    /// # Errors
    ///
    /// As [`recv`](Camlbox::recv).
    pub fn recv_with<R>(&mut self, read: impl FnOnce(&T::Repr) -> R) -> Result<R, CamlboxError> {
        self.recv_within(None, read)
    }

    /// Like [`recv_with`](Camlbox::recv_with), but gives up with
    /// [`CamlboxError::Timeout`] after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Camlbox::recv_timeout).
    pub fn recv_with_timeout<R>(
        &mut self,
        timeout: Duration,
        read: impl FnOnce(&T::Repr) -> R,
    ) -> Result<R, CamlboxError> {
        self.recv_within(Some(timeout), read)
    }

    /// Receives one message, waiting at most `timeout` (`None`: without
    /// end; the clock is read only when nothing is ready).
    fn recv_within<R>(
        &mut self,
        timeout: Option<Duration>,
        read: impl FnOnce(&T::Repr) -> R,
    ) -> Result<R, CamlboxError> {
        if !self.is_receiver() {
            return Err(CamlboxError::NotReceiver);
        }
        let slot = match self.take_ready() {
            Some(slot) => slot,
            None => self
                .block_on(timeout, Self::take_ready)
                .map_err(|stop| match stop {
                    Stop::Woken => CamlboxError::Woken,
                    Stop::TimedOut => CamlboxError::Timeout,
                    Stop::Cut => self.map.truncated_error(),
                })?,
        };
        // Held (as if `wait` had returned it) until the guard frees it,
        // however this ends.
        self.seen[slot] = true;
        let taken = Taken { rx: self, slot };
        // (`validated_root` checks that the segment is whole once it has
        // read the message.)
        let root = taken.rx.validated_root(slot)?;
        // SAFETY: `root` points to a validated `T::Repr` inside the slot,
        // which stays mapped and unchanged until the guard deletes it after
        // `read` returns (nobody writes a ready slot).
        Ok(read(unsafe { &*root }))
    }

    /// The next ready slot that no `wait` returned, in ring order from the
    /// cursor.
    fn take_ready(&mut self) -> Option<usize> {
        let r = self.map.region;
        let n = self.seen.len();
        // (No `%`: a division costs more than the rest of the lookup.)
        let mut i = self.cursor;
        for _ in 0..n {
            let next = if i + 1 == n { 0 } else { i + 1 };
            if !self.seen[i] && r.slot(i).state.load(Ordering::Acquire) == READY {
                self.cursor = next;
                #[cfg(target_arch = "x86_64")]
                {
                    let mut j = next;
                    for _ in 0..PREFETCH.min(n - 1) {
                        let p = std::ptr::from_ref(r.slot(j)).cast::<i8>();
                        // SAFETY: a prefetch is a hint; SSE is part of x86_64.
                        unsafe {
                            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p)
                        };
                        j = if j + 1 == n { 0 } else { j + 1 };
                    }
                }
                return Some(i);
            }
            i = next;
        }
        None
    }
}
