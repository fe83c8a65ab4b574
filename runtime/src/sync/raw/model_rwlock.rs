//! An exhaustive interleaving check of the [`RawRwLock`](super::RawRwLock)
//! protocol: the state word, the reader slots, the drain futex and thread
//! deaths modelled as atomic steps (one load, store, CAS or futex operation
//! each), every interleaving of three threads (readers and writers, two
//! critical sections each) explored, with up to one death at any step.
//!
//! Checked in every reachable state: no reader inside while a writer is;
//! at most one writer inside; a writer gets `OwnerDied` exactly when a
//! writer died holding the lock since it was last repaired, and a reader
//! never enters unrepaired data; every state without a next step has all
//! live threads finished. Futex timeouts (the 10 ms re-checks) are only
//! modelled once a thread has died, so without deaths the check shows there
//! are no lost wake-ups on either futex.
//!
//! Each reader has its own slot (claiming a free slot among several is a
//! CAS on that slot and adds no interleavings of interest).

// Threads are numbered: indexing by thread number is the point.
#![allow(clippy::needless_range_loop)]

use super::model_search::{self, pc_of, tid, N, ROUNDS};

const WAITERS: u32 = 1 << 31;
const INCONSISTENT: u32 = 1 << 30;
const TID_MASK: u32 = (1 << 30) - 1;
const NOT_RECOVERABLE: u32 = TID_MASK;
const NO_READERS: u32 = TID_MASK | INCONSISTENT;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Pc {
    // Readers.
    RLoad,
    RClaim,
    RCheck,
    /// Clear the slot; `true` when backing out (then retry).
    RClear(bool),
    RClearCheck(bool),
    RWakeDrain(bool),
    RCritical,
    // Both.
    SetWaiters(u32),
    FutexWait(u32),
    Sleeping,
    CheckHolder,
    DiedCas(u32),
    DiedWake,
    // Writers.
    WLoad,
    WCas(u32),
    WTakeOver(u32),
    WSeq(bool),
    /// Scan slot `k`, having seen `drain == seq`, acquired with owner died?
    WScan(u8, u32, bool),
    WDrainWait(u32, bool),
    WDrainSleeping(bool),
    WReap(u8, bool),
    WCritical(bool),
    WMark,
    WUnlock,
    WWake,
    Done,
    Dead,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct State {
    state: u32,
    drain: u32,
    slots: [u32; N],
    pc: [Pc; N],
    slept: [bool; N],
    rounds: [u8; N],
    deaths: u8,
    dirty: bool,
}

impl State {
    fn dead(&self, t: u32) -> bool {
        pc_of(&self.pc, t) == Some(Pc::Dead)
    }

    fn start(writer: bool) -> Pc {
        if writer {
            Pc::WLoad
        } else {
            Pc::RLoad
        }
    }

    fn after(&mut self, i: usize, writer: bool) -> Pc {
        self.rounds[i] += 1;
        self.slept[i] = false;
        if self.rounds[i] < ROUNDS {
            State::start(writer)
        } else {
            Pc::Done
        }
    }

    fn check(&self) {
        let readers_in = self.pc.iter().filter(|p| **p == Pc::RCritical).count();
        let writers_in = self
            .pc
            .iter()
            .filter(|p| matches!(p, Pc::WCritical(_) | Pc::WMark | Pc::WUnlock))
            .count();
        assert!(writers_in <= 1, "two writers: {self:?}");
        assert!(
            writers_in == 0 || readers_in == 0,
            "reader and writer together: {self:?}"
        );
    }

    fn next(&self, writers: [bool; N], repair: bool, max_deaths: u8) -> Vec<State> {
        let mut out = Vec::new();
        for i in 0..N {
            let me = tid(i);
            let w_ = writers[i];
            let mut s = self.clone();
            let slept = if s.slept[i] { WAITERS } else { 0 };
            s.pc[i] = match self.pc[i] {
                Pc::RLoad => {
                    let st = s.state;
                    let owner = st & TID_MASK;
                    if owner == NOT_RECOVERABLE || (owner == 0 && st & INCONSISTENT != 0) {
                        assert!(s.dirty, "readers refused without a death");
                        Pc::Done
                    } else if owner == 0 {
                        Pc::RClaim
                    } else {
                        Pc::SetWaiters(st)
                    }
                }
                Pc::RClaim => {
                    assert_eq!(s.slots[i], 0);
                    s.slots[i] = me;
                    Pc::RCheck
                }
                Pc::RCheck => {
                    if s.state & NO_READERS == 0 {
                        assert!(!s.dirty, "reader entered unrepaired data");
                        Pc::RCritical
                    } else {
                        Pc::RClear(true)
                    }
                }
                Pc::RCritical => Pc::RClear(false),
                Pc::RClear(back) => {
                    s.slots[i] = 0;
                    Pc::RClearCheck(back)
                }
                Pc::RClearCheck(back) => {
                    if s.state & TID_MASK != 0 {
                        s.drain = s.drain.wrapping_add(1);
                        Pc::RWakeDrain(back)
                    } else if back {
                        Pc::RLoad
                    } else {
                        s.after(i, false)
                    }
                }
                Pc::RWakeDrain(back) => {
                    for j in 0..N {
                        if matches!(s.pc[j], Pc::WDrainSleeping(_)) {
                            let acq = matches!(s.pc[j], Pc::WDrainSleeping(true));
                            s.pc[j] = Pc::WSeq(acq);
                        }
                    }
                    if back {
                        Pc::RLoad
                    } else {
                        s.after(i, false)
                    }
                }
                Pc::SetWaiters(st) => {
                    if st & WAITERS != 0 {
                        Pc::FutexWait(st)
                    } else if s.state == st {
                        s.state = st | WAITERS;
                        Pc::FutexWait(st | WAITERS)
                    } else if w_ {
                        Pc::WLoad
                    } else {
                        Pc::RLoad
                    }
                }
                Pc::FutexWait(e) => {
                    if w_ {
                        s.slept[i] = true;
                    }
                    if s.state == e {
                        Pc::Sleeping
                    } else if w_ {
                        Pc::WLoad
                    } else {
                        Pc::RLoad
                    }
                }
                Pc::Sleeping => {
                    if self.deaths == 0 {
                        continue;
                    }
                    Pc::CheckHolder
                }
                Pc::CheckHolder => {
                    let st = s.state;
                    let owner = st & TID_MASK;
                    if owner != NOT_RECOVERABLE && s.dead(owner) {
                        if w_ {
                            Pc::WTakeOver(st)
                        } else {
                            Pc::DiedCas(st)
                        }
                    } else if w_ {
                        Pc::WLoad
                    } else {
                        Pc::RLoad
                    }
                }
                Pc::DiedCas(st) => {
                    if s.state == st {
                        s.state = INCONSISTENT;
                        assert!(s.dirty);
                        if st & WAITERS != 0 {
                            Pc::DiedWake
                        } else {
                            Pc::RLoad
                        }
                    } else {
                        Pc::RLoad
                    }
                }
                Pc::DiedWake => {
                    s.wake_state(writers);
                    Pc::RLoad
                }
                Pc::WLoad => {
                    let st = s.state;
                    let owner = st & TID_MASK;
                    if owner == NOT_RECOVERABLE {
                        assert!(s.dirty);
                        Pc::Done
                    } else if owner == 0 {
                        Pc::WCas(st)
                    } else {
                        Pc::SetWaiters(st)
                    }
                }
                Pc::WCas(st) => {
                    if s.state == st {
                        s.state = me | st | slept;
                        Pc::WSeq(st & INCONSISTENT != 0)
                    } else {
                        Pc::WLoad
                    }
                }
                Pc::WTakeOver(st) => {
                    if s.state == st {
                        s.state = me | INCONSISTENT | WAITERS;
                        Pc::WSeq(true)
                    } else {
                        Pc::WLoad
                    }
                }
                Pc::WSeq(acq) => Pc::WScan(0, s.drain, acq),
                Pc::WScan(k, seq, acq) => {
                    if s.slots[k as usize] != 0 {
                        Pc::WDrainWait(seq, acq)
                    } else if (k as usize) + 1 < N {
                        Pc::WScan(k + 1, seq, acq)
                    } else {
                        assert_eq!(acq, s.dirty, "OwnerDied reported wrongly");
                        Pc::WCritical(acq)
                    }
                }
                Pc::WDrainWait(seq, acq) => {
                    if s.drain == seq {
                        Pc::WDrainSleeping(acq)
                    } else {
                        Pc::WSeq(acq)
                    }
                }
                Pc::WDrainSleeping(acq) => {
                    if self.deaths == 0 {
                        continue;
                    }
                    Pc::WReap(0, acq)
                }
                Pc::WReap(k, acq) => {
                    let v = s.slots[k as usize];
                    if v != 0 && s.dead(v) {
                        s.slots[k as usize] = 0;
                    }
                    if (k as usize) + 1 < N {
                        Pc::WReap(k + 1, acq)
                    } else {
                        Pc::WSeq(acq)
                    }
                }
                Pc::WCritical(acq) => {
                    if acq && repair {
                        Pc::WMark
                    } else {
                        Pc::WUnlock
                    }
                }
                Pc::WMark => {
                    s.state &= !INCONSISTENT;
                    s.dirty = false;
                    Pc::WUnlock
                }
                Pc::WUnlock => {
                    assert_eq!(s.state & TID_MASK, me);
                    let new = if s.state & INCONSISTENT != 0 {
                        NOT_RECOVERABLE
                    } else {
                        0
                    };
                    let prev = std::mem::replace(&mut s.state, new);
                    if prev & WAITERS != 0 {
                        Pc::WWake
                    } else {
                        s.after(i, true)
                    }
                }
                Pc::WWake => {
                    s.wake_state(writers);
                    s.after(i, true)
                }
                Pc::Done | Pc::Dead => continue,
            };
            s.check();
            out.push(s);
        }
        if self.deaths < max_deaths {
            for i in 0..N {
                if matches!(self.pc[i], Pc::Done | Pc::Dead) {
                    continue;
                }
                let mut s = self.clone();
                if writers[i] && s.state & TID_MASK == tid(i) {
                    s.dirty = true;
                }
                s.pc[i] = Pc::Dead;
                s.deaths += 1;
                out.push(s);
            }
        }
        out
    }

    /// FUTEX_WAKE(all) on the state word: sleepers re-read the state.
    fn wake_state(&mut self, writers: [bool; N]) {
        for j in 0..N {
            if self.pc[j] == Pc::Sleeping {
                self.pc[j] = if writers[j] { Pc::WLoad } else { Pc::RLoad };
            }
        }
    }
}

/// Explores every reachable state; returns how many there are.
fn explore(writers: [bool; N], repair: bool, max_deaths: u8) -> usize {
    let pc = std::array::from_fn(|i| State::start(writers[i]));
    let start = State {
        state: 0,
        drain: 0,
        slots: [0; N],
        pc,
        slept: [false; N],
        rounds: [0; N],
        deaths: 0,
        dirty: false,
    };
    let states = model_search::explore(
        start,
        |s| s.next(writers, repair, max_deaths),
        |s| s.pc.iter().all(|p| matches!(p, Pc::Done | Pc::Dead)),
    );
    eprintln!(
        "rwlock model: writers={writers:?} repair={repair} deaths<={max_deaths}: {states} states"
    );
    states
}

#[test]
fn no_lost_wakeups_without_deaths() {
    explore([false, false, true], true, 0);
    explore([false, true, true], true, 0);
}

#[test]
fn deaths_are_recovered_and_reported() {
    explore([false, false, true], true, 1);
    explore([false, true, true], true, 1);
    explore([false, true, true], false, 1);
}
