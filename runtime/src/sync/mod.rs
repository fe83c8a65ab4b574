//! Process-shared synchronisation on futexes.

pub(crate) mod futex;
pub mod raw;
