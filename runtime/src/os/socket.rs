//! Connected Unix stream sockets (the control channels between the master
//! and its processes), and waiting for several descriptors at once.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A connected pair of stream sockets (close-on-exec).
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io_err)
}

/// Writes all of `buf` (blocking), without raising SIGPIPE.
pub(crate) fn send_all(fd: &OwnedFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match socket::send(fd.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes (blocking); `UnexpectedEof` when the
/// peer closed.
pub(crate) fn recv_exact(fd: &OwnedFd, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match socket::recv(fd.as_raw_fd(), buf, MsgFlags::empty()) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}

/// Reads what is available without blocking into the spare room of `buf`
/// (growing it when short); returns the bytes read, `Ok(0)` when the peer
/// closed, or a `WouldBlock` error when nothing is there.
///
/// Reads straight into the spare capacity, without zeroing it first (the
/// master, which calls this, writes as few distinct pages as it can: each
/// page it touches after a fork is a copy-on-write fault).
pub(crate) fn recv_into_spare(fd: &OwnedFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(buf.len().max(4096));
    }
    loop {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is writable memory owned by `buf`, `spare.len()`
        // bytes long; `fd` is an open socket; the kernel writes at most
        // that many bytes.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the first `n` spare bytes.
        unsafe { buf.set_len(buf.len() + n) };
        return Ok(n);
    }
}

/// Waits until one of `fds` is readable (or closed), at most `timeout`
/// (`None`: without end); sets `ready[i]` for each that is. Returns how
/// many are; 0 when the timeout passed. Descriptors are raw numbers: a
/// bad one is reported ready, never used otherwise.
pub(crate) fn poll_readable(
    fds: &[RawFd],
    timeout: Option<Duration>,
    ready: &mut Vec<bool>,
) -> io::Result<usize> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        Some(t) => t.as_millis().min(i32::MAX as u128 - 1) as i32,
    };
    // SAFETY: `pfds` is a live array of `pfds.len()` entries the kernel
    // fills in; poll only reads the descriptor numbers.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            ready.clear();
            ready.resize(fds.len(), false);
            return Ok(0);
        }
        return Err(e);
    }
    ready.clear();
    ready.extend(pfds.iter().map(|p| p.revents != 0));
    Ok(n as usize)
}
