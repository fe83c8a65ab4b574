//! Containing the faults of shared mappings whose object was cut short.
//!
//! When another process truncates a shared memory object, reading a mapped
//! page past the new end raises `SIGBUS`, which kills the process. mc's
//! mappings (pools, camlboxes) register their range here. The first time
//! one is guarded, a `SIGBUS` handler is installed (once per process) that,
//! for a fault inside a registered range, maps fresh zero pages over the
//! rest of the range (privately: the object itself is not touched) and
//! marks the range *truncated*; the faulting access then reads zeros
//! instead of killing the process, and every later mc operation on the
//! segment sees the mark and returns an error. Faults anywhere else go to
//! the handler that was installed before (the standard library's, which
//! reports stack overflows), or get the default action.
//!
//! Segments are also checked against their recorded size when they are
//! opened and before they grow, so a truncation made before is a clean
//! error without any fault.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// How many ranges can be guarded at once (beyond that, a mapping is
/// unguarded and a truncation kills the process, as without mc).
const SLOTS: usize = 1024;

struct Slot {
    /// Odd while the slot is being changed; the handler reads `start` and
    /// `end` between two equal, even readings (a seqlock), so it never
    /// pairs the start of one range with the end of another.
    gen: AtomicUsize,
    /// Start of the range (0: slot unused).
    start: AtomicUsize,
    end: AtomicUsize,
    truncated: AtomicBool,
}

impl Slot {
    /// Changes the range under the slot's sequence number.
    fn set(&self, start: usize, end: usize) {
        self.gen.fetch_add(1, Ordering::AcqRel);
        self.truncated.store(false, Ordering::Release);
        self.start.store(start, Ordering::Release);
        self.end.store(end, Ordering::Release);
        self.gen.fetch_add(1, Ordering::AcqRel);
    }

    /// The range, if the slot holds a stable one.
    fn range(&self) -> Option<(usize, usize)> {
        let g1 = self.gen.load(Ordering::Acquire);
        if g1 % 2 == 1 {
            return None;
        }
        let start = self.start.load(Ordering::Acquire);
        let end = self.end.load(Ordering::Acquire);
        let g2 = self.gen.load(Ordering::Acquire);
        (g1 == g2 && start != 0).then_some((start, end))
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    gen: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
};

static RANGES: [Slot; SLOTS] = [EMPTY; SLOTS];

/// Set once any range of this process was found truncated: until then
/// (almost always) the per-range checks are skipped with one load.
static ANY_TRUNCATED: AtomicBool = AtomicBool::new(false);

/// Serialises registrations (never taken by the handler).
static REGISTER: Mutex<()> = Mutex::new(());

static INSTALL: Once = Once::new();

/// The `SIGBUS` action in place before ours, written once (inside
/// `INSTALL`, before our handler can run) and only read afterwards.
static PREVIOUS: PreviousAction = PreviousAction(std::cell::UnsafeCell::new(None));

struct PreviousAction(std::cell::UnsafeCell<Option<libc::sigaction>>);

// SAFETY: written once inside `INSTALL.call_once`, before the handler that
// reads it is installed; read-only afterwards.
unsafe impl Sync for PreviousAction {}

/// A registered range; unregistered when dropped (drop it before
/// unmapping the range).
#[derive(Debug)]
pub(crate) struct Guard {
    slot: usize,
}

impl Guard {
    /// Whether a fault inside the range found the object cut short (the
    /// rest of the range now reads zeros in this process).
    #[inline]
    pub(crate) fn truncated(&self) -> bool {
        ANY_TRUNCATED.load(Ordering::Acquire) && RANGES[self.slot].truncated.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _l = REGISTER.lock().unwrap_or_else(|e| e.into_inner());
        RANGES[self.slot].set(0, 0);
    }
}

/// Guards `start..start + len` (a shared mapping of this process), or
/// returns `None` when every slot is taken.
pub(crate) fn guard(start: usize, len: usize) -> Option<Guard> {
    INSTALL.call_once(install);
    let _l = REGISTER.lock().unwrap_or_else(|e| e.into_inner());
    let slot = RANGES
        .iter()
        .position(|s| s.start.load(Ordering::Acquire) == 0)?;
    // (Slots change only under `REGISTER`, so this one stays free.)
    RANGES[slot].set(start, start + len);
    Some(Guard { slot })
}

fn install() {
    // SAFETY: a zeroed `sigaction` is a valid value to fill in; the
    // handler below only uses async-signal-safe calls (atomics, mmap,
    // sigaction) and the previous action stored before it is installed.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            on_sigbus;
        new.sa_sigaction = handler as libc::sighandler_t;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut new.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
            return;
        }
        *PREVIOUS.0.get() = Some(old);
        libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut());
    }
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // Only a fault carries a faulting address (a `kill -BUS` has a code of
    // 0 or less).
    if code > 0 {
        for s in &RANGES {
            let Some((start, end)) = s.range() else {
                continue;
            };
            if addr < start || addr >= end {
                continue;
            }
            let page = addr & !(super::PAGE_SIZE - 1);
            // SAFETY: replaces pages of a range this process mapped (and
            // still has registered) with private zero pages; MAP_FIXED over
            // our own mapping of a truncated object is exactly what is
            // wanted. MAP_NORESERVE: pools reserve far more than memory
            // holds, and the zeros are only read.
            let p = unsafe {
                libc::mmap(
                    std::ptr::without_provenance_mut::<libc::c_void>(page),
                    end - page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                s.truncated.store(true, Ordering::Release);
                ANY_TRUNCATED.store(true, Ordering::Release);
                return;
            }
            break;
        }
    }
    // Not ours: what was there before.
    // SAFETY: written before this handler was installed, read-only since.
    let prev = unsafe { *PREVIOUS.0.get() };
    if let Some(prev) = prev {
        let h = prev.sa_sigaction;
        if h != libc::SIG_DFL && h != libc::SIG_IGN {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with
                // SA_SIGINFO, so it has this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(h) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a plain handler takes the signal number.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
                f(sig);
            }
            return;
        }
    }
    // The default action: restore it and raise the signal again (it is
    // blocked while this handler runs, and delivered when it returns), so
    // that the process ends as if no handler had been there, whether the
    // signal came from a fault or from `kill`.
    // SAFETY: a zeroed sigaction with SIG_DFL is valid; raise is
    // async-signal-safe.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
        libc::raise(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_mapping_reads_zeros_and_says_so() {
        use crate::os::mapping::Mapping;
        use crate::os::shm;

        // A shared object of 4 pages, mapped, then cut to 1 page.
        let name = format!("mc.test.fault.{}", std::process::id());
        let fd = shm::create(&name).unwrap();
        shm::unlink(&name).unwrap();
        let len = 4 * 4096;
        shm::set_len(&fd, len as u64).unwrap();
        let m = Mapping::shared(&fd, len, false).unwrap();
        shm::write_at(&fd, &[7], 3 * 4096).unwrap();
        shm::set_len(&fd, 4096).unwrap();
        drop(fd);
        let p = m.ptr().as_ptr();
        let g = guard(m.addr(), len).expect("a slot");
        assert!(!g.truncated());
        // SAFETY: reads inside our own mapping; the page past the end is
        // replaced by a zero page by the handler instead of killing us.
        let v = unsafe { std::ptr::read_volatile(p.add(3 * 4096)) };
        assert_eq!(v, 0);
        assert!(g.truncated());
        // The first page is still the object's.
        // SAFETY: inside the mapping and inside the object.
        unsafe { p.write(1) };
        drop(g);
        drop(m);
    }
}
