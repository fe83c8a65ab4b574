//! mc within a node, MPI between nodes.
//!
//! Each MPI rank is an mc master with its own pools and worker processes;
//! the ranks talk to each other through MPI (the `mpi` crate over the
//! system's Open MPI), with typed, checked messages and collectives.
//! Netmulticore stops at one machine; this is how mc goes past it, on the
//! engine that clusters already run.
//!
//! Everything here needs the `mpi` feature (and an MPI installation: on
//! Debian, `apt-get install openmpi-bin libopenmpi-dev libclang-dev`).
//! Without it the crate only holds [`ClusterError`], so that a workspace
//! builds on a machine without MPI.
//!
//! # Processes and MPI
//!
//! `run` first starts mc's run ([`mc::run`]), whose master is forked
//! before MPI exists, and only then initialises MPI, in the rank's first
//! process. So the master and every worker it forks never hold MPI state:
//! forking after `MPI_Init`, which Open MPI warns about (registered memory,
//! some interconnects), never happens, and only the first process of each
//! rank talks to MPI. Workers hand their results to it (joins, camlboxes,
//! shared structures).
//!
//! MPI is initialised with `Threading::Funneled`: the first process may
//! have other threads, but only the thread that called `run` calls MPI
//! (the `Cluster` handle is neither `Send` nor `Sync`).
//!
//! # Running it
//!
//! ```text
//! mpirun -np 4 target/release/my-program           # one machine
//! mpirun -np 8 --hostfile hosts target/release/my-program
//! srun -N 2 --ntasks-per-node=1 target/release/my-program   # Slurm
//! ```
//!
//! With one rank per node (`--map-by node --bind-to none`, or Slurm's
//! `--ntasks-per-node=1`), each node's rank forks as many mc workers as the
//! node has cores (Open MPI binds a rank to one core unless told
//! otherwise).
//!
//! Tested here on one machine only (`mpirun -np 2` and `-np 3` with
//! `--oversubscribe`): the hostfile and Slurm lines above are the standard
//! ones, not runs we made.
//!
//! # When a rank fails
//!
//! A rank that dies (killed, or its first process ends with an error) makes
//! `mpirun` end the job: the other ranks get `SIGTERM`, on which each prints
//! `mc-cluster: rank R: the job was ended …` and leaves at once; each
//! rank's mc master then ends its workers and removes its segments. The job
//! ends within seconds, never hangs.

use std::fmt;

#[cfg(feature = "mpi")]
mod cluster;

#[cfg(feature = "mpi")]
pub use cluster::{run, Cluster, TAG_USER};

/// Why a cluster operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterError {
    /// MPI could not be initialised (not started by `mpirun`/`srun`, or
    /// initialised already).
    Init(String),
    /// A message was not what the receiver asked for: another type, a
    /// corrupt or truncated buffer.
    BadMessage {
        /// The rank it came from.
        from: usize,
        /// What was wrong.
        reason: String,
    },
    /// A value could not be encoded.
    Encode(String),
    /// A rank number out of range.
    NoSuchRank {
        /// The rank asked for.
        rank: usize,
        /// The number of ranks.
        size: usize,
    },
    /// mc failed (the run, a worker).
    Mc(mc::Error),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Init(e) => write!(
                f,
                "MPI could not start: {e} (start the program with mpirun or srun, and call \
                 mc_cluster::run once)"
            ),
            ClusterError::BadMessage { from, reason } => {
                write!(f, "a message from rank {from} was refused: {reason}")
            }
            ClusterError::Encode(e) => write!(f, "a value could not be encoded: {e}"),
            ClusterError::NoSuchRank { rank, size } => {
                write!(
                    f,
                    "no rank {rank}: the job has {size} ranks (0 to {})",
                    size - 1
                )
            }
            ClusterError::Mc(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClusterError {}

impl From<mc::Error> for ClusterError {
    fn from(e: mc::Error) -> Self {
        ClusterError::Mc(e)
    }
}

impl From<mc::ProcessError> for ClusterError {
    fn from(e: mc::ProcessError) -> Self {
        ClusterError::Mc(e.into())
    }
}

impl From<mc::JoinError> for ClusterError {
    fn from(e: mc::JoinError) -> Self {
        ClusterError::Mc(e.into())
    }
}

/// The bytes in front of every message: a magic, the type's fingerprint
/// and the payload's length, so that a receiver refuses another type or a
/// cut buffer.
#[cfg(any(feature = "mpi", test))]
pub(crate) mod frame {
    use super::ClusterError;

    const MAGIC: u32 = u32::from_le_bytes(*b"mcC1");
    const HEADER: usize = 16;

    /// A fingerprint of `T`'s name (serde types have no structural one).
    pub(crate) fn fingerprint<T: ?Sized>() -> u64 {
        // FNV-1a of the type's name: stable within one build, which every
        // rank of a job runs.
        std::any::type_name::<T>()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    }

    /// Encodes `value` with its header.
    pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ClusterError> {
        encode_into(value, Vec::with_capacity(HEADER + 64))
    }

    /// [`encode`] into `out` (cleared first), reusing its memory.
    pub(crate) fn encode_into<T: serde::Serialize>(
        value: &T,
        mut out: Vec<u8>,
    ) -> Result<Vec<u8>, ClusterError> {
        // The payload is written after the header in one buffer; the length
        // goes in once it is known.
        out.clear();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&fingerprint::<T>().to_le_bytes());
        let mut out =
            postcard::to_extend(value, out).map_err(|e| ClusterError::Encode(e.to_string()))?;
        let body = out.len() - HEADER;
        let len = u32::try_from(body)
            .map_err(|_| ClusterError::Encode(format!("{body} bytes: at most 4 GiB")))?;
        out[4..8].copy_from_slice(&len.to_le_bytes());
        Ok(out)
    }

    /// Decodes a message from rank `from`, checking its header first.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(
        from: usize,
        bytes: &[u8],
    ) -> Result<T, ClusterError> {
        let bad = |reason: String| ClusterError::BadMessage { from, reason };
        if bytes.len() < HEADER {
            return Err(bad(format!("{} bytes, shorter than a header", bytes.len())));
        }
        let word = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[i..i + 4]);
            u32::from_le_bytes(b)
        };
        if word(0) != MAGIC {
            return Err(bad("not an mc-cluster message".into()));
        }
        let len = word(4) as usize;
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[8..16]);
        if u64::from_le_bytes(fp) != fingerprint::<T>() {
            return Err(bad(format!(
                "a value of another type than {}",
                std::any::type_name::<T>()
            )));
        }
        if bytes.len() - HEADER != len {
            return Err(bad(format!(
                "cut or padded: {} payload bytes, the header says {len}",
                bytes.len() - HEADER
            )));
        }
        postcard::from_bytes(&bytes[HEADER..]).map_err(|e| bad(format!("corrupt: {e}")))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_and_refuses_what_is_wrong() {
            let v = (7u32, "seven".to_string(), vec![1.5f64; 3]);
            let b = encode(&v).unwrap();
            assert_eq!(decode::<(u32, String, Vec<f64>)>(1, &b).unwrap(), v);
            // Another type.
            assert!(matches!(
                decode::<(u32, String)>(1, &b),
                Err(ClusterError::BadMessage { from: 1, .. })
            ));
            // Cut.
            let e = decode::<(u32, String, Vec<f64>)>(2, &b[..b.len() - 3]).unwrap_err();
            assert!(e.to_string().contains("cut"), "{e}");
            // Not a message at all.
            assert!(decode::<u8>(0, &[1, 2, 3]).is_err());
            let mut wrong = b.clone();
            wrong[0] ^= 1;
            assert!(decode::<(u32, String, Vec<f64>)>(0, &wrong).is_err());
            // Corrupt payload with a right header.
            let mut bad = encode(&"text".to_string()).unwrap();
            let n = bad.len();
            bad[n - 1] = 0xff;
            bad[16] = 0xff;
            assert!(decode::<String>(0, &bad).is_err());
        }
    }
}
