//! Four workers end in four ways: one panics, one aborts, one is killed
//! with SIGKILL by its starter, one returns. Each join gives the right
//! outcome and cause.

use std::time::Duration;

use mc::processes;
use mc::{JoinError, Outcome, Signal};

#[mc::process]
fn panics(_: ()) -> u32 {
    panic!("worker gave up")
}

#[mc::process]
fn aborts(_: ()) -> u32 {
    std::process::abort()
}

#[mc::process]
fn sleeps(secs: u64) -> u32 {
    std::thread::sleep(Duration::from_secs(secs));
    0
}

#[mc::process]
fn returns(x: u32) -> u32 {
    x + 1
}

fn check() -> Result<(), String> {
    let p = panics::start(()).map_err(|e| e.to_string())?;
    let a = aborts::start(()).map_err(|e| e.to_string())?;
    let k = sleeps::start(60).map_err(|e| e.to_string())?;
    let r = returns::start(41).map_err(|e| e.to_string())?;

    processes::kill(k, Signal::KILL).map_err(|e| e.to_string())?;

    let op = panics::join_outcome(p).map_err(|e| e.to_string())?;
    println!("panics: {op}");
    if op != Outcome::Panicked("worker gave up".into()) {
        return Err(format!("panics: unexpected outcome {op:?}"));
    }
    let oa = aborts::join_outcome(a).map_err(|e| e.to_string())?;
    println!("aborts: {oa}");
    if oa != Outcome::Aborted(Signal::ABRT) {
        return Err(format!("aborts: unexpected outcome {oa:?}"));
    }
    // `join` says how the process ended when it did not return; `status`
    // tells the same afterwards.
    let ok = sleeps::join(k);
    let cause = processes::status(k).map_err(|e| e.to_string())?;
    println!("sleeps: {ok:?}, cause: {cause:?}");
    if !matches!(ok, Err(JoinError::Killed(Signal::KILL)))
        || cause != Some(Outcome::Killed(Signal::KILL))
    {
        return Err(format!("sleeps: unexpected {ok:?} / {cause:?}"));
    }
    let or = returns::join(r).map_err(|e| e.to_string())?;
    println!("returns: {or}");
    if or != 42 {
        return Err(format!("returns: unexpected {or}"));
    }
    // Only the first join gets the result.
    match returns::join(r) {
        Err(JoinError::Join(mc::ProcessError::AlreadyJoined(_))) => {}
        other => return Err(format!("second join: unexpected {other:?}")),
    }
    Ok(())
}

fn main() {
    let report = mc::run(check).expect("mc::run");
    match report.returned() {
        Some(Ok(())) => println!("crash_join: ok"),
        Some(Err(e)) => {
            eprintln!("crash_join: {e}");
            std::process::exit(1);
        }
        None => {
            eprintln!("crash_join: the first process did not return");
            std::process::exit(1);
        }
    }
}
