//! A producer and a consumer process stream bytes through a bounded shared
//! buffer, as Netmulticore's pipeline example: an `SBuffer` whose header
//! holds a mutex and two condition variables (`have_space`, `have_data`).
//! The producer appends pieces as large as the free room allows; the
//! consumer copies out everything available at once and deletes it from
//! the head. Both compute a checksum of the stream; the example prints the
//! throughput and `pipeline: ok` only if they agree.
//!
//! Usage: `pipeline [--bytes N] [--max N]` (defaults: 1 GiB through a
//! buffer of at most 64 KiB).

use std::time::Instant;

use mc::sync::{Condvar, Mutex};
use mc::{Pool, SBuffer, SBufferDescr};

/// The buffer's header.
#[derive(mc::Shared)]
pub struct Pipe {
    /// (the producer is done, the producer's checksum)
    state: Mutex<(bool, u64)>,
    have_space: Condvar,
    have_data: Condvar,
}

/// A streaming checksum over 8-byte words (every piece is a multiple of 8
/// bytes); order-sensitive.
fn checksum(mut acc: u64, bytes: &[u8]) -> u64 {
    for w in bytes.chunks_exact(8) {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        acc = (acc ^ w).wrapping_mul(0x0100_0000_01b3).rotate_left(5);
    }
    acc
}

const CK_INIT: u64 = 0xcbf2_9ce4_8422_2325;
const PATTERN: usize = 1 << 20;

#[mc::process]
fn producer(arg: (SBufferDescr<Pipe>, u64, usize)) -> u64 {
    let (descr, total, max) = arg;
    let b = descr.open().expect("open the buffer");
    let h = b.header().expect("header");
    // Pseudo-random data (xorshift), repeated.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let pattern: Vec<u8> = (0..(PATTERN + max) / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    let mut sent = 0u64;
    let mut ck = CK_INIT;
    while sent < total {
        let room = {
            let g = h.state.lock().expect("lock");
            let _g = h
                .have_space
                .wait_while(g, |_| max - b.len().expect("len") < max / 4)
                .expect("wait for room");
            max - b.len().expect("len")
        };
        let n = (room.min((total - sent) as usize)) & !7;
        let off = ((sent as usize) % PATTERN) & !7;
        let piece = &pattern[off..off + n];
        ck = checksum(ck, piece);
        b.push_bytes(piece).expect("append");
        sent += n as u64;
        let _g = h.state.lock().expect("lock");
        h.have_data.notify_one();
    }
    let mut g = h.state.lock().expect("lock");
    g.0 = true;
    g.1 = ck;
    h.have_data.notify_one();
    ck
}

#[mc::process]
fn consumer(arg: (SBufferDescr<Pipe>, usize)) -> (u64, u64, bool) {
    let (descr, max) = arg;
    let b = descr.open().expect("open the buffer");
    let h = b.header().expect("header");
    let mut local = vec![0u8; max];
    let mut got = 0u64;
    let mut ck = CK_INIT;
    loop {
        let (avail, done, theirs) = {
            let g = h.state.lock().expect("lock");
            let g = h
                .have_data
                .wait_while(g, |s| !s.0 && b.len().expect("len") == 0)
                .expect("wait for data");
            (b.len().expect("len"), g.0, g.1)
        };
        if avail == 0 && done {
            return (got, ck, ck == theirs);
        }
        let start = b.start().expect("start");
        b.blit(start, &mut local[..avail]).expect("copy out");
        b.delete_head(avail).expect("delete");
        ck = checksum(ck, &local[..avail]);
        got += avail as u64;
        let _g = h.state.lock().expect("lock");
        h.have_space.notify_one();
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                eprintln!("pipeline: {name} needs a number");
                std::process::exit(2)
            }),
        None => default,
    }
}

fn main() {
    let total = arg("--bytes", 1 << 30).next_multiple_of(8);
    let max = (arg("--max", 64 << 10) as usize)
        .next_multiple_of(8)
        .max(64);
    let report = mc::run(move || {
        let pool = Pool::create(256 << 20).expect("create a pool");
        let header = Pipe {
            state: Mutex::new((false, 0)),
            have_space: Condvar::new(),
            have_data: Condvar::new(),
        };
        let b = SBuffer::create(&pool, &header).expect("create the buffer");
        let t = Instant::now();
        let c = consumer::start((b.descr(), max)).expect("start the consumer");
        let p = producer::start((b.descr(), total, max)).expect("start the producer");
        let theirs = producer::join(p).expect("the producer failed");
        let (got, ours, agree) = consumer::join(c).expect("the consumer failed");
        let secs = t.elapsed().as_secs_f64();
        b.destroy().expect("destroy");
        (got, ours, theirs, agree, secs)
    });
    let (got, ours, theirs, agree, secs) = mc_examples::returned_or_exit("pipeline", report);
    println!(
        "pipeline: {got} bytes in {secs:.3} s: {:.0} MB/s (buffer max {max} bytes)",
        got as f64 / secs / 1e6
    );
    if got != total || ours != theirs || !agree {
        eprintln!(
            "pipeline: FAILED: {got} of {total} bytes, checksums {ours:#x} (consumer) vs {theirs:#x} (producer)"
        );
        std::process::exit(1);
    }
    println!("pipeline: ok");
}
