//! Async handlers: a worker runs a tokio runtime and serves every
//! connection as a task.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::listener::TokioListener;
use crate::stats::{Row, WorkerState};
use crate::worker::{AsyncFn, ServiceRuntime};

/// How often the worker beats its heart and looks at its stop flag.
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug)]
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// A connection accepted by an async worker: a tokio TCP or Unix stream.
#[derive(Debug)]
pub struct AsyncConnection {
    stream: Stream,
    peer: Option<SocketAddr>,
}

impl AsyncConnection {
    /// The peer's address (`None` on a Unix socket).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The TCP stream, when the connection came over TCP.
    pub fn as_tcp(&self) -> Option<&tokio::net::TcpStream> {
        match &self.stream {
            Stream::Tcp(s) => Some(s),
            Stream::Unix(_) => None,
        }
    }

    /// The Unix stream, when the connection came over a Unix socket.
    pub fn as_unix(&self) -> Option<&tokio::net::UnixStream> {
        match &self.stream {
            Stream::Unix(s) => Some(s),
            Stream::Tcp(_) => None,
        }
    }
}

impl AsyncRead for AsyncConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AsyncConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Accepts on `l` and hands the connections over until the receiver is
/// gone.
async fn accept(l: TokioListener, tx: mpsc::Sender<AsyncConnection>) {
    loop {
        let r = match &l {
            TokioListener::Tcp(t) => t.accept().await.map(|(s, peer)| AsyncConnection {
                stream: Stream::Tcp(s),
                peer: Some(peer),
            }),
            TokioListener::Unix(u) => u.accept().await.map(|(s, _)| AsyncConnection {
                stream: Stream::Unix(s),
                peer: None,
            }),
        };
        match r {
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                eprintln!("mc-serve: accept failed: {e}");
                tokio::time::sleep(TICK).await;
            }
        }
    }
}

/// Serves the service's connections as tasks of a tokio runtime of
/// `threads` threads until `stop` is set or `max` connections were taken
/// (then `recycled` is set); then finishes the connections it took.
pub(crate) fn serve<C: Send + Sync + 'static>(
    svc: &ServiceRuntime<C>,
    handler: &AsyncFn<C>,
    ctx: Arc<C>,
    row: Row<'_>,
    max: u64,
    recycled: &AtomicBool,
    stop: &AtomicBool,
) -> io::Result<()> {
    let rt = if svc.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(svc.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async {
        let (tx, mut rx) = mpsc::channel::<AsyncConnection>(64);
        let mut acceptors = JoinSet::new();
        for l in &svc.listeners {
            acceptors.spawn(accept(l.to_tokio()?, tx.clone()));
        }
        drop(tx);
        row.state(WorkerState::Serving);
        let mut tasks: JoinSet<io::Result<()>> = JoinSet::new();
        let mut tick = tokio::time::interval(TICK);
        let mut taken = 0u64;
        let mut accepting = true;
        loop {
            tokio::select! {
                c = rx.recv(), if accepting => {
                    let Some(c) = c else { accepting = false; continue };
                    taken += 1;
                    row.busy(true);
                    tasks.spawn(handler(c, ctx.clone()));
                    if max > 0 && taken >= max {
                        recycled.store(true, Ordering::SeqCst);
                        accepting = false;
                    }
                }
                Some(done) = tasks.join_next() => {
                    finished(row, done);
                }
                _ = tick.tick() => {
                    row.beat();
                    if stop.load(Ordering::SeqCst) {
                        accepting = false;
                    }
                }
            }
            if !accepting {
                break;
            }
        }
        // Stop accepting; what was accepted already is served.
        row.state(WorkerState::Stopping);
        acceptors.abort_all();
        rx.close();
        while let Some(c) = rx.recv().await {
            row.busy(true);
            tasks.spawn(handler(c, ctx.clone()));
        }
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(done) => finished(row, done),
                    None => break,
                },
                _ = tick.tick() => row.beat(),
            }
        }
        Ok(())
    })
}

/// Counts a finished connection task (and its panic, if it panicked).
fn finished(row: Row<'_>, done: Result<io::Result<()>, tokio::task::JoinError>) {
    row.busy(false);
    row.served();
    if let Err(e) = done {
        if e.is_panic() {
            row.panicked();
        }
    }
}
