//! Camlbox latency and throughput between two processes (parent and a
//! forked child), against baselines measured in the same run: a raw atomic
//! ping-pong (the hardware floor), pipes, Unix sockets, `ipc-channel` and
//! `iceoryx2`.
//!
//! - Latency: `rounds` ping-pongs of a `u64`; one-way latency is half the
//!   round trip. Both sides of every transport busy-poll where the
//!   transport allows it (camlbox waits spin before they sleep; pipes,
//!   sockets and ipc-channel block in the kernel).
//! - Throughput: the child sends `count` `u64` messages, the parent
//!   receives them (`recv_timeout`: wait, copy out, delete); ns per
//!   message. Camlboxes use 10 slots of 512 bytes,
//!   as in Netmulticore's `camlbox_speed`.
//!
//! Prints absolute figures and ratios, best of 3 runs each; then camlbox
//! against the two floors in alternated pairs, with the median ratios.
//! Usage: `cargo bench -p mc-benches --bench camlbox [-- ROUNDS]
//! [--floor-only]` (the second runs only the alternated pairs).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mc::camlbox::Sender;
use mc::Camlbox;
// `timed(n, parent, child)`: ns per `n` of `parent`, with `child` in a forked process.
use mc_testkit::{ns_per_op_with_child as timed, shared};

fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn box_name(what: &str) -> String {
    format!("bench-{what}-{}", std::process::id())
}

// --- raw atomics -----------------------------------------------------------

struct Pair {
    ping: AtomicU64,
    _pad: [u64; 15],
    pong: AtomicU64,
}

fn raw_latency(rounds: u64) -> f64 {
    let p = shared(Pair {
        ping: AtomicU64::new(0),
        _pad: [0; 15],
        pong: AtomicU64::new(0),
    });
    p.ping.store(0, Ordering::SeqCst);
    p.pong.store(0, Ordering::SeqCst);
    timed(
        rounds,
        |n| {
            for i in 1..=n {
                p.ping.store(i, Ordering::Release);
                while p.pong.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
            }
        },
        |n| {
            for i in 1..=n {
                while p.ping.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                p.pong.store(i, Ordering::Release);
            }
        },
    ) / 2.0
}

/// Throughput of a single-producer single-consumer ring of `u64` in shared
/// memory (10 entries, like the camlbox), busy-polling.
fn raw_throughput(count: u64) -> f64 {
    struct Ring {
        head: AtomicU64,
        _p1: [u64; 15],
        tail: AtomicU64,
        _p2: [u64; 15],
        data: [AtomicU64; 10],
    }
    let r = shared(Ring {
        head: AtomicU64::new(0),
        _p1: [0; 15],
        tail: AtomicU64::new(0),
        _p2: [0; 15],
        data: Default::default(),
    });
    r.head.store(0, Ordering::SeqCst);
    r.tail.store(0, Ordering::SeqCst);
    timed(
        count,
        |n| {
            let mut sum = 0;
            for i in 0..n {
                while r.head.load(Ordering::Acquire) == i {
                    std::hint::spin_loop();
                }
                sum += r.data[(i % 10) as usize].load(Ordering::Relaxed);
                r.tail.store(i + 1, Ordering::Release);
            }
            assert_eq!(sum, n);
        },
        |n| {
            for i in 0..n {
                while i - r.tail.load(Ordering::Acquire) >= 10 {
                    std::hint::spin_loop();
                }
                r.data[(i % 10) as usize].store(1, Ordering::Relaxed);
                r.head.store(i + 1, Ordering::Release);
            }
        },
    )
}

// --- camlbox ---------------------------------------------------------------

/// One-way camlbox latency: each side creates the box it receives on and
/// opens the other's by name; both receive with `recv_timeout`. With
/// `awaiting`, the parent awaits its answers in a tokio task
/// (`wait_async`, then `get_copy` and `delete`) instead.
fn camlbox_latency(rounds: u64, awaiting: bool) -> f64 {
    let tag = if awaiting { "async" } else { "block" };
    let (a, b) = (box_name(&format!("a-{tag}")), box_name(&format!("b-{tag}")));
    let (mut rx_a, _) = Camlbox::<u64>::create_named(&a, 1, 64).unwrap();
    let limit = Duration::from_secs(30);
    let ns = timed(
        rounds,
        |n| {
            let deadline = Instant::now() + limit;
            let tx_b = loop {
                match Sender::<u64>::open(&b) {
                    Ok(tx) => break tx,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_micros(100))
                    }
                    Err(e) => panic!("the child's box did not appear: {e}"),
                }
            };
            let check = |rx: &mut Camlbox<u64>, i: u64, s: Vec<usize>| {
                assert!(!s.is_empty(), "no answer from the child");
                assert_eq!(rx.get_copy(s[0]).unwrap(), i);
                rx.delete(s[0]);
            };
            if awaiting {
                // The whole loop in one task, as an async program runs.
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    for i in 0..n {
                        tx_b.send_timeout(&i, limit).unwrap();
                        let s = rx_a.wait_async().await;
                        check(&mut rx_a, i, s);
                    }
                });
            } else {
                for i in 0..n {
                    tx_b.send_timeout(&i, limit).unwrap();
                    assert_eq!(rx_a.recv_timeout(limit).unwrap(), i);
                }
            }
        },
        |n| {
            let (mut rx_b, _) = Camlbox::<u64>::create_named(&b, 1, 64).unwrap();
            let tx_a = Sender::<u64>::open(&a).unwrap();
            for i in 0..n {
                assert_eq!(rx_b.recv_timeout(limit).unwrap(), i);
                tx_a.send_timeout(&i, limit).unwrap();
            }
        },
    );
    ns / 2.0
}

fn camlbox_throughput<T: mc::Shared + Clone>(count: u64, msg: T, check: fn(&T) -> u64) -> f64 {
    let name = box_name("tp");
    let (mut rx, _) = Camlbox::<T>::create_named(&name, 10, 512).unwrap();
    let tx = Sender::<T>::open(&name).unwrap();
    let expect = check(&msg) * count;
    timed(
        count,
        |n| {
            let mut sum = 0;
            for _ in 0..n {
                let v = rx.recv_timeout(Duration::from_secs(30)).unwrap();
                sum += check(&v);
            }
            assert_eq!(sum, expect);
        },
        |n| {
            for _ in 0..n {
                tx.send_timeout(&msg, Duration::from_secs(30)).unwrap();
            }
        },
    )
}

// --- pipes and sockets -----------------------------------------------------

fn stream_latency(rounds: u64, pair: impl Fn() -> (Box<dyn RW>, Box<dyn RW>)) -> f64 {
    let (mut a, mut b) = pair();
    timed(
        rounds,
        |n| {
            let mut buf = [0u8; 8];
            for i in 0..n {
                a.send(&i.to_ne_bytes());
                a.recv(&mut buf);
                assert_eq!(u64::from_ne_bytes(buf), i);
            }
        },
        |n| {
            let mut buf = [0u8; 8];
            for _ in 0..n {
                b.recv(&mut buf);
                b.send(&buf);
            }
        },
    ) / 2.0
}

fn stream_throughput(count: u64, pair: impl Fn() -> (Box<dyn RW>, Box<dyn RW>)) -> f64 {
    let (mut a, mut b) = pair();
    timed(
        count,
        |n| {
            let mut buf = [0u8; 8];
            let mut sum = 0;
            for _ in 0..n {
                a.recv(&mut buf);
                sum += u64::from_ne_bytes(buf);
            }
            assert_eq!(sum, n);
        },
        |n| {
            for _ in 0..n {
                b.send(&1u64.to_ne_bytes());
            }
        },
    )
}

trait RW {
    fn send(&mut self, b: &[u8]);
    fn recv(&mut self, b: &mut [u8]);
}

impl RW for UnixStream {
    fn send(&mut self, b: &[u8]) {
        self.write_all(b).unwrap();
    }
    fn recv(&mut self, b: &mut [u8]) {
        self.read_exact(b).unwrap();
    }
}

/// Two pipes, one each way.
struct PipePair {
    r: std::fs::File,
    w: std::fs::File,
}

impl RW for PipePair {
    fn send(&mut self, b: &[u8]) {
        self.w.write_all(b).unwrap();
    }
    fn recv(&mut self, b: &mut [u8]) {
        self.r.read_exact(b).unwrap();
    }
}

fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: writes two descriptors into a live local array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

fn pipes() -> (Box<dyn RW>, Box<dyn RW>) {
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    (
        Box::new(PipePair { r: r1, w: w2 }),
        Box::new(PipePair { r: r2, w: w1 }),
    )
}

fn sockets() -> (Box<dyn RW>, Box<dyn RW>) {
    let (a, b) = UnixStream::pair().unwrap();
    (Box::new(a), Box::new(b))
}

// ---------------------------------------------------------------------------

fn main() {
    // Spinning baselines have no timeouts of their own: never hang.
    // SAFETY: plain syscall; SIGALRM's default action ends the process.
    unsafe { libc::alarm(600) };
    let rounds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let count = rounds * 5;
    println!("camlbox: {rounds} ping-pongs (latency), {count} messages (throughput); best of 3");
    if std::env::args().any(|a| a == "--floor-only") {
        against_the_floor(rounds, count);
        return;
    }
    if !cfg!(feature = "peers") {
        println!(
            "(ipc-channel and iceoryx2 not built: `--features peers`, as benches/run-all.sh does)"
        );
    }

    let mut lat: Vec<(&str, f64)> = vec![
        ("raw atomic ping-pong", best(|| raw_latency(rounds))),
        ("camlbox", best(|| camlbox_latency(rounds, false))),
        ("pipe", best(|| stream_latency(rounds, pipes))),
        ("unix socket", best(|| stream_latency(rounds, sockets))),
    ];
    lat.extend(peers::latency(rounds));
    // Last: it starts the parker thread, which stays in this process.
    lat.push((
        "camlbox, async receive",
        best(|| camlbox_latency(rounds, true)),
    ));
    let floor = lat[0].1;
    let cb = lat[1].1;
    println!("(x floor: time relative to the raw atomic baseline; x camlbox: relative to camlbox)");
    println!("\none-way latency of a u64 (ping-pong / 2):");
    for (name, ns) in &lat {
        println!(
            "  {name:<22} {ns:9.0} ns   x{:6.2} floor   x{:6.2} camlbox",
            ns / floor,
            ns / cb
        );
    }

    let mut tp: Vec<(&str, f64)> = vec![
        ("raw atomic ring", best(|| raw_throughput(count))),
        (
            "camlbox u64",
            best(|| camlbox_throughput(count, 1u64, |v| *v)),
        ),
        (
            "camlbox vec![1,2,3]",
            best(|| camlbox_throughput(count, vec![1u64, 2, 3], |v| v.iter().sum::<u64>() / 6)),
        ),
        ("pipe", best(|| stream_throughput(count, pipes))),
        ("unix socket", best(|| stream_throughput(count, sockets))),
    ];
    tp.extend(peers::throughput(count));
    let floor = tp[0].1;
    let cb = tp[1].1;
    println!("\nthroughput, child -> parent (ns per message):");
    for (name, ns) in &tp {
        println!(
            "  {name:<22} {ns:9.1} ns   x{:6.2} floor   x{:6.2} camlbox u64",
            ns / floor,
            ns / cb
        );
    }
    against_the_floor(rounds, count);
}

/// The median of the per-pair ratios `cand / base` over `pairs` runs of
/// each, alternated so that load from other work hits both alike; also
/// the medians of each side.
fn alternated(pairs: usize, base: impl Fn() -> f64, cand: impl Fn() -> f64) -> (f64, f64, f64) {
    let (mut b, mut c, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pairs {
        let (tb, tc) = (base(), cand());
        b.push(tb);
        c.push(tc);
        r.push(tc / tb);
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (med(b), med(c), med(r))
}

/// Camlbox against the raw floors in alternated pairs (the figures the
/// targets are set on: latency <= 1.5x, throughput <= 4x the floor).
fn against_the_floor(rounds: u64, count: u64) {
    const PAIRS: usize = 9;
    println!(
        "
camlbox against the floor, {PAIRS} alternated pairs (medians):"
    );
    let (f, c, r) = alternated(
        PAIRS,
        || raw_latency(rounds),
        || camlbox_latency(rounds, false),
    );
    println!(
        "  latency     floor {f:7.1} ns   camlbox {c:7.1} ns   ratio x{r:5.2} (target <= 1.5)"
    );
    let (f, c, r) = alternated(
        PAIRS,
        || raw_throughput(count),
        || camlbox_throughput(count, 1u64, |v| *v),
    );
    println!("  throughput  floor {f:7.1} ns   camlbox {c:7.1} ns   ratio x{r:5.2} (target <= 4)");
}

/// The peers measured against camlbox: ipc-channel and iceoryx2 (built with
/// the `peers` feature).
#[cfg(feature = "peers")]
mod peers {
    /// Their one-way latencies in ns.
    pub fn latency(rounds: u64) -> Vec<(&'static str, f64)> {
        let mut v = vec![("ipc-channel", super::best(|| ipc_latency(rounds)))];
        v.extend(iceoryx::latency(rounds).map(|ns| ("iceoryx2", ns)));
        v
    }

    /// Their throughputs in ns per message.
    pub fn throughput(count: u64) -> Vec<(&'static str, f64)> {
        let mut v = vec![("ipc-channel", super::best(|| ipc_throughput(count)))];
        v.extend(iceoryx::throughput(count).map(|ns| ("iceoryx2", ns)));
        v
    }

    fn ipc_latency(rounds: u64) -> f64 {
        let (tx_a, rx_a) = ipc_channel::ipc::channel::<u64>().unwrap();
        let (tx_b, rx_b) = ipc_channel::ipc::channel::<u64>().unwrap();
        super::timed(
            rounds,
            |n| {
                for i in 0..n {
                    tx_b.send(i).unwrap();
                    assert_eq!(rx_a.recv().unwrap(), i);
                }
            },
            |n| {
                for _ in 0..n {
                    let v = rx_b.recv().unwrap();
                    tx_a.send(v).unwrap();
                }
            },
        ) / 2.0
    }

    fn ipc_throughput(count: u64) -> f64 {
        let (tx, rx) = ipc_channel::ipc::channel::<u64>().unwrap();
        super::timed(
            count,
            |n| {
                let mut sum = 0;
                for _ in 0..n {
                    sum += rx.recv().unwrap();
                }
                assert_eq!(sum, n);
            },
            |n| {
                for _ in 0..n {
                    tx.send(1).unwrap();
                }
            },
        )
    }

    /// iceoryx2 publish-subscribe of `u64`, busy-polling `receive` (its
    /// lowest-latency mode). Each process makes its own node after `fork`.
    mod iceoryx {
        use iceoryx2::port::update_connections::UpdateConnections;
        use iceoryx2::prelude::*;

        type Pub = iceoryx2::port::publisher::Publisher<ipc::Service, u64, ()>;
        type Sub = iceoryx2::port::subscriber::Subscriber<ipc::Service, u64, ()>;

        fn ports(node: &Node<ipc::Service>, send: &str, recv: &str) -> (Pub, Sub) {
            let open = |name: &str| {
                node.service_builder(&name.try_into().unwrap())
                    .publish_subscribe::<u64>()
                    .enable_safe_overflow(false)
                    .subscriber_max_buffer_size(10)
                    .history_size(0)
                    .max_publishers(1)
                    .max_subscribers(1)
                    .open_or_create()
                    .unwrap()
            };
            let tx = open(send)
                .publisher_builder()
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()
                .unwrap();
            let rx = open(recv).subscriber_builder().create().unwrap();
            (tx, rx)
        }

        fn recv(rx: &Sub) -> u64 {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let mut spins = 0u32;
            loop {
                if let Some(s) = rx.receive().unwrap() {
                    return *s;
                }
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(4096) && std::time::Instant::now() > deadline {
                    panic!("iceoryx2: no sample for 30 s (the peer died?)");
                }
                std::hint::spin_loop();
            }
        }

        fn connected(tx: &Pub) {
            // Wait until the peer's subscriber is connected, so that nothing is
            // sent into the void.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while tx.update_connections().is_ok() && tx.send_copy(u64::MAX).unwrap_or(0) == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "iceoryx2: the peer never connected"
                );
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }

        fn skip_hello(rx: &Sub) {
            while recv(rx) != u64::MAX {}
        }

        /// This process's node, publishing on `send` and subscribed to `recv`,
        /// once the peer is connected (the node must outlive the ports).
        fn endpoint(send: &str, recv: &str) -> (Node<ipc::Service>, Pub, Sub) {
            let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
            let (tx, rx) = ports(&node, send, recv);
            connected(&tx);
            skip_hello(&rx);
            (node, tx, rx)
        }

        fn names(what: &str) -> (String, String) {
            let p = std::process::id();
            (
                format!("mc-bench/{p}/{what}/a"),
                format!("mc-bench/{p}/{what}/b"),
            )
        }

        /// One-way latency in ns, or `None` when iceoryx2 cannot run here.
        pub fn latency(rounds: u64) -> Option<f64> {
            set_log_level(LogLevel::Error);
            let (a, b) = names("lat");
            let ns = super::super::best(|| {
                let loop_ns = std::cell::Cell::new(0.0);
                super::super::timed(
                    rounds,
                    |n| {
                        let (_node, tx, rx) = endpoint(&b, &a);
                        let t = std::time::Instant::now();
                        for i in 0..n {
                            tx.send_copy(i).unwrap();
                            assert_eq!(recv(&rx), i);
                        }
                        loop_ns.set(t.elapsed().as_nanos() as f64 / n as f64);
                    },
                    |n| {
                        let (_node, tx, rx) = endpoint(&a, &b);
                        for _ in 0..n {
                            let v = recv(&rx);
                            tx.send_copy(v).unwrap();
                        }
                    },
                );
                loop_ns.get()
            });
            Some(ns / 2.0)
        }

        /// Throughput in ns per message, or `None` when iceoryx2 cannot run.
        pub fn throughput(count: u64) -> Option<f64> {
            let (a, b) = names("tp");
            Some(super::super::best(|| {
                let loop_ns = std::cell::Cell::new(0.0);
                super::super::timed(
                    count,
                    |n| {
                        let (_node, _tx, rx) = endpoint(&b, &a);
                        let t = std::time::Instant::now();
                        let mut sum = 0;
                        for _ in 0..n {
                            sum += recv(&rx);
                        }
                        assert_eq!(sum, n);
                        loop_ns.set(t.elapsed().as_nanos() as f64 / n as f64);
                    },
                    |n| {
                        let (_node, tx, _rx) = endpoint(&a, &b);
                        for _ in 0..n {
                            tx.send_copy(1).unwrap();
                        }
                    },
                );
                loop_ns.get()
            }))
        }
    }
}

/// Without the `peers` feature, camlbox is measured against the raw floor,
/// pipes and sockets only.
#[cfg(not(feature = "peers"))]
mod peers {
    pub fn latency(_rounds: u64) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    pub fn throughput(_count: u64) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}
