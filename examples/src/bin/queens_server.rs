//! An HTTP service (hyper, HTTP/1.1 with keep-alive) whose worker processes
//! share two tables: hit counts per key, and a cache of N-queens counts
//! that any worker computes once and every worker serves afterwards.
//!
//! ```text
//! queens_server [--listen ADDR] [--workers N] [--threads T] [--demo]
//! ```
//!
//! - `GET /queens/N` (N = 1..=16): the number of solutions, with whether
//!   it came from the shared cache and which worker answered;
//! - `GET /count/KEY`: counts a hit on KEY in the shared table;
//! - `GET /stats`: every key's count.
//!
//! It prints its address and worker pids and runs until Ctrl-C (or
//! SIGTERM), then stops gracefully. With `--demo` it answers a built-in
//! client's requests instead, checks the answers and stops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mc::structures::SHashtbl;
use mc_examples::queens_http::{self, Hits, SharedStore};
use mc_serve::{Control, ServerBuilder, ServiceConfig};

#[derive(Parser)]
#[command(about = "An HTTP service whose worker processes share a cache and counters")]
struct Args {
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Threads of each worker's tokio runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Answer a built-in client's requests, check them and stop.
    #[arg(long)]
    demo: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Created before the server runs: every worker has the pool mapped.
    let pool = mc::Pool::create(64 << 20)?;
    let hits = Hits::create(&pool, &mc::sync::Mutex::new(()))?;
    let cache = SHashtbl::<u32, u64>::create(&pool, &())?;
    let (hd, cd) = (hits.descr(), cache.descr());
    let listen = if args.demo {
        "127.0.0.1:0"
    } else {
        &args.listen
    };
    let server = ServerBuilder::with_init(move |_| {
        Ok(SharedStore {
            hits: hd.open()?,
            cache: cd.open()?,
        })
    })
    .service(
        ServiceConfig::new("queens", "http")
            .listen(listen)
            .workers(args.workers)
            .threads(args.threads),
    )
    .async_handler("http", |conn, store: Arc<SharedStore>| {
        queens_http::serve_connection(conn, store)
    })
    .bind()?;
    for a in server.addrs("queens").unwrap_or_default() {
        println!("queens_server: listening on http://{a}/");
    }
    if !args.demo {
        let (report, ()) = server.run_with(|c| {
            if wait_serving(c).is_ok() {
                if let Ok(w) = c.workers(None) {
                    let pids: Vec<u32> = w.iter().map(|w| w.pid).collect();
                    println!("queens_server: workers {pids:?}; Ctrl-C stops");
                }
            }
            c.wait_stop();
        })?;
        println!(
            "queens_server: stopped; {} workers started, {} failures",
            report.started,
            report.failures.len()
        );
        return Ok(());
    }
    let (report, r) = server.run_with(demo)?;
    r?;
    println!(
        "queens_server: {} workers started, {} failures",
        report.started,
        report.failures.len()
    );
    println!("queens_server: ok");
    Ok(())
}

/// Waits (at most 30 s) until every worker serves.
fn wait_serving(c: &Control) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .workers(None)
        .map_err(|e| e.to_string())?
        .iter()
        .any(|w| w.state != mc_serve::WorkerState::Serving)
    {
        if Instant::now() > deadline {
            return Err("the workers did not start".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("{path}: {text}"));
    }
    Ok(text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}

/// The built-in client of `--demo`.
fn demo(c: &Control) -> Result<(), String> {
    wait_serving(c)?;
    let addr = c.tcp_addr("queens").ok_or("no address")?;
    let first = get(addr, "/queens/10")?;
    let again = get(addr, "/queens/10")?;
    println!("{first}\n{again}");
    if !first.contains("\"solutions\":724") || !first.contains("\"cached\":false") {
        return Err(format!("first answer {first}"));
    }
    if !again.contains("\"cached\":true") {
        return Err(format!("second answer {again}"));
    }
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    let _ = get(addr, "/count/demo");
                }
            });
        }
    });
    let stats = get(addr, "/stats")?;
    println!("{}", stats.trim());
    if stats.trim() != "demo 200" {
        return Err(format!("stats {stats:?}"));
    }
    Ok(())
}
