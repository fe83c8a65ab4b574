//! A worker process: opens its context, then accepts and serves
//! connections on the listeners it inherited until it is told to stop or
//! has served its share.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use serde::{Deserialize, Serialize};

use crate::listener::{accept_any, Connection, Listener};
use crate::stats::{Row, WorkerState};

/// What a worker gets from the master.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub(crate) service: usize,
    /// The worker's row in the statistics.
    pub(crate) row: usize,
    pub(crate) slot: usize,
    pub(crate) generation: u64,
    /// Connections to serve before leaving (0: no limit).
    pub(crate) max_requests: u64,
    pub(crate) stats: mc::PoolMemDescr,
}

/// How a worker ended by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WorkerExit {
    /// Told to stop (`SIGTERM`), after finishing its connections.
    Stopped,
    /// Served its `max_requests`.
    Recycled,
    /// Its init hook failed (the message).
    InitFailed(String),
    /// The statistics block could not be opened (the message).
    NoStats(String),
    /// The process has no server (started outside [`Server::run`]).
    NoServer,
}

/// Who a worker is, for the init hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The service's name.
    pub service: String,
    /// The worker's slot in the service (0 to workers - 1).
    pub slot: usize,
    /// How many workers have held the slot, this one included.
    pub generation: u64,
}

/// A blocking handler, as registered.
pub(crate) type BlockingFn<C> =
    Arc<dyn Fn(Connection, &C) -> std::io::Result<()> + Send + Sync + 'static>;
/// What an async handler returns, boxed.
pub(crate) type HandlerFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send + 'static>>;
/// An async handler, as registered.
pub(crate) type AsyncFn<C> =
    Arc<dyn Fn(crate::asynch::AsyncConnection, Arc<C>) -> HandlerFuture + Send + Sync + 'static>;

/// A service's connection handler, as registered.
pub(crate) enum Handler<C> {
    /// Runs on the worker's threads, one connection at a time each.
    Blocking(BlockingFn<C>),
    /// Runs as tasks of the worker's tokio runtime.
    Async(AsyncFn<C>),
}

impl<C> Clone for Handler<C> {
    fn clone(&self) -> Self {
        match self {
            Handler::Blocking(f) => Handler::Blocking(f.clone()),
            Handler::Async(f) => Handler::Async(f.clone()),
        }
    }
}
/// A server's per-worker init hook, as registered.
pub(crate) type Init<C> = Arc<dyn Fn(&WorkerInfo) -> Result<C, mc::Error> + Send + Sync + 'static>;

/// What a worker needs of its service, left in memory by the master
/// before the run (workers are forked from it).
pub(crate) struct ServiceRuntime<C> {
    pub(crate) name: String,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) handler: Handler<C>,
    pub(crate) threads: usize,
}

/// The server, as workers see it.
pub(crate) trait Runtime: Send + Sync {
    fn serve(&self, args: &WorkerArgs, row: Row<'_>) -> WorkerExit;
}

pub(crate) struct ServerRuntime<C> {
    pub(crate) services: Vec<ServiceRuntime<C>>,
    pub(crate) init: Init<C>,
}

/// The server of this process tree, set by the master before its run.
pub(crate) static RUNTIME: Mutex<Option<Arc<dyn Runtime>>> = Mutex::new(None);

/// Set by `SIGTERM` in a worker.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: std::ffi::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// How often an idle worker looks at its stop flag and beats its heart.
const TICK: Duration = Duration::from_millis(50);

/// The worker process.
#[mc::process]
pub(crate) fn serve_worker(args: WorkerArgs) -> WorkerExit {
    STOP.store(false, Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(on_term),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    let _ = unsafe { signal::sigaction(Signal::SIGTERM, &action) };
    let rt = match RUNTIME.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let Some(rt) = rt else {
        return WorkerExit::NoServer;
    };
    let mem = match args.stats.open() {
        Ok(m) => m,
        Err(e) => return WorkerExit::NoStats(e.to_string()),
    };
    let row = Row::of(mem.words(), args.row);
    row.started(std::process::id(), args.generation);
    rt.serve(&args, row)
}

impl<C: Send + Sync + 'static> Runtime for ServerRuntime<C> {
    fn serve(&self, args: &WorkerArgs, row: Row<'_>) -> WorkerExit {
        let Some(svc) = self.services.get(args.service) else {
            return WorkerExit::NoServer;
        };
        let info = WorkerInfo {
            service: svc.name.clone(),
            slot: args.slot,
            generation: args.generation,
        };
        let ctx = match catch_unwind(AssertUnwindSafe(|| (self.init)(&info))) {
            Ok(Ok(c)) => Arc::new(c),
            Ok(Err(e)) => return WorkerExit::InitFailed(e.to_string()),
            Err(_) => return WorkerExit::InitFailed("the init hook panicked".into()),
        };
        let taken = AtomicU64::new(0);
        let recycled = AtomicBool::new(false);
        match &svc.handler {
            Handler::Blocking(f) => {
                row.state(WorkerState::Serving);
                std::thread::scope(|s| {
                    for _ in 0..svc.threads {
                        s.spawn(|| {
                            accept_loop(svc, f, &ctx, row, args.max_requests, &taken, &recycled)
                        });
                    }
                });
            }
            Handler::Async(f) => {
                if let Err(e) =
                    crate::asynch::serve(svc, f, ctx, row, args.max_requests, &recycled, &STOP)
                {
                    return WorkerExit::InitFailed(format!("the async runtime: {e}"));
                }
            }
        }
        if recycled.load(Ordering::SeqCst) && !STOP.load(Ordering::SeqCst) {
            WorkerExit::Recycled
        } else {
            WorkerExit::Stopped
        }
    }
}

/// One thread of a worker: accepts and serves until the worker stops or
/// has taken `max` connections.
fn accept_loop<C>(
    svc: &ServiceRuntime<C>,
    handler: &BlockingFn<C>,
    ctx: &C,
    row: Row<'_>,
    max: u64,
    taken: &AtomicU64,
    recycled: &AtomicBool,
) {
    loop {
        row.beat();
        if STOP.load(Ordering::SeqCst) {
            row.state(WorkerState::Stopping);
            return;
        }
        if recycled.load(Ordering::SeqCst) {
            return;
        }
        let conn = match accept_any(&svc.listeners, TICK) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("mc-serve: service `{}`: accept failed: {e}", svc.name);
                std::thread::sleep(TICK);
                continue;
            }
        };
        let n = taken.fetch_add(1, Ordering::SeqCst) + 1;
        if max > 0 && n >= max {
            // The last connection this worker takes; serve it, then leave.
            recycled.store(true, Ordering::SeqCst);
            row.state(WorkerState::Stopping);
        }
        row.busy(true);
        let served = catch_unwind(AssertUnwindSafe(|| handler(conn, ctx)));
        row.busy(false);
        row.served();
        if served.is_err() {
            // The connection was dropped with the handler's frame; the
            // panic message went to stderr through the panic hook.
            row.panicked();
        }
    }
}
