//! Example programs of mc, one binary each (`cargo run -p mc-examples --bin NAME`),
//! and the workloads they share.

pub mod nqueens;
