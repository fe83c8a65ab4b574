//! Runs the `mcctl` binary against real segments. `harness = false`: the
//! test forks, so it runs in one thread.

use std::process::Command;
use std::time::{Duration, Instant};

fn mcctl(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcctl"))
        .args(args)
        .output()
        .expect("run mcctl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

static CHECKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn check(name: &str, ok: bool, failures: &mut Vec<String>, detail: &str) {
    CHECKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if ok {
        println!("test {name} ... ok");
    } else {
        println!("test {name} ... FAILED\n{detail}");
        failures.push(name.to_owned());
    }
}

/// `mcctl services` against a running server: it lists the service and its
/// workers, restarts them and stops the server by the service's name.
fn services(tag: &str, failures: &mut Vec<String>) {
    let name = format!("{tag}-svc");
    let server = mc_serve::ServerBuilder::new()
        .service(mc_serve::ServiceConfig::new(&name, "h").listen("127.0.0.1:0"))
        .handler("h", |_, _: &()| Ok(()))
        .bind()
        .expect("bind");
    let svc = name.clone();
    let run = server.run_with(move |c| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let serving = |c: &mc_serve::Control| {
            c.workers(None)
                .is_ok_and(|w| w.iter().all(|w| w.state == mc_serve::WorkerState::Serving))
        };
        while !serving(c) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let pids: Vec<String> = c
            .workers(None)
            .map(|w| w.iter().map(|w| w.pid.to_string()).collect())
            .unwrap_or_default();
        let listed = mcctl(&["services"]);
        let restarted = mcctl(&["services", "restart", &svc]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.workers(None).is_ok_and(|w| {
            w.iter()
                .all(|w| w.restarts == 1 && w.state == mc_serve::WorkerState::Serving)
        }) && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let after = mcctl(&["services"]);
        let stopped = mcctl(&["services", "stop", &svc]);
        c.wait_stop();
        (pids, listed, restarted, after, stopped)
    });
    let Ok((_, (pids, listed, restarted, after, stopped))) = run else {
        check("services_run", false, failures, &format!("{run:?}"));
        return;
    };
    check(
        "services_lists_workers",
        listed.0 && listed.1.contains(&name) && pids.iter().all(|p| listed.1.contains(p.as_str())),
        failures,
        &format!("{pids:?}\n{}", listed.1),
    );
    check(
        "services_restart_replaces_workers",
        restarted.0 && after.0 && !pids.iter().any(|p| after.1.contains(&format!(" {p} "))),
        failures,
        &format!("{}\n{}", restarted.1, after.1),
    );
    check(
        "services_stop_ends_the_server",
        stopped.0 && stopped.1.contains("asked to stop"),
        failures,
        &stopped.1,
    );
    let (ok, out) = mcctl(&["services", "stop", "no-such-service-here"]);
    check(
        "services_stop_unknown_is_an_error",
        !ok && out.contains("no running server has a service named"),
        failures,
        &out,
    );
}

fn main() {
    let mut failures = Vec::new();
    let tag = format!("mcctl-test-{}", std::process::id());

    // A live pool with a root heap.
    let pool = mc::Pool::create_named(&tag, 4 << 20).expect("pool");
    let heap = mc::Heap::create(&pool, &vec![String::from("hello"); 100]).expect("heap");
    heap.set_pool_root();
    let (ok, out) = mcctl(&["list"]);
    check(
        "list_shows_the_pool",
        ok && out.contains(pool.name()) && out.contains("alive"),
        &mut failures,
        &out,
    );
    let (ok, out) = mcctl(&["show", &tag]);
    check(
        "show_reports_heaps",
        ok && out.contains("(root heap)") && out.contains("live") && out.contains("1 chunks"),
        &mut failures,
        &out,
    );
    // A pool that another process cut short: `show` and `list` report it,
    // never die of SIGBUS.
    let cut = mc::Pool::create_named(&format!("{tag}-cut"), 4 << 20).expect("pool");
    let cut_heap = mc::Heap::create(&cut, &vec![1u64; 1000]).expect("heap");
    cut_heap.set_pool_root();
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{}", cut.name()))
        .and_then(|f| f.set_len(4096))
        .expect("truncate");
    let out = Command::new(env!("CARGO_BIN_EXE_mcctl"))
        .args(["show", &format!("{tag}-cut")])
        .output()
        .expect("run mcctl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    check(
        "show_of_a_cut_pool_is_an_error_not_a_crash",
        out.status.code() == Some(1) && text.contains("cut short"),
        &mut failures,
        &format!("{:?}: {text}", out.status),
    );
    let (ok, out) = mcctl(&["list"]);
    check(
        "list_survives_a_cut_pool",
        ok && out.contains(cut.name()),
        &mut failures,
        &out,
    );
    drop(cut_heap);
    drop(cut);

    let (ok, out) = mcctl(&["show", "no-such-pool-anywhere"]);
    check(
        "show_unknown_is_an_error",
        !ok && out.contains("no pool named"),
        &mut failures,
        &out,
    );

    // A stale pool: created by a child that exits without removing it.
    let stale = format!("{tag}-stale");
    // SAFETY: the test is single-threaded (harness = false); the child only
    // creates a pool and leaves with `_exit`.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let code = match mc::Pool::create_named(&stale, 1 << 20) {
            Ok(p) => {
                p.persist();
                0
            }
            Err(_) => 1,
        };
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // SAFETY: plain waitpid on our child.
        let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if r == child || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stale_seg = format!("mc.pool.{stale}");
    let (ok, out) = mcctl(&["clean", "--dry-run"]);
    check(
        "dry_run_names_the_stale_pool",
        ok && out.contains(&stale_seg),
        &mut failures,
        &out,
    );
    let (ok, out) = mcctl(&["clean"]);
    let gone = !std::path::Path::new(&format!("/dev/shm/{stale_seg}")).exists();
    check(
        "clean_removes_only_stale_pools",
        ok && gone && std::path::Path::new(&format!("/dev/shm/{}", pool.name())).exists(),
        &mut failures,
        &out,
    );

    services(&tag, &mut failures);

    drop(heap);
    drop(pool);
    let checked = CHECKED.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{} passed, {} failed",
        checked - failures.len(),
        failures.len()
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
