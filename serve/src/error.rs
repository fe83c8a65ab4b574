//! [`ServeError`]: why a server could not be configured, started or run.

use std::fmt;
use std::io;

/// Why a server could not be configured, started or run.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is wrong (`line`: where, in a TOML file).
    Config {
        /// The line of a TOML file, when the error comes from one.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A service names a handler that was not registered.
    UnknownHandler {
        /// The service.
        service: String,
        /// The handler it names.
        handler: String,
        /// The handlers registered.
        known: Vec<String>,
    },
    /// A listen address could not be bound (in use, not an address, no
    /// permission).
    Bind {
        /// The address as configured.
        addr: String,
        /// What the system said.
        source: io::Error,
    },
    /// An mc call failed (the run, a worker, the shared statistics).
    Mc(mc::Error),
    /// A system call failed.
    Io {
        /// What was being done.
        what: String,
        /// What the system said.
        source: io::Error,
    },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config {
                line: Some(line),
                message,
            } => write!(f, "configuration, line {line}: {message}"),
            ServeError::Config {
                line: None,
                message,
            } => write!(f, "configuration: {message}"),
            ServeError::UnknownHandler {
                service,
                handler,
                known,
            } => write!(
                f,
                "service `{service}` names handler `{handler}`, which is not registered \
                 (registered: {}); register it with ServerBuilder::handler",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
            ServeError::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {source}")?;
                if source.kind() == io::ErrorKind::AddrInUse {
                    write!(f, " (another process listens there: pick another address)")?;
                }
                Ok(())
            }
            ServeError::Mc(e) => write!(f, "{e}"),
            ServeError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Bind { source, .. } | ServeError::Io { source, .. } => Some(source),
            ServeError::Mc(e) => Some(e),
            _ => None,
        }
    }
}

macro_rules! from_mc {
    ($($t:ty),*) => {$(
        impl From<$t> for ServeError {
            fn from(e: $t) -> Self {
                ServeError::Mc(e.into())
            }
        }
    )*};
}

from_mc!(
    mc::Error,
    mc::ProcessError,
    mc::JoinError,
    mc::PoolError,
    mc::HeapError,
    mc::StructureError
);
