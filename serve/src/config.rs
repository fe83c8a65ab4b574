//! What a server runs: its services, each with listen addresses, a handler
//! and a workload, configured in code or from a TOML file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ServeError;

/// Where a service listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Listen {
    /// A TCP address, `host:port`; port 0 takes a free port, which
    /// [`Server::addrs`](crate::Server::addrs) reports.
    Tcp(String),
    /// A Unix socket path; the file is removed when the server stops.
    Unix(PathBuf),
}

impl Listen {
    /// Parses `unix:PATH` or `host:port`.
    pub fn parse(s: &str) -> Listen {
        match s.strip_prefix("unix:") {
            Some(path) => Listen::Unix(PathBuf::from(path)),
            None => Listen::Tcp(s.to_owned()),
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One service: a name, where it listens, which handler serves its
/// connections, and how many worker processes do so.
///
/// ```
/// use mc_serve::ServiceConfig;
/// let web = ServiceConfig::new("web", "hello")
///     .listen("127.0.0.1:0")
///     .workers(4)
///     .max_requests(10_000);
/// assert_eq!(web.name, "web");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service's name, unique in the server.
    pub name: String,
    /// The name of the handler that serves its connections (registered
    /// with [`ServerBuilder::handler`](crate::ServerBuilder::handler)).
    pub handler: String,
    /// Where it listens: `host:port` or `unix:PATH`; at least one.
    #[serde(default)]
    pub listen: Vec<String>,
    /// The number of worker processes (the constant workload).
    #[serde(default = "defaults::workers")]
    pub workers: usize,
    /// Threads per worker, each serving one connection at a time.
    #[serde(default = "defaults::threads")]
    pub threads: usize,
    /// A worker is replaced after serving about this many connections
    /// (with up to 10% jitter, so that workers do not all restart at
    /// once); 0: never.
    #[serde(default)]
    pub max_requests: u64,
    /// A worker whose heartbeat is older than this is killed and
    /// replaced, in milliseconds; 0: never.
    #[serde(default = "defaults::heartbeat_timeout_ms")]
    pub heartbeat_timeout_ms: u64,
    /// On a graceful stop, how long in-flight connections may take before
    /// their workers are killed, in milliseconds.
    #[serde(default = "defaults::graceful_timeout_ms")]
    pub graceful_timeout_ms: u64,
    /// A dynamic workload instead of `workers` (Netplex's dynamic workload
    /// manager).
    #[serde(default)]
    pub dynamic: Option<Dynamic>,
}

/// A dynamic workload: between `min` and `max` workers, as many as keep
/// some capacity free. Capacity is counted in threads: a worker of `threads`
/// threads serving `b` connections has `threads - b` free.
///
/// A worker is started when fewer than `min_free` threads are free (up to
/// `max` workers); an idle worker is retired when more than `max_free` are
/// free for `retire_after_ms` and retiring it still leaves `min_free` (down
/// to `min` workers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dynamic {
    /// The fewest workers.
    pub min: usize,
    /// The most workers.
    pub max: usize,
    /// Start a worker when fewer threads than this are free.
    #[serde(default = "defaults::min_free")]
    pub min_free: usize,
    /// Retire an idle worker when more threads than this are free.
    #[serde(default = "defaults::max_free")]
    pub max_free: usize,
    /// How long too much must stay free before a worker is retired, in
    /// milliseconds (so that a short lull does not shrink the service).
    #[serde(default = "defaults::retire_after_ms")]
    pub retire_after_ms: u64,
}

mod defaults {
    pub fn workers() -> usize {
        2
    }
    pub fn threads() -> usize {
        1
    }
    pub fn heartbeat_timeout_ms() -> u64 {
        30_000
    }
    pub fn graceful_timeout_ms() -> u64 {
        10_000
    }
    pub fn min_free() -> usize {
        1
    }
    pub fn max_free() -> usize {
        4
    }
    pub fn retire_after_ms() -> u64 {
        1_000
    }
}

/// The most workers a service may have.
pub const MAX_WORKERS: usize = 256;
/// The most threads a worker may have.
pub const MAX_THREADS: usize = 64;

impl ServiceConfig {
    /// A service named `name` served by the handler `handler`, with the
    /// defaults: 2 workers of 1 thread, no recycling, a 30 s heartbeat
    /// timeout and a 10 s graceful timeout; add addresses with
    /// [`listen`](Self::listen).
    pub fn new(name: &str, handler: &str) -> ServiceConfig {
        ServiceConfig {
            name: name.to_owned(),
            handler: handler.to_owned(),
            listen: Vec::new(),
            workers: defaults::workers(),
            threads: defaults::threads(),
            max_requests: 0,
            heartbeat_timeout_ms: defaults::heartbeat_timeout_ms(),
            graceful_timeout_ms: defaults::graceful_timeout_ms(),
            dynamic: None,
        }
    }

    /// A dynamic workload of `min` to `max` workers, keeping `min_free` to
    /// `max_free` threads free (see [`Dynamic`]); `workers` is then unused.
    pub fn dynamic(mut self, min: usize, max: usize, min_free: usize, max_free: usize) -> Self {
        self.dynamic = Some(Dynamic {
            min,
            max,
            min_free,
            max_free,
            retire_after_ms: defaults::retire_after_ms(),
        });
        self
    }

    /// How long too much capacity must stay free before a dynamic workload
    /// retires a worker (default 1 s).
    pub fn retire_after(mut self, t: Duration) -> ServiceConfig {
        if let Some(d) = &mut self.dynamic {
            d.retire_after_ms = t.as_millis().try_into().unwrap_or(u64::MAX);
        }
        self
    }

    /// The most workers the service can have at once (its statistics rows).
    pub(crate) fn max_workers(&self) -> usize {
        self.dynamic.map_or(self.workers, |d| d.max)
    }

    /// The workers the service starts with.
    pub(crate) fn initial_workers(&self) -> usize {
        self.dynamic.map_or(self.workers, |d| d.min)
    }

    /// Adds a listen address: `host:port` or `unix:PATH`.
    pub fn listen(mut self, addr: &str) -> ServiceConfig {
        self.listen.push(addr.to_owned());
        self
    }

    /// Sets the number of worker processes.
    pub fn workers(mut self, n: usize) -> ServiceConfig {
        self.workers = n;
        self
    }

    /// Sets the threads per worker.
    pub fn threads(mut self, n: usize) -> ServiceConfig {
        self.threads = n;
        self
    }

    /// Replaces a worker after about `n` connections (0: never).
    pub fn max_requests(mut self, n: u64) -> ServiceConfig {
        self.max_requests = n;
        self
    }

    /// Kills and replaces a worker whose heartbeat is older than `t`
    /// (zero: never).
    pub fn heartbeat_timeout(mut self, t: Duration) -> ServiceConfig {
        self.heartbeat_timeout_ms = t.as_millis().try_into().unwrap_or(u64::MAX);
        self
    }

    /// How long a graceful stop waits for in-flight connections.
    pub fn graceful_timeout(mut self, t: Duration) -> ServiceConfig {
        self.graceful_timeout_ms = t.as_millis().try_into().unwrap_or(u64::MAX);
        self
    }

    /// The listen addresses, parsed.
    pub fn addresses(&self) -> Vec<Listen> {
        self.listen.iter().map(|a| Listen::parse(a)).collect()
    }

    pub(crate) fn check(&self) -> Result<(), ServeError> {
        let bad = |what: String| ServeError::Config {
            line: None,
            message: format!("service `{}`: {what}", self.name),
        };
        if self.name.is_empty() {
            return Err(ServeError::Config {
                line: None,
                message: "a service needs a name".into(),
            });
        }
        if self.listen.is_empty() {
            return Err(bad(
                "no listen address (add `listen = [\"127.0.0.1:8080\"]`)".into(),
            ));
        }
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Err(bad(format!(
                "workers = {}: give 1 to {MAX_WORKERS}",
                self.workers
            )));
        }
        if let Some(d) = self.dynamic {
            if d.min == 0 || d.min > d.max || d.max > MAX_WORKERS {
                return Err(bad(format!(
                    "dynamic workload min = {}, max = {}: give 1 <= min <= max <= {MAX_WORKERS}",
                    d.min, d.max
                )));
            }
            if d.max_free < d.min_free {
                return Err(bad(format!(
                    "dynamic workload max_free = {} is below min_free = {}",
                    d.max_free, d.min_free
                )));
            }
        }
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(bad(format!(
                "threads = {}: give 1 to {MAX_THREADS}",
                self.threads
            )));
        }
        Ok(())
    }
}

/// A server's configuration file: a list of services.
///
/// ```
/// let cfg = mc_serve::ServerConfig::from_toml(r#"
///     [[service]]
///     name = "web"
///     handler = "hello"
///     listen = ["127.0.0.1:0", "unix:/tmp/web.sock"]
///     workers = 3
/// "#)?;
/// assert_eq!(cfg.service[0].workers, 3);
/// assert_eq!(cfg.service[0].threads, 1);
///
/// // A dynamic workload (Netplex's `dynamic_workload_manager`).
/// let cfg = mc_serve::ServerConfig::from_toml(r#"
///     [[service]]
///     name = "api"
///     handler = "api"
///     listen = ["127.0.0.1:0"]
///     threads = 4
///     [service.dynamic]
///     min = 1
///     max = 8
///     min_free = 2
///     max_free = 6
/// "#)?;
/// assert_eq!(cfg.service[0].dynamic.map(|d| d.max), Some(8));
/// # Ok::<(), mc_serve::ServeError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The services.
    #[serde(default)]
    pub service: Vec<ServiceConfig>,
}

impl ServerConfig {
    /// Parses a TOML configuration.
    ///
    /// # Errors
    ///
    /// [`ServeError::Config`] naming the line of the first error (a
    /// syntax error, an unknown or missing field, a value of the wrong
    /// type).
    pub fn from_toml(text: &str) -> Result<ServerConfig, ServeError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            ServeError::Config {
                line,
                message: e.message().trim().to_owned(),
            }
        })
    }

    /// Reads and parses a TOML configuration file.
    ///
    /// # Errors
    ///
    /// [`ServeError::Io`] when the file cannot be read; as
    /// [`from_toml`](Self::from_toml).
    pub fn from_file(path: &std::path::Path) -> Result<ServerConfig, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServeError::Io {
            what: format!("reading {}", path.display()),
            source: e,
        })?;
        Self::from_toml(&text)
    }
}
