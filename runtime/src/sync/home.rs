//! The process a guard belongs to.
//!
//! `fork` copies every value of the parent, guards included, but a lock (or
//! a pin, or a borrowed camlbox slot) is held by the process that took it,
//! not by its copies. Every guard records its [`Home`]; a copy that finds
//! itself in another process neither dereferences (it panics, naming the
//! guard) nor releases (its drop does nothing: the lock stays with the
//! process that holds it).

use super::futex;

/// The process that made a guard (its [process key](futex::process_key)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Home(u64);

impl Home {
    /// The calling process.
    #[inline]
    pub(crate) fn here() -> Home {
        Home(futex::process_key())
    }

    /// Whether the calling process is this one (and not a forked copy).
    #[inline]
    pub(crate) fn is_here(self) -> bool {
        self.0 == futex::process_key()
    }

    /// A process that is not the calling one (for tests of forked copies
    /// inside one process).
    #[cfg(test)]
    pub(crate) fn elsewhere() -> Home {
        Home(futex::process_key() ^ 2)
    }

    /// Panics unless the calling process is this one: `what` was taken in
    /// another process and reached this one through `fork` (a static, a
    /// thread-local, or memory copied with it).
    #[inline]
    #[track_caller]
    pub(crate) fn check(self, what: &'static str) {
        if !self.is_here() {
            foreign(what);
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn foreign(what: &'static str) -> ! {
    panic!(
        "mc: this {what} belongs to the process that took it and was copied into process {} by \
         fork; a copy neither reads nor releases (take a new one in this process)",
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_stable_across_threads_of_one_process() {
        let h = Home::here();
        assert!(h.is_here());
        let other = std::thread::spawn(Home::here).join().unwrap();
        assert_eq!(h, other);
        h.check("test guard");
    }

    #[test]
    fn a_foreign_home_panics_with_the_guard_name() {
        let fake = Home::elsewhere();
        assert!(!fake.is_here());
        let r = std::panic::catch_unwind(|| fake.check("ReadGuard"));
        let msg = r.unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains("ReadGuard") && msg.contains("fork"), "{msg}");
    }
}
