//! Why camlbox operations fail.

use std::fmt;
use std::io;

use crate::processes::ProcessError;
use crate::segment::SegmentError;
use crate::value::Invalid;

/// Why a camlbox operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CamlboxError {
    /// The message does not fit in a slot; the slot was released.
    TooBig {
        /// The bytes the message needs (inline part, children, alignment).
        needed: usize,
        /// The bytes a slot holds.
        capacity: usize,
    },
    /// The message in the slot is malformed (written by a faulty or hostile
    /// process); the slot can still be deleted.
    Invalid(Invalid),
    /// `try_send` found no free slot.
    Full,
    /// The timeout passed.
    Timeout,
    /// A sender called [`Sender::wake`](super::Sender::wake) while
    /// [`recv`](super::Camlbox::recv) waited.
    Woken,
    /// The slot number is out of range or holds no ready message.
    NotReady(usize),
    /// The box stores another type.
    WrongType {
        /// The fingerprint of the requested type.
        expected: u64,
        /// The fingerprint recorded in the box.
        found: u64,
    },
    /// The geometry is invalid (zero slots, or too large).
    BadGeometry,
    /// The machine's shared memory (`/dev/shm`) has no room for the box.
    OutOfMemory {
        /// Bytes the box needs (all its slots and headers).
        requested: usize,
        /// Bytes still free in `/dev/shm`.
        available: usize,
    },
    /// The calling process is not the box's receiver (a receiver is tied to
    /// the process that created it; a forked copy cannot receive).
    NotReceiver,
    /// The message holds a lock that the sending thread holds: release it
    /// before sending.
    Locked,
    /// Another process cut the box's segment short: what lay past the cut
    /// is gone.
    Truncated {
        /// The segment's size now, in bytes (0 when unknown).
        size: u64,
        /// The size it must have.
        expected: u64,
    },
    /// The segment is not a camlbox of this version.
    Segment(SegmentError),
    /// The resource table refused.
    Process(ProcessError),
    /// A system call failed.
    Io(io::Error),
}

impl fmt::Display for CamlboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CamlboxError::TooBig { needed, capacity } => write!(
                f,
                "the message needs {needed} bytes but a slot holds {capacity}"
            ),
            CamlboxError::Invalid(e) => write!(f, "malformed message: {e}"),
            CamlboxError::Full => write!(f, "the camlbox is full"),
            CamlboxError::Timeout => write!(f, "timed out"),
            CamlboxError::Woken => write!(f, "woken by a sender (Sender::wake) while waiting"),
            CamlboxError::NotReady(i) => write!(f, "slot {i} holds no ready message"),
            CamlboxError::WrongType { expected, found } => write!(
                f,
                "the camlbox stores another type (fingerprint {found:#x}, expected {expected:#x})"
            ),
            CamlboxError::BadGeometry => write!(f, "invalid number of slots or message size"),
            CamlboxError::OutOfMemory {
                requested,
                available,
            } => write!(
                f,
                "out of shared memory: the camlbox needs {requested} bytes, {available} are free \
                 in /dev/shm (use fewer or smaller slots, or free memory in /dev/shm)"
            ),
            CamlboxError::NotReceiver => write!(
                f,
                "this process is not the receiver of the camlbox (it was created in another \
                 process): create the box in the process that receives"
            ),
            CamlboxError::Locked => write!(
                f,
                "the message holds a lock that this thread holds: release it before sending"
            ),
            CamlboxError::Truncated { size, expected } => write!(
                f,
                "the camlbox's segment was cut short by another process ({size} bytes of \
                 {expected}): its messages are lost; create a new box"
            ),
            CamlboxError::Segment(e) => write!(f, "{e}"),
            CamlboxError::Process(e) => write!(f, "{e}"),
            CamlboxError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CamlboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CamlboxError::Invalid(e) => Some(e),
            CamlboxError::Process(e) => Some(e),
            CamlboxError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for CamlboxError {
    fn from(e: io::Error) -> Self {
        CamlboxError::Io(e)
    }
}

impl From<ProcessError> for CamlboxError {
    fn from(e: ProcessError) -> Self {
        CamlboxError::Process(e)
    }
}
