//! The master: binds every service's sockets, then runs the workers as mc
//! processes and supervises them (restarts with backoff, heartbeats,
//! recycling, signals) until it is told to stop.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::admin::{ServerInfo, ServiceInfo};
use crate::config::{ServerConfig, ServiceConfig};
use crate::error::ServeError;
use crate::listener::{BoundAddr, Connection, Listener};
use crate::stats::{Row, WorkerStatus, ROW};
use crate::worker::{
    serve_worker, Handler, Init, ServerRuntime, ServiceRuntime, WorkerArgs, WorkerExit, WorkerInfo,
    RUNTIME,
};

/// How often the master looks at its workers.
const POLL: Duration = Duration::from_millis(10);
/// A worker that lived this long is healthy: its slot's backoff starts
/// over.
const HEALTHY: Duration = Duration::from_secs(10);
/// The longest wait before restarting a worker that keeps crashing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Builds a [`Server`]: services, the handlers they name, and the
/// per-worker init hook that makes each worker's context `C`.
pub struct ServerBuilder<C> {
    services: Vec<ServiceConfig>,
    handlers: BTreeMap<String, Handler<C>>,
    init: Init<C>,
}

impl ServerBuilder<()> {
    /// A builder whose handlers get no context (`&()`).
    pub fn new() -> ServerBuilder<()> {
        ServerBuilder::with_init(|_| Ok(()))
    }
}

impl Default for ServerBuilder<()> {
    fn default() -> Self {
        ServerBuilder::new()
    }
}

impl<C: Send + Sync + 'static> ServerBuilder<C> {
    /// A builder whose workers each run `init` once, after they start and
    /// before they accept: it opens what the handlers share (heaps,
    /// tables, locks, camlboxes) by descriptor, and its result is the
    /// context every handler of the worker gets. A failing init ends the
    /// worker, which is restarted with backoff.
    pub fn with_init(
        init: impl Fn(&WorkerInfo) -> Result<C, mc::Error> + Send + Sync + 'static,
    ) -> ServerBuilder<C> {
        ServerBuilder {
            services: Vec::new(),
            handlers: BTreeMap::new(),
            init: Arc::new(init),
        }
    }

    /// Adds a service.
    pub fn service(mut self, s: ServiceConfig) -> Self {
        self.services.push(s);
        self
    }

    /// Adds the services of a configuration (from a TOML file, say).
    pub fn config(mut self, cfg: ServerConfig) -> Self {
        self.services.extend(cfg.service);
        self
    }

    /// Registers a handler under `name`, for the services that name it. A
    /// handler serves one connection; a panic in it closes that
    /// connection and is counted, and the worker goes on.
    pub fn handler(
        mut self,
        name: &str,
        f: impl Fn(Connection, &C) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.handlers
            .insert(name.to_owned(), Handler::Blocking(Arc::new(f)));
        self
    }

    /// Registers an async handler under `name`: each worker of the
    /// services that name it runs a tokio runtime (of the service's
    /// `threads` worker threads) and serves every connection as a task.
    /// The context is shared by the tasks (`Arc<C>`). A panic in a task
    /// closes its connection and is counted; the worker goes on.
    ///
    /// ```no_run
    /// use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    /// let server = mc_serve::ServerBuilder::new()
    ///     .service(mc_serve::ServiceConfig::new("echo", "echo").listen("127.0.0.1:0"))
    ///     .async_handler("echo", |conn, _ctx| async move {
    ///         let mut conn = BufReader::new(conn);
    ///         let mut line = String::new();
    ///         conn.read_line(&mut line).await?;
    ///         conn.get_mut().write_all(line.as_bytes()).await
    ///     })
    ///     .bind()?;
    /// # Ok::<(), mc_serve::ServeError>(())
    /// ```
    pub fn async_handler<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(crate::asynch::AsyncConnection, Arc<C>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
    {
        let f: crate::worker::AsyncFn<C> = Arc::new(move |conn, ctx| Box::pin(f(conn, ctx)));
        self.handlers.insert(name.to_owned(), Handler::Async(f));
        self
    }

    /// Checks the configuration and binds every listen address. Call it
    /// before `mc::run` (and before creating the pools that handlers
    /// share, or at least before [`Server::run`]): the workers inherit the
    /// sockets.
    ///
    /// # Errors
    ///
    /// [`ServeError::Config`] for a service without a name, address or
    /// worker, or a name used twice; [`ServeError::UnknownHandler`];
    /// [`ServeError::Bind`] naming the address that could not be bound
    /// (those bound before it are closed again).
    pub fn bind(self) -> Result<Server<C>, ServeError> {
        if self.services.is_empty() {
            return Err(ServeError::Config {
                line: None,
                message: "no service".into(),
            });
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.services {
            s.check()?;
            if !names.insert(s.name.clone()) {
                return Err(ServeError::Config {
                    line: None,
                    message: format!("two services are named `{}`", s.name),
                });
            }
            if !self.handlers.contains_key(&s.handler) {
                return Err(ServeError::UnknownHandler {
                    service: s.name.clone(),
                    handler: s.handler.clone(),
                    known: self.handlers.keys().cloned().collect(),
                });
            }
        }
        let mut services = Vec::new();
        for s in self.services {
            let mut listeners = Vec::new();
            for a in s.addresses() {
                match Listener::bind(&a) {
                    Ok(l) => listeners.push(l),
                    Err(e) => {
                        for svc in &services {
                            remove_files(svc);
                        }
                        listeners.iter().for_each(Listener::remove_file);
                        return Err(e);
                    }
                }
            }
            let addrs = listeners
                .iter()
                .map(Listener::bound)
                .collect::<io::Result<Vec<_>>>()
                .map_err(|e| ServeError::Io {
                    what: format!("service `{}`: reading its bound address", s.name),
                    source: e,
                })?;
            let handler = self.handlers[&s.handler].clone();
            services.push(BoundService {
                cfg: s,
                addrs,
                rt: ServiceRuntime {
                    name: String::new(),
                    listeners,
                    handler,
                    threads: 1,
                },
            });
        }
        for s in &mut services {
            s.rt.name = s.cfg.name.clone();
            s.rt.threads = s.cfg.threads;
        }
        Ok(Server {
            services,
            init: self.init,
        })
    }
}

fn remove_files<C>(s: &BoundService<C>) {
    s.rt.listeners.iter().for_each(Listener::remove_file);
}

struct BoundService<C> {
    cfg: ServiceConfig,
    addrs: Vec<BoundAddr>,
    rt: ServiceRuntime<C>,
}

/// A server whose sockets are bound: [`run`](Server::run) it.
pub struct Server<C> {
    services: Vec<BoundService<C>>,
    init: Init<C>,
}

impl<C> std::fmt::Debug for Server<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_map();
        for s in &self.services {
            d.entry(&s.cfg.name, &s.addrs);
        }
        d.finish()
    }
}

/// How a run of a server went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Workers started, replacements included.
    pub started: u64,
    /// Workers that crashed or were killed (a panic outside handlers, a
    /// signal, a missed heartbeat), with why, the last 100.
    pub failures: Vec<String>,
    /// Workers replaced after `max_requests`.
    pub recycled: u64,
    /// Workers still running at the end of the graceful timeout, killed.
    pub killed_at_stop: u64,
}

/// Signals seen by the master.
static TERM: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: std::ffi::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

extern "C" fn on_hup(_: std::ffi::c_int) {
    HUP.store(true, Ordering::SeqCst);
}

/// The signal dispositions the run changed, restored when it ends.
struct Dispositions(Vec<(Signal, SigAction)>);

impl Dispositions {
    /// Ignores `SIGINT`, `SIGTERM` and `SIGHUP`: mc's master and the
    /// workers inherit that (so a Ctrl-C to the process group leaves the
    /// stopping to this process), and workers then catch `SIGTERM`.
    fn ignore() -> Dispositions {
        let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let mut saved = Vec::new();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            // SAFETY: ignoring a signal installs no handler code.
            if let Ok(old) = unsafe { signal::sigaction(s, &ign) } {
                saved.push((s, old));
            }
        }
        Dispositions(saved)
    }

    /// In the first process: `SIGINT`/`SIGTERM` stop the server, `SIGHUP`
    /// restarts its workers.
    fn catch() {
        let stop = SigAction::new(
            SigHandler::Handler(on_stop),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let hup = SigAction::new(
            SigHandler::Handler(on_hup),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handlers only store to atomics (async-signal-safe).
        unsafe {
            let _ = signal::sigaction(Signal::SIGINT, &stop);
            let _ = signal::sigaction(Signal::SIGTERM, &stop);
            let _ = signal::sigaction(Signal::SIGHUP, &hup);
        }
    }
}

impl Drop for Dispositions {
    fn drop(&mut self) {
        for (s, old) in &self.0 {
            // SAFETY: restores what `sigaction` returned for this signal.
            let _ = unsafe { signal::sigaction(*s, old) };
        }
    }
}

/// What a function run beside the master ([`Server::run_with`]) can see
/// and do.
pub struct Control {
    services: Vec<(String, Vec<BoundAddr>, usize, usize)>,
    stats: mc::PoolMemDescr,
    stop: Arc<AtomicBool>,
    restart: Arc<AtomicBool>,
}

impl Control {
    /// The addresses service `name` listens on.
    pub fn addrs(&self, name: &str) -> Option<&[BoundAddr]> {
        self.services
            .iter()
            .find(|s| s.0 == name)
            .map(|s| s.1.as_slice())
    }

    /// The first TCP address of service `name`.
    pub fn tcp_addr(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.addrs(name)?.iter().find_map(|a| match a {
            BoundAddr::Tcp(t) => Some(*t),
            BoundAddr::Unix(_) => None,
        })
    }

    /// Every worker slot of service `name` (all services: `None`).
    ///
    /// # Errors
    ///
    /// When the statistics block cannot be opened.
    pub fn workers(&self, name: Option<&str>) -> Result<Vec<WorkerStatus>, ServeError> {
        let mem = self.stats.open()?;
        let words = mem.words();
        let mut out = Vec::new();
        for (svc, _, first_row, n) in &self.services {
            if name.is_some_and(|n| n != svc) {
                continue;
            }
            for slot in 0..*n {
                out.push(Row::of(words, first_row + slot).status(svc, slot));
            }
        }
        Ok(out)
    }

    /// Whether the server is stopping (a signal, or [`stop`](Self::stop)).
    pub fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || TERM.load(Ordering::SeqCst)
    }

    /// Returns once the server is stopping: a function run beside the
    /// server that only reports on it calls this last, so that the server
    /// runs until `SIGINT`/`SIGTERM`.
    pub fn wait_stop(&self) {
        while !self.is_stopping() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server gracefully (as `SIGTERM` does).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Replaces every worker (as `SIGHUP` does): connections that arrive
    /// meanwhile wait in the listen queue, so none is refused.
    pub fn restart(&self) {
        self.restart.store(true, Ordering::SeqCst);
    }
}

/// One worker slot, as the master keeps it.
struct Slot {
    service: usize,
    index: usize,
    row: usize,
    pid: Option<serve_worker::Pid>,
    generation: u64,
    started: Instant,
    /// Crashes in a row (reset once a worker lives [`HEALTHY`]).
    crashes: u32,
    /// When a crashed slot may start again.
    not_before: Instant,
    /// Set when the master asked the worker to leave (restart, stop).
    told_to_stop: bool,
    /// Whether the slot should have a worker (all slots of a constant
    /// workload; those the dynamic workload manager wants).
    active: bool,
}

impl<C: Send + Sync + 'static> Server<C> {
    /// The addresses service `name` listens on.
    pub fn addrs(&self, name: &str) -> Option<&[BoundAddr]> {
        self.services
            .iter()
            .find(|s| s.cfg.name == name)
            .map(|s| s.addrs.as_slice())
    }

    /// Runs the server until `SIGINT` or `SIGTERM`, then stops it
    /// gracefully: workers stop accepting, finish their connections within
    /// the service's graceful timeout (then are killed), and the Unix
    /// socket files are removed. `SIGHUP` replaces every worker.
    ///
    /// Calls `mc::run`: call it outside of one.
    ///
    /// # Errors
    ///
    /// [`ServeError::Mc`] when the run cannot start, or a worker cannot be
    /// started or joined.
    pub fn run(self) -> Result<ServeReport, ServeError> {
        self.run_with(|_| ()).map(|(r, ())| r)
    }

    /// Runs the server while `f` runs on a thread of the first process,
    /// then stops it gracefully (or earlier, on `SIGINT`/`SIGTERM` or
    /// [`Control::stop`]); returns the report and what `f` returned. The
    /// run waits for `f`: one that runs long returns once
    /// [`Control::is_stopping`] (or calls [`Control::wait_stop`]).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn run_with<R: Send + 'static>(
        self,
        f: impl FnOnce(&Control) -> R + Send + 'static,
    ) -> Result<(ServeReport, R), ServeError> {
        let rows: usize = self.services.iter().map(|s| s.cfg.max_workers()).sum();
        // Published for `mcctl services` under a name with this pid.
        let pool = mc::Pool::create_named(
            &format!("{}{}", crate::admin::POOL_PREFIX, std::process::id()),
            (rows * ROW * 8 + (1 << 16)).next_multiple_of(1 << 16) + (1 << 20),
        )?;
        let stats = pool.alloc_mem(rows * ROW * 8)?;
        let mut first_row = 0;
        let mut control_services = Vec::new();
        let mut published = Vec::new();
        for s in &self.services {
            control_services.push((
                s.cfg.name.clone(),
                s.addrs.clone(),
                first_row,
                s.cfg.max_workers(),
            ));
            published.push(ServiceInfo {
                name: s.cfg.name.clone(),
                addrs: s.addrs.iter().map(ToString::to_string).collect(),
                first_row: first_row as u64,
                rows: s.cfg.max_workers() as u64,
                last_exit: vec![String::new(); s.cfg.max_workers()],
            });
            first_row += s.cfg.max_workers();
        }
        let info = mc::Heap::create(
            &pool,
            &ServerInfo {
                master_pid: std::process::id(),
                started_ms: crate::stats::now_ms(),
                stats: stats.descr(),
                services: published,
            },
        )?;
        info.set_pool_root();
        let info_descr = info.descr();
        let control = Control {
            services: control_services,
            stats: stats.descr(),
            stop: Arc::new(AtomicBool::new(false)),
            restart: Arc::new(AtomicBool::new(false)),
        };
        let configs: Vec<ServiceConfig> = self.services.iter().map(|s| s.cfg.clone()).collect();
        let mut files = Vec::new();
        let mut rts = Vec::new();
        for s in self.services {
            files.extend(s.rt.listeners.iter().filter_map(|l| match l.bound() {
                Ok(BoundAddr::Unix(p)) => Some(p),
                _ => None,
            }));
            rts.push(s.rt);
        }
        let runtime: Arc<dyn crate::worker::Runtime> = Arc::new(ServerRuntime {
            services: rts,
            init: self.init,
        });
        *RUNTIME.lock().unwrap_or_else(|p| p.into_inner()) = Some(runtime);
        TERM.store(false, Ordering::SeqCst);
        HUP.store(false, Ordering::SeqCst);
        let dispositions = Dispositions::ignore();
        let stats_descr = stats.descr();
        let report = mc::run(move || -> Result<(ServeReport, R), ServeError> {
            Dispositions::catch();
            let stop = control.stop.clone();
            let helper = std::thread::spawn(move || {
                let r = f(&control);
                control.stop.store(true, Ordering::SeqCst);
                (r, control)
            });
            let report = supervise(&configs, &stats_descr, &info_descr, &stop, &helper);
            // On an error too, `f` is told (`Control::is_stopping`).
            stop.store(true, Ordering::SeqCst);
            let joined = helper.join();
            let report = report?;
            let (r, _control) = joined.map_err(|_| {
                ServeError::Mc(mc::Error::new(
                    "the function run beside the server panicked",
                ))
            })?;
            Ok((report, r))
        });
        drop(dispositions);
        *RUNTIME.lock().unwrap_or_else(|p| p.into_inner()) = None;
        for p in files {
            let _ = std::fs::remove_file(p);
        }
        drop(stats);
        let report = report?;
        match report.outcome {
            mc::Outcome::Returned(r) => r,
            other => Err(ServeError::Mc(mc::Error::new(format!(
                "the server's first process did not return: {}",
                other.cause()
            )))),
        }
    }
}

/// Starts, watches and restarts the workers until a stop is asked for,
/// then stops them gracefully.
fn supervise<T>(
    configs: &[ServiceConfig],
    stats: &mc::PoolMemDescr,
    info: &mc::HeapDescr<ServerInfo>,
    stop: &AtomicBool,
    helper: &std::thread::JoinHandle<T>,
) -> Result<ServeReport, ServeError> {
    let mem = stats.open()?;
    let info = info.open()?;
    let words = mem.words();
    let mut report = ServeReport::default();
    let mut slots = Vec::new();
    let mut row = 0;
    for (si, c) in configs.iter().enumerate() {
        for index in 0..c.max_workers() {
            slots.push(Slot {
                service: si,
                index,
                row,
                active: index < c.initial_workers(),
                pid: None,
                generation: 0,
                started: Instant::now(),
                crashes: 0,
                not_before: Instant::now(),
                told_to_stop: false,
            });
            row += 1;
        }
    }
    let mut seed = u64::from(std::process::id()) ^ crate::stats::now_ms();
    let mut stopping: Option<Instant> = None;
    // Per service: since when more capacity is free than the dynamic
    // workload wants.
    let mut excess_since: Vec<Option<Instant>> = vec![None; configs.len()];
    loop {
        let now = Instant::now();
        if stopping.is_none() {
            for (si, c) in configs.iter().enumerate() {
                if let Some(d) = c.dynamic {
                    manage(si, c, d, &mut slots, words, &mut excess_since[si], now);
                }
            }
        }
        if stopping.is_none()
            && (TERM.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) || helper.is_finished())
        {
            stopping = Some(now);
            for s in &mut slots {
                if let Some(pid) = s.pid {
                    let _ = mc::processes::kill(pid.id(), mc::Signal::TERM);
                    s.told_to_stop = true;
                }
            }
        }
        if stopping.is_none() && HUP.swap(false, Ordering::SeqCst) {
            for s in &mut slots {
                if let Some(pid) = s.pid {
                    let _ = mc::processes::kill(pid.id(), mc::Signal::TERM);
                    s.told_to_stop = true;
                }
            }
        }
        for s in &mut slots {
            let cfg = &configs[s.service];
            let r = Row::of(words, s.row);
            if let Some(pid) = s.pid {
                match serve_worker::try_join(pid) {
                    Ok(None) => {
                        if cfg.heartbeat_timeout_ms > 0
                            && r.heartbeat_age() > cfg.heartbeat_timeout_ms
                            && !s.told_to_stop
                        {
                            let _ = mc::processes::kill(pid.id(), mc::Signal::KILL);
                            publish_exit(&info, s.service, s.index, "no heartbeat: killed");
                            push_failure(
                                &mut report,
                                format!(
                                    "service `{}` worker {}: no heartbeat for {} ms: killed",
                                    cfg.name, s.index, cfg.heartbeat_timeout_ms
                                ),
                            );
                            s.told_to_stop = true;
                        }
                        continue;
                    }
                    Ok(Some(exit)) => {
                        s.pid = None;
                        r.emptied();
                        match exit {
                            WorkerExit::Stopped => {}
                            WorkerExit::Recycled => report.recycled += 1,
                            WorkerExit::InitFailed(e) | WorkerExit::NoStats(e) => {
                                crashed(
                                    s,
                                    &mut report,
                                    cfg,
                                    &info,
                                    &format!("its init failed: {e}"),
                                );
                            }
                            WorkerExit::NoServer => {
                                crashed(s, &mut report, cfg, &info, "it found no server");
                            }
                        }
                    }
                    Err(e) => {
                        s.pid = None;
                        r.emptied();
                        crashed(s, &mut report, cfg, &info, &e.to_string());
                    }
                }
                s.told_to_stop = false;
            }
            if s.pid.is_none() && s.active && stopping.is_none() && now >= s.not_before {
                if s.generation > 0 {
                    r.restarted();
                }
                s.generation += 1;
                let max = jittered(cfg.max_requests, &mut seed);
                let args = WorkerArgs {
                    service: s.service,
                    row: s.row,
                    slot: s.index,
                    generation: s.generation,
                    max_requests: max,
                    stats: stats.clone(),
                };
                s.pid = Some(serve_worker::start(args)?);
                s.started = Instant::now();
                report.started += 1;
            }
        }
        if let Some(since) = stopping {
            if slots.iter().all(|s| s.pid.is_none()) {
                return Ok(report);
            }
            let graceful = slots
                .iter()
                .filter(|s| s.pid.is_some())
                .map(|s| configs[s.service].graceful_timeout_ms)
                .max()
                .unwrap_or(0);
            if now.duration_since(since) > Duration::from_millis(graceful) {
                for s in &mut slots {
                    if let Some(pid) = s.pid.take() {
                        let _ = mc::processes::kill(pid.id(), mc::Signal::KILL);
                        let _ = serve_worker::join_timeout(pid, Duration::from_secs(10));
                        Row::of(words, s.row).emptied();
                        report.killed_at_stop += 1;
                    }
                }
                return Ok(report);
            }
        }
        std::thread::sleep(POLL);
    }
}

/// The dynamic workload manager of service `si`: activates a slot when too
/// little capacity is free, retires an idle worker when too much has been
/// free for `retire_after_ms`.
fn manage(
    si: usize,
    c: &ServiceConfig,
    d: crate::config::Dynamic,
    slots: &mut [Slot],
    words: &[std::sync::atomic::AtomicU64],
    excess_since: &mut Option<Instant>,
    now: Instant,
) {
    let threads = c.threads as u64;
    let mut free = 0u64;
    let mut active = 0usize;
    for s in slots.iter().filter(|s| s.service == si && s.active) {
        active += 1;
        // A slot waiting for its worker counts as free: it will serve.
        let busy = if s.pid.is_some() {
            Row::of(words, s.row).busy_now()
        } else {
            0
        };
        free += threads.saturating_sub(busy);
    }
    if free < d.min_free as u64 && active < d.max {
        if let Some(s) = slots
            .iter_mut()
            .find(|s| s.service == si && !s.active && s.pid.is_none())
        {
            s.active = true;
            s.not_before = now;
        }
        *excess_since = None;
        return;
    }
    let excess = free > d.max_free as u64 && free - threads >= d.min_free as u64 && active > d.min;
    if !excess {
        *excess_since = None;
        return;
    }
    let since = *excess_since.get_or_insert(now);
    if now.duration_since(since) < Duration::from_millis(d.retire_after_ms) {
        return;
    }
    // The idle worker in the highest slot leaves.
    let idle = slots.iter_mut().rev().find(|s| {
        s.service == si && s.active && s.pid.is_some() && Row::of(words, s.row).busy_now() == 0
    });
    if let Some(s) = idle {
        s.active = false;
        if let Some(pid) = s.pid {
            let _ = mc::processes::kill(pid.id(), mc::Signal::TERM);
            s.told_to_stop = true;
        }
        *excess_since = None;
    }
}

/// Records a worker that ended without being asked to, and when its slot
/// may start again: at once after a healthy life, then after a backoff
/// that doubles with each crash in a row.
fn crashed(
    s: &mut Slot,
    report: &mut ServeReport,
    cfg: &ServiceConfig,
    info: &mc::Heap<ServerInfo>,
    why: &str,
) {
    if s.told_to_stop {
        return;
    }
    publish_exit(info, s.service, s.index, why);
    if s.started.elapsed() >= HEALTHY {
        s.crashes = 0;
    }
    let backoff = if s.crashes == 0 {
        Duration::ZERO
    } else {
        (Duration::from_millis(100) * 2u32.saturating_pow(s.crashes - 1)).min(MAX_BACKOFF)
    };
    s.crashes = s.crashes.saturating_add(1);
    s.not_before = Instant::now() + backoff;
    push_failure(
        report,
        format!(
            "service `{}` worker {} (generation {}): {why}",
            cfg.name, s.index, s.generation
        ),
    );
}

/// Records in the published state why slot `slot` of service `service`
/// lost its worker (best effort: the figures are only for `mcctl`).
fn publish_exit(info: &mc::Heap<ServerInfo>, service: usize, slot: usize, why: &str) {
    let _ = info.modify(|m, root| -> Result<(), mc::HeapError> {
        let Some(svc) = root.project().services.get_pin(service) else {
            return Ok(());
        };
        let Some(place) = svc.project().last_exit.get_pin(slot) else {
            return Ok(());
        };
        m.set_str(place, why)
    });
}

fn push_failure(report: &mut ServeReport, why: String) {
    if report.failures.len() == 100 {
        report.failures.remove(0);
    }
    report.failures.push(why);
}

/// `max` minus up to 10% (0 stays 0), so that workers started together do
/// not all leave together.
fn jittered(max: u64, seed: &mut u64) -> u64 {
    if max == 0 {
        return 0;
    }
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let span = max / 10;
    if span == 0 {
        return max;
    }
    max - (*seed >> 33) % (span + 1)
}
