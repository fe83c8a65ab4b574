//! [`Error`]: the one error every error of mc converts into, a serde type
//! that a worker can return.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::camlbox::CamlboxError;
use crate::heap::HeapError;
use crate::pool::PoolError;
use crate::processes::{JoinError, ProcessError};
use crate::segment::SegmentError;
use crate::structures::{PlainMapError, RingError, StructureError};
use crate::sync::LockError;
use crate::value::{CopyError, Invalid};

/// Any error of mc: which part of mc it comes from and what it says.
///
/// Every error type of mc converts into it with `?` or `From`, and it is a
/// serde type, so a worker can return `Result<T, mc::Error>` across the
/// process boundary (the specific error types hold OS errors and borrowed
/// texts, which do not travel). The message is the original error's
/// `Display`, with its sources, so nothing is lost on the way.
///
/// ```
/// fn open(name: &str) -> Result<mc::Pool, mc::Error> {
///     Ok(mc::Pool::attach(name)?)
/// }
///
/// let e = open("mc-no-such-pool-here").unwrap_err();
/// assert_eq!(e.kind(), mc::ErrorKind::Pool);
/// assert!(e.message().contains("mc-no-such-pool-here"), "{e}");
/// // It travels: a worker can return it.
/// let bytes = postcard::to_allocvec(&e).unwrap();
/// assert_eq!(postcard::from_bytes::<mc::Error>(&bytes).unwrap(), e);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// Which part of mc an [`Error`] comes from (the type it was made from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A [`PoolError`].
    Pool,
    /// A [`HeapError`].
    Heap,
    /// A [`StructureError`].
    Structure,
    /// A [`RingError`].
    Ring,
    /// A [`PlainMapError`].
    PlainMap,
    /// A [`CamlboxError`].
    Camlbox,
    /// A [`LockError`].
    Lock,
    /// A [`ProcessError`].
    Process,
    /// A [`JoinError`]: a worker that did not return, or a join that
    /// failed.
    Join,
    /// A [`CopyError`].
    Copy,
    /// An [`Invalid`] value found by validation.
    Invalid,
    /// A [`SegmentError`] (`mc::inspect`).
    Segment,
    /// An operating-system error.
    Io,
    /// An error made by [`Error::new`].
    Other,
}

impl Error {
    /// An error of kind [`ErrorKind::Other`] with this message, for code
    /// that returns `mc::Error` from its own checks.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Other,
            message: message.into(),
        }
    }

    /// Which part of mc the error comes from.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What the error says (the original error's message and its sources).
    pub fn message(&self) -> &str {
        &self.message
    }

    fn from_error(kind: ErrorKind, e: &dyn std::error::Error) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        Error { kind, message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

macro_rules! into_error {
    ($($t:ty => $kind:ident),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::from_error(ErrorKind::$kind, &e)
            }
        }
    )*};
}

into_error!(
    PoolError => Pool,
    HeapError => Heap,
    StructureError => Structure,
    RingError => Ring,
    PlainMapError => PlainMap,
    CamlboxError => Camlbox,
    LockError => Lock,
    ProcessError => Process,
    JoinError => Join,
    CopyError => Copy,
    Invalid => Invalid,
    SegmentError => Segment,
    std::io::Error => Io,
);
