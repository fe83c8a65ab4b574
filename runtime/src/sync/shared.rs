//! `Shared` for the locks: copying a lock into shared memory makes a fresh,
//! unlocked lock around a copy of the data (a semaphore keeps its count).

use super::lock::{InPlace, Lock, Owned};
use super::raw::{sealed::Token, RawBarrier, RawLock, RawMutex, RawSemaphore};
use super::{Barrier, Condvar, LockError, Semaphore, SharedMutex};
use crate::value::{
    fingerprint_combine, fingerprint_str, CopyError, Invalid, Tracer, Validator, Writer,
};
use crate::Shared;

/// Runs `f` on the data behind `raw`, holding the lock (even a poisoned
/// one, whose state is put back afterwards). Fails when the calling thread
/// holds the lock (waiting would deadlock).
fn with_lock<L: RawLock, R, X>(
    raw: &L,
    data: *const R,
    f: impl FnOnce(&R) -> X,
) -> Result<X, LockError> {
    struct Release<'a, L: RawLock>(&'a L, super::raw::sealed::CopyHold);
    impl<L: RawLock> Drop for Release<'_, L> {
        fn drop(&mut self) {
            self.0.release_copy(self.1, Token(()));
        }
    }
    let hold = raw.lock_for_copy(Token(()))?;
    let _release = Release(raw, hold);
    // SAFETY: the lock is held (at least shared), so nobody writes the data.
    Ok(f(unsafe { &*data }))
}

/// Copying out a lock that the calling thread holds reads the data as that
/// thread left it (nobody else can change it meanwhile).
fn read_own<R, X>(data: *const R, f: impl FnOnce(&R) -> X) -> X {
    // SAFETY: the calling thread holds the lock, so no other thread or
    // process writes the data while this thread runs `f`.
    f(unsafe { &*data })
}

// SAFETY: `Lock<L, T::Repr, InPlace>` holds lock words (plain integers, any
// bit pattern valid, no pointers) and `T::Repr`; every pointer of the value
// is in the data, written by `T`, traced and validated by `T`. The lock in
// place is `!Unpin`, `!Send` and `!Sync` whenever `T::Repr` is
// (`UnsafeCell` and the explicit `Sync` impls bounded by the data's traits
// keep them), has no `Drop` and no public constructor.
unsafe impl<L: RawLock, T: Shared> Shared for Lock<L, T, Owned> {
    type Repr = Lock<L, T::Repr, InPlace>;
    const FINGERPRINT: u64 =
        fingerprint_combine(&[fingerprint_str(L::NAMES.lock[0]), T::FINGERPRINT]);
    const HAS_POINTERS: bool = T::HAS_POINTERS;

    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        w.note_lock();
        with_lock(self.raw(), self.data_ptr(), |d| d.to_repr(w))
            .map_err(|_| CopyError::Locked)?
            .map(Lock::from_data)
    }

    fn repr_to_repr(src: &Self::Repr, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        w.note_lock();
        with_lock(src.raw(), src.data_ptr(), |d| T::repr_to_repr(d, w))
            .map_err(|_| CopyError::Locked)?
            .map(Lock::from_data)
    }

    fn from_repr(src: &Self::Repr) -> Self {
        Lock::new(
            with_lock(src.raw(), src.data_ptr(), T::from_repr)
                .unwrap_or_else(|_| read_own(src.data_ptr(), T::from_repr)),
        )
    }

    fn trace(src: &Self::Repr, t: &mut Tracer<'_>) {
        if !T::HAS_POINTERS {
            // Nothing to follow; and a lock pinned in place (whose data has
            // no pointers) may be held, its data written, meanwhile.
            return;
        }
        // SAFETY: the collector runs while the heap is held exclusively:
        // no guard of this lock (borrowed from a heap guard) exists, so
        // nobody writes the data (a lock whose data has pointers cannot be
        // pinned in place, `Heap::pin_lock`).
        T::trace(unsafe { &*src.data_ptr() }, t)
    }

    unsafe fn validate(src: *const Self::Repr, v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: `src` is readable for the whole lock (caller), so for the
        // data inside it; any lock word is memory-safe.
        unsafe { T::validate(Lock::data_addr(src), v) }
    }
}

/// A [`Semaphore`], [`Condvar`] or [`Barrier`] as it lives in shared
/// memory (its shared representation): it derefs to the value, and safe
/// code can neither make one nor replace one in place (it is `!Unpin` and
/// has no constructor), so that a process can hold it pinned
/// ([`Heap::pin_lock`](crate::Heap::pin_lock)) while others modify the heap
/// around it.
#[repr(transparent)]
pub struct Placed<S> {
    value: S,
    _pin: std::marker::PhantomPinned,
}

impl<S> Placed<S> {
    fn new(value: S) -> Self {
        Placed {
            value,
            _pin: std::marker::PhantomPinned,
        }
    }
}

impl<S> std::ops::Deref for Placed<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.value
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Placed<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

/// The methods of `Shared` for a synchronisation value with no data and no
/// pointers, whose shared representation is itself, [`Placed`]: every copy
/// is `$fresh(&source)`, there is nothing to trace, and any bits validate.
macro_rules! fresh_on_copy {
    ($t:ty, $fresh:ident) => {
        type Repr = Placed<$t>;
        const HAS_POINTERS: bool = false;

        fn to_repr(&self, w: &mut Writer<'_>) -> Result<Placed<$t>, CopyError> {
            w.note_lock();
            Ok(Placed::new($fresh(self)))
        }

        fn repr_to_repr(src: &Placed<$t>, w: &mut Writer<'_>) -> Result<Placed<$t>, CopyError> {
            w.note_lock();
            Ok(Placed::new($fresh(src)))
        }

        fn from_repr(src: &Placed<$t>) -> $t {
            $fresh(src)
        }

        fn trace(_src: &Placed<$t>, _t: &mut Tracer<'_>) {}

        unsafe fn validate(_src: *const Placed<$t>, _v: &mut Validator<'_>) -> Result<(), Invalid> {
            Ok(())
        }
    };
}

// SAFETY: a semaphore is two integers, no pointers; every bit pattern is
// valid (a count above `MAX` only makes `post` report an overflow).
unsafe impl Shared for Semaphore {
    const FINGERPRINT: u64 = fingerprint_str("Semaphore");
    fresh_on_copy!(Semaphore, fresh_semaphore);
}

// SAFETY: a condition variable is two integers, no pointers; every bit
// pattern is valid.
unsafe impl Shared for Condvar {
    const FINGERPRINT: u64 = fingerprint_str("Condvar");
    fresh_on_copy!(Condvar, fresh_condvar);
}

// SAFETY: a barrier is two integers, no pointers; every bit pattern is
// memory-safe (a size out of range is clamped when waiting).
unsafe impl Shared for Barrier {
    const FINGERPRINT: u64 = fingerprint_str("Barrier");
    fresh_on_copy!(Barrier, fresh_barrier);
}

/// A semaphore with the count of `s` (at most [`RawSemaphore::MAX`]).
fn fresh_semaphore(s: &Semaphore) -> Semaphore {
    Semaphore::new(s.value().min(RawSemaphore::MAX))
}

/// A condition variable nobody waits on.
fn fresh_condvar(_: &Condvar) -> Condvar {
    Condvar::new()
}

/// A barrier for as many participants as `b`, nobody arrived.
fn fresh_barrier(b: &Barrier) -> Barrier {
    Barrier::new(b.participants().clamp(1, RawBarrier::MAX))
}

// Layout facts the representations rely on.
const _: () = {
    assert!(std::mem::size_of::<RawMutex>() == 4);
    assert!(std::mem::size_of::<SharedMutex<u64>>() == 16);
    assert!(std::mem::size_of::<Semaphore>() == 8);
    assert!(std::mem::size_of::<Condvar>() == 8);
    assert!(std::mem::size_of::<Placed<Semaphore>>() == 8);
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{Mutex, RwLock};
    use crate::value::roundtrip_local;

    #[test]
    fn locks_round_trip_with_their_data() {
        let m = Mutex::new(vec![String::from("a"), String::from("b")]);
        let held = m.lock().unwrap();
        let r = std::thread::scope(|s| {
            let h = s.spawn(|| roundtrip_local(&m).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!h.is_finished(), "copying must wait for the lock");
            drop(held);
            h.join().unwrap()
        });
        assert_eq!(*r.lock().unwrap(), ["a", "b"]);

        let l = RwLock::new((1u8, Some(Box::new(2u64))));
        assert_eq!(
            *roundtrip_local(&l).unwrap().read().unwrap(),
            (1, Some(Box::new(2)))
        );

        let s = Semaphore::new(3);
        assert_eq!(roundtrip_local(&s).unwrap().value(), 3);
        let _c: Condvar = roundtrip_local(&Condvar::new()).unwrap();
        assert_eq!(roundtrip_local(&Barrier::new(4)).unwrap().participants(), 4);
    }

    #[test]
    fn copying_keeps_lock_states() {
        let m = Mutex::new(1u32);
        m.lock().unwrap().poison();
        let c = roundtrip_local(&m).unwrap();
        assert!(m.is_poisoned(), "the source stays poisoned");
        assert_eq!(*c.lock().unwrap(), 1, "the copy is a fresh lock");

        let m = Mutex::new(2u32);
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(m.lock().unwrap()));
        });
        let c = roundtrip_local(&m).unwrap();
        assert_eq!(*c.lock().unwrap(), 2);
        assert!(
            m.lock().unwrap().owner_died(),
            "the source still reports the death"
        );

        let l = RwLock::new(3u32);
        l.write().unwrap().poison();
        assert_eq!(*roundtrip_local(&l).unwrap().read().unwrap(), 3);
        assert_eq!(l.write().err(), Some(crate::sync::LockError::Poisoned));
    }

    #[test]
    fn copying_a_mutex_held_by_this_thread_is_an_error() {
        let m = Mutex::new(1u8);
        let g = m.lock().unwrap();
        assert_eq!(roundtrip_local(&m).err(), Some(CopyError::Locked));
        drop(g);
        assert_eq!(*roundtrip_local(&m).unwrap().lock().unwrap(), 1);
    }

    #[test]
    fn fingerprints_differ() {
        assert_ne!(
            <Mutex<u64> as Shared>::FINGERPRINT,
            <RwLock<u64> as Shared>::FINGERPRINT
        );
        assert_ne!(
            <Mutex<u64> as Shared>::FINGERPRINT,
            <Mutex<u32> as Shared>::FINGERPRINT
        );
        assert_ne!(
            <Semaphore as Shared>::FINGERPRINT,
            <Condvar as Shared>::FINGERPRINT
        );
        const { assert!(!<Mutex<u64> as Shared>::HAS_POINTERS) };
        const { assert!(<Mutex<String> as Shared>::HAS_POINTERS) };
    }
}
