//! Listening sockets, bound by the master before it starts any worker (the
//! workers inherit them), and the connections accepted on them.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::config::Listen;
use crate::error::ServeError;

/// A bound listening socket.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A listener in a worker's tokio runtime.
pub(crate) enum TokioListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Where a service ended up listening: the configured address with the
/// port the system chose for port 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for BoundAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundAddr::Tcp(a) => write!(f, "{a}"),
            BoundAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Listener {
    /// Binds `addr`, non-blocking (workers poll before they accept).
    pub(crate) fn bind(addr: &Listen) -> Result<Listener, ServeError> {
        let bind_err = |source: io::Error| ServeError::Bind {
            addr: addr.to_string(),
            source,
        };
        let l = match addr {
            Listen::Tcp(a) => {
                let mut addrs = a.to_socket_addrs().map_err(bind_err)?;
                let sa = addrs.next().ok_or_else(|| {
                    bind_err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the name resolves to no address",
                    ))
                })?;
                Listener::Tcp(TcpListener::bind(sa).map_err(bind_err)?)
            }
            Listen::Unix(p) => Listener::Unix(UnixListener::bind(p).map_err(bind_err)?, p.clone()),
        };
        match &l {
            Listener::Tcp(t) => t.set_nonblocking(true),
            Listener::Unix(u, _) => u.set_nonblocking(true),
        }
        .map_err(bind_err)?;
        Ok(l)
    }

    pub(crate) fn bound(&self) -> io::Result<BoundAddr> {
        Ok(match self {
            Listener::Tcp(t) => BoundAddr::Tcp(t.local_addr()?),
            Listener::Unix(_, p) => BoundAddr::Unix(p.clone()),
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(t) => t.as_fd(),
            Listener::Unix(u, _) => u.as_fd(),
        }
    }

    /// Accepts a connection if one is waiting (another worker may take it
    /// first: then `None`).
    fn try_accept(&self) -> io::Result<Option<Connection>> {
        let r = match self {
            Listener::Tcp(t) => t.accept().map(|(s, peer)| Connection {
                stream: Stream::Tcp(s),
                peer: Some(peer),
            }),
            Listener::Unix(u, _) => u.accept().map(|(s, _)| Connection {
                stream: Stream::Unix(s),
                peer: None,
            }),
        };
        match r {
            Ok(c) => {
                c.set_blocking()?;
                Ok(Some(c))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A tokio listener on the same socket (a duplicate descriptor), for
    /// a worker's async runtime; call it inside the runtime.
    pub(crate) fn to_tokio(&self) -> io::Result<TokioListener> {
        Ok(match self {
            Listener::Tcp(t) => {
                TokioListener::Tcp(tokio::net::TcpListener::from_std(t.try_clone()?)?)
            }
            Listener::Unix(u, _) => {
                TokioListener::Unix(tokio::net::UnixListener::from_std(u.try_clone()?)?)
            }
        })
    }

    /// Removes a Unix socket's file (when the server stops).
    pub(crate) fn remove_file(&self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Waits at most `timeout` for a connection on any of `listeners` and
/// accepts it.
pub(crate) fn accept_any(
    listeners: &[Listener],
    timeout: Duration,
) -> io::Result<Option<Connection>> {
    let mut fds: Vec<PollFd<'_>> = listeners
        .iter()
        .map(|l| PollFd::new(l.fd(), PollFlags::POLLIN))
        .collect();
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(None),
        Err(e) => return Err(io::Error::from(e)),
    }
    let ready: Vec<usize> = fds
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR))
        })
        .map(|(i, _)| i)
        .collect();
    drop(fds);
    for i in ready {
        if let Some(c) = listeners[i].try_accept()? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A connection accepted by a worker: a TCP or Unix stream, blocking.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    peer: Option<SocketAddr>,
}

impl Connection {
    /// The peer's address (`None` on a Unix socket).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The TCP stream, when the connection came over TCP.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match &self.stream {
            Stream::Tcp(s) => Some(s),
            Stream::Unix(_) => None,
        }
    }

    /// The Unix stream, when the connection came over a Unix socket.
    pub fn as_unix(&self) -> Option<&UnixStream> {
        match &self.stream {
            Stream::Unix(s) => Some(s),
            Stream::Tcp(_) => None,
        }
    }

    /// Sets a read timeout (`None`: none).
    ///
    /// # Errors
    ///
    /// As [`TcpStream::set_read_timeout`].
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// Shuts down both directions.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::shutdown`].
    pub fn shutdown(&self) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        }
    }

    fn set_blocking(&self) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => s.set_nonblocking(false),
            Stream::Unix(s) => s.set_nonblocking(false),
        }
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}
