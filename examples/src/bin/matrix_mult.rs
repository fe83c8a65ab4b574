//! Many small matrix products, farmed out to worker processes through
//! camlboxes or computed sequentially: Netmulticore's `manymult.ml` against
//! `unimult.ml`, whose README table (100,000 samples, 4 workers, a 2011
//! Opteron) puts the break-even near 15×15.
//!
//! - One worker per core (or `WORKERS`), each with its own request box;
//!   the first process (the master) has a result box. The workers announce
//!   their boxes' names on the result box when they start.
//! - Messages are `#[derive(mc::Shared)]` enums holding the matrices as
//!   `Vec<f64>` (row-major), copied straight into the box slots. Workers
//!   read requests, and the master reads results, in place in the slots;
//!   both reuse their outgoing buffers.
//! - Two parallel modes:
//!   - `1/msg`: one product per message, as `manymult` does; every product
//!     pays for a message each way;
//!   - `batch`: several products per message, enough that a message carries
//!     about 200,000 multiply-adds (at most 128 KiB of left factors: 655
//!     products at 5×5, 8 at 30×30), so the per-message cost is amortised.
//! - The master keeps at most `DEPTH` requests in flight per worker (less
//!   than the worker's box holds), and the result box has room for all of
//!   them, so neither side ever waits on a full box for long. Every wait is
//!   bounded.
//! - The inputs are 16 fixed pairs of matrices per size, used in turn.
//!   Results are summed in product order in every mode, so the sums must
//!   agree (they are compared within 1e-9 relative).
//!
//! Times are for the products only (workers already started), as in
//! Netmulticore's table. Each measurement is repeated 3 times, the modes
//! taking turns, and the best time is shown, which filters out most
//! interference from other programs on a shared machine. The time the
//! workers spent multiplying goes to stderr.
//!
//! Usage: `matrix_mult [SAMPLES [WORKERS]]` (default 30,000 products per
//! size and measurement).

use std::time::{Duration, Instant};

use mc::camlbox::Sender;
use mc::{Camlbox, CamlboxDescr};

const SIZES: [usize; 6] = [5, 10, 15, 20, 25, 30];
/// Distinct input pairs per size.
const INPUTS: usize = 16;
/// Requests in flight per worker.
const DEPTH: usize = 4;
/// Slots of a worker's request box.
const WORKER_SLOTS: usize = DEPTH + 2;
/// Multiply-adds a batch should carry.
const BATCH_WORK: usize = 200_000;
/// The most bytes a batch's left (or right) factors may take: larger
/// batches no longer fit in the caches, and the workers slow down.
const BATCH_BYTES: usize = 128 << 10;
/// Each measurement is repeated this many times; the table shows the best.
const ROUNDS: usize = 3;
/// The longest any single wait may take.
const STEP: Duration = Duration::from_secs(10);

/// A request to a worker.
#[derive(mc::Shared, Debug, Clone)]
enum Job {
    /// Multiply `count` pairs of `n`×`n` matrices: `a` and `b` hold the
    /// left and right factors one after the other.
    Mult {
        first: u64,
        count: u32,
        n: u32,
        a: Vec<f64>,
        b: Vec<f64>,
    },
    Stop,
}

/// A message to the master.
#[derive(mc::Shared, Debug, Clone)]
enum ToMaster {
    /// A worker's request box.
    Ready { worker: u32, name: String },
    /// The products of a `Job::Mult`, one after the other.
    Products {
        worker: u32,
        first: u64,
        /// Nanoseconds the worker spent multiplying.
        busy: u64,
        c: Vec<f64>,
    },
}

/// `c = a * b` for row-major `n`×`n` matrices.
fn mult(n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    c.fill(0.0);
    for i in 0..n {
        let row = &mut c[i * n..(i + 1) * n];
        for k in 0..n {
            let x = a[i * n + k];
            let bk = &b[k * n..(k + 1) * n];
            for (r, y) in row.iter_mut().zip(bk) {
                *r += x * y;
            }
        }
    }
}

/// The `INPUTS` pairs of matrices for size `n` (deterministic).
fn inputs(n: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
    let mut state = 0x2545_f491_4f6c_dd1du64 ^ n as u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    (0..INPUTS)
        .map(|_| {
            let a = (0..n * n).map(|_| next()).collect();
            let b = (0..n * n).map(|_| next()).collect();
            (a, b)
        })
        .collect()
}

fn slot_bytes(floats: usize) -> usize {
    floats * 8 + 4096
}

/// Products per message in batch mode for size `n`.
fn batch_size(n: usize) -> usize {
    BATCH_WORK
        .div_ceil(n * n * n)
        .min(BATCH_BYTES / (8 * n * n))
        .max(1)
}

/// The largest message, in floats, of any mode and size.
fn max_floats() -> usize {
    SIZES
        .iter()
        .map(|&n| 2 * batch_size(n) * n * n)
        .max()
        .unwrap_or(0)
}

#[mc::process]
fn worker(args: (CamlboxDescr<ToMaster>, u32)) -> Result<u64, String> {
    let (master, me) = args;
    let tx = master
        .sender()
        .map_err(|e| format!("worker {me}: result box: {e}"))?;
    let (mut rx, id) = Camlbox::<Job>::create(WORKER_SLOTS, slot_bytes(max_floats()))
        .map_err(|e| format!("worker {me}: request box: {e}"))?;
    tx.send_timeout(
        &ToMaster::Ready {
            worker: me,
            name: id.name().to_string(),
        },
        STEP,
    )
    .map_err(|e| format!("worker {me}: announcing: {e}"))?;
    let mut done = 0u64;
    // The reply is reused: its buffer is allocated (and faulted in) once.
    let mut reply = ToMaster::Products {
        worker: me,
        first: 0,
        busy: 0,
        c: Vec::new(),
    };
    let mut deadline = Instant::now() + 6 * STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("worker {me}: no request for {:?}", 6 * STEP));
        }
        for slot in rx.wait_timeout(left) {
            deadline = Instant::now() + 6 * STEP;
            // The request is read in place, in the box slot.
            let stop = match rx.get(slot) {
                Err(e) => Err(format!("worker {me}: {e}")),
                Ok(m) => match &*m {
                    SharedJob::Stop => Ok(true),
                    SharedJob::Mult {
                        first,
                        count,
                        n,
                        a,
                        b,
                    } => {
                        let (n, count) = (*n as usize, *count as usize);
                        let nn = n * n;
                        let (a, b) = (a.as_slice(), b.as_slice());
                        if a.len() != count * nn || b.len() != count * nn {
                            return Err(format!("worker {me}: malformed request"));
                        }
                        if let ToMaster::Products {
                            first: f, c, busy, ..
                        } = &mut reply
                        {
                            let t = Instant::now();
                            *f = *first;
                            c.resize(count * nn, 0.0);
                            for p in 0..count {
                                let r = p * nn..(p + 1) * nn;
                                mult(n, &a[r.clone()], &b[r.clone()], &mut c[r]);
                            }
                            *busy = t.elapsed().as_nanos() as u64;
                        }
                        done += count as u64;
                        Ok(false)
                    }
                },
            };
            rx.delete(slot);
            if stop? {
                return Ok(done);
            }
            tx.send_timeout(&reply, STEP)
                .map_err(|e| format!("worker {me}: sending results: {e}"))?;
        }
    }
}

/// The sum of the entries of each of `samples` products, sequentially.
fn sequential(n: usize, samples: usize, pairs: &[(Vec<f64>, Vec<f64>)]) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    (0..samples)
        .map(|i| {
            let (a, b) = &pairs[i % INPUTS];
            mult(n, a, b, &mut c);
            c.iter().sum()
        })
        .collect()
}

struct Farm {
    rx: Camlbox<ToMaster>,
    workers: Vec<Sender<Job>>,
}

impl Farm {
    /// Waits for messages on the result box (giving up after `STEP`) and
    /// hands each to `f`, in place in its slot.
    fn receive(
        &mut self,
        mut f: impl FnMut(&SharedToMaster) -> Result<(), String>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no message from the workers for {STEP:?}"));
            }
            let slots = self.rx.wait_timeout(left);
            if slots.is_empty() {
                continue;
            }
            for slot in slots {
                let r = match self.rx.get(slot) {
                    Ok(m) => f(&m),
                    Err(e) => Err(e.to_string()),
                };
                self.rx.delete(slot);
                r?;
            }
            return Ok(());
        }
    }

    /// The per-product sums of `samples` products farmed out `batch`
    /// products per message.
    fn parallel(
        &mut self,
        n: usize,
        samples: usize,
        batch: usize,
        pairs: &[(Vec<f64>, Vec<f64>)],
    ) -> Result<(Vec<f64>, Duration), String> {
        let nn = n * n;
        let workers = self.workers.len();
        let mut sums = vec![f64::NAN; samples];
        let mut in_flight = vec![0usize; workers];
        let (mut next, mut received) = (0usize, 0usize);
        let mut w = 0;
        let mut busy = Duration::ZERO;
        // The inputs repeat every INPUTS products, so there are at most
        // INPUTS distinct full batches: build them once, as a program that
        // already holds its matrices would just send them. Only `first`
        // changes from one send to the next.
        let make = |start: usize, count: usize| {
            let mut a = Vec::with_capacity(count * nn);
            let mut b = Vec::with_capacity(count * nn);
            for i in start..start + count {
                let (x, y) = &pairs[i % INPUTS];
                a.extend_from_slice(x);
                b.extend_from_slice(y);
            }
            Job::Mult {
                first: 0,
                count: count as u32,
                n: n as u32,
                a,
                b,
            }
        };
        let mut batches: Vec<Job> = (0..INPUTS).map(|start| make(start, batch)).collect();
        while received < samples {
            // Fill every worker's queue up to DEPTH.
            let mut sent_any = true;
            while next < samples && sent_any {
                sent_any = false;
                for _ in 0..workers {
                    w = (w + 1) % workers;
                    if in_flight[w] >= DEPTH || next >= samples {
                        continue;
                    }
                    let count = batch.min(samples - next);
                    let mut last;
                    let job = if count == batch {
                        &mut batches[next % INPUTS]
                    } else {
                        last = make(next, count);
                        &mut last
                    };
                    if let Job::Mult { first, .. } = job {
                        *first = next as u64;
                    }
                    self.workers[w]
                        .send_timeout(job, STEP)
                        .map_err(|e| format!("sending to worker {w}: {e}"))?;
                    in_flight[w] += 1;
                    next += count;
                    sent_any = true;
                }
            }
            self.receive(|m| {
                let SharedToMaster::Products {
                    worker,
                    first,
                    busy: b,
                    c,
                } = m
                else {
                    return Err("unexpected message".into());
                };
                let (worker, first) = (*worker as usize, *first as usize);
                let c = c.as_slice();
                if worker >= workers || in_flight[worker] == 0 || first + c.len() / nn > samples {
                    return Err("unexpected results".into());
                }
                in_flight[worker] -= 1;
                busy += Duration::from_nanos(*b);
                for (k, prod) in c.chunks_exact(nn).enumerate() {
                    sums[first + k] = prod.iter().sum();
                    received += 1;
                }
                Ok(())
            })?;
        }
        Ok((sums, busy))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    n: usize,
    seq: Duration,
    single: Duration,
    batch: usize,
    batched: Duration,
}

fn total(sums: &[f64]) -> f64 {
    sums.iter().sum()
}

fn agree(x: f64, y: f64) -> bool {
    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300)
}

fn master(samples: usize, cores: usize) -> Result<(usize, Vec<Row>), String> {
    let (rx, id) = Camlbox::<ToMaster>::create(cores * (DEPTH + 1), slot_bytes(max_floats() / 2))
        .map_err(|e| format!("result box: {e}"))?;
    let pids = (0..cores)
        .map(|w| worker::start((id.clone(), w as u32)).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut farm = Farm {
        rx,
        workers: Vec::new(),
    };
    let mut names = vec![None; cores];
    while names.iter().any(Option::is_none) {
        farm.receive(|m| {
            let SharedToMaster::Ready { worker, name } = m else {
                return Err("unexpected message".into());
            };
            let slot = names.get_mut(*worker as usize).ok_or("unknown worker")?;
            *slot = Some(name.as_str().to_string());
            Ok(())
        })?;
    }
    for name in names.into_iter().flatten() {
        farm.workers
            .push(Sender::open(&name).map_err(|e| format!("worker box {name}: {e}"))?);
    }

    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for n in SIZES {
        let pairs = inputs(n);
        let batch = batch_size(n);
        // Best of ROUNDS: the modes take turns, so that a burst of
        // interference from other programs does not pick one of them.
        let mut best = [Duration::MAX; 3];
        let mut busy = [Duration::ZERO; 2];
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let seq = total(&sequential(n, samples, &pairs));
            best[0] = best[0].min(t.elapsed());
            for (k, size) in [1, batch].into_iter().enumerate() {
                let t = Instant::now();
                let (sums, b) = farm.parallel(n, samples, size, &pairs)?;
                let sum = total(&sums);
                let d = t.elapsed();
                if d < best[k + 1] {
                    best[k + 1] = d;
                    busy[k] = b;
                }
                if !agree(seq, sum) {
                    problems.push(format!(
                        "{n}x{n}: {} sum {sum:e} differs from the sequential sum {seq:e}",
                        ["1/msg", "batch"][k]
                    ));
                }
            }
        }
        eprintln!(
            "  {n}x{n}: seq {:.3} s, 1/msg {:.3} s (workers multiplying {:.3} s), \
             batch {:.3} s (workers multiplying {:.3} s)",
            best[0].as_secs_f64(),
            best[1].as_secs_f64(),
            busy[0].as_secs_f64(),
            best[2].as_secs_f64(),
            busy[1].as_secs_f64()
        );
        rows.push(Row {
            n,
            seq: best[0],
            single: best[1],
            batch,
            batched: best[2],
        });
    }

    for w in &farm.workers {
        w.send_timeout(&Job::Stop, STEP)
            .map_err(|e| format!("stopping a worker: {e}"))?;
    }
    for p in pids {
        worker::join(p).map_err(|e| e.to_string())??;
    }
    if problems.is_empty() {
        Ok((cores, rows))
    } else {
        Err(problems.join("\n"))
    }
}

fn main() {
    let samples: usize = match std::env::args().nth(1) {
        Some(a) => match a.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: matrix_mult [SAMPLES [WORKERS]]");
                std::process::exit(2);
            }
        },
        None => 30_000,
    };
    let workers: usize = match std::env::args().nth(2) {
        Some(a) => match a.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: matrix_mult [SAMPLES [WORKERS]]");
                std::process::exit(2);
            }
        },
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let report = mc::run(move || master(samples, workers));
    let (workers, rows) = mc_examples::ok_or_exit("matrix_mult", report);
    println!("{samples} products per size, {workers} workers (times in seconds)");
    println!();
    println!(
        "{:>7} {:>9} {:>9} {:>8} {:>6} {:>9} {:>8}",
        "size", "seq", "1/msg", "speedup", "batch", "batched", "speedup"
    );
    for r in &rows {
        let s = r.seq.as_secs_f64();
        println!(
            "{:>7} {:>9.3} {:>9.3} {:>7.2}x {:>6} {:>9.3} {:>7.2}x",
            format!("{0}x{0}", r.n),
            s,
            r.single.as_secs_f64(),
            s / r.single.as_secs_f64(),
            r.batch,
            r.batched.as_secs_f64(),
            s / r.batched.as_secs_f64()
        );
    }
    println!();
    for (mode, pick) in [
        (
            "one product per message",
            (|r: &Row| r.single) as fn(&Row) -> Duration,
        ),
        ("batched messages", |r: &Row| r.batched),
    ] {
        let faster: Vec<String> = rows
            .iter()
            .filter(|r| pick(r) < r.seq)
            .map(|r| format!("{0}x{0}", r.n))
            .collect();
        // Where parallelism pays: from the smallest size after which every
        // size is faster in parallel.
        let from = rows
            .iter()
            .rposition(|r| pick(r) >= r.seq)
            .map_or(0, |i| i + 1);
        if faster.is_empty() {
            println!("{mode}: parallel is never faster here");
        } else if from < rows.len() {
            let n = rows[from].n;
            println!(
                "{mode}: parallel pays from {n}x{n} on (faster at {})",
                faster.join(", ")
            );
        } else {
            let n = rows.last().map_or(0, |r| r.n);
            println!(
                "{mode}: parallel is faster only at {} (not at {n}x{n})",
                faster.join(", ")
            );
        }
    }
    println!("matrix_mult: ok");
}
