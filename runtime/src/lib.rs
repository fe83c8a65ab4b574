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
    Heap, HeapDescr, HeapError, HeapOptions, HeapReport, HeapStats, Mutator, PinGuard,
    PinnableLock, ReadGuard,
};
pub use inspect::PoolReport;
/// Makes a process definition of a function `fn name(arg: A) -> R`.
///
/// # What it generates
///
/// The function stays as written (it can still be called directly), and a
/// module with the same name and visibility appears next to it:
///
/// | item | what it does |
/// |---|---|
/// | `name::start(arg)` → `Result<name::Pid, ProcessError>` | asks the master to fork a worker that runs `name(arg)`; the worker inherits every resource the caller uses |
/// | `name::start_with(arg, StartOptions)` | the same, choosing which resources the worker inherits |
/// | `name::join(pid)` → `Result<R, JoinError>` | waits for the worker: its result, or a [`JoinError`] saying why there is none (panicked with its message, aborted, killed, exited, or the join failed) |
/// | `name::join_timeout(pid, d)` → `Result<R, JoinError>` | the same, giving up after `d` (the worker can be joined later) |
/// | `name::try_join(pid)` → `Result<Option<R>, JoinError>` | `Ok(None)` while the worker runs |
/// | `name::join_outcome(pid)` → `Result<Outcome<R>, ProcessError>` | how the worker ended, with its result |
/// | `name::release_join_point()` | results of this definition are no longer kept |
/// | `name::Pid`, `name::Arg`, `name::Output` | the typed process id ([`Pid`]), `A` and `R` |
/// | `name::Definition` | the marker type that implements [`processes::Definition`] |
///
/// Only the first join of a process gets its result.
///
/// # Rules
///
/// - **One argument.** Several values travel as one: a struct (the
///   clearest), or a tuple `fn name((a, b): (A, B))`. A process that needs
///   nothing takes `_: ()`.
/// - **serde types.** The argument and the result cross process boundaries
///   as bytes: both must be `serde::Serialize + serde::de::DeserializeOwned`
///   (`#[derive(serde::Serialize, serde::Deserialize)]`). [`mc::Error`](Error)
///   is one, so a worker can return `Result<T, mc::Error>`. Values in shared
///   memory travel by descriptor ([`HeapDescr`], [`CamlboxDescr`], …),
///   which are serde types too.
/// - **Owned, concrete, plain.** No references in the argument or the
///   result, no `impl Trait`, no generics, no `async`, `unsafe` or `extern`
///   functions, no methods: each is a compile error that says what to
///   write instead.
/// - **Inside a run.** `start` and `join` work in the processes of an
///   [`mc::run`](run) (its first process and every worker); elsewhere they
///   return [`ProcessError::NotInWorker`].
/// - **Forked from the master.** A worker is a copy of the master, which is
///   a copy of the caller of `run` as it was when `run` was called: what
///   the starter changed since (a static, say) is not seen by the worker.
/// - **Failures are contained.** A panic in the body is caught and reported
///   to the joiner as [`JoinError::Panicked`], and the panic report on
///   stderr starts with a line naming the mc process; a crash or a kill
///   ends only that worker.
///
/// Option: `#[mc::process(crate = "path")]` says where the `mc` crate is,
/// for code that reaches it under another name or through a re-export.
///
/// # Example
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// /// The one argument: a struct with everything the worker needs.
/// #[derive(Serialize, Deserialize)]
/// struct Job {
///     name: String,
///     values: Vec<u64>,
/// }
///
/// #[mc::process]
/// fn sum(job: Job) -> Result<u64, mc::Error> {
///     if job.values.is_empty() {
///         return Err(mc::Error::new(format!("{}: nothing to add", job.name)));
///     }
///     Ok(job.values.iter().sum())
/// }
///
/// let report = mc::run(|| -> Result<u64, mc::Error> {
///     let pid = sum::start(Job { name: "a".into(), values: vec![1, 2, 3] })?;
///     // The first `?` is the join's (the worker ended without a result),
///     // the second the worker's own `Result`.
///     let total = sum::join(pid)??;
///     let empty = sum::start(Job { name: "b".into(), values: vec![] })?;
///     assert!(sum::join(empty)?.is_err());
///     Ok(total)
/// })?;
/// assert_eq!(report.into_result()?.unwrap(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use mc_macros::process;
/// Derives [`Shared`](trait@Shared) for a struct or an enum, so that its
/// values can live in shared memory.
///
/// # What it generates
///
/// For `struct Job { .. }` (or an enum), next to `Job`:
///
/// - `SharedJob`, the *shared representation*: `#[repr(C)]`, with the same
///   visibility, fields and field visibilities as `Job`, each field of type
///   [`Repr<FieldTy>`](Repr): `String` becomes [`value::SharedString`],
///   `Vec<T>` [`value::SharedVec`], `Option<T>` [`value::SharedOption`],
///   `Box<T>` [`value::SharedBox`], and a field of another derived type its
///   `Shared…` type. An enum's representation is `#[repr(C, u8)]` (`u16`
///   beyond 256 variants), with the same variants. It implements `Debug`,
///   and `Unpin` exactly when its fields do (those without pointers into the
///   heap).
/// - `SharedJobMut<'a>` and `SharedJob::project`, which split a
///   `Pin<&mut SharedJob>` into one pinned reference per field, for
///   changes in place through a [`Mutator`] (not for unit structs and
///   enums without data).
/// - `unsafe impl mc::Shared for Job`: deep copy into shared memory,
///   copy-out, tracing for the collector, and validation of untrusted
///   copies.
///
/// Values are read in place through the shared representation (a guard
/// dereferences to it) and copied out as `Job`.
///
/// Options: `#[shared(repr = OtherName)]` names the shared representation;
/// `#[shared(crate = "path")]` says where the `mc` crate is.
///
/// Rejected at compile time, with the error on the offending token: fields
/// whose type is not `Shared` (the error names the field), unions,
/// explicit discriminants, lifetime and const parameters, enums without
/// variants, unknown `#[shared]` options, `repr(packed)`, and (as
/// conflicting impls) a `Drop` or `Unpin` impl on the shared
/// representation.
///
/// # Example
///
/// ```
/// #[derive(mc::Shared, Debug, Clone, PartialEq)]
/// enum Shape {
///     Point,
///     Circle { r: f64 },
///     Label(String, Option<u32>),
/// }
///
/// let pool = mc::Pool::create(1 << 20)?;
/// let heap = mc::Heap::create(&pool, &vec![Shape::Point, Shape::Label("x".into(), Some(3))])?;
/// let shapes = heap.read()?; // a `SharedVec<SharedShape>`, read in place
/// for s in shapes.iter() {
///     match s {
///         SharedShape::Point => {}
///         SharedShape::Circle { r } => assert!(*r > 0.0),
///         SharedShape::Label(text, n) => {
///             assert_eq!(text.as_str(), "x");
///             assert_eq!(n.as_ref(), Some(&3));
///         }
///     }
/// }
/// drop(shapes);
/// heap.modify(|m, mut v| m.push(v.as_mut(), &Shape::Circle { r: 1.5 }))??;
/// assert_eq!(heap.copy()?.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use mc_macros::Shared;
pub use pool::{Pool, PoolDescr, PoolError, PoolMem, PoolMemDescr, PoolOptions, PoolStats};
pub use processes::{
    cleanup, resources, run, run_with, JoinError, Outcome, Pid, ProcessError, ProcessId,
    RunOptions, RunReport, Signal, StartOptions,
};
pub use structures::{
    PlainMap, PlainMapDescr, PlainMapError, Ring, RingDescr, RingError, SArray, SArrayDescr,
    SBuffer, SBufferDescr, SHashtbl, SHashtblDescr, SMatrix, SMatrixDescr, SQueue, SQueueDescr,
    SRef, SRefDescr, SShardedHashtbl, SShardedHashtblDescr, SharedKey, StructureError,
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
