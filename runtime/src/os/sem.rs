//! Named POSIX semaphores (`sem_open`), which nix does not wrap.

use std::ffi::CString;
use std::io;

/// An open named semaphore, closed when dropped.
#[derive(Debug)]
pub(crate) struct NamedSem {
    sem: *mut libc::sem_t,
}

// SAFETY: POSIX semaphores may be used from any thread.
unsafe impl Send for NamedSem {}
// SAFETY: as above.
unsafe impl Sync for NamedSem {}

/// The calls on an open semaphore that take nothing but the handle.
#[derive(Clone, Copy)]
enum Op {
    Post,
    Wait,
    TryWait,
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

impl NamedSem {
    /// Creates `name` (which starts with `/`) with value `initial`, mode
    /// 0600; fails when it exists.
    pub(crate) fn create(name: &str, initial: u32) -> io::Result<NamedSem> {
        let c = c_name(name)?;
        // SAFETY: `c` is NUL-terminated; with O_CREAT the mode and the
        // initial value follow as the variadic arguments.
        let sem = unsafe {
            libc::sem_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                initial,
            )
        };
        if sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(NamedSem { sem })
    }

    /// Opens an existing semaphore.
    pub(crate) fn open(name: &str) -> io::Result<NamedSem> {
        let c = c_name(name)?;
        // SAFETY: `c` is NUL-terminated; without O_CREAT no more arguments.
        let sem = unsafe { libc::sem_open(c.as_ptr(), 0) };
        if sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(NamedSem { sem })
    }

    /// Calls `op` on the semaphore; returns the C result (0: done).
    fn call(&self, op: Op) -> libc::c_int {
        // SAFETY: `sem` is open while `self` lives (only `drop` closes
        // it), and each of these calls needs nothing but an open semaphore.
        unsafe {
            match op {
                Op::Post => libc::sem_post(self.sem),
                Op::Wait => libc::sem_wait(self.sem),
                Op::TryWait => libc::sem_trywait(self.sem),
            }
        }
    }

    /// Increments the value.
    pub(crate) fn post(&self) -> io::Result<()> {
        if self.call(Op::Post) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until the value is positive, then decrements it.
    pub(crate) fn wait(&self) -> io::Result<()> {
        loop {
            if self.call(Op::Wait) == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Decrements the value if it is positive; `false` otherwise.
    pub(crate) fn try_wait(&self) -> io::Result<bool> {
        if self.call(Op::TryWait) == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(false);
        }
        Err(e)
    }

    /// The current value.
    pub(crate) fn value(&self) -> io::Result<i32> {
        let mut v = 0;
        // SAFETY: `sem` is open while `self` lives; `v` is a live local.
        if unsafe { libc::sem_getvalue(self.sem, &mut v) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(v)
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: closes the handle this value opened; it is not used after.
        unsafe { libc::sem_close(self.sem) };
    }
}

/// Removes a named semaphore (processes that have it open keep it).
pub(crate) fn unlink(name: &str) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is NUL-terminated.
    if unsafe { libc::sem_unlink(c.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
