//! Processes: the master, process definitions, start and join, and the
//! resource table.
//!
//! [`run`] makes the calling process the *first process* of a run: the
//! closure given to it runs right there, and `run` returns when it has
//! finished. Before that, `run` forks the **master**, a copy of the caller,
//! which keeps the [resource table](resources), forks every worker, stores
//! results until they are joined and reaps its children; it runs no user
//! code itself.
//!
//! A process definition is a plain `fn` marked `#[mc::process]`:
//!
//! ```no_run
//! #[mc::process]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let report = mc::run(|| {
//!     let pid = square::start(7).expect("start");
//!     square::join(pid).expect("join")
//! })
//! .expect("run");
//! assert_eq!(report.outcome.returned(), Some(49));
//! ```
//!
//! `square::start` sends a start request to the master, which forks
//! **itself**: every worker is a copy of the master, that is of the caller
//! as it was when `run` was called, whichever process asked for it (so a
//! global variable set by the starter is not seen by the started process).
//! The argument and the result travel as
//! [postcard](https://docs.rs/postcard)-encoded bytes, so they are `serde`
//! types.
//!
//! # Values across a fork
//!
//! `fork` copies every value, but ownership does not follow: each value has
//! one owner.
//!
//! - What the closure given to `run` captures stays with the caller, which
//!   runs it: guards, pools and camlbox receivers moved in work as they did
//!   before the call, and are released once, when the closure drops them.
//! - Copies that other processes inherit (through statics, thread-locals
//!   or the caller's stack, in the master and every worker) belong to
//!   nobody there. A guard — heap [`ReadGuard`](crate::ReadGuard) and
//!   [`PinGuard`](crate::PinGuard), the `mc::sync` guards, a camlbox
//!   [`Message`](crate::Message) — knows the process that took it: a copy
//!   in another process panics when it is read, and releases nothing when
//!   dropped. A camlbox receiver receives only in the process that created
//!   it.
//! - Per-thread bookkeeping (which heaps a thread holds, whether it is
//!   inside a modification) does not follow the fork either: a worker can
//!   lock a heap that the caller held when it called `run`.
//!
//! Process ids ([`ProcessId`], and the typed [`Pid<D>`] that `start`
//! returns) are unique within a run and are never OS pids. Only the first
//! join of a process gets its result; a later join fails with
//! [`ProcessError::AlreadyJoined`] (inside [`JoinError::Join`]). When the
//! body did not return, the join's [`JoinError`] says how it ended (panicked
//! with its message, aborted, killed, exited), as [`status`] does later;
//! `join_outcome` returns the whole [`Outcome`].
//!
//! Workers die with the master (`PR_SET_PDEATHSIG`), and when the first
//! process ends the master kills the workers still running and reports
//! them in [`RunReport`].
//!
//! # How it works
//!
//! - Each worker talks to the master over its own `socketpair(AF_UNIX,
//!   SOCK_STREAM)`, made at fork time (no socket directory), carrying
//!   postcard messages framed by a 4-byte length. A worker sends one request
//!   at a time and waits for the answer; requests from several threads of
//!   one worker are serialised (a blocking join holds the line until it is
//!   answered).
//! - The master is single-threaded: one `poll` over the workers' sockets and
//!   pidfds. It runs no user code, so it never blocks on user work; joins
//!   wait in the joining worker, and the master answers them when the
//!   result arrives (or their deadline passes).
//! - The master keeps one *spare* worker forked ahead of time, waiting for
//!   the definition and argument of the next start, so the `fork` is not
//!   between a start request and the process running. A spare is, like
//!   every worker, a copy of the master as it was when `run` was called.
//! - A definition is named in a start request by the address of its
//!   `static` description, valid in every process of the run because each
//!   is a fork of the master; the master checks that the address lies in
//!   the program image and carries the expected magic and id.
//! - The caller tells the master when its closure has finished (on a
//!   channel of its own, so that threads of the caller blocked in a join
//!   do not delay it); the master kills the workers still running, deletes
//!   what is left in the resource table, reports, and exits. When the
//!   caller dies, the master notices (a pidfd, else the end of the
//!   channel) and cleans up the same way.
//! - A worker catches panics in its body (the message becomes
//!   [`Outcome::Panicked`]), sends its outcome, flushes stdout and ends with
//!   `_exit`, so destructors and `atexit` handlers copied from the master
//!   never run in it. Workers that die otherwise get their cause from the
//!   wait status ([`Outcome::Aborted`], [`Outcome::Killed`],
//!   [`Outcome::Exited`]). The master reaps every child.
//! - Results are stored in the master until the first join takes them; the
//!   cause (without the value) is kept for [`status`]. Results of a
//!   definition whose join point was released are dropped on arrival.

mod control;
mod master;
pub mod resources;
mod run;
mod table;
pub(crate) mod worker;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use control::{JoinMode, Reply, Request, WireError, WireInherit, WireOutcome};
use resources::ResourceId;
pub use run::{cleanup, run, run_with, RunOptions, RunReport, DEFAULT_KEEP_OUTCOMES};

/// A process id: unique within one [`run`], never reused, and not an OS
/// pid. Process ids can be sent to other processes (they are `serde`
/// types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProcessId(u64);

impl ProcessId {
    /// The number of this id (the first process is 1).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process #{}", self.0)
    }
}

/// The id of a process started from definition `D` (the marker type that
/// `#[mc::process]` generates). Joining it through another definition's
/// `join` is a type error.
pub struct Pid<D> {
    id: ProcessId,
    _def: PhantomData<fn() -> D>,
}

impl<D> Pid<D> {
    /// The untyped id.
    pub fn id(self) -> ProcessId {
        self.id
    }

    fn new(id: u64) -> Pid<D> {
        Pid {
            id: ProcessId(id),
            _def: PhantomData,
        }
    }
}

impl<D> Clone for Pid<D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<D> Copy for Pid<D> {}
impl<D> PartialEq for Pid<D> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl<D> Eq for Pid<D> {}
impl<D> Hash for Pid<D> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}
impl<D: Definition> fmt::Debug for Pid<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pid<{}>({})", D::NAME, self.id.0)
    }
}
impl<D> fmt::Display for Pid<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.id.fmt(f)
    }
}
impl<D> From<Pid<D>> for ProcessId {
    fn from(p: Pid<D>) -> ProcessId {
        p.id
    }
}
impl<D> Serialize for Pid<D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.id.serialize(s)
    }
}
impl<'de, D> Deserialize<'de> for Pid<D> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        Ok(Pid {
            id: ProcessId::deserialize(d)?,
            _def: PhantomData,
        })
    }
}

/// A signal number, shown by name (`SIGKILL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signal(pub i32);

impl Signal {
    /// `SIGKILL`.
    pub const KILL: Signal = Signal(crate::os::proc::SIGKILL);
    /// `SIGTERM`.
    pub const TERM: Signal = Signal(crate::os::proc::SIGTERM);
    /// `SIGABRT`.
    pub const ABRT: Signal = Signal(crate::os::proc::SIGABRT);

    /// The signal's name, e.g. `"SIGKILL"` (`"SIG?"` when unknown).
    pub fn name(self) -> &'static str {
        crate::os::proc::signal_name(self.0)
    }

    /// Whether the signal's default action is to dump core, i.e. it means
    /// the program failed by itself (`SIGABRT`, `SIGSEGV`, `SIGBUS`, ...).
    pub fn is_crash(self) -> bool {
        crate::os::proc::signal_is_crash(self.0)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<R> {
    /// The body returned this value.
    Returned(R),
    /// The body panicked with this message.
    Panicked(String),
    /// The process died from a signal meaning it failed by itself
    /// ([`Signal::is_crash`]: `abort()`, a segmentation fault, ...).
    Aborted(Signal),
    /// The process was terminated by another signal (`SIGKILL`,
    /// `SIGTERM`, ...).
    Killed(Signal),
    /// The process called `exit` with this code instead of returning.
    Exited(i32),
}

impl<R> Outcome<R> {
    /// The returned value, if the body returned.
    pub fn returned(self) -> Option<R> {
        match self {
            Outcome::Returned(r) => Some(r),
            _ => None,
        }
    }

    /// The returned value, or how the body ended instead.
    ///
    /// # Errors
    ///
    /// The outcome without a value (it displays as `panicked: …`, `killed
    /// by SIGKILL`, …) when the body did not return.
    ///
    /// ```
    /// let died: mc::Outcome<u32> = mc::Outcome::Exited(3);
    /// assert_eq!(died.into_result().unwrap_err().to_string(), "exited with code 3");
    /// assert_eq!(mc::Outcome::Returned(7).into_result(), Ok(7));
    /// ```
    pub fn into_result(self) -> Result<R, Outcome<()>> {
        match self {
            Outcome::Returned(r) => Ok(r),
            other => Err(other.cause()),
        }
    }

    /// Whether the body returned.
    pub fn is_returned(&self) -> bool {
        matches!(self, Outcome::Returned(_))
    }

    /// The outcome without the value.
    pub fn cause(&self) -> Outcome<()> {
        match self {
            Outcome::Returned(_) => Outcome::Returned(()),
            Outcome::Panicked(m) => Outcome::Panicked(m.clone()),
            Outcome::Aborted(s) => Outcome::Aborted(*s),
            Outcome::Killed(s) => Outcome::Killed(*s),
            Outcome::Exited(c) => Outcome::Exited(*c),
        }
    }
}

/// How a process ended without returning, as an error
/// ([`Outcome::into_result`]).
impl std::error::Error for Outcome<()> {}

impl<R> fmt::Display for Outcome<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Returned(_) => write!(f, "returned"),
            Outcome::Panicked(m) => write!(f, "panicked: {m}"),
            Outcome::Aborted(s) => write!(f, "aborted by {s}"),
            Outcome::Killed(s) => write!(f, "killed by {s}"),
            Outcome::Exited(c) => write!(f, "exited with code {c}"),
        }
    }
}

/// Why a join gave no result: the process failed, or the join did.
///
/// What [`join`], [`join_timeout`] and [`try_join`] (and the `join` of a
/// `#[mc::process]`) return as their error. The first four variants say how
/// the process ended instead of returning, as [`Outcome`] does;
/// [`JoinError::Join`] says why the join itself could not be made.
///
/// ```
/// use mc::{JoinError, Signal};
///
/// let e = JoinError::Killed(Signal::KILL);
/// assert_eq!(e.to_string(), "the process was killed by SIGKILL (9)");
/// assert!(e.failed());
/// assert!(!JoinError::from(mc::ProcessError::MasterGone).failed());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum JoinError {
    /// The process panicked with this message.
    Panicked(String),
    /// The process died from a signal meaning it failed by itself
    /// ([`Signal::is_crash`]: `abort()`, a segmentation fault, ...).
    Aborted(Signal),
    /// The process was terminated by another signal (`SIGKILL`,
    /// `SIGTERM`, ...).
    Killed(Signal),
    /// The process called `exit` with this code instead of returning.
    Exited(i32),
    /// The join could not be made (no such process, already joined, timed
    /// out, the master gone, ...); the process may not have ended at all.
    Join(ProcessError),
}

impl JoinError {
    /// Whether the process ended without returning (as opposed to a join
    /// that could not be made).
    pub fn failed(&self) -> bool {
        !matches!(self, JoinError::Join(_))
    }

    /// How the process ended, when it failed.
    pub fn outcome(&self) -> Option<Outcome<()>> {
        match self {
            JoinError::Panicked(m) => Some(Outcome::Panicked(m.clone())),
            JoinError::Aborted(s) => Some(Outcome::Aborted(*s)),
            JoinError::Killed(s) => Some(Outcome::Killed(*s)),
            JoinError::Exited(c) => Some(Outcome::Exited(*c)),
            JoinError::Join(_) => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(m) => write!(f, "the process panicked: {m}"),
            JoinError::Aborted(s) => write!(f, "the process was aborted by {s}"),
            JoinError::Killed(s) => write!(f, "the process was killed by {s}"),
            JoinError::Exited(c) => write!(f, "the process exited with code {c}"),
            JoinError::Join(e) => write!(f, "cannot join: {e}"),
        }
    }
}

impl std::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JoinError::Join(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProcessError> for JoinError {
    fn from(e: ProcessError) -> Self {
        JoinError::Join(e)
    }
}

impl<R> Outcome<R> {
    /// The returned value, or the failure as a [`JoinError`].
    fn into_join(self) -> Result<R, JoinError> {
        match self {
            Outcome::Returned(r) => Ok(r),
            Outcome::Panicked(m) => Err(JoinError::Panicked(m)),
            Outcome::Aborted(s) => Err(JoinError::Aborted(s)),
            Outcome::Killed(s) => Err(JoinError::Killed(s)),
            Outcome::Exited(c) => Err(JoinError::Exited(c)),
        }
    }
}

impl WireOutcome {
    fn decode<R: DeserializeOwned>(self) -> Result<Outcome<R>, ProcessError> {
        Ok(match self {
            WireOutcome::Returned(bytes) => Outcome::Returned(
                postcard::from_bytes(&bytes).map_err(|e| ProcessError::Decode(e.to_string()))?,
            ),
            WireOutcome::Panicked(m) => Outcome::Panicked(m),
            WireOutcome::Aborted(s) => Outcome::Aborted(Signal(s)),
            WireOutcome::Killed(s) => Outcome::Killed(Signal(s)),
            WireOutcome::Exited(c) => Outcome::Exited(c),
        })
    }

    fn status(self) -> Outcome<()> {
        match self {
            WireOutcome::Returned(_) => Outcome::Returned(()),
            other => other.decode::<()>().unwrap_or(Outcome::Returned(())),
        }
    }
}

/// Why a process operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// [`run`] was called in a process with more than one thread: forking
    /// it would copy locks held by the other threads.
    MultiThreaded {
        /// The number of threads found in `/proc/self/task`.
        threads: usize,
    },
    /// [`run`] was called inside a worker (there is one master per run).
    AlreadyRunning,
    /// A process operation was called outside the processes of a [`run`].
    NotInWorker,
    /// No such process in this run.
    NoSuchProcess(ProcessId),
    /// The process ended and was joined so long ago that the master no
    /// longer keeps its outcome (see
    /// [`RunOptions::keep_outcomes`](crate::RunOptions::keep_outcomes)).
    Forgotten(ProcessId),
    /// The result of this process was already taken by an earlier join.
    AlreadyJoined(ProcessId),
    /// The process was started from another definition (possible only
    /// with an id forged through deserialization).
    WrongDefinition(ProcessId),
    /// Results of this process's definition are not kept
    /// (`release_join_point` was called).
    JoinPointReleased(ProcessId),
    /// A process tried to join itself (it would wait forever).
    JoinSelf(ProcessId),
    /// `join_timeout` gave up; the process is still running and can be
    /// joined later.
    Timeout(ProcessId),
    /// The master is gone (the run is over).
    MasterGone,
    /// The first process has finished: the run is ending and starts no
    /// more processes.
    RunOver,
    /// The master refused the process definition (not a static definition
    /// of this program).
    BadDefinition,
    /// No such resource (never registered, or already deleted).
    NoSuchResource(ResourceId),
    /// The resource exists but is of another kind.
    WrongKind {
        /// The resource.
        id: ResourceId,
        /// Its kind.
        found: resources::ResourceKind,
        /// The kind asked for.
        expected: resources::ResourceKind,
    },
    /// The argument or the result could not be encoded.
    Encode(String),
    /// The argument or the result could not be decoded.
    Decode(String),
    /// A pool could not be created or attached.
    Pool(crate::pool::PoolError),
    /// `fork` failed with this errno.
    Fork(i32),
    /// A system call failed.
    Io(std::io::Error),
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::MultiThreaded { threads } => write!(
                f,
                "mc::run needs a single-threaded process, but this one has {threads} threads; \
                 call it before starting threads (or start them in workers)"
            ),
            ProcessError::AlreadyRunning => {
                write!(
                    f,
                    "mc::run called inside a worker: there is one master per run"
                )
            }
            ProcessError::NotInWorker => write!(
                f,
                "process operations work only inside mc::run (in the first process or a worker)"
            ),
            ProcessError::NoSuchProcess(p) => write!(f, "no {p} in this run"),
            ProcessError::Forgotten(p) => write!(
                f,
                "{p} ended and was joined long ago: the master no longer keeps its outcome \
                 (raise RunOptions::keep_outcomes to keep more)"
            ),
            ProcessError::AlreadyJoined(p) => write!(f, "{p} was already joined"),
            ProcessError::WrongDefinition(p) => {
                write!(f, "{p} was started from another process definition")
            }
            ProcessError::JoinPointReleased(p) => {
                write!(
                    f,
                    "results of {p}'s definition are not kept (join point released)"
                )
            }
            ProcessError::JoinSelf(p) => write!(f, "{p} cannot join itself"),
            ProcessError::Timeout(p) => write!(f, "timed out waiting for {p}"),
            ProcessError::MasterGone => write!(f, "the master is gone"),
            ProcessError::RunOver => write!(
                f,
                "the run is over (its first process has finished): no process starts any more"
            ),
            ProcessError::BadDefinition => {
                write!(f, "not a process definition of this program")
            }
            ProcessError::NoSuchResource(r) => write!(f, "no resource {r}"),
            ProcessError::WrongKind {
                id,
                found,
                expected,
            } => {
                write!(f, "resource {id} is a {found:?}, not a {expected:?}")
            }
            ProcessError::Encode(e) => write!(f, "cannot encode: {e}"),
            ProcessError::Decode(e) => write!(f, "cannot decode: {e}"),
            ProcessError::Fork(e) => {
                write!(f, "fork failed: {}", std::io::Error::from_raw_os_error(*e))
            }
            ProcessError::Pool(e) => write!(f, "{e}"),
            ProcessError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcessError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ProcessError {
    fn from(e: std::io::Error) -> Self {
        ProcessError::Io(e)
    }
}

impl WireError {
    fn into_error(self) -> ProcessError {
        match self {
            WireError::NoSuchProcess(p) => ProcessError::NoSuchProcess(ProcessId(p)),
            WireError::AlreadyJoined(p) => ProcessError::AlreadyJoined(ProcessId(p)),
            WireError::WrongDefinition(p) => ProcessError::WrongDefinition(ProcessId(p)),
            WireError::JoinPointReleased(p) => ProcessError::JoinPointReleased(ProcessId(p)),
            WireError::JoinSelf(p) => ProcessError::JoinSelf(ProcessId(p)),
            WireError::BadDefinition => ProcessError::BadDefinition,
            WireError::NoSuchResource(r) => ProcessError::NoSuchResource(ResourceId(r)),
            WireError::Forgotten(p) => ProcessError::Forgotten(ProcessId(p)),
            WireError::RunOver => ProcessError::RunOver,
            WireError::Fork(e) => ProcessError::Fork(e),
            WireError::Io(m) => ProcessError::Io(std::io::Error::other(m)),
        }
    }
}

/// Options of a start: which resources the new process inherits.
///
/// By default it inherits every resource the starting process uses (as in
/// Netmulticore 3.5 and later): the new process counts as a user of each,
/// so they are not deleted while it runs.
#[derive(Debug, Clone)]
pub struct StartOptions {
    inherit: WireInherit,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            inherit: WireInherit::All,
        }
    }
}

impl StartOptions {
    /// The default options: inherit all resources the starter uses.
    pub fn new() -> StartOptions {
        StartOptions::default()
    }

    /// Inherit every resource the starter uses (the default).
    pub fn inherit_all(mut self) -> StartOptions {
        self.inherit = WireInherit::All;
        self
    }

    /// Inherit nothing.
    pub fn inherit_none(mut self) -> StartOptions {
        self.inherit = WireInherit::Nothing;
        self
    }

    /// Inherit this resource (and those named by earlier `inherit` calls)
    /// only.
    pub fn inherit(mut self, id: ResourceId) -> StartOptions {
        match &mut self.inherit {
            WireInherit::Only(ids) => ids.push(id.0),
            _ => self.inherit = WireInherit::Only(vec![id.0]),
        }
        self
    }
}

/// A process definition. `#[mc::process]` implements it for a hidden marker
/// type; use the generated module (`name::start`, `name::join`, ...) rather
/// than this trait.
pub trait Definition: Sized + 'static {
    /// The argument type.
    type Arg: __macro_support::ProcessArg;
    /// The result type.
    type Output: __macro_support::ProcessResult;
    /// The definition's path (`module::name`).
    const NAME: &'static str;
    /// Runs the body.
    fn run(arg: Self::Arg) -> Self::Output;
    /// The definition's static description. It must be a `static` item
    /// (the master checks that it lies in the program image).
    #[doc(hidden)]
    fn info() -> &'static DefinitionInfo;
}

/// The static description of a process definition; its address is what a
/// start request names, which is valid in every process of a run because
/// each is a fork of the master.
#[doc(hidden)]
#[derive(Debug)]
pub struct DefinitionInfo {
    magic: u64,
    id: u64,
    name: &'static str,
    entry: fn(&[u8]) -> Result<Vec<u8>, String>,
}

const DEF_MAGIC: u64 = 0x6d63_2d64_6566_2d31; // "mc-def-1"

/// FNV-1a of a string, usable in constants.
const fn fnv1a(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

fn entry<D: Definition>(arg: &[u8]) -> Result<Vec<u8>, String> {
    let arg: D::Arg = postcard::from_bytes(arg)
        .map_err(|e| format!("cannot decode the argument of {}: {e}", D::NAME))?;
    let out = D::run(arg);
    postcard::to_allocvec(&out).map_err(|e| format!("cannot encode the result of {}: {e}", D::NAME))
}

impl DefinitionInfo {
    /// The description of `D`; put it in a `static`.
    pub const fn of<D: Definition>() -> DefinitionInfo {
        DefinitionInfo {
            magic: DEF_MAGIC,
            id: fnv1a(D::NAME),
            name: D::NAME,
            entry: entry::<D>,
        }
    }

    /// The definition's path.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

fn encode_arg<T: Serialize>(arg: &T) -> Result<Vec<u8>, ProcessError> {
    postcard::to_allocvec(arg).map_err(|e| ProcessError::Encode(e.to_string()))
}

fn unexpected(r: Reply) -> ProcessError {
    ProcessError::Io(std::io::Error::other(format!(
        "unexpected reply from the master: {r:?}"
    )))
}

/// Starts a process of definition `D` with `arg` (what `name::start` does).
///
/// # Errors
///
/// As [`start_with`].
pub fn start<D: Definition>(arg: D::Arg) -> Result<Pid<D>, ProcessError> {
    start_with::<D>(arg, StartOptions::default())
}

/// Starts a process of definition `D` with `arg` and options (what
/// `name::start_with` does).
///
/// # Errors
///
/// [`ProcessError::RunOver`] once the first process has finished;
/// [`ProcessError::Encode`] when `arg` cannot be encoded;
/// [`ProcessError::Fork`] or [`ProcessError::Io`] when the master cannot fork
/// the process; [`ProcessError::BadDefinition`] when the master does not know
/// `D`; [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn start_with<D: Definition>(arg: D::Arg, opts: StartOptions) -> Result<Pid<D>, ProcessError> {
    let info = D::info();
    let req = Request::Start {
        def_addr: std::ptr::from_ref(info).expose_provenance() as u64,
        def_id: info.id,
        arg: encode_arg(&arg)?,
        inherit: opts.inherit,
    };
    match worker::request(&req)? {
        Reply::Started(id) => Ok(Pid::new(id)),
        Reply::Err(e) => Err(e.into_error()),
        r => Err(unexpected(r)),
    }
}

fn join_raw<D: Definition>(
    pid: Pid<D>,
    mode: JoinMode,
) -> Result<Option<WireOutcome>, ProcessError> {
    let req = Request::Join {
        pid: pid.id.0,
        def_id: D::info().id,
        mode,
    };
    match worker::request(&req)? {
        Reply::Outcome(o) => Ok(Some(o)),
        Reply::NotYet => Ok(None),
        Reply::Err(e) => Err(e.into_error()),
        r => Err(unexpected(r)),
    }
}

/// Waits for the process and returns how it ended, with its result (what
/// `name::join_outcome` does). Only the first join gets the outcome.
///
/// # Errors
///
/// [`ProcessError::NoSuchProcess`] when `pid` is not of this run;
/// [`ProcessError::AlreadyJoined`] when an earlier join took the outcome;
/// [`ProcessError::JoinPointReleased`] after [`release_join_point`];
/// [`ProcessError::JoinSelf`] when a process joins itself;
/// [`ProcessError::WrongDefinition`] when `pid` is of another definition;
/// [`ProcessError::Decode`] when the result cannot be decoded;
/// [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn join_outcome<D: Definition>(pid: Pid<D>) -> Result<Outcome<D::Output>, ProcessError> {
    match join_raw(pid, JoinMode::Block)? {
        Some(o) => o.decode(),
        None => Err(ProcessError::MasterGone),
    }
}

/// Waits for the process and returns its result. What `name::join` does.
///
/// # Errors
///
/// [`JoinError::Panicked`], [`JoinError::Aborted`], [`JoinError::Killed`]
/// or [`JoinError::Exited`] when the process ended without returning;
/// [`JoinError::Join`] with the errors of [`join_outcome`] when the join
/// could not be made.
pub fn join<D: Definition>(pid: Pid<D>) -> Result<D::Output, JoinError> {
    join_outcome(pid)?.into_join()
}

/// Like [`join`], but gives up after `timeout` (the process can still be
/// joined later).
///
/// # Errors
///
/// As [`join`]; [`JoinError::Join`] with [`ProcessError::Timeout`] when the
/// timeout passes.
pub fn join_timeout<D: Definition>(pid: Pid<D>, timeout: Duration) -> Result<D::Output, JoinError> {
    let ms = timeout.as_millis().min(u64::MAX as u128) as u64;
    match join_raw(pid, JoinMode::Timeout(ms))? {
        Some(o) => o.decode::<D::Output>()?.into_join(),
        None => Err(ProcessError::Timeout(pid.id).into()),
    }
}

/// Joins without waiting: `Ok(None)` while the process runs, otherwise its
/// result (which this call takes, as a join does). A process still running
/// is not an error.
///
/// # Errors
///
/// As [`join`], once the process has ended.
pub fn try_join<D: Definition>(pid: Pid<D>) -> Result<Option<D::Output>, JoinError> {
    match join_raw(pid, JoinMode::Poll)? {
        Some(o) => o.decode::<D::Output>()?.into_join().map(Some),
        None => Ok(None),
    }
}

/// From now on, results of processes of definition `D` are not kept by
/// the master (results already stored are dropped); joining them returns
/// [`ProcessError::JoinPointReleased`].
///
/// # Errors
///
/// [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn release_join_point<D: Definition>() -> Result<(), ProcessError> {
    match worker::request(&Request::ReleaseJoinPoint {
        def_id: D::info().id,
    })? {
        Reply::Ok => Ok(()),
        Reply::Err(e) => Err(e.into_error()),
        r => Err(unexpected(r)),
    }
}

/// How a process is doing, without taking its result: `None` while it runs,
/// otherwise how it ended (also after it was joined).
///
/// # Errors
///
/// [`ProcessError::NoSuchProcess`] when `pid` is not of this run;
/// [`ProcessError::Forgotten`] when the master no longer keeps its outcome (see
/// [`RunOptions::keep_outcomes`](crate::RunOptions::keep_outcomes));
/// [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn status(pid: impl Into<ProcessId>) -> Result<Option<Outcome<()>>, ProcessError> {
    let pid = pid.into();
    match worker::request(&Request::Status { pid: pid.0 })? {
        Reply::Status(s) => Ok(s.map(WireOutcome::status)),
        Reply::Err(e) => Err(e.into_error()),
        r => Err(unexpected(r)),
    }
}

/// Sends `signal` to a running process (nothing happens when it has
/// ended).
///
/// # Errors
///
/// [`ProcessError::NoSuchProcess`] when `pid` is not of this run;
/// [`ProcessError::NotInWorker`] outside the processes of a
/// [`run`](crate::run); [`ProcessError::MasterGone`] or [`ProcessError::Io`]
/// when the master cannot be reached.
pub fn kill(pid: impl Into<ProcessId>, signal: Signal) -> Result<(), ProcessError> {
    let pid = pid.into();
    match worker::request(&Request::Kill {
        pid: pid.0,
        signal: signal.0,
    })? {
        Reply::Ok => Ok(()),
        Reply::Err(e) => Err(e.into_error()),
        r => Err(unexpected(r)),
    }
}

/// The id of the calling process, if it is a worker (the first process
/// included).
pub fn self_id() -> Option<ProcessId> {
    worker::self_id().map(ProcessId)
}

/// Items used by the code `#[mc::process]` generates. Not public API.
#[doc(hidden)]
pub mod __macro_support {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    /// Implemented by every type that can be a process argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the argument of a process: it must implement serde's \
                   `Serialize` and `Deserialize` (owned)",
        label = "not `Serialize + DeserializeOwned`",
        note = "the argument travels to the new process as bytes; derive serde's traits, or pass \
                an id (a `ResourceId`, a `Pid`) instead of a handle, reference or closure"
    )]
    pub trait ProcessArg: Serialize + DeserializeOwned {}
    impl<T: Serialize + DeserializeOwned> ProcessArg for T {}

    /// Implemented by every type that can be a process result.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the result of a process: it must implement serde's \
                   `Serialize` and `Deserialize` (owned)",
        label = "not `Serialize + DeserializeOwned`",
        note = "the result travels back to the master as bytes; derive serde's traits, or return \
                an id (a `ResourceId`) instead of a handle, reference or closure"
    )]
    pub trait ProcessResult: Serialize + DeserializeOwned {}
    impl<T: Serialize + DeserializeOwned> ProcessResult for T {}
}
