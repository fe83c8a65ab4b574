//! The byte layout of a camlbox segment and the slot state machine, written
//! over a plain mapped region so that it can be exercised inside one
//! process.
//!
//! ```text
//! 0      SegmentHeader (64 bytes: magic, kind Camlbox, T::FINGERPRINT)
//! 64     BoxHeader (192 bytes: geometry, receiver base, futex words)
//! 256    slot 0: SlotHeader (32 bytes) + data (msg_size), rounded up to 64
//!        slot 1: ...
//! ```
//!
//! A small message shares its cache line with the slot's state word, so
//! that handing it over moves one cache line each way.
//!
//! A slot's state word holds `FREE`, `WRITING | tid << 32` (claimed by a
//! sender with a compare-and-swap; the tid names the writer so that a dead
//! writer's slot can be reclaimed) or `READY` (complete; only the receiver
//! touches it until it frees it).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::in_shared::in_shared;
use crate::segment::{self, SegmentHeader};
use crate::sync::futex;

/// Bytes before the first slot.
pub(crate) const SLOTS_OFFSET: usize = 256;
/// Bytes of a slot's header.
pub(crate) const SLOT_HEADER: usize = 32;

pub(crate) const FREE: u64 = 0;
pub(crate) const WRITING: u64 = 1;
pub(crate) const READY: u64 = 2;

in_shared! {
    /// The box header, after the segment header.
    pub(crate) struct BoxHeader {
        /// The number of slots.
        pub(crate) slots: u32,
        /// The usable bytes of a slot.
        pub(crate) msg_size: u32,
        /// Bytes from one slot to the next.
        pub(crate) stride: u64,
        /// The address at which the receiver maps the segment.
        pub(crate) receiver_base: AtomicU64,
        _pad0: [u32; 10],
        // --- second cache line: the receiver's notification word.
        /// Incremented when a message becomes ready while the receiver sleeps,
        /// and on `wake`.
        pub(crate) notify: AtomicU32,
        /// Non-zero while the receiver may sleep on `notify`.
        pub(crate) receiver_sleeping: AtomicU32,
        /// Pending `wake` requests.
        pub(crate) wake_requests: AtomicU32,
        /// Where the receiver looks for the next message, written when it
        /// goes to sleep: senders opened later start claiming there, so
        /// that the receiver mostly takes one sender's messages in the
        /// order they were sent.
        pub(crate) recv_cursor: AtomicU32,
        _pad1: [u32; 12],
        // --- third cache line: senders waiting for a free slot.
        /// Incremented when a slot becomes free while senders wait.
        pub(crate) free_seq: AtomicU32,
        /// The number of senders that may sleep on `free_seq`.
        pub(crate) free_waiters: AtomicU32,
        _pad2: [u32; 14],
    }
}

in_shared! {
    /// The start of a camlbox segment: the segment header, then the box
    /// header; the slots follow.
    pub(crate) struct BoxPrefix {
        pub(crate) seg: SegmentHeader,
        pub(crate) head: BoxHeader,
    }
}

const _: () = assert!(std::mem::size_of::<BoxHeader>() == 192);
const _: () = assert!(std::mem::size_of::<BoxPrefix>() == SLOTS_OFFSET);

in_shared! {
    /// The header of one slot.
    pub(crate) struct SlotHeader {
        /// `FREE`, `WRITING | tid << 32` or `READY`.
        pub(crate) state: AtomicU64,
        /// The writer's thread start time (0 until written).
        pub(crate) writer_start: AtomicU64,
        /// Offset of the root representation in the slot's data.
        pub(crate) root_offset: AtomicU32,
        /// Bytes of data used by the message.
        pub(crate) used: AtomicU32,
        _pad: u64,
    }
}

const _: () = assert!(std::mem::size_of::<SlotHeader>() == SLOT_HEADER);

/// The bytes of a slot: its header plus `msg_size`, rounded up to 64 (so
/// that slots do not share cache lines).
pub(crate) fn stride(msg_size: usize) -> Option<usize> {
    msg_size
        .checked_add(SLOT_HEADER)?
        .checked_next_multiple_of(64)
}

/// The total segment size for a geometry.
pub(crate) fn total_size(slots: usize, msg_size: usize) -> Option<usize> {
    stride(msg_size)?
        .checked_mul(slots)?
        .checked_add(SLOTS_OFFSET)
}

/// A view of a mapped camlbox region.
#[derive(Clone, Copy)]
pub(crate) struct Region {
    base: NonNull<u8>,
    slots: usize,
    msg_size: usize,
    stride: usize,
}

impl Region {
    /// Initialises a zeroed region of `total_size(slots, msg_size)` bytes.
    ///
    /// # Safety
    ///
    /// `base` must be 64-aligned, valid for writes of that many bytes,
    /// zero-filled and not yet seen by anybody else.
    pub(crate) unsafe fn init(base: NonNull<u8>, slots: usize, msg_size: usize) -> Region {
        let stride = stride(msg_size).expect("geometry checked by the caller");
        // SAFETY: the prefix lies inside the region (caller's contract),
        // which nobody else sees yet; zero bytes are a valid `BoxPrefix`,
        // whose plain fields we set.
        let h = unsafe { &mut (*base.as_ptr().cast::<BoxPrefix>()).head };
        h.slots = slots as u32;
        h.msg_size = msg_size as u32;
        h.stride = stride as u64;
        Region {
            base,
            slots,
            msg_size,
            stride,
        }
    }

    /// A view of an initialised region of `len` bytes; `None` when the
    /// geometry in its header does not fit.
    ///
    /// # Safety
    ///
    /// `base` must be 64-aligned and valid for `len` bytes for as long as
    /// the view (and copies of it) are used; the header must not change.
    pub(crate) unsafe fn open(base: NonNull<u8>, len: usize) -> Option<Region> {
        if len < SLOTS_OFFSET {
            return None;
        }
        // The prefix is the first `SLOTS_OFFSET` bytes, inside the region
        // (caller's contract): a view without slots reads its header.
        let prefix = Region {
            base,
            slots: 0,
            msg_size: 0,
            stride: 0,
        };
        let h = prefix.header();
        let slots = h.slots as usize;
        let msg_size = h.msg_size as usize;
        let stride = stride(msg_size)?;
        if h.stride != stride as u64 || slots == 0 || total_size(slots, msg_size)? > len {
            return None;
        }
        Some(Region {
            base,
            slots,
            msg_size,
            stride,
        })
    }

    #[cfg(test)]
    pub(crate) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    #[inline]
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    #[inline]
    pub(crate) fn msg_size(&self) -> usize {
        self.msg_size
    }

    #[inline]
    pub(crate) fn header(&self) -> &BoxHeader {
        // SAFETY: the prefix (the first `SLOTS_OFFSET` bytes) lies inside
        // the region (constructors' contracts; `open` checks the length
        // first); the box header consists of atomics and fields that never
        // change.
        unsafe { &(*self.base.as_ptr().cast::<BoxPrefix>()).head }
    }

    #[inline]
    fn slot_offset(&self, i: usize) -> usize {
        SLOTS_OFFSET + i * self.stride
    }

    #[inline]
    pub(crate) fn slot(&self, i: usize) -> &SlotHeader {
        assert!(i < self.slots);
        // SAFETY: slot `i` lies inside the region; its header is atomics.
        unsafe {
            self.base
                .add(self.slot_offset(i))
                .cast::<SlotHeader>()
                .as_ref()
        }
    }

    /// The local address of slot `i`'s data.
    #[inline]
    pub(crate) fn data(&self, i: usize) -> NonNull<u8> {
        assert!(i < self.slots);
        // SAFETY: inside the region.
        unsafe { self.base.add(self.slot_offset(i) + SLOT_HEADER) }
    }

    /// The offset of slot `i`'s data from the start of the segment.
    #[inline]
    pub(crate) fn data_offset(&self, i: usize) -> usize {
        self.slot_offset(i) + SLOT_HEADER
    }

    /// Claims a free slot for the calling thread, without waiting, trying
    /// the slots from `start` on (each sender keeps its own starting point,
    /// so concurrent senders try different state words and share no
    /// counter).
    #[inline]
    pub(crate) fn claim(&self, tid: u32, start: usize) -> Option<usize> {
        let mine = WRITING | (tid as u64) << 32;
        // (No `%` on the way: a division costs more than the rest.)
        let mut i = if start < self.slots { start } else { 0 };
        for _ in 0..self.slots {
            let s = &self.slot(i).state;
            if s.load(Ordering::Relaxed) == FREE
                && s.compare_exchange(FREE, mine, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Some(i);
            }
            i += 1;
            if i == self.slots {
                i = 0;
            }
        }
        None
    }

    /// Publishes a written message.
    /// `mine` is the writer's claim (`WRITING | tid << 32`): a slot that is
    /// no longer claimed by this writer is left alone.
    #[inline]
    pub(crate) fn publish(&self, i: usize, mine: u64, root_offset: usize, used: usize) {
        let s = self.slot(i);
        if s.state.load(Ordering::Acquire) != mine {
            return;
        }
        s.root_offset.store(root_offset as u32, Ordering::Relaxed);
        s.used.store(used as u32, Ordering::Relaxed);
        // Sequentially consistent, as is the load of `receiver_sleeping`
        // below: store-load ordering against the receiver's announcing its
        // sleep (it sets `receiver_sleeping`, then fences and rescans the
        // slots): either it sees this slot ready, or this sees it sleeping
        // and wakes it. (On x86 the compare-and-swap is the fence.) The
        // notification word is written only then, so a receiver that spins
        // does not have its cache line taken away on every message.
        if s.state
            .compare_exchange(mine, READY, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let h = self.header();
        if h.receiver_sleeping.load(Ordering::SeqCst) != 0 {
            h.notify.fetch_add(1, Ordering::SeqCst);
            futex::wake(&h.notify, 1);
        }
    }

    /// Gives up a slot this writer claimed (`mine`), if it still holds it.
    pub(crate) fn free_own(&self, i: usize, mine: u64) {
        let s = self.slot(i);
        // A free slot's writer start is 0 (the next claimer writes its own
        // after claiming): cleared while the slot is still ours.
        if s.state.load(Ordering::Relaxed) != mine {
            return;
        }
        s.writer_start.store(0, Ordering::Relaxed);
        if s.state
            .compare_exchange(mine, FREE, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            self.slot_freed();
        }
    }

    /// Makes slot `i` free again and wakes senders waiting for one.
    #[inline]
    pub(crate) fn free(&self, i: usize) {
        let s = self.slot(i);
        s.writer_start.store(0, Ordering::Relaxed);
        s.state.swap(FREE, Ordering::SeqCst);
        self.slot_freed();
    }

    /// Wakes the senders waiting for a free slot, if any, after a
    /// sequentially consistent write of a slot's state to `FREE`. Store-load
    /// ordering against a waiter (which counts itself in `free_waiters`,
    /// fences, then tries to claim): either it finds the slot free, or this
    /// sees it waiting and wakes it. (On x86 the write, a locked
    /// instruction, is the fence.)
    #[inline]
    fn slot_freed(&self) {
        let h = self.header();
        if h.free_waiters.load(Ordering::SeqCst) != 0 {
            h.free_seq.fetch_add(1, Ordering::SeqCst);
            futex::wake(&h.free_seq, u32::MAX);
        }
    }

    /// Interrupts the receiver's wait.
    pub(crate) fn wake_receiver(&self) {
        let h = self.header();
        h.wake_requests.fetch_add(1, Ordering::SeqCst);
        h.notify.fetch_add(1, Ordering::SeqCst);
        futex::wake(&h.notify, 1);
    }

    /// Frees the slots whose writer died while writing; returns how many.
    pub(crate) fn reclaim_dead_writers(&self) -> usize {
        let mut n = 0;
        for i in 0..self.slots {
            let s = self.slot(i);
            let st = s.state.load(Ordering::Acquire);
            if st & 0xff != WRITING {
                continue;
            }
            let tid = (st >> 32) as u32;
            let start = s.writer_start.load(Ordering::Acquire);
            let dead = if start != 0 {
                !segment::process_alive(tid, start)
            } else {
                !futex::thread_alive(tid)
            };
            // A free slot's writer start is 0: cleared first, and only
            // while it is still the dead writer's (a reclaimer that lost a
            // race to another leaves the next claimer's start alone).
            if dead
                && s.writer_start
                    .compare_exchange(start, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                && s.state
                    .compare_exchange(st, FREE, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                self.slot_freed();
                n += 1;
            }
        }
        n
    }

    /// The number of ready messages.
    pub(crate) fn ready_count(&self) -> usize {
        (0..self.slots)
            .filter(|&i| self.slot(i).state.load(Ordering::Acquire) == READY)
            .count()
    }
}
