//! Multi-process tests of camlboxes: senders are children made with `fork`
//! from this single-threaded `main`, each opening the box by name (so each
//! maps it at its own address), some killed with SIGKILL. Every wait is
//! bounded; a child that does not finish in time is killed and the
//! scenario fails.
//!
//! Prints one line per scenario and `N passed, M failed` last; exits with a
//! non-zero status on any failure. Arguments filter scenarios by name.

use std::time::{Duration, Instant};

use mc::camlbox::{CamlboxError, Sender};
use mc::Camlbox;

mod common;
use common::{ensure, expect_exit_ok, fork_child, kill, run_scenarios, wait_child, Scenario};

fn box_name(what: &str) -> String {
    format!("test-{what}-{}", std::process::id())
}

#[derive(mc::Shared, Debug, Clone, PartialEq)]
enum Node {
    Leaf(u64),
    Named { name: String, kids: Vec<Node> },
    Maybe(Option<Box<Node>>),
}

#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct Payload {
    sender: u32,
    seq: u64,
    text: String,
    tree: Node,
    list: Vec<Option<String>>,
}

fn payload(sender: u32, seq: u64) -> Payload {
    Payload {
        sender,
        seq,
        text: format!("message {seq} from {sender}"),
        tree: Node::Named {
            name: "root".into(),
            kids: vec![
                Node::Leaf(seq),
                Node::Maybe(Some(Box::new(Node::Leaf(sender as u64)))),
                Node::Maybe(None),
            ],
        },
        list: vec![Some("x".repeat((seq % 7) as usize)), None],
    }
}

// ---------------------------------------------------------------------------

/// 4 senders × 100,000 messages `(sender, seq)`: nothing lost or
/// duplicated; the receiver deletes as it goes.
fn four_senders() -> Result<String, String> {
    const PER: u64 = 100_000;
    const SENDERS: u64 = 4;
    let name = box_name("four");
    let (mut rx, _id) =
        Camlbox::<(u64, u64)>::create_named(&name, 16, 64).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let pids: Vec<_> = (0..SENDERS)
        .map(|k| {
            let name = name.clone();
            fork_child(move || {
                let tx = Sender::<(u64, u64)>::open(&name).expect("open");
                for i in 0..PER {
                    tx.send(&(k, i)).expect("send");
                }
                0
            })
        })
        .collect();
    let mut got = vec![vec![false; PER as usize]; SENDERS as usize];
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while total < SENDERS * PER {
        if Instant::now() > deadline {
            pids.iter().for_each(|&p| kill(p));
            return Err(format!("received {total} messages only"));
        }
        for s in rx.wait_timeout(Duration::from_millis(100)) {
            let (k, i) = rx.get_copy(s).map_err(|e| e.to_string())?;
            let seen = got
                .get_mut(k as usize)
                .and_then(|g| g.get_mut(i as usize))
                .ok_or_else(|| format!("bogus message ({k}, {i})"))?;
            ensure(!*seen, || format!("duplicate ({k}, {i})"))?;
            *seen = true;
            total += 1;
            rx.delete(s);
        }
    }
    for p in pids {
        expect_exit_ok(p, Duration::from_secs(30))?;
    }
    let elapsed = start.elapsed();
    ensure(rx.messages() == 0, || "messages left over".into())?;
    ensure(
        rx.wait_timeout(Duration::from_millis(20)).is_empty(),
        || "extra message".into(),
    )?;
    Ok(format!(
        "{} messages, none lost or duplicated, {:.0} ns/message",
        total,
        elapsed.as_nanos() as f64 / total as f64
    ))
}

/// Nested derived values written by a child that maps the box at its own
/// address: the receiver reads them in place and copies them out intact.
fn relocation_across_fork() -> Result<String, String> {
    const N: u64 = 200;
    let name = box_name("reloc");
    let (mut rx, _id) =
        Camlbox::<Payload>::create_named(&name, 4, 2048).map_err(|e| e.to_string())?;
    let rx_base = rx.segment_name().to_string();
    let child = fork_child({
        let name = name.clone();
        move || {
            let tx = Sender::<Payload>::open(&name).expect("open");
            for i in 0..N {
                tx.send(&payload(7, i)).expect("send");
            }
            0
        }
    });
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while n < N {
        if Instant::now() > deadline {
            kill(child);
            return Err(format!("received {n} of {N}"));
        }
        for s in rx.wait_timeout(Duration::from_millis(100)) {
            let m = rx.get(s).map_err(|e| e.to_string())?;
            let v = m.to_value();
            ensure(v == payload(7, v.seq), || {
                format!("corrupted message {v:?}")
            })?;
            rx.delete(s);
            n += 1;
        }
    }
    expect_exit_ok(child, Duration::from_secs(10))?;
    Ok(format!("{N} nested messages relocated intact ({rx_base})"))
}

/// A child claims a slot and is killed before it finishes: the receiver's
/// wait reclaims the slot; all slots are usable afterwards.
fn sender_killed_after_claim() -> Result<String, String> {
    let name = box_name("claim");
    let (mut rx, _id) = Camlbox::<u64>::create_named(&name, 2, 64).map_err(|e| e.to_string())?;
    let child = fork_child({
        let name = name.clone();
        move || {
            let tx = Sender::<u64>::open(&name).expect("open");
            mc::camlbox::__test_support::claim_and_abandon(&tx).expect("claim");
            // Stop here until killed (bounded).
            std::thread::sleep(Duration::from_secs(30));
            2
        }
    });
    let t = Instant::now();
    while mc::camlbox::__test_support::states(&rx)
        .iter()
        .all(|&s| s == 0)
    {
        ensure(t.elapsed() < Duration::from_secs(10), || {
            "child never claimed".into()
        })?;
        std::thread::sleep(Duration::from_millis(1));
    }
    kill(child);
    let _ = wait_child(child, Duration::from_secs(10))?;
    // The receiver's wait notices the dead writer while it sleeps.
    let _ = rx.wait_timeout(Duration::from_millis(50));
    let tx = Sender::<u64>::open(&name).map_err(|e| e.to_string())?;
    tx.try_send(&1).map_err(|e| format!("first slot: {e}"))?;
    tx.try_send(&2)
        .map_err(|e| format!("second slot (lost?): {e}"))?;
    Ok("the dead writer's slot was reclaimed".into())
}

/// Children send huge messages in a loop and are killed at random moments;
/// afterwards no slot stays claimed and the box keeps working.
fn senders_killed_mid_send() -> Result<String, String> {
    const TRIALS: u32 = 20;
    const SIZE: usize = 1 << 20;
    let name = box_name("kill");
    let (mut rx, _id) =
        Camlbox::<Vec<u8>>::create_named(&name, 3, SIZE + 64).map_err(|e| e.to_string())?;
    let mut received = 0u64;
    for trial in 0..TRIALS {
        let child = fork_child({
            let name = name.clone();
            move || {
                let tx = Sender::<Vec<u8>>::open(&name).expect("open");
                let big = vec![0xabu8; SIZE];
                loop {
                    tx.send(&big).expect("send");
                }
            }
        });
        // Receive for a while, then kill the child wherever it is.
        let until = Instant::now() + Duration::from_micros(500 + 731 * trial as u64 % 5000);
        while Instant::now() < until {
            for s in rx.wait_timeout(Duration::from_millis(1)) {
                let m = rx.get(s).map_err(|e| e.to_string())?;
                ensure(m.len() == SIZE && m.iter().all(|&b| b == 0xab), || {
                    "damaged message".into()
                })?;
                rx.delete(s);
                received += 1;
            }
        }
        kill(child);
        let _ = wait_child(child, Duration::from_secs(10))?;
        // Drain complete messages; within a few wait slices, every slot is
        // free again (claimed slots of the dead writer are reclaimed).
        let t = Instant::now();
        loop {
            for s in rx.wait_timeout(Duration::from_millis(20)) {
                rx.delete(s);
                received += 1;
            }
            if mc::camlbox::__test_support::states(&rx)
                .iter()
                .all(|&s| s == 0)
            {
                break;
            }
            ensure(t.elapsed() < Duration::from_secs(5), || {
                format!(
                    "trial {trial}: slots still taken: {:x?}",
                    mc::camlbox::__test_support::states(&rx)
                )
            })?;
        }
    }
    let tx = Sender::<Vec<u8>>::open(&name).map_err(|e| e.to_string())?;
    for _ in 0..3 {
        tx.try_send(&vec![1])
            .map_err(|e| format!("slot lost: {e}"))?;
    }
    Ok(format!(
        "{TRIALS} kills, {received} complete messages, no slot lost"
    ))
}

/// A too-big message from another process is an error there, and the slot
/// stays usable.
fn too_big_across_processes() -> Result<String, String> {
    let name = box_name("big");
    let (mut rx, _id) = Camlbox::<String>::create_named(&name, 1, 64).map_err(|e| e.to_string())?;
    let child = fork_child({
        let name = name.clone();
        move || {
            let tx = Sender::<String>::open(&name).expect("open");
            for _ in 0..10 {
                match tx.send(&"x".repeat(1000)) {
                    Err(CamlboxError::TooBig {
                        needed,
                        capacity: 64,
                    }) if needed >= 1000 => {}
                    _ => return 3,
                }
            }
            tx.send(&"fits".to_string()).expect("send");
            0
        }
    });
    expect_exit_ok(child, Duration::from_secs(10))?;
    let s = rx.wait_timeout(Duration::from_secs(5));
    ensure(s.len() == 1, || format!("expected one message, got {s:?}"))?;
    let text = rx.get_copy(s[0]).map_err(|e| e.to_string())?;
    ensure(text == "fits", || format!("got {text:?}"))?;
    Ok("10 TooBig errors, the single slot still delivered".into())
}

/// Wrong type across processes: the child's open fails.
fn wrong_type_across_processes() -> Result<String, String> {
    let name = box_name("type");
    let (_rx, _id) = Camlbox::<String>::create_named(&name, 1, 64).map_err(|e| e.to_string())?;
    let child = fork_child({
        let name = name.clone();
        move || match Sender::<Vec<u64>>::open(&name) {
            Err(CamlboxError::WrongType { .. }) => 0,
            _ => 3,
        }
    });
    expect_exit_ok(child, Duration::from_secs(10))?;
    Ok("opening with another type fails".into())
}

/// A tokio task awaits messages that another process sends; between real
/// waits, waits are given up mid-way: polled (past the spin, so that the
/// parker sleeps for them) for 200 µs, then dropped, and the sender sends
/// each message only after 4 more drops. Every message arrives exactly
/// once. Last in the list: the parker thread
/// it starts stays in this process.
fn async_receive_loses_nothing() -> Result<String, String> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    const N: u64 = 300;
    /// Dropped waits before each message: the sender waits for them.
    const DROPS_PER_MESSAGE: u64 = 4;
    let name = box_name("async");
    let (mut rx, _) = Camlbox::<u64>::create_named(&name, 8, 64).map_err(|e| e.to_string())?;
    let drops = common::shared(std::sync::atomic::AtomicU64::new(0));
    let child = fork_child({
        let name = name.clone();
        move || {
            let tx = Sender::<u64>::open(&name).expect("open");
            for i in 0..N {
                let deadline = Instant::now() + Duration::from_secs(30);
                while drops.load(std::sync::atomic::Ordering::SeqCst) < DROPS_PER_MESSAGE * (i + 1)
                {
                    assert!(
                        Instant::now() < deadline,
                        "the receiver stopped dropping waits"
                    );
                    std::thread::sleep(Duration::from_micros(100));
                }
                tx.send_timeout(&i, Duration::from_secs(30)).expect("send");
            }
            0
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    let r = rt.block_on(async {
        let (mut got, mut dropped, mut waits) = (Vec::new(), 0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(60);
        while (got.len() as u64) < N && Instant::now() < deadline {
            waits += 1;
            let slots = if waits % 8 != 0 {
                let mut f = std::pin::pin!(rx.wait_async());
                let mut cx = Context::from_waker(Waker::noop());
                let start = Instant::now();
                let mut ready = None;
                while start.elapsed() < Duration::from_micros(200) {
                    if let Poll::Ready(s) = f.as_mut().poll(&mut cx) {
                        ready = Some(s);
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
                match ready {
                    Some(s) => s,
                    None => {
                        dropped += 1;
                        drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        continue;
                    }
                }
            } else {
                // A real wait, woken by the parker; given up (dropped too)
                // after 5 ms, as the sender may be waiting for drops.
                match tokio::time::timeout(Duration::from_millis(5), rx.wait_async()).await {
                    Ok(s) => s,
                    Err(_) => {
                        dropped += 1;
                        drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        continue;
                    }
                }
            };
            for s in slots {
                got.push(rx.get_copy(s).map_err(|e| e.to_string())?);
                rx.delete(s);
            }
        }
        Ok::<_, String>((got, dropped))
    });
    let waited = expect_exit_ok(child, Duration::from_secs(60));
    let (mut got, dropped) = r?;
    waited?;
    got.sort_unstable();
    ensure(got == (0..N).collect::<Vec<_>>(), || {
        format!(
            "{} messages, first wrong at {:?}",
            got.len(),
            got.iter().enumerate().find(|(i, v)| *i as u64 != **v)
        )
    })?;
    ensure(dropped >= 1000, || {
        format!("only {dropped} waits were dropped")
    })?;
    Ok(format!(
        "{N} messages, each once; {dropped} waits dropped mid-wait"
    ))
}

fn main() {
    let scenarios: &[(&str, Scenario)] = &[
        ("four_senders", four_senders),
        ("relocation_across_fork", relocation_across_fork),
        ("sender_killed_after_claim", sender_killed_after_claim),
        ("senders_killed_mid_send", senders_killed_mid_send),
        ("too_big_across_processes", too_big_across_processes),
        ("wrong_type_across_processes", wrong_type_across_processes),
        ("async_receive_loses_nothing", async_receive_loses_nothing),
    ];
    run_scenarios(scenarios);
}
