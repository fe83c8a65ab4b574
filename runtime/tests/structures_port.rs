//! The structures as a Netmulticore port needs them: `heap()` on every
//! structure, `find_all` (the counterpart of `find_all_ro`/`find_all_p` and
//! `with_value_n`), copies instead of `add_immutable`, no reentrant locks,
//! and errors instead of panics on data broken through `heap()`.

use mc::structures::StructureError;
use mc::{HeapError, Pool, SArray, SBuffer, SHashtbl, SMatrix, SQueue, SRef};

fn pool() -> Pool {
    Pool::create(256 << 20).expect("pool")
}

#[test]
fn every_structure_has_its_heap() {
    let pool = pool();
    let r = SRef::new(&pool, &7u32).unwrap();
    assert_eq!(r.heap().copy().unwrap(), 7);

    let a = SArray::create(&pool, &(), &[1u32, 2, 3]).unwrap();
    assert_eq!(a.heap().copy().unwrap(), [1, 2, 3]);
    assert_eq!(a.heap().pool().name(), a.pool().name());
    // The heap's descriptor opens the same data elsewhere.
    let again = a.heap().descr().open().unwrap();
    a.set(0, &10).unwrap();
    assert_eq!(again.copy().unwrap(), [10, 2, 3]);
    assert!(a.heap().poisoned().unwrap().is_none());
    a.heap().validate().unwrap();

    let mx = SMatrix::make(&pool, &(), 2, 3, &5u8).unwrap();
    let (rows, cols, elems) = mx.heap().copy().unwrap();
    assert_eq!((rows, cols, elems.len()), (2, 3, 6));

    let b = SBuffer::create(&pool, &()).unwrap();
    b.push_bytes(b"abc").unwrap();
    assert!(b.heap().stats().unwrap().live_bytes >= 3);
    assert_eq!(b.heap().read().unwrap().3, 3);

    let q = SQueue::create(&pool, &()).unwrap();
    q.push(&"x".to_string()).unwrap();
    assert_eq!(
        q.heap()
            .read_timeout(std::time::Duration::from_secs(5))
            .unwrap()
            .2,
        1
    );

    let t = SHashtbl::<u32, u32>::with_buckets(&pool, &(), 5).unwrap();
    t.add(&1, &2).unwrap();
    let g = t.heap().read().unwrap();
    assert_eq!((g.0 .1, g.1), (5, 1));
    drop(g);
    // The heap's lock is the structure's: a guard of it makes changes of
    // the structure reentrant.
    let g = q.heap().read().unwrap();
    assert!(matches!(
        q.push(&"y".to_string()),
        Err(StructureError::Heap(HeapError::Reentrant))
    ));
    drop(g);
    q.push(&"y".to_string()).unwrap();
}

fn is_inconsistent<T: std::fmt::Debug>(r: Result<T, StructureError>) -> bool {
    matches!(r, Err(StructureError::Inconsistent { .. }))
}

#[test]
fn data_broken_through_heap_is_an_error_not_a_panic() {
    let pool = pool();

    // A table without buckets, and a count that does not match.
    let t = SHashtbl::<u32, String>::create(&pool, &()).unwrap();
    t.add(&1, &"one".to_string()).unwrap();
    t.heap()
        .assign(&((Vec::new(), 0), 3, (Vec::new(), 0), 0, (0, 0, 0, 0)))
        .unwrap();
    assert!(is_inconsistent(t.find(&1)));
    assert!(is_inconsistent(t.find_pinned(&1)));
    assert!(is_inconsistent(t.find_copy(&1)));
    assert!(is_inconsistent(t.find_all(&1)));
    assert!(is_inconsistent(t.find_all_copy(&1)));
    assert!(is_inconsistent(t.contains_key(&1)));
    assert!(is_inconsistent(t.add(&1, &"x".to_string())));
    assert!(is_inconsistent(t.replace(&1, &"x".to_string())));
    assert!(is_inconsistent(t.remove(&1)));
    assert!(is_inconsistent(t.modify_value(&1, |_, _| ())));
    assert_eq!(t.read().unwrap().get(&1), None);
    assert_eq!(t.read().unwrap().get_all(&1).count(), 0);
    assert_eq!(t.to_vec().unwrap(), []);
    let e = t.find(&1).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("without buckets"), "{e}");
    t.heap()
        .assign(&(
            (vec![vec![vec![(1, "a".to_string())]]], 1),
            2,
            (Vec::new(), 0),
            0,
            (0, 0, 0, 0),
        ))
        .unwrap();
    assert_eq!(t.find_copy(&1).unwrap().as_deref(), Some("a"));
    assert_eq!(t.find_all_copy(&1).unwrap(), ["a"]);
    // The count says 2: a removal goes by the bindings there are.
    assert!(t.remove(&1).unwrap());
    assert!(!t.remove(&1).unwrap());
    assert_eq!(t.find_copy(&1).unwrap(), None);
    // `clear` repairs the count.
    t.clear().unwrap();
    assert_eq!(t.len().unwrap(), 0);
    // A nonsensical growth state: more old buckets moved than there are,
    // and old buckets that still hold bindings. Lookups answer (from the
    // new buckets), iteration sees every binding, and the table goes on.
    t.heap()
        .assign(&(
            (vec![vec![vec![]; 3]], 3),
            1,
            (vec![vec![vec![(7, "seven".to_string())]]], 1),
            9,
            (0, 0, 0, 0),
        ))
        .unwrap();
    assert_eq!(t.find_copy(&7).unwrap(), None);
    assert_eq!(t.to_vec().unwrap(), [(7, "seven".to_string())]);
    for i in 0..20 {
        t.add(&i, &i.to_string()).unwrap();
        t.remove(&(i / 2)).unwrap();
    }
    assert_eq!(t.find_copy(&19).unwrap().as_deref(), Some("19"));
    // Old buckets of which none moved: the bindings there are found, and
    // the next modifications move them.
    t.heap()
        .assign(&(
            (vec![vec![vec![]; 5]], 5),
            2,
            (
                vec![vec![vec![
                    (4, "four".to_string()),
                    (8, "eight".to_string()),
                ]]],
                1,
            ),
            0,
            (0, 0, 0, 0),
        ))
        .unwrap();
    assert_eq!(t.find_copy(&8).unwrap().as_deref(), Some("eight"));
    t.add(&1, &"one".to_string()).unwrap();
    assert_eq!(t.find_copy(&4).unwrap().as_deref(), Some("four"));
    assert_eq!(t.find_copy(&8).unwrap().as_deref(), Some("eight"));
    assert_eq!(t.len().unwrap(), 3);
    // Fewer segments than the count of buckets says: the missing ones are
    // empty to a lookup, and an error (not a panic) to a change.
    t.heap()
        .assign(&((Vec::new(), 5000), 0, (Vec::new(), 0), 0, (0, 0, 0, 0)))
        .unwrap();
    assert_eq!(t.find_copy(&3).unwrap(), None);
    assert!(t.add(&3, &"three".to_string()).is_err());
    // Counts too large to compute with, or to grow to: no growth, no
    // panic, no abort.
    for (buckets, bindings) in [(usize::MAX, 1), (1 << 62, 1 << 63)] {
        t.heap()
            .assign(&(
                (Vec::new(), buckets),
                bindings,
                (Vec::new(), 0),
                0,
                (0, 0, 0, 0),
            ))
            .unwrap();
        assert!(t.add(&1, &"one".to_string()).is_err());
        assert_eq!(t.find_copy(&1).unwrap(), None);
    }
    t.clear().unwrap();

    // A queue whose length exceeds its ring, and one with a hole.
    let q = SQueue::<u32>::create(&pool, &()).unwrap();
    q.heap().assign(&(Vec::new(), 5, 3, 0)).unwrap();
    assert!(is_inconsistent(q.push(&1)));
    assert!(is_inconsistent(q.pop_copy()));
    assert!(is_inconsistent(q.pop_many(2)));
    assert!(is_inconsistent(q.peek()));
    assert!(is_inconsistent(q.peek_pinned()));
    assert!(is_inconsistent(q.peek_copy()));
    assert!(is_inconsistent(q.read()));
    assert!(is_inconsistent(q.to_vec()));
    assert!(is_inconsistent(q.extend(&[1, 2])));
    q.heap()
        .assign(&(vec![Some(1), None, Some(3)], 0, 3, 3))
        .unwrap();
    assert!(is_inconsistent(q.pop_many(3)));
    assert_eq!(q.pop_copy().unwrap(), Some(1));
    assert!(is_inconsistent(q.peek()));
    assert!(is_inconsistent(q.pop_with(|x| *x)));
    assert_eq!(q.len().unwrap(), 2);
    // `clear` repairs it.
    q.clear().unwrap();
    q.extend(&[4, 5]).unwrap();
    assert_eq!(q.to_vec().unwrap(), [4, 5]);

    // A buffer with blocks of no bytes, then with too few bytes.
    let b = SBuffer::create(&pool, &()).unwrap();
    b.heap().assign(&(Vec::new(), 0, 0, 10, 0)).unwrap();
    assert!(is_inconsistent(b.push_bytes(b"x")));
    assert!(is_inconsistent(b.sub(0, 1)));
    assert!(is_inconsistent(b.delete_head(1)));
    assert!(is_inconsistent(b.clear()));
    assert!(is_inconsistent(b.read()));
    b.heap()
        .assign(&(vec![vec![1, 2]], 0, usize::MAX, 1, 64))
        .unwrap();
    assert!(is_inconsistent(b.read()));
    b.heap().assign(&(vec![vec![1, 2]], 0, 0, 10, 64)).unwrap();
    assert_eq!(b.sub(0, 2).unwrap(), [1, 2]);
    assert!(is_inconsistent(b.sub(0, 10)));
    let mut dst = [0u8; 4];
    assert!(is_inconsistent(b.blit(1, &mut dst)));
    assert!(is_inconsistent(b.read().unwrap().blit(1, &mut dst)));
    assert_eq!(b.read().unwrap().end(), 10);
    b.clear().unwrap();
    b.push_bytes(b"ok").unwrap();
    assert_eq!(b.sub(10, 2).unwrap(), b"ok");
    // A block short of its bytes before the last: appends and deletions
    // refuse it too (clear empties it).
    let b = SBuffer::with_block_size(&pool, &(), 64).unwrap();
    b.push_bytes(&[7u8; 130]).unwrap();
    b.heap()
        .modify(|m, t| {
            let mut blocks = t.project().0;
            m.truncate(blocks.as_mut().get_pin(1).unwrap(), 10);
        })
        .unwrap();
    assert!(is_inconsistent(b.push_bytes(b"x")));
    assert!(is_inconsistent(b.delete_head(0)));
    b.clear().unwrap();
    assert_eq!(b.push_bytes(b"ok").unwrap(), 130);

    // A matrix whose dimensions overflow.
    let mx = SMatrix::make(&pool, &(), 2, 2, &1u8).unwrap();
    mx.heap()
        .assign(&(usize::MAX, usize::MAX, vec![1u8; 4]))
        .unwrap();
    assert_eq!(mx.get_copy(0, 3).unwrap(), 1);
    assert!(matches!(
        mx.get_copy(2, 3),
        Err(StructureError::OutOfBounds { .. })
    ));
    assert!(matches!(
        mx.get(3, 0),
        Err(StructureError::OutOfBounds { .. })
    ));
    assert!(matches!(
        mx.set(5, 5, &0),
        Err(StructureError::OutOfBounds { .. })
    ));
    assert!(matches!(mx.row(1), Err(StructureError::BadShape { .. })));
    assert!(matches!(mx.row(0), Err(StructureError::BadShape { .. })));
}

#[test]
fn find_all_sees_every_binding_most_recent_first() {
    let pool = pool();
    // One bucket: every key shares the chain.
    let t = SHashtbl::<u32, String>::with_buckets(&pool, &(), 1).unwrap();
    for v in ["a", "b", "c"] {
        t.add(&1, &v.to_string()).unwrap();
        t.add(&2, &v.to_uppercase()).unwrap();
    }
    let strs = |r: &mc::structures::Refs<_, mc::value::SharedString>| -> Vec<String> {
        r.iter().map(|s| s.as_str().to_owned()).collect()
    };
    let latest = t.find_copy(&1).unwrap();
    let all = t.find_all(&1).unwrap();
    assert_eq!(all.len(), 3);
    assert!(!all.is_empty());
    assert_eq!(strs(&all), ["c", "b", "a"]);
    assert_eq!(all.get(0).map(|s| s.as_str()), Some("c"));
    assert_eq!(all.get(2).map(|s| s.as_str()), Some("a"));
    assert!(all.get(3).is_none());
    assert_eq!(format!("{all:?}"), r#"["c", "b", "a"]"#);
    // The first is what `find` sees.
    assert_eq!(all.get(0).map(|s| s.as_str().to_owned()), latest);
    drop(all);
    // `replace` changes the most recent binding; `remove` uncovers the
    // previous one.
    t.replace(&1, &"z".to_string()).unwrap();
    assert_eq!(t.find_all_copy(&1).unwrap(), ["z", "b", "a"]);
    t.remove(&1).unwrap();
    assert_eq!(t.find_all_copy(&1).unwrap(), ["b", "a"]);
    // A key only ever replaced has one binding; an unbound key none.
    t.replace(&3, &"x".to_string()).unwrap();
    t.replace(&3, &"y".to_string()).unwrap();
    assert_eq!(t.find_all_copy(&3).unwrap(), ["y"]);
    let none = t.find_all(&4).unwrap();
    assert!(none.is_empty());
    assert_eq!(none.iter().count(), 0);
    drop(none);
    assert_eq!(t.find_all_copy(&2).unwrap(), ["C", "B", "A"]);
    // The guard holds the shared lock: a change meanwhile is reentrant.
    let g = t.find_all(&2).unwrap();
    assert!(matches!(
        t.add(&2, &"D".to_string()),
        Err(StructureError::Heap(HeapError::Reentrant))
    ));
    drop(g);
    t.add(&2, &"D".to_string()).unwrap();
}

#[test]
fn find_all_pinned_keeps_several_values_while_writers_go_on() {
    let pool = pool();
    let t = SHashtbl::<String, String>::create(&pool, &()).unwrap();
    let k = "k".to_string();
    for i in 0..4 {
        t.add(&k, &format!("v{i}")).unwrap();
    }
    // `with_value_n`: several values pinned, no lock held.
    let pinned = t.find_all_pinned(&k).unwrap();
    t.remove(&k).unwrap();
    t.replace(&k, &"new".to_string()).unwrap();
    t.add(&"other".to_string(), &"o".to_string()).unwrap();
    t.clear().unwrap();
    t.gc().unwrap();
    for i in 0..100 {
        t.add(&format!("{i}"), &"x".repeat(100)).unwrap();
    }
    t.gc().unwrap();
    let seen: Vec<&str> = pinned.iter().map(|s| s.as_str()).collect();
    assert_eq!(seen, ["v3", "v2", "v1", "v0"]);
    assert!(t.find_all(&k).unwrap().is_empty());
    drop(pinned);
    t.gc().unwrap();
    assert_eq!(t.len().unwrap(), 100);
}

#[test]
fn additions_copy_so_bindings_never_share_a_value() {
    // No `add_immutable`: every addition copies its argument, so no two
    // places of a heap share a value.
    let pool = pool();
    let t = SHashtbl::<u32, Vec<u32>>::create(&pool, &()).unwrap();
    let mut v = vec![1, 2, 3];
    t.add(&1, &v).unwrap();
    t.add(&1, &v).unwrap();
    t.add(&2, &v).unwrap();
    v.push(4);
    assert_eq!(t.find_copy(&1).unwrap(), Some(vec![1, 2, 3]));
    // Changing one binding in place leaves the others alone.
    t.modify_value(&1, |m, r| m.push::<u32>(r, &9).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        t.find_all_copy(&1).unwrap(),
        [vec![1, 2, 3, 9], vec![1, 2, 3]]
    );
    assert_eq!(t.find_copy(&2).unwrap(), Some(vec![1, 2, 3]));

    let a = SArray::make(&pool, &(), 3, &"s".to_string()).unwrap();
    a.modify(|m, mut v| {
        let first = v.as_mut().get_pin(0).unwrap();
        m.set_str(first, "changed").unwrap();
    })
    .unwrap();
    assert_eq!(a.to_vec().unwrap(), ["changed", "s", "s"]);

    // A value already in shared memory is copied in with `set_from`, not
    // shared: the source stays as it was.
    let src = SRef::new(&pool, &"from elsewhere".to_string()).unwrap();
    let g = src.read().unwrap();
    a.modify(|m, mut v| {
        m.set_from::<String>(v.as_mut().get_pin(1).unwrap(), &g)
            .unwrap();
    })
    .unwrap();
    drop(g);
    src.assign(&"later".to_string()).unwrap();
    assert_eq!(a.get_copy(1).unwrap(), "from elsewhere");
}

#[test]
fn relocking_a_header_mutex_is_an_error_not_reentrant() {
    // No reentrant mutex kind: a thread that locks a mutex it holds gets
    // `Deadlock` at once, instead of a second guard (or a hang).
    use mc::sync::{LockError, Mutex};
    let pool = pool();
    let q = SQueue::<u32, Mutex<u32>>::create(&pool, &Mutex::new(0)).unwrap();
    let h = q.header().unwrap();
    let mut g = h.lock().unwrap();
    *g += 1;
    assert_eq!(h.lock().err(), Some(LockError::Deadlock));
    assert_eq!(h.try_lock().err(), Some(LockError::Deadlock));
    // The structure's own lock is separate: it can be used meanwhile.
    q.push(&1).unwrap();
    drop(g);
    assert_eq!(*h.lock().unwrap(), 1);
}

/// Poisons a structure's data heap as a death inside a change does (a
/// panic inside a modification poisons it too).
fn poison<T: mc::Shared>(heap: &mc::Heap<T>) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = heap.modify(|_, _| panic!("a change cut short"));
    }));
    assert!(r.is_err());
}

#[test]
fn a_queue_clear_cut_short_is_finished_by_recover() {
    let pool = pool();
    let q = SQueue::<u32>::create(&pool, &()).unwrap();
    q.extend(&[1, 2, 3, 4, 5, 6]).unwrap();
    // `clear` cut short after the ring's size: elements without a ring.
    let (slots, head, len, _) = q.heap().copy().unwrap();
    q.heap().assign(&(slots, head, len, 0)).unwrap();
    assert!(is_inconsistent(q.len()));
    poison(q.heap());
    assert_eq!(q.recover().unwrap(), Some(mc::heap::Poison::Panicked));
    assert_eq!(q.len().unwrap(), 0);
    q.push(&7).unwrap();
    assert_eq!(q.pop_copy().unwrap(), Some(7));
}

#[test]
fn a_table_with_a_pinned_root_is_left_for_a_later_recover() {
    let pool = pool();
    let t = SHashtbl::<u32, String>::create(&pool, &()).unwrap();
    t.add(&1, &"one".to_string()).unwrap();
    poison(t.heap());
    // A poisoned heap takes no pin; one recovered alone does.
    assert!(t.heap().pin().is_err());
    assert!(t.heap().recover().unwrap().is_some());
    let pin = t.heap().pin().unwrap_or_else(|e| panic!("pin: {e}"));
    // The table's repair waits for the pin (it would work on a copy of
    // the root), and says nothing is wrong.
    assert_eq!(t.recover().unwrap(), None);
    drop(pin);
    assert_eq!(t.recover().unwrap(), None);
    assert_eq!(t.find_copy(&1).unwrap().as_deref(), Some("one"));
}
