//! Code that reaches `mc` as `runtime` (a renamed dependency), as a crate
//! that re-exports it would: the macros find it through their
//! `crate = "…"` option.

/// A value for shared heaps, derived through the renamed crate.
#[derive(runtime::Shared, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[shared(crate = "runtime")]
pub struct Job {
    /// A name.
    pub name: String,
    /// Some numbers.
    pub steps: Vec<u32>,
    /// A nested derived value.
    pub kind: Kind,
}

/// An enum with data, derived through the renamed crate.
#[derive(runtime::Shared, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[shared(crate = "runtime")]
pub enum Kind {
    /// No data.
    Plain,
    /// Some data.
    Weighted(u64),
}

/// A process definition through the renamed crate.
#[runtime::process(crate = "runtime")]
pub fn total(job: Job) -> u64 {
    job.steps.iter().map(|&s| u64::from(s)).sum()
}
