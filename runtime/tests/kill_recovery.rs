//! kill -9 at random moments, 100 trials per case: a process killed while
//! it collects or allocates leaves a heap that stays readable and gives
//! every page back when destroyed; a process killed inside a modification
//! leaves a poisoned heap that `recover` checks and reopens (or refuses
//! with a clear error), never a crash.
//!
//! A plain program (`harness = false`): forking from the multi-threaded
//! test harness is unsound. `KILL_TRIALS` sets the number of trials.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{fork_child, kill, run_scenarios, shared, wait_child, Rng};
use mc::heap::Poison;
use mc::{Heap, HeapError, HeapOptions, Pool};

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn trials() -> usize {
    common::kill_trials(100)
}

fn words(n: usize, len: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:0len$}")).collect()
}

/// Forks a child that runs `work` in a loop (counting rounds in `rounds`),
/// waits until it has done `warm` rounds, lets it run a random moment
/// more, and kills it with SIGKILL.
fn kill_during(
    rng: &mut Rng,
    rounds: &'static AtomicU64,
    warm: u64,
    work: impl Fn(),
) -> Result<(), String> {
    rounds.store(0, Ordering::SeqCst);
    let pid = fork_child(|| loop {
        work();
        rounds.fetch_add(1, Ordering::SeqCst);
    });
    let start = Instant::now();
    while rounds.load(Ordering::SeqCst) < warm {
        if start.elapsed() > Duration::from_secs(30) {
            kill(pid);
            let _ = wait_child(pid, Duration::from_secs(5));
            return Err("the child made no progress".into());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    std::thread::sleep(Duration::from_micros(rng.next_u64() % 3000));
    kill(pid);
    let status = wait_child(pid, Duration::from_secs(10))?;
    if status != common::Ended::Signaled(9) {
        return Err(format!("the child ended otherwise ({status:?})"));
    }
    Ok(())
}

/// Item: a process killed while it collects (or copies a value in with
/// `assign`) leaves the heap readable, with every committed value.
fn killed_collector_leaves_the_heap_readable() -> Result<String, String> {
    let pool = Pool::create(256 << 20).map_err(err)?;
    let value = words(3000, 24);
    let heap = Heap::create(&pool, &value).map_err(err)?;
    let rounds = shared(AtomicU64::new(0));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut deaths = 0;
    for trial in 0..trials() {
        let h = heap.clone();
        let v = value.clone();
        kill_during(&mut rng, rounds, 1, move || {
            h.gc().expect("gc");
            h.assign(&v).expect("assign");
        })?;
        // Readable right away, whatever the kill interrupted.
        let got = heap
            .copy_timeout(Duration::from_secs(10))
            .map_err(|e| format!("trial {trial}: {e}"))?;
        if got != value {
            return Err(format!("trial {trial}: the value changed"));
        }
        if heap.poisoned().map_err(err)?.is_some() {
            return Err(format!("trial {trial}: poisoned by a collection"));
        }
        let stats = heap.stats().map_err(err)?;
        deaths = stats.owner_deaths;
        // And usable: the collector works again.
        heap.gc_timeout(Duration::from_secs(10))
            .map_err(|e| format!("trial {trial}: gc: {e}"))?;
    }
    heap.validate().map_err(err)?;
    Ok(format!(
        "{} kills, {deaths} inside the heap's lock, 0 unreadable",
        trials()
    ))
}

/// Item: pages a killed process took for a heap and never linked (or
/// unlinked and never gave back) go back to the pool when the heap is
/// destroyed.
fn killed_allocator_leaks_no_pages() -> Result<String, String> {
    let pool = Pool::create(64 << 20).map_err(err)?;
    // What a destroyed heap keeps: its header page(s), as a tombstone.
    let tombstone = {
        let h = Heap::create(&pool, &0u64).map_err(err)?;
        h.destroy().map_err(err)?;
        pool.stats().used
    };
    let rounds = shared(AtomicU64::new(0));
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut inside = 0;
    for trial in 0..trials() {
        let opts = HeapOptions::new().chunk_size(8 * 1024);
        let heap = Heap::create_with(&pool, &Vec::<String>::new(), opts).map_err(err)?;
        let h = heap.clone();
        let values: Vec<Vec<String>> = [1usize, 8, 3, 12].iter().map(|&n| words(n, 3000)).collect();
        kill_during(&mut rng, rounds, 1, move || {
            // Big values in small chunks: a new chunk every few values,
            // and the collector gives them back.
            for v in &values {
                h.assign(v).expect("assign");
            }
            h.gc().expect("gc");
        })?;
        let v = heap
            .copy_timeout(Duration::from_secs(10))
            .map_err(|e| format!("trial {trial}: {e}"))?;
        if v.iter().any(|w| w.len() != 3000) {
            return Err(format!("trial {trial}: a damaged value"));
        }
        inside += heap.stats().map_err(err)?.owner_deaths;
        heap.destroy()
            .map_err(|e| format!("trial {trial}: destroy: {e}"))?;
        let used = pool.stats().used;
        let expected = tombstone * (trial + 2);
        if used != expected {
            return Err(format!(
                "trial {trial}: {used} bytes of the pool used after destroy, expected {expected}"
            ));
        }
    }
    Ok(format!(
        "{} kills, {inside} inside the heap's lock, no page lost",
        trials()
    ))
}

/// Item: a process killed inside a modification poisons the heap;
/// `recover` validates it and gives the values back as they were left, or
/// says that they are damaged; nothing crashes and the heap can always be
/// destroyed.
fn killed_modification_is_recovered() -> Result<String, String> {
    let pool = Pool::create(256 << 20).map_err(err)?;
    let rounds = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (mut poisoned, mut recovered, mut corrupt) = (0, 0, 0);
    for trial in 0..trials() {
        let heap = Heap::create(&pool, &words(100, 16)).map_err(err)?;
        let h = heap.clone();
        kill_during(&mut rng, rounds, 1, move || {
            h.modify(|m, mut v| {
                for i in 0..200 {
                    m.push(v.as_mut(), &format!("{i:016}")).expect("push");
                }
                m.truncate(v, 100);
            })
            .expect("modify");
        })?;
        match heap.read_timeout(Duration::from_secs(10)) {
            Ok(g) => {
                if g.len() < 100 {
                    return Err(format!("trial {trial}: {} words", g.len()));
                }
            }
            Err(HeapError::Poisoned) => {
                poisoned += 1;
                if heap.poisoned().map_err(err)? != Some(Poison::Died) {
                    return Err(format!("trial {trial}: poisoned, but not by a death"));
                }
                match heap.recover() {
                    Ok(Some(Poison::Died)) => {
                        recovered += 1;
                        let v = heap.copy().map_err(err)?;
                        if v.len() < 100 || v.iter().any(|w| w.len() != 16) {
                            return Err(format!("trial {trial}: recovered words {v:?}"));
                        }
                        heap.validate().map_err(err)?;
                        // Usable again.
                        heap.modify(|m, v| m.push(v, &"again".to_string()))
                            .map_err(err)?
                            .map_err(err)?;
                    }
                    Err(HeapError::Corrupt(_)) => corrupt += 1,
                    other => return Err(format!("trial {trial}: recover: {other:?}")),
                }
            }
            Err(e) => return Err(format!("trial {trial}: read: {e}")),
        }
        heap.destroy()
            .map_err(|e| format!("trial {trial}: destroy: {e}"))?;
    }
    Ok(format!(
        "{} kills: {poisoned} inside a modification, {recovered} recovered, {corrupt} refused \
         as damaged, 0 crashes",
        trials()
    ))
}

/// Element `i` of a replacement round: `n` and two strings of
/// `format!("{i:02}-{n:02}-")` and `n` x's (several lengths, so that a
/// half-written element has pointers, lengths and numbers that do not
/// belong together).
type Tagged = (String, u64, String);

fn tagged(i: usize, n: usize) -> Tagged {
    let s = format!("{i:02}-{n:02}-{}", "x".repeat(n));
    (s.clone(), n as u64, s)
}

/// Whether `t` is a whole `tagged(i, _)`.
fn whole(i: usize, t: &Tagged) -> bool {
    let n = t.1 as usize;
    t.0 == t.2 && t.0.len() == 6 + n && t.0 == tagged(i, n).0
}

/// The heap's value after a kill: copied at once, or, when the kill left it
/// poisoned (counted in `poisoned`), after `recover`, which must reopen it
/// as poisoned by a death.
fn copy_recovered<T: mc::Shared>(heap: &Heap<T>, poisoned: &mut usize) -> Result<T, String> {
    match heap.copy_timeout(Duration::from_secs(10)) {
        Ok(v) => Ok(v),
        Err(HeapError::Poisoned) => {
            *poisoned += 1;
            match heap.recover() {
                Ok(Some(Poison::Died)) => heap.copy().map_err(err),
                other => Err(format!("recover: {other:?}")),
            }
        }
        Err(e) => Err(err(e)),
    }
}

/// Kills a process, `trials()` times, while it replaces the `n` values of
/// a heap, round after round (`value(i, round)`: element `i`'s value in
/// round 0, the first, to 4), and checks that after `recover` each is
/// `whole` (one round's value, never parts of two) and the heap valid.
fn replacement_kills<T>(
    n: usize,
    seed: u64,
    value: fn(usize, usize) -> T,
    whole: fn(usize, &T) -> bool,
) -> Result<usize, String>
where
    T: mc::Shared + std::fmt::Debug + Send + 'static,
{
    let pool = Pool::create(64 << 20).map_err(err)?;
    let rounds = shared(AtomicU64::new(0));
    let mut rng = Rng(seed);
    let mut poisoned = 0;
    for trial in 0..trials() {
        let first: Vec<T> = (0..n).map(|i| value(i, 0)).collect();
        let heap = Heap::create(&pool, &first).map_err(err)?;
        let h = heap.clone();
        // Every round's values are made before the modification, so that
        // the child spends most of its time in replacements.
        let sets: Vec<Vec<T>> = (1..=4)
            .map(|r| (0..n).map(|i| value(i, r)).collect())
            .collect();
        kill_during(&mut rng, rounds, 1, move || {
            for set in &sets {
                h.modify(|m, mut v| {
                    for (i, t) in set.iter().enumerate() {
                        let place = v.as_mut().get_pin(i).expect("element");
                        m.set(place, t).expect("set");
                    }
                })
                .expect("modify");
            }
        })?;
        let v = copy_recovered(&heap, &mut poisoned).map_err(|e| format!("trial {trial}: {e}"))?;
        if let Some((i, t)) = v.iter().enumerate().find(|(i, t)| !whole(*i, t)) {
            let t = format!("{t:?}");
            return Err(format!("trial {trial}: element {i} is {:.200}", t));
        }
        heap.validate().map_err(err)?;
        heap.destroy()
            .map_err(|e| format!("trial {trial}: destroy: {e}"))?;
    }
    Ok(poisoned)
}

/// Kills a process, `trials()` times, while it exchanges the values of a
/// heap (`first`) pairwise in one modification, and checks that after
/// `recover` every value is there once (exchanged or not, never one value
/// in two places, which would also make `recover` refuse the heap).
fn swap_kills<T>(first: Vec<T>, seed: u64) -> Result<usize, String>
where
    T: mc::Shared + Clone + Ord + Send + 'static,
{
    let n = first.len();
    let pool = Pool::create(64 << 20).map_err(err)?;
    let rounds = shared(AtomicU64::new(0));
    let mut rng = Rng(seed);
    let mut poisoned = 0;
    let mut want = first.clone();
    want.sort();
    for trial in 0..trials() {
        let heap = Heap::create(&pool, &first).map_err(err)?;
        let h = heap.clone();
        kill_during(&mut rng, rounds, 1, move || {
            h.modify(|m, v| {
                let mut places: Vec<_> = v.iter_pin().collect();
                for i in 0..n {
                    let j = (i * 7 + 3) % n;
                    if i != j {
                        let (lo, hi) = places.split_at_mut(i.max(j));
                        m.swap(lo[i.min(j)].as_mut(), hi[0].as_mut()).expect("swap");
                    }
                }
            })
            .expect("modify");
        })?;
        let mut v =
            copy_recovered(&heap, &mut poisoned).map_err(|e| format!("trial {trial}: {e}"))?;
        v.sort();
        if v != want {
            return Err(format!(
                "trial {trial}: the values are not the ones put in, once each"
            ));
        }
        heap.validate().map_err(err)?;
        heap.destroy()
            .map_err(|e| format!("trial {trial}: destroy: {e}"))?;
    }
    Ok(poisoned)
}

/// Item: a process killed while it replaces values of several words in
/// place (`Mutator::set` of a tuple of two strings and a number) leaves,
/// after `recover`, every value whole: the old one or the new one, never
/// parts of each (the heap's journal redoes an interrupted replacement),
/// and never a heap refused as damaged.
fn killed_replacement_is_whole_after_recover() -> Result<String, String> {
    let value = |i: usize, r: usize| match r {
        0 => tagged(i, 1),
        r => tagged(i, ((r - 1) * 13 + i * 7) % 40),
    };
    let poisoned = replacement_kills(32, 0x5851_f42d_4c95_7f2d, value, whole)?;
    Ok(format!(
        "{} kills: {poisoned} inside a modification, every value whole after recovery",
        trials()
    ))
}

/// A value larger than the heap's journal: every word says which element
/// and which round wrote it.
type Large = [u64; 512];

fn large(i: usize, round: usize) -> Large {
    [(i * 1000 + round) as u64; 512]
}

/// Item: as [`killed_replacement_is_whole_after_recover`], for values
/// larger than the journal (4 KiB each), which a replacement copies into a
/// block of the heap first: after `recover` every value is one round's
/// whole.
fn killed_large_replacement_is_whole_after_recover() -> Result<String, String> {
    let whole = |i: usize, x: &Large| {
        let round = x[0] as usize % 1000;
        round <= 4 && x == &large(i, round)
    };
    let poisoned = replacement_kills(8, 0x1d8e_4e27_c47d_124f, large, whole)?;
    Ok(format!(
        "{} kills: {poisoned} inside a modification, every 4 KiB value whole after recovery",
        trials()
    ))
}

/// Item: a process killed while it exchanges values of several words in
/// place (`Mutator::swap`) leaves, after `recover`, every value exactly
/// once.
fn killed_swap_keeps_every_value_once() -> Result<String, String> {
    let first = (0..32).map(|i| tagged(i, i % 40)).collect();
    let poisoned = swap_kills::<Tagged>(first, 0x2f69_3c1e_77a1_0b5d)?;
    Ok(format!(
        "{} kills: {poisoned} inside a modification, every value there once after recovery",
        trials()
    ))
}

/// Item: as [`killed_swap_keeps_every_value_once`], for values larger
/// than half the journal (4 KiB each), which an exchange copies into a
/// block of the heap first.
fn killed_large_swap_keeps_every_value_once() -> Result<String, String> {
    let first = (0..8).map(|i| large(i, 0)).collect();
    let poisoned = swap_kills::<Large>(first, 0x7a3c_59e1_0f2b_d461)?;
    Ok(format!(
        "{} kills: {poisoned} inside a modification, every 4 KiB value there once after recovery",
        trials()
    ))
}

/// A modification that panics poisons the heap, as a panic under a
/// `std::sync::Mutex` does; `recover` reopens it as it was left.
fn panicking_modification_poisons() -> Result<String, String> {
    let pool = Pool::create(16 << 20).map_err(err)?;
    let heap = Heap::create(&pool, &words(3, 4)).map_err(err)?;
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        heap.modify(|m, mut v| {
            m.push(v.as_mut(), &"half".to_string()).expect("push");
            panic!("half-way");
        })
    }));
    let _ = std::panic::take_hook();
    if r.is_ok() {
        return Err("the modification did not panic".into());
    }
    let e = heap.read().err().ok_or("readers were not told")?;
    if !matches!(e, HeapError::Poisoned) || !e.to_string().contains("recover") {
        return Err(format!("read: {e}"));
    }
    if heap.poisoned().map_err(err)? != Some(Poison::Panicked) {
        return Err("not poisoned by a panic".into());
    }
    if heap.recover().map_err(err)? != Some(Poison::Panicked) {
        return Err("recover".into());
    }
    let v = heap.copy().map_err(err)?;
    if v.len() != 4 || v[3] != "half" {
        return Err(format!("after recover: {v:?}"));
    }
    if heap.recover().map_err(err)?.is_some() {
        return Err("a second recover found something".into());
    }
    Ok("readers get Poisoned; recover gives the value as the panic left it".into())
}

/// A process stopped (SIGSTOP) inside a modification holds the heap's
/// lock: the `_timeout` accesses give up with `Timeout` instead of hanging.
fn stopped_holder_gives_timeouts() -> Result<String, String> {
    let pool = Pool::create(16 << 20).map_err(err)?;
    let heap = Heap::create(&pool, &words(3, 4)).map_err(err)?;
    let entered = shared(AtomicU64::new(0));
    let h = heap.clone();
    let pid = fork_child(move || {
        let _ = h.modify(|_, _| {
            entered.store(1, Ordering::SeqCst);
            // SAFETY: stops this child until the parent kills it.
            unsafe { libc::raise(libc::SIGSTOP) };
        });
        0
    });
    let start = Instant::now();
    while entered.load(Ordering::SeqCst) == 0 {
        if start.elapsed() > Duration::from_secs(30) {
            kill(pid);
            let _ = wait_child(pid, Duration::from_secs(5));
            return Err("the child never entered the modification".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let short = Duration::from_millis(100);
    let t = Instant::now();
    let results = [
        heap.read_timeout(short).err(),
        heap.copy_timeout(short).err(),
        heap.pin_timeout(short).err(),
        heap.modify_timeout(short, |_, _| ()).err(),
        heap.assign_timeout(&words(1, 1), short).err(),
        heap.gc_timeout(short).err(),
    ];
    let waited = t.elapsed();
    kill(pid);
    wait_child(pid, Duration::from_secs(10))?;
    if let Some(bad) = results
        .iter()
        .find(|r| !matches!(r, Some(HeapError::Timeout)))
    {
        return Err(format!("expected Timeout, got {bad:?}"));
    }
    if !results[0]
        .as_ref()
        .is_some_and(|e| e.to_string().contains("timed out"))
    {
        return Err("the error does not say what happened".into());
    }
    // The holder died inside the modification: poisoned, recoverable.
    let r = heap.read_timeout(Duration::from_secs(10)).err();
    if !matches!(r, Some(HeapError::Poisoned)) {
        return Err(format!("after the kill: {r:?}"));
    }
    heap.recover().map_err(err)?;
    if heap.copy().map_err(err)? != words(3, 4) {
        return Err("value changed".into());
    }
    Ok(format!(
        "6 accesses timed out in {waited:?} (100 ms each); recovered after the kill"
    ))
}

fn main() {
    // A hung run ends the test (SIGALRM).
    common::watchdog(600);
    run_scenarios(&[
        (
            "stopped_holder_gives_timeouts",
            stopped_holder_gives_timeouts,
        ),
        (
            "panicking_modification_poisons",
            panicking_modification_poisons,
        ),
        (
            "killed_collector_leaves_the_heap_readable",
            killed_collector_leaves_the_heap_readable,
        ),
        (
            "killed_allocator_leaks_no_pages",
            killed_allocator_leaks_no_pages,
        ),
        (
            "killed_modification_is_recovered",
            killed_modification_is_recovered,
        ),
        (
            "killed_replacement_is_whole_after_recover",
            killed_replacement_is_whole_after_recover,
        ),
        (
            "killed_swap_keeps_every_value_once",
            killed_swap_keeps_every_value_once,
        ),
        (
            "killed_large_replacement_is_whole_after_recover",
            killed_large_replacement_is_whole_after_recover,
        ),
        (
            "killed_large_swap_keeps_every_value_once",
            killed_large_swap_keeps_every_value_once,
        ),
    ]);
}
