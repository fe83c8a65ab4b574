//! N-queens, Netmulticore's showcase: count the solutions of the N-queens
//! puzzle sequentially and with several parallel designs, and print a table
//! of counts, times and speedups over the sequential run.
//!
//! ```text
//! nqueens [N] [--workers W] [--variants seq,rayon,mc,...]   (N = 1..=20)
//! mpirun -np R nqueens --cluster [N] [--workers W]            (feature `mpi`)
//! ```
//!
//! With `--cluster` (built with the `mpi` feature, started by `mpirun` or
//! `srun`), rank 0 deals the tasks to every rank on demand, each rank counts
//! its batches with its mc workers, and rank 0 prints the count, checked
//! against A000170, and a table of ranks, workers, tasks and times.
//!
//! Variants:
//! - `seq`: one process, one thread;
//! - `rayon`: threads (rayon's work stealing), for comparison;
//! - `mc`: worker processes each count their share of the tasks and return
//!   the count through their join;
//! - `sht`: workers store every solution (a board) in one shared hashtable
//!   (`SHashtbl`); the count is the table's size;
//! - `sht2`: the same with two hashtables (boards split by the first
//!   queen's column), so that workers contend less;
//! - `mp`: workers send batches of boards through a camlbox to the first
//!   process, which collects them in a local set;
//! - `mp2`: two stages: workers send batches to two filter processes (by
//!   the first queen's column), each collecting its half in a local set and
//!   returning its count.

use std::io::Write;
use std::time::{Duration, Instant};

use mc::structures::{SHashtbl, SHashtblDescr};
use mc_examples::nqueens::{self, Task};

/// Boards per camlbox message (Netmulticore's `n_max`).
const BATCH: usize = 1000;

/// A batch of boards, `n` bytes each, back to back; an empty batch says
/// "this worker is done".
type Batch = Vec<u8>;

type Boards = SHashtbl<Vec<u8>, (), ()>;
type BoardsDescr = SHashtblDescr<Vec<u8>, (), ()>;

/// Stores the solutions of its tasks in the tables (board → table by the
/// first queen's column); returns how many it stored.
#[mc::process]
fn table_worker(job: (usize, Vec<Task>, Vec<BoardsDescr>)) -> Result<u64, String> {
    let (n, tasks, descrs) = job;
    let tables = descrs
        .iter()
        .map(|d| d.open())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut stored = 0u64;
    let mut failed = None;
    for t in tasks {
        nqueens::solutions_of_task(n, t, &mut |board| {
            if failed.is_some() {
                return;
            }
            let table = &tables[board[0] as usize % tables.len()];
            match table.add(&board.to_vec(), &()) {
                Ok(()) => stored += 1,
                Err(e) => failed = Some(e.to_string()),
            }
        });
    }
    failed.map_or(Ok(stored), Err)
}

/// Sends the solutions of its tasks in batches to the boxes (board → box
/// by the first queen's column), then an empty batch to each box.
#[mc::process]
fn batch_worker(job: (usize, Vec<Task>, Vec<String>)) -> Result<u64, String> {
    let (n, tasks, boxes) = job;
    let senders = boxes
        .iter()
        .map(|name| mc::camlbox::Sender::<Batch>::open(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut batches: Vec<Batch> = vec![Vec::with_capacity(BATCH * n); senders.len()];
    let mut sent = 0u64;
    let mut failed = None;
    let timeout = Duration::from_secs(60);
    for t in tasks {
        nqueens::solutions_of_task(n, t, &mut |board| {
            if failed.is_some() {
                return;
            }
            let k = board[0] as usize % senders.len();
            batches[k].extend_from_slice(board);
            sent += 1;
            if batches[k].len() == BATCH * n {
                if let Err(e) = senders[k].send_timeout(&batches[k], timeout) {
                    failed = Some(e.to_string());
                }
                batches[k].clear();
            }
        });
    }
    if let Some(e) = failed {
        return Err(e);
    }
    for (s, b) in senders.iter().zip(&batches) {
        if !b.is_empty() {
            s.send_timeout(b, timeout).map_err(|e| e.to_string())?;
        }
        s.send_timeout(&Vec::new(), timeout)
            .map_err(|e| e.to_string())?;
    }
    Ok(sent)
}

/// Receives batches until `workers` empty batches came; returns the number
/// of distinct boards.
fn collect(rx: &mut mc::Camlbox<Batch>, n: usize, workers: usize) -> Result<u64, String> {
    let mut seen = std::collections::HashSet::new();
    let mut done = 0;
    while done < workers {
        let slots = rx.wait_timeout(Duration::from_secs(60));
        if slots.is_empty() {
            return Err("no message for 60 s".into());
        }
        for slot in slots {
            {
                let msg = rx.get(slot).map_err(|e| e.to_string())?;
                if msg.is_empty() {
                    done += 1;
                }
                for board in msg.chunks(n) {
                    // 5 bits per row: a board of up to 25 rows fits a u128.
                    seen.insert(board.iter().fold(0u128, |k, &c| (k << 5) | c as u128));
                }
            }
            rx.delete(slot);
        }
    }
    Ok(seen.len() as u64)
}

/// The second stage of `mp2`: a filter process that creates its own box,
/// announces its name, and collects what the workers send to it.
#[mc::process]
fn filter(job: (usize, usize, mc::CamlboxDescr<String>)) -> Result<u64, String> {
    let (n, workers, announce) = job;
    let (mut rx, id) =
        mc::Camlbox::<Batch>::create(4 * n, BATCH * n + 256).map_err(|e| e.to_string())?;
    announce
        .sender()
        .and_then(|tx| tx.send_timeout(&id.name().to_owned(), Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    collect(&mut rx, n, workers)
}

fn run_mp2(o: &Run) -> Result<u64, String> {
    let n = o.n;
    let (mut names_rx, names_id) =
        mc::Camlbox::<String>::create(2, 256).map_err(|e| e.to_string())?;
    let filters = (0..2)
        .map(|_| filter::start((n, o.workers, names_id.clone())).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while names.len() < 2 {
        if Instant::now() > deadline {
            return Err("the filters did not announce their boxes".into());
        }
        for slot in names_rx.wait_timeout(Duration::from_secs(1)) {
            names.push(names_rx.get_copy(slot).map_err(|e| e.to_string())?);
            names_rx.delete(slot);
        }
    }
    let workers = start_batch_workers(o, &names)?;
    let sent = join_batch_workers(workers)?;
    let mut count = 0;
    for p in filters {
        count += filter::join(p).map_err(|e| e.to_string())??;
    }
    same_count(sent, count)
}

/// Starts `o.workers` batch workers sending to the boxes named `names`,
/// each with its share of the tasks.
fn start_batch_workers(
    o: &Run,
    names: &[String],
) -> Result<Vec<mc::processes::Pid<batch_worker::Definition>>, String> {
    let all = nqueens::tasks(o.n);
    (0..o.workers)
        .map(|w| {
            batch_worker::start((o.n, nqueens::share(&all, w, o.workers), names.to_vec()))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The boards the batch workers sent, in all.
fn join_batch_workers(
    workers: Vec<mc::processes::Pid<batch_worker::Definition>>,
) -> Result<u64, String> {
    let mut sent = 0;
    for p in workers {
        sent += batch_worker::join(p).map_err(|e| e.to_string())??;
    }
    Ok(sent)
}

/// `count` when every board sent was received once.
fn same_count(sent: u64, count: u64) -> Result<u64, String> {
    if sent != count {
        return Err(format!("{sent} boards sent, {count} distinct received"));
    }
    Ok(count)
}

fn run_mp(o: &Run) -> Result<u64, String> {
    let n = o.n;
    let (mut rx, id) =
        mc::Camlbox::<Batch>::create(4 * n, BATCH * n + 256).map_err(|e| e.to_string())?;
    let workers = start_batch_workers(o, &[id.name().to_owned()])?;
    let count = collect(&mut rx, n, o.workers)?;
    let sent = join_batch_workers(workers)?;
    same_count(sent, count)
}

fn run_tables(o: &Run, n_tables: usize) -> Result<u64, String> {
    let n = o.n;
    let pool = mc::Pool::create(4 << 30).map_err(|e| e.to_string())?;
    let tables = (0..n_tables)
        .map(|_| Boards::create(&pool, &()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let descrs: Vec<BoardsDescr> = tables.iter().map(|t| t.descr()).collect();
    let all = nqueens::tasks(n);
    let pids = (0..o.workers)
        .map(|w| {
            table_worker::start((n, nqueens::share(&all, w, o.workers), descrs.clone()))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    for p in pids {
        table_worker::join(p).map_err(|e| e.to_string())??;
    }
    let mut total = 0;
    for t in &tables {
        total += t.len().map_err(|e| e.to_string())? as u64;
    }
    Ok(total)
}

#[mc::process]
fn count_worker(job: (usize, Vec<Task>)) -> u64 {
    let (n, tasks) = job;
    tasks.into_iter().map(|t| nqueens::count_task(n, t)).sum()
}

/// The variants, with what each one does (the legend under the table).
const VARIANTS: &[(&str, &str)] = &[
    ("seq", "one process, one thread"),
    ("rayon", "threads with rayon's work stealing"),
    (
        "mc",
        "mc worker processes; each returns its count through its join",
    ),
    (
        "sht",
        "workers store every board in one shared hashtable (SHashtbl)",
    ),
    (
        "sht2",
        "the same with two hashtables (by the first queen's column)",
    ),
    (
        "mp",
        "workers send batches of boards through a camlbox to one collector",
    ),
    (
        "mp2",
        "workers send batches to two filter processes, one per half",
    ),
];

/// Counts the solutions of the N-queens puzzle with several designs, checks
/// every count against OEIS A000170 and prints a table of times and
/// speedups over the sequential run.
#[derive(clap::Parser, Debug)]
#[command(name = "nqueens")]
struct Options {
    /// The board size (1 to 20).
    #[arg(default_value_t = 15, value_parser = clap::value_parser!(u8).range(1..=20))]
    n: u8,
    /// Worker processes (and threads for rayon); default: the cores.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// The variants to run, comma-separated: seq, rayon, mc, sht, sht2, mp,
    /// mp2 (default: all of them).
    #[arg(long, value_delimiter = ',', value_parser = variant_name)]
    variants: Vec<String>,
    /// Run as one rank of an MPI job (`mpirun -np R nqueens --cluster N`):
    /// rank 0 deals the tasks, every rank's mc workers count them.
    #[arg(long)]
    cluster: bool,
}

fn variant_name(s: &str) -> Result<String, String> {
    if VARIANTS.iter().any(|(v, _)| *v == s) {
        Ok(s.to_owned())
    } else {
        let names: Vec<&str> = VARIANTS.iter().map(|(v, _)| *v).collect();
        Err(format!(
            "no variant {s:?}; the variants are {}",
            names.join(", ")
        ))
    }
}

/// What the run needs from the command line.
struct Run {
    n: usize,
    workers: usize,
    variants: Vec<String>,
    cores: usize,
    cluster: bool,
}

fn parse() -> Run {
    let o = <Options as clap::Parser>::parse();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Run {
        n: usize::from(o.n),
        workers: o.workers.map_or(cores, usize::from),
        variants: if o.variants.is_empty() {
            VARIANTS.iter().map(|(v, _)| (*v).to_owned()).collect()
        } else {
            o.variants
        },
        cores,
        cluster: o.cluster,
    }
}

/// The 1-minute load average, when `/proc/loadavg` can be read.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn run_variant(name: &str, o: &Run) -> Result<u64, String> {
    let n = o.n;
    match name {
        "seq" => Ok(nqueens::count_sequential(n)),
        "rayon" => {
            use rayon::prelude::*;
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(o.workers)
                .build()
                .map_err(|e| e.to_string())?;
            Ok(pool.install(|| {
                nqueens::tasks(n)
                    .into_par_iter()
                    .map(|t| nqueens::count_task(n, t))
                    .sum()
            }))
        }
        "mc" => {
            let all = nqueens::tasks(n);
            let pids = (0..o.workers)
                .map(|w| {
                    count_worker::start((n, nqueens::share(&all, w, o.workers)))
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut total = 0;
            for p in pids {
                total += count_worker::join(p).map_err(|e| e.to_string())?;
            }
            Ok(total)
        }
        "sht" => run_tables(o, 1),
        "sht2" => run_tables(o, 2),
        "mp" => run_mp(o),
        "mp2" => run_mp2(o),
        other => Err(format!("unknown variant {other}")),
    }
}

/// `--cluster`: this process is one rank of an MPI job.
#[cfg(feature = "mpi")]
fn cluster_main(o: &Run) -> Result<(), String> {
    let n = o.n;
    let workers = o.workers;
    let r = mc_cluster::run(|c| -> Result<(), String> {
        let start = Instant::now();
        let (mut tasks_done, mut busy) = (0usize, Duration::ZERO);
        let tasks = c.is_root().then(|| nqueens::tasks(n));
        // A batch keeps every local worker busy many times over (each
        // batch starts fresh workers).
        let counts = c
            .deal(tasks, workers * 16, |batch: Vec<Task>| {
                let t = Instant::now();
                tasks_done += batch.len();
                let pids: Vec<_> = (0..workers.min(batch.len()))
                    .map(|w| {
                        let share = nqueens::share(&batch, w, workers.min(batch.len()));
                        count_worker::start((n, share)).expect("start a worker")
                    })
                    .collect();
                let count: u64 = pids
                    .into_iter()
                    .map(|p| count_worker::join(p).expect("a worker's count"))
                    .sum();
                busy += t.elapsed();
                vec![count]
            })
            .map_err(|e| e.to_string())?;
        let mine = (
            c.rank(),
            c.node_name().to_owned(),
            workers,
            tasks_done,
            busy.as_secs_f64(),
        );
        let rows = c.gather(0, &mine).map_err(|e| e.to_string())?;
        let (Some(counts), Some(rows)) = (counts, rows) else {
            return Ok(());
        };
        let total: u64 = counts.iter().sum();
        let expected = nqueens::A000170[n];
        println!(
            "N-queens, N = {n}, {} rank{} with {workers} worker{} each: {total} solutions in {:.3} s",
            c.size(),
            if c.size() == 1 { "" } else { "s" },
            if workers == 1 { "" } else { "s" },
            start.elapsed().as_secs_f64()
        );
        println!();
        println!(
            "{:>4}  {:<16} {:>7} {:>6} {:>9}",
            "rank", "node", "workers", "tasks", "busy (s)"
        );
        for (rank, node, w, t, b) in &rows {
            println!("{rank:>4}  {node:<16} {w:>7} {t:>6} {b:>9.3}");
        }
        if total != expected {
            return Err(format!(
                "OEIS A000170 says {expected} solutions for N = {n}, the cluster counted {total}"
            ));
        }
        println!("\n{total} solutions, as OEIS A000170 says for N = {n}");
        println!("nqueens: ok");
        Ok(())
    });
    r.map_err(|e| e.to_string())?
}

#[cfg(not(feature = "mpi"))]
fn cluster_main(_: &Run) -> Result<(), String> {
    Err("built without the `mpi` feature: build it with \
         `cargo build --release -p mc-examples --features mpi --bin nqueens` \
         (Open MPI and libclang: scripts/install-mpi.sh)"
        .into())
}

fn main() {
    let o = parse();
    if o.cluster {
        if let Err(e) = cluster_main(&o) {
            mc_examples::fail("nqueens", e);
        }
        return;
    }
    let report = mc::run(move || -> Result<(), String> {
        let expected = nqueens::A000170[o.n];
        println!("N-queens, N = {}, {} workers", o.n, o.workers);
        let load_before = load_average();
        let mut rows: Vec<(String, u64, Duration)> = Vec::new();
        for v in &o.variants {
            eprint!("  running {v:<8}…");
            let _ = std::io::stderr().flush();
            let t = Instant::now();
            let count = run_variant(v, &o)?;
            let d = t.elapsed();
            eprintln!(" {count} solutions in {:.3} s", d.as_secs_f64());
            rows.push((v.clone(), count, d));
        }
        let load = load_before
            .into_iter()
            .chain(load_average())
            .reduce(f64::max);
        // Speedups mean little when other work competed for the cores.
        let busy = load.filter(|&l| l > o.cores as f64);
        let mark = if busy.is_some() { "*" } else { "" };
        let seq = rows.iter().find(|r| r.0 == "seq").map(|r| r.2);
        println!();
        println!(
            "{:<8} {:>12} {:>10} {:>9}",
            "variant", "solutions", "time (s)", "speedup"
        );
        for (v, c, d) in &rows {
            let speedup = seq.map_or("-".to_owned(), |s| {
                format!("{:.2}x{mark}", s.as_secs_f64() / d.as_secs_f64())
            });
            println!("{v:<8} {c:>12} {:>10.3} {speedup:>9}", d.as_secs_f64());
        }
        if let Some(l) = busy {
            println!(
                "* unreliable: the load average ({l:.2}) was above the {} cores",
                o.cores
            );
        }
        println!();
        for (v, what) in VARIANTS
            .iter()
            .filter(|(v, _)| o.variants.iter().any(|x| x == v))
        {
            println!("  {v:<6} {what}");
        }
        let wrong: Vec<String> = rows
            .iter()
            .filter(|r| r.1 != expected)
            .map(|r| format!("{} counted {}", r.0, r.1))
            .collect();
        if !wrong.is_empty() {
            return Err(format!(
                "OEIS A000170 says {expected} solutions for N = {}: {}",
                o.n,
                wrong.join(", ")
            ));
        }
        println!(
            "\nall {} variants found {expected} solution{}, as OEIS A000170 says for N = {}",
            rows.len(),
            if expected == 1 { "" } else { "s" },
            o.n
        );
        Ok(())
    });
    mc_examples::ok_or_exit("nqueens", report);
    println!("nqueens: ok");
}
