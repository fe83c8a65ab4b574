//! What a running server publishes about itself, for `mcctl services`
//! (the counterpart of `netplex-admin`): a named pool per server whose
//! root heap describes the services, next to the workers' figures.

use serde::{Deserialize, Serialize};

use crate::error::ServeError;
use crate::stats::{Row, WorkerStatus};

/// The pool name prefix of a server's published state (`serve-PID`).
pub const POOL_PREFIX: &str = "serve-";

/// A running server, as published in its pool's root heap.
#[derive(mc::Shared, Debug, Clone, PartialEq)]
pub(crate) struct ServerInfo {
    pub(crate) master_pid: u32,
    pub(crate) started_ms: u64,
    pub(crate) stats: mc::PoolMemDescr,
    pub(crate) services: Vec<ServiceInfo>,
}

/// A service of a running server.
#[derive(mc::Shared, Debug, Clone, PartialEq)]
pub(crate) struct ServiceInfo {
    pub(crate) name: String,
    pub(crate) addrs: Vec<String>,
    pub(crate) first_row: u64,
    pub(crate) rows: u64,
    /// Per slot: why its last worker ended without being asked to ("" if
    /// none did).
    pub(crate) last_exit: Vec<String>,
}

/// A running server found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    /// The pid of the process that runs the server (the one to signal).
    pub master_pid: u32,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Its services.
    pub services: Vec<ServiceView>,
}

/// A service of a running server, with its workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// The service's name.
    pub name: String,
    /// Where it listens.
    pub addrs: Vec<String>,
    /// Its worker slots.
    pub workers: Vec<WorkerStatus>,
    /// Per slot: why the last worker ended without being asked to, if one
    /// did.
    pub last_exit: Vec<Option<String>>,
}

/// The servers running on this machine (those whose process is alive),
/// read from the pools they publish.
///
/// # Errors
///
/// [`ServeError::Io`] when `/dev/shm` cannot be read. A server whose pool
/// cannot be opened (it just ended, or its address range is taken here) is
/// left out.
pub fn servers() -> Result<Vec<ServerView>, ServeError> {
    let segs = mc::inspect::list_segments().map_err(|e| ServeError::Io {
        what: "reading /dev/shm".into(),
        source: e,
    })?;
    let prefix = format!("{}pool.{POOL_PREFIX}", mc::inspect::NAME_PREFIX);
    let mut out = Vec::new();
    for s in segs {
        let alive = s.header.as_ref().is_some_and(|h| h.owner_alive());
        if !s.name.starts_with(&prefix) || !alive {
            continue;
        }
        if let Ok(v) = read_server(&s.name) {
            out.push(v);
        }
    }
    out.sort_by_key(|v| v.master_pid);
    Ok(out)
}

fn read_server(segment: &str) -> Result<ServerView, ServeError> {
    let pool = mc::Pool::attach_segment(segment)?;
    let heap = mc::Heap::<ServerInfo>::open_root(&pool)?;
    let info = heap.copy()?;
    let mem = info.stats.open()?;
    let words = mem.words();
    let services = info
        .services
        .iter()
        .map(|s| {
            let first = usize::try_from(s.first_row).unwrap_or(usize::MAX);
            let rows = usize::try_from(s.rows).unwrap_or(0);
            ServiceView {
                name: s.name.clone(),
                addrs: s.addrs.clone(),
                workers: (0..rows)
                    .map(|slot| Row::of(words, first.saturating_add(slot)).status(&s.name, slot))
                    .collect(),
                last_exit: (0..rows)
                    .map(|slot| s.last_exit.get(slot).filter(|e| !e.is_empty()).cloned())
                    .collect(),
            }
        })
        .collect();
    Ok(ServerView {
        master_pid: info.master_pid,
        uptime_ms: crate::stats::now_ms().saturating_sub(info.started_ms),
        services,
    })
}

/// What [`signal_service`] asks of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Stop gracefully (`SIGTERM`).
    Stop,
    /// Replace every worker (`SIGHUP`).
    Restart,
}

/// Signals the server that runs service `name`: a graceful stop, or a
/// restart of its workers. Returns the server's pid.
///
/// # Errors
///
/// [`ServeError::Config`] when no running server has a service of that
/// name; [`ServeError::Io`] when the signal cannot be sent.
pub fn signal_service(name: &str, request: Request) -> Result<u32, ServeError> {
    let server = servers()?
        .into_iter()
        .find(|s| s.services.iter().any(|v| v.name == name))
        .ok_or_else(|| ServeError::Config {
            line: None,
            message: format!(
                "no running server has a service named `{name}` (see `mcctl services`)"
            ),
        })?;
    let sig = match request {
        Request::Stop => nix::sys::signal::Signal::SIGTERM,
        Request::Restart => nix::sys::signal::Signal::SIGHUP,
    };
    let pid = i32::try_from(server.master_pid).map_err(|_| ServeError::Config {
        line: None,
        message: format!("pid {} out of range", server.master_pid),
    })?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(|e| ServeError::Io {
        what: format!("signalling server {pid}"),
        source: std::io::Error::from(e),
    })?;
    Ok(server.master_pid)
}
