//! Camlbox throughput: a child process sends `count` messages
//! `vec![1u64, 2, 3]` (default 1,000,000) through a box of 10 slots of 512
//! bytes; the receiver sums them and prints the sum and the time per
//! message. Netmulticore's tutorial measured about 4 µs per message on a
//! 2011 quad-core Opteron.
//!
//! Usage: `camlbox_speed [COUNT]`.

use std::time::Instant;

use mc::{Camlbox, CamlboxDescr};

#[mc::process]
fn sender(args: (CamlboxDescr<Vec<u64>>, u64)) {
    let (id, count) = args;
    let tx = id.sender().expect("open the box");
    let msg = vec![1u64, 2, 3];
    for _ in 0..count {
        tx.send(&msg).expect("send");
    }
}

fn receive(count: u64) -> (u64, f64) {
    let (mut rx, id) = Camlbox::<Vec<u64>>::create(10, 512).expect("create the box");
    let start = Instant::now();
    let pid = sender::start((id, count)).expect("start the sender");
    let (mut sum, mut n) = (0u64, 0u64);
    while n < count {
        for slot in rx.wait() {
            let m = rx.get(slot).expect("a valid message");
            sum += m.as_slice().iter().sum::<u64>();
            rx.delete(slot);
            n += 1;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / count.max(1) as f64;
    sender::join(pid).expect("error in the sender");
    (sum, ns)
}

fn main() {
    let count: u64 = match std::env::args().nth(1) {
        Some(a) => match a.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("usage: camlbox_speed [COUNT]");
                std::process::exit(2);
            }
        },
        None => 1_000_000,
    };
    let report = mc::run(move || receive(count));
    let (sum, ns) = mc_examples::returned_or_exit("camlbox_speed", report);
    println!("Sum: {sum}");
    println!(
        "{ns:.0} ns per message ({count} messages; Netmulticore: about 4000 ns per message \
         on a 2011 quad-core Opteron)"
    );
    if sum != 6 * count {
        eprintln!("camlbox_speed: expected {}", 6 * count);
        std::process::exit(1);
    }
    println!("camlbox_speed: ok");
}
