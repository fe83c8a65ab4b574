//! # mc: multicore work with processes
//!
//! A master process forks workers; workers share typed values in
//! shared-memory heaps with a garbage collector, synchronise with
//! process-shared locks, and pass values through zero-copy mailboxes. A
//! safe Rust re-design of OCaml's Netmulticore: misuse that crashes there
//! does not compile here, or returns an `Err`.
//!
//! The parts:
//!
//! - [`value`]: the [`Shared`] trait and `#[derive(Shared)]`: ordinary Rust
//!   values copied into shared memory and read in place;
//! - [`pool`]: shared memory pools, mapped at the same address in every
//!   process, growing on demand;
//! - [`heap`]: garbage-collected heaps of shared values inside pools;
//! - [`sync`]: futex-based locks that work between processes;
//! - [`processes`]: the master ([`run`]), `#[mc::process]` definitions with
//!   start and join, and the [`resources`] table;
//! - [`structures`]: shared references, arrays, matrices, byte buffers,
//!   queues and hash tables built on heaps.
//! - [`camlbox`]: typed zero-copy mailboxes between processes.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod camlbox;
mod error;
pub mod heap;
mod in_shared;
pub mod inspect;
mod os;
pub mod pool;
pub mod processes;
mod segment;
pub mod structures;
pub mod sync;
pub mod value;

pub use camlbox::{Camlbox, CamlboxDescr, CamlboxError, Message, Sender};
pub use error::{Error, ErrorKind};
pub use heap::{
    Heap, HeapDescr, HeapError, HeapOptions, HeapReport, HeapStats, Mutator, PinGuard, ReadGuard,
};
pub use inspect::PoolReport;
pub use mc_macros::{process, Shared};
pub use pool::{Pool, PoolDescr, PoolError, PoolOptions, PoolStats};
pub use processes::{
    cleanup, resources, run, run_with, JoinError, Outcome, Pid, ProcessError, ProcessId,
    RunOptions, RunReport, Signal, StartOptions,
};
pub use structures::{
    SArray, SArrayDescr, SBuffer, SBufferDescr, SHashtbl, SHashtblDescr, SMatrix, SMatrixDescr,
    SQueue, SQueueDescr, SRef, SRefDescr, SharedKey, StructureError,
};
pub use value::{Repr, Shared};

#[doc(hidden)]
pub mod __private;

/// A walk through mc, from a first program to each part of the API.
pub mod guide {
    #![doc = include_str!("docs/guide.md")]
}

/// Every Netmulticore function and its mc counterpart.
pub mod netmulticore {
    #![doc = include_str!("docs/netmulticore.md")]
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

// Lets `#[derive(Shared)]` (which names `::mc`) be used in unit tests.
#[cfg(test)]
extern crate self as mc;
