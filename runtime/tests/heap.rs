//! In-process tests of heaps: property tests of copy in / copy out and of
//! random mutation sequences against a local model (values intact, memory
//! bounded), the tutorial's "How to mutate shared values" sequence under
//! GC pressure, and bad input that must give a clear `Err`.
//!
//! Bad input that needs a separate process (another format version, an
//! address range already taken) is in `heap_processes.rs`.

// Fields read only by derived impls count as never read.
#![allow(dead_code)]

use std::mem::size_of;

use mc::value::deep_size;
use mc::{Heap, HeapError, HeapOptions, PinGuard, Pool, PoolError, Repr, Shared};
use proptest::prelude::*;

#[derive(Shared, Debug, Clone, PartialEq)]
enum Kind {
    Plain,
    Count(u64),
    Labelled { label: String, marks: Vec<i16> },
}

#[derive(Shared, Debug, Clone, PartialEq)]
struct Sub {
    x: i64,
    words: Vec<String>,
}

#[derive(Shared, Debug, Clone, PartialEq)]
struct Item {
    name: String,
    vals: Vec<u32>,
    kind: Option<Kind>,
    sub: Sub,
}

#[derive(Shared, Debug, Clone, PartialEq)]
struct Root {
    title: String,
    n: u64,
    items: Vec<Item>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z0-9 é]{1,40}"]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Plain),
        any::<u64>().prop_map(Kind::Count),
        (text(), prop::collection::vec(any::<i16>(), 0..6))
            .prop_map(|(label, marks)| Kind::Labelled { label, marks }),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    (
        text(),
        prop::collection::vec(any::<u32>(), 0..8),
        prop::option::of(kind()),
        any::<i64>(),
        prop::collection::vec(text(), 0..4),
    )
        .prop_map(|(name, vals, kind, x, words)| Item {
            name,
            vals,
            kind,
            sub: Sub { x, words },
        })
}

fn root() -> impl Strategy<Value = Root> {
    (text(), any::<u64>(), prop::collection::vec(item(), 0..6)).prop_map(|(title, n, items)| Root {
        title,
        n,
        items,
    })
}

/// Live data of a value as the allocator sees it: its deep size plus the
/// boxed inline part.
fn live_data<T: Shared>(v: &T) -> usize {
    deep_size(v) + size_of::<Repr<T>>()
}

/// The bound checked after a collection: twice the live data (8-byte
/// block headers, 16-byte minimum blocks, alignment) plus a small constant.
fn live_bound(data: usize) -> usize {
    2 * data + 512
}

/// Unused room of the vectors reachable from a root in the heap (rounded
/// as the allocator rounds): the allocator counts it as live, the model's
/// deep size does not. Vectors double when full and shrink below a
/// quarter, so this is bounded by a small multiple of the elements.
fn vec_slack(r: &Repr<Root>) -> usize {
    fn room<R>(v: &mc::value::SharedVec<R>) -> usize {
        (v.capacity() - v.len()) * size_of::<R>()
    }
    let mut n = room(&r.items);
    for it in r.items.iter() {
        n += room(&it.vals) + room(&it.sub.words);
        if let Some(SharedKind::Labelled { marks, .. }) = it.kind.as_ref() {
            n += room(marks);
        }
    }
    n
}

#[derive(Debug, Clone)]
enum Op {
    SetTitle(String),
    SwapTitle(String),
    SetN(u64),
    Push(Item),
    Pop,
    Truncate(usize),
    SetItem(usize, Item),
    SetName(usize, String),
    PushWord(usize, String),
    SetKind(usize, Option<Kind>),
    Swap(usize, usize),
    Assign(Root),
    Gc,
    Pin,
    Unpin(usize),
    Garbage(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => text().prop_map(Op::SetTitle),
        1 => text().prop_map(Op::SwapTitle),
        1 => any::<u64>().prop_map(Op::SetN),
        3 => item().prop_map(Op::Push),
        2 => Just(Op::Pop),
        1 => (0usize..8).prop_map(Op::Truncate),
        1 => (0usize..8, item()).prop_map(|(i, it)| Op::SetItem(i, it)),
        1 => (0usize..8, text()).prop_map(|(i, s)| Op::SetName(i, s)),
        1 => (0usize..8, text()).prop_map(|(i, s)| Op::PushWord(i, s)),
        1 => (0usize..8, prop::option::of(kind())).prop_map(|(i, k)| Op::SetKind(i, k)),
        1 => (0usize..8, 0usize..8).prop_map(|(i, j)| Op::Swap(i, j)),
        1 => root().prop_map(Op::Assign),
        2 => Just(Op::Gc),
        1 => Just(Op::Pin),
        1 => (0usize..4).prop_map(Op::Unpin),
        1 => (1usize..200).prop_map(Op::Garbage),
    ]
}

/// Applies `op` to the heap and to the model.
fn apply<'h>(
    heap: &'h Heap<Root>,
    model: &mut Root,
    pins: &mut Vec<(PinGuard<'h, Root>, Root)>,
    op: &Op,
) -> Result<(), HeapError> {
    match op {
        Op::SetTitle(s) => {
            heap.modify(|m, r| m.set_str(r.project().title, s))??;
            model.title = s.clone();
        }
        Op::SwapTitle(s) => {
            let old = heap.modify(|m, r| -> Result<String, HeapError> {
                let fresh = m.add(s)?;
                let mut fresh = fresh;
                m.swap(r.project().title, fresh.as_mut())?;
                // `fresh` now holds the old title: still alive until the
                // modification ends.
                Ok(fresh.as_str().to_owned())
            })??;
            assert_eq!(old, model.title);
            model.title = s.clone();
        }
        Op::SetN(n) => {
            heap.modify(|_, r| *r.project().n.get_mut() = *n)?;
            model.n = *n;
        }
        Op::Push(it) => {
            heap.modify(|m, r| m.push(r.project().items, it))??;
            model.items.push(it.clone());
        }
        Op::Pop => {
            let got = heap.modify(|m, r| m.pop::<Item>(r.project().items))?;
            assert_eq!(got, model.items.pop());
        }
        Op::Truncate(n) => {
            heap.modify(|m, r| m.truncate(r.project().items, *n))?;
            model.items.truncate(*n);
        }
        Op::SetItem(i, it) => {
            let len = model.items.len();
            if len > 0 {
                let i = i % len;
                heap.modify(|m, r| {
                    let place = r.project().items.get_pin(i).expect("in range");
                    m.set::<Item>(place, it)
                })??;
                model.items[i] = it.clone();
            }
        }
        Op::SetName(i, s) => {
            let len = model.items.len();
            if len > 0 {
                let i = i % len;
                heap.modify(|m, r| {
                    let place = r.project().items.get_pin(i).expect("in range");
                    m.set_str(place.project().name, s)
                })??;
                model.items[i].name = s.clone();
            }
        }
        Op::PushWord(i, s) => {
            let len = model.items.len();
            if len > 0 {
                let i = i % len;
                heap.modify(|m, r| {
                    let place = r.project().items.get_pin(i).expect("in range");
                    m.push(place.project().sub.project().words, s)
                })??;
                model.items[i].sub.words.push(s.clone());
            }
        }
        Op::SetKind(i, k) => {
            let len = model.items.len();
            if len > 0 {
                let i = i % len;
                heap.modify(|m, r| {
                    let place = r.project().items.get_pin(i).expect("in range");
                    m.set::<Option<Kind>>(place.project().kind, k)
                })??;
                model.items[i].kind = k.clone();
            }
        }
        Op::Swap(i, j) => {
            let len = model.items.len();
            if len > 1 {
                let (i, j) = (i % len, j % len);
                if i != j {
                    let (i, j) = (i.min(j), i.max(j));
                    heap.modify(|m, r| {
                        let mut all: Vec<_> = r.project().items.iter_pin().collect();
                        let b = all.swap_remove(j);
                        let a = all.swap_remove(i);
                        m.swap(a, b)
                    })??;
                    model.items.swap(i, j);
                }
            }
        }
        Op::Assign(v) => {
            heap.assign(v)?;
            *model = v.clone();
        }
        Op::Gc => {
            heap.gc()?;
            let s = heap.stats()?;
            let mut data = live_data(model) + vec_slack(&*heap.read()?);
            for (g, v) in pins.iter() {
                data += live_data(v) + vec_slack(g);
            }
            assert!(
                s.live_bytes <= live_bound(data),
                "live bytes {} after gc, live data {data}",
                s.live_bytes
            );
            assert!(
                s.chunk_bytes <= 4 * live_bound(data) + 8 * 8192,
                "chunk bytes {} after gc, live data {data}",
                s.chunk_bytes
            );
        }
        Op::Pin => {
            if pins.len() < 4 {
                pins.push((heap.pin()?, model.clone()));
            }
        }
        Op::Unpin(i) => {
            if !pins.is_empty() {
                let i = i % pins.len();
                pins.remove(i);
            }
        }
        Op::Garbage(n) => {
            // Values added and never linked: garbage at once.
            heap.modify(|m, _| -> Result<(), HeapError> {
                for k in 0..*n {
                    m.add(&format!("garbage {k}"))?;
                }
                Ok(())
            })??;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn copy_in_copy_out(v in root()) {
        let pool = Pool::create(16 << 20).unwrap();
        let heap = Heap::create(&pool, &v).unwrap();
        prop_assert_eq!(heap.copy().unwrap(), v.clone());
        prop_assert_eq!(Root::from_repr(&heap.pin().unwrap()), v.clone());
        heap.gc().unwrap();
        prop_assert_eq!(heap.copy().unwrap(), v.clone());
        let s = heap.stats().unwrap();
        prop_assert!(s.live_bytes <= live_bound(live_data(&v)));
        heap.destroy().unwrap();
    }

    #[test]
    fn mutation_sequences(start in root(), ops in prop::collection::vec(op(), 1..60)) {
        let pool = Pool::create(64 << 20).unwrap();
        let heap = Heap::create_with(&pool, &start, HeapOptions::new().chunk_size(8192)).unwrap();
        let mut model = start;
        let mut pins = Vec::new();
        for op in &ops {
            apply(&heap, &mut model, &mut pins, op).unwrap();
            prop_assert_eq!(&heap.copy().unwrap(), &model, "after {:?}", op);
            for (g, v) in &pins {
                prop_assert_eq!(&Root::from_repr(g), v, "pinned value changed after {:?}", op);
            }
        }
        drop(pins);
        apply(&heap, &mut model, &mut Vec::new(), &Op::Gc).unwrap();
        heap.destroy().unwrap();
        // Everything goes back but the tombstone page of the header.
        prop_assert_eq!(pool.stats().used, mc::pool::PAGE_SIZE);
    }
}

#[derive(Shared, Debug, Clone, PartialEq)]
struct U {
    data1: String,
    data2: String,
}

/// The tutorial's "How to mutate shared values": a swap in place, then
/// the replacement that crashed Netmulticore now and then (a GC inside the
/// second `add` collecting the old `data1`, which was then printed). Here
/// the collector never runs inside a modification, so the old value stays
/// alive until it ends — checked under heavy GC pressure.
#[test]
fn tutorial_mutation_under_gc_pressure() {
    let pool = Pool::create(64 << 20).unwrap();
    let heap = Heap::create_with(
        &pool,
        &U {
            data1: "initial string 1".into(),
            data2: "initial string 2".into(),
        },
        HeapOptions::new().chunk_size(8192),
    )
    .unwrap();
    let garbage = |m: &mc::Mutator<'_>, n: usize| -> Result<(), HeapError> {
        for i in 0..n {
            m.add(&vec![format!("garbage {i}"); 8])?;
        }
        Ok(())
    };
    let mut printed = Vec::new();
    for round in 0..50 {
        // Swap in place: no mutator needed for values of the same heap.
        heap.modify(|m, u| {
            let p = u.project();
            m.swap(p.data1, p.data2)
        })
        .unwrap()
        .unwrap();
        heap.gc().unwrap();
        heap.modify(|m, _| garbage(m, 300)).unwrap().unwrap();
        let out = heap
            .modify(|m, u| -> Result<String, HeapError> {
                let mut u = u;
                let data2 = u.as_mut().project().data2.as_str().to_owned();
                let mut new1 = m.add(&format!("Previously in data2: {data2}"))?;
                // `new1` now holds the old data1: `p` of the tutorial.
                m.swap(u.as_mut().project().data1, new1.as_mut())?;
                let p = new1.into_ref().get_ref();
                garbage(m, 500)?;
                let new2 = m.add(&format!("Previously in data1: {}", p.as_str()))?;
                m.swap(u.as_mut().project().data2, new2)?;
                garbage(m, 500)?;
                Ok(format!("p={}", p.as_str()))
            })
            .unwrap()
            .unwrap();
        printed.push(out);
        heap.gc().unwrap();
        let v = heap.copy().unwrap();
        if round == 0 {
            assert_eq!(printed[0], "p=initial string 2");
            assert_eq!(v.data1, "Previously in data2: initial string 1");
            assert_eq!(v.data2, "Previously in data1: initial string 2");
        }
        // Bounded memory: the garbage of each round is collected.
        let s = heap.stats().unwrap();
        assert!(s.live_bytes <= live_bound(live_data(&v)), "{s:?}");
        // Start the next round from short strings again.
        heap.assign(&U {
            data1: "initial string 1".into(),
            data2: "initial string 2".into(),
        })
        .unwrap();
    }
    assert!(printed.iter().all(|p| p == "p=initial string 2"));
    assert!(heap.stats().unwrap().gc_runs >= 100);
    heap.destroy().unwrap();
}

fn shm_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(name)
}

#[test]
fn attach_a_foreign_segment() {
    let name = format!("mc.pool.xyz-{}", std::process::id());
    let bytes: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(shm_path(&name), bytes).unwrap();
    let r = Pool::attach(&format!("xyz-{}", std::process::id()));
    let _ = std::fs::remove_file(shm_path(&name));
    let e = r.unwrap_err();
    assert!(matches!(e, PoolError::NotAPool(..)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("not an mc"), "{msg}");
    assert!(msg.contains("remove it"), "{msg}");
}

#[test]
fn open_root_with_another_type() {
    let pool = Pool::create(1 << 20).unwrap();
    let heap = Heap::create(&pool, &String::from("a string")).unwrap();
    heap.set_pool_root();
    let e = Heap::<u64>::open_root(&pool).unwrap_err();
    assert!(matches!(e, HeapError::WrongType { .. }), "{e:?}");
    assert!(e
        .to_string()
        .contains("open it with the type it was created with"));
    assert_eq!(
        Heap::<String>::open_root(&pool).unwrap().copy().unwrap(),
        "a string"
    );
}

#[test]
fn open_root_without_root() {
    let pool = Pool::create(1 << 20).unwrap();
    let e = Heap::<u64>::open_root(&pool).unwrap_err();
    assert!(matches!(e, HeapError::NoRootHeap), "{e:?}");
    assert!(e.to_string().contains("set_pool_root"), "{e}");
}

#[test]
fn pool_too_small() {
    let e = Pool::create(1000).unwrap_err();
    assert!(matches!(e, PoolError::BadSize { size: 1000, .. }), "{e:?}");
    assert!(e.to_string().contains("at least 64 KiB"), "{e}");
}

#[test]
fn pool_too_small_for_the_value() {
    let pool = Pool::create(256 << 10).unwrap();
    let big = vec![7u64; 100_000];
    let e = Heap::create(&pool, &big).unwrap_err();
    assert!(matches!(e, HeapError::OutOfMemory { .. }), "{e:?}");
    assert!(e.to_string().contains("make the pool larger"), "{e}");
    // The failed heap took nothing with it.
    assert_eq!(pool.stats().used, 0);
    // ... and a value too large for what is left inside a modification.
    let heap = Heap::create(&pool, &Vec::<u64>::new()).unwrap();
    let e = heap
        .modify(|m, r| m.set::<Vec<u64>>(r, &big))
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, HeapError::OutOfMemory { .. }), "{e:?}");
    assert_eq!(heap.copy().unwrap(), Vec::<u64>::new());
}

#[test]
fn descriptor_of_a_destroyed_heap() {
    let pool = Pool::create(1 << 20).unwrap();
    let heap = Heap::create(&pool, &1u64).unwrap();
    let d = heap.descr();
    let other = heap.clone();
    heap.destroy().unwrap();
    let e = d.open().unwrap_err();
    assert!(matches!(e, HeapError::Destroyed), "{e:?}");
    assert!(e.to_string().contains("destroyed"), "{e}");
    assert!(matches!(other.read(), Err(HeapError::Destroyed)));
    assert!(matches!(other.modify(|_, _| ()), Err(HeapError::Destroyed)));
}

/// Descriptors are shared values: a heap can hold the descriptors of other
/// heaps, pools, camlboxes and structures, and they open what they name.
#[derive(Shared, Debug, Clone, PartialEq)]
struct Directory {
    pool: mc::PoolDescr,
    data: mc::HeapDescr<Vec<u64>>,
    inbox: mc::CamlboxDescr<String>,
    queue: mc::SQueueDescr<u64>,
    sref: mc::SRefDescr<String>,
}

#[test]
fn descriptors_are_shared_values() {
    let pool = Pool::create(16 << 20).unwrap();
    let data = Heap::create(&pool, &vec![4u64, 5, 6]).unwrap();
    let (mut rx, inbox) = mc::Camlbox::<String>::create(1, 128).unwrap();
    let queue = mc::SQueue::<u64>::create(&pool, &()).unwrap();
    queue.push(&9).unwrap();
    let sref = mc::SRef::new(&pool, &"hello".to_string()).unwrap();
    let dir = Directory {
        pool: pool.descr(),
        data: data.descr(),
        inbox,
        queue: queue.descr(),
        sref: sref.descr(),
    };
    let index = Heap::create(&pool, &dir).unwrap();
    // Read in place: each field gives its descriptor back.
    {
        let g = index.read().unwrap();
        assert_eq!(g.pool.get().open().unwrap().name(), pool.name());
        assert_eq!(g.data.get().open().unwrap().copy().unwrap(), vec![4, 5, 6]);
        g.inbox
            .get()
            .sender()
            .unwrap()
            .send(&"mail".into())
            .unwrap();
        assert_eq!(g.queue.get().open().unwrap().pop_copy().unwrap(), Some(9));
        assert_eq!(g.sref.get().open().unwrap().copy().unwrap(), "hello");
    }
    let slot = rx.wait()[0];
    assert_eq!(rx.get_copy(slot).unwrap(), "mail");
    rx.delete(slot);
    // Copied out whole.
    assert_eq!(index.copy().unwrap(), dir);
    // Through a camlbox (validated on receipt).
    let (mut rx2, id2) = mc::Camlbox::<Directory>::create(1, 4096).unwrap();
    id2.sender().unwrap().send(&dir).unwrap();
    let slot = rx2.wait()[0];
    assert_eq!(rx2.get_copy(slot).unwrap(), dir);
    rx2.delete(slot);
    // The element type is part of the type's fingerprint.
    assert_ne!(
        <mc::HeapDescr<u64> as Shared>::FINGERPRINT,
        <mc::HeapDescr<u32> as Shared>::FINGERPRINT
    );
}
