//! Shared memory objects (`/dev/shm`): create, open, size, reserve, read,
//! remove; and the processes of the machine, read from `/proc`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, OFlag};
use nix::sys::mman;
use nix::sys::stat::Mode;

/// Where shared memory objects live.
pub(crate) const SHM_DIR: &str = "/dev/shm";

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// The object name as `shm_open` takes it (`/name`).
fn path(name: &str) -> io::Result<String> {
    if name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "segment name contains a NUL byte",
        ));
    }
    Ok(format!("/{name}"))
}

/// Creates a new shared memory object, mode 0600 whatever the umask;
/// fails with `AlreadyExists` when the name is taken.
pub(crate) fn create(name: &str) -> io::Result<OwnedFd> {
    let fd = mman::shm_open(
        path(name)?.as_str(),
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .map_err(io_err)?;
    // The umask may have cleared bits but never adds any; make it exact.
    nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::S_IRUSR | Mode::S_IWUSR).map_err(io_err)?;
    Ok(fd)
}

/// Opens an existing object for reading and writing (`write`) or reading.
pub(crate) fn open(name: &str, write: bool) -> io::Result<OwnedFd> {
    let mode = if write {
        OFlag::O_RDWR
    } else {
        OFlag::O_RDONLY
    };
    mman::shm_open(path(name)?.as_str(), mode | OFlag::O_CLOEXEC, Mode::empty()).map_err(io_err)
}

/// Removes an object by name (processes that have it open keep it).
pub(crate) fn unlink(name: &str) -> io::Result<()> {
    mman::shm_unlink(path(name)?.as_str()).map_err(io_err)
}

/// Sets the size of an open object.
pub(crate) fn set_len(fd: &OwnedFd, len: u64) -> io::Result<()> {
    let len = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    nix::unistd::ftruncate(fd.as_fd(), len).map_err(io_err)
}

/// Reserves backing memory for `len` bytes at `offset`, so that touching
/// them never raises SIGBUS; fails with `ENOSPC` when memory is short.
pub(crate) fn reserve(fd: &OwnedFd, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    loop {
        match nix::fcntl::fallocate(fd.as_raw_fd(), FallocateFlags::empty(), offset, len) {
            Ok(()) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
}

/// The size of an open object, in bytes.
pub(crate) fn size(fd: &OwnedFd) -> io::Result<u64> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io_err)?;
    Ok(st.st_size as u64)
}

/// The inode number of an open object (to tell a re-created object of the
/// same name from the one open).
pub(crate) fn inode(fd: &OwnedFd) -> io::Result<u64> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io_err)?;
    Ok(st.st_ino)
}

/// Reads `buf.len()` bytes at `offset`; `false` when the object ends
/// before (a short read), never a fault.
pub(crate) fn read_at(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        let at = i64::try_from(offset + done as u64)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        match nix::sys::uio::pread(fd.as_fd(), &mut buf[done..], at) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(true)
}

/// Writes all of `buf` at `offset`.
pub(crate) fn write_at(fd: &OwnedFd, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let at = i64::try_from(offset + done as u64)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        match nix::sys::uio::pwrite(fd.as_fd(), &buf[done..], at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}

/// The bytes free for shared memory objects; 0 when unknown.
pub(crate) fn free_bytes() -> usize {
    match nix::sys::statvfs::statvfs(SHM_DIR) {
        Ok(st) => (st.blocks_available() as u128 * st.fragment_size() as u128)
            .min(usize::MAX as u128) as usize,
        Err(_) => 0,
    }
}

/// The start time of `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), if the process exists.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` runs and started at `start` (0: any start time).
/// A zombie counts as dead.
pub(crate) fn process_alive(pid: u32, start: u64) -> bool {
    if pid == 0 {
        return false;
    }
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        // Only a missing entry means the process is gone; any other error
        // (out of file descriptors, of memory) says nothing, and declaring
        // a live process dead could free what it still uses.
        Err(e) => {
            return e.kind() != io::ErrorKind::NotFound
                && e.raw_os_error() != Some(Errno::ESRCH as i32)
        }
    };
    let Some(close) = stat.rfind(')') else {
        return true;
    };
    let mut fields = stat[close + 2..].split_whitespace();
    let state = fields.next().unwrap_or("X");
    if state == "Z" || state == "X" {
        return false;
    }
    if start == 0 {
        return true;
    }
    fields.nth(18).and_then(|s| s.parse::<u64>().ok()) == Some(start)
}
