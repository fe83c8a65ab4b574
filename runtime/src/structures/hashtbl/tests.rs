//! Tests of the `hashtbl` module.

use super::*;

/// The table's growth state: (new buckets, old buckets, moved).
fn growth(t: &SHashtbl<u64, u64>) -> (usize, usize, usize) {
    let g = t.parts.data.read().unwrap();
    let (new, old) = lists::<u64, u64>(&g);
    (new.1, old.1, moved_of::<u64, u64>(&g))
}

#[test]
fn growing_moves_a_few_buckets_per_modification() {
    let pool = Pool::create(16 << 20).unwrap();
    let t = SHashtbl::<u64, u64>::with_buckets(&pool, &(), 40).unwrap();
    // Two bindings of each even key, so that order within a key shows.
    for i in 0..80u64 {
        t.add(&(i / 2 * 2), &i).unwrap();
    }
    assert_eq!(growth(&t), (40, 0, 0));
    // The next addition starts growing: 81 new, empty buckets, and 40
    // old ones, which the next modifications move, two at a time.
    t.add(&1000, &0).unwrap();
    assert_eq!(growth(&t), (81, 40, 0));
    let mut steps = 0;
    while growth(&t).1 > 0 {
        let (_, _, before) = growth(&t);
        // Mid-growth, every binding is found, in order.
        for i in (0..80u64).step_by(2) {
            assert_eq!(t.find_all_copy(&i).unwrap(), [i + 1, i], "key {i}");
        }
        assert_eq!(t.find_copy(&1000).unwrap(), Some(0));
        assert_eq!(t.len().unwrap(), 81);
        assert_eq!(t.to_vec().unwrap().len(), 81);
        // A lookup moves nothing; `replace` of an existing binding does.
        t.find_copy(&3).unwrap();
        assert_eq!(growth(&t).2, before);
        t.replace(&1000, &0).unwrap();
        let (_, old, moved) = growth(&t);
        assert!(
            old == 0 || moved == before + MOVE_STEP,
            "{before} -> {moved}"
        );
        steps += 1;
    }
    // 40 old buckets, two per modification.
    assert_eq!(steps, 20);
    for i in (0..80u64).step_by(2) {
        assert_eq!(t.find_all_copy(&i).unwrap(), [i + 1, i]);
    }
    // Bindings added and removed mid-growth land where lookups find them.
    let t = SHashtbl::<u64, u64>::with_buckets(&pool, &(), 10).unwrap();
    for i in 0..21u64 {
        t.add(&i, &i).unwrap();
    }
    assert!(growth(&t).1 > 0);
    let mut model: Vec<Vec<u64>> = (0..21).map(|i| vec![i]).collect();
    for i in 0..21u64 {
        t.add(&i, &(i + 100)).unwrap();
        model[i as usize].push(i + 100);
        let had = model[20 - i as usize].pop().is_some();
        assert_eq!(t.remove(&(20 - i)).unwrap(), had);
    }
    for (i, want) in model.iter().enumerate() {
        let mut got = t.find_all_copy(&(i as u64)).unwrap();
        got.reverse();
        assert_eq!(&got, want, "key {i}");
    }
    assert_eq!(t.len().unwrap(), model.iter().map(Vec::len).sum::<usize>());
    // `clear` mid-growth leaves a grown, empty table.
    for i in 0..60u64 {
        t.add(&i, &i).unwrap();
    }
    t.clear().unwrap();
    assert_eq!(growth(&t).1, 0);
    assert!(t.is_empty().unwrap());
    t.add(&5, &5).unwrap();
    assert_eq!(t.to_vec().unwrap(), [(5, 5)]);
}

#[test]
fn a_bucket_that_cannot_move_stays_whole() {
    let pool = Pool::create(4 << 20).unwrap();
    let t = SHashtbl::<String, u64>::with_buckets(&pool, &(), 8).unwrap();
    let key = |i: u64| format!("{i:0>3000}");
    for i in 0..17 {
        t.add(&key(i), &i).unwrap();
    }
    let growing = |t: &SHashtbl<String, u64>| {
        let g = t.parts.data.read().unwrap();
        (lists::<String, u64>(&g).1 .1, moved_of::<String, u64>(&g))
    };
    assert_eq!(growing(&t), (8, 0));
    // Fill the pool, so that no key can be copied to a new bucket.
    let mut filler = Vec::new();
    while let Ok(h) = crate::Heap::create(&pool, &vec![0u8; 16 << 10]) {
        filler.push(h);
    }
    while let Ok(h) = crate::Heap::create(&pool, &vec![0u8; 8]) {
        filler.push(h);
    }
    for _ in 0..4 {
        // The modification fails or not; the table stays whole.
        let _ = t.replace(&key(3), &3);
        let (old, moved) = growing(&t);
        assert!(old == 8 && moved < 8, "moved {moved} of {old}");
        for i in 0..17 {
            assert_eq!(t.find_all_copy(&key(i)).unwrap(), [i], "key {i}");
        }
        assert_eq!(t.len().unwrap(), 17);
        assert_eq!(t.to_vec().unwrap().len(), 17);
    }
    // With room again, the growth ends.
    for h in filler {
        h.destroy().unwrap();
    }
    for _ in 0..8 {
        t.replace(&key(3), &3).unwrap();
    }
    assert_eq!(growing(&t), (0, 0));
    for i in 0..17 {
        assert_eq!(t.find_all_copy(&key(i)).unwrap(), [i], "key {i}");
    }
}

/// Poisons the table's data heap, as a death inside a change does (a
/// panic inside a modification poisons it too).
fn poison(t: &SHashtbl<u64, u64>) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = t.parts.data.modify(|_, _| panic!("a change cut short"));
    }));
    assert!(r.is_err());
}

/// The chain of key `k`, with its length.
fn chain_of(t: &SHashtbl<u64, u64>, k: u64) -> (usize, usize) {
    let g = t.parts.data.read().unwrap();
    let b = locate::<u64, u64>(&g, &k).unwrap().0;
    (b, chain::<u64, u64>(&g, b).map_or(0, |c| c.len()))
}

fn inconsistent<T: fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(StructureError::Inconsistent { .. }))
}

#[test]
fn a_removal_cut_short_is_finished() {
    let pool = Pool::create(16 << 20).unwrap();
    let t = SHashtbl::<u64, u64>::create(&pool, &()).unwrap();
    for v in 1..=4 {
        t.add(&5, &v).unwrap();
    }
    t.add(&6, &60).unwrap();
    let (b, len) = chain_of(&t, 5);
    assert_eq!(len, 4, "key 5 alone in its chain");
    // The oldest binding on its way out: two steps of the copies down
    // done, the second not recorded yet ([1, 2, 3, 4] -> [2, 3, 3, 4]).
    t.parts
        .data
        .modify(|m, mut t| {
            {
                let mut chain = chain_pin::<u64, u64>(m, t.as_mut(), b).unwrap();
                for j in 0..2 {
                    chain.as_mut().copy_down::<(u64, u64)>(j);
                }
            }
            let (.., journal) = t.project();
            let (jb, jlen, ji, at) = journal.project();
            *jlen.get_mut() = 4;
            *ji.get_mut() = 0;
            *at.get_mut() = 1; // (the step done, not recorded yet)
            *jb.get_mut() = b + 1;
        })
        .unwrap();
    // Until it is repaired, the table says so.
    assert!(inconsistent(t.find_copy(&5)));
    assert!(inconsistent(t.len()));
    assert!(inconsistent(t.add(&7, &7)));
    assert!(inconsistent(t.read().map(|_| ())));
    // Not poisoned (the journal was written through `heap`): `recover`
    // repairs all the same.
    assert_eq!(t.recover().unwrap(), None);
    assert_eq!(t.find_all_copy(&5).unwrap(), [4, 3, 2]);
    assert_eq!(t.find_copy(&6).unwrap(), Some(60));
    assert_eq!(t.len().unwrap(), 4);
    // And removals go on in order.
    assert!(t.remove(&5).unwrap());
    assert_eq!(t.find_all_copy(&5).unwrap(), [3, 2]);
}

#[test]
fn an_addition_cut_short_before_its_count_is_counted() {
    let pool = Pool::create(16 << 20).unwrap();
    let t = SHashtbl::<u64, u64>::create(&pool, &()).unwrap();
    t.add(&5, &1).unwrap();
    let (b, _) = chain_of(&t, 5);
    // An addition cut short after its binding, before its count.
    t.parts
        .data
        .modify(|m, t| {
            let chain = chain_pin::<u64, u64>(m, t, b).unwrap();
            m.push::<(u64, u64)>(chain, &(5, 2)).unwrap();
        })
        .unwrap();
    poison(&t);
    assert!(matches!(
        t.find_copy(&5),
        Err(StructureError::Heap(HeapError::Poisoned))
    ));
    assert_eq!(t.recover().unwrap(), Some(crate::heap::Poison::Panicked));
    assert_eq!(chain_of(&t, 5).1, 2);
    assert_eq!(t.find_all_copy(&5).unwrap(), [2, 1]);
    assert_eq!(t.len().unwrap(), 2);
}

#[test]
fn a_growth_cut_short_before_its_swap_is_undone() {
    let pool = Pool::create(16 << 20).unwrap();
    let t = SHashtbl::<u64, u64>::with_buckets(&pool, &(), 4).unwrap();
    for k in 0..8u64 {
        t.add(&k, &k).unwrap();
    }
    assert_eq!(growth(&t), (4, 0, 0));
    t.parts
        .data
        .modify(|_, t| {
            let (_, _, _, moved, _) = t.project();
            *moved.get_mut() = GROWING;
        })
        .unwrap();
    poison(&t);
    assert!(t.recover().unwrap().is_some());
    assert_eq!(growth(&t), (4, 0, 0));
    for k in 0..8u64 {
        assert_eq!(t.find_copy(&k).unwrap(), Some(k));
    }
    // The next addition grows the table.
    t.add(&8, &8).unwrap();
    assert_eq!(growth(&t).0, 9);
    for k in 0..9u64 {
        assert_eq!(t.find_copy(&k).unwrap(), Some(k));
    }
}

#[test]
fn a_removal_of_values_with_pointers_cut_short_is_finished() {
    let pool = Pool::create(16 << 20).unwrap();
    let t = SHashtbl::<String, String>::create(&pool, &()).unwrap();
    let k = "k".to_string();
    for v in ["one", "two", "three"] {
        t.add(&k, &v.to_string()).unwrap();
    }
    let b = {
        let g = t.parts.data.read().unwrap();
        locate::<String, String>(&g, &k).unwrap().0
    };
    // The oldest binding on its way out: the chain's fresh array (the
    // removed binding last) in place, not cut yet.
    t.parts
        .data
        .modify(|m, mut t| {
            let old = {
                let chain = chain_pin::<String, String>(m, t.as_mut(), b).unwrap();
                let old = chain.raw_parts().0;
                // SAFETY: the array goes to `replace_array` of `chain` at once.
                let array = unsafe { m.array_without(&chain, 0).unwrap() };
                // SAFETY: `array_without` of `chain` just now, in this heap.
                unsafe { m.replace_array(chain, array).unwrap() };
                old
            };
            let (.., journal) = t.project();
            let (jb, jlen, ji, at) = journal.project();
            *jlen.get_mut() = 3;
            *ji.get_mut() = 0;
            *at.get_mut() = old;
            *jb.get_mut() = b + 1;
        })
        .unwrap();
    // The heap as left passes validation: no value is in two places.
    t.heap().validate().unwrap();
    assert!(matches!(
        t.find_copy(&k),
        Err(StructureError::Inconsistent { .. })
    ));
    assert_eq!(t.recover().unwrap(), None);
    assert_eq!(t.find_all_copy(&k).unwrap(), ["three", "two"]);
    assert_eq!(t.len().unwrap(), 2);
    t.heap().validate().unwrap();
}

#[test]
fn a_table_whose_heap_alone_was_recovered_is_repaired_by_its_recover() {
    let pool = Pool::create(16 << 20).unwrap();
    let t = SHashtbl::<u64, u64>::with_buckets(&pool, &(), 1).unwrap();
    t.add(&5, &50).unwrap();
    let (b, _) = chain_of(&t, 5);
    // An addition of 7 cut short before its count; the heap alone
    // recovered.
    t.parts
        .data
        .modify(|m, t| {
            let chain = chain_pin::<u64, u64>(m, t, b).unwrap();
            m.push::<(u64, u64)>(chain, &(7, 70)).unwrap();
        })
        .unwrap();
    poison(&t);
    assert!(t.heap().recover().unwrap().is_some());
    assert_eq!(t.len().unwrap(), 1, "not counted yet");
    assert_eq!(t.recover().unwrap(), None);
    assert_eq!(t.len().unwrap(), 2, "counted by the table's recover");
    t.add(&9, &90).unwrap();
    assert_eq!(t.find_copy(&9).unwrap(), Some(90));
    assert_eq!(t.find_copy(&7).unwrap(), Some(70));
    assert_eq!(t.len().unwrap(), 3);
}

#[test]
fn a_clear_cut_short_is_finished() {
    let pool = Pool::create(16 << 20).unwrap();
    let t = SHashtbl::<u64, u64>::with_buckets(&pool, &(), 1024).unwrap();
    for k in 0..1000u64 {
        t.add(&k, &k).unwrap();
    }
    // A clear cut short after its first two segments.
    t.parts
        .data
        .modify(|m, t| {
            let (buckets, _, _, moved, _) = t.project();
            *moved.get_mut() = CLEARING;
            let (segments, _) = buckets.project();
            for segment in segments.iter_pin().take(2) {
                m.truncate(segment, 0);
            }
        })
        .unwrap();
    assert!(inconsistent(t.len()));
    poison(&t);
    assert!(t.recover().unwrap().is_some());
    assert_eq!(t.len().unwrap(), 0);
    assert_eq!(t.find_copy(&999).unwrap(), None);
    t.add(&3, &3).unwrap();
    assert_eq!(t.to_vec().unwrap(), [(3, 3)]);
}

#[test]
fn removals_need_no_room_for_copies_of_the_values() {
    let pool = Pool::create(4 << 20).unwrap();
    let t = SHashtbl::<String, String>::create(&pool, &()).unwrap();
    let k = "k".to_string();
    let big = "x".repeat(200 << 10);
    for _ in 0..15 {
        t.add(&k, &big).unwrap();
    }
    // Copies of the chain's values would take 3 MB more; the removal moves
    // them instead.
    assert!(t.remove(&k).unwrap());
    assert_eq!(t.find_all(&k).unwrap().len(), 14);
}

#[test]
fn replacing_values_of_several_words_keeps_the_chain_s_array() {
    let pool = Pool::create(16 << 20).unwrap();
    let t = SHashtbl::<u64, String>::with_buckets(&pool, &(), 64).unwrap();
    for k in 0..3u64 {
        t.add(&k, &format!("v{k}")).unwrap();
    }
    t.add(&1, &"hidden".to_string()).unwrap();
    let chain_of_1 = || {
        let g = t.parts.data.read().unwrap();
        let b = locate::<u64, String>(&g, &1).unwrap().0;
        chain::<u64, String>(&g, b).unwrap().raw_parts().0
    };
    let before = chain_of_1();
    t.replace(&1, &"new".to_string()).unwrap();
    assert_eq!(
        before,
        chain_of_1(),
        "the value is replaced in place (through the heap's journal)"
    );
    assert_eq!(t.find_all_copy(&1).unwrap(), ["new", "v1"]);
    assert_eq!(t.find_copy(&2).unwrap().as_deref(), Some("v2"));
    assert_eq!(t.len().unwrap(), 4);
    t.gc().unwrap();
    t.heap().validate().unwrap();
}

#[test]
fn chains_grow_from_room_for_two_bindings() {
    let pool = Pool::create(16 << 20).unwrap();
    let t = SHashtbl::<u64, u64>::with_buckets(&pool, &(), 64).unwrap();
    let room = || {
        let g = t.parts.data.read().unwrap();
        let b = locate::<u64, u64>(&g, &1).unwrap().0;
        chain::<u64, u64>(&g, b).unwrap().raw_parts().2
    };
    t.add(&1, &1).unwrap();
    assert_eq!(room(), 2, "most chains hold one or two bindings");
    t.add(&1, &2).unwrap();
    assert_eq!(room(), 2);
    t.add(&1, &3).unwrap();
    assert_eq!(room(), 4, "then the room doubles");
    assert_eq!(t.find_all_copy(&1).unwrap(), [3, 2, 1]);
}

#[test]
fn replacing_values_larger_than_the_journal_keeps_the_chain_s_array() {
    let pool = Pool::create(64 << 20).unwrap();
    let t = SHashtbl::<String, [String; 80]>::with_buckets(&pool, &(), 2).unwrap();
    assert!(size_of::<<[String; 80] as Shared>::Repr>() > crate::heap::JOURNAL_BYTES);
    let val = |tag: &str| -> [String; 80] { std::array::from_fn(|i| format!("{tag}{i}")) };
    let key = |k: u64| format!("k{k}");
    for k in 0..6u64 {
        t.add(&key(k), &val(&format!("a{k}-"))).unwrap();
    }
    t.add(&key(3), &val("hidden-")).unwrap();
    let chain_of_3 = || {
        let g = t.parts.data.read().unwrap();
        let b = locate::<String, [String; 80]>(&g, &key(3)).unwrap().0;
        chain::<String, [String; 80]>(&g, b).unwrap().raw_parts().0
    };
    let before = chain_of_3();
    t.replace(&key(3), &val("new-")).unwrap();
    assert_eq!(
        before,
        chain_of_3(),
        "the value is replaced in place (through a block the journal names)"
    );
    assert_eq!(t.find_all_copy(&key(3)).unwrap(), [val("new-"), val("a3-")]);
    for k in [0u64, 1, 2, 4, 5] {
        assert_eq!(t.find_copy(&key(k)).unwrap(), Some(val(&format!("a{k}-"))));
    }
    t.gc().unwrap();
    t.heap().validate().unwrap();
    assert!(t.remove(&key(3)).unwrap());
    assert_eq!(t.find_copy(&key(3)).unwrap(), Some(val("a3-")));
    t.gc().unwrap();
    t.heap().validate().unwrap();
}
