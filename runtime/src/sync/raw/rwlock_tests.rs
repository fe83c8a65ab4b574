//! Tests of the robust reader/writer lock within one process.

use super::*;
use std::sync::atomic::AtomicU64;

#[test]
fn readers_share_writers_exclude() {
    let l = RawRwLock::new();
    assert_eq!(l.read(None), Ok(Acquired::Clean));
    assert_eq!(l.reader_count(), 1);
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(l.try_write(), Err(LockError::WouldBlock));
            assert_eq!(
                l.write(Some(Duration::from_millis(20))),
                Err(LockError::Timeout)
            );
            assert_eq!(l.read(None), Ok(Acquired::Clean));
            assert_eq!(l.reader_count(), 2);
            assert_eq!(l.try_write(), Err(LockError::Deadlock));
            l.unlock_read_checked().unwrap();
        });
    });
    // Recursive read with a writer waiting: refused, not a hang.
    std::thread::scope(|s| {
        let w = s.spawn(|| l.write(Some(Duration::from_secs(5))));
        while !l.is_write_locked() {
            std::thread::yield_now();
        }
        assert_eq!(l.read(None), Err(LockError::Deadlock));
        l.unlock_read_checked().unwrap();
        assert_eq!(w.join().unwrap(), Ok(Acquired::Clean));
    });
    // The writer thread exited holding the lock: it died.
    assert_eq!(l.read(None), Err(LockError::Poisoned));
    assert_eq!(l.write(None), Ok(Acquired::OwnerDied));
    assert_eq!(l.write(None), Err(LockError::Deadlock));
    assert_eq!(l.read(None), Err(LockError::Deadlock));
    l.mark_consistent().unwrap();
    l.unlock_write_checked().unwrap();
    assert_eq!(l.unlock_write_checked(), Err(LockError::NotOwner));
    assert_eq!(l.read(None), Ok(Acquired::Clean));
    assert_eq!(l.write(None), Err(LockError::Deadlock));
    l.unlock_read_checked().unwrap();
}

#[test]
fn unrepaired_writer_death_poisons() {
    let l = RawRwLock::new();
    std::thread::scope(|s| {
        s.spawn(|| l.write(None).unwrap());
    });
    assert_eq!(l.write(None), Ok(Acquired::OwnerDied));
    l.unlock_write_checked().unwrap();
    assert!(l.is_poisoned());
    assert_eq!(l.read(None), Err(LockError::Poisoned));
    assert_eq!(l.write(None), Err(LockError::Poisoned));
    assert_eq!(l.lock_for_copy(), Ok(CopyHold::Poisoned));
    l.release_copy(CopyHold::Poisoned);
    assert_eq!(l.read(None), Err(LockError::Poisoned));
    assert!(l.clear_poison());
    assert_eq!(l.write(None), Ok(Acquired::Clean));
    l.abandon_write().unwrap();
    assert_eq!(l.try_read(), Err(LockError::Poisoned));
    assert_eq!(l.try_write(), Ok(Acquired::OwnerDied));
    l.mark_consistent().unwrap();
    l.unlock_write_checked().unwrap();
    assert_eq!(l.try_read(), Ok(Acquired::Clean));
    l.unlock_read_checked().unwrap();
}

#[test]
fn dead_reader_does_not_block_writers() {
    let l = RawRwLock::new();
    std::thread::scope(|s| {
        s.spawn(|| l.read(None).unwrap());
    });
    assert_eq!(l.reader_count(), 1);
    let t = Instant::now();
    assert_eq!(l.write(Some(Duration::from_secs(5))), Ok(Acquired::Clean));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    l.unlock_write_checked().unwrap();
    assert_eq!(l.reader_count(), 0);
}

#[test]
fn more_readers_than_slots() {
    let l = RawRwLock::new();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let n = READER_SLOTS + 8;
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let tx = tx.clone();
                let l = &l;
                s.spawn(move || {
                    l.read(Some(Duration::from_secs(10))).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    tx.send(()).unwrap();
                    l.unlock_read_checked().unwrap();
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    assert_eq!(rx.try_iter().count(), READER_SLOTS + 8);
    assert_eq!(l.reader_count(), 0);
}

#[test]
fn mixed_stress_counts_exactly() {
    let l = RawRwLock::new();
    let a = AtomicU64::new(0);
    let b = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..50_000 {
                    assert_eq!(l.write(None), Ok(Acquired::Clean));
                    // Two non-atomic-looking updates that readers must see together.
                    let v = a.load(SeqCst);
                    a.store(v + 1, SeqCst);
                    b.store(v + 1, SeqCst);
                    l.unlock_write_checked().unwrap();
                }
            });
        }
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..50_000 {
                    assert_eq!(l.read(None), Ok(Acquired::Clean));
                    assert_eq!(a.load(SeqCst), b.load(SeqCst));
                    l.unlock_read_checked().unwrap();
                }
            });
        }
    });
    assert_eq!(a.load(SeqCst), 100_000);
}
