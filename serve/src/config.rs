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
        }
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
