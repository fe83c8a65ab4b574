//! Model-based tests of the shared structures: random operation sequences
//! run against a structure and a `std` collection side by side, in one
//! process.

use std::collections::{HashMap, VecDeque};

use mc::structures::StructureError;
use mc::{HeapError, Pool, SArray, SBuffer, SHashtbl, SMatrix, SQueue, SRef};
use proptest::prelude::*;

fn pool() -> Pool {
    Pool::create(256 << 20).expect("pool")
}

#[derive(Debug, Clone)]
enum ArrayOp {
    Set(usize, String),
    Grow(usize, String),
    Get(usize),
    Gc,
}

fn array_op() -> impl Strategy<Value = ArrayOp> {
    prop_oneof![
        (0..40usize, "[a-z]{0,12}").prop_map(|(i, s)| ArrayOp::Set(i, s)),
        (0..40usize, "[a-z]{0,5}").prop_map(|(n, s)| ArrayOp::Grow(n, s)),
        (0..40usize).prop_map(ArrayOp::Get),
        Just(ArrayOp::Gc),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn array_matches_vec(init in proptest::collection::vec("[a-z]{0,8}", 0..10),
                         ops in proptest::collection::vec(array_op(), 0..60)) {
        let pool = pool();
        let a = SArray::create(&pool, &(), &init).unwrap();
        let mut model = init.clone();
        for op in ops {
            match op {
                ArrayOp::Set(i, s) => {
                    let r = a.set(i, &s);
                    if i < model.len() {
                        r.unwrap();
                        model[i] = s;
                    } else {
                        let is_oob = matches!(r, Err(StructureError::OutOfBounds { .. }));
                        prop_assert!(is_oob);
                    }
                }
                ArrayOp::Grow(n, s) => {
                    a.grow(n, &s).unwrap();
                    while model.len() < n {
                        model.push(s.clone());
                    }
                }
                ArrayOp::Get(i) => {
                    if i < model.len() {
                        prop_assert_eq!(a.get(i).unwrap().as_str().to_owned(), model[i].clone());
                        prop_assert_eq!(a.get_pinned(i).unwrap().as_str().to_owned(), model[i].clone());
                        prop_assert_eq!(a.get_copy(i).unwrap(), model[i].clone());
                    } else {
                        prop_assert!(a.get(i).is_err());
                        prop_assert!(a.get_copy(i).is_err());
                    }
                }
                ArrayOp::Gc => a.gc().unwrap(),
            }
            prop_assert_eq!(a.len().unwrap(), model.len());
        }
        prop_assert_eq!(a.to_vec().unwrap(), model.clone());
        let b = a.descr().open().unwrap();
        prop_assert_eq!(b.read().unwrap().len(), model.len());
        a.destroy().unwrap();
    }
}

#[derive(Debug, Clone)]
enum QueueOp {
    Push(String),
    PopCopy,
    PopWith,
    PopMany(usize),
    Peek,
    Clear,
    Gc,
}

fn queue_op() -> impl Strategy<Value = QueueOp> {
    prop_oneof![
        6 => "[a-z]{0,10}".prop_map(QueueOp::Push),
        3 => Just(QueueOp::PopCopy),
        2 => Just(QueueOp::PopWith),
        1 => (0..6usize).prop_map(QueueOp::PopMany),
        2 => Just(QueueOp::Peek),
        1 => Just(QueueOp::Gc),
        1 => Just(QueueOp::Clear).prop_filter("rare", |_| true),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn queue_matches_vecdeque(ops in proptest::collection::vec(queue_op(), 0..200)) {
        let pool = pool();
        let q = SQueue::<String>::create(&pool, &()).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                QueueOp::Push(s) => {
                    q.push(&s).unwrap();
                    model.push_back(s);
                }
                QueueOp::PopCopy => prop_assert_eq!(q.pop_copy().unwrap(), model.pop_front()),
                QueueOp::PopWith => {
                    let got = q.pop_with(|s| s.as_str().to_owned()).unwrap();
                    prop_assert_eq!(got, model.pop_front());
                }
                QueueOp::PopMany(k) => {
                    let n = k.min(model.len());
                    let want: Vec<String> = model.drain(..n).collect();
                    prop_assert_eq!(q.pop_many(k).unwrap(), want);
                }
                QueueOp::Peek => {
                    prop_assert_eq!(q.peek().unwrap().map(|r| r.as_str().to_owned()), model.front().cloned());
                    prop_assert_eq!(q.peek_copy().unwrap(), model.front().cloned());
                }
                QueueOp::Clear => {
                    q.clear().unwrap();
                    model.clear();
                }
                QueueOp::Gc => q.gc().unwrap(),
            }
            prop_assert_eq!(q.len().unwrap(), model.len());
            prop_assert_eq!(q.is_empty().unwrap(), model.is_empty());
        }
        let all: Vec<String> = model.iter().cloned().collect();
        prop_assert_eq!(q.to_vec().unwrap(), all.clone());
        let view: Vec<String> = q.read().unwrap().iter().map(|s| s.as_str().to_owned()).collect();
        prop_assert_eq!(view, all);
    }
}

#[derive(Debug, Clone)]
enum TableOp {
    Add(u16, String),
    Replace(u16, String),
    Remove(u16),
    Find(u16),
    ModifyLen(u16),
    Clear,
}

fn table_op() -> impl Strategy<Value = TableOp> {
    let k = 0..24u16;
    prop_oneof![
        6 => (k.clone(), "[a-z]{0,6}").prop_map(|(k, v)| TableOp::Add(k, v)),
        3 => (k.clone(), "[a-z]{0,6}").prop_map(|(k, v)| TableOp::Replace(k, v)),
        3 => k.clone().prop_map(TableOp::Remove),
        4 => k.clone().prop_map(TableOp::Find),
        1 => k.prop_map(TableOp::ModifyLen),
        1 => Just(TableOp::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn hashtbl_matches_hashmap(buckets in 1..8usize, ops in proptest::collection::vec(table_op(), 0..200)) {
        let pool = pool();
        // String keys exercise shared-representation hashing and equality.
        let t = SHashtbl::<String, String>::with_buckets(&pool, &(), buckets).unwrap();
        let mut model: HashMap<String, Vec<String>> = HashMap::new();
        for op in ops {
            match op {
                TableOp::Add(k, v) => {
                    let k = k.to_string();
                    t.add(&k, &v).unwrap();
                    model.entry(k).or_default().push(v);
                }
                TableOp::Replace(k, v) => {
                    let k = k.to_string();
                    t.replace(&k, &v).unwrap();
                    let e = model.entry(k).or_default();
                    match e.last_mut() {
                        Some(x) => *x = v,
                        None => e.push(v),
                    }
                }
                TableOp::Remove(k) => {
                    let k = k.to_string();
                    let had = model.get_mut(&k).and_then(|v| v.pop()).is_some();
                    prop_assert_eq!(t.remove(&k).unwrap(), had);
                }
                TableOp::Find(k) => {
                    let k = k.to_string();
                    let want = model.get(&k).and_then(|v| v.last().cloned());
                    prop_assert_eq!(t.find(&k).unwrap().map(|r| r.as_str().to_owned()), want.clone());
                    prop_assert_eq!(t.find_pinned(&k).unwrap().map(|r| r.as_str().to_owned()), want.clone());
                    prop_assert_eq!(t.find_copy(&k).unwrap(), want.clone());
                    prop_assert_eq!(t.contains_key(&k).unwrap(), want.is_some());
                    let all: Vec<String> = model.get(&k).map(|v| v.iter().rev().cloned().collect()).unwrap_or_default();
                    prop_assert_eq!(t.find_all_copy(&k).unwrap(), all.clone());
                    let refs: Vec<String> = t.find_all(&k).unwrap().iter().map(|r| r.as_str().to_owned()).collect();
                    prop_assert_eq!(&refs, &all);
                    let pinned: Vec<String> = t.find_all_pinned(&k).unwrap().iter().map(|r| r.as_str().to_owned()).collect();
                    prop_assert_eq!(&pinned, &all);
                    let viewed: Vec<String> = t.read().unwrap().get_all(&k).map(|r| r.as_str().to_owned()).collect();
                    prop_assert_eq!(viewed, all);
                }
                TableOp::ModifyLen(k) => {
                    let k = k.to_string();
                    let got = t.modify_value(&k, |m, v| {
                        let n = v.len().to_string();
                        m.set_str(v, &n).unwrap();
                    }).unwrap();
                    let want = model.get_mut(&k).and_then(|v| v.last_mut()).map(|x| {
                        *x = x.len().to_string();
                    });
                    prop_assert_eq!(got.is_some(), want.is_some());
                }
                TableOp::Clear => {
                    t.clear().unwrap();
                    model.clear();
                }
            }
            let n: usize = model.values().map(Vec::len).sum();
            prop_assert_eq!(t.len().unwrap(), n);
        }
        let mut got = t.to_vec().unwrap();
        let mut want: Vec<(String, String)> = model
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
            .collect();
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }
}

#[derive(Debug, Clone)]
enum BufOp {
    Push(Vec<u8>),
    Delete(usize),
    Sub(usize, usize),
    Clear,
}

fn buf_op() -> impl Strategy<Value = BufOp> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(BufOp::Push),
        3 => (0..400usize).prop_map(BufOp::Delete),
        3 => (0..500usize, 0..300usize).prop_map(|(p, l)| BufOp::Sub(p, l)),
        1 => Just(BufOp::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn buffer_matches_vec(ops in proptest::collection::vec(buf_op(), 0..120)) {
        let pool = pool();
        // Small blocks: many block boundaries.
        let b = SBuffer::with_block_size(&pool, &(), 64).unwrap();
        let mut start = 0usize;
        let mut model: VecDeque<u8> = VecDeque::new();
        for op in ops {
            match op {
                BufOp::Push(bytes) => {
                    let pos = b.push_bytes(&bytes).unwrap();
                    prop_assert_eq!(pos, start + model.len());
                    model.extend(bytes);
                }
                BufOp::Delete(n) => {
                    let r = b.delete_head(n);
                    if n <= model.len() {
                        r.unwrap();
                        model.drain(..n);
                        start += n;
                    } else {
                        prop_assert!(r.is_err());
                    }
                }
                BufOp::Sub(p, l) => {
                    let pos = start.saturating_sub(50) + p;
                    let r = b.sub(pos, l);
                    if pos >= start && pos + l <= start + model.len() {
                        let want: Vec<u8> = model.range(pos - start..pos - start + l).copied().collect();
                        prop_assert_eq!(r.unwrap(), want.clone());
                        let mut dst = vec![0u8; l];
                        b.blit(pos, &mut dst).unwrap();
                        prop_assert_eq!(dst, want);
                    } else {
                        let bad = matches!(r, Err(StructureError::BadRange { .. }));
                        prop_assert!(bad);
                    }
                }
                BufOp::Clear => {
                    b.clear().unwrap();
                    start += model.len();
                    model.clear();
                }
            }
            prop_assert_eq!(b.start().unwrap(), start);
            prop_assert_eq!(b.len().unwrap(), model.len());
        }
        let all: Vec<u8> = model.iter().copied().collect();
        prop_assert_eq!(b.sub(start, model.len()).unwrap(), all);
    }
}

#[test]
fn matrix_access() {
    let pool = pool();
    let m = SMatrix::init(&pool, &(), 3, 4, |r, c| format!("{r},{c}")).unwrap();
    assert_eq!(m.dim().unwrap(), (3, 4));
    assert_eq!(m.get(2, 3).unwrap().as_str(), "2,3");
    m.set(1, 1, &"x".to_string()).unwrap();
    assert_eq!(m.get_copy(1, 1).unwrap(), "x");
    assert_eq!(m.get_pinned(1, 1).unwrap().as_str(), "x");
    assert_eq!(m.row(1).unwrap().len(), 4);
    assert!(matches!(
        m.get(3, 0),
        Err(StructureError::OutOfBounds { .. })
    ));
    assert!(matches!(
        m.get(0, 4),
        Err(StructureError::OutOfBounds { .. })
    ));
    let z = SMatrix::create(&pool, &(), 2, 2, &[1u8, 2, 3, 4]).unwrap();
    assert_eq!(*z.get(1, 0).unwrap(), 3);
    assert!(matches!(
        SMatrix::create(&pool, &(), 2, 2, &[1u8]),
        Err(StructureError::BadShape { .. })
    ));
    let k = SMatrix::make(&pool, &(), 2, 3, &7u32).unwrap();
    assert_eq!(k.to_vec().unwrap(), [7; 6]);
    k.modify(|_, v| v.as_mut_slice()[5] = 8).unwrap();
    assert_eq!(*k.get(1, 2).unwrap(), 8);
}

#[test]
fn sref_and_headers() {
    let pool = pool();
    let r = SRef::new(&pool, &vec![1u32, 2]).unwrap();
    {
        let p = r.pin().unwrap();
        r.assign(&vec![3]).unwrap();
        assert_eq!(p.as_slice(), [1, 2]);
    }
    assert_eq!(r.copy().unwrap(), [3]);
    r.modify(|m, v| m.push(v, &4u32)).unwrap().unwrap();
    assert_eq!(r.read().unwrap().as_slice(), [3, 4]);

    let a = SArray::make(&pool, &(0u64, String::from("h")), 3, &1i8).unwrap();
    assert_eq!(a.header().unwrap().1.as_str(), "h");
    a.modify_header(|_, h| *h.project().0.get_mut() = 5)
        .unwrap();
    assert_eq!(a.header_copy().unwrap(), (5, "h".to_string()));
}

#[test]
fn destroyed_descriptors_fail() {
    let pool = pool();
    let q = SQueue::<u32>::create(&pool, &()).unwrap();
    let d = q.descr();
    let q2 = d.open().unwrap();
    q.destroy().unwrap();
    assert!(matches!(
        d.open(),
        Err(StructureError::Heap(HeapError::Destroyed))
    ));
    assert!(matches!(
        q2.push(&1),
        Err(StructureError::Heap(HeapError::Destroyed))
    ));
    let r = SRef::new(&pool, &1u8).unwrap();
    let rd = r.descr();
    r.destroy().unwrap();
    assert!(matches!(
        rd.open(),
        Err(StructureError::Heap(HeapError::Destroyed))
    ));
    let t = SHashtbl::<u32, u32>::create(&pool, &()).unwrap();
    let td = t.descr();
    let bytes = postcard::to_allocvec(&td).unwrap();
    let td2: mc::SHashtblDescr<u32, u32> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(td, td2);
    t.destroy().unwrap();
    assert!(matches!(
        td2.open(),
        Err(StructureError::Heap(HeapError::Destroyed))
    ));
}

#[test]
fn guard_then_modify_is_reentrant_not_deadlock() {
    let pool = pool();
    let a = SArray::create(&pool, &(), &[1u32]).unwrap();
    let g = a.get(0).unwrap();
    assert!(matches!(
        a.set(0, &2),
        Err(StructureError::Heap(HeapError::Reentrant))
    ));
    drop(g);
    a.set(0, &2).unwrap();
}

#[test]
fn big_hashtbl_resizes() {
    let pool = pool();
    let t = SHashtbl::<u64, u64>::create(&pool, &()).unwrap();
    for i in 0..5000u64 {
        t.add(&i, &(i * 2)).unwrap();
    }
    assert!(t.buckets().unwrap() > 391);
    for i in 0..5000u64 {
        assert_eq!(t.find_copy(&i).unwrap(), Some(i * 2));
    }
    assert_eq!(t.len().unwrap(), 5000);
}

type BigKey = (String, u32, Option<char>, Vec<i16>);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Composite keys: hashing the local key and its shared copy agree, and
    /// equality between them is exact.
    #[test]
    fn composite_keys(keys in proptest::collection::vec(
        ("[a-c]{0,3}", 0..3u32, proptest::option::of(proptest::char::range('a', 'c')),
         proptest::collection::vec(-2..2i16, 0..3)),
        1..60)) {
        let pool = pool();
        let t = SHashtbl::<BigKey, usize>::with_buckets(&pool, &(), 7).unwrap();
        let mut model: HashMap<BigKey, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            t.add(k, &i).unwrap();
            model.entry(k.clone()).or_default().push(i);
        }
        for (k, vs) in &model {
            let want: Vec<usize> = vs.iter().rev().copied().collect();
            prop_assert_eq!(t.find_all_copy(k).unwrap(), want);
        }
        let mut other = keys[0].clone();
        other.1 += 10;
        prop_assert!(!t.contains_key(&other).unwrap());
        prop_assert_eq!(t.len().unwrap(), keys.len());
    }
}

#[test]
fn pins_keep_old_values_while_writers_go_on() {
    let pool = pool();
    let a = SArray::create(&pool, &(), &["a".to_string(), "b".to_string()]).unwrap();
    let p = a.get_pinned(1).unwrap();
    a.set(1, &"B".to_string()).unwrap();
    a.grow(4, &"z".to_string()).unwrap();
    assert_eq!(p.as_str(), "b");
    drop(p);
    a.gc().unwrap();
    assert_eq!(a.to_vec().unwrap(), ["a", "B", "z", "z"]);

    let q = SQueue::<String>::create(&pool, &()).unwrap();
    for i in 0..10 {
        q.push(&i.to_string()).unwrap();
    }
    let front = q.peek_pinned().unwrap().unwrap();
    assert_eq!(q.pop_copy().unwrap().as_deref(), Some("0"));
    q.push(&"10".to_string()).unwrap();
    assert_eq!(front.as_str(), "0");
    drop(front);
    q.gc().unwrap();
    let want: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    assert_eq!(q.to_vec().unwrap(), want);

    let t = SHashtbl::<u32, String>::create(&pool, &()).unwrap();
    t.add(&1, &"one".to_string()).unwrap();
    let f = t.find_pinned(&1).unwrap().unwrap();
    t.replace(&1, &"uno".to_string()).unwrap();
    assert_eq!(f.as_str(), "one");
    drop(f);
    assert_eq!(t.find_copy(&1).unwrap().as_deref(), Some("uno"));

    // A buffer whose blocks were copied (pinned root) keeps working.
    let b = SBuffer::with_block_size(&pool, &(), 64).unwrap();
    b.push_bytes(&[1; 100]).unwrap();
    {
        let _v = b.read().unwrap();
    }
    b.push_bytes(&[2; 100]).unwrap();
    b.delete_head(150).unwrap();
    assert_eq!(b.sub(150, 50).unwrap(), vec![2; 50]);
}

// Errors leave the structures as they were, and no argument panics.

fn is_heap_err(r: &Result<impl std::fmt::Debug, StructureError>) -> bool {
    matches!(r, Err(StructureError::Heap(_)))
}

#[test]
fn hashtbl_out_of_memory_adds_nothing() {
    let pool = Pool::create(1 << 20).unwrap();
    let t = SHashtbl::<u64, String>::create(&pool, &()).unwrap();
    let big = "v".repeat(40_000);
    let mut added = 0u64;
    let failed = loop {
        match t.add(&added, &big) {
            Ok(()) => added += 1,
            Err(e) => break e,
        }
        assert!(added < 1000, "the pool never filled up");
    };
    assert!(matches!(failed, StructureError::Heap(_)), "{failed:?}");
    assert_eq!(t.len().unwrap(), added as usize);
    // The key whose value did not fit is not bound (and looking it up does
    // not panic).
    assert!(!t.contains_key(&added).unwrap());
    assert_eq!(t.find_copy(&added).unwrap(), None);
    assert!(t.find(&added).unwrap().is_none());
    assert!(t.find_all_copy(&added).unwrap().is_empty());
    assert!(!t.remove(&added).unwrap());
    match t.replace(&added, &"small".to_string()) {
        Ok(()) => {
            assert_eq!(t.find_copy(&added).unwrap().as_deref(), Some("small"));
            assert_eq!(t.len().unwrap(), added as usize + 1);
            assert!(t.remove(&added).unwrap());
        }
        Err(_) => assert!(!t.contains_key(&added).unwrap()),
    }
    for k in 0..added {
        assert_eq!(t.find_copy(&k).unwrap().map(|v| v.len()), Some(40_000));
    }
    assert_eq!(t.to_vec().unwrap().len(), t.len().unwrap());
}

#[test]
fn hashtbl_failed_growth_keeps_the_binding_once() {
    // One bucket: the table grows (a copy of every binding) at 3, 7, 15,
    // ... bindings, and growing is what runs out of memory first.
    let pool = Pool::create(1 << 20).unwrap();
    let t = SHashtbl::<u64, u64>::with_buckets(&pool, &(), 1).unwrap();
    let mut added = 0u64;
    loop {
        match t.add(&added, &added) {
            Ok(()) => added += 1,
            Err(e) => {
                assert!(matches!(e, StructureError::Heap(_)), "{e:?}");
                break;
            }
        }
        assert!(added < 10_000_000, "the pool never filled up");
    }
    // Every successful add is there once; the failed one is not.
    assert_eq!(t.len().unwrap(), added as usize);
    assert!(!t.contains_key(&added).unwrap());
    let step = (added / 500).max(1);
    for k in (0..added).step_by(step as usize) {
        assert_eq!(t.find_all_copy(&k).unwrap(), [k]);
    }
    assert_eq!(t.to_vec().unwrap().len(), added as usize);
}

#[test]
fn huge_sizes_are_errors_not_panics() {
    let pool = Pool::create(4 << 20).unwrap();
    for n in [usize::MAX, usize::MAX / 2, 1 << 40] {
        let r = SHashtbl::<u32, u32>::with_buckets(&pool, &(), n);
        assert!(is_heap_err(&r), "{n}: {r:?}");
        let r = SBuffer::with_block_size(&pool, &(), n);
        assert!(is_heap_err(&r), "{n}: {r:?}");
        let r = SArray::make(&pool, &(), n, &0u8);
        assert!(is_heap_err(&r), "{n}: {r:?}");
        let r = SArray::init(&pool, &(), n, |i| i as u8);
        assert!(is_heap_err(&r), "{n}: {r:?}");
    }
    let b = SBuffer::with_block_size(&pool, &(), 64).unwrap();
    b.push_bytes(b"hello").unwrap();
    for (pos, len) in [
        (0, usize::MAX / 2),
        (0, usize::MAX),
        (usize::MAX, 1),
        (3, 1 << 40),
    ] {
        let r = b.sub(pos, len);
        assert!(
            matches!(r, Err(StructureError::BadRange { .. })),
            "{pos} {len}: {r:?}"
        );
    }
    assert_eq!(b.sub(0, 5).unwrap(), b"hello");
    // Everything that failed gave its memory back.
    let t = SHashtbl::<u32, u32>::with_buckets(&pool, &(), 1000).unwrap();
    t.add(&1, &2).unwrap();
    assert_eq!(t.buckets().unwrap(), 1000);
}

#[test]
fn buffer_out_of_memory_appends_nothing() {
    let pool = Pool::create(1 << 20).unwrap();
    let b = SBuffer::with_block_size(&pool, &(), 4096).unwrap();
    b.push_bytes(b"ab").unwrap();
    let r = b.push_bytes(&vec![1u8; 2 << 20]);
    assert!(is_heap_err(&r), "{r:?}");
    assert_eq!((b.start().unwrap(), b.len().unwrap()), (0, 2));
    // The blocks of the failed append were garbage: there is room again,
    // and new bytes follow the old ones.
    b.gc().unwrap();
    assert_eq!(b.push_bytes(b"cd").unwrap(), 2);
    assert_eq!(b.sub(0, 4).unwrap(), b"abcd");
    let big = vec![7u8; 100_000];
    assert_eq!(b.push_bytes(&big).unwrap(), 4);
    assert_eq!(b.sub(4, 100_000).unwrap(), big);
    assert_eq!(b.len().unwrap(), 100_004);
}

/// What an append cut short by a death leaves (bytes past the end in the
/// last block, a block past the end) is cut off by the next change, so
/// that new bytes land at the positions they are given.
#[test]
fn buffer_append_cut_short_is_cut_off() {
    let pool = pool();
    let b = SBuffer::with_block_size(&pool, &(), 64).unwrap();
    b.push_bytes(b"hello").unwrap();
    // Bytes written but not counted, and an empty block added.
    b.heap()
        .modify(|m, t| {
            let mut blocks = t.project().0;
            let last = blocks.as_mut().get_pin(0).unwrap();
            m.extend_from_slice::<u8>(last, b"GARBAGE").unwrap();
            m.push::<Vec<u8>>(blocks, &Vec::new()).unwrap();
        })
        .unwrap();
    assert_eq!(b.sub(0, 5).unwrap(), b"hello");
    assert_eq!(b.push_bytes(b"world").unwrap(), 5);
    assert_eq!(b.sub(0, 10).unwrap(), b"helloworld");
    let long = [b'x'; 100];
    assert_eq!(b.push_bytes(&long).unwrap(), 10);
    assert_eq!(b.sub(10, 100).unwrap(), long);
    // The same before a deletion: it counts from the real end.
    b.heap()
        .modify(|m, t| {
            let mut blocks = t.project().0;
            let last = blocks.as_mut().get_pin(1).unwrap();
            m.extend_from_slice::<u8>(last, b"JUNK").unwrap();
        })
        .unwrap();
    b.delete_head(70).unwrap();
    assert_eq!((b.start().unwrap(), b.len().unwrap()), (70, 40));
    assert_eq!(b.push_bytes(b"!").unwrap(), 110);
    assert_eq!(b.sub(105, 6).unwrap(), b"xxxxx!");
    // And `recover` on a whole buffer changes nothing.
    assert_eq!(b.recover().unwrap(), None);
    assert_eq!(b.sub(70, 41).unwrap().len(), 41);
}

/// A buffer that filled its pool can be drained block by block (a deletion
/// finds no room for a shorter list of blocks and empties them in place),
/// and takes appends again once drained.
#[test]
fn a_full_buffer_drains() {
    for pool_size in [512 << 10, 1 << 20] {
        let pool = Pool::create(pool_size).unwrap();
        let b = SBuffer::with_block_size(&pool, &(), 64).unwrap();
        let chunk: Vec<u8> = (0..64u8).collect();
        while b.push_bytes(&chunk).is_ok() {}
        let full = b.len().unwrap();
        assert!(full > 1000, "{full}");
        let mut deleted = 0;
        while b.len().unwrap() >= 64 {
            b.delete_head(64).unwrap();
            deleted += 64;
            let (start, len) = (b.start().unwrap(), b.len().unwrap());
            assert_eq!((start, len), (deleted, full - deleted));
            if len > 0 {
                assert_eq!(b.sub(start, 64.min(len)).unwrap(), chunk[..64.min(len)]);
            }
        }
        b.gc().unwrap();
        let end = b.start().unwrap() + b.len().unwrap();
        assert_eq!(b.push_bytes(b"again").unwrap(), end);
        assert_eq!(b.sub(end, 5).unwrap(), b"again");
        for _ in 0..(full / 64 / 2) {
            b.push_bytes(&chunk).unwrap();
        }
        b.heap().validate().unwrap();
    }
}

#[test]
fn failed_destroy_keeps_the_structure_whole() {
    let pool = pool();
    let a = SArray::create(&pool, &"header".to_string(), &[1u32, 2, 3]).unwrap();
    let d = a.descr();
    let pin = a.get_pinned(1).unwrap();
    let r = a.clone().destroy();
    assert!(
        matches!(r, Err(StructureError::Heap(HeapError::Pinned(_)))),
        "{r:?}"
    );
    // Nothing was destroyed: header and data are both there.
    assert_eq!(a.header_copy().unwrap(), "header");
    assert_eq!(a.to_vec().unwrap(), [1, 2, 3]);
    let other = d.open().unwrap();
    assert_eq!(other.header_copy().unwrap(), "header");
    drop(pin);

    // A guard of the data heap held by this thread: reentrant, and again
    // nothing is destroyed.
    let g = a.read().unwrap();
    let r = a.clone().destroy();
    assert!(
        matches!(r, Err(StructureError::Heap(HeapError::Reentrant))),
        "{r:?}"
    );
    drop(g);
    assert_eq!(a.header_copy().unwrap(), "header");

    a.destroy().unwrap();
    assert!(matches!(
        d.open(),
        Err(StructureError::Heap(HeapError::Destroyed))
    ));
    assert!(matches!(
        other.header_copy(),
        Err(StructureError::Heap(HeapError::Destroyed))
    ));
    assert!(matches!(
        other.destroy(),
        Err(StructureError::Heap(HeapError::Destroyed))
    ));
}

#[test]
fn matrix_modified_length_is_an_error_not_a_panic() {
    let pool = pool();
    let mx = SMatrix::init(&pool, &(), 3, 4, |r, c| (r * 10 + c) as u32).unwrap();
    // Drop the last row and a half through `modify`.
    mx.modify(|m, v| m.truncate(v, 6)).unwrap();
    assert_eq!(mx.dim().unwrap(), (3, 4));
    assert_eq!(mx.get_copy(1, 1).unwrap(), 11);
    assert!(matches!(
        mx.get_copy(2, 3),
        Err(StructureError::OutOfBounds { .. })
    ));
    assert!(matches!(
        mx.get(1, 2),
        Err(StructureError::OutOfBounds { .. })
    ));
    assert!(matches!(
        mx.get_pinned(2, 0),
        Err(StructureError::OutOfBounds { .. })
    ));
    assert!(matches!(
        mx.set(2, 0, &5),
        Err(StructureError::OutOfBounds { .. })
    ));
    assert!(matches!(mx.row(1), Err(StructureError::BadShape { .. })));
    assert_eq!(&*mx.row(0).unwrap(), &[0, 1, 2, 3]);
    mx.set(1, 0, &99).unwrap();
    assert_eq!(mx.to_vec().unwrap(), [0, 1, 2, 3, 99, 11]);
}

#[test]
fn failed_fills_give_the_memory_back() {
    let pool = Pool::create(4 << 20).unwrap();
    let free = pool.stats().free;
    let big = "x".repeat(100_000);
    for _ in 0..3 {
        assert!(is_heap_err(&SArray::make(&pool, &(), 100, &big)));
        assert!(is_heap_err(&SArray::init(&pool, &(), 100, |_| big.clone())));
        assert!(is_heap_err(&SArray::create(
            &pool,
            &(),
            &vec![big.clone(); 100]
        )));
        assert!(is_heap_err(&SMatrix::make(&pool, &(), 10, 10, &big)));
        assert!(is_heap_err(
            &SMatrix::init(&pool, &(), 10, 10, |_, _| big.clone())
        ));
        assert!(is_heap_err(&SMatrix::create(
            &pool,
            &(),
            10,
            10,
            &vec![big.clone(); 100]
        )));
        assert!(is_heap_err(&SArray::make(&pool, &(), 1 << 40, &0u64)));
    }
    // A destroyed heap keeps only its header page (a tombstone): 21
    // failed structures of two heaps each.
    let lost = free - pool.stats().free;
    assert!(lost <= 3 * 7 * 2 * 8192, "{lost} bytes lost");
    // The pool is still usable for structures that fit.
    let a = SArray::make(&pool, &(), 10, &big).unwrap();
    assert_eq!(a.len().unwrap(), 10);
}

#[test]
fn failed_grow_and_extend_change_nothing() {
    let pool = Pool::create(1 << 20).unwrap();
    let big = "x".repeat(50_000);
    let a = SArray::create(&pool, &(), &["a".to_string()]).unwrap();
    assert!(is_heap_err(&a.grow(100, &big)));
    assert_eq!(a.to_vec().unwrap(), ["a"]);
    let q = SQueue::<String>::create(&pool, &()).unwrap();
    q.push(&"first".to_string()).unwrap();
    let many = vec![big.clone(); 100];
    assert!(is_heap_err(&q.extend(&many)));
    assert_eq!(q.to_vec().unwrap(), ["first"]);
    a.gc().unwrap();
    q.gc().unwrap();
    q.extend(&[big.clone(), big.clone()]).unwrap();
    assert_eq!(q.len().unwrap(), 3);
    assert_eq!(q.pop_copy().unwrap().as_deref(), Some("first"));
}
