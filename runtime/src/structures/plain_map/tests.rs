//! Tests of the `plain_map` module.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use proptest::prelude::*;

use super::*;
use crate::sync::raw::LockError;

fn pool() -> Pool {
    Pool::create(16 << 20).unwrap()
}

/// Checks what every writer keeps true between changes: each group's
/// overflow count is the number of keys stored past it whose probe passed
/// it, the length is the number of tags, every tag is its key's, no key is
/// there twice, no group is being written and no journal is pending.
fn check<K: Pod + Send + std::fmt::Debug, V: Pod + Send>(m: &PlainMap<K, V>) {
    let (h, _, groups) = m.parts();
    let n = m.geometry.groups;
    let mut counts = vec![0u64; n as usize];
    let mut len = 0;
    let mut keys = std::collections::HashSet::new();
    for g in 0..n {
        let group = m.group(groups, g);
        let tags = group.meta[1].load(Ordering::Relaxed);
        assert_eq!(tags & !TAG_BIT & !(0x7f * BYTE_ONES), 0);
        assert_eq!(group.meta[0].load(Ordering::Relaxed) & WRITING, 0);
        for s in 0..SLOTS {
            let tag = (tags >> (8 * s)) as u8;
            if tag == 0 {
                continue;
            }
            assert_eq!(tag & 0x80, 0x80, "a tag without its bit");
            len += 1;
            let key = read_value::<K>(m.entry(group, s).0);
            let p = m.probe(&key);
            assert_eq!(p.tag, tag, "the tag of {key:?}");
            assert!(
                keys.insert(bytemuck::bytes_of(&key).to_vec()),
                "{key:?} twice"
            );
            let mut x = p.home;
            while x != g {
                counts[x as usize] += 1;
                x = m.next(x);
            }
        }
    }
    for g in 0..n {
        let h = m.group(groups, g).meta[0].load(Ordering::Relaxed);
        assert_eq!(
            overflow(h),
            counts[g as usize].min(OVERFLOW_MAX),
            "group {g}"
        );
    }
    assert_eq!(h.len.load(Ordering::Relaxed), len);
    assert_eq!(h.journal.load(Ordering::Relaxed), 0);
}

#[test]
fn keys_past_their_home_are_found_replaced_and_removed() {
    let pool = pool();
    // 60 keys in 10 groups of 8 slots: many live past their home.
    let m = PlainMap::<u64, u64>::create(&pool, 60).unwrap();
    assert_eq!(m.geometry.groups, 10);
    assert_eq!(m.capacity(), 60);
    for k in 0..60 {
        assert_eq!(m.insert(k * 7919, k).unwrap(), None);
    }
    check(&m);
    assert_eq!(m.len(), 60);
    let past_home = (0..60u64)
        .filter(|k| {
            let (_, _, groups) = m.parts();
            let p = m.probe(&(k * 7919));
            m.find_in(
                m.group(groups, p.home),
                m.group(groups, p.home).meta[1].load(Ordering::Relaxed),
                &p,
            )
            .is_none()
        })
        .count();
    assert!(past_home > 0, "no key lives past its home group");
    let e = m.insert(1, 1).unwrap_err();
    assert!(matches!(e, PlainMapError::Full { capacity: 60 }), "{e}");
    assert!(e.to_string().contains("larger capacity"), "{e}");
    for k in 0..60 {
        assert_eq!(m.get(&(k * 7919)).unwrap(), Some(k));
        assert_eq!(m.insert(k * 7919, k + 100).unwrap(), Some(k));
    }
    for k in (0..60).step_by(2) {
        assert_eq!(m.remove(&(k * 7919)).unwrap(), Some(k + 100));
        assert_eq!(m.remove(&(k * 7919)).unwrap(), None);
    }
    check(&m);
    for k in 0..60 {
        let want = (k % 2 == 1).then_some(k + 100);
        assert_eq!(m.get(&(k * 7919)).unwrap(), want, "key {k}");
        assert_eq!(m.contains_key(&(k * 7919)).unwrap(), want.is_some());
    }
    for k in 1000..1030 {
        m.insert(k, k).unwrap();
    }
    check(&m);
    let mut all = m.entries().unwrap();
    all.sort_unstable();
    assert_eq!(all.len(), 60);
    // Keep the even values: keys of every group, past their home or not.
    let odd = all.iter().filter(|(_, v)| v % 2 == 1).count();
    assert_eq!(m.retain(|_, v| v % 2 == 0).unwrap(), odd);
    check(&m);
    assert_eq!(m.len(), 60 - odd);
    for (k, v) in &all {
        let want = (v % 2 == 0).then_some(*v);
        assert_eq!(m.get(k).unwrap(), want, "key {k}");
    }
    m.clear().unwrap();
    check(&m);
    assert!(m.is_empty() && m.entries().unwrap().is_empty());
    assert_eq!(m.get(&1000).unwrap(), None);
}

#[test]
fn update_reads_changes_and_removes() {
    let pool = pool();
    let m = PlainMap::<u32, u64>::create(&pool, 4).unwrap();
    for _ in 0..5 {
        m.update(&3, |n| Some(n.unwrap_or(0) + 1)).unwrap();
    }
    assert_eq!(m.get(&3).unwrap(), Some(5));
    assert_eq!(m.update(&3, |_| None).unwrap(), None);
    assert_eq!(m.get(&3).unwrap(), None);
    assert_eq!(m.update(&9, |_| None).unwrap(), None);
    assert!(m.is_empty());
    // Reading inside the closure works; writing is the lock's deadlock.
    m.insert(1, 10).unwrap();
    let seen = m.update(&2, |_| m.get(&1).unwrap()).unwrap();
    assert_eq!(seen, Some(10));
    let mut inner = None;
    m.update(&1, |v| {
        inner = Some(m.insert(5, 5));
        v
    })
    .unwrap();
    let e = inner.unwrap().unwrap_err();
    assert!(matches!(e, PlainMapError::Lock(LockError::Deadlock)), "{e}");
    // A full map refuses a new key from `update` too.
    m.insert(6, 6).unwrap();
    m.insert(7, 7).unwrap();
    assert_eq!(m.len(), 4);
    let e = m.update(&8, |_| Some(8)).unwrap_err();
    assert!(matches!(e, PlainMapError::Full { .. }), "{e}");
    assert_eq!(m.get(&8).unwrap(), None);
    check(&m);
}

#[test]
fn keys_and_values_of_many_shapes() {
    let pool = pool();
    // A set: values of no bytes.
    let set = PlainMap::<u64, ()>::create(&pool, 100).unwrap();
    for k in 0..100 {
        set.insert(k, ()).unwrap();
    }
    assert_eq!(set.get(&42).unwrap(), Some(()));
    assert_eq!(set.get(&100).unwrap(), None);
    check(&set);
    // Keys of 3 bytes and of 12 words; values of 5 bytes.
    let small = PlainMap::<[u8; 3], [u8; 5]>::create(&pool, 50).unwrap();
    for i in 0..50u8 {
        small.insert([i, 1, 2], [i; 5]).unwrap();
    }
    assert_eq!(small.get(&[7, 1, 2]).unwrap(), Some([7; 5]));
    assert_eq!(small.get(&[7, 1, 3]).unwrap(), None);
    check(&small);
    let long = PlainMap::<[u64; 12], u64>::create(&pool, 50).unwrap();
    for i in 0..50u64 {
        let mut k = [i; 12];
        k[11] = 99;
        long.insert(k, i).unwrap();
    }
    let mut k = [7; 12];
    k[11] = 99;
    assert_eq!(long.get(&k).unwrap(), Some(7));
    k[11] = 98;
    assert_eq!(long.get(&k).unwrap(), None);
    check(&long);
    // Floats are keys by their bits.
    let f = PlainMap::<f64, u8>::create(&pool, 4).unwrap();
    f.insert(0.0, 1).unwrap();
    f.insert(-0.0, 2).unwrap();
    assert_eq!(f.get(&0.0).unwrap(), Some(1));
    assert_eq!(f.get(&-0.0).unwrap(), Some(2));
    assert_eq!(f.len(), 2);
}

#[test]
fn bad_capacities_types_and_memory_are_errors() {
    let pool = pool();
    let e = PlainMap::<u64, u64>::create(&pool, 0).unwrap_err();
    assert!(
        matches!(e, PlainMapError::BadCapacity { capacity: 0 }),
        "{e}"
    );
    let e = PlainMap::<u64, u64>::create(&pool, usize::MAX / 2).unwrap_err();
    assert!(matches!(e, PlainMapError::BadCapacity { .. }), "{e}");
    let e = PlainMap::<u64, u64>::create(&pool, 10_000_000).unwrap_err();
    assert!(matches!(e, PlainMapError::Pool(_)), "{e}");
    let m = PlainMap::<u64, u64>::create(&pool, 8).unwrap();
    let d = PlainMapDescr::<u64, u32> {
        mem: m.mem.descr(),
        _type: PhantomData,
    };
    let e = d.open().unwrap_err();
    assert!(matches!(e, PlainMapError::WrongType { .. }), "{e}");
    assert!(e.to_string().contains("other types"), "{e}");
    let raw = pool.alloc_mem(4096).unwrap();
    let d = PlainMapDescr::<u64, u64> {
        mem: raw.descr(),
        _type: PhantomData,
    };
    assert!(matches!(d.open(), Err(PlainMapError::NotAMap)));
    // The handle's debug form names the types.
    assert!(format!("{m:?}").contains("u64"));
    let d = m.descr();
    let other = d.open().unwrap();
    other.insert(1, 2).unwrap();
    assert_eq!(m.get(&1).unwrap(), Some(2));
    drop(m);
    drop(other);
    assert!(matches!(d.open(), Err(PlainMapError::Pool(_))));
}

#[test]
fn a_length_word_written_by_another_process_is_not_trusted_past_the_capacity() {
    let pool = pool();
    let m = PlainMap::<u64, u64>::create(&pool, 8).unwrap();
    m.insert(1, 1).unwrap();
    // Any process can write the block's words (by its descriptor).
    m.parts().0.len.store(u64::MAX / 4, Ordering::Relaxed);
    assert_eq!(m.len(), 8);
    assert_eq!(m.entries().unwrap(), [(1, 1)]);
    assert_eq!(m.get(&1).unwrap(), Some(1));
}

#[test]
fn a_copy_made_by_fork_panics_naming_the_map() {
    let pool = pool();
    let mut m = PlainMap::<u64, u64>::create(&pool, 8).unwrap();
    m.home = Home::elsewhere();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.get(&1)));
    let msg = r.unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("PlainMap") && msg.contains("fork"), "{msg}");
    m.home = Home::here();
}

/// Runs `f` on a thread of its own that takes the writers' lock first
/// and dies holding it (the thread ends; the lock's next holder finds its
/// owner dead).
fn die_writing(d: &PlainMapDescr<u64, [u64; 4]>, f: impl FnOnce(&PlainMap<u64, [u64; 4]>) + Send) {
    let d = d.clone();
    std::thread::scope(|s| {
        s.spawn(move || {
            let m = d.open().unwrap();
            m.parts().0.writer.lock().unwrap();
            f(&m);
            drop(m);
        });
    });
}

#[test]
fn a_replacement_cut_short_is_finished_from_the_journal() {
    let pool = pool();
    let m = PlainMap::<u64, [u64; 4]>::create(&pool, 20).unwrap();
    for k in 0..20 {
        m.insert(k, [k; 4]).unwrap();
    }
    die_writing(&m.descr(), |m| {
        let parts = m.parts();
        let (h, journal, groups) = parts;
        let p = m.probe(&5);
        let Place::Found(g, s) = m.place(groups, &p) else {
            panic!("5 is there")
        };
        // The journal, then half of the value, in place.
        write_value(journal, &[55u64; 4]);
        h.journal.store(journal_code(g, s), Ordering::Release);
        let group = m.group(groups, g);
        let before = group.meta[0].load(Ordering::Relaxed);
        group.meta[0].store(before | WRITING, Ordering::Relaxed);
        let v = m.entry(group, s).1;
        v[0].store(55, Ordering::Relaxed);
        v[1].store(55, Ordering::Relaxed);
    });
    // A reader waits, takes the lock, and the repair finishes the value.
    assert_eq!(m.get(&5).unwrap(), Some([55; 4]));
    check(&m);
    for k in (0..20).filter(|&k| k != 5) {
        assert_eq!(m.get(&k).unwrap(), Some([k; 4]));
    }
    // A death after the value but before the journal was cleared: the
    // repair writes the same value again.
    die_writing(&m.descr(), |m| {
        let (h, journal, groups) = m.parts();
        let p = m.probe(&6);
        let Place::Found(g, s) = m.place(groups, &p) else {
            panic!("6 is there")
        };
        write_value(journal, &[66u64; 4]);
        h.journal.store(journal_code(g, s), Ordering::Release);
        m.write_in_place(m.group(groups, g), s, value_words(&[66u64; 4]));
    });
    m.insert(7, [77; 4]).unwrap();
    check(&m);
    assert_eq!(m.get(&6).unwrap(), Some([66; 4]));
    assert_eq!(m.get(&7).unwrap(), Some([77; 4]));
}

#[test]
fn an_insertion_or_removal_cut_short_is_counted_again() {
    let pool = pool();
    let m = PlainMap::<u64, [u64; 4]>::create(&pool, 60).unwrap();
    // Fill the map but for one key, whose probe passes full groups.
    let mut keys: Vec<u64> = (0..59).map(|k| k * 7919).collect();
    for &k in &keys {
        m.insert(k, [k; 4]).unwrap();
    }
    let (_, _, groups) = m.parts();
    let new = (1..)
        .map(|k| k * 104_729)
        .find(|k| {
            let p = m.probe(k);
            m.group(groups, p.home).meta[1].load(Ordering::Relaxed) & TAG_BIT == TAG_BIT
        })
        .unwrap();
    // Dies after counting the passed groups and writing the slot, before
    // its tag: the key was never there, and the counts are put back.
    die_writing(&m.descr(), |m| {
        let (_, _, groups) = m.parts();
        let p = m.probe(&new);
        let Place::Missing(Some((g, s))) = m.place(groups, &p) else {
            panic!("room for one more")
        };
        assert_ne!(g, p.home);
        m.count_overflow(groups, p.home, g, true);
        let (k, v) = m.entry(m.group(groups, g), s);
        write_value(k, &new);
        write_value(v, &[1u64; 4]);
    });
    assert_eq!(m.insert(new, [2; 4]).unwrap(), None);
    check(&m);
    assert_eq!(m.get(&new).unwrap(), Some([2; 4]));
    keys.push(new);
    // Dies after clearing a tag, before counting down and before the
    // length: the key is gone, and the counts and length are right again.
    die_writing(&m.descr(), |m| {
        let (_, _, groups) = m.parts();
        let p = m.probe(&new);
        let Place::Found(g, s) = m.place(groups, &p) else {
            panic!("{new} is there")
        };
        let group = m.group(groups, g);
        let tags = group.meta[1].load(Ordering::Relaxed);
        group.meta[1].store(tags & !(0xff << (8 * s)), Ordering::Release);
    });
    assert_eq!(m.len(), 60, "the length is stale until the repair");
    assert_eq!(m.get(&new).unwrap(), None);
    let versions = |m: &PlainMap<u64, [u64; 4]>| -> Vec<u64> {
        let (_, _, groups) = m.parts();
        (0..m.geometry.groups)
            .map(|g| m.group(groups, g).meta[0].load(Ordering::Relaxed) / VERSION)
            .collect()
    };
    let before = versions(&m);
    m.insert(new, [3; 4]).unwrap();
    check(&m);
    // The repair moved every group's version on (the dead removal did
    // not), so a reader that saw the cleared tag's key fails its check if
    // the slot is written again.
    assert!(versions(&m).iter().zip(&before).all(|(a, b)| a != b));
    for &k in &keys[..59] {
        assert_eq!(m.get(&k).unwrap(), Some([k; 4]));
    }
    // A dead insertion whose tag was set: the key is there, whole.
    m.remove(&new).unwrap();
    die_writing(&m.descr(), |m| {
        let parts = m.parts();
        let p = m.probe(&new);
        let Place::Missing(Some((g, s))) = m.place(parts.2, &p) else {
            panic!("room for one more")
        };
        m.add_at(parts, g, s, &p, &new, &[4; 4]);
        parts.0.len.store(0, Ordering::Relaxed);
    });
    assert_eq!(m.entries().unwrap().len(), 60);
    check(&m);
    assert_eq!(m.get(&new).unwrap(), Some([4; 4]));
}

#[test]
fn a_clear_cut_short_brings_no_key_back() {
    let pool = pool();
    let m = PlainMap::<u64, [u64; 4]>::create(&pool, 60).unwrap();
    let keys: Vec<u64> = (0..59).map(|k| k * 7919).collect();
    for &k in &keys {
        m.insert(k, [k; 4]).unwrap();
    }
    // A key stored past its home group.
    let (_, _, groups) = m.parts();
    let (key, home) = keys
        .iter()
        .find_map(|&k| {
            let p = m.probe(&k);
            match m.place(groups, &p) {
                Place::Found(g, _) if g > p.home => Some((k, p.home)),
                _ => None,
            }
        })
        .expect("a key past its home");
    // Dies after clearing the tags of the groups up to the key's home:
    // readers see the keys there go, and the counts still reach the rest.
    die_writing(&m.descr(), |m| {
        m.clear_tags(m.parts().2, 0..home + 1);
    });
    let gone: Vec<u64> = keys
        .iter()
        .copied()
        .filter(|k| m.get(k).unwrap().is_none())
        .collect();
    assert!(!gone.is_empty());
    assert_eq!(
        m.get(&key).unwrap(),
        Some([key; 4]),
        "its tag is still there"
    );
    m.insert(1 << 40, [0; 4]).unwrap();
    check(&m);
    for &k in &keys {
        let want = (!gone.contains(&k)).then_some([k; 4]);
        assert_eq!(m.get(&k).unwrap(), want, "key {k} after the repair");
    }
    assert_eq!(m.len(), keys.len() - gone.len() + 1);
    // Dies in the second pass: every tag cleared, some counts not.
    die_writing(&m.descr(), |m| {
        let groups = m.parts().2;
        m.clear_tags(groups, 0..m.geometry.groups);
        m.clear_counts(groups, 0..home + 1);
    });
    assert!(keys.iter().all(|k| m.get(k).unwrap().is_none()));
    m.insert(1, [1; 4]).unwrap();
    check(&m);
    assert_eq!(m.entries().unwrap(), [(1, [1; 4])]);
}

#[test]
fn readers_see_whole_values_while_writers_change_them() {
    let pool = pool();
    let m = PlainMap::<u64, [u64; 4]>::create(&pool, 64).unwrap();
    // Keys 0..32 stay; keys 32..64 come and go.
    for k in 0..32 {
        m.insert(k, [k; 4]).unwrap();
    }
    let d = m.descr();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let d = d.clone();
            let stop = &stop;
            s.spawn(move || {
                let m = d.open().unwrap();
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for k in 0..64 {
                        match m.get(&k).unwrap() {
                            Some(v) => {
                                assert!(v.iter().all(|&x| x == v[0]), "torn: {v:?}");
                                assert_eq!(v[0] % 1000, k, "another key's value");
                                seen += 1;
                            }
                            None => assert!(k >= 32, "key {k} went missing"),
                        }
                    }
                }
                assert!(seen > 0);
            });
        }
        let d = d.clone();
        let stop = &stop;
        s.spawn(move || {
            let m = d.open().unwrap();
            for round in 1..3000u64 {
                for k in 0..64 {
                    let v = [round * 1000 + k; 4];
                    if k < 32 || round % 3 != 0 {
                        m.insert(k, v).unwrap();
                    } else {
                        m.remove(&k).unwrap();
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    check(&m);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u32),
    Remove(u8),
    Get(u8),
    Bump(u8),
    RetainEven,
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => any::<u8>().prop_map(Op::Remove),
        3 => any::<u8>().prop_map(Op::Get),
        2 => any::<u8>().prop_map(Op::Bump),
        1 => Just(Op::RetainEven),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #[test]
    fn matches_a_bounded_hash_map(cap in 1usize..80, ops in proptest::collection::vec(op(), 0..300)) {
        let pool = pool();
        let m = PlainMap::<u16, u32>::create(&pool, cap).unwrap();
        let mut model = HashMap::<u16, u32>::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    // Keys spread over a range twice the capacity.
                    let k = u16::from(k) % (2 * cap as u16 + 1);
                    let full = model.len() == cap && !model.contains_key(&k);
                    match m.insert(k, v) {
                        Err(PlainMapError::Full { .. }) => prop_assert!(full),
                        r => {
                            prop_assert!(!full);
                            prop_assert_eq!(r.unwrap(), model.insert(k, v));
                        }
                    }
                }
                Op::Remove(k) => {
                    let k = u16::from(k) % (2 * cap as u16 + 1);
                    prop_assert_eq!(m.remove(&k).unwrap(), model.remove(&k));
                }
                Op::Get(k) => {
                    let k = u16::from(k) % (2 * cap as u16 + 1);
                    prop_assert_eq!(m.get(&k).unwrap(), model.get(&k).copied());
                }
                Op::Bump(k) => {
                    let k = u16::from(k) % (2 * cap as u16 + 1);
                    let full = model.len() == cap && !model.contains_key(&k);
                    let bump = |v: Option<u32>| Some(v.unwrap_or(0).wrapping_add(1));
                    match m.update(&k, bump) {
                        Err(PlainMapError::Full { .. }) => prop_assert!(full),
                        r => {
                            let want = bump(model.get(&k).copied());
                            model.insert(k, want.unwrap());
                            prop_assert_eq!(r.unwrap(), want);
                        }
                    }
                }
                Op::RetainEven => {
                    let before = model.len();
                    model.retain(|_, v| *v % 2 == 0);
                    prop_assert_eq!(m.retain(|_, v| *v % 2 == 0).unwrap(), before - model.len());
                }
                Op::Clear => {
                    m.clear().unwrap();
                    model.clear();
                }
            }
            prop_assert_eq!(m.len(), model.len());
        }
        check(&m);
        let mut all = m.entries().unwrap();
        all.sort_unstable();
        let mut want: Vec<_> = model.into_iter().collect();
        want.sort_unstable();
        prop_assert_eq!(all, want);
    }
}
