//! An exhaustive interleaving check of the [`RawMutex`](super::RawMutex)
//! protocol: the lock word, the shared futex and thread deaths modelled as
//! atomic steps, every interleaving of three threads doing two critical sections each
//! explored (with up to
//! two deaths at any step).
//!
//! Checked in every reachable state: at most one live thread in the
//! critical section; a thread that acquires gets `OwnerDied` exactly when a
//! holder died since the data was last consistent; and every state without
//! a next step has all live threads finished — with no deaths this holds
//! without any futex timeouts (no lost wake-ups); with deaths the 10 ms
//! re-checks are modelled as timeouts, which are the only recovery.
//!
//! The model mirrors `lock_slow` (its `attempt` and `HolderWait::round`
//! steps) and `unlock` step for step (spinning is a repeated load and adds
//! no behaviour).

// Threads are numbered: indexing by thread number is the point.
#![allow(clippy::needless_range_loop)]

use super::model_search::{self, pc_of, tid, N, ROUNDS};

const WAITERS: u32 = 1 << 31;
const INCONSISTENT: u32 = 1 << 30;
const TID_MASK: u32 = (1 << 30) - 1;
const NOT_RECOVERABLE: u32 = TID_MASK;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Pc {
    /// Read the word.
    Load,
    /// CAS a free word `w` to ours.
    CasAcquire(u32),
    /// Set the waiters bit on `w` (held by someone else).
    SetWaiters(u32),
    /// FUTEX_WAIT with expected value.
    FutexWait(u32),
    /// Asleep in the kernel, expecting the value.
    Sleeping(u32),
    /// After a slice: read the word to check the holder.
    CheckHolder,
    /// The holder in `w` is dead: CAS to take over.
    CasTakeOver(u32),
    /// In the critical section (acquired with `OwnerDied`?).
    Critical(bool),
    /// Declaring the data consistent.
    Mark,
    /// Swap the word to release.
    Unlock,
    /// FUTEX_WAKE one (`false`) or all (`true`).
    Wake(bool),
    /// Finished (acquired, or got `Poisoned`).
    Done,
    Dead,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct State {
    word: u32,
    pc: [Pc; N],
    slept: [bool; N],
    /// Critical sections completed per thread.
    rounds: [u8; N],
    deaths: u8,
    /// A holder died since the data was last declared consistent.
    dirty: bool,
}

impl State {
    fn dead(&self, owner: u32) -> bool {
        pc_of(&self.pc, owner) == Some(Pc::Dead)
    }

    /// The next lock call, or the end.
    fn after_unlock(&mut self, i: usize) -> Pc {
        self.rounds[i] += 1;
        self.slept[i] = false;
        if self.rounds[i] < ROUNDS {
            Pc::Load
        } else {
            Pc::Done
        }
    }

    fn holders(&self) -> usize {
        self.pc
            .iter()
            .filter(|p| matches!(p, Pc::Critical(_) | Pc::Mark | Pc::Unlock))
            .count()
    }

    /// Every successor, with the invariants checked on the way.
    fn next(&self, repair: bool, max_deaths: u8) -> Vec<State> {
        let mut out = Vec::new();
        for i in 0..N {
            let me = tid(i);
            let mut s = self.clone();
            let slept = if s.slept[i] { WAITERS } else { 0 };
            match self.pc[i] {
                Pc::Load => {
                    let w = s.word;
                    let owner = w & TID_MASK;
                    s.pc[i] = if owner == 0 {
                        Pc::CasAcquire(w)
                    } else if owner == NOT_RECOVERABLE {
                        assert!(s.dirty, "poisoned without a death");
                        Pc::Done
                    } else {
                        assert_ne!(owner, me, "own lock seen while not holding it");
                        Pc::SetWaiters(w)
                    };
                }
                Pc::CasAcquire(w) => {
                    if s.word == w {
                        s.word = me | (w & (WAITERS | INCONSISTENT)) | slept;
                        let died = w & INCONSISTENT != 0;
                        assert_eq!(died, s.dirty, "OwnerDied reported wrongly");
                        s.pc[i] = Pc::Critical(died);
                    } else {
                        s.pc[i] = Pc::Load;
                    }
                }
                Pc::SetWaiters(w) => {
                    if w & WAITERS != 0 {
                        s.pc[i] = Pc::FutexWait(w);
                    } else if s.word == w {
                        s.word = w | WAITERS;
                        s.pc[i] = Pc::FutexWait(w | WAITERS);
                    } else {
                        s.pc[i] = Pc::Load;
                    }
                }
                Pc::FutexWait(e) => {
                    s.slept[i] = true;
                    s.pc[i] = if s.word == e {
                        Pc::Sleeping(e)
                    } else {
                        Pc::Load
                    };
                }
                Pc::Sleeping(_) => {
                    // Woken only by a Wake step, or by a slice timeout: the
                    // timeouts are the recovery from deaths, so without a
                    // death they are left out (no lost wake-ups).
                    if self.deaths == 0 {
                        continue;
                    }
                    s.pc[i] = Pc::CheckHolder;
                }
                Pc::CheckHolder => {
                    let w = s.word;
                    let owner = w & TID_MASK;
                    s.pc[i] = if owner != NOT_RECOVERABLE && s.dead(owner) {
                        Pc::CasTakeOver(w)
                    } else {
                        Pc::Load
                    };
                }
                Pc::CasTakeOver(w) => {
                    if s.word == w {
                        s.word = me | INCONSISTENT | (w & WAITERS) | slept;
                        assert!(s.dirty, "took over a lock nobody died holding");
                        s.pc[i] = Pc::Critical(true);
                    } else {
                        s.pc[i] = Pc::Load;
                    }
                }
                Pc::Critical(died) => {
                    s.pc[i] = if died && repair { Pc::Mark } else { Pc::Unlock };
                }
                Pc::Mark => {
                    assert_eq!(s.word & TID_MASK, me);
                    s.word &= !INCONSISTENT;
                    s.dirty = false;
                    s.pc[i] = Pc::Unlock;
                }
                Pc::Unlock => {
                    assert_eq!(s.word & TID_MASK, me, "unlocking a lock not held");
                    let new = if s.word & INCONSISTENT != 0 {
                        NOT_RECOVERABLE
                    } else {
                        0
                    };
                    let prev = std::mem::replace(&mut s.word, new);
                    s.pc[i] = if prev & WAITERS != 0 {
                        Pc::Wake(new != 0)
                    } else {
                        s.after_unlock(i)
                    };
                }
                Pc::Wake(all) => {
                    let sleepers: Vec<usize> = (0..N)
                        .filter(|&j| matches!(s.pc[j], Pc::Sleeping(_)))
                        .collect();
                    s.pc[i] = s.after_unlock(i);
                    if all || sleepers.len() <= 1 {
                        for j in sleepers {
                            s.pc[j] = Pc::Load;
                        }
                    } else {
                        // FUTEX_WAKE(1) picks any one sleeper.
                        for j in sleepers {
                            let mut t = s.clone();
                            t.pc[j] = Pc::Load;
                            out.push(t);
                        }
                        continue;
                    }
                }
                Pc::Done | Pc::Dead => continue,
            }
            out.push(s);
        }
        // Deaths, at any step.
        if self.deaths < max_deaths {
            for i in 0..N {
                if matches!(self.pc[i], Pc::Done | Pc::Dead) {
                    continue;
                }
                let mut s = self.clone();
                if s.word & TID_MASK == tid(i) {
                    s.dirty = true;
                }
                s.pc[i] = Pc::Dead;
                s.deaths += 1;
                out.push(s);
            }
        }
        out
    }
}

/// Explores every reachable state; returns how many there are.
fn explore(repair: bool, max_deaths: u8) -> usize {
    let start = State {
        word: 0,
        pc: [Pc::Load; N],
        slept: [false; N],
        rounds: [0; N],
        deaths: 0,
        dirty: false,
    };
    let states = model_search::explore(
        start,
        |s| {
            let live_holders = s.holders();
            assert!(live_holders <= 1, "two holders: {s:?}");
            s.next(repair, max_deaths)
        },
        |s| s.pc.iter().all(|p| matches!(p, Pc::Done | Pc::Dead)),
    );
    eprintln!("mutex model: repair={repair} deaths<={max_deaths}: {states} states");
    states
}

#[test]
fn no_lost_wakeups_without_deaths() {
    let n = explore(true, 0);
    assert!(n > 100, "{n} states");
}

#[test]
fn deaths_are_recovered_and_reported() {
    assert!(explore(true, 1) > 1000);
    assert!(explore(true, 2) > 1000);
}

#[test]
fn unrepaired_takeovers_poison() {
    assert!(explore(false, 1) > 1000);
    assert!(explore(false, 2) > 1000);
}
