use super::super::*;

fn pool() -> Pool {
    Pool::create(64 << 20).unwrap()
}

#[test]
fn a_part_pin_keeps_its_value_across_collections() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![String::from("first"); 100]).unwrap();
    let p = heap.pin_part::<String>(|v| &v[42]).unwrap();
    for i in 0..1000 {
        heap.modify(|m, mut v| {
            m.set_str(v.as_mut().get_pin(42).unwrap(), &format!("value {i}"))?;
            m.push(v, &"x".repeat(i % 50))
        })
        .unwrap()
        .unwrap();
        heap.gc().unwrap();
        assert_eq!(p.as_str(), "first");
    }
    assert!(heap.stats().unwrap().gc_runs >= 1000);
    assert_eq!(heap.copy().unwrap()[42], "value 999");
}

#[test]
fn a_part_pin_leaves_the_root_in_place() {
    let pool = pool();
    let heap = Heap::create(&pool, &(vec![7u64; 10_000], String::from("s"))).unwrap();
    let root = heap.header().root.load(Ordering::Acquire);
    let p = heap.pin_part::<String>(|r| &r.1).unwrap();
    let before = heap.stats().unwrap().live_bytes;
    heap.modify(|m, r| {
        let (v, s) = r.project();
        v.as_mut_slice()[3] = 8;
        m.set_str(s, "t")
    })
    .unwrap()
    .unwrap();
    // Modified in place: no copy of the 80 KB vector.
    assert_eq!(heap.header().root.load(Ordering::Acquire), root);
    assert!(heap.stats().unwrap().live_bytes < before + 1024);
    assert_eq!(p.as_str(), "s");
    let c = heap.copy().unwrap();
    assert_eq!((c.0[3], c.1.as_str()), (8, "t"));
}

#[test]
fn released_part_pins_are_collected() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![vec![1u32; 64]; 4]).unwrap();
    heap.gc().unwrap();
    let base = heap.stats().unwrap().live_bytes;
    // More part pins at once than the pin table has slots: no limit.
    let pins: Vec<_> = (0..1000)
        .map(|i| heap.pin_part::<Vec<u32>>(|v| &v[i % 4]).unwrap())
        .collect();
    assert_eq!(heap.stats().unwrap().pinned, 1000);
    heap.gc().unwrap();
    assert!(heap.stats().unwrap().live_bytes > base + 1000 * 256);
    assert!(pins.iter().all(|p| p.len() == 64 && p[63] == 1));
    drop(pins);
    assert_eq!(heap.stats().unwrap().pinned, 0);
    heap.gc().unwrap();
    assert_eq!(heap.stats().unwrap().live_bytes, base);
    assert!(heap.header().parts.load(Ordering::Acquire) == 0);
}

#[test]
fn part_pins_of_values_without_pointers_and_nested_ones() {
    let pool = pool();
    let v = (5u64, Some(vec![(String::from("a"), vec![1u8, 2])]));
    let heap = Heap::create(&pool, &v).unwrap();
    let n = heap.pin_part::<u64>(|r| &r.0).unwrap();
    let nested = heap
        .pin_part::<Option<Vec<(String, Vec<u8>)>>>(|r| &r.1)
        .unwrap();
    heap.assign(&(6, None)).unwrap();
    heap.gc().unwrap();
    assert_eq!(*n, 5);
    assert_eq!(Option::<Vec<(String, Vec<u8>)>>::from_repr(&nested), v.1);
}

#[test]
fn a_part_holding_a_lock_is_refused_and_other_parts_are_not() {
    let pool = pool();
    let heap = Heap::create(&pool, &(crate::sync::Mutex::new(1u64), String::from("x"))).unwrap();
    assert!(matches!(
        heap.pin_part::<crate::sync::Mutex<u64>>(|r| &r.0),
        Err(HeapError::PinWithLocks)
    ));
    // The heap holds a lock, but the part does not.
    let p = heap.pin_part::<String>(|r| &r.1).unwrap();
    heap.modify(|m, r| m.set_str(r.project().1, "y"))
        .unwrap()
        .unwrap();
    assert_eq!(p.as_str(), "x");
    // The lock is the heap's own, unchanged by the pin.
    *heap.read().unwrap().0.lock().unwrap() += 1;
    assert_eq!(*heap.copy().unwrap().0.lock().unwrap(), 2);
}

#[test]
fn destroy_waits_for_part_pins() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![1u8, 2, 3]).unwrap();
    let p = heap.pin_part::<Vec<u8>>(|v| v).unwrap();
    assert!(matches!(heap.clone().destroy(), Err(HeapError::Pinned(1))));
    drop(p);
    heap.destroy().unwrap();
}

#[test]
fn part_pins_in_a_full_pool_fail_cleanly() {
    let pool = Pool::create(1 << 20).unwrap();
    let heap = Heap::create(&pool, &vec![0u8; 1000]).unwrap();
    let mut pins = Vec::new();
    let err = loop {
        match heap.pin_part::<Vec<u8>>(|v| v) {
            Ok(p) => pins.push(p),
            Err(e) => break e,
        }
        assert!(pins.len() < 10_000);
    };
    assert!(
        matches!(err, HeapError::OutOfMemory { .. } | HeapError::Pool(_)),
        "{err}"
    );
    assert!(pins.iter().all(|p| p.len() == 1000));
    drop(pins);
    heap.gc().unwrap();
    // The room comes back.
    let p = heap.pin_part::<Vec<u8>>(|v| v).unwrap();
    assert_eq!(p.len(), 1000);
    assert_eq!(heap.copy().unwrap(), vec![0u8; 1000]);
}

#[test]
fn a_heap_with_part_pins_validates_and_a_damaged_list_does_not() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![String::from("v"); 3]).unwrap();
    let p = heap.pin_part::<String>(|v| &v[1]).unwrap();
    heap.validate().unwrap();
    let h = heap.header();
    let good = h.parts.load(Ordering::Acquire);
    h.parts.store(good + 8, Ordering::Release);
    assert!(matches!(heap.validate(), Err(HeapError::Corrupt(_))));
    h.parts.store(good, Ordering::Release);
    heap.validate().unwrap();
    assert_eq!(p.as_str(), "v");
}

fn node_of<V: Shared>(g: &PinGuard<'_, V>) -> usize {
    match g.hold {
        super::PinHold::Part(n) => n,
        super::PinHold::Slot(_) => panic!("a root pin"),
    }
}

#[test]
fn part_pins_inside_another_heaps_modification() {
    let pool = pool();
    let a = Heap::create(&pool, &0u64).unwrap();
    let b = Heap::create(&pool, &vec![5u64; 4]).unwrap();
    let arr = crate::structures::SArray::<u64, ()>::create(&pool, &(), &[1, 2, 3]).unwrap();
    let (p, q) = a
        .modify(|_, _| {
            let p = b.pin_part::<u64>(|v| &v[2]).map(|g| *g);
            let q = arr.get_pinned(1).map(|g| *g);
            (p, q)
        })
        .unwrap();
    assert_eq!((p.unwrap(), q.unwrap()), (5, 2));
    // The same heap is still refused.
    let r = b
        .modify(|_, _| b.pin_part::<u64>(|v| &v[0]).map(|g| *g))
        .unwrap();
    assert!(matches!(r, Err(HeapError::Reentrant)));
}

#[test]
fn a_cycle_in_the_list_poisons_instead_of_looping() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![String::from("v"); 3]).unwrap();
    let p1 = heap.pin_part::<String>(|v| &v[0]).unwrap();
    let p2 = heap.pin_part::<String>(|v| &v[1]).unwrap();
    let (n1, n2) = (node_of(&p1), node_of(&p2));
    drop((p1, p2));
    // Damage: the last node points back to the first.
    super::node(n1).next.store(n2, Ordering::Release);
    assert!(matches!(heap.validate(), Err(HeapError::Corrupt(_))));
    heap.gc().unwrap();
    assert!(matches!(heap.read(), Err(HeapError::Poisoned)));
    heap.destroy().unwrap();
}

#[test]
fn a_list_leading_outside_the_heap_is_not_followed() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![1u8]).unwrap();
    heap.header().parts.store(0x1000, Ordering::Release);
    assert!(matches!(heap.validate(), Err(HeapError::Corrupt(_))));
    assert_eq!(heap.stats().unwrap().pinned, 0);
    heap.clone().destroy().unwrap();
    assert!(matches!(heap.read(), Err(HeapError::Destroyed)));
}

#[test]
fn a_list_that_lists_what_the_root_reaches_is_corrupt() {
    let pool = pool();
    // The root's vector of words is shaped as a node (next, owner and
    // lock size, lock, blocks) that lists the array of the root's strings.
    let strings: Vec<String> = (0..8).map(|i| format!("string number {i}")).collect();
    let heap = Heap::create(&pool, &(vec![0u64; 5], strings.clone())).unwrap();
    let (words, arr) = {
        let g = heap.read().unwrap();
        (
            g.0.as_slice().as_ptr() as usize,
            g.1.as_slice().as_ptr() as usize,
        )
    };
    let pid = u64::from(crate::sync::futex::current_pid());
    heap.modify(|_, r| {
        r.project()
            .0
            .as_mut_slice()
            .copy_from_slice(&[0, pid, 0, 1, arr as u64]);
    })
    .unwrap();
    heap.header().parts.store(words, Ordering::Release);
    assert!(matches!(heap.validate(), Err(HeapError::Corrupt(_))));
    // A trusted heap is collected without losing what the root reaches:
    // the root is traced before the list is marked.
    heap.gc().unwrap();
    heap.modify(|m, _| {
        for _ in 0..64 {
            m.add(&"X".repeat(13)).unwrap();
        }
    })
    .unwrap();
    assert_eq!(heap.copy().unwrap().1, strings);
}

#[test]
fn failed_part_pins_are_collected() {
    let pool = Pool::create(2 << 20).unwrap();
    let heap = Heap::create(&pool, &(crate::sync::Mutex::new(vec![0u8; 100_000]), 1u64)).unwrap();
    for _ in 0..30 {
        let r = heap.pin_part::<crate::sync::Mutex<Vec<u8>>>(|r| &r.0);
        assert!(matches!(r, Err(HeapError::PinWithLocks)), "{:?}", r.err());
    }
    assert_eq!(*heap.pin_part::<u64>(|r| &r.1).unwrap(), 1);
}

#[test]
fn a_root_pin_keeps_its_value_across_collections() {
    let pool = pool();
    let heap = Heap::create(&pool, &vec![String::from("first"); 50]).unwrap();
    let p = heap.pin().unwrap();
    for i in 0..1000 {
        heap.modify(|m, mut v| m.set_str(v.as_mut().get_pin(i % 50).unwrap(), &format!("v{i}")))
            .unwrap()
            .unwrap();
        heap.gc().unwrap();
    }
    assert!(p.iter().all(|s| s == "first"));
    assert_eq!(heap.copy().unwrap()[49], "v999");
}
