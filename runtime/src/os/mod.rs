//! Where mc meets the kernel beyond plain system calls: containing the
//! faults of shared mappings whose object another process cut short, and
//! random values that other processes cannot guess.

/// The page size mc assumes (and checks: pools are managed in pages of
/// this size).
pub(crate) const PAGE_SIZE: usize = 4096;

pub(crate) mod fault;
pub(crate) mod futex;
pub(crate) mod ids;
pub(crate) mod mapping;
pub(crate) mod proc;
pub(crate) mod sem;
pub(crate) mod shm;
pub(crate) mod socket;

/// 64 bits from the kernel's random source, for names and keys that other
/// processes must not guess or share. When the kernel has no entropy yet
/// (early boot), the clock and the pid are mixed in, so that live
/// processes still get distinct values.
pub(crate) fn random_u64() -> u64 {
    let mut r = 0u64;
    // SAFETY: writes at most 8 bytes into a live local.
    let n = unsafe { libc::getrandom(std::ptr::from_mut(&mut r).cast(), 8, libc::GRND_NONBLOCK) };
    if n != 8 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        r ^= t.rotate_left(29) ^ (u64::from(std::process::id()) << 40);
    }
    r
}
