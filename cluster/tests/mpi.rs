//! The cluster tests, on Open MPI on this machine. `harness = false`:
//! started by `cargo test` (no MPI environment), the program launches
//! itself with `mpirun -np 2` and `-np 3` (and once alone, as a job of one
//! rank) and checks what every rank printed; each launch is killed after
//! 120 s. Started by `mpirun`, it is a rank and runs the checks.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mc_cluster::{Cluster, ClusterError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u64,
    name: String,
    values: Vec<f64>,
    tags: Option<Vec<String>>,
}

#[derive(mc::Shared, Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Table {
    title: String,
    rows: Vec<(u32, String)>,
}

/// A shared value without serde: it travels in its own layout.
#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct Plan {
    name: String,
    steps: Vec<(u32, String)>,
    next: Option<Box<Plan>>,
}

fn plan(i: u32) -> Plan {
    Plan {
        name: format!("plan {i}"),
        steps: (0..i).map(|k| (k, "step".repeat(k as usize))).collect(),
        next: (i > 1).then(|| Box::new(plan(i - 1))),
    }
}

#[mc::process]
fn square(x: u64) -> u64 {
    x * x
}

/// The solutions of N-queens with the first queen in column `col`.
#[mc::process]
fn queens_from((n, col): (usize, usize)) -> u64 {
    fn place(n: usize, row: usize, cols: u32, d1: u32, d2: u32) -> u64 {
        if row == n {
            return 1;
        }
        let mut count = 0;
        let free = !(cols | d1 | d2) & ((1 << n) - 1);
        let mut bits = free;
        while bits != 0 {
            let bit = bits & bits.wrapping_neg();
            bits ^= bit;
            count += place(n, row + 1, cols | bit, (d1 | bit) << 1, (d2 | bit) >> 1);
        }
        count
    }
    let bit = 1u32 << col;
    place(n, 1, bit, bit << 1, bit >> 1)
}

/// OEIS A000170: the number of solutions of N-queens, N = 0..=12.
const A000170: [u64; 13] = [1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200];

fn job(i: u64) -> Job {
    Job {
        id: i,
        name: format!("job-{i}"),
        values: (0..i).map(|k| k as f64 * 0.5).collect(),
        tags: i.is_multiple_of(2).then(|| vec!["even".into(); i as usize]),
    }
}

/// A value with strings large enough to go out in parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Bulk {
    text: String,
    small: Vec<u32>,
    bytes: serde_bytes::ByteBuf,
    more: Vec<String>,
}

fn bulk(r: usize) -> Bulk {
    Bulk {
        text: format!("rank {r} ").repeat(40_000),
        small: (0..100).collect(),
        bytes: serde_bytes::ByteBuf::from(
            (0..600_000).map(|i| (i * 7 + r) as u8).collect::<Vec<_>>(),
        ),
        more: vec!["x".repeat(300_000), "short".into(), "y".repeat(270_000)],
    }
}

/// A value whose encoding fails after a large string went out.
struct FailsHalfway;

impl Serialize for FailsHalfway {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeTuple};
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&serde_bytes::ByteBuf::from(vec![1u8; 400_000]))?;
        Err(S::Error::custom("the second half"))
    }
}

/// A value whose encoding sends a message of its own (and keeps what that
/// send said).
struct SendsWhileSent<'a>(&'a Cluster, std::cell::RefCell<String>);

impl Serialize for SendsWhileSent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        if let Err(e) = self.0.send(0, &1u8) {
            *self.1.borrow_mut() = e.to_string();
            return Err(S::Error::custom(e.to_string()));
        }
        s.serialize_u8(2)
    }
}

fn check(c: &Cluster) -> Result<(), String> {
    let (rank, size) = (c.rank(), c.size());
    let e = |e: ClusterError| e.to_string();
    // 1. A typed struct to every rank and back, changed.
    if c.is_root() {
        for r in 1..size {
            c.send(r, &job(r as u64)).map_err(e)?;
        }
        for r in 1..size {
            let back: Job = c.recv(r).map_err(e)?;
            let mut want = job(r as u64);
            want.name.push_str(&format!(" done by {r}"));
            want.values.push(r as f64);
            if back != want {
                return Err(format!("round trip with rank {r}: {back:?}"));
            }
        }
    } else {
        let mut j: Job = c.recv(0).map_err(e)?;
        if j != job(rank as u64) {
            return Err(format!("rank {rank} got {j:?}"));
        }
        j.name.push_str(&format!(" done by {rank}"));
        j.values.push(rank as f64);
        c.send(0, &j).map_err(e)?;
    }
    // 2. The root broadcasts a value it read from a heap.
    let want = Table {
        title: "ranks".into(),
        rows: (0..5).map(|i| (i, format!("row {i}"))).collect(),
    };
    let mine = if c.is_root() {
        let pool = mc::Pool::create(16 << 20).map_err(|e| e.to_string())?;
        let heap = mc::Heap::create(&pool, &want).map_err(|e| e.to_string())?;
        Some(heap.copy().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let got: Table = c.broadcast(0, mine.as_ref()).map_err(e)?;
    if got != want {
        return Err(format!("broadcast: {got:?}"));
    }
    // 3. Gather every rank's (rank, node).
    let all = c.gather(0, &(rank, c.node_name().to_owned())).map_err(e)?;
    if let Some(all) = all {
        let ranks: Vec<usize> = all.iter().map(|(r, _)| *r).collect();
        if ranks != (0..size).collect::<Vec<_>>() || all.iter().any(|(_, n)| n.is_empty()) {
            return Err(format!("gather: {all:?}"));
        }
    }
    // 4. Each rank's mc workers compute squares; the sums are reduced.
    let pids: Vec<_> = (0..3u64)
        .map(|i| square::start(rank as u64 * 10 + i))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut local = 0u64;
    for p in pids {
        local += square::join(p).map_err(|e| e.to_string())?;
    }
    let total = c.reduce(0, &local, |a, b| a + b).map_err(e)?;
    if let Some(total) = total {
        let want: u64 = (0..size as u64)
            .flat_map(|r| (0..3).map(move |i| (r * 10 + i) * (r * 10 + i)))
            .sum();
        if total != want {
            return Err(format!("reduce: {total}, not {want}"));
        }
    }
    // 5. A message of another type is refused, naming its sender.
    if size >= 2 {
        if rank == 1 {
            c.send(0, &"not a number".to_string()).map_err(e)?;
        } else if rank == 0 {
            match c.recv::<u64>(1) {
                Err(ClusterError::BadMessage { from: 1, .. }) => {}
                other => return Err(format!("a wrong type was taken: {other:?}")),
            }
        }
    }
    // 6. N-queens, N = 4..12, dealt to the ranks task by task (a task is
    //    the first queen's column), each rank's batch counted by its mc
    //    workers.
    for (n, &want) in A000170.iter().enumerate().skip(4) {
        let tasks = c.is_root().then(|| (0..n).collect::<Vec<usize>>());
        let counts = c
            .deal(tasks, 2, |cols| {
                let pids: Vec<_> = cols
                    .iter()
                    .map(|&col| queens_from::start((n, col)).expect("start"))
                    .collect();
                pids.into_iter()
                    .map(|p| queens_from::join(p).expect("join"))
                    .collect::<Vec<u64>>()
            })
            .map_err(e)?;
        if let Some(counts) = counts {
            let total: u64 = counts.iter().sum();
            if counts.len() != n || total != want {
                return Err(format!("{n}-queens: {total} from {} tasks", counts.len()));
            }
        }
    }
    // 7. A message with flipped bytes (sent raw, past the framing) is an
    //    error, not a crash.
    if size >= 2 {
        use mpi::traits::{Communicator, Destination};
        if rank == 1 {
            let mut bytes =
                postcard::to_allocvec(&(1u32, "framed".to_string())).map_err(|e| e.to_string())?;
            bytes.iter_mut().for_each(|b| *b ^= 0x5a);
            c.world()
                .process_at_rank(0)
                .send_with_tag(&bytes[..], mc_cluster::TAG_USER);
        } else if rank == 0
            && !matches!(
                c.recv::<(u32, String)>(1),
                Err(ClusterError::BadMessage { from: 1, .. })
            )
        {
            return Err("a message with flipped bytes was taken".into());
        }
    }
    // 8. Shared values in their own layout: a type without serde to every
    //    rank and back, changed; a value of a heap; another type refused on
    //    both sides.
    if c.is_root() {
        for r in 1..size {
            c.send_shared(r, &plan(r as u32 + 2)).map_err(e)?;
        }
        for r in 1..size {
            let back: Plan = c.recv_shared(r).map_err(e)?;
            let mut want = plan(r as u32 + 2);
            want.name.push_str(" back");
            if back != want {
                return Err(format!("shared round trip with rank {r}: {back:?}"));
            }
        }
        let pool = mc::Pool::create(16 << 20).map_err(|e| e.to_string())?;
        let heap = mc::Heap::create(&pool, &want).map_err(|e| e.to_string())?;
        let from_heap = heap.copy().map_err(|e| e.to_string())?;
        for r in 1..size {
            c.send_shared(r, &from_heap).map_err(e)?;
        }
        if size >= 2
            && !matches!(
                c.recv_shared::<Table>(1),
                Err(ClusterError::BadMessage { from: 1, .. })
            )
        {
            return Err("a shared value of another type was taken".into());
        }
    } else {
        let mut p: Plan = c.recv_shared(0).map_err(e)?;
        if p != plan(rank as u32 + 2) {
            return Err(format!("rank {rank} got {p:?}"));
        }
        p.name.push_str(" back");
        c.send_shared(0, &p).map_err(e)?;
        let t: Table = c.recv_shared(0).map_err(e)?;
        if t != want {
            return Err(format!("rank {rank}: a heap's value came as {t:?}"));
        }
        if rank == 1
            && !matches!(
                c.send_shared(0, &plan(1)),
                Err(ClusterError::BadMessage { .. })
            )
        {
            return Err("a shared value was sent to a rank expecting another type".into());
        }
    }
    // 9. Values with large strings (sent in parts, the strings from the
    //    value's own memory): to every rank and back, all at once to the
    //    root (`recv_any` takes each value whole from one rank); a sender
    //    that fails halfway fails its receiver too.
    if c.is_root() {
        for r in 1..size {
            c.send(r, &bulk(r)).map_err(e)?;
        }
        let mut seen = vec![false; size];
        for _ in 1..size {
            let (r, back): (usize, Bulk) = c.recv_any().map_err(e)?;
            let mut want = bulk(r);
            want.text.push('!');
            if back != want || std::mem::replace(&mut seen[r], true) {
                return Err(format!("bulk round trip with rank {r}"));
            }
        }
        // Every bulk value is in before the failing sends start.
        c.barrier();
        for r in 1..size {
            match c.recv::<(serde_bytes::ByteBuf, u32)>(r) {
                Err(ClusterError::BadMessage { from, reason })
                    if from == r && reason.contains("could not encode") => {}
                other => return Err(format!("a failed send from {r} came as {other:?}")),
            }
        }
    } else {
        let mut b: Bulk = c.recv(0).map_err(e)?;
        if b != bulk(rank) {
            return Err(format!("rank {rank}: a bulk value came changed"));
        }
        b.text.push('!');
        c.send(0, &b).map_err(e)?;
        c.barrier();
        if !matches!(c.send(0, &FailsHalfway), Err(ClusterError::Encode(_))) {
            return Err("a value that cannot be encoded was sent".into());
        }
        // A value whose Serialize impl sends a message itself: refused,
        // and nothing goes out.
        let nested = SendsWhileSent(c, std::cell::RefCell::new(String::new()));
        let outer = c.send(0, &nested);
        let inner = nested.1.borrow().clone();
        if !matches!(outer, Err(ClusterError::Encode(_)))
            || !inner.contains("sent a message itself")
        {
            return Err(format!("a send inside a send: {outer:?}, inside {inner:?}"));
        }
    }
    // Bad ranks are errors.
    if !matches!(c.send(size, &1u8), Err(ClusterError::NoSuchRank { .. })) {
        return Err("a send to a rank past the end".into());
    }
    c.barrier();
    Ok(())
}

#[mc::process]
fn sleeper(_: ()) -> u64 {
    std::thread::sleep(Duration::from_secs(60));
    0
}

/// A job in which rank 1 dies while rank 0 waits for its message: killed
/// outright (SIGKILL, with mc workers running), or aborting because its
/// worker was killed. The job must end, with an error.
fn dying_rank_main(how: &str) {
    let r = mc_cluster::run(|c| {
        if c.rank() == 1 && how == "worker" {
            let p = sleeper::start(()).expect("start");
            std::thread::sleep(Duration::from_millis(100));
            mc::processes::kill(p.id(), mc::Signal::KILL).expect("kill");
            match sleeper::join(p) {
                Ok(_) => c.abort("the worker was not killed"),
                Err(e) => c.abort(&format!("a worker failed: {e}")),
            }
        }
        if c.rank() == 1 {
            let _workers: Vec<_> = (0..2).map(|i| square::start(i).expect("start")).collect();
            std::thread::sleep(Duration::from_millis(200));
            // A signal to ourselves, through kill(1).
            let _ = Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(60));
        }
        // Never answered.
        let r: Result<u64, ClusterError> = c.recv(1);
        println!("rank {}: recv returned {r:?}", c.rank());
    });
    println!("run returned {r:?}");
    std::process::exit(1);
}

fn rank_main() {
    let r = mc_cluster::run(|c| {
        let r = check(c);
        match &r {
            Ok(()) => println!(
                "rank {}/{} on {}: ok ({:?})",
                c.rank(),
                c.size(),
                c.node_name(),
                c.threading()
            ),
            Err(e) => println!("rank {}/{}: FAILED: {e}", c.rank(), c.size()),
        }
        r
    });
    match r {
        Ok(Ok(())) => std::process::exit(0),
        Ok(Err(_)) => std::process::exit(1),
        Err(e) => {
            println!("mc_cluster::run failed: {e}");
            std::process::exit(1)
        }
    }
}

/// Runs `cmd`, killed after 120 s; its status and output.
fn launch(mut cmd: Command) -> Result<String, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() > deadline {
            // SIGTERM first: mpirun then ends its ranks and cleans up.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let grace = Instant::now() + Duration::from_secs(10);
            while Instant::now() < grace && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err("still running after 120 s: killed".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    if !status.success() {
        return Err(format!("{status}\nstdout:\n{out}\nstderr:\n{err}"));
    }
    Ok(out)
}

fn main() {
    if let Ok(how) = std::env::var("MC_CLUSTER_DIE") {
        dying_rank_main(&how);
    }
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some()
        || std::env::var_os("MC_CLUSTER_RANK").is_some()
    {
        rank_main();
    }
    let exe = std::env::current_exe().expect("the test's path");
    let mut failed = 0;
    // A job of one rank: started without mpirun.
    let mut alone = Command::new(&exe);
    alone.env("MC_CLUSTER_RANK", "1");
    let runs: Vec<(String, Command, usize)> = std::iter::once(("alone".to_string(), alone, 1))
        .chain([2usize, 3].into_iter().map(|np| {
            let mut c = Command::new("mpirun");
            c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
                .arg(np.to_string())
                .arg(&exe);
            (format!("mpirun -np {np}"), c, np)
        }))
        .collect();
    for (name, cmd, np) in runs {
        let t = Instant::now();
        match launch(cmd) {
            Ok(out) => {
                let oks = (0..np)
                    .filter(|r| out.contains(&format!("rank {r}/{np} on ")))
                    .count();
                if oks == np {
                    println!("ok     {name}: {np} ranks checked ({:.2?})", t.elapsed());
                } else {
                    failed += 1;
                    println!("FAILED {name}: {oks} of {np} ranks reported ok:\n{out}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAILED {name}: {e}");
            }
        }
    }
    // A rank killed in the middle of the job: the job ends within a bounded
    // time with an error, the surviving rank says why, and no rank leaves
    // an mc segment behind.
    let stale = || {
        mc::inspect::list_segments()
            .map(|v| {
                v.iter()
                    .filter(|s| s.header.as_ref().is_some_and(|h| !h.owner_alive()))
                    .count()
            })
            .unwrap_or(0)
    };
    for how in ["rank", "worker"] {
        let stale_before = stale();
        let t = Instant::now();
        let mut dying = Command::new("mpirun");
        dying
            .args([
                "--allow-run-as-root",
                "--oversubscribe",
                "-x",
                "MC_CLUSTER_DIE",
                "-np",
                "2",
            ])
            .arg(&exe)
            .env("MC_CLUSTER_DIE", how);
        let what = if how == "rank" {
            "a rank killed outright"
        } else {
            "a rank whose worker was killed"
        };
        match launch(dying) {
            Ok(out) => {
                failed += 1;
                println!("FAILED {what}: the job succeeded:\n{out}");
            }
            Err(e) => {
                let took = t.elapsed();
                std::thread::sleep(Duration::from_millis(500));
                let left = stale().saturating_sub(stale_before);
                let said = e.contains("mc-cluster: rank 0: the job was ended")
                    && if how == "rank" {
                        e.contains("rank 1")
                    } else {
                        e.contains("mc-cluster: rank 1: a worker failed") && e.contains("SIGKILL")
                    };
                if took < Duration::from_secs(10) && said && left == 0 {
                    println!(
                        "ok     {what}: the job ended with an error in {took:.2?}, naming the \
                         rank; no segment left"
                    );
                } else {
                    failed += 1;
                    println!("FAILED {what}: {took:.2?}, {left} segments left, output:\n{e}");
                }
            }
        }
    }
    println!("{} passed, {failed} failed", 5 - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
