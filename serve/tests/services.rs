//! Services on 127.0.0.1 and Unix sockets, driven by real clients: shared
//! state across workers, crashes, kills, recycling, restarts, graceful
//! stops and bad input. Every wait is bounded.
//!
//! Prints one line per scenario and `N passed, M failed`; arguments filter
//! scenarios by name.

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mc_serve::{
    Connection, Control, ServeError, ServerBuilder, ServerConfig, ServiceConfig, WorkerState,
};
use mc_testkit::run_scenarios;

type Table = mc::SHashtbl<String, u64>;

/// Runs `f` on the table. A worker killed in the middle of a change leaves
/// the table's heap poisoned: it is then recovered (used as the killed
/// worker left it: the count it was bumping, for a request that was never
/// answered, is bumped or not) and `f` runs again.
fn on_table<R>(
    t: &Table,
    f: impl Fn(&Table) -> Result<R, mc::StructureError>,
) -> Result<R, mc::StructureError> {
    match f(t) {
        Err(mc::StructureError::Heap(mc::HeapError::Poisoned)) => {
            t.heap().recover()?;
            f(t)
        }
        r => r,
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Reads an HTTP request's head; returns its path.
fn read_request(conn: &mut Connection) -> io::Result<String> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(conn);
    let mut first = String::new();
    r.read_line(&mut first)?;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    Ok(first.split_whitespace().nth(1).unwrap_or("/").to_owned())
}

fn respond(conn: &mut Connection, status: u16, body: &str) -> io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

/// A GET with `Connection: close`: the status and the body.
fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status in {text:?}")))?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Ok((status, body))
}

/// The `/count/KEY` handler: counts in the shared table, answers with the
/// worker's pid.
fn count(mut conn: Connection, table: &Table) -> io::Result<()> {
    let path = read_request(&mut conn)?;
    if path == "/panic" {
        panic!("asked to panic");
    }
    if let Some(key) = path.strip_prefix("/count/") {
        let key = key.to_owned();
        let bumped = on_table(table, |t| t.modify_value(&key, |_, mut n| *n += 1))
            .map_err(io::Error::other)?;
        if bumped.is_none() {
            return respond(&mut conn, 404, "no such key");
        }
    }
    respond(&mut conn, 200, &std::process::id().to_string())
}

/// A table with the keys `k0`..`k9` at 0, in a pool made before the run.
fn table() -> Result<(mc::Pool, Table), String> {
    let pool = mc::Pool::create(64 << 20).map_err(err)?;
    let t = Table::create(&pool, &()).map_err(err)?;
    for k in 0..10 {
        t.add(&format!("k{k}"), &0).map_err(err)?;
    }
    Ok((pool, t))
}

fn counting_server(t: &Table, svc: ServiceConfig) -> Result<mc_serve::Server<Table>, ServeError> {
    let d = t.descr();
    ServerBuilder::with_init(move |_| Ok(d.open()?))
        .service(svc)
        .handler("count", count)
        .bind()
}

/// Waits until every worker of `service` serves (at most 20 s).
fn wait_serving(c: &Control, service: &str) -> Result<Vec<u32>, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = c.workers(Some(service)).map_err(err)?;
        if w.iter()
            .all(|w| w.state == WorkerState::Serving && w.pid != 0)
        {
            return Ok(w.iter().map(|w| w.pid).collect());
        }
        if Instant::now() > deadline {
            return Err(format!("workers not serving after 20 s: {w:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `n` GETs of `/count/KEY` over `conns` concurrent clients; the pids that
/// answered, and the failures.
fn load(addr: SocketAddr, n: usize, conns: usize, key: &str) -> (BTreeSet<String>, Vec<String>) {
    let pids = std::sync::Mutex::new(BTreeSet::new());
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for c in 0..conns {
            let (pids, failures) = (&pids, &failures);
            s.spawn(move || {
                for _ in (c..n).step_by(conns) {
                    match get(addr, &format!("/count/{key}")) {
                        Ok((200, pid)) => {
                            pids.lock().unwrap().insert(pid);
                        }
                        Ok((status, body)) => {
                            failures.lock().unwrap().push(format!("{status} {body}"))
                        }
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                }
            });
        }
    });
    (pids.into_inner().unwrap(), failures.into_inner().unwrap())
}

fn count_of(t: &Table, key: &str) -> Result<u64, String> {
    on_table(t, |t| t.find_copy(&key.to_owned()))
        .map_err(err)?
        .ok_or_else(|| format!("{key} missing"))
}

/// Runs a counting service `svc` while `n` requests to `/count/KEY` go out
/// over `conns` connections; checks that every one was answered and
/// counted once. The report and the pids that answered.
fn count_run(
    svc: ServiceConfig,
    n: usize,
    conns: usize,
    key: &str,
) -> Result<(mc_serve::ServeReport, BTreeSet<String>), String> {
    let (_pool, t) = table()?;
    let name = svc.name.clone();
    let server = counting_server(&t, svc).map_err(err)?;
    let k = key.to_owned();
    let (report, r) = server
        .run_with(
            move |c| -> Result<(BTreeSet<String>, Vec<String>), String> {
                wait_serving(c, &name)?;
                let addr = c.tcp_addr(&name).ok_or("no TCP address")?;
                Ok(load(addr, n, conns, &k))
            },
        )
        .map_err(err)?;
    let (pids, failures) = r?;
    let counted = count_of(&t, key)?;
    if counted != n as u64 || !failures.is_empty() {
        return Err(format!("count {counted} of {n}, failures {failures:?}"));
    }
    Ok((report, pids))
}

// ---------------------------------------------------------------------

/// 1,000 requests over 8 connections: the shared count is exact, and more
/// than one worker served.
fn shared_count_is_exact() -> Result<String, String> {
    let svc = ServiceConfig::new("count", "count")
        .listen("127.0.0.1:0")
        .workers(2);
    let (report, pids) = count_run(svc, 1000, 8, "k1")?;
    if pids.len() < 2 {
        return Err(format!("served by {pids:?} only"));
    }
    if report.started != 2 || !report.failures.is_empty() {
        return Err(format!("report {report:?}"));
    }
    Ok(format!("count 1000 from {} worker pids", pids.len()))
}

/// A worker killed with SIGKILL during a load is replaced within 500 ms;
/// only the connection it held may fail.
fn killed_worker_is_replaced() -> Result<String, String> {
    let (_pool, t) = table()?;
    let server = counting_server(
        &t,
        ServiceConfig::new("count", "count")
            .listen("127.0.0.1:0")
            .workers(2),
    )
    .map_err(err)?;
    let (report, r) = server
        .run_with(|c| -> Result<(Duration, usize, u64), String> {
            let pids = wait_serving(c, "count")?;
            let addr = c.tcp_addr("count").ok_or("no TCP address")?;
            let (done, failed) = (AtomicU64::new(0), AtomicU64::new(0));
            let took = std::thread::scope(|s| -> Result<Duration, String> {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..150 {
                            match get(addr, "/count/k2") {
                                Ok((200, _)) => done.fetch_add(1, Ordering::SeqCst),
                                _ => failed.fetch_add(1, Ordering::SeqCst),
                            };
                        }
                    });
                }
                while done.load(Ordering::SeqCst) < 100 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let victim = nix::unistd::Pid::from_raw(pids[0] as i32);
                nix::sys::signal::kill(victim, nix::sys::signal::Signal::SIGKILL).map_err(err)?;
                let killed = Instant::now();
                loop {
                    let w = c.workers(Some("count")).map_err(err)?;
                    if w[0].pid != 0 && w[0].pid != pids[0] && w[0].state == WorkerState::Serving {
                        return Ok(killed.elapsed());
                    }
                    if killed.elapsed() > Duration::from_secs(10) {
                        return Err(format!("no replacement after 10 s: {w:?}"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })?;
            Ok((
                took,
                failed.load(Ordering::SeqCst) as usize,
                done.load(Ordering::SeqCst),
            ))
        })
        .map_err(err)?;
    let (took, failed, done) = r?;
    let n = count_of(&t, "k2")?;
    if took > Duration::from_millis(500) {
        return Err(format!("replacement took {took:?}"));
    }
    if failed > 1 || n < done {
        return Err(format!(
            "{failed} failed requests, count {n} for {done} answers"
        ));
    }
    if report.failures.len() != 1 || !report.failures[0].contains("SIGKILL") {
        return Err(format!("report {report:?}"));
    }
    Ok(format!(
        "replaced in {took:?}; {failed} request failed; {}",
        report.failures[0]
    ))
}

/// `SIGTERM` while 8 slow requests are in flight: each gets its whole
/// answer, the run returns, and no worker or socket file is left.
fn sigterm_finishes_accepted_requests() -> Result<String, String> {
    let sock = std::env::temp_dir().join(format!("mc-serve-test-{}.sock", std::process::id()));
    let server = ServerBuilder::new()
        .service(
            ServiceConfig::new("slow", "slow")
                .listen("127.0.0.1:0")
                .listen(&format!("unix:{}", sock.display()))
                .workers(2)
                .threads(4),
        )
        .handler("slow", |mut conn, _: &()| {
            let _ = read_request(&mut conn)?;
            // "Accepted": the head goes out at once, the body later.
            write!(conn, "HTTP/1.1 200 X\r\nConnection: close\r\n\r\n")?;
            conn.flush()?;
            std::thread::sleep(Duration::from_millis(300));
            write!(conn, "complete {}", std::process::id())
        })
        .bind()
        .map_err(err)?;
    if !sock.exists() {
        return Err("the Unix socket file is missing".into());
    }
    let client_sock = sock.clone();
    let (report, r) = server
        .run_with(move |c| -> Result<(Vec<String>, Vec<u32>), String> {
            let sock = client_sock;
            let pids = wait_serving(c, "slow")?;
            let addr = c.tcp_addr("slow").ok_or("no TCP address")?;
            let accepted = Arc::new(AtomicU64::new(0));
            let bodies = std::thread::scope(|s| {
                let clients: Vec<_> = (0..8)
                    .map(|i| {
                        let accepted = accepted.clone();
                        let sock = &sock;
                        s.spawn(move || -> io::Result<String> {
                            let mut text = String::new();
                            let mut head = [0u8; 37];
                            if i % 2 == 0 {
                                let mut st = TcpStream::connect(addr)?;
                                st.set_read_timeout(Some(Duration::from_secs(20)))?;
                                write!(st, "GET / HTTP/1.1\r\n\r\n")?;
                                st.read_exact(&mut head)?;
                                accepted.fetch_add(1, Ordering::SeqCst);
                                st.read_to_string(&mut text)?;
                            } else {
                                let mut st = std::os::unix::net::UnixStream::connect(sock)?;
                                st.set_read_timeout(Some(Duration::from_secs(20)))?;
                                write!(st, "GET / HTTP/1.1\r\n\r\n")?;
                                st.read_exact(&mut head)?;
                                accepted.fetch_add(1, Ordering::SeqCst);
                                st.read_to_string(&mut text)?;
                            }
                            Ok(text)
                        })
                    })
                    .collect();
                let deadline = Instant::now() + Duration::from_secs(20);
                while accepted.load(Ordering::SeqCst) < 8 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // As `kill -TERM` from outside would.
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM);
                clients
                    .into_iter()
                    .map(|h| match h.join() {
                        Ok(Ok(t)) => t,
                        Ok(Err(e)) => format!("error: {e}"),
                        Err(_) => "client panicked".into(),
                    })
                    .collect::<Vec<_>>()
            });
            Ok((bodies, pids))
        })
        .map_err(err)?;
    let (bodies, pids) = r?;
    if let Some(b) = bodies.iter().find(|b| !b.starts_with("complete ")) {
        return Err(format!("an accepted request got {b:?}; all: {bodies:?}"));
    }
    if report.killed_at_stop != 0 || !report.failures.is_empty() {
        return Err(format!("report {report:?}"));
    }
    for p in pids {
        if std::path::Path::new(&format!("/proc/{p}")).exists() {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            if !stat.contains(") Z") {
                return Err(format!("worker {p} is still running"));
            }
        }
    }
    if sock.exists() {
        return Err("the Unix socket file was left".into());
    }
    Ok("8 in-flight requests (TCP and Unix) completed; nothing left".into())
}

/// `max_requests = 50`: workers are replaced and the count stays exact.
fn max_requests_recycles_workers() -> Result<String, String> {
    let svc = ServiceConfig::new("count", "count")
        .listen("127.0.0.1:0")
        .workers(2)
        .max_requests(50);
    let (report, pids) = count_run(svc, 400, 4, "k3")?;
    if report.recycled < 6 || pids.len() < 8 || !report.failures.is_empty() {
        return Err(format!("{} pids; report {report:?}", pids.len()));
    }
    Ok(format!(
        "count 400; {} workers recycled, {} pids answered",
        report.recycled,
        pids.len()
    ))
}

/// `SIGHUP`: every worker is replaced, and a client polling throughout
/// sees no refused connection.
fn sighup_replaces_every_worker() -> Result<String, String> {
    let (_pool, t) = table()?;
    let server = counting_server(
        &t,
        ServiceConfig::new("count", "count")
            .listen("127.0.0.1:0")
            .workers(3),
    )
    .map_err(err)?;
    let (_report, r) = server
        .run_with(|c| -> Result<(usize, Vec<String>), String> {
            let before = wait_serving(c, "count")?;
            let addr = c.tcp_addr("count").ok_or("no TCP address")?;
            let stop = AtomicU64::new(0);
            std::thread::scope(|s| {
                let poller = s.spawn(|| {
                    let (mut ok, mut bad) = (0usize, Vec::new());
                    while stop.load(Ordering::SeqCst) == 0 {
                        match get(addr, "/count/k4") {
                            Ok((200, _)) => ok += 1,
                            Ok((st, b)) => bad.push(format!("{st} {b}")),
                            Err(e) => bad.push(e.to_string()),
                        }
                    }
                    (ok, bad)
                });
                std::thread::sleep(Duration::from_millis(50));
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP);
                let deadline = Instant::now() + Duration::from_secs(20);
                let r = loop {
                    let w = c.workers(Some("count")).map_err(err);
                    let done = w.as_ref().is_ok_and(|w| {
                        w.iter().all(|w| {
                            w.pid != 0
                                && !before.contains(&w.pid)
                                && w.state == WorkerState::Serving
                        })
                    });
                    if done {
                        break Ok(());
                    }
                    if Instant::now() > deadline {
                        break Err(format!("workers not all replaced: {w:?}"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                std::thread::sleep(Duration::from_millis(50));
                stop.store(1, Ordering::SeqCst);
                let (ok, bad) = poller.join().map_err(|_| "poller panicked".to_string())?;
                r.map(|()| (ok, bad))
            })
        })
        .map_err(err)?;
    let (ok, bad) = r?;
    if !bad.is_empty() || ok == 0 {
        return Err(format!("{ok} answers, failures {bad:?}"));
    }
    Ok(format!(
        "every worker replaced; {ok} requests, none refused"
    ))
}

/// A dynamic workload (1 to 4 workers of 2 threads) under 16 concurrent
/// slow requests grows to 4 workers, and shrinks back to 1 when idle.
fn dynamic_workload_grows_and_shrinks() -> Result<String, String> {
    let server = ServerBuilder::new()
        .service(
            ServiceConfig::new("dyn", "slow")
                .listen("127.0.0.1:0")
                .threads(2)
                .dynamic(1, 4, 1, 2)
                .retire_after(Duration::from_millis(100)),
        )
        .handler("slow", |mut conn, _: &()| {
            let _ = read_request(&mut conn)?;
            std::thread::sleep(Duration::from_millis(100));
            respond(&mut conn, 200, "slow")
        })
        .bind()
        .map_err(err)?;
    let live = |c: &Control| -> Result<usize, String> {
        Ok(c.workers(Some("dyn"))
            .map_err(err)?
            .iter()
            .filter(|w| w.pid != 0)
            .count())
    };
    let (_report, r) = server
        .run_with(move |c| -> Result<(usize, usize, Duration), String> {
            let deadline = Instant::now() + Duration::from_secs(20);
            while live(c)? != 1 {
                if Instant::now() > deadline {
                    return Err("the first worker did not start".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let addr = c.tcp_addr("dyn").ok_or("no TCP address")?;
            let start = live(c)?;
            let done = AtomicU64::new(0);
            let peak = std::thread::scope(|s| -> Result<usize, String> {
                for _ in 0..16 {
                    s.spawn(|| {
                        let until = Instant::now() + Duration::from_secs(1);
                        while Instant::now() < until {
                            if let Ok((200, _)) = get(addr, "/") {
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    });
                }
                let mut peak = 0;
                let until = Instant::now() + Duration::from_secs(1);
                while Instant::now() < until {
                    peak = peak.max(live(c)?);
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(peak)
            })?;
            let idle = Instant::now();
            while live(c)? > 1 {
                if idle.elapsed() > Duration::from_secs(20) {
                    return Err(format!("still {} workers 20 s after the load", live(c)?));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if done.load(Ordering::SeqCst) == 0 {
                return Err("no request was answered".into());
            }
            Ok((start, peak, idle.elapsed()))
        })
        .map_err(err)?;
    let (start, peak, shrink) = r?;
    if start != 1 || peak != 4 {
        return Err(format!("{start} workers at first, {peak} at the peak"));
    }
    Ok(format!("1 → 4 workers under load, back to 1 in {shrink:?}"))
}

/// The admin view (`mcctl services`): a running server is listed with its
/// workers, a killed worker's slot says why, and a stop request by service
/// name ends the run.
fn admin_lists_and_stops_servers() -> Result<String, String> {
    let (_pool, t) = table()?;
    let server = counting_server(
        &t,
        ServiceConfig::new("admin-count", "count")
            .listen("127.0.0.1:0")
            .workers(2),
    )
    .map_err(err)?;
    let me = std::process::id();
    let (report, r) = server
        .run_with(move |c| -> Result<String, String> {
            let pids = wait_serving(c, "admin-count")?;
            let find = || -> Result<mc_serve::admin::ServerView, String> {
                mc_serve::admin::servers()
                    .map_err(err)?
                    .into_iter()
                    .find(|s| s.master_pid == me)
                    .ok_or_else(|| "this server is not listed".to_string())
            };
            let v = find()?;
            let svc = &v.services[0];
            let listed: Vec<u32> = svc.workers.iter().map(|w| w.pid).collect();
            if svc.name != "admin-count" || listed != pids || svc.addrs.is_empty() {
                return Err(format!("listed {v:?}, workers {pids:?}"));
            }
            let victim = nix::unistd::Pid::from_raw(pids[1] as i32);
            nix::sys::signal::kill(victim, nix::sys::signal::Signal::SIGKILL).map_err(err)?;
            let deadline = Instant::now() + Duration::from_secs(20);
            let why = loop {
                let v = find()?;
                if let Some(Some(why)) = v.services[0].last_exit.get(1) {
                    if v.services[0].workers[1].restarts == 1 {
                        break why.clone();
                    }
                }
                if Instant::now() > deadline {
                    return Err(format!("no last exit after 20 s: {v:?}"));
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let pid =
                mc_serve::admin::signal_service("admin-count", mc_serve::admin::Request::Stop)
                    .map_err(err)?;
            if pid != me {
                return Err(format!("signalled {pid}, not {me}"));
            }
            c.wait_stop();
            Ok(why)
        })
        .map_err(err)?;
    let why = r?;
    if !why.contains("SIGKILL") || report.started != 3 {
        return Err(format!("last exit {why:?}; {report:?}"));
    }
    let after = mc_serve::admin::servers().map_err(err)?;
    if after.iter().any(|s| s.master_pid == me) {
        return Err("the server is still listed after its run".into());
    }
    Ok(format!(
        "listed; slot 1's last exit: {why}; stopped by name"
    ))
}

/// The async `/count/KEY` handler (tokio I/O): counts in the shared table,
/// answers with the worker's pid; `/panic` panics.
async fn count_async(conn: mc_serve::AsyncConnection, table: Arc<Table>) -> io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut r = tokio::io::BufReader::new(conn);
    let mut first = String::new();
    r.read_line(&mut first).await?;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    if path == "/panic" {
        panic!("asked to panic");
    }
    let key = path.strip_prefix("/count/").unwrap_or("k0").to_owned();
    table
        .modify_value(&key, |_, mut n| *n += 1)
        .map_err(io::Error::other)?;
    let body = std::process::id().to_string();
    let conn = r.get_mut();
    conn.write_all(
        format!(
            "HTTP/1.1 200 X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    conn.shutdown().await
}

/// Async handlers: 1,000 requests over 8 connections to workers that run
/// tokio runtimes of 2 threads; the shared count is exact, more than one
/// worker served, and handler panics leave the workers serving.
fn async_handlers_share_state() -> Result<String, String> {
    let (_pool, t) = table()?;
    let d = t.descr();
    let server = ServerBuilder::with_init(move |_| Ok(d.open()?))
        .service(
            ServiceConfig::new("acount", "count")
                .listen("127.0.0.1:0")
                .workers(2)
                .threads(2),
        )
        .async_handler("count", count_async)
        .bind()
        .map_err(err)?;
    let (report, r) = server
        .run_with(
            |c| -> Result<(BTreeSet<String>, Vec<String>, u64), String> {
                wait_serving(c, "acount")?;
                let addr = c.tcp_addr("acount").ok_or("no TCP address")?;
                for _ in 0..10 {
                    if let Ok((200, _)) = get(addr, "/panic") {
                        return Err("a panicking handler answered".into());
                    }
                }
                let (pids, failures) = load(addr, 1000, 8, "k6");
                // Connections are counted when their task ends.
                let deadline = Instant::now() + Duration::from_secs(10);
                let panics = loop {
                    let w = c.workers(Some("acount")).map_err(err)?;
                    let p: u64 = w.iter().map(|w| w.panics).sum();
                    if p == 10 || Instant::now() > deadline {
                        break p;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                Ok((pids, failures, panics))
            },
        )
        .map_err(err)?;
    let (pids, failures, panics) = r?;
    let n = count_of(&t, "k6")?;
    if n != 1000 || !failures.is_empty() || pids.len() < 2 || panics != 10 {
        return Err(format!(
            "count {n}, pids {pids:?}, panics {panics}, failures {failures:?}"
        ));
    }
    if !report.failures.is_empty() {
        return Err(format!("report {report:?}"));
    }
    Ok(format!(
        "count 1000 from {} async workers; 10 task panics, the workers went on",
        pids.len()
    ))
}

/// Bad input: a TOML error names its line; an address in use, an unknown
/// handler and a bad worker count are errors; a handler that panics on
/// some requests leaves the service answering the others.
fn bad_input_is_an_error() -> Result<String, String> {
    let e = ServerConfig::from_toml("[[service]]\nname = \"a\"\nhandler = 3\n").unwrap_err();
    if !matches!(e, ServeError::Config { line: Some(3), .. }) {
        return Err(format!("toml type error: {e}"));
    }
    let e = ServerConfig::from_toml("[[service]]\nname = \"a\"\n\nhandler = \"h\"\nlisten = [\n")
        .unwrap_err();
    if !matches!(e, ServeError::Config { line: Some(_), .. }) {
        return Err(format!("toml syntax error: {e}"));
    }
    let e = ServerConfig::from_toml("[[service]]\nname = \"a\"\nhandler = \"h\"\nworker = 2\n")
        .unwrap_err();
    if !e.to_string().contains("line 4") || !e.to_string().contains("worker") {
        return Err(format!("unknown field: {e}"));
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let port = taken.local_addr().map_err(err)?.port();
    let cfg = ServerConfig::from_toml(&format!(
        "[[service]]\nname = \"a\"\nhandler = \"h\"\nlisten = [\"127.0.0.1:{port}\"]\n"
    ))
    .map_err(err)?;
    let e = ServerBuilder::new()
        .config(cfg.clone())
        .handler("h", |_, _: &()| Ok(()))
        .bind()
        .unwrap_err();
    match &e {
        ServeError::Bind { addr, source }
            if addr.ends_with(&port.to_string()) && source.kind() == io::ErrorKind::AddrInUse => {}
        _ => return Err(format!("address in use: {e}")),
    }
    let e = ServerBuilder::new()
        .config(cfg)
        .handler("other", |_, _: &()| Ok(()))
        .bind()
        .unwrap_err();
    if !matches!(&e, ServeError::UnknownHandler { handler, .. } if handler == "h") {
        return Err(format!("unknown handler: {e}"));
    }
    let e = ServerBuilder::new()
        .service(
            ServiceConfig::new("a", "h")
                .listen("127.0.0.1:0")
                .workers(0),
        )
        .handler("h", |_, _: &()| Ok(()))
        .bind()
        .unwrap_err();
    if !e.to_string().contains("workers = 0") {
        return Err(format!("no workers: {e}"));
    }
    let e = ServerBuilder::new()
        .service(
            ServiceConfig::new("a", "h")
                .listen("127.0.0.1:0")
                .dynamic(3, 2, 1, 2),
        )
        .handler("h", |_, _: &()| Ok(()))
        .bind()
        .unwrap_err();
    if !e.to_string().contains("min = 3, max = 2") {
        return Err(format!("bad dynamic workload: {e}"));
    }
    let e = ServerBuilder::new()
        .service(ServiceConfig::new("a", "h").listen("not an address"))
        .handler("h", |_, _: &()| Ok(()))
        .bind()
        .unwrap_err();
    if !matches!(&e, ServeError::Bind { addr, .. } if addr == "not an address") {
        return Err(format!("bad address: {e}"));
    }
    drop(taken);

    // A handler that panics on `/panic`: the others are still answered.
    let (_pool, t) = table()?;
    let server = counting_server(
        &t,
        ServiceConfig::new("count", "count")
            .listen("127.0.0.1:0")
            .workers(1),
    )
    .map_err(err)?;
    let (report, r) = server
        .run_with(
            |c| -> Result<(usize, Vec<mc_serve::WorkerStatus>), String> {
                let pids = wait_serving(c, "count")?;
                let addr = c.tcp_addr("count").ok_or("no TCP address")?;
                let mut answered = 0;
                for i in 0..20 {
                    if i % 2 == 0 {
                        // The connection is closed without an answer.
                        if let Ok((200, _)) = get(addr, "/panic") {
                            return Err("a panicking handler answered".into());
                        }
                    } else if let Ok((200, pid)) = get(addr, "/count/k5") {
                        if pid != pids[0].to_string() {
                            return Err(format!(
                                "answered by {pid}, not the one worker {}",
                                pids[0]
                            ));
                        }
                        answered += 1;
                    }
                }
                Ok((answered, c.workers(Some("count")).map_err(err)?))
            },
        )
        .map_err(err)?;
    let (answered, workers) = r?;
    if answered != 10 || workers[0].panics != 10 || !report.failures.is_empty() {
        return Err(format!("{answered} answered; {workers:?}; {report:?}"));
    }
    Ok(
        "toml errors name their line; in use, unknown handler, 0 workers, bad address; \
        10 handler panics, the worker answered the 10 others"
            .into(),
    )
}

fn main() {
    run_scenarios(&[
        ("shared_count_is_exact", shared_count_is_exact),
        ("killed_worker_is_replaced", killed_worker_is_replaced),
        (
            "sigterm_finishes_accepted_requests",
            sigterm_finishes_accepted_requests,
        ),
        (
            "max_requests_recycles_workers",
            max_requests_recycles_workers,
        ),
        ("sighup_replaces_every_worker", sighup_replaces_every_worker),
        (
            "dynamic_workload_grows_and_shrinks",
            dynamic_workload_grows_and_shrinks,
        ),
        (
            "admin_lists_and_stops_servers",
            admin_lists_and_stops_servers,
        ),
        ("async_handlers_share_state", async_handlers_share_state),
        ("bad_input_is_an_error", bad_input_is_an_error),
    ]);
}
