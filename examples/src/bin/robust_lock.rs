//! A worker is killed with SIGKILL while it holds a lock kept in a shared
//! heap, half-way through an update of two fields that must agree. The
//! next worker to take the lock learns that the owner died, repairs the
//! data, declares it consistent and carries on.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use mc::processes::{self, Signal};
use mc::sync::Mutex;
use mc::{Heap, HeapDescr, Outcome, Pool};

/// Invariant: `balance == deposits * 10`.
#[derive(mc::Shared, Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    deposits: u64,
    balance: u64,
}

#[derive(mc::Shared)]
pub struct State {
    account: Mutex<Account>,
    /// Set to 1 by the victim once it holds `account` mid-update.
    progress: Mutex<u64>,
}

/// Takes the lock, updates the first field, reports progress and sleeps
/// until killed: the update never completes.
#[mc::process]
fn victim(descr: HeapDescr<State>) -> Result<(), String> {
    let heap = descr.open().map_err(|e| e.to_string())?;
    let r = heap.read().map_err(|e| e.to_string())?;
    let mut g = r.account.lock().map_err(|e| e.to_string())?;
    g.deposits += 1; // ... and `balance` is never updated.
    *r.progress.lock().map_err(|e| e.to_string())? = 1;
    std::thread::sleep(Duration::from_secs(60));
    Err("not killed".into())
}

/// Takes the lock after the victim died, repairs the invariant, marks the
/// data consistent and makes 1,000 correct deposits.
#[mc::process]
fn survivor(descr: HeapDescr<State>) -> Result<(bool, Account), String> {
    let heap = descr.open().map_err(|e| e.to_string())?;
    let r = heap.read().map_err(|e| e.to_string())?;
    let died = {
        let mut g = r
            .account
            .lock_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let died = g.owner_died();
        if died {
            println!(
                "survivor: the owner died; found deposits {} but balance {}",
                g.deposits, g.balance
            );
            // Repair: the half-done deposit is rolled forward.
            g.balance = g.deposits * 10;
            g.mark_consistent();
        }
        died
    };
    for _ in 0..1000 {
        let mut g = r.account.lock().map_err(|e| e.to_string())?;
        if g.owner_died() {
            return Err("owner_died reported twice".into());
        }
        g.deposits += 1;
        g.balance += 10;
    }
    let g = r.account.lock().map_err(|e| e.to_string())?;
    Ok((
        died,
        Account {
            deposits: g.deposits,
            balance: g.balance,
        },
    ))
}

fn work() -> Result<(), String> {
    let pool = Pool::create(16 << 20).map_err(|e| e.to_string())?;
    let heap = Heap::create(
        &pool,
        &State {
            account: Mutex::new(Account {
                deposits: 5,
                balance: 50,
            }),
            progress: Mutex::new(0),
        },
    )
    .map_err(|e| e.to_string())?;
    let v = victim::start(heap.descr()).map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        let r = heap.read().map_err(|e| e.to_string())?;
        if *r.progress.lock().map_err(|e| e.to_string())? == 1 {
            break;
        }
        drop(r);
        if start.elapsed() > Duration::from_secs(10) {
            return Err("the victim did not take the lock".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("master: the victim holds the lock mid-update; SIGKILL");
    processes::kill(v, Signal::KILL).map_err(|e| e.to_string())?;
    let outcome = victim::join_outcome(v).map_err(|e| e.to_string())?;
    println!("master: victim ended: {outcome}");
    if outcome != Outcome::Killed(Signal::KILL) {
        return Err(format!("unexpected outcome {outcome:?}"));
    }
    let s = survivor::start(heap.descr()).map_err(|e| e.to_string())?;
    let (died, acc) = survivor::join(s).map_err(|e| e.to_string())??;
    println!("master: survivor saw owner_died = {died}, final {acc:?}");
    if !died {
        return Err("the survivor was not told that the owner died".into());
    }
    let expected = Account {
        deposits: 1006,
        balance: 10060,
    };
    if acc != expected {
        return Err(format!("expected {expected:?}"));
    }
    let r = heap.read().map_err(|e| e.to_string())?;
    let g = r.account.lock().map_err(|e| e.to_string())?;
    if g.owner_died() || (g.deposits, g.balance) != (expected.deposits, expected.balance) {
        return Err("the lock or the data is not clean afterwards".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    match mc::run(work).map(|r| r.returned()) {
        Ok(Some(Ok(()))) => {
            println!("robust_lock: ok");
            ExitCode::SUCCESS
        }
        Ok(Some(Err(e))) => {
            eprintln!("robust_lock: FAILED: {e}");
            ExitCode::FAILURE
        }
        Ok(None) => {
            eprintln!("robust_lock: the first process did not return");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("robust_lock: {e}");
            ExitCode::FAILURE
        }
    }
}
