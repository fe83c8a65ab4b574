//! Sharing with an unrelated program: this process creates a named pool
//! and a heap, makes it the pool's root heap, then runs a second program
//! (this same binary, with `--reader NAME`, started with
//! `std::process::Command`, not forked) which attaches the pool by name
//! and reads the value through `Heap::open_root`.

use std::process::{Command, ExitCode};

use mc::{Heap, Pool};

#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct Greeting {
    text: String,
    primes: Vec<u32>,
}

fn expected() -> Greeting {
    Greeting {
        text: "hello from the creator".into(),
        primes: vec![2, 3, 5, 7, 11, 13],
    }
}

/// The second program: attach, open the root heap, print what it holds.
fn reader(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::attach(name)?;
    let heap = Heap::<Greeting>::open_root(&pool)?;
    let g = heap.read()?;
    println!("{}|{:?}", g.text.as_str(), g.primes.as_slice());
    Ok(())
}

fn creator(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::create_named(name, 16 << 20)?;
    // Dropping the creator's last handle removes the name, on success or
    // failure alike.
    let heap = Heap::create(&pool, &expected())?;
    heap.set_pool_root();
    println!(
        "creator: pool {name:?} at {:#x}, root heap set",
        pool.base()
    );
    let out = Command::new(std::env::current_exe()?)
        .args(["--reader", name])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("reader said: {stdout}");
    if !out.status.success() {
        return Err(format!(
            "the reader failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let e = expected();
    let want = format!("{}|{:?}", e.text, e.primes);
    if stdout.trim_end() != want {
        return Err(format!("the reader saw {stdout:?}, expected {want:?}").into());
    }
    heap.destroy()?;
    pool.unlink()?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--reader" {
        return match reader(&args[2]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("attach --reader: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let name = format!("attach-example-{}", std::process::id());
    match creator(&name) {
        Ok(()) => {
            println!("attach: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("attach: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
