//! Four workers count the Collatz steps of every number up to 300,000 and
//! share what they learn in a `PlainMap<u64, u32>`: a walk from `n` stops at
//! the first number any worker has already counted (a lookup that takes no
//! lock), and then records the steps of the numbers it went through. The
//! master checks the workers' totals against a plain sequential count.
//!
//! Usage: `collatz_cache [--limit N] [--workers W]`.

use std::process::ExitCode;

use clap::Parser;
use mc::{PlainMap, PlainMapDescr, PlainMapError, Pool};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    /// Count the steps of 1..=limit.
    #[arg(long, default_value_t = 300_000)]
    limit: u64,
    /// Worker processes.
    #[arg(long, default_value_t = 4)]
    workers: u64,
}

/// What a worker found for its numbers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Totals {
    /// The sum of the steps of its numbers.
    steps: u64,
    /// The number with the most steps (the smallest of equals), and them.
    longest: (u64, u32),
    /// Walks that stopped at a number counted by another walk.
    hits: u64,
}

impl Totals {
    fn add(&mut self, n: u64, steps: u32) {
        self.steps += u64::from(steps);
        if steps > self.longest.1 || (steps == self.longest.1 && n < self.longest.0) {
            self.longest = (n, steps);
        }
    }

    fn merge(mut self, o: Totals) -> Totals {
        self.steps += o.steps;
        self.hits += o.hits;
        if o.longest.1 > self.longest.1
            || (o.longest.1 == self.longest.1 && o.longest.0 < self.longest.0)
        {
            self.longest = o.longest;
        }
        self
    }
}

/// The next number of a Collatz walk.
fn next(n: u64) -> u64 {
    if n.is_multiple_of(2) {
        n / 2
    } else {
        3 * n + 1
    }
}

/// The steps from `n` to 1, stopping at a number the cache knows; records
/// the steps of the numbers below `limit` on the way.
fn steps(
    cache: &PlainMap<u64, u32>,
    n: u64,
    limit: u64,
    path: &mut Vec<u64>,
) -> Result<(u32, bool), PlainMapError> {
    path.clear();
    let mut x = n;
    let (mut known, mut hit) = (0, false);
    while x != 1 {
        if let Some(s) = cache.get(&x)? {
            (known, hit) = (s, true);
            break;
        }
        path.push(x);
        x = next(x);
    }
    let mut s = known;
    for &y in path.iter().rev() {
        s += 1;
        // (The cache has room for every number up to the limit.)
        if y <= limit {
            cache.insert(y, s)?;
        }
    }
    Ok((s, hit))
}

#[mc::process]
fn count(job: (PlainMapDescr<u64, u32>, u64, u64, u64)) -> Result<Totals, String> {
    let (descr, first, stride, limit) = job;
    let cache = descr.open().map_err(|e| e.to_string())?;
    let mut totals = Totals::default();
    let mut path = Vec::new();
    let mut n = first;
    while n <= limit {
        let (s, hit) = steps(&cache, n, limit, &mut path).map_err(|e| e.to_string())?;
        totals.add(n, s);
        totals.hits += u64::from(hit);
        n += stride;
    }
    Ok(totals)
}

fn work(args: &Args) -> Result<(Totals, usize), String> {
    let pool = Pool::create(256 << 20).map_err(|e| e.to_string())?;
    let cache =
        PlainMap::<u64, u32>::create(&pool, args.limit as usize).map_err(|e| e.to_string())?;
    let pids = (1..=args.workers)
        .map(|w| count::start((cache.descr(), w, args.workers, args.limit)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut all = Totals::default();
    for p in pids {
        all = all.merge(count::join(p).map_err(|e| e.to_string())??);
    }
    Ok((all, cache.len()))
}

/// The same totals, counted walk by walk in this process.
fn sequential(limit: u64) -> Totals {
    let mut t = Totals::default();
    for n in 1..=limit {
        let (mut x, mut s) = (n, 0);
        while x != 1 {
            x = next(x);
            s += 1;
        }
        t.add(n, s);
    }
    t
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.limit == 0 || args.workers == 0 {
        eprintln!("collatz_cache: give a limit and a number of workers of at least 1");
        return ExitCode::FAILURE;
    }
    let (got, cached) = match mc::run(|| work(&args)).map(|r| r.returned()) {
        Ok(Some(Ok(r))) => r,
        Ok(Some(Err(e))) => {
            eprintln!("collatz_cache: {e}");
            return ExitCode::FAILURE;
        }
        Ok(None) => {
            eprintln!("collatz_cache: the first process did not return");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("collatz_cache: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{} workers, 1..={}: {} steps in all; the longest walk starts at {} ({} steps); {} walks \
         stopped at a number counted before; {cached} numbers cached",
        args.workers, args.limit, got.steps, got.longest.0, got.longest.1, got.hits
    );
    let want = sequential(args.limit);
    if (got.steps, got.longest) != (want.steps, want.longest) {
        eprintln!(
            "collatz_cache: the sequential count gives {} steps, longest {:?}",
            want.steps, want.longest
        );
        return ExitCode::FAILURE;
    }
    println!("collatz_cache: ok");
    ExitCode::SUCCESS
}
