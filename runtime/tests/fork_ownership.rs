//! Guards and handles across every fork point: what `mc::run`'s closure
//! captures stays with its one owner (the caller, which is the first
//! process), copies of guards that `fork` makes in other processes neither
//! read nor release, per-thread lock bookkeeping does not follow a fork,
//! and a change of a `PlainMap` forked in its closure writes only in the
//! process that holds the lock.
//!
//! A plain program (`harness = false`): forking from the multi-threaded
//! test harness is unsound.

mod common;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{ensure, err, expect_exit_ok, fork_child, run_scenarios, shared};
use mc::sync::{LockError, Mutex, RwLock};
use mc::{Camlbox, CamlboxDescr, Heap, HeapDescr, HeapError, Outcome, PlainMap, Pool};

type Words = Vec<String>;

fn words(word: &str, n: usize) -> Words {
    (0..n).map(|i| format!("{word}-{i}")).collect()
}

/// Runs `first` under `mc::run` and returns its own result.
fn in_run<T>(first: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match mc::run(first).map_err(err)?.outcome {
        Outcome::Returned(r) => r,
        other => Err(format!("first process: {other}")),
    }
}

const SHORT: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------
// Process definitions.

/// Replaces the root twice and collects in between, so that the memory of
/// an unpinned old root is freed and overwritten.
#[mc::process]
fn reassign_and_collect(descr: HeapDescr<Words>) -> Result<(), String> {
    let heap = descr.open().map_err(err)?;
    heap.assign(&words("new", 100)).map_err(err)?;
    heap.gc().map_err(err)?;
    heap.assign(&words("newer", 300)).map_err(err)?;
    heap.gc().map_err(err)
}

/// Tries to modify the heap within `SHORT`: the error, or "modified".
#[mc::process]
fn try_modify(descr: HeapDescr<Words>) -> String {
    let heap = match descr.open() {
        Ok(h) => h,
        Err(e) => return format!("open: {e}"),
    };
    match heap.modify_timeout(SHORT, |_, _| ()) {
        Ok(()) => "modified".into(),
        Err(HeapError::Timeout) => "timeout".into(),
        Err(e) => format!("error: {e}"),
    }
}

/// Reads the heap: its first word, or the error.
#[mc::process]
fn read_first(descr: HeapDescr<Words>) -> Result<String, String> {
    let heap = descr.open().map_err(err)?;
    let g = heap.read_timeout(Duration::from_secs(10)).map_err(err)?;
    Ok(g.as_slice()
        .first()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default())
}

/// Tries the mutex at `addr` (in memory every process of the run maps)
/// within `SHORT`, and adds 1 when it gets it.
#[mc::process]
fn try_mutex(addr: usize) -> String {
    // SAFETY: the scenario passes the address of a `Mutex<u64>` in a
    // shared mapping made before the run, mapped in every process of it.
    let m = unsafe { &*std::ptr::with_exposed_provenance::<Mutex<u64>>(addr) };
    match m.lock_timeout(SHORT) {
        Ok(mut g) => {
            *g += 1;
            format!("locked {}", *g)
        }
        Err(LockError::Timeout) => "timeout".into(),
        Err(e) => format!("error: {e}"),
    }
}

#[mc::process]
fn send_words(id: CamlboxDescr<Words>) -> Result<(), String> {
    id.sender()
        .map_err(err)?
        .send(&words("mail", 3))
        .map_err(err)
}

// ---------------------------------------------------------------------
// What `mc::run`'s closure captures stays with the caller.

fn pin_guard_moved_into_run_keeps_its_value() -> Result<String, String> {
    let pool = Pool::create(32 << 20).map_err(err)?;
    let heap = Heap::create(&pool, &words("old", 100)).map_err(err)?;
    let descr = heap.descr();
    let pin = heap.pin().map_err(err)?;
    in_run(move || {
        let p = reassign_and_collect::start(descr).map_err(err)?;
        reassign_and_collect::join(p).map_err(err)??;
        // The pin still holds the old root, collected by nobody.
        ensure!(pin.len() == 100, "pinned length {}", pin.len());
        for (i, w) in pin.as_slice().iter().enumerate() {
            ensure!(w.as_str() == format!("old-{i}"), "pinned word {i}: {w:?}");
        }
        Ok(())
    })?;
    ensure!(
        heap.copy().map_err(err)?[0] == "newer-0",
        "the worker's value"
    );
    Ok("a pinned value moved into the run survived a worker's collection".into())
}

fn read_guard_moved_into_run_keeps_the_lock() -> Result<String, String> {
    let pool = Pool::create(16 << 20).map_err(err)?;
    let heap = Heap::create(&pool, &words("w", 3)).map_err(err)?;
    let descr = heap.descr();
    let guard = heap.read().map_err(err)?;
    let d2 = descr.clone();
    in_run(move || {
        let p = try_modify::start(d2.clone()).map_err(err)?;
        let r = try_modify::join(p).map_err(err)?;
        ensure!(r == "timeout", "a writer got past the read guard: {r}");
        ensure!(guard[1].as_str() == "w-1", "guard reads {:?}", &guard[1]);
        drop(guard);
        let p = try_modify::start(d2).map_err(err)?;
        let r = try_modify::join(p).map_err(err)?;
        ensure!(r == "modified", "after the guard: {r}");
        Ok(())
    })?;
    let _ = descr;
    Ok("writers waited for the read guard; the guard released the lock once".into())
}

fn mutex_guard_moved_into_run_keeps_the_lock() -> Result<String, String> {
    let m: &'static Mutex<u64> = shared(Mutex::new(0));
    let addr = std::ptr::from_ref(m).expose_provenance();
    let mut guard = m.lock().map_err(err)?;
    in_run(move || {
        let p = try_mutex::start(addr).map_err(err)?;
        let r = try_mutex::join(p).map_err(err)?;
        ensure!(r == "timeout", "another process locked a held mutex: {r}");
        *guard = 41;
        drop(guard);
        let p = try_mutex::start(addr).map_err(err)?;
        let r = try_mutex::join(p).map_err(err)?;
        ensure!(r == "locked 42", "after the guard: {r}");
        Ok(())
    })?;
    ensure!(*m.lock().map_err(err)? == 42, "final value");
    Ok("the mutex stayed locked while the first process held its guard".into())
}

fn last_pool_handle_moved_into_run_keeps_the_pool() -> Result<String, String> {
    let pool = Pool::create(16 << 20).map_err(err)?;
    let name = pool.name().to_owned();
    let descr = {
        let heap = Heap::create(&pool, &words("kept", 5)).map_err(err)?;
        heap.descr()
    };
    in_run(move || {
        let p = read_first::start(descr).map_err(err)?;
        let r = read_first::join(p).map_err(err)?;
        ensure!(r == Ok("kept-0".into()), "worker read {r:?}");
        drop(pool);
        Ok(())
    })?;
    ensure!(
        !std::path::Path::new(&format!("/dev/shm/{name}")).exists(),
        "the pool's segment outlived its last handle"
    );
    Ok("workers opened the pool; its last handle unlinked it once".into())
}

fn camlbox_receiver_moved_into_run_receives() -> Result<String, String> {
    let (mut rx, id) = Camlbox::<Words>::create(2, 1024).map_err(err)?;
    let seg = rx.segment_name().to_owned();
    in_run(move || {
        let p = send_words::start(id).map_err(err)?;
        send_words::join(p).map_err(err)??;
        let slots = rx.wait_timeout(Duration::from_secs(10));
        ensure!(slots.len() == 1, "slots {slots:?}");
        let got = rx.get_copy(slots[0]).map_err(err)?;
        ensure!(got == words("mail", 3), "got {got:?}");
        rx.delete(slots[0]);
        Ok(())
    })?;
    ensure!(
        !std::path::Path::new(&format!("/dev/shm/{seg}")).exists(),
        "the box's segment outlived its receiver"
    );
    Ok("the receiver moved into the run received".into())
}

// ---------------------------------------------------------------------
// Copies of guards in other processes are inert.

/// One guard of every kind, leaked so that they can sit in a thread-local
/// of the main thread, which `fork` copies into the master and every
/// worker.
struct Guards {
    read: mc::ReadGuard<'static, Words>,
    pin: mc::PinGuard<'static, Words>,
    mutex: mc::sync::MutexGuard<'static, u64>,
    rw_read: mc::sync::RwLockReadGuard<'static, u64>,
    rw_write: mc::sync::RwLockWriteGuard<'static, u64>,
    smutex: mc::sync::SharedMutexGuard<'static, u64>,
    message: mc::Message<'static, Words>,
}

/// One handle of every kind: handles (unlike guards) work in a forked
/// copy, except a camlbox receiver, which receives only in its process.
struct Handles {
    pool: Pool,
    heap: Heap<Words>,
    rx: Camlbox<Words>,
    tx: mc::camlbox::Sender<Words>,
    queue: mc::SQueue<u64>,
}

thread_local! {
    static GUARDS: RefCell<Option<Guards>> = const { RefCell::new(None) };
    static HANDLES: RefCell<Option<Handles>> = const { RefCell::new(None) };
}

/// Uses every inherited handle: what works in a copy, and the receiver's
/// refusal.
#[mc::process]
fn use_inherited_handles(_: ()) -> Vec<String> {
    let mut bad = Vec::new();
    HANDLES.with(|h| {
        let h = h.borrow();
        let Some(h) = h.as_ref() else {
            bad.push("no handles".to_string());
            return;
        };
        if h.pool.stats().used == 0 {
            bad.push("pool: nothing used".into());
        }
        match h.heap.copy() {
            Ok(v) if v == words("h", 2) => {}
            other => bad.push(format!("heap: {other:?}")),
        }
        if let Err(e) = h.tx.send(&words("from-worker", 1)) {
            bad.push(format!("sender: {e}"));
        }
        if h.rx.is_receiver() || !matches!(h.rx.get(0), Err(mc::CamlboxError::NotReceiver)) {
            bad.push("a forked copy of a receiver receives".into());
        }
        if let Err(e) = h.queue.push(&5) {
            bad.push(format!("queue: {e}"));
        }
    });
    // Dropping the copies must not take the objects away from their owner.
    HANDLES.with(|h| drop(h.borrow_mut().take()));
    bad
}

fn copies_of_handles_in_workers_work() -> Result<String, String> {
    let pool = Pool::create(16 << 20).map_err(err)?;
    let heap = Heap::create(&pool, &words("h", 2)).map_err(err)?;
    let (rx, id) = Camlbox::<Words>::create(2, 1024).map_err(err)?;
    let tx = id.sender().map_err(err)?;
    let queue = mc::SQueue::<u64>::create(&pool, &()).map_err(err)?;
    HANDLES.with(|h| {
        *h.borrow_mut() = Some(Handles {
            pool,
            heap,
            rx,
            tx,
            queue,
        })
    });
    in_run(|| {
        let p = use_inherited_handles::start(()).map_err(err)?;
        let bad = use_inherited_handles::join(p).map_err(err)?;
        ensure!(bad.is_empty(), "inherited handles: {bad:?}");
        HANDLES.with(|h| -> Result<(), String> {
            let mut h = h.borrow_mut();
            let h = h.as_mut().ok_or("handles gone")?;
            let slots = h.rx.wait_timeout(Duration::from_secs(10));
            ensure!(slots.len() == 1, "slots {slots:?}");
            let got = h.rx.get_copy(slots[0]).map_err(err)?;
            ensure!(got == words("from-worker", 1), "got {got:?}");
            h.rx.delete(slots[0]);
            ensure!(h.queue.pop_copy().map_err(err)? == Some(5), "queue");
            ensure!(h.heap.copy().map_err(err)? == words("h", 2), "heap");
            Ok(())
        })
    })?;
    let seg = HANDLES.with(|h| {
        let h = h.borrow_mut().take();
        h.map(|h| h.rx.segment_name().to_owned())
    });
    let seg = seg.ok_or("handles gone")?;
    ensure!(
        !std::path::Path::new(&format!("/dev/shm/{seg}")).exists(),
        "the box's segment outlived its receiver"
    );
    Ok("pool, heap, sender and queue work in a worker's copy; the receiver refuses".into())
}

/// The addresses and descriptors the checking workers need.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Targets {
    read_heap: HeapDescr<Words>,
    pin_heap: HeapDescr<Words>,
    lock_heap: HeapDescr<Mutex<u64>>,
    mutex: usize,
    rwlock: usize,
}

/// Tries every guard of the inherited copy; each must panic, naming
/// itself and `fork`. Then drops them all (which must release nothing).
#[mc::process]
fn use_inherited_guards(_: ()) -> Vec<String> {
    std::panic::set_hook(Box::new(|_| {}));
    let mut bad = Vec::new();
    let mut check = |what: &str, f: &dyn Fn(&Guards)| {
        let r = GUARDS.with(|g| {
            let g = g.borrow();
            catch_unwind(AssertUnwindSafe(|| f(g.as_ref().expect("guards"))))
        });
        match r {
            Ok(()) => bad.push(format!("{what}: read through a copy")),
            Err(p) => {
                let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
                if !msg.contains("fork") {
                    bad.push(format!("{what}: unexpected panic {msg:?}"));
                }
            }
        }
    };
    check("ReadGuard", &|g| {
        std::hint::black_box(g.read.len());
    });
    check("PinGuard", &|g| {
        std::hint::black_box(g.pin.len());
    });
    check("MutexGuard", &|g| {
        std::hint::black_box(*g.mutex);
    });
    check("RwLockReadGuard", &|g| {
        std::hint::black_box(*g.rw_read);
    });
    check("RwLockWriteGuard", &|g| {
        std::hint::black_box(*g.rw_write);
    });
    check("SharedMutexGuard", &|g| {
        std::hint::black_box(*g.smutex);
    });
    check("Message", &|g| {
        std::hint::black_box(g.message.len());
    });
    // Dropping the copies must release nothing.
    GUARDS.with(|g| drop(g.borrow_mut().take()));
    bad
}

/// What a fresh worker finds of the guards' objects: which locks it can
/// take (within `SHORT`), and how many values of the pin heap are pinned.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Found {
    heap: bool,
    mutex: bool,
    rwlock: bool,
    smutex: bool,
    pins: usize,
}

const HELD: Found = Found {
    heap: false,
    mutex: false,
    rwlock: false,
    smutex: false,
    pins: 1,
};

const FREE: Found = Found {
    heap: true,
    mutex: true,
    rwlock: true,
    smutex: true,
    pins: 0,
};

#[mc::process]
fn lock_states(t: Targets) -> Found {
    let heap = t.read_heap.open().expect("open");
    let pins = t
        .pin_heap
        .open()
        .expect("open")
        .stats()
        .expect("stats")
        .pinned;
    // SAFETY: addresses of a `Mutex<u64>` and an `RwLock<u64>` in a shared
    // mapping made before the run.
    let (m, rw) = unsafe {
        (
            &*std::ptr::with_exposed_provenance::<Mutex<u64>>(t.mutex),
            &*std::ptr::with_exposed_provenance::<RwLock<u64>>(t.rwlock),
        )
    };
    let lock_heap = t.lock_heap.open().expect("open");
    let g = lock_heap.read().expect("read");
    let smutex = g.lock_timeout(SHORT).is_ok();
    Found {
        heap: heap.modify_timeout(SHORT, |_, _| ()).is_ok(),
        mutex: m.lock_timeout(SHORT).is_ok(),
        rwlock: rw.write_timeout(SHORT).is_ok(),
        smutex,
        pins,
    }
}

fn copies_of_guards_in_other_processes_are_inert() -> Result<String, String> {
    let pool: &'static Pool = Box::leak(Box::new(Pool::create(32 << 20).map_err(err)?));
    let read_heap: &'static Heap<Words> =
        Box::leak(Box::new(Heap::create(pool, &words("r", 4)).map_err(err)?));
    let pin_heap: &'static Heap<Words> =
        Box::leak(Box::new(Heap::create(pool, &words("p", 4)).map_err(err)?));
    let lock_heap: &'static Heap<Mutex<u64>> =
        Box::leak(Box::new(Heap::create(pool, &Mutex::new(7)).map_err(err)?));
    let mutex: &'static Mutex<u64> = shared(Mutex::new(1));
    let rwlock: &'static RwLock<u64> = shared(RwLock::new(2));
    let rwlock2: &'static RwLock<u64> = shared(RwLock::new(3));
    let lock_view: &'static mc::ReadGuard<'static, Mutex<u64>> =
        Box::leak(Box::new(lock_heap.read().map_err(err)?));
    let (rx, id) = Camlbox::<Words>::create(1, 1024).map_err(err)?;
    let rx: &'static mut Camlbox<Words> = Box::leak(Box::new(rx));
    id.sender()
        .map_err(err)?
        .send(&words("m", 2))
        .map_err(err)?;
    let slot = rx.wait_timeout(Duration::from_secs(5));
    ensure!(slot.len() == 1, "no message");
    let rx: &'static Camlbox<Words> = rx;
    let guards = Guards {
        read: read_heap.read().map_err(err)?,
        pin: pin_heap.pin().map_err(err)?,
        mutex: mutex.lock().map_err(err)?,
        rw_read: rwlock.read().map_err(err)?,
        rw_write: rwlock2.write().map_err(err)?,
        smutex: lock_view.lock().map_err(err)?,
        message: rx.get(slot[0]).map_err(err)?,
    };
    GUARDS.with(|g| *g.borrow_mut() = Some(guards));
    let targets = Targets {
        read_heap: read_heap.descr(),
        pin_heap: pin_heap.descr(),
        lock_heap: lock_heap.descr(),
        mutex: std::ptr::from_ref(mutex).expose_provenance(),
        rwlock: std::ptr::from_ref(rwlock2).expose_provenance(),
    };
    let t2 = targets.clone();
    in_run(move || {
        // Copies in a worker (forked from the master, which `run` forked):
        let p = use_inherited_guards::start(()).map_err(err)?;
        let bad = use_inherited_guards::join(p).map_err(err)?;
        ensure!(bad.is_empty(), "inherited guards: {bad:?}");
        // Copies in a child forked by user code in the first process:
        let pid = fork_child(|| {
            std::panic::set_hook(Box::new(|_| {}));
            let r = GUARDS.with(|g| {
                catch_unwind(AssertUnwindSafe(|| {
                    g.borrow().as_ref().map(|g| *g.mutex).unwrap_or(0)
                }))
            });
            GUARDS.with(|g| drop(g.borrow_mut().take()));
            i32::from(r.is_ok())
        });
        expect_exit_ok(pid, Duration::from_secs(30))?;
        // Nothing was released by the copies.
        let p = lock_states::start(t2.clone()).map_err(err)?;
        let found = lock_states::join(p).map_err(err)?;
        ensure!(found == HELD, "after the copies were dropped: {found:?}");
        // The caller's own guards work, and release once.
        GUARDS.with(|g| -> Result<(), String> {
            let g = g.borrow();
            let g = g.as_ref().ok_or("guards gone")?;
            ensure!(g.read[0].as_str() == "r-0", "read");
            ensure!(g.pin[3].as_str() == "p-3", "pin");
            ensure!(
                *g.mutex == 1 && *g.rw_read == 2 && *g.rw_write == 3,
                "locks"
            );
            ensure!(*g.smutex == 7, "smutex");
            ensure!(g.message[1].as_str() == "m-1", "message");
            Ok(())
        })?;
        GUARDS.with(|g| drop(g.borrow_mut().take()));
        let p = lock_states::start(t2).map_err(err)?;
        let found = lock_states::join(p).map_err(err)?;
        ensure!(
            found == FREE,
            "after the caller dropped its guards: {found:?}"
        );
        Ok(())
    })?;
    ensure!(*mutex.lock().map_err(err)? == 1, "mutex value");
    // The pool and the box live on (leaked, for the guards' `'static`
    // borrows) until this program ends: their segments' names go now, so
    // that nothing is left in /dev/shm.
    for name in [pool.name(), rx.segment_name()] {
        std::fs::remove_file(format!("/dev/shm/{name}")).map_err(err)?;
    }
    let _ = targets;
    Ok(
        "7 kinds of guards: copies in a worker and in a user fork refused and released nothing"
            .into(),
    )
}

// ---------------------------------------------------------------------
// Per-thread lock bookkeeping does not follow a fork.

#[mc::process]
fn read_and_try_write(descr: HeapDescr<Words>) -> Vec<String> {
    let heap = descr.open().expect("open");
    let mut out = Vec::new();
    match heap.read() {
        Ok(g) => out.push(g[0].as_str().to_owned()),
        Err(e) => out.push(format!("read: {e}")),
    }
    match heap.modify_timeout(SHORT, |_, _| ()) {
        Err(HeapError::Timeout) => out.push("timeout".into()),
        Ok(()) => out.push("modified".into()),
        Err(e) => out.push(format!("modify: {e}")),
    }
    out
}

fn held_flags_do_not_follow_fork() -> Result<String, String> {
    let pool = Pool::create(16 << 20).map_err(err)?;
    let heap = Heap::create(&pool, &words("h", 2)).map_err(err)?;
    let descr = heap.descr();
    // The caller holds a read guard while the run forks the master (and
    // the master every worker).
    let guard = heap.read().map_err(err)?;
    let r = in_run(|| {
        let p = read_and_try_write::start(descr.clone()).map_err(err)?;
        let out = read_and_try_write::join(p).map_err(err)?;
        // Same thread, same process: still refused, not a deadlock.
        let again = heap.read().err();
        Ok((out, again))
    })?;
    ensure!(guard[0].as_str() == "h-0", "guard");
    ensure!(
        r.0 == ["h-0", "timeout"],
        "worker saw the caller's bookkeeping: {:?}",
        r.0
    );
    ensure!(
        matches!(r.1, Some(HeapError::Reentrant)),
        "the caller's own second read: {:?}",
        r.1
    );
    Ok("a worker reads a heap its master's caller holds; writers time out".into())
}

/// Adds 1 to every word of a block of pool memory, opened by descriptor.
#[mc::process]
fn bump_words(d: mc::PoolMemDescr) -> Result<usize, mc::Error> {
    let mem = d.open()?;
    for w in mem.words() {
        w.fetch_add(1, Ordering::SeqCst);
    }
    Ok(mem.words().len())
}

/// Raw pool memory (`alloc_mem`): workers open a block by descriptor and
/// see and change the same bytes; the block goes back to the pool when the
/// last handle, in any process, is gone.
fn pool_memory_is_shared_by_descriptor() -> Result<String, String> {
    let pool = mc::Pool::create(8 << 20).map_err(err)?;
    let before = pool.stats().used;
    let mem = pool.alloc_mem(4096).map_err(err)?;
    let d = mem.descr();
    in_run(move || -> Result<(), String> {
        let pids: Vec<_> = (0..3)
            .map(|_| bump_words::start(d.clone()))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        for p in pids {
            let n = bump_words::join(p).map_err(err)?.map_err(err)?;
            ensure!(n == 512, "words: {n}");
        }
        ensure!(
            mem.words().iter().all(|w| w.load(Ordering::SeqCst) == 3),
            "every word bumped by each of the three workers"
        );
        Ok(())
    })?;
    ensure!(
        pool.stats().used == before,
        "the block went back to the pool"
    );
    Ok("3 workers bumped every word; the block went back to the pool".into())
}

/// A fork inside `PlainMap::update`'s closure: the child's copy of the
/// call holds no lock, and refuses to write (it panics, naming the map)
/// instead of changing the map beside the parent; the parent's change
/// goes on.
fn plain_map_change_forked_in_its_closure_writes_nothing() -> Result<String, String> {
    use nix::unistd::{fork, ForkResult};
    let pool = Pool::create(8 << 20).map_err(err)?;
    let m = PlainMap::<u64, u64>::create(&pool, 8).map_err(err)?;
    let parent = std::process::id();
    let mut child = None;
    // The child's panic is expected: not printed.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.update(&7, |_| {
            // SAFETY: this program is single-threaded; the child leaves
            // through `exit_now` below.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => Some(1),
                Ok(ForkResult::Parent { child: c }) => {
                    child = Some(c.as_raw());
                    Some(2)
                }
                Err(_) => Some(3),
            }
        })
    }));
    if std::process::id() != parent {
        // The child: its copy of the call must have panicked.
        common::exit_now(if r.is_err() { 0 } else { 1 });
    }
    std::panic::set_hook(hook);
    let r = r.map_err(|_| "the parent's update panicked".to_string())?;
    ensure!(r.map_err(err)? == Some(2), "the parent's change");
    let child = child.ok_or("no child")?;
    expect_exit_ok(child, Duration::from_secs(10))
        .map_err(|e| format!("the child wrote instead of refusing: {e}"))?;
    ensure!(m.len() == 1, "len {}", m.len());
    let all = m.entries().map_err(err)?;
    ensure!(all == [(7, 2)], "entries {all:?}");
    Ok("the child's copy of the change panicked; the map holds the parent's".into())
}

fn main() {
    // A hung run ends the test (SIGALRM).
    common::watchdog(300);
    run_scenarios(&[
        (
            "pool_memory_is_shared_by_descriptor",
            pool_memory_is_shared_by_descriptor,
        ),
        (
            "pin_guard_moved_into_run_keeps_its_value",
            pin_guard_moved_into_run_keeps_its_value,
        ),
        (
            "read_guard_moved_into_run_keeps_the_lock",
            read_guard_moved_into_run_keeps_the_lock,
        ),
        (
            "mutex_guard_moved_into_run_keeps_the_lock",
            mutex_guard_moved_into_run_keeps_the_lock,
        ),
        (
            "last_pool_handle_moved_into_run_keeps_the_pool",
            last_pool_handle_moved_into_run_keeps_the_pool,
        ),
        (
            "camlbox_receiver_moved_into_run_receives",
            camlbox_receiver_moved_into_run_receives,
        ),
        (
            "copies_of_guards_in_other_processes_are_inert",
            copies_of_guards_in_other_processes_are_inert,
        ),
        (
            "held_flags_do_not_follow_fork",
            held_flags_do_not_follow_fork,
        ),
        (
            "copies_of_handles_in_workers_work",
            copies_of_handles_in_workers_work,
        ),
        (
            "plain_map_change_forked_in_its_closure_writes_nothing",
            plain_map_change_forked_in_its_closure_writes_nothing,
        ),
    ]);
}
