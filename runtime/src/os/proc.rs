//! Processes: fork, wait, signals, pidfds, and ending a forked child.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

/// A process id as the kernel gives it.
pub(crate) type RawPid = i32;

/// `SIGKILL`.
pub(crate) const SIGKILL: i32 = Signal::SIGKILL as i32;
/// `SIGTERM`.
pub(crate) const SIGTERM: i32 = Signal::SIGTERM as i32;
/// `SIGABRT`.
pub(crate) const SIGABRT: i32 = Signal::SIGABRT as i32;

/// The name of signal `sig` (`"SIGKILL"`), or `"SIG?"`.
pub(crate) fn signal_name(sig: i32) -> &'static str {
    Signal::try_from(sig).map_or("SIG?", Signal::as_str)
}

/// Whether signal `sig`'s default action dumps core: it means that the
/// process failed by itself (`SIGABRT`, `SIGSEGV`, `SIGBUS`, ...).
pub(crate) fn signal_is_crash(sig: i32) -> bool {
    matches!(
        Signal::try_from(sig),
        Ok(Signal::SIGABRT
            | Signal::SIGSEGV
            | Signal::SIGBUS
            | Signal::SIGILL
            | Signal::SIGFPE
            | Signal::SIGQUIT
            | Signal::SIGSYS
            | Signal::SIGTRAP
            | Signal::SIGXCPU
            | Signal::SIGXFSZ)
    )
}

/// The calling process's id (a system call: see
/// [`current_pid`](super::ids::current_pid) for the cached one).
pub(crate) fn getpid() -> RawPid {
    nix::unistd::getpid().as_raw()
}

/// The calling process's parent.
pub(crate) fn getppid() -> RawPid {
    nix::unistd::getppid().as_raw()
}

/// Which side of a fork this is.
pub(crate) enum Forked {
    /// The child.
    Child,
    /// The parent, with the child's pid.
    Parent(RawPid),
}

/// Forks the calling process.
///
/// # Safety
///
/// The calling process must have one thread (or the child must only call
/// async-signal-safe functions before `exec` or [`exit_now`]): the child
/// is a copy of this thread alone, and locks that other threads held are
/// held forever in it.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller's contract is `fork`'s.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => Ok(Forked::Child),
        Ok(ForkResult::Parent { child }) => Ok(Forked::Parent(child.as_raw())),
        Err(e) => Err(io::Error::from_raw_os_error(e as i32)),
    }
}

/// Ends the calling process at once with `code`, without running
/// destructors or `atexit` handlers (those of a forked child are the
/// parent's copies).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

/// Reaps child `pid`: waits for it (`block`), or returns `Ok(None)` when
/// it still runs. Retries on `EINTR`.
pub(crate) fn wait(pid: RawPid, block: bool) -> io::Result<Option<Ended>> {
    let flags = if block {
        None
    } else {
        Some(WaitPidFlag::WNOHANG)
    };
    loop {
        match waitpid(Pid::from_raw(pid), flags) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Some(Ended::Exited(code))),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Some(Ended::Signaled(sig as i32))),
            Ok(WaitStatus::StillAlive) => return Ok(None),
            // Stopped or continued: not ended.
            Ok(_) if !block => return Ok(None),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from_raw_os_error(e as i32)),
        }
    }
}

/// Sends signal `sig` to process `pid`.
pub(crate) fn kill(pid: RawPid, sig: i32) -> io::Result<()> {
    let sig = Signal::try_from(sig).map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    signal::kill(Pid::from_raw(pid), sig).map_err(|e| io::Error::from_raw_os_error(e as i32))
}

/// A pidfd of process `pid` (readable once it has ended), if the kernel
/// makes pidfds (5.3 and later).
pub(crate) fn pidfd_open(pid: RawPid) -> Option<OwnedFd> {
    // SAFETY: plain system call; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the descriptor was just created and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends signal `sig` through a pidfd (which, unlike a pid, cannot name
/// another process after the first has been reaped). `false` on failure.
pub(crate) fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> bool {
    // SAFETY: plain system call on a pidfd we own; a null siginfo is
    // allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r == 0
}

/// Asks for `SIGKILL` when the thread that forked this process ends
/// (`PR_SET_PDEATHSIG`).
pub(crate) fn die_with_parent() -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
}
