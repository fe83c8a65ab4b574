//! What another process of the same user can do to mc's segments: cut
//! them short (truncate) and scribble on them. Nothing may crash: attaching
//! a cut segment is an error, a cut under a live mapping is contained
//! (`Truncated` errors, no SIGBUS), and a heap opened in a pool attached by
//! name from an unrelated process is validated before it is read (10,000
//! random scribbles, 0 crashes). Segments are mode 0600 with names that
//! cannot be guessed.
//!
//! A plain program (`harness = false`): some scenarios run this binary
//! again as an unrelated process (`MC_FOREIGN_ROLE`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::{run_scenarios, Rng};
use mc::{Camlbox, CamlboxError, Heap, HeapError, Pool, PoolError};

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

#[derive(mc::Shared, Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Number(i64),
    List(Vec<u32>),
    Flag(bool, char),
}

#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct Doc {
    title: String,
    tags: Vec<String>,
    parts: Vec<Part>,
    next: Option<Box<Doc>>,
}

fn sample() -> Doc {
    let inner = Doc {
        title: "inner".into(),
        tags: vec!["x".into(); 3],
        parts: vec![Part::Number(-5), Part::Flag(true, 'é')],
        next: None,
    };
    Doc {
        title: "a document".into(),
        tags: (0..20).map(|i| format!("tag{i}")).collect(),
        parts: (0..40)
            .map(|i| match i % 4 {
                0 => Part::Text(format!("text {i}")),
                1 => Part::Number(i * 1000),
                2 => Part::List((0..i as u32).collect()),
                _ => Part::Flag(i % 3 == 0, 'z'),
            })
            .collect(),
        next: Some(Box::new(inner)),
    }
}

/// Cuts the shared memory object `name` to `len` bytes, as another
/// process could.
fn truncate(name: &str, len: u64) -> Result<(), String> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .map_err(err)?;
    f.set_len(len).map_err(err)
}

/// Runs this program again as an unrelated process in `role` with `arg`;
/// returns its exit code and output.
fn foreign(role: &str, arg: &str) -> Result<(i32, String), String> {
    let exe = std::env::current_exe().map_err(err)?;
    let out = Command::new(exe)
        .env("MC_FOREIGN_ROLE", role)
        .env("MC_FOREIGN_ARG", arg)
        .output()
        .map_err(err)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A signal (SIGBUS, SIGSEGV) shows as no exit code.
    let code = out.status.code().unwrap_or(-1);
    Ok((code, text))
}

// ---------------------------------------------------------------------
// Truncation.

fn attaching_a_cut_pool_is_an_error() -> Result<String, String> {
    let name = format!("foreign-cut-{}", std::process::id());
    let pool = Pool::create_named(&name, 8 << 20).map_err(err)?;
    let heap = Heap::create(&pool, &sample()).map_err(err)?;
    heap.set_pool_root();
    let seg = pool.name().to_owned();
    truncate(&seg, 8192)?;
    let (code, text) = foreign("attach", &name)?;
    if code != 0 {
        return Err(format!("the unrelated process ended with {code}: {text}"));
    }
    if !text.contains("cut short") {
        return Err(format!("attach: {text}"));
    }
    Ok(format!("an unrelated process gets: {}", text.trim()))
}

fn a_cut_under_a_live_pool_is_contained() -> Result<String, String> {
    let pool = Pool::create(8 << 20).map_err(err)?;
    let heap = Heap::create(&pool, &sample()).map_err(err)?;
    let seg = pool.name().to_owned();
    truncate(&seg, 4096)?;
    // The first access past the cut faults; the fault is contained.
    let first = heap.copy();
    if first.is_ok() {
        return Err("read a value past the cut".into());
    }
    if !pool.is_truncated() {
        return Err(format!("not flagged (first access gave {first:?})"));
    }
    let again = heap.read().err().ok_or("a second read succeeded")?;
    if !matches!(again, HeapError::Pool(PoolError::Truncated { .. })) {
        return Err(format!("second read: {again}"));
    }
    let grown = heap.assign(&sample()).err().ok_or("assign succeeded")?;
    Ok(format!(
        "first access: {}; then: {again}; assign: {grown}",
        first.unwrap_err()
    ))
}

/// A pool far larger than the machine's memory (its range is reserved, not
/// backed): the zero pages that stand in for a cut must not need memory.
fn a_cut_under_a_huge_pool_is_contained() -> Result<String, String> {
    let pool = Pool::create(64 << 30).map_err(err)?;
    let heap = Heap::create(&pool, &sample()).map_err(err)?;
    truncate(pool.name(), 4096)?;
    let first = heap.copy().err().ok_or("read a value past the cut")?;
    if !pool.is_truncated() {
        return Err(format!("not flagged: {first}"));
    }
    Ok(format!("64 GiB pool: {first}"))
}

/// The fault handler handles faults in mc's mappings only: a `SIGBUS`
/// sent with `kill` has the fate it has in a program without mc (what the
/// handler before mc's decides: the standard library's, here).
fn a_sigbus_from_kill_is_left_alone() -> Result<String, String> {
    // The child's pool has a known name: the child dies of the signal, and
    // this process removes its segment afterwards.
    let name = format!("sigbus-{}", std::process::id());
    let fate = |with_pool: bool| -> Result<common::Ended, String> {
        let child_name = name.clone();
        let pid = common::fork_child(move || {
            let _pool = with_pool.then(|| Pool::create_named(&child_name, 1 << 20).expect("pool"));
            for _ in 0..2 {
                // SAFETY: signals this child itself.
                unsafe { libc::kill(libc::getpid(), libc::SIGBUS) };
                std::thread::sleep(Duration::from_millis(50));
            }
            0
        });
        let ended = common::wait_child(pid, Duration::from_secs(10));
        if with_pool {
            let _ = Pool::remove(&format!("mc.pool.{name}"));
        }
        ended
    };
    let without = fate(false)?;
    let with = fate(true)?;
    if with != without {
        return Err(format!("{with:?} with mc's handler, {without:?} without"));
    }
    Ok(format!("the same fate with and without mc ({with:?})"))
}

fn a_cut_camlbox_is_an_error_for_both_ends() -> Result<String, String> {
    let (mut rx, id) = Camlbox::<Doc>::create(4, 64 * 1024).map_err(err)?;
    let tx = id.sender().map_err(err)?;
    tx.send(&sample()).map_err(err)?;
    let slots = rx.wait_timeout(Duration::from_secs(5));
    if slots.len() != 1 {
        return Err(format!("slots {slots:?}"));
    }
    // Only the segment header is left: every slot is past the cut.
    truncate(rx.segment_name(), 64)?;
    let got = rx.get_copy(slots[0]);
    if !matches!(got, Err(CamlboxError::Truncated { .. })) {
        return Err(format!("get after the cut: {got:?}"));
    }
    if !rx.wait_timeout(Duration::from_millis(50)).is_empty() {
        return Err("wait found messages".into());
    }
    // A slot that lies wholly before the cut still takes a message (its
    // bytes are in the segment); any other slot is past the cut.
    let mut sent = Ok(());
    for _ in 0..=rx.capacity() {
        sent = tx.send_timeout(&sample(), Duration::from_secs(1));
        if sent.is_err() {
            break;
        }
    }
    if !matches!(sent, Err(CamlboxError::Truncated { .. })) {
        return Err(format!("send after the cut: {sent:?}"));
    }
    // Once a sender has found the cut, a failed send delivers nothing, not
    // even into a slot before the cut (a retry would duplicate it).
    let (mut rx2, id2) = Camlbox::<u64>::create(3, 8192).map_err(err)?;
    let tx2 = id2.sender().map_err(err)?;
    tx2.send(&1).map_err(err)?;
    tx2.send(&2).map_err(err)?;
    truncate(rx2.segment_name(), 16384)?;
    let third = tx2.send_timeout(&3, Duration::from_secs(1));
    if third.is_ok() {
        return Err("a send into a slot past the cut succeeded".into());
    }
    let first = rx2.recv_timeout(Duration::from_secs(1));
    for r in [
        tx2.send_timeout(&4, Duration::from_secs(1)),
        tx2.try_send(&4),
    ] {
        if !matches!(r, Err(CamlboxError::Truncated { .. })) {
            return Err(format!("send after the cut was found: {r:?}"));
        }
    }
    // Slot 1 still holds the second message (sent before the cut); slot
    // 0, freed by the receive, must stay free.
    let ready = rx2.wait_timeout(Duration::from_millis(50));
    if first.as_ref().ok() != Some(&1) || ready.contains(&0) {
        return Err(format!(
            "a failed send was delivered (ready slots {ready:?}; first receive {first:?})"
        ));
    }
    // A sender opened after the cut is refused at once.
    let late = Camlbox::<Doc>::create_named(&format!("late-{}", std::process::id()), 2, 4096)
        .map_err(err)?;
    truncate(late.0.segment_name(), 100)?;
    let r = late.1.sender();
    if !matches!(r, Err(CamlboxError::Truncated { .. })) {
        return Err(format!("open after the cut: {r:?}"));
    }
    Ok(format!(
        "receiver: {}; sender: {}",
        got.unwrap_err(),
        sent.unwrap_err()
    ))
}

// ---------------------------------------------------------------------
// Scribbles.

const CASES: usize = 10_000;

/// In an unrelated process: attaches the pool by name (so it is not
/// trusted) and opens its root heap after each of `CASES` random sets of
/// scribbles on the heap's pages; every open that succeeds is read
/// completely. Prints the counts.
fn scribble_role(name: &str) -> Result<String, String> {
    let pool = match Pool::attach(name) {
        Ok(p) => p,
        Err(e @ PoolError::AddressInUse { .. }) => {
            println!("{e}");
            std::process::exit(ADDRESS_IN_USE)
        }
        Err(e) => return Err(err(e)),
    };
    if pool.is_trusted() {
        return Err("a pool attached by an unrelated process counts as trusted".into());
    }
    let report = mc::inspect::inspect_pool(pool.name()).map_err(err)?;
    let heap = report.heaps.first().ok_or("no heap")?;
    let header = heap.addr;
    let end = pool.base() + report.stats.committed;
    // The header page and the start of the first chunk, where the values
    // were allocated (with some free room after them).
    let len = (end - header).min(4096 + heap.stats.live_bytes + 1024);
    let original: Vec<u8> = {
        // SAFETY: `header..end` is committed memory of the mapped pool.
        unsafe { std::slice::from_raw_parts(std::ptr::with_exposed_provenance::<u8>(header), len) }
            .to_vec()
    };
    // The heap's lock words (in the first bytes of its header) are left
    // alone: a lock that looks held by a live thread blocks by design.
    let keep = 512;
    let mut rng = Rng(0x5eed_1234_dead_beef);
    let (mut opened, mut refused) = (0usize, 0usize);
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    let expected = sample();
    let mut unchanged_ok = 0;
    for _ in 0..CASES {
        // SAFETY: restores the original bytes of the committed range.
        unsafe {
            std::ptr::copy_nonoverlapping(
                original.as_ptr(),
                std::ptr::with_exposed_provenance_mut::<u8>(header),
                len,
            )
        };
        for _ in 0..1 + rng.below(4) {
            let off = keep + rng.below(len - keep - 8);
            let p = header + off;
            // SAFETY: writes inside the committed range of the mapping,
            // as a scribbling process would.
            unsafe {
                match rng.below(4) {
                    0 => std::ptr::with_exposed_provenance_mut::<u8>(p).write(rng.next_u64() as u8),
                    1 => std::ptr::with_exposed_provenance_mut::<u64>(p & !7)
                        .write_unaligned(rng.next_u64()),
                    2 => std::ptr::with_exposed_provenance_mut::<u64>(p & !7)
                        .write_unaligned((header + rng.below(len)) as u64 & !7),
                    _ => std::ptr::with_exposed_provenance_mut::<u64>(p & !7)
                        .write_unaligned(rng.below(1 << 20) as u64),
                }
            }
        }
        match Heap::<Doc>::open_root(&pool) {
            Ok(heap) => match heap.copy() {
                Ok(doc) => {
                    opened += 1;
                    if doc == expected {
                        unchanged_ok += 1;
                    }
                    // Read in place too.
                    if let Ok(g) = heap.read() {
                        let n: usize = g.tags.iter().map(|t| t.len()).sum();
                        std::hint::black_box(n);
                    }
                }
                Err(e) => {
                    refused += 1;
                    *reasons.entry(kind(&e)).or_default() += 1;
                }
            },
            Err(e) => {
                refused += 1;
                *reasons.entry(kind(&e)).or_default() += 1;
            }
        }
    }
    // SAFETY: as above.
    unsafe {
        std::ptr::copy_nonoverlapping(
            original.as_ptr(),
            std::ptr::with_exposed_provenance_mut::<u8>(header),
            len,
        )
    };
    Ok(format!(
        "{CASES} cases: {opened} opened and read ({unchanged_ok} with the original value), \
         {refused} refused {reasons:?}"
    ))
}

fn kind(e: &HeapError) -> String {
    let s = format!("{e:?}");
    s.split(['(', ' ', '{']).next().unwrap_or("").to_owned()
}

fn scribbled_heaps_never_crash_an_unrelated_reader() -> Result<String, String> {
    // The unrelated process maps the pool at the address recorded in it. Its
    // own mappings sit within a few TiB under its randomised mmap base (a
    // sanitizer reserves whole TiBs there), so this process first reserves
    // a wide empty gap, which puts the pool far below that zone; should the
    // range still be taken, `attach` says so: try again with a wider gap.
    for (attempt, gap) in [4u64 << 40, 8 << 40, 16 << 40, 24 << 40, 32 << 40]
        .into_iter()
        .enumerate()
    {
        // Address space only: no swap is reserved and nothing is touched.
        let _gap = usize::try_from(gap).ok().and_then(|len| {
            memmap2::MmapOptions::new()
                .len(len)
                .no_reserve_swap()
                .map_anon()
                .ok()
        });
        let size = 8 << 20;
        let name = format!("foreign-scribble-{}-{attempt}", std::process::id());
        let pool = Pool::create_named(&name, size).map_err(err)?;
        let heap = Heap::create(&pool, &sample()).map_err(err)?;
        heap.set_pool_root();
        // A pinned value: the pin table is checked too.
        let _pin = heap.pin().map_err(err)?;
        let (code, text) = foreign("scribble", &name)?;
        if code == ADDRESS_IN_USE {
            continue;
        }
        if code != 0 {
            return Err(format!("the unrelated reader ended with {code}: {text}"));
        }
        // The pool is whole again (the reader restored it) and still
        // trusted here, in the creating process.
        if heap.copy().map_err(err)? != sample() || !pool.is_trusted() {
            return Err("the creator's view changed".into());
        }
        return Ok(format!("{} (attempt {})", text.trim(), attempt + 1));
    }
    Err("the pool's address range was taken in the unrelated process five times".into())
}

/// The exit code of the scribbling process when the pool's address range
/// is taken there.
const ADDRESS_IN_USE: i32 = 3;

// ---------------------------------------------------------------------
// Names and modes.

fn segments_are_private_and_unguessable() -> Result<String, String> {
    let a = Pool::create(1 << 20).map_err(err)?;
    let b = Pool::create(1 << 20).map_err(err)?;
    let named =
        Pool::create_named(&format!("mode-{}", std::process::id()), 1 << 20).map_err(err)?;
    let (rx, _id) = Camlbox::<u64>::create(1, 64).map_err(err)?;
    for seg in [a.name(), b.name(), named.name(), rx.segment_name()] {
        let meta = std::fs::metadata(format!("/dev/shm/{seg}")).map_err(err)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode != 0o600 {
            return Err(format!("{seg}: mode {mode:o}"));
        }
    }
    // Anonymous names end in 64 random bits.
    let suffix = |n: &str| n.rsplit('.').next().unwrap_or("").to_owned();
    let (sa, sb) = (suffix(a.name()), suffix(b.name()));
    if sa.len() != 16 || !sa.chars().all(|c| c.is_ascii_hexdigit()) || sa == sb {
        return Err(format!("names {} and {}", a.name(), b.name()));
    }
    Ok(format!("mode 0600; e.g. {}", a.name()))
}

fn main() {
    if let Ok(role) = std::env::var("MC_FOREIGN_ROLE") {
        let arg = std::env::var("MC_FOREIGN_ARG").unwrap_or_default();
        let r = match role.as_str() {
            "attach" => match Pool::attach(&arg) {
                Ok(_) => Err("attached a cut pool".to_string()),
                Err(e @ PoolError::Truncated { .. }) => Ok(e.to_string()),
                Err(e) => Err(format!("unexpected error: {e}")),
            },
            "scribble" => scribble_role(&arg),
            _ => Err(format!("unknown role {role}")),
        };
        match r {
            Ok(text) => {
                println!("{text}");
                std::process::exit(0)
            }
            Err(e) => {
                println!("{e}");
                std::process::exit(1)
            }
        }
    }
    // A hung run ends the test (SIGALRM).
    common::watchdog(600);
    run_scenarios(&[
        (
            "attaching_a_cut_pool_is_an_error",
            attaching_a_cut_pool_is_an_error,
        ),
        (
            "a_cut_under_a_live_pool_is_contained",
            a_cut_under_a_live_pool_is_contained,
        ),
        (
            "a_cut_under_a_huge_pool_is_contained",
            a_cut_under_a_huge_pool_is_contained,
        ),
        (
            "a_sigbus_from_kill_is_left_alone",
            a_sigbus_from_kill_is_left_alone,
        ),
        (
            "a_cut_camlbox_is_an_error_for_both_ends",
            a_cut_camlbox_is_an_error_for_both_ends,
        ),
        (
            "scribbled_heaps_never_crash_an_unrelated_reader",
            scribbled_heaps_never_crash_an_unrelated_reader,
        ),
        (
            "segments_are_private_and_unguessable",
            segments_are_private_and_unguessable,
        ),
    ]);
}
