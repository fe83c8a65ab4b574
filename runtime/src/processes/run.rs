//! `mc::run`: the caller becomes the first process and forks the master.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use super::control::{self, Reply, Request, WireOutcome};
use super::master::{image_ranges, master_main};
use super::resources;
use super::{worker, Outcome, ProcessError, ProcessId};
use crate::os::proc::{self, Forked};
use crate::segment;

/// The master of the current run (pid, start time), inherited by workers;
/// 0 outside runs. Names of temp files and semaphores carry it, so that
/// [`cleanup`] can tell which ones a dead master left.
static MASTER_PID: AtomicU64 = AtomicU64::new(0);
static MASTER_START: AtomicU64 = AtomicU64::new(0);

/// Records the master of the run (0, 0: none).
pub(super) fn set_master_tag(pid: u64, start: u64) {
    MASTER_PID.store(pid, Ordering::Relaxed);
    MASTER_START.store(start, Ordering::Relaxed);
}

pub(crate) fn master_tag() -> (u64, u64) {
    (
        MASTER_PID.load(Ordering::Relaxed),
        MASTER_START.load(Ordering::Relaxed),
    )
}

/// What [`run`] reports when the first process has finished.
#[derive(Debug)]
pub struct RunReport<R> {
    /// How the first process ended: its result, or the message of its
    /// panic.
    pub outcome: Outcome<R>,
    /// Workers still running when the first process ended; the master
    /// killed them (`SIGKILL`) and reaped them.
    pub killed: Vec<ProcessId>,
    /// Workers that ended but whose results were never joined.
    pub unjoined: Vec<ProcessId>,
    /// How many workers the run started, the first process included.
    pub started: u64,
}

impl<R> RunReport<R> {
    /// The first process's result, if it returned.
    pub fn returned(self) -> Option<R> {
        self.outcome.returned()
    }

    /// The first process's result, or how it ended instead.
    ///
    /// # Errors
    ///
    /// The outcome without a value when the first process did not return
    /// (see [`Outcome::into_result`]).
    pub fn into_result(self) -> Result<R, Outcome<()>> {
        self.outcome.into_result()
    }
}

/// One paragraph: how the first process ended, and what became of the
/// workers.
///
/// ```
/// let report = mc::RunReport {
///     outcome: mc::Outcome::Returned(()),
///     killed: vec![],
///     unjoined: vec![],
///     started: 3,
/// };
/// assert_eq!(
///     report.to_string(),
///     "the first process returned; 3 processes started, none killed, none left unjoined"
/// );
/// ```
impl<R> fmt::Display for RunReport<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ids: &[ProcessId]| -> String {
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        write!(
            f,
            "the first process {}; {} process{} started, {} killed, {} left unjoined",
            self.outcome,
            self.started,
            if self.started == 1 { "" } else { "es" },
            list(&self.killed),
            list(&self.unjoined),
        )
    }
}

/// The process id of the first process (the caller of [`run`]).
pub(super) const FIRST: u64 = 1;

/// How many outcomes of joined processes the master keeps by default (see
/// [`RunOptions::keep_outcomes`]).
pub const DEFAULT_KEEP_OUTCOMES: usize = 65_536;

/// Options of a run ([`run_with`]).
#[derive(Debug, Clone)]
pub struct RunOptions {
    keep_outcomes: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            keep_outcomes: DEFAULT_KEEP_OUTCOMES,
        }
    }
}

impl RunOptions {
    /// The default options.
    pub fn new() -> RunOptions {
        RunOptions::default()
    }

    /// How many processes that ended and were joined the master still
    /// describes to [`status`](super::status) (default
    /// [`DEFAULT_KEEP_OUTCOMES`]). The master forgets the oldest beyond
    /// that, so that its memory does not grow with the number of processes
    /// a run starts; their `status` is then
    /// [`ProcessError::Forgotten`]. Processes still running, and those
    /// whose result was not taken yet, are always kept.
    pub fn keep_outcomes(mut self, n: usize) -> RunOptions {
        self.keep_outcomes = n;
        self
    }
}

/// Runs `first` as the first process of a run of worker processes, and
/// returns when it has finished. Workers still running then are killed and
/// listed in the report; every resource left in the resource table is
/// deleted.
///
/// The calling process *is* the first process: `first` runs right here, on
/// the calling thread, and everything it captures stays with it (guards,
/// pools, camlbox receivers and any other value keep their one owner).
/// `run` forks the **master**, a copy of the calling process as it is at
/// this moment, which keeps the resource table, forks every worker (each a
/// copy of the master, so of the caller at the time of `run`), stores
/// results until they are joined, and reaps its children. The master runs
/// no user code and ends with the run.
///
/// A panic of `first` is caught and reported as [`Outcome::Panicked`].
///
/// At startup, segments left by masters that died are removed (see
/// [`cleanup`]), and the calling process becomes the owner of every
/// segment the workers create.
///
/// Netmulticore calls this `startup`.
///
/// ```no_run
/// let report = mc::run(|| 6 * 7).expect("run");
/// assert_eq!(report.returned(), Some(42));
/// ```
///
/// # Errors
///
/// [`ProcessError::MultiThreaded`] when the process has more than one thread
/// (forking it would copy locks held by the other threads);
/// [`ProcessError::AlreadyRunning`] inside a worker or inside `first`;
/// [`ProcessError::MasterGone`] when the master died during the run (its
/// workers died with it); [`ProcessError::Fork`] and [`ProcessError::Io`] when
/// starting the master fails.
#[doc(alias = "startup")]
pub fn run<F, R>(first: F) -> Result<RunReport<R>, ProcessError>
where
    F: FnOnce() -> R,
{
    run_with(RunOptions::default(), first)
}

/// [`run`] with options.
///
/// ```no_run
/// let opts = mc::RunOptions::new().keep_outcomes(1000);
/// let report = mc::run_with(opts, || 6 * 7).expect("run");
/// assert_eq!(report.returned(), Some(42));
/// ```
///
/// # Errors
///
/// As [`run`].
pub fn run_with<F, R>(opts: RunOptions, first: F) -> Result<RunReport<R>, ProcessError>
where
    F: FnOnce() -> R,
{
    if worker::in_worker() {
        return Err(ProcessError::AlreadyRunning);
    }
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads > 1 {
        return Err(ProcessError::MultiThreaded { threads });
    }
    let _ = segment::remove_stale();
    let _ = resources::remove_stale_objects();
    let me = proc::getpid();
    segment::set_owner(me as u32);
    // Buffered output would be written again by the master's copy.
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
    let image = image_ranges()?;
    let (control_mine, control_master) = control::socketpair()?;
    let (end_mine, end_master) = control::socketpair()?;
    // SAFETY: the process has one thread (checked above), so the child is a
    // complete copy; it becomes the master and leaves with `_exit`.
    let master = match unsafe { proc::fork() } {
        Err(e) => return Err(ProcessError::Fork(e.raw_os_error().unwrap_or(0))),
        Ok(Forked::Parent(pid)) => pid,
        Ok(Forked::Child) => {
            drop(control_mine);
            drop(end_mine);
            master_main(control_master, end_master, me, image, opts.keep_outcomes);
        }
    };
    drop(control_master);
    drop(end_master);
    set_master_tag(
        master as u64,
        segment::process_start_time(master as u32).unwrap_or(0),
    );
    worker::enter_first(control_mine, FIRST);
    let outcome = match catch_unwind(AssertUnwindSafe(first)) {
        Ok(r) => Outcome::Returned(r),
        Err(p) => Outcome::Panicked(worker::panic_message(&*p)),
    };
    let wire = match &outcome {
        Outcome::Panicked(m) => WireOutcome::Panicked(m.clone()),
        _ => WireOutcome::Returned(Vec::new()),
    };
    let report = end_of_run(&end_mine, &wire);
    drop(end_mine);
    reap_master(master);
    // Requests still blocked in other threads have seen the master go.
    worker::leave_first();
    set_master_tag(0, 0);
    let (killed, unjoined, started) = report?;
    Ok(RunReport {
        outcome,
        killed: killed.into_iter().map(ProcessId).collect(),
        unjoined: unjoined.into_iter().map(ProcessId).collect(),
        started,
    })
}

/// Tells the master that the first process has finished and waits for its
/// report (it comes once every worker is reaped and every resource
/// deleted).
fn end_of_run(
    end: &OwnedFd,
    outcome: &WireOutcome,
) -> Result<(Vec<u64>, Vec<u64>, u64), ProcessError> {
    let gone = |_| ProcessError::MasterGone;
    let frame = control::encode(&Request::Done(outcome.clone()))?;
    control::send_all(end, &frame).map_err(gone)?;
    let body = control::recv_frame(end).map_err(gone)?;
    match control::decode::<Reply>(&body)? {
        Reply::Report {
            killed,
            unjoined,
            started,
        } => Ok((killed, unjoined, started)),
        r => Err(super::unexpected(r)),
    }
}

/// Waits for the master to exit (it does once its report is sent, or
/// when it fails).
fn reap_master(pid: proc::RawPid) {
    // (ECHILD when the program reaps its children itself: nothing to do.)
    let _ = proc::wait(pid, true);
}

/// Removes what masters that died left behind: mc shared memory segments
/// whose owner is dead ([`segment::remove_stale`]), and the temp files and
/// named semaphores created through [`resources`] by such masters' runs.
/// Returns the names removed. [`run`] does this at startup.
///
/// # Errors
///
/// The [`io::Error`] of reading `/dev/shm`.
pub fn cleanup() -> io::Result<Vec<String>> {
    let mut removed = segment::remove_stale()?;
    removed.extend(resources::remove_stale_objects()?);
    Ok(removed)
}
