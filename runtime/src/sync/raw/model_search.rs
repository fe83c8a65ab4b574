//! What the exhaustive protocol models ([`model`](super::model),
//! [`model_rwlock`](super::model_rwlock)) share: the thread numbering and
//! the search over every reachable state.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

/// Threads in a model.
pub(super) const N: usize = 3;
/// Critical sections per thread.
pub(super) const ROUNDS: u8 = 2;

/// The id of thread `i` (ids start at 1: 0 is a free lock word).
pub(super) fn tid(i: usize) -> u32 {
    i as u32 + 1
}

/// The program counter of the thread with id `t` in `pcs`; `None` when `t`
/// is no thread's id.
pub(super) fn pc_of<P: Copy>(pcs: &[P; N], t: u32) -> Option<P> {
    (1..=N as u32).contains(&t).then(|| pcs[t as usize - 1])
}

/// Explores every state reachable from `start` through `next`, depth
/// first; every state without a next step must be `finished` (else a thread
/// is stuck). Returns how many states there are.
pub(super) fn explore<S: Clone + Eq + Hash + Debug>(
    start: S,
    mut next: impl FnMut(&S) -> Vec<S>,
    finished: impl Fn(&S) -> bool,
) -> usize {
    let mut seen = HashSet::new();
    let mut stack = vec![start.clone()];
    seen.insert(start);
    while let Some(s) = stack.pop() {
        let next = next(&s);
        if next.is_empty() {
            assert!(
                finished(&s),
                "stuck (a lost wake-up or an unrecovered death): {s:?}"
            );
        }
        for t in next {
            if seen.insert(t.clone()) {
                stack.push(t);
            }
        }
    }
    seen.len()
}
