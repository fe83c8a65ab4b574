//! Tests of the `ring` module.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

fn pool() -> Pool {
    Pool::create(16 << 20).unwrap()
}

#[test]
fn values_come_out_in_order_over_many_laps() {
    let pool = pool();
    let r = Ring::<[u32; 3]>::create(&pool, 3).unwrap();
    assert_eq!(r.capacity(), 3);
    for lap in 0..100u32 {
        r.push([lap, 1, 2]).unwrap();
        r.push_slice(&[[lap, 3, 4], [lap, 5, 6]]).unwrap();
        assert!(matches!(r.try_push([0; 3]), Err(RingError::Full)));
        assert_eq!(r.len(), 3);
        assert_eq!(r.pop().unwrap(), [lap, 1, 2]);
        let mut out = Vec::new();
        assert_eq!(r.pop_into(&mut out, 5).unwrap(), 2);
        assert_eq!(out, [[lap, 3, 4], [lap, 5, 6]]);
        assert_eq!(r.try_pop().unwrap(), None);
        assert!(r.is_empty());
    }
    assert!(matches!(
        r.pop_timeout(Duration::from_millis(5)),
        Err(RingError::Timeout)
    ));
    r.push_slice(&[[9; 3]; 3]).unwrap();
    assert!(matches!(
        r.push_timeout([1; 3], Duration::from_millis(5)),
        Err(RingError::Timeout)
    ));
}

#[test]
fn sleepers_are_woken_and_a_dead_sleeper_leaves_no_count() {
    let pool = pool();
    let r = Ring::<u64>::create(&pool, 2).unwrap();
    let d = r.descr();
    // A consumer asleep on the empty ring, and a producer asleep on the
    // full one, each woken by the other side.
    let got = std::thread::scope(|s| {
        let c = s.spawn(|| d.open().unwrap().pop().unwrap());
        std::thread::sleep(Duration::from_millis(100));
        r.push(5).unwrap();
        c.join().unwrap()
    });
    assert_eq!(got, 5);
    r.push_slice(&[1, 2]).unwrap();
    std::thread::scope(|s| {
        let p = s.spawn(|| d.open().unwrap().push(3).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(r.pop().unwrap(), 1);
        p.join().unwrap();
    });
    let mut out = Vec::new();
    r.pop_into(&mut out, 5).unwrap();
    assert_eq!(out, [2, 3]);
    // What a consumer killed in its sleep leaves: a count of 1. The
    // next push wakes (nobody) and takes the count.
    let h = r.header();
    h.empty_waiters.fetch_add(1, Ordering::SeqCst);
    r.push(4).unwrap();
    assert_eq!(h.empty_waiters.load(Ordering::SeqCst), 0);
    assert_eq!(r.pop().unwrap(), 4);
}

#[test]
fn bad_capacities_and_types_are_errors() {
    let pool = pool();
    for c in [0, 1] {
        let e = Ring::<u64>::create(&pool, c).unwrap_err();
        assert!(matches!(e, RingError::BadCapacity { .. }), "{e}");
    }
    let e = Ring::<u64>::create(&pool, usize::MAX / 4).unwrap_err();
    assert!(matches!(e, RingError::BadCapacity { .. }), "{e}");
    let e = Ring::<u64>::create(&pool, 1 << 30).unwrap_err();
    assert!(matches!(e, RingError::Pool(_)), "{e}");
    let r = Ring::<u64>::create(&pool, 8).unwrap();
    let d = RingDescr::<u32> {
        mem: r.mem.descr(),
        _type: PhantomData,
    };
    let e = d.open().unwrap_err();
    assert!(matches!(e, RingError::WrongType { .. }), "{e}");
    assert!(e.to_string().contains("another type"), "{e}");
    // Raw pool memory is no ring.
    let raw = pool.alloc_mem(4096).unwrap();
    let d = RingDescr::<u64> {
        mem: raw.descr(),
        _type: PhantomData,
    };
    assert!(matches!(d.open(), Err(RingError::NotARing)));
    // A ring whose last handle is gone cannot be opened.
    let d = r.descr();
    drop(r);
    assert!(matches!(d.open(), Err(RingError::Pool(_))));
}

/// A thread that dies holding a lock, after publishing values without
/// counting them (producer) or emptying slots without counting them
/// (consumer): the next holder counts them.
#[test]
fn a_holder_that_died_is_counted_up_to_what_it_did() {
    let pool = pool();
    let r = Ring::<u64>::create(&pool, 4).unwrap();
    let d = r.descr();
    std::thread::spawn(move || {
        let r = d.open().unwrap();
        let h = r.header();
        h.producers.lock().unwrap();
        for t in 0..2 {
            let (seq, words) = r.slot(t);
            write_value(words, &(10 + t));
            seq.store(t + 1, Ordering::Release);
        }
        // Dies here: the lock stays taken, the count at 0.
        drop(r);
    })
    .join()
    .unwrap();
    r.push(12).unwrap();
    assert_eq!(r.len(), 3);
    let d = r.descr();
    std::thread::spawn(move || {
        let r = d.open().unwrap();
        let h = r.header();
        h.consumers.lock().unwrap();
        let (seq, words) = r.slot(0);
        assert_eq!(read_value::<u64>(words), 10);
        seq.store(r.capacity, Ordering::Release);
        drop(r);
    })
    .join()
    .unwrap();
    let mut out = Vec::new();
    r.pop_into(&mut out, 10).unwrap();
    assert_eq!(out, [11, 12]);
    assert!(r.is_empty());
}

/// Dies holding `lock` of the ring `d` names, after `f` (on a thread
/// of its own, which then ends).
fn die_holding(d: &RingDescr<u64>, producers: bool, f: impl FnOnce(&Ring<u64>) + Send) {
    let d = d.clone();
    std::thread::scope(|s| {
        s.spawn(move || {
            let r = d.open().unwrap();
            let h = r.header();
            let m = if producers {
                &h.producers
            } else {
                &h.consumers
            };
            m.lock().unwrap();
            f(&r);
            drop(r);
        });
    });
}

/// A dead producer's values that a consumer already took, before any
/// producer repaired the count: the count still moves past them.
#[test]
fn values_of_a_dead_producer_taken_before_the_repair() {
    let pool = pool();
    let r = Ring::<u64>::create(&pool, 4).unwrap();
    die_holding(&r.descr(), true, |r| {
        for t in 0..2 {
            let (seq, words) = r.slot(t);
            write_value(words, &(10 + t));
            seq.store(t + 1, Ordering::Release);
        }
    });
    // Consumers do not wait for producers: both values come out.
    assert_eq!(r.try_pop().unwrap(), Some(10));
    assert_eq!(r.try_pop().unwrap(), Some(11));
    assert_eq!(r.try_pop().unwrap(), None);
    // The next producer takes the lock over: room for 4 again.
    r.push_slice(&[1, 2, 3, 4]).unwrap();
    assert!(matches!(r.try_push(5), Err(RingError::Full)));
    let mut out = Vec::new();
    r.pop_into(&mut out, 9).unwrap();
    assert_eq!(out, [1, 2, 3, 4]);
}

/// A dead consumer's emptied slot that a producer already filled again,
/// before any consumer repaired the count.
#[test]
fn slots_of_a_dead_consumer_filled_before_the_repair() {
    let pool = pool();
    let r = Ring::<u64>::create(&pool, 2).unwrap();
    r.push_slice(&[1, 2]).unwrap();
    die_holding(&r.descr(), false, |r| {
        let (seq, words) = r.slot(0);
        assert_eq!(read_value::<u64>(words), 1);
        seq.store(r.capacity, Ordering::Release);
    });
    // Producers do not wait for consumers: the freed slot takes 3.
    r.try_push(3).unwrap();
    assert!(matches!(r.try_push(4), Err(RingError::Full)));
    // The next consumer takes the lock over and goes on with 2.
    assert_eq!(r.pop().unwrap(), 2);
    assert_eq!(r.pop().unwrap(), 3);
    assert_eq!(r.try_pop().unwrap(), None);
    r.push(4).unwrap();
    assert_eq!(r.pop().unwrap(), 4);
}

/// A consumer may take a value whose producer has not counted it yet:
/// `head` is then past `tail` for a moment, and a producer waiting for
/// room sees room (not an overflow).
#[test]
fn head_past_tail_for_a_moment() {
    let pool = pool();
    let r = Ring::<u64>::create(&pool, 2).unwrap();
    let h = r.header();
    h.head.store(1, Ordering::Relaxed);
    assert!(r.room(None).unwrap());
    assert_eq!(r.len(), 0);
    h.head.store(0, Ordering::Relaxed);
}

#[test]
fn threads_hand_over_every_value_once() {
    // One handle may be shared by threads, too.
    fn send_sync<X: Send + Sync>(_: &X) {}
    let pool = pool();
    let r = Ring::<u64>::create(&pool, 16).unwrap();
    send_sync(&r);
    let n = 20_000u64;
    // Every value taken, by either consumer.
    let taken = &std::sync::atomic::AtomicUsize::new(0);
    let got = std::thread::scope(|s| {
        for p in 0..2u64 {
            let d = r.descr();
            s.spawn(move || {
                let r = d.open().unwrap();
                for i in 0..n {
                    if i % 3 == 0 {
                        r.push_slice(&[p << 32 | i]).unwrap();
                    } else {
                        r.push(p << 32 | i).unwrap();
                    }
                }
            });
        }
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let d = r.descr();
                s.spawn(move || {
                    let r = d.open().unwrap();
                    let mut got = Vec::new();
                    while taken.load(Ordering::SeqCst) < 2 * n as usize {
                        let before = got.len();
                        if got.len() % 2 == 0 {
                            if let Ok(v) = r.pop_timeout(Duration::from_millis(1)) {
                                got.push(v);
                            }
                        } else {
                            r.pop_into(&mut got, 7).unwrap();
                        }
                        taken.fetch_add(got.len() - before, Ordering::SeqCst);
                    }
                    got
                })
            })
            .collect();
        consumers
            .into_iter()
            .map(|c| c.join().unwrap())
            .collect::<Vec<_>>()
    });
    // Each consumer sees each producer's values in order, and every
    // value arrives once.
    let mut all = Vec::new();
    for g in &got {
        for p in 0..2u64 {
            let mine: Vec<u64> = g.iter().copied().filter(|v| v >> 32 == p).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "producer {p} out of order"
            );
        }
        all.extend_from_slice(g);
    }
    all.sort_unstable();
    let want: Vec<u64> = (0..2u64)
        .flat_map(|p| (0..n).map(move |i| p << 32 | i))
        .collect();
    assert_eq!(all, want);
}

#[derive(Debug, Clone)]
enum Op {
    Push(u16),
    PushSlice(Vec<u16>),
    Pop,
    PopInto(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u16>().prop_map(Op::Push),
        proptest::collection::vec(any::<u16>(), 0..6).prop_map(Op::PushSlice),
        Just(Op::Pop),
        (0usize..6).prop_map(Op::PopInto),
    ]
}

proptest! {
    #[test]
    fn matches_a_bounded_vecdeque(cap in 2usize..9, ops in proptest::collection::vec(op(), 0..120)) {
        let pool = pool();
        let r = Ring::<u16>::create(&pool, cap).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(v) => {
                    let full = model.len() == cap;
                    prop_assert_eq!(matches!(r.try_push(v), Err(RingError::Full)), full);
                    if !full {
                        model.push_back(v);
                    }
                }
                Op::PushSlice(vs) => {
                    // Only what fits, so that nothing waits.
                    let room = cap - model.len();
                    let take = &vs[..vs.len().min(room)];
                    r.push_slice(take).unwrap();
                    model.extend(take.iter().copied());
                }
                Op::Pop => prop_assert_eq!(r.try_pop().unwrap(), model.pop_front()),
                Op::PopInto(max) => {
                    let mut out = Vec::new();
                    let n = r.pop_into(&mut out, max).unwrap();
                    let want: Vec<u16> = model.drain(..max.min(model.len())).collect();
                    prop_assert_eq!(n, want.len());
                    prop_assert_eq!(out, want);
                }
            }
            prop_assert_eq!(r.len(), model.len());
        }
    }
}
