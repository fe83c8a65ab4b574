//! `Shared` for the locks: copying a lock into shared memory makes a fresh,
//! unlocked lock around a copy of the data (a semaphore keeps its count).

use super::raw::{MutexCopyHold, RawBarrier, RawMutex, RawRwLock, RawSemaphore, RwLockCopyHold};
use super::{Barrier, Condvar, LockError, Mutex, RwLock, SMutex, SRwLock, Semaphore};
use crate::value::{
    fingerprint_combine, fingerprint_str, CopyError, Invalid, Tracer, Validator, Writer,
};
use crate::Shared;

/// Runs `f` on the data behind `raw`, holding the lock (even a poisoned
/// one, whose state is put back afterwards). Fails when the calling thread
/// holds the lock (waiting would deadlock).
fn with_mutex<R, X>(
    raw: &RawMutex,
    data: *const R,
    f: impl FnOnce(&R) -> X,
) -> Result<X, LockError> {
    struct Release<'a>(&'a RawMutex, MutexCopyHold);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.release_copy(self.1);
        }
    }
    let hold = raw.lock_for_copy()?;
    let _release = Release(raw, hold);
    // SAFETY: the lock is held, so nobody else accesses the data.
    Ok(f(unsafe { &*data }))
}

/// [`with_mutex`] for reader/writer locks.
fn with_rwlock<R, X>(
    raw: &RawRwLock,
    data: *const R,
    f: impl FnOnce(&R) -> X,
) -> Result<X, LockError> {
    struct Release<'a>(&'a RawRwLock, RwLockCopyHold);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.release_copy(self.1);
        }
    }
    let hold = raw.lock_for_copy()?;
    let _release = Release(raw, hold);
    // SAFETY: the lock is held (at least shared), so nobody writes.
    Ok(f(unsafe { &*data }))
}

/// Copying out a lock that the calling thread holds reads the data as that
/// thread left it (nobody else can change it meanwhile).
fn read_own<R, X>(data: *const R, f: impl FnOnce(&R) -> X) -> X {
    // SAFETY: the calling thread holds the lock, so no other thread or
    // process writes the data while this thread runs `f`.
    f(unsafe { &*data })
}

// SAFETY: `SMutex<T::Repr>` holds a lock word (plain integers, any bit
// pattern valid, no pointers) and `T::Repr`; every pointer of the value is
// in the data, written by `T`, traced and validated by `T`. `SMutex` is
// `!Unpin`, `!Send` and `!Sync` whenever `T::Repr` is (UnsafeCell and the
// explicit `Sync` impl bounded by `R: Send` keep the data's auto traits),
// has no `Drop` and no public constructor.
unsafe impl<T: Shared> Shared for Mutex<T> {
    type Repr = SMutex<T::Repr>;
    const FINGERPRINT: u64 = fingerprint_combine(&[fingerprint_str("Mutex"), T::FINGERPRINT]);
    const HAS_POINTERS: bool = T::HAS_POINTERS;

    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        w.note_lock();
        with_mutex(self.raw(), self.data_ptr(), |d| d.to_repr(w))
            .map_err(|_| CopyError::Locked)?
            .map(SMutex::from_data)
    }

    fn repr_to_repr(src: &Self::Repr, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        w.note_lock();
        with_mutex(src.raw(), src.data_ptr(), |d| T::repr_to_repr(d, w))
            .map_err(|_| CopyError::Locked)?
            .map(SMutex::from_data)
    }

    fn from_repr(src: &Self::Repr) -> Self {
        Mutex::new(
            with_mutex(src.raw(), src.data_ptr(), T::from_repr)
                .unwrap_or_else(|_| read_own(src.data_ptr(), T::from_repr)),
        )
    }

    fn trace(src: &Self::Repr, t: &mut Tracer<'_>) {
        // SAFETY: the collector runs while the heap is held exclusively:
        // no guard of this lock (borrowed from a heap guard) exists, so
        // nobody writes the data.
        T::trace(unsafe { &*src.data_ptr() }, t)
    }

    unsafe fn validate(src: *const Self::Repr, v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: `src` is readable for the whole `SMutex` (caller), so for
        // the data inside it; any lock word is memory-safe.
        unsafe { T::validate(SMutex::data_addr(src), v) }
    }
}

// SAFETY: as for `Mutex`: a lock (plain integers) plus `T::Repr`, all
// pointers in the data and handled by `T`.
unsafe impl<T: Shared> Shared for RwLock<T> {
    type Repr = SRwLock<T::Repr>;
    const FINGERPRINT: u64 = fingerprint_combine(&[fingerprint_str("RwLock"), T::FINGERPRINT]);
    const HAS_POINTERS: bool = T::HAS_POINTERS;

    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        w.note_lock();
        with_rwlock(self.raw(), self.data_ptr(), |d| d.to_repr(w))
            .map_err(|_| CopyError::Locked)?
            .map(SRwLock::from_data)
    }

    fn repr_to_repr(src: &Self::Repr, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        w.note_lock();
        with_rwlock(src.raw(), src.data_ptr(), |d| T::repr_to_repr(d, w))
            .map_err(|_| CopyError::Locked)?
            .map(SRwLock::from_data)
    }

    fn from_repr(src: &Self::Repr) -> Self {
        RwLock::new(
            with_rwlock(src.raw(), src.data_ptr(), T::from_repr)
                .unwrap_or_else(|_| read_own(src.data_ptr(), T::from_repr)),
        )
    }

    fn trace(src: &Self::Repr, t: &mut Tracer<'_>) {
        // SAFETY: as for `Mutex`: the collector runs with the heap held
        // exclusively, when no guard of this lock exists.
        T::trace(unsafe { &*src.data_ptr() }, t)
    }

    unsafe fn validate(src: *const Self::Repr, v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: `src` is readable for the whole `SRwLock` (caller).
        unsafe { T::validate(SRwLock::data_addr(src), v) }
    }
}

// SAFETY: a semaphore is two integers, no pointers; every bit pattern is
// valid (a count above `MAX` only makes `post` report an overflow).
unsafe impl Shared for Semaphore {
    type Repr = Semaphore;
    const FINGERPRINT: u64 = fingerprint_str("Semaphore");
    const HAS_POINTERS: bool = false;

    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Semaphore, CopyError> {
        w.note_lock();
        Ok(Semaphore::new(self.value().min(RawSemaphore::MAX)))
    }

    fn repr_to_repr(src: &Semaphore, w: &mut Writer<'_>) -> Result<Semaphore, CopyError> {
        w.note_lock();
        Ok(Semaphore::new(src.value().min(RawSemaphore::MAX)))
    }

    fn from_repr(src: &Semaphore) -> Semaphore {
        Semaphore::new(src.value().min(RawSemaphore::MAX))
    }

    fn trace(_src: &Semaphore, _t: &mut Tracer<'_>) {}

    unsafe fn validate(_src: *const Semaphore, _v: &mut Validator<'_>) -> Result<(), Invalid> {
        Ok(())
    }
}

// SAFETY: a condition variable is two integers, no pointers; every bit
// pattern is valid.
unsafe impl Shared for Condvar {
    type Repr = Condvar;
    const FINGERPRINT: u64 = fingerprint_str("Condvar");
    const HAS_POINTERS: bool = false;

    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Condvar, CopyError> {
        w.note_lock();
        Ok(Condvar::new())
    }

    fn repr_to_repr(_src: &Condvar, w: &mut Writer<'_>) -> Result<Condvar, CopyError> {
        w.note_lock();
        Ok(Condvar::new())
    }

    fn from_repr(_src: &Condvar) -> Condvar {
        Condvar::new()
    }

    fn trace(_src: &Condvar, _t: &mut Tracer<'_>) {}

    unsafe fn validate(_src: *const Condvar, _v: &mut Validator<'_>) -> Result<(), Invalid> {
        Ok(())
    }
}

// SAFETY: a barrier is two integers, no pointers; every bit pattern is
// memory-safe (a size out of range is clamped when waiting).
unsafe impl Shared for Barrier {
    type Repr = Barrier;
    const FINGERPRINT: u64 = fingerprint_str("Barrier");
    const HAS_POINTERS: bool = false;

    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Barrier, CopyError> {
        w.note_lock();
        Ok(fresh_barrier(self))
    }

    fn repr_to_repr(src: &Barrier, w: &mut Writer<'_>) -> Result<Barrier, CopyError> {
        w.note_lock();
        Ok(fresh_barrier(src))
    }

    fn from_repr(src: &Barrier) -> Barrier {
        fresh_barrier(src)
    }

    fn trace(_src: &Barrier, _t: &mut Tracer<'_>) {}

    unsafe fn validate(_src: *const Barrier, _v: &mut Validator<'_>) -> Result<(), Invalid> {
        Ok(())
    }
}

/// A barrier for as many participants as `b`, nobody arrived.
fn fresh_barrier(b: &Barrier) -> Barrier {
    Barrier::new(b.participants().clamp(1, RawBarrier::MAX))
}

// Layout facts the representations rely on.
const _: () = {
    assert!(std::mem::size_of::<RawMutex>() == 4);
    assert!(std::mem::size_of::<SMutex<u64>>() == 16);
    assert!(std::mem::size_of::<Semaphore>() == 8);
    assert!(std::mem::size_of::<Condvar>() == 8);
};

#[cfg(test)]
mod tests {
    use super::*;
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
