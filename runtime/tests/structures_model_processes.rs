//! Model-based property tests of the shared structures with 2–3 processes
//! working on one structure at once: proptest generates one operation
//! sequence per process, the processes start together on a shared flag and
//! run their sequences concurrently, and the result is checked against
//! `std` models.
//!
//! The model stays deterministic whatever the interleaving because every
//! process works on its own keys (tables) or indices (array), and queue
//! values carry their producer and sequence number. Each child checks every
//! read of its own keys against its own model as it goes; the parent then
//! replays each process's sequence into a model and checks the whole
//! structure against the union: every key's bindings (most recent first)
//! and the number of bindings for `SHashtbl` and `SShardedHashtbl`, every
//! key's value, the length and the entries for `PlainMap`, every element
//! for `SArray`, and for `SQueue` that each value pushed comes out exactly
//! once and every producer's values come out in order.
//!
//! A plain program (`harness = false`): forking from the multi-threaded
//! test harness is unsound, so proptest's runner is driven from `main`.
//! Every wait is bounded. Prints one line per scenario and
//! `N passed, M failed` last; arguments filter scenarios by name.
//! `MODEL_CASES` sets the number of cases per scenario (48), and
//! `PROPTEST_RNG_SEED` fixes proptest's otherwise random seed.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use mc::structures::StructureError;
use mc::{PlainMap, PlainMapDescr, PlainMapError, Pool, SArray, SHashtbl, SQueue, SShardedHashtbl};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

mod common;
use common::{expect_exit_ok, fork_child, kill, run_scenarios, shared, wait_child, ChildPid};

/// How long a child may take (a case takes milliseconds); a hung case and
/// the shrinking after it stay within the scenario's time limit.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Keys (tables) or slots (array) per process.
const KEYS: u64 = 20;
/// Keys per process of a `PlainMap`: more, to crowd its groups.
const MAP_KEYS: u64 = 40;
const SLOTS: usize = 12;
/// The value the array grows with (no generated string has it).
const FILL: &str = "-";

/// Proptest cases per scenario (`MODEL_CASES` overrides it).
fn cases() -> u32 {
    std::env::var("MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

fn se(e: StructureError) -> String {
    e.to_string()
}

fn pe(e: PlainMapError) -> String {
    e.to_string()
}

/// What the scenarios share: the pool, the start flag, and a queue where
/// failing children leave their message for the parent.
struct Ctx {
    pool: Pool,
    go: &'static AtomicU32,
    reports: SQueue<String>,
}

type Body<'a> = Box<dyn FnOnce() -> Result<(), String> + 'a>;

impl Ctx {
    fn new() -> Result<Ctx, String> {
        let pool = Pool::create(256 << 20).map_err(|e| e.to_string())?;
        let reports = SQueue::create(&pool, &()).map_err(se)?;
        let go = shared(AtomicU32::new(0));
        Ok(Ctx { pool, go, reports })
    }

    /// Forks one child per body, starts them together, and waits for all;
    /// on a failure the others are killed and the children's messages are
    /// part of the error.
    fn together(&self, bodies: Vec<Body<'_>>) -> Result<(), String> {
        self.go.store(0, SeqCst);
        let pids: Vec<ChildPid> = bodies
            .into_iter()
            .map(|body| {
                let (go, reports) = (self.go, &self.reports);
                fork_child(move || {
                    let start = Instant::now();
                    while go.load(SeqCst) == 0 {
                        if start.elapsed() > TIMEOUT {
                            eprintln!("the start flag was never set");
                            return 2;
                        }
                        std::hint::spin_loop();
                    }
                    match body() {
                        Ok(()) => 0,
                        Err(e) => {
                            eprintln!("{e}");
                            let _ = reports.push(&e);
                            1
                        }
                    }
                })
            })
            .collect();
        self.go.store(1, SeqCst);
        let mut first = Ok(());
        for pid in pids {
            if first.is_err() {
                kill(pid);
                let _ = wait_child(pid, Duration::from_secs(10));
            } else if let Err(e) = expect_exit_ok(pid, TIMEOUT) {
                first = Err(e);
            }
        }
        let said = self.reports.pop_many(16).unwrap_or_default();
        first.map_err(|e| format!("{e}: {}", said.join("; ")))
    }

    fn finish(self) -> Result<(), String> {
        self.reports.destroy().map_err(se)
    }
}

/// Runs `cases` proptest cases of `test` on inputs from `strategy`; the
/// error holds the minimal failing input.
fn check<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), String>,
) -> Result<u32, String>
where
    S::Value: Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        // Shrinking removes one operation per step: enough steps to get
        // sequences of hundreds down, within the scenario's time limit.
        max_shrink_iters: 2048,
        max_shrink_time: 30_000,
        ..Config::default()
    });
    let runs = Cell::new(0);
    let r = runner.run(&strategy, |input| {
        runs.set(runs.get() + 1);
        test(input).map_err(TestCaseError::fail)
    });
    match r {
        Ok(()) => Ok(runs.get()),
        Err(TestError::Fail(why, input)) => Err(format!("{why}; minimal failing input: {input:?}")),
        Err(TestError::Abort(why)) => Err(format!("aborted: {why}")),
    }
}

// ---------------------------------------------------------------------------
// Tables

/// The operations `SHashtbl` and `SShardedHashtbl` share.
trait Table: Sized {
    fn make(pool: &Pool, shards: usize, buckets: usize) -> Result<Self, StructureError>;
    fn reopen(&self) -> Result<Self, StructureError>;
    fn add(&self, k: u64, v: u64) -> Result<(), StructureError>;
    fn replace(&self, k: u64, v: u64) -> Result<(), StructureError>;
    fn remove(&self, k: u64) -> Result<bool, StructureError>;
    fn find_copy(&self, k: u64) -> Result<Option<u64>, StructureError>;
    fn find_all_copy(&self, k: u64) -> Result<Vec<u64>, StructureError>;
    fn len(&self) -> Result<usize, StructureError>;
    fn gc(&self) -> Result<(), StructureError>;
    fn destroy(self) -> Result<(), StructureError>;
}

macro_rules! table {
    ($t:ty, |$pool:ident, $shards:ident, $buckets:ident| $make:expr) => {
        impl Table for $t {
            fn make($pool: &Pool, $shards: usize, $buckets: usize) -> Result<Self, StructureError> {
                $make
            }
            fn reopen(&self) -> Result<Self, StructureError> {
                self.descr().open()
            }
            fn add(&self, k: u64, v: u64) -> Result<(), StructureError> {
                <$t>::add(self, &k, &v)
            }
            fn replace(&self, k: u64, v: u64) -> Result<(), StructureError> {
                <$t>::replace(self, &k, &v)
            }
            fn remove(&self, k: u64) -> Result<bool, StructureError> {
                <$t>::remove(self, &k)
            }
            fn find_copy(&self, k: u64) -> Result<Option<u64>, StructureError> {
                <$t>::find_copy(self, &k)
            }
            fn find_all_copy(&self, k: u64) -> Result<Vec<u64>, StructureError> {
                <$t>::find_all_copy(self, &k)
            }
            fn len(&self) -> Result<usize, StructureError> {
                <$t>::len(self)
            }
            fn gc(&self) -> Result<(), StructureError> {
                <$t>::gc(self)
            }
            fn destroy(self) -> Result<(), StructureError> {
                <$t>::destroy(self)
            }
        }
    };
}

table!(SHashtbl<u64, u64>, |pool, _shards, buckets| {
    SHashtbl::with_buckets(pool, &(), buckets)
});
table!(SShardedHashtbl<u64, u64>, |pool, shards, buckets| {
    SShardedHashtbl::with_buckets(pool, shards, buckets)
});

/// One table operation on the process's key `k` (< `KEYS`); the value
/// added or replaced is the operation's tag (see [`tag`]).
#[derive(Debug, Clone, Copy)]
enum TOp {
    Add(u64),
    Replace(u64),
    Remove(u64),
    Find(u64),
    Len,
    Gc,
}

fn table_op() -> impl Strategy<Value = TOp> {
    let k = 0..KEYS;
    prop_oneof![
        5 => k.clone().prop_map(TOp::Add),
        3 => k.clone().prop_map(TOp::Replace),
        3 => k.clone().prop_map(TOp::Remove),
        4 => k.prop_map(TOp::Find),
        1 => Just(TOp::Len),
        1 => Just(TOp::Gc),
    ]
}

/// Process `p`'s key number `k`: disjoint between processes.
fn key(p: usize, k: u64) -> u64 {
    p as u64 * 1000 + k
}

/// A value unique to process `p`'s operation `i` (queue values too).
fn tag(p: usize, i: usize) -> u64 {
    (p as u64) << 32 | i as u64
}

/// A process's bindings per key, oldest first.
#[derive(Default)]
struct TableModel(HashMap<u64, Vec<u64>>);

impl TableModel {
    /// Applies operation `i` of process `p` if it changes the table.
    fn apply(&mut self, p: usize, i: usize, op: TOp) {
        match op {
            TOp::Add(k) => self.0.entry(key(p, k)).or_default().push(tag(p, i)),
            TOp::Replace(k) => {
                let b = self.0.entry(key(p, k)).or_default();
                match b.last_mut() {
                    Some(v) => *v = tag(p, i),
                    None => b.push(tag(p, i)),
                }
            }
            TOp::Remove(k) => {
                self.0.get_mut(&key(p, k)).and_then(Vec::pop);
            }
            TOp::Find(_) | TOp::Len | TOp::Gc => {}
        }
    }

    fn replay(p: usize, ops: &[TOp]) -> TableModel {
        let mut m = TableModel::default();
        for (i, &op) in ops.iter().enumerate() {
            m.apply(p, i, op);
        }
        m
    }

    /// The bindings of `k`, most recent first (as `find_all_copy`).
    fn all(&self, k: u64) -> Vec<u64> {
        self.0
            .get(&k)
            .map_or(Vec::new(), |b| b.iter().rev().copied().collect())
    }

    fn count(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
}

/// Process `p` runs `ops` on its own keys, checking each read.
fn table_child<T: Table>(t: &T, p: usize, ops: &[TOp]) -> Result<(), String> {
    let t = t.reopen().map_err(se)?;
    let mut m = TableModel::default();
    for (i, &op) in ops.iter().enumerate() {
        let at = |what: String| format!("process {p}, op {i} {op:?}: {what}");
        let e = |e: StructureError| at(e.to_string());
        match op {
            TOp::Add(k) => t.add(key(p, k), tag(p, i)).map_err(e)?,
            TOp::Replace(k) => t.replace(key(p, k), tag(p, i)).map_err(e)?,
            TOp::Remove(k) => {
                let want = !m.all(key(p, k)).is_empty();
                let got = t.remove(key(p, k)).map_err(e)?;
                if got != want {
                    return Err(at(format!("remove gave {got}, the model {want}")));
                }
            }
            TOp::Find(k) => {
                let want = m.all(key(p, k));
                let one = t.find_copy(key(p, k)).map_err(e)?;
                let all = t.find_all_copy(key(p, k)).map_err(e)?;
                if one != want.first().copied() || all != want {
                    return Err(at(format!(
                        "find_copy {one:?}, find_all_copy {all:?}, the model {want:?}"
                    )));
                }
            }
            TOp::Len => {
                let (len, mine) = (t.len().map_err(e)?, m.count());
                if len < mine {
                    return Err(at(format!("len {len} below this process's {mine}")));
                }
            }
            TOp::Gc => t.gc().map_err(e)?,
        }
        m.apply(p, i, op);
    }
    Ok(())
}

/// One case: a fresh table, the processes' sequences at once, then the
/// whole table against the union of their models.
fn table_case<T: Table>(
    ctx: &Ctx,
    shape: (usize, usize),
    procs: &[Vec<TOp>],
) -> Result<(), String> {
    let t = T::make(&ctx.pool, shape.0, shape.1).map_err(se)?;
    let r = table_run(ctx, &t, procs);
    let d = t.destroy().map_err(|e| format!("destroy: {e}"));
    r.and(d)
}

fn table_run<T: Table>(ctx: &Ctx, t: &T, procs: &[Vec<TOp>]) -> Result<(), String> {
    let bodies = procs
        .iter()
        .enumerate()
        .map(|(p, ops)| Box::new(move || table_child(t, p, ops)) as Body<'_>)
        .collect();
    ctx.together(bodies)?;
    let mut total = 0;
    for (p, ops) in procs.iter().enumerate() {
        let m = TableModel::replay(p, ops);
        for k in 0..KEYS {
            let got = t.find_all_copy(key(p, k)).map_err(se)?;
            let want = m.all(key(p, k));
            if got != want {
                return Err(format!("key {}: {got:?}, the model {want:?}", key(p, k)));
            }
        }
        total += m.count();
    }
    let len = t.len().map_err(se)?;
    if len != total {
        return Err(format!("len {len}, the models hold {total} bindings"));
    }
    Ok(())
}

fn table_scenario<T: Table>() -> Result<String, String> {
    let ctx = Ctx::new()?;
    let ops = Cell::new(0);
    let strategy = ((1..5usize, 1..8usize), vec(vec(table_op(), 0..300), 2..=3));
    let runs = check(cases(), strategy, |(shape, procs)| {
        ops.set(ops.get() + procs.iter().map(Vec::len).sum::<usize>());
        table_case::<T>(&ctx, shape, &procs)
    })?;
    ctx.finish()?;
    Ok(format!("{runs} cases, {} operations", ops.get()))
}

fn hashtbl_model() -> Result<String, String> {
    table_scenario::<SHashtbl<u64, u64>>()
}

fn sharded_hashtbl_model() -> Result<String, String> {
    table_scenario::<SShardedHashtbl<u64, u64>>()
}

// ---------------------------------------------------------------------------
// Plain map

/// One `PlainMap` operation on the process's key `k` (< `MAP_KEYS`); the
/// value inserted is the operation's tag (see [`tag`]).
#[derive(Debug, Clone, Copy)]
enum MOp {
    Insert(u64),
    Remove(u64),
    Get(u64),
    /// `update` adding 1 to the value (an absent key counts as 0).
    Bump(u64),
}

fn map_op() -> impl Strategy<Value = MOp> {
    let k = 0..MAP_KEYS;
    prop_oneof![
        5 => k.clone().prop_map(MOp::Insert),
        2 => k.clone().prop_map(MOp::Remove),
        4 => k.clone().prop_map(MOp::Get),
        3 => k.prop_map(MOp::Bump),
    ]
}

/// Applies operation `i` of process `p` to `model`; what the map returns
/// for it: the old value (insert, remove), the value (get) or the new one
/// (bump).
fn map_apply(model: &mut HashMap<u64, u64>, p: usize, i: usize, op: MOp) -> Option<u64> {
    match op {
        MOp::Insert(k) => model.insert(key(p, k), tag(p, i)),
        MOp::Remove(k) => model.remove(&key(p, k)),
        MOp::Get(k) => model.get(&key(p, k)).copied(),
        MOp::Bump(k) => {
            let v = model.entry(key(p, k)).or_insert(0);
            *v += 1;
            Some(*v)
        }
    }
}

/// Process `p` runs `ops` on its own keys, checking what each returns.
fn map_child(d: &PlainMapDescr<u64, u64>, p: usize, ops: &[MOp]) -> Result<(), String> {
    let m = d.open().map_err(pe)?;
    let mut model = HashMap::new();
    for (i, &op) in ops.iter().enumerate() {
        let at = |what: String| format!("process {p}, op {i} {op:?}: {what}");
        let e = |e: PlainMapError| at(e.to_string());
        let got = match op {
            MOp::Insert(k) => m.insert(key(p, k), tag(p, i)).map_err(e)?,
            MOp::Remove(k) => m.remove(&key(p, k)).map_err(e)?,
            MOp::Get(k) => {
                let v = m.get(&key(p, k)).map_err(e)?;
                let there = m.contains_key(&key(p, k)).map_err(e)?;
                if there != v.is_some() {
                    return Err(at(format!("get {v:?}, contains_key {there}")));
                }
                v
            }
            MOp::Bump(k) => m
                .update(&key(p, k), |v| Some(v.unwrap_or(0) + 1))
                .map_err(e)?,
        };
        let want = map_apply(&mut model, p, i, op);
        if got != want {
            return Err(at(format!("{got:?}, the model {want:?}")));
        }
        let (len, mine) = (m.len(), model.len());
        if len < mine {
            return Err(at(format!("len {len} below this process's {mine}")));
        }
    }
    Ok(())
}

/// One case: a fresh map with room for every process's keys and `slack`
/// more (so that no insertion finds it full, whatever the interleaving,
/// and yet it is crowded), the sequences at once, then every key, the
/// length and the entries against the union of the models.
fn map_case(ctx: &Ctx, slack: usize, procs: &[Vec<MOp>]) -> Result<(), String> {
    let capacity = procs.len() * MAP_KEYS as usize + slack;
    let m = PlainMap::<u64, u64>::create(&ctx.pool, capacity).map_err(pe)?;
    let d = m.descr();
    let d = &d;
    let bodies = procs
        .iter()
        .enumerate()
        .map(|(p, ops)| Box::new(move || map_child(d, p, ops)) as Body<'_>)
        .collect();
    ctx.together(bodies)?;
    let mut all = HashMap::new();
    for (p, ops) in procs.iter().enumerate() {
        for (i, &op) in ops.iter().enumerate() {
            map_apply(&mut all, p, i, op);
        }
    }
    for (p, k) in (0..procs.len()).flat_map(|p| (0..MAP_KEYS).map(move |k| (p, k))) {
        let got = m.get(&key(p, k)).map_err(pe)?;
        let want = all.get(&key(p, k)).copied();
        if got != want {
            return Err(format!("key {}: {got:?}, the model {want:?}", key(p, k)));
        }
    }
    let mut entries = m.entries().map_err(pe)?;
    entries.sort_unstable();
    let mut want: Vec<(u64, u64)> = all.into_iter().collect();
    want.sort_unstable();
    if m.len() != want.len() || entries != want {
        return Err(format!(
            "len {}, entries {entries:?}, the models {want:?}",
            m.len()
        ));
    }
    Ok(())
}

fn plain_map_model() -> Result<String, String> {
    let ctx = Ctx::new()?;
    let ops = Cell::new(0);
    let strategy = (0..8usize, vec(vec(map_op(), 0..300), 2..=3));
    let runs = check(cases(), strategy, |(slack, procs)| {
        ops.set(ops.get() + procs.iter().map(Vec::len).sum::<usize>());
        map_case(&ctx, slack, &procs)
    })?;
    ctx.finish()?;
    Ok(format!("{runs} cases, {} operations", ops.get()))
}

// ---------------------------------------------------------------------------
// Queue

/// A producer's step: one value, or a batch of `n` with `extend`.
#[derive(Debug, Clone, Copy)]
enum PushOp {
    Push,
    Extend(usize),
}

/// A consumer's step.
#[derive(Debug, Clone, Copy)]
enum PopOp {
    PopCopy,
    PopMany(usize),
    Gc,
}

fn push_op() -> impl Strategy<Value = PushOp> {
    prop_oneof![3 => Just(PushOp::Push), 1 => (1..8usize).prop_map(PushOp::Extend)]
}

fn pop_op() -> impl Strategy<Value = PopOp> {
    prop_oneof![
        4 => Just(PopOp::PopCopy),
        3 => (1..8usize).prop_map(PopOp::PopMany),
        1 => Just(PopOp::Gc),
    ]
}

/// How many values a producer's steps push.
fn pushed(ops: &[PushOp]) -> usize {
    ops.iter()
        .map(|op| match op {
            PushOp::Push => 1,
            PushOp::Extend(n) => *n,
        })
        .sum()
}

/// Checks that `got` (what one consumer took, or the rest) has values of
/// the `counts.len()` producers only, each producer's in increasing order;
/// returns how many it holds of each.
fn per_producer(got: &[u64], counts: &[usize]) -> Result<Vec<usize>, String> {
    let mut last: Vec<Option<u64>> = vec![None; counts.len()];
    let mut seen = vec![0; counts.len()];
    for &v in got {
        let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
        if p >= counts.len() || i >= counts[p] as u64 {
            return Err(format!("{v:#x} was never pushed"));
        }
        if let Some(l) = last[p].filter(|&l| l >= i) {
            return Err(format!("producer {p}: {i} after {l}"));
        }
        last[p] = Some(i);
        seen[p] += 1;
    }
    Ok(seen)
}

fn producer(q: &SQueue<u64>, p: usize, ops: &[PushOp]) -> Result<(), String> {
    let mut i = 0;
    for (j, op) in ops.iter().enumerate() {
        let r = match *op {
            PushOp::Push => q.push(&tag(p, i)),
            PushOp::Extend(n) => q.extend(&(i..i + n).map(|i| tag(p, i)).collect::<Vec<_>>()),
        };
        r.map_err(|e| format!("producer {p}, op {j} {op:?}: {e}"))?;
        i += pushed(&ops[j..=j]);
    }
    Ok(())
}

/// Pops as `ops` say (yielding when the queue is empty), checks the order
/// of what comes out, and records it in `out`.
fn consumer(
    q: &SQueue<u64>,
    out: &SArray<u64>,
    c: usize,
    ops: &[PopOp],
    counts: &[usize],
) -> Result<(), String> {
    let mut mine = Vec::new();
    for (j, &op) in ops.iter().enumerate() {
        let at = |what: String| format!("consumer {c}, op {j} {op:?}: {what}");
        let got = match op {
            PopOp::PopCopy => q
                .pop_copy()
                .map_err(|e| at(e.to_string()))?
                .into_iter()
                .collect(),
            PopOp::PopMany(k) => {
                let got = q.pop_many(k).map_err(|e| at(e.to_string()))?;
                if got.len() > k {
                    return Err(at(format!("{} values", got.len())));
                }
                got
            }
            PopOp::Gc => {
                q.gc().map_err(|e| at(e.to_string()))?;
                continue;
            }
        };
        if got.is_empty() {
            std::thread::yield_now();
        }
        mine.extend(got);
        per_producer(&mine, counts).map_err(at)?;
    }
    out.modify(|m, v| m.extend_from_slice(v, &mine))
        .map_err(se)?
        .map_err(|e| format!("consumer {c}: recording: {e}"))
}

fn queue_case(
    ctx: &Ctx,
    producers: &[Vec<PushOp>],
    consumers: &[Vec<PopOp>],
) -> Result<usize, String> {
    let q = SQueue::<u64>::create(&ctx.pool, &()).map_err(se)?;
    let outs: Result<Vec<_>, _> = consumers
        .iter()
        .map(|_| SArray::create(&ctx.pool, &(), &[]))
        .collect();
    let (r, outs) = match outs {
        Ok(outs) => (queue_run(ctx, &q, &outs, producers, consumers), outs),
        Err(e) => (Err(se(e)), Vec::new()),
    };
    let mut d = Ok(());
    for a in outs {
        d = d.and(a.destroy());
    }
    let d = d.and(q.destroy()).map_err(|e| format!("destroy: {e}"));
    let taken = r?;
    d.map(|()| taken)
}

fn queue_run(
    ctx: &Ctx,
    q: &SQueue<u64>,
    outs: &[SArray<u64>],
    producers: &[Vec<PushOp>],
    consumers: &[Vec<PopOp>],
) -> Result<usize, String> {
    let counts: Vec<usize> = producers.iter().map(|ops| pushed(ops)).collect();
    let counts = &counts;
    let mut bodies: Vec<Body<'_>> = Vec::new();
    for (p, ops) in producers.iter().enumerate() {
        bodies.push(Box::new(move || producer(q, p, ops)));
    }
    for (c, ops) in consumers.iter().enumerate() {
        let out = &outs[c];
        bodies.push(Box::new(move || consumer(q, out, c, ops, counts)));
    }
    ctx.together(bodies)?;
    // What the consumers took: each producer's values in order.
    let mut taken = vec![0; counts.len()];
    for (c, out) in outs.iter().enumerate() {
        let got = out.to_vec().map_err(se)?;
        let seen = per_producer(&got, counts).map_err(|e| format!("consumer {c}: {e}"))?;
        for (t, s) in taken.iter_mut().zip(seen) {
            *t += s;
        }
    }
    // The rest, drained here: a snapshot, then popped in batches.
    let snapshot = q.to_vec().map_err(se)?;
    let mut rest = Vec::new();
    for _ in 0..=snapshot.len() {
        let got = q.pop_many(5).map_err(se)?;
        if got.is_empty() {
            break;
        }
        rest.extend(got);
    }
    if rest != snapshot || !q.is_empty().map_err(se)? {
        return Err(format!("drained {rest:x?}, the snapshot was {snapshot:x?}"));
    }
    // Producer p's values the consumers did not take are the rest of its
    // sequence, in order: the consumers took a prefix, each value once.
    for (p, &n) in counts.iter().enumerate() {
        let left: Vec<u64> = rest
            .iter()
            .copied()
            .filter(|v| v >> 32 == p as u64)
            .collect();
        let want: Vec<u64> = (taken[p].min(n)..n).map(|i| tag(p, i)).collect();
        if taken[p] > n || left != want {
            return Err(format!(
                "producer {p} pushed {n}, consumers took {}, left {left:x?}",
                taken[p]
            ));
        }
    }
    Ok(taken.iter().sum())
}

fn queue_model() -> Result<String, String> {
    let ctx = Ctx::new()?;
    let (values, taken) = (Cell::new(0), Cell::new(0));
    let strategy = (
        vec(vec(push_op(), 0..150), 2..=3),
        vec(vec(pop_op(), 0..200), 1..=2),
    );
    let runs = check(cases(), strategy, |(producers, consumers)| {
        values.set(values.get() + producers.iter().map(|ops| pushed(ops)).sum::<usize>());
        taken.set(taken.get() + queue_case(&ctx, &producers, &consumers)?);
        Ok(())
    })?;
    ctx.finish()?;
    Ok(format!(
        "{runs} cases, {} values pushed, {} of them taken by consumers",
        values.get(),
        taken.get()
    ))
}

// ---------------------------------------------------------------------------
// Array

/// An array operation of one process on its slot `s` (< `SLOTS`): the
/// element at index `s * processes + p`.
#[derive(Debug, Clone)]
enum AOp {
    /// Grows the array to cover the index if needed, then sets it.
    Set(usize, String),
    Get(usize),
    /// Grows the array to `n * processes` elements.
    Grow(usize),
    /// Reads the whole array and checks this process's elements.
    Snapshot,
    Gc,
}

fn array_op() -> impl Strategy<Value = AOp> {
    prop_oneof![
        5 => (0..SLOTS, "[a-z]{0,12}").prop_map(|(s, v)| AOp::Set(s, v)),
        4 => (0..SLOTS).prop_map(AOp::Get),
        2 => (0..=SLOTS).prop_map(AOp::Grow),
        1 => Just(AOp::Snapshot),
        1 => Just(AOp::Gc),
    ]
}

fn initial(i: usize) -> String {
    format!("init{i}")
}

/// What one process knows of the array: a lower bound of its length and
/// its own elements.
struct ArrayModel {
    init: usize,
    len: usize,
    set: HashMap<usize, String>,
}

impl ArrayModel {
    fn new(init: usize) -> ArrayModel {
        ArrayModel {
            init,
            len: init,
            set: HashMap::new(),
        }
    }

    /// The element at one of this process's indices.
    fn value(&self, i: usize) -> String {
        match self.set.get(&i) {
            Some(v) => v.clone(),
            None if i < self.init => initial(i),
            None => FILL.into(),
        }
    }

    fn apply(&mut self, procs: usize, p: usize, op: &AOp) {
        match op {
            AOp::Set(s, v) => {
                let i = s * procs + p;
                self.len = self.len.max(i + 1);
                self.set.insert(i, v.clone());
            }
            AOp::Grow(n) => self.len = self.len.max(n * procs),
            AOp::Get(_) | AOp::Snapshot | AOp::Gc => {}
        }
    }
}

fn array_child(
    a: &SArray<String>,
    procs: usize,
    p: usize,
    ops: &[AOp],
    init: usize,
) -> Result<(), String> {
    let fill = FILL.to_string();
    let mut m = ArrayModel::new(init);
    for (j, op) in ops.iter().enumerate() {
        let at = |what: String| format!("process {p}, op {j} {op:?}: {what}");
        let e = |e: StructureError| at(e.to_string());
        match op {
            AOp::Set(s, v) => {
                let i = s * procs + p;
                if i >= m.len {
                    a.grow(i + 1, &fill).map_err(e)?;
                }
                a.set(i, v).map_err(e)?;
            }
            AOp::Get(s) => {
                let i = s * procs + p;
                match a.get_copy(i) {
                    // Past the length this process knows, the element is
                    // there only if another process grew the array.
                    Err(StructureError::OutOfBounds { .. }) if i >= m.len => {}
                    Err(err) => return Err(e(err)),
                    Ok(v) => {
                        let pinned = a.get_pinned(i).map_err(e)?.as_str().to_owned();
                        if v != m.value(i) || pinned != v {
                            return Err(at(format!(
                                "[{i}] is {v:?} (pinned {pinned:?}), the model {:?}",
                                m.value(i)
                            )));
                        }
                    }
                }
            }
            AOp::Grow(n) => a.grow(n * procs, &fill).map_err(e)?,
            AOp::Snapshot => {
                let g = a.read().map_err(e)?;
                if g.len() < m.len {
                    return Err(at(format!(
                        "length {}, at least {} expected",
                        g.len(),
                        m.len
                    )));
                }
                for i in (p..g.len()).step_by(procs) {
                    if g[i].as_str() != m.value(i) {
                        return Err(at(format!(
                            "[{i}] is {:?}, the model {:?}",
                            g[i].as_str(),
                            m.value(i)
                        )));
                    }
                }
            }
            AOp::Gc => a.gc().map_err(e)?,
        }
        m.apply(procs, p, op);
    }
    Ok(())
}

fn array_case(ctx: &Ctx, init_slots: usize, procs: &[Vec<AOp>]) -> Result<(), String> {
    let n = procs.len();
    let init = init_slots * n;
    let a = SArray::init(&ctx.pool, &(), init, initial).map_err(se)?;
    let r = array_run(ctx, &a, init, procs);
    r.and(a.destroy().map_err(|e| format!("destroy: {e}")))
}

fn array_run(ctx: &Ctx, a: &SArray<String>, init: usize, procs: &[Vec<AOp>]) -> Result<(), String> {
    let n = procs.len();
    let bodies = procs
        .iter()
        .enumerate()
        .map(|(p, ops)| Box::new(move || array_child(a, n, p, ops, init)) as Body<'_>)
        .collect();
    ctx.together(bodies)?;
    let models: Vec<ArrayModel> = procs
        .iter()
        .enumerate()
        .map(|(p, ops)| {
            let mut m = ArrayModel::new(init);
            ops.iter().for_each(|op| m.apply(n, p, op));
            m
        })
        .collect();
    let len = models.iter().map(|m| m.len).max().unwrap_or(init);
    let want: Vec<String> = (0..len).map(|i| models[i % n].value(i)).collect();
    let got = a.to_vec().map_err(se)?;
    if got != want {
        let first = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i));
        return Err(format!(
            "length {} (model {len}); first difference at {first:?}: {:?}, the model {:?}",
            got.len(),
            first.and_then(|i| got.get(i)),
            first.and_then(|i| want.get(i)),
        ));
    }
    Ok(())
}

fn array_model() -> Result<String, String> {
    let ctx = Ctx::new()?;
    let ops = Cell::new(0);
    let strategy = (0..6usize, vec(vec(array_op(), 0..200), 2..=3));
    let runs = check(cases(), strategy, |(init_slots, procs)| {
        ops.set(ops.get() + procs.iter().map(Vec::len).sum::<usize>());
        array_case(&ctx, init_slots, &procs)
    })?;
    ctx.finish()?;
    Ok(format!("{runs} cases, {} operations", ops.get()))
}

fn main() {
    // A hung run ends the test (SIGALRM).
    common::watchdog(600);
    run_scenarios::<String>(&[
        ("hashtbl_model", hashtbl_model),
        ("sharded_hashtbl_model", sharded_hashtbl_model),
        ("plain_map_model", plain_map_model),
        ("queue_model", queue_model),
        ("array_model", array_model),
    ]);
}
