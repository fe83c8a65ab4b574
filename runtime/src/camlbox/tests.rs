//! In-process tests: the receiver and every sender map the box separately,
//! so each test also checks relocation (the sender's mapping is at another
//! address than the receiver's).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::layout::WRITING;
use super::*;

#[derive(mc::Shared, Debug, Clone, PartialEq)]
enum Shape {
    Empty,
    Circle(f64),
    Poly {
        name: String,
        points: Vec<(i32, i32)>,
    },
}

#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct Doc {
    title: String,
    tags: Vec<String>,
    parent: Option<Box<Doc>>,
    shapes: Vec<Option<Shape>>,
    flag: bool,
    c: char,
}

fn sample() -> Doc {
    Doc {
        title: "root".into(),
        tags: vec!["a".into(), "bé".into(), String::new()],
        parent: Some(Box::new(Doc {
            title: "parent".into(),
            tags: vec![],
            parent: None,
            shapes: vec![None],
            flag: false,
            c: 'x',
        })),
        shapes: vec![
            Some(Shape::Empty),
            Some(Shape::Circle(1.5)),
            None,
            Some(Shape::Poly {
                name: "tri".into(),
                points: vec![(0, 0), (1, 0), (0, 1)],
            }),
        ],
        flag: true,
        c: 'λ',
    }
}

#[test]
fn relocated_nested_values_round_trip() {
    let (mut rx, id) = Camlbox::<Doc>::create(2, 4096).unwrap();
    let tx = id.sender().unwrap();
    assert_ne!(
        tx.map.region.base(),
        rx.map.region.base(),
        "sender and receiver must map the box at different addresses"
    );
    tx.send(&sample()).unwrap();
    let slots = rx.wait_timeout(Duration::from_secs(5));
    assert_eq!(slots.len(), 1);
    {
        let m = rx.get(slots[0]).unwrap();
        assert_eq!(m.to_value(), sample());
    }
    assert_eq!(rx.get_copy(slots[0]).unwrap(), sample());
    assert_eq!(rx.messages(), 1);
    rx.delete(slots[0]);
    assert_eq!(rx.messages(), 0);
}

#[test]
fn string_in_place() {
    let (mut rx, id) = Camlbox::<String>::create(1, 100).unwrap();
    id.sender().unwrap().send(&"Hello world".into()).unwrap();
    let s = rx.wait()[0];
    assert_eq!(rx.get(s).unwrap().as_str(), "Hello world");
    rx.delete(s);
}

#[test]
fn wrong_type_is_refused() {
    let name = format!("t-wrongtype-{}", std::process::id());
    let (_rx, _id) = Camlbox::<String>::create_named(&name, 1, 64).unwrap();
    assert!(matches!(
        Sender::<u64>::open(&name),
        Err(CamlboxError::WrongType { .. })
    ));
    assert!(Sender::<String>::open(&name).is_ok());
}

#[test]
fn too_big_leaves_slot_usable() {
    let (mut rx, id) = Camlbox::<Vec<u64>>::create(1, 128).unwrap();
    let tx = id.sender().unwrap();
    for _ in 0..3 {
        match tx.send(&vec![7u64; 100]) {
            Err(CamlboxError::TooBig { needed, capacity }) => {
                assert!(needed >= 800, "needed {needed}");
                assert_eq!(capacity, 128);
            }
            other => panic!("expected TooBig, got {other:?}"),
        }
    }
    // The only slot is still free.
    tx.try_send(&vec![1, 2, 3]).unwrap();
    assert!(matches!(tx.try_send(&vec![1]), Err(CamlboxError::Full)));
    let s = rx.wait()[0];
    assert_eq!(rx.get_copy(s).unwrap(), vec![1, 2, 3]);
    rx.delete(s);
    tx.try_send(&vec![4]).unwrap();
}

#[test]
fn wake_interrupts_wait() {
    let (mut rx, id) = Camlbox::<u64>::create(1, 64).unwrap();
    let tx = id.sender().unwrap();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        tx.wake();
    });
    let t = Instant::now();
    assert!(rx.wait().is_empty());
    assert!(t.elapsed() < Duration::from_secs(5));
    h.join().unwrap();
    assert!(rx.wait_timeout(Duration::from_millis(20)).is_empty());
}

#[test]
fn send_timeout_and_try_send_when_full() {
    let (mut rx, id) = Camlbox::<u64>::create(2, 64).unwrap();
    let tx = id.sender().unwrap();
    tx.send(&1).unwrap();
    tx.send(&2).unwrap();
    assert!(matches!(tx.try_send(&3), Err(CamlboxError::Full)));
    let t = Instant::now();
    assert!(matches!(
        tx.send_timeout(&3, Duration::from_millis(50)),
        Err(CamlboxError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    let slots = rx.wait();
    assert_eq!(slots.len(), 2);
    let mut got: Vec<u64> = slots.iter().map(|&s| rx.get_copy(s).unwrap()).collect();
    got.sort();
    assert_eq!(got, vec![1, 2]);
    // Already returned slots are not returned again.
    assert!(rx.wait_timeout(Duration::from_millis(10)).is_empty());
    rx.delete(slots[0]);
    tx.send_timeout(&3, Duration::from_secs(5)).unwrap();
    assert_eq!(rx.wait(), vec![slots[0]]);
}

#[test]
fn blocked_sender_resumes_after_delete() {
    let (mut rx, id) = Camlbox::<u64>::create(1, 64).unwrap();
    let tx = id.sender().unwrap();
    tx.send(&1).unwrap();
    let h = std::thread::spawn(move || tx.send(&2));
    std::thread::sleep(Duration::from_millis(20));
    let s = rx.wait()[0];
    assert_eq!(rx.get_copy(s).unwrap(), 1);
    rx.delete(s);
    let s = rx.wait_timeout(Duration::from_secs(5))[0];
    assert_eq!(rx.get_copy(s).unwrap(), 2);
    rx.delete(s);
    h.join().unwrap().unwrap();
}

#[test]
fn get_errors() {
    let (mut rx, _id) = Camlbox::<u64>::create(2, 64).unwrap();
    assert!(matches!(rx.get(0), Err(CamlboxError::NotReady(0))));
    assert!(matches!(rx.get(9), Err(CamlboxError::NotReady(9))));
    rx.delete(9);
    rx.delete(0);
    assert!(matches!(
        Camlbox::<u64>::create(0, 64),
        Err(CamlboxError::BadGeometry)
    ));
}

#[test]
fn dead_writer_slot_is_reclaimed() {
    let (rx, id) = Camlbox::<u64>::create(1, 64).unwrap();
    let tx = id.sender().unwrap();
    // A thread claims the slot and exits without writing it.
    let tx2 = tx.clone();
    std::thread::spawn(move || __test_support::claim_and_abandon(&tx2).unwrap())
        .join()
        .unwrap();
    // Wait until the exited thread is reaped.
    let t = Instant::now();
    while rx.reclaim_dead_writers() == 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "slot not reclaimed");
        std::thread::sleep(Duration::from_millis(1));
    }
    tx.try_send(&5).unwrap();
}

/// Concurrent senders (threads, each with its own mapping) and a receiver
/// deleting as it goes: every message arrives once, no slot is lost.
/// (Slots are reported in slot order, so one sender's messages may arrive
/// out of order.)
#[test]
fn concurrent_send_delete_accounting() {
    const SENDERS: u64 = 4;
    const N: u64 = 5_000;
    let (mut rx, id) = Camlbox::<(u64, u64)>::create(3, 64).unwrap();
    let hs: Vec<_> = (0..SENDERS)
        .map(|k| {
            let tx = id.sender().unwrap();
            std::thread::spawn(move || {
                for i in 0..N {
                    tx.send(&(k, i)).unwrap();
                }
            })
        })
        .collect();
    let mut got = vec![vec![false; N as usize]; SENDERS as usize];
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total < SENDERS * N {
        assert!(Instant::now() < deadline, "timed out at {total}");
        for s in rx.wait_timeout(Duration::from_millis(100)) {
            let (k, i) = rx.get_copy(s).unwrap();
            let seen = &mut got[k as usize][i as usize];
            assert!(!*seen, "duplicate message ({k}, {i})");
            *seen = true;
            total += 1;
            rx.delete(s);
        }
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(rx.messages(), 0);
    assert!(__test_support::states(&rx).iter().all(|&s| s == 0));
}

/// Writes raw bytes into slot 0 as a sender would, and marks it ready.
fn write_raw<T: Shared>(rx: &Camlbox<T>, bytes: &[u8], root_offset: usize) {
    let r = rx.region();
    let n = bytes.len().min(r.msg_size());
    // SAFETY: slot 0's data is `msg_size` bytes of our mapping, and the
    // slot is free (the test owns it).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), r.data(0).as_ptr(), n) };
    r.slot(0).state.store(WRITING, Ordering::Relaxed);
    r.publish(0, WRITING, root_offset, n);
}

/// Copies a valid message into slot 0 and returns its bytes and root.
fn valid_image(rx: &mut Camlbox<Doc>, tx: &Sender<Doc>) -> (Vec<u8>, usize) {
    tx.send(&sample()).unwrap();
    let s = rx.wait()[0];
    assert_eq!(s, 0);
    let r = rx.region();
    let st = r.slot(0);
    let used = st.used.load(Ordering::Relaxed) as usize;
    let root = st.root_offset.load(Ordering::Relaxed) as usize;
    // SAFETY: the ready slot's first `used` bytes, read while it is ready.
    let bytes = unsafe { std::slice::from_raw_parts(r.data(0).as_ptr(), used) }.to_vec();
    rx.delete(0);
    (bytes, root)
}

/// A box, a valid message image and its root offset.
type CorruptionState = (Camlbox<Doc>, Vec<u8>, usize);

/// The number of cases each fuzz property runs.
const FUZZ_CASES: u32 = 2_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(FUZZ_CASES))]

    /// Random bytes in a slot: `get` answers `Ok` or `Err`, never crashes.
    #[test]
    fn fuzz_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                         root in 0usize..600) {
        thread_local! {
            static BOX: std::cell::RefCell<Option<Camlbox<Doc>>> = const { std::cell::RefCell::new(None) };
        }
        BOX.with(|b| {
            let mut b = b.borrow_mut();
            let rx = b.get_or_insert_with(|| Camlbox::<Doc>::create(1, 512).unwrap().0);
            write_raw(rx, &bytes, root);
            if let Ok(m) = rx.get(0) {
                let _ = m.to_value();
            }
            rx.delete(0);
        });
    }

    /// A valid message with one byte changed: `Ok` or `Err`, never a crash;
    /// when `Ok`, the value can be copied out.
    #[test]
    fn fuzz_single_byte_corruption(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        thread_local! {
            static STATE: std::cell::RefCell<Option<CorruptionState>> =
                const { std::cell::RefCell::new(None) };
        }
        STATE.with(|st| {
            let mut st = st.borrow_mut();
            let (rx, image, root) = st.get_or_insert_with(|| {
                let (mut rx, id) = Camlbox::<Doc>::create(1, 1024).unwrap();
                let tx = id.sender().unwrap();
                let (image, root) = valid_image(&mut rx, &tx);
                (rx, image, root)
            });
            let mut bytes = image.clone();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            write_raw(rx, &bytes, *root);
            if let Ok(m) = rx.get(0) {
                let _ = m.to_value();
            }
            rx.delete(0);
        });
    }
}

/// Validation cost against the copy-out cost, printed (not asserted):
/// `cargo test -p mc --release camlbox::tests::validation_cost -- --nocapture`.
#[test]
fn validation_cost() {
    fn measure<T: Shared + Clone>(v: T, label: &str) {
        let (mut rx, id) = Camlbox::<T>::create(1, 8192).unwrap();
        id.sender().unwrap().send(&v).unwrap();
        let s = rx.wait()[0];
        let n = 20_000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(rx.get(s).unwrap());
        }
        let get = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(rx.get_copy(s).unwrap());
        }
        let copy = t.elapsed() / n;
        println!("validation ({label}): get (validate) {get:?}, get_copy {copy:?}");
        rx.delete(s);
    }
    measure(7u64, "u64");
    measure(vec![1u64, 2, 3], "vec![1,2,3]");
    measure(sample(), "nested Doc");
    measure(
        (0..100).map(|i| i.to_string()).collect::<Vec<_>>(),
        "100 strings",
    );
}

/// A copy of the receiver in another process (every worker is a fork of the
/// master) cannot receive: it would free slots the real receiver borrows.
#[test]
fn only_the_creating_process_receives() {
    let (mut rx, id) = Camlbox::<u64>::create(2, 64).unwrap();
    assert!(rx.is_receiver());
    id.sender().unwrap().send(&5).unwrap();
    let slot = rx.wait()[0];
    // Pretend to be a forked copy.
    let real = rx.owner;
    rx.owner = crate::sync::home::Home::elsewhere();
    assert!(matches!(rx.get(slot), Err(CamlboxError::NotReceiver)));
    assert!(rx
        .wait_timeout(std::time::Duration::from_millis(10))
        .is_empty());
    rx.delete(slot);
    rx.owner = real;
    assert_eq!(
        rx.get_copy(slot).unwrap(),
        5,
        "the copy did not delete the slot"
    );
    rx.delete(slot);
}

#[test]
fn a_box_larger_than_shared_memory_is_out_of_memory_with_sizes() {
    let st = nix::sys::statvfs::statvfs(crate::segment::SHM_DIR).unwrap();
    let fs_size = st.blocks() as usize * st.fragment_size() as usize;
    let msg_size = 1usize << 30;
    let slots = fs_size / msg_size + 2;
    let name = format!("t-oom-{}", std::process::id());
    match Camlbox::<u64>::create_named(&name, slots, msg_size) {
        Err(CamlboxError::OutOfMemory {
            requested,
            available,
        }) => {
            assert!(requested >= slots * msg_size, "requested {requested}");
            assert!(available <= fs_size, "available {available}");
            let msg = CamlboxError::OutOfMemory {
                requested,
                available,
            }
            .to_string();
            assert!(msg.contains("out of shared memory"), "{msg}");
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    // Nothing left behind.
    assert!(!std::path::Path::new(&format!("/dev/shm/{}", segment_name(&name))).exists());
}

#[test]
fn recv_takes_every_message_once() {
    let (mut rx, id) = Camlbox::<(u64, String)>::create(4, 128).unwrap();
    let h = std::thread::spawn(move || {
        let tx = id.sender().unwrap();
        for i in 0..2000u64 {
            tx.send_timeout(&(i, i.to_string()), Duration::from_secs(10))
                .unwrap();
        }
    });
    let mut got = vec![false; 2000];
    for _ in 0..2000u64 {
        let (n, s) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(s, n.to_string());
        assert!(!std::mem::replace(&mut got[n as usize], true), "{n} twice");
    }
    h.join().unwrap();
    assert_eq!(rx.messages(), 0);
    assert!(matches!(
        rx.recv_timeout(Duration::ZERO),
        Err(CamlboxError::Timeout)
    ));
}

#[test]
fn recv_leaves_the_slots_wait_returned() {
    let (mut rx, id) = Camlbox::<u64>::create(4, 64).unwrap();
    let tx = id.sender().unwrap();
    tx.send(&1).unwrap();
    let slots = rx.wait();
    assert_eq!(slots.len(), 1);
    tx.send(&2).unwrap();
    assert_eq!(rx.recv().unwrap(), 2);
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(5)),
        Err(CamlboxError::Timeout)
    ));
    assert_eq!(rx.get_copy(slots[0]).unwrap(), 1);
    rx.delete(slots[0]);
    assert_eq!(rx.messages(), 0);
}

#[test]
fn recv_is_woken_and_reads_in_place() {
    let (mut rx, id) = Camlbox::<Vec<String>>::create(2, 256).unwrap();
    let tx = id.sender().unwrap();
    tx.wake();
    assert!(matches!(rx.recv(), Err(CamlboxError::Woken)));
    tx.send(&vec!["a".into(), "bc".into()]).unwrap();
    let total = rx
        .recv_with(|v| v.iter().map(|s| s.len()).sum::<usize>())
        .unwrap();
    assert_eq!(total, 3);
    assert!(matches!(
        rx.recv_with_timeout(Duration::from_millis(5), |v| v.len()),
        Err(CamlboxError::Timeout)
    ));
}

#[test]
fn recv_deletes_invalid_messages_and_goes_on() {
    let (mut rx, id) = Camlbox::<String>::create(2, 64).unwrap();
    // A string whose pointer leads outside the slot.
    let mut bad = vec![0u8; 24];
    bad[..8].copy_from_slice(&usize::MAX.to_le_bytes());
    bad[8..16].copy_from_slice(&5usize.to_le_bytes());
    write_raw(&rx, &bad, 0);
    assert!(matches!(rx.recv(), Err(CamlboxError::Invalid(_))));
    assert_eq!(rx.messages(), 0);
    id.sender().unwrap().send(&"ok".to_string()).unwrap();
    assert_eq!(rx.recv().unwrap(), "ok");
}

#[test]
fn recv_with_a_panicking_reader_deletes_the_message() {
    let (mut rx, id) = Camlbox::<u64>::create(2, 64).unwrap();
    let tx = id.sender().unwrap();
    tx.send(&1).unwrap();
    tx.send(&2).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.recv_with(|_| panic!("reader fails"))
    }));
    assert!(r.is_err());
    assert_eq!(rx.messages(), 1);
    assert_eq!(rx.recv().unwrap(), 2);
}
