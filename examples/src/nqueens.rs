//! The N-queens workload of Netmulticore's `nqueens` example: enumerate
//! every placement of N non-attacking queens on an N×N board.
//!
//! The search is split into *tasks*: the columns of the queens in the first
//! two rows. Workers take tasks and either count the solutions below them
//! or produce each solution as a board (the column of the queen in each
//! row), which the hashtable and message-passing variants collect.

/// One unit of work: the columns of the queens in rows 0 and 1.
pub type Task = (u8, u8);

/// The number of solutions of the n-queens puzzle for n = 0..=20: OEIS
/// A000170, to check every count against.
pub const A000170: [u64; 21] = [
    1,
    1,
    0,
    0,
    2,
    10,
    4,
    40,
    92,
    352,
    724,
    2_680,
    14_200,
    73_712,
    365_596,
    2_279_184,
    14_772_512,
    95_815_104,
    666_090_624,
    4_968_057_848,
    39_029_188_884,
];

/// The tasks of an `n`-queens search (`n >= 1`), in a fixed order. For
/// `n = 1` the one task is the board's only square, `(0, 0)`.
pub fn tasks(n: usize) -> Vec<Task> {
    if n == 1 {
        return vec![(0, 0)];
    }
    let mut out = Vec::new();
    for a in 0..n {
        for b in 0..n {
            if a.abs_diff(b) > 1 {
                out.push((a as u8, b as u8));
            }
        }
    }
    out
}

struct Search {
    n: usize,
    full: u32,
    board: Vec<u8>,
}

impl Search {
    fn new(n: usize) -> Self {
        assert!((2..=31).contains(&n), "board size must be 2..=31");
        Search {
            n,
            full: (1u32 << n) - 1,
            board: vec![0; n],
        }
    }

    /// Places the task's two queens; returns the masks for row 2, or
    /// `None` when the task has no solutions.
    fn start(&mut self, (a, b): Task) -> Option<(u32, u32, u32)> {
        let (a, b) = (a as u32, b as u32);
        self.board[0] = a as u8;
        self.board[1] = b as u8;
        let cols = (1 << a) | (1 << b);
        let d1 = (((1 << a) << 1) | (1 << b)) << 1;
        let d2 = (((1 << a) >> 1) | (1 << b)) >> 1;
        if a.abs_diff(b) <= 1 {
            return None;
        }
        Some((cols, d1 & self.full, d2))
    }

    fn count(&self, row: usize, cols: u32, d1: u32, d2: u32) -> u64 {
        if row == self.n {
            return 1;
        }
        let mut free = !(cols | d1 | d2) & self.full;
        let mut total = 0;
        while free != 0 {
            let bit = free & free.wrapping_neg();
            free ^= bit;
            total += self.count(
                row + 1,
                cols | bit,
                ((d1 | bit) << 1) & self.full,
                (d2 | bit) >> 1,
            );
        }
        total
    }

    fn visit(&mut self, row: usize, cols: u32, d1: u32, d2: u32, f: &mut dyn FnMut(&[u8])) {
        if row == self.n {
            f(&self.board);
            return;
        }
        let mut free = !(cols | d1 | d2) & self.full;
        while free != 0 {
            let bit = free & free.wrapping_neg();
            free ^= bit;
            self.board[row] = bit.trailing_zeros() as u8;
            self.visit(
                row + 1,
                cols | bit,
                ((d1 | bit) << 1) & self.full,
                (d2 | bit) >> 1,
                f,
            );
        }
    }
}

/// The number of solutions below one task.
pub fn count_task(n: usize, task: Task) -> u64 {
    if n < 2 {
        return u64::from(n == 1 && task == (0, 0));
    }
    let mut s = Search::new(n);
    match s.start(task) {
        Some((c, d1, d2)) => s.count(2, c, d1, d2),
        None => 0,
    }
}

/// Calls `f` with every solution below one task (a board: the queen's
/// column in each row).
pub fn solutions_of_task(n: usize, task: Task, f: &mut dyn FnMut(&[u8])) {
    if n < 2 {
        if n == 1 && task == (0, 0) {
            f(&[0]);
        }
        return;
    }
    let mut s = Search::new(n);
    if let Some((c, d1, d2)) = s.start(task) {
        s.visit(2, c, d1, d2, f);
    }
}

/// The number of solutions, sequentially.
pub fn count_sequential(n: usize) -> u64 {
    match n {
        0 => 1,
        1 => 1,
        _ => tasks(n).into_iter().map(|t| count_task(n, t)).sum(),
    }
}

/// The tasks of worker `w` out of `workers` (a fixed interleaving, which
/// balances well because neighbouring tasks have similar sizes).
pub fn share(all: &[Task], w: usize, workers: usize) -> Vec<Task> {
    all.iter()
        .copied()
        .skip(w)
        .step_by(workers.max(1))
        .collect()
}

/// Whether a board is a solution (for checks).
pub fn is_solution(board: &[u8]) -> bool {
    let n = board.len();
    (0..n).all(|i| {
        (board[i] as usize) < n
            && (i + 1..n)
                .all(|j| board[i] != board[j] && board[i].abs_diff(board[j]) as usize != j - i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_counts() {
        for (n, &k) in A000170.iter().enumerate().take(13) {
            assert_eq!(count_sequential(n), k, "n = {n}");
            if n >= 1 {
                let by_tasks: u64 = tasks(n).into_iter().map(|t| count_task(n, t)).sum();
                assert_eq!(by_tasks, k, "n = {n}, by tasks");
                let mut boards = 0u64;
                for t in tasks(n) {
                    solutions_of_task(n, t, &mut |b| {
                        assert!(is_solution(b));
                        boards += 1;
                    });
                }
                assert_eq!(boards, k, "n = {n}, boards");
            }
        }
    }

    #[test]
    fn boards_are_solutions_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for t in tasks(8) {
            solutions_of_task(8, t, &mut |b| {
                assert!(is_solution(b));
                assert!(seen.insert(b.to_vec()));
            });
        }
        assert_eq!(seen.len(), 92);
    }

    #[test]
    fn shares_cover_all_tasks() {
        let all = tasks(10);
        let mut got: Vec<Task> = (0..3).flat_map(|w| share(&all, w, 3)).collect();
        got.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(got, want);
    }
}
