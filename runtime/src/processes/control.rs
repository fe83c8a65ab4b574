//! The control channel between the master and a worker: one
//! `socketpair(AF_UNIX, SOCK_STREAM)` per worker, made at fork time, carrying
//! postcard-encoded messages, each framed by a 4-byte little-endian length.
//!
//! A worker sends one [`Request`] at a time and waits for its [`Reply`]
//! (except [`Request::Done`], which has no reply). The master answers every
//! request in order; a blocking join is answered when the result is there
//! (or the join's deadline passes), so the worker simply waits for the
//! reply.

use std::io;
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use super::resources::{ResourceInfo, ResourceKind};

/// The largest frame accepted (1 GiB): a longer length prefix means a broken
/// stream, not a message.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// How a joiner waits.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum JoinMode {
    /// Wait until the process ends.
    Block,
    /// Answer at once (`NotYet` when still running).
    Poll,
    /// Wait at most this many milliseconds.
    Timeout(u64),
}

/// Which resources a new worker inherits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum WireInherit {
    /// Every resource the starting process uses.
    All,
    /// None.
    Nothing,
    /// These ids.
    Only(Vec<u64>),
}

/// How a process ended, as stored by the master.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum WireOutcome {
    /// The body returned this postcard-encoded value.
    Returned(#[serde(with = "bytes")] Vec<u8>),
    /// The body panicked with this message.
    Panicked(String),
    /// The process died from a signal that means it failed by itself.
    Aborted(i32),
    /// The process was terminated by a signal from outside.
    Killed(i32),
    /// The process exited with this code without returning.
    Exited(i32),
}

/// What a worker asks the master.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Start a process of a definition (address of its `DefinitionInfo`
    /// in the common executable image, and its id) with this argument.
    Start {
        /// Address of the definition's `DefinitionInfo`.
        def_addr: u64,
        /// The definition's id.
        def_id: u64,
        /// The postcard-encoded argument.
        #[serde(with = "bytes")]
        arg: Vec<u8>,
        /// Resource inheritance.
        inherit: WireInherit,
    },
    /// Join a process.
    Join {
        /// The process.
        pid: u64,
        /// The definition the joiner expects.
        def_id: u64,
        /// How to wait.
        mode: JoinMode,
    },
    /// How a process is doing (without taking its result).
    Status {
        /// The process.
        pid: u64,
    },
    /// Send a signal to a process.
    Kill {
        /// The process.
        pid: u64,
        /// The signal.
        signal: i32,
    },
    /// Stop keeping results of a definition.
    ReleaseJoinPoint {
        /// The definition's id.
        def_id: u64,
    },
    /// Register an existing object.
    Manage {
        /// Its kind.
        kind: ResourceKind,
        /// Its name.
        name: String,
    },
    /// Look a resource up (the caller becomes a user).
    Lookup {
        /// The resource.
        id: u64,
    },
    /// The caller no longer uses a resource.
    Release {
        /// The resource.
        id: u64,
    },
    /// The caller's body finished (no reply, except to the first process,
    /// which gets [`Reply::Report`] once the run is over).
    Done(WireOutcome),
}

/// What the master tells a spare worker (the first message on its
/// socket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Command {
    /// Become process `id` and run this definition with this argument.
    Run {
        /// The process id.
        id: u64,
        /// Address of the definition's `DefinitionInfo`.
        def_addr: u64,
        /// The definition's id.
        def_id: u64,
        /// The postcard-encoded argument.
        #[serde(with = "bytes")]
        arg: Vec<u8>,
    },
}

/// Errors the master reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum WireError {
    NoSuchProcess(u64),
    AlreadyJoined(u64),
    WrongDefinition(u64),
    JoinPointReleased(u64),
    JoinSelf(u64),
    BadDefinition,
    NoSuchResource(u64),
    Forgotten(u64),
    RunOver,
    Fork(i32),
    Io(String),
}

/// The master's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// Done.
    Ok,
    /// The new process's id.
    Started(u64),
    /// The process ended so.
    Outcome(WireOutcome),
    /// Still running (poll) / deadline passed (timeout).
    NotYet,
    /// `None`: running.
    Status(Option<WireOutcome>),
    /// A resource.
    Resource(ResourceInfo),
    /// Refused.
    Err(WireError),
    /// The run is over (the answer to the first process's `Done`): the
    /// workers the master killed, those never joined, how many started.
    Report {
        /// Processes still running when the first process ended.
        killed: Vec<u64>,
        /// Processes that ended and were never joined.
        unjoined: Vec<u64>,
        /// Processes started, the first included.
        started: u64,
    },
}

/// Byte buffers as serde bytes (one length and a copy), not as a sequence
/// of numbers.
mod bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;
    use std::fmt;

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut v = Vec::new();
            while let Some(b) = seq.next_element()? {
                v.push(b);
            }
            Ok(v)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

/// Encodes a message as a frame: length (u32 LE) then postcard bytes.
pub(crate) fn encode<T: Serialize>(msg: &T) -> io::Result<Vec<u8>> {
    let mut buf = postcard::to_extend(msg, vec![0u8; 4]).map_err(io::Error::other)?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "control message larger than 1 GiB",
        ));
    }
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(buf)
}

/// Decodes a frame's body.
pub(crate) fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> io::Result<T> {
    postcard::from_bytes(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

use crate::os::socket::recv_exact;
pub(crate) use crate::os::socket::{send_all, socketpair};

/// Reads one frame's body (blocking).
pub(crate) fn recv_frame(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    recv_exact(fd, &mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "control frame too long",
        ));
    }
    let mut body = vec![0u8; len];
    recv_exact(fd, &mut body)?;
    Ok(body)
}

/// Reads whatever is available without blocking into `buf`; returns
/// `Ok(false)` when the peer closed the connection.
///
/// Reads straight into the buffer's spare room (no large stack buffer: the
/// master writes as few distinct pages as it can, since each page it
/// touches after a fork is a copy-on-write fault).
pub(crate) fn recv_available(fd: &OwnedFd, buf: &mut Vec<u8>) -> io::Result<bool> {
    loop {
        match crate::os::socket::recv_into_spare(fd, buf) {
            Ok(0) => return Ok(false),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// Decodes one complete frame off the front of `buf`, if there is one.
pub(crate) fn take_message<T: serde::de::DeserializeOwned>(
    buf: &mut Vec<u8>,
) -> io::Result<Option<T>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "control frame too long",
        ));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let msg = decode(&buf[4..4 + len])?;
    if buf.len() == 4 + len {
        buf.clear();
    } else {
        buf.drain(..4 + len);
    }
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let (a, b) = socketpair().unwrap();
        let msg = Request::Start {
            def_addr: 1,
            def_id: 2,
            arg: vec![7; 100_000],
            inherit: WireInherit::Only(vec![3]),
        };
        let frame = encode(&msg).unwrap();
        let t = std::thread::spawn(move || send_all(&a, &frame).unwrap());
        let body = recv_frame(&b).unwrap();
        t.join().unwrap();
        match decode::<Request>(&body).unwrap() {
            Request::Start { arg, .. } => assert_eq!(arg, vec![7; 100_000]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_frames_wait() {
        let frame = encode(&Reply::Started(5)).unwrap();
        let mut buf = frame[..3].to_vec();
        assert!(take_message::<Reply>(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&frame[3..]);
        buf.extend_from_slice(&frame);
        assert!(matches!(
            take_message::<Reply>(&mut buf).unwrap(),
            Some(Reply::Started(5))
        ));
        assert!(matches!(
            take_message::<Reply>(&mut buf).unwrap(),
            Some(Reply::Started(5))
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn available_bytes_are_read() {
        let (a, b) = socketpair().unwrap();
        let frame = encode(&Request::Done(WireOutcome::Returned(vec![1; 10_000]))).unwrap();
        send_all(&a, &frame).unwrap();
        drop(a);
        let mut buf = Vec::new();
        assert!(!recv_available(&b, &mut buf).unwrap());
        match take_message::<Request>(&mut buf).unwrap() {
            Some(Request::Done(WireOutcome::Returned(v))) => assert_eq!(v, vec![1; 10_000]),
            other => panic!("{other:?}"),
        }
    }
}
