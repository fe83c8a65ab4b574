//! Helpers shared by the fork-based tests (`harness = false`): the
//! workspace's test kit (memory shared with forked children, forking,
//! bounded waits, the scenario runner).

#![allow(unused_imports)]

pub use mc_testkit::*;
