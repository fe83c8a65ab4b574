//! Waiting for messages without blocking a thread: [`Camlbox::wait_async`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use super::{Camlbox, SPIN};
use crate::sync::parker::{self, Registration};
use crate::value::Shared;

/// The future of [`Camlbox::wait_async`]: the slots that became ready, or
/// none after a [`Sender::wake`](super::Sender::wake).
#[derive(Debug)]
#[must_use = "a future does nothing until it is awaited"]
pub struct WaitAsync<'a, T: Shared> {
    rx: &'a mut Camlbox<T>,
    /// When the first poll found nothing (the end of the spin is counted
    /// from it).
    first_miss: Option<Instant>,
    reg: Option<Registration>,
}

impl<T: Shared> Camlbox<T> {
    /// Waits for messages without blocking the thread: the future of
    /// [`wait`](Camlbox::wait), for async code (tokio or any executor).
    ///
    /// For the first 100 µs it polls again at once (yielding to the
    /// executor in between), as `wait` spins; then the process's parker
    /// thread sleeps on the box's notification word for it, and wakes it
    /// when a sender notifies. Messages are taken only when the future is
    /// ready: one dropped before (a `select!` that took another branch, a
    /// timeout) loses none, and the next wait returns them.
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// let (mut rx, id) = mc::Camlbox::<String>::create(4, 256)?;
    /// let tx = id.sender()?;
    /// std::thread::spawn(move || tx.send(&"hello".to_string()));
    /// let slots = rt.block_on(rx.wait_async());
    /// assert_eq!(rx.get_copy(slots[0])?, "hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_async(&mut self) -> WaitAsync<'_, T> {
        WaitAsync {
            rx: self,
            first_miss: None,
            reg: None,
        }
    }
}

impl<T: Shared> Future for WaitAsync<'_, T> {
    type Output = Vec<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<usize>> {
        let this = &mut *self;
        this.reg = None;
        let mut out = Vec::new();
        if this.rx.ready_now(&mut out) {
            this.announce(false);
            return Poll::Ready(out);
        }
        let first = *this.first_miss.get_or_insert_with(Instant::now);
        if first.elapsed() < SPIN {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Announce the sleep, then look again (see `Region::publish`):
        // either this sees the message, or its sender sees the announcement
        // and bumps the notification word the parker sleeps on.
        let region = this.rx.map.region;
        let h = region.header();
        h.receiver_sleeping.store(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let seq = h.notify.load(Ordering::SeqCst);
        if this.rx.ready_now(&mut out) {
            this.announce(false);
            return Poll::Ready(out);
        }
        this.reg = Some(parker::register(&h.notify, seq, cx.waker()));
        Poll::Pending
    }
}

impl<T: Shared> WaitAsync<'_, T> {
    /// Clears the announcement of a sleep (when this future is ready or
    /// dropped).
    fn announce(&mut self, sleeping: bool) {
        if self.rx.is_receiver() {
            let v = u32::from(sleeping);
            self.rx
                .map
                .region
                .header()
                .receiver_sleeping
                .store(v, Ordering::SeqCst);
        }
    }
}

impl<T: Shared> Drop for WaitAsync<'_, T> {
    fn drop(&mut self) {
        // Forgotten by the parker before the box can go.
        if self.reg.take().is_some() {
            self.announce(false);
        }
    }
}
