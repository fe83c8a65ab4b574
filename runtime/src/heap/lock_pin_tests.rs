use super::super::*;
use crate::sync::{Condvar, Mutex, Semaphore};

fn pool() -> Pool {
    Pool::create(64 << 20).unwrap()
}

#[derive(crate::Shared, Debug)]
#[shared(crate = "crate")]
struct Guarded {
    m: Mutex<u64>,
    s: Semaphore,
    note: String,
    list: Vec<Mutex<()>>,
}

fn guarded() -> Guarded {
    Guarded {
        m: Mutex::new(7),
        s: Semaphore::new(1),
        note: "n".into(),
        list: (0..3).map(|_| Mutex::new(())).collect(),
    }
}

#[test]
fn a_pinned_lock_is_held_while_writers_go_on() {
    let pool = pool();
    let heap = Heap::create(&pool, &guarded()).unwrap();
    let m = heap.pin_lock::<Mutex<u64>>(|g| &g.m).unwrap();
    let mut held = m.lock().unwrap();
    *held += 1;
    // Writers change the value around the held lock, and collect.
    for i in 0..500 {
        heap.modify(|mu, g| mu.set_str(g.project().note, &format!("note {i}")))
            .unwrap()
            .unwrap();
    }
    heap.gc().unwrap();
    *held += 1;
    drop(held);
    assert_eq!(*m.lock().unwrap(), 9);
    drop(m);
    // The value's own lock is the one that was pinned.
    assert_eq!(*heap.read().unwrap().m.lock().unwrap(), 9);
    assert_eq!(heap.copy().unwrap().note, "note 499");
}

#[test]
fn a_pinned_lock_outlives_its_value() {
    let pool = pool();
    let heap = Heap::create(&pool, &guarded()).unwrap();
    heap.gc().unwrap();
    let base = heap.stats().unwrap().live_bytes;
    let s = heap.pin_lock::<Semaphore>(|g| &g.s).unwrap();
    s.wait();
    // A new value replaces the one the lock is in; collections run.
    heap.assign(&guarded()).unwrap();
    for _ in 0..3 {
        heap.gc().unwrap();
    }
    assert!(heap.stats().unwrap().live_bytes > base);
    assert!(s.try_wait().is_err());
    s.post().unwrap();
    s.try_wait().unwrap();
    drop(s);
    heap.gc().unwrap();
    assert_eq!(heap.stats().unwrap().live_bytes, base);
}

#[test]
fn writers_cannot_overwrite_or_move_a_pinned_lock() {
    let pool = pool();
    let heap = Heap::create(&pool, &guarded()).unwrap();
    let p = heap.pin_lock::<Mutex<()>>(|g| &g.list[1]).unwrap();
    let r = heap
        .modify(|m, g| m.set(g.project().list.get_pin(1).unwrap(), &Mutex::new(())))
        .unwrap();
    assert!(matches!(r, Err(HeapError::LockPinned)), "{r:?}");
    let r = heap
        .modify(|m, g| {
            let mut list = g.project().list;
            let (a, b) = {
                let mut it = list.as_mut().iter_pin();
                (it.next().unwrap(), it.next().unwrap())
            };
            m.swap(a, b)
        })
        .unwrap();
    assert!(matches!(r, Err(HeapError::LockPinned)), "{r:?}");
    // Growing the vector would move the lock to a new array.
    let r = heap
        .modify(|m, g| m.push(g.project().list, &Mutex::new(())))
        .unwrap();
    assert!(matches!(r, Err(HeapError::LockPinned)), "{r:?}");
    // Shrinking keeps the array (and the pinned lock) where it is; writing
    // past the end into the lock's old place is refused.
    heap.modify(|m, g| m.truncate(g.project().list, 1)).unwrap();
    let r = heap
        .modify(|m, g| m.push(g.project().list, &Mutex::new(())))
        .unwrap();
    assert!(matches!(r, Err(HeapError::LockPinned)), "{r:?}");
    // Other places are written as usual.
    heap.modify(|m, g| m.set_str(g.project().note, "changed"))
        .unwrap()
        .unwrap();
    let held = p.lock().unwrap();
    // Replacing the whole value leaves the pinned lock where it is (its
    // array is kept while pinned).
    heap.modify(|m, g| m.set(g, &guarded())).unwrap().unwrap();
    heap.gc().unwrap();
    drop(held);
    drop(p);
    heap.modify(|m, g| m.push(g.project().list, &Mutex::new(())))
        .unwrap()
        .unwrap();
    assert_eq!(heap.copy().unwrap().list.len(), 4);
}

#[test]
fn a_lock_with_pointers_or_outside_the_heap_is_refused() {
    let pool = pool();
    let heap = Heap::create(&pool, &(Mutex::new(String::from("s")), 1u8)).unwrap();
    let r = heap.pin_lock::<Mutex<String>>(|v| &v.0);
    assert!(
        matches!(r, Err(HeapError::LockWithPointers)),
        "{:?}",
        r.err()
    );
    // A lock of another heap, reached through a guard kept for good.
    let other: &'static Heap<(Condvar, u8)> = Box::leak(Box::new(
        Heap::create(&pool, &(Condvar::new(), 0u8)).unwrap(),
    ));
    let guard: &'static ReadGuard<'static, (Condvar, u8)> =
        Box::leak(Box::new(other.read().unwrap()));
    let plain = Heap::create(&pool, &1u64).unwrap();
    let r = plain.pin_lock::<Condvar>(|_| &guard.0);
    assert!(matches!(r, Err(HeapError::ForeignPlace)), "{:?}", r.err());
}

#[test]
fn lock_pins_count_as_pins() {
    let pool = pool();
    let heap = Heap::create(&pool, &guarded()).unwrap();
    let a = heap.pin_lock::<Mutex<u64>>(|g| &g.m).unwrap();
    let b = heap.pin_lock::<Mutex<u64>>(|g| &g.m).unwrap();
    assert_eq!(heap.stats().unwrap().pinned, 2);
    assert!(matches!(heap.clone().destroy(), Err(HeapError::Pinned(2))));
    drop((a, b));
    heap.gc().unwrap();
    assert_eq!(heap.header().lock_pins.load(Ordering::Acquire), 0);
    heap.destroy().unwrap();
}

#[test]
fn set_some_refuses_a_local_place() {
    let pool = pool();
    let heap = Heap::create(&pool, &0u8).unwrap();
    let mut local = std::pin::pin!(crate::value::SharedOption::<crate::value::SharedString>::None);
    let r = heap
        .modify(|m, _| m.set_some(local.as_mut(), &String::from("x")))
        .unwrap();
    assert!(matches!(r, Err(HeapError::ForeignPlace)), "{r:?}");
    assert!(local.is_none());
}

#[test]
fn locks_in_a_structures_data_are_not_pinned() {
    let pool = pool();
    let t = crate::SHashtbl::<u64, Mutex<u64>>::create(&pool, &()).unwrap();
    t.add(&1, &Mutex::new(100)).unwrap();
    t.add(&2, &Mutex::new(200)).unwrap();
    // The bindings live in buckets that the table's operations shift.
    let r = t.heap().pin_lock::<Mutex<u64>>(|d| {
        let _ = d;
        unreachable!("refused before the lock is picked")
    });
    assert!(
        matches!(r, Err(HeapError::LockInStructure)),
        "{:?}",
        r.err()
    );
    t.remove(&1).unwrap();
    assert!(t.find_copy(&1).unwrap().is_none());
    assert_eq!(*t.find_copy(&2).unwrap().unwrap().lock().unwrap(), 200);
}
