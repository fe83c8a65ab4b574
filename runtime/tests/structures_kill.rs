//! kill -9 a process in the middle of a structure's operation, 100 trials
//! per case: an `SHashtbl` insert, an `SHashtbl` insert that grows the
//! table (buckets moving from the old array to the new one), an
//! `SHashtbl` removal, an `SQueue` push, an `SBuffer` append or deletion,
//! an `SArray` growth or replacement, and a `PlainMap` insertion,
//! replacement, removal or clear. After each kill the structure
//! is either whole, or its error names it as poisoned and `recover`
//! (`SHashtbl::recover`, `SQueue::recover`, `SBuffer::recover`: each also
//! finishes or undoes; `Heap::recover` for an array
//! the change in flight) reopens it; then every operation
//! that returned `Ok` before the kill has its effect, the one in flight
//! has it whole or not at all (a queue batch: a prefix of it), and the
//! structure takes new work. A `PlainMap` is never poisoned: the next
//! holder of its writers' lock repairs it.
//!
//! A plain program (`harness = false`): forking from the multi-threaded
//! test harness is unsound. `KILL_TRIALS` sets the number of trials.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ensure, fork_child, kill, run_scenarios, shared, wait_child, Rng};
use mc::heap::Poison;
use mc::structures::StructureError;
use mc::{HeapError, PlainMap, Pool, SArray, SBuffer, SHashtbl, SQueue, SShardedHashtbl};

const TIMEOUT: Duration = Duration::from_secs(10);

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn trials() -> usize {
    common::kill_trials(100)
}

/// The value bound to key `k` (not `k` itself, so that a value written to
/// the wrong key shows).
fn value(k: u64) -> u64 {
    k.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// Forks `work`, which counts what it has committed in `done` and never
/// returns; waits until it has committed `warm`, lets it run a random
/// moment more, and kills it with SIGKILL. Returns the final count.
fn kill_while(
    rng: &mut Rng,
    done: &'static AtomicU64,
    warm: u64,
    work: impl FnOnce() -> i32,
) -> Result<u64, String> {
    done.store(0, Ordering::SeqCst);
    let pid = fork_child(work);
    let start = Instant::now();
    while done.load(Ordering::SeqCst) < warm {
        if start.elapsed() > Duration::from_secs(30) {
            kill(pid);
            let _ = wait_child(pid, TIMEOUT);
            return Err("the child made no progress".into());
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    std::thread::sleep(Duration::from_micros(rng.below(3000) as u64));
    kill(pid);
    let ended = wait_child(pid, TIMEOUT)?;
    ensure(ended == common::Ended::Signaled(9), || {
        format!("the child ended as {ended:?}, not killed")
    })?;
    Ok(done.load(Ordering::SeqCst))
}

/// Runs `op(k)` for `k` in `0..n`, counting each one done in `done`, then
/// waits to be killed.
fn count_then_wait(done: &AtomicU64, n: u64, op: impl Fn(u64)) -> ! {
    for k in 0..n {
        op(k);
        done.store(k + 1, Ordering::SeqCst);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// What a kill left: the structure whole, or poisoned and recovered.
#[derive(Default)]
struct Outcome {
    whole: usize,
    recovered: usize,
}

impl Outcome {
    /// The scenario's line: how the kills ended, then `what` held.
    fn summary(&self, what: &str) -> String {
        format!(
            "{} kills: {} left the structure whole, {} poisoned it and were recovered; {what}",
            trials(),
            self.whole,
            self.recovered
        )
    }

    /// Probes with `probe` (a read of the structure): a poisoned
    /// structure must say so, and `recover` must reopen it as poisoned by
    /// a death.
    fn settle<E: std::fmt::Debug>(
        &mut self,
        probe: mc::structures::Result<usize>,
        recover: impl FnOnce() -> Result<Option<Poison>, E>,
    ) -> Result<(), String> {
        match probe {
            Ok(_) => {
                self.whole += 1;
                Ok(())
            }
            Err(StructureError::Heap(HeapError::Poisoned)) => {
                match recover() {
                    Ok(Some(Poison::Died)) => {}
                    other => return Err(format!("poisoned, then recover gave {other:?}")),
                }
                self.recovered += 1;
                Ok(())
            }
            Err(e) => Err(format!("after the kill: {e}")),
        }
    }
}

/// Kills a process adding keys `0, 1, ...` to `t` and checks the table
/// afterwards. Returns the number of bindings committed before the kill.
fn insert_trial(
    rng: &mut Rng,
    done: &'static AtomicU64,
    t: &SHashtbl<u64, u64>,
    outcome: &mut Outcome,
) -> Result<u64, String> {
    let tc = t.clone();
    let committed = kill_while(rng, done, 200, move || {
        count_then_wait(done, 200_000, |k| {
            tc.add(&k, &value(k)).expect("add");
        })
    })?;
    outcome.settle(t.len(), || t.recover())?;
    // Every committed binding is there; the one in flight whole or not at
    // all (a binding is written whole before the chain counts it).
    let len = t.len().map_err(err)? as u64;
    let in_flight = t.find_copy(&committed).map_err(err)?;
    let expected_len = committed + u64::from(in_flight.is_some());
    ensure(len == expected_len, || {
        format!("{len} bindings, {committed} committed, in flight {in_flight:?}")
    })?;
    ensure(
        in_flight.is_none() || in_flight == Some(value(committed)),
        || format!("key {committed} in flight bound to {in_flight:?}"),
    )?;
    for k in 0..committed {
        let got = t.find_copy(&k).map_err(err)?;
        ensure(got == Some(value(k)), || {
            format!("committed key {k} of {committed}: {got:?}")
        })?;
    }
    t.heap().validate().map_err(err)?;
    // The table takes new work.
    t.replace(&u64::MAX, &7).map_err(err)?;
    ensure(t.find_copy(&u64::MAX).map_err(err)? == Some(7), || {
        "a new binding is not found".into()
    })?;
    ensure(t.remove(&u64::MAX).map_err(err)?, || {
        "a new binding is not removed".into()
    })?;
    Ok(committed)
}

/// Inserts into a table with room for all of them: no growth.
fn hashtbl_killed_in_insert() -> Result<String, String> {
    let pool = Pool::create(256 << 20).map_err(err)?;
    let done = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1157_2024_5eed_0001);
    let mut outcome = Outcome::default();
    let mut total = 0;
    for trial in 0..trials() {
        let t = SHashtbl::<u64, u64>::with_buckets(&pool, &(), 1 << 17).map_err(err)?;
        let before = t.buckets().map_err(err)?;
        total += insert_trial(&mut rng, done, &t, &mut outcome)
            .map_err(|e| format!("trial {trial}: {e}"))?;
        ensure(t.buckets().map_err(err)? == before, || {
            format!("trial {trial}: the table grew")
        })?;
        t.destroy().map_err(err)?;
    }
    Ok(outcome.summary(&format!("{total} bindings committed, none lost")))
}

/// Inserts into a table of one bucket, which grows again and again: most
/// kills land while bindings move from the old buckets to the new.
fn hashtbl_killed_in_resize() -> Result<String, String> {
    let pool = Pool::create(256 << 20).map_err(err)?;
    let done = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1157_2024_5eed_0002);
    let mut outcome = Outcome::default();
    let mut growing = 0;
    for trial in 0..trials() {
        let t = SHashtbl::<u64, u64>::with_buckets(&pool, &(), 1).map_err(err)?;
        let committed = insert_trial(&mut rng, done, &t, &mut outcome)
            .map_err(|e| format!("trial {trial}: {e}"))?;
        // Whether the kill left old buckets still to move (the table's
        // data: new buckets, bindings, old buckets, how many have moved).
        // (Bit 63 of `moved` says the second list is the new one.)
        let (first, _, second, moved, _) = t.heap().copy().map_err(err)?;
        let flipped = moved >> (usize::BITS - 1) == 1;
        let old = if flipped { first.1 } else { second.1 };
        let moved = moved & !(1 << (usize::BITS - 1));
        if moved < old {
            growing += 1;
        }
        ensure(t.buckets().map_err(err)? as u64 > committed / 4, || {
            format!("trial {trial}: {committed} bindings in too few buckets")
        })?;
        t.destroy().map_err(err)?;
    }
    Ok(outcome.summary(&format!(
        "{growing} left the table growing; nothing committed lost"
    )))
}

/// Kills a process removing the newer of the two bindings of keys
/// `0, 1, ...`; every removal committed is done, the one in flight is done
/// or not, and no other binding changes.
fn hashtbl_killed_in_remove() -> Result<String, String> {
    removal_kills(|k| k, |k, newer| value(k) ^ (u64::from(newer) * 2), 0x0004)
}

/// As [`hashtbl_killed_in_remove`], with strings: values with pointers,
/// which a removal copies to fresh arrays instead of moving in place.
fn hashtbl_of_strings_killed_in_remove() -> Result<String, String> {
    removal_kills(
        |k| format!("key-{k}"),
        |k, newer| format!("{}-{newer}", value(k)),
        0x0006,
    )
}

/// Kills a process removing the newer of the two bindings of keys
/// `key(0), key(1), ...` (bound to `val(k, false)` then `val(k, true)`).
fn removal_kills<K, V>(
    key: fn(u64) -> K,
    val: fn(u64, bool) -> V,
    seed: u64,
) -> Result<String, String>
where
    K: mc::structures::SharedKey + 'static,
    V: mc::Shared + PartialEq + std::fmt::Debug + 'static,
{
    const KEYS: u64 = 3000;
    let pool = Pool::create(256 << 20).map_err(err)?;
    let done = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1157_2024_5eed_0000 | seed);
    let mut outcome = Outcome::default();
    for trial in 0..trials() {
        // Few buckets, so that chains hold several keys and a removal
        // moves other keys' bindings along.
        let t = SHashtbl::<K, V>::with_buckets(&pool, &(), 64).map_err(err)?;
        for newer in [false, true] {
            for k in 0..KEYS {
                t.add(&key(k), &val(k, newer)).map_err(err)?;
            }
        }
        let tc = t.clone();
        let committed = kill_while(&mut rng, done, 50, move || {
            count_then_wait(done, KEYS, |k| {
                tc.remove(&key(k)).expect("remove");
            })
        })
        .map_err(|e| format!("trial {trial}: {e}"))?;
        let mut check = || -> Result<(), String> {
            outcome.settle(t.len(), || t.recover())?;
            let one = vec![val(committed, false)];
            let two = vec![val(committed, true), val(committed, false)];
            let in_flight = t.find_all_copy(&key(committed)).map_err(err)?;
            ensure(
                committed >= KEYS || in_flight == one || in_flight == two,
                || format!("key {committed} in flight: {in_flight:?}"),
            )?;
            for k in (0..KEYS).filter(|&k| k != committed) {
                let got = t.find_all_copy(&key(k)).map_err(err)?;
                let want = if k < committed {
                    vec![val(k, false)]
                } else {
                    vec![val(k, true), val(k, false)]
                };
                ensure(got == want, || {
                    format!("key {k} ({committed} removals committed): {got:?}")
                })?;
            }
            let len = t.len().map_err(err)? as u64;
            let removed = committed + u64::from(committed < KEYS && in_flight == one);
            ensure(len == 2 * KEYS - removed, || {
                format!("{len} bindings after {removed} removals")
            })?;
            t.heap().validate().map_err(err)?;
            ensure(t.remove(&key(0)).map_err(err)?, || {
                "no binding of key 0 left".into()
            })
        };
        check().map_err(|e| format!("trial {trial}: {e}"))?;
        t.destroy().map_err(err)?;
    }
    Ok(outcome.summary("every committed removal done, no other binding changed"))
}

/// Kills a process adding keys `0, 1, ...` to a table of 4 shards, each
/// of few buckets (so that it grows); `SShardedHashtbl::recover` repairs
/// every shard.
fn sharded_killed_in_insert() -> Result<String, String> {
    let pool = Pool::create(256 << 20).map_err(err)?;
    let done = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1157_2024_5eed_0005);
    let mut outcome = Outcome::default();
    for trial in 0..trials() {
        let t = SShardedHashtbl::<u64, u64>::with_buckets(&pool, 4, 4).map_err(err)?;
        let tc = t.clone();
        let committed = kill_while(&mut rng, done, 100, move || {
            count_then_wait(done, 200_000, |k| {
                tc.add(&k, &value(k)).expect("add");
            })
        })
        .map_err(|e| format!("trial {trial}: {e}"))?;
        let mut check = || -> Result<(), String> {
            outcome.settle(t.len(), || t.recover())?;
            let len = t.len().map_err(err)? as u64;
            let in_flight = t.find_copy(&committed).map_err(err)?;
            ensure(len == committed + u64::from(in_flight.is_some()), || {
                format!("{len} bindings, {committed} committed")
            })?;
            for k in 0..committed {
                let got = t.find_copy(&k).map_err(err)?;
                ensure(got == Some(value(k)), || {
                    format!("committed key {k}: {got:?}")
                })?;
            }
            t.add(&u64::MAX, &1).map_err(err)
        };
        check().map_err(|e| format!("trial {trial}: {e}"))?;
        t.destroy().map_err(err)?;
    }
    Ok(outcome.summary("nothing committed lost"))
}

/// Kills a process pushing `0, 1, ...` (one by one, and in batches of
/// four through `extend`) and popping one value every third push, so that
/// the queue's ring is wrapped when it grows. Afterwards the queue holds
/// a run of the values in order: from the first value not popped (or the
/// one after, for a pop in flight) up to at least the last push
/// committed, plus a prefix of a batch in flight.
fn queue_killed_in_push() -> Result<String, String> {
    const BATCH: u64 = 4;
    let pool = Pool::create(256 << 20).map_err(err)?;
    let done = shared(AtomicU64::new(0));
    let taken = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1157_2024_5eed_0003);
    let mut outcome = Outcome::default();
    for trial in 0..trials() {
        let q = SQueue::<u64>::create(&pool, &()).map_err(err)?;
        let qc = q.clone();
        taken.store(0, Ordering::SeqCst);
        let committed = kill_while(&mut rng, done, 200, move || {
            let (mut i, mut next) = (0u64, 0u64);
            while i < 400_000 {
                if i.is_multiple_of(7) {
                    let batch: Vec<u64> = (i..i + BATCH).collect();
                    qc.extend(&batch).expect("extend");
                    i += BATCH;
                } else {
                    qc.push(&i).expect("push");
                    i += 1;
                }
                done.store(i, Ordering::SeqCst);
                if i.is_multiple_of(3) {
                    let v = qc.pop_copy().expect("pop");
                    assert_eq!(v, Some(next), "FIFO");
                    next += 1;
                    taken.store(next, Ordering::SeqCst);
                }
            }
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .map_err(|e| format!("trial {trial}: {e}"))?;
        let popped = taken.load(Ordering::SeqCst);
        outcome
            .settle(q.len(), || q.recover())
            .map_err(|e| format!("trial {trial}: {e}"))?;
        let mut got = Vec::new();
        loop {
            let more = q
                .pop_many(4096)
                .map_err(|e| format!("trial {trial}: {e}"))?;
            if more.is_empty() {
                break;
            }
            got.extend(more);
        }
        let first = got.first().copied().unwrap_or(popped);
        let end = first + got.len() as u64;
        ensure(
            got.iter().copied().eq(first..end)
                && (popped..=popped + 1).contains(&first)
                && (committed..=committed + BATCH).contains(&end),
            || {
                format!(
                    "trial {trial}: values {first}..{end} ({} of them: {:?} ...), {committed} \
                     pushed and {popped} popped",
                    got.len(),
                    &got[..got.len().min(8)]
                )
            },
        )?;
        q.heap().validate().map_err(err)?;
        q.push(&u64::MAX).map_err(err)?;
        ensure(q.pop_copy().map_err(err)? == Some(u64::MAX), || {
            format!("trial {trial}: the queue does not go on")
        })?;
        q.destroy().map_err(err)?;
    }
    Ok(outcome.summary("nothing committed lost"))
}

/// The byte at eternal position `p` in the buffer scenario.
fn byte_at(p: u64) -> u8 {
    (p % 251) as u8
}

/// After a kill of a process appending to and deleting from `b` (bytes
/// `byte_at(p)` at each position `p`): settles the outcome, then checks
/// that the end is where the last append that returned left it
/// (`committed`) or up to `max` past it, that the start is between the
/// last deletion that returned (`gone`) and `committed`, and that every
/// byte in between is the one appended there. Returns the end.
fn check_buffer_after_kill(
    b: &SBuffer,
    outcome: &mut Outcome,
    committed: u64,
    gone: u64,
    max: u64,
) -> Result<u64, String> {
    outcome.settle(b.len(), || b.recover())?;
    let (start, len) = (b.start().map_err(err)? as u64, b.len().map_err(err)? as u64);
    let end = start + len;
    ensure(
        (committed..=committed + max).contains(&end) && (gone..=committed).contains(&start),
        || format!("bytes {start}..{end}, with {committed} appended and up to {gone} deleted"),
    )?;
    let bytes = b.sub(start as usize, len as usize).map_err(err)?;
    if let Some(i) = (start..end).position(|p| bytes[(p - start) as usize] != byte_at(p)) {
        return Err(format!("the byte at {} is wrong", start + i as u64));
    }
    b.heap().validate().map_err(err)?;
    Ok(end)
}

/// Appends of 1 to 200 bytes to an `SBuffer` of 64-byte blocks (so that
/// appends span blocks), deletions from the head that drop blocks, and a
/// `clear` now and then. After the kill every byte between the buffer's
/// start and end is the one appended at that position, the end is where
/// the last append that returned left it (or past the one in flight,
/// whole), the start is where the last deletion that returned left it (or
/// where the one in flight moves it), and appends go on at the end.
fn buffer_killed_in_push_and_delete() -> Result<String, String> {
    const MAX: u64 = 200;
    let pool = Pool::create(256 << 20).map_err(err)?;
    let pushed = shared(AtomicU64::new(0));
    let deleted = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1157_2024_5eed_0004);
    let mut outcome = Outcome::default();
    for trial in 0..trials() {
        let b = SBuffer::with_block_size(&pool, &(), 64).map_err(err)?;
        let bc = b.clone();
        deleted.store(0, Ordering::SeqCst);
        let committed = kill_while(&mut rng, pushed, 4000, move || {
            let (mut end, mut i) = (0u64, 0u64);
            loop {
                let n = 1 + (i * 37) % MAX;
                let chunk: Vec<u8> = (end..end + n).map(byte_at).collect();
                let pos = bc.push_bytes(&chunk).expect("push");
                assert_eq!(pos as u64, end, "the position of an append");
                end += n;
                pushed.store(end, Ordering::SeqCst);
                if i % 50 == 49 {
                    bc.clear().expect("clear");
                    deleted.store(end, Ordering::SeqCst);
                } else if i % 3 == 0 {
                    let len = bc.len().expect("len") as u64;
                    if len > 300 {
                        bc.delete_head((len - 300) as usize).expect("delete");
                        deleted.store(end - 300, Ordering::SeqCst);
                    }
                }
                i += 1;
            }
        })
        .map_err(|e| format!("trial {trial}: {e}"))?;
        let gone = deleted.load(Ordering::SeqCst);
        let end = check_buffer_after_kill(&b, &mut outcome, committed, gone, MAX)
            .map_err(|e| format!("trial {trial}: {e}"))?;
        ensure(b.push_bytes(b"next").map_err(err)? as u64 == end, || {
            format!("trial {trial}: an append after the kill is not at the end")
        })?;
        ensure(b.sub(end as usize, 4).map_err(err)? == b"next", || {
            format!("trial {trial}: an append after the kill reads back wrong")
        })?;
        b.destroy().map_err(err)?;
    }
    Ok(outcome.summary("every byte at its position, nothing committed lost"))
}

/// Appends and deletions in a buffer that fills its pool: deletions find
/// no room for a shorter list of blocks and empty the deleted blocks in
/// place instead, and appends fail now and then. After the kill, as for
/// [`buffer_killed_in_push_and_delete`]; then the buffer drains and takes
/// appends again.
fn buffer_killed_when_full() -> Result<String, String> {
    const CHUNK: u64 = 64;
    let pushed = shared(AtomicU64::new(0));
    let deleted = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1157_2024_5eed_0006);
    let mut outcome = Outcome::default();
    for trial in 0..trials() {
        let pool = Pool::create(512 << 10).map_err(err)?;
        let b = SBuffer::with_block_size(&pool, &(), 64).map_err(err)?;
        let bc = b.clone();
        deleted.store(0, Ordering::SeqCst);
        let committed = kill_while(&mut rng, pushed, 2000, move || {
            let mut end = 0u64;
            let push = |end: &mut u64| {
                let chunk: Vec<u8> = (*end..*end + CHUNK).map(byte_at).collect();
                match bc.push_bytes(&chunk) {
                    Ok(pos) => {
                        assert_eq!(pos as u64, *end, "the position of an append");
                        *end += CHUNK;
                        pushed.store(*end, Ordering::SeqCst);
                        true
                    }
                    Err(StructureError::Heap(HeapError::OutOfMemory { .. })) => false,
                    Err(e) => panic!("push: {e}"),
                }
            };
            // Fill the pool, then go on deleting and appending.
            while push(&mut end) {}
            loop {
                let len = bc.len().expect("len") as u64;
                let n = (3 * CHUNK).min(len);
                bc.delete_head(n as usize).expect("delete");
                deleted.store(end - (len - n), Ordering::SeqCst);
                for _ in 0..3 {
                    push(&mut end);
                }
            }
        })
        .map_err(|e| format!("trial {trial}: {e}"))?;
        let gone = deleted.load(Ordering::SeqCst);
        let end = check_buffer_after_kill(&b, &mut outcome, committed, gone, CHUNK)
            .map_err(|e| format!("trial {trial}: {e}"))?;
        while b.len().map_err(err)? > 0 {
            b.delete_head(b.len().map_err(err)?.min(4096))
                .map_err(err)?;
        }
        b.gc().map_err(err)?;
        ensure(b.push_bytes(b"next").map_err(err)? as u64 == end, || {
            format!("trial {trial}: an append after draining is not at the end")
        })?;
        b.destroy().map_err(err)?;
    }
    Ok(outcome.summary("every byte at its position, nothing committed lost, drained after"))
}

/// An `SArray` of strings grown by 3 at a time (a new element array each
/// time) and set in place (strings of several lengths, through the heap's
/// journal). After the kill the array has the length of the last growth
/// that returned, or of the one in flight (whole: never part of it), and
/// every element is a whole string: a fill of some growth, or a value set
/// at that index.
fn array_killed_in_grow_and_set() -> Result<String, String> {
    let pool = Pool::create(256 << 20).map_err(err)?;
    let grown = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1157_2024_5eed_0005);
    let mut outcome = Outcome::default();
    // A fill is `fill-<round>`; a set value `<index>:<round>` and x's.
    let whole = |i: usize, s: &str| match s.split_once(':') {
        Some((at, rest)) => {
            at.parse() == Ok(i) && rest.trim_end_matches('x').parse::<u64>().is_ok()
        }
        None => s
            .strip_prefix("fill-")
            .is_some_and(|r| r.parse::<u64>().is_ok()),
    };
    for trial in 0..trials() {
        let a = SArray::create(&pool, &(), &[String::from("fill-0")]).map_err(err)?;
        let ac = a.clone();
        let committed = kill_while(&mut rng, grown, 60, move || {
            let mut len = 1usize;
            for r in 1u64.. {
                len += 3;
                ac.grow(len, &format!("fill-{r}")).expect("grow");
                grown.store(len as u64, Ordering::SeqCst);
                for k in 0..4 {
                    let i = (r as usize * 7 + k * 13) % len;
                    let x = "x".repeat((r as usize + k) % 30);
                    ac.set(i, &format!("{i}:{r}{x}")).expect("set");
                }
                if len > 3000 {
                    // (Long past the moment of the kill.)
                    break;
                }
            }
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .map_err(|e| format!("trial {trial}: {e}"))?;
        outcome
            .settle(a.len(), || a.heap().recover())
            .map_err(|e| format!("trial {trial}: {e}"))?;
        let v = a.to_vec().map_err(err)?;
        let n = v.len() as u64;
        ensure(n == committed || n == committed + 3, || {
            format!("trial {trial}: {n} elements, with {committed} grown to")
        })?;
        if let Some((i, s)) = v.iter().enumerate().find(|(i, s)| !whole(*i, s)) {
            return Err(format!("trial {trial}: element {i} is {s:?}"));
        }
        a.heap().validate().map_err(err)?;
        a.grow(v.len() + 1, &String::from("fill-last"))
            .map_err(err)?;
        a.destroy().map_err(err)?;
    }
    Ok(outcome.summary("every element whole, no growth in part"))
}

/// The keys of the plain map scenario: `0..MAP_KEYS`.
const MAP_KEYS: u64 = 200;

/// The change of the plain map scenario's op `i`: key `7 i mod 200`
/// (every key once in any 200 ops in a row), removed by every 7th op (7
/// and 200 are coprime, so every key is removed now and then) and bound to
/// `[i; 4]` by the others (four equal words, so that a torn value shows).
fn map_op(i: u64) -> (u64, Option<[u64; 4]>) {
    ((i * 7) % MAP_KEYS, (!i.is_multiple_of(7)).then_some([i; 4]))
}

/// The value op `i`'s key had before it: the one the op 200 before gave.
fn map_before(i: u64) -> Option<[u64; 4]> {
    i.checked_sub(MAP_KEYS).and_then(|j| map_op(j).1)
}

/// Runs op `i` on `m`; the value its key had.
fn map_change(m: &PlainMap<u64, [u64; 4]>, i: u64) -> Result<Option<[u64; 4]>, mc::PlainMapError> {
    match map_op(i) {
        (k, Some(v)) => m.insert(k, v),
        (k, None) => m.remove(&k),
    }
}

/// The map after ops `0..n`: the last 200 of them (each key's last
/// change).
fn map_model(n: u64) -> HashMap<u64, [u64; 4]> {
    let mut model = HashMap::new();
    for i in n.saturating_sub(MAP_KEYS)..n {
        match map_op(i) {
            (k, Some(v)) => model.insert(k, v),
            (k, None) => model.remove(&k),
        };
    }
    model
}

/// Reads every key with `get`: each one as `model` says, but for the key
/// of `flight` (the change in flight: its key and the value it gives),
/// which reads as before or after it; once after, never before again
/// (`seen`: whether it was last seen after, when the two differ). Every
/// value is whole. Returns the keys present and their values, in order.
fn map_reads(
    m: &PlainMap<u64, [u64; 4]>,
    model: &HashMap<u64, [u64; 4]>,
    flight: Option<(u64, Option<[u64; 4]>)>,
    seen: &mut Option<bool>,
) -> Result<Vec<(u64, [u64; 4])>, String> {
    let mut present = Vec::new();
    for k in 0..MAP_KEYS {
        let got = m.get(&k).map_err(err)?;
        if let Some(v) = got {
            ensure(v.iter().all(|&w| w == v[0]), || {
                format!("key {k}: a torn value {v:?}")
            })?;
            present.push((k, v));
        }
        let want = model.get(&k).copied();
        match flight {
            Some((fk, after)) if fk == k && after != want => {
                let done = got == after;
                ensure(done || got == want, || {
                    format!("key {k}, changed in flight: {got:?}, before {want:?}, after {after:?}")
                })?;
                ensure(done || *seen != Some(true), || {
                    format!("key {k}, changed in flight: {got:?} after {after:?} was read")
                })?;
                *seen = Some(done);
            }
            _ => ensure(got == want, || {
                format!("key {k}: {got:?}, the model {want:?}")
            })?,
        }
    }
    Ok(present)
}

/// Checks the length and `entries` against `present` (as [`map_reads`]
/// gives it).
fn map_whole(m: &PlainMap<u64, [u64; 4]>, present: &[(u64, [u64; 4])]) -> Result<(), String> {
    let len = m.len();
    ensure(len == present.len(), || {
        format!("len {len}, {} keys read", present.len())
    })?;
    let mut all = m.entries().map_err(err)?;
    all.sort_unstable_by_key(|e| e.0);
    ensure(all == present, || {
        format!("entries {all:?}, read {present:?}")
    })
}

/// After a kill of a process that ran [`map_op`] `0, 1, ...` on `m`, of
/// which `committed` returned: checks every key before and after the next
/// writer's repair, then goes on with the ops here and checks again.
/// Returns whether op `committed` was seen done (`None` when it changes
/// nothing), and whether the length was wrong before the repair.
fn map_after_kill(
    m: &PlainMap<u64, [u64; 4]>,
    committed: u64,
) -> Result<(Option<bool>, bool), String> {
    // A key no op touches.
    const OUTSIDE: u64 = 1 << 40;
    let mut model = map_model(committed);
    let flight = map_op(committed);
    let mut seen = None;
    let present = map_reads(m, &model, Some(flight), &mut seen)?;
    let stale = m.len() != present.len();
    // A write takes the writers' lock, and repairs what a writer that died
    // holding it left.
    let old = m.insert(OUTSIDE, [1; 4]).map_err(err)?;
    ensure(old.is_none(), || {
        format!("key {OUTSIDE} was bound to {old:?}")
    })?;
    let old = m.remove(&OUTSIDE).map_err(err)?;
    ensure(old == Some([1; 4]), || {
        format!("key {OUTSIDE} removed as {old:?}")
    })?;
    let present = map_reads(m, &model, Some(flight), &mut seen)?;
    map_whole(m, &present)?;
    // The map takes new work: the ops after the one in flight, each
    // returning what its key had (the change in flight as it was seen).
    if seen == Some(true) {
        match flight {
            (k, Some(v)) => model.insert(k, v),
            (k, None) => model.remove(&k),
        };
    }
    let end = committed + 1 + 2 * MAP_KEYS;
    for i in committed + 1..end {
        let old = map_change(m, i).map_err(err)?;
        let (k, new) = map_op(i);
        let want = match new {
            Some(v) => model.insert(k, v),
            None => model.remove(&k),
        };
        ensure(old == want, || {
            format!("op {i} after the kill found {old:?}, the model {want:?}")
        })?;
    }
    let present = map_reads(m, &map_model(end), None, &mut None)?;
    map_whole(m, &present)?;
    Ok((seen, stale))
}

/// Kills a process changing a `PlainMap<u64, [u64; 4]>` at a random
/// moment. The map's capacity is 180 and it holds up to 172 keys (of
/// `0..200`): nearly full, so that some keys live past their home group
/// and changes count the groups they pass. Every change that returned
/// stays, the one in flight happened or not (once seen done, it stays
/// done), every value is whole, the next writer puts the length right, and
/// the map takes new work.
fn plain_map_killed_in_change() -> Result<String, String> {
    const OPS: u64 = 1 << 30;
    let pool = Pool::create(256 << 20).map_err(err)?;
    let done = shared(AtomicU64::new(0));
    let mut rng = Rng(0x1157_2024_5eed_0007);
    let (mut least, mut most) = (u64::MAX, 0);
    let (mut happened, mut not, mut stale) = (0, 0, 0);
    for trial in 0..trials() {
        let m = PlainMap::<u64, [u64; 4]>::create(&pool, 180).map_err(err)?;
        let d = m.descr();
        let committed = kill_while(&mut rng, done, 2 * MAP_KEYS, move || {
            let m = d.open().expect("open");
            count_then_wait(done, OPS, |i| {
                let old = map_change(&m, i).expect("change");
                assert_eq!(old, map_before(i), "the old value of op {i}");
            })
        })
        .map_err(|e| format!("trial {trial}: {e}"))?;
        let (seen, left_stale) = map_after_kill(&m, committed)
            .map_err(|e| format!("trial {trial}, {committed} ops committed: {e}"))?;
        least = least.min(committed);
        most = most.max(committed);
        match seen {
            Some(true) => happened += 1,
            Some(false) => not += 1,
            None => {}
        }
        stale += usize::from(left_stale);
    }
    Ok(format!(
        "{} kills after {least} to {most} committed changes; the next change (in flight or \
         not begun) done in {happened}, not done in {not}; {stale} left the length wrong until \
         the next writer; nothing committed lost, no value torn",
        trials()
    ))
}

/// Kills a process in the middle of a `PlainMap::clear` of a map filled
/// nearly to its capacity (at a random moment within 1.2 times the
/// longest clear seen). What a reader saw gone before the next writer's
/// repair stays gone after it (a clear cut short brings no key back),
/// every value is whole, and the length and `entries` agree with the keys
/// read.
fn plain_map_killed_in_clear() -> Result<String, String> {
    const CAPACITY: usize = 16_384;
    const KEYS: u64 = 16_000;
    let pool = Pool::create(64 << 20).map_err(err)?;
    // 1 once the child starts its clear, 2 once it is done; and how long
    // its clear took (ns).
    let state = shared(AtomicU64::new(0));
    let took = shared(AtomicU64::new(0));
    let mut rng = Rng(0x00c1_ea55_2024_0009);
    let read = |m: &PlainMap<u64, [u64; 4]>| -> Result<HashMap<u64, [u64; 4]>, String> {
        let mut present = HashMap::new();
        for k in 0..KEYS {
            if let Some(v) = m.get(&k).map_err(err)? {
                ensure(v.iter().all(|&w| w == v[0]), || {
                    format!("key {k}: a torn value {v:?}")
                })?;
                present.insert(k, v);
            }
        }
        Ok(present)
    };
    let m = PlainMap::<u64, [u64; 4]>::create(&pool, CAPACITY).map_err(err)?;
    // Within how long after the start a kill lands (grows with the
    // longest clear seen).
    let mut window = Duration::from_micros(500);
    let (mut cut, mut whole) = (0, 0);
    for trial in 0..trials() as u64 {
        for k in 0..KEYS {
            m.insert(k, [trial; 4]).map_err(err)?;
        }
        state.store(0, Ordering::SeqCst);
        let d = m.descr();
        let pid = fork_child(move || {
            let m = d.open().expect("open");
            let start = Instant::now();
            state.store(1, Ordering::SeqCst);
            m.clear().expect("clear");
            took.store(start.elapsed().as_nanos() as u64, Ordering::SeqCst);
            state.store(2, Ordering::SeqCst);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let start = Instant::now();
        while state.load(Ordering::SeqCst) == 0 {
            if start.elapsed() > TIMEOUT {
                kill(pid);
                let _ = wait_child(pid, TIMEOUT);
                return Err(format!("trial {trial}: the child never started"));
            }
            std::hint::spin_loop();
        }
        let at = Instant::now() + window.mul_f64(rng.below(1201) as f64 / 1000.0);
        while Instant::now() < at {
            std::hint::spin_loop();
        }
        kill(pid);
        let ended = wait_child(pid, TIMEOUT)?;
        ensure(ended == common::Ended::Signaled(9), || {
            format!("trial {trial}: the child ended as {ended:?}, not killed")
        })?;
        if state.load(Ordering::SeqCst) == 2 {
            whole += 1;
            window = window.max(Duration::from_nanos(took.load(Ordering::SeqCst)));
        }
        let before = read(&m).map_err(|e| format!("trial {trial}: {e}"))?;
        cut += usize::from(!before.is_empty() && before.len() < KEYS as usize);
        // The next writer repairs what the dead one left.
        m.insert(u64::MAX, [0; 4]).map_err(err)?;
        m.remove(&u64::MAX).map_err(err)?;
        let after = read(&m).map_err(|e| format!("trial {trial}: {e}"))?;
        let back: Vec<_> = after.keys().filter(|k| !before.contains_key(k)).collect();
        ensure(back.is_empty(), || {
            format!(
                "trial {trial}: {} keys read as gone came back after the repair, e.g. {:?}",
                back.len(),
                &back[..back.len().min(3)]
            )
        })?;
        ensure(after.len() == m.len(), || {
            format!("trial {trial}: {} keys read, len {}", after.len(), m.len())
        })?;
        let mut all = m.entries().map_err(err)?;
        all.sort_unstable_by_key(|e| e.0);
        let mut want: Vec<_> = after.into_iter().collect();
        want.sort_unstable_by_key(|e| e.0);
        ensure(all == want, || {
            format!("trial {trial}: entries disagree with the reads")
        })?;
        m.clear().map_err(err)?;
        ensure(m.is_empty() && read(&m)?.is_empty(), || {
            format!("trial {trial}: a clear after the repair left keys")
        })?;
    }
    Ok(format!(
        "{} kills: {cut} in the middle of a clear, {whole} after it; no key came back, no value \
         torn",
        trials()
    ))
}

fn main() {
    // A hung run ends the test (SIGALRM).
    common::watchdog(600);
    run_scenarios(&[
        ("hashtbl_killed_in_insert", hashtbl_killed_in_insert),
        ("hashtbl_killed_in_resize", hashtbl_killed_in_resize),
        ("hashtbl_killed_in_remove", hashtbl_killed_in_remove),
        (
            "hashtbl_of_strings_killed_in_remove",
            hashtbl_of_strings_killed_in_remove,
        ),
        ("sharded_killed_in_insert", sharded_killed_in_insert),
        ("queue_killed_in_push", queue_killed_in_push),
        (
            "buffer_killed_in_push_and_delete",
            buffer_killed_in_push_and_delete,
        ),
        ("buffer_killed_when_full", buffer_killed_when_full),
        ("array_killed_in_grow_and_set", array_killed_in_grow_and_set),
        ("plain_map_killed_in_change", plain_map_killed_in_change),
        ("plain_map_killed_in_clear", plain_map_killed_in_clear),
    ]);
}
