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

#[cfg(any(feature = "mpi", test))]
pub(crate) mod frame;
