use super::*;
use crate::value::SharedVec;

fn pool() -> Pool {
    Pool::create(64 << 20).unwrap()
}

#[test]
fn create_read_copy() {
    let pool = pool();
    let v = (
        String::from("hello"),
        vec![1u64, 2, 3],
        Some(Box::new(7i32)),
    );
    let heap = Heap::create(&pool, &v).unwrap();
    {
        let g = heap.read().unwrap();
        assert_eq!(g.0.as_str(), "hello");
        assert_eq!(g.1.as_slice(), &[1, 2, 3]);
        assert_eq!(**g.2.as_ref().unwrap(), 7);
    }
    assert_eq!(heap.copy().unwrap(), v);
}

#[test]
fn modify_in_place_and_gc() {
    let pool = pool();
    let heap = Heap::create(&pool, &(String::new(), 0u64)).unwrap();
    for i in 0..10_000u64 {
        heap.modify(|m, root| {
            let (s, n) = root.project();
            *n.get_mut() = i;
            m.set(s, &format!("value number {i}"))
        })
        .unwrap()
        .unwrap();
    }
    let st = heap.stats().unwrap();
    assert!(st.gc_runs > 0, "{st:?}");
    heap.gc().unwrap();
    let st = heap.stats().unwrap();
    assert!(st.live_bytes < 256, "{st:?}");
    assert_eq!(
        heap.copy().unwrap(),
        ("value number 9999".to_string(), 9999)
    );
}

#[test]
fn reentrancy_is_an_error() {
    let pool = pool();
    let heap = Heap::create(&pool, &1u32).unwrap();
    let g = heap.read().unwrap();
    assert!(matches!(heap.modify(|_, _| ()), Err(HeapError::Reentrant)));
    assert!(matches!(heap.read(), Err(HeapError::Reentrant)));
    drop(g);
    let other = Heap::create(&pool, &2u32).unwrap();
    heap.modify(|_, _| {
        assert!(matches!(other.modify(|_, _| ()), Err(HeapError::Reentrant)));
        assert!(matches!(heap.read(), Err(HeapError::Reentrant)));
        assert_eq!(other.copy().unwrap(), 2);
    })
    .unwrap();
}

#[test]
fn pins_keep_old_values() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![String::from("old"); 3]).unwrap();
    let p = heap.pin().unwrap();
    heap.assign(&vec![String::from("new")]).unwrap();
    heap.modify(|m, root| m.push(root, &String::from("more")))
        .unwrap()
        .unwrap();
    for _ in 0..3 {
        heap.gc().unwrap();
    }
    assert_eq!(p.len(), 3);
    assert!(p.iter().all(|s| s == "old"));
    assert_eq!(heap.stats().unwrap().pinned, 1);
    drop(p);
    assert_eq!(
        heap.copy().unwrap(),
        vec!["new".to_string(), "more".to_string()]
    );
    // A modification while the current value is pinned works on a copy.
    let p = heap.pin().unwrap();
    heap.modify(|m, root| m.set_str(root.get_pin(0).unwrap(), "changed"))
        .unwrap()
        .unwrap();
    assert_eq!(p[0], "new");
    drop(p);
    assert_eq!(heap.copy().unwrap()[0], "changed");
}

#[test]
fn the_pin_count_follows_the_pins() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![1u64, 2]).unwrap();
    let in_use = || heap.header().pins_in_use.load(Ordering::Acquire);
    assert_eq!(in_use(), 0);
    // Two pins of the same value share a slot; a pin of another value
    // takes a second one.
    let a = heap.pin().unwrap();
    let b = heap.pin().unwrap();
    assert_eq!(in_use(), 1);
    heap.modify(|m, root| m.push(root, &3u64)).unwrap().unwrap();
    let c = heap.pin().unwrap();
    assert_eq!(in_use(), 2);
    // With pins, a modification still works on a copy.
    heap.modify(|m, root| m.push(root, &4u64)).unwrap().unwrap();
    assert_eq!((a.len(), b.len(), c.len()), (2, 2, 3));
    drop((a, b));
    assert_eq!(in_use(), 1);
    drop(c);
    assert_eq!(in_use(), 0);
    // Without pins, modifications change the root in place.
    let root = heap.header().root.load(Ordering::Acquire);
    heap.modify(|m, root| m.push(root, &5u64)).unwrap().unwrap();
    assert_eq!(heap.header().root.load(Ordering::Acquire), root);
    assert_eq!(heap.copy().unwrap(), vec![1, 2, 3, 4, 5]);
}

#[test]
fn swap_and_add() {
    let pool = pool();
    let heap = Heap::create(&pool, &(String::from("one"), String::from("two"))).unwrap();
    heap.modify(|m, root| {
        let (a, b) = root.project();
        m.swap(a, b)
    })
    .unwrap()
    .unwrap();
    assert_eq!(heap.copy().unwrap(), ("two".into(), "one".into()));
    heap.modify(|m, root| -> Result<(), HeapError> {
        let (a, _) = root.project();
        let fresh = m.add(&String::from("three"))?;
        m.swap(a, fresh)
    })
    .unwrap()
    .unwrap();
    assert_eq!(heap.copy().unwrap(), ("three".into(), "one".into()));
}

#[test]
fn descriptors_types_and_destroy() {
    let pool = pool();
    let heap = Heap::create(&pool, &String::from("x")).unwrap();
    let d = heap.descr();
    let again = d.open().unwrap();
    assert_eq!(again.copy().unwrap(), "x");
    heap.set_pool_root();
    assert_eq!(
        Heap::<String>::open_root(&pool).unwrap().copy().unwrap(),
        "x"
    );
    assert!(matches!(
        Heap::<u64>::open_root(&pool),
        Err(HeapError::WrongType { .. })
    ));
    heap.destroy().unwrap();
    assert!(matches!(again.copy(), Err(HeapError::Destroyed)));
    assert!(matches!(d.open(), Err(HeapError::Destroyed)));
    assert!(matches!(
        Heap::<String>::open_root(&pool),
        Err(HeapError::NoRootHeap)
    ));
    // Only the destroyed heap's header page stays, as a tombstone.
    assert_eq!(pool.stats().used, PAGE_SIZE);
}

#[test]
fn out_of_memory_is_an_error() {
    let pool = Pool::create(1 << 20).unwrap();
    let heap = Heap::create(&pool, &Vec::<u8>::new()).unwrap();
    let err = heap.assign(&vec![0u8; 4 << 20]).unwrap_err();
    assert!(matches!(err, HeapError::OutOfMemory { .. }), "{err}");
    assert_eq!(heap.copy().unwrap(), Vec::<u8>::new());
    // The heap still works.
    heap.assign(&vec![1u8; 1000]).unwrap();
    assert_eq!(heap.copy().unwrap().len(), 1000);
    let err = Heap::create(&pool, &vec![0u8; 4 << 20]).unwrap_err();
    assert!(matches!(err, HeapError::OutOfMemory { .. }), "{err}");
}

#[test]
fn push_pop() {
    let pool = pool();
    let heap = Heap::create(&pool, &Vec::<String>::new()).unwrap();
    heap.modify(|m, mut root| -> Result<(), HeapError> {
        for i in 0..1000 {
            m.push(root.as_mut(), &i.to_string())?;
        }
        assert_eq!(m.pop::<String>(root.as_mut()).as_deref(), Some("999"));
        m.truncate(root, 500);
        Ok(())
    })
    .unwrap()
    .unwrap();
    let v = heap.copy().unwrap();
    assert_eq!(v.len(), 500);
    assert_eq!(v[499], "499");
}

#[test]
fn places_outside_the_heap_are_refused() {
    use crate::value::{SharedOption, SharedString};
    let pool = pool();
    let heap = Heap::create(&pool, &Some(String::from("in the heap"))).unwrap();
    // A local, pointer-free value of a pointer-carrying type.
    let mut local = Box::pin(SharedOption::<SharedString>::None);
    let r = heap.modify(|m, _| m.set::<Option<String>>(local.as_mut(), &Some("x".into())));
    assert!(matches!(r, Ok(Err(HeapError::ForeignPlace))), "{r:?}");
    let r = heap.modify(|m, root| m.swap(root, local.as_mut()));
    assert!(matches!(r, Ok(Err(HeapError::ForeignPlace))), "{r:?}");
    assert!(local.is_none());
    // A place in another heap.
    let other = Heap::create(&pool, &Some(String::from("other"))).unwrap();
    let r = heap.modify(|m, mine| {
        other
            .modify(|_, theirs| m.swap(mine, theirs))
            .map(|r| r.is_err())
    });
    assert!(
        matches!(r, Ok(Err(HeapError::Reentrant))),
        "nested modifications are refused"
    );
    assert_eq!(heap.copy().unwrap().as_deref(), Some("in the heap"));
    assert_eq!(other.copy().unwrap().as_deref(), Some("other"));
}

#[test]
fn destroy_waits_for_pins_and_leaves_a_tombstone() {
    let pool = pool();
    let heap = Heap::create(&pool, &String::from("pinned")).unwrap();
    let p = heap.pin().unwrap();
    assert!(matches!(heap.clone().destroy(), Err(HeapError::Pinned(1))));
    assert_eq!(p.as_str(), "pinned");
    drop(p);
    let d = heap.descr();
    heap.clone().destroy().unwrap();
    // The header page is never reused: new heaps go elsewhere.
    let again = Heap::create(&pool, &String::from("new")).unwrap();
    assert_ne!(again.descr().addr, d.addr);
    assert!(matches!(heap.copy(), Err(HeapError::Destroyed)));
    assert!(matches!(d.open(), Err(HeapError::Destroyed)));
}

#[test]
fn forged_descriptors_are_refused() {
    let pool = pool();
    // A value whose bytes look like a heap header, at a page boundary.
    let mut words = vec![0u64; 4096];
    words[0] = HEAP_MAGIC;
    let heap = Heap::create(&pool, &words).unwrap();
    let addr = {
        let g = heap.read().unwrap();
        g.as_slice().as_ptr().addr()
    };
    for a in [
        addr,
        addr.next_multiple_of(PAGE_SIZE),
        heap.hdr + 8,
        pool.base(),
    ] {
        let forged = HeapDescr::<String> {
            pool: pool.name().to_owned(),
            addr: a as u64,
            id: 1,
            fingerprint: String::FINGERPRINT,
            _t: PhantomData,
        };
        assert!(matches!(forged.open(), Err(HeapError::NotAHeap)), "{a:#x}");
    }
    words.clear();
}

#[test]
fn heaps_with_locks_refuse_pins() {
    let pool = pool();
    let heap = Heap::create(&pool, &(crate::sync::Mutex::new(0u64), 1u8)).unwrap();
    assert!(matches!(heap.pin(), Err(HeapError::PinWithLocks)));
    {
        let g = heap.read().unwrap();
        *g.0.lock().unwrap() += 1;
    }
    let plain = Heap::create(&pool, &Some(0u64)).unwrap();
    let _p = plain.pin().unwrap();
    // A lock copied in later makes the heap refuse new pins too.
    let later = Heap::create(&pool, &Vec::<crate::sync::Mutex<u8>>::new()).unwrap();
    let p = later.pin().unwrap();
    drop(p);
    later
        .modify(|m, v| m.push(v, &crate::sync::Mutex::new(1u8)))
        .unwrap()
        .unwrap();
    assert!(matches!(later.pin(), Err(HeapError::PinWithLocks)));
    assert_eq!(*heap.copy().unwrap().0.lock().unwrap(), 1);
}

/// The address of the root value's `SharedVec` fields (ptr, len, cap), for tests
/// that damage a heap as a process that ignores its protocol could.
fn vec_fields<T: Shared<Repr = SharedVec<R>>, R>(heap: &Heap<T>) -> *mut usize {
    let g = heap.read().unwrap();
    std::ptr::from_ref::<SharedVec<R>>(&*g)
        .cast::<usize>()
        .cast_mut()
}

#[test]
fn validation_checks_a_vectors_capacity() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec!["a".to_string(), "b".to_string()]).unwrap();
    heap.validate().unwrap();
    let f = vec_fields(&heap);
    // SAFETY: the root `SharedVec`'s (ptr, len, cap) words in the heap, written
    // while no guard is alive.
    unsafe {
        // No room for its length: the collector would not keep the array.
        f.add(2).write(0);
        assert!(matches!(heap.validate(), Err(HeapError::Corrupt(_))));
        // More room than its block: a push would write past it.
        f.add(2).write(1 << 20);
        assert!(matches!(heap.validate(), Err(HeapError::Corrupt(_))));
        f.add(2).write(2);
    }
    heap.validate().unwrap();
    assert_eq!(heap.copy().unwrap(), ["a", "b"]);
}

#[test]
fn validate_never_collects_unchecked_values() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![1u64, 2, 3]).unwrap();
    let h = heap.header();
    // A writer that died (a thread that never unlocks counts as one) with
    // a repair pending, and a length that points far outside the heap.
    let lock = &h.lock;
    std::thread::scope(|s| {
        s.spawn(|| {
            // Taken and never released: the thread ends holding it.
            let _ = lock.write(None).unwrap();
        });
    });
    h.dirty.store(DIRTY_ALLOC, Ordering::Release);
    let f = vec_fields(&heap);
    // SAFETY: as in `validation_checks_a_vectors_capacity`.
    unsafe {
        f.add(1).write(1 << 40);
        f.add(2).write(1 << 40);
    }
    // The check reports the damage; nothing follows the bad length.
    assert!(matches!(heap.validate(), Err(HeapError::Corrupt(_))));
    // A writer repairs only after checking: it poisons instead.
    assert!(matches!(heap.modify(|_, _| ()), Err(HeapError::Poisoned)));
    assert_eq!(heap.poisoned().unwrap(), Some(Poison::Died));
    assert!(matches!(heap.recover(), Err(HeapError::Corrupt(_))));
    heap.destroy().unwrap();
}

#[test]
fn scavenging_frees_only_heaps_whose_header_matches_the_owner_table() {
    let pool = pool();
    let used0 = pool.stats().used;
    let heap = Heap::create(&pool, &vec![7u64; 10_000]).unwrap();
    let used = pool.stats().used;
    let h = heap.header();
    // Unpublished by a creator that is gone (no pid is that large)...
    h.creating
        .store(crate::sync::futex::TID_MASK, Ordering::Release);
    // ...but the header says another tag: a stale header in a page that
    // was handed to another heap. Nothing is freed.
    let tag = h.tag;
    // SAFETY: the header is this test's; `tag` is a plain field.
    unsafe { std::ptr::addr_of!(h.tag).cast_mut().write(tag ^ 1) };
    assert_eq!(recovery::scavenge(&pool), 0);
    assert_eq!(pool.stats().used, used);
    // SAFETY: as above.
    unsafe { std::ptr::addr_of!(h.tag).cast_mut().write(tag) };
    // The header matches: the dead creator's heap goes back, header too.
    assert_eq!(recovery::scavenge(&pool), used - used0);
    assert_eq!(pool.stats().used, used0);
}

/// A death in the middle of a replacement of a value of several words
/// (simulated: the store stops part way, and the heap is poisoned as a
/// death leaves it): `recover` writes the whole new value.
#[test]
fn a_replacement_cut_short_is_redone_by_recover() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![String::from("old"), String::from("kept")]).unwrap();
    for cut in [0, 8, 16] {
        let new = format!("a longer replacement, cut after {cut} bytes");
        heap.modify(|m, mut v| {
            let place = v.as_mut().get_pin(0).unwrap();
            journal::died_after::set(cut);
            m.set(place, &new)
        })
        .unwrap()
        .unwrap();
        let h = heap.header();
        assert!(h.journal.pending().is_some());
        h.poisoned.store(POISON_DIED, Ordering::Release);
        assert!(matches!(heap.read(), Err(HeapError::Poisoned)));
        assert_eq!(heap.recover().unwrap(), Some(Poison::Died));
        assert_eq!(heap.copy().unwrap(), vec![new, String::from("kept")]);
        assert_eq!(h.journal.pending(), None);
        heap.validate().unwrap();
    }
}

/// Sets the first string of `heap` to `new` with the store stopped before
/// any byte of the place, the journal committed (as a death leaves it).
fn set_first_cut_short(heap: &Heap<Vec<String>>, new: &str) {
    heap.modify(|m, mut v| {
        let place = v.as_mut().get_pin(0).unwrap();
        journal::died_after::set(0);
        m.set(place, &String::from(new))
    })
    .unwrap()
    .unwrap();
}

/// A journal naming a place outside the heap is refused, not written.
#[test]
fn a_journal_outside_the_heap_is_corrupt() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![String::from("a")]).unwrap();
    let other = Heap::create(&pool, &vec![String::from("b")]).unwrap();
    let elsewhere = other.read().unwrap().as_slice().as_ptr().addr();
    set_first_cut_short(&heap, "new");
    let h = heap.header();
    h.journal
        .place
        .store((elsewhere - pool.base()) as u64, Ordering::Release);
    h.poisoned.store(POISON_DIED, Ordering::Release);
    assert!(matches!(heap.recover(), Err(HeapError::Corrupt(_))));
    assert_eq!(other.copy().unwrap(), vec![String::from("b")]);
}

/// A journal is redone only on a heap poisoned by a death (which is what
/// leaves one pending); on a heap poisoned otherwise it is forgotten.
#[test]
fn a_journal_is_redone_only_after_a_death() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![String::from("old")]).unwrap();
    set_first_cut_short(&heap, "new");
    let h = heap.header();
    assert!(h.journal.pending().is_some());
    h.poisoned.store(POISON_PANIC, Ordering::Release);
    assert_eq!(heap.recover().unwrap(), Some(Poison::Panicked));
    assert_eq!(h.journal.pending(), None);
    assert_eq!(heap.copy().unwrap(), vec![String::from("old")]);
}

/// An exclusive lock of a heap in a pool this process knows is cut short
/// fails before it touches the heap: no repair of the allocator's state
/// runs over the zero pages that stand in for the cut.
#[test]
fn a_modification_in_a_cut_pool_repairs_nothing() {
    let pool = Pool::create(8 << 20).unwrap();
    let heap = Heap::create(&pool, &vec![7u64; 4096]).unwrap();
    let h = heap.header();
    // As a holder killed while the allocator was at work leaves it.
    h.repair.store(1, Ordering::Release);
    // Another process cuts the pool right after the heap's header.
    let keep = (heap.hdr + h.header_bytes - pool.base()) as u64;
    assert!(h.root.load(Ordering::Acquire) >= heap.hdr + h.header_bytes);
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{}", pool.name()))
        .unwrap()
        .set_len(keep)
        .unwrap();
    // A read past the cut faults; the fault is contained and flagged.
    let _ = heap.copy();
    assert!(pool.is_truncated());
    let r = heap.modify(|_, _| ());
    assert!(matches!(r, Err(HeapError::Pool(_))), "{r:?}");
    assert_eq!(
        (
            h.poisoned.load(Ordering::Acquire),
            h.repair.load(Ordering::Acquire)
        ),
        (0, 1),
        "the header was left as it was"
    );
}

/// A value larger than the journal, replaced or exchanged with another, is
/// copied into a fresh block first, which the journal names: a death part
/// way is redone from the block by `recover`.
#[test]
fn a_large_replacement_or_exchange_cut_short_is_redone_from_its_block() {
    type Big = [u64; 160];
    assert!(size_of::<Big>() > JOURNAL_BYTES);
    let pool = pool();
    let big = |x: u64| -> Big { std::array::from_fn(|i| x * 1000 + i as u64) };
    let heap = Heap::create(&pool, &vec![big(1), big(2)]).unwrap();
    let h = heap.header();
    // A modification cut short as `change` leaves it, then recovered. (A
    // death ends the modification there; this one goes on to its end,
    // where a collection due would free the block the journal names:
    // none is, checked.)
    type Change<'a> = &'a dyn Fn(&Mutator<'_>, Pin<&mut SharedVec<Big>>) -> Result<(), HeapError>;
    let cut_short = |change: Change<'_>| {
        let runs = heap.stats().unwrap().gc_runs;
        heap.modify(|m, v| change(m, v)).unwrap().unwrap();
        assert_eq!(heap.stats().unwrap().gc_runs, runs, "no collection ran");
        let p = h.journal.pending().expect("a journal left pending");
        assert!(p.source.is_some(), "the new bytes are in a block");
        h.poisoned.store(POISON_DIED, Ordering::Release);
        assert_eq!(heap.recover().unwrap(), Some(Poison::Died));
        assert_eq!(h.journal.pending(), None);
        heap.validate().unwrap();
    };
    for cut in [0, 8, 1000] {
        cut_short(&|m, mut v| {
            journal::died_after::set(cut);
            m.set(v.as_mut().get_pin(0).unwrap(), &big(3 + cut as u64))
        });
        assert_eq!(heap.copy().unwrap(), vec![big(3 + cut as u64), big(2)]);
    }
    cut_short(&|m, v| {
        let mut both = v.iter_pin();
        let (a, b) = (both.next().unwrap(), both.next().unwrap());
        journal::died_after::set(16);
        m.swap(a, b)
    });
    assert_eq!(heap.copy().unwrap(), vec![big(2), big(1003)]);
    // Whole, both leave nothing pending.
    heap.modify(|m, mut v| m.set(v.as_mut().get_pin(1).unwrap(), &big(9)))
        .unwrap()
        .unwrap();
    assert_eq!(h.journal.pending(), None);
    assert_eq!(heap.copy().unwrap(), vec![big(2), big(9)]);
    heap.gc().unwrap();
    heap.validate().unwrap();
}

/// A journal whose block lies outside the heap, or over the place it
/// names, is refused, not copied.
#[test]
fn a_journal_block_outside_the_heap_or_over_its_place_is_corrupt() {
    let pool = pool();
    let other = Heap::create(&pool, &vec![[7u64; 160]]).unwrap();
    let elsewhere = other.read().unwrap().as_slice().as_ptr().addr();
    for bad in [elsewhere, 0] {
        let heap = Heap::create(&pool, &vec![[1u64; 160]]).unwrap();
        heap.modify(|m, mut v| {
            journal::died_after::set(0);
            m.set(v.as_mut().get_pin(0).unwrap(), &[2u64; 160])
        })
        .unwrap()
        .unwrap();
        let h = heap.header();
        let p = h.journal.pending().unwrap();
        // Elsewhere, or the place itself.
        let bad = if bad == 0 { p.place } else { bad - pool.base() };
        h.journal.source.store(bad as u64, Ordering::Release);
        h.poisoned.store(POISON_DIED, Ordering::Release);
        assert!(matches!(heap.recover(), Err(HeapError::Corrupt(_))));
        assert_eq!(other.copy().unwrap(), vec![[7u64; 160]]);
    }
}

/// Replacements and exchanges of large values in one modification reuse
/// one scratch block for their new bytes: thousands of them need no more
/// room than one (the pool here holds 16 MiB; 8,192 blocks of 4 KiB would
/// not fit).
#[test]
fn many_large_replacements_and_exchanges_in_one_modification_fit() {
    let pool = Pool::create(16 << 20).unwrap();
    let heap = Heap::create(&pool, &vec![[0u64; 512], [1u64; 512]]).unwrap();
    heap.modify(|m, mut v| {
        for i in 0..8192u64 {
            m.set(v.as_mut().get_pin(0).unwrap(), &[i; 512])?;
        }
        let mut p: Vec<_> = v.iter_pin().collect();
        for _ in 0..8191 {
            let (lo, hi) = p.split_at_mut(1);
            m.swap(lo[0].as_mut(), hi[0].as_mut())?;
        }
        Ok::<_, HeapError>(())
    })
    .unwrap()
    .unwrap();
    assert_eq!(heap.copy().unwrap(), vec![[1u64; 512], [8191u64; 512]]);
    heap.gc().unwrap();
    heap.validate().unwrap();
}
