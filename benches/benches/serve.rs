//! The services showcase (`queens_server`'s handler: hyper on `mc-serve`'s
//! async workers, hit counts in a shared `SHashtbl`) against the same
//! handler in one tokio process whose threads share a `Mutex<HashMap>`,
//! on loopback, in alternated rounds.
//!
//! - mc, 2 workers (1 thread each) vs tokio, 2 threads: requests per
//!   second, p50 and p99 latency;
//! - mc, 1 worker: the scaling from 1 to 2 workers.
//!
//! Each round sends 20,000 `GET /count/kN` over 8 keep-alive connections
//! from threads of this process. Run: `cargo bench -p mc-benches --bench
//! serve`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mc::structures::SHashtbl;
use mc_examples::queens_http::{self, Hits, LocalStore, SharedStore};
use mc_serve::{ServerBuilder, ServiceConfig};

const CONNS: usize = 8;
const PER_CONN: usize = 2_500;
const ROUNDS: usize = 5;

/// One round's figures.
#[derive(Clone, Copy)]
struct Figures {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Sends `PER_CONN` requests on each of `CONNS` keep-alive connections.
fn load(addr: SocketAddr) -> Figures {
    let start = Instant::now();
    let mut lat: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..CONNS)
            .map(|c| {
                s.spawn(move || {
                    let stream = TcpStream::connect(addr).expect("connect");
                    stream.set_nodelay(true).expect("nodelay");
                    stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .expect("timeout");
                    let mut w = stream.try_clone().expect("clone");
                    let mut r = BufReader::new(stream);
                    let mut lat = Vec::with_capacity(PER_CONN);
                    for _ in 0..PER_CONN {
                        let t = Instant::now();
                        write!(w, "GET /count/k{} HTTP/1.1\r\nHost: bench\r\n\r\n", c % 4)
                            .expect("send");
                        read_response(&mut r);
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("client"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Figures {
        rps: lat.len() as f64 / secs,
        p50_us: pct(0.50).as_secs_f64() * 1e6,
        p99_us: pct(0.99).as_secs_f64() * 1e6,
    }
}

/// Reads one response (status, headers, `content-length` body).
fn read_response(r: &mut BufReader<TcpStream>) {
    let mut len = 0usize;
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().expect("length");
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).expect("body");
}

/// The showcase service with `workers` workers, loaded once.
fn mc_round(workers: usize) -> Figures {
    let pool = mc::Pool::create(64 << 20).expect("pool");
    let hits = Hits::create(&pool, &mc::sync::Mutex::new(())).expect("hits");
    let cache = SHashtbl::<u32, u64>::create(&pool, &()).expect("cache");
    let (hd, cd) = (hits.descr(), cache.descr());
    let server = ServerBuilder::with_init(move |_| {
        Ok(SharedStore {
            hits: hd.open()?,
            cache: cd.open()?,
        })
    })
    .service(
        ServiceConfig::new("bench", "http")
            .listen("127.0.0.1:0")
            .workers(workers),
    )
    .async_handler("http", |conn, store: Arc<SharedStore>| {
        queens_http::serve_connection(conn, store)
    })
    .bind()
    .expect("bind");
    let (_, f) = server
        .run_with(|c| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !c
                .workers(None)
                .is_ok_and(|w| w.iter().all(|w| w.state == mc_serve::WorkerState::Serving))
            {
                assert!(Instant::now() < deadline, "workers did not start");
                std::thread::sleep(Duration::from_millis(5));
            }
            load(c.tcp_addr("bench").expect("address"))
        })
        .expect("run");
    let total: u64 = hits.to_vec().expect("hits").iter().map(|(_, n)| *n).sum();
    assert_eq!(total, (CONNS * PER_CONN) as u64, "every hit counted");
    f
}

/// The same handler in one tokio process of 2 threads (a forked child),
/// loaded once.
fn tokio_round() -> Figures {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let child = mc_testkit::fork_child(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            let store = Arc::new(LocalStore::default());
            loop {
                let (s, _) = l.accept().await.expect("accept");
                let _ = s.set_nodelay(true);
                let store = store.clone();
                tokio::spawn(queens_http::serve_connection(s, store));
            }
        })
    });
    let f = load(addr);
    mc_testkit::kill(child);
    let _ = mc_testkit::wait_child(child, Duration::from_secs(10));
    f
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "serve: {} rounds of {} requests over {CONNS} keep-alive connections (GET /count/kN)",
        ROUNDS,
        CONNS * PER_CONN
    );
    let (mut m2, mut t2, mut m1) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        m2.push(mc_round(2));
        t2.push(tokio_round());
        m1.push(mc_round(1));
    }
    let ratio = |a: &[Figures], b: &[Figures]| {
        median(a.iter().zip(b).map(|(x, y)| x.rps / y.rps).collect())
    };
    let show = |name: &str, v: &[Figures]| {
        println!(
            "  {name:<34} {:>9.0} req/s   p50 {:>7.1} µs   p99 {:>7.1} µs",
            median(v.iter().map(|f| f.rps).collect()),
            median(v.iter().map(|f| f.p50_us).collect()),
            median(v.iter().map(|f| f.p99_us).collect()),
        )
    };
    show("mc-serve, 2 workers (SHashtbl)", &m2);
    show("tokio, 2 threads (Mutex<HashMap>)", &t2);
    show("mc-serve, 1 worker", &m1);
    println!(
        "  ratio mc 2 workers / tokio 2 threads: {:.2}x (median of per-round ratios)",
        ratio(&m2, &t2)
    );
    println!(
        "  scaling mc 2 workers / 1 worker:      {:.2}x",
        ratio(&m2, &m1)
    );
}
