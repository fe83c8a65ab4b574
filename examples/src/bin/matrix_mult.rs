//! Many small matrix products, farmed out to worker processes through
//! camlboxes or computed sequentially: Netmulticore's `manymult.ml` against
//! `unimult.ml`, whose README table (100,000 samples, 4 workers, a 2011
//! Opteron) puts the break-even near 15×15.
//!
//! - One worker per core, each with its own request box; the first process
//!   (the master) has a result box. The workers announce their boxes'
//!   names on the result box when they start.
//! - Messages are `#[derive(mc::Shared)]` enums holding the matrices as
//!   `Vec<f64>` (row-major), copied straight into the box slots.
//! - Two parallel modes:
//!   - `1/msg`: one product per message, as `manymult` does; every product
//!     pays for a message each way;
//!   - `batch`: several products per message, enough that a message carries
//!     about 100,000 multiply-adds of work (800 products at 5×5, 4 at
//!     30×30), so the per-message cost is amortised.
//! - The master keeps at most `DEPTH` requests in flight per worker (less
//!   than the worker's box holds), and the result box has room for all of
//!   them, so neither side ever waits on a full box for long. Every wait is
//!   bounded.
//! - The inputs are 16 fixed pairs of matrices per size, used in turn.
//!   Results are summed in product order in every mode, so the sums must
//!   agree (they are compared within 1e-9 relative).
//!
//! Times are for the products only (workers already started), as in
//! Netmulticore's table.
//!
//! Usage: `matrix_mult [SAMPLES]` (default 40,000 products per size).

use std::time::{Duration, Instant};

use mc::camlbox::Sender;
use mc::{Camlbox, CamlboxId};

const SIZES: [usize; 6] = [5, 10, 15, 20, 25, 30];
/// Distinct input pairs per size.
const INPUTS: usize = 16;
/// Requests in flight per worker.
const DEPTH: usize = 4;
/// Slots of a worker's request box.
const WORKER_SLOTS: usize = DEPTH + 2;
/// Multiply-adds a batch should carry.
const BATCH_WORK: usize = 100_000;
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
    Products { worker: u32, first: u64, c: Vec<f64> },
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
    BATCH_WORK.div_ceil(n * n * n).max(1)
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
fn worker(args: (CamlboxId<ToMaster>, u32)) -> Result<u64, String> {
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
    let mut deadline = Instant::now() + 6 * STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("worker {me}: no request for {:?}", 6 * STEP));
        }
        for slot in rx.wait_timeout(left) {
            deadline = Instant::now() + 6 * STEP;
            let job = rx.get_copy(slot).map_err(|e| format!("worker {me}: {e}"));
            rx.delete(slot);
            match job? {
                Job::Stop => return Ok(done),
                Job::Mult {
                    first,
                    count,
                    n,
                    a,
                    b,
                } => {
                    let (n, count) = (n as usize, count as usize);
                    let nn = n * n;
                    let mut c = vec![0.0; count * nn];
                    for p in 0..count {
                        let r = p * nn..(p + 1) * nn;
                        mult(n, &a[r.clone()], &b[r.clone()], &mut c[r]);
                    }
                    done += count as u64;
                    tx.send_timeout(
                        &ToMaster::Products {
                            worker: me,
                            first,
                            c,
                        },
                        STEP,
                    )
                    .map_err(|e| format!("worker {me}: sending results: {e}"))?;
                }
            }
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
    /// Waits for messages on the result box, giving up after `STEP`.
    fn receive(&mut self) -> Result<Vec<ToMaster>, String> {
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
            let mut out = Vec::with_capacity(slots.len());
            for slot in slots {
                let m = self.rx.get_copy(slot).map_err(|e| e.to_string());
                self.rx.delete(slot);
                out.push(m?);
            }
            return Ok(out);
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
    ) -> Result<Vec<f64>, String> {
        let nn = n * n;
        let mut sums = vec![f64::NAN; samples];
        let mut in_flight = vec![0usize; self.workers.len()];
        let (mut next, mut received) = (0usize, 0usize);
        let mut w = 0;
        while received < samples {
            // Fill every worker's queue up to DEPTH.
            let mut sent_any = true;
            while next < samples && sent_any {
                sent_any = false;
                for _ in 0..self.workers.len() {
                    w = (w + 1) % self.workers.len();
                    if in_flight[w] >= DEPTH || next >= samples {
                        continue;
                    }
                    let count = batch.min(samples - next);
                    let mut a = Vec::with_capacity(count * nn);
                    let mut b = Vec::with_capacity(count * nn);
                    for i in next..next + count {
                        let (x, y) = &pairs[i % INPUTS];
                        a.extend_from_slice(x);
                        b.extend_from_slice(y);
                    }
                    let job = Job::Mult {
                        first: next as u64,
                        count: count as u32,
                        n: n as u32,
                        a,
                        b,
                    };
                    self.workers[w]
                        .send_timeout(&job, STEP)
                        .map_err(|e| format!("sending to worker {w}: {e}"))?;
                    in_flight[w] += 1;
                    next += count;
                    sent_any = true;
                }
            }
            for m in self.receive()? {
                let ToMaster::Products { worker, first, c } = m else {
                    return Err("unexpected message".into());
                };
                in_flight[worker as usize] -= 1;
                for (k, prod) in c.chunks_exact(nn).enumerate() {
                    sums[first as usize + k] = prod.iter().sum();
                    received += 1;
                }
            }
        }
        Ok(sums)
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

fn master(samples: usize) -> Result<(usize, Vec<Row>), String> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (rx, id) = Camlbox::<ToMaster>::create(
        cores * (DEPTH + 1),
        slot_bytes(max_floats() / 2),
    )
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
        for m in farm.receive()? {
            let ToMaster::Ready { worker, name } = m else {
                return Err("unexpected message".into());
            };
            names[worker as usize] = Some(name);
        }
    }
    for name in names.into_iter().flatten() {
        farm.workers
            .push(Sender::open(&name).map_err(|e| format!("worker box {name}: {e}"))?);
    }

    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for n in SIZES {
        let pairs = inputs(n);
        let t = Instant::now();
        let seq = total(&sequential(n, samples, &pairs));
        let seq_time = t.elapsed();
        let t = Instant::now();
        let single = total(&farm.parallel(n, samples, 1, &pairs)?);
        let single_time = t.elapsed();
        let batch = batch_size(n);
        let t = Instant::now();
        let batched = total(&farm.parallel(n, samples, batch, &pairs)?);
        let batched_time = t.elapsed();
        for (mode, x) in [("1/msg", single), ("batch", batched)] {
            if !agree(seq, x) {
                problems.push(format!(
                    "{n}x{n}: {mode} sum {x:e} differs from the sequential sum {seq:e}"
                ));
            }
        }
        eprintln!(
            "  {n}x{n}: sum {seq:.6e}, seq {:.3} s, 1/msg {:.3} s, batch {:.3} s",
            seq_time.as_secs_f64(),
            single_time.as_secs_f64(),
            batched_time.as_secs_f64()
        );
        rows.push(Row {
            n,
            seq: seq_time,
            single: single_time,
            batch,
            batched: batched_time,
        });
    }

    for w in &farm.workers {
        w.send_timeout(&Job::Stop, STEP)
            .map_err(|e| format!("stopping a worker: {e}"))?;
    }
    for p in pids {
        worker::join(p)
            .map_err(|e| e.to_string())?
            .ok_or("a worker failed")??;
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
                eprintln!("usage: matrix_mult [SAMPLES]");
                std::process::exit(2);
            }
        },
        None => 40_000,
    };
    let report = mc::run(move || master(samples));
    let (workers, rows) = match report.map(|r| r.outcome) {
        Ok(mc::Outcome::Returned(Ok(r))) => r,
        Ok(mc::Outcome::Returned(Err(e))) => {
            eprintln!("matrix_mult: {e}");
            std::process::exit(1);
        }
        Ok(other) => {
            eprintln!("matrix_mult: the first process ended: {other}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("matrix_mult: {e}");
            std::process::exit(1);
        }
    };
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
        ("one product per message", (|r: &Row| r.single) as fn(&Row) -> Duration),
        ("batched messages", |r: &Row| r.batched),
    ] {
        match rows.iter().find(|r| pick(r) < r.seq) {
            Some(r) => println!("{mode}: parallel is faster from {0}x{0} on", r.n),
            None => println!("{mode}: parallel is never faster here"),
        }
    }
    println!("matrix_mult: ok");
}
