//! Chameneos-redux (the Computer Language Benchmarks Game), after
//! Netmulticore's `chameneos.ml`: creatures are processes that meet through
//! camlboxes.
//!
//! - The meeting place is its own process with a box of `2 * creatures`
//!   slots. Each creature has a 2-slot response box, whose name it sends
//!   with its first request.
//! - A creature asks the meeting place for a meeting (sending its id and
//!   color) and waits for the answer: either the partner's id and color
//!   (it then takes the complement of the two colors) or "faded" once N
//!   meetings have taken place, when it returns its meeting count and the
//!   number of times it met itself.
//! - The meeting place holds the first creature that arrives and pairs it
//!   with the next one.
//!
//! Two games are played (3 and 10 creatures) and the output is the
//! benchmark's: the complement table, then per game the starting colors,
//! one line per creature (`<meetings> <self-met count spelled out>`) and
//! the total number of meetings spelled out. The program checks that the
//! meetings add up to 2N per game and that no creature met itself; the
//! verdict and the time go to stderr, and the exit status reflects them.
//!
//! Every wait is bounded: a lost process makes the run fail, not hang.
//!
//! Usage: `chameneos [N]` (default 600 meetings).

use std::time::{Duration, Instant};

use mc::camlbox::Sender;
use mc::{Camlbox, CamlboxDescr};

const BLUE: u8 = 0;
const RED: u8 = 1;
const YELLOW: u8 = 2;
const COLORS: [u8; 3] = [BLUE, RED, YELLOW];

/// How long any single wait may take before the game is declared broken.
const STEP: Duration = Duration::from_secs(10);

fn color_name(c: u8) -> &'static str {
    match c {
        BLUE => "blue",
        RED => "red",
        _ => "yellow",
    }
}

/// The benchmark's complement: the same color if both are equal, the third
/// color otherwise.
fn complement(a: u8, b: u8) -> u8 {
    if a == b {
        a
    } else {
        3 - a - b
    }
}

/// `120` → `" one two zero"`.
fn spell(n: u64) -> String {
    const WORDS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    n.to_string()
        .bytes()
        .map(|d| format!(" {}", WORDS[(d - b'0') as usize]))
        .collect()
}

/// A creature's request to the meeting place.
#[derive(mc::Shared, Debug, Clone)]
struct Request {
    id: u32,
    color: u8,
    /// The name of the creature's response box (first request only).
    reply: Option<String>,
}

/// The meeting place's answer.
#[derive(mc::Shared, Debug, Clone)]
enum Reply {
    Met { other: u32, color: u8 },
    Faded,
}

/// Waits for one message on `rx`, giving up after `STEP`.
fn receive_one<T: mc::Shared>(rx: &mut Camlbox<T>) -> Result<T, String> {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out waiting for a message".into());
        }
        if let Some(&slot) = rx.wait_timeout(left).first() {
            let m = rx.get_copy(slot).map_err(|e| e.to_string());
            rx.delete(slot);
            return m;
        }
    }
}

/// The meeting place: pairs creatures until `n` meetings took place, then
/// tells every creature that it faded. Returns the number of meetings.
#[mc::process]
fn meeting_place(args: (CamlboxDescr<String>, u64, u32)) -> Result<u64, String> {
    let (hello, n, creatures) = args;
    let (mut rx, id) = Camlbox::<Request>::create(2 * creatures as usize, 256)
        .map_err(|e| format!("meeting place box: {e}"))?;
    hello
        .sender()
        .and_then(|tx| tx.send_timeout(&id.name().to_string(), STEP))
        .map_err(|e| format!("announcing the meeting place: {e}"))?;
    let mut replies: Vec<Option<Sender<Reply>>> = (0..creatures).map(|_| None).collect();
    let reply = |replies: &[Option<Sender<Reply>>], to: u32, r: &Reply| -> Result<(), String> {
        replies[to as usize]
            .as_ref()
            .ok_or(format!("creature {to} has no response box"))?
            .send_timeout(r, STEP)
            .map_err(|e| format!("replying to creature {to}: {e}"))
    };
    let (mut meetings, mut faded) = (0u64, 0u32);
    let mut waiting: Option<(u32, u8)> = None;
    let mut deadline = Instant::now() + STEP;
    while faded < creatures {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no request for {STEP:?} ({meetings} meetings, {faded} creatures faded)"
            ));
        }
        for slot in rx.wait_timeout(left) {
            let req = rx.get_copy(slot).map_err(|e| e.to_string());
            rx.delete(slot);
            let req = req?;
            deadline = Instant::now() + STEP;
            if req.id >= creatures {
                return Err(format!("request from unknown creature {}", req.id));
            }
            if let Some(name) = &req.reply {
                let tx = Sender::open(name).map_err(|e| format!("response box {name}: {e}"))?;
                replies[req.id as usize] = Some(tx);
            }
            if meetings == n {
                reply(&replies, req.id, &Reply::Faded)?;
                faded += 1;
            } else if let Some((first, color)) = waiting.take() {
                reply(
                    &replies,
                    first,
                    &Reply::Met {
                        other: req.id,
                        color: req.color,
                    },
                )?;
                reply(
                    &replies,
                    req.id,
                    &Reply::Met {
                        other: first,
                        color,
                    },
                )?;
                meetings += 1;
            } else {
                waiting = Some((req.id, req.color));
            }
        }
    }
    Ok(meetings)
}

/// A creature: meets until the meeting place says it faded; returns its
/// meeting count and how many times it met itself.
#[mc::process]
fn creature(args: (String, u32, u8)) -> Result<(u64, u64), String> {
    let (place, id, mut color) = args;
    let (mut rx, my_box) =
        Camlbox::<Reply>::create(2, 64).map_err(|e| format!("response box: {e}"))?;
    let tx = Sender::<Request>::open(&place).map_err(|e| format!("meeting place: {e}"))?;
    let mut reply = Some(my_box.name().to_string());
    let (mut met, mut self_met) = (0u64, 0u64);
    loop {
        let req = Request {
            id,
            color,
            reply: reply.take(),
        };
        tx.send_timeout(&req, STEP)
            .map_err(|e| format!("creature {id}: request: {e}"))?;
        match receive_one(&mut rx).map_err(|e| format!("creature {id}: {e}"))? {
            Reply::Met { other, color: c } => {
                met += 1;
                if other == id {
                    self_met += 1;
                }
                color = complement(color, c);
            }
            Reply::Faded => return Ok((met, self_met)),
        }
    }
}

/// One game: the meeting count the place reports and each creature's
/// (meetings, self-met).
type Game = (u64, Vec<(u64, u64)>);

fn play(n: u64, colors: &[u8]) -> Result<Game, String> {
    let (mut hello, hello_id) =
        Camlbox::<String>::create(1, 256).map_err(|e| format!("hello box: {e}"))?;
    let place = meeting_place::start((hello_id, n, colors.len() as u32))
        .map_err(|e| format!("starting the meeting place: {e}"))?;
    let place_name = receive_one(&mut hello).map_err(|e| format!("meeting place: {e}"))?;
    let mut pids = Vec::new();
    for (i, &c) in colors.iter().enumerate() {
        let pid = creature::start((place_name.clone(), i as u32, c))
            .map_err(|e| format!("starting creature {i}: {e}"))?;
        pids.push(pid);
    }
    let mut counts = Vec::new();
    for (i, pid) in pids.into_iter().enumerate() {
        let r = creature::join(pid).map_err(|e| format!("joining creature {i}: {e}"))??;
        counts.push(r);
    }
    let meetings =
        meeting_place::join(place).map_err(|e| format!("joining the meeting place: {e}"))??;
    Ok((meetings, counts))
}

const GAME1: [u8; 3] = [BLUE, RED, YELLOW];
const GAME2: [u8; 10] = [BLUE, RED, YELLOW, RED, YELLOW, BLUE, RED, YELLOW, RED, BLUE];

fn main() {
    let n: u64 = match std::env::args().nth(1) {
        Some(a) => match a.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("usage: chameneos [N]");
                std::process::exit(2);
            }
        },
        None => 600,
    };
    let start = Instant::now();
    let report = mc::run(move || -> Result<Vec<Game>, String> {
        Ok(vec![play(n, &GAME1)?, play(n, &GAME2)?])
    });
    let games = mc_examples::ok_or_exit("chameneos", report);
    let elapsed = start.elapsed();

    for a in COLORS {
        for b in COLORS {
            println!(
                "{} + {} -> {}",
                color_name(a),
                color_name(b),
                color_name(complement(a, b))
            );
        }
    }
    println!();
    let mut problems = Vec::new();
    for (colors, (place_meetings, counts)) in [&GAME1[..], &GAME2[..]].into_iter().zip(&games) {
        let line: String = colors
            .iter()
            .map(|&c| format!(" {}", color_name(c)))
            .collect();
        println!("{line}");
        let mut total = 0;
        for &(met, self_met) in counts {
            println!("{met}{}", spell(self_met));
            total += met;
            if self_met != 0 {
                problems.push(format!("a creature met itself {self_met} times"));
            }
        }
        println!("{}", spell(total));
        println!();
        if total != 2 * n {
            problems.push(format!(
                "{} creatures: {total} meetings counted, expected {}",
                colors.len(),
                2 * n
            ));
        }
        if *place_meetings != n {
            problems.push(format!(
                "{} creatures: the meeting place arranged {place_meetings} meetings, expected {n}",
                colors.len()
            ));
        }
    }
    eprintln!(
        "chameneos: N = {n}, both games in {:.3} s",
        elapsed.as_secs_f64()
    );
    if problems.is_empty() {
        eprintln!("chameneos: ok");
    } else {
        for p in &problems {
            eprintln!("chameneos: {p}");
        }
        std::process::exit(1);
    }
}
