//! Where mc meets the kernel beyond plain system calls: containing the
//! faults of shared mappings whose object another process cut short.

pub(crate) mod fault;
