//! The worker side: what a freshly forked worker does before and after its
//! body, and the client end of the control channel.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use super::control::{self, Command, Reply, Request, WireOutcome};
use super::{DefinitionInfo, ProcessError};
use crate::os::proc::{self, RawPid};

/// The control connection of this worker (`None` outside workers).
struct Ctx {
    fd: OwnedFd,
    id: u64,
    /// The OS pid of the worker: a process forked by user code inside a
    /// worker shares the socket but is not the worker.
    os_pid: RawPid,
}

impl Ctx {
    fn mine(&self) -> bool {
        self.os_pid == proc::getpid()
    }
}

/// Requests from several threads of one worker are serialised by this
/// lock (a blocking join holds it until its reply comes).
static CONTROL: Mutex<Option<Ctx>> = Mutex::new(None);

fn control() -> std::sync::MutexGuard<'static, Option<Ctx>> {
    CONTROL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether this process is a worker of a run.
pub(crate) fn in_worker() -> bool {
    control().as_ref().is_some_and(Ctx::mine)
}

/// This worker's process id.
pub(crate) fn self_id() -> Option<u64> {
    control().as_ref().filter(|c| c.mine()).map(|c| c.id)
}

/// Sends a request to the master and waits for the reply.
pub(crate) fn request(req: &Request) -> Result<Reply, ProcessError> {
    let guard = control();
    let ctx = guard
        .as_ref()
        .filter(|c| c.mine())
        .ok_or(ProcessError::NotInWorker)?;
    let frame = control::encode(req)?;
    control::send_all(&ctx.fd, &frame).map_err(gone)?;
    let body = control::recv_frame(&ctx.fd).map_err(gone)?;
    Ok(control::decode(&body)?)
}

fn gone(e: std::io::Error) -> ProcessError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionReset => ProcessError::MasterGone,
        _ => ProcessError::Io(e),
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Makes this worker's panic reports on stderr start with a line naming the
/// mc process (`name`, its process id and OS pid) before the usual report.
fn name_panics(name: &'static str, id: u64) {
    let pid = proc::getpid();
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("mc: process `{name}` (process #{id}, pid {pid}) panicked:");
        report(info);
    }));
}

/// Ties the child's life to the master's: `SIGKILL` when the master dies,
/// and an exit now if it already died before the `prctl`.
fn die_with_master(master_pid: RawPid) {
    let _ = proc::die_with_parent();
    // If the master died before the prctl, no signal will come.
    if proc::getppid() != master_pid {
        proc::exit_now(1);
    }
}

/// Runs in a spare worker right after `fork`: waits for the definition and
/// argument to run, then runs them as [`child_main`] does. Exits quietly
/// when the master closes the connection first.
pub(crate) fn spare_main(fd: OwnedFd, master_pid: RawPid) -> ! {
    die_with_master(master_pid);
    warm_up();
    let cmd = control::recv_frame(&fd).and_then(|body| control::decode::<Command>(&body));
    let Ok(Command::Run {
        id,
        def_addr,
        def_id,
        arg,
    }) = cmd
    else {
        proc::exit_now(0)
    };
    let body = move || {
        let info = std::ptr::with_exposed_provenance::<DefinitionInfo>(def_addr as usize);
        // SAFETY: the master validated the address (a `DefinitionInfo` in
        // the program image, which this fork of the master shares) before
        // sending it.
        let info = unsafe { &*info };
        if info.id != def_id {
            return Err("process definition mismatch".to_string());
        }
        name_panics(info.name(), id);
        (info.entry)(&arg)
    };
    run_as(fd, id, body)
}

/// Writes, while the spare waits for work, to the memory every process
/// body writes (stack, allocator, output and control statics), so that the
/// copy-on-write faults this costs are paid before the start request
/// rather than between it and the result.
#[inline(never)]
fn warm_up() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    drop(control());
    let mut stack = [0u8; 32 * 1024];
    for i in (0..stack.len()).step_by(1024) {
        stack[i] = 1;
    }
    std::hint::black_box(&mut stack);
    let heap: Vec<Vec<u8>> = (0..12).map(|i| Vec::with_capacity(16 << i)).collect();
    std::hint::black_box(&heap);
}

/// Makes the calling process the first process of a run (id `id`), with
/// its end of the control channel.
pub(crate) fn enter_first(fd: OwnedFd, id: u64) {
    let os_pid = proc::getpid();
    *control() = Some(Ctx { fd, id, os_pid });
}

/// Ends the first process's part in the run (after the master has gone):
/// process operations fail with [`ProcessError::NotInWorker`] again.
pub(crate) fn leave_first() {
    drop(control().take());
}

/// Installs the control connection, runs `body` catching panics, sends the
/// outcome, and ends the process with `_exit` (so the master's destructors
/// and `atexit` handlers never run here).
fn run_as(fd: OwnedFd, id: u64, body: impl FnOnce() -> Result<Vec<u8>, String>) -> ! {
    let os_pid = proc::getpid();
    *control() = Some(Ctx { fd, id, os_pid });
    let outcome = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(bytes)) => WireOutcome::Returned(bytes),
        Ok(Err(msg)) => WireOutcome::Panicked(msg),
        Err(p) => WireOutcome::Panicked(panic_message(&*p)),
    };
    finish(outcome)
}

/// Sends the outcome to the master and exits.
fn finish(outcome: WireOutcome) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if let Some(ctx) = control().take() {
        if let Ok(frame) = control::encode(&Request::Done(outcome)) {
            let _ = control::send_all(&ctx.fd, &frame);
        }
    }
    // Without the master's atexit handlers or destructors copied by fork;
    // output was flushed above.
    proc::exit_now(0)
}
